"""Ownership (spec/Ownership.tla, paper §4.1-4.3 end to end) <-> the implementation.

Binding of the model's values (from the trace's constants):

- node ``n`` is the node process named ``n``, with ``Capacity[n]`` CPUs
  and a pool of the ``InitialWorkers`` placed there; the driver ``Driver``
  is ``driver@<HeadNode>``;
- worker address ``w`` is the k-th worker process its node ``WorkerNode[w]``
  starts, for the k-th of that node's addresses in ``WorkerOrder`` (the
  scheduler leases its first idle worker by address, the spec its first in
  ``WorkerOrder``); a process is ``<<w, incarnation>>``;
- object ``x`` is the return object of the task (or put) its parent's body
  makes at ``OwnerSubmit``/``OwnerPut``; its ids name ``x`` from then on.

The program runs as written in the model: every task runs
:func:`ownership_body`, a scripted body that does the steps of ``Body[x]``
one at a time. A submit, a put and a release wait for the trace's step (the
harness releases the body, then lets the cluster settle); a get is issued as
soon as the body reaches it, and its result is recorded; the body's return
waits for ``WorkerFinishTask``. A value is the set of objects whose results
flowed into it (its name and its arguments' values), so
``RecoveredValueIsLineageValue`` is checked on real values. Values go to the
node's store (``inline_threshold=0``): every loss of a node is a loss of
copies, as in the spec.

Stimuli (the tables below): a step that consumes a message (``DELIVERED``)
delivers the one in-flight message whose projection is the step's ``m``; a
body step (``BODY_STEPS``) releases the body; ``WorkerFinishTask`` releases
the body's return and delivers its PutObject to the node's store, which
pins the copy and relays the reply; ``WorkerPullArg`` delivers the worker's
PullObject to the store it picked (the copy comes back below the spec's
level); ``WorkerCrash``/``NodeCrash`` crash the process;
``HeadDetectNodeDeath`` lets heartbeat rounds pass until the head declares
the node dead. Messages below the spec's level (the driver's own pulls,
registrations, the hops of failure notifications through the head) are
delivered as soon as they are sent; heartbeats and cluster views wait until
a lease request is delivered, when two rounds make every scheduler's view
current (the spec's spillback reads the cluster as it is).

Eager actions (``EAGER``: no stimulus, the implementation takes them inside
the step that enables them): the scheduler's decision on a lease request
(grant, spillback, or starting a worker: requests are delivered at once),
a started worker's registration, returned leases, lent CPUs and freed
copies (ReturnLease, WorkerBlocked/Unblocked and FreeObject are delivered
at once), the node seeing its worker exit, the relay and handling of
failure notifications, losses of messages to the dead, and the gets
(a get returns as soon as the owner can answer).

A new action is one row: a consumed message in ``DELIVERED`` (with its
projection in ``_MSG`` if the message type is new), a body step in
``BODY_STEPS``, or a name in ``EAGER``.

The order of the steps the implementation takes by itself is the trace's:
the replay hands the mapping the eager steps that follow each stimulus
(:meth:`expect`), and the messages below the stimulus are delivered in
their order (a lease returned before or after a redirect is decided, say).

Projection: every variable but ``lastAction`` and ``why`` (the history of
why each failure was allowed, which only the spec's properties read: the
implementation keeps the error itself, compared in ``ent[x].err``).
``crashes`` is the harness's count of the crashes it caused, ``made`` its
record of the objects the owner ever saw ready, ``got`` the results the
bodies' gets returned. A crashed process keeps its last ``ex``, ``known``
and ``brw``, and a crashed node its scheduler, store and ``nknown`` (the
spec changes none of them after a crash). A lease request queued at a
scheduler projects as the RequestLease the spec keeps in flight. ``req``
counts the owner's lease requests of the task (the harness numbers them as
they are sent). A GetObject's ``locs``: the spec's requester names every
node it knows dead (``Bad``), the implementation's only those it found
without a copy; the projection adds the nodes the requester knew dead when
it sent it (in a settled state the owner has heard of them too, since
notifications are delivered at once, so its answer is the same).

Event log (implementation -> model, :meth:`recognize`): one line per spec
step, with the parameters ``a``, ``x`` and ``n`` it fixes (never ``m``:
TLC picks the message), from the core steps of the in-memory cluster or of
a TCP run (merged, and bound by :func:`conformance.merge.bind_ownership`).
The random environment crashes nodes only where the model has one
incarnation per address (Small): a node replaces a dead worker at once,
which the spec does at the same address with a new incarnation. What the
spec does not model is left out: a driver's registration, a node's first
workers (the model starts with them), the losses of messages to the dead
(the spec may keep them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ownership.core.config import CoreConfig
from ownership.core.messages import (
    AddBorrower,
    BorrowerAdded,
    ClusterView,
    FreeObject,
    GetObject,
    Heartbeat,
    LeaseGranted,
    NodeDied,
    ObjectPending,
    ObjectValue,
    PullObject,
    PushTask,
    RefRemoved,
    RequestLease,
    ReturnLease,
    Spillback,
    TaskReply,
    WaitForRefRemoved,
    WorkerBlocked,
    WorkerDied,
    WorkerUnblocked,
)
from ownership.core.refcount import FAILED, FREED, LOST, PENDING, READY
from ownership.core.scheduler import DRIVER, REGISTERING
from ownership.core.submitter import DONE, QUEUED, RUNNING, WAITING
from ownership.errors import OwnershipError
from ownership.runtime.refs import Shared, _runtime_var, current_task_id
from ownership.runtime.transport import Envelope
from ownership.runtime.values import pack_function, unpack
from ownership.runtime.worker import error_info_of
from ownership.tla.values import ModelValue, TLARecord, format_value, function_value

from ..cluster import ActiveMapping, ModelCluster, NodeShape, StimulusError
from . import Mapping

__all__ = ["OwnershipMapping", "MAPPING", "ownership_body", "EAGER", "DELIVERED", "BODY_STEPS"]

#: the mapping whose cluster runs now (bodies find their script through it)
_ACTIVE = ActiveMapping("Ownership")

#: error kinds -> the spec's error values
_ERRORS = {"owner_died": "OwnerDied", "object_lost": "ObjectLost", "worker_crashed": "WorkerCrashed"}

#: object states of the owner's table -> the spec's
_OBJ = {PENDING: "pending", READY: "ready", LOST: "lost", FREED: "freed", FAILED: "failed"}

#: actions the implementation takes by itself, inside the stimulus that enables them
EAGER = frozenset(
    {
        "SchedulerGrantLease",
        "SchedulerSpillback",
        "SchedulerStartWorker",
        "WorkerRegister",
        "SchedulerReleaseLease",
        "SchedulerLend",
        "StoreFree",
        "SchedulerDetectWorkerDeath",
        "NodeHandleFailure",
        "ProcessHandleFailure",
        "LoseMessage",
        "HolderGet",
        "BorrowerGet",
        "WorkerBlockInGet",
        "OwnerServeBorrowerGet",
    }
)

#: actions whose stimulus is the delivery of the message ``m`` -> the implementation's message types
DELIVERED: dict[str, tuple[type, ...]] = {
    "OwnerHandleSpillback": (Spillback,),
    "OwnerHandleGrant": (LeaseGranted,),
    "WorkerReceiveTask": (PushTask,),
    "OwnerHandleGetObject": (GetObject,),
    "WorkerHandleObjectValue": (ObjectValue,),
    "WorkerHandleObjectPending": (ObjectPending,),
    "OwnerHandleReply": (TaskReply,),
    "OwnerHandleAddBorrower": (AddBorrower,),
    "WorkerHandleBorrowerAdded": (BorrowerAdded,),
    "BorrowerHandleWaitForRefRemoved": (WaitForRefRemoved,),
    "OwnerHandleRefRemoved": (RefRemoved,),
}

#: actions that are a step of a body: the body's operation there
BODY_STEPS = {"OwnerSubmit": "submit", "OwnerPut": "put", "HolderRelease": "release", "BorrowerRelease": "keep"}

#: messages that wait for a stimulus (all of DELIVERED's, the pulls of
#: arguments, and the hidden heartbeats and views)
_HELD = tuple({t for ts in DELIVERED.values() for t in ts}) + (PullObject, Heartbeat, ClusterView)


async def ownership_body(name: str, by_value: int, *args: Any) -> list[str]:
    """The user code of every task: the steps of the model's ``Body``."""
    mapping = _ACTIVE.get()
    rt = _runtime_var.get()
    return await mapping.run_body(rt, current_task_id(), name, list(args[:by_value]), list(args[by_value:]))


