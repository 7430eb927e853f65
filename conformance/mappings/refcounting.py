"""RefCounting (spec/RefCounting.tla, paper §4.2) <-> the implementation.

Direction implemented: implementation -> model. A seeded random program
passes one object around and the event log of the run is checked by TLC
(:mod:`conformance.validate`). Replaying RefCounting traces would need the
harness to drive the user code *inside* running tasks one spec step at a
time (keep a ref, pass it on, finish); that is not done, so RefCounting
traces are generated but not replayed.

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
OwnerFree(o)                       the owner's entry for x is freed
=================================  ============================================
"""

from __future__ import annotations

import collections
import gc
import random
from typing import Any, Callable

from ownership.api import shared
from ownership.core.config import CoreConfig
from ownership.core.events import Received, Send, Submit, TaskDone
from ownership.core.messages import PushTask, RefRemoved, RequestLease, TaskReply, WaitForRefRemoved
from ownership.core.refcount import FREED, READY
from ownership.runtime.refs import _runtime_var
from ownership.runtime.transport import Envelope
from ownership.runtime.values import pack_function
from ownership.tla.values import ModelValue, TLARecord

from ..cluster import ModelCluster, NodeShape, StimulusError, model_cluster
from ..eventlog import CoreStep, LogLine, NetStep, UserStep
from . import Mapping

__all__ = ["RefCountingMapping", "MAPPING", "ref_task", "KEPT", "HELD", "USER_EVENT"]

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


def _resource(b: ModelValue) -> str:
    return f"at-{b.name}"


class RefCountingMapping(Mapping):
    spec = "RefCounting"
    log_only = "replaying RefCounting traces needs the harness to drive user code inside running tasks step by step (not done)"

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
        except KeyError as exc:
            raise ValueError(f"the constants lack {exc.args[0]}") from None
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

    # ------------------------------------------------------------------ cluster
    def cluster(self) -> Any:
        shapes = {"n0": NodeShape((), 0)}
        for b in self.borrowers:
            shapes[f"n{b.name}"] = NodeShape((("CPU", 4.0), (_resource(b), 4.0)), 1)
        config = CoreConfig(lease_idle_ticks=1, node_timeout_ticks=10**6, max_workers_per_node=1)
        return model_cluster(shapes, {self.addr[self.owner]: "n0"}, config=config)

    async def start(self, cluster: ModelCluster) -> None:
        self.c = cluster
        KEPT.clear()
        HELD.clear()
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

    async def apply(self, action: str, params: dict[str, Any]) -> None:
        raise StimulusError(f"RefCounting traces are not replayed: {self.log_only}")

    def project(self) -> dict[str, Any]:
        raise StimulusError(f"RefCounting traces are not replayed: {self.log_only}")

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
        """Sub-borrowers as the spec counts them. A borrower that returns x
        inside a value to the owner lists the owner among x's borrowers
        (``register_receiver``); the owner drops itself on receipt
        (``handle_reply``), and the spec never lists it: left out here."""
        return frozenset(self._proc(b.address) for b in borrowers if b.address != self.addr[self.owner])

    def _reply_record(self, reply: TaskReply, caller: str, worker: str) -> TLARecord:
        info = next((i for i in reply.borrowed if i.object_id == self.x_id), None)
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
