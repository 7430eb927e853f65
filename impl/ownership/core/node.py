"""One node's protocol state: local scheduler, object store, notification relay.

The node relays failure notifications from the head to its own workers, so
the head keeps one connection per node (and every worker hears of every
death), and it registers its workers with the head before it leases them,
so that a node death always names every worker that was on the node.
"""

from __future__ import annotations

from typing import Any

from .config import CoreConfig
from .events import Effect, Event, EventLog, Fenced, IdGenerator, KillWorker, PeerLost, Received, Send, Tick, WorkerStartFailed
from .messages import (
    ClusterDeaths,
    ClusterView,
    FreeObject,
    Heartbeat,
    MovedRef,
    NodeDied,
    ObjectCopy,
    OwnerMoved,
    PullObject,
    PutObject,
    RecoveryReport,
    RegisterWorker,
    ReportEntry,
    RequestLease,
    Resources,
    ReturnLease,
    WorkerBlocked,
    WorkerDied,
    WorkerRegistered,
    WorkerUnblocked,
)
from .scheduler import DRIVER, LocalScheduler, SchedulingPolicy
from .store import FetchObject, ObjectStore
from .worker import UnexpectedEvent, learn_moves

__all__ = ["NodeCore"]


class NodeCore:
    def __init__(
        self,
        address: str,
        head: str,
        resources: Resources,
        *,
        pool_size: int,
        config: CoreConfig | None = None,
        policy: SchedulingPolicy | None = None,
    ) -> None:
        self.address = address
        self.head = head
        self.config = config or CoreConfig()
        self.ids = IdGenerator(address)
        self.dead_workers: set[str] = set()
        self.dead_nodes: set[str] = set()
        #: object -> where it moved (owner, epoch) after its owner died: the
        #: workers that register here later are told (WorkerRegistered)
        self.moved: dict[str, tuple[str, int]] = {}
        self.heartbeat_seq = 0
        self.log = EventLog(self.config.log_size)
        self.scheduler = LocalScheduler(self, resources, pool_size=pool_size, policy=policy)
        self.store = ObjectStore(self)
        self.dropped = 0

    def start(self) -> list[Effect]:
        """The node process started: say hello to the head, start the pool."""
        fx = self._heartbeat() + self.scheduler.start()
        return fx

    def handle(self, event: Event) -> list[Effect]:
        effects = self._dispatch(event)
        self.log.append(event, effects)
        return effects

    def _dispatch(self, event: Event) -> list[Effect]:
        if isinstance(event, Received):
            return self._receive(event.src, event.msg)
        if isinstance(event, PeerLost):
            return self.scheduler.detect_worker_death(event.address)
        if isinstance(event, Tick):
            return self._heartbeat() + self.scheduler.tick()
        if isinstance(event, WorkerStartFailed):
            return self.scheduler.worker_start_failed(event.worker)
        raise UnexpectedEvent(f"node core cannot handle {event!r}")

    def _heartbeat(self) -> list[Effect]:
        self.heartbeat_seq += 1
        hb = self.scheduler.heartbeat(self.heartbeat_seq)
        return [Send(self.head, Heartbeat(node=self.address, seq=self.heartbeat_seq, **hb))]

    def _receive(self, src: str, msg: Any) -> list[Effect]:
        s = self.scheduler
        if not self._from_its_sender(src, msg):
            # A field names the sender, or the message is the head's to
            # send, and another process sent it: acting on it would serve
            # (or kill) a process that never asked.
            self.dropped += 1
            return []
        if isinstance(msg, RequestLease):
            return s.handle_request(msg)
        if isinstance(msg, ReturnLease):
            return s.release_lease(msg)
        if isinstance(msg, PutObject):
            return self.store.pin_copy(msg)
        if isinstance(msg, PullObject):
            return self.store.serve_copy(msg)
        if isinstance(msg, FreeObject):
            return self.store.free(msg)
        if isinstance(msg, FetchObject):
            return self.store.fetch(msg)
        if isinstance(msg, ObjectCopy):
            return self.store.copy_arrived(src, msg)
        if isinstance(msg, (WorkerBlocked, WorkerUnblocked)):
            return s.blocked(msg)
        if isinstance(msg, RegisterWorker):
            return s.register_worker(msg)
        if isinstance(msg, WorkerRegistered):
            return s.worker_registered(msg)
        if isinstance(msg, ClusterView):
            return s.update_view(msg)
        if isinstance(msg, (WorkerDied, NodeDied)):
            return self.handle_failure(msg)
        if isinstance(msg, OwnerMoved):
            return self.handle_owner_moved(msg)
        if isinstance(msg, ClusterDeaths):
            return self.joined(msg)
        self.dropped += 1
        return []

    def _from_its_sender(self, src: str, msg: Any) -> bool:
        """Whether ``src`` may send ``msg``: a lease is asked for, returned and
        lent by its own owner or worker, a copy is asked for by its reader,
        stored by a process of this node and freed by its owner, a process
        registers itself, here, and membership and deaths come from the head."""
        check = _SENDER_CHECKS.get(type(msg))
        return check is None or check(self, src, msg)

    def handle_failure(self, msg: WorkerDied | NodeDied) -> list[Effect]:
        r"""Spec: Ownership!NodeHandleFailure

            \* Ownership
            NodeHandleFailure(n, m) ==
                LET D == DeadProcs(m)
                    doomed == {l.w : l \in {l \in leases[n] : l.o \in D}}
                IN
                /\ m \in msgs
                /\ m.type \in {"WorkerDied", "NodeDied"}
                /\ m.dstNode = n
                /\ n \in nodeUp
                /\ nknown' = [nknown EXCEPT ![n] = Learn(@, m)]
                /\ copies' = {c \in copies : ~(c.n = n /\ c.o \in D)}
                /\ wst' = [a \in Addrs |-> IF Cur(a) \in doomed /\ wst[a] = "up" THEN "dead" ELSE wst[a]]
                /\ msgs' = ({mm \in msgs \ {m} : ~(mm.type = "RequestLease" /\ mm.dstNode = n /\ mm.o \in D)})
                           \cup {[m EXCEPT !.dst = p, !.dstNode = NoNode] : p \in Subscribers(n) \ D}
                /\ lastAction' = Step("NodeHandleFailure", NoAddr, NoObj, n, m)
                /\ UNCHANGED <<actorVars, nodeUp, inc, crashes, headVars, pool, starting, leases, ent, ex, known, brw, got, made, why>>

        Implementation:

        A death published by the head: reclaim, free, and tell our workers.
        """
        if isinstance(msg, WorkerDied):
            dead, node = {msg.worker}, None
        else:
            dead, node = set(msg.workers), msg.node
            if node == self.address:
                return self.fenced(msg)
        return self._death(dead, node, msg)

    def _death(self, dead: set[str], node: str | None, msg: Any) -> list[Effect]:
        if node is not None:
            self.dead_nodes.add(node)
        self.dead_workers |= dead
        fx: list[Effect] = []
        fx += self.scheduler.reclaim_leases(dead)
        fx += self.store.handle_failure(dead)
        if node is not None:
            fx += self.store.handle_node_failure(node)
        for worker in sorted(self.scheduler.workers):
            if worker not in dead:
                fx.append(Send(worker, msg))
        return fx

    def handle_owner_moved(self, msg: OwnerMoved) -> list[Effect]:
        r"""Spec: OwnerRecovery!ProcessHandleOwnerMoved

            \* OwnerRecovery
            ProcessHandleOwnerMoved(q, m) ==
                /\ m \in msgs
                /\ m.type = "OwnerMoved"
                /\ m.dst = q
                /\ q \in up
                /\ LET p == m.w
                       M == {mm[1] : mm \in m.moved}
                       EpOf(x) == (CHOOSE mm \in m.moved : mm[1] = x)[2]
                       Held(x) == brw[q][x].held /\ brw[q][x].o = p
                       Fail == {x \in Objects : Held(x) /\ x \notin M}
                       Has(x) == \E c \in copies : c.x = x /\ c.n = q /\ c.o = p
                       Runs(x) == \E r \in run[q] : r.x = x /\ r.o = p
                       retry == q = Driver /\ par.st = "running" /\ ParentPlacement[par.att] = p
                       nextAt == IF par.att < Len(ParentPlacement) THEN ParentPlacement[par.att + 1] ELSE NoProc
                       restart == retry /\ nextAt # NoProc /\ Member(nextAt) /\ nextAt # p
                       Own(e) ==
                           CASE e.st = "pending" /\ e.loc = p -> [e EXCEPT !.st = "lost", !.loc = NoProc]
                             [] e.st = "ready" /\ p \in e.locs -> [e EXCEPT !.st = IF e.locs = {p} THEN "lost" ELSE "ready",
                                                                           !.locs = @ \ {p}]
                             [] e.st = "recovering" -> [e EXCEPT !.waiting = @ \ {p}, !.borrowers = @ \ {p},
                                                                 !.locs = @ \ {p}, !.running = @ \ {p}]
                             [] OTHER -> [e EXCEPT !.borrowers = @ \ {p}]
                       NewEntry(x) ==
                           [NoEntry EXCEPT !.st = "recovering", !.ep = EpOf(x), !.budget = LogBudget(x), !.att = log[x].att,
                                           !.waiting = m.to \ (dk[q] \cup {p, q}),
                                           !.locs = IF Has(x) THEN {q} ELSE {},
                                           !.running = IF Runs(x) THEN {q} ELSE {}]
                   IN
                   /\ dk' = [dk EXCEPT ![q] = @ \cup {p}]
                   /\ mv' = [mv EXCEPT ![q] = [x \in Objects |-> IF x \in M THEN [o |-> Driver, ep |-> EpOf(x)] ELSE @[x]]]
                   /\ brw' = [brw EXCEPT ![q] = [x \in Objects |->
                                IF Held(x) /\ x \in M THEN [o |-> Driver, ep |-> EpOf(x), held |-> TRUE]
                                ELSE IF Held(x) THEN NoBorrow ELSE @[x]]]
                   /\ gst' = [gst EXCEPT ![q] = [x \in Objects |-> IF x \in Fail /\ @[x] # "wait" THEN "released" ELSE @[x]]]
                   /\ odied' = odied \cup {<<q, x>> : x \in Fail}
                   /\ copies' = {IF c.n = q /\ c.o = p /\ c.x \in M THEN [c EXCEPT !.o = Driver, !.ep = EpOf(c.x)] ELSE c :
                                    c \in {cc \in copies : ~(cc.n = q /\ cc.o = p /\ cc.x \notin M)}}
                   /\ run' = [run EXCEPT ![q] = {IF r.o = p THEN [r EXCEPT !.o = Driver, !.ep = EpOf(r.x)] ELSE r :
                                                    r \in {rr \in @ : ~(rr.o = p /\ rr.x \notin M)}}]
                   /\ ent' = [ent EXCEPT ![q] = [x \in Objects |->
                                IF q = Driver /\ x \in M THEN NewEntry(x) ELSE Own(@[x])]]
                   /\ par' = IF restart THEN [att |-> par.att + 1, st |-> "running"]
                             ELSE IF retry THEN [par EXCEPT !.st = "failed"]
                             ELSE par
                   /\ pb' = IF restart THEN [pb EXCEPT ![nextAt] = [st |-> "running", pc |-> 1, att |-> par.att + 1]] ELSE pb
                   /\ msgs' = (msgs \ {m}) \cup
                              (IF q = Driver THEN {}
                               ELSE Send({RecoveryReportMsg(x, EpOf(x), q, Held(x), Has(x), Runs(x)) : x \in M}))
                /\ lastAction' = Step("ProcessHandleOwnerMoved", q, NoObj, m)
                /\ UNCHANGED <<fin, joined, up, crashes, declared, log, got, created, made, why>>

        Implementation:

        The node's part of a take-over (its store is the spec's store of the
        process): the copies pinned for the dead owner of a moved object are
        pinned again for the new owner at the new epoch, the rest of the
        death is handled as a WorkerDied/NodeDied is, the notice goes on to
        our workers, and the store answers the new owner with the copies it
        holds (phase 2).
        """
        if msg.node is not None and msg.node == self.address:
            return self.fenced(NodeDied(node=msg.node, workers=msg.workers))
        dead = set(msg.workers)
        learn_moves(self.moved, [MovedRef(object_id=m.object_id, owner=msg.new_owner, epoch=m.epoch) for m in msg.moved])
        kept = self.store.repin(msg.moved, dead, msg.new_owner)
        fx = self._death(dead, msg.node, msg)
        if self.address in msg.told:
            have = {m.object_id for m in kept}
            entries = tuple(ReportEntry(object_id=m.object_id, epoch=m.epoch, copy=m.object_id in have) for m in msg.moved)
            fx.append(Send(msg.new_owner, RecoveryReport(reporter=self.address, new_owner=msg.new_owner, entries=entries)))
        return fx

    def joined(self, msg: ClusterDeaths) -> list[Effect]:
        """The head's answer to our first contact: the deaths published
        before we joined, and where the objects of the dead moved
        (HeadCore.welcome). We had nothing of theirs to free or reclaim;
        our workers learn them as they register."""
        self.dead_workers.update(msg.dead_workers)
        self.dead_nodes.update(n for n in msg.dead_nodes if n != self.address)
        learn_moves(self.moved, msg.moved)
        return []

    def moved_refs(self) -> tuple[MovedRef, ...]:
        return tuple(MovedRef(object_id=oid, owner=owner, epoch=epoch) for oid, (owner, epoch) in sorted(self.moved.items()))

    def fenced(self, msg: NodeDied) -> list[Effect]:
        r"""Spec: FateSharing!NodeFenced
        Spec: OwnerRecovery!ProcessFenced
        Spec: Scheduling!NodeFenced

            \* FateSharing
            NodeFenced(n) ==
                \E m \in msgs :
                   /\ m.type = "NodeDied"
                   /\ m.node = n
                   /\ m.dstNode = n
                   /\ n \in up
                   /\ LET dead == {w \in Workers : Alive(w) /\ nodeOf[w] = n}
                      IN /\ status' = [w \in Workers |-> IF w \in dead THEN "dead" ELSE status[w]]
                         /\ msgs' = {mm \in msgs : mm.dst \notin dead /\ mm.dstNode # n}
                   /\ up' = up \ {n}
                   /\ copies' = {c \in copies : c.node # n}
                   /\ lastAction' = Step("NodeFenced", NoWorker, Root, n, m)
                   /\ UNCHANGED <<crashes, nodeOf, ctx, got, table, announced, announcedNodes>>

            \* OwnerRecovery
            ProcessFenced(p) ==
                /\ FenceMsg(p) \in msgs
                /\ p \in up
                /\ up' = up \ {p}
                /\ msgs' = {m \in msgs : m.dst # p}
                /\ copies' = {c \in copies : c.n # p}
                /\ run' = [run EXCEPT ![p] = {}]
                /\ lastAction' = Step("ProcessFenced", p, NoObj, FenceMsg(p))
                /\ UNCHANGED <<fin, joined, crashes, declared, log, ent, brw, dk, mv, gst, par, pb, got, created, made, why, odied>>

            \* Scheduling
            NodeFenced(n) ==
                /\ nodeAlive[n]
                /\ n \notin members
                /\ nodeAlive' = [nodeAlive EXCEPT ![n] = FALSE]
                /\ workerAlive' = [w \in Workers |-> IF WorkerNode[w] = n THEN FALSE ELSE workerAlive[w]]
                /\ lastAction' = Step("NodeFenced", NoOwner, NoTask, n, NoWorker, NoNode, NoMsg)
                /\ UNCHANGED <<crashes, schedVars, ownerVars, msgs, histVars>>

        Implementation:

        The head declared this node dead (it missed heartbeats, or its
        connection dropped and it did not answer the probes) and says so,
        in the death notice it published or in answer to anything this node
        sends since. Everyone else counts this node and its workers as dead
        and has retried their tasks elsewhere: the workers are stopped, and
        the node stops (the shell exits), rather than serve on.
        """
        self.dead_nodes.add(self.address)
        return [KillWorker(worker=w) for w in sorted(self.scheduler.workers)] + [
            Fenced(reason=f"the head {self.head} declared this node dead")
        ]

    def snapshot(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "scheduler": self.scheduler.snapshot(),
            "store": self.store.snapshot(),
            "fetching": {oid: f.source for oid, f in sorted(self.store.fetching.items())},
            "dead_workers": sorted(self.dead_workers),
            "dead_nodes": sorted(self.dead_nodes),
            "moved": len(self.moved),
        }

    def drivers(self) -> list[str]:
        return [a for a, w in sorted(self.scheduler.workers.items()) if w.state == DRIVER]


