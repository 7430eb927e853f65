"""User values as pickles: the one place where values are pickled.

Values are pickled with cloudpickle, protocol 5, large buffers out of band.
Two forms carry the result:

* :func:`pack` makes a :class:`~ownership.core.messages.Payload`, what the
  cores carry. While pickling, every reference found inside the value (an
  ObjectRef or ActorRef anywhere in it) is recorded in ``Payload.refs``: the
  protocol must count it (contained-in, borrowing). The buffers are copied:
  a put or a task's result is the value as it was at that moment, even if
  the caller changes the object afterwards. :func:`unpack` turns each
  reference back into a Python ref object bound to the receiving process,
  through the ``adopt`` callback, so that a process never shares ref objects
  with another, even on the in-memory network.
* :func:`serialize` makes a :class:`SerializedValue`: the same stream and
  buffers as views, with no references allowed in it. The wire codec
  (:mod:`.serialization`) ships both forms out of band, and the
  shared-memory store lays either out in one segment
  (:func:`serialized_layout`, :func:`serialized_from_buffer`).

Any object whose class defines ``__ownership_ref__() -> RefInfo`` is treated
as a reference.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import struct
import traceback
import types
from collections.abc import Callable, Iterable
from typing import Any

import cloudpickle
import outcome
import trio

from ..core.messages import ErrorInfo, Payload, RefInfo
from ..errors import OwnershipError
from .bufpool import value_pool
from .framing import FrameError

__all__ = [
    "ALIGNMENT",
    "PLACED",
    "SerializationError",
    "SerializedValue",
    "UnpicklableValue",
    "as_view",
    "deserialize",
    "dumps_oob",
    "error_from_exception",
    "format_task_traceback",
    "pack",
    "pack_function",
    "placed_header",
    "placed_header_size",
    "serialize",
    "serialized_from_buffer",
    "serialized_layout",
    "snapshot",
    "unpack",
]

ALIGNMENT = 64

_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class SerializationError(TypeError):
    """A message or value cannot be serialized (e.g. it holds a lock or a socket)."""


class UnpicklableValue(SerializationError, OwnershipError):
    """The value cannot be pickled, so it cannot leave this process.

    A user's mistake, so an :class:`~ownership.errors.OwnershipError` like
    every error of the API (and a TypeError, as pickle's own error is).
    """


def _code_reduce_keeping_filename(code: types.CodeType) -> Any:
    """cloudpickle's reduction of a code object, with its file name kept.

    cloudpickle (3.x) writes ``<dynamic-code>`` as the file name of every
    function it ships by value (a script's ``__main__``, a notebook cell, a
    nested function), for reproducible pickles; a remote traceback then
    cannot say where the user's code is. The name costs nothing to keep.
    """
    ctor, args = _CLOUDPICKLE_CODE_REDUCE(code)
    args = list(args)
    for i, arg in enumerate(args):
        if isinstance(arg, str) and arg == "<dynamic-code>":
            args[i] = code.co_filename
            break
    return ctor, tuple(args)


_CLOUDPICKLE_CODE_REDUCE = cloudpickle.Pickler.dispatch_table.get(types.CodeType)


class _CodePickler(cloudpickle.Pickler):
    """cloudpickle, protocol 5, keeping the file names of the code it ships."""

    if _CLOUDPICKLE_CODE_REDUCE is not None:
        # Flat, as deep as cloudpickle's own: looked up for every object it reduces.
        dispatch_table = collections.ChainMap({types.CodeType: _code_reduce_keeping_filename}, *cloudpickle.Pickler.dispatch_table.maps)


def _dumps(obj: Any) -> bytes:
    f = io.BytesIO()
    _CodePickler(f, protocol=5).dump(obj)
    return f.getvalue()


class _Pickler(_CodePickler):
    """Protocol 5, buffers out of band; records references when ``refs`` is a list."""

    def __init__(self, file: io.BytesIO, buffers: list[pickle.PickleBuffer], refs: list[RefInfo] | None = None) -> None:
        super().__init__(file, protocol=5, buffer_callback=buffers.append)
        self._refs = refs

    def persistent_id(self, obj: Any) -> Any:
        if self._refs is None:
            return None  # a ref then refuses to pickle (it may only travel as a value's ref)
        hook = getattr(type(obj), "__ownership_ref__", None)
        if hook is None:
            return None
        info: RefInfo = hook(obj)
        self._refs.append(info)
        return (info.object_id, info.owner, info.kind)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, buffers: Iterable[Any], adopt: Callable[[RefInfo], Any]) -> None:
        super().__init__(file, buffers=buffers)
        self._adopt = adopt

    def persistent_load(self, pid: Any) -> Any:
        object_id, owner, kind = pid
        return self._adopt(RefInfo(object_id=object_id, owner=owner, kind=kind))


def dumps_oob(obj: Any, refs: list[RefInfo] | None = None) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """``obj``'s protocol-5 pickle stream and its out-of-band buffers (uncopied).

    References inside ``obj`` are appended to ``refs``; with ``refs=None``
    a reference cannot be pickled. Raises SerializationError.
    """
    buffers: list[pickle.PickleBuffer] = []
    f = io.BytesIO()
    try:
        _Pickler(f, buffers, refs).dump(obj)
    except Exception as exc:
        raise SerializationError(f"cannot serialize {type(obj).__qualname__}: {exc}") from exc
    return f.getvalue(), buffers


def pack(value: Any) -> Payload:
    """Pickle ``value``, recording the references inside it; the buffers are copied."""
    refs: list[RefInfo] = []
    try:
        data, buffers = dumps_oob(value, refs)
    except SerializationError as exc:
        raise UnpicklableValue(f"cannot send a value of type {type(value).__qualname__}: {exc.__cause__}") from exc.__cause__
    unique: dict[str, RefInfo] = {}
    for info in refs:
        unique.setdefault(info.object_id, info)
    return Payload(data=data, buffers=snapshot(buffers), refs=tuple(unique.values()))


def snapshot(buffers: Iterable[pickle.PickleBuffer]) -> tuple[bytes | memoryview, ...]:
    """Copies of a value's out-of-band buffers, as they are now.

    A large one is copied into memory of :data:`~.bufpool.value_pool`
    (faulted in already when an earlier snapshot has been dropped), a small
    one into ``bytes``.
    """
    out: list[bytes | memoryview] = []
    for b in buffers:
        raw = b.raw()
        if raw.nbytes < value_pool.min_size:
            out.append(bytes(raw))
        else:
            copy = value_pool.take(raw.nbytes)
            copy[:] = raw
            out.append(copy.toreadonly())
    return tuple(out)


def unpack(payload: Payload, adopt: Callable[[RefInfo], Any]) -> Any:
    """Rebuild the value; ``adopt`` makes a local ref object for each reference."""
    return _Unpickler(io.BytesIO(payload.data), payload.buffers, adopt).load()


def pack_function(fn: Any) -> tuple[str, Payload]:
    """A function or class as ``(function_id, payload)``; the id is a content hash."""
    data = _dumps(fn)
    return hashlib.sha1(data).hexdigest()[:20], Payload(data=data)


#: where the runtime's own frames come from: dropped from a task's traceback
_RUNTIME_PATHS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(__file__)), part) for part in ("runtime" + os.sep, "core" + os.sep, "api.py", "blocking.py")
) + tuple(os.path.dirname(m.__file__) + os.sep for m in (trio, outcome) if m.__file__)


def _is_runtime_frame(filename: str) -> bool:
    return filename.startswith(_RUNTIME_PATHS)


def _user_frames(te: traceback.TracebackException) -> None:
    """Drop the runtime's frames from ``te`` and the exceptions chained to it."""
    seen: set[int] = set()
    todo = [te]
    while todo:
        t = todo.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        t.stack = traceback.StackSummary.from_list([f for f in t.stack if not _is_runtime_frame(f.filename)])
        todo += [c for c in (t.__cause__, t.__context__) if c is not None]


def format_task_traceback(exc: BaseException, where: str = "") -> str:
    """The traceback of a task's exception as its caller reads it.

    Only the user's frames are kept (not the worker's, trio's or the API's).
    An error the task let through from a task it waited on (a TaskError)
    ends with that task's own remote traceback, so a nested failure reads
    from the outermost call down to the line that raised.
    """
    from ..errors import TaskError

    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    if isinstance(exc, TaskError):
        # Its cause has no traceback here, and its text is the remote one.
        te.__cause__ = te.__context__ = None
    _user_frames(te)
    head = f"In {where}:\n" if where else ""
    if isinstance(exc, TaskError) and exc.remote_traceback:
        frames = "".join(te.stack.format())
        stack = f"Traceback (most recent call last):\n{frames}" if frames else ""
        return f"{head}{stack}{type(exc).__qualname__} from a task it waited on:\n{exc.remote_traceback.rstrip()}\n"
    return head + "".join(te.format())


def error_from_exception(exc: BaseException, where: str = "") -> ErrorInfo:
    """A task's exception as it travels: message, type, traceback, and the
    exception itself when it pickles.

    ``where`` names the task and the process (the traceback's first line).
    A TaskError (a nested task's failure let through) keeps the message and
    type of the error at its root, and travels itself as the cause.
    """
    from ..errors import TaskError

    tb = format_task_traceback(exc, where)
    exception: Payload | None
    try:
        data = _dumps(exc)
        pickle.loads(data)
        exception = Payload(data=data)
    except Exception:
        exception = None
    if isinstance(exc, TaskError):
        return ErrorInfo(kind="task", message=str(exc.args[0]), type_name=exc.type_name, traceback=tb, exception=exception)
    cls = type(exc)
    type_name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return ErrorInfo(kind="task", message=str(exc), type_name=type_name, traceback=tb, exception=exception)


# -- views: SerializedValue and the one-buffer layout -----------------------------


def _pad(n: int) -> int:
    return -n % ALIGNMENT


def as_view(buf: Any) -> memoryview:
    view = buf.raw() if isinstance(buf, pickle.PickleBuffer) else memoryview(buf)
    if not view.c_contiguous:
        raise SerializationError("out-of-band buffer is not contiguous")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


class SerializedValue:
    """A pickled value: the protocol-5 pickle stream and its out-of-band buffers.

    The buffers are views, not copies: of the original object's memory right
    after :func:`serialize` (so mutating the object before the value is sent
    or stored changes what is sent), of the received frame after a transport
    delivered it, of the shared-memory mapping after the object store read it.
    """

    __slots__ = ("data", "buffers")

    def __init__(self, data: bytes | memoryview, buffers: Iterable[Any] = ()) -> None:
        self.data = data
        self.buffers: tuple[memoryview, ...] = tuple(as_view(b) for b in buffers)

    @property
    def nbytes(self) -> int:
        """Total size: stream plus buffers (what the owner compares with the inline limit)."""
        return len(self.data) + sum(b.nbytes for b in self.buffers)

    def deserialize(self) -> Any:
        return pickle.loads(self.data, buffers=self.buffers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SerializedValue):
            return NotImplemented
        return (
            bytes(self.data) == bytes(other.data)
            and len(self.buffers) == len(other.buffers)
            and all(a == b for a, b in zip(self.buffers, other.buffers))
        )

    __hash__ = None  # type: ignore[assignment]  # content-compared and view-backed

    def __repr__(self) -> str:
        return f"SerializedValue(<{self.nbytes} bytes, {len(self.buffers)} buffers>)"

    def __reduce_ex__(self, protocol: int):  # type: ignore[override]
        # Nested in a pickled record (a task spec holding its arguments), the
        # buffers still go out of band when the pickler has a buffer_callback.
        if protocol >= 5:
            return (_rebuild_serialized, (pickle.PickleBuffer(self.data), *map(pickle.PickleBuffer, self.buffers)))
        return (_rebuild_serialized, (bytes(self.data), *map(bytes, self.buffers)))


def _rebuild_serialized(data: Any, *buffers: Any) -> SerializedValue:
    return SerializedValue(memoryview(data).toreadonly(), [memoryview(b).toreadonly() for b in buffers])


def serialize(obj: Any) -> SerializedValue:
    """Pickle ``obj`` (protocol 5, cloudpickle) with its large buffers out of band, uncopied."""
    data, buffers = dumps_oob(obj)
    return SerializedValue(data, buffers)


def deserialize(value: SerializedValue) -> Any:
    return value.deserialize()


# -- a value laid out in one contiguous buffer (shared-memory segments) ------


def serialized_layout(value: SerializedValue) -> tuple[int, list[tuple[int, bytes | memoryview]]]:
    """Size and ``(offset, chunk)`` writes that lay ``value`` out in one buffer.

    Layout: ``nbuf:u32 len:u64*(nbuf+1)`` then the stream and every buffer,
    each at a 64-byte aligned offset (so arrays read from it are aligned).
    """
    parts = [value.data, *value.buffers]
    header = _U32.pack(len(value.buffers)) + b"".join(_U64.pack(len(memoryview(p).cast("B"))) for p in parts)
    writes: list[tuple[int, bytes | memoryview]] = [(0, header)]
    pos = len(header)
    for part in parts:
        pos += _pad(pos)
        writes.append((pos, part))
        pos += memoryview(part).nbytes
    return pos, writes


#: Set in the first word of a value laid out with explicit offsets
#: (:func:`placed_header`) rather than one part after the other.
PLACED = 0x8000_0000


def placed_header(parts: list[tuple[int, int]]) -> bytes:
    """The header of a value whose parts already lie in a buffer: ``(offset, length)``
    of the stream, then of each out-of-band buffer.

    Layout: ``(nbuf | PLACED):u32 0:u32 (offset:u64 length:u64)*(nbuf+1)``.
    A node that received a copy straight into a segment (the frame's body
    after a reserved head) writes this into the head, so the parts stay
    where the socket put them instead of being copied into the sequential
    layout.
    """
    if not parts or len(parts) - 1 >= PLACED:
        raise ValueError("a placed value needs its stream and fewer than 2**31 buffers")
    return _U32.pack(PLACED | (len(parts) - 1)) + bytes(4) + b"".join(_U64.pack(o) + _U64.pack(n) for o, n in parts)


def placed_header_size(nbuffers: int) -> int:
    return 8 + 16 * (nbuffers + 1)


def _placed_from_buffer(buf: memoryview, nbuf: int) -> SerializedValue:
    try:
        if placed_header_size(nbuf) > len(buf):
            raise FrameError(f"value header announces {nbuf} buffers, more than fit in {len(buf)} bytes")
        fields = struct.unpack_from(f"!{2 * (nbuf + 1)}Q", buf, 8)
    except struct.error as exc:
        raise FrameError(f"value header is truncated: {exc}") from None
    end = placed_header_size(nbuf)
    views = []
    for offset, length in zip(fields[::2], fields[1::2]):
        if offset < end or offset + length > len(buf):
            raise FrameError(f"value part of {length} bytes at offset {offset} lies outside {end}..{len(buf)}")
        views.append(buf[offset : offset + length])
    return SerializedValue(views[0], views[1:])


def serialized_from_buffer(buf: memoryview) -> SerializedValue:
    """Read a value laid out by :func:`serialized_layout` (or placed, see
    :func:`placed_header`), as views into ``buf``."""
    buf = buf.cast("B") if buf.format != "B" else buf
    try:
        (nbuf,) = _U32.unpack_from(buf, 0)
        if nbuf & PLACED:
            return _placed_from_buffer(buf, nbuf & ~PLACED)
        if 4 + 8 * (nbuf + 1) > len(buf):
            raise FrameError(f"value header announces {nbuf} buffers, more than fit in {len(buf)} bytes")
        lengths = struct.unpack_from(f"!{nbuf + 1}Q", buf, 4)
    except struct.error as exc:
        raise FrameError(f"value header is truncated: {exc}") from None
    pos = 4 + 8 * (nbuf + 1)
    views = []
    for length in lengths:
        pos += _pad(pos)
        if pos + length > len(buf):
            raise FrameError(f"value part of {length} bytes at offset {pos} overruns {len(buf)} bytes")
        views.append(buf[pos : pos + length])
        pos += length
    return SerializedValue(views[0], views[1:])
