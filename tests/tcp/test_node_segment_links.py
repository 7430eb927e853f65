"""Copies between nodes of one machine: a link to the source's segment, no bytes.

Two node shells (``NodeRuntime`` with their own SharedMemoryStore, one
session) are driven message by message over recording transports, as in
test_object_plane.py; the segments are real POSIX shared memory.
"""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest
import trio

from ownership.core.events import Received
from ownership.core.messages import (
    ClusterView,
    FreeObject,
    NodeView,
    ObjectCopy,
    ObjectStored,
    PullObject,
    PutObject,
    RegisterWorker,
)
from ownership.core.node import NodeCore
from ownership.core.store import FetchObject, ObjectFetched
from ownership.runtime.node import NodeRuntime
from ownership.runtime.objects import PeerSegmentCopy, SegmentCopy, SegmentPull, machine_shm_id
from ownership.runtime.shm import SHM_DIR, SharedMemoryStore, link_segment, open_segment, write_segment
from ownership.runtime.values import pack, serialize, unpack

from .test_object_plane import NoLauncher, Recorder, connect, worker

pytestmark = pytest.mark.skipif(not SHM_DIR.is_dir() or not machine_shm_id(), reason="needs a Linux /dev/shm")

LARGE = np.arange(9 * 2**20 // 8, dtype=np.float64)  # 9 MiB: its segment becomes a spare once freed
CPU = (("CPU", 1.0),)


@pytest.fixture
def session():
    return secrets.token_hex(6)


@pytest.fixture
async def nodes(session):
    """n1 (the puller, a reader ``w1`` on it) and n2 (the source); each knows the other from the head."""
    stores = [SharedMemoryStore(session), SharedMemoryStore(session, node_pid=os.getpid() + 4_000_000)]
    async with trio.open_nursery() as nursery:
        runtimes = []
        for name, store in zip(("n1", "n2"), stores):
            rt = NodeRuntime(Recorder(name), NodeCore(name, "head", CPU, pool_size=0), nursery, NoLauncher(), shm=store)
            view = ClusterView(nodes=tuple(NodeView(node=n, total=CPU, available=CPU) for n in ("n1", "n2")))
            rt.handle(Received("head", view))
            rt.transport.take()
            runtimes.append(rt)
        yield runtimes
        nursery.cancel_scope.cancel()
    for store in stores:
        store.close()


def reader_at(node: NodeRuntime):
    """Worker ``w1`` of ``node``, connected, reading ``o/x`` (owned by ``o``)."""
    reader, tx = worker("w1", owners={"o/x": "o"})
    connect(node, reader, tx)
    return reader


def stored_at(source: NodeRuntime, value: np.ndarray) -> str:
    """``o/x`` put at ``source`` by a worker there (bytes, written into a segment of source); its segment."""
    source.handle(Received("w9", RegisterWorker(worker="w9", node=source.address)))
    source.transport.take()
    source.handle(Received("w9", PutObject(object_id="o/x", owner="o", value=pack(value))))
    source.transport.take()
    return source.objects.segments["o/x"]


def pull(puller: NodeRuntime, source: NodeRuntime) -> tuple[object, object]:
    """A reader on ``puller`` asks for ``o/x`` at ``source``: what ``puller`` sends, and what ``source`` answers."""
    puller.handle(Received("w1", FetchObject(object_id="o/x", owner="o", source=source.address, requester="w1")))
    [(dst, request)] = puller.transport.take()
    assert dst == source.address
    source.handle(Received(puller.address, request))
    [(to, answer)] = source.transport.take()
    assert to == puller.address
    return request, answer


def read(reader, copy: SegmentCopy) -> np.ndarray:
    src, seen = reader.incoming("n1", copy)
    assert isinstance(seen, ObjectCopy) and seen.value is not None
    return unpack(seen.value, lambda info: info)


async def test_a_pull_from_a_node_of_this_machine_links_its_segment(nodes, session) -> None:
    n1, n2 = nodes
    reader = reader_at(n1)
    source_segment = stored_at(n2, LARGE)

    request, answer = pull(n1, n2)
    assert request == SegmentPull(pull=PullObject(object_id="o/x", requester="n1"), shm_id=machine_shm_id())
    assert answer == PeerSegmentCopy(object_id="o/x", segment=source_segment)
    n1.handle(Received("n2", answer))
    sent = dict(n1.transport.take())
    assert sent["o"] == ObjectStored(object_id="o/x", node="n1")  # a secondary copy, as by bytes
    copy = sent["w1"]
    assert isinstance(copy, SegmentCopy) and copy.segment.startswith(n1.objects.store.prefix)
    # One file under two names: no byte was copied.
    assert (SHM_DIR / copy.segment).stat().st_ino == (SHM_DIR / source_segment).stat().st_ino
    assert n1.objects.snapshot()["linked"] == {"segments": 1, "pulled": 1, "served": 0, "fallbacks": 0}
    assert n2.objects.snapshot()["linked"]["served"] == 1

    # The source frees its copy: n1's stays whole. n2 keeps the file as a
    # spare but cannot write it again while n1 maps it.
    n2.handle(Received("o", FreeObject(object_id="o/x")))
    assert n2.objects.segments == {} and not (SHM_DIR / source_segment).exists()
    assert n2.objects.spares.write(n2.objects.store.prefix + "next-1-1", serialize(np.zeros_like(LARGE))) is None
    arr = read(reader, copy)
    assert np.array_equal(arr, LARGE)

    # n1 frees its copy: its name goes, never to a spare of n1's (the file is n2's spare).
    n1.handle(Received("o", FreeObject(object_id="o/x")))
    assert n1.objects.store.list() == [] and n1.objects.linked == set() and n1.objects.spares.kept_bytes == 0
    assert float(arr.sum()) == float(LARGE.sum())  # a reader's mapping outlives every name
    del arr, reader
    n1.core.store.objects.clear()  # nothing of n1 maps the file now
    import gc

    gc.collect()
    assert n2.objects.spares.write(n2.objects.store.prefix + "next-1-2", serialize(np.zeros_like(LARGE))) is not None


async def test_a_linked_copy_outlives_the_source_node(nodes) -> None:
    n1, n2 = nodes
    reader = reader_at(n1)
    stored_at(n2, LARGE)
    _, answer = pull(n1, n2)
    n1.handle(Received("n2", answer))
    copy = dict(n1.transport.take())["w1"]
    n2.objects.store.close()  # the source's node is gone, and its segments with it
    assert np.array_equal(read(reader, copy), LARGE)


async def test_a_segment_freed_before_the_link_is_pulled_again_as_bytes(nodes) -> None:
    n1, n2 = nodes
    reader = reader_at(n1)
    stored_at(n2, LARGE)
    _, answer = pull(n1, n2)
    n2.handle(Received("o", FreeObject(object_id="o/x")))  # freed (renamed a spare) while the answer travels
    n1.handle(Received("n2", answer))
    assert n1.transport.take() == [("n2", PullObject(object_id="o/x", requester="n1"))]  # plain: bytes
    assert n1.objects.store.list() == [] and n1.objects.stats.link_fallbacks == 1
    n2.handle(Received("n1", PullObject(object_id="o/x", requester="n1")))
    [(_, none)] = n2.transport.take()
    n1.handle(Received("n2", none))
    assert n1.transport.take() == [("w1", ObjectFetched(object_id="o/x", source="n2"))]  # no copy: the reader recovers


@pytest.mark.parametrize(
    "segment",
    [
        "own_othersession_1_key",  # another session's
        "own_{session}_1_../../etc/passwd",  # not a name at all
        "own_{session}_1_gone",  # no such segment
    ],
)
async def test_a_segment_that_cannot_be_ours_is_not_linked(nodes, session, segment) -> None:
    n1, _ = nodes
    reader = reader_at(n1)
    n1.handle(Received("w1", FetchObject(object_id="o/x", owner="o", source="n2", requester="w1")))
    n1.transport.take()
    n1.handle(Received("n2", PeerSegmentCopy(object_id="o/x", segment=segment.format(session=session))))
    assert n1.transport.take() == [("n2", PullObject(object_id="o/x", requester="n1"))]
    assert n1.objects.store.list() == [] and n1.objects.linked == set()


async def test_a_node_on_another_machine_gets_the_bytes(nodes) -> None:
    _, n2 = nodes
    stored_at(n2, LARGE)
    n2.handle(Received("n1", SegmentPull(pull=PullObject(object_id="o/x", requester="n1"), shm_id="another-machine")))
    [(to, answer)] = n2.transport.take()
    assert to == "n1" and isinstance(answer, ObjectCopy) and answer.value is n2.core.store.objects["o/x"].value


async def test_links_off_pulls_as_between_machines(session, monkeypatch) -> None:
    monkeypatch.setenv("OWNERSHIP_LINK_NODE_SEGMENTS", "0")
    store = SharedMemoryStore(session)
    try:
        async with trio.open_nursery() as nursery:
            n1 = NodeRuntime(Recorder("n1"), NodeCore("n1", "head", CPU, pool_size=0), nursery, NoLauncher(), shm=store)
            n1.handle(Received("head", ClusterView(nodes=(NodeView(node="n2", total=CPU, available=CPU),))))
            n1.handle(Received("w1", FetchObject(object_id="o/x", owner="o", source="n2", requester="w1")))
            assert n1.transport.take() == [("n2", PullObject(object_id="o/x", requester="n1"))]
            nursery.cancel_scope.cancel()
    finally:
        store.close()


def test_link_refuses_a_segment_being_written_again(session) -> None:
    """The source node holds its write lock while it reuses a spare: no link then."""
    import fcntl

    from ownership.runtime.shm import _ofd_lock

    with SharedMemoryStore(session) as store:
        info = write_segment(store.prefix + "a-1-1", serialize(LARGE))
        fd = os.open(SHM_DIR / info.name, os.O_RDWR)
        try:
            assert _ofd_lock(fd, fcntl.F_WRLCK)
            with pytest.raises(FileNotFoundError):
                link_segment(info.name, store.prefix + "b-1-1")
            assert not (SHM_DIR / (store.prefix + "b-1-1")).exists()
        finally:
            os.close(fd)
        value = link_segment(info.name, store.prefix + "b-1-1").deserialize()
        assert np.array_equal(value, LARGE)
        assert np.array_equal(open_segment(store.prefix + "b-1-1").deserialize(), LARGE)
