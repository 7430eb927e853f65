"""The per-node shared-memory object store for large values.

A large value lives in one POSIX shared-memory segment, laid out by
:func:`~ownership.runtime.values.serialized_layout` (the pickle stream
and its out-of-band buffers, each 64-byte aligned). Any process on the node
maps the segment read-only and unpickles from the mapping, so a numpy array
it gets is backed by the shared pages: no copy, not through the owner and
not through the node. Values are immutable once written.

Why not ``multiprocessing.shared_memory.SharedMemory``: on Python < 3.13 it
registers every segment it *opens* with the resource tracker, which unlinks
the segment when the opening process exits (and warns about "leaked"
segments) -- a reader would destroy the node's object. We call the same
``shm_open`` / ``shm_unlink`` primitives directly and track nothing: the node
owns its segments, and frees them explicitly.

Naming: ``own_<session>_<pid>_<key>``, where ``pid`` is the node process that
owns the segment (workers write segments under their node's prefix; the node
then owns them). So a node removes everything of its own at shutdown, and a
node starting up removes the leftovers of dead nodes of its session
(:func:`cleanup_leftovers`), even if a worker died between writing a
segment and reporting it.

Reuse (:class:`SpareSegments`): on the VMs here, filling a new segment
costs mostly the allocation of its pages (a 100 MiB copy: ~60 ms into a
new segment, a fraction of that into pages that exist). So the node keeps
large segments of freed objects as spares and writes the next copy into one,
but only once no process maps it any more. Who maps a segment is tracked
by the kernel: a reader takes an open-file-description read lock
(``F_OFD_SETLK``) before it maps a segment and closes its descriptor after;
the lock lives with the mapping (the mapping holds the open file) and goes
when the mapping does, or when the reader dies. The node reuses a spare only
once its write lock is granted. A spare never gets its old name back (names
are fresh per copy), and a reader checks, once it holds its lock, that the
name it opened still names the file it locked.

Nodes of one machine (:func:`link_segment`): a node that pulls a copy from
another node sharing its ``/dev/shm`` takes the other's segment under a
name of its own, a hard link, instead of receiving its bytes: both nodes
then keep the same pages, each under its own prefix, and each frees its
name. The reuse rules above cover it: while either node maps the file, the
other cannot take it as a spare.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import mmap
import os
import re
import struct
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import attrs

from .values import SerializedValue, placed_header, serialize, serialized_from_buffer, serialized_layout
from .pids import pid_alive

try:
    import _posixshmem
except ImportError:  # pragma: no cover - Windows
    _posixshmem = None

__all__ = [
    "SHM_DIR",
    "SegmentInfo",
    "SharedMemoryStore",
    "SpareSegments",
    "StoreUsage",
    "cleanup_leftovers",
    "link_segment",
    "list_segments",
    "open_segment",
    "safe_key",
    "unlink_segment",
    "write_segment",
]

SHM_DIR = Path("/dev/shm")
_NAME_PART = re.compile(r"[A-Za-z0-9.-]{1,200}")
_SEGMENT = re.compile(r"own_(?P<session>[A-Za-z0-9.-]+)_(?P<pid>\d+)_(?P<key>[A-Za-z0-9.-]+)")


def _require_posix() -> Any:
    if _posixshmem is None:  # pragma: no cover
        raise OSError("POSIX shared memory is not available on this platform")
    return _posixshmem


@attrs.frozen
class SegmentInfo:
    name: str
    size: int

    @property
    def session(self) -> str:
        return _parse(self.name)[0]

    @property
    def node_pid(self) -> int:
        return _parse(self.name)[1]

    @property
    def key(self) -> str:
        return _parse(self.name)[2]


@attrs.frozen
class StoreUsage:
    segments: int
    bytes: int


def _parse(name: str) -> tuple[str, int, str]:
    m = _SEGMENT.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not an ownership segment name")
    return m["session"], int(m["pid"]), m["key"]


def _check_part(what: str, value: str) -> str:
    if not _NAME_PART.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be 1-200 characters of [A-Za-z0-9.-]")
    return value


def write_segment(name: str, value: SerializedValue) -> SegmentInfo:
    """Create segment ``name`` holding ``value``; FileExistsError if it exists.

    Written with ``pwrite`` rather than through a mapping: a full /dev/shm
    then fails with ENOSPC here instead of killing us with SIGBUS later.
    A failed write leaves no segment behind.
    """
    shm = _require_posix()
    fd = shm.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    try:
        size = _write_value(fd, value)
    except BaseException:
        shm.shm_unlink("/" + name)
        raise
    finally:
        os.close(fd)
    return SegmentInfo(name, size)


def _write_value(fd: int, value: SerializedValue) -> int:
    """Lay ``value`` out in the file ``fd`` (resized to fit); its size."""
    size, writes = serialized_layout(value)
    os.ftruncate(fd, size)
    for offset, chunk in writes:
        view = memoryview(chunk).cast("B")
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written
    return size


#: Linux: fault the whole mapping in at mmap time (one call) instead of
#: one page fault per 4 KiB page as the reader touches it.
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
#: Larger values are mapped lazily even when ``populate`` is asked: a reader
#: may touch a small part of them (100 MiB populated: 10-20 ms of the
#: driver's CPU in a remote get that reads 4 bytes of it).
POPULATE_MAX = 32 * 1024 * 1024


#: Linux open-file-description locks; elsewhere no segment is ever reused.
_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", None)


def _ofd_lock(fd: int, kind: int) -> bool:
    """Lock all of ``fd``'s file (F_RDLCK or F_WRLCK) without waiting: False if refused."""
    assert _OFD_SETLK is not None
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padding
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)
    try:
        fcntl.fcntl(fd, _OFD_SETLK, request)
    except (BlockingIOError, PermissionError):
        return False
    return True


