"""FateSharing (spec/FateSharing.tla, paper §4.3) <-> the implementation.

Binding of the model's values (from the trace's constants):

- node ``n`` is the node process named ``n``; the driver (``<<Root, 1>>``)
  is ``driver@<HeadNode>``;
- a spec worker ``<<x, k>>`` is one execution of task ``x``: the worker
  process the k-th PushTask of ``x`` (by any owner) went to, bound when the
  owner sends it (OwnerDispatch);
- task ``x`` is the task a body submits at ``OwnerSubmit(o, x)``; its
  return object id names ``x`` from then on.

The program runs as written in the model: every task runs
:func:`fate_body`, a scripted body that does the steps of ``Body[x]`` one
at a time. A submit and the body's return wait for the trace's step (the
harness sets the body's event, then lets the cluster settle); a get is
issued as soon as the body reaches it, and its result is recorded. A
task's value is the set of task names whose results flowed into it (its
name and its arguments' values), so ``RecoveredValueIsLineageValue`` is
checked on real values. The bodies keep every reference they create or
receive, so nothing is freed behind the spec's back (the spec leaves
reference counting out).

The cluster: every node has CPU to spare and one marker resource per task,
so each task is its own scheduling key (a lease is never reused by
another task); leases are never returned (no tick reaches a worker), so a
worker process runs one execution, as in the spec. The head node starts
with one worker and the others with one per possible execution placed
there: the owner's request goes to its own node, which grants it while it
has an idle worker and redirects it to the other node (spillback)
otherwise, and once that node is known dead it starts a worker. That is
the spec's ``PlaceOf`` for models whose head node runs one task (Small,
Medium). Values go to the node's store (``inline_threshold=0``), so a node
loses its copies with it.

Stimuli: ``OwnerSubmit`` and ``WorkerFinishTask`` release the body's next
step (finishing also delivers the PutObject to the node's store, which
pins the copy and relays the reply); ``OwnerDispatch`` delivers the lease
request, spillback and grant of the task until its PushTask is sent;
``WorkerExecute`` and ``OwnerHandleReply`` deliver the one message;
``WorkerCrash``/``OwnerCrash``/``NodeCrash`` crash the process;
``HeadDetectNodeDeath`` lets heartbeat rounds pass until the head declares
the node dead. Messages below the spec's level (gets, pulls, copies,
registrations, failure notifications and their relays) are delivered as
soon as they are sent.

Eager actions (no stimulus: the implementation takes them inside the step
that enables them): SchedulerDetectWorkerDeath (the node sees its worker
exit at once), the handling of a notification (HolderFateShare,
OwnerHandleFailure, StoreHandleFailure: notifications are delivered at
once), OwnerReexecute and OwnerReconstruct (inside the failure scan, or
the step that makes a lost object needed) and HolderGet (a get returns as
soon as the owner can answer).

Choice: the spec places a task on the head node as soon as its node is
down; the implementation learns that from the head, so traces dispatch a
task whose node is down only once its death is announced.

Projection: every variable but ``lastAction``. ``crashes`` is the
harness's count of the crashes it caused. The implementation stops the
leased workers of a dead owner (the node reclaims the owner's leases),
where the spec's worker fails its body and stays: such a worker projects
as alive with a failed body, its death is not one the spec announces, and
a PushTask that was on its way to it stays in flight until the trace
delivers it (the execution then fails, as the spec's doomed one does).

Event log (implementation -> model, :meth:`recognize`): one line per spec
step, with the parameters ``w`` (the acting or dead worker), ``x`` and
``n`` it fixes (never ``m``: TLC picks the message). Core steps give
OwnerSubmit (a Submit), OwnerDispatch (a PushTask sent), WorkerExecute (a
PushTask received), WorkerFinishTask (a task's value), OwnerHandleReply,
SchedulerDetectWorkerDeath (a node sees a crashed worker exit),
HeadDetectNodeDeath (the head's tick, or its last unanswered probe, that
publishes NodeDied), NodeFenced (a node told of its own death),
StoreHandleFailure (a node pinning a copy of the dead hears of it), and,
where a notification finds a subscription (a task pending on the dead, a
copy on the dead node, a running task holding the dead's reference),
HolderFateShare then OwnerHandleFailure; OwnerReexecute and
OwnerReconstruct come from the owner's task table before and after each
step. User code logs its gets (HolderGet) and the driver's end, the
harness its crashes and the workers a node stops for their dead owner
(HolderFateShare). The driver's first submits happen while the cluster
starts, before the recorder: they open the log.
"""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
import trio

