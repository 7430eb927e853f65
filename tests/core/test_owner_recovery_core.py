"""Owner recovery in the cores (spec/OwnerRecovery.tla): epochs and fencing.

A stale epoch changes nothing: the head refuses the writes of an owner it
declared dead and writes at an older epoch, a worker drops a push of an
object that moved past the push's epoch, and a store frees only the copy
pinned at the epoch its free names.
"""

from __future__ import annotations

import attrs

from ownership.core.events import (
    AddLocalRef,
    Execute,
    GetValue,
    Logged,
    PeerLost,
    Put,
    Received,
    RemoveLocalRef,
    Send,
    Submit,
    TaskDone,
)
from ownership.core.messages import (
    Arg,
    RefInfo,
    RequestLease,
    TaskReply,
    DispatchLogged,
    LogDispatch,
    DeleteObject,
    FreeObject,
    GetObject,
    LogObject,
    ObjectDeleted,
    ObjectLogged,
    OwnerMoved,
    PushTask,
    RecoveryReport,
)
from ownership.core.node import NodeCore


def recoverable_put(mini, h, owner: str = "w1@n1", data: bytes = b"x", *, held: bool = True):
    """A recoverable put at ``owner``, logged at the head (and, ``held``, a
    reference to it at the driver); its object id."""
    w = mini.workers[owner]
    oid = w.new_object_id()
    mini.r.feed(owner, Put(oid, h.value(data), recoverable=True))
    mini.r.run()
    assert (owner, Logged(object_id=oid)) in mini.r.effects
    if held:
        mini.r.feed(mini.driver.address, AddLocalRef(oid, owner, "object"))
    return oid


def declare_dead(mini, worker: str) -> None:
    """``worker``'s node sees it exit: the head publishes the death (and the take-over)."""
    node = mini.workers[worker].node
    mini.r.feed(node, PeerLost(worker))
    mini.r.run()


def test_head_logs_a_recoverable_put_before_its_reference_leaves(mini, h) -> None:
    oid = recoverable_put(mini, h)
    log = mini.head.recovery_logs[oid]
    assert (log.owner, log.epoch, log.value) == ("w1@n1", 0, h.value(b"x"))


def test_default_put_is_not_logged(mini, h) -> None:
    w = mini.workers["w1@n1"]
    mini.r.feed(w.address, Put(w.new_object_id(), h.value()))
    assert mini.r.sent(LogObject) == []
    mini.r.run()
    assert mini.head.recovery_logs == {}


def test_driver_does_not_log_its_recoverable_objects(mini, h) -> None:
    d = mini.driver
    mini.r.feed(d.address, Put(d.new_object_id(), h.value(), recoverable=True))
    mini.r.feed(d.address, Submit(attrs.evolve(h.spec(d), recoverable=True)))
    assert mini.r.sent(LogObject) == []


def test_owner_death_moves_its_logged_objects_to_the_driver_at_a_new_epoch(mini, h) -> None:
    oid = recoverable_put(mini, h)
    declare_dead(mini, "w1@n1")
    log = mini.head.recovery_logs[oid]
    assert (log.owner, log.epoch) == (mini.driver.address, 1)
    moved = [f for f in mini.r.delivered if isinstance(f[2], OwnerMoved)]
    assert {dst for _, dst, _ in moved} >= {"n1", "n2", mini.driver.address, "w2@n1"}
    reporters = {f[2].reporter for f in mini.r.delivered if isinstance(f[2], RecoveryReport)}
    assert reporters == set(moved[0][2].told)
    ref = mini.driver.refs.table[oid]
    assert (ref.owned, ref.epoch, ref.status, ref.value) == (True, 1, "ready", h.value(b"x"))
    assert mini.driver.takeover.recovering == {}


