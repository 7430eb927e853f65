"""Large values through a node's shared memory: the shells' object plane, in one process.

The node shell (``NodeRuntime`` with a SharedMemoryStore) and the worker side
(``WorkerObjects``) are driven message by message over a recording
transport; segments are real POSIX shared memory. The multi-process tests
(tests/multiprocess/test_shared_memory.py) run the same over TCP.
"""

from __future__ import annotations

import secrets

import numpy as np
import pytest
import trio
import trio.testing

from ownership.core.events import PeerLost, Received
from ownership.core.messages import (
    FreeObject,
    ObjectCopy,
    ObjectStored,
    PullObject,
    PutObject,
    RegisterWorker,
    TaskReply,
    WorkerDied,
)
from ownership.core.node import NodeCore
from ownership.core.store import FetchObject, ObjectFetched
from ownership.runtime.node import NodeRuntime
from ownership.runtime.objects import (
    MapsSegments,
    SegmentCopy,
    SegmentStored,
    SharedMemoryInfo,
    WorkerObjects,
    machine_shm_id,
)
from ownership.runtime.serialization import serialize
from ownership.runtime.shm import SHM_DIR, SharedMemoryStore, write_segment
from ownership.runtime.transport import Transport
from ownership.runtime.values import pack, unpack

pytestmark = pytest.mark.skipif(not SHM_DIR.is_dir(), reason="needs a Linux /dev/shm to enumerate segments")


class Recorder(Transport):
    def __init__(self, address: str) -> None:
        self._address = address
        self.sent: list[tuple[str, object]] = []

    @property
    def address(self) -> str:
        return self._address

    def send_nowait(self, dst: str, msg: object) -> None:
        self.sent.append((dst, msg))

    async def receive(self):  # pragma: no cover - never called
        await trio.sleep_forever()

    async def aclose(self) -> None:
        pass

    def watch(self, address: str) -> None:
        pass

    async def probe(self, address: str) -> bool:
        return False  # every peer these tests lose is gone: its dial is refused

    def take(self) -> list[tuple[str, object]]:
        out, self.sent = self.sent, []
        return out


class NoLauncher:
    async def launch(self, node: str) -> None:
        pass

    def kill(self, worker: str) -> None:
        pass


@pytest.fixture
def store():
    shm = SharedMemoryStore(secrets.token_hex(6))
    yield shm
    shm.close()


@pytest.fixture
async def node(store):
    async with trio.open_nursery() as nursery:
        transport = Recorder("n1")
        rt = NodeRuntime(transport, NodeCore("n1", "head", (("CPU", 1.0),), pool_size=0), nursery, NoLauncher(), shm=store)
        yield rt
        nursery.cancel_scope.cancel()


def worker(address: str = "w1", owners: dict[str, str] | None = None) -> tuple[WorkerObjects, Recorder]:
    transport = Recorder(address)
    owners = owners or {}
    return WorkerObjects(address, "n1", transport.send_nowait, lambda oid: owners.get(oid, "")), transport


def register(node: NodeRuntime, address: str) -> None:
    """A process says hello to the node (which keeps values for its own processes only)."""
    node.handle(Received(address, RegisterWorker(worker=address, node="n1")))
    node.transport.take()


def connect(node: NodeRuntime, objects: WorkerObjects, transport: Recorder) -> None:
    """The registration handshake, as the shells run it."""
    node.handle(Received(objects.address, RegisterWorker(worker=objects.address, node="n1")))
    [info] = [m for dst, m in node.transport.take() if isinstance(m, SharedMemoryInfo)]
    assert objects.incoming("n1", info) is None
    for dst, msg in transport.take():
        node.handle(Received(objects.address, msg))


ARRAY = np.arange(300_000, dtype=np.float64)  # 2.3 MB


async def test_value_goes_worker_segment_node_pin_and_reader_map(node, store) -> None:
    producer, ptx = worker("w1")
    reader, rtx = worker("w2", owners={"o/x": "o"})
    connect(node, producer, ptx)
    connect(node, reader, rtx)
    assert producer.prefix == store.prefix and set(node.objects.mappers) == {"w1", "w2"}

    # The producer writes the value into a segment; only its name goes to the node.
    reply = TaskReply(task_id="t", return_id="o/x", attempt=1, worker="w1", lease_id=None, location="n1")
    dst, msg = producer.outgoing("n1", PutObject(object_id="o/x", owner="o", value=pack(ARRAY), reply=reply))
    assert dst == "n1" and isinstance(msg, SegmentStored) and msg.segment.startswith(store.prefix)
    node.handle(Received("w1", msg))
    assert node.transport.take() == [("o", reply)]  # pinned, then the owner hears of it
    stored = node.core.store.objects["o/x"].value
    assert stored.size == pack(ARRAY).size and all(b.readonly for b in stored.buffers)  # the node maps it
    assert node.objects.segments == {"o/x": msg.segment}

    # A reader on the node pulls through it and gets the segment's name.
    dst, fetch = reader.outgoing("n1", PullObject(object_id="o/x", requester="w2"))
    assert (dst, fetch) == ("n1", FetchObject(object_id="o/x", owner="o", source="n1", requester="w2"))
    node.handle(Received("w2", fetch))
    [(to, copy)] = node.transport.take()
    assert to == "w2" and copy == SegmentCopy(object_id="o/x", source="n1", segment=msg.segment)
    src, seen = reader.incoming("n1", copy)
    assert src == "n1" and isinstance(seen, ObjectCopy)
    arr = unpack(seen.value, lambda info: info)
    assert np.array_equal(arr, ARRAY) and not arr.flags.writeable
    assert reader.mapped == [msg.segment]

    # The owner frees the object: the segment goes; the reader's mapping stays valid.
    node.handle(Received("o", FreeObject(object_id="o/x")))
    assert store.list() == [] and node.objects.segments == {}
    assert float(arr.sum()) == float(ARRAY.sum())


