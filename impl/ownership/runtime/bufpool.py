"""Large buffers reused once nothing refers to them: memory already faulted in.

On the VMs here a page costs far more to fault in the first time than to
fill again (10 MiB: ~18 ms into a fresh mapping, ~1.2 ms into one already
faulted in). A process that copies large values one after the other
(frames received from a socket, snapshots of arguments passed by value)
would pay the fresh price on every copy once the allocator has handed
that memory back to the kernel. A :class:`BufferPool` keeps the large
mappings it handed out and hands one out again once nothing refers to it
any more, which is what Ray's plasma arena does for its objects.

Whether a buffer is free is read from its reference count: every view of
it (a ``memoryview`` slice, a numpy array decoded from it, a pickle buffer)
holds the mapping through the buffer protocol, so the count falls back to
what the pool itself holds only when the last view is gone. Nothing has to
be released by hand, and a value kept for a long time simply keeps its
buffer out of the pool.

Bounded twice: a pool keeps at most ``limit`` bytes, and buffers that have
been free for ``idle_seconds`` are unmapped at the next :meth:`take` or
:meth:`trim`, so a process that stops passing large values does not keep
their memory.
"""

from __future__ import annotations

import mmap
import sys
import threading
import time

import attrs

__all__ = ["BufferPool", "PoolStats", "frame_pool", "value_pool"]

_HUGE_PAGE = 2 * 1024 * 1024


@attrs.define
class PoolStats:
    reused: int = 0
    fresh: int = 0
    unmapped: int = 0


def _new_mapping(size: int) -> mmap.mmap:
    """A private anonymous mapping advised for transparent huge pages.

    Neither zero-filled by us nor faulted in 4 KiB at a time when the
    kernel has huge pages to give.
    """
    body = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        try:
            body.madvise(advice)
        except OSError:  # no transparent huge pages here: plain pages
            pass
    return body


class BufferPool:
    """Writable buffers of at least ``min_size`` bytes, reused once unreferenced.

    Thread-safe: values are packed on the loop thread and in task threads.
    """

    #: sys.getrefcount of a kept mapping that nothing else refers to: the
    #: pool's list, the loop variable and getrefcount's own argument.
    _FREE_REFS = 3

    def __init__(self, name: str, *, min_size: int, limit: int, idle_seconds: float = 30.0) -> None:
        if min_size <= 0 or limit < 0:
            raise ValueError(f"buffer pool {name}: min_size must be positive and limit non-negative")
        self.name = name
        self.min_size = min_size
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.stats = PoolStats()
        self._kept: list[mmap.mmap] = []
        #: id(mapping) -> when it was last handed out (monotonic seconds)
        self._taken_at: dict[int, float] = {}
        self._lock = threading.Lock()

    @property
    def kept_bytes(self) -> int:
        return sum(len(m) for m in self._kept)

    def take(self, nbytes: int) -> memoryview:
        """A writable view of ``nbytes`` bytes that nothing else uses.

        Its content is whatever the buffer held before: the caller fills
        all of it. Below ``min_size`` a plain ``bytearray`` is cheaper.
        """
        if nbytes < self.min_size:
            return memoryview(bytearray(nbytes))
        with self._lock:
            return self._take(nbytes)

    def _take(self, nbytes: int) -> memoryview:
        size = -(-nbytes // _HUGE_PAGE) * _HUGE_PAGE
        now = time.monotonic()
        for kept in self._kept:
            if len(kept) == size and sys.getrefcount(kept) == self._FREE_REFS:
                self.stats.reused += 1
                self._taken_at[id(kept)] = now
                return memoryview(kept)[:nbytes]
        self._trim(now)
        body = _new_mapping(size)
        self.stats.fresh += 1
        if size <= self.limit:
            room = self.limit - self.kept_bytes
            if room < size:
                room += self._drop_free(size - room)
            if room >= size:
                self._kept.append(body)
                self._taken_at[id(body)] = now
        return memoryview(body)[:nbytes]

    def trim(self, now: float | None = None) -> None:
        """Unmap the buffers that nothing has used for ``idle_seconds``."""
        with self._lock:
            self._trim(time.monotonic() if now is None else now)

    def _trim(self, now: float) -> None:
        for kept in list(self._kept):
            # + the list copy's reference
            if sys.getrefcount(kept) == self._FREE_REFS + 1 and now - self._taken_at[id(kept)] >= self.idle_seconds:
                self._unmap(kept)

    def _drop_free(self, needed: int) -> int:
        """Unmap free buffers, oldest first, until ``needed`` bytes are given back."""
        freed = 0
        for kept in list(self._kept):
            if freed >= needed:
                break
            if sys.getrefcount(kept) == self._FREE_REFS + 1:
                freed += len(kept)
                self._unmap(kept)
        return freed

    def _unmap(self, kept: mmap.mmap) -> None:
        self._kept.remove(kept)
        del self._taken_at[id(kept)]
        self.stats.unmapped += 1
        kept.close()


def _physical_memory() -> int:
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


#: Bodies of large frames received from sockets (values, object copies).
#: 256 MiB, so that a copy of a 100 MiB object reuses its frame buffer too:
#: a fresh one is fast only when the kernel has huge pages at hand, and a
#: remote get swung between 0.35 and 1.2 GB/s from one get to the next with
#: a 64 MiB bound (1.1-1.3 GB/s once warm with this one).
frame_pool = BufferPool("frames", min_size=4 << 20, limit=256 << 20, idle_seconds=30.0)

#: Snapshots of large buffers inside values passed by value (pack copies
#: them so that the caller may change the object afterwards). A burst of
#: task submissions keeps many alive at once until the tasks end (their
#: specs are the lineage), so the bound is a share of the machine's memory,
#: as Ray's object store is; idle memory goes back after 30 s.
value_pool = BufferPool("values", min_size=1 << 20, limit=min(2 << 30, _physical_memory() // 8), idle_seconds=30.0)
