"""The worker side of the object plane: large values pickled straight into a
segment, and mappings reused by readers."""

from __future__ import annotations

import secrets
import threading

import numpy as np
import pytest

from ownership.core.messages import ObjectCopy, PutObject
from ownership.runtime.objects import MAPPINGS_KEPT, SegmentCopy, SegmentStored, WorkerObjects
from ownership.runtime.serialization import serialize
from ownership.runtime.shm import SHM_DIR, SharedMemoryStore, unlink_segment, write_segment
from ownership.runtime.values import UnpicklableValue, pack, unpack

pytestmark = pytest.mark.skipif(not SHM_DIR.is_dir(), reason="needs a Linux /dev/shm to enumerate segments")

ARRAY = np.arange(300_000, dtype=np.float64)  # 2.3 MB
THRESHOLD = 100 * 1024


@pytest.fixture
def store():
    shm = SharedMemoryStore(secrets.token_hex(6))
    yield shm
    shm.close()


def worker(store: SharedMemoryStore | None) -> tuple[WorkerObjects, list]:
    sent: list = []
    objects = WorkerObjects("w1", "n1", lambda dst, msg: sent.append((dst, msg)), lambda oid: "o")
    objects.prefix = store.prefix if store is not None else None  # as after the SharedMemoryInfo handshake
    return objects, sent


def test_large_value_is_pickled_into_one_segment_and_put_by_its_name(store) -> None:
    objects, _ = worker(store)
    payload, oid = objects.pack(ARRAY, THRESHOLD, lambda: "o/p1")
    assert oid == "o/p1" and all(b.readonly for b in payload.buffers)
    [segment] = store.list()
    dst, msg = objects.outgoing("n1", PutObject(object_id="o/p1", owner="o", value=payload))
    assert dst == "n1" and msg == SegmentStored(object_id="o/p1", owner="o", segment=segment.name)
    assert store.list() == [segment]  # not written a second time
    assert np.array_equal(unpack(payload, lambda info: info), ARRAY)


def test_small_value_or_no_shared_memory_is_packed_in_memory(store) -> None:
    objects, _ = worker(store)
    assert objects.pack([1, 2], THRESHOLD, lambda: pytest.fail("no id for a small value")) == (pack([1, 2]), None)
    remote, _ = worker(None)
    payload, oid = remote.pack(ARRAY, THRESHOLD, lambda: "o/p1")
    assert oid is None and payload.size == pack(ARRAY).size and store.list() == []


def test_unpicklable_value_raises_as_pack_does(store) -> None:
    objects, _ = worker(store)
    with pytest.raises(UnpicklableValue):
        objects.pack(threading.Lock(), THRESHOLD, lambda: "o/p1")
    assert store.list() == []


def test_reader_reuses_the_mapping_of_a_segment_it_read(store) -> None:
    reader, _ = worker(store)
    seg = write_segment(store.prefix + "k-1-1", serialize(ARRAY))
    copy = SegmentCopy(object_id="o/x", source="n1", segment=seg.name)
    _, first = reader.incoming("n1", copy)
    _, again = reader.incoming("n1", copy)
    assert isinstance(again, ObjectCopy) and again.value.buffers[0] is first.value.buffers[0]
    assert reader.stats.segments_mapped == 1 and reader.stats.mappings_reused == 1


def test_reader_drops_kept_mappings_of_freed_segments_and_keeps_a_few(store) -> None:
    reader, _ = worker(store)
    gone = write_segment(store.prefix + "k-1-1", serialize(ARRAY))
    reader.incoming("n1", SegmentCopy(object_id="o/x", source="n1", segment=gone.name))
    unlink_segment(gone.name)  # freed by its node
    names = [write_segment(store.prefix + f"k-1-{i}", serialize(i)).name for i in range(2, 3 + MAPPINGS_KEPT)]
    for name in names:
        reader.incoming("n1", SegmentCopy(object_id=name, source="n1", segment=name))
    assert list(reader._maps) == names[-MAPPINGS_KEPT:]


async def test_large_frame_body_arrives_whole_in_a_mapping() -> None:
    import mmap

    import trio.testing

    from ownership.core.messages import Payload, PutObject
    from ownership.runtime.framing import LARGE_FRAME, ByteReceiver, receive_frame
    from ownership.runtime.serialization import decode_message, encode_message

    big = np.arange(LARGE_FRAME // 8 + 5, dtype=np.float64)
    msg = PutObject(object_id="o/x", owner="o", value=pack(big))
    send, receive = trio.testing.memory_stream_pair()
    frame = encode_message(msg)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send.send_all, b"".join(bytes(c) for c in frame.chunks))
        body = await receive_frame(ByteReceiver(receive), max_frame_size=1 << 30)
    assert isinstance(body, memoryview) and isinstance(body.obj, mmap.mmap) and len(body) == frame.nbytes - 8
    got = decode_message(body)
    assert np.array_equal(unpack(got.value, lambda info: info), big)
    small = encode_message(PutObject(object_id="o/y", owner="o", value=Payload(data=b"x")))
    send2, receive2 = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(send2.send_all, b"".join(bytes(c) for c in small.chunks))
        assert isinstance(await receive_frame(ByteReceiver(receive2), max_frame_size=1 << 30), bytearray)