def open_segment(name: str, *, populate: bool = False) -> SerializedValue:
    """Map segment ``name`` read-only; the value's buffers are views of the mapping.

    The mapping lives as long as any view of it (any array unpickled from
    it); unlinking the segment meanwhile is safe, the pages go when the last
    mapping does. While it lives, the node does not reuse the segment (the
    read lock, see the module's doc). ``populate`` maps every page of a
    segment up to POPULATE_MAX at once, for a reader that will read the
    value: page by page, the faults cost several times more on the VMs here
    (10 MiB read with a stride of a page: 1-6 ms faulting page by page,
    0.1 ms after a 0.9 ms MAP_POPULATE).

    FileNotFoundError when the segment is gone, or is being reused.
    """
    shm = _require_posix()
    fd = shm.shm_open("/" + name, os.O_RDONLY, mode=0)
    try:
        if _OFD_SETLK is not None:
            if not _ofd_lock(fd, fcntl.F_RDLCK):
                raise FileNotFoundError(f"segment {name} is being reused")
            try:
                same = os.stat(SHM_DIR / name).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # freed and renamed a spare between our open and our lock
                raise FileNotFoundError(f"segment {name} was freed")
        size = os.fstat(fd).st_size
        flags = mmap.MAP_SHARED | (_POPULATE if populate and size <= POPULATE_MAX else 0)
        mapping = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    return serialized_from_buffer(memoryview(mapping))


def link_segment(source: str, name: str) -> SerializedValue:
    """Segment ``source`` (another node's, on this machine) under the second
    name ``name`` too, mapped read-only as :func:`open_segment` maps it.

    No byte moves: both names are the same file, and its pages live until
    the last name and mapping are gone, so the copy outlives ``source``'s
    node. Safe against reuse because the link is made while we hold a read
    lock on the file ``source`` names, and our mapping (with its own lock)
    is taken before that lock is let go: ``source``'s node cannot write the
    file again while either lock lives. FileNotFoundError when ``source`` is
    gone or being reused, FileExistsError when ``name`` exists.
    """
    shm = _require_posix()
    fd = shm.shm_open("/" + source, os.O_RDONLY, mode=0)
    try:
        if _OFD_SETLK is not None and not _ofd_lock(fd, fcntl.F_RDLCK):
            raise FileNotFoundError(f"segment {source} is being reused")
        inode = os.fstat(fd).st_ino
        os.link(SHM_DIR / source, SHM_DIR / name)
        try:
            # Renamed (freed) between our open and our link: the name we
            # linked is another file, or none.
            if os.stat(SHM_DIR / name).st_ino != inode:
                raise FileNotFoundError(f"segment {source} was freed")
            return open_segment(name)
        except BaseException:
            unlink_segment(name)
            raise
    finally:
        os.close(fd)


def unlink_segment(name: str) -> bool:
    """Remove segment ``name``; False if it was already gone."""
    try:
        _require_posix().shm_unlink("/" + name)
    except FileNotFoundError:
        return False
    return True


