"""The owner's side of the head's recovery log (spec/OwnerRecovery.tla).

An owner of recoverable objects writes to the head before it acts: the
object before its reference may leave or its task run (ParentMake), each
dispatch before the push (OwnerDispatch). These are the head's answers; a
re-executed parent whose object was taken over adopts it instead of making
a second one. The submitter sends the writes (TaskSubmitter.submit and its
dispatch); this class takes what comes back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .events import Effect, Logged, Send
from .messages import DispatchLogged, ErrorInfo, FreeObject, ObjectLogged
from .refcount import UNKNOWN, Reference
from .submitter import RUNNING

if TYPE_CHECKING:  # pragma: no cover
    from .submitter import TaskEntry, TaskSubmitter

__all__ = ["OwnerLog"]


class OwnerLog:
    """What the head answers to an owner's writes to the recovery log."""

    def __init__(self, submitter: TaskSubmitter) -> None:
        self.submitter = submitter

    def handle_object_logged(self, msg: ObjectLogged) -> list[Effect]:
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

        The head logged our recoverable object (a task's return, or a put):
        its reference may leave now, and its task may run. Refused (the head
        declared us dead), the object fails as a dead owner's would: this
        process is fenced and stops. Either way the tasks and actor calls
        that carry it, held until now, may leave.
        """
        return self._object_logged(msg) + self.submitter.log_written(msg.object_id)

    def _object_logged(self, msg: ObjectLogged) -> list[Effect]:
        ref = self.submitter.refs.get_ref(msg.object_id)
        if ref is None or not ref.owned or not ref.recoverable:
            return []
        fx: list[Effect] = [Logged(object_id=msg.object_id, ok=msg.ok)]
        task = self.submitter.tasks.get(ref.task_id) if ref.task_id is not None else None
        if not msg.ok:
            ref.recoverable = False
            error = ErrorInfo(kind="owner_died", message=f"the head refused to log object {msg.object_id}: its owner {self.submitter.address} was declared dead")
            if task is not None and task.logging:
                task.logging = False
                return fx + self.submitter._fail(task, error)
            return fx + self.submitter.refs.set_failed(ref, error)
        ref.epoch = msg.epoch
        if msg.adopted_from is not None and msg.adopted_from != self.submitter.address:
            return fx + self._adopt(ref, task, msg.adopted_from, msg.epoch)
        if task is not None and task.logging:
            task.logging = False
            fx += self.submitter._resolve_dependencies(task)
        return fx

    def _adopt(self, ref: Reference, task: TaskEntry | None, owner: str, epoch: int) -> list[Effect]:
        """We are a re-execution of the parent that made the object, and it
        was taken over meanwhile (the ids a task makes are its own, so the
        same): borrow it from its owner rather than make a second one. The
        head counts us as its adopter until we let go (ReleaseAdopted)."""
        fx: list[Effect] = []
        self.submitter.worker.moved[ref.object_id] = (owner, epoch)
        if task is not None:
            task.logging = False
            if self.submitter.tasks.get(task.spec.task_id) is task:
                del self.submitter.tasks[task.spec.task_id]
            if task.holding:
                task.holding = False
                fx += self.submitter.refs.release_submitted(task.held)
        for node in sorted(ref.locations):
            fx.append(Send(node, FreeObject(object_id=ref.object_id)))  # our put's copy: the object is the owner's
        fx += self.submitter.refs.unpin_lineage(ref)
        ref.owned, ref.owner, ref.recoverable, ref.adopted = False, owner, False, True
        ref.status, ref.task_id, ref.value, ref.error = UNKNOWN, None, None, None
        ref.locations.clear()
        fx += self.submitter.refs.check(ref.object_id)
        if ref.waiters and self.submitter.refs.get_ref(ref.object_id) is ref:
            fx += self.submitter.refs.fetch(ref)
        return fx

    def handle_dispatch_logged(self, msg: DispatchLogged) -> list[Effect]:
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

        The head logged the dispatch: push the task now. Refused, the push
        is never sent: the head declared us dead (our fence is on its way)
        or the object moved on.
        """
        ref = self.submitter.refs.get_ref(msg.object_id)
        task = self.submitter.tasks.get(ref.task_id) if ref is not None and ref.task_id is not None else None
        if task is None or task.dispatching is None or task.attempt != msg.attempt or task.state != RUNNING:
            return []
        push, task.dispatching = task.dispatching, None
        if not msg.ok:
            return []
        return [Send(task.location, push)] if task.location else []
