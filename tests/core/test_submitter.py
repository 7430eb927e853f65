"""TaskSubmitter: lease request, spillback, grant, reuse, return, replies, retries."""

from __future__ import annotations

from ownership.core.config import CoreConfig
from ownership.core.events import Cancel, Execute, GetDone, GetValue, Received, Submit, TaskDone, Tick
from ownership.core.messages import (
    Arg,
    CancelTask,
    LeaseGranted,
    PushTask,
    RefInfo,
    RequestLease,
    ReturnLease,
    Spillback,
    TaskReply,
    WorkerDied,
)


def test_submit_requests_lease_locally_and_records_node_first(mini, h) -> None:
    d = mini.driver
    s = h.spec(d)
    mini.r.feed(d.address, Submit(s))
    task = d.submitter.tasks[s.task_id]
    [(_, dst, req)] = mini.r.sent(RequestLease)
    assert dst == "n1" and task.location == "n1"
    assert req.task_id == s.task_id and req.owner == d.address
    assert d.refs.get_ref(s.return_id).status == "pending"


def test_grant_records_worker_before_push_and_reply_finishes(mini, h) -> None:
    d = mini.driver
    s = h.spec(d)
    mini.r.feed(d.address, Submit(s))
    mini.r.deliver_type(RequestLease)
    grant = mini.r.sent(LeaseGranted)[0][2]
    mini.r.deliver_type(LeaseGranted)
    task = d.submitter.tasks[s.task_id]
    assert task.location == grant.worker and task.state == "running"
    [(_, dst, push)] = mini.r.sent(PushTask)
    assert dst == grant.worker and push.lease_id == grant.lease_id
    mini.r.deliver_type(PushTask)
    [(w, execute)] = [(a, e) for a, e in mini.r.effects if isinstance(e, Execute)]
    mini.r.feed(w, TaskDone(s.task_id, value=h.value(b"42")))
    mini.r.deliver_type(TaskReply)
    assert d.refs.get_ref(s.return_id).value == h.value(b"42")
    # Queue empty, lease_idle_ticks=0: the lease goes back at once.
    mini.r.deliver_type(ReturnLease)
    assert mini.nodes["n1"].scheduler.leases == {}
    assert d.submitter.leases == {}


def test_spillback_records_new_node_before_asking_it(h) -> None:
    m = h.Mini(workers=1)
    d = m.driver
    first, second = h.spec(d), h.spec(d)
    m.r.feed(d.address, Submit(first))
    m.r.run(skip=lambda f: isinstance(f[2], PushTask))  # the first task holds n1's only CPU
    m.r.feed(d.address, Submit(second))
    m.r.deliver_type(RequestLease, task_id=second.task_id)
    spill = m.r.deliver_type(Spillback)
    assert spill.node == "n2"
    task = d.submitter.tasks[second.task_id]
    assert task.location == "n2"
    [(_, dst, req)] = m.r.sent(RequestLease)
    assert dst == "n2" and req.spilled


def test_lease_reused_for_queued_task_of_same_key(mini, h) -> None:
    d = mini.driver
    a, b, c = h.spec(d), h.spec(d), h.spec(d)
    for s in (a, b, c):
        mini.r.feed(d.address, Submit(s))
    assert len(mini.r.sent(RequestLease)) == 1  # one request per key at a time
    mini.r.deliver_type(RequestLease)
    mini.r.deliver_type(LeaseGranted)
    # a runs; b now has the key's one request; c waits in the queue.
    assert [d.submitter.tasks[s.task_id].state for s in (a, b, c)] == ["running", "queued", "queued"]
    assert d.submitter.tasks[b.task_id].request_id is not None
    assert list(d.submitter.keys[d.submitter.tasks[c.task_id].key].queue) == [c.task_id]
    mini.r.deliver_type(PushTask, task=d.submitter.tasks[a.task_id].spec)
    worker = d.submitter.tasks[a.task_id].location
    mini.r.feed(worker, TaskDone(a.task_id, value=h.value()))
    mini.r.deliver_type(TaskReply)
    [(_, dst, push)] = mini.r.sent(PushTask)
    assert dst == worker and push.task.task_id == c.task_id
    assert d.submitter.tasks[c.task_id].location == worker


def _one_task_ran(h, config: CoreConfig):
    """A Mini cluster whose driver ran one task and holds its lease, idle."""
    m = h.Mini(config=config)
    d = m.driver
    s = h.spec(d)
    m.r.feed(d.address, Submit(s))
    m.r.run(skip=lambda f: isinstance(f[2], PushTask))
    worker = d.submitter.tasks[s.task_id].location
    m.r.deliver_type(PushTask)
    m.r.feed(worker, TaskDone(s.task_id, value=h.value()))
    m.r.deliver_type(TaskReply)
    return m