def list_segments(prefix: str = "own_") -> list[SegmentInfo]:
    """Segments on this machine whose name starts with ``prefix`` (Linux: /dev/shm)."""
    if not SHM_DIR.is_dir():  # pragma: no cover - no enumerable shm namespace
        return []
    found = []
    with os.scandir(SHM_DIR) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and _SEGMENT.fullmatch(entry.name):
                try:
                    found.append(SegmentInfo(entry.name, entry.stat().st_size))
                except FileNotFoundError:
                    continue  # freed while we looked
    return sorted(found, key=lambda s: s.name)


def cleanup_leftovers(session: str) -> list[str]:
    """Unlink the segments of ``session`` whose node process is dead; returns their names."""
    removed = []
    for seg in list_segments(f"own_{_check_part('session', session)}_"):
        if not pid_alive(seg.node_pid) and unlink_segment(seg.name):
            removed.append(seg.name)
    return removed


class SharedMemoryStore:
    """The shared-memory segments of one node, under ``own_<session>_<pid>_``.

    The node process makes one with its own pid and frees segments when the
    protocol frees their objects; a worker on the node makes one with the
    node's pid (``node_pid``) to write a value it produced or to read one.
    ``close()`` (or leaving the ``with`` block) unlinks every segment of the
    node, including those written by its workers.
    """

    def __init__(self, session: str, node_pid: int | None = None) -> None:
        self.session = _check_part("session", session)
        self.node_pid = os.getpid() if node_pid is None else node_pid
        self.prefix = f"own_{self.session}_{self.node_pid}_"

    def segment_name(self, key: str) -> str:
        return self.prefix + _check_part("object key", key)

    def put(self, key: str, value: Any) -> SegmentInfo:
        """Store ``value`` (a SerializedValue, or any object to serialize) under ``key``."""
        if not isinstance(value, SerializedValue):
            value = serialize(value)
        return write_segment(self.segment_name(key), value)

    def get(self, key: str) -> SerializedValue:
        """The value under ``key``, zero-copy; FileNotFoundError if there is none."""
        return open_segment(self.segment_name(key))

    def get_value(self, key: str) -> Any:
        return self.get(key).deserialize()

    def __contains__(self, key: str) -> bool:
        return (SHM_DIR / self.segment_name(key)).exists()

    def free(self, key: str) -> bool:
        return unlink_segment(self.segment_name(key))

    def list(self) -> list[SegmentInfo]:
        return list_segments(self.prefix)

    def __iter__(self) -> Iterator[str]:
        return (seg.key for seg in self.list())

    def usage(self) -> StoreUsage:
        """Segments holding values (spares kept for reuse, and the segments
        of arguments passed by value, are not counted)."""
        segments = [s for s in self.list() if not s.key.startswith(("spare.", "arg."))]
        return StoreUsage(len(segments), sum(s.size for s in segments))

    def close(self) -> list[str]:
        """Unlink every segment of this node; returns their names."""
        return [seg.name for seg in self.list() if unlink_segment(seg.name)]

    def __enter__(self) -> SharedMemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@attrs.define(eq=False)
class _Spare:
    name: str
    fd: int
    size: int
    since: float
    locked: bool  # we hold its write lock: nobody maps it


