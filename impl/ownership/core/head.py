"""The head: node membership, failure detection and publication.

The head is never on a task's critical path (DESIGN §2). Nodes heartbeat to
it every tick. A node is declared dead, and its death (with every worker
registered on it) published to every live node, which relays it to its
workers, in one of two ways:

- fast: the head watches each node's connection; when it drops or a dial
  fails (:class:`PeerLost`), the node is *suspected* and probed with fresh
  dials (:class:`Probe`). A probe that the same incarnation answers clears
  the suspicion; ``probe_attempts`` unanswered probes in a row confirm the
  death. A dead process refuses the dial, so a crash is confirmed within
  a round trip or two, not a heartbeat timeout;
- backstop: a node silent for ``node_timeout_ticks`` ticks (a process that
  hangs with its connection open).

A node declared dead may still be running (its connection was cut, its
probes timed out). It is fenced: the head never takes that incarnation
back, and answers whatever it sends with its own death notice, on which the
node stops with its workers. So every process the cluster has written off
stops, and nobody acts on one that others count as dead.

Worker deaths reported by a node's scheduler are published the same way.
"""

from __future__ import annotations

from typing import Any

import attrs

from .config import CoreConfig
from .events import Effect, Event, EventLog, PeerLost, Probe, ProbeResult, Received, Send, Tick, Watch
from .messages import (
    AdoptersGone,
    ClusterDeaths,
    ClusterView,
    DeleteObject,
    DispatchLogged,
    Heartbeat,
    LogDispatch,
    LogObject,
    MovedObject,
    MovedRef,
    NodeDied,
    NodeView,
    ObjectDeleted,
    ObjectLogged,
    OwnerMoved,
    Payload,
    RegisterWorker,
    ReleaseAdopted,
    Resources,
    TaskSpec,
    WorkerDied,
    WorkerRegistered,
)
from .worker import UnexpectedEvent

__all__ = ["NodeRecord", "RecoveryLog", "HeadCore"]


@attrs.define(eq=False)
class RecoveryLog:
    """What the head keeps of one recoverable object (spec/OwnerRecovery.tla's
    ``log``): who owns it at which epoch, and what makes it again."""

    object_id: str
    owner: str
    epoch: int
    task: TaskSpec | None = None
    value: Payload | None = None
    retries: int = 0
    #: where its task was last pushed, and how many pushes the head counted
    location: str | None = None
    attempts: int = 0
    #: re-executed parents that borrow it instead of making it again
    adopters: set[str] = attrs.Factory(set)
    #: its owner asked to delete it while an adopter held it
    deleting: bool = False
    #: taken over from a dead owner: a node that joins later is told where
    moved: bool = False


@attrs.define(eq=False)
class NodeRecord:
    node: str
    last_seen: int
    total: Resources = ()
    available: Resources = ()
    workers: set[str] = attrs.Factory(set)
    alive: bool = True
    #: its connection dropped and probes are out; how many came back unanswered
    suspected: bool = False
    probes_failed: int = 0
    #: the head asked its transport to report the loss of its connection
    watched: bool = False
    #: deaths published while it was suspected, sent once it answers
    missed: list[Any] = attrs.Factory(list)
    #: told the deaths published before it joined (HeadCore.welcome)
    welcomed: bool = False


