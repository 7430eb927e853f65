"""Task execution at a leased worker (or an actor's worker).

A PushTask arrives straight from the owner. Inline arguments are used as
they are; the references they carry make this worker a borrower for the
task's duration (BorrowerReceiveRef). Arguments passed by reference are
fetched from their owner (and a store). Once every argument is there, the
shell runs the user code (an :class:`~ownership.core.events.Execute`
effect) and reports back with :class:`~ownership.core.events.TaskDone`;
the reply then carries the value (inline, or stored at this node), the
references inside it, and what this worker still borrows.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

import attrs

from .events import CancelExecution, Effect, Execute, Send
from .messages import (
    Borrower,
    CancelTask,
    ErrorInfo,
    Payload,
    PushTask,
    PutObject,
    RefInfo,
    TaskReply,
    TaskSpec,
    WorkerBlocked,
    WorkerUnblocked,
)
from .refcount import Waiter

if TYPE_CHECKING:  # pragma: no cover
    from .worker import WorkerCore

__all__ = ["Running", "TaskExecutor"]

#: finished pushes remembered to drop a duplicated PushTask
_FINISHED_KEPT = 4096

#: What makes a push this one and no other: (task id, owner, epoch, attempt).
#: A re-executed parent makes a recoverable object again under the same
#: task id, at the same epoch and attempt once the first was freed; only
#: its owner differs. A new owner's attempts have their own epoch.
PushKey = tuple[str, str, int, int]


def push_key(spec: TaskSpec, epoch: int, attempt: int) -> PushKey:
    return (spec.task_id, spec.owner, epoch, attempt)


@attrs.define(eq=False)
class Running:
    spec: TaskSpec
    lease_id: str | None
    attempt: int
    args: list[Payload | None]
    pending: set[int] = attrs.Factory(set)  # argument indexes still being fetched
    arg_refs: list[RefInfo] = attrs.Factory(list)  # refs inside inline arguments (borrowed)
    fetched: list[str] = attrs.Factory(list)  # arguments fetched by reference (held locally)
    # refs in its arguments whose owner has yet to count this worker
    # (AddBorrower out): it runs once every one is counted
    registering: set[str] = attrs.Factory(set)
    started: bool = False
    cancelled: bool = False
    blocked: bool = False  # started, and waits in a get
    # not started, and an argument's owner said it is being made
    # (ObjectPending): its CPU is lent until every argument is here
    waiting_arg: bool = False
    error: ErrorInfo | None = None
    epoch: int = 0  # the push's epoch (OwnerRecovery), echoed in the reply

    @property
    def key(self) -> PushKey:
        return push_key(self.spec, self.epoch, self.attempt)

    def snapshot(self) -> dict[str, Any]:
        return {
            "task_id": self.spec.task_id,
            "owner": self.spec.owner,
            "kind": self.spec.kind,
            "attempt": self.attempt,
            "lease_id": self.lease_id,
            "pending_args": sorted(self.pending),
            "registering": sorted(self.registering),
            "started": self.started,
            "cancelled": self.cancelled,
            "blocked": self.blocked,
            "waiting_arg": self.waiting_arg,
        }


class TaskExecutor:
    """Runs the tasks pushed to this worker; hosts at most one actor."""

    def __init__(self, worker: WorkerCore) -> None:
        self.worker = worker
        self.running: dict[str, Running] = {}
        #: replies whose value carries recoverable objects of ours the head
        #: has not logged yet, oldest first: (those objects, the reply's sends)
        self.replies_awaiting_log: list[tuple[set[str], list[Effect]]] = []
        self.actor_id: str | None = None
        self.actor_busy: str | None = None
        self.actor_queue: collections.deque[str] = collections.deque()
        # The shell runs the actor's calls one at a time in the order it gets
        # them (TaskDone.calls_in_order): a call is handed over as soon as its
        # arguments are ready, and the shell's actor thread runs the next one
        # without waiting for the loop to hear of the previous one's end.
        self.calls_in_order = False
        # The same ids as a set: a call arriving while the actor is busy is
        # checked against it, and thousands of calls can be queued.
        self._actor_queued: set[str] = set()
        # Tasks pipelined onto this worker's lease (pipeline_depth > 1) whose
        # arguments are ready, waiting for the CPU: a lease is one CPU, so one
        # task runs at a time, unless the running one is blocked in a get and
        # has lent its CPU (then the next one runs, as the scheduler would
        # lease another worker for it).
        self.task_queue: collections.deque[str] = collections.deque()
        # The lease whose CPU this worker has lent to its node (WorkerBlocked)
        # because every task it started waits in a get, or its task waits for
        # an argument being made; None while it uses it.
        self.lent_lease: str | None = None
        # How many tasks wait in a get or for an argument being made: while
        # none does, there is nothing to lend, without a look at each of
        # thousands of queued actor calls.
        self.blocked_tasks = 0
        # The pushes of the last finished tasks (push_key), to ignore a
        # duplicated PushTask: the deque keeps the order to forget in, the
        # set answers the membership test of every push in O(1).
        self._finished: collections.deque[PushKey] = collections.deque()
        self._finished_set: set[PushKey] = set()

    @property
    def refs(self):
        return self.worker.refs

    def snapshot(self) -> dict[str, Any]:
        return {
            "running": {tid: r.snapshot() for tid, r in sorted(self.running.items())},
            "actor_id": self.actor_id,
            "actor_busy": self.actor_busy,
            "actor_queue": list(self.actor_queue),
            "calls_in_order": self.calls_in_order,
            "task_queue": list(self.task_queue),
            "lent_lease": self.lent_lease,
        }

    def execute(self, msg: PushTask) -> list[Effect]:
        r"""Spec: Scheduling!WorkerExecute
        Spec: OwnerRecovery!WorkerStart
        Spec: FateSharing!WorkerExecute
        Spec: Ownership!WorkerReceiveTask
        Spec: Ownership!ActorReceiveCall

            \* Scheduling
            WorkerExecute(w, m) ==
                /\ m.type = "PushTask"
                /\ m \in msgs
                /\ m.worker = w
                /\ workerAlive[w]
                /\ msgs' = (msgs \ {m}) \cup {TaskReplyMsg(m.owner, m.task, w)}
                /\ execs' = [execs EXCEPT ![m.task] = @ + 1]
                /\ ranOn' = [ranOn EXCEPT ![m.task] = @ \cup {w}]
                /\ lastAction' = Step("WorkerExecute", NoOwner, NoTask, NoNode, w, NoNode, m)
                /\ UNCHANGED <<envVars, schedVars, ownerVars>>

            \* OwnerRecovery
            WorkerStart(w, m) ==
                /\ m \in msgs
                /\ m.type = "PushTask"
                /\ m.dst = w
                /\ w \in up
                /\ LET x == m.x
                       t == Target(w, x, m.o, m.ep)
                       failedArgs == {y \in Args[x] : LiveCopies(y, Procs) = {} /\ m.o \in up /\ ArgSt(m.o, y) = "failed"}
                       drop == Stale(w, m) \/ <<x, m.o, m.ep, m.att>> \in fin[w]
                   IN \/ /\ drop
                         /\ msgs' = msgs \ {m}
                         /\ UNCHANGED run
                      \/ /\ ~drop
                         /\ failedArgs # {}
                         /\ msgs' = (msgs \ {m}) \cup Send({TaskReplyMsg(x, t.o, t.ep, w, "arg", {})})
                         /\ UNCHANGED run
                      \/ /\ ~drop
                         /\ \A y \in Args[x] : LiveCopies(y, Procs) # {}
                         /\ run' = [run EXCEPT ![w] = @ \cup
                                     {[x |-> x, o |-> t.o, ep |-> t.ep, src |-> <<m.o, m.ep>>, att |-> m.att,
                                       val |-> {x} \cup UNION {(CHOOSE c \in LiveCopies(y, Procs) : TRUE).val : y \in Args[x]}]}]
                         /\ msgs' = msgs \ {m}
                /\ lastAction' = Step("WorkerStart", w, m.x, m)
                /\ UNCHANGED <<fin, joined, up, crashes, declared, log, ent, brw, dk, mv, gst, copies, par, pb, got,
                               created, made, why, odied>>

            \* FateSharing
            WorkerExecute(w) ==
                \E m \in msgs :
                   /\ m.type = "PushTask"
                   /\ m.dst = w
                   /\ Alive(w)
                   /\ ctx[w].body = "idle"
                   /\ LET x == m.task
                          o == m.owner
                          doomed == \E r \in m.shared \cup {<<x, o>>} : DeathAnnounced(r[2])
                          failedArgs == {y \in Args[x] : LiveCopies(y, o) = {} /\ ArgFailed(o, y)}
                      IN \/ /\ doomed
                            /\ ctx' = [ctx EXCEPT ![w] = [IdleCtx EXCEPT !.owner = o, !.body = "failed"]]
                            /\ msgs' = (msgs \ {m}) \cup
                                       (IF DeathAnnounced(o) THEN {} ELSE Send({TaskReplyMsg(x, o, w, nodeOf[w], "OwnerDied")}))
                         \/ /\ ~doomed
                            /\ \A y \in Args[x] : LiveCopies(y, o) # {} \/ ArgFailed(o, y)
                            /\ IF failedArgs # {}
                               THEN /\ ctx' = [ctx EXCEPT ![w] = [IdleCtx EXCEPT !.owner = o, !.body = "failed"]]
                                    /\ msgs' = (msgs \ {m}) \cup
                                               Send({TaskReplyMsg(x, o, w, nodeOf[w], table[o][CHOOSE y \in failedArgs : TRUE].err)})
                               ELSE /\ ctx' = [ctx EXCEPT ![w] =
                                                 [owner |-> o, borrowed |-> m.shared, pc |-> 1, body |-> "running",
                                                  val |-> {x} \cup UNION {ArgValue(o, y) : y \in Args[x]}]]
                                    /\ msgs' = msgs \ {m}
                   /\ lastAction' = Step("WorkerExecute", w, m.task, NoNode, m)
                   /\ UNCHANGED <<up, crashes, status, nodeOf, got, table, copies, announced,
                                  announcedNodes>>

            \* Ownership
            WorkerReceiveTask(a, m) ==
                LET doomed == \E r \in m.refs : r.o \in known[a].p
                    ys == {r.y : r \in m.refs}
                    \* references it got from a process other than their owner: it
                    \* registers with their owner before it uses them
                    sub == {r \in m.refs : r.o # m.o}
                    ask == {r \in sub : brw[a][r.y].reg = "none"}
                    regs == {r.y : r \in {r \in sub : brw[a][r.y].reg # "yes"}}
                IN
                /\ m \in msgs
                /\ m.type = "PushTask"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ ex[a].phase = "idle"
                /\ \/ /\ m.o \in known[a].p
                      /\ msgs' = msgs \ {m}
                      /\ UNCHANGED <<ex, brw>>
                   \/ /\ m.o \notin known[a].p
                      /\ doomed
                      /\ msgs' = (msgs \ {m}) \cup {TaskReplyMsg(m.x, m.o, Cur(a), NoNode, m.att, "OwnerDied", {})}
                      /\ UNCHANGED <<ex, brw>>
                   \/ /\ m.o \notin known[a].p
                      /\ ~doomed
                      /\ ex' = [ex EXCEPT ![a] = [IdleExec EXCEPT
                                    !.x = m.x, !.o = m.o, !.att = m.att,
                                    !.phase = IF Args[m.x] = {} /\ regs = {} THEN "run" ELSE "fetch",
                                    !.arg = [y \in Objects |-> IF y \in Args[m.x] THEN "ask" ELSE "none"],
                                    !.val = {m.x}, !.refs = ys, !.regs = regs]]
                      /\ brw' = [brw EXCEPT ![a] = [y \in Objects |->
                                   IF y \in ys
                                   THEN LET r == CHOOSE r \in m.refs : r.y = y IN
                                        [@[y] EXCEPT !.owner = r.o, !.run = @ + 1,
                                                     !.reg = IF r \in ask THEN "asking" ELSE @]
                                   ELSE @[y]]]
                      /\ msgs' = (msgs \ {m}) \cup {GetObjectMsg(y, m.o, Cur(a), Bad(a, {})) : y \in Args[m.x]}
                                              \cup {AddBorrowerMsg(r.y, r.o, Cur(a)) : r \in ask}
                /\ lastAction' = Step("WorkerReceiveTask", a, m.x, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, got, made, why>>

            \* Ownership
            ActorReceiveCall(r) ==
                LET h == Head(chan[r])
                    a == h.w[1]
                    e == ex[a]
                    c == [x |-> h.x, o |-> h.o, att |-> h.att]
                    hosts == e.phase = "host" /\ e.x = r
                    idle == e.cur = NoCall /\ e.q = <<>>
                IN
                /\ r \in Actors
                /\ chan[r] # <<>>
                /\ IsUp(h.w)
                /\ ~h.cancel
                /\ chan' = [chan EXCEPT ![r] = Tail(@)]
                /\ IF hosts
                   THEN /\ ex' = [ex EXCEPT ![a] = IF idle THEN [e EXCEPT !.cur = c] ELSE [e EXCEPT !.q = Append(@, c)]]
                        /\ actorLog' = IF idle THEN [actorLog EXCEPT ![r].ran = Append(@, h.x)] ELSE actorLog
                        /\ UNCHANGED msgs
                   ELSE /\ msgs' = msgs \cup {TaskReplyMsg(h.x, h.o, h.w, NoNode, h.att, "ActorDied", {})}
                        /\ UNCHANGED <<ex, actorLog>>
                /\ lastAction' = Step("ActorReceiveCall", a, h.x, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

        Implementation:

        The leased worker receives the task from its owner, gets the
        arguments, and runs it (the reply is sent by ``finish_task``).
        """
        spec = msg.task
        if spec.owner in self.worker.dead_workers:
            return []
        if self.worker.moved and self.stale_push(msg):
            return []
        if spec.task_id in self.running or push_key(spec, msg.epoch, msg.attempt) in self._finished_set:
            return []  # a duplicated push
        if spec.kind == "actor_method" and spec.actor_id != self.actor_id:
            error = ErrorInfo(kind="actor_died", message=f"worker {self.worker.address} does not host actor {spec.actor_id}")
            return [Send(spec.owner, self._reply(spec, msg.lease_id, msg.attempt, error=error))]
        r = Running(spec=spec, lease_id=msg.lease_id, attempt=msg.attempt, args=[None] * len(spec.args), epoch=msg.epoch)
        self.running[spec.task_id] = r
        fx: list[Effect] = []
        for arg in spec.args:
            if arg.value is not None:
                r.arg_refs.extend(arg.value.refs)
        if self.worker.moved:
            # References made before a take-over name the dead owner.
            r.arg_refs = [self.worker.current(info) for info in r.arg_refs]
            spec = attrs.evolve(spec, args=tuple(attrs.evolve(a, ref=self.worker.current(a.ref)) if a.ref is not None else a for a in spec.args))
            r.spec = attrs.evolve(r.spec, args=spec.args)
        fx += self.refs.receive_ref(list(r.arg_refs), caller=spec.owner, task_id=spec.task_id)
        r.registering = self.refs.registrations(r.arg_refs, spec.task_id)
        doomed = sorted({info.owner for info in r.arg_refs if info.owner in self.worker.dead_workers})
        if doomed:
            # It holds a reference whose owner is already known dead: it
            # fate-shares before it runs.
            error = ErrorInfo(kind="owner_died", message=f"task {spec.task_id} holds a reference owned by {doomed[0]}, which died")
            return fx + self.finish_task(spec.task_id, error=error)
        for i, arg in enumerate(spec.args):
            if arg.value is not None:
                r.args[i] = arg.value
            elif arg.ref is not None:
                r.pending.add(i)
        for i in sorted(r.pending):
            ref = spec.args[i].ref
            assert ref is not None
            # Hold the argument until the task ends: its value may carry refs.
            self.refs.hold(ref)
            r.fetched.append(ref.object_id)
        for i in sorted(r.pending):
            ref = spec.args[i].ref
            assert ref is not None
            if spec.task_id in self.running:
                fx += self.refs.get(ref.object_id, Waiter("arg", (spec.task_id, i)), owner=ref.owner, kind=ref.kind)
        fx += self._maybe_start(r)
        return fx

    def arg_resolved(
        self,
        task_id: str,
        index: int,
        *,
        value: Payload | None = None,
        error: ErrorInfo | None = None,
        location: str | None = None,
    ) -> list[Effect]:
        r = self.running.get(task_id)
        if r is None or index not in r.pending:
            return []
        r.pending.discard(index)
        if error is not None:
            if r.error is None:
                r.error = error
        else:
            r.args[index] = value
        return self._maybe_start(r)

    def registered(self, task_id: str, object_id: str, error: ErrorInfo | None) -> list[Effect]:
        """The owner of ``object_id`` counts this worker now (or refused, with ``error``)."""
        r = self.running.get(task_id)
        if r is None or object_id not in r.registering:
            return []
        r.registering.discard(object_id)
        if error is not None and r.error is None:
            r.error = error
        return self._maybe_start(r)

    def arg_pending(self, task_id: str) -> list[Effect]:
        """An argument of a task that has not started is being made (its
        owner said ObjectPending): lend the CPU to the node meanwhile, as a
        task blocked in a get does. The argument may be rebuilt by a task
        that needs this very CPU (a one-CPU node)."""
        r = self.running.get(task_id)
        if r is None or r.started or r.waiting_arg or not r.pending or r.lease_id is None:
            return []
        r.waiting_arg = True
        self.blocked_tasks += 1
        return self._update_lent()

    def _maybe_start(self, r: Running) -> list[Effect]:
        if r.pending or r.registering or r.started:
            return []
        if r.waiting_arg:
            # Every argument is here: the CPU it lent is taken back, once the
            # task runs (or queues for the CPU, or fails).
            r.waiting_arg = False
            self.blocked_tasks -= 1
            started = self._start(r)
            return self._update_lent() + started
        return self._start(r)

    def _start(self, r: Running) -> list[Effect]:
        if r.error is not None:
            return self.finish_task(r.spec.task_id, error=r.error)
        kind = r.spec.kind
        # One call at a time, unless the shell keeps a sync actor's calls in order.
        if kind == "actor_create" or (kind == "actor_method" and not self.calls_in_order):
            if self.actor_busy is not None and self.actor_busy != r.spec.task_id:
                if r.spec.task_id not in self._actor_queued:
                    self.actor_queue.append(r.spec.task_id)
                    self._actor_queued.add(r.spec.task_id)
                return []
            self.actor_busy = r.spec.task_id
        elif kind == "task" and self._cpu_taken():
            if r.spec.task_id not in self.task_queue:
                self.task_queue.append(r.spec.task_id)
            return []
        r.started = True
        args = tuple(a for a in r.args if a is not None)
        return [Execute(task=r.spec, args=args)]

    def finish_task(
        self, task_id: str, *, value: Payload | None = None, error: ErrorInfo | None = None, calls_in_order: bool = False
    ) -> list[Effect]:
        r"""Spec: RefCounting!WorkerFinishTask
        Spec: FateSharing!WorkerFinishTask
        Spec: Ownership!WorkerFinishTask
        Spec: Ownership!ActorFinishCall
        Spec: OwnerRecovery!WorkerFinish
        Spec: OwnerRecovery!ParentFinish

            \* RefCounting
            WorkerFinishTask(w, p) ==
                /\ FinishTask(w, p, FALSE)
                /\ lastAction' = Act("WorkerFinishTask", [w |-> w, p |-> p])
                /\ UNCHANGED <<local, submitted, contained, waiting, borrowers,
                               removeWaits, tasksLeft, freed, passedOn, serveVars>>

            \* FateSharing
            WorkerFinishTask(w) ==
                /\ Running(w)
                /\ ctx[w].pc > Len(Body[w[1]])
                /\ ctx' = [ctx EXCEPT ![w].body = "finished"]
                /\ IF w = Driver \/ DeathAnnounced(ctx[w].owner)
                   THEN UNCHANGED <<copies, msgs>>
                   ELSE /\ copies' = copies \cup {[obj |-> w[1], owner |-> ctx[w].owner,
                                                   node |-> nodeOf[w], val |-> ctx[w].val]}
                        /\ msgs' = msgs \cup Send({TaskReplyMsg(w[1], ctx[w].owner, w, nodeOf[w], "")})
                /\ lastAction' = Step("WorkerFinishTask", w, w[1], NoNode, NoMsg)
                /\ UNCHANGED <<up, crashes, status, nodeOf, got, table, announced, announcedNodes>>

            \* Ownership
            WorkerFinishTask(a) ==
                LET e == ex[a]
                    n == AddrNode(a)
                    orphan == e.o \in known[a].p \/ e.o \in nknown[n].p
                    actor == Kind[e.x] = "actor"
                    B == AfterTask(a, e)
                    E == [z \in Objects |-> IF ent[z].owner = Cur(a) THEN [ent[z] EXCEPT !.local = 0] ELSE ent[z]]
                    next == IF actor THEN [IdleExec EXCEPT !.x = e.x, !.o = e.o, !.att = e.att, !.phase = "host"]
                            ELSE IdleExec
                    settle == Settle(a, E, msgs \cup Answered(a, B)
                                           \cup (IF orphan THEN {}
                                                 ELSE {TaskReplyMsg(e.x, e.o, Cur(a), IF actor THEN NoNode ELSE n, e.att, "", Report(e, B))}),
                                 why, next)
                IN
                /\ a # Driver
                /\ Running(a)
                /\ e.pc > Len(Body[e.x])
                /\ ex' = [ex EXCEPT ![a] = next]
                /\ brw' = [brw EXCEPT ![a] = Released(B)]
                /\ copies' = copies \cup (IF orphan \/ actor THEN {} ELSE {[x |-> e.x, o |-> e.o, n |-> n, val |-> e.val]})
                /\ actorLog' = IF actor THEN [actorLog EXCEPT ![e.x].host = Cur(a)] ELSE actorLog
                /\ settle
                /\ lastAction' = Step("WorkerFinishTask", a, e.x, NoNode, NoMsg)
                /\ UNCHANGED <<chan, envVars, headVars, pool, starting, leases, nknown, known, got, made>>

            \* Ownership
            ActorFinishCall(a) ==
                LET e == ex[a]
                    c == e.cur
                    n == AddrNode(a)
                    nxt == IF e.q = <<>> THEN NoCall ELSE Head(e.q)
                IN
                /\ IsUp(Cur(a))
                /\ e.phase = "host"
                /\ c # NoCall
                /\ ex' = [ex EXCEPT ![a].cur = nxt, ![a].q = IF @ = <<>> THEN @ ELSE Tail(@)]
                /\ actorLog' = IF nxt = NoCall THEN actorLog ELSE [actorLog EXCEPT ![e.x].ran = Append(@, nxt.x)]
                \* (a call's value is its lineage: the call alone, it takes no arguments)
                /\ copies' = copies \cup {[x |-> c.x, o |-> c.o, n |-> n, val |-> {c.x}]}
                /\ msgs' = msgs \cup {TaskReplyMsg(c.x, c.o, Cur(a), n, c.att, "", {})}
                /\ lastAction' = Step("ActorFinishCall", a, c.x, NoNode, NoMsg)
                /\ UNCHANGED <<chan, envVars, headVars, pool, starting, leases, nknown, ent, known, brw, got, made, why>>

            \* OwnerRecovery
            WorkerFinish(w, x) ==
                /\ w \in up
                /\ \E r \in run[w] :
                      /\ r.x = x
                      /\ run' = [run EXCEPT ![w] = @ \ {r}]
                      /\ copies' = IF Inline[x] THEN copies
                                   ELSE copies \cup {[x |-> x, n |-> w, o |-> r.o, ep |-> r.ep, val |-> r.val]}
                      /\ msgs' = msgs \cup Send({TaskReplyMsg(x, r.o, r.ep, w, "", IF Inline[x] THEN r.val ELSE {})})
                      /\ fin' = [fin EXCEPT ![w] = @ \cup {<<x, r.src[1], r.src[2], r.att>>}]
                /\ made' = IF why[x] = "" THEN made \cup {x} ELSE made
                /\ lastAction' = Step("WorkerFinish", w, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, par, pb, got, created, why, odied>>

            \* OwnerRecovery
            ParentFinish(p) ==
                /\ p \in up
                /\ pb[p].st = "running"
                /\ pb[p].pc > Len(Body)
                /\ pb' = [pb EXCEPT ![p].st = "done"]
                /\ ent' = [ent EXCEPT ![p] = [x \in Objects |-> [@[x] EXCEPT !.local = FALSE]]]
                /\ msgs' = msgs \cup Send({ParentDoneMsg(p, pb[p].att)})
                /\ lastAction' = Step("ParentFinish", p, NoObj, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, got, created, made, why, odied>>

        Implementation:

        The task returned: the reply carries the value (or where it is
        stored), and reports which argument refs this worker still borrows
        together with the borrowers it created for them.
        """
        r = self.running.pop(task_id, None)
        if r is None:
            return []
        if r.blocked or r.waiting_arg:
            self.blocked_tasks -= 1
        self._remember_finished(r.key)
        spec = r.spec
        fx: list[Effect] = []
        if r.cancelled and error is None:
            error = ErrorInfo(kind="cancelled", message=f"task {task_id} was cancelled")
        refs_in_value: tuple[RefInfo, ...] = ()
        lent: list[str] = []
        if value is not None and error is None:
            refs_in_value = value.refs
            counted, lent = self.return_ref_in_value(spec, refs_in_value)
            fx += counted
            # Held through the report below, which may let go of the task's
            # own hold; lend() holds them from then on.
            self.refs.hold_for_lend(lent)
        for i in sorted(r.pending):
            fx += self.refs.cancel_waiter(Waiter("arg", (task_id, i)))
        for oid in r.fetched:
            fx += self.refs.release_ref(oid)
        borrowed, more = self.refs.report_task_borrows(r.arg_refs, spec.owner)
        fx += more
        if spec.kind == "actor_create" and error is None:
            self.actor_id = spec.return_id
            self.calls_in_order = calls_in_order
            value = None
        if self.actor_busy == task_id:
            self.actor_busy = None
        owner_alive = spec.owner not in self.worker.dead_workers
        if owner_alive:
            reply = self._reply(spec, r.lease_id, r.attempt, value=value if error is None else None, error=error, refs=refs_in_value, borrowed=tuple(borrowed), epoch=r.epoch)
            if reply.value is not None and reply.value.size > self.worker.config.inline_threshold:
                # Large values stay on this node; the store tells the owner once pinned.
                stored = attrs.evolve(reply, value=None, location=self.worker.node)
                sends = [Send(self.worker.node, PutObject(object_id=spec.return_id, owner=spec.owner, value=reply.value, reply=stored))]
            else:
                sends = [Send(spec.owner, reply)]
            fx += self.refs.lend(spec.return_id, lent, spec.owner, lambda: self._send_reply(sends, refs_in_value))
        fx += self.refs.unhold_for_lend(lent)
        fx += self._start_next()
        fx += self._update_lent()
        return fx

    def _send_reply(self, sends: list[Effect], refs_in_value: tuple[RefInfo, ...]) -> list[Effect]:
        submitter = self.worker.submitter
        unlogged = submitter.unlogged_among(info.object_id for info in refs_in_value) if submitter.logging_objects else set()
        if unlogged:
            # An async task returned a recoverable object of ours the head
            # has not logged yet: its caller would hold what no new owner
            # knows of (OwnerRecovery!ParentMake writes before sharing).
            self.replies_awaiting_log.append((unlogged, sends))
            return []
        return sends

    def log_written(self, object_id: str) -> list[Effect]:
        """The head logged our ``object_id``: send the replies that waited
        only for it, in the order they were made."""
        fx: list[Effect] = []
        waiting = []
        for unlogged, sends in self.replies_awaiting_log:
            unlogged.discard(object_id)
            if unlogged:
                waiting.append((unlogged, sends))
            else:
                fx += sends
        self.replies_awaiting_log = waiting
        return fx

    def _remember_finished(self, key: PushKey) -> None:
        if key in self._finished_set:
            return
        self._finished.append(key)
        self._finished_set.add(key)
        if len(self._finished) > _FINISHED_KEPT:
            self._finished_set.discard(self._finished.popleft())

    def _reply(self, spec: TaskSpec, lease_id: str | None, attempt: int, **fields: Any) -> TaskReply:
        return TaskReply(
            task_id=spec.task_id,
            return_id=spec.return_id,
            attempt=attempt,
            worker=self.worker.address,
            lease_id=lease_id,
            **fields,
        )

    def return_ref_in_value(self, spec: TaskSpec, refs: tuple[RefInfo, ...]) -> tuple[list[Effect], list[str]]:
        r"""Spec: RefCounting!WorkerReturnRefInValue

            \* RefCounting
            WorkerReturnRefInValue(w, p) ==
                /\ FinishTask(w, p, TRUE)
                /\ lastAction' = Act("WorkerReturnRefInValue", [w |-> w, p |-> p])
                /\ UNCHANGED <<local, submitted, contained, waiting, borrowers,
                               removeWaits, tasksLeft, freed, passedOn, serveVars>>

        Implementation:

        The returned value contains references: the caller, owner of the
        returned object, becomes a borrower of each (via that object), so
        they outlive this task. Those we own we count now; those we borrow
        (returned, not the caller's own) their owners count before the
        reply leaves (``lend``). Answers the counted effects and the
        borrowed refs to lend.
        """
        counted: list[Effect] = []
        lent: list[str] = []
        # A ref the caller passed to this task it counts itself (a
        # submitted-task ref until the reply, then contained-in) and reports
        # up its own chain; registered here too, it would reach the owner a
        # second time.
        passed = {a.ref.object_id for a in spec.args if a.ref is not None}
        passed |= {r.object_id for a in spec.args if a.value is not None for r in a.value.refs}
        for info in refs:
            ref = self.refs.get_ref(info.object_id)
            if ref is None or info.object_id == spec.return_id or info.object_id in passed:
                continue
            if ref.owned:
                counted += self.refs._add_borrowers(ref, [Borrower(address=spec.owner, via=spec.return_id)])
            else:
                lent.append(ref.object_id)
        return counted, lent

    def _cpu_taken(self) -> bool:
        """Whether tasks hold this worker's CPU (started and not blocked in a get)."""
        holding = sum(1 for r in self.running.values() if r.started and not r.blocked and r.spec.kind == "task")
        return holding >= max(1, self.worker.config.tasks_at_once_per_worker)

    def _start_next(self) -> list[Effect]:
        """Start what waited for the actor or for the CPU, now that one is free."""
        while self.actor_busy is None and self.actor_queue:
            task_id = self.actor_queue.popleft()
            self._actor_queued.discard(task_id)
            r = self.running.get(task_id)
            if r is not None:
                return self._maybe_start(r)
        while self.task_queue and not self._cpu_taken():
            r = self.running.get(self.task_queue.popleft())
            if r is not None:
                return self._maybe_start(r)
        return []

    def cancel(self, msg: CancelTask) -> list[Effect]:
        r"""Spec: Ownership!ActorReceiveCancel

            \* Ownership
            ActorReceiveCancel(r) ==
                LET h == Head(chan[r])
                    a == h.w[1]
                    e == ex[a]
                    c == [x |-> h.x, o |-> h.o, att |-> h.att]
                    queued == e.phase = "host" /\ e.x = r /\ c \in Range(e.q)
                IN
                /\ r \in Actors
                /\ chan[r] # <<>>
                /\ IsUp(h.w)
                /\ h.cancel
                /\ chan' = [chan EXCEPT ![r] = Tail(@)]
                /\ IF queued
                   THEN /\ ex' = [ex EXCEPT ![a].q = SelectSeq(@, LAMBDA qc : qc # c)]
                        /\ msgs' = msgs \cup {TaskReplyMsg(h.x, h.o, h.w, NoNode, h.att, "Cancelled", {})}
                   ELSE UNCHANGED <<ex, msgs>>
                /\ lastAction' = Step("ActorReceiveCancel", a, h.x, NoNode, NoMsg)
                /\ UNCHANGED <<actorLog, envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

        Implementation:

        The owner cancelled a task: stop it, or answer at once if it has
        not started (an actor's call still queued here is dropped).
        """
        r = self.running.get(msg.task_id)
        if r is None:
            return []
        r.cancelled = True
        if r.started:
            return [CancelExecution(task_id=msg.task_id)]
        self._unqueue(msg.task_id)
        return self.finish_task(msg.task_id, error=ErrorInfo(kind="cancelled", message=f"task {msg.task_id} was cancelled"))

    def _unqueue(self, task_id: str) -> None:
        if task_id in self._actor_queued:
            self.actor_queue.remove(task_id)
            self._actor_queued.discard(task_id)
        if task_id in self.task_queue:
            self.task_queue.remove(task_id)

    def blocked(self, task_id: str, blocked: bool) -> list[Effect]:
        r"""Spec: Ownership!WorkerBlockInGet

            \* Ownership
            WorkerBlockInGet(a) ==
                LET y == StepObj(a)
                    o == IF ent[y].owner = Cur(a) THEN Cur(a) ELSE brw[a][y].owner
                IN
                /\ a # Driver
                /\ AtStep(a, "get")
                /\ ~ex[a].lent
                /\ ~(ent[y].owner = o /\ ent[y].obj \in {"ready", "failed"})
                /\ ex' = [ex EXCEPT ![a].lent = TRUE]
                /\ msgs' = msgs \cup {WorkerBlockedMsg(Cur(a))}
                /\ lastAction' = Step("WorkerBlockInGet", a, y, NoNode, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

        Implementation:

        A task waits on a get (or stops waiting): lend or take back its CPU.
        """
        r = self.running.get(task_id)
        if r is None or r.blocked == blocked or r.lease_id is None:
            return []
        r.blocked = blocked
        self.blocked_tasks += 1 if blocked else -1
        # A task pipelined behind this one takes the CPU first; only a worker
        # whose every started task waits lends it to the node.
        fx = self._start_next() if blocked else []
        return fx + self._update_lent()

    def _update_lent(self) -> list[Effect]:
        """Tell the node when this worker's CPU becomes free to lend, or is taken back.

        The node counts lent CPU per lease, so the worker says it once per
        change of the whole worker's state, not once per blocked task: with
        two tasks on the lease, one unblocking must not take back a CPU the
        other still lends, nor the other's block lend it twice.
        """
        if not self.blocked_tasks and self.lent_lease is None:
            return []
        waiting = [
            r.lease_id
            for r in self.running.values()
            if r.lease_id is not None and ((r.started and r.blocked) or r.waiting_arg)
        ]
        lend = waiting[0] if waiting and not self._cpu_taken() else None
        if lend == self.lent_lease:
            return []
        fx: list[Effect] = []
        if self.lent_lease is not None:
            fx.append(Send(self.worker.node, WorkerUnblocked(worker=self.worker.address, lease_id=self.lent_lease)))
        if lend is not None:
            fx.append(Send(self.worker.node, WorkerBlocked(worker=self.worker.address, lease_id=lend)))
        self.lent_lease = lend
        return fx

    def stale_push(self, msg: PushTask) -> bool:
        r"""Spec: OwnerRecovery!WorkerStart

            \* OwnerRecovery
            WorkerStart(w, m) ==
                /\ m \in msgs
                /\ m.type = "PushTask"
                /\ m.dst = w
                /\ w \in up
                /\ LET x == m.x
                       t == Target(w, x, m.o, m.ep)
                       failedArgs == {y \in Args[x] : LiveCopies(y, Procs) = {} /\ m.o \in up /\ ArgSt(m.o, y) = "failed"}
                       drop == Stale(w, m) \/ <<x, m.o, m.ep, m.att>> \in fin[w]
                   IN \/ /\ drop
                         /\ msgs' = msgs \ {m}
                         /\ UNCHANGED run
                      \/ /\ ~drop
                         /\ failedArgs # {}
                         /\ msgs' = (msgs \ {m}) \cup Send({TaskReplyMsg(x, t.o, t.ep, w, "arg", {})})
                         /\ UNCHANGED run
                      \/ /\ ~drop
                         /\ \A y \in Args[x] : LiveCopies(y, Procs) # {}
                         /\ run' = [run EXCEPT ![w] = @ \cup
                                     {[x |-> x, o |-> t.o, ep |-> t.ep, src |-> <<m.o, m.ep>>, att |-> m.att,
                                       val |-> {x} \cup UNION {(CHOOSE c \in LiveCopies(y, Procs) : TRUE).val : y \in Args[x]}]}]
                         /\ msgs' = msgs \ {m}
                /\ lastAction' = Step("WorkerStart", w, m.x, m)
                /\ UNCHANGED <<fin, joined, up, crashes, declared, log, ent, brw, dk, mv, gst, copies, par, pb, got,
                               created, made, why, odied>>

        Implementation:

        A push of a recoverable task is stale when its object moved to a
        later epoch than the push's (the push of an owner declared dead
        that has not heard of its fence yet): it is dropped, so it never
        runs beside the new owner's rebuild. (A push whose owner we know
        dead is dropped before this.)
        """
        moved = self.worker.moved.get(msg.task.return_id)
        return moved is not None and moved[1] > msg.epoch

    def retarget(self, dead_workers: set[str]) -> None:
        """Objects moved to a new owner: the references our running tasks
        got in their arguments name it from now on."""
        for r in self.running.values():
            r.arg_refs = [self.worker.current(info) for info in r.arg_refs]

    def fate_share_tasks(self, dead_workers: set[str]) -> list[Effect]:
        """Running tasks that hold a reference whose owner died fail with OwnerDiedError.

        The task is a holder of the references it received (paper §4.3,
        fig. 11): it reports the failure to its (live) owner at once; its
        user code, if already running, is cancelled or left to finish unheard.
        """
        fx: list[Effect] = []
        for task_id in sorted(self.running):
            r = self.running.get(task_id)
            if r is None or r.spec.owner in dead_workers:
                continue
            dead = sorted({info.owner for info in r.arg_refs if info.owner in dead_workers})
            if not dead:
                continue
            if r.started:
                fx.append(CancelExecution(task_id=task_id))
            error = ErrorInfo(kind="owner_died", message=f"task {task_id} holds a reference owned by {dead[0]}, which died")
            fx += self.finish_task(task_id, error=error)
        return fx

    def handle_owner_death(self, dead_workers: set[str]) -> list[Effect]:
        """Tasks whose owner died are useless: stop them without a reply."""
        fx: list[Effect] = []
        for task_id in sorted(self.running):
            r = self.running[task_id]
            if r.spec.owner not in dead_workers:
                continue
            if r.started:
                fx.append(CancelExecution(task_id=task_id))
            del self.running[task_id]
            if r.blocked or r.waiting_arg:
                self.blocked_tasks -= 1
            self._remember_finished(r.key)
            self._unqueue(task_id)
            if self.actor_busy == task_id:
                self.actor_busy = None
            for i in sorted(r.pending):
                fx += self.refs.cancel_waiter(Waiter("arg", (task_id, i)))
            for oid in r.fetched:
                fx += self.refs.release_ref(oid)
            _, more = self.refs.report_task_borrows(r.arg_refs, r.spec.owner)
            fx += more
        fx += self._start_next()
        fx += self._update_lent()
        return fx
