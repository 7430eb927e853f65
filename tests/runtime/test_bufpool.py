"""The buffer pool hands out a large buffer again only once nothing refers to it."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from ownership.runtime.bufpool import BufferPool
from ownership.runtime.values import pack, snapshot, unpack

MIB = 1 << 20


def _address(view: memoryview) -> int:
    return np.frombuffer(view, dtype=np.uint8).__array_interface__["data"][0]


def test_a_buffer_is_reused_only_after_its_last_view_is_gone() -> None:
    pool = BufferPool("t", min_size=MIB, limit=64 * MIB)
    first = pool.take(3 * MIB)
    first[:4] = b"keep"
    address = _address(first)
    kept_view = first[1:3]  # a slice holds the buffer too
    del first
    second = pool.take(3 * MIB)
    assert _address(second) != address
    assert bytes(kept_view) == b"ee"
    del kept_view, second
    gc.collect()
    third = pool.take(3 * MIB)
    assert _address(third) == address  # the oldest free buffer of that size
    assert pool.stats.reused == 1 and pool.stats.fresh == 2


def test_arrays_decoded_from_a_buffer_keep_it_out_of_the_pool() -> None:
    pool = BufferPool("t", min_size=MIB, limit=64 * MIB)
    view = pool.take(2 * MIB)
    view[:] = b"\x07" * (2 * MIB)
    array = np.frombuffer(view, dtype=np.uint8)
    del view
    other = pool.take(2 * MIB)
    other[:] = b"\x09" * (2 * MIB)
    assert array[0] == 7 and array[-1] == 7  # not handed out while the array lives
    assert pool.stats.reused == 0


def test_the_limit_bounds_what_is_kept_and_idle_buffers_are_unmapped() -> None:
    pool = BufferPool("t", min_size=MIB, limit=4 * MIB, idle_seconds=10.0)
    views = [pool.take(2 * MIB) for _ in range(3)]  # the third is not kept
    assert pool.kept_bytes == 4 * MIB
    del views
    pool.trim(now=float("inf"))
    assert pool.kept_bytes == 0 and pool.stats.unmapped == 2


def test_small_requests_are_plain_memory() -> None:
    pool = BufferPool("t", min_size=MIB, limit=4 * MIB)
    small = pool.take(100)
    assert len(small) == 100 and pool.kept_bytes == 0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="min_size"):
        BufferPool("t", min_size=0, limit=MIB)


def test_a_packed_value_is_the_value_at_pack_time_even_in_reused_memory() -> None:
    array = np.arange(2 * MIB, dtype=np.uint8)
    first = pack(array)
    array[:] = 1  # the caller changes its array after passing it
    second = pack(array)
    assert unpack(first, lambda info: info)[5] == 5
    assert unpack(second, lambda info: info)[5] == 1
    snap = first.buffers[0]
    assert isinstance(snap, memoryview) and snap.readonly  # nobody writes into a snapshot
    del first
    gc.collect()
    third = pack(np.full(2 * MIB, 3, dtype=np.uint8))  # may reuse the first's memory
    assert unpack(second, lambda info: info)[5] == 1
    assert unpack(third, lambda info: info)[5] == 3


def test_snapshot_of_small_buffers_is_bytes() -> None:
    import pickle

    [copy] = snapshot([pickle.PickleBuffer(b"abc")])
    assert copy == b"abc" and type(copy) is bytes
