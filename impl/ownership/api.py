"""The public API: ``import ownership``.

    @ownership.remote
    def f(x): ...

    async with ownership.cluster(nodes=2) as cluster:   # or ownership.testing.memory_cluster()
        ref = f.remote(1)              # an ObjectRef, at once; this process owns it
        value = await ref              # or: await ownership.get(ref, timeout=5)

``ownership.cluster()`` starts an embedded cluster of OS processes over TCP;
``ownership.connect("HOST:PORT")`` attaches to one started with ``ownership
start``; ``ownership.testing.memory_cluster()`` runs every process as a trio
task on an in-memory network (deterministic, for tests). From synchronous
code (a script, a notebook), ``with ownership.blocking.cluster() as c:``
runs the driver on a thread of its own (:mod:`ownership.blocking`).

A task's exception reaches ``get`` as a :class:`TaskError` that is also an
instance of the exception's own type (``except ZeroDivisionError`` works),
with the remote traceback in its message.

Inside a task, ``f.remote()`` makes the executing worker the owner of the new
future. ``ownership.get`` is awaited in async code and blocks in a sync
task (which runs in a thread). ``ownership.shared(ref)`` passes the future
itself instead of its value: the receiver becomes a borrower. Dropping the
last Python reference to a future releases it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .core.messages import Payload
from .errors import (
    ActorDiedError,
    GetTimeoutError,
    NoRuntimeError,
    ObjectLostError,
    OwnerDiedError,
    OwnershipError,
    TaskCancelledError,
    TaskError,
    WorkerCrashedError,
)
from .runtime.cluster import LocalCluster, cluster, connect
from .runtime.refs import ActorMethod, ActorRef, ObjectRef, Shared, current_runtime
from .runtime.values import UnpicklableValue, pack_function

__all__ = [
    "remote",
    "get",
    "wait",
    "put",
    "shared",
    "cancel",
    "cluster",
    "connect",
    "LocalCluster",
    "ObjectRef",
    "ActorRef",
    "ActorMethod",
    "RemoteFunction",
    "ActorClass",
    "OwnershipError",
    "TaskError",
    "OwnerDiedError",
    "ObjectLostError",
    "WorkerCrashedError",
    "ActorDiedError",
    "TaskCancelledError",
    "GetTimeoutError",
    "NoRuntimeError",
    "UnpicklableValue",
]

_DEFAULT_TASK_RETRIES = 3


def _resources(num_cpus: float | None, resources: dict[str, float] | None, default_cpus: float) -> tuple[tuple[str, float], ...]:
    shape: dict[str, float] = dict(resources or {})
    cpus = default_cpus if num_cpus is None else num_cpus
    if "CPU" in shape and num_cpus is not None:
        raise ValueError("give the CPU count with num_cpus=, not in resources=")
    shape.setdefault("CPU", cpus)
    for name, amount in shape.items():
        if not isinstance(name, str) or not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"bad resource {name!r}: {amount!r} (amounts are numbers >= 0)")
    return tuple(sorted((k, float(v)) for k, v in shape.items() if v > 0))


class _Remote:
    _default_cpus = 1.0
    _default_retries = _DEFAULT_TASK_RETRIES
    _kind = "task"

    def __init__(
        self,
        target: Any,
        *,
        num_cpus: float | None = None,
        resources: dict[str, float] | None = None,
        max_retries: int | None = None,
        recoverable: bool = False,
    ) -> None:
        if not isinstance(recoverable, bool):
            raise ValueError(f"recoverable must be True or False, not {recoverable!r}")
        if recoverable and self._kind != "task":
            raise ValueError("only tasks and puts can be recoverable, not actors")
        self._recoverable = recoverable
        self._target = target
        self._num_cpus = num_cpus
        self._resource_dict = dict(resources or {})
        self._shape = _resources(num_cpus, resources, self._default_cpus)
        if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
            raise ValueError(f"max_retries must be an int >= 0, not {max_retries!r}")
        self._max_retries = self._default_retries if max_retries is None else max_retries
        self._packed: tuple[str, Payload] | None = None
        self.__name__ = getattr(target, "__name__", type(target).__name__)
        self.__doc__ = getattr(target, "__doc__", None)

    def _function(self) -> tuple[str, Payload]:
        if self._packed is None:
            self._packed = pack_function(self._target)
        return self._packed

    def options(
        self,
        *,
        num_cpus: float | None = None,
        resources: dict[str, float] | None = None,
        max_retries: int | None = None,
        recoverable: bool | None = None,
    ):
        """A copy with other options (unset ones are kept)."""
        return type(self)(
            self._target,
            num_cpus=self._num_cpus if num_cpus is None else num_cpus,
            resources=self._resource_dict if resources is None else resources,
            max_retries=self._max_retries if max_retries is None else max_retries,
            recoverable=self._recoverable if recoverable is None else recoverable,
        )

    def _submit(self, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        rt = current_runtime()
        function_id, function = self._function()
        return rt.submit_task(
            function_id,
            function,
            args,
            kwargs,
            resources=self._shape,
            max_retries=self._max_retries,
            kind=self._kind,
            name=self.__name__,
            recoverable=self._recoverable,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"remote {self._kind} {self.__name__!r} cannot be called directly; use .remote(...)")


class RemoteFunction(_Remote):
    """A function that runs as a task: ``f.remote(*args) -> ObjectRef``."""

    def remote(self, *args: Any, **kwargs: Any) -> ObjectRef:
        return self._submit(args, kwargs)


class ActorClass(_Remote):
    """A class whose instances live in a worker: ``C.remote(*args) -> ActorRef``."""

    _default_cpus = 0.0
    _default_retries = 0
    _kind = "actor_create"

    def remote(self, *args: Any, **kwargs: Any) -> ActorRef:
        return self._submit(args, kwargs)


def remote(
    target: Any = None,
    *,
    num_cpus: float | None = None,
    resources: dict[str, float] | None = None,
    max_retries: int | None = None,
    recoverable: bool = False,
) -> Any:
    """Make a function a remote task, or a class an actor.

    ``@remote`` or ``@remote(num_cpus=2, resources={"GPU": 1}, max_retries=3)``.
    Tasks need 1 CPU and are retried 3 times by default; actors need no CPU
    for their life and are not restarted. ``recoverable=True``: the task's
    future survives the death of its owner (the driver takes it over), at
    the price of a write to the head before ``remote()`` returns.
    """

    def wrap(t: Any) -> Any:
        if isinstance(t, type):
            return ActorClass(t, num_cpus=num_cpus, resources=resources, max_retries=max_retries, recoverable=recoverable)
        if callable(t):
            return RemoteFunction(t, num_cpus=num_cpus, resources=resources, max_retries=max_retries, recoverable=recoverable)
        raise TypeError(f"@remote takes a function or a class, not {type(t).__qualname__}")

    if target is None:
        return wrap
    return wrap(target)


def get(refs: ObjectRef | Iterable[ObjectRef], *, timeout: float | None = None) -> Any:
    """The value(s) of one ref or a list of refs.

    In async code, ``await ownership.get(...)`` (a trio checkpoint that
    honours cancel scopes); in a sync task it blocks. Raises the documented
    error of the first ref that has one, or GetTimeoutError.
    """
    rt = current_runtime()
    single = isinstance(refs, ObjectRef)
    items = [refs] if single else list(refs)  # type: ignore[list-item,arg-type]
    if rt.on_loop_thread():

        async def _get() -> Any:
            values = await rt.get_many(items, timeout)
            return values[0] if single else values

        return _get()
    values = rt.get_blocking(items, timeout)
    return values[0] if single else values


def wait(refs: Iterable[ObjectRef], *, num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True) -> Any:
    """``(ready, not_ready)``: wait until ``num_returns`` refs have a value or an error.

    Awaited in async code, blocking in a sync task; on timeout returns what is ready.
    With ``fetch_local=False`` (as in Ray) a ref is ready once its object is
    available somewhere in the cluster (a node's store has it, or it failed):
    the owner's table says so, and nothing is pulled to this process's node.
    """
    rt = current_runtime()
    items = list(refs)
    if rt.on_loop_thread():
        return rt.wait(items, num_returns, timeout, fetch_local)
    return rt.wait_blocking(items, num_returns, timeout, fetch_local)


def put(value: Any, *, recoverable: bool = False) -> ObjectRef:
    """Store ``value``; this process owns the new future. ``recoverable=True``:
    the value is logged at the head too, and the future survives its owner."""
    if not isinstance(recoverable, bool):
        raise ValueError(f"recoverable must be True or False, not {recoverable!r}")
    return current_runtime().put(value, recoverable=recoverable)


def shared(ref: ObjectRef | ActorRef) -> Shared:
    """Pass the future itself (a first-class future), not its value (paper §2)."""
    return Shared(ref)


def cancel(ref: ObjectRef) -> None:
    """Cancel the task that makes ``ref`` (owner only); its get raises TaskCancelledError."""
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"cancel() takes an ObjectRef, not {type(ref).__qualname__}")
    current_runtime().cancel(ref)

