"""User values <-> :class:`~ownership.core.messages.Payload`.

Values are pickled with cloudpickle, protocol 5, large buffers out of band
(``Payload.buffers``), so a transport can ship them without another copy.
While pickling, every reference found inside the value (an ObjectRef or
ActorRef anywhere in it) is recorded in ``Payload.refs``: the protocol must
count it (contained-in, borrowing). Unpickling turns each reference back
into a Python ref object bound to the receiving process, through the
``adopt`` callback, so that a process never shares ref objects with
another, even on the in-memory network.

Any object whose class defines ``__ownership_ref__() -> RefInfo`` is treated
as a reference.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import traceback
from collections.abc import Callable
from typing import Any

import cloudpickle

from ..core.messages import ErrorInfo, Payload, RefInfo

__all__ = ["pack", "unpack", "pack_function", "error_from_exception", "UnpicklableValue"]


class UnpicklableValue(TypeError):
    """The value cannot be pickled, so it cannot leave this process."""


class _Pickler(cloudpickle.Pickler):
    def __init__(self, file: io.BytesIO, refs: list[RefInfo], buffers: list[pickle.PickleBuffer]) -> None:
        super().__init__(file, protocol=5, buffer_callback=buffers.append)
        self._refs = refs

    def persistent_id(self, obj: Any) -> Any:
        hook = getattr(type(obj), "__ownership_ref__", None)
        if hook is None:
            return None
        info: RefInfo = hook(obj)
        self._refs.append(info)
        return (info.object_id, info.owner, info.kind)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, buffers: tuple[bytes, ...], adopt: Callable[[RefInfo], Any]) -> None:
        super().__init__(file, buffers=buffers)
        self._adopt = adopt

    def persistent_load(self, pid: Any) -> Any:
        object_id, owner, kind = pid
        return self._adopt(RefInfo(object_id=object_id, owner=owner, kind=kind))


def pack(value: Any) -> Payload:
    """Pickle ``value``, recording the references inside it."""
    refs: list[RefInfo] = []
    buffers: list[pickle.PickleBuffer] = []
    f = io.BytesIO()
    try:
        _Pickler(f, refs, buffers).dump(value)
    except Exception as exc:
        raise UnpicklableValue(f"cannot send a value of type {type(value).__qualname__}: {exc}") from exc
    unique: dict[str, RefInfo] = {}
    for info in refs:
        unique.setdefault(info.object_id, info)
    return Payload(
        data=f.getvalue(),
        buffers=tuple(bytes(b.raw()) for b in buffers),
        refs=tuple(unique.values()),
    )


def unpack(payload: Payload, adopt: Callable[[RefInfo], Any]) -> Any:
    """Rebuild the value; ``adopt`` makes a local ref object for each reference."""
    return _Unpickler(io.BytesIO(payload.data), payload.buffers, adopt).load()


def pack_function(fn: Any) -> tuple[str, Payload]:
    """A function or class as ``(function_id, payload)``; the id is a content hash."""
    data = cloudpickle.dumps(fn, protocol=5)
    return hashlib.sha1(data).hexdigest()[:20], Payload(data=data)


def error_from_exception(exc: BaseException) -> ErrorInfo:
    """A task's exception as it travels: message, type, traceback, and the
    exception itself when it pickles."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    exception: Payload | None
    try:
        data = cloudpickle.dumps(exc, protocol=5)
        pickle.loads(data)
        exception = Payload(data=data)
    except Exception:
        exception = None
    cls = type(exc)
    type_name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return ErrorInfo(kind="task", message=str(exc), type_name=type_name, traceback=tb, exception=exception)
