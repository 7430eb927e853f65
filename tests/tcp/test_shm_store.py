"""The shared-memory object store, across real processes."""

from __future__ import annotations

import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ownership.runtime.shm import (
    SHM_DIR,
    SharedMemoryStore,
    StoreUsage,
    cleanup_leftovers,
    list_segments,
    open_segment,
    safe_key,
)

pytestmark = pytest.mark.skipif(not SHM_DIR.is_dir(), reason="needs a Linux /dev/shm to enumerate segments")


@pytest.fixture
def session() -> str:
    name = secrets.token_hex(6)
    yield name
    for seg in list_segments(f"own_{name}_"):  # whatever a failed test left
        (SHM_DIR / seg.name).unlink(missing_ok=True)


def run_python(code: str) -> subprocess.CompletedProcess:
    # -W error: a resource_tracker warning in the child fails the test too.
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_value_written_here_is_read_zero_copy_in_another_process(session):
    arr = np.arange(10 * 2**20 // 8, dtype=np.float64)
    with SharedMemoryStore(session) as store:
        info = store.put("obj1", {"arr": arr, "meta": "m"})
        child = run_python(
            f"""
            import numpy as np
            from ownership.runtime.shm import SharedMemoryStore
            store = SharedMemoryStore({session!r}, node_pid={store.node_pid})
            sv = store.get("obj1")
            value = sv.deserialize()
            a = value["arr"]
            mapping = np.frombuffer(sv.buffers[0].obj, np.uint8)  # the whole mmap
            start = mapping.ctypes.data
            inside = start <= a.ctypes.data and a.ctypes.data + a.nbytes <= start + mapping.nbytes
            print(np.shares_memory(a, mapping), inside, a.flags.writeable, a.flags.owndata, value["meta"], float(a.sum()))
            """
        )
        assert child.returncode == 0, child.stderr
        assert child.stderr == ""  # no resource_tracker noise
        assert child.stdout.split() == ["True", "True", "False", "False", "m", str(float(arr.sum()))]
        # The reader exiting did not unlink the node's segment.
        assert store.list() == [info] and "obj1" in store
        assert info.size >= arr.nbytes
        assert store.free("obj1") is True
        assert not (SHM_DIR / info.name).exists()
        assert store.free("obj1") is False


def test_value_written_by_a_worker_process_is_owned_by_the_node(session):
    with SharedMemoryStore(session) as node:
        child = run_python(
            f"""
            import numpy as np
            from ownership.runtime.shm import SharedMemoryStore
            worker_view = SharedMemoryStore({session!r}, node_pid={node.node_pid})
            info = worker_view.put("result-7", np.full(1000, 7, dtype=np.int64))
            print(info.name)
            """
        )
        assert child.returncode == 0 and child.stderr == "", child.stderr
        name = child.stdout.strip()
        assert name == node.segment_name("result-7")
        assert np.array_equal(node.get_value("result-7"), np.full(1000, 7))
        assert node.usage().segments == 1
    # Leaving the node's store unlinks what its workers wrote too.
    assert not (SHM_DIR / name).exists()


def test_reader_keeps_its_mapping_after_free(session):
    store = SharedMemoryStore(session)
    store.put("k", np.arange(100))
    value = store.get_value("k")
    store.free("k")
    assert "k" not in store
    assert int(value.sum()) == 4950  # pages stay until the last view goes


def test_list_usage_and_close(session):
    store = SharedMemoryStore(session)
    a = store.put("a", b"x" * 1000)
    b = store.put("b", np.zeros(5000))
    assert store.list() == sorted([a, b], key=lambda s: s.name)
    assert store.usage() == StoreUsage(2, a.size + b.size)
    assert sorted(store) == ["a", "b"]
    assert (a.session, a.node_pid, a.key) == (session, store.node_pid, "a")
    assert sorted(store.close()) == sorted([a.name, b.name])
    assert store.usage() == StoreUsage(0, 0)


def test_cleanup_removes_only_dead_nodes_segments(session):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    dead_store = SharedMemoryStore(session, node_pid=dead_pid)
    live_store = SharedMemoryStore(session)
    other_session = SharedMemoryStore(secrets.token_hex(6), node_pid=dead_pid)
    try:
        stale = dead_store.put("left", 1)
        kept = live_store.put("kept", 2)
        foreign = other_session.put("foreign", 3)
        assert cleanup_leftovers(session) == [stale.name]
        assert live_store.list() == [kept]
        assert other_session.list() == [foreign]
    finally:
        live_store.close()
        other_session.close()


def _zombie() -> subprocess.Popen:
    """A child that exited and that nobody reaped yet (its pid still exists)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    return proc


def test_cleanup_removes_the_segments_of_a_dead_node_not_yet_reaped(session):
    # A killed node stays a zombie until its parent reaps it: its pid still
    # exists, but it holds nothing any more.
    proc = _zombie()
    store = SharedMemoryStore(session, node_pid=proc.pid)
    try:
        stale = store.put("left", 1)
        assert cleanup_leftovers(session) == [stale.name]
    finally:
        proc.wait()


def test_existing_key_and_missing_key_raise(session):
    with SharedMemoryStore(session) as store:
        store.put("k", 1)
        with pytest.raises(FileExistsError):
            store.put("k", 2)
        assert store.get_value("k") == 1
        with pytest.raises(FileNotFoundError):
            store.get("absent")


@pytest.mark.parametrize("bad", ["", "a_b", "a/b", "x" * 201])
def test_unsafe_key_is_refused(session, bad):
    with pytest.raises(ValueError, match="object key"):
        SharedMemoryStore(session).put(bad, 1)


def test_safe_key_maps_any_id_to_a_valid_key(session):
    with SharedMemoryStore(session) as store:
        key = safe_key("w1@n1:obj/3")
        assert safe_key("w1@n1:obj/3") == key != safe_key("w1@n1:obj/4")
        store.put(key, "v")
        assert open_segment(store.segment_name(key)).deserialize() == "v"
        assert safe_key("plain-id.1") == "plain-id.1"


# -- spare segments: a freed large segment is written again once nobody maps it


def _spares(store: SharedMemoryStore, **kw):
    from ownership.runtime.shm import SpareSegments

    return SpareSegments(store.prefix, min_size=1 << 20, **kw)


def _inode(name: str) -> int:
    return (SHM_DIR / name).stat().st_ino


def test_a_freed_segment_is_reused_once_no_reader_maps_it(session: str) -> None:
    from ownership.runtime.values import serialize

    with SharedMemoryStore(session) as store:
        spares = _spares(store)
        first = store.put("a", np.full(1 << 18, 1.0))  # 2 MiB
        inode = _inode(first.name)
        reader = open_segment(first.name).deserialize()  # a process that still uses the value
        assert spares.retire(first.name)
        assert not (SHM_DIR / first.name).exists()  # nobody opens it by that name again
        with pytest.raises(FileNotFoundError):
            open_segment(first.name)
        assert spares.write(store.prefix + "b", serialize(np.full(1 << 18, 2.0))) is None  # still mapped
        assert reader[0] == 1.0 and reader[-1] == 1.0
        del reader
        info = spares.write(store.prefix + "c", serialize(np.full(1 << 18, 3.0)))
        assert info is not None and _inode(info.name) == inode and spares.reused == 1
        value = open_segment(info.name).deserialize()
        assert value[0] == 3.0 and value[-1] == 3.0
        spares.close()


def test_a_reader_in_another_process_holds_a_segment_until_it_unmaps(session: str) -> None:
    import os
    import signal

    from ownership.runtime.values import serialize

    with SharedMemoryStore(session) as store:
        spares = _spares(store)
        seg = store.put("a", np.full(1 << 18, 1.0))
        code = textwrap.dedent(f"""
            import sys
            from ownership.runtime.shm import open_segment
            value = open_segment({seg.name!r}).deserialize()
            print("mapped", flush=True)
            sys.stdin.read()  # until the test kills it
        """)
        with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
            try:
                assert child.stdout.readline().strip() == "mapped"
                assert spares.retire(seg.name)
                assert spares.write(store.prefix + "b", serialize(np.full(1 << 18, 2.0))) is None
                os.kill(child.pid, signal.SIGKILL)  # a dead reader's lock goes with it
                child.wait(timeout=30)
                assert spares.write(store.prefix + "c", serialize(np.full(1 << 18, 3.0))) is not None
            finally:
                child.kill()
                spares.close()


def test_spares_are_bounded_and_unlinked_when_idle(session: str) -> None:
    with SharedMemoryStore(session) as store:
        spares = _spares(store, limit=5 << 20, idle_seconds=10.0)
        names = [store.put(str(i), np.zeros(1 << 18)).name for i in range(3)]  # 2 MiB each
        small = store.put("small", np.zeros(10)).name
        assert not spares.retire(small) and not (SHM_DIR / small).exists()  # small: just unlinked
        for name in names:
            assert spares.retire(name)
        assert spares.kept_bytes <= 5 << 20 and len(store.list()) == 2  # the oldest went
        assert store.usage() == StoreUsage(0, 0)  # spares hold no values
        spares.trim(now=float("inf"))
        assert spares.kept_bytes == 0 and store.list() == []


# -- frames received straight into segments (FrameSegments) --------------------


def _received(frames, msg):
    """``msg`` as a node receives it: its frame body written into a buffer
    ``frames`` hands out (as the socket would), then decoded."""
    from ownership.runtime.serialization import decode_message, encode_message

    encoded = encode_message(msg)
    body = b"".join(bytes(c) for c in encoded.chunks)[8:]  # without the length header
    buf = frames.buffer(len(body))
    assert buf is not None
    buf[:] = body
    return decode_message(buf)


def _copy_of(array, object_id: str = "o1"):
    from ownership.core.messages import ObjectCopy
    from ownership.runtime.values import pack

    return ObjectCopy(object_id=object_id, value=pack(array))


def test_a_frame_received_into_a_segment_becomes_the_copy_in_place(session: str) -> None:
    from ownership.runtime.shm import FRAME_HEAD, FrameSegments

    array = np.arange(1 << 20, dtype=np.float64)  # 8 MiB
    with SharedMemoryStore(session) as store:
        frames = FrameSegments(store.prefix, min_size=1 << 20)
        got = _received(frames, _copy_of(array))
        name = frames.adopt(got.value.data, got.value.buffers)
        assert name is not None and name.startswith(store.prefix) and frames.adopted == 1
        # The buffers stayed where the socket put them: the segment is the frame, no second copy.
        assert (SHM_DIR / name).stat().st_size < FRAME_HEAD + array.nbytes + 4096
        code = f"""
            import numpy as np
            from ownership.runtime.shm import open_segment
            value = open_segment({name!r}).deserialize()
            assert value.dtype == np.float64 and value.shape == ({array.size},), value
            assert value[0] == 0.0 and value[-1] == {float(array[-1])!r} and float(value.sum()) == {float(array.sum())!r}
            print("ok")
        """
        result = run_python(code)
        assert result.stdout.strip() == "ok", result.stderr
        del got
        assert (SHM_DIR / name).exists()  # adopted: the node frees it, not the frame's end


def test_a_frame_nobody_adopts_is_written_again_once_its_last_view_goes(session: str) -> None:
    from ownership.runtime.shm import FrameSegments

    with SharedMemoryStore(session) as store:
        frames = FrameSegments(store.prefix, min_size=1 << 20)
        got = _received(frames, _copy_of(np.ones(1 << 18)))
        [name] = [seg.name for seg in store.list()]
        array = pickle_loads(got.value)
        del got
        frames.trim()
        assert [seg.name for seg in store.list()] == [name]  # the array still uses the frame's pages
        second = _received(frames, _copy_of(np.full(1 << 18, 2.0)))
        assert frames.reused == 0 and array[0] == 1.0  # not written over
        del array, second
        frames.trim()
        assert store.usage() == StoreUsage(0, 0)  # free segments hold no values
        third = _received(frames, _copy_of(np.full(1 << 18, 3.0)))
        assert frames.reused == 1 and pickle_loads(third.value)[-1] == 3.0
        frames.close()
        assert store.list() == []


def pickle_loads(payload):
    import pickle

    return pickle.loads(payload.data, buffers=payload.buffers)


def test_an_adopted_segment_is_written_again_once_freed_and_unmapped_everywhere(session: str) -> None:
    from ownership.runtime.shm import FrameSegments

    with SharedMemoryStore(session) as store:
        frames = FrameSegments(store.prefix, min_size=1 << 20)
        first = _received(frames, _copy_of(np.full(1 << 18, 1.0)))
        name = frames.adopt(first.value.data, first.value.buffers)
        inode = _inode(name)
        code = textwrap.dedent(f"""
            import sys
            from ownership.runtime.shm import open_segment
            value = open_segment({name!r}).deserialize()
            print("mapped", float(value[0]), flush=True)
            sys.stdin.read()  # until the test kills it
        """)
        with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
            try:
                assert child.stdout.readline().strip() == "mapped 1.0"
                assert frames.retire(name) and not (SHM_DIR / name).exists()
                del first  # the node's copy is gone; the other process still maps it
                second = _received(frames, _copy_of(np.full(1 << 18, 2.0), "o2"))
                assert frames.reused == 0 and _inode(frames.adopt(second.value.data, second.value.buffers)) != inode
                child.kill()  # its lock goes with it
                child.wait(timeout=30)
                third = _received(frames, _copy_of(np.full(1 << 18, 3.0), "o3"))
                name3 = frames.adopt(third.value.data, third.value.buffers)
                assert frames.reused == 1 and _inode(name3) == inode and name3 != name
                assert float(open_segment(name3).deserialize().sum()) == 3.0 * (1 << 18)
            finally:
                child.kill()
                frames.close()


def test_a_value_not_all_in_one_received_frame_is_not_adopted(session: str) -> None:
    from ownership.runtime.shm import FrameSegments

    with SharedMemoryStore(session) as store:
        frames = FrameSegments(store.prefix, min_size=1 << 20)
        heap = memoryview(np.ones(1 << 18)).cast("B")
        assert frames.adopt(b"x", (heap,)) is None  # not received here
        assert frames.adopt(b"x", ()) is None  # nothing out of band
        got = _received(frames, _copy_of(np.ones(1 << 18)))
        assert frames.adopt(b"not the stream", got.value.buffers) is None  # the stream is not where it belongs
        assert frames.adopt(got.value.data, got.value.buffers) is not None
        assert frames.adopt(got.value.data, got.value.buffers) is None  # one value per frame segment


def test_a_placed_header_pointing_outside_its_buffer_is_refused() -> None:
    from ownership.runtime.framing import FrameError
    from ownership.runtime.values import placed_header, placed_header_size, serialized_from_buffer

    size = 4096
    good = bytearray(size)
    good[: placed_header_size(1)] = placed_header([(100, 10), (128, 64)])
    value = serialized_from_buffer(memoryview(good))
    assert len(value.data) == 10 and [len(b) for b in value.buffers] == [64]
    for parts in ([(100, 10), (4090, 64)], [(0, 10), (128, 64)]):
        bad = bytearray(size)
        bad[: placed_header_size(1)] = placed_header(parts)
        with pytest.raises(FrameError):
            serialized_from_buffer(memoryview(bad))
    truncated = bytearray(placed_header([(100, 10), (128, 64)])[:20])
    with pytest.raises(FrameError):
        serialized_from_buffer(memoryview(truncated))
