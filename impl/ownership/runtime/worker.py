"""The worker service: a trio shell around :class:`~ownership.core.worker.WorkerCore`.

The shell feeds the core every stimulus (messages from the transport, local
notifications, timer ticks, API calls, finished user code) and carries out
the effects (send, run user code, answer a waiting get). It assumes nothing
about the transport beyond :class:`~ownership.runtime.transport.Transport`,
so the same service runs on the in-memory network and over TCP.

User code: ``async def`` functions run on this worker's trio loop; sync
functions run in a thread (``trio.to_thread``), so the worker keeps serving
owners, borrowers and its node while they run; a blocking ``ownership.get``
inside them goes back to the loop through ``trio.from_thread``.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import inspect
import itertools
import json
import logging
import os
import pickle
import queue
import threading
from collections.abc import Sequence
from typing import Any

import attrs
import outcome
import trio

from ..core.config import CoreConfig
from ..core.events import (
    AddLocalRef,
    Cancel,
    CancelExecution,
    CancelGet,
    Effect,
    Event,
    Execute,
    GetDone,
    GetValue,
    Infeasible,
    Logged,
    Put,
    Received,
    Registered,
    RemoveLocalRef,
    Send,
    Submit,
    TaskBlocked,
    TaskDone,
    TaskUnblocked,
)
from ..core.messages import Arg, ErrorInfo, Payload, RefInfo, RegisterWorker, TaskSpec
from ..core.worker import WorkerCore
from ..errors import (
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
from .objects import WorkerObjects
from .refs import ActorRef, ObjectRef, Shared, _Ref, _runtime_var, _task_var, current_task_id
from .shell import ServiceShell
from .transport import Envelope, Transport
from .values import error_from_exception, pack, unpack

__all__ = ["WorkerRuntime", "serve", "exception_from_error", "infeasible_warning"]

logger = logging.getLogger("ownership.scheduling")


def infeasible_warning(e: Infeasible) -> str:
    """What the user reads when no node can run a task as asked (as Ray warns)."""
    shape = json.dumps({k: (int(v) if float(v).is_integer() else v) for k, v in e.resources})
    what = f"actor {e.name}" if e.kind == "actor_create" else f"task {e.name}()"
    return (
        f"{what} ({e.task_id}) cannot be scheduled: it asks for {shape} and no node of the cluster has that much. "
        f"It waits at node {e.node} until a node that has joins (ownership start --address HEAD --resources ...), "
        f"or ask for less with {e.name}.options(...)."
    )


def exception_from_error(error: ErrorInfo) -> OwnershipError:
    """The documented exception for an :class:`ErrorInfo` (DESIGN §7)."""
    if error.kind == "task":
        cause = None
        if error.exception is not None:
            try:
                cause = pickle.loads(error.exception.data)
            except Exception:
                cause = None
        return TaskError.from_remote(error.message, type_name=error.type_name, remote_traceback=error.traceback, cause=cause)
    cls = {
        "owner_died": OwnerDiedError,
        "object_lost": ObjectLostError,
        "worker_crashed": WorkerCrashedError,
        "actor_died": ActorDiedError,
        "cancelled": TaskCancelledError,
    }.get(error.kind, OwnershipError)
    return cls(error.message)


_KINDS: dict[type, str] = {
    OwnerDiedError: "owner_died",
    ObjectLostError: "object_lost",
    ActorDiedError: "actor_died",
    WorkerCrashedError: "worker_crashed",
    TaskCancelledError: "cancelled",
}


def error_info_of(exc: BaseException, where: str = "") -> ErrorInfo:
    """How a task's exception travels to its owner.

    A documented error that user code let through (a get on a dead owner's
    object) keeps its kind, so the caller sees the same error class;
    anything else, a nested task's failure included, becomes a TaskError
    with the traceback (``where``: the task and process, its first line).
    """
    for cls, kind in _KINDS.items():
        if type(exc) is cls:
            return ErrorInfo(kind=kind, message=str(exc))
    return error_from_exception(exc, where)


class _TaskThreads:
    """Threads that run sync user code, one call at a time each, kept for reuse.

    ``trio.to_thread.run_sync`` costs a few hundred microseconds per call
    on the 2-core machines here (its limiter, its from-thread message loop,
    a thread-cache handshake), several times a no-op task's whole budget.
    A thread of ours waits on its own queue and reports back with one
    ``run_sync_soon``. A cancelled call is abandoned, as with
    ``abandon_on_cancel=True``: its thread finishes the call unheard and is
    then reused; the next call takes another thread meanwhile.
    """

    def __init__(self, token: trio.lowlevel.TrioToken, name: str) -> None:
        self._token = token
        self._name = name
        self._idle: list[queue.SimpleQueue] = []
        self._count = 0
        self._closed = False
        self._in_order: queue.SimpleQueue | None = None  # the actor's own thread

    async def run(self, fn: Any) -> Any:
        """``fn()`` in one of our threads, in a copy of the caller's context."""
        jobs = self._idle.pop() if self._idle else self._start()
        done = trio.Event()
        result: list[Any] = []  # [value] or [None, exception]

        def back(value: Any, exc: BaseException | None) -> None:  # on the loop thread
            result.extend((value,) if exc is None else (None, exc))
            if self._closed:
                jobs.put(None)
            else:
                self._idle.append(jobs)
            done.set()

        jobs.put((contextvars.copy_context(), fn, back))
        await done.wait()
        if len(result) == 2:
            exc = result.pop()
            try:
                raise exc
            finally:
                del exc
        return result[0]

    def _start(self) -> queue.SimpleQueue:
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._count += 1
        name = f"{self._name} task thread {self._count}"
        threading.Thread(target=self._serve, args=(jobs,), name=name, daemon=True).start()
        return jobs

    def _serve(self, jobs: queue.SimpleQueue) -> None:
        while (job := jobs.get()) is not None:
            context, fn, back = job
            value: Any = None
            exc: BaseException | None = None
            try:
                value = context.run(fn)
            except BaseException as e:  # handed to the caller, which raises it
                exc = e
            del job, context, fn
            try:
                self._token.run_sync_soon(back, value, exc)
            except trio.RunFinishedError:
                return
            del back, value, exc

    def submit(self, context: contextvars.Context, fn: Any, back: Any) -> None:
        """``fn()`` in one of our threads; ``back(value, exc)`` then runs on the loop.

        No trio task waits for it: the caller is the loop itself, which
        starts the call and hears of its end from ``back``.
        """
        jobs = self._idle.pop() if self._idle else self._start()

        def done(value: Any, exc: BaseException | None) -> None:  # on the loop thread
            if self._closed:
                jobs.put(None)
            else:
                self._idle.append(jobs)
            back(value, exc)

        jobs.put((context, fn, done))

    def submit_in_order(self, context: contextvars.Context, fn: Any, back: Any) -> None:
        """As :meth:`submit`, on the one thread that runs calls in the order given.

        An actor's calls queue up here while the previous one runs: the
        thread goes from one to the next without waiting for the loop.
        """
        if self._in_order is None:
            self._in_order = self._start()
        self._in_order.put((context, fn, back))

    def close(self) -> None:
        """Idle threads exit now; busy ones once their call returns."""
        self._closed = True
        if self._in_order is not None:
            self._in_order.put(None)
        while self._idle:
            self._idle.pop().put(None)