@attrs.define(eq=False)
class _Body:
    """A body as user code runs it: the driver's program, or one execution of a task."""

    address: str
    task: ModelValue
    task_id: str | None = None
    pc: int = 1
    #: the model object -> the ObjectRef this body holds for it (its children, and what it borrowed)
    refs: dict = attrs.Factory(dict)
    #: references it keeps beyond its end (Keeps), released by BorrowerRelease
    kept: dict = attrs.Factory(dict)
    go: trio.Event = attrs.Factory(trio.Event)
    done: bool = False


class _EventLog:
    """The event log of a run (implementation -> model): the stimuli a random
    environment may give, and the spec actions of a recorded run."""

    def snapshot_for_log(self: Any, process: str, core: Any) -> Any:
        return None

    def offers(self: Any) -> list[tuple[str, Any]]:
        """The stimuli a random environment may give now (within the model's crash budget)."""
        assert self.c is not None and self.c.head is not None
        c = self.c
        out: list[tuple[str, Any]] = []

        def offer(name: str, action: str, params: dict[str, Any]) -> None:
            out.append((name, lambda: self.apply(action, params)))

        for address, b in sorted(self.bodies.items()):
            if b.done or not self._up(address) or address not in self.proc_of:
                continue
            a = self.proc_of[address][0]
            steps = self.body[b.task]
            if b.pc <= len(steps):
                op = steps[b.pc - 1]
                action = {v: k for k, v in BODY_STEPS.items()}.get(op["op"])
                if action is not None:
                    offer(f"{op['op']} {op['obj'].name} at {a.name}", action, {"a": a, "x": op["obj"]})
            elif b.task != self.root and address in self.proc_of:
                offer(f"finish {b.task.name} at {a.name}", "WorkerFinishTask", {"a": a})
            for y in sorted(b.kept, key=lambda v: v.name):
                offer(f"let go of {y.name} at {a.name}", "BorrowerRelease", {"a": a, "x": y})
        for mid, env in c.network.in_flight():
            if self._held(env) and not isinstance(env.msg, (Heartbeat, ClusterView)) and self._up(env.dst):
                out.append((f"deliver {type(env.msg).__name__} {env.src} -> {env.dst}", lambda mid=mid: self._deliver_raw(mid)))
        undetected = [n for n in self.nodes if not self._up(n.name) and c.head.core.nodes[n.name].alive]
        if self.crashes < int(self.constants["MaxCrashes"]) and (self.rng is None or self.rng.random() < 0.2):
            # A node replaces a dead worker of its pool at once; the spec
            # does so at the same address with a new incarnation, which a
            # model with one incarnation per address (Small) does not allow:
            # there, only nodes crash.
            if int(self.constants["MaxIncarnation"]) > 0:
                for w in self.workers:
                    addrs = self.bound[w]
                    if addrs and self._up(addrs[-1]):
                        offer(f"crash {w.name}", "WorkerCrash", {"a": w})
            for n in self.nodes:
                if n != self.head_node and self._up(n.name):
                    offer(f"crash {n.name}", "NodeCrash", {"n": n})
        for n in undetected:
            offer(f"detect {n.name}", "HeadDetectNodeDeath", {"n": n})
        return out

    async def _deliver_raw(self: Any, mid: int) -> None:
        assert self.c is not None
        await self.c.deliver(mid)
        await self.settle()

    def recognize(self: Any, steps: list[Any]) -> list[Any]:
        """The spec actions of a recorded run, in clock order.

        The model's values are bound by the harness (the in-memory cluster)
        or, for the merged step logs of a TCP run, by
        :func:`conformance.merge.bind_ownership`; lease requests are numbered
        here, from the owners' own sends.
        """
        from ownership.core.events import GetDone, GetValue, PeerLost, ProbeResult, Put, Received, RemoveLocalRef
        from ownership.core.events import Send, StartWorker, Submit, TaskBlocked, TaskDone, Tick
        from ownership.core.messages import ObjectCopy, WorkerRegistered

        from ..eventlog import CoreStep, LogLine, NetStep, UserStep

        lines: list[LogLine] = []
        node_of = {**{n.name: n for n in self.nodes}, **self.node_alias}

        def add(clock: int, process: str, action: str, **params: Any) -> None:
            lines.append(LogLine(clock, process, action, {k: v for k, v in params.items() if v is not None}))

        def obj(object_id: str) -> Any:
            return self.obj_of.get(object_id.removesuffix(".r"))

        def proc(address: str) -> Any:
            p = self.proc_of.get(address)
            return p[0] if p is not None else None

        def node(address: str) -> Any:
            return node_of.get(address, ModelValue(address))

        requests: dict[str, Any] = {}
        made: dict[Any, int] = {}
        for s in steps:
            if isinstance(s, CoreStep):
                for e in s.effects:
                    if isinstance(e, Send) and isinstance(e.msg, RequestLease) and e.msg.request_id not in requests:
                        x = obj(e.msg.task_id)
                        made[x] = made.get(x, 0) + 1
                        requests[e.msg.request_id] = x

        gets: dict[tuple[str, int], Any] = {}
        running: dict[str, Any] = {}  # worker -> the model object of the task it runs
        dead: set[str] = set()
        for s in steps:
            if isinstance(s, UserStep):
                add(s.clock, s.process, s.kind, **(s.detail or {}))
                continue
            if isinstance(s, NetStep):
                ev = s.event
                if ev.kind == "crash" and ev.address is not None:
                    parent_dead = self.addr_node.get(ev.address, ev.address.rpartition("@")[2]) in dead
                    dead.add(ev.address)
                    if ev.address in node_of:
                        add(s.clock, ev.address, "NodeCrash", n=node(ev.address))
                    elif proc(ev.address) is not None and not parent_dead:
                        add(s.clock, ev.address, "WorkerCrash", a=proc(ev.address))
                continue  # a loss needs no line: the spec may keep a message to the dead
            if not isinstance(s, CoreStep):
                continue
            p, event = s.process, s.event
            sends = [e for e in s.effects if isinstance(e, Send)]
            if p == self.head_address:
                if isinstance(event, (Tick, ProbeResult)):
                    for e in sends:
                        if isinstance(e.msg, NodeDied) and e.dst != e.msg.node:
                            add(s.clock, p, "HeadDetectNodeDeath", n=node(e.msg.node))
                            break
                continue
            if p in node_of:
                n = node(p)
                msg = event.msg if isinstance(event, Received) else None
                initial = self.proc_of.get(msg.worker) in {(w, 0) for w in self.initial} if msg is not None and hasattr(msg, "worker") else False
                if isinstance(msg, WorkerRegistered) and proc(msg.worker) not in (None, self.driver) and not initial:
                    # (a node's first workers are its pool when the model starts)
                    add(s.clock, p, "WorkerRegister", a=proc(msg.worker), n=n)
                elif isinstance(msg, ReturnLease):
                    add(s.clock, p, "SchedulerReleaseLease", n=n)
                elif isinstance(msg, (WorkerBlocked, WorkerUnblocked)):
                    add(s.clock, p, "SchedulerLend", n=n)
                elif isinstance(msg, FreeObject) and obj(msg.object_id) is not None:
                    add(s.clock, p, "StoreFree", n=n, x=obj(msg.object_id))
                elif isinstance(msg, (WorkerDied, NodeDied)) and event.src == self.head_address:
                    if not (isinstance(msg, NodeDied) and msg.node == p):
                        add(s.clock, p, "NodeHandleFailure", n=n)
                elif isinstance(event, PeerLost) and proc(event.address) is not None:
                    add(s.clock, p, "SchedulerDetectWorkerDeath", a=proc(event.address), n=n)
                # a lease request's decision, and grants or worker starts a freed CPU allows
                for e in s.effects:
                    if isinstance(e, Send) and isinstance(e.msg, LeaseGranted):
                        add(s.clock, p, "SchedulerGrantLease", n=n, x=requests.get(e.msg.request_id))
                    elif isinstance(e, Send) and isinstance(e.msg, Spillback):
                        add(s.clock, p, "SchedulerSpillback", n=n, x=requests.get(e.msg.request_id))
                    elif isinstance(e, StartWorker):
                        add(s.clock, p, "SchedulerStartWorker", n=n)
                continue
            a = proc(p)
            if a is None:
                continue
            msg = event.msg if isinstance(event, Received) else None
            if isinstance(event, Submit) and obj(event.task.task_id) is not None:
                add(s.clock, p, "OwnerSubmit", a=a, x=obj(event.task.task_id))
            elif isinstance(event, Put) and obj(event.object_id) is not None:
                add(s.clock, p, "OwnerPut", a=a, x=obj(event.object_id))
            elif isinstance(event, RemoveLocalRef) and obj(event.object_id) is not None:
                x = obj(event.object_id)
                add(s.clock, p, "HolderRelease" if self.owner_addr.get(x) == p else "BorrowerRelease", a=a, x=x)
            elif isinstance(event, TaskDone) and event.error is None and obj(event.task_id) is not None:
                add(s.clock, p, "WorkerFinishTask", a=a, x=obj(event.task_id))
                running.pop(p, None)
            elif isinstance(event, TaskBlocked):
                add(s.clock, p, "WorkerBlockInGet", a=a)
            elif isinstance(event, GetValue) and obj(event.object_id) is not None:
                gets[(p, event.request_id)] = obj(event.object_id)
            elif isinstance(msg, (WorkerDied, NodeDied)):
                add(s.clock, p, "ProcessHandleFailure", a=a)
            elif isinstance(msg, ObjectCopy) and obj(msg.object_id) in self.args.get(running.get(p), ()):
                add(s.clock, p, "WorkerPullArg", a=a, x=obj(msg.object_id), n=node(event.src))
            elif msg is not None and type(msg) in _RECEIVED:
                x = None
                if isinstance(msg, (Spillback, LeaseGranted)):
                    x = requests.get(msg.request_id)
                elif isinstance(msg, PushTask):
                    x = obj(msg.task.task_id)
                    running[p] = x
                elif isinstance(msg, TaskReply):
                    x = obj(msg.task_id)
                elif hasattr(msg, "object_id"):
                    x = obj(msg.object_id)
                if x is not None or isinstance(msg, (AddBorrower, BorrowerAdded)):
                    add(s.clock, p, _RECEIVED[type(msg)], a=a, x=x)
            if any(isinstance(e, Send) and isinstance(e.msg, TaskReply) for e in s.effects) or (
                isinstance(event, TaskDone) and event.error is not None
            ):
                running.pop(p, None)  # the task failed at the worker (its reply is an error)
            for e in s.effects:
                if isinstance(e, GetDone) and (p, e.request_id) in gets:
                    x = gets.pop((p, e.request_id))
                    add(s.clock, p, "HolderGet" if self.owner_addr.get(x) == p else "BorrowerGet", a=a, x=x)
        return lines


