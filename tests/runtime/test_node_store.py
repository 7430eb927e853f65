"""The node's object store core: pulls through the reader's node (FetchObject).

What the TCP runtime relies on for large values: a reader's node serves its
own copy, or pulls one from the source node once for every local reader,
keeps it as a secondary copy the owner knows of, and answers "no copy" to
exactly the readers that named a source which had none.
"""

from __future__ import annotations

from ownership.core.events import ObjectFreed, Received, Send
from ownership.core.messages import (
    FreeObject,
    NodeDied,
    ObjectCopy,
    ObjectStored,
    Payload,
    PullObject,
    PutObject,
    RegisterWorker,
    WorkerDied,
)
from ownership.core.node import NodeCore
from ownership.core.store import FetchObject, ObjectFetched

CPU1 = (("CPU", 1.0),)
BIG = Payload(data=b"v", buffers=(b"x" * 1000,))


def node(address: str = "n1", workers: tuple[str, ...] = ("w1", "w2", "w3")) -> NodeCore:
    """A node whose ``workers`` said hello: a node keeps values for its own processes only."""
    n = NodeCore(address, "head", CPU1, pool_size=1)
    for w in workers:
        n.handle(Received(w, RegisterWorker(worker=w, node=address)))
    return n


def sends(fx) -> list[tuple[str, object]]:
    return [(e.dst, e.msg) for e in fx if isinstance(e, Send)]


def fetch(requester: str, source: str, oid: str = "o/x", owner: str = "o") -> Received:
    return Received(requester, FetchObject(object_id=oid, owner=owner, source=source, requester=requester))


def test_fetch_of_a_held_copy_is_served_at_once() -> None:
    n = node()
    n.handle(Received("w1", PutObject(object_id="o/x", owner="o", value=BIG)))
    assert sends(n.handle(fetch("w1", "n1"))) == [("w1", ObjectFetched(object_id="o/x", source="n1", value=BIG))]
    assert n.store.fetching == {}


def test_fetch_from_another_node_pulls_once_for_all_readers_and_keeps_a_secondary_copy() -> None:
    n = node("n2")
    assert sends(n.handle(fetch("w1", "n1"))) == [("n1", PullObject(object_id="o/x", requester="n2"))]
    assert sends(n.handle(fetch("w2", "n1"))) == []  # one pull in flight is enough
    fx = n.handle(Received("n1", ObjectCopy(object_id="o/x", value=BIG)))
    assert sends(fx) == [
        ("o", ObjectStored(object_id="o/x", node="n2")),  # the owner frees it with the rest
        ("w1", ObjectFetched(object_id="o/x", source="n1", value=BIG)),
        ("w2", ObjectFetched(object_id="o/x", source="n1", value=BIG)),
    ]
    assert n.snapshot()["store"] == {"o/x": {"owner": "o", "size": BIG.size, "pinned": False}}
    assert n.snapshot()["fetching"] == {}
    # The next reader gets the local copy; the owner's free removes it.
    assert sends(n.handle(fetch("w3", "n1"))) == [("w3", ObjectFetched(object_id="o/x", source="n1", value=BIG))]
    assert n.handle(Received("o", FreeObject(object_id="o/x"))) == [ObjectFreed(object_id="o/x")]


def test_source_without_a_copy_fails_only_the_readers_that_named_it() -> None:
    n = node("n3")
    n.handle(fetch("w1", "n1"))
    n.handle(fetch("w2", "n2"))
    fx = n.handle(Received("n1", ObjectCopy(object_id="o/x")))
    assert sends(fx) == [
        ("w1", ObjectFetched(object_id="o/x", source="n1")),
        ("n2", PullObject(object_id="o/x", requester="n3")),  # w2 named another source: try it
    ]
    fx = n.handle(Received("n2", ObjectCopy(object_id="o/x", value=BIG)))
    assert ("w2", ObjectFetched(object_id="o/x", source="n2", value=BIG)) in sends(fx)


def test_answer_from_a_source_not_asked_is_ignored() -> None:
    n = node("n3")
    n.handle(fetch("w1", "n1"))
    assert n.handle(Received("n2", ObjectCopy(object_id="o/x", value=BIG))) == []
    assert n.handle(Received("n1", ObjectCopy(object_id="o/y", value=BIG))) == []
    assert n.store.objects == {} and set(n.store.fetching) == {"o/x"}


def test_fetch_from_itself_or_a_dead_node_finds_nothing() -> None:
    n = node("n1")
    n.handle(Received("head", NodeDied(node="n9")))
    assert sends(n.handle(fetch("w1", "n1"))) == [("w1", ObjectFetched(object_id="o/x", source="n1"))]
    assert sends(n.handle(fetch("w1", "n9"))) == [("w1", ObjectFetched(object_id="o/x", source="n9"))]
    assert n.store.fetching == {}


def test_source_node_death_ends_the_pulls_from_it() -> None:
    n = node("n2")
    n.handle(fetch("w1", "n1"))
    fx = n.handle(Received("head", NodeDied(node="n1", workers=("w9",))))
    assert ("w1", ObjectFetched(object_id="o/x", source="n1")) in sends(fx)
    assert n.store.fetching == {}


def test_copy_of_a_dead_owner_is_handed_out_but_not_kept() -> None:
    n = node("n2")
    n.handle(fetch("w1", "n1"))
    n.handle(Received("head", WorkerDied(worker="o", node="n1")))
    fx = n.handle(Received("n1", ObjectCopy(object_id="o/x", value=BIG)))
    assert sends(fx) == [("w1", ObjectFetched(object_id="o/x", source="n1", value=BIG))]
    assert n.store.objects == {}


def test_owner_death_frees_secondary_copies_too() -> None:
    n = node("n2")
    n.handle(fetch("w1", "n1"))
    n.handle(Received("n1", ObjectCopy(object_id="o/x", value=BIG)))
    fx = n.handle(Received("head", WorkerDied(worker="o", node="n1")))
    assert ObjectFreed(object_id="o/x") in fx and n.store.objects == {}