class HeadCore:
    def __init__(self, address: str, config: CoreConfig | None = None) -> None:
        self.address = address
        self.config = config or CoreConfig()
        self.nodes: dict[str, NodeRecord] = {}
        self.ticks = 0
        self.published: set[str] = set()  # workers whose death was published
        self.log = EventLog(self.config.log_size)
        self.dropped = 0
        #: messages from nodes declared dead, answered with their death notice
        self.fenced = 0
        #: suspects that answered (a probe or a heartbeat): connections lost
        #: by live nodes
        self.suspicions_cleared = 0
        #: recoverable objects, by id (OwnerRecovery)
        self.recovery_logs: dict[str, RecoveryLog] = {}
        #: the last epoch of each deleted object that was taken over: a
        #: re-executed parent may make it again (same id), and its new epoch
        #: must be later than any a process heard of in a take-over notice,
        #: or its tasks are dropped as stale.  An object never taken over
        #: leaves nothing: no process knows an epoch of it but its first.
        self.moved_epochs: dict[str, int] = {}
        #: drivers, in the order they registered: the first live one takes
        #: over the objects of a dead owner
        self.drivers: list[str] = []
        #: writes refused: from a process declared dead, or at a stale epoch
        self.refused_writes = 0

    def handle(self, event: Event) -> list[Effect]:
        effects = self._dispatch(event)
        self.log.append(event, effects)
        return effects

    def _dispatch(self, event: Event) -> list[Effect]:
        if isinstance(event, Tick):
            self.ticks += 1
            fx: list[Effect] = []
            for name in sorted(self.nodes):
                rec = self.nodes[name]
                if rec.alive and self.ticks - rec.last_seen > self.config.node_timeout_ticks:
                    fx += self.detect_node_death(name)
            return fx
        if isinstance(event, Received):
            return self._receive(event.src, event.msg)
        if isinstance(event, PeerLost):
            return self.suspect_node(event.address)
        if isinstance(event, ProbeResult):
            return self.probe_answered(event)
        raise UnexpectedEvent(f"head core cannot handle {event!r}")

    def _receive(self, src: str, msg: Any) -> list[Effect]:
        if isinstance(msg, (Heartbeat, RegisterWorker, WorkerDied)) and msg.node != src:
            # Only a node speaks for itself: a record for any other name
            # would be a member nobody can reach, declared dead later.
            self.dropped += 1
            return []
        if isinstance(msg, (Heartbeat, RegisterWorker, WorkerDied)):
            rec = self.nodes.get(msg.node)
            if rec is not None and not rec.alive:
                return self._fence(msg.node)
        if isinstance(msg, Heartbeat):
            return self._heartbeat(msg)
        if isinstance(msg, RegisterWorker):
            rec = self._record(msg.node)
            if rec is None:
                return []
            rec.workers.add(msg.worker)
            if msg.driver and msg.worker not in self.drivers:
                self.drivers.append(msg.worker)
            return self.welcome(rec) + [Send(msg.node, WorkerRegistered(worker=msg.worker, node=msg.node))]
        if isinstance(msg, WorkerDied):
            return self._publish_worker_death(msg)
        if isinstance(msg, LogObject):
            return self.log_object(src, msg)
        if isinstance(msg, LogDispatch):
            return self.log_dispatch(src, msg)
        if isinstance(msg, DeleteObject):
            return self.delete_object(src, msg)
        if isinstance(msg, ReleaseAdopted):
            return self.release_adopted(src, msg)
        self.dropped += 1
        return []

    # ------------------------------------------------------------------ owner recovery
    def _member(self, worker: str) -> bool:
        """A worker the head counts as alive: registered on a live node, and
        not declared dead (a write from anyone else is refused: fencing)."""
        if worker in self.published:
            return False
        return any(rec.alive and worker in rec.workers for rec in self.nodes.values())

    def log_object(self, src: str, msg: LogObject) -> list[Effect]:
        r"""Spec: OwnerRecovery!ParentMake

            \* OwnerRecovery
            ParentMake(p, x) ==
                /\ AtOp(p, "make", x)
                /\ pb' = Next1(p)
                /\ IF Recoverable[x] /\ log[x].st = "logged"
                   THEN /\ p \notin declared
                        /\ log' = [log EXCEPT ![x].adopt = @ \cup {p}]
                        /\ brw' = [brw EXCEPT ![p][x] = [o |-> log[x].owner, ep |-> log[x].ep, held |-> TRUE]]
                        /\ UNCHANGED <<ent, copies, created, made>>
                   ELSE LET ep == IF Recoverable[x] THEN log[x].ep + 1 ELSE 0
                        IN /\ Recoverable[x] => p \notin declared
                           /\ log' = IF Recoverable[x]
                                     THEN [log EXCEPT ![x] = [NoLog EXCEPT !.st = "logged", !.owner = p, !.ep = ep,
                                                              !.val = IF Kind[x] = "put" THEN LineageValue(x) ELSE {}]]
                                     ELSE log
                           /\ ent' = [ent EXCEPT ![p][x] =
                                        [NoEntry EXCEPT !.st = IF Kind[x] = "put" THEN "ready" ELSE "waiting",
                                                        !.ep = ep, !.local = TRUE, !.budget = Retries[x],
                                                        !.locs = IF Kind[x] = "put" THEN {p} ELSE {}]]
                           /\ copies' = IF Kind[x] = "put"
                                        THEN copies \cup {[x |-> x, n |-> p, o |-> p, ep |-> ep, val |-> LineageValue(x)]}
                                        ELSE copies
                           /\ created' = created \cup {x}
                           /\ made' = IF Kind[x] = "put" /\ why[x] = "" THEN made \cup {x} ELSE made
                           /\ UNCHANGED brw
                /\ lastAction' = Step("ParentMake", p, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, dk, mv, gst, run, fin, msgs, par, got, why, odied>>

        Implementation:

        The head's part of a make: log a recoverable object (its lineage, or
        a put's value) at its first epoch, before the owner hands the
        reference to anyone. The first epoch of an object made again after
        a take-over and a delete follows the last one it had. An object logged already was made by an earlier
        execution of the same parent and taken over since: the new maker
        adopts it (the head counts it, so its owner cannot delete the log
        under it) and borrows it instead of making a second one. A process
        declared dead is refused.
        """
        if msg.owner != src or not self._member(src):
            self.refused_writes += 1
            return [Send(src, ObjectLogged(object_id=msg.object_id, epoch=0, ok=False))]
        log = self.recovery_logs.get(msg.object_id)
        if log is None:
            epoch = self.moved_epochs.pop(msg.object_id, -1) + 1
            self.recovery_logs[msg.object_id] = RecoveryLog(
                object_id=msg.object_id, owner=src, epoch=epoch, task=msg.task, value=msg.value, retries=msg.retries
            )
            return [Send(src, ObjectLogged(object_id=msg.object_id, epoch=epoch))]
        if log.owner == src:
            return [Send(src, ObjectLogged(object_id=msg.object_id, epoch=log.epoch))]
        log.adopters.add(src)
        return [Send(src, ObjectLogged(object_id=msg.object_id, epoch=log.epoch, adopted_from=log.owner))]

    def log_dispatch(self, src: str, msg: LogDispatch) -> list[Effect]:
        r"""Spec: OwnerRecovery!OwnerDispatch

            \* OwnerRecovery
            OwnerDispatch(p, x) ==
                /\ p \in up
                /\ ent[p][x].st = "waiting"
                /\ \A y \in Args[x] : ArgSt(p, y) \in {"ready", "failed"}
                /\ LET e == ent[p][x]
                       bad == {y \in Args[x] : ArgSt(p, y) = "failed"}
                       w == PlaceOf(x)
                   IN IF bad # {}
                      THEN /\ ent' = [ent EXCEPT ![p][x].st = "failed"]
                           /\ why' = [why EXCEPT ![x] = IF @ = "" THEN "arg" ELSE @]
                           /\ UNCHANGED <<log, msgs>>
                      ELSE /\ Recoverable[x] => HeadAccepts(p, x, e.ep)
                           \* Attempts are numbered on from the head's count (the dead
                           \* owner's, after a take-over); it keeps the highest.
                           /\ log' = IF Recoverable[x]
                                     THEN [log EXCEPT ![x].loc = w, ![x].att = IF @ > e.att + 1 THEN @ ELSE e.att + 1]
                                     ELSE log
                           /\ ent' = [ent EXCEPT ![p][x].st = "pending", ![p][x].loc = w, ![p][x].att = e.att + 1]
                           /\ msgs' = msgs \cup Send({PushTaskMsg(x, p, e.ep, w, e.att + 1)})
                           /\ UNCHANGED why
                /\ lastAction' = Step("OwnerDispatch", p, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                               created, made, odied>>

        Implementation:

        The head's part of a dispatch: where the task of a recoverable
        object runs is logged before the owner pushes it, so a new owner
        knows every attempt made (its retry budget counts them), and a
        stale owner (declared dead, or at an older epoch) is refused: it
        does not push.
        """
        log = self.recovery_logs.get(msg.object_id)
        ok = log is not None and msg.owner == src and log.owner == src and log.epoch == msg.epoch and self._member(src)
        if ok:
            assert log is not None
            log.location, log.attempts = msg.worker, max(log.attempts, msg.attempt)
        else:
            self.refused_writes += 1
        return [Send(src, DispatchLogged(object_id=msg.object_id, epoch=msg.epoch, attempt=msg.attempt, ok=ok))]

    def delete_object(self, src: str, msg: DeleteObject) -> list[Effect]:
        r"""Spec: OwnerRecovery!OwnerFree

            \* OwnerRecovery
            OwnerFree(p, x) ==
                /\ p \in up
                /\ LET e == ent[p][x] IN
                   /\ e.st \in {"ready", "lost", "failed"}
                   /\ ~Referenced(p, x)
                   /\ ~\E z \in Objects : x \in Args[z] /\ ent[p][z].st # "none"
                   /\ Recoverable[x] => HeadAccepts(p, x, e.ep)
                   /\ log' = IF Recoverable[x]
                             THEN [log EXCEPT ![x] = [NoLog EXCEPT !.ep = IF log[x].ep > FirstEpoch THEN log[x].ep ELSE 0]]
                             ELSE log
                   \* The freed entry keeps its epoch: an owner recognizes the ids it made
                   \* (an id carries its owner's task), so a late message about one is
                   \* dropped, not taken for news of a take-over it has not heard of.
                   /\ ent' = [ent EXCEPT ![p][x] = [NoEntry EXCEPT !.ep = e.ep]]
                   \* A small value in the owner's own store goes at once.
                   /\ LET own == IF Kind[x] = "task" /\ Inline[x] THEN {p} ELSE {} IN
                      /\ copies' = {c \in copies : ~(c.x = x /\ c.n \in own /\ c.o = p /\ c.ep = e.ep)}
                      /\ msgs' = msgs \cup Send({FreeObjectMsg(x, p, e.ep, n) : n \in e.locs \ own})
                /\ lastAction' = Step("OwnerFree", p, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, brw, dk, mv, gst, run, fin, par, pb, got,
                               created, made, why, odied>>

        Implementation:

        The head's part of a free: only the registered owner, a member, at
        the object's epoch may delete its log; the owner sends FreeObject to
        the stores only once the head said yes. While an adopter holds the
        object the delete is refused, and AdoptersGone follows.
        """
        log = self.recovery_logs.get(msg.object_id)
        if log is None or msg.owner != src or log.owner != src or log.epoch != msg.epoch or not self._member(src):
            self.refused_writes += 1
            return [Send(src, ObjectDeleted(object_id=msg.object_id, epoch=msg.epoch, ok=False))]
        if log.adopters:
            log.deleting = True
            return [Send(src, ObjectDeleted(object_id=msg.object_id, epoch=msg.epoch, ok=False))]
        del self.recovery_logs[msg.object_id]
        if log.epoch > 0:
            self.moved_epochs[msg.object_id] = log.epoch
        return [Send(src, ObjectDeleted(object_id=msg.object_id, epoch=msg.epoch, ok=True))]

    def release_adopted(self, src: str, msg: ReleaseAdopted) -> list[Effect]:
        r"""Spec: OwnerRecovery!AdopterRelease

            \* OwnerRecovery
            AdopterRelease(p, x) ==
                /\ p \in up
                /\ pb[p].st = "done"
                /\ brw[p][x].held
                /\ p \notin Holders[x]
                /\ ~\E z \in Objects : x \in Args[z] /\ ent[p][z].st # "none"
                /\ log' = [log EXCEPT ![x].adopt = @ \ {p}]
                /\ brw' = [brw EXCEPT ![p][x] = NoBorrow]
                /\ lastAction' = Step("AdopterRelease", p, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, ent, dk, mv, gst, run, fin, copies, msgs, par, pb, got, created, made, why, odied>>

        Implementation:

        A re-executed parent no longer holds the object it adopted; the last
        adopter's release lets the owner's delete through (AdoptersGone).
        """
        log = self.recovery_logs.get(msg.object_id)
        if log is None or msg.adopter != src or src not in log.adopters:
            return []
        log.adopters.discard(src)
        if log.adopters or not log.deleting:
            return []
        log.deleting = False
        return [Send(log.owner, AdoptersGone(object_id=msg.object_id, epoch=log.epoch))]

    def _new_owner(self, dead: set[str]) -> str | None:
        return next((d for d in self.drivers if d not in dead and self._member(d)), None)

    def take_over(self, dead: set[str], death: WorkerDied | NodeDied) -> list[Effect]:
        r"""Spec: OwnerRecovery!HeadDetectDeath
        Spec: OwnerRecovery!HeadSuspect

            \* OwnerRecovery
            HeadDetectDeath(p) ==
                /\ p \in joined
                /\ p \notin up
                /\ p \notin declared
                /\ Declare(p)
                /\ lastAction' = Step("HeadDetectDeath", p, NoObj, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, ent, brw, dk, mv, gst, run, fin, copies, par, pb, got, created, made, why, odied>>

            \* OwnerRecovery
            HeadSuspect(p) ==
                /\ FalseSuspicion
                /\ p \in up
                /\ p \in Crashable
                /\ p \notin declared
                /\ crashes < MaxCrashes
                /\ crashes' = crashes + 1
                /\ Declare(p)
                /\ lastAction' = Step("HeadSuspect", p, NoObj, NoMsg)
                /\ UNCHANGED <<joined, up, ent, brw, dk, mv, gst, run, fin, copies, par, pb, got, created, made, why, odied>>

        Implementation:

        Publish a death (``dead``, as ``death`` names them). When a dead
        process owned logged objects, in the same step their epochs move
        on and the driver owns them: the death goes out as OwnerMoved,
        which carries both, so that nobody fate-shares an object that
        survives. A driver's objects, or any with no live driver left,
        share their owner's fate as default objects do.
        """
        for log in self.recovery_logs.values():
            log.adopters -= dead
        owned = sorted(oid for oid, log in self.recovery_logs.items() if log.owner in dead)
        new_owner = self._new_owner(dead) if owned else None
        if new_owner is None:
            for oid in owned:
                del self.recovery_logs[oid]
            return self._broadcast(death)
        moved = []
        for oid in owned:
            log = self.recovery_logs[oid]
            log.owner, log.epoch, log.moved = new_owner, log.epoch + 1, True
            moved.append(MovedObject(object_id=oid, epoch=log.epoch, task=log.task, value=log.value, attempts=log.attempts))
        told = set()
        for rec in self.nodes.values():
            if rec.alive:
                told.add(rec.node)
                told |= rec.workers
        told -= dead | self.published | {new_owner}
        msg = OwnerMoved(
            workers=tuple(sorted(dead)),
            node=death.node if isinstance(death, NodeDied) else None,
            new_owner=new_owner,
            moved=tuple(moved),
            told=tuple(sorted(told)),
        )
        return self._broadcast(msg)

    def _record(self, node: str) -> NodeRecord | None:
        rec = self.nodes.get(node)
        if rec is None:
            rec = self.nodes[node] = NodeRecord(node=node, last_seen=self.ticks)
        return rec if rec.alive else None

    def _fence(self, node: str) -> list[Effect]:
        """A node declared dead speaks: that incarnation never comes back.
        It is told it was declared dead, and stops on hearing it."""
        self.fenced += 1
        return [Send(node, NodeDied(node=node, workers=()))]

    def welcome(self, rec: NodeRecord) -> list[Effect]:
        r"""Spec: OwnerRecovery!Join

            \* OwnerRecovery
            Join(j) ==
                /\ j \in Joiners
                /\ j \notin joined
                /\ joined' = joined \cup {j}
                /\ up' = up \cup {j}
                /\ dk' = [dk EXCEPT ![j] = declared]
                /\ mv' = [mv EXCEPT ![j] = [x \in Objects |-> IF Moved(x) THEN [o |-> log[x].owner, ep |-> log[x].ep] ELSE NoMove]]
                /\ lastAction' = Step("Join", j, NoObj, NoMsg)
                /\ UNCHANGED <<crashes, declared, log, ent, brw, gst, run, fin, copies, msgs, par, pb, got,
                               created, made, why, odied>>

        Implementation:

        A node's first contact (its first heartbeat or registration, before
        the head answers it): it heard of no death published before it
        joined, so the head tells it every one, and where the objects of the
        dead moved (their owner and epoch in the log). Its workers learn them
        as they register (LocalScheduler.worker_registered): a reference
        handed to one of them later may still name a dead owner, its lender
        not having heard of the take-over yet. Nothing is sent while nobody
        has died.
        """
        if rec.welcomed:
            return []
        rec.welcomed = True
        dead_nodes = sorted(n for n, r in self.nodes.items() if not r.alive)
        moved = tuple(
            MovedRef(object_id=oid, owner=log.owner, epoch=log.epoch) for oid, log in sorted(self.recovery_logs.items()) if log.moved
        )
        if not (self.published or dead_nodes or moved):
            return []
        return [Send(rec.node, ClusterDeaths(dead_workers=tuple(sorted(self.published)), dead_nodes=tuple(dead_nodes), moved=moved))]

    def _heartbeat(self, msg: Heartbeat) -> list[Effect]:
        new = msg.node not in self.nodes or not self.nodes[msg.node].total
        rec = self._record(msg.node)
        if rec is None:
            return []
        rec.last_seen = self.ticks
        rec.total, rec.available = msg.total, msg.available
        rec.workers |= set(msg.workers)
        fx: list[Effect] = self.welcome(rec)
        if self.config.suspect_on_connection_loss and (not rec.watched or rec.suspected):
            # Watch its connection (again: a watch reports once). A heartbeat
            # from a suspect came over a new connection: it is alive.
            fx += self._cleared(rec)
        view = ClusterView(
            nodes=tuple(
                NodeView(node=r.node, total=r.total, available=r.available)
                for _, r in sorted(self.nodes.items())
                if r.alive
            )
        )
        if new:
            # Membership changed: every node learns of the newcomer now,
            # not one heartbeat period later.
            return fx + self._broadcast(view)
        return fx + [Send(msg.node, view)]

    def suspect_node(self, node: str) -> list[Effect]:
        """The connection to member ``node`` dropped, or a dial to it failed:
        probe it rather than wait for its heartbeats to stop."""
        rec = self.nodes.get(node)
        if rec is None or not rec.alive or rec.suspected or not self.config.suspect_on_connection_loss:
            return []
        rec.suspected, rec.probes_failed = True, 0
        return [Probe(node)]

    def probe_answered(self, event: ProbeResult) -> list[Effect]:
        """A probe of a suspect came back: answered, the node is watched
        again; unanswered ``probe_attempts`` times in a row, it is dead."""
        rec = self.nodes.get(event.address)
        if rec is None or not rec.alive or not rec.suspected:
            return []  # cleared by a heartbeat, or declared dead meanwhile
        if event.reachable:
            return self._cleared(rec)
        rec.probes_failed += 1
        if rec.probes_failed < self.config.probe_attempts:
            return [Probe(event.address)]
        # It did not answer a fresh dial: a death notice sent now would not
        # reach it either. Should it live, it hears of its death in answer
        # to the next thing it sends (see _fence).
        return self.detect_node_death(event.address, tell_it=False)

    def _cleared(self, rec: NodeRecord) -> list[Effect]:
        """``rec``'s node answers: watch its connection again, and send it
        the deaths published while it was suspected, in order."""
        if rec.suspected:
            self.suspicions_cleared += 1
        rec.watched, rec.suspected, rec.probes_failed = True, False, 0
        missed, rec.missed = rec.missed, []
        return [Watch(rec.node)] + [Send(rec.node, m) for m in missed]

    def _publish_worker_death(self, msg: WorkerDied) -> list[Effect]:
        if msg.worker in self.published:
            return []
        self.published.add(msg.worker)
        rec = self.nodes.get(msg.node)
        if rec is not None:
            rec.workers.discard(msg.worker)
        return self.take_over({msg.worker}, msg)

    def _broadcast(self, msg: Any) -> list[Effect]:
        """``msg`` to every live node. A suspect has no connection: a death
        waits for it to answer (a dial now would only fail if it is gone),
        and a cluster view it gets with its next heartbeat anyway."""
        fx: list[Effect] = []
        for name, rec in sorted(self.nodes.items()):
            if not rec.alive:
                continue
            if not rec.suspected:
                fx.append(Send(name, msg))
            elif isinstance(msg, (NodeDied, WorkerDied, OwnerMoved)):
                rec.missed.append(msg)
        return fx

    def detect_node_death(self, node: str, *, tell_it: bool = True) -> list[Effect]:
        r"""Spec: Scheduling!HeadDetectNodeDeath
        Spec: FateSharing!HeadDetectNodeDeath
        Spec: Ownership!HeadDetectNodeDeath

            \* Scheduling
            HeadDetectNodeDeath(n) ==
                /\ n \in members
                /\ \/ ~nodeAlive[n]
                   \/ /\ FalseSuspicion
                      /\ crashes < MaxCrashes
                      /\ ~DriverOn(n)
                /\ members' = members \ {n}
                /\ crashes' = IF nodeAlive[n] THEN crashes + 1 ELSE crashes
                /\ msgs' = msgs \cup {NodeDiedMsg(o, n) : o \in Owners}
                /\ lastAction' = Step("HeadDetectNodeDeath", NoOwner, NoTask, n, NoWorker, NoNode, NoMsg)
                /\ UNCHANGED <<nodeAlive, workerAlive, pool, granted, lent, ownerVars, histVars>>

            \* FateSharing
            HeadDetectNodeDeath(n) ==
                /\ n \notin announcedNodes
                /\ \/ n \notin up
                   \/ /\ FalseSuspicion
                      /\ n \in up
                      /\ n # HeadNode
                      /\ crashes < MaxCrashes
                /\ announcedNodes' = announcedNodes \cup {n}
                /\ crashes' = IF n \in up THEN crashes + 1 ELSE crashes
                /\ LET D == {w \in Workers : Born(w) /\ nodeOf[w] = n}
                   IN msgs' = msgs
                              \cup {NodeDiedMsg(n, p) : p \in {p \in Workers : Interested(p, D, {n})}}
                              \cup {NodeDiedStoreMsg(n, s) : s \in {s \in Nodes \ {n} : StoreInterested(s, D)}}
                              \cup (IF n \in up THEN {NodeDiedStoreMsg(n, n)} ELSE {})  \* the fence
                /\ lastAction' = Step("HeadDetectNodeDeath", NoWorker, Root, n, NoMsg)
                /\ UNCHANGED <<up, status, nodeOf, ctx, got, table, copies, announced>>

            \* Ownership
            HeadDetectNodeDeath(n) ==
                /\ n \in members
                /\ n \notin nodeUp
                /\ members' = members \ {n}
                /\ announced' = announced \cup {p \in Procs : NodeOf(p) = n /\ p[2] <= inc[p[1]] /\ wst[p[1]] # "off"}
                /\ msgs' = msgs \cup {NodeDiedMsg(n, NoProc, r) : r \in members \ {n}}
                /\ lastAction' = Step("HeadDetectNodeDeath", NoAddr, NoObj, n, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, nodeVars, ent, ex, known, brw, got, made, why>>

        Implementation:

        A node missed its heartbeats, or its connection dropped and it did
        not answer the probes: declare it dead and publish the death,
        naming every worker that was registered on it. It may still be
        running (false suspicion): it is told too, and stops (fencing).
        """
        rec = self.nodes.get(node)
        if rec is None or not rec.alive:
            return []
        rec.alive = False
        rec.suspected = False
        rec.missed.clear()
        workers = tuple(sorted(rec.workers - self.published))
        self.published |= set(workers)
        msg = NodeDied(node=node, workers=workers)
        # The node itself is told too: if it is only cut off, it must stop
        # with its workers, which everyone else now counts as dead.
        return self.take_over(set(workers), msg) + ([Send(node, msg)] if tell_it else [])

    def snapshot(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "nodes": {
                n: {"alive": r.alive, "suspected": r.suspected, "last_seen": r.last_seen, "workers": sorted(r.workers), "total": dict(r.total), "available": dict(r.available)}
                for n, r in sorted(self.nodes.items())
            },
            "published": sorted(self.published),
            "fenced": self.fenced,
            "suspicions_cleared": self.suspicions_cleared,
            "recovery_logs": {
                oid: {"owner": log.owner, "epoch": log.epoch, "adopters": sorted(log.adopters), "location": log.location, "attempts": log.attempts}
                for oid, log in sorted(self.recovery_logs.items())
            },
            "refused_writes": self.refused_writes,
        }