#: received messages -> the action that takes them at their addressee (the
#: failure notifications, pulls and gets are told apart in recognize)
_RECEIVED = {action_type: action for action, types in DELIVERED.items() for action_type in types}


class OwnershipMapping(_EventLog, Mapping):
    spec = "Ownership"
    eager = EAGER
    unobserved = {
        "lastAction": "auxiliary: the trace's own label of its steps",
        "why": "history read only by the properties (why a failure was allowed); the error itself is ent[x].err",
    }

    def __init__(self, constants: dict[str, Any]) -> None:
        super().__init__(constants)
        k = constants
        self.root: ModelValue = k["Root"]
        self.nodes: list[ModelValue] = sorted(k["Nodes"])
        self.head_node: ModelValue = k["HeadNode"]
        self.no_node: ModelValue = k["NoNode"]
        self.no_addr: ModelValue = k["NoAddr"]
        self.no_obj: ModelValue = k["NoObj"]
        self.no_proc = (self.no_addr, 0)
        self.driver: ModelValue = k["Driver"]
        self.workers: list[ModelValue] = list(k["WorkerOrder"])
        self.worker_node: dict = dict(k["WorkerNode"])
        self.initial: frozenset = frozenset(k["InitialWorkers"])
        self.capacity: dict = dict(k["Capacity"])
        self.objects: list[ModelValue] = sorted(k["Objects"])
        self.parent: dict = dict(k["Parent"])
        self.kind: dict = dict(k["Kind"])
        self.args: dict = {x: frozenset(v) for x, v in dict(k["Args"]).items()}
        self.shared_args: dict = {x: frozenset(v) for x, v in dict(k["SharedArgs"]).items()}
        self.keeps: dict = {x: frozenset(v) for x, v in dict(k["Keeps"]).items()}
        self.retries: dict = dict(k["Retries"])
        self.body: dict = {t: tuple(v) for t, v in dict(k["Body"]).items()}
        self.by_name = {x.name: x for x in self.objects}
        self.addrs = [self.driver, *self.workers]
        self.c: ModelCluster | None = None
        #: impl address -> model process <<address, incarnation>>
        self.proc_of: dict[str, tuple[ModelValue, int]] = {}
        #: model address -> impl addresses bound to it, oldest first
        self.bound: dict[ModelValue, list[str]] = {a: [] for a in self.addrs}
        #: impl object id (without ".r") -> model object
        self.obj_of: dict[str, ModelValue] = {}
        #: model object -> its owner's impl address
        self.owner_addr: dict[ModelValue, str] = {}
        #: lease request id -> (model object, its number among the object's requests)
        self.request_of: dict[str, tuple[ModelValue, int]] = {}
        self.requests_of: dict[ModelValue, list[str]] = {}
        #: lease id -> request id
        self.lease_request: dict[str, str] = {}
        self.bodies: dict[str, _Body] = {}
        self.got: set = set()
        self.made: set = set()
        self.crashes = 0
        #: processes the harness crashed, and the projection of each at that moment
        self.env_dead: set[str] = set()
        self.frozen: dict[str, dict[str, Any]] = {}
        self.frozen_ent: dict[ModelValue, TLARecord] = {}
        #: GetObject (by id) -> the nodes its requester knew dead when it sent it
        self.asked_knowing: dict[int, tuple[str, ...]] = {}
        self._keep: list[Any] = []
        #: the eager steps the trace takes next (see expect)
        self.expected: list[tuple[str, Any]] = []
        self._seen_events = 0
        self._function = pack_function(ownership_body)
        #: set by conformance.eventlog.random_workload: the harness logs its crashes
        self.recorder: Any = None
        self.rng: Any = None
        #: node address -> model node, worker address -> its node's address,
        #: and the head's address, where they are not the model's names (TCP)
        self.node_alias: dict[str, ModelValue] = {}
        self.addr_node: dict[str, str] = {}
        self.head_address = "head"

    # ------------------------------------------------------------------ cluster
    def cluster(self) -> Any:
        shapes = {}
        for n in self.nodes:
            pool = sum(1 for w in self.initial if self.worker_node[w] == n)
            shapes[n.name] = NodeShape((("CPU", float(self.capacity[n])),), pool)
        per_node = max((sum(1 for w in self.workers if self.worker_node[w] == n) for n in self.nodes), default=1)
        config = CoreConfig(
            inline_threshold=0,
            lease_idle_ticks=0,
            node_timeout_ticks=1,
            suspect_on_connection_loss=False,
            pipeline_depth=1,
            max_pending_lease_requests=1,
            return_idle_leases_on_request=False,
            max_workers_per_node=max(per_node, 1),
        )
        return self._cluster(shapes, config)

    def _cluster(self, shapes: dict[str, NodeShape], config: CoreConfig) -> contextlib.AbstractAsyncContextManager[ModelCluster]:
        return _ACTIVE.cluster(self, shapes, config, self.head_node.name)

    def _driver_address(self) -> str:
        return _ACTIVE.driver_address(self.head_node.name)

    async def start(self, cluster: ModelCluster) -> None:
        self.c = cluster
        self._seen_events = 0
        self.proc_of[self._driver_address()] = (self.driver, 0)
        self.bound[self.driver].append(self._driver_address())
        cluster.network.observers.append(self._network_event)
        self._observe()
        driver = _Body(self._driver_address(), self.root)
        self.bodies[driver.address] = driver
        rt = cluster.drivers[driver.address]
        cluster.nursery.start_soon(self._drive_program, rt, driver)
        await self.settle()

    async def _drive_program(self, rt: Any, b: _Body) -> None:
        _runtime_var.set(rt)
        await self._steps(rt, b)

    # ------------------------------------------------------------------ bodies
    async def run_body(self, rt: Any, task_id: str | None, name: str, values: list[Any], shared: list[Any]) -> list[str]:
        x = self.by_name[name]
        b = _Body(rt.address, x, task_id=task_id)
        self.bodies[rt.address] = b
        for ref in shared:
            y = self.obj_of.get(ref.object_id.removesuffix(".r"))
            if y is not None:
                b.refs[y] = ref
        val = {name}
        for v in values:
            val |= set(v)
        await self._steps(rt, b)
        await self._wait_go(b)
        for y in self.keeps[x]:
            if y in b.refs:
                b.kept[y] = b.refs[y]
        b.refs.clear()
        b.done = True
        return sorted(val)

    async def _steps(self, rt: Any, b: _Body) -> None:
        for op in self.body[b.task]:
            y = op["obj"]
            if op["op"] == "get":
                try:
                    value = await rt.get_one(b.refs[y])
                    got = TLARecord(x=y, res="value", val=frozenset(self.by_name[s] for s in value), o=self._owner_proc(rt, y))
                except OwnershipError as exc:
                    kind = error_info_of(exc).kind
                    got = TLARecord(x=y, res=_ERRORS.get(kind, kind), val=frozenset(), o=self._owner_proc(rt, y))
                self.got.add(got)
            else:
                await self._wait_go(b)
                if op["op"] == "submit":
                    b.refs[y] = self._submit(rt, b, y)
                elif op["op"] == "put":
                    ref = rt.put([y.name])
                    self.obj_of[ref.object_id.removesuffix(".r")] = y
                    self.owner_addr[y] = rt.address
                    b.refs[y] = ref
                elif op["op"] == "release":
                    ref = b.refs.pop(y)
                    del ref
            b.pc += 1

    def _owner_proc(self, rt: Any, y: ModelValue) -> tuple:
        addr = self.owner_addr.get(y)
        return self.proc_of.get(addr, self.no_proc) if addr is not None else self.no_proc

    async def _wait_go(self, b: _Body) -> None:
        await b.go.wait()
        b.go = trio.Event()

    def _submit(self, rt: Any, b: _Body, y: ModelValue) -> Any:
        by_value = [b.refs[z] for z in sorted(self.args[y])]
        shared = [Shared(b.refs[z]) for z in sorted(self.shared_args[y])]
        function_id, function = self._function
        ref = rt.submit_task(
            function_id, function, (y.name, len(by_value), *by_value, *shared), {},
            resources=(("CPU", 1.0),), max_retries=self.retries[y], name=y.name,
        )
        self.obj_of[ref.object_id.removesuffix(".r")] = y
        self.owner_addr[y] = rt.address
        return ref

    # ------------------------------------------------------------------ delivery
    async def settle(self) -> None:
        """Let every process react, delivering the messages below the spec's
        level (and the lease requests, after a heartbeat round) as they come."""
        assert self.c is not None
        net = self.c.network
        while True:
            await net.settle()
            self._observe()
            flight = [(mid, env) for mid, env in net.in_flight() if not self._held(env)]
            if not flight:
                return
            auto, env = self._next_expected(flight) or flight[0]
            if isinstance(env.msg, RequestLease):
                await self._current_views()
                if auto not in dict(net.in_flight()):
                    continue
            net.deliver(auto)

    def expect(self, steps: list[tuple[str, Any]]) -> None:
        """The steps the trace takes next on the implementation's own (eager
        ones): messages below the stimulus are delivered in their order."""
        self.expected = [(a, p) for a, p in steps if isinstance(p, dict) and isinstance(p.get("m"), dict)]

    def _next_expected(self, flight: list[tuple[int, Envelope]]) -> tuple[int, Envelope] | None:
        """The in-flight message of the first expected step that has one
        (a step whose message is not in flight, the implementation took by
        itself: a queued request granted when a CPU frees)."""
        for i, (_action, p) in enumerate(self.expected):
            for mid, env in flight:
                if p["m"] in self._records(env):
                    del self.expected[: i + 1]
                    return mid, env
        return None

    def _held(self, env: Envelope) -> bool:
        if not isinstance(env.msg, _HELD):
            return False
        if isinstance(env.msg, PullObject):
            # a pull for a task's argument is WorkerPullArg; other reads are below the spec
            return env.src in self.proc_of and env.src != self._driver_address() and self._pulls_arg(env)
        return True

    def _pulls_arg(self, env: Envelope) -> bool:
        core = self._core(env.src)
        if core is None:
            return False
        oid = env.msg.object_id
        return any(oid in r.fetched for r in core.executor.running.values())

    async def _current_views(self) -> None:
        """Two heartbeat rounds: every scheduler's view of the others is current."""
        assert self.c is not None
        for _ in range(2):
            await self.c.refresh_views()

    def _network_event(self, event: Any) -> None:
        """What a requester knew when it asked its owner (GetObject), as it sends."""
        env = event.envelope
        if event.kind == "send" and env is not None and isinstance(env.msg, GetObject):
            core = self._core(env.src)
            if core is not None:
                self.asked_knowing[id(env.msg)] = tuple(sorted(core.dead_nodes))
                self._keep.append(env.msg)  # ids stay unique while the message lives

    def _observe(self) -> None:
        """Bind worker processes as their nodes start them, and number lease requests."""
        assert self.c is not None
        launcher = self.c.launcher
        if launcher is not None:
            for address in launcher.started:
                if address in self.proc_of:
                    continue
                node = ModelValue(address.rpartition("@")[2])
                taken = [a for a in self.proc_of if a != self._driver_address() and a.rpartition("@")[2] == node.name]
                slots = [w for w in self.workers if self.worker_node[w] == node]
                if len(taken) < len(slots):
                    w = slots[len(taken)]
                else:
                    continue  # shows up as a difference: the model has no such worker
                self.proc_of[address] = (w, len(self.bound[w]))
                self.bound[w].append(address)
        for event in self.c.events[self._seen_events :]:
            env = event.envelope
            if env is None or event.kind != "send":
                continue
            if isinstance(env.msg, RequestLease) and env.msg.request_id not in self.request_of:
                x = self.obj_of.get(env.msg.task_id)
                if x is not None:
                    self.requests_of.setdefault(x, []).append(env.msg.request_id)
                    self.request_of[env.msg.request_id] = (x, len(self.requests_of[x]))
            elif isinstance(env.msg, LeaseGranted):
                self.lease_request[env.msg.lease_id] = env.msg.request_id
        self._seen_events = len(self.c.events)

    # ------------------------------------------------------------------ stimuli
    async def apply(self, action: str, params: dict[str, Any]) -> None:
        assert self.c is not None
        if action in DELIVERED:
            await self._deliver_message(action, params["m"])
        elif action in BODY_STEPS:
            await self._body_step(action, params)
        else:
            handler = getattr(self, f"_do_{action}", None)
            if handler is None:
                raise StimulusError(f"the Ownership mapping has no stimulus for {action}")
            await handler(params)
        await self.settle()

    async def _deliver_message(self, action: str, m: Any) -> None:
        assert self.c is not None
        types = DELIVERED[action]
        for mid, env in self.c.network.in_flight():
            if isinstance(env.msg, types) and m in self._records(env):
                await self.c.deliver(mid)
                return
        raise StimulusError(f"{action}: no message in flight is {format_value(m)}")

    def _body_at(self, a: ModelValue) -> _Body:
        addrs = self.bound.get(a) or []
        b = self.bodies.get(addrs[-1]) if addrs else None
        if b is None:
            raise StimulusError(f"no body runs at {a.name}")
        return b

    async def _body_step(self, action: str, p: dict[str, Any]) -> None:
        b = self._body_at(p["a"])
        op = BODY_STEPS[action]
        if op == "keep":
            ref = b.kept.pop(p["x"], None)
            if ref is None:
                raise StimulusError(f"{p['a'].name} keeps no reference to {p['x'].name}")
            del ref
            return
        steps = self.body[b.task]
        if b.pc > len(steps) or steps[b.pc - 1]["op"] != op or steps[b.pc - 1]["obj"] != p["x"]:
            raise StimulusError(f"the body at {p['a'].name} is not at {op} {p['x'].name} (pc {b.pc})")
        b.go.set()

    async def _do_WorkerFinishTask(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        b = self._body_at(p["a"])
        if b.done or b.pc <= len(self.body[b.task]):
            raise StimulusError(f"the body at {p['a'].name} has not reached its end")
        b.go.set()
        await self.c.network.settle()
        # the value reaches the node's store, which pins it and relays the reply
        from ownership.core.messages import PutObject

        for mid, env in self.c.network.in_flight():
            if env.src == b.address and isinstance(env.msg, PutObject):
                await self.c.deliver(mid)

    async def _do_WorkerPullArg(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        addrs = self.bound.get(p["a"]) or []
        oid = self._object_id(p["x"])
        for mid, env in self.c.network.in_flight():
            if addrs and env.src == addrs[-1] and isinstance(env.msg, PullObject) and env.msg.object_id == oid:
                if env.dst != p["n"].name:
                    raise StimulusError(f"{p['a'].name} pulls {p['x'].name} from {env.dst}, not {p['n'].name}")
                await self.c.deliver(mid)
                return
        raise StimulusError(f"no pull of {p['x'].name} by {p['a'].name} is in flight")

    def _object_id(self, x: ModelValue) -> str:
        for oid, y in self.obj_of.items():
            if y == x:
                return f"{oid}.r"
        raise StimulusError(f"{x.name} was never made")

    def _crash(self, address: str) -> None:
        assert self.c is not None
        doomed = {address, *self.c._descendants(address)}
        for a in sorted(doomed):
            if a in self.proc_of:
                self.frozen[a] = self._process_state(a)
        for x, owner in self.owner_addr.items():
            if owner in doomed:
                self.frozen_ent[x] = self._entry(x)  # the spec keeps a dead owner's table as it was
        if address in {n.name for n in self.nodes}:
            self.frozen[address] = self._node_state(ModelValue(address))
        self.env_dead |= doomed
        self.c.crash(address)
        self.crashes += 1

    async def _do_WorkerCrash(self, p: dict[str, Any]) -> None:
        addrs = self.bound.get(p["a"]) or []
        if not addrs:
            raise StimulusError(f"no process runs at {p['a'].name}")
        self._crash(addrs[-1])

    async def _do_NodeCrash(self, p: dict[str, Any]) -> None:
        self._crash(p["n"].name)

    async def _do_HeadDetectNodeDeath(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        await self.c.declare_node_dead(p["n"].name)

    # ------------------------------------------------------------------ projection helpers
    def _core(self, address: str) -> Any:
        assert self.c is not None
        rt = self.c.workers.get(address) or self.c.drivers.get(address)
        return rt.core if rt is not None else None

    def _proc(self, address: str | None) -> tuple:
        if address is None:
            return self.no_proc
        return self.proc_of.get(address, (ModelValue(f"<{address}>"), 0))

    def _node(self, address: str | None) -> ModelValue:
        if address is None:
            return self.no_node
        return ModelValue(address.rpartition("@")[2] if "@" in address else address)

    def _obj(self, object_id: str) -> ModelValue:
        return self.obj_of.get(object_id.removesuffix(".r"), ModelValue(f"<{object_id}>"))

    def _up(self, address: str) -> bool:
        assert self.c is not None
        return address not in self.env_dead and self.c.network.alive(address)

    def _msg(self, type: str, x: Any = None, o: Any = None, w: Any = None, n: Any = None, r: Any = None, att: int = 0,
             locs: frozenset = frozenset(), err: str = "", have: bool = False, dst: Any = None, dst_node: Any = None,
             refs: frozenset = frozenset()) -> TLARecord:
        return TLARecord(
            type=type, x=x if x is not None else self.no_obj, o=o or self.no_proc, w=w or self.no_proc,
            n=n or self.no_node, r=r or self.no_node, att=att, locs=locs, val=frozenset(), err=err, have=have,
            dst=dst or self.no_proc, dstNode=dst_node or self.no_node, refs=refs,
        )

    def _request_msg(self, msg: RequestLease, node: str) -> TLARecord:
        x, q = self.request_of.get(msg.request_id, (self._obj(msg.task_id), 0))
        return self._msg("RequestLease", x, self._proc(msg.owner), n=self._node(node), att=q, have=msg.spilled,
                         dst_node=self._node(node))

    def _records(self, env: Envelope) -> list[TLARecord]:
        """The spec's messages an in-flight message of the implementation is (none, one or several)."""
        msg = env.msg
        fn = _MSG.get(type(msg))
        if fn is None:
            return [TLARecord(type=f"<{type(msg).__name__} {env.src} -> {env.dst}>")]
        return fn(self, env)

    def _error(self, error: Any) -> str:
        return "" if error is None else _ERRORS.get(error.kind, error.kind)

    # message projections, one per implementation message type (see _MSG)
    def _m_request(self, env: Envelope) -> list[TLARecord]:
        return [self._request_msg(env.msg, env.dst)]

    def _m_grant(self, env: Envelope) -> list[TLARecord]:
        msg: LeaseGranted = env.msg
        x, q = self.request_of.get(msg.request_id, (self.no_obj, 0))
        o = self._proc(env.dst)
        return [self._msg("LeaseGranted", x, o, self._proc(msg.worker), self._node(msg.node), att=q, dst=o)]

    def _m_spillback(self, env: Envelope) -> list[TLARecord]:
        msg: Spillback = env.msg
        x, q = self.request_of.get(msg.request_id, (self.no_obj, 0))
        o = self._proc(env.dst)
        return [self._msg("Spillback", x, o, n=self._node(env.src), r=self._node(msg.node), att=q, dst=o)]

    def _m_push(self, env: Envelope) -> list[TLARecord]:
        msg: PushTask = env.msg
        w = self._proc(env.dst)
        refs = set()
        for arg in msg.task.args:
            if arg.value is not None:
                for info in arg.value.refs:
                    refs.add(TLARecord(y=self._obj(info.object_id), o=self._proc(info.owner), held=False))
        return [self._msg("PushTask", self._obj(msg.task.task_id), self._proc(msg.task.owner), w, self._node(env.dst),
                          att=msg.attempt, dst=w, refs=frozenset(refs))]

    def _m_reply(self, env: Envelope) -> list[TLARecord]:
        msg: TaskReply = env.msg
        o = self._proc(env.dst)
        refs = frozenset(
            TLARecord(y=self._obj(b.object_id), o=self._proc(b.owner), held=b.held) for b in msg.borrowed if b.owner == env.dst
        )
        return [self._msg("TaskReply", self._obj(msg.task_id), o, self._proc(msg.worker),
                          self._node(msg.location) if msg.location else None, att=msg.attempt,
                          err=self._error(msg.error), dst=o, refs=refs)]

    def _m_get_object(self, env: Envelope) -> list[TLARecord]:
        msg: GetObject = env.msg
        o = self._proc(env.dst)
        # The spec's requester names every node it knows dead (Bad), the
        # implementation's only those it found without a copy: the requester's
        # known dead nodes when it asked are added (see the module doc).
        known = self.asked_knowing.get(id(msg), ())
        return [self._msg("GetObject", self._obj(msg.object_id), o, self._proc(msg.requester),
                          locs=frozenset(self._node(n) for n in (*msg.bad, *known)), dst=o)]

    def _m_object_value(self, env: Envelope) -> list[TLARecord]:
        msg: ObjectValue = env.msg
        w = self._proc(env.dst)
        return [self._msg("ObjectValue", self._obj(msg.object_id), self._proc(env.src), w,
                          locs=frozenset(self._node(n) for n in msg.locations), err=self._error(msg.error), dst=w)]

    def _m_object_pending(self, env: Envelope) -> list[TLARecord]:
        w = self._proc(env.dst)
        return [self._msg("ObjectPending", self._obj(env.msg.object_id), self._proc(env.src), w, dst=w)]

    def _m_return_lease(self, env: Envelope) -> list[TLARecord]:
        return [self._msg("ReturnLease", w=self._proc(env.msg.worker), n=self._node(env.dst), dst_node=self._node(env.dst))]

    def _m_free(self, env: Envelope) -> list[TLARecord]:
        n = self._node(env.dst)
        return [self._msg("FreeObject", self._obj(env.msg.object_id), n=n, dst_node=n)]

    def _m_lend(self, env: Envelope) -> list[TLARecord]:
        kind = "WorkerBlocked" if isinstance(env.msg, WorkerBlocked) else "WorkerUnblocked"
        n = self._node(env.dst)
        return [self._msg(kind, w=self._proc(env.msg.worker), n=n, dst_node=n)]

    def _m_death(self, env: Envelope) -> list[TLARecord]:
        msg = env.msg
        if env.dst == "head" or env.src not in ("head", *(n.name for n in self.nodes)):
            return [TLARecord(type=f"<{type(msg).__name__} {env.src} -> {env.dst}>")]
        if env.src == "head":
            dst, dst_node = None, self._node(env.dst)
        else:
            dst, dst_node = self._proc(env.dst), None
        if isinstance(msg, WorkerDied):
            return [self._msg("WorkerDied", w=self._proc(msg.worker), n=self._node(msg.node), dst=dst, dst_node=dst_node)]
        return [self._msg("NodeDied", n=self._node(msg.node), dst=dst, dst_node=dst_node)]

    def _m_wait(self, env: Envelope) -> list[TLARecord]:
        b = self._proc(env.dst)
        return [self._msg("WaitForRefRemoved", self._obj(env.msg.object_id), self._proc(env.msg.owner), b, dst=b)]

    def _m_removed(self, env: Envelope) -> list[TLARecord]:
        o = self._proc(env.dst)
        return [self._msg("RefRemoved", self._obj(env.msg.object_id), o, self._proc(env.msg.borrower), dst=o)]

    def _m_add_borrower(self, env: Envelope) -> list[TLARecord]:
        o = self._proc(env.dst)
        return [self._msg("AddBorrower", self._obj(oid), o, self._proc(env.msg.borrower), dst=o) for oid in env.msg.object_ids]

    def _m_borrower_added(self, env: Envelope) -> list[TLARecord]:
        b = self._proc(env.dst)
        o = self._proc(env.msg.owner)
        out = [self._msg("BorrowerAdded", self._obj(oid), o, b, have=True, dst=b) for oid in env.msg.object_ids]
        return out + [self._msg("BorrowerAdded", self._obj(oid), o, b, have=False, dst=b) for oid in env.msg.refused]

    # ------------------------------------------------------------------ projection
    def _process_state(self, address: str) -> dict[str, Any]:
        """ex, known and brw of the process at ``address`` (kept when it crashes)."""
        if address in self.frozen:
            return self.frozen[address]
        core = self._core(address)
        if core is None:
            return {"ex": self._idle_exec(), "known": self._no_deaths(), "brw": self._no_borrows()}
        return {"ex": self._exec(address, core), "known": self._deaths(core.dead_workers, core.dead_nodes),
                "brw": self._borrows(address, core)}

    def _idle_exec(self) -> TLARecord:
        return TLARecord(
            x=self.no_obj, o=self.no_proc, att=0, phase="idle",
            arg=function_value((y, "none") for y in self.objects), at=function_value((y, self.no_node) for y in self.objects),
            val=frozenset(), lent=False, pc=1, refs=frozenset(), regs=frozenset(), **self._no_actor_calls(),
        )

    def _no_actor_calls(self) -> dict[str, Any]:
        """An executor's actor fields when it hosts no actor (the models mapped have none)."""
        return {"q": (), "cur": TLARecord(o=self.no_proc, x=self.no_obj, att=0)}

    def _no_deaths(self) -> TLARecord:
        return TLARecord(n=frozenset(), p=frozenset())

    def _no_borrow(self) -> TLARecord:
        return TLARecord(owner=self.no_proc, local=0, run=0, sub=0, reg="none", waits=0, failed=False)

    def _no_borrows(self) -> Any:
        return function_value((y, self._no_borrow()) for y in self.objects)

    def _deaths(self, workers: Any, nodes: Any) -> TLARecord:
        procs = frozenset(self._proc(w) for w in workers if w in self.proc_of)
        return TLARecord(n=frozenset(self._node(n) for n in nodes), p=procs)

    def _exec(self, address: str, core: Any) -> TLARecord:
        b = self.bodies.get(address)
        if address == self._driver_address():
            e = self._idle_exec()
            return TLARecord({**e, "x": self.root, "phase": "run", "pc": b.pc if b else 1})
        running = [r for r in core.executor.running.values()]
        if not running:
            return self._idle_exec()
        r = running[0]
        x = self._obj(r.spec.task_id)
        arg, at, val = {}, {}, {x} if isinstance(x, ModelValue) else set()
        arg_index = {self._obj(a.ref.object_id): i for i, a in enumerate(r.spec.args) if a.ref is not None}
        for y in self.objects:
            i = arg_index.get(y)
            st, node = "none", self.no_node
            if i is not None:
                if i in r.pending:
                    ref = core.refs.table.get(f"{self._object_id_of(y)}")
                    fetching = ref.fetching if ref is not None else None
                    if fetching not in (None, "owner"):
                        st, node = "pull", self._node(fetching)
                    else:
                        st = "ask"
                else:
                    st = "have"
                    payload = r.args[i]
                    if payload is not None:
                        val |= {self.by_name[s] for s in unpack(payload, lambda info: None)}
            arg[y], at[y] = st, node
        started = r.started
        return TLARecord(
            x=x, o=self._proc(r.spec.owner), att=r.attempt, phase="run" if started else "fetch",
            arg=function_value(arg.items()), at=function_value(at.items()), val=frozenset(val),
            lent=core.executor.lent_lease is not None, pc=b.pc if b is not None and b.task_id == r.spec.task_id else 1,
            refs=frozenset(self._obj(i.object_id) for i in r.arg_refs),
            regs=frozenset(self._obj(oid) for oid in r.registering), **self._no_actor_calls(),
        )

    def _object_id_of(self, y: ModelValue) -> str:
        for oid, z in self.obj_of.items():
            if z == y:
                return f"{oid}.r"
        return ""

    def _borrows(self, address: str, core: Any) -> Any:
        out = {}
        for y in self.objects:
            ref = core.refs.table.get(self._object_id_of(y))
            b = self.bodies.get(address)
            kept = 1 if b is not None and y in b.kept else 0
            shared = any(i.object_id == ref.object_id for r in core.executor.running.values() for i in r.arg_refs) if ref else False
            if ref is None or ref.owned or not (shared or kept or ref.submitted or ref.owner_waiting or ref.sub_borrowers or ref.registering):
                # an argument fetched by value is held while its task runs, not borrowed
                out[y] = self._no_borrow()
                continue
            failed = ref.status == FAILED and ref.error is not None and ref.error.kind == "owner_died"
            reg = "asking" if ref.registering else ("yes" if ref.owner_waiting or ref.sub_borrowers else "none")
            out[y] = TLARecord(owner=self._proc(ref.owner), local=kept, run=ref.task_args, sub=ref.submitted,
                               reg=reg, waits=ref.owner_waiting, failed=failed)
        return function_value(out.items())

    def _node_state(self, n: ModelValue) -> dict[str, Any]:
        """The scheduler, store and deaths of node ``n`` (kept when it crashes)."""
        if n.name in self.frozen:
            return self.frozen[n.name]
        assert self.c is not None
        rt = self.c.nodes.get(n.name)
        core = rt.core if rt is not None else None
        if core is None:
            return {"pool": frozenset(), "starting": frozenset(), "leases": frozenset(), "nknown": self._no_deaths(),
                    "copies": frozenset(), "queue": ()}
        sched = core.scheduler
        pool = frozenset(self._proc(a) for a, s in sched.workers.items() if s.state not in (DRIVER, REGISTERING))
        launcher = self.c.launcher
        starting = frozenset(
            self.proc_of[a][0] for a in (launcher.started if launcher else ())
            if a.rpartition("@")[2] == n.name and a in self.proc_of and a not in sched.workers
            and a not in sched.dead_workers and a not in self.env_dead
        )
        leases = frozenset(
            TLARecord(w=self._proc(l.worker), o=self._proc(l.owner),
                      x=self.request_of.get(self.lease_request.get(l.lease_id, ""), (self.no_obj, 0))[0], lent=l.blocked)
            for l in sched.leases.values()
        )
        copies = set()
        for oid, stored in core.store.objects.items():
            value = unpack(stored.value, lambda info: None)
            copies.add(TLARecord(x=self._obj(oid), o=self._proc(stored.owner), n=n,
                                 val=frozenset(self.by_name[s] for s in value)))
        queue = tuple(self._request_msg(m, n.name) for m in sched.queue)
        return {"pool": pool, "starting": starting, "leases": leases,
                "nknown": self._deaths(core.dead_workers, core.dead_nodes), "copies": frozenset(copies), "queue": queue}

    def _entry(self, x: ModelValue) -> TLARecord:
        none = TLARecord(owner=self.no_proc, task="none", req=0, loc=TLARecord(n=self.no_node, w=self.no_proc), att=0,
                         budget=0, obj="none", locs=frozenset(), err="", local=0, submitted=0, lineage=0,
                         waiters=frozenset(), borrowers=frozenset(), host=self.no_proc)
        addr = self.owner_addr.get(x)
        if addr is None:
            return none
        if x in self.frozen_ent:
            return self.frozen_ent[x]
        core = self._core(addr)
        if core is None:
            return none
        oid = self._object_id_of(x)
        ref = core.refs.table.get(oid)
        if ref is None:
            return none
        tid = oid.removesuffix(".r")
        task = core.submitter.tasks.get(tid)
        obj = _OBJ.get(ref.status, f"<{ref.status}>")
        if obj == "ready":
            self.made.add(x)
        loc = TLARecord(n=self.no_node, w=self.no_proc)
        if self.kind[x] == "put":
            state, att, budget = ("failed" if obj == "failed" else "done"), 0, 0
        elif task is None:
            state, att, budget = ("failed" if obj == "failed" else "done"), 0, 0
        else:
            att, budget = task.attempt, task.retries_left
            if obj == "failed":
                state = "failed"
            elif task.state == WAITING:
                state = "waiting"
            elif task.state == QUEUED:
                state = "requested"
                loc = TLARecord(n=self._node(task.location), w=self.no_proc)
            elif task.state == RUNNING:
                state = "pushed"
                loc = TLARecord(n=self._node(task.location), w=self._proc(task.location))
            elif task.state == DONE:
                state = "done"
            else:
                state = f"<{task.state}>"
        return TLARecord(
            owner=self._proc(addr), task=state, req=len(self.requests_of.get(x, ())), loc=loc, att=att, budget=budget,
            obj=obj, locs=frozenset(self._node(n) for n in ref.locations) if obj == "ready" else frozenset(),
            err=self._error(ref.error) if obj == "failed" else "", local=ref.local, submitted=ref.submitted,
            lineage=ref.lineage, waiters=frozenset(self._proc(w) for w in ref.remote_waiters),
            borrowers=frozenset(self._proc(w) for w in ref.borrowers), host=self.no_proc,
        )

    def _actor_state(self) -> dict[str, Any]:
        """The actors' variables, for a model without actors (no object of
        kind actor or call): no call in flight, no host, nothing ran. A model
        with actors is not mapped yet: its variables are left out of the
        projection, so that a replay reports them (not projected)."""
        if any(kind in ("actor", "call") for kind in self.kind.values()):
            return {}
        # an empty function prints as <<>>: read back, it is the empty sequence
        return {"chan": (), "actorLog": ()}

    def abstract(self, state: dict[str, Any]) -> dict[str, Any]:
        out = super().abstract(state)
        for name in ("chan", "actorLog"):
            if name in out and not out[name]:
                out[name] = ()  # however the empty function was written
        return out

    def _wst(self, a: ModelValue) -> str:
        addrs = self.bound.get(a) or []
        if a == self.driver:
            return "up"
        if not addrs:
            return "off"
        address = addrs[-1]
        if not self._up(address):
            return "dead"
        node = self._node(address)
        assert self.c is not None
        rt = self.c.nodes.get(node.name)
        slot = rt.core.scheduler.workers.get(address) if rt is not None else None
        return "up" if slot is not None and slot.state != REGISTERING else "starting"

    def project(self) -> dict[str, Any]:
        assert self.c is not None and self.c.head is not None
        self._observe()
        net = self.c.network
        procs = {a: self._process_state(self.bound[a][-1]) if self.bound[a] else
                 {"ex": self._idle_exec(), "known": self._no_deaths(), "brw": self._no_borrows()} for a in self.addrs}
        nodes = {n: self._node_state(n) for n in self.nodes}
        head = self.c.head.core
        dead_nodes = {name for name, rec in head.nodes.items() if not rec.alive}
        announced = set()
        for address, p in self.proc_of.items():
            if address in head.published or (self._node(address).name in dead_nodes and address != self._driver_address()):
                announced.add(p)
        msgs = set()
        for _mid, env in net.in_flight():
            if isinstance(env.msg, (Heartbeat, ClusterView)):
                continue
            if isinstance(env.msg, PullObject) and self._held(env):
                continue  # the worker's fetch is at "pull" (ex): WorkerPullArg takes it
            msgs.update(self._records(env))
        for n in self.nodes:
            if n.name not in self.env_dead:
                msgs.update(nodes[n]["queue"])
        ent = {x: self._entry(x) for x in self.objects}
        state = self._actor_state()
        return state | {
            "nodeUp": frozenset(n for n in self.nodes if self._up(n.name)),
            "wst": function_value((a, self._wst(a)) for a in self.addrs),
            "inc": function_value((a, max(len(self.bound[a]) - 1, 0)) for a in self.addrs),
            "crashes": self.crashes,
            "members": frozenset(n for n in self.nodes if (r := head.nodes.get(n.name)) is not None and r.alive),
            "announced": frozenset(announced),
            "pool": function_value((n, nodes[n]["pool"]) for n in self.nodes),
            "starting": function_value((n, nodes[n]["starting"]) for n in self.nodes),
            "leases": function_value((n, nodes[n]["leases"]) for n in self.nodes),
            "nknown": function_value((n, nodes[n]["nknown"]) for n in self.nodes),
            "copies": frozenset(c for n in self.nodes for c in nodes[n]["copies"]),
            "ent": function_value(ent.items()),
            "ex": function_value((a, procs[a]["ex"]) for a in self.addrs),
            "known": function_value((a, procs[a]["known"]) for a in self.addrs),
            "brw": function_value((a, procs[a]["brw"]) for a in self.addrs),
            "got": frozenset(self.got),
            "msgs": frozenset(msgs),
            "made": frozenset(self.made),
        }


#: implementation message type -> its projection (the spec's messages it is)
_MSG: dict[type, Callable[[OwnershipMapping, Envelope], list[TLARecord]]] = {
    RequestLease: OwnershipMapping._m_request,
    LeaseGranted: OwnershipMapping._m_grant,
    Spillback: OwnershipMapping._m_spillback,
    PushTask: OwnershipMapping._m_push,
    TaskReply: OwnershipMapping._m_reply,
    GetObject: OwnershipMapping._m_get_object,
    ObjectValue: OwnershipMapping._m_object_value,
    ObjectPending: OwnershipMapping._m_object_pending,
    ReturnLease: OwnershipMapping._m_return_lease,
    FreeObject: OwnershipMapping._m_free,
    WorkerBlocked: OwnershipMapping._m_lend,
    WorkerUnblocked: OwnershipMapping._m_lend,
    WorkerDied: OwnershipMapping._m_death,
    NodeDied: OwnershipMapping._m_death,
    WaitForRefRemoved: OwnershipMapping._m_wait,
    RefRemoved: OwnershipMapping._m_removed,
    AddBorrower: OwnershipMapping._m_add_borrower,
    BorrowerAdded: OwnershipMapping._m_borrower_added,
}

MAPPING = OwnershipMapping
