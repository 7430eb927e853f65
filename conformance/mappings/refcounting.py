"""RefCounting (spec/RefCounting.tla, paper §4.2) <-> the implementation.

Both directions:

- model -> implementation (:meth:`RefCountingMapping.apply`,
  :meth:`~RefCountingMapping.project`): every running task runs
  :func:`replay_task`, a body that registers itself in :data:`BODIES` and
  waits for the harness to tell it how to end. Each spec step is one
  stimulus: an API call in the right process (``submit_task`` with
  ``shared(x)`` on the owner's driver or on a borrower's worker, a copy of x
  kept in a global, a dropped ref or result), the delivery of one held
  message (a PushTask after its lease is sorted out, a TaskReply, a
  WaitForRefRemoved, a RefRemoved), or the end of one task body;
- implementation -> model: a seeded random program passes one object
  around and the event log of the run is checked by TLC
  (:mod:`conformance.validate`).

Binding (from the model's constants):

- ``Owner`` is the driver ``driver@n0`` on node ``n0``, which has no worker;
  ``x`` is a value it puts (inline, so the owner keeps it);
- borrower ``b`` is the one worker of node ``n<b>`` (``w1@n<b>``). That node
  has a resource named ``at-<b>``, and a task meant for ``b`` asks for it, so
  the scheduler runs it there (a task's resource shape is how a program
  says where it runs; the spec's caller names the worker).

The user program (:func:`ref_task`) gets ``shared(x)`` and a plan: keep a
copy of x beyond the task (``BorrowerAddLocalRef``), pass x on to tasks of
its own, return x inside its value (``WorkerReturnRefInValue``). It records
what no core sees (keeping x in a global) through :data:`USER_EVENT`. The
environment then drops refs (``HolderReleaseRef``) and result values
(``HolderReleaseContents``) at random, delivers messages in any order, and
lets idle leases time out.

Replay (model -> implementation). The implementation takes two spec
steps by itself, inside the stimulus that enables them (:attr:`eager`):
BorrowerSendRefRemoved (``check`` answers the owner once nothing holds x
any more) and OwnerFree (``check`` frees x at once). Stimuli:

=================================  ============================================
spec action                        stimulus
=================================  ============================================
HolderSubmitWithRef(p, c)          ``submit_task(replay_task, shared(x))`` at p,
                                   asking for ``at-<c>``; its lease request
                                   stays in flight
BorrowerReceiveRef(b, p)           the lease messages of p's task for b (an
                                   idle lease another caller holds on b's
                                   worker is returned first), then its PushTask
BorrowerAddLocalRef(b)             a task at b keeps a new ref to x (a global)
HolderReleaseRef(p)                p drops its ref (the owner's x, a kept copy)
HolderReleaseContents(p)           p drops a result whose value contains x
WorkerFinishTask(w, p)             a body at w called by p returns ``None``
WorkerReturnRefInValue(w, p)       ... returns ``[x]`` (see :class:`_HandedRef`)
HolderHandleReply(p, w, m)         delivery of the TaskReply that is m
BorrowerHandleWaitForRefRemoved    delivery of a WaitForRefRemoved to b
OwnerHandleRefRemoved(o, m)        delivery of the RefRemoved that is m
OwnerHandleAddBorrower(o, m)       delivery of the AddBorrower that is m
BorrowerHandleBorrowerAdded(b, m)  delivery of the BorrowerAdded that is m
=================================  ============================================

Projection: ``local[b]`` of a borrower is its count of ref objects minus
one per task running there (each task's argument is a ref object while it
runs; the spec pins it through ``running``); a task that waits for the
owner to count its worker (its AddBorrower or BorrowerAdded in flight) is
in ``waiting``, not ``running``; ``contained[p]`` is the number
of live objects of p whose value holds x; ``freed`` is the owner's entry
freed (or gone); ``tasksLeft`` and ``passedOn`` are the harness's record
of the tasks it submitted. Messages: a task of p for c that c has not
started is PushTask(p, c) whatever its lease is doing (the spec abstracts
scheduling); TaskReply, WaitForRefRemoved, RefRemoved, AddBorrower and
BorrowerAdded in flight are themselves; x lives inline in the owner's heap, so the spec's FreeObject
notice is the free itself. A borrower that stops using x while no request
of the owner is pending hands its sub-borrowers over at once
(``ReferenceCounter.check``: a RefRemoved with ``answer=False``), where the
spec keeps them until asked; until the owner's request is answered, such a
hand-over counts in ``subBorrowers[b]``, and then together with the answer
as one RefRemoved (the owner handles both in the one stimulus).

A worker is leased to one caller at a time, as in Ray: the traces are
generated so that a borrower receives a task only when no task of another
caller runs there or waits for its reply to be handled
(:meth:`model_choices`).

Recognition of the spec's actions in a run:

=================================  ============================================
spec action                        implementation step
=================================  ============================================
HolderSubmitWithRef(p, c)          ``Submit`` at p of a task whose argument holds x
BorrowerReceiveRef(b, p)           ``PushTask`` from p received at b
BorrowerAddLocalRef(b)             the task keeps x (user event)
HolderReleaseRef(p)                the program drops a ref to x (user event)
HolderReleaseContents(p)           the program drops a result whose value holds x
WorkerFinishTask / ...RefInValue   ``TaskDone`` at w, reply to p (x in the value?)
HolderHandleReply(p, w)            ``TaskReply`` from w received at p
BorrowerHandleWaitForRefRemoved    ``WaitForRefRemoved`` received at b
BorrowerSendRefRemoved(b)          b sends ``RefRemoved`` in any other step
OwnerHandleRefRemoved(o, m)        ``RefRemoved`` received at the owner
OwnerHandleAddBorrower(o, m)       ``AddBorrower`` received at the owner
BorrowerHandleBorrowerAdded(b, m)  ``BorrowerAdded`` received at b
OwnerFree(o)                       the owner's entry for x is freed
=================================  ============================================
"""

