"""The ownership table and distributed reference counting (paper §4.2).

One :class:`Reference` per object this worker knows: the objects it owns
(the ownership table of DESIGN §2: lineage, value or locations, local refs,
submitted-task refs, borrowers, contained-in) and the objects it borrows
(owner address, local count, the sub-borrowers it created).

Counting is hierarchical, as in the paper and Ray:
- a task argument that carries a reference (``shared(x)``, or a ref inside
  a value) is a *submitted-task ref* at the caller; the executor becomes a
  borrower and, when the task ends, reports in its reply whether it still
  holds the ref and which borrowers it created itself;
- the caller merges that report: an owner adds the borrowers and sends each
  a WaitForRefRemoved; a borrower keeps them as its own sub-borrowers and
  reports them later, when it is asked;
- a borrower answers WaitForRefRemoved with RefRemoved once it no longer
  uses the ref, handing its sub-borrowers to the owner;
- a reference inside an object's value is held by that object
  (*contained-in*) for as long as the value exists; whoever receives the
  value (the caller for a returned value, any process served the value)
  is registered as a borrower of the inner reference, with ``via`` naming
  the outer object so that an early WaitForRefRemoved is not answered
  before the value arrives.
The owner frees an object when local refs, submitted-task refs, borrowers
and contained-in are all gone; the entry itself stays while a pending task
will produce it or another object's lineage may need it again.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import attrs

from .events import Effect, GetDone, Send
from .messages import (
    AddBorrower,
    AdoptersGone,
    Borrower,
    BorrowerAdded,
    BorrowInfo,
    BorrowerRegistered,
    DeleteObject,
    ErrorInfo,
    FreeObject,
    GetObject,
    LogObject,
    ObjectCopy,
    ObjectDeleted,
    ObjectPending,
    ObjectStored,
    ObjectValue,
    Payload,
    PullObject,
    RefInfo,
    RefRemoved,
    RegisterBorrower,
    ReleaseAdopted,
    WaitForRefRemoved,
)

if TYPE_CHECKING:  # pragma: no cover
    from .worker import WorkerCore

__all__ = ["Reference", "Waiter", "ReferenceCounter"]

# Owned objects: pending (its task runs), ready (value inline and/or copies
# at `locations`), lost (every copy gone, to be reconstructed), freed (out of
# scope, value dropped; the entry stays for lineage), failed (error).
# Borrowed objects: unknown (not fetched), ready (value cached), failed.
PENDING, READY, LOST, FREED, FAILED, UNKNOWN = "pending", "ready", "lost", "freed", "failed", "unknown"


@attrs.frozen
class Waiter:
    """Who waits for a value: an API call, a task argument, an actor call."""

    kind: str  # "api" | "located" (an API wait that fetches nothing) | "arg" | "actor"
    key: Any  # request id | (task_id, arg index) | actor id


@attrs.define(eq=False)
class Reference:
    object_id: str
    owner: str
    owned: bool
    kind: str = "object"  # or "actor"
    # -- counts (DESIGN §2) ------------------------------------------------
    local: int = 0  # Python ObjectRefs alive in this process
    submitted: int = 0  # pending tasks of ours that take it as an argument
    task_args: int = 0  # tasks executing here that got it inside an argument
    lineage: int = 0  # owned: tasks whose lineage names it (reconstruction)
    contained_in: set[str] = attrs.Factory(set)  # objects whose value holds it
    contains: set[str] = attrs.Factory(set)  # refs inside this object's value
    # owner: borrower -> asks outstanding (a plain dict: a Counter costs a
    # Python-level __init__ for every reference made, a measured 3 % of an
    # actor-call driver)
    borrowers: dict[str, int] = attrs.Factory(dict)
    sub_borrowers: list[Borrower] = attrs.Factory(list)  # borrower: to report upward
    owner_waiting: int = 0  # borrower: WaitForRefRemoved not yet answered
    # borrower: tasks here that got it from a caller other than its owner and
    # wait for the owner to count this worker (AddBorrower sent, no answer yet)
    registering: list[str] = attrs.Factory(list)
    # borrower: hand-overs of a value holding it (a get served, a task's
    # result) kept back until its owner counts the reader (RegisterBorrower
    # out); held meanwhile
    lending: int = 0
    # -- value ---------------------------------------------------------------
    status: str = PENDING
    task_id: str | None = None  # owned: the task that creates it (lineage)
    value: Payload | None = None  # inline value or cached copy
    locations: set[str] = attrs.Factory(set)  # nodes with a copy; an actor's worker
    error: ErrorInfo | None = None
    lineage_deps: tuple[str, ...] = ()  # owned args its lineage keeps
    # -- fetching ------------------------------------------------------------
    fetching: str | None = None  # "owner" or the node being pulled from
    # borrower: nodes found without a copy since the owner last answered
    # (dead, or a store without it), for the owner to write off (GetObject.bad)
    no_copy: tuple[str, ...] = ()
    waiters: list[Waiter] = attrs.Factory(list)
    remote_waiters: list[str] = attrs.Factory(list)  # owner: GetObject requesters
    # -- owner recovery ---------------------------------------------------------
    #: logged at the head (ours), or taken over (the new owner's): it outlives
    #: its owner; freed only once the head has dropped its log
    recoverable: bool = False
    #: the owner's epoch: 0 for the first owner, then one more per take-over
    epoch: int = 0
    #: a DeleteObject is out (or refused while an adopter holds it)
    deleting: bool = False
    #: borrowed by the re-execution of the parent that made it (the head
    #: counts us as its adopter until we let go: ReleaseAdopted)
    adopted: bool = False

    def in_scope(self) -> bool:
        """Referenced at all, as the owner counts it (value must be kept)."""
        return bool(
            self.local
            or self.submitted
            or self.task_args
            or self.contained_in
            or self.borrowers
            or self.waiters
        )

    def in_use(self) -> bool:
        """Used in this process, as a borrower counts it (sub-borrowers excluded)."""
        return bool(self.local or self.submitted or self.task_args or self.contained_in or self.waiters or self.lending)

    def snapshot(self) -> dict[str, Any]:
        return {
            "object_id": self.object_id,
            "owner": self.owner,
            "owned": self.owned,
            "kind": self.kind,
            "local": self.local,
            "submitted": self.submitted,
            "task_args": self.task_args,
            "lineage": self.lineage,
            "contained_in": sorted(self.contained_in),
            "contains": sorted(self.contains),
            "borrowers": dict(sorted(self.borrowers.items())),
            "sub_borrowers": [(b.address, b.via) for b in self.sub_borrowers],
            "owner_waiting": self.owner_waiting,
            "registering": list(self.registering),
            "lending": self.lending,
            "status": self.status,
            "task_id": self.task_id,
            "has_value": self.value is not None,
            "size": self.value.size if self.value is not None else None,
            "locations": sorted(self.locations),
            "error": self.error.kind if self.error else None,
            "fetching": self.fetching,
        }


def _err(kind: str, message: str) -> ErrorInfo:
    return ErrorInfo(kind=kind, message=message)


@attrs.define(eq=False)
class Lend:
    """A value holding refs we borrow, kept back from its reader until
    their owners count the reader (RefCounting!HolderServeContents)."""

    reader: str
    object_ids: tuple[str, ...]  # the borrowed refs inside, each held (Reference.lending)
    owners: dict[str, tuple[str, ...]]  # owner -> its objects, until it answers
    then: Callable[[], list[Effect]]  # the hand-over itself (the reply to send)


class ReferenceCounter:
    """The worker's ownership table and borrowed references."""

    def __init__(self, worker: WorkerCore) -> None:
        self.worker = worker
        self.table: dict[str, Reference] = {}
        # Objects whose lineage pin went while pins are being released (see
        # _release_lineage); None when none are.
        self._unpinned: collections.deque[str] | None = None
        # Hand-overs waiting for owners to count their readers, by number.
        self.lends: dict[int, Lend] = {}
        self._next_lend = 0

    # -- small helpers -------------------------------------------------------
    @property
    def address(self) -> str:
        return self.worker.address

    def get_ref(self, object_id: str) -> Reference | None:
        return self.table.get(object_id)

    def owned(self) -> list[Reference]:
        return [r for r in self.table.values() if r.owned]

    def borrowed(self) -> list[Reference]:
        return [r for r in self.table.values() if not r.owned]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {oid: ref.snapshot() for oid, ref in sorted(self.table.items())}

    def add_owned(self, object_id: str, *, kind: str = "object", task_id: str | None = None) -> Reference:
        if object_id in self.table:
            raise ValueError(f"object {object_id} already in the ownership table")
        ref = Reference(object_id=object_id, owner=self.address, owned=True, kind=kind, task_id=task_id)
        self.table[object_id] = ref
        return ref

    def _borrowed_entry(self, info: RefInfo) -> Reference:
        ref = self.table.get(info.object_id)
        if ref is None:
            info = self.worker.current(info)
            ref = Reference(
                object_id=info.object_id,
                owner=info.owner,
                owned=info.owner == self.address,
                kind=info.kind,
                status=UNKNOWN,
            )
            if ref.owned:
                # Our own object came back after we forgot it: it is gone.
                ref.status = FAILED
                ref.error = _err("object_lost", f"object {info.object_id} was already freed by its owner")
            self.table[info.object_id] = ref
        return ref

    # -- local references (API) -----------------------------------------------
    def add_local_ref(self, object_id: str, owner: str, kind: str = "object") -> list[Effect]:
        r"""Spec: RefCounting!BorrowerAddLocalRef

            \* RefCounting
            BorrowerAddLocalRef(b) ==
                /\ Running(b) > 0
                /\ local[b] + getting[b] < MaxLocal
                /\ local' = [local EXCEPT ![b] = @ + 1]
                /\ lastAction' = Act("BorrowerAddLocalRef", [b |-> b])
                /\ UNCHANGED <<submitted, contained, running, waiting, borrowers, subBorrowers,
                               removeWaits, tasksLeft, freed, msgs, passedOn, serveVars>>

        Implementation:

        A Python ref came to life here (an API call, or a value unpickled by
        a task that may keep it beyond the task's end: actor state, globals).
        """
        ref = self.table.get(object_id)
        if ref is None:
            owner = self.worker.owner_of(object_id, owner)
            ref = self._borrowed_entry(RefInfo(object_id=object_id, owner=owner, kind=kind))
            if owner in self.worker.dead_workers and not ref.owned:
                ref.status, ref.error = FAILED, _owner_died(object_id, owner)
        ref.local += 1
        return []

    def hold(self, info: RefInfo) -> Reference:
        """Count one more local holder (an executing task's argument)."""
        ref = self.table.get(info.object_id)
        if ref is None:
            ref = self._borrowed_entry(info)
        ref.local += 1
        return ref

    def release_ref(self, object_id: str) -> list[Effect]:
        r"""Spec: RefCounting!HolderReleaseRef
        Spec: OwnerRecovery!HolderRelease
        Spec: Ownership!BorrowerRelease
        Spec: Ownership!HolderRelease

            \* RefCounting
            HolderReleaseRef(p) ==
                /\ local[p] > 0
                /\ local' = [local EXCEPT ![p] = @ - 1]
                /\ lastAction' = Act("HolderReleaseRef", [p |-> p])
                /\ UNCHANGED <<submitted, contained, running, waiting, borrowers, subBorrowers,
                               removeWaits, tasksLeft, freed, msgs, passedOn, serveVars>>

            \* OwnerRecovery
            HolderRelease(h, x) ==
                /\ h \in up
                /\ h \in HoldersOf(x)
                /\ brw[h][x].held
                /\ gst[h][x] \in {"value", "error"}
                /\ ~Lending(h, x)
                /\ brw' = [brw EXCEPT ![h][x] = NoBorrow]
                /\ gst' = [gst EXCEPT ![h][x] = "released"]
                /\ msgs' = msgs \cup Send({RefRemovedMsg(x, brw[h][x].o, brw[h][x].ep, h)})
                /\ lastAction' = Step("HolderRelease", h, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, dk, mv, run, fin, copies, par, pb, got,
                               created, made, why, odied>>

            \* Ownership
            BorrowerRelease(a, y) ==
                LET B == [brw[a] EXCEPT ![y].local = @ - 1] IN
                /\ IsUp(Cur(a))
                /\ ex[a].phase = "idle"
                /\ brw[a][y].local > 0
                /\ brw' = [brw EXCEPT ![a] = Released(B)]
                /\ msgs' = msgs \cup Answered(a, B)
                /\ lastAction' = Step("BorrowerRelease", a, y, NoNode, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, ex, known, got, made, why>>

            \* Ownership
            HolderRelease(a, x) ==
                LET e == [ex[a] EXCEPT !.pc = @ + 1]
                    settle == Settle(a, [ent EXCEPT ![x].local = @ - 1], msgs, why, e)
                IN
                /\ AtStep(a, "release")
                /\ StepObj(a) = x
                /\ ent[x].owner = Cur(a)
                /\ ent[x].local > 0
                /\ ex' = [ex EXCEPT ![a] = e]
                /\ settle
                /\ lastAction' = Step("HolderRelease", a, x, NoNode, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, known, brw, got, made>>

        Implementation:

        A Python ref was dropped; when nothing else holds the object the
        owner frees it, a borrower answers its owner.
        """
        ref = self.table.get(object_id)
        if ref is None or ref.local <= 0:
            return []
        ref.local -= 1
        return self.check(object_id)

    # -- submitting tasks that carry references ---------------------------------
    def submit_with_ref(self, object_ids: list[str]) -> list[Effect]:
        r"""Spec: RefCounting!HolderSubmitWithRef
        Spec: OwnerRecovery!ParentShare
        Spec: OwnerRecovery!HolderPass

            \* RefCounting
            HolderSubmitWithRef(p, c) ==
                /\ c \in (IF p = Owner THEN OwnerWorkers ELSE Borrowers \ {p})
                /\ HasHandle(p)
                /\ tasksLeft > 0
                /\ submitted' = [submitted EXCEPT ![p] = @ + 1]
                /\ msgs' = Put(msgs, {PushTaskMsg(p, c)})
                /\ tasksLeft' = tasksLeft - 1
                /\ passedOn' = (passedOn \/ p # Owner)
                /\ lastAction' = Act("HolderSubmitWithRef", [p |-> p, c |-> c])
                /\ UNCHANGED <<local, contained, running, waiting, borrowers, subBorrowers,
                               removeWaits, freed, serveVars>>

            \* OwnerRecovery
            ParentShare(p, x) ==
                /\ AtOp(p, "share", x)
                /\ pb' = Next1(p)
                /\ IF ent[p][x].st # "none" /\ (pb[p].att = 1 \/ Recoverable[x])
                   THEN /\ ent' = [ent EXCEPT ![p][x].borrowers = @ \cup (Holders[x] \ dk[p])]
                        /\ msgs' = msgs \cup Send({ShareMsg(x, p, ent[p][x].ep, h) : h \in Holders[x] \ dk[p]})
                   ELSE UNCHANGED <<ent, msgs>>
                /\ lastAction' = Step("ParentShare", p, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, got,
                               created, made, why, odied>>

            \* OwnerRecovery
            HolderPass(h, x, j) ==
                /\ <<x, h, j>> \in Relays
                /\ h \in up
                /\ brw[h][x].held
                /\ j \in up
                /\ ~brw[j][x].held
                /\ gst[j][x] = "none"
                /\ <<j, x>> \notin odied
                /\ ~\E m \in msgs : m.type = "Pass" /\ m.x = x /\ m.dst = j
                /\ msgs' = msgs \cup Send({PassMsg(x, brw[h][x].o, brw[h][x].ep, h, j)})
                /\ lastAction' = Step("HolderPass", h, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                               created, made, why, odied>>

        Implementation:

        The caller (owner or borrower) passes references to a task: each
        counts as a submitted-task ref until the task replies.
        """
        for oid in object_ids:
            ref = self.table.get(oid)
            if ref is not None:
                ref.submitted += 1
        return []

    def release_submitted(self, object_ids: list[str]) -> list[Effect]:
        fx: list[Effect] = []
        for oid in object_ids:
            ref = self.table.get(oid)
            if ref is not None and ref.submitted > 0:
                ref.submitted -= 1
        for oid in dict.fromkeys(object_ids):
            fx += self.check(oid)
        return fx

    def receive_ref(self, refs: list[RefInfo], caller: str, task_id: str | None = None) -> list[Effect]:
        r"""Spec: RefCounting!BorrowerReceiveRef
        Spec: OwnerRecovery!HolderReceive
        Spec: OwnerRecovery!HolderReceivePass

            \* RefCounting
            BorrowerReceiveRef(b, p) ==
                /\ PushTaskMsg(p, b) \in DOMAIN msgs
                /\ IF p = Owner
                   THEN /\ running' = [running EXCEPT ![b][p] = @ + 1]
                        /\ msgs' = Take(msgs, PushTaskMsg(p, b))
                        /\ UNCHANGED waiting
                   ELSE /\ waiting' = [waiting EXCEPT ![b][p] = @ + 1]
                        /\ msgs' = IF Waiting(b) > 0
                                   THEN Take(msgs, PushTaskMsg(p, b))
                                   ELSE Put(Take(msgs, PushTaskMsg(p, b)), {AddBorrowerMsg(b)})
                        /\ UNCHANGED running
                /\ lastAction' = Act("BorrowerReceiveRef", [b |-> b, p |-> p])
                /\ UNCHANGED <<local, submitted, contained, borrowers, subBorrowers,
                               removeWaits, tasksLeft, freed, passedOn, serveVars>>

            \* OwnerRecovery
            HolderReceive(h, m) ==
                /\ m \in msgs
                /\ m.type = "Share"
                /\ m.dst = h
                /\ h \in up
                /\ msgs' = msgs \ {m}
                /\ brw' = IF m.o \in dk[h] THEN brw ELSE [brw EXCEPT ![h][m.x] = [o |-> m.o, ep |-> m.ep, held |-> TRUE]]
                /\ gst' = IF m.o \notin dk[h] /\ gst[h][m.x] = "released" THEN [gst EXCEPT ![h][m.x] = "none"] ELSE gst
                /\ lastAction' = Step("HolderReceive", h, m.x, m)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, dk, mv, run, fin, copies, par, pb, got,
                               created, made, why, odied>>

            \* OwnerRecovery
            HolderReceivePass(j, m) ==
                /\ m \in msgs
                /\ m.type = "Pass"
                /\ m.dst = j
                /\ j \in up
                /\ LET t == Target(j, m.x, m.o, m.ep) IN
                   IF t.o \in dk[j]
                   THEN /\ odied' = odied \cup {<<j, m.x>>}
                        /\ gst' = [gst EXCEPT ![j][m.x] = "released"]
                        /\ msgs' = msgs \ {m}
                        /\ UNCHANGED brw
                   ELSE /\ brw' = [brw EXCEPT ![j][m.x] = [o |-> t.o, ep |-> t.ep, held |-> TRUE]]
                        /\ msgs' = (msgs \ {m}) \cup Send({AddBorrowerMsg(m.x, t.o, t.ep, j, CHOOSE l \in m.to : TRUE)})
                        /\ UNCHANGED <<gst, odied>>
                /\ lastAction' = Step("HolderReceivePass", j, m.x, m)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, dk, mv, run, fin, copies, par, pb, got,
                               created, made, why>>

        Implementation:

        An executor gets references inside a task's arguments: it becomes a
        borrower until the task ends (then it reports to the caller). A ref
        whose owner is not the caller (a borrower lent it) makes the task
        (``task_id``) wait until the owner counts this worker: its count must
        not depend on the lender, which may die before it reports us. One
        AddBorrower per object is out at a time; later tasks join it. See
        :meth:`registrations` for what the task waits for.
        """
        asks: dict[str, list[str]] = {}
        for info in refs:
            ref = self._borrowed_entry(info)
            ref.task_args += 1
            if (
                task_id is None
                or ref.owned
                or ref.owner == caller
                or ref.status == FAILED
                or ref.owner in self.worker.dead_workers
                or task_id in ref.registering
            ):
                continue
            if not ref.registering:
                asks.setdefault(ref.owner, []).append(ref.object_id)
            ref.registering.append(task_id)
        return [Send(owner, AddBorrower(object_ids=tuple(ids), owner=owner, borrower=self.address)) for owner, ids in asks.items()]

    def registrations(self, refs: list[RefInfo], task_id: str) -> set[str]:
        """The objects among ``refs`` whose owner has yet to count us for ``task_id``."""
        out: set[str] = set()
        for info in refs:
            ref = self.table.get(info.object_id)
            if ref is not None and task_id in ref.registering:
                out.add(info.object_id)
        return out

    def handle_add_borrower(self, msg: AddBorrower) -> list[Effect]:
        r"""Spec: RefCounting!OwnerHandleAddBorrower
        Spec: Ownership!OwnerHandleAddBorrower
        Spec: OwnerRecovery!OwnerHandleAddBorrower

            \* RefCounting
            OwnerHandleAddBorrower(o, m) ==
                /\ o = Owner
                /\ m \in DOMAIN msgs
                /\ m.type = "AddBorrower"
                /\ IF freed
                   THEN /\ msgs' = Put(Take(msgs, m), {BorrowerAddedMsg(m.borrower, FALSE)})
                        /\ UNCHANGED borrowers
                   ELSE /\ borrowers' = [borrowers EXCEPT ![m.borrower] = @ + 1]
                        /\ msgs' = Put(Take(msgs, m), {BorrowerAddedMsg(m.borrower, TRUE)})
                /\ lastAction' = Act("OwnerHandleAddBorrower", [o |-> o, m |-> m])
                /\ UNCHANGED <<local, submitted, contained, running, waiting, subBorrowers,
                               removeWaits, tasksLeft, freed, passedOn, serveVars>>

            \* Ownership
            OwnerHandleAddBorrower(a, m) ==
                LET y == m.x
                    ok == ent[y].owner = Cur(a) /\ ent[y].obj \in {"pending", "ready", "lost", "failed"}
                IN
                /\ m \in msgs
                /\ m.type = "AddBorrower"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ ent' = IF ok THEN [ent EXCEPT ![y].borrowers = @ \cup {m.w}] ELSE ent
                /\ msgs' = (msgs \ {m}) \cup {BorrowerAddedMsg(y, m.o, m.w, ok)}
                /\ lastAction' = Step("OwnerHandleAddBorrower", a, y, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made, why>>

            \* OwnerRecovery
            OwnerHandleAddBorrower(p, m) ==
                /\ m \in msgs
                /\ m.type = "AddBorrower"
                /\ m.dst = p
                /\ p \in up
                /\ HeardOf(p, m)
                /\ msgs' = msgs \ {m}
                /\ ent' = IF ent[p][m.x].ep = m.ep /\ ent[p][m.x].st # "none"
                          THEN [ent EXCEPT ![p][m.x].borrowers = @ \cup {m.w}]
                          ELSE ent
                /\ lastAction' = Step("OwnerHandleAddBorrower", p, m.x, m)
                /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                               created, made, why, odied>>

        Implementation:

        A borrower of a borrower asks to be counted. While an object is
        not freed the owner counts it as a reported borrower, one more
        request outstanding, and says so: the answer is that request (it
        stands for the WaitForRefRemoved a reported borrower gets, one
        message per object fewer). A freed (or forgotten) object is
        refused, and the borrower's task fails with ObjectLostError.
        """
        refused: list[str] = []
        b = msg.borrower
        for object_id in msg.object_ids:
            ref = self.table.get(object_id)
            if ref is None or not ref.owned or ref.status == FREED or b in self.worker.dead_workers or b == self.address:
                refused.append(object_id)
            else:
                ref.borrowers[b] = ref.borrowers.get(b, 0) + 1
        return [Send(b, BorrowerAdded(object_ids=msg.object_ids, owner=self.address, borrower=b, refused=tuple(refused)))]

    def handle_borrower_added(self, msg: BorrowerAdded) -> list[Effect]:
        r"""Spec: RefCounting!BorrowerHandleBorrowerAdded
        Spec: Ownership!WorkerHandleBorrowerAdded

            \* RefCounting
            BorrowerHandleBorrowerAdded(b, m) ==
                /\ m \in DOMAIN msgs
                /\ m.type = "BorrowerAdded"
                /\ m.borrower = b
                /\ m.ok
                /\ running' = [running EXCEPT ![b] = [p \in Procs |-> @[p] + waiting[b][p]]]
                /\ waiting' = [waiting EXCEPT ![b] = [p \in Procs |-> 0]]
                /\ removeWaits' = [removeWaits EXCEPT ![b] = @ + 1]
                /\ msgs' = Take(msgs, m)
                /\ lastAction' = Act("BorrowerHandleBorrowerAdded", [b |-> b, m |-> m])
                /\ UNCHANGED <<local, submitted, contained, borrowers, subBorrowers,
                               tasksLeft, freed, passedOn, serveVars>>

            \* Ownership
            WorkerHandleBorrowerAdded(a, m) ==
                LET y == m.x
                    e == ex[a]
                    done == (\A z \in Args[e.x] : e.arg[z] = "have") /\ e.regs = {y}
                IN
                /\ m \in msgs
                /\ m.type = "BorrowerAdded"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ \/ /\ m.have
                      \* BorrowerAdded is also the owner's WaitForRefRemoved: answered
                      \* at once by a worker that no longer uses y
                      /\ LET mine == brw[a][y].owner = m.o /\ InUse(brw[a][y])
                             answer == IF mine THEN {} ELSE {RefRemovedMsg(y, m.o, Cur(a))}
                         IN
                         /\ brw' = IF mine THEN [brw EXCEPT ![a][y].reg = "yes", ![a][y].waits = @ + 1] ELSE brw
                         /\ IF e.phase = "fetch" /\ y \in e.regs
                            THEN /\ ex' = [ex EXCEPT ![a].regs = @ \ {y},
                                                     ![a].phase = IF done THEN "run" ELSE "fetch",
                                                     ![a].lent = IF done THEN FALSE ELSE @]
                                 /\ msgs' = (msgs \ {m}) \cup answer \cup (IF done THEN Unblock(a, e) ELSE {})
                            ELSE /\ msgs' = (msgs \ {m}) \cup answer
                                 /\ UNCHANGED ex
                   \/ /\ ~m.have
                      /\ e.phase = "fetch" /\ y \in e.regs
                      /\ FailTask(a, "ObjectLost", msgs \ {m})
                   \/ /\ ~m.have
                      /\ ~(e.phase = "fetch" /\ y \in e.regs)
                      /\ msgs' = msgs \ {m}
                      /\ UNCHANGED <<ex, brw>>
                /\ lastAction' = Step("WorkerHandleBorrowerAdded", a, y, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, got, made, why>>

        Implementation:

        The owner answered our AddBorrower: the tasks that waited for it may
        run (once their other arguments are here), or fail if it refused.
        Each object it counted is also its request to hear when we let go,
        registered (or answered at once) as a WaitForRefRemoved is.
        """
        fx: list[Effect] = []
        refused = set(msg.refused)
        for object_id in msg.object_ids:
            if object_id not in refused:
                fx += self.handle_wait_for_ref_removed(WaitForRefRemoved(object_id=object_id, owner=msg.owner, borrower=self.address))
            ref = self.table.get(object_id)
            if ref is None or ref.owned or ref.owner != msg.owner or not ref.registering:
                continue
            tasks, ref.registering = ref.registering, []
            error = _err("object_lost", f"object {object_id} was freed by its owner {msg.owner}") if object_id in refused else None
            for task_id in tasks:
                fx += self.worker.executor.registered(task_id, object_id, error)
        return fx

    def report_task_borrows(self, refs: list[RefInfo], caller: str) -> tuple[list[BorrowInfo], list[Effect]]:
        """The executor's half of WorkerFinishTask: what it still borrows.

        The sub-borrowers go to the caller. They are forgotten here only when
        the caller is the owner (which waits on them at once) or when they
        can reach the owner through the caller; a sub-borrower that *is* the
        caller would be dropped there (nobody reports itself), so it is kept
        to be handed to the owner later (RefCounting, deviation 2 from Ray).
        """
        infos: dict[str, BorrowInfo] = {}
        for info in refs:
            ref = self.table.get(info.object_id)
            if ref is None:
                continue
            if ref.task_args > 0:
                ref.task_args -= 1
        fx: list[Effect] = []
        for info in refs:
            ref = self.table.get(info.object_id)
            if ref is None or ref.owned or info.object_id in infos:
                continue
            infos[info.object_id] = BorrowInfo(
                object_id=ref.object_id,
                owner=ref.owner,
                held=ref.in_use(),
                borrowers=tuple(ref.sub_borrowers),
                kind=ref.kind,
            )
            # The caller takes over these borrowers (and us, if we still hold it).
            if caller == ref.owner:
                ref.sub_borrowers = []
            else:
                ref.sub_borrowers = [b for b in ref.sub_borrowers if b.address == caller]
        for oid in list(infos):
            fx += self.check(oid)
        for info in refs:
            if info.object_id not in infos:
                fx += self.check(info.object_id)
        return list(infos.values()), fx

    def handle_reply(self, executor: str, held_ids: list[str], borrowed: tuple[BorrowInfo, ...]) -> list[Effect]:
        r"""Spec: RefCounting!HolderHandleReply

            \* RefCounting
            HolderHandleReply(p, w) ==
                \E m \in DOMAIN msgs :
                /\ m.type = "TaskReply"
                /\ m.caller = p
                /\ m.worker = w
                /\ LET learned == ((IF m.borrowing THEN {m.worker} ELSE {}) \cup m.borrowers)
                                   \ {p}
                   IN  IF p = Owner
                       THEN /\ OwnerLearn(learned, {}, Take(msgs, m))
                            /\ UNCHANGED subBorrowers
                       ELSE /\ subBorrowers' = [subBorrowers EXCEPT ![p] = @ \cup learned]
                            /\ msgs' = Take(msgs, m)
                            /\ UNCHANGED borrowers
                /\ submitted' = [submitted EXCEPT ![p] = @ - 1]
                /\ contained' = IF m.contained THEN [contained EXCEPT ![p] = @ + 1]
                                               ELSE contained
                /\ lastAction' = Act("HolderHandleReply", [p |-> p, w |-> w, m |-> m])
                /\ UNCHANGED <<local, running, waiting, removeWaits, tasksLeft, freed, passedOn,
                               serveVars>>

        Implementation:

        The caller merges the executor's report: an owner waits on every new
        borrower, a borrower keeps them to report upward; then the task's
        submitted-task refs are released.
        """
        fx: list[Effect] = []
        for info in borrowed:
            new = [Borrower(address=executor)] if info.held else []
            new += list(info.borrowers)
            new = [b for b in new if b.address != self.address]
            ref = self.table.get(info.object_id)
            if ref is None:
                # We no longer track it: hand the borrowers to the owner directly.
                if new and info.owner != self.address:
                    fx.append(Send(info.owner, self._hand_over(info.object_id, info.owner, tuple(new))))
                continue
            fx += self._add_borrowers(ref, new)
        fx += self.release_submitted(held_ids)
        return fx

    def _add_borrowers(self, ref: Reference, new: list[Borrower]) -> list[Effect]:
        fx: list[Effect] = []
        for b in new:
            if b.address == self.address:
                continue
            if ref.owned:
                if b.address in self.worker.dead_workers:
                    continue
                ref.borrowers[b.address] = ref.borrowers.get(b.address, 0) + 1
                fx.append(Send(b.address, WaitForRefRemoved(object_id=ref.object_id, owner=self.address, via=b.via, borrower=b.address)))
            else:
                ref.sub_borrowers.append(b)
        return fx

    def lend(self, via: str, inner_ids: Iterable[str], reader: str, then: Callable[[], list[Effect]]) -> list[Effect]:
        r"""Spec: RefCounting!HolderServeContents

            \* RefCounting
            HolderServeContents(p, r) ==
                /\ contained[p] > 0
                /\ r \in Borrowers \ {p}
                /\ servesLeft > 0
                /\ local[r] + getting[r] < MaxLocal
                /\ servesLeft' = servesLeft - 1
                /\ getting' = [getting EXCEPT ![r] = @ + 1]
                /\ IF p = Owner
                   THEN /\ OwnerLearn({r}, {}, Put(msgs, {ObjectValueMsg(p, r)}))
                        /\ UNCHANGED lending
                   ELSE /\ lending' = [lending EXCEPT ![p][r] = @ + 1]
                        /\ msgs' = Put(msgs, {RegisterBorrowerMsg(p, r)})
                        /\ UNCHANGED borrowers
                /\ lastAction' = Act("HolderServeContents", [p |-> p, r |-> r])
                /\ UNCHANGED <<local, submitted, contained, running, waiting, subBorrowers,
                               removeWaits, tasksLeft, freed, passedOn>>

        Implementation:

        ``reader`` gets the value of object ``via`` (``then`` hands it
        over): it borrows every ref inside (``inner_ids``). Those we own we count at once, and ask
        the reader to say when it lets go (our WaitForRefRemoved goes out
        before the value, on the same connection). Those we borrow we cannot
        count: their owners must, before the reader has them, or the
        reader's count would rest on our report, lost if we die first. So
        we ask each owner (RegisterBorrower), hold the refs, and keep the
        value back until every one has answered (or died).
        """
        if reader == self.address:
            return then()
        fx: list[Effect] = []
        owners: dict[str, list[str]] = {}
        for inner_id in inner_ids:
            inner = self.table.get(inner_id)
            if inner is None:
                continue
            if inner.owned:
                fx += self._add_borrowers(inner, [Borrower(address=reader, via=via)])
            elif inner.owner != reader and inner.status != FAILED and inner.owner not in self.worker.dead_workers:
                owners.setdefault(inner.owner, []).append(inner_id)
        if not owners:
            return fx + then()
        key = self._next_lend = self._next_lend + 1
        ids = tuple(oid for group in owners.values() for oid in group)
        self.lends[key] = Lend(reader=reader, object_ids=ids, owners={o: tuple(g) for o, g in owners.items()}, then=then)
        self.hold_for_lend(ids)
        for owner, group in owners.items():
            fx.append(
                Send(
                    owner,
                    RegisterBorrower(
                        object_ids=tuple(group), owner=owner, borrower=reader, lender=self.address, via=via, lend=key
                    ),
                )
            )
        return fx

    def handle_register_borrower(self, msg: RegisterBorrower) -> list[Effect]:
        r"""Spec: RefCounting!OwnerHandleRegisterBorrower

            \* RefCounting
            OwnerHandleRegisterBorrower(o, m) ==
                /\ o = Owner
                /\ m \in DOMAIN msgs
                /\ m.type = "RegisterBorrower"
                /\ OwnerLearn({m.borrower}, {},
                              Put(Take(msgs, m), {BorrowerRegisteredMsg(m.lender, m.borrower)}))
                /\ lastAction' = Act("OwnerHandleRegisterBorrower", [o |-> o, m |-> m])
                /\ UNCHANGED <<local, submitted, contained, running, waiting, subBorrowers,
                               removeWaits, tasksLeft, freed, passedOn, serveVars>>

        Implementation:

        A borrower is handing our objects to a reader inside a value: we
        count the reader and ask it to say when it lets go (its
        WaitForRefRemoved names the value, so that it holds the objects for
        a value still on its way), then tell the lender it may hand over.
        An object freed (or forgotten) meanwhile is refused, as an
        AddBorrower is; a reader known dead is not counted.
        """
        refused: list[str] = []
        fx: list[Effect] = []
        b = msg.borrower
        for object_id in msg.object_ids:
            ref = self.table.get(object_id)
            if ref is None or not ref.owned or ref.status == FREED:
                refused.append(object_id)
            elif b != self.address:
                fx += self._add_borrowers(ref, [Borrower(address=b, via=msg.via)])
        fx.append(
            Send(
                msg.lender,
                BorrowerRegistered(
                    object_ids=msg.object_ids, owner=self.address, borrower=b, lender=msg.lender, lend=msg.lend, refused=tuple(refused)
                ),
            )
        )
        return fx

    def handle_borrower_registered(self, msg: BorrowerRegistered) -> list[Effect]:
        r"""Spec: RefCounting!LenderHandleBorrowerRegistered

            \* RefCounting
            LenderHandleBorrowerRegistered(p, m) ==
                /\ m \in DOMAIN msgs
                /\ m.type = "BorrowerRegistered"
                /\ m.lender = p
                /\ lending' = [lending EXCEPT ![p][m.borrower] = @ - 1]
                /\ msgs' = Put(Take(msgs, m), {ObjectValueMsg(p, m.borrower)})
                /\ lastAction' = Act("LenderHandleBorrowerRegistered", [p |-> p, m |-> m])
                /\ UNCHANGED <<local, submitted, contained, running, waiting, borrowers,
                               subBorrowers, removeWaits, tasksLeft, freed, passedOn,
                               getting, servesLeft>>

        Implementation:

        An owner counts the reader of a value we keep back: once every
        owner has, the value goes to the reader and we stop holding the
        refs for it.
        """
        lend = self.lends.get(msg.lend)
        if lend is None or lend.reader != msg.borrower or msg.owner not in lend.owners:
            return []
        del lend.owners[msg.owner]
        return self._hand_over_if_counted(msg.lend)

    def hold_for_lend(self, object_ids: Iterable[str]) -> None:
        """Keep these borrowed refs in use for a hand-over (``unhold_for_lend`` lets go)."""
        for oid in object_ids:
            self.table[oid].lending += 1

    def unhold_for_lend(self, object_ids: Iterable[str]) -> list[Effect]:
        fx: list[Effect] = []
        for oid in object_ids:
            ref = self.table.get(oid)
            if ref is not None and ref.lending > 0:
                ref.lending -= 1
                fx += self.check(oid)
        return fx

    def owners_died(self, dead: set[str]) -> list[Effect]:
        """Owners that will never answer a RegisterBorrower: their refs
        fate-share, so the reader needs no count of theirs."""
        fx: list[Effect] = []
        for key in sorted(self.lends):
            lend = self.lends.get(key)
            if lend is not None and any(o in dead for o in lend.owners):
                lend.owners = {o: ids for o, ids in lend.owners.items() if o not in dead}
                fx += self._hand_over_if_counted(key)
        return fx

    def _hand_over_if_counted(self, key: int) -> list[Effect]:
        lend = self.lends[key]
        if lend.owners:
            return []
        del self.lends[key]
        return lend.then() + self.unhold_for_lend(lend.object_ids)

    # -- borrower side ---------------------------------------------------------
    def handle_wait_for_ref_removed(self, msg: WaitForRefRemoved) -> list[Effect]:
        r"""Spec: RefCounting!BorrowerHandleWaitForRefRemoved
        Spec: Ownership!BorrowerHandleWaitForRefRemoved

            \* RefCounting
            BorrowerHandleWaitForRefRemoved(b, m) ==
                /\ m \in DOMAIN msgs
                /\ m.type = "WaitForRefRemoved"
                /\ m.borrower = b
                /\ IF Holds(b)
                   THEN /\ removeWaits' = [removeWaits EXCEPT ![b] = @ + 1]
                        /\ msgs' = Take(msgs, m)
                        /\ UNCHANGED subBorrowers
                   ELSE /\ msgs' = Put(Take(msgs, m), {RefRemovedMsg(b, subBorrowers[b])})
                        /\ subBorrowers' = [subBorrowers EXCEPT ![b] = {}]
                        /\ UNCHANGED removeWaits
                /\ lastAction' = Act("BorrowerHandleWaitForRefRemoved", [b |-> b, m |-> m])
                /\ UNCHANGED <<local, submitted, contained, running, waiting, borrowers,
                               tasksLeft, freed, passedOn, serveVars>>

            \* Ownership
            BorrowerHandleWaitForRefRemoved(a, m) ==
                LET y == m.x
                    b == brw[a][y]
                IN
                /\ m \in msgs
                /\ m.type = "WaitForRefRemoved"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ IF b.owner = m.o /\ InUse(b)
                   THEN /\ brw' = [brw EXCEPT ![a][y].waits = @ + 1]
                        /\ msgs' = msgs \ {m}
                   ELSE /\ brw' = IF b.owner = m.o THEN [brw EXCEPT ![a][y] = NoBorrow] ELSE brw
                        /\ msgs' = (msgs \ {m}) \cup {RefRemovedMsg(y, m.o, Cur(a))}
                /\ lastAction' = Step("BorrowerHandleWaitForRefRemoved", a, y, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, ex, known, got, made, why>>

        Implementation:

        The owner asks to be told when this borrower no longer holds the ref.
        """
        ref = self.table.get(msg.object_id)
        if ref is None:
            outer = self.table.get(msg.via) if msg.via else None
            if outer is not None and outer.value is None and outer.status in (PENDING, UNKNOWN, LOST):
                # The value that carries the ref is still on its way: hold the
                # ref for it now, so the answer waits for that value.
                ref = self._borrowed_entry(RefInfo(object_id=msg.object_id, owner=msg.owner))
                ref.contained_in.add(outer.object_id)
                outer.contains.add(ref.object_id)
            else:
                return [Send(msg.owner, RefRemoved(object_id=msg.object_id, borrower=self.address, owner=msg.owner))]
        if ref.owned:
            return []
        ref.owner_waiting += 1
        return self.check(msg.object_id)

    def send_ref_removed(self, ref: Reference) -> list[Effect]:
        r"""Spec: RefCounting!BorrowerSendRefRemoved

            \* RefCounting
            BorrowerSendRefRemoved(b) ==
                /\ removeWaits[b] > 0
                /\ ~Holds(b)
                /\ removeWaits' = [removeWaits EXCEPT ![b] = @ - 1]
                /\ msgs' = Put(msgs, {RefRemovedMsg(b, subBorrowers[b])})
                /\ subBorrowers' = [subBorrowers EXCEPT ![b] = {}]
                /\ lastAction' = Act("BorrowerSendRefRemoved", [b |-> b])
                /\ UNCHANGED <<local, submitted, contained, running, waiting, borrowers,
                               tasksLeft, freed, passedOn, serveVars>>

        Implementation:

        A borrower that no longer uses the ref answers its owner, handing
        over the borrowers it created, and forgets the ref.
        """
        if ref.owned or ref.in_use() or ref.owner_waiting <= 0:
            return []
        fx: list[Effect] = []
        if ref.owner not in self.worker.dead_workers:
            fx.append(Send(ref.owner, RefRemoved(object_id=ref.object_id, borrower=self.address, borrowers=tuple(ref.sub_borrowers), owner=ref.owner)))
            for _ in range(ref.owner_waiting - 1):
                fx.append(Send(ref.owner, RefRemoved(object_id=ref.object_id, borrower=self.address, owner=ref.owner)))
        ref.sub_borrowers = []
        ref.owner_waiting = 0
        fx += self._delete(ref)
        return fx

    # -- owner side --------------------------------------------------------------
    def handle_ref_removed(self, msg: RefRemoved) -> list[Effect]:
        r"""Spec: RefCounting!OwnerHandleRefRemoved
        Spec: OwnerRecovery!OwnerHandleRefRemoved
        Spec: Ownership!OwnerHandleRefRemoved

            \* RefCounting
            OwnerHandleRefRemoved(o, m) ==
                /\ o = Owner
                /\ m \in DOMAIN msgs
                /\ m.type = "RefRemoved"
                /\ OwnerLearn(m.borrowers, {m.borrower}, Take(msgs, m))
                /\ lastAction' = Act("OwnerHandleRefRemoved", [o |-> o, m |-> m])
                /\ UNCHANGED <<local, submitted, contained, running, waiting, subBorrowers,
                               removeWaits, tasksLeft, freed, passedOn, serveVars>>

            \* OwnerRecovery
            OwnerHandleRefRemoved(p, m) ==
                /\ m \in msgs
                /\ m.type = "RefRemoved"
                /\ m.dst = p
                /\ p \in up
                /\ HeardOf(p, m)
                /\ ~(ent[p][m.x].st = "recovering" /\ ent[p][m.x].ep = m.ep /\ m.w \in ent[p][m.x].waiting)
                /\ msgs' = msgs \ {m}
                /\ ent' = IF ent[p][m.x].ep = m.ep /\ ent[p][m.x].st # "none"
                          THEN [ent EXCEPT ![p][m.x].borrowers = @ \ {m.w}]
                          ELSE ent
                /\ lastAction' = Step("OwnerHandleRefRemoved", p, m.x, m)
                /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, copies, par, pb, got,
                               created, made, why, odied>>

            \* Ownership
            OwnerHandleRefRemoved(a, m) ==
                LET y == m.x
                    settle == Settle(a, IF ent[y].owner = Cur(a) THEN [ent EXCEPT ![y].borrowers = @ \ {m.w}] ELSE ent,
                                     msgs \ {m}, why, ex[a])
                IN
                /\ m \in msgs
                /\ m.type = "RefRemoved"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ settle
                /\ lastAction' = Step("OwnerHandleRefRemoved", a, y, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made>>

        Implementation:

        A borrower is done: forget it, wait on the borrowers it hands over,
        and free the object if nothing else references it.
        """
        if self.worker.takeover.report_kept(msg.borrower, msg.object_id):
            # It answers the report we keep until the head tells us of the
            # take-over: it waits behind it (OwnerRecovery!OwnerHandleRefRemoved).
            return self.worker.takeover.keep_early(msg.borrower, msg)
        ref = self.table.get(msg.object_id)
        if ref is None or not ref.owned:
            return []
        asks = ref.borrowers.get(msg.borrower, 0)
        if msg.answer and asks > 0:
            asks -= 1
        if asks > 0:
            ref.borrowers[msg.borrower] = asks
        else:
            ref.borrowers.pop(msg.borrower, None)
        fx = self._add_borrowers(ref, list(msg.borrowers))
        fx += self.check(msg.object_id)
        return fx

    def free(self, ref: Reference) -> list[Effect]:
        r"""Spec: RefCounting!OwnerFree

            \* RefCounting
            OwnerFree(o) ==
                /\ o = Owner
                /\ ~freed
                /\ local[o] = 0
                /\ submitted[o] = 0
                /\ contained[o] = 0
                /\ \A b \in Borrowers : borrowers[b] = 0
                /\ freed' = TRUE
                /\ msgs' = Put(msgs, {FreeObjectMsg})
                /\ lastAction' = Act("OwnerFree", [o |-> o])
                /\ UNCHANGED <<local, submitted, contained, running, waiting, borrowers,
                               subBorrowers, removeWaits, tasksLeft, passedOn, serveVars>>

        Implementation:

        Nothing references the object any more: drop its value and tell
        every node with a copy; the refs its value held are released. A
        ``put`` object that another object's lineage names is kept: nothing
        could make it again, and that object's rebuild would need it.
        """
        if not ref.owned or ref.in_scope() or ref.status not in (READY, LOST):
            return []
        if ref.task_id is None and ref.lineage > 0:
            return []
        if ref.recoverable:
            return self.delete_logged(ref)
        fx: list[Effect] = []
        if ref.kind == "actor":
            fx += self.worker.submitter.actor_calls.kill(ref.object_id)
        else:
            for node in sorted(ref.locations):
                fx.append(Send(node, FreeObject(object_id=ref.object_id, epoch=ref.epoch)))
        ref.locations.clear()
        ref.value = None
        ref.status = FREED
        fx += self.release_contents(ref)
        return fx

    def delete_logged(self, ref: Reference) -> list[Effect]:
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

        A recoverable object is freed only once the head has dropped its
        log at our epoch: a stale owner (declared dead, or at an older
        epoch) is refused there, so its FreeObject never goes out. One
        DeleteObject at a time; its answer frees the object (``free``
        again, now as a default object).
        """
        if ref.deleting:
            return []
        ref.deleting = True
        return [Send(self.worker.head, DeleteObject(object_id=ref.object_id, epoch=ref.epoch, owner=self.address))]

    def handle_object_deleted(self, msg: ObjectDeleted | AdoptersGone) -> list[Effect]:
        """The head answered a DeleteObject (or the adopters it waited for are
        gone: ask again)."""
        ref = self.table.get(msg.object_id)
        if ref is None or not ref.owned or not ref.recoverable or ref.epoch != msg.epoch or not ref.deleting:
            return []
        if isinstance(msg, AdoptersGone):
            ref.deleting = False
            return self.check(ref.object_id)
        if not msg.ok:
            return []  # stale (we are fenced), or adopted: AdoptersGone follows
        ref.recoverable = False
        ref.deleting = False
        return self.check(ref.object_id)

    def release_contents(self, ref: Reference) -> list[Effect]:
        r"""Spec: RefCounting!HolderReleaseContents

            \* RefCounting
            HolderReleaseContents(p) ==
                /\ contained[p] > 0
                /\ contained' = [contained EXCEPT ![p] = @ - 1]
                /\ lastAction' = Act("HolderReleaseContents", [p |-> p])
                /\ UNCHANGED <<local, submitted, running, waiting, borrowers, subBorrowers,
                               removeWaits, tasksLeft, freed, msgs, passedOn, serveVars>>

        Implementation:

        A value that contains refs goes out of scope (freed, or a cached copy
        dropped): the refs inside it are no longer contained in it.
        """
        fx: list[Effect] = []
        inner_ids = sorted(ref.contains)
        ref.contains.clear()
        for inner_id in inner_ids:
            inner = self.table.get(inner_id)
            if inner is not None:
                inner.contained_in.discard(ref.object_id)
        for inner_id in inner_ids:
            fx += self.check(inner_id)
        return fx

    def _delete(self, ref: Reference) -> list[Effect]:
        if self.table.get(ref.object_id) is not ref:
            return []
        del self.table[ref.object_id]
        fx = self.release_contents(ref)
        if ref.adopted:
            fx += self.release_adopted(ref)
        for waiter in ref.waiters:
            fx += self._resolve(ref, waiter, error=_err("object_lost", f"object {ref.object_id} is no longer referenced"))
        ref.waiters = []
        fx += self.worker.submitter.forget_lineage(ref)
        if ref.owned:
            fx += self.unpin_lineage(ref)
        return fx

    def unpin_lineage(self, ref: Reference) -> list[Effect]:
        """``ref`` no longer needs its lineage: take its pins off the objects
        its task would be made again from, and free what that allows."""
        deps, ref.lineage_deps = ref.lineage_deps, ()
        for dep in deps:
            d = self.table.get(dep)
            if d is not None and d.lineage > 0:
                d.lineage -= 1
        return self._release_lineage(dict.fromkeys(deps))

    def _release_lineage(self, object_ids: Any) -> list[Effect]:
        """Free or forget what lost a lineage pin, as the counts allow.

        Forgetting an entry releases its own pins: the outermost call takes
        the objects so unpinned from a worklist, so a lineage of any length
        goes without a recursion as deep.
        """
        if self._unpinned is not None:
            self._unpinned.extend(object_ids)
            return []
        self._unpinned = collections.deque(object_ids)
        fx: list[Effect] = []
        try:
            while self._unpinned:
                fx += self.check(self._unpinned.popleft())
        finally:
            self._unpinned = None
        return fx

    def check(self, object_id: str) -> list[Effect]:
        """Apply whatever release the counts now allow (free, answer, forget)."""
        ref = self.table.get(object_id)
        if ref is None:
            return []
        fx: list[Effect] = []
        if ref.owned:
            if ref.in_scope():
                return []
            if ref.status in (READY, LOST):
                fx += self.free(ref)
            if ref.status in (FREED, FAILED) and ref.lineage == 0 and not ref.remote_waiters:
                if ref.recoverable:
                    return fx + self.delete_logged(ref)  # its log goes first
                fx += self._delete(ref)
            return fx
        if ref.in_use():
            return []
        if ref.owner_waiting > 0:
            return self.send_ref_removed(ref)
        if ref.sub_borrowers and ref.owner not in self.worker.dead_workers:
            # We are done with it, but borrowers we created are not known to
            # the owner yet: hand them over now rather than wait to be asked
            # (the ask may never come, if whoever was to report us is gone).
            fx.append(Send(ref.owner, self._hand_over(ref.object_id, ref.owner, tuple(ref.sub_borrowers))))
            ref.sub_borrowers = []
        return fx + self._delete(ref)

    def release_adopted(self, ref: Reference) -> list[Effect]:
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

        A re-executed parent no longer holds the object it adopted: the head
        stops counting it, and the owner's delete may go through.
        """
        ref.adopted = False
        return [Send(self.worker.head, ReleaseAdopted(object_id=ref.object_id, epoch=ref.epoch, adopter=self.address))]

    def _hand_over(self, object_id: str, owner: str, borrowers: tuple[Borrower, ...]) -> RefRemoved:
        """Borrowers for the owner to wait on, answering no request of its own."""
        return RefRemoved(object_id=object_id, borrower=self.address, borrowers=borrowers, owner=owner, answer=False)

    # -- values --------------------------------------------------------------------
    def set_contents(self, outer: Reference, refs: tuple[RefInfo, ...]) -> None:
        """``outer``'s value holds ``refs``: each is contained-in ``outer``."""
        for info in refs:
            if info.object_id == outer.object_id:
                continue
            inner = self.table.get(info.object_id)
            if inner is None:
                inner = self._borrowed_entry(info)
            inner.contained_in.add(outer.object_id)
            outer.contains.add(info.object_id)

    def set_ready(
        self,
        ref: Reference,
        *,
        value: Payload | None = None,
        location: str | None = None,
        refs: tuple[RefInfo, ...] = (),
    ) -> list[Effect]:
        """An owned object got its value (inline) or a stored copy."""
        fx: list[Effect] = []
        ref.status = READY
        ref.error = None
        if value is not None:
            ref.value = value
        if location is not None:
            ref.locations.add(location)
        self.set_contents(ref, refs)
        fx += self._wake(ref)
        fx += self.check(ref.object_id)
        return fx

    def set_failed(self, ref: Reference, error: ErrorInfo) -> list[Effect]:
        fx: list[Effect] = []
        ref.status = FAILED
        ref.error = error
        ref.fetching = None
        fx += self._wake(ref)
        fx += self.check(ref.object_id)
        return fx

    def _wake(self, ref: Reference) -> list[Effect]:
        """Hand the value (or the error) to everyone waiting for it."""
        fx: list[Effect] = []
        if ref.status in (READY, FAILED):
            requesters, ref.remote_waiters = ref.remote_waiters, []
            for requester in requesters:
                if requester not in self.worker.dead_workers:
                    fx += self._serve(ref, requester)
        ready = self._resolution(ref)
        if ready is not None:
            waiters, ref.waiters = ref.waiters, []
            for waiter in waiters:
                fx += self._resolve(ref, waiter, **ready)
        elif ref.waiters and ref.status == READY:
            fx += self.fetch(ref)  # the value is in a store: pull a copy (or just say where it is)
        if ref.owned:
            fx += self.worker.submitter.dependency_resolved(ref)
        return fx

    def _resolution(self, ref: Reference) -> dict[str, Any] | None:
        if ref.error is not None:
            return {"error": ref.error}
        if ref.kind == "actor":
            if ref.status == READY and ref.locations:
                return {"location": min(ref.locations)}
            return None
        if ref.value is not None:
            return {"value": ref.value}
        return None

    def _located(self, ref: Reference) -> dict[str, Any] | None:
        """What a waiter that fetches nothing needs: the value, an error, or a live copy somewhere."""
        ready = self._resolution(ref)
        if ready is not None or ref.kind != "object":
            return ready
        alive = sorted(n for n in ref.locations if n not in self.worker.dead_nodes)
        return {"location": alive[0]} if alive else None

    def _resolve_located(self, ref: Reference) -> list[Effect]:
        """Answer the waiters that only want to know the object is available
        somewhere (``wait(fetch_local=False)``), without pulling a copy."""
        if not any(w.kind == "located" for w in ref.waiters):
            return []
        found = self._located(ref)
        if found is None:
            return []
        fx: list[Effect] = []
        located = [w for w in ref.waiters if w.kind == "located"]
        ref.waiters = [w for w in ref.waiters if w.kind != "located"]
        for waiter in located:
            fx += self._resolve(ref, waiter, **found)
        return fx

    def _resolve(self, ref: Reference, waiter: Waiter, **result: Any) -> list[Effect]:
        if waiter.kind in ("api", "located"):
            return [GetDone(request_id=waiter.key, object_id=ref.object_id, **result)]
        if waiter.kind == "arg":
            task_id, index = waiter.key
            return self.worker.executor.arg_resolved(task_id, index, **result)
        if waiter.kind == "actor":
            return self.worker.submitter.actor_calls.located(waiter.key, **result)
        raise ValueError(f"unknown waiter kind {waiter.kind!r}")

    def get(self, object_id: str, waiter: Waiter, *, owner: str | None = None, kind: str = "object") -> list[Effect]:
        r"""Spec: FateSharing!HolderGet
        Spec: OwnerRecovery!ParentGet
        Spec: OwnerRecovery!HolderGet
        Spec: Ownership!BorrowerGet
        Spec: Ownership!HolderGet

            \* FateSharing
            HolderGet(h, x) ==
                /\ WaitingFor(h, x)
                /\ LET o == RefOf(h, x)[2]
                       e == table[o][x]
                   IN /\ Alive(o)
                      /\ \/ /\ e.st = "ready"
                            /\ \E c \in LiveCopies(x, o) :
                                  /\ c.node \in e.locs
                                  /\ got' = [got EXCEPT ![h] = @ \cup {[obj |-> x, res |-> "value", val |-> c.val]}]
                         \/ /\ e.st = "error"
                            /\ got' = [got EXCEPT ![h] = @ \cup {[obj |-> x, res |-> e.err, val |-> {}]}]
                /\ ctx' = [ctx EXCEPT ![h].pc = @ + 1]
                /\ lastAction' = Step("HolderGet", h, x, NoNode, NoMsg)
                /\ UNCHANGED <<up, crashes, status, nodeOf, table, copies, announced,
                               announcedNodes, msgs>>

            \* OwnerRecovery
            ParentGet(p, x) ==
                /\ AtOp(p, "get", x)
                /\ LET o == IF ent[p][x].st # "none" THEN p ELSE brw[p][x].o
                       ep == IF ent[p][x].st # "none" THEN ent[p][x].ep ELSE brw[p][x].ep
                       a == Answer(o, x, ep)
                   IN /\ a # ""
                      /\ got' = got \cup {[h |-> p, x |-> x, res |-> a, by |-> "parent",
                                           val |-> IF a = "value" THEN AnswerVal(o, x) ELSE {}]}
                /\ pb' = Next1(p)
                /\ lastAction' = Step("ParentGet", p, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, copies, msgs, par,
                               created, made, why, odied>>

            \* OwnerRecovery
            HolderGet(h, x) ==
                /\ h \in up
                /\ h \in HoldersOf(x)
                /\ brw[h][x].held
                /\ ~Registering(h, x)
                /\ gst[h][x] = "none"
                /\ gst' = [gst EXCEPT ![h][x] = "wait"]
                /\ lastAction' = Step("HolderGet", h, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, run, fin, copies, msgs, par, pb,
                               got, created, made, why, odied>>

            \* Ownership
            BorrowerGet(a, y) ==
                LET b == brw[a][y]
                    e == [ex[a] EXCEPT !.pc = @ + 1, !.lent = FALSE]
                IN
                /\ AtStep(a, "get")
                /\ StepObj(a) = y
                /\ ent[y].owner # Cur(a)
                /\ \/ /\ b.failed \/ b.owner \in known[a].p
                      /\ got' = got \cup {[x |-> y, res |-> "OwnerDied", val |-> {}, o |-> b.owner]}
                   \/ /\ ~b.failed /\ b.owner \notin known[a].p
                      /\ IsUp(b.owner) /\ ent[y].owner = b.owner
                      /\ \/ /\ ent[y].obj = "ready"
                            /\ LiveCopy(y) # {}
                            /\ got' = got \cup {[x |-> y, res |-> "value", val |-> (CHOOSE c \in LiveCopy(y) : TRUE).val, o |-> b.owner]}
                         \/ /\ ent[y].obj = "failed"
                            /\ got' = got \cup {[x |-> y, res |-> ent[y].err, val |-> {}, o |-> b.owner]}
                /\ ex' = [ex EXCEPT ![a] = e]
                /\ msgs' = msgs \cup Unblock(a, ex[a])
                /\ lastAction' = Step("BorrowerGet", a, y, NoNode, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, brw, why, made>>

            \* Ownership
            HolderGet(a, x) ==
                LET e == [ex[a] EXCEPT !.pc = @ + 1, !.lent = FALSE]
                    settle == Settle(a, ent, msgs \cup Unblock(a, ex[a]), why, e)
                IN
                /\ AtStep(a, "get")
                /\ StepObj(a) = x
                /\ ent[x].owner = Cur(a)
                /\ \/ /\ ent[x].obj = "ready"
                      /\ LiveCopy(x) # {}
                      /\ got' = got \cup {[x |-> x, res |-> "value", val |-> (CHOOSE c \in LiveCopy(x) : TRUE).val, o |-> Cur(a)]}
                   \/ /\ ent[x].obj = "failed"
                      /\ got' = got \cup {[x |-> x, res |-> ent[x].err, val |-> {}, o |-> Cur(a)]}
                /\ ex' = [ex EXCEPT ![a] = e]
                /\ settle
                /\ lastAction' = Step("HolderGet", a, x, NoNode, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, known, brw, made>>

        Implementation:

Ask for a value (API get, a task argument, an actor's address).
        """
        ref = self.table.get(object_id)
        if ref is None:
            if owner is None:
                return self._resolve(
                    Reference(object_id=object_id, owner="", owned=False),
                    waiter,
                    error=_err("object_lost", f"object {object_id} is not referenced here"),
                )
            ref = self._borrowed_entry(RefInfo(object_id=object_id, owner=owner, kind=kind))
        ready = self._located(ref) if waiter.kind == "located" else self._resolution(ref)
        if ready is not None:
            return self._resolve(ref, waiter, **ready)
        ref.waiters.append(waiter)
        return self.fetch(ref)

    def cancel_waiter(self, waiter: Waiter) -> list[Effect]:
        fx: list[Effect] = []
        for ref in list(self.table.values()):
            if waiter in ref.waiters:
                ref.waiters.remove(waiter)
                fx += self.check(ref.object_id)
        return fx

    def fetch(self, ref: Reference) -> list[Effect]:
        """Start getting the value if nobody is getting it yet.

        Waiters that fetch nothing (``wait(fetch_local=False)``) are answered
        as soon as a live copy is known; a copy is pulled only for the
        others. For a borrowed object they ask the owner where it is.
        """
        located = any(w.kind == "located" for w in ref.waiters)
        fx = self._resolve_located(ref) if located else []
        if ref.fetching is not None or ref.error is not None:
            return fx
        if located and not ref.waiters:
            return fx  # only where it is was wanted
        return fx + self._start_fetch(ref)

    def _start_fetch(self, ref: Reference) -> list[Effect]:
        if ref.owned:
            if ref.status == READY and ref.value is None and ref.locations:
                fx = self._pull(ref)
                if fx:
                    return fx
                ref.status = LOST  # every copy was on a node known dead
            if ref.status in (LOST, FREED):
                return self.worker.failures.reconstruct(ref)
            return []  # pending: the task reply will wake the waiters
        if ref.owner in self.worker.dead_workers:
            return self.worker.failures.fate_share(ref)
        if ref.locations and ref.kind != "actor":
            fx = self._pull(ref)
            if fx:
                return fx
        # Nowhere left to pull from (or never told): ask the owner, naming
        # the nodes found without a copy. A borrower never stops asking.
        return self._ask_owner(ref)

    def _ask_owner(self, ref: Reference) -> list[Effect]:
        ref.fetching = "owner"
        bad, ref.no_copy = ref.no_copy, ()
        return [Send(ref.owner, GetObject(object_id=ref.object_id, requester=self.address, bad=bad, epoch=ref.epoch))]

    def found_without(self, ref: Reference, nodes: set[str]) -> None:
        """``nodes`` have no copy of ``ref`` (dead, or their store said so)."""
        ref.locations -= nodes
        if not ref.owned:
            ref.no_copy = tuple(sorted(set(ref.no_copy) | nodes))

    def _pull(self, ref: Reference) -> list[Effect]:
        """Pull a copy from a live location (our node's first); none: []."""
        dead = {n for n in ref.locations if n in self.worker.dead_nodes}
        if dead:
            self.found_without(ref, dead)
        if not ref.locations:
            return []
        node = self.worker.node if self.worker.node in ref.locations else min(ref.locations)
        ref.fetching = node
        return [Send(node, PullObject(object_id=ref.object_id, requester=self.address))]

    def handle_get_object(self, src: str, msg: GetObject) -> list[Effect]:
        r"""Spec: Ownership!OwnerHandleGetObject
        Spec: Ownership!OwnerServeBorrowerGet

            \* Ownership
            OwnerHandleGetObject(a, m) ==
                LET x == m.x
                    e == ent[x]
                    left == e.locs \ m.locs
                    E == IF e.obj = "ready" /\ left = {}
                         THEN [ent EXCEPT ![x].locs = {}, ![x].obj = "lost", ![x].waiters = @ \cup {m.w}]
                         ELSE IF e.obj \in {"pending", "lost", "freed"}
                         THEN [ent EXCEPT ![x].waiters = @ \cup {m.w}]
                         ELSE [ent EXCEPT ![x].locs = left]
                    answer == IF e.obj = "ready" /\ left # {} THEN ObjectValueMsg(x, m.o, m.w, left, "")
                              ELSE IF e.obj = "failed" THEN ObjectValueMsg(x, m.o, m.w, {}, e.err)
                              ELSE ObjectPendingMsg(x, m.o, m.w)
                    settle == Settle(a, E, (msgs \ {m}) \cup {answer}, why, ex[a])
                IN
                /\ m \in msgs
                /\ m.type = "GetObject"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ IF e.owner # Cur(a)
                   THEN /\ msgs' = (msgs \ {m}) \cup {ObjectValueMsg(x, m.o, m.w, {}, "ObjectLost")}
                        /\ UNCHANGED <<ent, why>>
                   ELSE /\ settle
                /\ lastAction' = Step("OwnerHandleGetObject", a, x, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made>>

            \* Ownership
            OwnerServeBorrowerGet(a, x) ==
                LET settle == Settle(a, ent, msgs, why, ex[a]) IN
                /\ IsUp(Cur(a))
                /\ ent[x].owner = Cur(a)
                /\ ent[x].obj \in {"lost", "freed"}
                /\ x \in BorrowerGets(a)
                /\ settle
                /\ lastAction' = Step("OwnerServeBorrowerGet", a, x, NoNode, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made>>

        Implementation:

        The owner serves its object's value, locations, or error.

        The nodes the requester found without a copy are written off first,
        as a failed pull of the owner's own would: with no copy left, the
        object is lost. A requester that must wait (the object is pending,
        or lost or freed and so rebuilt now: someone needs it) is told so
        at once (ObjectPending), then answered when the value is there.
        """
        ref = self.table.get(msg.object_id)
        if msg.epoch and (ref is None or not ref.owned or ref.epoch < msg.epoch) and msg.epoch > self.worker.takeover.heard_of(msg.object_id):
            # Of a take-over the head has not told us about yet (OwnerRecovery!HeardOf).
            return self.worker.takeover.keep_early(src, msg)
        if ref is None or not ref.owned:
            return [Send(msg.requester, ObjectValue(object_id=msg.object_id, error=_err("object_lost", f"object {msg.object_id} was freed by its owner")))]
        if ref.kind == "object":
            if msg.bad:
                ref.locations -= set(msg.bad)
            if ref.status == READY and not ref.locations and ref.value is None:
                ref.status = LOST
                ref.fetching = None
        if self._storing(ref):
            # A large put on its way into our node's store: answer with its
            # location once stored (ObjectStored) rather than send the value
            # through the owner's socket.
            ref.remote_waiters.append(msg.requester)
            return []
        if ref.status in (READY, FAILED) and (ref.error is not None or ref.value is not None or ref.locations):
            return self._serve(ref, msg.requester)
        if msg.requester not in ref.remote_waiters:
            ref.remote_waiters.append(msg.requester)
        fx: list[Effect] = [Send(msg.requester, ObjectPending(object_id=msg.object_id))]
        if ref.status in (LOST, FREED):
            fx += self.worker.failures.reconstruct(ref)
        return fx

    def _serve(self, ref: Reference, requester: str) -> list[Effect]:
        if ref.error is not None:
            return [Send(requester, ObjectValue(object_id=ref.object_id, error=ref.error))]
        if ref.value is not None and ref.kind != "actor":
            reply = ObjectValue(object_id=ref.object_id, value=ref.value)
        else:
            reply = ObjectValue(object_id=ref.object_id, locations=tuple(sorted(ref.locations)))
        return self.lend(ref.object_id, sorted(ref.contains), requester, lambda: [Send(requester, reply)])

    def handle_object_value(self, src: str, msg: ObjectValue) -> list[Effect]:
        r"""Spec: RefCounting!ReaderReceiveValue
        Spec: Ownership!WorkerHandleObjectValue
        Spec: OwnerRecovery!HolderGetReturns

            \* RefCounting
            ReaderReceiveValue(r, p) ==
                /\ ObjectValueMsg(p, r) \in DOMAIN msgs
                /\ msgs' = Take(msgs, ObjectValueMsg(p, r))
                /\ getting' = [getting EXCEPT ![r] = @ - 1]
                /\ local' = [local EXCEPT ![r] = @ + 1]
                /\ lastAction' = Act("ReaderReceiveValue", [r |-> r, p |-> p])
                /\ UNCHANGED <<submitted, contained, running, waiting, borrowers,
                               subBorrowers, removeWaits, tasksLeft, freed, passedOn,
                               lending, servesLeft>>

            \* Ownership
            WorkerHandleObjectValue(a, m) ==
                LET y == m.x
                    live == m.locs \ known[a].n
                IN
                /\ m \in msgs
                /\ m.type = "ObjectValue"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ \/ /\ ~Fetching(a, y, "ask")
                      /\ msgs' = msgs \ {m}
                      /\ UNCHANGED <<ex, brw>>
                   \/ /\ Fetching(a, y, "ask")
                      /\ m.err # ""
                      /\ FailTask(a, m.err, msgs \ {m})
                   \/ /\ Fetching(a, y, "ask")
                      /\ m.err = ""
                      /\ live # {}
                      /\ \E n \in live :
                           /\ AddrNode(a) \in live => n = AddrNode(a)
                           /\ ex' = [ex EXCEPT ![a].arg[y] = "pull", ![a].at[y] = n]
                      /\ msgs' = msgs \ {m}
                      /\ UNCHANGED brw
                   \/ /\ Fetching(a, y, "ask")
                      /\ m.err = ""
                      /\ live = {}
                      /\ msgs' = (msgs \ {m}) \cup {GetObjectMsg(y, m.o, Cur(a), Bad(a, {}))}
                      /\ UNCHANGED <<ex, brw>>
                /\ lastAction' = Step("WorkerHandleObjectValue", a, y, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, got, made, why>>

            \* OwnerRecovery
            HolderGetReturns(h, x) ==
                /\ h \in up
                /\ gst[h][x] = "wait"
                /\ IF <<h, x>> \in odied
                   THEN /\ gst' = [gst EXCEPT ![h][x] = "error"]
                        /\ got' = got \cup {[h |-> h, x |-> x, res |-> "OwnerDied", by |-> "holder", val |-> {}]}
                   ELSE LET b == brw[h][x]
                            a == Answer(b.o, x, b.ep)
                        IN /\ a # ""
                           /\ gst' = [gst EXCEPT ![h][x] = a]
                           /\ got' = got \cup {[h |-> h, x |-> x, res |-> a, by |-> "holder",
                                                val |-> IF a = "value" THEN AnswerVal(b.o, x) ELSE {}]}
                /\ lastAction' = Step("HolderGetReturns", h, x, NoMsg)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, run, fin, copies, msgs, par, pb,
                               created, made, why, odied>>

        Implementation:

        The owner answered our GetObject.
        """
        ref = self.table.get(msg.object_id)
        if ref is None or ref.owned or ref.fetching != "owner":
            return []
        ref.fetching = None
        if msg.error is not None:
            return self.set_failed(ref, msg.error)
        if msg.value is not None:
            ref.value = msg.value
            ref.status = READY
            ref.no_copy = ()
            self.set_contents(ref, msg.value.refs)
            return self._wake(ref)
        ref.locations = set(msg.locations)
        if ref.kind == "actor":
            ref.status = READY
            return self._wake(ref)
        return self.fetch(ref)

    def handle_object_pending(self, src: str, msg: ObjectPending) -> list[Effect]:
        r"""Spec: Ownership!WorkerHandleObjectPending

            \* Ownership
            WorkerHandleObjectPending(a, m) ==
                /\ m \in msgs
                /\ m.type = "ObjectPending"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ IF Fetching(a, m.x, "ask") /\ ~ex[a].lent
                   THEN /\ ex' = [ex EXCEPT ![a].lent = TRUE]
                        /\ msgs' = (msgs \ {m}) \cup {WorkerBlockedMsg(Cur(a))}
                   ELSE /\ msgs' = msgs \ {m}
                        /\ UNCHANGED ex
                /\ lastAction' = Step("WorkerHandleObjectPending", a, m.x, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

        Implementation:

        The owner says our object is being made: wait for its ObjectValue.

        A task here that waits for it as an argument, and has not started,
        lends its CPU to the node meanwhile: the object may be made by a
        task that needs a CPU of this very node.
        """
        ref = self.table.get(msg.object_id)
        if ref is None or ref.owned or ref.fetching != "owner":
            return []
        fx: list[Effect] = []
        for waiter in ref.waiters:
            if waiter.kind == "arg":
                fx += self.worker.executor.arg_pending(waiter.key[0])
        return fx

    def handle_object_copy(self, src: str, msg: ObjectCopy) -> list[Effect]:
        r"""Spec: Ownership!WorkerPullArg

            \* Ownership
            WorkerPullArg(a, y) ==
                LET e == ex[a]
                    n == e.at[y]
                    here == {c \in copies : c.x = y /\ c.n = n}
                    done == (\A z \in Args[e.x] \ {y} : e.arg[z] = "have") /\ e.regs = {}
                IN
                /\ IsUp(Cur(a))
                /\ Fetching(a, y, "pull")
                /\ n \in nodeUp
                /\ IF here # {}
                   THEN /\ ex' = [ex EXCEPT ![a].arg[y] = "have", ![a].at[y] = NoNode,
                                            ![a].val = @ \cup (CHOOSE c \in here : TRUE).val,
                                            ![a].phase = IF done THEN "run" ELSE "fetch",
                                            ![a].lent = IF done THEN FALSE ELSE @]
                        /\ msgs' = msgs \cup (IF done THEN Unblock(a, e) ELSE {})
                   ELSE /\ ex' = [ex EXCEPT ![a].arg[y] = "ask", ![a].at[y] = NoNode]
                        /\ msgs' = msgs \cup {GetObjectMsg(y, e.o, Cur(a), Bad(a, {n}))}
                /\ lastAction' = Step("WorkerPullArg", a, y, n, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ent, known, brw, got, made, why>>

        Implementation:

        A store answered our PullObject.
        """
        ref = self.table.get(msg.object_id)
        if ref is None or ref.fetching != src:
            return []
        ref.fetching = None
        if msg.value is not None:
            if ref.owned:
                # The owner hands the copy to its waiters but keeps no copy
                # itself: the stores hold the value (and may lose it).
                waiters, ref.waiters = ref.waiters, []
                fx: list[Effect] = []
                for waiter in waiters:
                    fx += self._resolve(ref, waiter, value=msg.value)
                return fx + self.check(ref.object_id)
            ref.value = msg.value
            ref.status = READY
            ref.no_copy = ()
            self.set_contents(ref, msg.value.refs)
            return self._wake(ref)
        self.found_without(ref, {src})
        if ref.owned:
            if not ref.locations and ref.value is None:
                ref.status = LOST
                return self.worker.failures.reconstruct(ref)
        return self.fetch(ref)

    def handle_object_stored(self, src: str, msg: ObjectStored) -> list[Effect]:
        """Our put reached the store: the copy there is now the primary one."""
        ref = self.table.get(msg.object_id)
        if ref is None or not ref.owned or ref.status != READY:
            return [Send(msg.node, FreeObject(object_id=msg.object_id))]
        ref.locations.add(msg.node)
        if ref.value is not None and ref.value.size > self.worker.config.inline_threshold:
            ref.value = None  # the store keeps it; the owner's heap need not
        fx: list[Effect] = []
        requesters, ref.remote_waiters = ref.remote_waiters, []
        for requester in requesters:
            if requester not in self.worker.dead_workers:
                fx += self._serve(ref, requester)
        return fx

    def _storing(self, ref: Reference) -> bool:
        """An owned large value still on its way into the local store (put() sent it)."""
        return (
            ref.kind == "object"
            and ref.status == READY
            and not ref.locations
            and ref.value is not None
            and ref.value.size > self.worker.config.inline_threshold
            and self.worker.node not in self.worker.dead_nodes
            and ref.epoch == 0  # a put restored from the head stays here (TakeOver.complete)
        )

    def put(self, object_id: str, value: Payload, recoverable: bool = False) -> list[Effect]:
        r"""Spec: Ownership!OwnerPut

            \* Ownership
            OwnerPut(a, x) ==
                LET e == [ex[a] EXCEPT !.pc = @ + 1]
                    E == [ent EXCEPT ![x] = [NoEntry EXCEPT !.owner = Cur(a), !.task = "done", !.obj = "ready",
                                                            !.locs = {AddrNode(a)}, !.local = 1]]
                    settle == Settle(a, E, msgs, why, e)
                IN
                /\ AtStep(a, "put")
                /\ StepObj(a) = x
                /\ ex' = [ex EXCEPT ![a] = e]
                /\ settle
                /\ copies' = copies \cup {[x |-> x, o |-> Cur(a), n |-> AddrNode(a), val |-> {x}]}
                /\ made' = made \cup {x}
                /\ lastAction' = Step("OwnerPut", a, x, NoNode, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, pool, starting, leases, nknown, known, brw, got>>

        Implementation:

        ``ownership.put``: a new owned object; large values go to the local store.
        """
        from .messages import PutObject

        ref = self.add_owned(object_id)
        ref.local += 1
        fx: list[Effect] = []
        if recoverable and self.worker.logs_recoverable():
            # Logged with its value before anyone can hold it (OwnerRecovery!ParentMake).
            ref.recoverable = True
            self.worker.submitter.logging_objects.add(object_id)
            fx.append(Send(self.worker.head, LogObject(object_id=object_id, owner=self.address, value=value)))
        fx += self.set_ready(ref, value=value, refs=value.refs)
        if value.size > self.worker.config.inline_threshold:
            fx.append(Send(self.worker.node, PutObject(object_id=object_id, owner=self.address, value=value)))
        return fx


def _owner_died(object_id: str, owner: str) -> ErrorInfo:
    return ErrorInfo(kind="owner_died", message=f"the owner {owner} of object {object_id} died")
