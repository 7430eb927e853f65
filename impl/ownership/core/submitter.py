"""Task submission at the owner (paper §4.1, fig. 8).

The caller of a task owns its return object. It writes the table entry,
resolves the arguments (small owned values inline, large ones by reference,
pending ones awaited), then asks its local scheduler for a lease. The
scheduler grants a worker or redirects the owner to another node
(spillback). The owner records every new location *before* it dispatches
there, so the pending location of a task is always known to it. Granted
leases are reused for later tasks of the same scheduling key (pipelining up
to ``pipeline_depth``) and returned when the queue is empty, after
``lease_idle_ticks`` ticks. An actor's lease is held for the actor's life.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from .events import Effect, Infeasible, Send
from .messages import (
    Arg,
    CancelTask,
    ErrorInfo,
    FreeObject,
    LeaseGranted,
    LeaseInfeasible,
    LogDispatch,
    LogObject,
    PushTask,
    RequestLease,
    ReturnLease,
    Spillback,
    TaskReply,
    TaskSpec,
)
from .refcount import FAILED, FREED, LOST, PENDING, READY, Reference

if TYPE_CHECKING:  # pragma: no cover
    from .actors import ActorState
    from .worker import WorkerCore

__all__ = ["TaskEntry", "Lease", "KeyState", "ActorState", "TaskSubmitter", "scheduling_key"]

# Task states at the owner.
WAITING, QUEUED, RUNNING, DONE = "waiting", "queued", "running", "done"


@attrs.define(eq=False)
class TaskEntry:
    spec: TaskSpec
    key: tuple
    retries_left: int
    state: str = WAITING
    attempt: int = 0
    location: str | None = None  # requested node while leasing, leased worker while running
    lease_id: str | None = None
    request_id: str | None = None
    deps: set[str] = attrs.Factory(set)  # owned arguments not ready yet
    held: list[str] = attrs.Factory(list)  # submitted-task refs this task holds
    holding: bool = False  # whether ``held`` is currently counted
    cancelled: bool = False
    pushed_at_tick: int = -1  # the owner's tick count when the current attempt was pushed
    logging: bool = False  # recoverable: waits for the head to log it (ObjectLogged)
    #: recoverable: the push held until the head has logged the dispatch (DispatchLogged)
    dispatching: PushTask | None = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "task_id": self.spec.task_id,
            "return_id": self.spec.return_id,
            "kind": self.spec.kind,
            "state": self.state,
            "attempt": self.attempt,
            "retries_left": self.retries_left,
            "location": self.location,
            "lease_id": self.lease_id,
            "request_id": self.request_id,
            "deps": sorted(self.deps),
            "cancelled": self.cancelled,
        }


@attrs.define(eq=False)
class Lease:
    lease_id: str
    worker: str
    node: str
    key: tuple
    running: set[str] = attrs.Factory(set)
    idle_ticks: int = 0


@attrs.define(eq=False)
class KeyState:
    queue: collections.deque = attrs.Factory(collections.deque)
    requests: dict[str, str | None] = attrs.Factory(dict)  # request id -> bound task id
    leases: dict[str, Lease] = attrs.Factory(dict)


#: functions whose last task duration (short or not) the owner remembers
_SHORT_FUNCTIONS_KEPT = 1024


def scheduling_key(spec: TaskSpec) -> tuple:
    """The queue a task waits in for a lease: tasks of one resource shape and
    the same by-reference arguments share leases (a worker that fetched the
    arguments for one can run the next)."""
    if spec.kind == "actor_create":
        return ("actor", spec.task_id)
    deps = tuple(sorted(a.ref.object_id for a in spec.args if a.ref is not None))
    return ("task", spec.resources, deps)


class TaskSubmitter:
    """Owner side of scheduling: tasks, lease requests, leases (actor calls:
    :class:`ActorCalls`)."""

    def __init__(self, worker: WorkerCore) -> None:
        from .actors import ActorCalls  # they read the task states defined here
        from .ownerlog import OwnerLog

        self.worker = worker
        #: the head's answers to our writes to the recovery log
        self.owner_log = OwnerLog(self)
        #: our actors and the calls to any actor
        self.actor_calls = ActorCalls(self)
        self.tasks: dict[str, TaskEntry] = {}
        self.keys: dict[tuple, KeyState] = {}
        self.requests: dict[str, tuple] = {}  # request id -> scheduling key
        self.leases: dict[str, Lease] = {}
        # Ticks seen, and whether each function's last task answered within
        # the tick it was pushed in (short), most recent last: only a short
        # function's task is pipelined behind a busy worker.
        self.ticks = 0
        self.short_functions: collections.OrderedDict[str, bool] = collections.OrderedDict()
        self.waiting_on: dict[str, set[str]] = {}  # owned object -> tasks waiting for it
        #: recoverable objects of ours whose LogObject the head has not
        #: answered: no task or actor call that carries one leaves until it
        #: has (OwnerRecovery!ParentMake writes before sharing); a sync
        #: remote() or put waits for the answer, async code does not
        self.logging_objects: set[str] = set()
        #: such an object -> the tasks and calls that carry it
        self.waiting_on_log: dict[str, set[str]] = {}
        # Objects whose waiting tasks are to be released while some are
        # being released (see dependency_resolved); None when none are.
        self._resolving: collections.deque[Reference] | None = None
        self.request_nodes: dict[str, str] = {}  # lease request -> node it waits at
        self.infeasible: dict[str, str] = {}  # lease request -> node that found no node for it
        self.infeasible_told: set[tuple[str, tuple]] = set()  # (function, resources) the user heard of

    @property
    def actors(self) -> dict[str, ActorState]:
        return self.actor_calls.actors

    @property
    def refs(self):
        return self.worker.refs

    @property
    def address(self) -> str:
        return self.worker.address

    def snapshot(self) -> dict[str, Any]:
        return {
            "tasks": {tid: t.snapshot() for tid, t in sorted(self.tasks.items())},
            "leases": {
                lid: {"worker": l.worker, "node": l.node, "running": sorted(l.running), "idle_ticks": l.idle_ticks}
                for lid, l in sorted(self.leases.items())
            },
            "requests": {rid: self.keys[k].requests.get(rid) for rid, k in sorted(self.requests.items())},
            "queues": {repr(k): list(ks.queue) for k, ks in self.keys.items() if ks.queue},
            "actors": {
                aid: {"worker": a.worker, "node": a.node, "lease_id": a.lease_id, "dead": a.dead is not None, "queue": list(a.queue)}
                for aid, a in sorted(self.actors.items())
            },
            "infeasible": self._infeasible_snapshot(),
        }

    def _infeasible_snapshot(self) -> dict[str, dict[str, Any]]:
        """Lease requests no node can grant, with a task still waiting on them."""
        out = {}
        for rid, node in sorted(self.infeasible.items()):
            task = self._task_of_request(rid)
            if task is None:
                continue  # its tasks were cancelled; the request itself waits on at the node
            ks = self.keys[task.key]
            out[rid] = {
                "node": node,
                "task_id": task.spec.task_id,
                "name": task.spec.name,
                "resources": dict(task.spec.resources),
                "tasks_waiting": len(ks.queue) + sum(1 for t in ks.requests.values() if t),
            }
        return out

    def _task_of_request(self, request_id: str) -> TaskEntry | None:
        """The task a lease request is for: the one bound to it, else the first of its key's queue."""
        key = self.requests.get(request_id)
        ks = self.keys.get(key) if key is not None else None
        if ks is None:
            return None
        task_id = ks.requests.get(request_id) or (ks.queue[0] if ks.queue else None)
        return self.tasks.get(task_id) if task_id else None

    # ------------------------------------------------------------------ submit
    def submit(self, spec: TaskSpec) -> list[Effect]:
        r"""Spec: Scheduling!OwnerSubmit
        Spec: FateSharing!OwnerSubmit
        Spec: Ownership!OwnerSubmit

            \* Scheduling
            OwnerSubmit(o, t) ==
                /\ TaskOwner[t] = o
                /\ OwnerAlive(o)
                /\ status[t] = "new"
                /\ \A u \in Tasks : TaskOwner[u] = o /\ Rank(u) < Rank(t) => status[u] # "new"
                /\ status' = [status EXCEPT ![t] = "queued"]
                /\ queue' = [queue EXCEPT ![o][TaskKey[t]] = Append(@, t)]
                /\ lastAction' = Step("OwnerSubmit", o, t, NoNode, NoWorker, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, schedVars, location, retries, held, deadWorkers,
                               deadNodes, msgs, histVars>>

            \* FateSharing
            OwnerSubmit(o, x) ==
                /\ AtStep(o, "submit")
                /\ StepObj(o) = x
                /\ table' = [table EXCEPT ![o][x] =
                                [st |-> "waiting", worker |-> NoWorker, locs |-> {},
                                 budget |-> Retries[x], err |-> ""]]
                /\ ctx' = [ctx EXCEPT ![o].pc = @ + 1]
                /\ lastAction' = Step("OwnerSubmit", o, x, NoNode, NoMsg)
                /\ UNCHANGED <<up, crashes, status, nodeOf, got, copies, announced,
                               announcedNodes, msgs>>

            \* Ownership
            OwnerSubmit(a, x) ==
                LET e == [ex[a] EXCEPT !.pc = @ + 1]
                    \* A shared reference whose owner is known dead dooms the task at once.
                    doomed == \E y \in SharedArgs[x] : ent[y].owner # Cur(a)
                                                       /\ (brw[a][y].failed \/ brw[a][y].owner \in known[a].p)
                    new == [NoEntry EXCEPT !.owner = Cur(a), !.task = "waiting", !.obj = "pending",
                                           !.budget = Retries[x], !.local = 1]
                    E == [y \in Objects |->
                            IF y = x
                            THEN IF doomed THEN Failed(new, "OwnerDied") ELSE new
                            ELSE IF y \in Holds(x) /\ ent[y].owner = Cur(a) /\ ~doomed
                            THEN [ent[y] EXCEPT !.submitted = @ + 1,
                                                !.lineage = @ + (IF y \in PinnedRefs(x) /\ Retries[x] > 0 THEN 1 ELSE 0)]
                            ELSE ent[y]]
                    settle == Settle(a, E, msgs, IF doomed THEN [why EXCEPT ![x] = "owner"] ELSE why, e)
                IN
                /\ AtStep(a, "submit")
                /\ StepObj(a) = x
                /\ ex' = [ex EXCEPT ![a] = e]
                /\ brw' = IF doomed THEN brw
                          ELSE [brw EXCEPT ![a] = [y \in Objects |->
                                  IF y \in SharedArgs[x] /\ ent[y].owner # Cur(a) THEN [@[y] EXCEPT !.sub = @ + 1] ELSE @[y]]]
                /\ settle
                /\ lastAction' = Step("OwnerSubmit", a, x, NoNode, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, known, got, made>>

        Implementation:

        The caller becomes the owner: it writes the table entry (lineage,
        pending) and the task's argument references, then queues the task
        once its owned arguments exist. An actor call also counts its
        actor's handle as a submitted-task ref (RefCounting!HolderSubmitWithRef
        on the actor's reference), released by the call's reply or failure.
        """
        if spec.owner != self.address:
            raise ValueError(f"task {spec.task_id} is owned by {spec.owner}, not by {self.address}")
        if spec.task_id in self.tasks:
            raise ValueError(f"task {spec.task_id} submitted twice")
        kind = "actor" if spec.kind == "actor_create" else "object"
        ret = self.refs.add_owned(spec.return_id, kind=kind, task_id=spec.task_id)
        ret.local += 1  # the ObjectRef/ActorRef the API hands back
        task = TaskEntry(spec=spec, key=scheduling_key(spec), retries_left=max(0, spec.max_retries))
        self.tasks[spec.task_id] = task
        held: list[str] = []
        for arg in spec.args:
            if arg.ref is not None:
                held.append(arg.ref.object_id)
            if arg.value is not None:
                held.extend(r.object_id for r in arg.value.refs)
        if spec.kind == "actor_method" and spec.actor_id is not None:
            # A call holds its actor as a task holds its arguments (a
            # submitted-task ref): the actor outlives its last handle until
            # every call submitted through it has replied, as in Ray.
            held.append(spec.actor_id)
        task.held = held
        task.holding = True
        fx = self.refs.submit_with_ref(held)
        if spec.max_retries > 0:
            # The lineage pins every object of ours the task takes: its
            # arguments, and those passed inside a value (the task borrows
            # them). A rerun needs them all (Ownership!PinnedRefs): pinning
            # the arguments only, a rerun got a reference to an object this
            # owner had forgotten.
            taken = [a.ref.object_id for a in spec.args if a.ref is not None]
            taken += [r.object_id for a in spec.args if a.value is not None for r in a.value.refs]
            deps = tuple(
                oid for oid in dict.fromkeys(taken) if (r := self.refs.get_ref(oid)) is not None and r.owned
            )
            for dep in deps:
                self.refs.table[dep].lineage += 1
            ret.lineage_deps = deps
        if spec.kind == "actor_create":
            self.actor_calls.creating(spec.return_id)
        if spec.kind == "actor_method":
            return fx + self.actor_calls.submit_call(task)
        if spec.recoverable and spec.kind == "task" and self.worker.logs_recoverable():
            # Logged before it runs or its reference leaves (OwnerRecovery!ParentMake):
            # it waits for the head's ObjectLogged.
            ret.recoverable = True
            self.logging_objects.add(spec.return_id)
            task.logging = True
            log = LogObject(object_id=spec.return_id, owner=self.address, task=spec, retries=task.retries_left)
            return fx + [Send(self.worker.head, log)]
        return fx + self._resolve_dependencies(task)

    def unlogged(self, spec: TaskSpec) -> list[str]:
        """Objects of ours that ``spec`` carries (arguments, and references
        inside argument values) whose log write the head has not answered."""
        if not self.logging_objects:
            return []
        carried = []
        for arg in spec.args:
            if arg.ref is not None:
                carried.append(arg.ref.object_id)
            if arg.value is not None:
                carried += [r.object_id for r in arg.value.refs]
        return sorted(self.unlogged_among(carried))

    def unlogged_among(self, object_ids: Iterable[str]) -> set[str]:
        """Which of ``object_ids``, and of the references inside their values
        at any depth (a put of a list that holds a recoverable reference),
        are objects of ours whose log write the head has not answered: the
        receiver of a value borrows what is inside it too."""
        carried = set(object_ids)
        frontier = list(carried)
        table = self.refs.table
        while frontier:
            entry = table.get(frontier.pop())
            if entry is None:
                continue
            for inner in entry.contains:
                if inner not in carried:
                    carried.add(inner)
                    frontier.append(inner)
        return carried & self.logging_objects

    def wait_for_log(self, task: TaskEntry, unlogged: list[str]) -> None:
        """``task`` leaves once the head has logged each of ``unlogged``."""
        for oid in unlogged:
            self.waiting_on_log.setdefault(oid, set()).add(task.spec.task_id)

    def log_written(self, object_id: str) -> list[Effect]:
        """The head answered the log write of our ``object_id``: the replies,
        tasks and actor calls that carry it may leave (each waits for its other
        unlogged objects, and a task for its arguments, as before)."""
        fx: list[Effect] = []
        self.logging_objects.discard(object_id)
        if self.worker.executor.replies_awaiting_log:
            fx += self.worker.executor.log_written(object_id)
        for task_id in sorted(self.waiting_on_log.pop(object_id, ())):
            task = self.tasks.get(task_id)
            if task is None:
                continue
            if task.spec.kind == "actor_method" and task.state == QUEUED:
                actor = self.actors.get(task.spec.actor_id or "")
                if actor is not None:
                    fx += self.actor_calls.flush_queue(actor)
            elif task.state == WAITING and not task.logging:
                fx += self._resolve_dependencies(task)
        return fx

    def _resolve_dependencies(self, task: TaskEntry) -> list[Effect]:
        """Wait for owned arguments that are pending; recreate lost ones.
        A task that carries an object of ours the head is still logging
        waits for the log first: its holders must find it at the head
        should we die (OwnerRecovery!ParentMake writes before sharing)."""
        fx: list[Effect] = []
        task.state = WAITING
        if unlogged := self.unlogged(task.spec):
            self.wait_for_log(task, unlogged)
            return fx
        task.deps.clear()
        for arg in task.spec.args:
            if arg.ref is None:
                continue
            ref = self.refs.get_ref(arg.ref.object_id)
            if ref is None:
                continue
            if not ref.owned:
                if arg.ref.owner in self.worker.dead_workers:
                    return fx + self._fail(task, _owner_died_error(arg.ref))
                continue
            if ref.status == FAILED:
                return fx + self._fail(task, ref.error)
            if ref.status == READY:
                continue
            task.deps.add(ref.object_id)
            self.waiting_on.setdefault(ref.object_id, set()).add(task.spec.task_id)
        for dep in sorted(task.deps):
            ref = self.refs.table[dep]
            if ref.status in (LOST, FREED):
                fx += self.worker.failures.reconstruct(ref)
        if task.state == WAITING and not task.deps:
            fx += self._enqueue(task)
        return fx

    def dependency_resolved(self, ref: Reference) -> list[Effect]:
        """An owned object became ready or failed: release tasks waiting on it.

        A failed task fails the objects waiting on its own, and so on down a
        lineage: the outermost call takes them from a worklist, so a lineage
        of any length fails without a recursion as deep.
        """
        if not self.waiting_on.get(ref.object_id) or ref.status not in (READY, FAILED):
            return []
        if self._resolving is not None:
            self._resolving.append(ref)
            return []
        self._resolving = collections.deque([ref])
        fx: list[Effect] = []
        try:
            while self._resolving:
                fx += self._release_waiting(self._resolving.popleft())
        finally:
            self._resolving = None
        return fx

    def _release_waiting(self, ref: Reference) -> list[Effect]:
        waiting = self.waiting_on.get(ref.object_id)
        if not waiting or ref.status not in (READY, FAILED):
            return []
        del self.waiting_on[ref.object_id]
        fx: list[Effect] = []
        for task_id in sorted(waiting):
            task = self.tasks.get(task_id)
            if task is None or task.state != WAITING or ref.object_id not in task.deps:
                continue
            if ref.status == FAILED:
                fx += self._fail(task, ref.error)
                continue
            task.deps.discard(ref.object_id)
            if not task.deps:
                fx += self._enqueue(task)
        return fx

    def _enqueue(self, task: TaskEntry) -> list[Effect]:
        task.state = QUEUED
        task.location = None
        ks = self.keys.setdefault(task.key, KeyState())
        ks.queue.append(task.spec.task_id)
        return self._pump(task.key)

    def _pump(self, key: tuple) -> list[Effect]:
        r"""Take every step the key's queue allows now, in spec order.

        Queued tasks go to idle held leases (OwnerReuseLease); what is left
        asks for a lease, one request per key at a time (OwnerRequestLease);
        while that request is out, what is still left is pipelined onto busy
        leases, up to ``pipeline_depth`` tasks in flight on each
        (OwnerReuseLease again). Asking before pipelining keeps two tasks
        from queueing on one worker when a second lease could run them side
        by side. With nothing queued, idle leases go back (OwnerReturnLease,
        at once when ``lease_idle_ticks`` is 0 or any lease request of this
        owner waits, of this key or another: the request may wait at a full
        node for the very CPU the idle lease holds).

        Returning while another key waits needs no spec change:
        Scheduling!OwnerReturnLease is enabled for any held lease whose
        worker is not busy and whose key's queue is empty, whatever other
        keys wait for (``queue[o][TaskKey[h.task]] = <<>> /\ ~Busy(o, w)``),
        and Ownership!OwnerHandleReply, which leaves lease reuse to
        Scheduling, returns every task's lease with its reply.
        """
        ks = self.keys.get(key)
        if ks is None:
            return []
        fx: list[Effect] = []
        leases = sorted(ks.leases.values(), key=lambda l: l.lease_id) if key[0] != "actor" else []
        depth = max(1, self.worker.config.pipeline_depth)
        # Without the request rule (the RefCounting mapping), leases fill up first.
        room = 1 if self.worker.config.pipeline_only_while_requesting else depth
        for lease in leases:
            fx += self._fill(ks, lease, room)
        if ks.queue and len(ks.requests) < max(1, self.worker.config.max_pending_lease_requests):
            if self.worker.config.return_idle_leases_on_request:
                fx += self._return_idle_leases(but=key)
            while ks.queue and len(ks.requests) < max(1, self.worker.config.max_pending_lease_requests):
                fx += self.request_lease(self.tasks[ks.queue[0]])
        for lease in leases if ks.requests else []:
            fx += self._fill(ks, lease, depth)
        if key[0] != "actor" and not ks.queue:
            if self.worker.config.lease_idle_ticks <= 0:
                fx += self._return_idle(ks)
            elif (ks.requests or self.requests) and self.worker.config.return_idle_leases_on_request:
                # A task (of this key or another) waits on a lease request
                # that its node may not grant yet (it is full), while a lease
                # of this key has nothing left to do: give that lease back
                # now, and the node grants the waiting request with its CPU,
                # instead of at the next tick.
                fx += self._return_idle(ks)
        self._gc_key(key)
        return fx

    def _fill(self, ks: KeyState, lease: Lease, room: int) -> list[Effect]:
        """OwnerReuseLease for queued tasks, in order, until ``lease`` has ``room`` in flight or refuses one."""
        fx: list[Effect] = []
        while ks.queue and len(lease.running) < room:
            pushed = self.reuse_lease(lease, self.tasks[ks.queue[0]])
            if not pushed:
                break
            fx += pushed
        return fx

    def _return_idle_leases(self, *, but: tuple) -> list[Effect]:
        """OwnerReturnLease for every idle lease of a key (other than ``but``) with nothing queued."""
        fx: list[Effect] = []
        for key in [k for k in self.keys if k != but and k[0] != "actor" and not self.keys[k].queue]:
            fx += self._return_idle(self.keys[key])
            self._gc_key(key)
        return fx

    def _return_idle(self, ks: KeyState) -> list[Effect]:
        """OwnerReturnLease for each lease of ``ks`` with no task running."""
        fx: list[Effect] = []
        for lease in sorted(ks.leases.values(), key=lambda l: l.lease_id):
            if not lease.running:
                fx += self.return_lease(lease)
        return fx

    def _gc_key(self, key: tuple) -> None:
        ks = self.keys.get(key)
        if ks is not None and not ks.queue and not ks.requests and not ks.leases:
            del self.keys[key]

    # ------------------------------------------------------------------ leases
    def request_lease(self, task: TaskEntry) -> list[Effect]:
        r"""Spec: Scheduling!OwnerRequestLease

            \* Scheduling
            OwnerRequestLease(o, t) ==
                LET k == TaskKey[t] IN
                /\ TaskOwner[t] = o
                /\ OwnerAlive(o)
                /\ queue[o][k] # <<>>
                /\ t = Head(queue[o][k])
                /\ Cardinality(RequestsOut(o, k)) < MaxPendingLeaseRequests
                /\ IdleLeases(o, k) = {}
                /\ queue' = [queue EXCEPT ![o][k] = Tail(@)]
                /\ status' = [status EXCEPT ![t] = "requested"]
                /\ location' = [location EXCEPT ![t] = AtNode(OwnerNode[o])]
                /\ msgs' = msgs \cup {RequestLeaseMsg(o, t, OwnerNode[o])}
                /\ lastAction' = Step("OwnerRequestLease", o, t, NoNode, NoWorker, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, schedVars, retries, held, deadWorkers, deadNodes,
                               histVars>>

        Implementation:

        Ask the local scheduler for a worker; the requested node becomes the
        task's pending location before the request leaves.
        """
        if task.state != QUEUED or task.request_id is not None:
            return []
        ks = self.keys[task.key]
        if task.spec.task_id in ks.queue:
            ks.queue.remove(task.spec.task_id)  # a requested task leaves the queue
        request_id = self.worker.ids.next("q")
        node = self.worker.node
        task.request_id = request_id
        task.location = node
        ks.requests[request_id] = task.spec.task_id
        self.requests[request_id] = task.key
        self.request_nodes[request_id] = node
        deps = tuple(sorted(a.ref.object_id for a in task.spec.args if a.ref is not None))
        msg = RequestLease(
            request_id=request_id,
            owner=self.address,
            task_id=task.spec.task_id,
            resources=task.spec.resources,
            deps=deps,
            actor=task.spec.kind == "actor_create",
        )
        return [Send(node, msg)]

    def handle_spillback(self, msg: Spillback) -> list[Effect]:
        r"""Spec: Scheduling!OwnerHandleSpillback
        Spec: Ownership!OwnerHandleSpillback

            \* Scheduling
            OwnerHandleSpillback(o, m) ==
                LET t == m.task
                    k == TaskKey[t]
                    current == status[t] = "requested" /\ location[t].node = m.node
                IN
                /\ m \in msgs
                /\ m.type = "Spillback"
                /\ m.owner = o
                /\ OwnerAlive(o)
                /\ \/ /\ current
                      /\ m.retry_at \notin deadNodes[o]
                      /\ location' = [location EXCEPT ![t] = AtNode(m.retry_at)]
                      /\ msgs' = (msgs \ {m}) \cup {RequestLeaseMsg(o, t, m.retry_at)}
                      /\ UNCHANGED <<status, queue>>
                   \/ /\ current
                      /\ m.retry_at \in deadNodes[o]
                      /\ status' = [status EXCEPT ![t] = "queued"]
                      /\ location' = [location EXCEPT ![t] = NoLocation]
                      /\ queue' = [queue EXCEPT ![o][k] = <<t>> \o @]
                      /\ msgs' = msgs \ {m}
                   \/ /\ ~current
                      /\ msgs' = msgs \ {m}
                      /\ UNCHANGED <<status, location, queue>>
                /\ lastAction' = Step("OwnerHandleSpillback", o, NoTask, NoNode, NoWorker, NoNode, m)
                /\ UNCHANGED <<envVars, schedVars, retries, held, deadWorkers, deadNodes,
                               histVars>>

            \* Ownership
            OwnerHandleSpillback(a, m) ==
                LET x == m.x
                    e == ent[x]
                    current == e.owner = m.o /\ e.task = "requested" /\ e.req = m.att
                IN
                /\ m \in msgs
                /\ m.type = "Spillback"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ \/ /\ current
                      /\ m.r \notin known[a].n
                      /\ ent' = [ent EXCEPT ![x].loc = [n |-> m.r, w |-> NoProc]]
                      /\ msgs' = (msgs \ {m}) \cup {SpilledRequestMsg(m.o, x, m.att, m.r)}
                   \/ /\ current
                      /\ m.r \in known[a].n
                      /\ ent' = [ent EXCEPT ![x].req = @ + 1, ![x].loc = [n |-> AddrNode(a), w |-> NoProc]]
                      /\ msgs' = (msgs \ {m}) \cup {RequestLeaseMsg(m.o, x, e.req + 1, AddrNode(a))}
                   \/ /\ ~current
                      /\ msgs' = msgs \ {m}
                      /\ UNCHANGED ent
                /\ lastAction' = Step("OwnerHandleSpillback", a, x, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made, why>>

        Implementation:

        The scheduler redirected the request: record the new node as the
        pending location, then ask that node's scheduler.
        """
        key = self.requests.get(msg.request_id)
        if key is None:
            return []  # the request was given up (its task resubmitted)
        ks = self.keys[key]
        task_id = ks.requests[msg.request_id]
        task = self.tasks.get(task_id) if task_id else None
        current = task is not None and task.state == QUEUED and task.request_id == msg.request_id
        if not current or msg.node in self.worker.dead_nodes:
            # Nobody needs this lease any more, or the node we are sent to is
            # known dead: the task goes back to the head of its queue.
            fx = self._forget_request(msg.request_id)
            if current:
                assert task is not None
                task.location = None
                ks.queue.appendleft(task.spec.task_id)
            return fx + self._pump(key)
        assert task is not None
        task.location = msg.node  # recorded before the request leaves
        self.infeasible.pop(msg.request_id, None)  # a node that can run it was found
        resources = task.spec.resources if task is not None else key[1]
        deps = key[2] if key[0] == "task" else ()
        req = RequestLease(
            request_id=msg.request_id,
            owner=self.address,
            task_id=task_id or "",
            resources=resources,
            deps=deps,
            spilled=True,
            actor=key[0] == "actor",
        )
        self.request_nodes[msg.request_id] = msg.node
        return [Send(msg.node, req)]

    def handle_grant(self, msg: LeaseGranted) -> list[Effect]:
        r"""Spec: Scheduling!OwnerHandleGrant
        Spec: FateSharing!OwnerDispatch
        Spec: Ownership!OwnerHandleGrant

            \* Scheduling
            OwnerHandleGrant(o, m) ==
                LET t == m.task
                    w == m.worker
                    k == TaskKey[t]
                    current == status[t] = "requested" /\ location[t].node = m.node
                    knownDead == w \in deadWorkers[o] \/ WorkerNode[w] \in deadNodes[o]
                IN
                /\ m \in msgs
                /\ m.type = "LeaseGranted"
                /\ m.owner = o
                /\ OwnerAlive(o)
                /\ \/ /\ current
                      /\ ~knownDead
                      /\ location' = [location EXCEPT ![t] = AtWorker(w)]
                      /\ status' = [status EXCEPT ![t] = "pushed"]
                      /\ held' = [held EXCEPT ![o] = @ \cup {[worker |-> w, owner |-> o, task |-> t]}]
                      /\ msgs' = (msgs \ {m}) \cup {PushTaskMsg(o, t, w)}
                      /\ UNCHANGED queue
                   \/ /\ current
                      /\ knownDead
                      /\ status' = [status EXCEPT ![t] = "queued"]
                      /\ location' = [location EXCEPT ![t] = NoLocation]
                      /\ queue' = [queue EXCEPT ![o][k] = <<t>> \o @]
                      /\ msgs' = msgs \ {m}
                      /\ UNCHANGED held
                   \/ /\ ~current
                      /\ msgs' = msgs \ {m}
                      /\ UNCHANGED <<status, location, queue, held>>
                /\ lastAction' = Step("OwnerHandleGrant", o, NoTask, NoNode, NoWorker, NoNode, m)
                /\ UNCHANGED <<envVars, schedVars, retries, deadWorkers, deadNodes,
                               histVars>>

            \* FateSharing
            OwnerDispatch(o, x, n) ==
                /\ Alive(o)
                /\ x \in DOMAIN table[o]
                /\ table[o][x].st = "waiting"
                /\ \A y \in Args[x] : table[o][y].st \in {"ready", "error"}
                /\ n = PlaceOf(x)
                /\ FreeExecs(x) # {}
                /\ LET w == <<x, NextExec(x)>>
                   IN /\ table' = [table EXCEPT ![o][x].st = "pending", ![o][x].worker = w]
                      /\ status' = [status EXCEPT ![w] = "alive"]
                      /\ nodeOf' = [nodeOf EXCEPT ![w] = n]
                      /\ msgs' = msgs \cup {PushTaskMsg(x, o, w, n, SharedRefs(o, x))}
                /\ lastAction' = Step("OwnerDispatch", o, x, n, NoMsg)
                /\ UNCHANGED <<up, crashes, ctx, got, copies, announced, announcedNodes>>

            \* Ownership
            OwnerHandleGrant(a, m) ==
                LET x == m.x
                    e == ent[x]
                    current == e.owner = m.o /\ e.task = "requested" /\ e.req = m.att
                    knownDead == m.w \in known[a].p \/ m.n \in known[a].n
                IN
                /\ m \in msgs
                /\ m.type = "LeaseGranted"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ \/ /\ current
                      /\ ~knownDead
                      /\ ent' = [ent EXCEPT ![x].task = "pushed", ![x].att = @ + 1, ![x].loc = [n |-> m.n, w |-> m.w]]
                      /\ msgs' = (msgs \ {m}) \cup {PushTaskMsg(m.o, x, e.att + 1, m.w,
                                                                 {[y |-> y, o |-> RefOwner(a, y), held |-> FALSE] : y \in SharedArgs[x]})}
                   \/ /\ current
                      /\ knownDead
                      /\ ent' = [ent EXCEPT ![x].req = @ + 1, ![x].loc = [n |-> AddrNode(a), w |-> NoProc]]
                      /\ msgs' = (msgs \ {m}) \cup {RequestLeaseMsg(m.o, x, e.req + 1, AddrNode(a))}
                   \/ /\ ~current
                      /\ ent' = ent
                      /\ msgs' = (msgs \ {m}) \cup (IF knownDead THEN {} ELSE {ReturnLeaseMsg(m.w)})
                /\ lastAction' = Step("OwnerHandleGrant", a, x, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made, why>>

        Implementation:

        A worker is leased to us: record the worker as the task's location,
        then push the task to it directly.
        """
        if msg.lease_id in self.leases:
            return []  # a duplicate of a grant we already use
        key = self.requests.get(msg.request_id)
        if key is None:
            # A grant nobody waits for (the request was given up): give it back.
            return [Send(msg.node, ReturnLease(lease_id=msg.lease_id, worker=msg.worker))]
        ks = self.keys[key]
        task_id = ks.requests[msg.request_id]
        task = self.tasks.get(task_id) if task_id else None
        current = task is not None and task.state == QUEUED and task.request_id == msg.request_id
        fx: list[Effect] = self._forget_request(msg.request_id)
        if msg.worker in self.worker.dead_workers or msg.node in self.worker.dead_nodes:
            # A worker we know is dead: its scheduler dropped the lease when it
            # published the death. The task goes back to the head of its queue.
            if current:
                assert task is not None
                task.location = None
                ks.queue.appendleft(task.spec.task_id)
            return fx + self._pump(key)
        lease = Lease(lease_id=msg.lease_id, worker=msg.worker, node=msg.node, key=key)
        self.leases[lease.lease_id] = lease
        if key[0] == "actor":
            actor = self.actors.get(task.spec.return_id) if task is not None else None
            if not current or actor is None:
                del self.leases[lease.lease_id]
                self._gc_key(key)
                return fx + [Send(msg.node, ReturnLease(lease_id=msg.lease_id, worker=msg.worker, kill=True))]
            assert task is not None
            actor.lease_id, actor.node = lease.lease_id, lease.node
            ks.leases[lease.lease_id] = lease
            return fx + self._dispatch(lease, task)
        ks.leases[lease.lease_id] = lease
        if not current:
            task = self.tasks[ks.queue[0]] if ks.queue else None
        if task is None:
            return fx + self.return_lease(lease) + self._pump(key)
        fx += self._dispatch(lease, task)
        fx += self._pump(key)
        return fx

    def handle_infeasible(self, msg: LeaseInfeasible) -> list[Effect]:
        """The scheduler has no node for a request of ours: tell the user.

        Not a protocol step: the request still waits at that node (a node
        with the resources may join), and nothing in the table changes. The
        user hears of it once per function and resource shape.
        """
        if self.request_nodes.get(msg.request_id) != msg.node:
            return []  # answered, given up, or sent elsewhere since
        self.infeasible[msg.request_id] = msg.node
        task = self._task_of_request(msg.request_id)
        if task is None:
            return []
        told = (task.spec.name or task.spec.function_id, task.spec.resources)
        if told in self.infeasible_told:
            return []
        if len(self.infeasible_told) < _SHORT_FUNCTIONS_KEPT:
            self.infeasible_told.add(told)
        return [Infeasible(task_id=task.spec.task_id, name=told[0], resources=task.spec.resources, node=msg.node, kind=task.spec.kind)]

    def _forget_request(self, request_id: str) -> list[Effect]:
        """A lease request is answered or given up: unbind it from its task."""
        key = self.requests.pop(request_id, None)
        self.request_nodes.pop(request_id, None)
        self.infeasible.pop(request_id, None)
        if key is None:
            return []
        ks = self.keys.get(key)
        task_id = ks.requests.pop(request_id, None) if ks is not None else None
        task = self.tasks.get(task_id) if task_id else None
        if task is not None and task.request_id == request_id:
            task.request_id = None
        return []

    def reuse_lease(self, lease: Lease, task: TaskEntry) -> list[Effect]:
        r"""Spec: Scheduling!OwnerReuseLease

            \* Scheduling
            OwnerReuseLease(o, w, t) ==
                LET k == TaskKey[t] IN
                /\ TaskOwner[t] = o
                /\ OwnerAlive(o)
                /\ \E h \in held[o] : h.worker = w /\ TaskKey[h.task] = k
                /\ \/ ~Busy(o, w)
                   \/ Cardinality(InFlight(o, w)) < PipelineDepth /\ Requesting(o, k)
                /\ queue[o][k] # <<>>
                /\ t = Head(queue[o][k])
                /\ queue' = [queue EXCEPT ![o][k] = Tail(@)]
                /\ status' = [status EXCEPT ![t] = "pushed"]
                /\ location' = [location EXCEPT ![t] = AtWorker(w)]
                /\ msgs' = msgs \cup {PushTaskMsg(o, t, w)}
                /\ lastAction' = Step("OwnerReuseLease", o, t, NoNode, w, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, schedVars, retries, held, deadWorkers, deadNodes,
                               histVars>>

        Implementation:

        A leased worker of the same scheduling key is idle, or has room for
        one more task while the owner waits for another lease of the key: the
        owner bypasses the scheduler and dispatches the next queued task to
        it. The worker runs the tasks it holds one at a time
        (``TaskExecutor._maybe_start``).

        The spec lets the owner pipeline; the owner does so only for a task
        whose function's last task answered within the tick it was pushed
        in (``pipeline_short_tasks_only``). A task that queues behind a long
        one waits for it even if a lease granted meanwhile idles, while
        behind a short one it saves the reply->push round trip.
        """
        if task.state != QUEUED or lease.key != task.key:
            return []
        if len(lease.running) >= max(1, self.worker.config.pipeline_depth):
            return []
        if lease.running:
            config = self.worker.config
            ks = self.keys.get(task.key)
            if config.pipeline_only_while_requesting and not (ks is not None and ks.requests):
                return []
            if config.pipeline_short_tasks_only and not self.short_functions.get(task.spec.function_id, False):
                return []
        return self._dispatch(lease, task)

    def _dispatch(self, lease: Lease, task: TaskEntry) -> list[Effect]:
        ks = self.keys.get(task.key)
        if ks is not None and task.spec.task_id in ks.queue:
            ks.queue.remove(task.spec.task_id)
        task.request_id = None
        task.state = RUNNING
        task.location = lease.worker  # recorded before the task leaves
        task.lease_id = lease.lease_id
        task.attempt += 1
        task.pushed_at_tick = self.ticks
        lease.running.add(task.spec.task_id)
        lease.idle_ticks = 0
        spec = self._resolved_spec(task)
        if spec.recoverable:
            ret = self.refs.get_ref(spec.return_id)
            epoch = ret.epoch if ret is not None else 0
            push = PushTask(task=spec, lease_id=lease.lease_id, attempt=task.attempt, epoch=epoch)
            if ret is not None and ret.recoverable and self.worker.logs_recoverable():
                # The head logs where it runs before it runs (OwnerRecovery!OwnerDispatch).
                task.dispatching = push
                log = LogDispatch(object_id=spec.return_id, epoch=epoch, owner=self.address, worker=lease.worker, attempt=task.attempt)
                return [Send(self.worker.head, log)]
            return [Send(lease.worker, push)]
        return [Send(lease.worker, PushTask(task=spec, lease_id=lease.lease_id, attempt=task.attempt))]

    def _resolved_spec(self, task: TaskEntry) -> TaskSpec:
        """Inline owned arguments that are small and ready (DESIGN §2)."""
        args: list[Arg] = []
        changed = False
        for arg in task.spec.args:
            if arg.ref is not None:
                ref = self.refs.get_ref(arg.ref.object_id)
                if (
                    ref is not None
                    and ref.owned
                    and ref.kind == "object"
                    and ref.value is not None
                    and ref.value.size <= self.worker.config.inline_threshold
                ):
                    args.append(Arg(value=ref.value, name=arg.name))
                    changed = True
                    continue
            args.append(arg)
        return attrs.evolve(task.spec, args=tuple(args)) if changed else task.spec

    def return_lease(self, lease: Lease) -> list[Effect]:
        r"""Spec: Scheduling!OwnerReturnLease

            \* Scheduling
            OwnerReturnLease(o, w) ==
                /\ OwnerAlive(o)
                /\ \E h \in held[o] :
                    /\ h.worker = w
                    /\ queue[o][TaskKey[h.task]] = <<>>
                    /\ ~Busy(o, w)
                    /\ held' = [held EXCEPT ![o] = @ \ {h}]
                    /\ msgs' = msgs \cup {ReturnLeaseMsg(o, TaskKey[h.task], w)}
                /\ lastAction' = Step("OwnerReturnLease", o, NoTask, NoNode, w, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, schedVars, status, location, retries, queue,
                               deadWorkers, deadNodes, histVars>>

        Implementation:

        No queued task of the lease's scheduling key is left and the worker
        runs nothing (the idle timeout passed, or a lease request of this
        owner waits; see ``_pump``): give the worker back to its scheduler.
        """
        if lease.running or lease.lease_id not in self.leases:
            return []
        del self.leases[lease.lease_id]
        ks = self.keys.get(lease.key)
        if ks is not None:
            ks.leases.pop(lease.lease_id, None)
            self._gc_key(lease.key)
        if lease.node in self.worker.dead_nodes or lease.worker in self.worker.dead_workers:
            return []
        return [Send(lease.node, ReturnLease(lease_id=lease.lease_id, worker=lease.worker))]

    def tick(self) -> list[Effect]:
        """Idle leases age by one tick; old enough ones are returned."""
        self.ticks += 1
        fx: list[Effect] = []
        for lease in sorted(self.leases.values(), key=lambda l: l.lease_id):
            if lease.key[0] == "actor" or lease.running:
                continue
            ks = self.keys.get(lease.key)
            if ks is not None and ks.queue:
                continue
            lease.idle_ticks += 1
            if lease.idle_ticks >= self.worker.config.lease_idle_ticks:
                fx += self.return_lease(lease)
        return fx

    # ------------------------------------------------------------------ replies
    def handle_reply(self, msg: TaskReply) -> list[Effect]:
        r"""Spec: Scheduling!OwnerHandleReply
        Spec: OwnerRecovery!OwnerHandleReply
        Spec: OwnerRecovery!DriverHandleParentDone
        Spec: FateSharing!OwnerHandleReply
        Spec: Ownership!OwnerHandleReply

            \* Scheduling
            OwnerHandleReply(o, m) ==
                LET t == m.task IN
                /\ m \in msgs
                /\ m.type = "TaskReply"
                /\ m.owner = o
                /\ OwnerAlive(o)
                /\ IF status[t] = "pushed" /\ location[t].worker = m.worker
                   THEN /\ status' = [status EXCEPT ![t] = "done"]
                        /\ location' = [location EXCEPT ![t] = NoLocation]
                   ELSE UNCHANGED <<status, location>>
                /\ msgs' = msgs \ {m}
                /\ lastAction' = Step("OwnerHandleReply", o, NoTask, NoNode, NoWorker, NoNode, m)
                /\ UNCHANGED <<envVars, schedVars, retries, queue, held, deadWorkers,
                               deadNodes, histVars>>

            \* OwnerRecovery
            OwnerHandleReply(p, m) ==
                /\ m \in msgs
                /\ m.type = "TaskReply"
                /\ m.dst = p
                /\ p \in up
                /\ HeardOf(p, m)
                /\ msgs' = msgs \ {m}
                /\ LET e == ent[p][m.x]
                       at == IF Inline[m.x] THEN p ELSE m.w
                       kept == IF Inline[m.x] /\ m.err = ""
                               THEN copies \cup {[x |-> m.x, n |-> p, o |-> p, ep |-> m.ep, val |-> m.val]}
                               ELSE copies
                   IN
                   IF e.ep = m.ep /\ e.st = "pending" /\ e.loc = m.w
                   THEN /\ ent' = [ent EXCEPT ![p][m.x] = IF m.err = "" THEN [@ EXCEPT !.st = "ready", !.locs = {at}]
                                                                          ELSE [@ EXCEPT !.st = "failed"]]
                        /\ why' = IF m.err = "" THEN why ELSE [why EXCEPT ![m.x] = IF @ = "" THEN m.err ELSE @]
                        /\ copies' = kept
                   ELSE IF e.ep = m.ep /\ e.st = "recovering" /\ m.err = ""
                   THEN /\ ent' = [ent EXCEPT ![p][m.x].locs = @ \cup {at}]
                        /\ copies' = kept
                        /\ UNCHANGED <<why, odied>>
                   ELSE /\ copies' = IF m.err = "" /\ ~Inline[m.x] /\ ~(e.ep = m.ep /\ m.w \in e.locs)
                                     THEN {c \in copies : ~(c.x = m.x /\ c.n = m.w /\ c.o = p /\ c.ep = m.ep)}
                                     ELSE copies
                        /\ UNCHANGED <<ent, why, odied>>
                /\ lastAction' = Step("OwnerHandleReply", p, m.x, m)
                /\ UNCHANGED <<joined, up, crashes, declared, log, brw, dk, mv, gst, run, fin, par, pb, got, created, made, odied>>

            \* OwnerRecovery
            DriverHandleParentDone(m) ==
                /\ m \in msgs
                /\ m.type = "ParentDone"
                /\ msgs' = msgs \ {m}
                /\ par' = IF par.st = "running" /\ par.att = m.ep THEN [par EXCEPT !.st = "done"] ELSE par
                /\ lastAction' = Step("DriverHandleParentDone", Driver, NoObj, m)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, copies, pb, got,
                               created, made, why, odied>>

            \* FateSharing
            OwnerHandleReply(o) ==
                \E m \in msgs :
                   /\ m.type = "TaskReply"
                   /\ m.dst = o
                   /\ Alive(o)
                   /\ msgs' = msgs \ {m}
                   /\ IF table[o][m.task].st = "pending" /\ table[o][m.task].worker = m.worker
                      THEN table' = [table EXCEPT ![o][m.task] =
                                       IF m.err = ""
                                       THEN [@ EXCEPT !.st = "ready", !.locs = {m.node}]
                                       ELSE [@ EXCEPT !.st = "error", !.err = m.err]]
                      ELSE UNCHANGED table
                   /\ lastAction' = Step("OwnerHandleReply", o, m.task, NoNode, m)
                   /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, copies, announced,
                                  announcedNodes>>

            \* Ownership
            OwnerHandleReply(a, m) ==
                LET x == m.x
                    e == ent[x]
                    current == e.owner = m.o /\ e.task = "pushed" /\ e.att = m.att /\ e.loc.w = m.w
                    \* a call cancelled while it ran: its reply only lets go of its refs
                    \* (the value, if any, is freed); an actor is ready where it runs:
                    \* its worker (it has no copy)
                    cancelled == e.task = "pushed" /\ e.obj = "failed"
                    done == IF cancelled
                            THEN [e EXCEPT !.task = "done", !.loc = NoLoc]
                            ELSE IF m.err = "" /\ Kind[x] = "actor"
                            THEN [e EXCEPT !.task = "done", !.obj = "ready", !.host = m.w, !.loc = NoLoc, !.waiters = {}]
                            ELSE IF m.err = ""
                            THEN [e EXCEPT !.task = "done", !.obj = "ready", !.locs = @ \cup {m.n}, !.loc = NoLoc, !.waiters = {}]
                            ELSE Failed(e, m.err)
                    keep == e.owner = m.o /\ m.err = "" /\ m.n # NoNode /\ e.obj \in {"pending", "ready", "lost"}
                    \* the executor still borrows these references of ours (unless the
                    \* owner has heard it died: the reply outlived its sender)
                    held == IF m.w \in known[a].p THEN {}
                            ELSE {r.y : r \in {r \in m.refs : r.held /\ ent[r.y].owner = Cur(a)}}
                    mine == Holds(x)
                    E0 == [z \in Objects |-> IF z \in held THEN [ent[z] EXCEPT !.borrowers = @ \cup {m.w}] ELSE ent[z]]
                    E == IF current
                         THEN [z \in Objects |->
                                 IF z = x THEN done
                                 ELSE IF z \in mine /\ E0[z].owner = Cur(a) THEN [E0[z] EXCEPT !.submitted = @ - 1]
                                 ELSE E0[z]]
                         ELSE IF keep
                         THEN [E0 EXCEPT ![x].locs = @ \cup {m.n},
                                         ![x].obj = IF e.obj = "lost" /\ ~Pending(e) THEN "ready" ELSE @]
                         ELSE E0
                    \* the task's submitted-task refs on what it borrowed itself
                    B == [y \in Objects |->
                            IF current /\ y \in SharedArgs[x] /\ ent[y].owner # Cur(a)
                            THEN [brw[a][y] EXCEPT !.sub = @ - 1] ELSE brw[a][y]]
                    M == (IF current
                          \* (an actor keeps its lease; a call has none of its own)
                          THEN (msgs \ {m}) \cup (IF Kind[x] = "task" THEN {ReturnLeaseMsg(m.w)} ELSE {})
                               \cup (IF cancelled /\ m.n # NoNode THEN {FreeObjectMsg(x, m.n)} ELSE {})
                               \cup {ObjectValueMsg(x, m.o, w, done.locs, done.err) : w \in e.waiters}
                          ELSE IF keep \/ m.n = NoNode THEN msgs \ {m}
                          ELSE (msgs \ {m}) \cup {FreeObjectMsg(x, m.n)})
                         \cup {WaitForRefRemovedMsg(y, Cur(a), m.w) : y \in held}
                         \cup Answered(a, B)
                    W == IF current /\ m.err # "" /\ ~cancelled
                         THEN [why EXCEPT ![x] = CASE m.err = "OwnerDied" -> "owner" [] m.err = "ActorDied" -> "actor" [] OTHER -> "arg"]
                         ELSE why
                    settle == Settle(a, E, M, W, ex[a])
                IN
                /\ m \in msgs
                /\ m.type = "TaskReply"
                /\ m.dst = Cur(a)
                /\ IsUp(Cur(a))
                /\ brw' = [brw EXCEPT ![a] = Released(B)]
                /\ settle
                /\ made' = IF current /\ m.err = "" /\ ~cancelled THEN made \cup {x} ELSE made
                /\ lastAction' = Step("OwnerHandleReply", a, x, NoNode, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, got>>

        Implementation:

        The task finished: store its result in the table (value inline, or
        the node holding the copy), merge the executor's borrowed refs,
        release the task's references, and reuse or return the lease.
        """
        fx: list[Effect] = []
        lease = self.leases.get(msg.lease_id) if msg.lease_id else None
        task = self.tasks.get(msg.task_id)
        if task is not None and task.spec.recoverable:
            ret = self.refs.get_ref(task.spec.return_id)
            if ret is not None and ret.epoch != msg.epoch:
                # A run pushed at another epoch (by the dead owner): its
                # result went to a store pinned for that owner, which freed it.
                return []
        if lease is not None and msg.task_id in lease.running:
            lease.running.discard(msg.task_id)
            lease.idle_ticks = 0
        current = task is not None and task.state == RUNNING and msg.attempt == task.attempt
        if not current:
            fx += self._late_reply(msg)
            fx += self.refs.handle_reply(msg.worker, [], msg.borrowed)
            if lease is not None:
                fx += self._pump(lease.key)
            return fx
        assert task is not None
        task.state = DONE
        task.location = None
        self._remember_duration(task)
        ret = self.refs.get_ref(task.spec.return_id)
        if task.spec.kind == "actor_create":
            fx += self.actor_calls.created(task, msg)
        elif ret is not None and not task.cancelled:
            if msg.error is not None:
                fx += self.refs.set_failed(ret, msg.error)
            else:
                fx += self.refs.set_ready(ret, value=msg.value, location=msg.location, refs=msg.refs)
        elif msg.location is not None:
            fx.append(Send(msg.location, FreeObject(object_id=msg.return_id)))
        fx += self.refs.handle_reply(msg.worker, task.held if task.holding else [], msg.borrowed)
        task.holding = False
        if lease is not None and lease.key[0] != "actor":
            fx += self._pump(lease.key)
        fx += self._maybe_forget(task)
        return fx

    def _remember_duration(self, task: TaskEntry) -> None:
        """Whether the task answered within the tick it was pushed in, by function.

        Only plain tasks are pipelined, so only theirs are kept (an actor's
        calls would crowd them out)."""
        if task.spec.kind != "task":
            return
        fid = task.spec.function_id
        self.short_functions[fid] = task.pushed_at_tick == self.ticks
        self.short_functions.move_to_end(fid)
        if len(self.short_functions) > _SHORT_FUNCTIONS_KEPT:
            self.short_functions.popitem(last=False)

    def _late_reply(self, msg: TaskReply) -> list[Effect]:
        """A reply for an attempt we gave up on: keep or free its stored copy.

        The copy is kept as a location of the object, but while the task
        runs again the object waits for that run (FateSharing!OwnerHandleReply
        drops a stale reply), and a copy on a node known dead is gone.
        """
        if msg.location is None or msg.location in self.worker.dead_nodes:
            return []
        ref = self.refs.get_ref(msg.return_id)
        if ref is not None and ref.owned and ref.in_scope() and ref.status in (READY, PENDING, LOST) and msg.error is None:
            ref.locations.add(msg.location)
            task = self.tasks.get(msg.task_id)
            rerun = task is not None and task.state in (WAITING, QUEUED, RUNNING)
            if ref.status != READY and not rerun:
                return self.refs.set_ready(ref, location=msg.location, refs=msg.refs)
            return []
        return [Send(msg.location, FreeObject(object_id=msg.return_id))]

    def _maybe_forget(self, task: TaskEntry) -> list[Effect]:
        ret = self.refs.get_ref(task.spec.return_id)
        if ret is None and task.state in (DONE, FAILED) and self.tasks.get(task.spec.task_id) is task:
            del self.tasks[task.spec.task_id]
        return []

    def forget_lineage(self, ref: Reference) -> list[Effect]:
        """An object left the table: its task's lineage (and actor record) go too."""
        task = self.tasks.get(ref.task_id) if (ref.owned and ref.task_id) else None
        if task is not None and task.state in (DONE, FAILED):
            del self.tasks[task.spec.task_id]
        if ref.kind == "actor":
            actor = self.actors.get(ref.object_id)
            if actor is not None and actor.lease_id is None and not actor.queue:
                del self.actors[ref.object_id]
        return []

    def _fail(self, task: TaskEntry, error: ErrorInfo | None) -> list[Effect]:
        """The task will not produce its value: fail the return object."""
        error = error or ErrorInfo(kind="object_lost", message=f"task {task.spec.task_id} failed")
        ks = self.keys.get(task.key)
        if ks is not None and task.spec.task_id in ks.queue:
            ks.queue.remove(task.spec.task_id)
        if task.request_id is not None and ks is not None and task.request_id in ks.requests:
            ks.requests[task.request_id] = None
        task.request_id = None
        for dep in task.deps:
            waiting = self.waiting_on.get(dep)
            if waiting is not None:
                waiting.discard(task.spec.task_id)
                if not waiting:
                    del self.waiting_on[dep]
        task.deps.clear()
        task.state = FAILED
        task.location = None
        fx: list[Effect] = []
        if task.spec.kind == "actor_create":
            actor = self.actors.get(task.spec.return_id)
            if actor is not None:
                fx += self.actor_calls.dead(actor, error)
        ret = self.refs.get_ref(task.spec.return_id)
        if ret is not None and ret.status != FAILED:
            fx += self.refs.set_failed(ret, error)
        if task.holding:
            task.holding = False
            fx += self.refs.release_submitted(task.held)
        fx += self._pump(task.key) if task.key in self.keys else []
        fx += self._maybe_forget(task)
        return fx

    # ------------------------------------------------------------------ cancel
    def cancel(self, object_id: str) -> list[Effect]:
        r"""Spec: Ownership!HolderCancel

            \* Ownership
            HolderCancel(a, x) ==
                LET e == [ex[a] EXCEPT !.pc = @ + 1]
                    t == ent[x]
                    r == Target[x]
                    queued == t.task = "waiting"
                    running == t.task = "pushed" /\ t.obj = "pending"
                    E == IF queued
                         THEN [z \in Objects |->
                                 IF z = x THEN Failed(t, "Cancelled")
                                 ELSE IF z = r THEN [ent[r] EXCEPT !.submitted = @ - 1]
                                 ELSE ent[z]]
                         ELSE IF running
                         THEN [ent EXCEPT ![x].obj = "failed", ![x].err = "Cancelled", ![x].waiters = {}]
                         ELSE ent
                    settle == Settle(a, E, msgs \cup (IF queued \/ running THEN Answers(x, t, "Cancelled") ELSE {}),
                                     IF queued \/ running THEN [why EXCEPT ![x] = "cancelled"] ELSE why, e)
                IN
                /\ AtStep(a, "cancel")
                /\ StepObj(a) = x
                /\ ent[x].owner = Cur(a)
                /\ ex' = [ex EXCEPT ![a] = e]
                /\ chan' = IF running /\ t.loc.w \notin known[a].p
                           THEN [chan EXCEPT ![r] = Append(@, [x |-> x, o |-> Cur(a), att |-> t.att, w |-> t.loc.w, cancel |-> TRUE])]
                           ELSE chan
                /\ settle
                /\ lastAction' = Step("HolderCancel", a, x, NoNode, NoMsg)
                /\ UNCHANGED <<actorLog, envVars, headVars, nodeVars, known, brw, got, made>>

        Implementation:

        ``ownership.cancel``: fail the return object now; stop the task if
        it runs (the worker hears of it by message, after the task itself:
        an actor's call queued there may start first).
        """
        ref = self.refs.get_ref(object_id)
        if ref is None or not ref.owned or ref.task_id is None:
            return []
        task = self.tasks.get(ref.task_id)
        if task is None or task.state not in (WAITING, QUEUED, RUNNING):
            return []
        error = ErrorInfo(kind="cancelled", message=f"task {task.spec.task_id} was cancelled")
        if task.state == RUNNING:
            task.cancelled = True
            fx: list[Effect] = []
            if task.location is not None and task.location not in self.worker.dead_workers:
                fx.append(Send(task.location, CancelTask(task_id=task.spec.task_id)))
            return fx + self.refs.set_failed(ref, error)
        return self._fail(task, error)

    # ------------------------------------------------------------------ failures
    def handle_failure(self, dead_workers: set[str], dead_nodes: set[str]) -> list[Effect]:
        r"""Spec: Scheduling!OwnerHandleFailure

            \* Scheduling
            OwnerHandleFailure(o, m) ==
                /\ m \in msgs
                /\ m.owner = o
                /\ OwnerAlive(o)
                /\ m.type \in {"WorkerDied", "NodeDied"}
                /\ IF m.type = "WorkerDied"
                   THEN /\ deadWorkers' = [deadWorkers EXCEPT ![o] = @ \cup {m.worker}]
                        /\ held' = [held EXCEPT ![o] = {h \in @ : h.worker # m.worker}]
                        /\ UNCHANGED deadNodes
                   ELSE /\ deadNodes' = [deadNodes EXCEPT ![o] = @ \cup {m.node}]
                        /\ held' = [held EXCEPT ![o] = {h \in @ : WorkerNode[h.worker] # m.node}]
                        /\ UNCHANGED deadWorkers
                /\ msgs' = msgs \ {m}
                /\ lastAction' = Step("OwnerHandleFailure", o, NoTask, NoNode, NoWorker, NoNode, m)
                /\ UNCHANGED <<envVars, schedVars, status, location, retries, queue,
                               histVars>>

        Implementation:

        A worker or node died: leases there are gone, lease requests waiting
        at a dead node are asked again, and every task whose pending location
        was the dead worker is resubmitted (or fails when out of retries).
        """
        fx: list[Effect] = []
        for lease in sorted(self.leases.values(), key=lambda l: l.lease_id):
            if lease.worker in dead_workers or lease.node in dead_nodes:
                del self.leases[lease.lease_id]
                ks = self.keys.get(lease.key)
                if ks is not None:
                    ks.leases.pop(lease.lease_id, None)
        for request_id, node in sorted(self.request_nodes.items()):
            key = self.requests.get(request_id)
            if node in dead_nodes and key is not None and self.keys[key].requests.get(request_id) is None:
                fx += self._forget_request(request_id)  # nobody waits on it
        for actor in sorted(self.actors.values(), key=lambda a: a.actor_id):
            if actor.dead is None and actor.worker is not None and (actor.worker in dead_workers or actor.node in dead_nodes):
                fx += self.actor_calls.dead(
                    actor, ErrorInfo(kind="actor_died", message=f"the actor {actor.actor_id} on worker {actor.worker} died")
                )
        for task in sorted(self.tasks.values(), key=lambda t: t.spec.task_id):
            if task.state == RUNNING and task.location in dead_workers and task.spec.kind == "actor_method":
                error = ErrorInfo(kind="actor_died", message=f"the actor running task {task.spec.task_id} died")
                fx += self._fail(task, error)
            elif task.state == WAITING:
                for arg in task.spec.args:
                    if arg.ref is not None and arg.ref.owner in dead_workers:
                        fx += self._fail(task, _owner_died_error(arg.ref))
                        break
        return fx

    def tasks_at(self, dead_workers: set[str], dead_nodes: set[str]) -> list[TaskEntry]:
        """Pending tasks whose recorded location died (the ownership-table scan)."""
        out = []
        for task in sorted(self.tasks.values(), key=lambda t: t.spec.task_id):
            if task.state == QUEUED and task.request_id is not None and task.location in dead_nodes:
                out.append(task)
            elif task.state == RUNNING and task.location in dead_workers and task.spec.kind != "actor_method":
                out.append(task)
        return out

    def pump_all(self) -> list[Effect]:
        fx: list[Effect] = []
        for key in list(self.keys):
            fx += self._pump(key)
        return fx

    def resubmit(self, task: TaskEntry) -> list[Effect]:
        r"""Spec: Scheduling!OwnerResubmit

            \* Scheduling
            OwnerResubmit(o, t) ==
                LET k == TaskKey[t] IN
                /\ TaskOwner[t] = o
                /\ OwnerAlive(o)
                /\ status[t] \in {"requested", "pushed"}
                /\ LocationDied(o, t)
                /\ IF retries[t] > 0
                   THEN /\ status' = [status EXCEPT ![t] = "queued"]
                        /\ queue' = [queue EXCEPT ![o][k] = Append(@, t)]
                        /\ retries' = [retries EXCEPT ![t] = @ - 1]
                   ELSE /\ status' = [status EXCEPT ![t] = "failed"]
                        /\ UNCHANGED <<queue, retries>>
                /\ location' = [location EXCEPT ![t] = NoLocation]
                /\ lastAction' = Step("OwnerResubmit", o, t, NoNode, NoWorker, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, schedVars, held, deadWorkers, deadNodes, msgs,
                               histVars>>

        Implementation:

        The task's worker died (or its value was lost): run it again if the
        retry budget allows, else fail its return object.
        """
        requested = task.state == QUEUED and task.request_id is not None and task.location in self.worker.dead_nodes
        pushed = task.state == RUNNING and task.location in self.worker.dead_workers
        if not (requested or pushed or task.state == DONE):
            return []
        if requested:
            assert task.request_id is not None
            self._forget_request(task.request_id)
        if task.retries_left <= 0:
            return self._fail(task, _out_of_retries(task, pushed=pushed, requested=requested))
        fx: list[Effect] = []
        if task.state == RUNNING:
            lease = self.leases.get(task.lease_id) if task.lease_id else None
            if lease is not None:
                lease.running.discard(task.spec.task_id)
        elif not task.holding:
            # Reconstruction of a finished task: it holds its arguments again.
            task.holding = True
            fx += self.refs.submit_with_ref(task.held)
        task.retries_left -= 1
        task.lease_id = None
        task.location = None
        task.cancelled = False
        ret = self.refs.get_ref(task.spec.return_id)
        if ret is not None:
            ret.status = PENDING
            ret.error = None
        fx += self._resolve_dependencies(task)
        return fx


def _out_of_retries(task: TaskEntry, *, pushed: bool, requested: bool) -> ErrorInfo:
    """Why a task that cannot be retried failed, in the words of what happened to it."""
    tid, where = task.spec.task_id, task.location
    if task.spec.kind == "actor_create" and (pushed or requested):
        # The actor never came to be: its calls fail as an actor's do.
        what = f"the worker creating actor {task.spec.return_id} on {where} died" if pushed else (
            f"the lease request for actor {task.spec.return_id} waited at node {where}, which died"
        )
        return ErrorInfo(kind="actor_died", message=f"{what}, and no retries are left")
    if pushed:
        return ErrorInfo(kind="worker_crashed", message=f"the worker running task {tid} on {where} died and no retries are left")
    if requested:
        return ErrorInfo(
            kind="worker_crashed",
            message=f"task {tid} never ran: its lease request waited at node {where}, which died, and no retries are left",
        )
    return ErrorInfo(kind="object_lost", message=f"object {task.spec.return_id} was lost and task {tid} has no retries left")


def _owner_died_error(ref) -> ErrorInfo:
    return ErrorInfo(kind="owner_died", message=f"the owner {ref.owner} of argument {ref.object_id} died")