from __future__ import annotations

import collections
import gc
import itertools
import random
from typing import Any, Callable

import attrs
import trio

from ownership.api import shared
from ownership.core.config import CoreConfig
from ownership.core.events import Received, Send, Submit, TaskDone
from ownership.core.messages import (
    AddBorrower,
    BorrowerAdded,
    LeaseGranted,
    PushTask,
    RefInfo,
    RefRemoved,
    RequestLease,
    ReturnLease,
    Spillback,
    TaskReply,
    WaitForRefRemoved,
)
from ownership.core.refcount import FREED, READY
from ownership.runtime.refs import _runtime_var, current_task_id
from ownership.runtime.transport import Envelope
from ownership.runtime.values import pack_function
from ownership.tla.values import ModelValue, TLARecord, format_value, function_value

from ..cluster import ModelCluster, NodeShape, StimulusError, model_cluster
from ..eventlog import CoreStep, LogLine, NetStep, UserStep
from . import Mapping

__all__ = ["RefCountingMapping", "MAPPING", "ref_task", "replay_task", "BODIES", "KEPT", "HELD", "USER_EVENT"]

#: refs user code keeps beyond its task, per process (actor state, globals)
KEPT: dict[str, list[Any]] = collections.defaultdict(list)
#: result refs a process holds, per process (values that may contain x)
HELD: dict[str, list[Any]] = collections.defaultdict(list)
#: records what user code did that no core sees: USER_EVENT(process, kind)
USER_EVENT: list[Callable[[str, str], None]] = []


async def ref_task(x: Any, plan: dict[str, Any]) -> Any:
    """The user code of every task: follow the plan, then return."""
    rt = _runtime_var.get()
    me = rt.address
    if plan.get("keep") and len(KEPT[me]) < plan.get("max_local", 1):
        KEPT[me].append(x)
        for hook in USER_EVENT:
            hook(me, "keep")
    function_id, function = pack_function(ref_task)
    for target, subplan in plan.get("submit", ()):
        ref = rt.submit_task(function_id, function, (shared(x), subplan), {}, resources=((target, 1.0),), max_retries=0, name="ref_task")
        HELD[me].append(ref)
    return [x] if plan.get("return_x") else None


@attrs.define(eq=False)
class _Body:
    """A running :func:`replay_task`: its argument and how it is told to end."""

    x: Any
    order: int
    told: trio.Event = attrs.Factory(trio.Event)
    ending: str = ""  # "finish" | "return"


#: running replay task bodies, per process address, by task id
BODIES: dict[str, dict[str, _Body]] = collections.defaultdict(dict)
_ORDER = itertools.count()


@attrs.frozen
class _HandedRef:
    """x inside a returned value, without a ref object kept alive here.

    ``return [x]`` would keep the task's ref object alive until the reply
    is built (the runtime holds the result until then, so that refs it
    contains outlive the task), and the worker would report itself as still
    borrowing x, which the spec's WorkerReturnRefInValue does not (safe,
    one WaitForRefRemoved/RefRemoved round trip more). A value holding this
    records x as a ref object does (``__ownership_ref__``), and the caller
    gets a ref object for it when it unpacks the value.
    """

    info: RefInfo

    def __ownership_ref__(self) -> RefInfo:
        return self.info


async def replay_task(x: Any) -> Any:
    """The user code of every task of a replay: hold ``shared(x)`` until the
    harness says how to end (WorkerFinishTask: nothing;
    WorkerReturnRefInValue: a value that contains x)."""
    rt = _runtime_var.get()
    task_id = current_task_id()
    assert rt is not None and task_id is not None
    body = _Body(x, next(_ORDER))
    del x
    BODIES[rt.address][task_id] = body
    try:
        await body.told.wait()
    finally:
        BODIES[rt.address].pop(task_id, None)
    info = body.x.__ownership_ref__()
    body.x = None  # the task's ref object dies here, before the reply is built
    return [_HandedRef(info)] if body.ending == "return" else None