def test_pull_of_an_object_whose_segment_we_still_map_is_answered_here(store) -> None:
    from ownership.core.messages import PullObject
    from ownership.runtime.objects import WorkerObjects

    delivered: list = []
    reader = WorkerObjects("w1", "n1", lambda dst, msg: None, lambda oid: "o", lambda src, msg: delivered.append((src, msg)))
    reader.prefix = store.prefix
    seg = write_segment(store.prefix + "k-1-1", serialize(ARRAY))
    _, first = reader.incoming("n1", SegmentCopy(object_id="o/x", source="n1", segment=seg.name))
    assert reader.outgoing("n1", PullObject(object_id="o/x", requester="w1")) is None
    [(src, copy)] = delivered
    assert src == "n1" and copy.object_id == "o/x" and copy.value.buffers[0] is first.value.buffers[0]
    unlink_segment(seg.name)  # freed by the node: the next pull goes to the node again
    assert reader.outgoing("n1", PullObject(object_id="o/x", requester="w1"))[0] == "n1"
    assert len(delivered) == 1


def test_owner_lookup_of_an_object_we_still_map_is_answered_here_unless_it_holds_refs(store) -> None:
    from ownership.core.messages import GetObject, ObjectValue, RefInfo
    from ownership.runtime.objects import WorkerObjects

    delivered: list = []
    reader = WorkerObjects("w1", "n1", lambda dst, msg: None, lambda oid: "o", lambda src, msg: delivered.append((src, msg)))
    reader.prefix = store.prefix
    plain = write_segment(store.prefix + "k-1-1", serialize(ARRAY))
    holding = write_segment(store.prefix + "k-1-2", serialize(ARRAY))
    reader.incoming("n1", SegmentCopy(object_id="o/x", source="n1", segment=plain.name))
    reader.incoming("n1", SegmentCopy(object_id="o/y", source="n1", segment=holding.name, refs=(RefInfo(object_id="o/z", owner="o"),)))
    assert reader.outgoing("o", GetObject(object_id="o/x", requester="w1")) is None
    [(src, answer)] = delivered
    assert src == "o" and isinstance(answer, ObjectValue) and answer.value is not None and answer.value.refs == ()
    # The owner must register us as a borrower of the refs inside: it is asked.
    assert reader.outgoing("o", GetObject(object_id="o/y", requester="w1")) == ("o", GetObject(object_id="o/y", requester="w1"))


async def test_large_frame_buffer_is_reused_only_once_no_value_uses_it() -> None:
    import trio.testing

    from ownership.core.messages import PutObject
    from ownership.runtime.framing import LARGE_FRAME, ByteReceiver, receive_frame
    from ownership.runtime.serialization import decode_message, encode_message

    async def received(value: np.ndarray) -> np.ndarray:
        send, receive = trio.testing.memory_stream_pair()
        frame = encode_message(PutObject(object_id="o/x", owner="o", value=pack(value)))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send.send_all, b"".join(bytes(c) for c in frame.chunks))
            body = await receive_frame(ByteReceiver(receive), max_frame_size=1 << 30)
        return unpack(decode_message(body).value, lambda info: info)

    n = LARGE_FRAME // 8 + 5
    first = await received(np.full(n, 1.0))
    second = await received(np.full(n, 2.0))  # the first frame's buffer is in use: not reused
    assert first[0] == 1.0 and first[-1] == 1.0 and second[0] == 2.0
    address = first.__array_interface__["data"][0]
    del first
    third = await received(np.full(n, 3.0))
    assert third.__array_interface__["data"][0] == address  # freed, so reused
    assert second[0] == 2.0 and second[-1] == 2.0 and third[-1] == 3.0


async def test_large_body_over_tcp_arrives_whole_when_nothing_follows_it() -> None:
    # The reader raises SO_RCVLOWAT while a large body arrives: it must
    # never wait for more bytes than the body still needs (here the sender
    # sends one frame in uneven pieces and then waits for our answer).
    import trio

    import functools
    import socket

    import trio.testing

    from ownership.runtime.framing import ByteReceiver, frame_header, receive_frame

    body = bytes(range(256)) * (4096 + 77)  # ~1 MiB, not a multiple of any chunk
    pieces = [frame_header(len(body)), body[:700_000], body[700_000:1_048_000], body[1_048_000:]]
    answered = trio.Event()

    async def serve(stream: trio.SocketStream) -> None:
        for piece in pieces[:-1]:
            await stream.send_all(piece)
        await trio.testing.wait_all_tasks_blocked()  # the reader took all it could: the tail comes later
        await stream.send_all(pieces[-1])
        await answered.wait()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(20):
            got = await receive_frame(ByteReceiver(stream), max_frame_size=1 << 30)
        answered.set()
        assert bytes(got) == body
        # Back to any byte: the next frame may be a few bytes and nothing after it.
        assert stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 1
        await stream.aclose()
        nursery.cancel_scope.cancel()


def test_freeing_an_object_we_own_drops_our_kept_mapping_so_the_node_can_reuse_it(store) -> None:
    import gc

    from ownership.core.messages import FreeObject
    from ownership.runtime.shm import SpareSegments

    reader, _ = worker(store)
    seg = write_segment(store.prefix + "k-1-1", serialize(ARRAY))
    _, copy = reader.incoming("n1", SegmentCopy(object_id="o/x", source="n1", segment=seg.name))
    assert copy.value is not None and np.asarray(unpack(copy.value, lambda info: info))[7] == 7.0
    del copy
    gc.collect()
    spares = SpareSegments(store.prefix, min_size=1 << 20)
    try:
        assert spares.retire(seg.name)  # the node frees its copy
        # Only our kept mapping still maps it: the node cannot reuse it yet.
        assert spares.write(store.prefix + "k-1-2", serialize(ARRAY)) is None
        assert reader.outgoing("n1", FreeObject(object_id="o/x")) == ("n1", FreeObject(object_id="o/x"))
        gc.collect()
        assert spares.write(store.prefix + "k-1-3", serialize(ARRAY + 1)) is not None
    finally:
        spares.close()