def test_head_refuses_the_writes_of_a_declared_dead_owner(mini, h) -> None:
    oid = recoverable_put(mini, h)
    declare_dead(mini, "w1@n1")
    # The owner was only cut off (false suspicion): its late writes change nothing.
    fx = mini.r.feed("head", Received("w1@n1", DeleteObject(object_id=oid, epoch=0, owner="w1@n1")))
    assert [e.msg for e in fx] == [ObjectDeleted(object_id=oid, epoch=0, ok=False)]
    fx = mini.r.feed("head", Received("w1@n1", LogObject(object_id="w1@n1/p9", owner="w1@n1")))
    assert [e.msg for e in fx] == [ObjectLogged(object_id="w1@n1/p9", epoch=0, ok=False)]
    assert set(mini.head.recovery_logs) == {oid}
    assert mini.head.recovery_logs[oid].owner == mini.driver.address
    assert mini.head.refused_writes == 2


def test_head_refuses_a_delete_at_a_stale_epoch(mini, h) -> None:
    oid = recoverable_put(mini, h)
    declare_dead(mini, "w1@n1")
    d = mini.driver.address
    fx = mini.r.feed("head", Received(d, DeleteObject(object_id=oid, epoch=0, owner=d)))
    assert [e.msg for e in fx] == [ObjectDeleted(object_id=oid, epoch=0, ok=False)]
    assert oid in mini.head.recovery_logs
    fx = mini.r.feed("head", Received(d, DeleteObject(object_id=oid, epoch=1, owner=d)))
    assert [e.msg for e in fx] == [ObjectDeleted(object_id=oid, epoch=1, ok=True)]
    assert mini.head.recovery_logs == {}


def test_object_made_again_after_a_take_over_and_a_delete_starts_after_its_last_epoch(mini, h) -> None:
    """A re-executed parent makes, with the same id, an object the driver
    took over (epoch 1) and deleted: workers told of the move drop a push
    older than epoch 1, so the new object's first epoch is 2. An object
    never taken over leaves nothing at the head once deleted."""
    oid = recoverable_put(mini, h)
    declare_dead(mini, "w1@n1")
    d = mini.driver.address
    mini.r.feed("head", Received(d, DeleteObject(object_id=oid, epoch=1, owner=d)))
    assert mini.head.recovery_logs == {}
    fx = mini.r.feed("head", Received("w2@n1", LogObject(object_id=oid, owner="w2@n1")))
    assert [e.msg for e in fx] == [ObjectLogged(object_id=oid, epoch=2)]
    fx = mini.r.feed("head", Received("w2@n1", DeleteObject(object_id=oid, epoch=2, owner="w2@n1")))
    assert [e.msg for e in fx] == [ObjectDeleted(object_id=oid, epoch=2, ok=True)]
    other = recoverable_put(mini, h, owner="w2@n1", held=False)
    fx = mini.r.feed("head", Received("w2@n1", DeleteObject(object_id=other, epoch=0, owner="w2@n1")))
    assert [e.msg for e in fx] == [ObjectDeleted(object_id=other, epoch=0, ok=True)]
    assert mini.head.moved_epochs == {oid: 2}


def test_worker_drops_a_push_of_an_object_moved_past_the_push_epoch(mini, h) -> None:
    w = mini.workers["w2@n2"]
    owner = mini.workers["w1@n1"]
    s = attrs.evolve(h.spec(owner), recoverable=True)
    # w heard that the object moved to epoch 1 (its owner fenced): a push
    # of epoch 0 that arrives late must not run beside the new owner's rebuild.
    w.moved[s.return_id] = (mini.driver.address, 1)
    fx = w.handle(Received(owner.address, PushTask(task=s, lease_id=None, attempt=1, epoch=0)))
    assert not any(isinstance(e, Execute) for e in fx) and w.executor.running == {}
    fx = w.handle(Received(owner.address, PushTask(task=s, lease_id=None, attempt=2, epoch=1)))
    assert any(isinstance(e, Execute) for e in fx)