class SpareSegments:
    """Large segments of freed objects, kept to write the next copies into.

    ``retire`` takes a freed segment in place of unlinking it (renamed, so
    nobody opens it by its old name again); ``write`` puts a value into a
    spare that no process maps any more, under the value's new name.
    Bounded by ``limit`` bytes; spares unused for ``idle_seconds`` are
    unlinked at the next ``retire``, ``write`` or ``trim``.
    """

    def __init__(self, prefix: str, *, min_size: int = 8 << 20, limit: int = 512 << 20, idle_seconds: float = 30.0) -> None:
        self.prefix = prefix
        self.min_size = min_size
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.enabled = _OFD_SETLK is not None and _posixshmem is not None
        self.reused = 0
        self._spares: list[_Spare] = []
        self._names = itertools.count(1)

    @property
    def kept_bytes(self) -> int:
        return sum(s.size for s in self._spares)

    def retire(self, name: str) -> bool:
        """Segment ``name`` is freed: keep it as a spare (True) or unlink it (False)."""
        path = SHM_DIR / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        if not self.enabled or size < self.min_size or size > self.limit:
            unlink_segment(name)
            return False
        spare_name = f"{self.prefix}spare.{next(self._names)}-{os.getpid()}-0"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            locked = _ofd_lock(fd, fcntl.F_WRLCK)
            # From now on no reader gets it by its old name (a reader that
            # opened it already finds the name gone once it holds its lock).
            os.rename(path, SHM_DIR / spare_name)
        except OSError:
            os.close(fd)
            unlink_segment(name)
            return False
        self._spares.append(_Spare(spare_name, fd, size, time.monotonic(), locked))
        self._bound(time.monotonic())
        return True

    def write(self, name: str, value: SerializedValue) -> SegmentInfo | None:
        """``value`` in a free spare renamed ``name``; None when no spare fits.

        The smallest spare that holds ``value`` and that no process maps
        any more; a spare is at most twice the value's size, so a small copy
        does not tie up a large segment.
        """
        need, _ = serialized_layout(value)
        fd = self.take(name, need)
        if fd is None:
            return None
        try:
            size = _write_value(fd, value)
        except OSError:
            unlink_segment(name)
            raise
        finally:
            os.close(fd)  # releases our write lock: readers may map it now
        return SegmentInfo(name, size)

    def take(self, name: str, need: int) -> int | None:
        """A free spare of ``need`` to ``2 * need`` bytes, renamed ``name``: its
        descriptor, holding the write lock (the caller closes it); None when
        no spare fits."""
        now = time.monotonic()
        self._bound(now)
        for spare in sorted(self._spares, key=lambda s: s.size):
            if not need <= spare.size <= 2 * need:
                continue
            if not spare.locked:
                spare.locked = _ofd_lock(spare.fd, fcntl.F_WRLCK)
                if not spare.locked:
                    continue  # still mapped somewhere
            self._spares.remove(spare)
            try:
                os.rename(SHM_DIR / spare.name, SHM_DIR / name)
            except OSError:
                self._drop(spare)
                os.close(spare.fd)
                raise
            self.reused += 1
            return spare.fd
        return None

    def trim(self, now: float | None = None) -> None:
        """Unlink the spares unused for ``idle_seconds``."""
        self._bound(time.monotonic() if now is None else now)

    def close(self) -> None:
        for spare in list(self._spares):
            self._spares.remove(spare)
            self._drop(spare)
            os.close(spare.fd)

    def _bound(self, now: float) -> None:
        for spare in list(self._spares):
            if now - spare.since >= self.idle_seconds:
                self._spares.remove(spare)
                self._drop(spare)
                os.close(spare.fd)
        while self._spares and self.kept_bytes > self.limit:
            spare = self._spares.pop(0)  # the oldest
            self._drop(spare)
            os.close(spare.fd)

    @staticmethod
    def _drop(spare: _Spare) -> None:
        unlink_segment(spare.name)


def safe_key(object_id: str) -> str:
    """A segment key for any object id: the id itself if it is name-safe, else a digest."""
    if _NAME_PART.fullmatch(object_id):
        return object_id
    return hashlib.sha256(object_id.encode()).hexdigest()[:40]


#: Bytes reserved before a frame received into a segment, for the header
#: that :meth:`FrameSegments.adopt` writes there (up to 250 buffers).
FRAME_HEAD = 4096


def _address(buf: Any) -> int:
    """Where ``buf``'s memory starts (read-only buffers too): the ``buf``
    pointer the buffer protocol hands out, as C code would read it."""
    import ctypes

    api = ctypes.pythonapi
    if not getattr(_address, "ready", False):
        api.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
        api.PyObject_GetBuffer.restype = ctypes.c_int
        api.PyBuffer_Release.argtypes = [ctypes.c_void_p]
        api.PyBuffer_Release.restype = None
        _address.ready = True  # type: ignore[attr-defined]
    # A Py_buffer (its first field is the pointer), with room to spare.
    view = (ctypes.c_char * 256)()
    if api.PyObject_GetBuffer(buf, ctypes.addressof(view), 0) != 0:  # pragma: no cover - raises instead
        raise ValueError("no buffer")
    try:
        return int(ctypes.c_void_p.from_buffer(view).value or 0)
    finally:
        api.PyBuffer_Release(ctypes.addressof(view))


@attrs.define(eq=False)
class _Received:
    name: str
    fd: int
    mapping: mmap.mmap
    base: int  # address of the mapping's first byte
    since: float
    adopted: bool = False  # a stored copy: the node frees it (retire)
    pooled: bool = False  # free: written again by a later frame


