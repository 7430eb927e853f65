"""An owner's actors: the lease an actor holds for its life, its calls in
order, and its death (spec/Ownership.tla's actor actions).

A creation is leased like a task (TaskSubmitter); once its reply names the
worker, the actor keeps that lease apart from the task leases until its last
handle goes. Calls queue here until the actor's worker is known, then go to
it in submission order over one connection, past the schedulers. When the
actor dies (its worker, its node, or its creation), every call to it fails
with the actor's error.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

import attrs

from .events import Effect, Send
from .messages import ErrorInfo, Payload, PushTask, ReturnLease, TaskReply
from .refcount import FAILED, FREED, Waiter
from .submitter import QUEUED, RUNNING

if TYPE_CHECKING:  # pragma: no cover
    from .submitter import Lease, TaskEntry, TaskSubmitter

__all__ = ["ActorCalls", "ActorState"]


@attrs.define(eq=False)
class ActorState:
    actor_id: str
    owner: str
    worker: str | None = None
    node: str | None = None
    lease_id: str | None = None
    dead: ErrorInfo | None = None
    locating: bool = False
    queue: collections.deque = attrs.Factory(collections.deque)  # calls waiting for the address


class ActorCalls:
    """The actors this process owns or calls, and their calls."""

    def __init__(self, submitter: TaskSubmitter) -> None:
        self.submitter = submitter
        self.actors: dict[str, ActorState] = {}

    def creating(self, actor_id: str) -> None:
        """An actor of ours is being created: its calls queue until it is."""
        self.actors[actor_id] = ActorState(actor_id=actor_id, owner=self.submitter.address)

    def created(self, task: TaskEntry, msg: TaskReply) -> list[Effect]:
        actor = self.actors.get(task.spec.return_id)
        ret = self.submitter.refs.get_ref(task.spec.return_id)
        fx: list[Effect] = []
        lease = self.submitter.leases.get(msg.lease_id) if msg.lease_id else None
        if msg.error is not None or actor is None or ret is None or task.cancelled or not ret.in_scope():
            error = msg.error or ErrorInfo(kind="cancelled", message=f"actor {task.spec.return_id} is no longer referenced")
            if lease is not None:
                fx += self.drop_lease(lease, kill=True)
            if actor is not None:
                fx += self.dead(actor, error)
            if ret is not None and ret.status != FAILED:
                fx += self.submitter.refs.set_failed(ret, error)
            return fx
        actor.worker = msg.worker
        if lease is not None:
            # The actor keeps its lease for life, apart from the task leases.
            ks = self.submitter.keys.get(lease.key)
            if ks is not None:
                ks.leases.pop(lease.lease_id, None)
                self.submitter._gc_key(lease.key)
        fx += self.submitter.refs.set_ready(ret, location=msg.worker)
        fx += self.flush_queue(actor)
        return fx

    def drop_lease(self, lease: Lease, *, kill: bool) -> list[Effect]:
        self.submitter.leases.pop(lease.lease_id, None)
        ks = self.submitter.keys.get(lease.key)
        if ks is not None:
            ks.leases.pop(lease.lease_id, None)
            self.submitter._gc_key(lease.key)
        if lease.node in self.submitter.worker.dead_nodes or lease.worker in self.submitter.worker.dead_workers:
            return []
        return [Send(lease.node, ReturnLease(lease_id=lease.lease_id, worker=lease.worker, kill=kill))]

    def kill(self, actor_id: str) -> list[Effect]:
        """The last reference to an actor is gone: give its lease back, stopping it."""
        actor = self.actors.get(actor_id)
        if actor is None:
            return []
        fx: list[Effect] = []
        if actor.lease_id is not None:
            lease = self.submitter.leases.get(actor.lease_id)
            actor.lease_id = None
            if lease is not None:
                fx += self.drop_lease(lease, kill=True)
        if actor.dead is None:
            actor.dead = ErrorInfo(kind="actor_died", message=f"actor {actor_id} was stopped: no references left")
        if not actor.queue:
            ret = self.submitter.refs.get_ref(actor_id)
            if ret is None or not ret.owned:
                self.actors.pop(actor_id, None)
        return fx

    def dead(self, actor: ActorState, error: ErrorInfo) -> list[Effect]:
        r"""Spec: Ownership!OwnerFailCall

            \* Ownership
            OwnerFailCall(a, x) ==
                LET r == Target[x]
                    E == [z \in Objects |->
                            IF z = x THEN Failed(ent[x], "ActorDied")
                            ELSE IF z = r THEN [ent[r] EXCEPT !.submitted = @ - 1]
                            ELSE ent[z]]
                    settle == Settle(a, E, msgs \cup Answers(x, ent[x], "ActorDied"), [why EXCEPT ![x] = "actor"], ex[a])
                IN
                /\ IsUp(Cur(a))
                /\ x \in Calls
                /\ ent[x].owner = Cur(a)
                /\ ent[x].task = "waiting"
                /\ ent[r].owner = Cur(a) /\ ent[r].obj = "failed"
                /\ settle
                /\ lastAction' = Step("OwnerFailCall", a, x, NoNode, NoMsg)
                /\ UNCHANGED <<actorVars, envVars, headVars, nodeVars, ex, known, brw, got, made>>

        Implementation:

        The actor died (its worker or node, or its creation failed): its
        lease goes, and every call to it fails with the actor's error, those
        queued here and those running at its worker; a call submitted later
        fails at once (``submit_call``).
        """
        fx: list[Effect] = []
        actor.dead = error
        if actor.lease_id is not None:
            lease = self.submitter.leases.get(actor.lease_id)
            actor.lease_id = None
            if lease is not None:
                fx += self.drop_lease(lease, kill=True)
        queued, actor.queue = list(actor.queue), collections.deque()
        for task_id in queued:
            task = self.submitter.tasks.get(task_id)
            if task is not None:
                fx += self.submitter._fail(task, error)
        ret = self.submitter.refs.get_ref(actor.actor_id)
        if ret is not None and ret.status not in (FAILED, FREED):
            fx += self.submitter.refs.set_failed(ret, error)
        for task in sorted(self.submitter.tasks.values(), key=lambda t: t.spec.task_id):
            if task.spec.kind == "actor_method" and task.spec.actor_id == actor.actor_id and task.state == RUNNING:
                fx += self.submitter._fail(task, error)
        if not ret or not ret.owned:
            self.actors.pop(actor.actor_id, None)
        return fx

    def submit_call(self, task: TaskEntry) -> list[Effect]:
        spec = task.spec
        actor_id = spec.actor_id
        assert actor_id is not None
        actor = self.actors.get(actor_id)
        handle = self.submitter.refs.get_ref(actor_id)
        if actor is None:
            owner = handle.owner if handle is not None else ""
            actor = self.actors[actor_id] = ActorState(actor_id=actor_id, owner=owner)
        if actor.dead is not None:
            return self.submitter._fail(task, actor.dead)
        task.state = QUEUED
        actor.queue.append(spec.task_id)
        if actor.worker is not None:
            return self.flush_queue(actor)
        if actor.owner != self.submitter.address and not actor.locating:
            actor.locating = True
            return self.submitter.refs.get(actor_id, Waiter("actor", actor_id), owner=actor.owner, kind="actor")
        return []

    def located(self, actor_id: str, *, location: str | None = None, error: ErrorInfo | None = None, value: Payload | None = None) -> list[Effect]:
        actor = self.actors.get(actor_id)
        if actor is None:
            return []
        actor.locating = False
        if error is not None or location is None:
            return self.dead(actor, error or ErrorInfo(kind="actor_died", message=f"actor {actor_id} has no worker"))
        if location in self.submitter.worker.dead_workers:
            return self.dead(actor, ErrorInfo(kind="actor_died", message=f"the actor {actor_id} on worker {location} died"))
        actor.worker = location
        return self.flush_queue(actor)

    def flush_queue(self, actor: ActorState) -> list[Effect]:
        r"""Spec: Ownership!OwnerPushCall

            \* Ownership
            OwnerPushCall(a, x) ==
                LET r == Target[x]
                    w == ent[r].host
                IN
                /\ IsUp(Cur(a))
                /\ x \in Calls
                /\ ent[x].owner = Cur(a)
                /\ ent[x].task = "waiting"
                /\ ent[r].owner = Cur(a) /\ ent[r].obj = "ready" /\ w # NoProc
                /\ \A z \in EarlierCalls(x) : ent[z].task # "waiting"
                /\ ent' = [ent EXCEPT ![x].task = "pushed", ![x].att = @ + 1, ![x].loc = [n |-> NodeOf(w), w |-> w]]
                /\ chan' = [chan EXCEPT ![r] = Append(@, [x |-> x, o |-> Cur(a), att |-> ent[x].att + 1, w |-> w, cancel |-> FALSE])]
                /\ lastAction' = Step("OwnerPushCall", a, x, NoNode, NoMsg)
                /\ UNCHANGED <<actorLog, envVars, headVars, nodeVars, ex, known, brw, got, made, msgs, why>>

        Implementation:

        The actor's worker is known: push the queued calls to it, oldest
        first, each recorded as running there before it leaves. The
        connection to the worker keeps their order. A call that carries an
        object of ours the head is still logging stops the flush until the
        head has it.
        """
        fx: list[Effect] = []
        while actor.queue and actor.worker is not None:
            task = self.submitter.tasks.get(actor.queue[0])
            if task is None or task.state != QUEUED:
                actor.queue.popleft()
                continue
            if unlogged := self.submitter.unlogged(task.spec):
                # It carries an object of ours the head is still logging: it
                # and the calls behind it (in order) wait for the log.
                self.submitter.wait_for_log(task, unlogged)
                break
            actor.queue.popleft()
            task.state = RUNNING
            task.location = actor.worker  # recorded before the task leaves
            task.attempt += 1
            spec = self.submitter._resolved_spec(task)
            fx.append(Send(actor.worker, PushTask(task=spec, lease_id=None, attempt=task.attempt)))
        return fx