async def test_worker_on_another_machine_sends_bytes_and_pulls_through_its_node(node, store) -> None:
    remote, tx = worker("d1", owners={"o/x": "o"})
    assert remote.incoming("n1", SharedMemoryInfo(prefix=store.prefix, shm_id="another-machine")) is None
    assert remote.prefix is None and tx.take() == []  # no MapsSegments: it gets bytes
    put = PutObject(object_id="o/x", owner="o", value=pack(ARRAY))
    assert remote.outgoing("n1", put) == ("n1", put)
    assert remote.outgoing("n2", PullObject(object_id="o/x", requester="d1")) == (
        "n1",
        FetchObject(object_id="o/x", owner="o", source="n2", requester="d1"),
    )
    # The node writes the bytes into its own segment, and answers a non-mapper with bytes.
    register(node, "d1")
    node.handle(Received("d1", put))
    assert len(store.list()) == 1
    node.transport.take()
    node.handle(Received("d1", FetchObject(object_id="o/x", owner="o", source="n1", requester="d1")))
    [(to, answer)] = node.transport.take()
    assert to == "d1" and isinstance(answer, ObjectFetched) and answer.value is node.core.store.objects["o/x"].value
    assert remote.incoming("n1", answer) == ("n1", ObjectCopy(object_id="o/x", value=answer.value))


async def test_copy_pulled_from_another_node_lands_in_a_segment_of_this_node(node, store) -> None:
    reader, tx = worker("w1", owners={"o/x": "o"})
    connect(node, reader, tx)
    node.handle(Received("w1", reader.outgoing("n2", PullObject(object_id="o/x", requester="w1"))[1]))
    assert node.transport.take() == [("n2", PullObject(object_id="o/x", requester="n1"))]
    node.handle(Received("n2", ObjectCopy(object_id="o/x", value=pack(ARRAY))))
    sent = dict(node.transport.take())
    assert sent["o"] == ObjectStored(object_id="o/x", node="n1")  # a secondary copy: the owner will free it
    copy = sent["w1"]
    assert isinstance(copy, SegmentCopy) and copy.source == "n2" and [s.name for s in store.list()] == [copy.segment]
    src, seen = reader.incoming("n1", copy)
    assert src == "n2" and np.array_equal(unpack(seen.value, lambda i: i), ARRAY)  # to the core: n2 answered


async def test_segment_outside_the_node_prefix_is_refused_and_left_alone(node, store) -> None:
    other = SharedMemoryStore(store.session, node_pid=1)  # pid 1: never ours
    try:
        info = other.put("k", ARRAY)
        node.handle(Received("w1", SegmentStored(object_id="o/x", owner="o", segment=info.name)))
        assert node.core.store.objects == {} and node.transport.take() == []
        assert [s.name for s in other.list()] == [info.name]  # not ours to unlink
    finally:
        other.close()


async def test_unkept_copies_lose_their_segment(node, store) -> None:
    register(node, "w1")
    node.handle(Received("head", WorkerDied(worker="dead", node="n9")))
    node.handle(Received("w1", PutObject(object_id="o/x", owner="dead", value=pack(ARRAY))))
    assert node.core.store.objects == {} and store.list() == []  # a dead owner's copy fate-shares
    node.handle(Received("w1", PutObject(object_id="o/y", owner="o", value=pack(ARRAY))))
    node.handle(Received("w1", PutObject(object_id="o/y", owner="o", value=pack(ARRAY))))  # a duplicate
    assert len(store.list()) == 1 and list(node.objects.segments) == ["o/y"]
    # A stale copy (no pull waits for it) is not even written.
    node.handle(Received("n2", ObjectCopy(object_id="o/z", value=pack(ARRAY))))
    assert len(store.list()) == 1