class FrameSegments:
    """Large frame bodies received straight into segments of a node, kept mapped.

    A copy of an object from another node (or the bytes of a remote
    driver's put) received into a heap buffer and then written into a
    segment would take two passes over the value, the second the slower one
    (``pwrite`` into shared memory: ~30 ms per 100 MiB into existing pages,
    ~40 ms into new ones, against ~14 ms for a memcpy). :meth:`buffer` hands
    the transport a writable mapping of a segment, with :data:`FRAME_HEAD`
    bytes reserved before the body. If the frame is a value the store
    keeps, :meth:`adopt` writes a placed header
    (:func:`~.values.placed_header`) into that head and the segment becomes
    the copy, by its name; readers map it as any other.

    The segments and their mappings are kept and written again (mapping 100
    MiB with its pages costs ~5 ms, unmapping it ~2): a segment is free
    again once the store freed its copy (:meth:`retire`), or at once for a
    frame nobody adopted, and is reused once nothing here refers to its
    mapping (the reference count) and no other process maps it (its write
    lock is granted, as for :class:`SpareSegments`). A reused segment gets a
    new name first, so a reader never opens new content under an old name.
    New segments have their pages allocated up front, so a full ``/dev/shm``
    fails here with ENOSPC rather than with SIGBUS in the middle of a
    receive. Bounded by ``limit`` bytes of free segments; those free for
    ``idle_seconds`` are unlinked at the next :meth:`buffer` or :meth:`trim`.
    """

    #: sys.getrefcount of a kept mapping nothing else refers to: its
    #: record's field and getrefcount's argument.
    _FREE_REFS = 2

    def __init__(
        self,
        prefix: str,
        spares: SpareSegments | None = None,
        *,
        min_size: int = 4 << 20,
        limit: int = 512 << 20,
        idle_seconds: float = 30.0,
    ) -> None:
        self.prefix = prefix
        self.spares = spares
        self.min_size = min_size
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.enabled = _OFD_SETLK is not None and _posixshmem is not None
        self.received = 0
        self.adopted = 0
        self.reused = 0
        self._names = itertools.count(1)
        self._kept: list[_Received] = []

    def _free(self, record: _Received) -> bool:
        import sys

        return sys.getrefcount(record.mapping) <= self._FREE_REFS

    def buffer(self, length: int) -> memoryview | None:
        """A writable buffer for a frame body of ``length`` bytes in a segment;
        None when the frame is small or shared memory fails (the caller uses
        its heap then)."""
        if length < self.min_size or not self.enabled:
            return None
        need = FRAME_HEAD + length
        now = time.monotonic()
        self._collect(now)
        record = self._reuse(need)
        if record is None:
            record = self._create(need)
            if record is None:
                return None
        record.since = now
        self.received += 1
        return memoryview(record.mapping)[FRAME_HEAD:need]

    def _reuse(self, need: int) -> _Received | None:
        for record in sorted((r for r in self._kept if r.pooled), key=lambda r: len(r.mapping)):
            if not need <= len(record.mapping) <= 2 * need or not self._free(record):
                continue
            if not _ofd_lock(record.fd, fcntl.F_WRLCK):
                continue  # another process still maps it
            name = self._name("rx")
            try:
                os.rename(SHM_DIR / record.name, SHM_DIR / name)
            except OSError:
                self._drop(record)
                continue
            _ofd_lock(record.fd, fcntl.F_UNLCK)
            record.name, record.pooled, record.adopted = name, False, False
            self.reused += 1
            return record
        return None

    def _create(self, need: int) -> _Received | None:
        name = self._name("rx")
        fd = None
        try:
            fd = self.spares.take(name, need) if self.spares is not None else None
            if fd is None:
                fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
                os.posix_fallocate(fd, 0, need)
            else:
                _ofd_lock(fd, fcntl.F_UNLCK)  # the spare's write lock: nobody knows the new name yet
            size = os.fstat(fd).st_size
            mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError):
            if fd is not None:
                os.close(fd)
            unlink_segment(name)
            return None
        record = _Received(name, fd, mapping, _address(mapping), time.monotonic())
        self._kept.append(record)
        return record

    def _name(self, kind: str) -> str:
        return f"{self.prefix}{kind}.{next(self._names)}-{os.getpid()}-0"

    def _collect(self, now: float) -> None:
        """Frames nobody adopted are free once unused; bound the free ones."""
        for record in list(self._kept):
            if not record.adopted and not record.pooled and self._free(record):
                self._pool(record)
        for record in list(self._kept):
            if record.pooled and now - record.since >= self.idle_seconds and self._free(record):
                self._drop(record)
        free = [r for r in self._kept if r.pooled]
        while free and sum(len(r.mapping) for r in free) > self.limit:
            self._drop(free.pop(0))

    def _pool(self, record: _Received) -> None:
        """Free for reuse under a spare's name (not counted as a stored value)."""
        name = self._name("spare.f")
        try:
            os.rename(SHM_DIR / record.name, SHM_DIR / name)
        except OSError:
            self._drop(record)
            return
        record.name, record.pooled, record.adopted = name, True, False
        record.since = time.monotonic()

    def retire(self, name: str) -> bool:
        """The store freed the copy in segment ``name``: keep it for reuse if it
        is one of ours (True), else leave it to the caller (False)."""
        for record in self._kept:
            if record.name == name and record.adopted:
                self._pool(record)
                self._collect(time.monotonic())
                return True
        return False

    def trim(self, now: float | None = None) -> None:
        self._collect(time.monotonic() if now is None else now)

    def _drop(self, record: _Received) -> None:
        if record in self._kept:
            self._kept.remove(record)
        unlink_segment(record.name)
        os.close(record.fd)
        try:
            record.mapping.close()
        except BufferError:  # a value still uses its pages: they go with it
            pass

    def close(self) -> None:
        for record in list(self._kept):
            self._drop(record)

    def adopt(self, data: bytes, buffers: tuple[Any, ...]) -> str | None:
        """The segment a value received in a frame lies in, made its copy:
        its name, or None if the value is not all in one received segment
        (then the caller writes a segment as before)."""
        if not buffers or len(buffers) > (FRAME_HEAD - 8) // 16 - 1:
            return None
        record = None
        parts: list[tuple[int, int]] = []
        try:
            for b in buffers:
                view = memoryview(b)
                owner = view.obj
                found = next((r for r in self._kept if r.mapping is owner), None)
                if found is None or (record is not None and found is not record) or not view.c_contiguous:
                    return None
                record = found
                start = _address(view) - record.base
                if not 0 <= start <= len(record.mapping) - view.nbytes:
                    return None
                parts.append((start, view.nbytes))
        except ValueError:
            return None
        assert record is not None
        if record.adopted or record.pooled:
            return None  # a second value of the same frame: it gets a segment of its own
        # The stream was copied out of the frame on decoding (pickle wants
        # bytes), but it is still there, just before the first buffer (the
        # encoder puts a payload's stream and buffers one after the other,
        # each at a 64-byte aligned offset).
        stream_at = parts[0][0] - (len(data) + (-len(data) % 64))
        header = placed_header([(stream_at, len(data)), *parts])
        if stream_at < len(header):
            return None
        view = memoryview(record.mapping)
        try:
            if view[stream_at : stream_at + len(data)] != data:
                return None
            view[: len(header)] = header
        finally:
            view.release()
        record.adopted = True
        self.adopted += 1
        return record.name


