"""Scheduling (spec/Scheduling.tla, paper §4.1) <-> the implementation.

Binding of the model's values (from the trace's constants):

- node ``n`` is the node process named ``n``; its CPU is ``Capacity[n]``
  (every lease takes one CPU) and its pool the workers ``WorkerNode`` puts
  there: ``w<i>@<n>`` for the i-th of them in name order;
- owner ``o`` is a driver on ``OwnerNode[o]``: ``driver@<n>``, then
  ``driver2@<n>``...; key ``k`` is a resource shape (one CPU, plus a marker
  resource per key when there are several keys);
- task ``t`` is the task the owner submits at ``OwnerSubmit(o, t)``;
- ``PipelineDepth`` is the owners' ``pipeline_depth``, and they pipeline
  whenever the spec lets them (whatever the tasks' durations);
- workers of one node are interchangeable until a step tells them apart:
  the first grant of ``w`` binds ``w`` to the worker the scheduler picked
  (the scheduler picks the first idle worker by address, the spec any).

Stimuli: ``OwnerSubmit`` submits a task on the driver; a step that consumes
a message delivers the one in-flight message matching it (the head's relay
of WorkerDied/NodeDied through the owner's node is delivered hop by hop);
``WorkerCrash``/``NodeCrash`` crash the process; ``HeadDetectNodeDeath``
lets heartbeat rounds pass until the head declares the node dead;
``OwnerReturnLease`` is the owner's idle-lease timeout (a tick, or the
submitter's ``return_lease`` for that lease when a tick would return
several). Before a lease request is delivered, two heartbeat rounds make
every scheduler's view of the other nodes current (see ``_current_views``),
since the spec's spillback policy reads the cluster as it is.

Eager actions (no stimulus; the implementation takes them inside the step
that enables them): OwnerRequestLease and OwnerReuseLease (``_pump`` after
every owner event), OwnerResubmit (the failure scan), OwnerReconstruct (a
finished task queued again in the step that finds its value lost: TCP runs
only, the models have no reconstruction), SchedulerDetectWorkerDeath
(the node watches its workers: the crash reaches it at once) and
LoseMessage (the network drops messages to a dead process at once).

Projection: every variable but ``lastAction``. ``crashes``, ``execs`` and
``ranOn`` are the harness's record of the environment (crashes it caused,
task runs it saw replies of). A crashed node's ``pool`` and ``granted`` are
its state when it crashed (the spec keeps them as the last report the
cluster has). ``deadWorkers`` is compared together with the workers of
``deadNodes``: the implementation adds a dead node's workers to its
dead-worker set, the spec keeps the node only, and both mean the same to
``LocationDied``.
"""

from __future__ import annotations

from typing import Any

import attrs

from ownership.core.config import CoreConfig
from ownership.core.events import KillWorker, PeerLost, ProbeResult, Received, Send, Submit, Tick
from ownership.core.messages import (
    LeaseGranted,
    NodeDied,
    PushTask,
    RequestLease,
    ReturnLease,
    Spillback,
    TaskReply,
    WorkerBlocked,
    WorkerDied,
    WorkerRegistered,
    WorkerUnblocked,
)
from ownership.core.refcount import FAILED
from ownership.core.scheduler import DRIVER
from ownership.core.submitter import DONE, QUEUED, RUNNING, WAITING
from ownership.runtime.transport import Envelope
from ownership.runtime.values import pack_function
from ownership.tla.values import ModelValue, TLAFunction, TLARecord, format_value, function_value

from ..cluster import ModelCluster, NodeShape, StimulusError, model_cluster
from ..eventlog import CoreStep, LogLine, NetStep
from . import Mapping

__all__ = ["SchedulingMapping", "MAPPING", "conformance_task"]


async def conformance_task() -> None:
    """The user code of every task: the spec does not look at values."""
    return None


def _record(**fields: Any) -> TLARecord:
    return TLARecord(fields)


def _fn(pairs: Any) -> Any:
    return function_value(pairs)


@attrs.define
class _Binding:
    owner_addr: dict[ModelValue, str]
    node_addr: dict[ModelValue, str]
    worker_addr: dict[ModelValue, str]
    key_resources: dict[ModelValue, tuple[tuple[str, float], ...]]
    task_id: dict[ModelValue, str] = attrs.Factory(dict)

    def inverse(self) -> dict[str, ModelValue]:
        out: dict[str, ModelValue] = {}
        for table in (self.owner_addr, self.node_addr, self.worker_addr, self.task_id):
            out.update({v: k for k, v in table.items()})
        return out

    def roles(self) -> _Roles:
        """The inverse by role: in a TCP run a worker whose task submits
        tasks is an owner too (one address, two model values)."""
        return _Roles(
            {v: k for k, v in self.owner_addr.items()},
            {v: k for k, v in self.node_addr.items()},
            {v: k for k, v in self.worker_addr.items()},
            {v: k for k, v in self.task_id.items()},
        )


@attrs.frozen
class _Roles:
    owner: dict[str, ModelValue]
    node: dict[str, ModelValue]
    worker: dict[str, ModelValue]
    task: dict[str, ModelValue]