def _is_coroutine_function(fn: Any) -> bool:
    """``fn`` (or its ``__call__``) is ``async def``: it runs as a trio task."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _has_async_methods(cls: type) -> bool:
    """Whether an actor class has a coroutine method (those run as trio tasks,
    so its calls cannot all go through one thread in order)."""
    return any(_is_coroutine_function(getattr(cls, name, None)) for name in dir(cls))


@attrs.define(eq=False)
class _GetSlot:
    event: trio.Event = attrs.Factory(trio.Event)
    result: GetDone | None = None
    callback: Any = None


class WorkerRuntime(ServiceShell):
    """One worker (or driver) process: its core, its transport, its user code."""

    def __init__(
        self,
        transport: Transport,
        core: WorkerCore,
        nursery: trio.Nursery,
        *,
        tick_interval: float | None = None,
        shared_memory: bool = False,
    ) -> None:
        self.transport = transport
        self.core = core
        self.address = core.address
        self.tick_interval = tick_interval
        self._nursery = nursery
        self.token = trio.lowlevel.current_trio_token()
        self._loop_thread = threading.get_ident()
        self._gets: dict[int, _GetSlot] = {}
        self._get_ids = itertools.count(1)
        self._scopes: dict[str, trio.CancelScope] = {}
        self._functions: dict[str, Any] = {}
        # Work handed over from other threads, in their order: a release
        # (an object id) or a submission (a TaskSpec). See _drain_releases.
        self._releases: collections.deque[str | TaskSpec] = collections.deque()
        self._blocked: collections.Counter[str] = collections.Counter()
        self.actor: Any = None
        self.closed = False
        self.registered = trio.Event()
        self.tasks_run = 0
        self._threads = _TaskThreads(self.token, self.address)
        # Sync user code runs straight in one of our threads, with no trio
        # task per task (see _start_in_thread): the task ids running so, and
        # the work _apply left for after the current event (_run_deferred).
        self._in_threads: dict[str, Any] = {}
        self._deferred: collections.deque[tuple[Any, Any, Any]] = collections.deque()
        self._running_deferred = False
        self._is_async: dict[tuple[bool, str | None], bool] = {}
        #: recoverable objects a task thread waits on until the head logged them
        self._logged: dict[str, trio.Event] = {}
        self._logging: trio.Event | None = None
        #: recoverable objects made so far by each running task (their ids, see _recoverable_ids)
        self._made_in_task: dict[str, int] = {}
        self._made_lock = threading.Lock()
        #: this process's sys.stdout/sys.stderr when they forward task output
        #: (.output), and the ids of tasks with text not sent yet (shared by both)
        self.output_streams: tuple[Any, ...] = ()
        self.output_pending: set[str] = set()
        #: large values through the node's shared memory (TCP runtime only)
        self.objects: WorkerObjects | None = None
        if shared_memory:
            self.objects = WorkerObjects(self.address, core.node, self.send, self._owner_of, self._deliver_soon)

    # ------------------------------------------------------------------ core plumbing
    def handle(self, event: Event) -> None:
        if self.closed:
            raise NoRuntimeError(f"worker {self.address} has stopped")
        self._apply(self.core.handle(event))
        if self._deferred and not self._running_deferred:
            self._run_deferred()

    def _run_deferred(self) -> None:
        """Starts and abandons of thread-run tasks, once the effects that asked
        for them are all carried out: they feed the core again (refs adopted
        from the arguments, a TaskDone), which must not happen in the middle
        of applying another event's effects."""
        self._running_deferred = True
        try:
            while self._deferred:
                action, arg, extra = self._deferred.popleft()
                action(arg, extra)
        finally:
            self._running_deferred = False

    def _apply(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Send):
                if self.objects is None:
                    self.send(e.dst, e.msg)
                else:
                    routed = self.objects.outgoing(e.dst, e.msg)
                    if routed is not None:  # None: the object plane answered it here
                        self.send(*routed)
            elif isinstance(e, GetDone):
                slot = self._gets.get(e.request_id)
                if slot is not None and slot.result is None:
                    slot.result = e
                    slot.event.set()
                    if slot.callback is not None:
                        slot.callback()
            elif isinstance(e, Execute):
                fn = self._sync_callable(e.task)
                if fn is None:
                    # Its cancel scope exists from now on, not from when its
                    # trio task first runs: a CancelExecution handled before
                    # then (the push and the cancel in one read) cancels it.
                    self._scopes[e.task.task_id] = trio.CancelScope()
                    self._nursery.start_soon(self._run_task, e, name=f"task {e.task.task_id}")
                else:
                    self._deferred.append((self._start_in_thread, e, fn))
            elif isinstance(e, CancelExecution):
                scope = self._scopes.get(e.task_id)
                if scope is not None:
                    scope.cancel()
                else:  # a thread-run task, or none (then _abandon finds nothing)
                    self._deferred.append((self._abandon, e.task_id, None))
            elif isinstance(e, Registered):
                self.registered.set()
            elif isinstance(e, Logged):
                event = self._logged.pop(e.object_id, None)
                if event is not None:
                    event.set()
            elif isinstance(e, Infeasible):
                logger.warning("%s", infeasible_warning(e))
            else:
                raise TypeError(f"worker shell cannot carry out {e!r}")

    def _received(self, env: Envelope) -> None:
        if self.objects is None:
            self.handle(Received(env.src, env.msg))
        elif (translated := self.objects.incoming(env.src, env.msg)) is not None:
            self.handle(Received(*translated))

    def _deliver_soon(self, src: str, msg: Any) -> None:
        """A message for our core as if ``src`` sent it, after the current event."""

        def deliver() -> None:
            if not self.closed:
                try:
                    self.handle(Received(src, msg))
                except Exception as exc:  # the shell's backstop, as for any message
                    self.handler_failed(src, msg, exc)

        self.token.run_sync_soon(deliver)

    def _owner_of(self, object_id: str) -> str:
        ref = self.core.refs.table.get(object_id)
        return ref.owner if ref is not None else ""

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    # ------------------------------------------------------------------ references
    def release_threadsafe(self, object_id: str) -> None:
        """Called from ``__del__`` on any thread: queue the release for the loop."""
        if self.closed:
            return
        self._releases.append(object_id)
        try:
            self.token.run_sync_soon(self._drain_releases, idempotent=True)
        except trio.RunFinishedError:
            pass

    def _drain_releases(self) -> None:
        """Carry out what other threads handed over, in order.

        Every loop-side entry point a task thread calls (a get, a wait, a
        put, a cancel) drains first, so the core sees a thread's calls in
        the order the thread made them although submissions do not wait.
        """
        while self._releases:
            op = self._releases.popleft()
            if self.closed:
                continue
            if type(op) is str:
                self._apply(self.core.handle(RemoveLocalRef(op)))
            else:
                self._apply(self.core.handle(Submit(op)))
        if self._deferred and not self._running_deferred:
            self._run_deferred()

    def add_local_ref_threadsafe(self, object_id: str, owner: str, kind: str) -> None:
        """One more Python ref to an object this process holds (``copy.copy(ref)``).

        Counted before the call returns, and after the releases this thread
        queued before it (``_threadsafe`` drains them first).
        """
        if self.closed:
            raise NoRuntimeError(f"worker {self.address} has stopped")
        try:
            self._threadsafe(self.handle, AddLocalRef(object_id, owner, kind))
        except trio.RunFinishedError:
            raise NoRuntimeError(f"worker {self.address} has stopped") from None

    def _adopt(self, info: RefInfo) -> _Ref:
        """A reference found while unpickling becomes a local ref object."""
        self.handle(AddLocalRef(info.object_id, info.owner, info.kind))
        cls = ActorRef if info.kind == "actor" else ObjectRef
        return cls(info.object_id, info.owner, self)

    def _pack_args(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[Arg, ...]:
        # A large value into a segment of our node (it may go to a worker of
        # the node by name), else as pack() copies it.
        pack_value = pack if self.objects is None else self.objects.pack_argument
        out: list[Arg] = []
        items: list[tuple[str | None, Any]] = [(None, a) for a in args] + list(kwargs.items())
        for name, value in items:
            if type(value) is ObjectRef:
                out.append(Arg(ref=value.__ownership_ref__(), name=name))
            elif isinstance(value, Shared):
                out.append(Arg(value=pack(value.ref), name=name))
            else:
                out.append(Arg(value=pack_value(value), name=name))
        return tuple(out)

    # ------------------------------------------------------------------ API
    def _threadsafe(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.on_loop_thread():
            return fn(*args, **kwargs)
        return trio.from_thread.run_sync(functools.partial(self._after_drain, fn, *args, **kwargs), trio_token=self.token)

    def _after_drain(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._drain_releases()
        return fn(*args, **kwargs)

    def submit_task(
        self,
        function_id: str,
        function: Payload,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        resources: tuple[tuple[str, float], ...],
        max_retries: int,
        kind: str = "task",
        name: str = "",
        recoverable: bool = False,
    ) -> _Ref:
        return self._submit(function_id, function, args, kwargs, resources, max_retries, kind, name, None, None, recoverable)

    def submit_actor_call(self, actor: ActorRef, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> ObjectRef:
        return self._submit("", Payload(data=b""), args, kwargs, (), 0, "actor_method", method, actor.object_id, method)

    def _submit(
        self,
        function_id: str,
        function: Payload,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        resources: tuple[tuple[str, float], ...],
        max_retries: int,
        kind: str,
        name: str,
        actor_id: str | None,
        method: str | None,
        recoverable: bool = False,
    ) -> _Ref:
        on_loop = self.on_loop_thread()
        if on_loop:
            # Refs dropped since the loop last ran are released first: a
            # task they were the last to need lets go of its arguments,
            # whose large buffers the arguments packed next can then reuse.
            self._drain_releases()
        packed = self._pack_args(args, kwargs)
        task_id, return_id = self._recoverable_ids() if recoverable else (None, None)
        if task_id is None:
            task_id, return_id = self.core.new_task_ids()
        else:
            return_id = f"{task_id}.r"
        spec = TaskSpec(
            task_id=task_id,
            owner=self.address,
            return_id=return_id,
            function_id=function_id,
            function=function,
            args=packed,
            resources=resources,
            max_retries=max_retries,
            kind=kind,
            actor_id=actor_id,
            method=method,
            name=name,
            recoverable=recoverable,
        )
        if recoverable:
            self._check_lineage(packed)
            if not on_loop and self.core.logs_recoverable():
                # The reference leaves this call only once the head has logged
                # the task: a holder may outlive us from then on.
                self._wait_logged(return_id, lambda: self.handle(Submit(spec)))
                return ObjectRef(return_id, self.address, self)
        if on_loop:
            self.handle(Submit(spec))
        else:
            # From a task thread the submission does not wait for the loop
            # (a round trip through trio.from_thread costs more than a small
            # task): the arguments were pickled here, errors and all, and the
            # loop submits in this thread's order (see _drain_releases).
            if self.closed:
                raise NoRuntimeError(f"worker {self.address} has stopped")
            self._releases.append(spec)
            try:
                self.token.run_sync_soon(self._drain_releases, idempotent=True)
            except trio.RunFinishedError:
                raise NoRuntimeError(f"worker {self.address} has stopped") from None
        cls = ActorRef if kind == "actor_create" else ObjectRef
        return cls(return_id, self.address, self)

    def put(self, value: Any, recoverable: bool = False) -> ObjectRef:
        if recoverable and not self.on_loop_thread() and self.core.logs_recoverable():
            box: list[ObjectRef] = []
            self._wait_logged(None, lambda: box.append(self._put(value, True)))
            return box[0]
        return self._threadsafe(self._put, value, recoverable)

    def _put(self, value: Any, recoverable: bool = False) -> ObjectRef:
        if self.objects is None:
            payload, oid = pack(value), None
        else:
            # Pickled once, a large value straight into the node's shared memory.
            payload, oid = self.objects.pack(value, self.core.config.inline_threshold, self.core.new_object_id)
        oid = oid or (self._recoverable_ids()[0] if recoverable else None) or self.core.new_object_id()
        if recoverable and self._logging is not None:
            self._logged[oid] = self._logging
        self.handle(Put(oid, payload, recoverable))
        return ObjectRef(oid, self.address, self)

    def _recoverable_ids(self) -> tuple[str | None, None]:
        """The id of the next recoverable object a task makes: its task's id
        and the object's rank in it, so that a re-execution of the task
        makes the same ids and adopts what was taken over instead of making
        it twice (None outside a task, or when the id is taken here)."""
        task_id = current_task_id()
        if task_id is None or not self.core.logs_recoverable():
            return None, None
        with self._made_lock:
            n = self._made_in_task[task_id] = self._made_in_task.get(task_id, 0) + 1
        oid = f"{task_id}.rec{n}"
        if oid in self.core.refs.table or f"{oid}.r" in self.core.refs.table or oid in self.core.submitter.tasks:
            return None, None
        return oid, None

    def _check_lineage(self, packed: tuple[Arg, ...]) -> None:
        """A recoverable task may take only objects a new owner could make
        again: none of ours that did not opt in."""
        if self.core.driver:
            return  # the driver's objects live as long as the job
        table = self.core.refs.table
        for arg in packed:
            infos = [arg.ref] if arg.ref is not None else list(arg.value.refs if arg.value is not None else ())
            for info in infos:
                ref = table.get(info.object_id) if info.owner == self.address else None
                if ref is not None and ref.owned and not ref.recoverable and ref.kind == "object":
                    raise ValueError(
                        f"a recoverable task cannot take object {info.object_id}: it is not recoverable, "
                        "and a new owner could not make it again (make it with recoverable=True)"
                    )

    def _wait_logged(self, object_id: str | None, make: Any) -> None:
        """From a task thread: ``make()`` the object on the loop and wait until
        the head has logged it (the core's Logged effect)."""

        async def run() -> None:
            self._drain_releases()
            logged = trio.Event()
            if object_id is not None:
                self._logged[object_id] = logged
            self._logging = logged
            try:
                make()
            finally:
                self._logging = None
            with self.transport.idle():  # (the memory network delivers meanwhile)
                await logged.wait()

        self.call_from_thread(run, "a recoverable remote()")

    def cancel(self, ref: ObjectRef) -> None:
        self._threadsafe(self.handle, Cancel(ref.object_id))

    def _register_gets(self, refs: Sequence[_Ref], fetch: bool = True) -> list[int]:
        rids = []
        for ref in refs:
            if not isinstance(ref, ObjectRef):
                raise TypeError(f"get() takes ObjectRefs, not {type(ref).__qualname__}")
            if ref._runtime is not self:
                raise ValueError(f"{ref!r} belongs to another process")
            rid = next(self._get_ids)
            self._gets[rid] = _GetSlot()
            rids.append(rid)
            self.handle(GetValue(rid, ref.object_id, fetch=fetch))
        return rids

    def _release_gets(self, rids: list[int], fetch: bool = True) -> None:
        for rid in rids:
            slot = self._gets.pop(rid, None)
            if slot is None:
                continue
            # The callback closes over the slot (get_many's watch): a cycle
            # that would keep the slot's value, and the pages of a large
            # one, until the cyclic collector runs.
            slot.callback = None
            if slot.result is None and not self.closed:
                self.handle(CancelGet(rid, fetch=fetch))

    @contextlib.contextmanager
    def _maybe_blocked(self, task_id: str | None, waiting: bool):
        """Tell the node a leased task waits on a get (its CPU can be lent)."""
        if task_id is None or not waiting:
            yield
            return
        self._blocked[task_id] += 1
        if self._blocked[task_id] == 1:
            self.handle(TaskBlocked(task_id))
        try:
            yield
        finally:
            self._blocked[task_id] -= 1
            if self._blocked[task_id] <= 0:
                del self._blocked[task_id]
                if not self.closed:
                    self.handle(TaskUnblocked(task_id))

    def _value_of(self, done: GetDone) -> Any:
        if done.error is not None:
            raise exception_from_error(done.error)
        assert done.value is not None
        return unpack(done.value, self._adopt)

    async def get_many(self, refs: Sequence[ObjectRef], timeout: float | None = None, *, task_id: str | None = None) -> list[Any]:
        """The values of ``refs``, or the error of the first that failed.

        As in Ray, an error ends the get at once (waiting for the other refs
        could be waiting forever); when several have failed by then, the
        first in list order wins. A value at hand wins over an expired
        ``timeout``: only a get still missing values raises GetTimeoutError.
        """
        task_id = task_id if task_id is not None else current_task_id()
        rids = self._register_gets(refs)
        try:
            slots = [self._gets[r] for r in rids]
            left = sum(1 for slot in slots if slot.result is None)
            failed = any(slot.result is not None and slot.result.error is not None for slot in slots)
            if left and not failed:
                settled = trio.Event()

                def watch(slot: _GetSlot) -> Any:
                    def done() -> None:  # once, when the slot's result comes
                        nonlocal left, failed
                        left -= 1
                        failed = failed or slot.result.error is not None  # type: ignore[union-attr]
                        if left == 0 or failed:
                            settled.set()

                    return done

                for slot in slots:
                    if slot.result is None:
                        slot.callback = watch(slot)
                with self._maybe_blocked(task_id, True):
                    try:
                        with trio.fail_after(timeout) if timeout is not None else contextlib.nullcontext():
                            await settled.wait()
                    except trio.TooSlowError:
                        if left and not failed:
                            raise GetTimeoutError(f"get() timed out after {timeout} s waiting for {len(refs)} object(s)") from None
            else:
                await trio.lowlevel.checkpoint()
            results = [slot.result for slot in slots]
        finally:
            self._release_gets(rids)
        for done in results:
            if done is not None and done.error is not None:
                raise exception_from_error(done.error)
        return [self._value_of(done) for done in results]  # type: ignore[arg-type]

    async def get_one(self, ref: ObjectRef) -> Any:
        return (await self.get_many([ref]))[0]

    def get_blocking(self, refs: Sequence[ObjectRef], timeout: float | None = None) -> list[Any]:
        """A blocking get from another thread (a task's, or a blocking driver's):
        wait on the loop, off the busy count."""
        task_id = current_task_id()

        async def run() -> list[Any]:
            self._drain_releases()
            with self.transport.idle():
                return await self.get_many(refs, timeout, task_id=task_id)

        return self.call_from_thread(run, "get()")

    def call_from_thread(self, async_fn: Any, what: str = "a call") -> Any:
        """``await async_fn()`` on this worker's loop, from another thread, blocking.

        A KeyboardInterrupt in the waiting thread (Ctrl-C in a script or a
        notebook blocked in ``get``) cancels the call on the loop, so the
        get it made is withdrawn, and propagates at once. The call's own
        errors are raised here, never in the worker's nursery.
        """
        if self.on_loop_thread():
            raise RuntimeError(f"a blocking {what} on the worker's own event loop would wait forever: await it instead")
        scope = trio.CancelScope()
        box: queue.SimpleQueue = queue.SimpleQueue()

        async def run() -> None:
            try:
                with scope:
                    box.put(outcome.Value(await async_fn()))
                    return
                box.put(outcome.Error(KeyboardInterrupt()))  # cancelled for the caller, who is gone
            except trio.Cancelled:
                box.put(outcome.Error(WorkerCrashedError(f"worker {self.address} stopped while waiting in {what}")))
                raise
            except BaseException as exc:  # the caller's to handle (a TaskError, a timeout)
                box.put(outcome.Error(exc))
                if not isinstance(exc, Exception):
                    raise

        def start() -> None:  # on the loop
            try:
                self._nursery.start_soon(run)
            except RuntimeError:  # the worker is stopping: its nursery takes no new task
                box.put(outcome.Error(WorkerCrashedError(f"worker {self.address} has stopped: cannot wait in {what}")))

        try:
            self.token.run_sync_soon(start)
        except trio.RunFinishedError:
            raise WorkerCrashedError(f"worker {self.address} has stopped: cannot wait in {what}") from None
        try:
            result = box.get()
        except KeyboardInterrupt:
            with contextlib.suppress(trio.RunFinishedError):
                self.token.run_sync_soon(scope.cancel)
            raise
        return result.unwrap()

    async def wait(
        self, refs: Sequence[ObjectRef], num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        refs = list(refs)
        if not 0 <= num_returns <= len(refs):
            raise ValueError(f"num_returns={num_returns} but {len(refs)} refs were given")
        enough = trio.Event()
        rids = self._register_gets(refs, fetch=fetch_local)
        try:
            def done_count() -> int:
                return sum(1 for r in rids if self._gets[r].result is not None)

            def on_done() -> None:
                if done_count() >= num_returns:
                    enough.set()

            for rid in rids:
                self._gets[rid].callback = on_done
            on_done()
            with trio.move_on_after(timeout) if timeout is not None else contextlib.nullcontext():
                await enough.wait()
            await trio.lowlevel.checkpoint()
            ready_flags = [self._gets[r].result is not None for r in rids]
        finally:
            self._release_gets(rids, fetch=fetch_local)
        ready = [ref for ref, ok in zip(refs, ready_flags) if ok][: max(num_returns, 0) or None]
        ready_set = {id(r) for r in ready}
        return ready, [ref for ref in refs if id(ref) not in ready_set]

    def wait_blocking(self, refs: Sequence[ObjectRef], num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True):
        async def run():
            self._drain_releases()
            with self.transport.idle():
                return await self.wait(refs, num_returns, timeout, fetch_local)

        return self.call_from_thread(run, "wait()")

    # ------------------------------------------------------------------ user code
    def _function(self, spec: TaskSpec) -> Any:
        fn = self._functions.get(spec.function_id)
        if fn is None:
            fn = self._functions[spec.function_id] = pickle.loads(spec.function.data)
        return fn

    async def _run_user(self, fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if _is_coroutine_function(fn):
            return await fn(*args, **kwargs)
        with self.transport.busy():
            return await self._threads.run(functools.partial(fn, *args, **kwargs))

    async def _call(self, spec: TaskSpec, payloads: tuple[Payload, ...]) -> Any:
        values = [unpack(p, self._adopt) for p in payloads]
        args = [v for a, v in zip(spec.args, values) if a.name is None]
        kwargs = {a.name: v for a, v in zip(spec.args, values) if a.name is not None}
        del values
        if spec.kind == "actor_create":
            self.actor = await self._run_user(self._function(spec), args, kwargs)
            return None
        if spec.kind == "actor_method":
            if self.actor is None:
                raise ActorDiedError(f"worker {self.address} hosts no actor")
            fn = getattr(self.actor, spec.method or "")
        else:
            fn = self._function(spec)
        return await self._run_user(fn, args, kwargs)

    def _sync_callable(self, spec: TaskSpec) -> Any:
        """The plain function a task runs, if it can run straight in a thread;
        None sends it the general way (a coroutine function, no actor yet,
        a function that does not unpickle: ``_run_task`` reports those)."""
        try:
            if spec.kind == "actor_method":
                if self.actor is None:
                    return None
                fn = getattr(self.actor, spec.method or "")
            else:
                fn = self._function(spec)
        except Exception:
            return None
        if not callable(fn):
            return None  # _run_task reports it as the task's error
        # inspect's check costs more than a no-op task's decode: once per
        # function, and once per method of the one actor a worker hosts.
        key = (spec.kind == "actor_method", spec.method if spec.kind == "actor_method" else spec.function_id)
        is_async = self._is_async.get(key)
        if is_async is None:
            is_async = self._is_async[key] = _is_coroutine_function(fn)
        return None if is_async else fn

    def _start_in_thread(self, effect: Execute, fn: Any) -> None:
        """``_run_task`` for sync user code, without a trio task: the call goes
        to a thread now and its end comes back through ``_thread_done``."""
        spec = effect.task
        if self.closed:
            return
        try:
            values = [unpack(p, self._adopt) for p in effect.args]
        except Exception as exc:
            self._finish(spec, None, error_info_of(exc, self._where(spec)))
            return
        args = [v for a, v in zip(spec.args, values) if a.name is None]
        kwargs = {a.name: v for a, v in zip(spec.args, values) if a.name is not None}
        del values
        context = contextvars.copy_context()
        context.run(_runtime_var.set, self)
        context.run(_task_var.set, spec.task_id)
        busy = self.transport.busy()
        busy.__enter__()
        self._in_threads[spec.task_id] = busy
        call = functools.partial(fn, *args, **kwargs)
        back = functools.partial(self._thread_done, spec)
        if spec.kind == "actor_method" and self.core.executor.calls_in_order:
            self._threads.submit_in_order(context, functools.partial(self._unless_abandoned, spec.task_id, call), back)
        else:
            self._threads.submit(context, call, back)

    def _unless_abandoned(self, task_id: str, call: Any) -> Any:
        """``call()``, unless its task was cancelled while queued (it is reported already)."""
        if task_id not in self._in_threads:
            return None
        return call()

    def _thread_done(self, spec: TaskSpec, result: Any, exc: BaseException | None) -> None:
        busy = self._in_threads.pop(spec.task_id, None)
        if busy is None:  # abandoned (cancelled): already reported
            return
        busy.__exit__(None, None, None)
        if exc is not None and not isinstance(exc, Exception):
            # As a trio task running it would: a SystemExit ends the worker.
            # Not once the worker has stopped (its nursery takes no task), nor
            # a cancellation of the loop the thread was waiting on.
            if not self.closed and not isinstance(exc, trio.Cancelled):
                self._nursery.start_soon(_reraise, exc)
            return
        value: Payload | None = None
        error: ErrorInfo | None = None
        in_order = False
        if exc is not None:
            error = error_info_of(exc, self._where(spec))
        elif spec.kind == "actor_create":
            self.actor = result
            in_order = not _has_async_methods(type(result))
        else:
            try:
                value = pack(result)
            except Exception as e:
                error = error_info_of(e, self._where(spec))
        del exc, result
        self._finish(spec, value, error, calls_in_order=in_order)

    def _where(self, spec: TaskSpec) -> str:
        """The first line of a task's remote traceback: which call, where."""
        what = f"actor method {spec.method}()" if spec.kind == "actor_method" else f"task {spec.name or spec.function_id}()"
        return f"{what} on worker {self.address} (pid {os.getpid()})"

    def _abandon(self, task_id: str, _: Any) -> None:
        """A cancelled thread-run task: reported now, its thread finishes unheard."""
        busy = self._in_threads.pop(task_id, None)
        if busy is None:
            return
        busy.__exit__(None, None, None)
        self._finish_id(task_id, None, ErrorInfo(kind="cancelled", message=f"task {task_id} was cancelled"))

    def _finish(self, spec: TaskSpec, value: Payload | None, error: ErrorInfo | None, *, calls_in_order: bool = False) -> None:
        self._finish_id(spec.task_id, value, error, calls_in_order=calls_in_order)

    def _finish_id(self, task_id: str, value: Payload | None, error: ErrorInfo | None, *, calls_in_order: bool = False) -> None:
        self._made_in_task.pop(task_id, None)
        self.tasks_run += 1
        if self.output_pending:  # its last partial line, before the reply
            for stream in self.output_streams:
                stream.task_done(task_id)
        # As in _run_task: drops first, then the reply.
        self._drain_releases()
        if not self.closed:
            self.handle(TaskDone(task_id, value=value, error=error, calls_in_order=calls_in_order))

    async def _run_task(self, effect: Execute) -> None:
        spec = effect.task
        _runtime_var.set(self)
        _task_var.set(spec.task_id)
        value: Payload | None = None
        error: ErrorInfo | None = None
        result: Any = None
        scope = self._scopes.setdefault(spec.task_id, trio.CancelScope())
        with scope:
            try:
                result = await self._call(spec, effect.args)
                if spec.kind != "actor_create":
                    value = pack(result)
            except Exception as exc:
                error = error_info_of(exc, self._where(spec))
                del exc
        self._scopes.pop(spec.task_id, None)
        if scope.cancelled_caught:
            error = ErrorInfo(kind="cancelled", message=f"task {spec.task_id} was cancelled")
            value = None
        self.tasks_run += 1
        if self.output_pending:
            for stream in self.output_streams:
                stream.task_done(spec.task_id)
        # Refs the task dropped are released before the reply reports what it
        # still holds; refs inside the returned value stay alive until the
        # reply has registered the caller as their borrower.
        self._drain_releases()
        if not self.closed:
            self.handle(TaskDone(spec.task_id, value=value, error=error))
        del result

    # ------------------------------------------------------------------ inspection
    def snapshot(self) -> dict[str, Any]:
        snap = self.core.snapshot()
        snap["handler_errors"] = self.handler_errors
        snap["messages_unsendable"] = self.messages_unsendable
        if self.objects is not None:
            snap["shm"] = self.objects.snapshot()
        return snap


async def _reraise(exc: BaseException) -> None:
    raise exc


async def serve(
    transport: Transport,
    *,
    node: str,
    config: CoreConfig | None = None,
    driver: bool = False,
    tick_interval: float | None = None,
    shared_memory: bool = False,
    task_status: trio.TaskStatus[WorkerRuntime] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one worker (or driver) process until its transport closes.

    Registers with ``node`` (which registers it with the head) and passes
    the :class:`WorkerRuntime` to ``task_status.started`` once registered.
    With ``shared_memory`` (the TCP runtime) large values go through the
    node's object plane (:mod:`.objects`): pulls through the node, and
    segments mapped where the node's shared memory is ours too.
    """
    core = WorkerCore(transport.address, node, config, driver=driver)
    rt: WorkerRuntime | None = None
    try:
        async with trio.open_nursery() as nursery:
            rt = WorkerRuntime(transport, core, nursery, tick_interval=tick_interval, shared_memory=shared_memory)
            _runtime_var.set(rt)
            nursery.start_soon(rt._receive_loop, name=f"receive {rt.address}")
            if tick_interval is not None:
                nursery.start_soon(rt._ticker, name=f"ticks {rt.address}")
            transport.send_nowait(node, RegisterWorker(worker=rt.address, node=node, driver=driver))
            await rt.registered.wait()
            task_status.started(rt)
    finally:
        if rt is not None:
            rt.closed = True
            rt._threads.close()