@attrs.define(eq=False)
class _Pooled:
    fd: int
    mapping: mmap.mmap
    name: str
    since: float


class ArgumentSegments:
    """Segments a process writes the values it passes by value into, reused.

    A large argument passed by value is copied when the task is submitted
    (the caller may change the array afterwards). Copied into a segment of
    the node's, it can go to a worker of the same node by name instead of
    through a socket (the sender's write and tag, the worker's read and
    check: three more passes over it), as Ray's plasma store takes its
    arguments. The copy itself is the one pass left, so the segments are
    kept mapped (pages faulted in once) and written again: a segment is
    reused once nothing here refers to its mapping (the reference count, as
    :class:`~.bufpool.BufferPool`) and no reader maps it (its write lock is
    granted, as for :class:`SpareSegments`). A reused segment gets a new
    name first, so a reader never opens new content under an old name.

    Bounded by ``limit`` bytes; segments unused for ``idle_seconds`` are
    unlinked at the next :meth:`write` or :meth:`trim`.
    """

    #: sys.getrefcount of a kept mapping that nothing else refers to: its
    #: record's field and getrefcount's argument.
    _FREE_REFS = 2

    def __init__(self, prefix: str, *, limit: int = 2 << 30, idle_seconds: float = 30.0) -> None:
        self.prefix = prefix
        self.limit = limit
        self.idle_seconds = idle_seconds
        self.enabled = _OFD_SETLK is not None and _posixshmem is not None
        self.reused = 0
        self.fresh = 0
        self._kept: list[_Pooled] = []
        self._names = itertools.count(1)
        # Arguments are packed on the loop thread and in task threads.
        self._lock = threading.Lock()

    @property
    def kept_bytes(self) -> int:
        return sum(len(p.mapping) for p in self._kept)

    def _name(self) -> str:
        return f"{self.prefix}arg.{next(self._names)}-{os.getpid()}-0"

    def _free(self, pooled: _Pooled) -> bool:
        import sys

        return sys.getrefcount(pooled.mapping) <= self._FREE_REFS

    def write(self, value: SerializedValue) -> tuple[str, SerializedValue] | None:
        """``value`` copied into a segment: its name and the copy (read-only
        views of our mapping); None when shared memory fails."""
        if not self.enabled:
            return None
        with self._lock:
            return self._write(value)

    def _write(self, value: SerializedValue) -> tuple[str, SerializedValue] | None:
        now = time.monotonic()
        self._bound(now)
        need, writes = serialized_layout(value)
        chosen = None
        for pooled in self._kept:
            size = len(pooled.mapping)
            if need <= size <= 2 * need and self._free(pooled):
                if _ofd_lock(pooled.fd, fcntl.F_WRLCK):  # no reader maps it
                    chosen = pooled
                    break
        try:
            if chosen is not None:
                name = self._name()
                os.rename(SHM_DIR / chosen.name, SHM_DIR / name)
                chosen.name = name
                self.reused += 1
            else:
                chosen = self._create(need)
                if chosen is None:
                    return None
            chosen.since = now
            view = memoryview(chosen.mapping)
            for offset, chunk in writes:
                part = memoryview(chunk).cast("B")
                view[offset : offset + part.nbytes] = part
            del view, part
        except OSError:
            if chosen is not None:
                self._drop(chosen)
            return None
        finally:
            if chosen is not None and chosen in self._kept:
                _ofd_lock(chosen.fd, fcntl.F_UNLCK)  # readers may map it now
        copy = serialized_from_buffer(memoryview(chosen.mapping).toreadonly()[:need])
        return chosen.name, copy

    def _create(self, need: int) -> _Pooled | None:
        name = self._name()
        try:
            fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
        except OSError:
            return None
        try:
            os.posix_fallocate(fd, 0, need)  # ENOSPC here, not SIGBUS while copying
            mapping = mmap.mmap(fd, need, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            _ofd_lock(fd, fcntl.F_WRLCK)
        except (OSError, ValueError):
            os.close(fd)
            unlink_segment(name)
            return None
        pooled = _Pooled(fd, mapping, name, time.monotonic())
        self.fresh += 1
        # Kept even over the limit while in use (a burst of submissions):
        # the free ones beyond it go at the next write or trim.
        self._bound(time.monotonic(), room=need)
        self._kept.append(pooled)
        return pooled

    def owner_of(self, buf: Any) -> str | None:
        """The name of the kept segment ``buf`` is a view of (None: not ours)."""
        owner = memoryview(buf).obj
        with self._lock:
            for pooled in self._kept:
                if pooled.mapping is owner:
                    return pooled.name
        return None

    def trim(self, now: float | None = None) -> None:
        with self._lock:
            self._bound(time.monotonic() if now is None else now)

    def _bound(self, now: float, room: int = 0) -> None:
        for pooled in list(self._kept):
            if now - pooled.since >= self.idle_seconds and self._free(pooled):
                self._drop(pooled)
        for pooled in list(self._kept):
            if self.kept_bytes + room <= self.limit:
                break
            if self._free(pooled):
                self._drop(pooled)

    def _drop(self, pooled: _Pooled) -> None:
        if pooled in self._kept:
            self._kept.remove(pooled)
        unlink_segment(pooled.name)
        os.close(pooled.fd)
        try:
            pooled.mapping.close()
        except BufferError:  # a value still uses it: its pages go with that value
            pass

    def close(self) -> None:
        """Unlink every segment (the values still using one keep its pages)."""
        with self._lock:
            for pooled in list(self._kept):
                self._drop(pooled)
