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


def test_lease_reused_for_queued_task_of_same_key(h) -> None:
    m = h.Mini(config=CoreConfig(lease_idle_ticks=0, pipeline_depth=1))
    d = m.driver
    a, b, c = h.spec(d), h.spec(d), h.spec(d)
    for s in (a, b, c):
        m.r.feed(d.address, Submit(s))
    assert len(m.r.sent(RequestLease)) == 1  # one request per key at a time
    m.r.deliver_type(RequestLease)
    m.r.deliver_type(LeaseGranted)
    # a runs; b now has the key's one request; c waits in the queue.
    assert [d.submitter.tasks[s.task_id].state for s in (a, b, c)] == ["running", "queued", "queued"]
    assert d.submitter.tasks[b.task_id].request_id is not None
    assert list(d.submitter.keys[d.submitter.tasks[c.task_id].key].queue) == [c.task_id]
    m.r.deliver_type(PushTask, task=d.submitter.tasks[a.task_id].spec)
    worker = d.submitter.tasks[a.task_id].location
    m.r.feed(worker, TaskDone(a.task_id, value=h.value()))
    m.r.deliver_type(TaskReply)
    [(_, dst, push)] = m.r.sent(PushTask)
    assert dst == worker and push.task.task_id == c.task_id
    assert d.submitter.tasks[c.task_id].location == worker


def _granted_one_of(h, count: int, config: CoreConfig | None = None, **cluster):
    """A Mini cluster whose driver submitted ``count`` tasks of one key and got its first lease."""
    m = h.Mini(config=config or CoreConfig(lease_idle_ticks=1, pipeline_depth=2, pipeline_short_tasks_only=False), **cluster)
    d = m.driver
    specs = [h.spec(d) for _ in range(count)]
    for s in specs:
        m.r.feed(d.address, Submit(s))
    m.r.deliver_type(RequestLease)
    m.r.deliver_type(LeaseGranted)
    return m, [d.submitter.tasks[s.task_id] for s in specs]


def test_pipelines_behind_a_busy_lease_while_a_request_is_out(h) -> None:
    """Scheduling!OwnerReuseLease on a busy lease: the third task is pushed
    to the first one's worker before its reply, while the second waits for
    a lease of its own."""
    m, (a, b, c) = _granted_one_of(h, 3)
    assert [t.state for t in (a, b, c)] == ["running", "queued", "running"]
    assert b.request_id is not None
    pushes = m.r.sent(PushTask)
    assert [p.task.task_id for _, _, p in pushes] == [a.spec.task_id, c.spec.task_id]
    assert {dst for _, dst, _ in pushes} == {a.location} and c.location == a.location


def _short_or_long_task_then_three(h, *, tick_while_running: bool):
    """One task of function f runs (a tick passes meanwhile, or not), then three more are submitted."""
    m = h.Mini(config=CoreConfig(lease_idle_ticks=5, pipeline_depth=2))
    d = m.driver
    first = h.spec(d)
    m.r.feed(d.address, Submit(first))
    m.r.deliver_type(RequestLease)
    m.r.deliver_type(LeaseGranted)
    m.r.deliver_type(PushTask)
    worker = d.submitter.tasks[first.task_id].location
    if tick_while_running:
        m.r.feed(d.address, Tick())
    m.r.feed(worker, TaskDone(first.task_id, value=h.value()))
    m.r.deliver_type(TaskReply)
    specs = [h.spec(d) for _ in range(3)]
    for s in specs:
        m.r.feed(d.address, Submit(s))
    return m, [d.submitter.tasks[s.task_id] for s in specs]


def test_pipelines_only_a_function_whose_last_task_was_short(h) -> None:
    """By default the owner pipelines a task only if its function's last
    task answered within the tick it was pushed in: behind a long task a
    pipelined one would wait while a lease granted meanwhile idles."""
    m, (a, b, c) = _short_or_long_task_then_three(h, tick_while_running=False)
    assert [t.state for t in (a, b, c)] == ["running", "queued", "running"]  # c behind a
    assert c.location == a.location and b.request_id is not None
    m, (a, b, c) = _short_or_long_task_then_three(h, tick_while_running=True)
    assert [t.state for t in (a, b, c)] == ["running", "queued", "queued"]  # c waits for a lease
    assert b.request_id is not None