from ownership.core.config import CoreConfig
from ownership.core.events import PeerLost, ProbeResult, Received, Send, Submit, TaskDone, Tick
from ownership.core.messages import (
    ClusterView,
    Heartbeat,
    LeaseGranted,
    NodeDied,
    PushTask,
    PutObject,
    RequestLease,
    Spillback,
    TaskReply,
    WorkerDied,
)
from ownership.core.refcount import FAILED, LOST, PENDING, READY
from ownership.core.submitter import RUNNING
from ownership.errors import OwnershipError
from ownership.runtime.refs import Shared, _runtime_var, current_task_id
from ownership.runtime.transport import Envelope
from ownership.runtime.values import pack_function, unpack
from ownership.runtime.worker import error_info_of
from ownership.tla.values import ModelValue, TLARecord, format_value, function_value

from ..cluster import ActiveMapping, ModelCluster, NodeShape, StimulusError
from ..eventlog import CoreStep, LogLine, NetStep, UserStep
from . import Mapping

__all__ = ["FateSharingMapping", "MAPPING", "fate_body"]

#: the mapping whose cluster runs now (bodies find their script through it)
_ACTIVE = ActiveMapping("FateSharing")

#: error kinds -> the spec's error values
_ERRORS = {"owner_died": "OwnerDied", "object_lost": "ObjectLost", "worker_crashed": "WorkerCrashed"}

#: messages the spec models (or folds into a step): they wait for the trace
_HELD = (RequestLease, Spillback, LeaseGranted, PushTask, PutObject, TaskReply, Heartbeat, ClusterView)


async def fate_body(name: str, by_value: int, *args: Any) -> frozenset[str]:
    """The user code of every task: the steps of the model's ``Body``."""
    mapping = _ACTIVE.get()
    rt = _runtime_var.get()
    return await mapping.run_body(rt, current_task_id(), name, list(args[:by_value]), list(args[by_value:]))


@attrs.define(eq=False)
class _Exec:
    """One execution (a spec worker) and its body's state, as user code sees it."""

    key: tuple[ModelValue, int]
    address: str
    task_id: str | None = None
    attempt: int = 0
    owner: tuple | None = None
    #: the PushTask reached the worker (or, for a stopped worker, the trace delivered it)
    delivered: bool = False
    started: bool = False
    body: str = "idle"
    pc: int = 1
    borrowed: frozenset = frozenset()
    val: frozenset = frozenset()
    got: set = attrs.Factory(set)
    #: the model task -> the ObjectRef this body holds for it (children and borrowed)
    refs: dict = attrs.Factory(dict)
    go: trio.Event = attrs.Factory(trio.Event)
    #: ctx when an environment crash froze it (the spec keeps a dead worker's ctx)
    frozen: TLARecord | None = None
    #: the node stopped this process because its owner died (see the module doc)
    stopped: bool = False


