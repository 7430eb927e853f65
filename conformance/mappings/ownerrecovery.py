"""OwnerRecovery (spec/OwnerRecovery.tla) <-> the implementation.

The committed corpus is Small's edge cover, the owner's crash at the five
points of ``SmallCrashPoints``, Inline's at the two of
``InlineCrashPoints``, and their targeted traces (traces/OwnerRecovery/;
spec/docs/OwnerRecovery.md, "Conformance").

Binding of the model's values (Small's shape: one object, its holders, a
parent whose executions run at ``ParentPlacement``):

- process ``p`` is the node named ``p`` with its workers (the model's
  process is a node of one worker, its store the node's); the driver
  ``Driver`` is ``driver@<Driver>``;
- object ``x`` is the recoverable object the parent's body makes at
  ``ParentMake`` (its id is the same in every execution of the parent:
  that is how a re-execution adopts it);
- a holder ``h`` is an actor the driver creates on node ``h`` before the
  parent starts: a task of the dead owner is stopped with its lease, so
  only a process the owner does not own outlives it. ``ParentShare`` is
  the parent's call ``keep(x)`` on it (the reference travels inside the
  argument: borrowed), ``HolderReceive`` that call's delivery, ``HolderGet``
  and ``HolderRelease`` the driver's calls ``get()`` and ``release()``.

Values: an object's task returns the list of its name; under Inline the
cluster keeps the default inline threshold, so the value travels in the
reply and the owner keeps it (a copy at the owner's process), otherwise
the threshold is 0 and every value is stored at the worker's node.

Placement: the parent asks for a marker resource that the nodes of
``ParentPlacement`` have (the driver's node redirects it to the one with
the most free CPU, ties to the smallest name: the first place while it
lives); a task of ``x`` asks for a marker only its place has, which must
be a process that cannot crash (otherwise the spec's ``PlaceOf`` moves on,
which a marker cannot follow: such a config is refused).

Eager actions (the implementation takes them inside the stimulus that
enables them): a holder's get returns as soon as the owner can answer
(HolderGetReturns); an object nothing refers to is deleted at the head and
freed at once (OwnerFree, and the stores' StoreFree: FreeObject is
delivered at once); a re-executed parent lets go of an adopted object when
its body ends (AdopterRelease); the new owner settles an object on the
last answer (NewOwnerComplete) and rebuilds what is lost (OwnerRebuild).

Departure (``model_choices``): the model's worker keeps running a task of
a dead owner and reports it to the new owner; the implementation's node
stops the workers leased to a dead owner when it hears of the death, and
the new owner rebuilds what they would have made. A process is told of a
death (ProcessHandleOwnerMoved) in traces only when it runs no task of the
dead owner.

Projection (every variable but ``lastAction`` and ``why``, a history only
the properties read). What is mapped rather than read:

- epochs: the implementation's epoch + 1 (its first owner's epoch is 0,
  the spec's 1); an owner forgets a freed entry: the harness keeps its
  last epoch (the spec keeps it);
- an entry's ``borrowers``: the owner counts a holder when the call that
  carried the reference returns, the spec as it sends: a ``keep`` call in
  flight or running counts;
- a borrower's epoch: a reference travels without one, so a borrower
  keeps an epoch only for a reference a take-over notice redirected; any
  other is at the epoch of the owner it names, as the spec writes it;
- ``waiting`` of a take-over: the implementation waits for every node (its
  store) and every worker (its references) it was told of; a process is
  waited for while any of them is, and the driver's own node answers
  inside the driver's step (``ProcessHandleOwnerMoved`` at the driver);
- ``loc``: the process of the last push of the entry's owner (the spec
  keeps it across the run's end);
- the head's ``log`` of an object the driver took over: the driver writes
  nothing to the head (its death ends the job), so its own dispatches are
  added to the attempts and location the head has;
- ``budget`` of a taken-over task its dead owner never pushed: the
  implementation's first run of it is a resubmission, which spends one of
  ``retries_left`` (``TakeOver._lineage``); the spec's budget is one less
  until that run;
- ``mv``: what a process heard in a take-over's notice; a re-executed
  parent that adopts learns where the object moved from the head's answer,
  before its process hears of the death, which the spec does not count;
- a push lost with a worker its node stopped for the push's dead owner is,
  to the spec, still in flight to that (live) process until it drops it as
  stale: it stays in ``msgs`` until the trace's ``WorkerStart`` takes it;
- a crashed process keeps its ``ent``, ``brw``, ``dk`` and ``mv`` (the spec
  changes none of them after a crash);
- ``fin``: the pushes the workers of a process ran to the end, as each
  worker's executor remembers them, kept by the harness once seen (a
  node stops a worker leased to a dead owner, and a crash takes them all;
  the spec's process keeps them);
- ``gst``, ``got``, ``created``, ``made``, ``odied``, ``crashes``: the
  harness's record of what the bodies and calls did.

Stimuli: a step of the parent's body (``ParentMake``, ``ParentShare``,
``ParentFinish``) releases the body; ``OwnerDispatch`` delivers the task's
lease request (the grant, the head's log of the dispatch and the push
follow below the spec) until the push is in flight; ``WorkerFinish``
releases the task's body (its value goes to the node's store below the
spec); ``HolderGet``/``HolderRelease`` are the driver's calls on the
holder; ``Crash`` crashes the node; ``HeadDetectDeath`` lets heartbeat
rounds pass until the head declares it dead; a step that consumes a
message delivers the one in flight (``ProcessHandleOwnerMoved``: the head's
notice to the node, relayed to its workers below the spec;
``NewOwnerHandleReport``: every answer of the process's node and workers).

Event log (implementation -> model). A random environment
(:meth:`offers`, for :func:`conformance.eventlog.random_workload`) gives
the stimuli above in a seeded order: the parent's body steps, dispatches,
the deliveries of held messages, the driver's calls on the holders, a
crash of a ``Crashable`` process within ``MaxCrashes``, the head's
detection of it. It keeps to the runs the implementation can follow as
the traces do: a process is told of a death only once it runs no task of
the dead owner (the departure above), a process's answers to a take-over
are delivered together and before its later release (one connection),
and a message of the new epoch reaches the driver only once it has heard
of the death. :meth:`recognize` reads the spec's steps off the cores'
recorded steps, one line per spec step with the ``p`` and ``x`` its
``lastAction`` records (never ``m``):

- ``ParentMake``/``ParentShare``/``ParentFinish``: the parent's
  ``Submit`` of x's task, of a ``keep`` call (one line per object), and
  its ``TaskDone``; a re-execution that adopted x hands nothing out, so
  its ``ParentShare`` is the harness's own line (a ``UserStep``);
- ``OwnerDispatch``: an owner's send of x's ``PushTask``; ``WorkerStart``
  its receipt, run or dropped; ``WorkerFinish`` x's ``TaskDone``;
  ``OwnerHandleReply``/``DriverHandleParentDone``: a ``TaskReply``
  received;
- ``HolderReceive``: a ``keep`` call received at a holder; ``HolderGet``
  and ``HolderRelease``: the holder's ``GetValue`` and ``RemoveLocalRef``
  of x; ``HolderGetReturns``: the ``GetDone`` that answers that get;
  ``OwnerHandleRefRemoved``: a ``RefRemoved`` of x received;
- ``OwnerFree``: the head's ``ObjectDeleted`` (ok) received by the owner,
  as it frees the copies; ``StoreFree``: a node's store receiving
  ``FreeObject`` of x; ``AdopterRelease``: the head receiving
  ``ReleaseAdopted``;
- ``Crash``: the network's crash of a node; ``HeadDetectDeath``: the
  head's notices of it (``OwnerMoved``, or ``NodeDied`` when nothing
  moved); ``ProcessHandleOwnerMoved``: a node receiving one (its workers'
  relays are below the spec);
- ``NewOwnerHandleReport``: the last of a process's answers to reach the
  driver (the spec's one answer per process is its node's and workers'
  merged); ``NewOwnerComplete`` and ``OwnerRebuild``, which send nothing
  of their own: read off the owner's table before and after each step
  (:meth:`snapshot_for_log`: an object leaves ``recovering``; a lost one,
  or one just completed, becomes pending again or fails).

Lines of one stimulus keep the order the implementation took them, which
is one the spec can take (the eager actions after the step that enables
them). Left out: the messages lost with a worker a node stopped for a
dead owner (the spec keeps such a push in flight until its worker drops
it as stale, and a log may end with it there), the driver's own node's
answers (inside the driver's step, as in the projection), and everything
below the spec (lease requests and grants, the head's log writes, the
relays of notices, the pulls of values).

The same :meth:`recognize` reads the merged step logs of a TCP run, bound
by :func:`conformance.merge.bind_ownerrecovery` (node and worker
addresses to processes, the parent's task, the objects). Those logs carry
the owners' task tables, not their objects (``owner_tables`` is off):
``NewOwnerComplete`` is placed at the last answer the driver waited for
(every process its take-over notice named, but the dead and itself), and
``OwnerRebuild`` is not recognized, so a run that rebuilds is rejected at
the dispatch that follows. The TCP runtime pulls a value a get reads into
its node's store, a copy the spec does not have (its copies are the
primary ones): ``StoreFree`` is a store freeing a copy a task's
``PutObject`` made. An answer that reaches the driver before it heard of
the death (kept, and taken when it hears) counts when it is taken.
"""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import trio