def test_store_frees_only_the_copy_pinned_at_the_epoch_its_free_names(mini, h) -> None:
    big = h.value(b"x" * 200_000)
    w = mini.workers["w1@n1"]
    oid = w.new_object_id()
    mini.r.feed(w.address, Put(oid, big, recoverable=True))
    mini.r.run()
    mini.r.feed(mini.driver.address, AddLocalRef(oid, w.address, "object"))
    store = mini.nodes["n1"].store
    assert (store.objects[oid].owner, store.objects[oid].epoch) == ("w1@n1", 0)
    declare_dead(mini, "w1@n1")
    assert (store.objects[oid].owner, store.objects[oid].epoch) == (mini.driver.address, 1)
    assert mini.driver.refs.table[oid].locations == {"n1"}
    n1 = mini.nodes["n1"]
    # The stale owner's free, and a free of another epoch, free nothing.
    n1.handle(Received("w1@n1", FreeObject(object_id=oid, epoch=0)))
    n1.handle(Received(mini.driver.address, FreeObject(object_id=oid, epoch=0)))
    assert oid in store.objects
    n1.handle(Received(mini.driver.address, FreeObject(object_id=oid, epoch=1)))
    assert oid not in store.objects


def test_new_owner_frees_nothing_until_every_process_told_has_answered(mini, h) -> None:
    oid = recoverable_put(mini, h, data=b"y", held=False)
    d = mini.driver
    node = mini.workers["w1@n1"].node
    mini.r.feed(node, PeerLost("w1@n1"))
    # Deliver everything but one report: the object stays recovering.
    held = lambda f: isinstance(f[2], RecoveryReport) and f[2].reporter == "w2@n2"  # noqa: E731
    mini.r.run(skip=held)
    assert oid in d.takeover.recovering and oid in d.refs.table
    assert d.takeover.recovering[oid].waiting == {"w2@n2"}
    assert mini.head.recovery_logs[oid].owner == d.address
    mini.r.run()
    # Nobody holds it: once every answer is in, it is freed, log and all.
    assert d.takeover.recovering == {} and oid not in d.refs.table
    assert mini.head.recovery_logs == {}


def test_release_sent_behind_a_report_the_new_owner_keeps_waits_for_it(mini, h) -> None:
    # w2 borrows a recoverable put of w1's. w1 dies; w2 hears of the
    # take-over before the driver does, reports that it holds the object
    # (which counts it, as asked) and lets it go at once: its RefRemoved
    # follows the report, and the driver keeps both until the head's notice.
    oid = recoverable_put(mini, h, data=b"z", held=False)
    d = mini.driver
    mini.r.feed("w2@n2", AddLocalRef(oid, "w1@n1", "object"))
    mini.r.run()
    mini.r.feed(mini.workers["w1@n1"].node, PeerLost("w1@n1"))
    notice_to_driver = lambda f: f[1] == d.address and isinstance(f[2], OwnerMoved)  # noqa: E731
    mini.r.run(skip=notice_to_driver)
    assert mini.workers["w2@n2"].refs.table[oid].owner == d.address
    mini.r.feed("w2@n2", RemoveLocalRef(oid))
    mini.r.run(skip=notice_to_driver)
    assert oid not in mini.workers["w2@n2"].refs.table
    from_w2 = [type(m).__name__ for src, m in d.takeover.early if src == "w2@n2"]
    assert from_w2 == ["RecoveryReport", "RefRemoved"]
    mini.r.run()
    # The report counted w2, its release let it go: freed, log and all.
    assert d.takeover.recovering == {} and oid not in d.refs.table
    assert mini.head.recovery_logs == {}


def submit_recoverable(mini, h, owner: str = "w1@n1", max_retries: int = 2):
    w = mini.workers[owner]
    s = attrs.evolve(h.spec(w, max_retries=max_retries), recoverable=True)
    mini.r.feed(owner, Submit(s))
    mini.r.feed(mini.driver.address, AddLocalRef(s.return_id, owner, "object"))  # a holder
    return s