def test_idle_lease_returned_after_idle_ticks(h) -> None:
    m = _one_task_ran(h, CoreConfig(lease_idle_ticks=2))
    d = m.driver
    assert not m.r.sent(ReturnLease)
    m.r.feed(d.address, Tick())
    assert not m.r.sent(ReturnLease)
    m.r.feed(d.address, Tick())
    assert len(m.r.sent(ReturnLease)) == 1


def test_stale_reply_after_resubmission_is_ignored(mini, h) -> None:
    d = mini.driver
    s = h.spec(d, max_retries=1)
    mini.r.feed(d.address, Submit(s))
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    worker = d.submitter.tasks[s.task_id].location
    mini.r.feed(d.address, Received("n1", WorkerDied(worker=worker, node="n1")))
    task = d.submitter.tasks[s.task_id]
    assert task.retries_left == 0 and task.state == "queued"
    stale = TaskReply(task_id=s.task_id, return_id=s.return_id, attempt=1, worker=worker, lease_id=None, value=h.value(b"old"))
    mini.r.feed(d.address, Received("n1", stale))
    assert d.refs.get_ref(s.return_id).status == "pending"


def test_worker_death_without_retries_fails_with_worker_crashed(mini, h) -> None:
    d = mini.driver
    s = h.spec(d, max_retries=0)
    mini.r.feed(d.address, Submit(s))
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    worker = d.submitter.tasks[s.task_id].location
    mini.r.feed(d.address, GetValue(1, s.return_id))
    mini.r.feed(d.address, Received("n1", WorkerDied(worker=worker, node="n1")))
    [done] = [e for _, e in mini.r.effects if isinstance(e, GetDone)]
    assert done.error.kind == "worker_crashed"


def test_task_waits_for_pending_owned_argument(mini, h) -> None:
    d = mini.driver
    a = h.spec(d)
    mini.r.feed(d.address, Submit(a))
    b = h.spec(d, args=[Arg(ref=RefInfo(object_id=a.return_id, owner=d.address))])
    mini.r.feed(d.address, Submit(b))
    assert d.submitter.tasks[b.task_id].state == "waiting"
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    worker = d.submitter.tasks[a.task_id].location
    mini.r.deliver_type(PushTask)
    mini.r.feed(worker, TaskDone(a.task_id, value=h.value(b"small")))
    mini.r.deliver_type(TaskReply)
    assert d.submitter.tasks[b.task_id].state in ("queued", "running")
    mini.r.run()
    pushes = [f for f in mini.r.delivered if isinstance(f[2], PushTask) and f[2].task.task_id == b.task_id]
    # The small ready argument travels inline.
    assert pushes and pushes[0][2].task.args[0].value == h.value(b"small")


def test_cancel_queued_task_fails_its_object(mini, h) -> None:
    d = mini.driver
    s = h.spec(d)
    mini.r.feed(d.address, Submit(s))
    mini.r.feed(d.address, Cancel(s.return_id))
    ref = d.refs.get_ref(s.return_id)
    assert ref.status == "failed" and ref.error.kind == "cancelled"


def test_cancel_running_task_tells_its_worker(mini, h) -> None:
    d = mini.driver
    s = h.spec(d)
    mini.r.feed(d.address, Submit(s))
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    mini.r.feed(d.address, Cancel(s.return_id))
    [(_, dst, _msg)] = mini.r.sent(CancelTask)
    assert dst == d.submitter.tasks[s.task_id].location


def _idle_lease_then_other_key(h, config: CoreConfig):
    m = _one_task_ran(h, config)
    d = m.driver
    assert len(d.submitter.leases) == 1 and not m.r.sent(ReturnLease)  # idle, kept for its key
    m.r.feed(d.address, Submit(h.spec(d, resources=(("CPU", 0.5),))))  # another scheduling key
    return m


def test_asking_a_lease_for_a_new_key_returns_idle_leases_of_keys_with_nothing_queued(h) -> None:
    m = _idle_lease_then_other_key(h, CoreConfig(lease_idle_ticks=5))
    sends = [type(msg).__name__ for _, _, msg in m.r.sent()]
    assert sends.index("ReturnLease") < sends.index("RequestLease")  # the CPU goes back first
    assert not m.driver.submitter.leases


def test_idle_leases_of_other_keys_wait_for_their_ticks_when_told_to(h) -> None:
    m = _idle_lease_then_other_key(h, CoreConfig(lease_idle_ticks=5, return_idle_leases_on_request=False))
    assert not m.r.sent(ReturnLease) and len(m.r.sent(RequestLease)) == 1
    assert len(m.driver.submitter.leases) == 1
