"""A worker with two tasks pipelined on its lease: one CPU, one task at a time.

The owner pushes a second task before the first one's reply
(Scheduling!OwnerReuseLease with PipelineDepth 2). The worker runs it when
the first ends, or when the first waits in a get; it lends its CPU to the
node only while every task it started waits.
"""

from __future__ import annotations

import collections

from ownership.core.config import CoreConfig
from ownership.core.events import Execute, Submit, TaskBlocked, TaskDone, TaskUnblocked
from ownership.core.messages import LeaseGranted, PushTask, RequestLease, WorkerBlocked, WorkerUnblocked


def _two_on_one_worker(h):
    """a and c pushed to one worker (b's request waits at the full node)."""
    m = h.Mini(nodes=1, cpus=1.0, config=CoreConfig(lease_idle_ticks=1, pipeline_depth=2, pipeline_short_tasks_only=False))
    d = m.driver
    a, b, c = (h.spec(d) for _ in range(3))
    for s in (a, b, c):
        m.r.feed(d.address, Submit(s))
    m.r.deliver_type(RequestLease)
    m.r.deliver_type(LeaseGranted)
    worker = d.submitter.tasks[a.task_id].location
    assert d.submitter.tasks[c.task_id].location == worker
    m.r.deliver_type(PushTask, task=d.submitter.tasks[a.task_id].spec)
    m.r.deliver_type(PushTask, task=d.submitter.tasks[c.task_id].spec)
    return m, worker, a, c


def _executed(m) -> list[str]:
    return [e.task.task_id for _, e in m.r.effects if isinstance(e, Execute)]


def _lending(m, worker: str) -> list[str]:
    return [type(msg).__name__ for src, _, msg in m.r.flight if src == worker and isinstance(msg, (WorkerBlocked, WorkerUnblocked))]


def test_second_task_runs_when_the_first_ends(h) -> None:
    m, worker, a, c = _two_on_one_worker(h)
    assert _executed(m) == [a.task_id]
    assert m.workers[worker].executor.task_queue == collections.deque([c.task_id])
    m.r.feed(worker, TaskDone(a.task_id, value=h.value()))
    assert _executed(m) == [a.task_id, c.task_id]


def test_second_task_takes_the_cpu_of_a_first_that_waits_in_a_get(h) -> None:
    m, worker, a, c = _two_on_one_worker(h)
    m.r.feed(worker, TaskBlocked(a.task_id))
    assert _executed(m) == [a.task_id, c.task_id]
    assert _lending(m, worker) == []  # c uses the CPU a left: nothing to lend
    m.r.feed(worker, TaskBlocked(c.task_id))
    assert _lending(m, worker) == ["WorkerBlocked"]  # both wait: lent once
    m.r.feed(worker, TaskUnblocked(a.task_id))
    assert _lending(m, worker) == ["WorkerBlocked", "WorkerUnblocked"]  # a takes it back
    m.r.feed(worker, TaskDone(a.task_id, value=h.value()))
    assert _lending(m, worker) == ["WorkerBlocked", "WorkerUnblocked", "WorkerBlocked"]  # c still waits
    m.r.feed(worker, TaskUnblocked(c.task_id))
    assert _lending(m, worker)[-1] == "WorkerUnblocked"
    assert m.workers[worker].executor.lent_lease is None