class _EventLogMixin:
    """The event log of a run (implementation -> model): the stimuli a random
    environment may give, and the spec actions of a recorded run."""

    def snapshot_for_log(self: Any, process: str, core: Any) -> Any:
        """Task states of an owner, before and after a stimulus: a resubmit
        shows only there (it need not send anything at once)."""
        sub = getattr(core, "submitter", None)
        if sub is None:
            return None
        return {tid: (t.state, t.retries_left) for tid, t in sub.tasks.items()}

    def offers(self: Any) -> list[tuple[str, Any]]:
        """The stimuli a random environment may give now (within the model's bounds)."""
        assert self.c is not None and self.c.head is not None
        c = self.c
        out: list[tuple[str, Any]] = []

        def offer(name: str, action: str, params: dict[str, Any]) -> None:
            out.append((name, lambda: self.apply(action, params)))

        for o in self.owners:
            for t in self.constants["SubmitOrder"]:
                if self.task_owner[t] == o and t not in self.bind.task_id:
                    offer(f"submit {t}", "OwnerSubmit", {"o": o, "t": t})
                    break
        for mid, env in c.network.in_flight():
            if self._spec_messages(env):
                out.append((f"deliver {mid}", lambda mid=mid, env=env: self._deliver_raw(mid, env)))
        if self.crashes < int(self.constants.get("MaxCrashes", 0)):
            owner_nodes = set(self.owner_node.values())
            for w in self.workers:
                if c.network.alive(self.bind.worker_addr[w]) and c.network.alive(self.bind.node_addr[self.worker_node[w]]):
                    offer(f"crash {w}", "WorkerCrash", {"w": w})
            for n in self.nodes:
                if n not in owner_nodes and c.network.alive(self.bind.node_addr[n]):
                    offer(f"crash {n}", "NodeCrash", {"n": n})
        for n in self.nodes:
            record = c.head.core.nodes.get(self.bind.node_addr[n])
            if record is not None and record.alive and not c.network.alive(self.bind.node_addr[n]):
                offer(f"detect {n}", "HeadDetectNodeDeath", {"n": n})
        for o in self.owners:
            rt = c.runtimes().get(self.bind.owner_addr[o])
            if rt is not None and any(not l.running for l in rt.core.submitter.leases.values()):
                out.append((f"timeout {o}", lambda address=self.bind.owner_addr[o]: c.tick_and_settle(address)))
        return out

    async def _deliver_raw(self: Any, mid: int, env: Envelope) -> None:
        assert self.c is not None
        if isinstance(env.msg, RequestLease):
            await self._current_views()  # as in replay: spillback reads the cluster as it is
        if mid in dict(self.c.network.in_flight()):
            await self.c.deliver(mid)
        self._observe()

    def recognize(self: Any, steps: list[CoreStep | NetStep]) -> list[LogLine]:
        """The spec actions of a recorded run, in clock order.

        Without a cluster (``self.c`` None: the merged step logs of a TCP
        run, conformance/merge.py) the ids come from the steps' own sends,
        and every drop is of a message to a dead process (the merge makes
        no other).
        """
        if self.c is not None:
            self._observe()
        roles = self.bind.roles()
        if self.c is None:
            for s in steps:
                if isinstance(s, CoreStep):
                    for e in s.effects:
                        if isinstance(e, Send):
                            self._observe_send(Envelope(s.process, e.dst, e.msg), roles)
        owner_of, node_of, worker_of, task_of = roles.owner, roles.node, roles.worker, roles.task
        lines: list[LogLine] = []
        dead: set[str] = set()
        # workers a node stopped because their actor's lease came back
        # (counted as their crash then): no crash line when they end
        reclaimed: set[str] = set()
        # workers a node told to stop because their owner died, to their
        # node: their end, when it comes, is the stop landing
        # (SchedulerStopWorker), and until then they may still run
        stopping: dict[str, str] = {}
        # workers whose end a node saw at the return of their lease with kill
        # (their slot is dying at once): no second detection when they end
        detected: set[str] = set()
        # every lease the log shows granted for a task of the model, id ->
        # (worker, owner) (the return of another lease is not a step of the
        # spec); those still held, not returned or lost with their worker;
        # and those lent (LocalScheduler.blocked acts only on a lease it holds)
        grants: dict[str, tuple[str, str]] = {}
        held: set[str] = set()
        lent: set[str] = set()
        # (node, owner) pairs whose SchedulerReclaimLeases the log has: the
        # spec's reclaim takes the owner's requests to the node still in
        # flight too, so the loss of one when the node dies is no step
        swept: set[tuple[str, str]] = set()

        # A parameter with no model value (a task outside the model: an actor's)
        # is left out of the line, or kept as unbound where the caller wants
        # to see such lines (``keep_unbound``: conformance/sized.py).
        keep = getattr(self, "keep_unbound", False)

        def add(clock: int, process: str, action: str, **params: Any) -> None:
            if keep:
                kept = {k: _unbound("?") if v is None else v for k, v in params.items()}
            else:
                kept = {k: v for k, v in params.items() if v is not None}
            lines.append(LogLine(clock, process, action, kept))

        for s in steps:
            if isinstance(s, NetStep):
                ev = s.event
                if ev.kind == "crash" and ev.address is not None:
                    parent_dead = any(ev.address.endswith("@" + d) for d in dead)
                    dead.add(ev.address)
                    if ev.address in worker_of and not parent_dead and ev.address in stopping:
                        add(s.clock, ev.address, "SchedulerStopWorker", n=node_of[stopping[ev.address]], w=worker_of[ev.address])
                    elif ev.address in worker_of and not parent_dead and ev.address not in reclaimed:
                        add(s.clock, ev.address, "WorkerCrash", w=worker_of[ev.address])
                    elif ev.address in node_of:
                        add(s.clock, ev.address, "NodeCrash", n=node_of[ev.address])
                elif ev.kind == "drop" and ev.envelope is not None and (self.c is None or ev.id not in self.c.kept):
                    env = ev.envelope
                    taken = isinstance(env.msg, RequestLease) and (env.dst, env.src) in swept
                    if not taken and (self.c is None or not self.c.network.alive(env.dst)):
                        for m in self._spec_messages(ev.envelope, roles):
                            add(s.clock, ev.envelope.dst, "LoseMessage", m=m)
                continue
            p, event = s.process, s.event
            sends = [e for e in s.effects if isinstance(e, Send)]
            if p in owner_of:  # a worker may be an owner too: both roles are looked at
                x = owner_of[p]
                grant_lease = None
                if isinstance(event, Submit):
                    add(s.clock, p, "OwnerSubmit", o=x, t=task_of.get(event.task.task_id))
                elif isinstance(event, Received):
                    msg = event.msg
                    env = Envelope(event.src, p, msg)
                    kinds = {LeaseGranted: "OwnerHandleGrant", Spillback: "OwnerHandleSpillback", TaskReply: "OwnerHandleReply"}
                    for cls, action in kinds.items():
                        if isinstance(msg, cls):
                            for m in self._spec_messages(env, roles):
                                add(s.clock, p, action, o=x, m=m)
                    if isinstance(msg, LeaseGranted):
                        grant_lease = msg.lease_id
                    if isinstance(msg, (WorkerDied, NodeDied)):
                        add(s.clock, p, "OwnerHandleFailure", o=x, m=self._notification(msg, x, roles))
                # Tasks the step queues again: the failure scan's resubmissions
                # (TaskSubmitter.resubmit) and lineage reconstruction
                # (FailureHandler.reconstruct: a finished task whose value is
                # lost). Each goes to the end of its key's queue; those the step
                # asks a lease for come first, in the order it asks (the heads
                # of their queues), the rest in the scan's order.
                before, after = s.before or {}, s.after or {}
                requeued: list[tuple[str, str]] = []
                notice = isinstance(event, Received) and isinstance(event.msg, (WorkerDied, NodeDied))
                for tid in sorted(after):  # the failure scan's order (TaskSubmitter.tasks_at)
                    if tid not in before:
                        continue
                    if before[tid][0] == DONE:
                        if after[tid][0] not in (DONE, FAILED) and tid in task_of:
                            requeued.append((tid, "OwnerReconstruct"))
                    # A task still waiting for its arguments fails with an
                    # argument that failed (its maker died with no retry left):
                    # it never asked for a lease, and Scheduling, which has no
                    # arguments, leaves it queued. Only a requested or running
                    # task is resubmitted or failed by the scan.
                    elif notice and before[tid][0] != WAITING and (
                        after[tid][1] < before[tid][1] or (after[tid][0] == FAILED and before[tid][0] != FAILED)
                    ):
                        requeued.append((tid, "OwnerResubmit"))
                # Each request and each push on a lease it already held takes
                # the head of its key's queue, in the order the step sends
                # them; a grant's own push (the first on its lease) does not.
                own_push = next(
                    (i for i, e in enumerate(sends) if isinstance(e.msg, PushTask) and e.msg.lease_id == grant_lease), None
                )
                dispatched = [
                    (i, e.msg)
                    for i, e in enumerate(sends)
                    if (isinstance(e.msg, PushTask) and i != own_push) or (isinstance(e.msg, RequestLease) and not e.msg.spilled)
                ]
                rank = {(m.task_id if isinstance(m, RequestLease) else m.task.task_id): r for r, (_i, m) in enumerate(dispatched)}
                for tid, action in sorted(requeued, key=lambda r: rank.get(r[0], len(rank))):
                    add(s.clock, p, action, o=x, t=task_of.get(tid))
                from_queue = {i for i, _m in dispatched}
                for i, e in enumerate(sends):
                    msg = e.msg
                    if i in from_queue and isinstance(msg, RequestLease):
                        add(s.clock, p, "OwnerRequestLease", o=x, t=task_of.get(msg.task_id))
                    elif i in from_queue:
                        add(s.clock, p, "OwnerReuseLease", o=x, w=worker_of.get(e.dst), t=task_of.get(msg.task.task_id))
                    elif isinstance(msg, ReturnLease) and (self.c is not None or msg.lease_id in grants):
                        add(s.clock, p, "OwnerReturnLease", o=x, w=worker_of.get(msg.worker))
            if p in node_of:
                n = node_of[p]
                if isinstance(event, Received) and isinstance(event.msg, ReturnLease) and (
                    self.c is not None or event.msg.lease_id in grants
                ):
                    for m in self._spec_messages(Envelope(event.src, p, event.msg), roles):
                        add(s.clock, p, "SchedulerReleaseLease", n=n, m=m)
                    stopped = [e.worker for e in s.effects if isinstance(e, KillWorker)]
                    if self.c is None and stopped and stopped[0] in worker_of:
                        # a lease returned with kill (an actor's, or one whose worker
                        # its owner lost): the node stops the worker and never leases
                        # it again, which the model counts as the worker's crash, if
                        # it has not crashed yet, and its detection, now (LocalScheduler.
                        # release_lease marks the slot dying; its exit comes later)
                        if stopped[0] not in reclaimed | dead:
                            add(s.clock, p, "WorkerCrash", w=worker_of[stopped[0]])
                            reclaimed.add(stopped[0])
                        add(s.clock, p, "SchedulerDetectWorkerDeath", n=n, w=worker_of[stopped[0]])
                        detected.add(stopped[0])
                    held.discard(event.msg.lease_id)
                    lent.discard(event.msg.lease_id)
                if isinstance(event, PeerLost) and event.address in worker_of:
                    if event.address not in detected:
                        add(s.clock, p, "SchedulerDetectWorkerDeath", n=n, w=worker_of[event.address])
                    for lease_id in [i for i in held if grants[i][0] == event.address]:
                        held.discard(lease_id)
                        lent.discard(lease_id)
                if isinstance(event, Received) and isinstance(event.msg, (WorkerBlocked, WorkerUnblocked)):
                    lease_id, worker = event.msg.lease_id, event.msg.worker
                    if lease_id in held and grants[lease_id][0] == worker and worker in worker_of:
                        if isinstance(event.msg, WorkerBlocked) and lease_id not in lent:
                            lent.add(lease_id)
                            add(s.clock, p, "SchedulerLend", n=n, w=worker_of[worker])
                        elif isinstance(event.msg, WorkerUnblocked) and lease_id in lent:
                            lent.discard(lease_id)
                            add(s.clock, p, "SchedulerUnlend", n=n, w=worker_of[worker])
                if isinstance(event, Received) and isinstance(event.msg, WorkerRegistered):
                    for e in sends:  # LocalScheduler.worker_registered: the worker may be leased now
                        if isinstance(e.msg, WorkerRegistered) and worker_of.get(e.dst) in self.unregistered:
                            add(s.clock, p, "SchedulerRegisterWorker", n=n, w=worker_of[e.dst])
                if isinstance(event, Received) and isinstance(event.msg, (WorkerDied, NodeDied)) and getattr(event.msg, "node", None) != p:
                    # LocalScheduler.reclaim_leases, for each owner among the dead
                    gone = {event.msg.worker} if isinstance(event.msg, WorkerDied) else set(event.msg.workers)
                    for address in sorted(gone & owner_of.keys()):
                        add(s.clock, p, "SchedulerReclaimLeases", n=n, o=owner_of[address])
                        swept.add((p, address))
                    leased_to_gone = {grants[i][0] for i in held if grants[i][1] in gone}
                    for e in s.effects:
                        if isinstance(e, KillWorker) and e.worker in leased_to_gone and e.worker not in dead:
                            stopping.setdefault(e.worker, p)
                for e in sends:
                    msg = e.msg
                    if isinstance(msg, (LeaseGranted, Spillback)):
                        task_id = self.request_task.get(msg.request_id, "")
                        request = RequestLease(request_id=msg.request_id, owner=e.dst, task_id=task_id, resources=())
                        for m in self._spec_messages(Envelope(e.dst, p, request), roles):
                            if isinstance(msg, LeaseGranted):
                                add(s.clock, p, "SchedulerGrantLease", n=n, w=worker_of.get(msg.worker), m=m)
                                if task_id in task_of:
                                    grants[msg.lease_id] = (msg.worker, e.dst)
                                    held.add(msg.lease_id)
                            else:
                                # the node it redirected to: with stale views
                                # (a sized model) the spec allows any other
                                r = node_of.get(msg.node)
                                add(s.clock, p, "SchedulerSpillback", n=n, m=m, **({} if r is None else {"r": r}))
            elif p == (self.head_address if self.c is None else "head"):
                # A heartbeat timeout (Tick) or the last unanswered probe of a
                # node whose connection dropped (ProbeResult).
                if isinstance(event, (Tick, ProbeResult)):
                    for node in dict.fromkeys(e.msg.node for e in sends if isinstance(e.msg, NodeDied)):
                        if node in node_of:
                            add(s.clock, p, "HeadDetectNodeDeath", n=node_of[node])
            if p in worker_of:
                x = worker_of[p]
                # The task's reply leaves: the spec's WorkerExecute. Mostly as
                # the task returns (TaskDone), but also in other steps: a task
                # failed before it ran (the owner of a borrowed argument died
                # while the worker registered with it), or a reply kept back
                # until the owners of borrowed refs in its value counted the
                # caller, or until the head logged a recoverable value.
                for e in sends:
                    # the reply, or the value stored at the node with the reply to relay
                    reply = e.msg if isinstance(e.msg, TaskReply) else getattr(e.msg, "reply", None)
                    if isinstance(reply, TaskReply) and reply.task_id in task_of:  # not an actor's call
                        t = task_of[reply.task_id]
                        o = owner_of.get(e.dst if reply is e.msg else e.msg.owner)
                        m = self._msg("PushTask", o, t, self.task_key.get(t), self.worker_node[x], x)
                        add(s.clock, p, "WorkerExecute", w=x, m=m)
        return lines