def test_does_not_pipeline_what_a_new_lease_could_run(h) -> None:
    """Two tasks, one lease: the second asks for a lease of its own instead
    of queueing behind the first on its worker."""
    m, (a, b) = _granted_one_of(h, 2)
    assert [t.state for t in (a, b)] == ["running", "queued"]
    assert b.request_id is not None
    assert len(m.r.sent(PushTask)) == 1


def test_idle_lease_returned_at_once_while_a_request_of_its_key_waits(h) -> None:
    """With n1 full, b's request waits there; once a and c are done and the
    queue is empty, their lease goes back before any tick, and n1 grants
    b's request with the CPU it frees."""
    m, (a, b, c) = _granted_one_of(h, 3, CoreConfig(lease_idle_ticks=5, pipeline_depth=2), nodes=1, cpus=1.0)
    worker = a.location
    m.r.deliver_type(RequestLease, task_id=b.spec.task_id)
    assert not m.r.sent(LeaseGranted) and not m.r.sent(Spillback)  # n1 is full: b's request waits there
    for t in (a, c):
        m.r.deliver_type(PushTask, task=t.spec)
        m.r.feed(worker, TaskDone(t.spec.task_id, value=h.value()))
        m.r.deliver_type(TaskReply, task_id=t.spec.task_id)
    [(_, _, ret)] = m.r.sent(ReturnLease)
    assert ret.worker == worker
    m.r.deliver_type(ReturnLease)
    m.r.deliver_type(LeaseGranted)
    assert b.state == "running"


def test_idle_lease_kept_for_its_ticks_when_no_request_waits(h) -> None:
    m, (a,) = _granted_one_of(h, 1, CoreConfig(lease_idle_ticks=5, pipeline_depth=2))
    m.r.deliver_type(PushTask)
    m.r.feed(a.location, TaskDone(a.spec.task_id, value=h.value()))
    m.r.deliver_type(TaskReply)
    assert not m.r.sent(ReturnLease)


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


def test_idle_lease_returned_at_once_while_a_request_of_another_key_waits(h) -> None:
    """With n1 full, a task of another scheduling key waits there on its
    request; once a's lease is idle it goes back before any tick, and n1
    grants the waiting request with the CPU it frees."""
    m, (a,) = _granted_one_of(h, 1, CoreConfig(lease_idle_ticks=5), nodes=1, cpus=1.0)
    d = m.driver
    other = h.spec(d, resources=(("CPU", 0.5),))
    m.r.feed(d.address, Submit(other))
    m.r.deliver_type(RequestLease, task_id=other.task_id)
    assert not m.r.sent(LeaseGranted) and not m.r.sent(Spillback)  # n1 is full: it waits there
    worker = a.location
    m.r.deliver_type(PushTask, task=a.spec)
    m.r.feed(worker, TaskDone(a.spec.task_id, value=h.value()))
    m.r.deliver_type(TaskReply, task_id=a.spec.task_id)
    [(_, _, ret)] = m.r.sent(ReturnLease)
    assert ret.worker == worker
    m.r.deliver_type(ReturnLease)
    m.r.deliver_type(LeaseGranted)
    assert d.submitter.tasks[other.task_id].state == "running"


def test_grant_of_a_worker_known_dead_is_not_used(mini, h) -> None:
    """A grant that reaches the owner after the death notice of its worker
    (not of its node): the owner pushes nothing there, since it would wait
    for a reply that never comes, and asks for another lease."""
    d = mini.driver
    s = h.spec(d, max_retries=0)
    mini.r.feed(d.address, Submit(s))
    mini.r.deliver_type(RequestLease)
    grant = mini.r.sent(LeaseGranted)[0][2]
    mini.r.feed(d.address, Received("n1", WorkerDied(worker=grant.worker, node="n1")))
    mini.r.deliver_type(LeaseGranted)
    assert not mini.r.sent(PushTask, dst=grant.worker)
    task = d.submitter.tasks[s.task_id]
    assert task.state == "queued" and task.retries_left == 0  # it never ran: no retry spent
    assert [req.task_id for _, _, req in mini.r.sent(RequestLease)] == [s.task_id]