from ownership.core.config import CoreConfig
from ownership.core.messages import (
    ClusterView,
    Heartbeat,
    LeaseGranted,
    NodeDied,
    OwnerMoved,
    PushTask,
    RecoveryReport,
    RefRemoved,
    RequestLease,
    Spillback,
    TaskReply,
)
from ownership.core.refcount import FAILED, LOST, PENDING, READY
from ownership.core.submitter import DONE, RUNNING
from ownership.errors import OwnershipError
from ownership.runtime.refs import _runtime_var
from ownership.runtime.transport import Envelope
from ownership.runtime.values import Payload, pack_function, unpack
from ownership.runtime.worker import error_info_of
from ownership.tla.values import ModelValue, TLARecord, format_value, function_value

from ..cluster import ActiveMapping, ModelCluster, NodeShape, StimulusError
from . import Mapping

__all__ = ["EAGER", "NO_RETARGET", "OwnerRecoveryMapping", "MAPPING"]

_ACTIVE = ActiveMapping("OwnerRecovery")

#: actions the implementation takes by itself, inside the stimulus that enables them
EAGER = frozenset(
    {
        "HolderGetReturns",
        "OwnerFree",
        "StoreFree",
        "AdopterRelease",
        "NewOwnerComplete",
        "OwnerRebuild",
    }
)

#: the departure traces avoid: a process hears of an owner's death only
#: when it runs no task of that owner (the implementation kills such runs)
NO_RETARGET = (
    'lastAction\'.name = "ProcessHandleOwnerMoved" => '
    "~\\E r \\in run[lastAction'.params.p] : r.o = lastAction'.params.m.w"
)

async def parent_body(holders: dict) -> None:
    """The parent task's user code: the model's ``Body``, one step at a time."""
    mapping = _ACTIVE.get()
    return await mapping.run_parent(_runtime_var.get(), holders)


async def object_body(name: str) -> list[str]:
    """A task of an object: it returns its lineage value once the trace finishes it."""
    mapping = _ACTIVE.get()
    return await mapping.run_object(_runtime_var.get(), name)


