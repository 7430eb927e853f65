"""Actor calls at the owner: a submitted call holds its actor as a submitted task holds its arguments."""

from __future__ import annotations

from ownership.core.events import AddLocalRef, Execute, Received, RemoveLocalRef, Submit, TaskDone
from ownership.core.messages import ErrorInfo, GetObject, PushTask, ReturnLease, TaskReply, WorkerDied


def _create_actor(m, h):
    d = m.driver
    create = h.spec(d, kind="actor_create", resources=())
    m.r.feed(d.address, Submit(create))
    m.r.run(skip=lambda f: isinstance(f[2], TaskReply))
    [(worker, _)] = [(a, e) for a, e in m.r.effects if isinstance(e, Execute) and e.task.task_id == create.task_id]
    m.r.feed(worker, TaskDone(create.task_id, value=None))
    m.r.run()
    assert d.refs.get_ref(create.return_id).status == "ready"
    return create.return_id, worker


def test_submitted_actor_call_keeps_the_actor_after_its_last_handle_is_dropped(h) -> None:
    m = h.Mini()
    d = m.driver
    actor_id, worker = _create_actor(m, h)
    call = h.spec(d, kind="actor_method", resources=(), actor_id=actor_id, method="incr")
    m.r.feed(d.address, Submit(call))
    assert d.refs.get_ref(actor_id).submitted == 1
    m.r.feed(d.address, RemoveLocalRef(actor_id))  # `Counter.remote().incr.remote()`: the handle is gone at once
    assert d.refs.get_ref(actor_id) is not None and d.submitter.actors[actor_id].dead is None
    assert not m.r.sent(ReturnLease)  # the actor is not stopped
    m.r.deliver_type(PushTask, task=m.r.sent(PushTask)[0][2].task)
    m.r.feed(worker, TaskDone(call.task_id, value=h.value(b"1")))
    m.r.deliver_type(TaskReply)
    assert d.refs.get_ref(call.return_id).value == h.value(b"1")
    # The call replied: nothing holds the actor now, so it is stopped.
    [(_, _, stop)] = m.r.sent(ReturnLease)
    assert stop.kill and stop.worker == worker
    assert d.refs.get_ref(actor_id) is None


def test_failed_actor_call_releases_its_hold_on_the_actor(h) -> None:
    m = h.Mini()
    d = m.driver
    actor_id, worker = _create_actor(m, h)
    call = h.spec(d, kind="actor_method", resources=(), actor_id=actor_id, method="incr")
    m.r.feed(d.address, Submit(call))
    m.r.feed(d.address, RemoveLocalRef(actor_id))
    assert d.submitter.actors[actor_id].dead is None
    m.r.deliver_type(PushTask)
    m.r.feed(worker, TaskDone(call.task_id, error=ErrorInfo(kind="task", message="boom")))
    m.r.run()
    assert d.refs.get_ref(call.return_id).error.message == "boom"
    assert d.refs.get_ref(actor_id) is None and d.submitter.actors == {}


def test_call_through_a_borrowed_handle_fails_when_the_actor_is_located_on_a_worker_known_dead(h) -> None:
    """A caller that borrowed the handle asks the actor's owner where it runs.
    Should the owner's answer arrive after the caller heard that worker die,
    the call fails with ActorDiedError rather than go to the dead worker and
    wait there forever."""
    m = h.Mini()
    d = m.driver
    actor_id, worker = _create_actor(m, h)
    caller = m.workers["w1@n2"]
    m.r.feed(caller.address, AddLocalRef(actor_id, d.address, kind="actor"))
    call = h.spec(caller, kind="actor_method", resources=(), actor_id=actor_id, method="incr")
    m.r.feed(caller.address, Submit(call))
    m.r.deliver_type(GetObject, requester=caller.address)  # the owner answers: the actor is on `worker`
    m.r.feed(caller.address, Received("n2", WorkerDied(worker=worker, node="n1")))
    m.r.run()
    assert not [f for f in m.r.delivered if isinstance(f[2], PushTask) and f[0] == caller.address]
    error = caller.refs.get_ref(call.return_id).error
    assert error is not None and error.kind == "actor_died"