async def test_segments_of_a_dead_worker_that_were_never_stored_are_removed(node, store) -> None:
    register(node, "w1")
    node.handle(Received("w1", MapsSegments(worker="w1", pid=4242)))
    kept = write_segment(store.prefix + "abc-4242-1", serialize(ARRAY))
    node.handle(Received("w1", SegmentStored(object_id="o/x", owner="o", segment=kept.name)))
    orphan = write_segment(store.prefix + "abc-4242-2", serialize(ARRAY))  # it died before telling us
    other = write_segment(store.prefix + "abc-4343-1", serialize(ARRAY))  # another worker's
    node.handle(PeerLost(address="w1"))
    await trio.testing.wait_all_tasks_blocked()  # the node's probe of w1 goes unanswered
    assert {s.name for s in store.list()} == {kept.name, other.name}


def test_vanished_segment_reads_as_no_copy_from_the_source() -> None:
    reader, _ = worker("w1")
    copy = SegmentCopy(object_id="o/x", source="n2", segment=f"own_{secrets.token_hex(6)}_1_gone")
    assert reader.incoming("n1", copy) == ("n2", ObjectCopy(object_id="o/x"))


def test_shm_id_is_stable_and_names_this_machine() -> None:
    assert machine_shm_id() and machine_shm_id() == machine_shm_id()



# -- arguments passed by value, by segment name to a worker of the node ---------


def _push(value_payload, task_id: str = "t1"):
    from ownership.core.messages import Arg, Payload, PushTask, TaskSpec

    spec = TaskSpec(
        task_id=task_id, owner="w1", return_id=f"{task_id}.r", function_id="f", function=Payload(data=b"fn"),
        args=(Arg(value=value_payload), Arg(value=pack(7), name="k")),
    )
    return PushTask(task=spec, lease_id="l1", attempt=1)


def _grant(node: NodeRuntime, owner: str, worker_address: str):
    """The node grants ``owner`` a lease on ``worker_address``, as its core would send it."""
    from ownership.core.events import Send
    from ownership.core.messages import LeaseGranted

    node._apply([Send(owner, LeaseGranted(request_id="r1", lease_id="l1", worker=worker_address, node="n1"))])
    return node.transport.take()


async def test_a_large_argument_goes_to_a_worker_of_the_node_by_segment(node, store) -> None:
    from ownership.core.messages import LeaseGranted
    from ownership.runtime.objects import SegmentArguments, SharesSegments

    owner, otx = worker("w1")
    executor, etx = worker("w2")
    connect(node, owner, otx)
    connect(node, executor, etx)
    sent = _grant(node, "w1", "w2")
    assert [type(m) for _, m in sent] == [SharesSegments, LeaseGranted]  # the note first, same connection
    for _, msg in sent:
        got = owner.incoming("n1", msg)
    assert "w2" in owner.sharing and got == ("n1", sent[1][1])

    array = np.arange(1 << 18, dtype=np.float64)  # 2 MiB
    payload = owner.pack_argument(array)
    array[0] = -1.0  # the caller changes it after the call: the task gets the value at the call
    push = _push(payload)
    dst, msg = owner.outgoing("w2", push)
    assert dst == "w2" and isinstance(msg, SegmentArguments)
    assert msg.segments[0].startswith(store.prefix) and msg.segments[1] == ""
    assert msg.push.task.args[0].value.buffers == () and msg.push.task.args[1] == push.task.args[1]
    src, back = executor.incoming("w1", msg)
    assert src == "w1" and back.task.args[1] == push.task.args[1] and back.task.task_id == "t1"
    value = unpack(back.task.args[0].value, lambda info: info)
    assert value[0] == 0.0 and value[-1] == float((1 << 18) - 1) and not value.flags.writeable

    # To a worker not known to share the node's segments, the bytes travel.
    assert owner.outgoing("w9", push) == ("w9", push)
    # A small argument stays as pack() makes it.
    assert not isinstance(owner.outgoing("w2", _push(owner.pack_argument(np.ones(8)))), SegmentArguments)


async def test_an_argument_segment_reused_or_foreign_is_refused(node, store) -> None:
    from ownership.runtime.objects import SegmentArguments

    owner, otx = worker("w1")
    executor, etx = worker("w2")
    connect(node, owner, otx)
    connect(node, executor, etx)
    for _, msg in _grant(node, "w1", "w2"):
        owner.incoming("n1", msg)
    payload = owner.pack_argument(np.ones(1 << 18))
    _, first = owner.outgoing("w2", _push(payload))
    del payload  # the task is over for its owner: the segment may be written again
    _, second = owner.outgoing("w2", _push(owner.pack_argument(np.full(1 << 18, 2.0)), "t2"))
    assert owner.arguments.reused == 1 and first.segments[0] != second.segments[0]  # renamed when reused
    assert executor.incoming("w1", first) is None  # its name is gone: never the new content
    _, back = executor.incoming("w1", second)
    assert float(unpack(back.task.args[0].value, lambda info: info).sum()) == 2.0 * (1 << 18)

    foreign = SegmentArguments(push=second.push, segments=("own_other_1_arg.1-1-0", ""))
    assert executor.incoming("w1", foreign) is None
    assert executor.incoming("w1", SegmentArguments(push=second.push, segments=("",))) is None  # wrong length
