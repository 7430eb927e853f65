"""The local scheduler of a node (paper §4.1): resources, worker pool, leases.

An owner asks its local scheduler for a lease with the task's resource shape.
The scheduler grants one of its idle workers when the policy picks this node
and the resources are free; otherwise it redirects the owner (spillback) to
the node the policy picks, or queues the request until resources free up. A
redirected request is treated like any other: it is redirected again when
this node cannot grant it and the policy sees room elsewhere.

The scheduler also watches its workers: it publishes their death (through
the head), reclaims their leases and starts replacements, and reclaims the
leases of owners that died (their workers are stopped: they fate-share).
A worker that fails to start frees its slot at once (WorkerStartFailed);
after ``max_worker_start_failures`` failures in a row the node starts none
for ``worker_start_pause_ticks`` ticks and sends its queued requests to
nodes that can run them.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from .events import Effect, KillWorker, Send, StartWorker, Watch
from .messages import (
    ClusterView,
    LeaseGranted,
    LeaseInfeasible,
    RegisterWorker,
    RequestLease,
    Resources,
    ReturnLease,
    Spillback,
    WorkerBlocked,
    WorkerDied,
    WorkerRegistered,
    WorkerUnblocked,
)

if TYPE_CHECKING:  # pragma: no cover
    from .node import NodeCore

__all__ = ["WorkerSlot", "LeaseRecord", "SchedulingPolicy", "LocalFirstPolicy", "LocalScheduler"]

IDLE, LEASED, REGISTERING, DYING, DRIVER = "idle", "leased", "registering", "dying", "driver"


def _as_dict(resources: Resources) -> dict[str, float]:
    return {k: float(v) for k, v in resources}


def _fits(need: Resources, have: dict[str, float]) -> bool:
    return all(have.get(k, 0.0) + 1e-9 >= v for k, v in need)


@attrs.define(eq=False)
class WorkerSlot:
    address: str
    state: str = REGISTERING
    lease_id: str | None = None


@attrs.define(eq=False)
class LeaseRecord:
    lease_id: str
    owner: str
    worker: str
    resources: Resources
    actor: bool = False
    blocked: bool = False


class SchedulingPolicy(Protocol):
    """Where a request that cannot be granted here right now should go."""

    def spill_target(self, request: RequestLease, scheduler: LocalScheduler) -> str | None: ...


class LocalFirstPolicy:
    """Local first; else the least-loaded node with room; else any node that fits.

    "Least loaded" is the most free CPU in the last view from the head, ties
    broken by name so that a run is reproducible.
    """

    def spill_target(self, request: RequestLease, scheduler: LocalScheduler) -> str | None:
        others = [v for n, v in sorted(scheduler.view.items()) if n != scheduler.node and n not in scheduler.dead_nodes]
        with_room = [v for v in others if _fits(request.resources, v["available"])]
        if with_room:
            return max(with_room, key=lambda v: (v["available"].get("CPU", 0.0), _neg(v["node"])))["node"]
        if _fits(request.resources, scheduler.total) and not scheduler.start_paused:
            return None  # wait here for our own resources
        feasible = [v for v in others if _fits(request.resources, v["total"])]
        if feasible:
            return max(feasible, key=lambda v: (v["available"].get("CPU", 0.0), _neg(v["node"])))["node"]
        return None


def _neg(name: str) -> tuple[int, ...]:
    # orders names descending, so max() prefers the smallest name on ties
    return tuple(-ord(c) for c in name)


class LocalScheduler:
    def __init__(self, node: NodeCore, total: Resources, *, pool_size: int, policy: SchedulingPolicy | None = None) -> None:
        self.node_core = node
        self.total = _as_dict(total)
        self.available = dict(self.total)
        self.pool_size = pool_size
        self.policy: SchedulingPolicy = policy or LocalFirstPolicy()
        self.workers: dict[str, WorkerSlot] = {}
        self.leases: dict[str, LeaseRecord] = {}
        self.queue: collections.deque[RequestLease] = collections.deque()
        self.starting = 0
        #: worker starts that failed in a row, and the ticks left before one
        #: is tried again once there were max_worker_start_failures of them
        self.start_failures = 0
        self.start_pause_left = 0
        self.view: dict[str, dict[str, Any]] = {}
        self.view_known = False  # a view came from the head (else "no node has it" is a guess)
        self.drivers_pending: set[str] = set()
        #: queued requests no live node has the resources for (owners told)
        self.infeasible: dict[str, RequestLease] = {}

    @property
    def node(self) -> str:
        return self.node_core.address

    @property
    def dead_nodes(self) -> set[str]:
        return self.node_core.dead_nodes

    @property
    def dead_workers(self) -> set[str]:
        return self.node_core.dead_workers

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": dict(sorted(self.total.items())),
            "available": dict(sorted(self.available.items())),
            "workers": {a: {"state": w.state, "lease_id": w.lease_id} for a, w in sorted(self.workers.items())},
            "leases": {
                lid: {"owner": l.owner, "worker": l.worker, "resources": dict(l.resources), "actor": l.actor, "blocked": l.blocked}
                for lid, l in sorted(self.leases.items())
            },
            "queue": [(r.request_id, r.owner) for r in self.queue],
            "starting": self.starting,
            "infeasible": [
                {"request_id": r.request_id, "owner": r.owner, "task_id": r.task_id, "resources": dict(r.resources)}
                for r in self.infeasible.values()
            ],
            "start_failures": self.start_failures,
            "start_pause_left": self.start_pause_left,
        }

    # ------------------------------------------------------------------ pool
    def start(self) -> list[Effect]:
        """Start the node's initial worker processes."""
        self.starting += self.pool_size
        return [StartWorker() for _ in range(self.pool_size)]

    def register_worker(self, msg: RegisterWorker) -> list[Effect]:
        """A worker (or a driver) on this node says hello: register it with the head."""
        if msg.worker in self.workers or msg.worker in self.dead_workers:
            return []
        self.workers[msg.worker] = WorkerSlot(address=msg.worker, state=REGISTERING)
        if not msg.driver and self.starting > 0:
            self.starting -= 1
        fx: list[Effect] = [Watch(address=msg.worker)]
        head = self.node_core.head
        fwd = RegisterWorker(worker=msg.worker, node=self.node, driver=msg.driver)
        fx.append(Send(head, fwd))
        if msg.driver:
            self.drivers_pending.add(msg.worker)
        return fx

    def worker_registered(self, msg: WorkerRegistered) -> list[Effect]:
        r"""Spec: Scheduling!SchedulerRegisterWorker
        Spec: Ownership!WorkerRegister

            \* Scheduling
            SchedulerRegisterWorker(n, w) ==
                /\ nodeAlive[n]
                /\ w \in Unregistered
                /\ WorkerNode[w] = n
                /\ \/ workerAlive[w]
                   \/ \E o \in Owners : OwnerAlive(o) /\ WorkerDiedMsg(o, w) \notin msgs /\ w \notin deadWorkers[o]
                /\ w \notin pool[n]  \* a worker leaves the pool only once it is dead
                /\ pool' = [pool EXCEPT ![n] = @ \cup {w}]
                /\ lastAction' = Step("SchedulerRegisterWorker", NoOwner, NoTask, n, w, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, members, granted, lent, ownerVars, msgs, histVars>>

            \* Ownership
            WorkerRegister(w) ==
                /\ w \in Workers
                /\ wst[w] = "starting"
                /\ WorkerNode[w] \in nodeUp
                /\ wst' = [wst EXCEPT ![w] = "up"]
                /\ pool' = [pool EXCEPT ![WorkerNode[w]] = @ \cup {Cur(w)}]
                /\ starting' = [starting EXCEPT ![WorkerNode[w]] = @ \ {w}]
                /\ known' = [known EXCEPT ![w] = nknown[WorkerNode[w]]]
                /\ lastAction' = Step("WorkerRegister", w, NoObj, WorkerNode[w], NoMsg)
                /\ UNCHANGED <<actorVars, nodeUp, inc, crashes, headVars, leases, nknown, copies, ent, ex, brw, got, made, msgs, why>>

        Implementation:

        The head knows the worker now (so a node death will name it): use it.
        It may have died since it asked (killed as it started): then its
        connection's loss, which the node has not seen yet, takes it out of
        the pool again (detect_worker_death).
        """
        slot = self.workers.get(msg.worker)
        if slot is None or slot.state != REGISTERING:
            return []
        if msg.worker in self.drivers_pending:
            self.drivers_pending.discard(msg.worker)
            slot.state = DRIVER
        else:
            slot.state = IDLE
            self.start_failures = self.start_pause_left = 0  # starting works
        # A worker that registers after a death was published must know of
        # it too: an owner may still name a dead node to it, and a lender
        # that has not heard of a take-over a dead owner of a moved object.
        registered = WorkerRegistered(
            worker=msg.worker,
            node=self.node,
            dead_workers=tuple(sorted(self.dead_workers)),
            dead_nodes=tuple(sorted(self.dead_nodes)),
            head=self.node_core.head,
            moved=self.node_core.moved_refs(),
        )
        return [Send(msg.worker, registered)] + self._drain()

    def _idle_worker(self) -> WorkerSlot | None:
        for address in sorted(self.workers):
            slot = self.workers[address]
            if slot.state == IDLE:
                return slot
        return None

    def _can_grant(self, msg: RequestLease) -> bool:
        return _fits(msg.resources, self.available) and self._idle_worker() is not None

    def start_worker(self) -> list[Effect]:
        r"""Spec: Ownership!SchedulerStartWorker

            \* Ownership
            SchedulerStartWorker(n, w) ==
                /\ n \in nodeUp
                /\ w \in Workers /\ WorkerNode[w] = n
                /\ \E m \in msgs : m.type = "RequestLease" /\ m.dstNode = n /\ Fits(n, m.x)
                /\ IdleWorkers(n) = {}
                /\ starting[n] = {}
                /\ \/ wst[w] = "off" /\ inc' = inc
                   \/ wst[w] = "dead" /\ inc[w] < MaxIncarnation /\ inc' = [inc EXCEPT ![w] = @ + 1]
                /\ wst' = [wst EXCEPT ![w] = "starting"]
                /\ starting' = [starting EXCEPT ![n] = @ \cup {w}]
                /\ ex' = [ex EXCEPT ![w] = IdleExec]
                /\ known' = [known EXCEPT ![w] = NoDeaths]
                /\ brw' = [brw EXCEPT ![w] = [y \in Objects |-> NoBorrow]]
                /\ lastAction' = Step("SchedulerStartWorker", w, NoObj, n, NoMsg)
                /\ UNCHANGED <<actorVars, nodeUp, crashes, headVars, pool, leases, nknown, copies, ent, got, made, msgs, why>>

        Implementation:

        Resources are free but every worker is busy (blocked, actors): start one.
        """
        if self._idle_worker() is not None or self.starting > 0:
            return []
        alive = sum(1 for w in self.workers.values() if w.state != DRIVER)
        if alive >= self.node_core.config.max_workers_per_node:
            return []
        return self._start_worker()

    @property
    def start_paused(self) -> bool:
        """Too many worker starts failed in a row: none is tried for a while."""
        return self.start_pause_left > 0

    def _start_worker(self) -> list[Effect]:
        if self.start_paused:
            return []
        self.starting += 1
        return [StartWorker()]

    def _replenish(self) -> list[Effect]:
        """Start a worker if the pool is short of its size or a queued request needs one."""
        alive = sum(1 for w in self.workers.values() if w.state != DRIVER) + self.starting
        if alive < self.pool_size:
            return self._start_worker()
        if any(_fits(m.resources, self.available) for m in self.queue):
            return self.start_worker()
        return []

    def worker_start_failed(self, worker: str | None) -> list[Effect]:
        """A StartWorker came to nothing (below the specs, whose pools are given).

        Its slot is free again: start another, unless too many starts failed
        in a row; then pause, and queued requests that no worker here will
        serve go to nodes that can run them, as Scheduling!SchedulerSpillback
        allows of any request this node cannot grant.
        """
        if worker is not None:
            if worker in self.workers or worker in self.dead_workers:
                return []  # it registered: a death comes as PeerLost, as for any worker
            # A hello it sent before it died must not make it a worker now.
            self.dead_workers.add(worker)
        if self.starting > 0:
            self.starting -= 1
        self.start_failures += 1
        if self.start_failures >= max(1, self.node_core.config.max_worker_start_failures):
            self.start_pause_left = max(1, self.node_core.config.worker_start_pause_ticks)
        return self._replenish() + self._redirect_queue()

    def _redirect_queue(self) -> list[Effect]:
        """Queued requests that no worker here will serve soon (none idle, none
        starting) go where the policy sends them."""
        if self.starting > 0 or self._idle_worker() is not None:
            return []
        fx: list[Effect] = []
        for req in list(self.queue):
            target = self.policy.spill_target(req, self)
            if target is not None and target != self.node:
                self._dequeue(req)
                fx += self.spillback(req, target)
        return fx

    def tick(self) -> list[Effect]:
        """A paused node tries one worker start again once the pause is over."""
        if not self.start_paused:
            return []
        self.start_pause_left -= 1
        return [] if self.start_paused else self._replenish()

    # ------------------------------------------------------------------ leases
    def handle_request(self, msg: RequestLease) -> list[Effect]:
        """Decide on a lease request: grant, redirect, or queue."""
        if msg.owner in self.dead_workers:
            return []
        if any(r.request_id == msg.request_id for r in self.queue):
            return []  # a duplicated request
        if self._can_grant(msg):
            return self.grant_lease(msg)
        # Whether or not it was redirected here, a request this node cannot
        # grant now goes to a node the policy sees room on, as
        # Scheduling!SchedulerSpillback says: waiting here can last forever
        # (behind tasks that wait for it when we are full; for a worker start
        # that may never come, capped by max_workers_per_node, when we have
        # room but no idle worker). Each redirect counts against the target's
        # view until its next heartbeat, so a request bounces a bounded number
        # of times before the policy finds no room elsewhere and it waits here.
        target = self.policy.spill_target(msg, self)
        if target is not None and target != self.node:
            return self.spillback(msg, target)
        self.queue.append(msg)
        fx = self._announce_infeasible([msg])
        if _fits(msg.resources, self.available):
            fx += self.start_worker()
        return fx

    def _feasible(self, msg: RequestLease) -> bool:
        """Some live node of the cluster (this one included) has the resources at all."""
        if _fits(msg.resources, self.total):
            return True
        return any(
            _fits(msg.resources, v["total"]) for n, v in self.view.items() if n != self.node and n not in self.dead_nodes
        )

    def _dequeue(self, req: RequestLease) -> None:
        self.queue.remove(req)
        self.infeasible.pop(req.request_id, None)

    def _announce_infeasible(self, requests: Any) -> list[Effect]:
        """Tell the owner of each of these queued requests that no node can
        grant it as the cluster is now (Ray announces infeasible tasks the
        same way), once; forget those that became feasible. The request
        stays queued: a node with the resources may join, and
        ``update_view`` then sends it there."""
        if not self.view_known:
            return []  # judged on the first view
        fx: list[Effect] = []
        for req in requests:
            if self._feasible(req):
                self.infeasible.pop(req.request_id, None)
            elif req.request_id not in self.infeasible and req.owner not in self.dead_workers:
                self.infeasible[req.request_id] = req
                fx.append(Send(req.owner, LeaseInfeasible(request_id=req.request_id, node=self.node)))
        return fx

    def grant_lease(self, msg: RequestLease) -> list[Effect]:
        r"""Spec: Scheduling!SchedulerGrantLease
        Spec: Ownership!SchedulerGrantLease

            \* Scheduling
            SchedulerGrantLease(n, m) ==
                /\ m.type = "RequestLease"
                /\ m \in msgs
                /\ m.node = n
                /\ nodeAlive[n]
                /\ Fits(n, m.task)  \* one slot per lease, unless its key takes none
                /\ \E w \in IdleWorkers(n) :
                    /\ granted' = [granted EXCEPT ![n] = @ \cup {[worker |-> w, owner |-> m.owner, task |-> m.task]}]
                    /\ msgs' = (msgs \ {m}) \cup {LeaseGrantedMsg(m.owner, m.task, n, w)}
                    /\ lastAction' = Step("SchedulerGrantLease", NoOwner, NoTask, n, w, NoNode, m)
                /\ UNCHANGED <<envVars, members, pool, lent, ownerVars, histVars>>

            \* Ownership
            SchedulerGrantLease(n, m) ==
                /\ m \in msgs
                /\ m.type = "RequestLease"
                /\ m.dstNode = n
                /\ n \in nodeUp
                /\ CanGrant(n, m.x)
                /\ LET w == GrantTo(n) IN
                    /\ leases' = [leases EXCEPT ![n] = @ \cup {[w |-> w, o |-> m.o, x |-> m.x, lent |-> FALSE]}]
                    /\ msgs' = (msgs \ {m}) \cup {LeaseGrantedMsg(m.o, m.x, m.att, n, w)}
                /\ lastAction' = Step("SchedulerGrantLease", NoAddr, m.x, n, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, pool, starting, nknown, copies, ent, ex, known, brw, got, made, why>>

        Implementation:

        The policy picks this node and the resources are free: allocate
        them and lease an idle local worker to the owner.
        """
        slot = self._idle_worker()
        if slot is None or not _fits(msg.resources, self.available):
            return []
        for k, v in msg.resources:
            self.available[k] = self.available.get(k, 0.0) - v
        lease_id = self.node_core.ids.next("l")
        slot.state, slot.lease_id = LEASED, lease_id
        self.leases[lease_id] = LeaseRecord(lease_id=lease_id, owner=msg.owner, worker=slot.address, resources=msg.resources, actor=msg.actor)
        return [Send(msg.owner, LeaseGranted(request_id=msg.request_id, lease_id=lease_id, worker=slot.address, node=self.node))]

    def spillback(self, msg: RequestLease, target: str) -> list[Effect]:
        r"""Spec: Scheduling!SchedulerSpillback
        Spec: Ownership!SchedulerSpillback

            \* Scheduling
            SchedulerSpillback(n, m) ==
                /\ m.type = "RequestLease"
                /\ m \in msgs
                /\ m.node = n
                /\ nodeAlive[n]
                /\ ~CanGrant(n, m.task)
                /\ \E r \in (IF StaleViews THEN Nodes ELSE members) \ {n} :
                    /\ StaleViews \/ Fits(r, m.task)
                    /\ msgs' = (msgs \ {m}) \cup {SpillbackMsg(m.owner, m.task, n, r)}
                    /\ lastAction' = Step("SchedulerSpillback", NoOwner, NoTask, n, NoWorker, r, m)
                /\ UNCHANGED <<envVars, schedVars, ownerVars, histVars>>

            \* Ownership
            SchedulerSpillback(n, m) ==
                /\ m \in msgs
                /\ m.type = "RequestLease"
                /\ m.dstNode = n
                /\ n \in nodeUp
                /\ ~CanGrant(n, m.x)
                /\ m.have => ~Fits(n, m.x)
                /\ SpillTargets(n, m.x) # {}
                /\ msgs' = (msgs \ {m}) \cup {SpillbackMsg(m.o, m.x, m.att, n, First(NodeOrder, SpillTargets(n, m.x)))}
                /\ lastAction' = Step("SchedulerSpillback", NoAddr, m.x, n, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, ex, known, brw, got, made, why>>

        Implementation:

        The policy picks another node: reject the request and redirect the
        owner there (the owner records it before it asks again).
        """
        if target == self.node:
            return []
        view = self.view.get(target)
        if view is not None:
            # Count the redirected work against the target until its next heartbeat.
            for k, v in msg.resources:
                view["available"][k] = view["available"].get(k, 0.0) - v
        return [Send(msg.owner, Spillback(request_id=msg.request_id, node=target))]

    def release_lease(self, msg: ReturnLease) -> list[Effect]:
        r"""Spec: Scheduling!SchedulerReleaseLease
        Spec: Ownership!SchedulerReleaseLease

            \* Scheduling
            SchedulerReleaseLease(n, m) ==
                /\ m.type = "ReturnLease"
                /\ m \in msgs
                /\ m.node = n
                /\ nodeAlive[n]
                /\ granted' = [granted EXCEPT ![n] = {l \in @ : ~(l.worker = m.worker /\ l.owner = m.owner)}]
                /\ lent' = IF \E l \in granted[n] : l.worker = m.worker /\ l.owner = m.owner
                           THEN [lent EXCEPT ![n] = @ \ {m.worker}] ELSE lent
                /\ msgs' = msgs \ {m}
                /\ lastAction' = Step("SchedulerReleaseLease", NoOwner, NoTask, n, NoWorker, NoNode, m)
                /\ UNCHANGED <<envVars, members, pool, ownerVars, histVars>>

            \* Ownership
            SchedulerReleaseLease(n, m) ==
                /\ m \in msgs
                /\ m.type = "ReturnLease"
                /\ m.dstNode = n
                /\ n \in nodeUp
                /\ leases' = [leases EXCEPT ![n] = {l \in @ : l.w # m.w}]
                \* an actor's lease (kill): the node stops its worker, and sees it exit
                \* like any other (SchedulerDetectWorkerDeath)
                /\ wst' = IF m.have /\ (\E l \in leases[n] : l.w = m.w) /\ IsUp(m.w)
                          THEN [wst EXCEPT ![m.w[1]] = "dead"] ELSE wst
                /\ msgs' = msgs \ {m}
                /\ lastAction' = Step("SchedulerReleaseLease", NoAddr, NoObj, n, m)
                /\ UNCHANGED <<actorVars, nodeUp, inc, crashes, headVars, pool, starting, nknown, copies, ent, ex, known, brw, got, made, why>>

        Implementation:

        The owner gives the worker back: free its resources and make it
        idle (or stop it, for an actor's lease), then serve queued requests.
        """
        lease = self.leases.pop(msg.lease_id, None)
        if lease is None:
            return []  # unknown or already released (a duplicate)
        self._free(lease)
        slot = self.workers.get(lease.worker)
        fx: list[Effect] = []
        if slot is not None and slot.lease_id == lease.lease_id:
            slot.lease_id = None
            if msg.kill:
                slot.state = DYING
                fx.append(KillWorker(worker=slot.address))
            else:
                slot.state = IDLE
        return fx + self._drain()

    def _free(self, lease: LeaseRecord) -> None:
        if lease.blocked:
            return  # its resources were lent while it waited
        for k, v in lease.resources:
            self.available[k] = self.available.get(k, 0.0) + v

    def _drain(self) -> list[Effect]:
        """Grant queued requests that fit now, oldest first."""
        fx: list[Effect] = []
        for msg in list(self.queue):
            if msg.owner in self.dead_workers:
                self._dequeue(msg)
                continue
            if self._can_grant(msg):
                self._dequeue(msg)
                fx += self.grant_lease(msg)
        if any(_fits(m.resources, self.available) for m in self.queue):
            fx += self.start_worker()
        return fx

    def blocked(self, msg: WorkerBlocked | WorkerUnblocked) -> list[Effect]:
        r"""Spec: Scheduling!SchedulerLend
        Spec: Scheduling!SchedulerUnlend
        Spec: Ownership!SchedulerLend

            \* Scheduling
            SchedulerLend(n, w) ==
                /\ Lending
                /\ nodeAlive[n]
                /\ \E l \in granted[n] : l.worker = w
                /\ w \notin lent[n]
                /\ lent' = [lent EXCEPT ![n] = @ \cup {w}]
                /\ lastAction' = Step("SchedulerLend", NoOwner, NoTask, n, w, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, members, pool, granted, ownerVars, msgs, histVars>>

            \* Scheduling
            SchedulerUnlend(n, w) ==
                /\ nodeAlive[n]
                /\ w \in lent[n]
                /\ lent' = [lent EXCEPT ![n] = @ \ {w}]
                /\ lastAction' = Step("SchedulerUnlend", NoOwner, NoTask, n, w, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, members, pool, granted, ownerVars, msgs, histVars>>

            \* Ownership
            SchedulerLend(n, m) ==
                /\ m \in msgs
                /\ m.type \in {"WorkerBlocked", "WorkerUnblocked"}
                /\ m.dstNode = n
                /\ n \in nodeUp
                /\ leases' = [leases EXCEPT ![n] = {IF l.w = m.w THEN [l EXCEPT !.lent = (m.type = "WorkerBlocked")] ELSE l : l \in @}]
                /\ msgs' = msgs \ {m}
                /\ lastAction' = Step("SchedulerLend", NoAddr, NoObj, n, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, pool, starting, nknown, copies, ent, ex, known, brw, got, made, why>>

        Implementation:

        A leased worker waits on a get: lend its resources (Ray does the same).
        """
        lease = self.leases.get(msg.lease_id)
        if lease is None or lease.worker != msg.worker:
            return []
        block = isinstance(msg, WorkerBlocked)
        if lease.blocked == block:
            return []
        lease.blocked = block
        sign = 1.0 if block else -1.0
        for k, v in lease.resources:
            self.available[k] = self.available.get(k, 0.0) + sign * v
        return self._drain() if block else []

    def update_view(self, msg: ClusterView) -> list[Effect]:
        """A fresh view of the other nodes: redirect queued requests that now fit elsewhere."""
        self.view = {
            v.node: {"node": v.node, "total": _as_dict(v.total), "available": _as_dict(v.available)} for v in msg.nodes
        }
        self.view_known = True
        fx: list[Effect] = []
        for req in list(self.queue):
            if _fits(req.resources, self.available) and not self.start_paused:
                continue  # room here: it waits for the worker being started
            target = self.policy.spill_target(req, self)
            if target is not None:
                self._dequeue(req)
                fx += self.spillback(req, target)
        return fx + self._announce_infeasible(self.queue)

    # ------------------------------------------------------------------ failures
    def detect_worker_death(self, address: str) -> list[Effect]:
        r"""Spec: Scheduling!SchedulerDetectWorkerDeath
        Spec: FateSharing!SchedulerDetectWorkerDeath
        Spec: Ownership!SchedulerDetectWorkerDeath

            \* Scheduling
            SchedulerDetectWorkerDeath(n, w) ==
                /\ nodeAlive[n]
                /\ \/ w \in pool[n]
                   \/ /\ w \in Unregistered /\ WorkerNode[w] = n
                      /\ \E o \in Owners : OwnerAlive(o) /\ WorkerDiedMsg(o, w) \notin msgs /\ w \notin deadWorkers[o]
                /\ ~workerAlive[w]
                /\ pool' = [pool EXCEPT ![n] = @ \ {w}]
                /\ granted' = [granted EXCEPT ![n] = {l \in @ : l.worker # w}]
                /\ lent' = [lent EXCEPT ![n] = @ \ {w}]
                /\ msgs' = msgs \cup {WorkerDiedMsg(o, w) : o \in Owners}
                /\ lastAction' = Step("SchedulerDetectWorkerDeath", NoOwner, NoTask, n, w, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, members, ownerVars, histVars>>

            \* FateSharing
            SchedulerDetectWorkerDeath(n, w) ==
                /\ n \in up
                /\ status[w] = "dead"
                /\ nodeOf[w] = n
                /\ w \notin announced
                /\ announced' = announced \cup {w}
                /\ msgs' = msgs
                           \cup {WorkerDiedMsg(w, n, p) : p \in {p \in Workers : Interested(p, {w}, {})}}
                           \cup {WorkerDiedStoreMsg(w, n, s) : s \in {s \in Nodes : StoreInterested(s, {w})}}
                /\ lastAction' = Step("SchedulerDetectWorkerDeath", w, Root, n, NoMsg)
                /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, table, copies, announcedNodes>>

            \* Ownership
            SchedulerDetectWorkerDeath(n, w) ==
                LET \* a registered process at w that is gone: the latest one, or an
                    \* older one whose address a new process already took
                    gone == {p \in pool[n] : p[1] = w /\ ~IsUp(p) /\ (p = Cur(w) => wst[w] = "dead")}
                    registered == gone # {}
                    p == IF registered THEN CHOOSE q \in gone : TRUE ELSE Cur(w)
                    replace == /\ p = Cur(w)
                               /\ registered
                               /\ Cardinality(pool[n]) - 1 + Cardinality(starting[n])
                                     < Cardinality({v \in InitialWorkers : WorkerNode[v] = n})
                               /\ inc[w] < MaxIncarnation
                IN
                /\ n \in nodeUp
                /\ w \in Workers /\ WorkerNode[w] = n
                /\ registered \/ (w \in starting[n] /\ wst[w] = "dead")
                /\ pool' = [pool EXCEPT ![n] = @ \ {p}]
                /\ leases' = [leases EXCEPT ![n] = {l \in @ : l.w # p}]
                /\ IF replace
                   THEN /\ wst' = [wst EXCEPT ![w] = "starting"]
                        /\ inc' = [inc EXCEPT ![w] = @ + 1]
                        /\ starting' = [starting EXCEPT ![n] = @ \cup {w}]
                        /\ ex' = [ex EXCEPT ![w] = IdleExec]
                        /\ known' = [known EXCEPT ![w] = NoDeaths]
                        /\ brw' = [brw EXCEPT ![w] = [y \in Objects |-> NoBorrow]]
                   ELSE /\ starting' = IF registered THEN starting ELSE [starting EXCEPT ![n] = @ \ {w}]
                        /\ UNCHANGED <<wst, inc, ex, known, brw>>
                /\ announced' = announced \cup {p}
                /\ msgs' = msgs \cup {WorkerDiedMsg(p, NoProc, r) : r \in members}
                /\ lastAction' = Step("SchedulerDetectWorkerDeath", w, NoObj, n, NoMsg)
                /\ UNCHANGED <<actorVars, nodeUp, crashes, members, nknown, copies, ent, got, made, why>>

        Implementation:

        A local worker process exited: reclaim its lease and resources,
        publish its death (through the head), keep the pool's size.
        """
        slot = self.workers.pop(address, None)
        if slot is None:
            return []
        fx: list[Effect] = []
        for lease in sorted(self.leases.values(), key=lambda l: l.lease_id):
            if lease.worker == address:
                del self.leases[lease.lease_id]
                self._free(lease)
        self.dead_workers.add(address)
        fx.append(Send(self.node_core.head, WorkerDied(worker=address, node=self.node)))
        alive = sum(1 for w in self.workers.values() if w.state != DRIVER) + self.starting
        if slot.state != DRIVER and alive < self.pool_size:
            fx += self._start_worker()
        return fx + self._drain()

    def reclaim_leases(self, dead_owners: set[str]) -> list[Effect]:
        r"""Spec: Scheduling!SchedulerReclaimLeases

            \* Scheduling
            SchedulerReclaimLeases(n, o) ==
                /\ nodeAlive[n]
                /\ ~OwnerAlive(o)
                /\ msgs' = {m \in msgs : ~(m.type = "RequestLease" /\ m.node = n /\ m.owner = o)}
                /\ lastAction' = Step("SchedulerReclaimLeases", o, NoTask, n, NoWorker, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, schedVars, ownerVars, histVars>>

        Implementation:

        Owners died: their requests are dropped, and their leased workers
        fate-share: each is told to stop (KillWorker), a signal that lands
        later (Scheduling!SchedulerStopWorker).
        """
        fx: list[Effect] = []
        for req in list(self.queue):
            if req.owner in dead_owners:
                self._dequeue(req)
        for lease in sorted(self.leases.values(), key=lambda l: l.lease_id):
            if lease.owner in dead_owners:
                slot = self.workers.get(lease.worker)
                if slot is not None and slot.state != DYING:
                    slot.state = DYING
                    fx.append(KillWorker(worker=lease.worker))
        return fx

    def heartbeat(self, seq: int) -> dict[str, Any]:
        return {
            "total": tuple(sorted(self.total.items())),
            "available": tuple(sorted(self.available.items())),
            "workers": tuple(sorted(self.workers)),
        }