def test_recoverable_task_is_pushed_only_once_the_head_logged_its_dispatch(mini, h) -> None:
    s = submit_recoverable(mini, h)
    mini.r.run(skip=lambda f: isinstance(f[2], (DispatchLogged, PushTask)))
    assert mini.r.sent(PushTask) == []
    log = mini.head.recovery_logs[s.return_id]
    assert (log.attempts, log.location) == (1, mini.workers["w1@n1"].submitter.tasks[s.task_id].location)
    mini.r.deliver_type(DispatchLogged)
    [(_, dst, push)] = mini.r.sent(PushTask)
    assert (dst, push.epoch) == (log.location, 0)


def test_dispatch_of_a_declared_dead_owner_is_refused_and_never_pushed(mini, h) -> None:
    s = submit_recoverable(mini, h)
    held = lambda f: isinstance(f[2], (LogDispatch, PushTask))  # noqa: E731
    mini.r.run(skip=held)
    mini.r.feed("n1", PeerLost("w1@n1"))  # declared dead, falsely: its core runs on
    mini.r.run(skip=held)
    assert mini.head.recovery_logs[s.return_id].owner == mini.driver.address
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    refused = [f[2] for f in mini.r.delivered if isinstance(f[2], DispatchLogged)]
    assert [m.ok for m in refused] == [False]
    assert [f for f in mini.r.flight if isinstance(f[2], PushTask) and f[2].task.task_id == s.task_id and f[0] == "w1@n1"] == []


def test_new_owner_budget_counts_the_attempts_the_head_logged(mini, h) -> None:
    s = submit_recoverable(mini, h, max_retries=2)
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))  # pushed once, never ran
    assert mini.head.recovery_logs[s.return_id].attempts == 1
    declare_dead(mini, "w1@n1")
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask) and f[0] == "w1@n1")
    task = mini.driver.submitter.tasks[s.task_id]
    # Retries[x] + 1 - attempts: the dead owner's push was the first run.
    assert task.spec.owner == mini.driver.address and task.retries_left == 2


def test_new_owner_numbers_its_attempts_on_from_the_dead_owners(mini, h) -> None:
    # The task ran once for w1 (its small value went back to w1, and dies
    # with it). The driver's rerun must not be attempt 1 again: the worker
    # that ran attempt 1 drops a second push of it as a duplicate, and
    # nothing would ever answer the gets.
    s = submit_recoverable(mini, h, max_retries=2)
    mini.r.run()
    [worker] = [a for a, e in mini.r.effects if isinstance(e, Execute) and e.task.task_id == s.task_id]
    mini.r.feed(worker, TaskDone(s.task_id, value=h.value(b"small")))
    mini.r.run()
    assert mini.head.recovery_logs[s.return_id].attempts == 1
    declare_dead(mini, "w1@n1")
    mini.r.feed(mini.driver.address, GetValue(1, s.return_id))  # a get: the lost value is made again
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    [(_, dst, push)] = [f for f in mini.r.sent(PushTask) if f[2].task.task_id == s.task_id]
    assert push.attempt == 2
    mini.r.run()
    assert any(isinstance(e, Execute) and e.task.task_id == s.task_id for a, e in mini.r.effects if a == dst)


def test_new_owner_runs_a_never_dispatched_task_without_spending_a_retry(mini, h) -> None:
    # max_retries=0: the dead owner never pushed the task (its LogDispatch
    # never reached the head), so its first run is still to come
    # (OwnerRecovery!NewOwnerComplete: log[x].att = 0 -> "waiting", with the
    # whole budget); it must not fail as out of retries at the new owner.
    s = submit_recoverable(mini, h, max_retries=0)
    mini.r.run(skip=lambda f: isinstance(f[2], LogDispatch))
    assert mini.head.recovery_logs[s.return_id].attempts == 0
    mini.r.feed("n1", PeerLost("w1@n1"))  # dead with its LogDispatch unsent
    mini.r.run(skip=lambda f: isinstance(f[2], LogDispatch) and f[0] == "w1@n1")
    assert mini.head.recovery_logs[s.return_id].attempts == 0
    d = mini.driver
    assert d.takeover.recovering == {}
    mini.r.feed(d.address, GetValue(1, s.return_id))
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    [push] = [m for src, _dst, m in mini.r.flight if isinstance(m, PushTask) and src == d.address]
    assert push.task.task_id == s.task_id and push.epoch == 1
    task = d.submitter.tasks[s.task_id]
    assert task.retries_left == 0 and d.refs.table[s.return_id].status != "failed"


