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
import functools
from typing import TYPE_CHECKING, Any

import sniffio
import trio

from ..core.messages import RefInfo
from ..errors import NoRuntimeError

if TYPE_CHECKING:  # pragma: no cover
    from .worker import WorkerRuntime

__all__ = ["ObjectRef", "ActorRef", "ActorMethod", "Shared", "current_runtime", "current_task_id", "require_trio"]

_runtime_var: contextvars.ContextVar[WorkerRuntime | None] = contextvars.ContextVar("ownership_runtime", default=None)
_task_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("ownership_task", default=None)


#: the driver of :mod:`ownership.blocking`, seen from every thread of the process
_process_runtime: WorkerRuntime | None = None

NO_RUNTIME_HINT = (
    "start a cluster with `async with ownership.cluster():` or attach to a running one with "
    "`async with ownership.connect():` (under trio.run), or from plain synchronous code "
    "`with ownership.blocking.cluster():` / `with ownership.blocking.connect():`"
)


def current_runtime() -> WorkerRuntime:
    """The worker runtime of the calling context: the driver, or the executing worker.

    The context's own (a trio driver, a task) comes first, then the
    process's blocking driver, if one is attached.
    """
    rt = _runtime_var.get()
    if rt is None:
        rt = _process_runtime
        if rt is None or rt.closed:
            raise NoRuntimeError(f"no ownership runtime here: {NO_RUNTIME_HINT}")
    return rt


def require_trio(what: str) -> None:
    """Raise a clear NoRuntimeError when ``what`` is awaited outside trio.

    Under asyncio, trio's own calls fail with internal errors
    (``'RunContext' object has no attribute 'runner'``).
    """
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        library = _async_library()
        under = f" under {library}" if library else ""
        raise NoRuntimeError(
            f"{what} runs under trio (`trio.run(main)`), not{under or ' here'}; from synchronous code, "
            "or from an asyncio program or a notebook, use `ownership.blocking.cluster()` / `ownership.blocking.connect()`"
        ) from None


def _async_library() -> str:
    try:
        return sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return ""


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
        owner = self.owner
        if self._runtime.core.moved:
            # Taken over since this reference was made (owner recovery).
            owner = self._runtime.core.owner_of(self.object_id, owner)
        return RefInfo(object_id=self.object_id, owner=owner, kind=self.kind)

    def __reduce__(self) -> Any:
        raise TypeError(
            f"a {type(self).__name__} can only travel inside task arguments, returned values or ownership.put(); "
            "it cannot be pickled on its own"
        )

    def __copy__(self) -> Any:
        # A copy is one more local reference, released when the copy is dropped.
        self._runtime.add_local_ref_threadsafe(self.object_id, self.owner, self.kind)
        return type(self)(self.object_id, self.owner, self._runtime)

    def __deepcopy__(self, memo: dict) -> Any:
        return self.__copy__()

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
        rt = self._runtime
        if rt.on_loop_thread():
            return rt.get_one(self).__await__()
        return _await_elsewhere(rt, self).__await__()


async def _await_elsewhere(rt: WorkerRuntime, ref: ObjectRef) -> Any:
    """``await ref`` on another event loop than the runtime's (the runtime of
    :mod:`ownership.blocking` runs in a thread of its own): a blocking get in
    a worker thread of that loop, so the loop runs on meanwhile."""
    get = functools.partial(rt.get_blocking, [ref])
    library = _async_library()
    if library == "trio":
        values = await trio.to_thread.run_sync(get, abandon_on_cancel=True)
    elif library == "asyncio":
        import asyncio

        values = await asyncio.get_running_loop().run_in_executor(None, get)
    else:
        raise NoRuntimeError(f"cannot await {ref!r} under {library or 'this event loop'}: use ownership.get({ref!r})")
    return values[0]


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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"actor method {self._name!r} cannot be called directly: use actor.{self._name}.remote(...), "
            "which returns an ObjectRef"
        )

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