class SchedulingMapping(_EventLogMixin, Mapping):
    spec = "Scheduling"
    #: the head's address in a TCP run's merged logs (conformance/merge.py binds it)
    head_address = "head"
    eager = frozenset({"OwnerRequestLease", "OwnerReuseLease", "OwnerResubmit", "SchedulerDetectWorkerDeath", "LoseMessage"})

    def __init__(self, constants: dict[str, Any]) -> None:
        super().__init__(constants)
        c = constants
        try:
            self.owners = sorted(c["Owners"])
            self.nodes = sorted(c["Nodes"])
            self.workers = sorted(c["Workers"])
            self.tasks = sorted(c["Tasks"])
            self.keys = sorted(c["Keys"])
            self.owner_node = dict(c["OwnerNode"])
            self.worker_node = dict(c["WorkerNode"])
            self.capacity = dict(c["Capacity"])
            self.task_owner = dict(c["TaskOwner"])
            self.task_key = dict(c["TaskKey"])
            if "TaskRetries" in c:
                self.task_retries = {t: int(r) for t, r in dict(c["TaskRetries"]).items()}
            else:
                self.task_retries = {t: int(c["MaxRetries"]) for t in self.tasks}
            self.none = {name: c[name] for name in ("NoOwner", "NoNode", "NoWorker", "NoTask", "NoKey")}
            self.pipeline_depth = int(c["PipelineDepth"])
            # workers that join the pool when they register (a model sized from a run)
            self.unregistered = frozenset(c.get("Unregistered", ()))
        except KeyError as exc:
            raise ValueError(f"the trace's constants lack {exc.args[0]}: regenerate it with `ownership traces generate`") from None
        owner_addr: dict[ModelValue, str] = {}
        per_node: dict[ModelValue, int] = {}
        for o in self.owners:
            n = self.owner_node[o]
            per_node[n] = per_node.get(n, 0) + 1
            owner_addr[o] = f"driver@{n.name}" if per_node[n] == 1 else f"driver{per_node[n]}@{n.name}"
        worker_addr: dict[ModelValue, str] = {}
        for n in self.nodes:
            on_node = [w for w in self.workers if self.worker_node[w] == n]
            for i, w in enumerate(on_node, start=1):
                worker_addr[w] = f"w{i}@{n.name}"
        if len(self.keys) == 1:
            key_resources = {self.keys[0]: (("CPU", 1.0),)}
        else:
            key_resources = {k: tuple(sorted((("CPU", 1.0), (f"key-{k.name}", 1.0)))) for k in self.keys}
        self.bind = _Binding(owner_addr, {n: n.name for n in self.nodes}, worker_addr, key_resources)
        self.c: ModelCluster | None = None
        self.refs: dict[ModelValue, Any] = {}
        self.crashes = 0
        self.pinned: set[ModelValue] = set()  # workers whose binding a step has fixed
        self.frozen: dict[ModelValue, tuple[Any, Any, Any]] = {}
        self.request_task: dict[str, str] = {}  # request id -> task id
        self.lease_request: dict[str, str] = {}  # lease id -> request id
        self.lease_key: dict[str, ModelValue] = {}
        self.execs: dict[ModelValue, int] = {t: 0 for t in self.tasks}
        self.ran_on: dict[ModelValue, set[ModelValue]] = {t: set() for t in self.tasks}
        self._seen_events = 0
        self._function = pack_function(conformance_task)

    @classmethod
    def model_choices(cls, constants: dict[str, Any]) -> tuple[list[str], list[str]]:
        """A scheduler grants its first idle worker in address order
        (``LocalScheduler._idle_worker``); the spec may grant any."""
        mapping = cls(constants)
        rank = TLAFunction({w: int(a.split("@")[0].removeprefix("w")) for w, a in mapping.bind.worker_addr.items()})
        definitions = [f"ConformanceWorkerRank == {format_value(rank)}"]
        choices = [
            "lastAction'.name = \"SchedulerGrantLease\" => \\A v \\in IdleWorkers(lastAction'.params.n) :"
            " ConformanceWorkerRank[lastAction'.params.w] <= ConformanceWorkerRank[v]"
        ]
        return definitions, choices

    # ------------------------------------------------------------------ cluster
    def cluster(self) -> Any:
        shapes = {}
        for n in self.nodes:
            resources = {"CPU": float(self.capacity[n])}
            if len(self.keys) > 1:
                resources.update({f"key-{k.name}": 1000.0 for k in self.keys})
            pool = sum(1 for w in self.workers if self.worker_node[w] == n)
            shapes[n.name] = NodeShape(tuple(sorted(resources.items())), pool)
        pools = [s.pool_size for s in shapes.values()] or [1]
        config = CoreConfig(
            lease_idle_ticks=1,
            node_timeout_ticks=1,
            suspect_on_connection_loss=False,
            pipeline_depth=self.pipeline_depth,
            pipeline_short_tasks_only=False,
            max_pending_lease_requests=1,
            return_idle_leases_on_request=False,
            max_workers_per_node=max(pools),
        )
        drivers = {self.bind.owner_addr[o]: self.owner_node[o].name for o in self.owners}
        return model_cluster(shapes, drivers, config=config)

    async def start(self, cluster: ModelCluster) -> None:
        self.c = cluster
        missing = [a for a in self.bind.worker_addr.values() if a not in cluster.workers]
        if missing:
            raise StimulusError(f"the cluster did not start workers {missing}")
        self._observe()

    def _observe(self) -> None:
        """Read what was sent since the last look (ids the spec needs)."""
        assert self.c is not None
        events = self.c.events
        roles = self.bind.roles()
        for event in events[self._seen_events :]:
            if event.kind == "send" and event.envelope is not None:
                self._observe_send(event.envelope, roles)
        self._seen_events = len(events)

    def _observe_send(self, env: Envelope, roles: _Roles | None = None) -> None:
        msg = env.msg
        if isinstance(msg, RequestLease) and msg.task_id:
            self.request_task.setdefault(msg.request_id, msg.task_id)
        elif isinstance(msg, LeaseGranted):
            self.lease_request[msg.lease_id] = msg.request_id
            task = self._task_of_request(msg.request_id, roles)
            if task is not None:
                self.lease_key[msg.lease_id] = self.task_key[task]
        elif isinstance(msg, TaskReply):
            r = self.bind.roles() if roles is None else roles
            t = r.task.get(msg.task_id)
            w = r.worker.get(env.src)
            if t in self.execs:
                self.execs[t] += 1
                if w is not None:
                    self.ran_on[t].add(w)

    def _task_of_request(self, request_id: str, roles: _Roles | None = None) -> ModelValue | None:
        task_id = self.request_task.get(request_id)
        if not task_id:
            return None
        return (self.bind.roles() if roles is None else roles).task.get(task_id)

    # ------------------------------------------------------------------ stimuli
    def _runtime(self, address: str) -> Any:
        assert self.c is not None
        rt = self.c.runtimes().get(address)
        if rt is None:
            raise StimulusError(f"process {address} is not alive")
        return rt

    async def apply(self, action: str, params: dict[str, Any]) -> None:
        assert self.c is not None
        handler = getattr(self, f"_do_{action}", None)
        if handler is None:
            raise StimulusError(f"the Scheduling mapping has no stimulus for {action}")
        await handler(params)
        await self.c.settle()
        self._observe()

    async def _do_OwnerSubmit(self, p: dict[str, Any]) -> None:
        o, t = p["o"], p["t"]
        rt = self._runtime(self.bind.owner_addr[o])
        function_id, function = self._function
        ref = rt.submit_task(
            function_id, function, (), {}, resources=self.bind.key_resources[self.task_key[t]], max_retries=self.task_retries[t], name=t.name
        )
        self.refs[t] = ref
        self.bind.task_id[t] = ref.object_id.removesuffix(".r")

    async def _deliver_spec_message(self, m: dict[str, Any]) -> None:
        """Deliver the in-flight message that is ``m``, hop by hop through relays."""
        assert self.c is not None
        final = self._final_destination(m)
        for _ in range(4):
            matches = [(mid, env) for mid, env in self.c.network.in_flight() if m in self._spec_messages(env)]
            if not matches:
                raise StimulusError(f"no message in flight is {_show(m)}")
            direct = [(mid, env) for mid, env in matches if env.dst == final]
            mid, env = (direct or matches)[0]
            await self.c.deliver(mid)
            self._observe()
            if env.dst == final:
                return
        raise StimulusError(f"{_show(m)} did not reach {final} through its relays")

    def _final_destination(self, m: dict[str, Any]) -> str:
        kind = m["type"]
        if kind in ("RequestLease", "ReturnLease"):
            return self.bind.node_addr[m["node"]]
        if kind == "PushTask":
            return self.bind.worker_addr[m["worker"]]
        return self.bind.owner_addr[m["owner"]]

    async def _current_views(self) -> None:
        """Every node's view of every other node as it is now.

        One heartbeat round is not enough: the nodes' heartbeats reach the
        head in whatever order their tasks ran, and the head answers each
        with the records it has, so a node heard from early gets the other
        nodes' previous reports. A second round answers every node from
        records the first round made current.
        """
        assert self.c is not None
        await self.c.refresh_views()
        await self.c.refresh_views()

    async def _do_SchedulerGrantLease(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        await self._current_views()
        since = len(self.c.events)
        await self._deliver_spec_message(p["m"])
        node = self.bind.node_addr[p["m"]["node"]]
        grants = [
            e.envelope.msg
            for e in self.c.events[since:]
            if e.kind == "send" and e.envelope is not None and e.envelope.src == node and isinstance(e.envelope.msg, LeaseGranted)
        ]
        if grants and p.get("w") in self.bind.worker_addr:
            self._bind_symmetric(p["w"], grants[-1].worker)

    _do_SchedulerSpillback = _do_SchedulerGrantLease

    def _bind_symmetric(self, w: ModelValue, address: str) -> None:
        """Workers of one node are interchangeable until one is told apart:
        the worker the scheduler picks is the one the trace names."""
        current = self.bind.worker_addr[w]
        other = self.bind.inverse().get(address)
        if current != address and w not in self.pinned and other in self.bind.worker_addr and other not in self.pinned:
            if self.worker_node[other] == self.worker_node[w]:
                self.bind.worker_addr[w], self.bind.worker_addr[other] = address, current
        self.pinned.add(w)

    async def _do_OwnerHandleSpillback(self, p: dict[str, Any]) -> None:
        await self._deliver_spec_message(p["m"])

    _do_OwnerHandleGrant = _do_OwnerHandleSpillback
    _do_SchedulerReleaseLease = _do_OwnerHandleSpillback
    _do_WorkerExecute = _do_OwnerHandleSpillback
    _do_OwnerHandleReply = _do_OwnerHandleSpillback
    _do_OwnerHandleFailure = _do_OwnerHandleSpillback

    async def _do_OwnerReturnLease(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        o, w = p["o"], p["w"]
        address = self.bind.owner_addr[o]
        rt = self._runtime(address)
        sub = rt.core.submitter
        worker = self.bind.worker_addr[w]
        leases = [l for l in sub.leases.values() if l.worker == worker and l.key[0] != "actor"]
        if not leases:
            raise StimulusError(f"{address} holds no lease of {worker}")
        idle = [
            l
            for l in sub.leases.values()
            if l.key[0] != "actor" and not l.running and not (sub.keys.get(l.key) and sub.keys[l.key].queue)
        ]
        if [l.lease_id for l in idle] == [leases[0].lease_id] and rt.core.config.lease_idle_ticks == 1:
            await self.c.tick_and_settle(address)  # the idle timeout: returns this lease alone
        else:
            rt._apply(sub.return_lease(leases[0]))  # the timeout of this one lease

    async def _do_WorkerCrash(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        address = self.bind.worker_addr[p["w"]]
        self.pinned.add(p["w"])
        self._runtime(address)
        self.c.crash(address)
        self.crashes += 1

    async def _do_NodeCrash(self, p: dict[str, Any]) -> None:
        assert self.c is not None
        n = p["n"]
        address = self.bind.node_addr[n]
        self._runtime(address)
        self.frozen[n] = (self._pool(n), self._granted(n), self._lent(n))
        self.c.crash(address)
        self.crashes += 1

    async def _do_HeadDetectNodeDeath(self, p: dict[str, Any]) -> None:
        assert self.c is not None and self.c.head is not None
        address = self.bind.node_addr[p["n"]]
        await self.c.declare_node_dead(address)

    # ------------------------------------------------------------------ projection
    def _msg(self, kind: str, o: Any = None, t: Any = None, k: Any = None, n: Any = None, w: Any = None, r: Any = None) -> TLARecord:
        none = self.none
        return _record(
            type=kind,
            owner=none["NoOwner"] if o is None else o,
            task=none["NoTask"] if t is None else t,
            key=none["NoKey"] if k is None else k,
            node=none["NoNode"] if n is None else n,
            worker=none["NoWorker"] if w is None else w,
            retry_at=none["NoNode"] if r is None else r,
        )

    def _spec_messages(self, env: Envelope, roles: _Roles | None = None) -> list[TLARecord]:
        """The spec messages an in-flight envelope stands for (none for
        messages the spec does not model).  Each end is looked up in the role
        the message gives it (a worker may be an owner too)."""
        r = self.bind.roles() if roles is None else roles
        msg = env.msg
        if isinstance(msg, RequestLease):
            t = r.task.get(msg.task_id, _unbound(msg.task_id))
            return [self._msg("RequestLease", r.owner.get(env.src), t, self.task_key.get(t), r.node.get(env.dst))]
        if isinstance(msg, LeaseGranted):
            t = self._task_of_request(msg.request_id, r) or _unbound(msg.request_id)
            return [self._msg("LeaseGranted", r.owner.get(env.dst), t, self.task_key.get(t), r.node.get(env.src), r.worker.get(msg.worker))]
        if isinstance(msg, Spillback):
            t = self._task_of_request(msg.request_id, r) or _unbound(msg.request_id)
            return [self._msg("Spillback", r.owner.get(env.dst), t, self.task_key.get(t), r.node.get(env.src), r=r.node.get(msg.node))]
        if isinstance(msg, PushTask):
            t = r.task.get(msg.task.task_id, _unbound(msg.task.task_id))
            w = r.worker.get(env.dst)
            return [self._msg("PushTask", r.owner.get(env.src), t, self.task_key.get(t), self.worker_node.get(w), w)]
        if isinstance(msg, TaskReply):
            t = r.task.get(msg.task_id, _unbound(msg.task_id))
            # from the worker, or relayed by its node's store once the value is stored
            w = r.worker.get(msg.worker or env.src)
            return [self._msg("TaskReply", r.owner.get(env.dst), t, self.task_key.get(t), self.worker_node.get(w), w)]
        if isinstance(msg, ReturnLease):
            return [
                self._msg("ReturnLease", r.owner.get(env.src), None, self.lease_key.get(msg.lease_id), r.node.get(env.dst), r.worker.get(msg.worker))
            ]
        if isinstance(msg, (WorkerDied, NodeDied)):
            return [self._notification(msg, o, r) for o in self._notified_owners(env)]
        return []

    def _notification(self, msg: WorkerDied | NodeDied, o: ModelValue, roles: _Roles | None = None) -> TLARecord:
        r = self.bind.roles() if roles is None else roles
        if isinstance(msg, WorkerDied):
            w = r.worker.get(msg.worker, _unbound(msg.worker))
            return self._msg("WorkerDied", o, n=self.worker_node.get(w), w=w)
        return self._msg("NodeDied", o, n=r.node.get(msg.node, _unbound(msg.node)))

    def _notified_owners(self, env: Envelope) -> list[ModelValue]:
        """Owners a WorkerDied/NodeDied in flight is on its way to: the
        scheduler -> head -> owner's node -> owner relay is one spec message.
        (Without a cluster, a TCP run's merged logs, the head's address is
        ``head_address`` and a notification lost on its way to the head is
        one the head had not published: the head never dies in this spec.)"""
        published = self.c.head.core.published if self.c is not None and self.c.head is not None else set()
        head = "head" if self.c is not None else self.head_address
        owners = []
        for o in self.owners:
            address, node = self.bind.owner_addr[o], self.bind.node_addr[self.owner_node[o]]
            if env.dst == address:
                owners.append(o)
            elif env.dst == node and env.src == head:
                owners.append(o)
            elif env.dst == head and isinstance(env.msg, WorkerDied) and env.msg.worker not in published:
                owners.append(o)
        return owners

    def _pool(self, n: ModelValue) -> frozenset:
        assert self.c is not None
        if n in self.frozen:
            return self.frozen[n][0]
        inv = self.bind.inverse()
        sched = self.c.nodes[self.bind.node_addr[n]].core.scheduler
        return frozenset(inv.get(a, _unbound(a)) for a, slot in sched.workers.items() if slot.state != DRIVER)

    def _task_of_lease(self, lease_id: str) -> Any:
        """The task whose lease request this lease answered (spec: granted and held record it)."""
        request = self.lease_request.get(lease_id)
        return (self._task_of_request(request) if request else None) or _unbound(lease_id)

    def _granted(self, n: ModelValue) -> frozenset:
        assert self.c is not None
        if n in self.frozen:
            return self.frozen[n][1]
        inv = self.bind.inverse()
        sched = self.c.nodes[self.bind.node_addr[n]].core.scheduler
        out = set()
        for lease in sched.leases.values():
            out.add(
                _record(
                    worker=inv.get(lease.worker, _unbound(lease.worker)),
                    owner=inv.get(lease.owner, _unbound(lease.owner)),
                    task=self._task_of_lease(lease.lease_id),
                )
            )
        return frozenset(out)

    def _lent(self, n: ModelValue) -> frozenset:
        """The leased workers whose task waits in a get (LocalScheduler.blocked)."""
        assert self.c is not None
        if n in self.frozen:
            return self.frozen[n][2]
        inv = self.bind.inverse()
        sched = self.c.nodes[self.bind.node_addr[n]].core.scheduler
        return frozenset(inv.get(l.worker, _unbound(l.worker)) for l in sched.leases.values() if l.blocked)

    def _key_of(self, key: tuple) -> Any:
        for k, resources in self.bind.key_resources.items():
            if key == ("task", resources, ()):
                return k
        return _unbound(repr(key))

    def project(self) -> dict[str, Any]:
        assert self.c is not None and self.c.head is not None
        self._observe()
        net = self.c.network
        b = self.bind
        inv = b.inverse()
        state: dict[str, Any] = {
            "nodeAlive": _fn((n, net.alive(b.node_addr[n])) for n in self.nodes),
            "workerAlive": _fn((w, net.alive(b.worker_addr[w])) for w in self.workers),
            "crashes": self.crashes,
            "members": frozenset(n for n in self.nodes if (r := self.c.head.core.nodes.get(b.node_addr[n])) is not None and r.alive),
            "pool": _fn((n, self._pool(n)) for n in self.nodes),
            "granted": _fn((n, self._granted(n)) for n in self.nodes),
            "lent": _fn((n, self._lent(n)) for n in self.nodes),
            "execs": _fn((t, self.execs[t]) for t in self.tasks),
            "ranOn": _fn((t, frozenset(self.ran_on[t])) for t in self.tasks),
        }
        status, location, retries = {}, {}, {}
        no_loc = _record(node=self.none["NoNode"], worker=self.none["NoWorker"])
        queue, held, dead_workers, dead_nodes = {}, {}, {}, {}
        for o in self.owners:
            rt = self.c.runtimes().get(b.owner_addr[o])
            sub = rt.core.submitter if rt is not None else None
            per_key = {}
            for k in self.keys:
                ks = sub.keys.get(("task", b.key_resources[k], ())) if sub else None
                waiting = [sub.tasks[tid] for tid in ks.queue] if ks else []
                per_key[k] = tuple(inv.get(x.spec.task_id, _unbound(x.spec.task_id)) for x in waiting if x.request_id is None)
            queue[o] = _fn(per_key.items())
            held[o] = frozenset(
                _record(worker=inv.get(l.worker, _unbound(l.worker)), owner=o, task=self._task_of_lease(l.lease_id))
                for l in (sub.leases.values() if sub else ())
                if l.key[0] != "actor"
            )
            dead_workers[o] = frozenset(inv.get(a, _unbound(a)) for a in rt.core.dead_workers) if rt else frozenset()
            dead_nodes[o] = frozenset(inv.get(a, _unbound(a)) for a in rt.core.dead_nodes) if rt else frozenset()
        for t in self.tasks:
            o = self.task_owner[t]
            rt = self.c.runtimes().get(b.owner_addr[o])
            task = rt.core.submitter.tasks.get(b.task_id[t]) if (rt is not None and t in b.task_id) else None
            if t not in b.task_id:
                status[t], location[t], retries[t] = "new", no_loc, self.task_retries[t]
                continue
            if task is None:
                status[t], location[t], retries[t] = _unbound(f"{b.task_id[t]} (forgotten by its owner)"), no_loc, -1
                continue
            retries[t] = task.retries_left
            if task.state in (WAITING, QUEUED) and task.request_id is None:
                status[t], location[t] = "queued", no_loc
            elif task.state == QUEUED:
                n = inv.get(task.location, _unbound(str(task.location)))
                status[t], location[t] = "requested", _record(node=n, worker=self.none["NoWorker"])
            elif task.state == RUNNING:
                # The spec's location of a pushed task is also what the
                # owner counts in flight on that worker (InFlight): read it
                # from the lease's in-flight set, so a lease that forgot a
                # task it still runs shows as a task at no worker.
                lease = rt.core.submitter.leases.get(task.lease_id) if task.lease_id else None
                if lease is not None and task.spec.task_id in lease.running:
                    w = inv.get(lease.worker, _unbound(str(lease.worker)))
                else:
                    w = _unbound(f"{task.location} (not in flight on its lease {task.lease_id})")
                status[t], location[t] = "pushed", _record(node=self.worker_node.get(w, _unbound("?")), worker=w)
            elif task.state == DONE:
                status[t], location[t] = "done", no_loc
            elif task.state == FAILED:
                status[t], location[t] = "failed", no_loc
            else:
                status[t], location[t] = _unbound(task.state), no_loc
        msgs = set()
        for _mid, env in net.in_flight():
            msgs.update(self._spec_messages(env))
        for n in self.nodes:
            rt = self.c.runtimes().get(b.node_addr[n])
            if rt is not None:
                for req in rt.core.scheduler.queue:
                    msgs.update(self._spec_messages(Envelope(req.owner, b.node_addr[n], req)))
        state.update(
            status=_fn(status.items()),
            location=_fn(location.items()),
            retries=_fn(retries.items()),
            queue=_fn(queue.items()),
            held=_fn(held.items()),
            deadWorkers=_fn((o, self._with_node_workers(dead_workers[o], dead_nodes[o])) for o in self.owners),
            deadNodes=_fn(dead_nodes.items()),
            msgs=frozenset(msgs),
        )
        return state

    def _with_node_workers(self, workers: frozenset, nodes: frozenset) -> frozenset:
        return frozenset(workers) | frozenset(w for w in self.workers if self.worker_node[w] in nodes)

    def abstract(self, state: dict[str, Any]) -> dict[str, Any]:
        out = super().abstract(state)
        if "deadWorkers" in out and "deadNodes" in out:
            out["deadWorkers"] = _fn(
                (o, self._with_node_workers(out["deadWorkers"][o], out["deadNodes"][o])) for o in self.owners
            )
        return out


class _Unbound(str):
    """An implementation id no model value is bound to (shows up in diffs)."""

    def __repr__(self) -> str:
        return f"<unbound {str(self)}>"


def _unbound(what: str) -> _Unbound:
    return _Unbound(what)


def _show(m: Any) -> str:
    from ownership.tla.values import format_value

    return format_value(m)


MAPPING = SchedulingMapping
