"""The Python objects that stand for distributed futures and actors.

An :class:`ObjectRef` (or :class:`ActorRef`) is bound to the worker runtime
of the process that holds it: creating one counts a local reference in that
worker's core, dropping the last Python reference to it releases that count.
``__del__`` may run on any thread, or inside the garbage collector, so it
only hands the release to the runtime's event loop (``release_threadsafe``)
and never does protocol work itself.

Refs travel only inside task arguments, returned values and ``put``
values: the runtime's pickler records them (``__ownership_ref__``) so that
the receiver becomes a borrower. Pickling one any other way is an error.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from ..core.messages import RefInfo
from ..errors import NoRuntimeError

if TYPE_CHECKING:  # pragma: no cover
    from .worker import WorkerRuntime

__all__ = ["ObjectRef", "ActorRef", "ActorMethod", "Shared", "current_runtime", "current_task_id"]

_runtime_var: contextvars.ContextVar[WorkerRuntime | None] = contextvars.ContextVar("ownership_runtime", default=None)
_task_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ownership_task", default=None)


def current_runtime() -> WorkerRuntime:
    """The worker runtime of the calling context: the driver, or the executing worker."""
    rt = _runtime_var.get()
    if rt is None:
        raise NoRuntimeError(
            "no ownership runtime in this context: use `async with ownership.testing.memory_cluster()` "
            "(or call from inside a task)"
        )
    return rt


def current_task_id() -> str | None:
    return _task_var.get()


class _Ref:
    __slots__ = ("object_id", "owner", "_runtime", "__weakref__")
    kind = "object"

    def __init__(self, object_id: str, owner: str, runtime: WorkerRuntime) -> None:
        self.object_id = object_id
        self.owner = owner
        self._runtime = runtime

    def __ownership_ref__(self) -> RefInfo:
        return RefInfo(object_id=self.object_id, owner=self.owner, kind=self.kind)

    def __reduce__(self) -> Any:
        raise TypeError(
            f"a {type(self).__name__} can only travel inside task arguments, returned values or ownership.put(); "
            "it cannot be pickled on its own"
        )

    def __del__(self) -> None:
        rt = getattr(self, "_runtime", None)
        if rt is not None:
            rt.release_threadsafe(self.object_id)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.object_id == self.object_id  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.object_id))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.object_id!r})"


class ObjectRef(_Ref):
    """A distributed future. ``await ref`` gets its value (a trio checkpoint)."""

    __slots__ = ()

    def __await__(self):
        return self._runtime.get_one(self).__await__()


class ActorRef(_Ref):
    """A handle to an actor: ``actor.method.remote(...)`` calls a method on it."""

    __slots__ = ()
    kind = "actor"

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return ActorMethod(self, name)


class ActorMethod:
    def __init__(self, actor: ActorRef, name: str) -> None:
        self._actor = actor
        self._name = name

    def remote(self, *args: Any, **kwargs: Any) -> ObjectRef:
        return self._actor._runtime.submit_actor_call(self._actor, self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"ActorMethod({self._actor.object_id!r}, {self._name!r})"


class Shared:
    """``ownership.shared(ref)``: pass the future itself, not its value."""

    __slots__ = ("ref",)

    def __init__(self, ref: ObjectRef) -> None:
        if not isinstance(ref, _Ref):
            raise TypeError(f"shared() takes an ObjectRef or ActorRef, not {type(ref).__qualname__}")
        self.ref = ref

    def __repr__(self) -> str:
        return f"shared({self.ref!r})"