def _returned_by_owner(core: NodeCore, src: str, msg: ReturnLease) -> bool:
    lease = core.scheduler.leases.get(msg.lease_id)
    return lease is None or lease.owner == src


def _freed_by_owner(core: NodeCore, src: str, msg: FreeObject) -> bool:
    kept = core.store.objects.get(msg.object_id)
    return kept is None or kept.owner == src


def _from_head(core: NodeCore, src: str, msg: Any) -> bool:
    return src == core.head


#: message type -> whether its sender is the one it claims to be (see _from_its_sender)
_SENDER_CHECKS: dict[type, Any] = {
    RequestLease: lambda core, src, msg: msg.owner == src,
    ReturnLease: _returned_by_owner,
    WorkerBlocked: lambda core, src, msg: msg.worker == src,
    WorkerUnblocked: lambda core, src, msg: msg.worker == src,
    RegisterWorker: lambda core, src, msg: msg.worker == src and msg.node == core.address,
    PullObject: lambda core, src, msg: msg.requester == src,
    PutObject: lambda core, src, msg: src in core.scheduler.workers,
    FreeObject: _freed_by_owner,
    FetchObject: lambda core, src, msg: msg.requester == src,
    WorkerRegistered: _from_head,
    ClusterView: _from_head,
    WorkerDied: _from_head,
    NodeDied: _from_head,
    OwnerMoved: _from_head,
    ClusterDeaths: _from_head,
}