class _Unbound(str):
    """An implementation address no model value is bound to (shows in diffs)."""

    def __repr__(self) -> str:
        return f"<unbound {str(self)}>"


def _resource(b: ModelValue) -> str:
    return f"at-{b.name}"


class RefCountingMapping(Mapping):
    spec = "RefCounting"
    eager = frozenset({"BorrowerSendRefRemoved", "OwnerFree"})

    def __init__(self, constants: dict[str, Any], *, return_refs: bool = True) -> None:
        super().__init__(constants)
        #: whether tasks may return x inside their value (contained-in)
        self.return_refs = return_refs
        c = constants
        try:
            self.owner: ModelValue = c["Owner"]
            self.borrowers = sorted(c["Borrowers"])
            self.owner_workers = set(c["OwnerWorkers"])
            self.max_tasks = int(c["MaxTasks"])
            self.max_local = int(c["MaxLocal"])
            serves = int(c["MaxServes"])
        except KeyError as exc:
            raise ValueError(f"the constants lack {exc.args[0]}") from None
        if serves:
            raise ValueError("the RefCounting mapping has no reader that gets a served value: MaxServes must be 0")
        self.addr: dict[ModelValue, str] = {self.owner: "driver@n0"}
        for b in self.borrowers:
            self.addr[b] = f"w1@n{b.name}"
        self.inv = {a: p for p, a in self.addr.items()}
        self.c: ModelCluster | None = None
        self.x: Any = None
        self.x_id: str | None = None
        self.tasks_left = self.max_tasks
        self.recorder: Any = None
        self.rng = random.Random(0)  # random_workload sets its own
        self._function = pack_function(ref_task)
        self._replay_function = pack_function(replay_task)
        self.submitted_tasks = 0
        self.passed_on = False
        self._unanswered_handovers: dict[Any, set[Any]] = {}

    @classmethod
    def model_choices(cls, constants: dict[str, Any]) -> tuple[list[str], list[str]]:
        """A worker is leased to one caller at a time: b receives a task of
        p only when no task of another caller runs (or waits to run) at b
        or waits for its reply to be handled (that caller's lease on b is
        then idle, and the harness returns it)."""
        la = "lastAction'"
        choice = (
            f'{la}.name = "BorrowerReceiveRef" => \\A q \\in Procs \\ {{{la}.params.p}} :'
            f" running[{la}.params.b][q] = 0 /\\ waiting[{la}.params.b][q] = 0"
            f' /\\ ~\\E m \\in DOMAIN msgs : m.type = "TaskReply" /\\ m.worker = {la}.params.b /\\ m.caller = q'
        )
        return [], [choice]

    # ------------------------------------------------------------------ cluster
    def cluster(self) -> Any:
        shapes = {"n0": NodeShape((), 0)}
        for b in self.borrowers:
            shapes[f"n{b.name}"] = NodeShape((("CPU", 4.0), (_resource(b), 4.0)), 1)
        # Tasks of one caller to one borrower share its lease (pipelining,
        # whether or not a request is out), and the borrower runs them
        # together, as the spec lets them.
        config = CoreConfig(
            lease_idle_ticks=1,
            node_timeout_ticks=10**6,
            suspect_on_connection_loss=False,
            max_workers_per_node=1,
            pipeline_depth=max(1, self.max_tasks),
            pipeline_only_while_requesting=False,
            pipeline_short_tasks_only=False,
            tasks_at_once_per_worker=max(1, self.max_tasks),
            return_idle_leases_on_request=False,
        )
        return model_cluster(shapes, {self.addr[self.owner]: "n0"}, config=config)

    async def start(self, cluster: ModelCluster) -> None:
        self.c = cluster
        KEPT.clear()
        HELD.clear()
        BODIES.clear()
        USER_EVENT.clear()
        USER_EVENT.append(self._user)
        missing = [a for a in self.addr.values() if a not in cluster.runtimes()]
        if missing:
            raise StimulusError(f"the cluster did not start {missing}")
        self.x = cluster.drivers[self.addr[self.owner]].put({"x": "the counted object"})
        self.x_id = self.x.object_id
        await cluster.settle()

    def _user(self, process: str, kind: str) -> None:
        if self.recorder is not None:
            self.recorder.user(process, kind)

    # ------------------------------------------------------------------ replay: stimuli
    def _rt(self, p: ModelValue) -> Any:
        assert self.c is not None
        rt = self.c.runtimes().get(self.addr[p])
        if rt is None:
            raise StimulusError(f"process {self.addr[p]} ({p}) is not running")
        return rt

    def _entry(self, p: ModelValue) -> Any:
        """p's table entry for x (``None`` once p forgot it)."""
        assert self.c is not None and self.x_id is not None
        rt = self.c.runtimes().get(self.addr[p])
        return rt.core.refs.get_ref(self.x_id) if rt is not None else None

    def _carries_x_spec(self, spec: Any) -> bool:
        return self.x_id is not None and self._carries_x(spec)

    def _target(self, spec: Any) -> ModelValue | None:
        for name, _amount in spec.resources:
            if name.startswith("at-"):
                return ModelValue(name.removeprefix("at-"))
        return None

    async def apply(self, action: str, params: dict[str, Any]) -> None:
        assert self.c is not None
        handler = getattr(self, f"_do_{action}", None)
        if handler is None:
            raise StimulusError(f"the RefCounting mapping has no stimulus for {action}")
        await handler(params)
        await self.c.settle()

    def _handles(self, p: ModelValue) -> list[Any]:
        """Ref objects for x that user code at p can name: the owner's x, kept
        copies, the arguments of tasks running there."""
        if p == self.owner:
            return [self.x] if self.x is not None else []
        address = self.addr[p]
        running = [body.x for _tid, body in sorted(BODIES.get(address, {}).items(), key=lambda kv: kv[1].order) if body.x is not None]
        return list(KEPT.get(address, ())) + running

    async def _do_HolderSubmitWithRef(self, params: dict[str, Any]) -> None:
        p, c = params["p"], params["c"]
        handles = self._handles(p)
        if not handles:
            raise StimulusError(f"{p} has no ref to x to pass on")
        rt = self._rt(p)
        function_id, function = self._replay_function
        ref = rt.submit_task(function_id, function, (shared(handles[0]),), {}, resources=((_resource(c), 1.0),), max_retries=0, name=f"to-{c}")
        HELD[self.addr[p]].append(ref)
        self.submitted_tasks += 1
        self.passed_on = self.passed_on or p != self.owner

    def _pending_tasks(self, p: ModelValue, c: ModelValue) -> list[Any]:
        """Tasks of p for c that carry x and that c has not started."""
        assert self.c is not None
        rt = self.c.runtimes().get(self.addr[p])
        if rt is None:
            return []
        worker = self.c.runtimes().get(self.addr[c])
        started = set()
        if worker is not None:
            ex = worker.core.executor
            started = set(ex.running) | {key[0] for key in ex._finished}
        out = []
        for task in rt.core.submitter.tasks.values():
            spec = task.spec
            if task.state in ("done", "failed") or spec.task_id in started:
                continue
            if self._carries_x_spec(spec) and self._target(spec) == c:
                out.append(task)
        return sorted(out, key=lambda t: t.spec.task_id)

    async def _do_BorrowerReceiveRef(self, params: dict[str, Any]) -> None:
        assert self.c is not None
        b, p = params["b"], params["p"]
        caller, worker, node = self.addr[p], self.addr[b], f"n{b.name}"
        tasks = self._pending_tasks(p, b)
        if not tasks:
            raise StimulusError(f"{p} has no task for {b} in flight")
        task_ids = {t.spec.task_id for t in tasks}
        requests = {t.request_id for t in tasks if t.request_id}
        for _ in range(16):
            flight = self.c.network.in_flight()
            push = next(
                (mid for mid, env in flight if env.dst == worker and isinstance(env.msg, PushTask) and env.msg.task.task_id in task_ids),
                None,
            )
            if push is not None:
                await self.c.deliver(push)
                return
            reply = next(
                (
                    mid
                    for mid, env in flight
                    if env.dst == caller and isinstance(env.msg, (LeaseGranted, Spillback)) and env.msg.request_id in requests
                ),
                None,
            )
            if reply is not None:
                await self.c.deliver(reply)
                continue
            returned = next((mid for mid, env in flight if env.dst == node and isinstance(env.msg, ReturnLease)), None)
            if returned is not None:
                await self.c.deliver(returned)
                continue
            request = next(
                ((mid, env) for mid, env in flight if env.src == caller and isinstance(env.msg, RequestLease) and env.msg.request_id in requests),
                None,
            )
            if request is None:
                raise StimulusError(f"the task of {p} for {b} is neither pushed nor asking for a lease")
            mid, env = request
            if env.dst == node:
                self._free_worker(node, worker, caller)
            else:
                await self.c.refresh_views()  # the caller's node redirects by its view of the cluster
            if mid in dict(self.c.network.in_flight()) and not any(
                isinstance(e.msg, ReturnLease) and e.dst == node for _m, e in self.c.network.in_flight()
            ):
                await self.c.deliver(mid)
        raise StimulusError(f"the task of {p} for {b} did not reach {worker}")

    def _free_worker(self, node: str, worker: str, caller: str) -> None:
        """The worker is leased to another caller: that caller returns its
        lease, which must be idle (the owner's idle-lease timeout)."""
        assert self.c is not None
        sched = self.c.runtimes()[node].core.scheduler
        for lease in list(sched.leases.values()):
            if lease.worker != worker or lease.owner == caller:
                continue
            holder = self.c.runtimes().get(lease.owner)
            held = holder.core.submitter.leases.get(lease.lease_id) if holder is not None else None
            if held is None:
                raise StimulusError(f"{worker} is leased to {lease.owner}, which does not hold the lease")
            if held.running:
                raise StimulusError(f"{worker} is leased to {lease.owner}, whose tasks there are not done")
            holder._apply(holder.core.submitter.return_lease(held))

    async def _do_BorrowerAddLocalRef(self, params: dict[str, Any]) -> None:
        b = params["b"]
        address = self.addr[b]
        bodies = [body for body in BODIES.get(address, {}).values() if body.x is not None]
        if not bodies:
            raise StimulusError(f"no task runs at {b}")
        rt = self._rt(b)
        body = min(bodies, key=lambda body: body.order)
        # A task keeps a copy of x in a global: a new ref object, as
        # unpickling a value that holds x would make.
        KEPT[address].append(rt._adopt(body.x.__ownership_ref__()))

    async def _do_HolderReleaseRef(self, params: dict[str, Any]) -> None:
        p = params["p"]
        if p == self.owner:
            if self.x is None:
                raise StimulusError("the owner has dropped x already")
            self.x = None
        else:
            kept = KEPT.get(self.addr[p])
            if not kept:
                raise StimulusError(f"{p} keeps no ref to x")
            kept.pop()
        # No gc.collect(): a ref object dies with its last reference (no
        # cycles hold one here), and collecting a big heap costs 0.1 s a step.

    async def _do_HolderReleaseContents(self, params: dict[str, Any]) -> None:
        p = params["p"]
        address = self.addr[p]
        rt = self._rt(p)
        for ref in HELD.get(address, ()):
            outer = rt.core.refs.get_ref(ref.object_id)
            if outer is not None and self.x_id in outer.contains:
                HELD[address].remove(ref)
                del ref
                return
        raise StimulusError(f"{p} holds no value that contains x")

    async def _end_task(self, w: ModelValue, p: ModelValue, ending: str) -> None:
        address = self.addr[w]
        rt = self._rt(w)
        running = rt.core.executor.running
        bodies = [
            body
            for tid, body in BODIES.get(address, {}).items()
            if tid in running and running[tid].spec.owner == self.addr[p] and not body.told.is_set()
        ]
        if not bodies:
            raise StimulusError(f"no task of {p} runs at {w}")
        body = min(bodies, key=lambda body: body.order)
        body.ending = ending
        body.told.set()

    async def _do_WorkerFinishTask(self, params: dict[str, Any]) -> None:
        await self._end_task(params["w"], params["p"], "finish")

    async def _do_WorkerReturnRefInValue(self, params: dict[str, Any]) -> None:
        await self._end_task(params["w"], params["p"], "return")

    async def _deliver_matching(self, kind: str, m: Any) -> None:
        assert self.c is not None
        for record, mids in self._spec_messages():
            if record == m:
                for mid in mids:
                    await self.c.deliver(mid)
                return
        raise StimulusError(f"no {kind} in flight is {format_value(m)}")

    async def _do_HolderHandleReply(self, params: dict[str, Any]) -> None:
        await self._deliver_matching("TaskReply", params["m"])

    async def _do_BorrowerHandleWaitForRefRemoved(self, params: dict[str, Any]) -> None:
        await self._deliver_matching("WaitForRefRemoved", params["m"])

    async def _do_OwnerHandleRefRemoved(self, params: dict[str, Any]) -> None:
        await self._deliver_matching("RefRemoved", params["m"])

    async def _do_OwnerHandleAddBorrower(self, params: dict[str, Any]) -> None:
        await self._deliver_matching("AddBorrower", params["m"])

    async def _do_BorrowerHandleBorrowerAdded(self, params: dict[str, Any]) -> None:
        await self._deliver_matching("BorrowerAdded", params["m"])

    # ------------------------------------------------------------------ replay: projection
    def _proc_of(self, address: str) -> Any:
        return self.inv.get(address, _Unbound(address))

    def _spec_messages(self) -> list[tuple[TLARecord, list[int]]]:
        """The spec's messages in flight (bar PushTask and FreeObject), each
        with the in-flight messages that make it, in delivery order."""
        assert self.c is not None
        out: list[tuple[TLARecord, list[int]]] = []
        handovers: dict[str, list[tuple[int, RefRemoved]]] = collections.defaultdict(list)
        for mid, env in self.c.network.in_flight():
            msg = env.msg
            if isinstance(msg, TaskReply) and env.dst in self.inv:
                out.append((self._reply_record(msg, env.dst, env.src, strict=True), [mid]))
            elif isinstance(msg, WaitForRefRemoved) and msg.object_id == self.x_id:
                out.append((TLARecord(type="WaitForRefRemoved", owner=self.owner, borrower=self._proc_of(env.dst)), [mid]))
            elif isinstance(msg, AddBorrower) and self.x_id in msg.object_ids:
                out.append((TLARecord(type="AddBorrower", owner=self.owner, borrower=self._proc_of(msg.borrower)), [mid]))
            elif isinstance(msg, BorrowerAdded) and self.x_id in msg.object_ids:
                ok = self.x_id not in msg.refused
                out.append((TLARecord(type="BorrowerAdded", owner=self.owner, borrower=self._proc_of(env.dst), ok=ok), [mid]))
            elif isinstance(msg, RefRemoved) and msg.object_id == self.x_id:
                if not msg.answer:
                    handovers[msg.borrower].append((mid, msg))
                    continue
                # hand-overs sent before this answer travel with it
                early = [(h_mid, h) for h_mid, h in handovers.pop(msg.borrower, []) if h_mid < mid]
                subs = {self._proc_of(b.address) for _h, h in early for b in h.borrowers}
                subs |= {self._proc_of(b.address) for b in msg.borrowers}
                record = TLARecord(type="RefRemoved", owner=self.owner, borrower=self._proc_of(msg.borrower), borrowers=frozenset(subs))
                out.append((record, [h_mid for h_mid, _h in early] + [mid]))
        self._unanswered_handovers = {
            self._proc_of(address): {self._proc_of(b.address) for _mid, h in hs for b in h.borrowers} for address, hs in handovers.items()
        }
        return out

    def project(self) -> dict[str, Any]:
        assert self.c is not None
        procs = [self.owner, *self.borrowers]
        msgs: collections.Counter = collections.Counter(record for record, _mids in self._spec_messages())
        for p in procs:
            for c in self.borrowers:
                n = len(self._pending_tasks(p, c))
                if n:
                    msgs[TLARecord(type="PushTask", caller=p, worker=c)] += n
        owner_entry = self._entry(self.owner)
        freed = owner_entry is None or owner_entry.status == FREED
        if freed:
            msgs[TLARecord(type="FreeObject", owner=self.owner)] += 1
        local, submitted, contained = {}, {}, {}
        running: dict[ModelValue, Any] = {}
        waiting: dict[ModelValue, Any] = {}
        for p in procs:
            entry = self._entry(p)
            count = entry.local if entry is not None else 0
            if p != self.owner:
                rt = self.c.runtimes().get(self.addr[p])
                tasks = list(rt.core.executor.running.values()) if rt is not None else []
                mine = [r for r in tasks if self._carries_x_spec(r.spec)]
                by_caller = collections.Counter(self._proc_of(r.spec.owner) for r in mine if not r.registering)
                running[p] = function_value((q, by_caller.get(q, 0)) for q in procs)
                asking = collections.Counter(self._proc_of(r.spec.owner) for r in mine if r.registering)
                waiting[p] = function_value((q, asking.get(q, 0)) for q in procs)
                # each running task's argument is a ref object: the spec pins it through running
                count -= sum(1 for r in tasks if r.started and self._carries_x_spec(r.spec))
            local[p] = count
            submitted[p] = entry.submitted if entry is not None else 0
            contained[p] = len(entry.contained_in) if entry is not None else 0
        borrowers = owner_entry.borrowers if owner_entry is not None else {}
        subs, waits = {}, {}
        for b in self.borrowers:
            entry = self._entry(b)
            subs[b] = frozenset(self._proc_of(x.address) for x in (entry.sub_borrowers if entry is not None else ()))
            subs[b] |= frozenset(self._unanswered_handovers.get(b, ()))
            waits[b] = entry.owner_waiting if entry is not None else 0
        return {
            "local": function_value(local.items()),
            "submitted": function_value(submitted.items()),
            "contained": function_value(contained.items()),
            "running": function_value(running.items()),
            "waiting": function_value(waiting.items()),
            "borrowers": function_value((b, borrowers.get(self.addr[b], 0)) for b in self.borrowers),
            "subBorrowers": function_value(subs.items()),
            "removeWaits": function_value(waits.items()),
            "tasksLeft": self.max_tasks - self.submitted_tasks,
            "freed": freed,
            # No process here gets a value another owns (MaxServes is 0), so
            # none is served or on its way.
            "lending": function_value((b, function_value((r, 0) for r in self.borrowers)) for b in self.borrowers),
            "getting": function_value((b, 0) for b in self.borrowers),
            "servesLeft": 0,
            "msgs": function_value(msgs.items()),
            "passedOn": self.passed_on,
        }


    # ------------------------------------------------------------------ random program
    def _plan(self, target: ModelValue, budget: list[int]) -> dict[str, Any]:
        """A random plan for a task at ``target``, spending task budget."""
        rng = self.rng
        plan: dict[str, Any] = {
            "keep": rng.random() < 0.5,
            "return_x": self.return_refs and rng.random() < 0.5,
            "max_local": self.max_local,
            "submit": [],
        }
        others = [b for b in self.borrowers if b != target]
        if budget[0] > 0 and others and rng.random() < 0.6:
            sub = others[rng.randrange(len(others))]
            budget[0] -= 1
            plan["submit"].append((_resource(sub), self._plan(sub, budget)))
        return plan

    def offers(self) -> list[tuple[str, Any]]:
        assert self.c is not None
        c = self.c
        out: list[tuple[str, Any]] = []
        owner_addr = self.addr[self.owner]
        if self.tasks_left > 0 and self.x is not None:
            for b in sorted(self.owner_workers):
                out.append((f"submit to {b}", lambda b=b: self._submit(b)))
        for mid, env in c.network.in_flight():
            out.append((f"deliver {mid}", lambda mid=mid, env=env: self._deliver(mid, env)))
        if self.x is not None:
            out.append(("release x at the owner", self._release_x))
        for p, address in self.addr.items():
            if KEPT.get(address):
                out.append((f"release kept at {p}", lambda address=address: self._release(KEPT, address)))
            ready = [r for r in HELD.get(address, ()) if self._ready_at(address, r.object_id)]
            if ready:
                out.append((f"drop a result at {p}", lambda address=address, r=ready[0]: self._drop_result(address, r)))
            rt = c.runtimes().get(address)
            if rt is not None and any(not l.running for l in rt.core.submitter.leases.values()):
                out.append((f"timeout at {p}", lambda address=address: c.tick_and_settle(address)))
        return out

    def _ready_at(self, address: str, object_id: str) -> bool:
        assert self.c is not None
        rt = self.c.runtimes().get(address)
        ref = rt.core.refs.get_ref(object_id) if rt is not None else None
        return ref is not None and ref.status in (READY, "failed")

    async def _submit(self, b: ModelValue) -> None:
        assert self.c is not None
        budget = [self.tasks_left - 1]
        plan = self._plan(b, budget)
        self.tasks_left = budget[0]
        rt = self.c.drivers[self.addr[self.owner]]
        function_id, function = self._function
        ref = rt.submit_task(function_id, function, (shared(self.x), plan), {}, resources=((_resource(b), 1.0),), max_retries=0, name="ref_task")
        HELD[self.addr[self.owner]].append(ref)
        await self.c.settle()

    async def _deliver(self, mid: int, env: Envelope) -> None:
        assert self.c is not None
        if isinstance(env.msg, RequestLease):
            await self.c.refresh_views()
        if mid in dict(self.c.network.in_flight()):
            await self.c.deliver(mid)

    async def _release_x(self) -> None:
        assert self.c is not None
        self._user(self.addr[self.owner], "release")
        self.x = None
        gc.collect()
        await self.c.settle()

    async def _release(self, registry: dict[str, list[Any]], address: str) -> None:
        assert self.c is not None
        self._user(address, "release")
        registry[address].pop()
        gc.collect()
        await self.c.settle()

    async def _drop_result(self, address: str, ref: Any) -> None:
        assert self.c is not None
        rt = self.c.runtimes()[address]
        outer = rt.core.refs.get_ref(ref.object_id)
        if outer is not None and self.x_id in outer.contains:
            self._user(address, "release-contents")
        HELD[address].remove(ref)
        del ref
        gc.collect()
        await self.c.settle()

    # ------------------------------------------------------------------ recognition
    def snapshot_for_log(self, process: str, core: Any) -> Any:
        refs = getattr(core, "refs", None)
        if refs is None or self.x_id is None:
            return None
        ref = refs.get_ref(self.x_id)
        if ref is None:
            return None
        return {"status": ref.status, "local": ref.local}

    def _proc(self, address: str) -> ModelValue:
        try:
            return self.inv[address]
        except KeyError:
            raise StimulusError(f"process {address} is bound to no model value") from None

    def _carries_x(self, spec: Any) -> bool:
        return any(arg.value is not None and any(r.object_id == self.x_id for r in arg.value.refs) for arg in spec.args)

    def _subs(self, borrowers: Any) -> frozenset:
        """Sub-borrowers as the spec counts them: never the owner, which
        drops itself from a report on receipt (``handle_reply``) and which
        the spec never lists."""
        return frozenset(self._proc(b.address) for b in borrowers if b.address != self.addr[self.owner])

    def _reply_record(self, reply: TaskReply, caller: str, worker: str, *, strict: bool = False) -> TLARecord:
        """The spec's TaskReply. ``strict`` (replay): every sub-borrower as
        reported, and addresses bound to no model value shown as such."""
        info = next((i for i in reply.borrowed if i.object_id == self.x_id), None)
        if strict:
            subs = frozenset(self._proc_of(b.address) for b in info.borrowers) if info is not None else frozenset()
            return TLARecord(
                type="TaskReply",
                caller=self._proc_of(caller),
                worker=self._proc_of(worker),
                borrowing=bool(info.held) if info is not None else False,
                borrowers=subs,
                contained=any(r.object_id == self.x_id for r in reply.refs),
            )
        subs = self._subs(info.borrowers) if info is not None else frozenset()
        return TLARecord(
            type="TaskReply",
            caller=self._proc(caller),
            worker=self._proc(worker),
            borrowing=bool(info.held) if info is not None else False,
            borrowers=subs,
            contained=any(r.object_id == self.x_id for r in reply.refs),
        )

    def recognize(self, steps: list[Any]) -> list[LogLine]:
        lines: list[LogLine] = []

        def add(clock: int, process: str, action: str, **params: Any) -> None:
            lines.append(LogLine(clock, process, action, params))

        freed = False
        for s in steps:
            if isinstance(s, NetStep):
                continue
            if isinstance(s, UserStep):
                p = self._proc(s.process)
                kind = {"keep": "BorrowerAddLocalRef", "release": "HolderReleaseRef", "release-contents": "HolderReleaseContents"}[s.kind]
                add(s.clock, s.process, kind, **({"b": p} if kind == "BorrowerAddLocalRef" else {"p": p}))
                continue
            assert isinstance(s, CoreStep)
            if s.process not in self.inv:
                continue
            p = self._proc(s.process)
            event = s.event
            answered = False
            if isinstance(event, Submit) and self._carries_x(event.task):
                target = next((ModelValue(r[0].removeprefix("at-")) for r in event.task.resources if r[0].startswith("at-")), None)
                add(s.clock, s.process, "HolderSubmitWithRef", p=p, **({"c": target} if target is not None else {}))
            elif isinstance(event, Received):
                msg = event.msg
                if isinstance(msg, PushTask) and self._carries_x(msg.task):
                    add(s.clock, s.process, "BorrowerReceiveRef", b=p, p=self._proc(msg.task.owner))
                elif isinstance(msg, TaskReply):
                    m = self._reply_record(msg, s.process, event.src)
                    add(s.clock, s.process, "HolderHandleReply", p=p, w=self._proc(event.src), m=m)
                elif isinstance(msg, WaitForRefRemoved) and msg.object_id == self.x_id:
                    m = TLARecord(type="WaitForRefRemoved", owner=self.owner, borrower=p)
                    add(s.clock, s.process, "BorrowerHandleWaitForRefRemoved", b=p, m=m)
                    answered = True
                elif isinstance(msg, RefRemoved) and msg.object_id == self.x_id:
                    m = TLARecord(
                        type="RefRemoved",
                        owner=self.owner,
                        borrower=self._proc(msg.borrower),
                        borrowers=self._subs(msg.borrowers),
                    )
                    add(s.clock, s.process, "OwnerHandleRefRemoved", o=p, m=m)
                elif isinstance(msg, AddBorrower) and self.x_id in msg.object_ids:
                    m = TLARecord(type="AddBorrower", owner=self.owner, borrower=self._proc(msg.borrower))
                    add(s.clock, s.process, "OwnerHandleAddBorrower", o=p, m=m)
                elif isinstance(msg, BorrowerAdded) and self.x_id in msg.object_ids:
                    m = TLARecord(type="BorrowerAdded", owner=self.owner, borrower=p, ok=self.x_id not in msg.refused)
                    add(s.clock, s.process, "BorrowerHandleBorrowerAdded", b=p, m=m)
            elif isinstance(event, TaskDone):
                for e in s.effects:
                    if isinstance(e, Send) and isinstance(e.msg, TaskReply) and e.msg.task_id == event.task_id:
                        # every task of the program takes shared(x)
                        inside = any(r.object_id == self.x_id for r in e.msg.refs)
                        action = "WorkerReturnRefInValue" if inside else "WorkerFinishTask"
                        add(s.clock, s.process, action, w=p, p=self._proc(e.dst))
            for e in s.effects:
                if isinstance(e, Send) and isinstance(e.msg, RefRemoved) and e.msg.object_id == self.x_id:
                    if answered:
                        answered = False  # the answer the handled request gave at once
                    else:
                        add(s.clock, s.process, "BorrowerSendRefRemoved", b=p)
            if p == self.owner and not freed:
                after = s.after
                if s.before is not None and s.before["status"] != FREED and (after is None or after["status"] == FREED):
                    freed = True
                    add(s.clock, s.process, "OwnerFree", o=p)
            del event
        return lines

MAPPING = RefCountingMapping