def test_task_carrying_an_unlogged_recoverable_put_leaves_once_the_head_has_it(mini, h) -> None:
    """Async code does not wait for a recoverable put's log write, but a task
    that carries the reference, as an argument or inside a value, does: it
    leaves only once the head has the object, so that a holder finds it
    there should the owner die in between."""
    w = mini.workers["w1@n1"]
    oid = w.new_object_id()
    mini.r.feed(w.address, Put(oid, h.value(b"x"), recoverable=True))
    ref = RefInfo(object_id=oid, owner=w.address)
    by_ref = h.spec(w, args=[Arg(ref=ref)])
    inside = h.spec(w, args=[Arg(value=h.value(b"[x]", refs=[ref]))])
    for spec in (by_ref, inside):
        mini.r.feed(w.address, Submit(spec))
    assert mini.r.sent(RequestLease) == []  # both wait for the log
    mini.r.deliver_type(LogObject, object_id=oid)
    mini.r.deliver_type(ObjectLogged, object_id=oid)
    requested = {f[2].task_id for f in mini.r.sent(RequestLease)}
    assert requested == {by_ref.task_id, inside.task_id}
    mini.r.run()
    assert w.submitter.logging_objects == set() and w.submitter.waiting_on_log == {}


def test_task_carrying_a_put_that_holds_an_unlogged_recoverable_put_waits_for_the_head(mini, h) -> None:
    """The reference rides inside another put (a list of futures put by
    value): the task's worker borrows it when it reads the list, so the task
    waits for its log like one that carries it directly."""
    w = mini.workers["w1@n1"]
    inner, outer = w.new_object_id(), w.new_object_id()
    mini.r.feed(w.address, Put(inner, h.value(b"x"), recoverable=True))
    mini.r.feed(w.address, Put(outer, h.value(b"[x]", refs=[RefInfo(object_id=inner, owner=w.address)])))
    spec = h.spec(w, args=[Arg(ref=RefInfo(object_id=outer, owner=w.address))])
    mini.r.feed(w.address, Submit(spec))
    assert mini.r.sent(RequestLease) == []
    mini.r.deliver_type(LogObject, object_id=inner)
    mini.r.deliver_type(ObjectLogged, object_id=inner)
    assert [f[2].task_id for f in mini.r.sent(RequestLease)] == [spec.task_id]


def test_actor_call_carrying_an_unlogged_recoverable_put_waits_with_the_calls_behind_it(mini, h) -> None:
    """Calls to an actor keep their order: one that carries an object the
    head is still logging holds back the calls submitted after it."""
    w = mini.workers["w1@n1"]
    create = h.spec(w, kind="actor_create", resources=())
    mini.r.feed(w.address, Submit(create))
    mini.r.run(skip=lambda f: isinstance(f[2], TaskReply))
    [worker] = [a for a, e in mini.r.effects if isinstance(e, Execute) and e.task.task_id == create.task_id]
    mini.r.feed(worker, TaskDone(create.task_id, value=None))
    mini.r.run()
    actor = w.submitter.actors[create.return_id]
    assert actor.worker == worker
    oid = w.new_object_id()
    mini.r.feed(w.address, Put(oid, h.value(b"x"), recoverable=True))
    first = h.spec(w, kind="actor_method", actor_id=create.return_id, method="m", resources=(),
                   args=[Arg(ref=RefInfo(object_id=oid, owner=w.address))])
    second = h.spec(w, kind="actor_method", actor_id=create.return_id, method="m", resources=())
    for spec in (first, second):
        mini.r.feed(w.address, Submit(spec))
    assert [f[2].task.task_id for f in mini.r.sent(PushTask, dst=actor.worker)] == []
    mini.r.deliver_type(LogObject, object_id=oid)
    mini.r.deliver_type(ObjectLogged, object_id=oid)
    pushed = [f[2].task.task_id for f in mini.r.sent(PushTask, dst=actor.worker)]
    assert pushed == [first.task_id, second.task_id]