class FateSharingMapping(Mapping):
    spec = "FateSharing"
    eager = frozenset(
        {
            "SchedulerDetectWorkerDeath",
            "HolderFateShare",
            "OwnerHandleFailure",
            "StoreHandleFailure",
            "OwnerReexecute",
            "OwnerReconstruct",
            "HolderGet",
            "OwnerSubmit",
        }
    )

    def __init__(self, constants: dict[str, Any]) -> None:
        super().__init__(constants)
        k = constants
        self.root: ModelValue = k["Root"]
        self.nodes: list[ModelValue] = sorted(k["Nodes"])
        self.head_node: ModelValue = k["HeadNode"]
        self.no_node: ModelValue = k["NoNode"]
        self.objects: list[ModelValue] = sorted(t for t in k["Tasks"] if t != self.root)
        self.parent: dict = dict(k["Parent"])
        self.args: dict = {x: frozenset(v) for x, v in dict(k["Args"]).items()}
        self.shared_args: dict = {x: frozenset(v) for x, v in dict(k["SharedArgs"]).items()}
        self.body: dict = {t: tuple(v) for t, v in dict(k["Body"]).items()}
        self.retries: dict = dict(k["Retries"])
        self.placement: dict = dict(k["Placement"])
        self.max_exec = int(k["MaxCrashes"]) + 1
        self.driver = (self.root, 1)
        self.no_worker = (self.root, 0)
        self.workers = [self.driver] + [(x, i) for x in self.objects for i in range(1, self.max_exec + 1)]
        self.by_name = {x.name: x for x in self.objects}
        self.c: ModelCluster | None = None
        self.execs: dict[tuple, _Exec] = {}
        #: (worker address, task id) -> execution
        self.by_task: dict[tuple[str, str], _Exec] = {}
        #: impl task id -> (model task, owner execution)
        self.task_of: dict[str, tuple[ModelValue, tuple]] = {}
        #: (owner execution, model task) -> the executions it dispatched, in order
        self.dispatched: dict[tuple, list[tuple]] = {}
        self.crashes = 0
        #: processes the harness crashed (with the workers of a crashed node)
        self.env_dead: set[str] = set()
        #: worker processes crashed one by one (their death is announced)
        self.env_dead_workers: set[str] = set()
        #: PushTasks the network dropped when it stopped their worker: execution -> spec message
        self.virtual: dict[tuple, TLARecord] = {}
        self._seen_events = 0
        self._function = pack_function(fate_body)
        #: set by conformance.eventlog.random_workload: user code and the harness log what no core sees
        self.recorder: Any = None
        self.rng: Any = None

    # ------------------------------------------------------------------ trace generation
    @classmethod
    def model_choices(cls, constants: dict[str, Any]) -> tuple[list[str], list[str]]:
        return [], [
            "lastAction'.name = \"OwnerDispatch\" => "
            "(Placement[lastAction'.params.x] \\in up \\/ Placement[lastAction'.params.x] \\in announcedNodes)"
        ]

    # ------------------------------------------------------------------ cluster
    def _pool(self, n: ModelValue) -> int:
        placed = sum(1 for x in self.objects if self.placement[x] == n)
        if n == self.head_node:
            return min(placed, 1)
        return placed * self.max_exec

    def cluster(self) -> Any:
        markers = tuple((f"task-{x.name}", 1000.0) for x in self.objects)
        shapes = {n.name: NodeShape(tuple(sorted((("CPU", 1000.0), *markers))), self._pool(n)) for n in self.nodes}
        config = CoreConfig(
            inline_threshold=0,
            lease_idle_ticks=1_000_000,
            node_timeout_ticks=1,
            suspect_on_connection_loss=False,
            pipeline_depth=1,
            max_pending_lease_requests=1,
            return_idle_leases_on_request=False,
            max_workers_per_node=64,
        )
        return self._cluster(shapes, config)

    def _cluster(self, shapes: dict[str, NodeShape], config: CoreConfig) -> contextlib.AbstractAsyncContextManager[ModelCluster]:
        return _ACTIVE.cluster(self, shapes, config, self.head_node.name)

    def _driver_address(self) -> str:
        return _ACTIVE.driver_address(self.head_node.name)

    async def start(self, cluster: ModelCluster) -> None:
        self.c = cluster
        cluster.network.observers.append(self._network_event)
        self._seen_events = len(cluster.events)
        driver = _Exec(self.driver, self._driver_address(), delivered=True, started=True, body="running")
        self.execs[self.driver] = driver
        rt = cluster.drivers[driver.address]
        cluster.nursery.start_soon(self._drive_program, rt, driver)
        await self.settle()

    async def _drive_program(self, rt: Any, e: _Exec) -> None:
        _runtime_var.set(rt)
        await self._steps(rt, e)

    def _network_event(self, event: Any) -> None:
        """A worker stopped by its node (not by the harness) fate-shared with its owner."""
        if event.kind == "crash" and event.address is not None and event.address not in self.env_dead:
            for e in self.execs.values():
                if e.address == event.address and e.frozen is None:
                    e.stopped = True
                    if e.body == "running" and self.recorder is not None:
                        self.recorder.user(e.address, "HolderFateShare", {"w": e.key})
                    if e.body == "running" or (e.delivered and not e.started):
                        e.body = "failed"
            # a PushTask on its way to it is dropped with it: the spec still delivers it
            for mid, env in self.c.network.in_flight() if self.c else ():
                if env.dst == event.address and isinstance(env.msg, PushTask):
                    e = self._exec_of_push(env)
                    if e is not None:
                        self.virtual[e.key] = self._push_record(env, e)

    # ------------------------------------------------------------------ bodies
    async def run_body(self, rt: Any, task_id: str | None, name: str, values: list[Any], shared: list[Any]) -> frozenset[str]:
        e = self.by_task.get((rt.address, task_id or ""))
        if e is None:
            raise RuntimeError(f"task {task_id} on {rt.address} was not dispatched by the trace")
        x = self.by_name[name]
        e.started = True
        e.body = "running"
        val = {name}
        for v in values:
            val |= set(v)
        e.val = frozenset(val)
        borrowed = set()
        for ref in shared:
            y, owner = self.task_of[ref.object_id.removesuffix(".r")]
            e.refs[y] = ref
            borrowed.add((y, owner))
        e.borrowed = frozenset(borrowed)
        try:
            await self._steps(rt, e)
        except BaseException:
            if e.frozen is None and e.body == "running":
                e.body = "failed"
            raise
        return e.val if isinstance(e.val, frozenset) else frozenset(e.val)

    async def _steps(self, rt: Any, e: _Exec) -> None:
        t = e.key[0]
        for op in self.body[t]:
            y = op["obj"]
            if op["op"] == "submit":
                e.refs[y] = self._submit(rt, e, y)
            else:
                try:
                    value = await rt.get_one(e.refs[y])
                    got = TLARecord(obj=y, res="value", val=frozenset(self.by_name[s] for s in value))
                except OwnershipError as exc:
                    kind = error_info_of(exc).kind
                    got = TLARecord(obj=y, res=_ERRORS.get(kind, kind), val=frozenset())
                e.got.add(got)
                if self.recorder is not None:
                    self.recorder.user(e.address, "HolderGet", {"w": e.key, "x": y})
            e.pc += 1
        await self._wait_go(e)
        e.body = "finished"
        if self.recorder is not None and e.key == self.driver:
            self.recorder.user(e.address, "WorkerFinishTask", {"w": e.key})

    async def _wait_go(self, e: _Exec) -> None:
        await e.go.wait()
        e.go = trio.Event()

    def _submit(self, rt: Any, e: _Exec, y: ModelValue) -> Any:
        by_value = [e.refs[z] for z in sorted(self.args[y])]
        shared = [Shared(e.refs[z]) for z in sorted(self.shared_args[y])]
        function_id, function = self._function
        resources = (("CPU", 1.0), (f"task-{y.name}", 1.0))
        ref = rt.submit_task(
            function_id, function, (y.name, len(by_value), *by_value, *shared), {}, resources=resources, max_retries=self.retries[y], name=y.name
        )
        self.task_of[ref.object_id.removesuffix(".r")] = (y, e.key)
        return ref

    # ------------------------------------------------------------------ delivery
    async def settle(self) -> None:
        """Let every process react, delivering the messages below the spec's level as they come."""
        assert self.c is not None
        net = self.c.network
        while True:
            await net.settle()
            self._observe()
            auto = next((mid for mid, env in net.in_flight() if not isinstance(env.msg, _HELD)), None)
            if auto is None:
                return
            net.deliver(auto)

    def _observe(self) -> None:
        """Bind executions to the PushTasks owners send, in order."""
        assert self.c is not None
        events = self.c.events
        for event in events[self._seen_events :]:
            if event.envelope is None:
                continue
            env = event.envelope
            if event.kind == "send" and isinstance(env.msg, PushTask):
                tid = env.msg.task.task_id
                if tid not in self.task_of or (env.dst, tid) in self.by_task:
                    continue
                x, owner = self.task_of[tid]
                k = 1 + sum(1 for key in self.execs if key[0] == x)
                if k > self.max_exec:
                    continue  # shows up as a difference: the spec has no such execution
                e = self.execs[(x, k)] = _Exec((x, k), env.dst, task_id=tid, attempt=env.msg.attempt, owner=owner)
                self.by_task[(env.dst, tid)] = e
                self.dispatched.setdefault((owner, x), []).append((x, k))
            elif event.kind == "deliver" and isinstance(env.msg, PushTask):
                e = self.by_task.get((env.dst, env.msg.task.task_id))
                if e is not None:
                    e.delivered = True
        self._seen_events = len(events)

    def _exec_of_push(self, env: Envelope) -> _Exec | None:
        return self.by_task.get((env.dst, env.msg.task.task_id))

    # ------------------------------------------------------------------ stimuli
    async def apply(self, action: str, params: dict[str, Any]) -> None:
        assert self.c is not None
        handler = getattr(self, f"_do_{action}", None)
        if handler is None:
            raise StimulusError(f"the FateSharing mapping has no stimulus for {action}")
        await handler(params)
        await self.settle()

    def _exec(self, w: Any) -> _Exec:
        e = self.execs.get(tuple(w))
        if e is None:
            raise StimulusError(f"no execution is bound to {format_value(w)}")
        return e

    async def _release(self, w: Any) -> None:
        e = self._exec(w)
        if e.frozen is not None or e.body != "running":
            raise StimulusError(f"the body of {format_value(w)} is not running")
        e.go.set()
        await self.settle()

    async def _do_WorkerFinishTask(self, p: dict[str, Any]) -> None:
        e = self._exec(p["w"])
        await self._release(p["w"])
        assert self.c is not None
        # the value reaches the node's store, which pins it and relays the reply
        for mid, env in self.c.network.in_flight():
            if env.src == e.address and isinstance(env.msg, PutObject):
                await self.c.deliver(mid)

    async def _do_OwnerDispatch(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        o, x = self._exec(p["w"]), p["x"]
        ref = o.refs.get(x)
        if ref is None:
            raise StimulusError(f"{format_value(p['w'])} has not submitted {x.name}")
        tid = ref.object_id.removesuffix(".r")
        requests: set[str] = set()
        for _ in range(8):
            for _mid, env in self.c.network.in_flight():
                if env.src == o.address and isinstance(env.msg, PushTask) and env.msg.task.task_id == tid:
                    return
            match = None
            for mid, env in self.c.network.in_flight():
                msg = env.msg
                if isinstance(msg, RequestLease) and msg.task_id == tid:
                    requests.add(msg.request_id)
                    match = mid
                elif isinstance(msg, (Spillback, LeaseGranted)) and msg.request_id in requests:
                    match = mid
                if match is not None:
                    break
            if match is None:
                raise StimulusError(f"no lease request of {x.name} (task {tid}) is in flight")
            await self.c.deliver(match)
            await self.settle()
        raise StimulusError(f"{x.name} was not pushed to a worker after its lease request's round trips")

    async def _do_WorkerExecute(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        e = self._exec(p["w"])
        if e.key in self.virtual:
            del self.virtual[e.key]  # its worker was stopped: the execution fails, as the spec's doomed one
            e.delivered = True
            e.body = "failed"
            if self.recorder is not None:
                self.recorder.user(e.address, "WorkerExecute", {"w": e.key, "x": e.key[0]})
            return
        for mid, env in self.c.network.in_flight():
            if env.dst == e.address and isinstance(env.msg, PushTask) and env.msg.task.task_id == e.task_id:
                await self.c.deliver(mid)
                return
        raise StimulusError(f"no PushTask to {format_value(p['w'])} is in flight")

    async def _do_OwnerHandleReply(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        m = p["m"]
        target = self._exec(m["dst"])
        for mid, env in self.c.network.in_flight():
            if env.dst == target.address and isinstance(env.msg, TaskReply) and self._reply_record(env) == m:
                await self.c.deliver(mid)
                return
        raise StimulusError(f"no message in flight is {format_value(m)}")

    def _crash(self, address: str) -> None:
        assert self.c is not None
        doomed = {address, *self.c._descendants(address)}
        self.env_dead |= doomed
        for e in self.execs.values():
            if e.address in doomed and e.frozen is None:
                e.frozen = self._ctx(e)
        self.c.crash(address)
        self.crashes += 1

    async def _do_WorkerCrash(self, p: dict[str, Any]) -> None:
        e = self._exec(p["w"])
        self.env_dead_workers.add(e.address)
        if self.recorder is not None:
            owns = any(self.parent[x] == e.key[0] for x in e.refs)
            self.recorder.user(e.address, "OwnerCrash" if owns else "WorkerCrash", {"w": e.key})
        self._crash(e.address)

    _do_OwnerCrash = _do_WorkerCrash

    async def _do_NodeCrash(self, p: dict[str, Any]) -> None:
        if self.recorder is not None:
            self.recorder.user(p["n"].name, "NodeCrash", {"n": p["n"]})
        self._crash(p["n"].name)

    async def _do_HeadDetectNodeDeath(self, p: dict[str, Any]) -> None:
        assert self.c is not None and self.c.head is not None
        address = p["n"].name
        await self.c.declare_node_dead(address)

    # ------------------------------------------------------------------ projection
    def _node_of(self, address: str) -> ModelValue:
        name = address.rpartition("@")[2] if "@" in address else address
        return ModelValue(name)

    def _msg(self, kind: str, x: Any, o: Any, w: Any, n: Any, shared: frozenset, err: str, dst: Any) -> TLARecord:
        return TLARecord(
            type=kind, task=x, owner=o, worker=w, node=n, shared=shared, err=err, dst=dst, dstNode=self.no_node
        )

    def _push_record(self, env: Envelope, e: _Exec) -> TLARecord:
        shared = set()
        for arg in env.msg.task.args:
            if arg.value is not None:
                for info in arg.value.refs:
                    bound = self.task_of.get(info.object_id.removesuffix(".r"))
                    if bound is not None:
                        shared.add(bound)
        x = e.key[0]
        return self._msg("PushTask", x, e.owner, e.key, self._node_of(e.address), frozenset(shared), "", e.key)

    def _reply_record(self, env: Envelope) -> TLARecord | None:
        msg: TaskReply = env.msg
        bound = self.task_of.get(msg.task_id)
        e = self.by_task.get((msg.worker, msg.task_id))
        if bound is None or e is None:
            return None
        err = "" if msg.error is None else _ERRORS.get(msg.error.kind, msg.error.kind)
        return self._msg("TaskReply", bound[0], bound[1], e.key, self._node_of(e.address), frozenset(), err, bound[1])

    def _ctx(self, e: _Exec) -> TLARecord:
        if e.frozen is not None:
            return e.frozen
        if not e.delivered:
            return TLARecord(owner=self.no_worker, borrowed=frozenset(), pc=1, body="idle", val=frozenset())
        owner = e.owner if e.owner is not None else self.no_worker
        if not e.started:
            # doomed at receipt, or an argument failed: the body never ran
            return TLARecord(owner=owner, borrowed=frozenset(), pc=1, body="failed", val=frozenset())
        val = frozenset(self.by_name[s] for s in e.val) if e.key != self.driver else frozenset()
        return TLARecord(owner=owner, borrowed=e.borrowed, pc=e.pc, body=e.body, val=val)

    def _core(self, address: str) -> Any:
        assert self.c is not None
        rt = self.c.workers.get(address) or self.c.drivers.get(address)
        return rt.core if rt is not None else None

    def _entry(self, o: _Exec, x: ModelValue) -> TLARecord:
        none = TLARecord(st="none", worker=self.no_worker, locs=frozenset(), budget=0, err="")
        ref = o.refs.get(x)
        core = self._core(o.address)
        if ref is None or core is None or self.parent[x] != o.key[0]:
            return none
        r = core.refs.table.get(ref.object_id)
        task = core.submitter.tasks.get(ref.object_id.removesuffix(".r"))
        if r is None:
            return TLARecord(st=f"<forgotten {ref.object_id}>", worker=self.no_worker, locs=frozenset(), budget=0, err="")
        runs = self.dispatched.get((o.key, x), [])
        worker = runs[-1] if runs else self.no_worker
        budget = task.retries_left if task is not None else -1
        err = ""
        locs = frozenset(self._node_of(n) for n in r.locations)
        if r.status == FAILED:
            st = "error"
            err = _ERRORS.get(r.error.kind, r.error.kind) if r.error is not None else "?"
        elif r.status == READY:
            st = "ready"
        elif r.status == LOST:
            st = "lost"
        elif r.status == PENDING:
            st = "pending" if task is not None and task.state == RUNNING else "waiting"
        else:
            st = f"<{r.status}>"
        if st != "ready":
            # a stale run's copy the owner keeps for later is no location of the spec's entry yet
            locs = frozenset()
        return TLARecord(st=st, worker=worker, locs=locs, budget=budget, err=err)

    def _status(self, w: tuple) -> str:
        assert self.c is not None
        e = self.execs.get(w)
        if e is None:
            return "unborn"
        if e.address in self.env_dead:
            return "dead"
        return "alive"

    def project(self) -> dict[str, Any]:
        assert self.c is not None and self.c.head is not None
        self._observe()
        net = self.c.network
        state: dict[str, Any] = {
            "up": frozenset(n for n in self.nodes if net.alive(n.name)),
            "crashes": self.crashes,
            "announcedNodes": frozenset(
                n for n in self.nodes if (r := self.c.head.core.nodes.get(n.name)) is not None and not r.alive
            ),
        }
        status, node_of, ctx, got, table = {}, {}, {}, {}, {}
        for w in self.workers:
            e = self.execs.get(w)
            status[w] = self._status(w)
            node_of[w] = self._node_of(e.address) if e is not None else self.head_node
            ctx[w] = self._ctx(e) if e is not None else TLARecord(
                owner=self.no_worker, borrowed=frozenset(), pc=1, body="idle", val=frozenset()
            )
            got[w] = frozenset(e.got) if e is not None else frozenset()
            children = [x for x in self.objects if self.parent[x] == w[0]]
            table[w] = function_value((x, self._entry(e, x) if e is not None else self._entry_none()) for x in children)
        announced = frozenset(
            w for w, e in self.execs.items() if e.address in self.env_dead_workers and e.address in self.c.head.core.published
        )
        copies = set()
        for n in self.nodes:
            rt = self.c.runtimes().get(n.name)
            if rt is None:
                continue
            for oid, stored in rt.core.store.objects.items():
                bound = self.task_of.get(oid.removesuffix(".r"))
                if bound is None:
                    copies.add(TLARecord(obj=f"<{oid}>", owner=self.no_worker, node=n, val=frozenset()))
                    continue
                value = unpack(stored.value, lambda info: None)
                copies.add(TLARecord(obj=bound[0], owner=bound[1], node=n, val=frozenset(self.by_name[s] for s in value)))
        msgs = set(self.virtual.values())
        for _mid, env in net.in_flight():
            if isinstance(env.msg, PushTask):
                e = self._exec_of_push(env)
                if e is not None:
                    msgs.add(self._push_record(env, e))
            elif isinstance(env.msg, TaskReply):
                record = self._reply_record(env)
                if record is not None:
                    msgs.add(record)
            elif not isinstance(env.msg, _HELD):
                msgs.add(TLARecord(type=f"<{type(env.msg).__name__} {env.src} -> {env.dst}>"))
        state.update(
            status=function_value(status.items()),
            nodeOf=function_value(node_of.items()),
            ctx=function_value(ctx.items()),
            got=function_value(got.items()),
            table=function_value(table.items()),
            copies=frozenset(copies),
            announced=announced,
            msgs=frozenset(msgs),
        )
        return state

    def _entry_none(self) -> TLARecord:
        return TLARecord(st="none", worker=self.no_worker, locs=frozenset(), budget=0, err="")

    # ------------------------------------------------------------------ event log (implementation -> model)
    def offers(self) -> list[tuple[str, Any]]:
        """The stimuli a random environment may give now (within the model's crash budget)."""
        assert self.c is not None and self.c.head is not None
        c = self.c
        out: list[tuple[str, Any]] = []

        def offer(name: str, action: str, params: dict[str, Any]) -> None:
            out.append((name, lambda: self.apply(action, params)))

        undetected = [n for n in self.nodes if not c.network.alive(n.name) and self.c.head.core.nodes[n.name].alive]
        for key, e in sorted(self.execs.items(), key=lambda kv: (kv[0][0].name, kv[0][1])):
            alive = c.network.alive(e.address) and e.frozen is None
            if alive and e.started and e.body == "running" and e.pc > len(self.body[key[0]]):
                offer(f"finish {format_value(key)}", "WorkerFinishTask", {"w": key})
            if alive and not undetected:
                for x, ref in sorted(e.refs.items(), key=lambda kv: kv[0].name):
                    tid = ref.object_id.removesuffix(".r")
                    if self.parent[x] == key[0] and any(
                        isinstance(env.msg, RequestLease) and env.msg.task_id == tid for _mid, env in c.network.in_flight()
                    ):
                        offer(f"dispatch {x.name}", "OwnerDispatch", {"w": key, "x": x})
            if key in self.virtual:
                offer(f"execute {format_value(key)}", "WorkerExecute", {"w": key})
        for _mid, env in c.network.in_flight():
            if isinstance(env.msg, PushTask) and (e := self._exec_of_push(env)) is not None:
                offer(f"execute {format_value(e.key)}", "WorkerExecute", {"w": e.key})
            elif isinstance(env.msg, TaskReply) and (m := self._reply_record(env)) is not None:
                offer(f"reply {format_value(m['task'])}", "OwnerHandleReply", {"w": m["dst"], "m": m})
        # Crashes are offered now and then, so that runs also get far into the program first.
        if self.crashes < int(self.constants["MaxCrashes"]) and (self.rng is None or self.rng.random() < 0.2):
            for key, e in sorted(self.execs.items(), key=lambda kv: (kv[0][0].name, kv[0][1])):
                if key != self.driver and c.network.alive(e.address) and not e.stopped:
                    offer(f"crash {format_value(key)}", "WorkerCrash", {"w": key})
            for n in self.nodes:
                if n != self.head_node and c.network.alive(n.name):
                    offer(f"crash {n.name}", "NodeCrash", {"n": n})
        for n in undetected:
            offer(f"detect {n.name}", "HeadDetectNodeDeath", {"n": n})
        return out

    def snapshot_for_log(self, process: str, core: Any) -> Any:
        """What a failure notification finds at a process (its subscriptions), and its tasks."""
        sub = getattr(core, "submitter", None)
        if sub is not None:
            return {
                "tasks": {tid: (t.state, t.retries_left, t.location) for tid, t in sub.tasks.items()},
                "refs": {
                    oid: (r.status, frozenset(r.locations), r.error.kind if r.error is not None else None)
                    for oid, r in core.refs.table.items()
                    if r.owned
                },
                "running": {
                    tid: frozenset({r.spec.owner, *(i.owner for i in r.arg_refs)}) for tid, r in core.executor.running.items()
                },
            }
        store = getattr(core, "store", None)
        if store is not None:
            return {"store": {oid: o.owner for oid, o in store.objects.items()}}
        return None

    def recognize(self, steps: list[CoreStep | NetStep | UserStep]) -> list[LogLine]:
        """The spec actions of a recorded run, in clock order."""
        lines: list[LogLine] = []

        def add(clock: int, process: str, action: str, **params: Any) -> None:
            lines.append(LogLine(clock, process, action, {k: v for k, v in params.items() if v is not None}))

        # The driver's program starts with the cluster, before the recorder
        # does: its first submits are the log's first lines.
        recorded = {s.event.task.task_id for s in steps if isinstance(s, CoreStep) and isinstance(s.event, Submit)}
        for tid, (x, owner) in sorted(self.task_of.items()):
            if tid not in recorded and owner == self.driver and self.execs[owner].refs.get(x) is not None:
                if self.execs[owner].refs[x].object_id == f"{tid}.r":
                    add(0, self.execs[owner].address, "OwnerSubmit", w=owner, x=x)

        for s in steps:
            if isinstance(s, NetStep):
                continue  # crashes are the harness's own steps (UserStep); losses are part of a crash
            if isinstance(s, UserStep):
                add(s.clock, s.process, s.kind, **s.detail)
                continue
            p, event = s.process, s.event
            sends = [e for e in s.effects if isinstance(e, Send)]
            if p == "head":
                # A heartbeat timeout (Tick) or the last unanswered probe of a
                # node whose connection dropped (ProbeResult).
                if isinstance(event, (Tick, ProbeResult)):
                    for e in sends:
                        if isinstance(e.msg, NodeDied) and e.dst != e.msg.node:
                            add(s.clock, p, "HeadDetectNodeDeath", n=ModelValue(e.msg.node))
                            break
                continue
            if p in {n.name for n in self.nodes}:
                if isinstance(event, PeerLost) and event.address in self.env_dead:
                    e = self._exec_at(event.address)
                    if e is not None:
                        add(s.clock, p, "SchedulerDetectWorkerDeath", w=e.key, n=ModelValue(p))
                elif isinstance(event, Received) and isinstance(event.msg, NodeDied) and event.msg.node == p:
                    add(s.clock, p, "NodeFenced", n=ModelValue(p))  # declared dead while up: it stops
                elif isinstance(event, Received) and isinstance(event.msg, (WorkerDied, NodeDied)):
                    dead = self._dead_in(event.msg)
                    if any(owner in dead for owner in (s.before or {}).get("store", {}).values()):
                        add(s.clock, p, "StoreHandleFailure", n=ModelValue(p))
                continue
            e = self._exec_at(p)
            if e is None:
                continue
            if isinstance(event, Submit):
                bound = self.task_of.get(event.task.task_id)
                if bound is not None:
                    add(s.clock, p, "OwnerSubmit", w=bound[1], x=bound[0])
            elif isinstance(event, TaskDone) and event.error is None:
                done = self.by_task.get((p, event.task_id))
                if done is not None:
                    add(s.clock, p, "WorkerFinishTask", w=done.key)
            elif isinstance(event, Received):
                msg = event.msg
                if isinstance(msg, PushTask):
                    run = self.by_task.get((p, msg.task.task_id))
                    if run is not None:
                        add(s.clock, p, "WorkerExecute", w=run.key, x=run.key[0])
                elif isinstance(msg, TaskReply):
                    bound = self.task_of.get(msg.task_id)
                    if bound is not None:
                        add(s.clock, p, "OwnerHandleReply", w=bound[1], x=bound[0])
                elif isinstance(msg, (WorkerDied, NodeDied)):
                    self._recognize_failure(s, e, msg, add)
            for send in sends:
                if isinstance(send.msg, PushTask):
                    run = self.by_task.get((send.dst, send.msg.task.task_id))
                    if run is not None and run.owner is not None:
                        add(s.clock, p, "OwnerDispatch", w=run.owner, x=run.key[0], n=self._node_of(send.dst))
            self._recognize_recovery(s, add)
        return lines

    def _exec_at(self, address: str) -> _Exec | None:
        """The execution a process hosts (the last one bound to it)."""
        found = [e for e in self.execs.values() if e.address == address]
        return found[-1] if found else None

    def _dead_in(self, msg: WorkerDied | NodeDied) -> set[str]:
        if isinstance(msg, WorkerDied):
            return {msg.worker}
        return set(msg.workers) | {e.address for e in self.execs.values() if self._node_of(e.address).name == msg.node}

    def _recognize_failure(self, s: CoreStep, e: _Exec, msg: WorkerDied | NodeDied, add: Any) -> None:
        """A notification reached a worker: the spec delivers it only where it subscribed."""
        dead = self._dead_in(msg)
        dead_nodes = {msg.node} if isinstance(msg, NodeDied) else set()
        before, after = s.before or {}, s.after or {}
        pending = any(state == RUNNING and where in dead for state, _r, where in before.get("tasks", {}).values())
        copies = any(st == READY and locs & dead_nodes for st, locs, _k in before.get("refs", {}).values())
        held = {tid for tid, owners in before.get("running", {}).items() if owners & dead}
        if not (pending or copies or held):
            return
        for tid in sorted(held):
            run = self.by_task.get((s.process, tid))
            if run is not None and tid not in after.get("running", {}):
                add(s.clock, s.process, "HolderFateShare", w=run.key)
        add(s.clock, s.process, "OwnerHandleFailure", w=e.key)

    def _recognize_recovery(self, s: CoreStep, add: Any) -> None:
        """Re-executions and reconstructions a step started (or gave up for lack of budget)."""
        before, after = s.before or {}, s.after or {}
        found = []
        for tid, (state, retries, _where) in before.get("tasks", {}).items():
            now = after.get("tasks", {}).get(tid)
            bound = self.task_of.get(tid)
            if now is None or bound is None:
                continue
            st_before = before.get("refs", {}).get(f"{tid}.r", (None, None, None))[0]
            st_after, _locs, kind = after.get("refs", {}).get(f"{tid}.r", (None, None, None))
            spent = now[1] < retries
            gave_up = st_before != FAILED and st_after == FAILED and kind in ("worker_crashed", "object_lost")
            if spent or gave_up:
                action = "OwnerReexecute" if state == RUNNING or kind == "worker_crashed" else "OwnerReconstruct"
                found.append((action != "OwnerReexecute", tid, action, bound))
        for _order, _tid, action, (x, owner) in sorted(found, key=lambda f: (f[0], f[1])):
            add(s.clock, s.process, action, w=owner, x=x)


MAPPING = FateSharingMapping