class Holder:
    """A holder of the model: an actor of the driver that keeps a reference."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ref: Any = None

    async def keep(self, box: Any) -> None:
        self.ref = box[0]

    async def get(self) -> list[str]:
        return await _runtime_var.get().get_one(self.ref)

    async def release(self) -> None:
        self.ref = None


@attrs.define(eq=False)
class _Body:
    """One execution of the parent, as user code runs it."""

    address: str
    att: int
    pc: int = 1
    st: str = "running"
    refs: dict = attrs.Factory(dict)
    go: trio.Event = attrs.Factory(trio.Event)


def _owned(snapshot: Any) -> dict[str, tuple[str, bool]]:
    """An owner's objects in a step's snapshot (:meth:`OwnerRecoveryMapping.snapshot_for_log`)."""
    return snapshot["owned"] if isinstance(snapshot, dict) and isinstance(snapshot.get("owned"), dict) else {}


class OwnerRecoveryMapping(Mapping):
    spec = "OwnerRecovery"
    eager = EAGER
    unobserved = {
        "lastAction": "auxiliary: the trace's own label of its steps",
        "why": "history read only by the properties (why a failure was allowed)",
    }

    @classmethod
    def model_choices(cls, constants: dict[str, Any]) -> tuple[list[str], list[str]]:
        return [], [NO_RETARGET]

    def __init__(self, constants: dict[str, Any]) -> None:
        super().__init__(constants)
        k = constants
        self.procs: list[ModelValue] = sorted(k["Procs"])
        self.driver: ModelValue = k["Driver"]
        self.no_proc: ModelValue = k["NoProc"]
        self.no_obj: ModelValue = k["NoObj"]
        self.objects: list[ModelValue] = sorted(k["Objects"])
        self.recoverable: dict = dict(k["Recoverable"])
        self.kind: dict = dict(k["Kind"])
        self.inline: dict = dict(k["Inline"])
        if len(set(self.inline.values())) > 1:
            raise ValueError("the OwnerRecovery mapping sets one inline threshold: every object's value is small, or none is")
        self.args: dict = {x: frozenset(v) for x, v in dict(k["Args"]).items()}
        self.retries: dict = dict(k["Retries"])
        self.placement: dict = {x: tuple(v) for x, v in dict(k["Placement"]).items()}
        self.holders: dict = {x: frozenset(v) for x, v in dict(k["Holders"]).items()}
        self.parent_places: tuple = tuple(k["ParentPlacement"])
        self.body: tuple = tuple(k["Body"])
        self.crashable: frozenset = frozenset(k["Crashable"])
        if k.get("Joiners") or k.get("Relays"):
            raise ValueError("the OwnerRecovery mapping starts every process at once and has holders keep what they get: no Joiners or Relays")
        self.by_name = {x.name: x for x in self.objects}
        self.proc_by_name = {p.name: p for p in self.procs}
        self.place: dict = {}
        for x in self.objects:
            if self.kind[x] != "task" or not self.recoverable[x] or self.args[x]:
                raise ValueError(f"the OwnerRecovery mapping drives recoverable tasks without arguments, not {x.name}")
            if self.placement[x][0] in self.crashable:
                raise ValueError(f"{x.name} runs first at {self.placement[x][0].name}, which may crash: a marker cannot follow PlaceOf")
            self.place[x] = self.placement[x][0]
        if any(op["op"] == "get" for op in self.body):
            raise ValueError("the OwnerRecovery mapping does not drive the parent's gets")
        self.all_holders = sorted(frozenset().union(*self.holders.values()))
        self.c: ModelCluster | None = None
        self.bodies: dict[ModelValue, _Body] = {}
        self.parent_att = 0
        self.holder_refs: dict[str, Any] = {}
        #: holder -> (owner proc, model epoch) of the reference it keeps
        self.held: dict[ModelValue, tuple] = {}
        self.gst: dict[ModelValue, str] = {h: "none" for h in self.all_holders}
        self.got: set = set()
        self.created: set = set()
        self.made: set = set()
        self.crashes = 0
        self.obj_of: dict[str, ModelValue] = {}
        self.oid: dict[ModelValue, str] = {}
        #: (proc, object) -> the last model epoch of its entry
        self.ent_ep: dict[tuple, int] = {}
        self.last_push: dict[tuple, ModelValue] = {}
        #: RefRemoved in flight (by id) -> the model epoch it names
        self.removed_ep: dict[int, int] = {}
        self._keep: list[Any] = []
        self._object_fn = pack_function(object_body)
        self._parent_fn = pack_function(parent_body)
        self._runs: dict[str, trio.Event] = {}
        #: worker address -> the object whose task it runs (while it runs)
        self._run_obj: dict[str, ModelValue] = {}
        #: set by conformance.eventlog.random_workload
        self.recorder: Any = None
        self.rng: Any = None
        #: where addresses are not the model's names (a TCP run, bound by
        #: conformance.merge.bind_ownerrecovery): node address -> process,
        #: worker or driver address -> the process of its node, the head's
        #: address, the parent's task id; and whether the steps carry the
        #: owners' tables (snapshot_for_log) or only their task tables
        self.node_alias: dict[str, ModelValue] = {}
        self.alias: dict[str, ModelValue] = {}
        self.head_address = "head"
        self.driver_addr: str | None = None
        self.parent_task: str | None = None
        self.owner_tables = True
        #: a crashed process -> its tables when it crashed
        self.frozen: dict[ModelValue, dict[str, Any]] = {}
        #: process -> the pushes of x its workers finished (see _finished)
        self.fin: dict[ModelValue, set] = {}
        #: pushes of an object's task by each owner, and those lost with a
        #: worker its node stopped for its dead owner (see _network_event)
        self.pushes: dict[tuple, int] = {}
        self.ghosts: dict[int, Envelope] = {}
        self.harness_crashed: set[str] = set()

    # ------------------------------------------------------------------ cluster
    def cluster(self) -> Any:
        shapes = {}
        for p in self.procs:
            res = {"CPU": 4.0}
            if p in self.parent_places:
                res["parent"] = 1.0
            for x in self.objects:
                if self.place[x] == p:
                    res[f"run:{x.name}"] = 4.0
            if p in self.all_holders:
                res[f"holder:{p.name}"] = 1.0
            shapes[p.name] = NodeShape(tuple(sorted(res.items())), 4)
        # A small value (Inline) travels in its reply: the object's task
        # returns a list of a few names, far below the default threshold.
        config = CoreConfig(
            inline_threshold=CoreConfig().inline_threshold if any(self.inline.values()) else 0,
            node_timeout_ticks=1,
            suspect_on_connection_loss=False,
            max_workers_per_node=8,
        )
        return _ACTIVE.cluster(self, shapes, config, self.driver.name)

    def _driver_address(self) -> str:
        return _ACTIVE.driver_address(self.driver.name)

    async def start(self, cluster: ModelCluster) -> None:
        self.c = cluster
        cluster.network.observers.append(self._network_event)
        rt = cluster.drivers[self._driver_address()]
        _runtime_var.set(rt)
        for h in self.all_holders:
            fid = f"holder:{h.name}"
            ref = rt.submit_task(fid, Payload(data=pickle.dumps(Holder)), (h.name,), {},
                                 resources=((f"holder:{h.name}", 1.0),), max_retries=0, kind="actor_create", name=fid)
            self.holder_refs[h.name] = ref
        await self.settle()
        function_id, function = self._parent_fn
        self.parent_ref = rt.submit_task(function_id, function, (dict(self.holder_refs),), {},
                                         resources=(("parent", 1.0),), max_retries=len(self.parent_places) - 1, name="parent")
        await self.settle()

    # ------------------------------------------------------------------ user code
    async def run_parent(self, rt: Any, holders: dict) -> None:
        p = self.proc_by_name[rt.address.rpartition("@")[2]]
        self.parent_att += 1
        b = _Body(rt.address, self.parent_att)
        self.bodies[p] = b
        for op in self.body:
            x = op["obj"]
            await self._wait_go(b)
            if op["op"] == "make":
                function_id, function = self._object_fn
                ref = rt.submit_task(function_id, function, (x.name,), {}, resources=((f"run:{x.name}", 1.0),),
                                     max_retries=self.retries[x], name=x.name, recoverable=True)
                self.obj_of[ref.object_id] = x
                self.oid[x] = ref.object_id
                b.refs[x] = ref
            elif op["op"] == "share":
                # a re-execution hands out only a recoverable object it
                # made anew, not one it adopted (ParentShare)
                ref = rt.core.refs.table.get(b.refs[x].object_id) if x in b.refs else None
                if ref is not None and ref.owned and (b.att == 1 or self.recoverable[x]):
                    for h in sorted(self.holders[x]):
                        rt.submit_actor_call(holders[h.name], "keep", ([b.refs[x]],), {})
                elif self.recorder is not None:
                    # a re-execution that adopted x hands nothing out: no core sees this step
                    self.recorder.user(rt.address, "ParentShare", {"p": p, "x": x})
            b.pc += 1
        await self._wait_go(b)
        b.refs.clear()
        b.st = "done"

    async def run_object(self, rt: Any, name: str) -> list[str]:
        done = self._runs[rt.address] = trio.Event()
        self._run_obj[rt.address] = self.by_name[name]
        await done.wait()
        del self._runs[rt.address]
        return [name]

    async def _wait_go(self, b: _Body) -> None:
        await b.go.wait()
        b.go = trio.Event()

    # ------------------------------------------------------------------ delivery
    def _x_task(self, task_id: str) -> ModelValue | None:
        return self.obj_of.get(f"{task_id}.r")

    def _held(self, env: Envelope) -> bool:
        msg = env.msg
        if isinstance(msg, (Heartbeat, ClusterView, OwnerMoved, NodeDied, RecoveryReport, RefRemoved)):
            return isinstance(msg, (Heartbeat, ClusterView)) or self._held_recovery(env)
        if isinstance(msg, RequestLease):
            return self._x_task(msg.task_id) is not None
        if isinstance(msg, (Spillback, LeaseGranted)):
            return False
        if isinstance(msg, PushTask):
            return self._x_task(msg.task.task_id) is not None or msg.task.method == "keep"
        if isinstance(msg, TaskReply):
            return self._x_task(msg.task_id) is not None or msg.task_id == self._parent_task_id()
        return False

    def _held_recovery(self, env: Envelope) -> bool:
        msg = env.msg
        if isinstance(msg, (OwnerMoved, NodeDied)):
            # the head's notice to a node (a death that moved nothing is a
            # NodeDied: the spec's OwnerMoved with no object); a node's relay
            # to its workers is below the spec
            return env.src == "head"
        if isinstance(msg, RecoveryReport):
            return self._proc(env.src) != self.driver  # the driver's node answers inside the driver's step
        return isinstance(msg, RefRemoved) and self._obj(msg.object_id) is not None

    def _parent_task_id(self) -> str | None:
        if self.parent_task is not None:
            return self.parent_task
        return getattr(self, "parent_ref", None) and self.parent_ref.object_id.removesuffix(".r")

    async def settle(self) -> None:
        assert self.c is not None
        net = self.c.network
        while True:
            await net.settle()
            flight = [(mid, env) for mid, env in net.in_flight() if not self._held(env)]
            if not flight:
                return
            mid, env = flight[0]
            if isinstance(env.msg, RequestLease):
                for _ in range(2):
                    await self.c.refresh_views()
                if mid not in dict(net.in_flight()):
                    continue
            net.deliver(mid)

    def _network_event(self, event: Any) -> None:
        env = event.envelope
        if event.kind == "drop" and env is not None and isinstance(env.msg, PushTask):
            # A push to a worker its node stopped because the push's owner
            # died: to the spec that worker is its process, alive, and the
            # push is in flight until the worker drops it as stale
            # (WorkerStart); the implementation lost it with the worker.
            assert self.c is not None
            if (
                self._x_task(env.msg.task.task_id) is not None
                and not self.c.network.alive(env.dst)
                and self._proc(env.dst).name not in self.harness_crashed
            ):
                assert event.id is not None
                self.ghosts[event.id] = env
            return
        if event.kind != "send" or env is None:
            return
        msg = env.msg
        if isinstance(msg, PushTask):
            x = self._x_task(msg.task.task_id)
            if x is not None:
                key = (self._proc(env.src), x)
                self.last_push[key] = self._proc(env.dst)
                self.pushes[key] = self.pushes.get(key, 0) + 1
        elif isinstance(msg, RefRemoved):
            h = self._proc(env.src)
            if h in self.held:
                self.removed_ep[id(msg)] = self.held[h][1]
                self._keep.append(msg)

    # ------------------------------------------------------------------ stimuli
    async def apply(self, action: str, params: dict[str, Any]) -> None:
        assert self.c is not None
        handler = getattr(self, f"_do_{action}", None)
        if handler is None:
            raise StimulusError(f"the OwnerRecovery mapping has no stimulus for {action}")
        await handler(params)
        await self.settle()

    async def _deliver(self, action: str, m: Any, types: tuple[type, ...]) -> None:
        assert self.c is not None
        for mid, env in self.c.network.in_flight():
            if isinstance(env.msg, types) and m in self._records(env):
                await self.c.deliver(mid)
                return
        raise StimulusError(f"{action}: no message in flight is {format_value(m)}")

    def _body(self, p: ModelValue) -> _Body:
        b = self.bodies.get(p)
        if b is None or b.st != "running":
            raise StimulusError(f"no body of the parent runs at {p.name}")
        return b

    async def _body_step(self, p: ModelValue, op: str, x: Any) -> None:
        b = self._body(p)
        if op == "finish":
            if b.pc <= len(self.body):
                raise StimulusError(f"the parent at {p.name} has not reached its end")
        elif b.pc > len(self.body) or self.body[b.pc - 1]["op"] != op or self.body[b.pc - 1]["obj"] != x:
            raise StimulusError(f"the parent at {p.name} is not at {op} {x.name} (pc {b.pc})")
        b.go.set()
        assert self.c is not None
        await self.c.network.settle()

    async def _do_ParentMake(self, p: dict[str, Any]) -> None:
        x = p["x"]
        adopted = self.recoverable[x] and x in self.oid and self._log(x) is not None
        await self._body_step(p["p"], "make", x)
        if not adopted:
            self.created.add(x)

    async def _do_ParentShare(self, p: dict[str, Any]) -> None:
        await self._body_step(p["p"], "share", p["x"])

    async def _do_ParentFinish(self, p: dict[str, Any]) -> None:
        await self._body_step(p["p"], "finish", None)

    async def _do_DriverHandleParentDone(self, p: dict[str, Any]) -> None:
        await self._deliver("DriverHandleParentDone", p["m"], (TaskReply,))

    async def _do_OwnerDispatch(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        owner = self._owner_address(p["p"])
        x = p["x"]
        for _ in range(20):
            await self.settle()
            flight = self.c.network.in_flight()
            if any(isinstance(e.msg, PushTask) and e.src == owner and self._x_task(e.msg.task.task_id) == x for _m, e in flight):
                return
            req = next((mid for mid, e in flight if isinstance(e.msg, RequestLease) and e.msg.owner == owner
                        and self._x_task(e.msg.task_id) == x), None)
            if req is None:
                break
            for _ in range(2):
                await self.c.refresh_views()
            await self.c.deliver(req)
        raise StimulusError(f"{p['p'].name} did not push {x.name}")

    async def _do_WorkerStart(self, p: dict[str, Any]) -> None:
        for mid, env in list(self.ghosts.items()):
            if p["m"] in self._records(env):
                del self.ghosts[mid]  # dropped as stale, by a worker that is gone here (see _network_event)
                return
        await self._deliver("WorkerStart", p["m"], (PushTask,))

    async def _do_WorkerFinish(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        x = p["x"]
        for address, done in list(self._runs.items()):
            if self._proc(address) == p["p"]:
                done.set()
                await self.c.network.settle()
                self.made.add(x)
                return
        raise StimulusError(f"no run of {x.name} at {p['p'].name}")

    async def _do_OwnerHandleReply(self, p: dict[str, Any]) -> None:
        await self._deliver("OwnerHandleReply", p["m"], (TaskReply,))

    async def _do_HolderReceive(self, p: dict[str, Any]) -> None:
        h, m = p["p"], p["m"]
        live_owner = m["o"] not in self._known_dead(h)
        await self._deliver("HolderReceive", m, (PushTask,))
        if live_owner and self.gst.get(h) == "released":
            self.gst[h] = "none"  # a holder that let go of x may get the one made anew

    async def _do_HolderGet(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        h, x = p["p"], p["x"]
        rt = self.c.drivers[self._driver_address()]
        self.gst[h] = "wait"

        async def get() -> None:
            _runtime_var.set(rt)
            try:
                value = await rt.get_one(rt.submit_actor_call(self.holder_refs[h.name], "get", (), {}))
                self.got.add(TLARecord(h=h, x=x, res="value", val=frozenset(self.by_name[s] for s in value), by="holder"))
                self.gst[h] = "value"
            except OwnershipError as exc:
                kind = error_info_of(exc).kind
                res = "OwnerDied" if kind == "owner_died" else "error"
                self.got.add(TLARecord(h=h, x=x, res=res, val=frozenset(), by="holder"))
                self.gst[h] = "error"

        self.c.nursery.start_soon(get)
        await self.c.network.settle()

    async def _do_HolderRelease(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        h = p["p"]
        rt = self.c.drivers[self._driver_address()]
        self._keep.append(rt.submit_actor_call(self.holder_refs[h.name], "release", (), {}))
        await self.c.network.settle()
        self.gst[h] = "released"

    async def _do_OwnerHandleRefRemoved(self, p: dict[str, Any]) -> None:
        await self._deliver("OwnerHandleRefRemoved", p["m"], (RefRemoved,))

    async def _do_Crash(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        q = p["p"]
        # The spec keeps a crashed process's table, references and knowledge as they were.
        self.frozen[q] = {
            "ent": function_value((x, self._entry(q, x)) for x in self.objects),
            "brw": function_value((x, self._borrow(q, x)) for x in self.objects),
            "dk": self._known_dead(q),
            "mv": function_value((x, self._moved(q, x)) for x in self.objects),
        }
        self.harness_crashed.add(q.name)
        self.c.crash(q.name)
        self.crashes += 1

    async def _do_HeadDetectDeath(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        await self.c.declare_node_dead(p["p"].name)

    async def _do_ProcessHandleOwnerMoved(self, p: dict[str, Any]) -> None:
        await self._deliver("ProcessHandleOwnerMoved", p["m"], (OwnerMoved, NodeDied))

    async def _do_NewOwnerHandleReport(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        m = p["m"]
        mids = [mid for mid, env in self.c.network.in_flight()
                if isinstance(env.msg, RecoveryReport) and self._proc(env.src) == m["w"] and self._held(env)]
        if not mids or m not in self._report_records(m["w"]):
            raise StimulusError(f"NewOwnerHandleReport: no report in flight is {format_value(m)}")
        for mid in mids:
            await self.c.deliver(mid)

    # ------------------------------------------------------------------ event log
    def snapshot_for_log(self, process: str, core: Any) -> Any:
        """An owner's objects (status, and whether a take-over of it is
        still collecting answers): NewOwnerComplete and OwnerRebuild change
        only these, and send nothing of their own."""
        refs = getattr(core, "refs", None)
        takeover = getattr(core, "takeover", None)
        if refs is None or takeover is None:
            return None
        return {"owned": {oid: (ref.status, oid in takeover.recovering) for oid, ref in refs.table.items() if ref.owned}}

    def _driver_heard(self) -> bool:
        """The driver has heard of every death the head declared (a message
        of the new epoch reaches it only after the take-over notice)."""
        assert self.c is not None and self.c.head is not None
        declared = {n for n, rec in self.c.head.core.nodes.items() if not rec.alive}
        core = self.c.drivers[self._driver_address()].core
        return declared <= set(core.dead_nodes)

    def _runs_for(self, q: ModelValue, dead: ModelValue) -> bool:
        """Process ``q`` runs (or was handed) a task of ``dead``."""
        return any(self._proc(r.spec.owner) == dead for core in self._cores_at(q) for r in core.executor.running.values())

    def offers(self) -> list[tuple[str, Any]]:
        """The stimuli a random environment may give now, on the model's
        program: the parent's body steps, dispatches, deliveries of the held
        messages, the driver's calls on the holders, a crash of a crashable
        process within the crash budget, the head's detection of it."""
        assert self.c is not None and self.c.head is not None
        c = self.c
        net = c.network
        out: list[tuple[str, Any]] = []

        def act(name: str, action: str, params: dict[str, Any]) -> None:
            out.append((name, lambda: self.apply(action, params)))

        def deliver(name: str, mids: list[int]) -> None:
            async def go() -> None:
                for mid in mids:
                    if mid in dict(net.in_flight()):
                        await c.deliver(mid)
                await self.settle()

            out.append((name, go))

        for p, b in sorted(self.bodies.items()):
            if b.st != "running" or not net.alive(b.address):
                continue
            if b.pc <= len(self.body):
                op = self.body[b.pc - 1]
                action = {"make": "ParentMake", "share": "ParentShare"}[op["op"]]
                act(f"{op['op']} {op['obj'].name} at {p.name}", action, {"p": p, "x": op["obj"]})
            else:
                act(f"finish the parent at {p.name}", "ParentFinish", {"p": p})
        for address in sorted(self._runs):
            if net.alive(address):
                p, x = self._proc(address), self._run_obj[address]
                act(f"finish {x.name} at {p.name}", "WorkerFinish", {"p": p, "x": x})
        flight = net.in_flight()
        reports: dict[ModelValue, list[int]] = {}
        dispatches: set[tuple[ModelValue, ModelValue]] = set()
        for mid, env in flight:
            msg = env.msg
            if not net.alive(env.dst):
                continue  # lost with its addressee (the spec drops it, or keeps it where nobody takes it)
            if isinstance(msg, RequestLease):
                x = self._x_task(msg.task_id)
                if x is not None and net.alive(msg.owner):
                    dispatches.add((self._proc(msg.owner), x))
                continue
            if not self._held(env) or isinstance(msg, (Heartbeat, ClusterView)):
                continue
            src = self._proc(env.src)
            if isinstance(msg, RecoveryReport):
                reports.setdefault(src, []).append(mid)
                continue
            if isinstance(msg, (OwnerMoved, NodeDied)):
                dead = self._proc(msg.node) if msg.node else self._proc(msg.workers[0])
                q = self._proc(env.dst)
                if self._runs_for(q, dead):
                    continue  # the departure: the node would stop that run (NO_RETARGET)
            if isinstance(msg, RefRemoved):
                dst = self._proc(env.dst)
                if any(isinstance(e.msg, RecoveryReport) and self._proc(e.src) == src and self._proc(e.dst) == dst for _m, e in flight):
                    continue  # one connection: the holder's answer to the take-over comes first
                if dst == self.driver and not self._driver_heard():
                    continue  # of an epoch the driver has not heard of yet
            deliver(f"deliver {type(msg).__name__} {env.src} -> {env.dst}", [mid])
        for p, x in sorted(dispatches):
            act(f"dispatch {x.name} at {p.name}", "OwnerDispatch", {"p": p, "x": x})
        if self._driver_heard():
            for q, mids in sorted(reports.items()):
                deliver(f"deliver the answers of {q.name}", mids)
        for x in self.objects:
            for h in sorted(self.holders[x]):
                if not net.alive(h.name) or not self._borrow(h, x)["held"]:
                    continue
                if self.gst[h] == "none":
                    act(f"get {x.name} at {h.name}", "HolderGet", {"p": h, "x": x})
                elif self.gst[h] in ("value", "error"):
                    act(f"release {x.name} at {h.name}", "HolderRelease", {"p": h, "x": x})
        if self.crashes < int(self.constants["MaxCrashes"]) and (self.rng is None or self.rng.random() < 0.2):
            for p in sorted(self.crashable):
                if net.alive(p.name):
                    act(f"crash {p.name}", "Crash", {"p": p})
        head = c.head.core
        for p in self.procs:
            rec = head.nodes.get(p.name)
            if rec is not None and rec.alive and not net.alive(p.name):
                act(f"detect the death of {p.name}", "HeadDetectDeath", {"p": p})
        return out

    def recognize(self, steps: list[Any]) -> list[Any]:
        """The spec actions of a recorded run, one line per spec step, in
        clock order (see the module doc, "Event log")."""
        from ownership.core.events import GetDone, GetValue, Received, RemoveLocalRef, Send, Submit, TaskDone
        from ownership.core.messages import FreeObject, ObjectDeleted, PutObject, ReleaseAdopted

        from ..eventlog import CoreStep, LogLine, NetStep, UserStep

        lines: list[LogLine] = []
        no_obj = self.no_obj
        parent = self._parent_task_id()
        holders = set(self.all_holders)
        nodes = {**self.proc_by_name, **self.node_alias}
        head = self.head_address
        driver_at = self.driver_addr or self._driver_address()

        def add(clock: int, process: str, action: str, p: Any, x: Any = None) -> None:
            lines.append(LogLine(clock, process, action, {"p": p, "x": no_obj if x is None else x}))

        def report_key(q: ModelValue, msg: RecoveryReport) -> tuple:
            return q, frozenset((e.object_id, e.epoch) for e in msg.entries)

        # the answers of each process to a take-over (its node's and its
        # workers'): the spec's one answer is the last of them to arrive
        answers: dict[tuple, int] = {}
        for s in steps:
            if isinstance(s, CoreStep) and self._proc(s.process) not in (self.driver,):
                for e in s.effects:
                    if isinstance(e, Send) and isinstance(e.msg, RecoveryReport):
                        key = report_key(self._proc(s.process), e.msg)
                        answers[key] = answers.get(key, 0) + 1
        arrived: dict[tuple, int] = {}
        gets: dict[tuple[str, int], ModelValue] = {}
        shared: set[tuple[str, ModelValue]] = set()
        detected: set[ModelValue] = set()
        #: (object id, epoch) of the take-overs the driver has heard of; the
        #: answers that reach it before are kept and taken when it hears
        heard: set[tuple[str, int]] = set()
        early: list[tuple[ModelValue, RecoveryReport]] = []
        #: without the owners' tables (a TCP run): the processes whose
        #: answer the driver still waits for, per taken-over object
        waiting: dict[ModelValue, set[ModelValue]] = {}
        #: the stores that took a primary copy of an object (a pulled copy
        #: is below the spec, which frees only primary ones)
        primary: set[tuple[str, ModelValue]] = set()

        def answer(clock: int, where: str, q: ModelValue, msg: RecoveryReport) -> None:
            key = report_key(q, msg)
            arrived[key] = arrived.get(key, 0) + 1
            if arrived[key] != answers.get(key):
                return
            for oid in sorted({e.object_id for e in msg.entries}):
                if (x := self._obj(oid)) is None:
                    continue
                add(clock, where, "NewOwnerHandleReport", self.driver, x)
                if not self.owner_tables and x in waiting:
                    waiting[x].discard(q)
                    if not waiting[x]:
                        del waiting[x]
                        add(clock, where, "NewOwnerComplete", self.driver, x)
        for s in steps:
            if isinstance(s, UserStep):
                add(s.clock, s.process, s.kind, **(s.detail or {}))
                continue
            if isinstance(s, NetStep):
                ev = s.event
                if ev.kind == "crash" and ev.address in nodes:
                    add(s.clock, ev.address, "Crash", nodes[ev.address])
                continue  # a loss needs no line: the spec keeps a message to the dead, or drops it as it crashes
            if not isinstance(s, CoreStep):
                continue
            where, event = s.process, s.event
            p = self._proc(where)
            msg = event.msg if isinstance(event, Received) else None
            sends = [e for e in s.effects if isinstance(e, Send)]
            if where == head:
                if isinstance(msg, ReleaseAdopted) and (x := self._obj(msg.object_id)) is not None:
                    add(s.clock, where, "AdopterRelease", self._proc(msg.adopter), x)
                for e in sends:
                    if isinstance(e.msg, (OwnerMoved, NodeDied)):
                        dead = self._proc(e.msg.node) if e.msg.node else self._proc(e.msg.workers[0])
                        if dead in self.proc_by_name.values() and dead not in detected:
                            detected.add(dead)
                            add(s.clock, where, "HeadDetectDeath", dead)
                continue
            if where in nodes:  # a node: its scheduler, its store, the head's notices
                if isinstance(msg, (OwnerMoved, NodeDied)) and event.src == head:
                    add(s.clock, where, "ProcessHandleOwnerMoved", p)
                elif isinstance(msg, PutObject) and (x := self._obj(msg.object_id)) is not None:
                    primary.add((where, x))
                elif isinstance(msg, FreeObject) and (x := self._obj(msg.object_id)) is not None and (where, x) in primary:
                    add(s.clock, where, "StoreFree", p, x)
                continue
            # a worker, or the driver
            if isinstance(event, Submit):
                task = event.task
                if (x := self._x_task(task.task_id)) is not None:
                    add(s.clock, where, "ParentMake", p, x)
                elif task.method == "keep":
                    for a in task.args:
                        for r in (a.value.refs if a.value is not None else ()):
                            y = self._obj(r.object_id)
                            if y is not None and (where, y) not in shared:
                                shared.add((where, y))
                                add(s.clock, where, "ParentShare", p, y)
            elif isinstance(event, TaskDone) and event.error is None:
                if event.task_id == parent:
                    add(s.clock, where, "ParentFinish", p)
                elif (x := self._x_task(event.task_id)) is not None:
                    add(s.clock, where, "WorkerFinish", p, x)
            elif isinstance(event, GetValue) and p in holders and (x := self._obj(event.object_id)) is not None:
                gets[(where, event.request_id)] = x
                add(s.clock, where, "HolderGet", p, x)
            elif isinstance(event, RemoveLocalRef) and p in holders and (x := self._obj(event.object_id)) is not None:
                add(s.clock, where, "HolderRelease", p, x)
            elif isinstance(msg, PushTask):
                if (x := self._x_task(msg.task.task_id)) is not None:
                    add(s.clock, where, "WorkerStart", p, x)
                elif msg.task.method == "keep" and p in holders:
                    for a in msg.task.args:
                        for r in (a.value.refs if a.value is not None else ()):
                            if (y := self._obj(r.object_id)) is not None:
                                add(s.clock, where, "HolderReceive", p, y)
            elif isinstance(msg, TaskReply):
                if msg.task_id == parent:
                    add(s.clock, where, "DriverHandleParentDone", self.driver)
                elif (x := self._x_task(msg.task_id)) is not None:
                    add(s.clock, where, "OwnerHandleReply", p, x)
            elif isinstance(msg, RefRemoved) and (x := self._obj(msg.object_id)) is not None:
                add(s.clock, where, "OwnerHandleRefRemoved", p, x)
            elif isinstance(msg, ObjectDeleted) and msg.ok and (x := self._obj(msg.object_id)) is not None:
                add(s.clock, where, "OwnerFree", p, x)
            elif isinstance(msg, RecoveryReport) and self._proc(event.src) != self.driver:
                if all((e.object_id, e.epoch) in heard for e in msg.entries):
                    answer(s.clock, where, self._proc(event.src), msg)
                else:
                    early.append((self._proc(event.src), msg))
            elif isinstance(msg, OwnerMoved) and where == driver_at:
                heard.update((m.object_id, m.epoch) for m in msg.moved)
                if not self.owner_tables:
                    dead = self._proc(msg.node) if msg.node else self._proc(msg.workers[0])
                    told = {self._proc(a) for a in msg.told} - {dead, self.driver}
                    for m in msg.moved:
                        if (x := self._obj(m.object_id)) is not None:
                            waiting[x] = set(told)
                kept, early = early, []
                for q, report in kept:
                    if all((e.object_id, e.epoch) in heard for e in report.entries):
                        answer(s.clock, where, q, report)
                    else:
                        early.append((q, report))
            for e in sends:
                if isinstance(e.msg, PushTask) and (x := self._x_task(e.msg.task.task_id)) is not None:
                    add(s.clock, where, "OwnerDispatch", p, x)
            for e in s.effects:
                if isinstance(e, GetDone) and (where, e.request_id) in gets:
                    add(s.clock, where, "HolderGetReturns", p, gets.pop((where, e.request_id)))
            # the owner's table: a take-over completed, a lost object made again
            before, after = _owned(s.before), _owned(s.after)
            for oid in sorted(set(before) | set(after)):
                x = self._obj(oid)
                if x is None:
                    continue
                was, now = before.get(oid), after.get(oid)
                completed = was is not None and was[1] and not (now is not None and now[1])
                if completed:
                    add(s.clock, where, "NewOwnerComplete", self.driver, x)
                rebuilt_from = was is not None and (completed or was[0] == LOST)
                if rebuilt_from and now is not None and not now[1] and now[0] in (PENDING, FAILED):
                    add(s.clock, where, "OwnerRebuild", p, x)
        return lines

    # ------------------------------------------------------------------ projection helpers
    def _proc(self, address: str | None) -> ModelValue:
        if address is None:
            return self.no_proc
        bound = self.node_alias.get(address) or self.alias.get(address)
        if bound is not None:
            return bound
        name = address.rpartition("@")[2] if "@" in address else address
        return self.proc_by_name.get(name, ModelValue(f"<{address}>"))

    def _obj(self, object_id: str) -> ModelValue | None:
        return self.obj_of.get(object_id)

    def _owner_address(self, p: ModelValue) -> str:
        if p == self.driver:
            return self._driver_address()
        b = self.bodies.get(p)
        if b is None:
            raise StimulusError(f"no owner at {p.name}")
        return b.address

    def _cores_at(self, p: ModelValue) -> list[Any]:
        assert self.c is not None
        out = []
        for address, rt in sorted({**self.c.workers, **self.c.drivers}.items()):
            if self._proc(address) == p and self.c.network.alive(address):
                out.append(rt.core)
        return out

    def _log(self, x: ModelValue) -> Any:
        assert self.c is not None and self.c.head is not None
        oid = self.oid.get(x)
        return self.c.head.core.recovery_logs.get(oid) if oid is not None else None

    @staticmethod
    def _ep(epoch: int) -> int:
        """The spec's epoch for the implementation's: its first is 0, the spec's 1."""
        return epoch + 1

    def _msg(self, type: str, x: Any, o: Any, ep: int, w: Any, dst: Any, **fields: Any) -> TLARecord:
        base = dict(type=type, x=x, o=o, ep=ep, w=w, dst=dst, held=False, copy=False, running=False, err="",
                    moved=frozenset(), to=frozenset(), att=0, val=frozenset())
        base.update(fields)
        return TLARecord(**base)

    def _records(self, env: Envelope) -> list[TLARecord]:
        msg = env.msg
        if isinstance(msg, PushTask):
            x = self._x_task(msg.task.task_id)
            if x is not None:
                return [self._msg("PushTask", x, self._proc(env.src), self._ep(msg.epoch), self._proc(env.dst), self._proc(env.dst),
                                  att=msg.attempt)]
            if msg.task.method == "keep":
                out = []
                for a in msg.task.args:
                    for r in (a.value.refs if a.value is not None else ()):
                        y = self._obj(r.object_id)
                        if y is not None:
                            ep = self.ent_ep.get((self._proc(env.src), y), 0)
                            out.append(self._msg("Share", y, self._proc(env.src), ep, self._proc(env.dst), self._proc(env.dst)))
                return out
        if isinstance(msg, TaskReply):
            x = self._x_task(msg.task_id)
            if x is not None:
                err = "" if msg.error is None else "arg"
                val = self._value(msg.value) if msg.value is not None and msg.location is None else frozenset()
                return [self._msg("TaskReply", x, self._proc(env.dst), self._ep(msg.epoch), self._proc(msg.worker), self._proc(env.dst),
                                  err=err, val=val)]
            if msg.task_id == self._parent_task_id():
                p = self._proc(msg.worker)
                b = self.bodies.get(p)
                return [self._msg("ParentDone", self.no_obj, p, b.att if b else 0, p, self.driver)]
        if isinstance(msg, RefRemoved):
            x = self._obj(msg.object_id)
            if x is not None:
                return [self._msg("RefRemoved", x, self._proc(env.dst), self.removed_ep.get(id(msg), 0), self._proc(msg.borrower), self._proc(env.dst))]
        if isinstance(msg, OwnerMoved) and env.src == "head":
            dead = self._proc(msg.node) if msg.node else self._proc(msg.workers[0])
            moved = frozenset((x, self._ep(m.epoch)) for m in msg.moved if (x := self._obj(m.object_id)) is not None)
            to = frozenset(self._proc(a) for a in msg.told) - {dead}
            return [self._msg("OwnerMoved", self.no_obj, dead, 0, dead, self._proc(env.dst), moved=moved, to=to | {self.driver})]
        if isinstance(msg, NodeDied) and env.src == "head":
            dead = self._proc(msg.node)
            assert self.c is not None and self.c.head is not None
            to = frozenset(self._proc(n) for n, rec in self.c.head.core.nodes.items() if rec.alive) | {self.driver}
            return [self._msg("OwnerMoved", self.no_obj, dead, 0, dead, self._proc(env.dst), to=to - {dead})]
        if isinstance(msg, RecoveryReport):
            return self._report_records(self._proc(env.src))
        return []

    def _report_records(self, q: ModelValue) -> list[TLARecord]:
        """The spec's reports of process ``q``: its node's and its workers' answers, merged."""
        assert self.c is not None
        merged: dict[tuple, dict] = {}
        for _mid, env in self.c.network.in_flight():
            if isinstance(env.msg, RecoveryReport) and self._proc(env.src) == q:
                for e in env.msg.entries:
                    x = self._obj(e.object_id)
                    if x is None:
                        continue
                    slot = merged.setdefault((x, self._ep(e.epoch)), {"held": False, "copy": False, "running": False})
                    slot["held"] |= e.held
                    slot["copy"] |= e.copy
                    slot["running"] |= e.running
        return [self._msg("RecoveryReport", x, self.driver, ep, q, self.driver, **f) for (x, ep), f in merged.items()]

    def _value(self, payload: Payload) -> frozenset:
        """A value of the model: the set of objects whose tasks made it."""
        return frozenset(self.by_name[s] for s in unpack(payload, lambda info: None))

    def _kept_inline(self, ref: Any, x: ModelValue) -> bool:
        """The owner keeps x's small value in its own store (Inline)."""
        return self.inline[x] and ref.value is not None and ref.status == READY

    def _entry(self, p: ModelValue, x: ModelValue) -> TLARecord:
        no = TLARecord(st="none", ep=self.ent_ep.get((p, x), 0), loc=self.no_proc, locs=frozenset(), budget=0,
                       borrowers=frozenset(), local=False, waiting=frozenset(), running=frozenset(), att=0)
        oid = self.oid.get(x)
        core = next((c for c in self._cores_at(p) if oid is not None and (r := c.refs.table.get(oid)) is not None and r.owned), None)
        if core is None:
            return no
        ref = core.refs.table[oid]
        ep = self._ep(ref.epoch)
        self.ent_ep[(p, x)] = ep
        task = core.submitter.tasks.get(ref.task_id) if ref.task_id else None
        rec = core.takeover.recovering.get(oid) if p == self.driver else None
        if rec is not None:
            st = "recovering"
        elif ref.status == READY:
            st = "ready"
        elif ref.status == LOST:
            st = "lost"
        elif ref.status == FAILED:
            st = "failed"
        elif task is not None and task.state == RUNNING and task.dispatching is None:
            st = "pending"
        else:
            st = "waiting"
        borrowers = {self._proc(a) for a in ref.borrowers}
        for env in self._keep_calls(core.address, oid):
            borrowers.add(self._proc(env))
        locs = frozenset(self._proc(n) for n in ref.locations) if st in ("ready", "recovering") else frozenset()
        if st in ("ready", "recovering") and self._kept_inline(ref, x):
            locs |= {p}
        waiting = frozenset(self._proc(a) for a in rec.waiting) - {self.driver} if rec is not None else frozenset()
        budget = task.retries_left if task is not None else 0
        log = self._log(x)
        never_run = log is not None and log.attempts == 0 and self.pushes.get((self.driver, x), 0) == 0
        if task is not None and task.state == DONE and p == self.driver and never_run:
            # A task its dead owner never pushed: its first run here will be a
            # resubmission, which spends one of retries_left (the spec's
            # LogBudget counts no retry for it; see TakeOver._lineage).
            budget -= 1
        return TLARecord(
            st=st, ep=ep, loc=self.last_push.get((p, x), self.no_proc), locs=locs,
            budget=budget,
            borrowers=frozenset(borrowers), local=ref.local > 0, waiting=waiting, running=frozenset(),
            att=task.attempt if task is not None else 0,
        )

    def _keep_calls(self, owner: str, oid: str) -> list[str]:
        """Holders a ``keep`` call carrying ``oid`` is on its way to, or runs at (not yet replied)."""
        assert self.c is not None
        out = []
        for _mid, env in self.c.network.in_flight():
            if isinstance(env.msg, PushTask) and env.src == owner and env.msg.task.method == "keep":
                if any(r.object_id == oid for a in env.msg.task.args if a.value is not None for r in a.value.refs):
                    out.append(env.dst)
        return out

    def _borrow(self, p: ModelValue, x: ModelValue) -> TLARecord:
        oid = self.oid.get(x)
        for core in self._cores_at(p):
            ref = core.refs.table.get(oid) if oid else None
            if ref is not None and not ref.owned and ref.status != FAILED:
                ep = self._ep(ref.epoch or self._owner_epoch(ref.owner, oid))
                if p in self.all_holders:
                    self.held[p] = (self._proc(ref.owner), ep)
                return TLARecord(o=self._proc(ref.owner), ep=ep, held=True)
        return TLARecord(o=self.no_proc, ep=0, held=False)

    def _owner_epoch(self, owner: str, oid: str) -> int:
        """The epoch at which ``owner`` owns ``oid`` (0 when it does not).
        A reference travels without its epoch: a borrower that did not get
        it from a take-over notice knows it at the epoch of the owner it
        names, which the spec writes into the reference."""
        assert self.c is not None
        rt = {**self.c.workers, **self.c.drivers}.get(owner)
        ref = rt.core.refs.table.get(oid) if rt is not None else None
        return ref.epoch if ref is not None and ref.owned else 0

    def _moved(self, p: ModelValue, x: ModelValue) -> TLARecord:
        oid = self.oid.get(x)
        best = None
        for core in self._cores_at(p):
            if not core.dead_nodes and not core.dead_workers:
                # An adopter learns where the object moved from the head's
                # answer to its LogObject, before its process hears of the
                # death; the spec's mv is what a process heard in the notice.
                continue
            m = core.moved.get(oid) if oid else None
            if m is not None and (best is None or m[1] > best[1]):
                best = m
        if best is None:
            return TLARecord(o=self.no_proc, ep=0)
        return TLARecord(o=self._proc(best[0]), ep=self._ep(best[1]))

    def _known_dead(self, p: ModelValue) -> frozenset:
        cores = self._cores_at(p)
        if not cores:
            return frozenset()
        dead = set().union(*(c.dead_nodes for c in cores))
        return frozenset(self._proc(n) for n in dead)

    def _runs_at(self, p: ModelValue) -> frozenset:
        out = set()
        for core in self._cores_at(p):
            for r in core.executor.running.values():
                x = self._x_task(r.spec.task_id)
                if x is not None and r.started:
                    o = self._proc(r.spec.owner)
                    ep = self.ent_ep.get((o, x), 1)
                    out.add(TLARecord(x=x, o=o, ep=ep, src=(o, ep), att=r.attempt, val=frozenset({x})))
        return frozenset(out)

    def _finished(self, p: ModelValue) -> frozenset:
        """The pushes of the model's objects that the workers at ``p`` ran to
        the end, <<x, owner, epoch, attempt>>. The spec's process keeps them
        while it lives; the implementation's are in its node's workers, one
        of which the node may stop (leased to a dead owner): the harness
        keeps what each had."""
        seen = self.fin.setdefault(p, set())
        for core in self._cores_at(p):
            for task_id, owner, epoch, attempt in core.executor._finished_set:
                x = self._x_task(task_id)
                if x is not None:
                    seen.add((x, self._proc(owner), self._ep(epoch), attempt))
        return frozenset(seen)

    def _copies(self) -> frozenset:
        assert self.c is not None
        out = set()
        for name, rt in self.c.nodes.items():
            if not self.c.network.alive(name):
                continue
            for oid, obj in rt.core.store.objects.items():
                x = self._obj(oid)
                if x is not None and obj.pinned:
                    out.add(TLARecord(x=x, n=self.proc_by_name[name], o=self._proc(obj.owner), ep=self._ep(obj.epoch),
                                      val=self._value(obj.value)))
        for p in self.procs:
            for core in self._cores_at(p):
                for x in self.objects:
                    ref = core.refs.table.get(self.oid.get(x, ""))
                    if ref is not None and ref.owned and self._kept_inline(ref, x):
                        out.add(TLARecord(x=x, n=p, o=p, ep=self._ep(ref.epoch), val=self._value(ref.value)))
        return frozenset(out)

    def _log_record(self, x: ModelValue) -> TLARecord:
        log = self._log(x)
        if log is None:
            # The head keeps the last epoch of an object taken over, and no other.
            assert self.c is not None and self.c.head is not None
            kept = self.c.head.core.moved_epochs.get(self.oid.get(x, ""))
            return TLARecord(st="none", owner=self.no_proc, ep=self._ep(kept) if kept is not None else 0,
                             loc=self.no_proc, att=0, val=frozenset(), adopt=frozenset())
        owner = self._proc(log.owner)
        loc = self._proc(log.location) if log.location else self.no_proc
        att = log.attempts
        if owner == self.driver:
            # The driver writes nothing to the head (it is the new owner of
            # everything, and its death ends the job): its dispatches of an
            # object it took over are counted here, as the spec's log does.
            att += self.pushes.get((self.driver, x), 0)
            loc = self.last_push.get((self.driver, x), loc)
        return TLARecord(st="logged", owner=owner, ep=self._ep(log.epoch), loc=loc, att=att,
                         val=frozenset(), adopt=frozenset(self._proc(a) for a in log.adopters))

    def _par(self) -> TLARecord:
        assert self.c is not None
        core = self.c.drivers[self._driver_address()].core
        # The driver's view of the parent task: done once it took the reply.
        # (Its return object may be lost later with the parent's node; the
        # spec has no such object, and the task stays done.)
        task = core.submitter.tasks.get(self._parent_task_id() or "")
        ref = core.refs.table.get(self.parent_ref.object_id)
        st = "running"
        if ref is not None and ref.status == FAILED:
            st = "failed"
        elif task is None or task.state == DONE:
            st = "done"
        # parent_att: the executions of the parent's body so far (the driver
        # re-executes it inside its step, ProcessHandleOwnerMoved, as the spec does)
        return TLARecord(att=self.parent_att, st=st)

    def _frozen(self, p: ModelValue, name: str) -> Any:
        return self.frozen[p][name] if p in self.frozen else None

    def project(self) -> dict[str, Any]:
        assert self.c is not None and self.c.head is not None
        head = self.c.head.core
        up = frozenset(p for p in self.procs if self.c.network.alive(p.name))
        declared = frozenset(self.proc_by_name[n] for n, rec in head.nodes.items() if not rec.alive and n in self.proc_by_name)
        msgs = set()
        for _mid, env in self.c.network.in_flight():
            if self._held(env) and not isinstance(env.msg, (Heartbeat, ClusterView)) and self.c.network.alive(env.dst):
                msgs.update(self._records(env))
        for env in self.ghosts.values():
            if self._proc(env.dst) in up:
                msgs.update(self._records(env))
        pb = {}
        for p in self.procs:
            b = self.bodies.get(p)
            if b is None or (b.st == "running" and p not in up):
                pb[p] = TLARecord(st="idle" if b is None else b.st, pc=0 if b is None else b.pc, att=0 if b is None else b.att)
            else:
                pb[p] = TLARecord(st=b.st, pc=b.pc, att=b.att)
        return {
            "joined": frozenset(self.procs),
            "up": up,
            "crashes": self.crashes,
            "declared": declared,
            "log": function_value((x, self._log_record(x)) for x in self.objects),
            "ent": function_value((p, self._frozen(p, "ent") or function_value((x, self._entry(p, x)) for x in self.objects)) for p in self.procs),
            "brw": function_value((p, self._frozen(p, "brw") or function_value((x, self._borrow(p, x)) for x in self.objects)) for p in self.procs),
            "dk": function_value((p, self._frozen(p, "dk") if p in self.frozen else self._known_dead(p)) for p in self.procs),
            "mv": function_value((p, self._frozen(p, "mv") or function_value((x, self._moved(p, x)) for x in self.objects)) for p in self.procs),
            "gst": function_value((p, function_value((x, self.gst.get(p, "none")) for x in self.objects)) for p in self.procs),
            "run": function_value((p, self._runs_at(p)) for p in self.procs),
            "fin": function_value((p, self._finished(p)) for p in self.procs),
            "copies": self._copies(),
            "msgs": frozenset(msgs),
            "par": self._par(),
            "pb": function_value(pb.items()),
            "got": frozenset(self.got),
            "created": frozenset(self.created),
            "made": frozenset(self.made),
            "odied": frozenset(),
        }


MAPPING = OwnerRecoveryMapping
