"""One worker process's protocol state: owner, borrower and executor at once.

:class:`WorkerCore` composes the parts of DESIGN §2 that live in a worker
(the driver is a worker too): the ownership table and reference counts
(:class:`~ownership.core.refcount.ReferenceCounter`), task submission
(:class:`~ownership.core.submitter.TaskSubmitter`), execution
(:class:`~ownership.core.executor.TaskExecutor`) and failure handling
(:class:`~ownership.core.recovery.FailureHandler`). It is driven only
through :meth:`WorkerCore.handle`.
"""

from __future__ import annotations

from typing import Any, Iterable

from .config import CoreConfig
from .events import (
    AddLocalRef,
    Cancel,
    CancelGet,
    Effect,
    Event,
    EventLog,
    GetValue,
    IdGenerator,
    Put,
    Received,
    Registered,
    RemoveLocalRef,
    Submit,
    TaskBlocked,
    TaskDone,
    TaskUnblocked,
    Tick,
)
from .executor import TaskExecutor
from .messages import (
    AddBorrower,
    AdoptersGone,
    BorrowerAdded,
    BorrowerRegistered,
    CancelTask,
    DispatchLogged,
    GetObject,
    LeaseGranted,
    LeaseInfeasible,
    MovedRef,
    NodeDied,
    ObjectCopy,
    ObjectDeleted,
    ObjectLogged,
    ObjectPending,
    ObjectStored,
    ObjectValue,
    OwnerMoved,
    PushTask,
    RecoveryReport,
    RefInfo,
    RefRemoved,
    RegisterBorrower,
    Spillback,
    TaskReply,
    WaitForRefRemoved,
    WorkerDied,
    WorkerRegistered,
)
from .recovery import FailureHandler, TakeOver
from .refcount import ReferenceCounter, Waiter
from .submitter import TaskSubmitter

__all__ = ["WorkerCore", "UnexpectedEvent", "learn_moves"]

#: pushes and cancels that came before our registration, kept at most
_BACKLOG_KEPT = 10_000


class UnexpectedEvent(ValueError):
    """An event or message this core does not handle (it is logged and dropped)."""



def learn_moves(moved: dict[str, tuple[str, int]], news: Iterable[MovedRef]) -> None:
    """Record in ``moved`` (object -> (owner, epoch)) where objects moved,
    keeping for each the latest epoch heard of."""
    for m in news:
        known = moved.get(m.object_id)
        if known is None or known[1] < m.epoch:
            moved[m.object_id] = (m.owner, m.epoch)