def test_reply_carrying_an_unlogged_recoverable_object_leaves_once_the_head_has_it(mini, h) -> None:
    """An async task returns, inside its value, a recoverable object it put
    without waiting for the head: its caller becomes a borrower only once
    the head has the object."""
    d = mini.driver
    task = h.spec(d)
    mini.r.feed(d.address, Submit(task))
    mini.r.run(skip=lambda f: isinstance(f[2], TaskReply))
    [worker] = [a for a, e in mini.r.effects if isinstance(e, Execute) and e.task.task_id == task.task_id]
    w = mini.workers[worker]
    oid = w.new_object_id()
    mini.r.feed(worker, Put(oid, h.value(b"x"), recoverable=True))
    mini.r.feed(worker, TaskDone(task.task_id, value=h.value(b"[x]", refs=[RefInfo(object_id=oid, owner=worker)])))
    assert mini.r.sent(TaskReply) == []
    mini.r.deliver_type(LogObject, object_id=oid)
    mini.r.deliver_type(ObjectLogged, object_id=oid)
    [(_, dst, reply)] = mini.r.sent(TaskReply)
    assert dst == d.address and [r.object_id for r in reply.refs] == [oid]
    mini.r.run()
    assert w.executor.replies_awaiting_log == []


def add_node(mini, name: str, workers: int = 1) -> None:
    """A node that joins the running cluster, with its workers registered."""
    node = mini.r.add(NodeCore(name, "head", (("CPU", float(workers)),), pool_size=workers, config=mini.config))
    mini.nodes[name] = node
    for e in node.start():
        if isinstance(e, Send):
            mini.r.flight.append((name, e.dst, e.msg))
    for k in range(1, workers + 1):
        mini.add_worker(name, f"w{k}@{name}")
    mini.r.run()


def test_worker_that_joins_after_a_take_over_borrows_a_moved_object_from_its_new_owner(mini, h) -> None:
    """A holder that has not heard of the take-over yet hands on a reference
    that still names the dead owner, to a worker on a node that joined after
    it: that worker learned where the object moved when it registered, so it
    borrows it from the new owner rather than fail it with OwnerDiedError."""
    oid = recoverable_put(mini, h)
    del mini.r.cores["w1@n1"]  # it crashed: what is sent to it is lost
    declare_dead(mini, "w1@n1")
    d = mini.driver
    add_node(mini, "n3")
    joiner = mini.workers["w1@n3"]
    assert joiner.moved == {oid: (d.address, 1)} and "w1@n1" in joiner.dead_workers
    lender = mini.workers["w2@n1"]
    spec = h.spec(lender, args=[Arg(ref=RefInfo(object_id=oid, owner="w1@n1"))])
    mini.r.feed(joiner.address, Received(lender.address, PushTask(task=spec, lease_id=None, attempt=1)))
    mini.r.run()
    assert [(src, dst) for src, dst, m in mini.r.delivered if isinstance(m, GetObject) and m.object_id == oid] == [(joiner.address, d.address)]
    [execute] = [e for a, e in mini.r.effects if a == joiner.address and isinstance(e, Execute)]
    assert execute.task.task_id == spec.task_id and execute.args == (h.value(b"x"),)
