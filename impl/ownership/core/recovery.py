"""Failure handling at every worker (paper §4.3).

A failure notification (WorkerDied from a local scheduler, NodeDied from the
head) makes every worker scan its table:
- an owned object whose copies were all on a dead node is **reconstructed**
  from lineage: its creating task is resubmitted, recursively recreating
  lost owned arguments, within the task's retry budget;
- a task whose pending location was the dead worker is resubmitted;
- a borrowed reference whose **owner** died **fate-shares**: the holder
  drops it and every get on it fails with OwnerDiedError; tasks this worker
  runs for the dead owner stop (their results can go nowhere);
- dead borrowers are forgotten.
Nothing waits forever: every waiter gets the value or a documented error.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import attrs

from .events import Effect, Send
from .messages import (
    ErrorInfo,
    MovedObject,
    NodeDied,
    OwnerMoved,
    Payload,
    RecoveryReport,
    ReportEntry,
    WorkerDied,
)
from .refcount import FAILED, FREED, LOST, PENDING, READY, Reference

if TYPE_CHECKING:  # pragma: no cover
    from .worker import WorkerCore

__all__ = ["FailureHandler", "TakeOver", "Recovering"]


class FailureHandler:
    def __init__(self, worker: WorkerCore) -> None:
        self.worker = worker
        # Objects waiting to be rebuilt while a rebuild is under way (see
        # reconstruct); None when none is.
        self._rebuilding: collections.deque[Reference] | None = None

    @property
    def refs(self):
        return self.worker.refs

    def handle_failure(self, msg: WorkerDied | NodeDied) -> list[Effect]:
        r"""Spec: FateSharing!OwnerHandleFailure
        Spec: Ownership!ProcessHandleFailure

            \* FateSharing
            OwnerHandleFailure(o) ==
                \E m \in msgs :
                   /\ IsNotification(m)
                   /\ m.dst = o
                   /\ Alive(o)
                   /\ ~\E r \in HeldRefs(o) : r[2] \in DeadIn(m)
                   /\ LET D == DeadIn(m)
                          N == IF m.type = "NodeDied" THEN {m.node} ELSE {}
                      IN table' = [table EXCEPT ![o] = [x \in DOMAIN table[o] |->
                                     LET e == table[o][x] IN
                                     IF e.st = "pending" /\ e.worker \in D
                                     THEN [e EXCEPT !.st = "retry"]
                                     ELSE IF e.st = "ready" /\ e.locs \cap N # {}
                                     THEN [e EXCEPT !.st = IF e.locs \ N = {} THEN "lost" ELSE "ready",
                                                    !.locs = e.locs \ N]
                                     ELSE e]]
                   /\ msgs' = msgs \ {m}
                   /\ lastAction' = Step("OwnerHandleFailure", o, Root, NoNode, m)
                   /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, copies, announced,
                                  announcedNodes>>

            \* Ownership
            ProcessHandleFailure(a, m) ==
                LET D == DeadProcs(m)
                    N == DeadNodes(m)
                    me == Cur(a)
                    Hit(e) == \/ e.task = "pushed" /\ (e.loc.w \in D \/ e.loc.n \in N)
                              \/ e.task = "requested" /\ e.loc.n \in N
                    mine == {x \in Objects : ent[x].owner = me}
                    retried == {x \in mine : Kind[x] # "call" /\ Hit(ent[x]) /\ ent[x].budget > 0}
                    failing == {x \in mine : Kind[x] # "call" /\ Hit(ent[x]) /\ ent[x].budget = 0}
                    \* an actor whose worker died (its constructor had returned), and
                    \* the calls pushed to that worker: ActorDied (never restarted,
                    \* never retried)
                    actorDied == {x \in mine : Kind[x] = "actor" /\ ent[x].obj = "ready" /\ ent[x].host \in D}
                    callDied == {x \in mine : Kind[x] = "call" /\ ent[x].task = "pushed" /\ ent[x].loc.w \in D}
                    ended == failing \cup callDied
                    Err(x) == IF Kind[x] = "task" THEN "WorkerCrashed" ELSE "ActorDied"
                    Scan(x) ==
                        LET e == ent[x]
                            e1 == IF x \in retried THEN [e EXCEPT !.task = "waiting", !.budget = @ - 1, !.loc = NoLoc]
                                  \* (a call cancelled while it ran keeps its error)
                                  ELSE IF x \in ended \cup actorDied THEN Failed(e, IF e.obj = "failed" THEN e.err ELSE Err(x))
                                  ELSE e
                            left == e1.locs \ N
                            e2 == IF e1.obj = "ready" /\ left = {} /\ e1.locs # {}
                                  THEN [e1 EXCEPT !.locs = {}, !.obj = "lost"]
                                  ELSE [e1 EXCEPT !.locs = left]
                        IN [e2 EXCEPT !.waiters = @ \ D, !.borrowers = @ \ D,
                                      !.submitted = @ - Cardinality({z \in ended : x \in OwnRefs(z)})]
                    x0 == ex[a]
                    \* borrowed references whose owner died: they fate-share
                    gone == {y \in Objects : brw[a][y].owner \in D}
                    B0 == [y \in Objects |-> IF y \in gone THEN [brw[a][y] EXCEPT !.failed = TRUE, !.waits = 0] ELSE brw[a][y]]
                    orphan == x0.phase # "idle" /\ x0.o \in D
                    doomed == x0.phase # "idle" /\ ~orphan /\ x0.refs \cap gone # {}
                    ends == orphan \/ doomed
                    B == IF ends THEN [y \in Objects |-> IF y \in x0.refs THEN [B0[y] EXCEPT !.run = @ - 1] ELSE B0[y]] ELSE B0
                    refetch == IF ends THEN {}
                               ELSE {y \in Objects : x0.phase = "fetch" /\ x0.arg[y] = "pull" /\ x0.at[y] \in N}
                    e == IF ends THEN IdleExec
                         ELSE [x0 EXCEPT !.arg = [y \in Objects |-> IF y \in refetch THEN "ask" ELSE @[y]],
                                         !.at = [y \in Objects |-> IF y \in refetch THEN NoNode ELSE @[y]]]
                    M == (msgs \ {m})
                         \cup UNION {Answers(x, ent[x], Err(x)) : x \in ended}
                         \cup {GetObjectMsg(y, x0.o, me, Bad(a, N)) : y \in refetch}
                         \cup (IF doomed THEN {TaskReplyMsg(x0.x, x0.o, me, NoNode, x0.att, "OwnerDied", Report(x0, B))}
                                              \cup Unblock(a, x0)
                               ELSE {})
                         \cup Answered(a, B)
                    settle == Settle(a, [x \in Objects |-> IF x \in mine THEN Scan(x) ELSE ent[x]], M,
                                 [x \in Objects |-> IF x \in failing THEN "budget" ELSE IF x \in callDied /\ why[x] = "" THEN "actor" ELSE why[x]], e)
                IN
                /\ m \in msgs
                /\ m.type \in {"WorkerDied", "NodeDied"}
                /\ m.dst = me
                /\ IsUp(me)
                /\ known' = [known EXCEPT ![a] = Learn(@, m)]
                /\ ex' = [ex EXCEPT ![a] = e]
                /\ brw' = [brw EXCEPT ![a] = Released(B)]
                /\ settle
                /\ lastAction' = Step("ProcessHandleFailure", a, NoObj, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, got, made>>

        Implementation:

        On a worker or node death notification, scan the ownership table:
        recover owned objects whose copies or pending task were there, let
        references whose owner died fate-share, forget dead borrowers.
        """
        if isinstance(msg, WorkerDied):
            return self._death({msg.worker}, set())
        return self._death(set(msg.workers), {msg.node})

    def _death(self, dead_workers: set[str], dead_nodes: set[str]) -> list[Effect]:
        w = self.worker
        dead_workers -= w.dead_workers
        dead_nodes -= w.dead_nodes
        if not dead_workers and not dead_nodes:
            return []  # a duplicate notification
        w.dead_workers |= dead_workers
        w.dead_nodes |= dead_nodes
        fx: list[Effect] = []
        fx += w.executor.handle_owner_death(dead_workers)
        fx += w.submitter.handle_failure(dead_workers, dead_nodes)
        fx += self.refs.owners_died(dead_workers)
        # Copies on dead nodes are written off before any task runs again,
        # so a re-executed task waits for (and so rebuilds) a lost argument.
        for object_id in sorted(self.refs.table):
            ref = self.refs.table.get(object_id)
            if ref is None:
                continue
            if ref.owned:
                fx += self._scan_owned(ref, dead_workers, dead_nodes)
            else:
                fx += self._scan_borrowed(ref, dead_workers, dead_nodes)
        for task in w.submitter.tasks_at(dead_workers, dead_nodes):
            fx += self.reexecute(task)
        fx += w.submitter.pump_all()
        fx += w.executor.fate_share_tasks(dead_workers)
        fx += w.takeover.handle_death(dead_workers, dead_nodes)
        for object_id in sorted(self.refs.table):
            fx += self.refs.check(object_id)
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

        Phase 1 of a take-over, at every process told: the borrowed
        references to a moved object point at the new owner from now on
        (its gets and releases go there, a get in flight is asked again),
        later pushes of an older epoch are stale, the rest of the death is
        handled as a WorkerDied/NodeDied is (references that did not opt in
        fate-share), and the process answers the new owner (phase 2). At the
        new owner the moved objects open as recovering entries
        (TakeOver.open). A task the dead owner had pushed here is stopped
        with the rest of its leases (the node kills the worker): the new
        owner rebuilds what it would have made, so it never runs twice.
        """
        w = self.worker
        dead = set(msg.workers)
        if w.address in dead:
            return []  # declared dead: our node stops us
        w.dying = frozenset(dead)
        try:
            return self._owner_moved(msg, dead)
        finally:
            w.dying = frozenset()

    def _owner_moved(self, msg: OwnerMoved, dead: set[str]) -> list[Effect]:
        w = self.worker
        fx: list[Effect] = []
        again: list[Reference] = []
        entries: list[ReportEntry] = []
        if msg.new_owner == w.address:
            fx += w.takeover.open(msg)
        else:
            reporting = w.address in msg.told
            for m in msg.moved:
                w.moved[m.object_id] = (msg.new_owner, m.epoch)
                ref = self.refs.table.get(m.object_id)
                held = ref is not None and not ref.owned and ref.owner in dead
                if held:
                    assert ref is not None
                    fx += self._redirect(ref, msg.new_owner, m.epoch, counted=reporting)
                    if ref.fetching == "owner":
                        ref.fetching = None
                        again.append(ref)
                entries.append(ReportEntry(object_id=m.object_id, epoch=m.epoch, held=held))
            w.executor.retarget(dead)
        fx += self._death(dead, {msg.node} if msg.node is not None else set())
        for ref in again:
            if self.refs.table.get(ref.object_id) is ref and ref.waiters:
                fx += self.refs.fetch(ref)
        if msg.new_owner != w.address and reporting:
            fx.append(Send(msg.new_owner, RecoveryReport(reporter=w.address, new_owner=msg.new_owner, entries=tuple(entries))))
        return fx

    def _redirect(self, ref: Reference, owner: str, epoch: int, *, counted: bool = False) -> list[Effect]:
        """A borrowed reference whose owner died and whose object moved to
        ``owner``. ``counted``: our report (sent after this, on the same
        connection) counts us as a borrower there and stands for its
        WaitForRefRemoved, so our release answers it at once, as the spec's
        HolderRelease does. The borrowers we created report to it themselves."""
        ref.owner, ref.epoch = owner, epoch
        ref.owner_waiting = 1 if counted else 0
        ref.sub_borrowers = []
        ref.no_copy = ()
        fx: list[Effect] = []
        tasks, ref.registering = ref.registering, []
        for task_id in tasks:
            fx += self.worker.executor.registered(task_id, ref.object_id, None)
        return fx

    def _scan_owned(self, ref: Reference, dead_workers: set[str], dead_nodes: set[str]) -> list[Effect]:
        fx: list[Effect] = []
        for b in [b for b in ref.borrowers if b in dead_workers]:
            del ref.borrowers[b]
        ref.remote_waiters = [r for r in ref.remote_waiters if r not in dead_workers]
        if ref.kind != "object":
            return fx
        if ref.fetching in dead_nodes:
            ref.fetching = None
        lost = ref.locations & dead_nodes
        if lost:
            ref.locations -= lost
            if not ref.locations and ref.value is None and ref.status == READY:
                ref.status = LOST
        if ref.status == LOST:
            # Reconstruction is lazy (as in Ray): only for an object someone waits for now.
            if ref.waiters or ref.remote_waiters or self.worker.submitter.waiting_on.get(ref.object_id):
                fx += self.reconstruct(ref)
            elif not ref.in_scope() and ref.task_id is not None:
                ref.status = FREED  # nobody refers to it; its lineage stays
        elif ref.waiters and ref.fetching is None:
            fx += self.refs.fetch(ref)
        return fx

    def _scan_borrowed(self, ref: Reference, dead_workers: set[str], dead_nodes: set[str]) -> list[Effect]:
        ref.sub_borrowers = [b for b in ref.sub_borrowers if b.address not in dead_workers]
        if ref.owner in dead_workers:
            return self.fate_share(ref)
        fx: list[Effect] = []
        if ref.kind == "actor":
            if ref.locations & dead_workers and ref.status != FAILED:
                error = ErrorInfo(kind="actor_died", message=f"the actor {ref.object_id} on worker {min(ref.locations)} died")
                fx += self.refs.set_failed(ref, error)
            return fx
        self.refs.found_without(ref, ref.locations & dead_nodes)
        if ref.fetching in dead_nodes:
            ref.fetching = None
            if ref.waiters:
                fx += self.refs.fetch(ref)
        return fx

    def reexecute(self, task) -> list[Effect]:
        r"""Spec: FateSharing!OwnerReexecute

            \* FateSharing
            OwnerReexecute(o, x) ==
                /\ Alive(o)
                /\ x \in DOMAIN table[o]
                /\ table[o][x].st = "retry"
                /\ table' = [table EXCEPT ![o][x] =
                               IF @.budget > 0 THEN [@ EXCEPT !.st = "waiting", !.budget = @ - 1]
                               ELSE [@ EXCEPT !.st = "error", !.err = "WorkerCrashed"]]
                /\ lastAction' = Step("OwnerReexecute", o, x, NoNode, NoMsg)
                /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, copies, announced,
                               announcedNodes, msgs>>

        Implementation:

        The worker running the task died (or the node its lease request was
        at): its owner submits it again, within its retry budget. When that
        worker was itself an owner, this is the dead owner's owner re-running
        the dead owner's task, whose new run submits (recreates) the children.
        """
        w = self.worker
        requested = task.request_id is not None and task.location in w.dead_nodes
        pushed = task.lease_id is not None and task.location in w.dead_workers
        if not (requested or pushed):
            return []
        return w.submitter.resubmit(task)

    def reconstruct(self, ref: Reference) -> list[Effect]:
        r"""Spec: FateSharing!OwnerReconstruct
        Spec: OwnerRecovery!OwnerRebuild
        Spec: Scheduling!OwnerReconstruct

            \* FateSharing
            OwnerReconstruct(o, x) ==
                /\ Alive(o)
                /\ x \in DOMAIN table[o]
                /\ table[o][x].st = "lost"
                /\ Needed(o, x)
                /\ table' = [table EXCEPT ![o][x] =
                               IF @.budget > 0 THEN [@ EXCEPT !.st = "waiting", !.budget = @ - 1]
                               ELSE [@ EXCEPT !.st = "error", !.err = "ObjectLost"]]
                /\ lastAction' = Step("OwnerReconstruct", o, x, NoNode, NoMsg)
                /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, copies, announced,
                               announcedNodes, msgs>>

            \* Scheduling (the task queued again)
            OwnerReconstruct(o, t) ==
                LET k == TaskKey[t] IN
                /\ Reconstruction
                /\ TaskOwner[t] = o
                /\ OwnerAlive(o)
                /\ status[t] = "done"
                /\ retries[t] > 0
                /\ \E w \in ranOn[t] : w \in deadWorkers[o] \/ WorkerNode[w] \in deadNodes[o]
                /\ status' = [status EXCEPT ![t] = "queued"]
                /\ queue' = [queue EXCEPT ![o][k] = Append(@, t)]
                /\ retries' = [retries EXCEPT ![t] = @ - 1]
                /\ location' = [location EXCEPT ![t] = NoLocation]

            \* OwnerRecovery
            OwnerRebuild(p, x) ==
                /\ p \in up
                /\ ent[p][x].st = "lost"
                /\ Needed(p, x)
                /\ LET e == ent[p][x] IN
                   IF Kind[x] = "put" /\ Recoverable[x] /\ HeadAccepts(p, x, e.ep)
                   THEN /\ ent' = [ent EXCEPT ![p][x].st = "ready", ![p][x].locs = {p}]
                        /\ copies' = copies \cup {[x |-> x, n |-> p, o |-> p, ep |-> e.ep, val |-> log[x].val]}
                        /\ UNCHANGED why
                   ELSE IF Kind[x] = "task" /\ Recoverable[x] /\ log[x].att = 0
                   THEN /\ ent' = [ent EXCEPT ![p][x].st = "waiting"]
                        /\ UNCHANGED <<copies, why, odied>>
                   ELSE IF Kind[x] = "task" /\ e.budget > 0
                   THEN /\ ent' = [ent EXCEPT ![p][x].st = "waiting", ![p][x].budget = @ - 1]
                        /\ UNCHANGED <<copies, why, odied>>
                   ELSE /\ ent' = [ent EXCEPT ![p][x].st = "failed"]
                        /\ why' = [why EXCEPT ![x] = IF @ = "" THEN "budget" ELSE @]
                        /\ UNCHANGED copies
                /\ lastAction' = Step("OwnerRebuild", p, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, msgs, par, pb, got,
                               created, made, odied>>

        Implementation:

        Every copy of an owned object is gone while it is still referenced:
        resubmit the task that created it (its lost owned arguments are
        recreated the same way), unless its retry budget is spent.

        A resubmitted task that finds an argument lost calls this again: the
        outermost call takes the objects so found from a worklist, so a
        lineage of any length is rebuilt without a recursion as deep.
        """
        if not ref.owned or ref.status not in (LOST, FREED):
            return []
        if self._rebuilding is not None:
            self._rebuilding.append(ref)
            return []
        self._rebuilding = collections.deque([ref])
        fx: list[Effect] = []
        try:
            while self._rebuilding:
                fx += self._rebuild(self._rebuilding.popleft())
        finally:
            self._rebuilding = None
        return fx

    def _rebuild(self, ref: Reference) -> list[Effect]:
        if ref.status not in (LOST, FREED):
            return []  # rebuilt already, for another dependent
        if ref.task_id is None:
            error = ErrorInfo(
                kind="object_lost",
                message=f"object {ref.object_id} was lost: it was made by put, so nothing can make it again",
            )
            return self.refs.set_failed(ref, error)
        task = self.worker.submitter.tasks.get(ref.task_id)
        if task is None:
            error = ErrorInfo(kind="object_lost", message=f"object {ref.object_id} was lost and has no lineage to recreate it")
            return self.refs.set_failed(ref, error)
        return self.worker.submitter.resubmit(task)

    def fate_share(self, ref: Reference) -> list[Effect]:
        r"""Spec: FateSharing!HolderFateShare

            \* FateSharing
            HolderFateShare(h, x) ==
                /\ Running(h)
                /\ \E r \in HeldRefs(h) :
                      /\ r[1] = x
                      /\ \E m \in msgs : IsNotification(m) /\ m.dst = h /\ r[2] \in DeadIn(m)
                /\ ctx' = [ctx EXCEPT ![h].body = "failed"]
                /\ msgs' = msgs \cup (IF DeathAnnounced(ctx[h].owner) THEN {}
                                      ELSE Send({TaskReplyMsg(h[1], ctx[h].owner, h, nodeOf[h], "OwnerDied")}))
                /\ lastAction' = Step("HolderFateShare", h, x, NoNode, NoMsg)
                /\ UNCHANGED <<up, crashes, status, nodeOf, got, table, copies, announced,
                               announcedNodes>>

        Implementation:

        The owner of a borrowed reference died: the holder drops the value
        and everything waiting on it fails with OwnerDiedError.
        """
        if ref.owned or ref.owner not in self.worker.dead_workers or ref.status == FAILED:
            return []
        ref.sub_borrowers = []
        ref.owner_waiting = 0
        ref.registering = []  # its tasks fail with it (TaskExecutor.fate_share_tasks)
        ref.value = None
        ref.locations.clear()
        ref.fetching = None
        error = ErrorInfo(kind="owner_died", message=f"the owner {ref.owner} of object {ref.object_id} died")
        return self.refs.set_failed(ref, error)


#: messages of an epoch not heard of yet, kept at most
_EARLY_KEPT = 10_000


@attrs.define(eq=False)
class Recovering:
    """A moved object at its new owner, while the take-over collects answers."""

    epoch: int
    #: the processes told whose RecoveryReport has not come yet
    waiting: set[str]
    #: a put's value, from the head's log
    value: Payload | None = None


class TakeOver:
    """The driver's side of a take-over (spec/OwnerRecovery.tla's new owner)."""

    def __init__(self, worker: WorkerCore) -> None:
        self.worker = worker
        self.recovering: dict[str, Recovering] = {}
        #: messages about an epoch we have not heard of yet (HeardOf): kept
        #: until the head's OwnerMoved reaches us
        self.early: list[tuple[str, Any]] = []
        self.completed = 0

    @property
    def refs(self):
        return self.worker.refs

    def snapshot(self) -> dict[str, Any]:
        return {oid: {"epoch": r.epoch, "waiting": sorted(r.waiting)} for oid, r in sorted(self.recovering.items())}

    def heard_of(self, object_id: str) -> int:
        """The latest epoch of ``object_id`` we know of (-1: none)."""
        m = self.worker.moved.get(object_id)
        ref = self.refs.table.get(object_id)
        return max(m[1] if m is not None else -1, ref.epoch if ref is not None else -1)

    def report_kept(self, reporter: str, object_id: str) -> bool:
        """Whether we keep a report of ``reporter`` about ``object_id`` until
        the head's notice comes."""
        return any(
            isinstance(kept, RecoveryReport) and kept.reporter == reporter and any(e.object_id == object_id for e in kept.entries)
            for _, kept in self.early
        )

    def keep_early(self, src: str, msg: Any) -> list[Effect]:
        """``msg`` names an epoch we have not heard of: keep it for later
        (a bounded number: a peer that names epochs no take-over made
        cannot fill our memory; past the bound they are dropped)."""
        if len(self.early) >= _EARLY_KEPT:
            self.worker.dropped += 1
            return []
        self.early.append((src, msg))
        return []

    def open(self, msg: OwnerMoved) -> list[Effect]:
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

        At the new owner: each moved object gets an owned entry (ours
        already if we borrowed it: the cached value, our local references
        and waiters stay), recovering until every process told has answered
        or is known dead, with its lineage as a task of ours (its arguments,
        moved too, are pinned by it) or a put's value from the log.
        """
        w = self.worker
        me = w.address
        dead = set(msg.workers)
        fx: list[Effect] = []
        told = set(msg.told) - w.dead_workers - w.dead_nodes - dead - {me}
        opened: list[tuple[Reference, MovedObject]] = []
        for m in msg.moved:
            w.moved[m.object_id] = (me, m.epoch)
            ref = self.refs.table.get(m.object_id)
            if ref is None:
                ref = Reference(object_id=m.object_id, owner=me, owned=True, status=PENDING)
                self.refs.table[m.object_id] = ref
            elif not ref.owned:
                fx += self.worker.failures._redirect(ref, me, m.epoch)
                ref.owned = True
                ref.fetching = None
                ref.locations.clear()
                ref.status = READY if ref.value is not None else PENDING
            elif ref.epoch >= m.epoch:
                continue  # a duplicate notice
            ref.owner, ref.recoverable, ref.epoch, ref.deleting = me, True, m.epoch, False
            if ref.status != READY:
                ref.status = PENDING
            if m.task is not None:
                fx += self._lineage(ref, m)
            self.recovering[m.object_id] = Recovering(epoch=m.epoch, waiting=set(told), value=m.value)
            opened.append((ref, m))
        for ref, m in opened:
            if m.task is not None:
                deps = tuple(
                    a.ref.object_id for a in m.task.args if a.ref is not None and a.ref.object_id in self.recovering
                )
                for dep in deps:
                    self.refs.table[dep].lineage += 1
                ref.lineage_deps = deps
        early, self.early = self.early, []
        for src, kept in early:
            fx += self.worker._receive(src, kept)
        for object_id in [oid for oid, r in self.recovering.items() if not r.waiting]:
            fx += self.complete(object_id)
        return fx

    def _lineage(self, ref: Reference, m: MovedObject) -> list[Effect]:
        """The logged task of ``m``, now ours, as a finished task whose
        resubmission makes the object again (within its retries)."""
        from .submitter import DONE, TaskEntry, scheduling_key

        submitter = self.worker.submitter
        assert m.task is not None
        args = tuple(attrs.evolve(a, ref=self.worker.current(a.ref)) if a.ref is not None else a for a in m.task.args)
        spec = attrs.evolve(m.task, owner=self.worker.address, args=args)
        ref.task_id = spec.task_id
        if spec.task_id in submitter.tasks:
            return []
        held = [a.ref.object_id for a in spec.args if a.ref is not None]
        held += [r.object_id for a in spec.args if a.value is not None for r in a.value.refs]
        # The attempts the head counted are spent (OwnerRecovery!LogBudget):
        # max_retries + 1 runs in all, of which the dead owner pushed
        # ``attempts``. Every run at the new owner starts from a lost entry
        # (complete, then reconstruct), whose resubmission spends one of
        # ``retries_left``; so a task never pushed keeps max_retries + 1 of
        # them here, and after its first run the spec's budget,
        # max_retries (there: "waiting" with the whole budget).
        budget = spec.max_retries + 1 - m.attempts
        # Our attempts are numbered on from the dead owner's: a worker that
        # ran attempt n for it remembers (task, n) as finished and drops a
        # push of the same pair as a duplicate, so an attempt 1 of ours
        # pushed there would never run (nor be answered).
        task = TaskEntry(
            spec=spec, key=scheduling_key(spec), retries_left=max(0, budget), state=DONE, held=held, attempt=m.attempts
        )
        submitter.tasks[spec.task_id] = task
        return []

    def handle_report(self, msg: RecoveryReport) -> list[Effect]:
        r"""Spec: OwnerRecovery!NewOwnerHandleReport

            \* OwnerRecovery
            NewOwnerHandleReport(m) ==
                /\ m \in msgs
                /\ m.type = "RecoveryReport"
                /\ Driver \in up
                /\ \/ ent[Driver][m.x].st = "recovering" /\ ent[Driver][m.x].ep = m.ep
                   \/ mv[Driver][m.x].ep >= m.ep
                /\ msgs' = msgs \ {m}
                /\ ent' = IF ent[Driver][m.x].st = "recovering" /\ ent[Driver][m.x].ep = m.ep /\ m.w \notin dk[Driver]
                          THEN [ent EXCEPT ![Driver][m.x] =
                                  [@ EXCEPT !.waiting = @ \ {m.w},
                                            !.borrowers = IF m.held THEN @ \cup {m.w} ELSE @,
                                            !.locs = IF m.copy THEN @ \cup {m.w} ELSE @,
                                            !.running = IF m.running THEN @ \cup {m.w} ELSE @]]
                          ELSE ent
                /\ lastAction' = Step("NewOwnerHandleReport", Driver, m.x, m)
                /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                               created, made, why, odied>>

        Implementation:

        Phase 2 at the new owner: a process's answers for the moved
        objects. A borrower is counted as one we asked to tell us when it
        lets go (its report stands for our WaitForRefRemoved), a store's copy (pinned again for us) is a
        location. An answer about an epoch we have not heard of waits for
        the head's notice; one from a process known dead is dropped.
        """
        w = self.worker
        if msg.reporter in w.dead_workers or msg.reporter in w.dead_nodes:
            return []
        if any(e.epoch > self.heard_of(e.object_id) for e in msg.entries):
            return self.keep_early(msg.reporter, msg)
        fx: list[Effect] = []
        for e in msg.entries:
            rec = self.recovering.get(e.object_id)
            ref = self.refs.table.get(e.object_id)
            if rec is None or rec.epoch != e.epoch or ref is None or msg.reporter not in rec.waiting:
                continue
            rec.waiting.discard(msg.reporter)
            if e.held:
                # Counted as asked: the reporter answers with a RefRemoved when it lets go.
                ref.borrowers[msg.reporter] = ref.borrowers.get(msg.reporter, 0) + 1
            if e.copy:
                ref.locations.add(msg.reporter)
            if not rec.waiting:
                fx += self.complete(e.object_id)
        return fx

    def handle_death(self, dead_workers: set[str], dead_nodes: set[str]) -> list[Effect]:
        """Processes known dead answer nothing: the take-over waits for them no more."""
        fx: list[Effect] = []
        for object_id in sorted(self.recovering):
            rec = self.recovering.get(object_id)
            if rec is None:
                continue
            rec.waiting -= dead_workers | dead_nodes
            if not rec.waiting:
                fx += self.complete(object_id)
        return fx

    def complete(self, object_id: str) -> list[Effect]:
        r"""Spec: OwnerRecovery!NewOwnerComplete

            \* OwnerRecovery
            NewOwnerComplete(x) ==
                /\ Driver \in up
                /\ ent[Driver][x].st = "recovering"
                /\ ent[Driver][x].waiting = {}
                /\ LET e == ent[Driver][x]
                       L == {n \in e.locs : n \notin dk[Driver]}
                       R == {r \in e.running : r \notin dk[Driver]}
                   IN ent' = [ent EXCEPT ![Driver][x] =
                                CASE L # {} -> [e EXCEPT !.st = "ready", !.locs = L, !.running = {}]
                                  [] R # {} -> [e EXCEPT !.st = "pending", !.loc = CHOOSE r \in R : TRUE, !.locs = {}, !.running = {}]
                                      [] OTHER -> [e EXCEPT !.st = "lost", !.locs = {}, !.running = {}]]
                /\ lastAction' = Step("NewOwnerComplete", Driver, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, msgs, par, pb, got,
                               created, made, why, odied>>

        Implementation:

        Every process told has answered or is known dead: the object is
        ready where a copy lives (or here, if we had its value), a put is
        restored from the head's log, and a task's object is lost, rebuilt
        from its lineage if something waits for it, freed otherwise.
        """
        rec = self.recovering.pop(object_id, None)
        ref = self.refs.table.get(object_id)
        if rec is None or ref is None or not ref.owned:
            return []
        self.completed += 1
        ref.locations -= self.worker.dead_nodes
        if ref.value is not None or ref.locations:
            return self.refs.set_ready(ref)
        if rec.value is not None:
            return self.refs.set_ready(ref, value=rec.value, refs=rec.value.refs)
        if ref.task_id is not None and ref.task_id in self.worker.submitter.tasks:
            ref.status = LOST
            fx: list[Effect] = []
            if ref.waiters or ref.remote_waiters or self.worker.submitter.waiting_on.get(object_id):
                fx += self.worker.failures.reconstruct(ref)
            return fx + self.refs.check(object_id)
        error = ErrorInfo(kind="object_lost", message=f"object {object_id} was lost with its owner and has no lineage")
        return self.refs.set_failed(ref, error)