class WorkerCore:
    def __init__(self, address: str, node: str, config: CoreConfig | None = None, *, driver: bool = False) -> None:
        self.address = address
        self.node = node
        self.driver = driver
        self.config = config or CoreConfig()
        self.ids = IdGenerator(address)
        self.dead_workers: set[str] = set()
        self.dead_nodes: set[str] = set()
        self.registered = False
        #: pushes and cancels that came before our registration (held until it)
        self.unregistered_backlog: list[tuple[str, PushTask | CancelTask]] = []
        self.log = EventLog(self.config.log_size)
        self.refs = ReferenceCounter(self)
        self.submitter = TaskSubmitter(self)
        self.executor = TaskExecutor(self)
        self.failures = FailureHandler(self)
        self.takeover = TakeOver(self)
        self.dropped: int = 0  # messages ignored (from dead peers, unknown types)
        #: the head, where recoverable objects are logged (from our registration)
        self.head = ""
        #: objects taken over from a dead owner: object id -> (new owner, epoch)
        self.moved: dict[str, tuple[str, int]] = {}
        #: the owners a take-over notice being handled names dead, before
        #: they join dead_workers at the end of its handling (owner_of)
        self.dying: frozenset[str] = frozenset()

    def logs_recoverable(self) -> bool:
        """Whether a recoverable object of ours is logged at the head. The
        driver's are not: the driver takes over the others' objects, and its
        own death ends the job."""
        return bool(self.head) and not self.driver

    def owner_of(self, object_id: str, owner: str) -> str:
        """The owner of ``object_id`` as we know it: ``owner``, unless the
        object was taken over from it (a reference made before the take-over
        still names the dead owner). A reference that names a live owner is
        current even where the object moved once: a re-executed parent made
        it anew after the moved one was freed (the spec's Target redirects
        only a reference of an epoch older than the move, and every owner
        of such an epoch was declared dead, which we heard with the move)."""
        if self.moved:
            m = self.moved.get(object_id)
            if m is not None and (owner in self.dead_workers or owner in self.dying):
                return m[0]
        return owner

    def current(self, info: RefInfo) -> RefInfo:
        """``info`` with the owner it has now (see owner_of)."""
        if self.moved and info.object_id in self.moved:
            owner = self.owner_of(info.object_id, info.owner)
            if owner != info.owner:
                return RefInfo(object_id=info.object_id, owner=owner, kind=info.kind)
        return info

    # ------------------------------------------------------------------ ids
    def new_task_ids(self) -> tuple[str, str]:
        """A task id and its return object's id, for the API to build a TaskSpec."""
        task_id = self.ids.next("t")
        return task_id, f"{task_id}.r"

    def new_object_id(self) -> str:
        return self.ids.next("p")

    # ------------------------------------------------------------------ entry point
    def handle(self, event: Event) -> list[Effect]:
        effects = self._dispatch(event)
        self.log.append(event, effects)
        return effects

    def _dispatch(self, event: Event) -> list[Effect]:
        if isinstance(event, Received):
            return self._receive(event.src, event.msg)
        if isinstance(event, RemoveLocalRef):
            return self.refs.release_ref(event.object_id)
        if isinstance(event, AddLocalRef):
            return self.refs.add_local_ref(event.object_id, event.owner, event.kind)
        if isinstance(event, GetValue):
            ref = self.refs.get_ref(event.object_id)
            owner = ref.owner if ref is not None else None
            return self.refs.get(event.object_id, Waiter("api" if event.fetch else "located", event.request_id), owner=owner)
        if isinstance(event, CancelGet):
            return self.refs.cancel_waiter(Waiter("api" if event.fetch else "located", event.request_id))
        if isinstance(event, Submit):
            return self.submitter.submit(event.task)
        if isinstance(event, Put):
            return self.refs.put(event.object_id, event.value, event.recoverable)
        if isinstance(event, TaskDone):
            return self.executor.finish_task(event.task_id, value=event.value, error=event.error, calls_in_order=event.calls_in_order)
        if isinstance(event, TaskBlocked):
            return self.executor.blocked(event.task_id, True)
        if isinstance(event, TaskUnblocked):
            return self.executor.blocked(event.task_id, False)
        if isinstance(event, Cancel):
            return self.submitter.cancel(event.object_id)
        if isinstance(event, Tick):
            return self.submitter.tick()
        raise UnexpectedEvent(f"worker core cannot handle {event!r}")

    def _receive(self, src: str, msg: Any) -> list[Effect]:
        if src in self.dead_workers:
            # A message sent before its sender's death arrived after the
            # notification: the scan already accounted for that process.
            self.dropped += 1
            return []
        if not self._from_its_sender(src, msg):
            # A field names the sender, and another process sent it: the
            # answer would go to a process that never asked (or to no
            # process at all), or a death would be believed on hearsay.
            self.dropped += 1
            return []
        if isinstance(msg, TaskReply):
            return self.submitter.handle_reply(msg)
        if isinstance(msg, (PushTask, CancelTask)) and not self.registered and not self.driver:
            return self._before_registration(src, msg)
        if isinstance(msg, PushTask):
            return self.executor.execute(msg)
        if isinstance(msg, LeaseGranted):
            return self.submitter.handle_grant(msg)
        if isinstance(msg, Spillback):
            return self.submitter.handle_spillback(msg)
        if isinstance(msg, LeaseInfeasible):
            return self.submitter.handle_infeasible(msg)
        if isinstance(msg, GetObject):
            return self.refs.handle_get_object(src, msg)
        if isinstance(msg, ObjectValue):
            return self.refs.handle_object_value(src, msg)
        if isinstance(msg, ObjectPending):
            return self.refs.handle_object_pending(src, msg)
        if isinstance(msg, ObjectCopy):
            return self.refs.handle_object_copy(src, msg)
        if isinstance(msg, ObjectStored):
            return self.refs.handle_object_stored(src, msg)
        if isinstance(msg, WaitForRefRemoved):
            return self.refs.handle_wait_for_ref_removed(msg)
        if isinstance(msg, RefRemoved):
            return self.refs.handle_ref_removed(msg)
        if isinstance(msg, AddBorrower):
            return self.refs.handle_add_borrower(msg)
        if isinstance(msg, BorrowerAdded):
            return self.refs.handle_borrower_added(msg)
        if isinstance(msg, RegisterBorrower):
            return self.refs.handle_register_borrower(msg)
        if isinstance(msg, BorrowerRegistered):
            return self.refs.handle_borrower_registered(msg)
        if isinstance(msg, (WorkerDied, NodeDied)):
            return self.failures.handle_failure(msg)
        if isinstance(msg, CancelTask):
            return self.executor.cancel(msg)
        if isinstance(msg, WorkerRegistered):
            return self.handle_registered(msg)
        if isinstance(msg, ObjectLogged):
            return self.submitter.owner_log.handle_object_logged(msg)
        if isinstance(msg, DispatchLogged):
            return self.submitter.owner_log.handle_dispatch_logged(msg)
        if isinstance(msg, (ObjectDeleted, AdoptersGone)):
            return self.refs.handle_object_deleted(msg)
        if isinstance(msg, OwnerMoved):
            return self.failures.handle_owner_moved(msg)
        if isinstance(msg, RecoveryReport):
            return self.takeover.handle_report(msg)
        self.dropped += 1
        return []

    def handle_registered(self, msg: WorkerRegistered) -> list[Effect]:
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

        Our node registered us: we serve from now on, knowing every death
        it has heard of (they were published before we could hear them), and
        where the objects of the dead moved, so that a reference naming a
        dead owner of a moved object is taken to its new owner, not failed.
        """
        if self.registered:
            return []
        self.registered = True
        self.dead_workers.update(w for w in msg.dead_workers if w != self.address)
        self.dead_nodes.update(msg.dead_nodes)
        learn_moves(self.moved, msg.moved)
        self.head = msg.head
        fx: list[Effect] = [Registered()]
        held, self.unregistered_backlog = self.unregistered_backlog, []
        for src, kept in held:
            fx += self._receive(src, kept)
        return fx

    def _before_registration(self, src: str, msg: PushTask | CancelTask) -> list[Effect]:
        r"""A push (or its cancel) that overtook our registration: its owner
        had the grant from our node, which told us we are registered at the
        same time, on another connection. We run tasks only once we know
        the head (a recoverable object of ours is logged there), the dead
        and the moved (OwnerRecovery!WorkerStart: w \in up), so it waits,
        in order; a bounded number (only granted owners push)."""
        if len(self.unregistered_backlog) >= _BACKLOG_KEPT:
            self.dropped += 1
            return []
        self.unregistered_backlog.append((src, msg))
        return []

    def _from_its_sender(self, src: str, msg: Any) -> bool:
        """Whether ``src`` may send ``msg``: whoever asks, answers or grants
        says so in the message, a stored value's reply comes from the node
        that stores it, a task is pushed and cancelled by its owner, and
        deaths and our registration come from our node."""
        check = _SENDER_CHECKS.get(type(msg))
        return check is None or check(self, src, msg)

    # ------------------------------------------------------------------ inspection
    def snapshot(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "node": self.node,
            "driver": self.driver,
            "objects": self.refs.snapshot(),
            "submitter": self.submitter.snapshot(),
            "executor": self.executor.snapshot(),
            "dead_workers": sorted(self.dead_workers),
            "dead_nodes": sorted(self.dead_nodes),
            "recovering": self.takeover.snapshot(),
        }

    def is_idle(self) -> bool:
        """No table entry, task, lease or actor left (the no-leak check)."""
        return not (
            self.refs.table
            or self.submitter.tasks
            or self.submitter.leases
            or self.submitter.keys
            or self.submitter.actors
            or self.executor.running
            or self.takeover.recovering
        )


def _cancelled_by_owner(core: WorkerCore, src: str, msg: CancelTask) -> bool:
    running = core.executor.running.get(msg.task_id)
    return running is None or running.spec.owner == src


def _from_the_owner(core: WorkerCore, src: str, msg: ObjectPending) -> bool:
    ref = core.refs.get_ref(msg.object_id)
    return ref is None or ref.owner == src


#: message type -> whether its sender is the one it claims to be (see _from_its_sender)
_SENDER_CHECKS: dict[type, Any] = {
    TaskReply: lambda core, src, msg: msg.location == src if msg.location is not None else msg.worker == src,
    PushTask: lambda core, src, msg: msg.task.owner == src,
    GetObject: lambda core, src, msg: msg.requester == src,
    ObjectPending: _from_the_owner,
    WaitForRefRemoved: lambda core, src, msg: msg.owner == src,
    RefRemoved: lambda core, src, msg: msg.borrower == src,
    AddBorrower: lambda core, src, msg: msg.borrower == src and msg.owner == core.address,
    BorrowerAdded: lambda core, src, msg: msg.owner == src and msg.borrower == core.address,
    RegisterBorrower: lambda core, src, msg: msg.lender == src and msg.owner == core.address,
    BorrowerRegistered: lambda core, src, msg: msg.owner == src and msg.lender == core.address,
    LeaseGranted: lambda core, src, msg: msg.node == src,
    LeaseInfeasible: lambda core, src, msg: msg.node == src,
    ObjectStored: lambda core, src, msg: msg.node == src,
    CancelTask: _cancelled_by_owner,
    WorkerDied: lambda core, src, msg: src == core.node,
    NodeDied: lambda core, src, msg: src == core.node,
    WorkerRegistered: lambda core, src, msg: src == core.node,
    ObjectLogged: lambda core, src, msg: src == core.head,
    DispatchLogged: lambda core, src, msg: src == core.head,
    ObjectDeleted: lambda core, src, msg: src == core.head,
    AdoptersGone: lambda core, src, msg: src == core.head,
    OwnerMoved: lambda core, src, msg: src == core.node,
    RecoveryReport: lambda core, src, msg: msg.reporter == src and msg.new_owner == core.address,
}
