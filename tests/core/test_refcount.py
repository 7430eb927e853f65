"""ReferenceCounter: local, submitted-task, borrower and contained-in counts."""

from __future__ import annotations

from ownership.core.events import AddLocalRef, GetDone, GetValue, Put, Received, RemoveLocalRef, Submit, TaskDone
from ownership.core.messages import (
    Arg,
    Borrower,
    BorrowInfo,
    FreeObject,
    GetObject,
    LeaseGranted,
    ObjectValue,
    PushTask,
    PutObject,
    RefInfo,
    RefRemoved,
    TaskReply,
    WaitForRefRemoved,
)
from ownership.core.worker import WorkerCore

from .conftest import registered_worker


def test_put_then_release_frees_the_entry(h) -> None:
    w = registered_worker("a", "n1")
    w.handle(Put("a/p1", h.value(b"x")))
    assert w.refs.get_ref("a/p1").status == "ready"
    w.handle(RemoveLocalRef("a/p1"))
    assert w.refs.table == {}


def test_large_put_goes_to_local_store_and_free_tells_it(h) -> None:
    w = registered_worker("a", "n1")
    big = h.value(b"x" * (w.config.inline_threshold + 1))
    fx = w.handle(Put("a/p1", big))
    assert any(getattr(e, "msg", None) == PutObject(object_id="a/p1", owner="a", value=big) for e in fx)
    from ownership.core.messages import ObjectStored

    w.handle(Received("n1", ObjectStored(object_id="a/p1", node="n1")))
    assert w.refs.get_ref("a/p1").locations == {"n1"} and w.refs.get_ref("a/p1").value is None
    fx = w.handle(RemoveLocalRef("a/p1"))
    assert [e.msg for e in fx] == [FreeObject(object_id="a/p1")] and fx[0].dst == "n1"


def test_submitted_ref_keeps_object_until_reply(mini, h) -> None:
    d = mini.driver
    d.handle(Put(d.new_object_id(), h.value(b"1")))
    [oid] = list(d.refs.table)
    s = h.spec(d, args=[Arg(ref=RefInfo(object_id=oid, owner=d.address))])
    mini.r.feed(d.address, Submit(s))
    mini.r.feed(d.address, RemoveLocalRef(oid))
    assert d.refs.get_ref(oid).submitted == 1
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    worker = d.submitter.tasks[s.task_id].location
    mini.r.deliver_type(PushTask)
    mini.r.feed(worker, TaskDone(s.task_id, value=h.value()))
    mini.r.deliver_type(TaskReply)
    assert d.refs.get_ref(oid) is None


def test_owner_waits_on_borrower_reported_in_reply(mini, h) -> None:
    d = mini.driver
    oid = d.new_object_id()
    d.handle(Put(oid, h.value(b"1")))
    shared = h.value(b"ref", refs=[RefInfo(object_id=oid, owner=d.address)])
    s = h.spec(d, args=[Arg(value=shared)])
    mini.r.feed(d.address, Submit(s))
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    worker = d.submitter.tasks[s.task_id].location
    mini.r.deliver_type(PushTask)
    w = mini.workers[worker]
    assert w.refs.get_ref(oid).task_args == 1
    mini.r.feed(worker, AddLocalRef(oid, d.address))  # the task kept the ref (an actor would)
    mini.r.feed(worker, TaskDone(s.task_id, value=h.value()))
    reply = mini.r.sent(TaskReply)[0][2]
    assert reply.borrowed == (BorrowInfo(object_id=oid, owner=d.address, held=True),)
    mini.r.deliver_type(TaskReply)
    assert d.refs.get_ref(oid).borrowers == {worker: 1}
    mini.r.feed(d.address, RemoveLocalRef(oid))
    assert d.refs.get_ref(oid) is not None, "freed while a borrower holds it"
    mini.r.deliver_type(WaitForRefRemoved)
    assert not mini.r.sent(RefRemoved), "the borrower still holds it"
    mini.r.feed(worker, RemoveLocalRef(oid))
    mini.r.deliver_type(RefRemoved)
    assert d.refs.get_ref(oid) is None and w.refs.get_ref(oid) is None


def test_ref_removed_hands_over_sub_borrowers(h) -> None:
    o = registered_worker("o", "n1")
    oid = "o/p1"
    o.handle(Put(oid, h.value()))
    o.refs.get_ref(oid).borrowers["b"] = 1
    o.handle(RemoveLocalRef(oid))
    fx = o.handle(Received("b", RefRemoved(object_id=oid, borrower="b", borrowers=(Borrower(address="c"),))))
    assert [(e.dst, e.msg) for e in fx] == [("c", WaitForRefRemoved(object_id=oid, owner="o", via=None, borrower="c"))]
    assert o.refs.get_ref(oid).borrowers == {"c": 1}
    o.handle(Received("c", RefRemoved(object_id=oid, borrower="c")))
    assert o.refs.table == {}


def test_wait_for_unknown_ref_is_answered_at_once() -> None:
    b = registered_worker("b", "n1")
    fx = b.handle(Received("o", WaitForRefRemoved(object_id="o/p1", owner="o")))
    assert [(e.dst, e.msg) for e in fx] == [("o", RefRemoved(object_id="o/p1", borrower="b", owner="o"))]


def test_wait_via_a_pending_value_waits_for_that_value(h) -> None:
    # b owns y, whose task is still running; y's value will hold x (owned by o).
    b = registered_worker("b", "n1")
    y = h.spec(b)
    b.handle(Submit(y))
    fx = b.handle(Received("o", WaitForRefRemoved(object_id="o/x", owner="o", via=y.return_id)))
    assert not [e for e in fx if isinstance(getattr(e, "msg", None), RefRemoved)]
    assert b.refs.get_ref("o/x").contained_in == {y.return_id}
    # y is dropped: nothing holds x any more, so b answers.
    b.handle(RemoveLocalRef(y.return_id))
    reply = TaskReply(task_id=y.task_id, return_id=y.return_id, attempt=0, worker="w", lease_id=None, value=h.value(refs=[RefInfo(object_id="o/x", owner="o")]), refs=(RefInfo(object_id="o/x", owner="o"),))
    b.submitter.tasks[y.task_id].state = "running"
    fx = b.handle(Received("w", reply))
    assert ("o", RefRemoved(object_id="o/x", borrower="b", owner="o")) in [(e.dst, e.msg) for e in fx if hasattr(e, "msg")]
    assert "o/x" not in b.refs.table


def test_contained_ref_lives_as_long_as_the_outer_value(h) -> None:
    o = registered_worker("o", "n1")
    o.handle(Put("o/x", h.value(b"inner")))
    o.handle(Put("o/y", h.value(b"outer", refs=[RefInfo(object_id="o/x", owner="o")])))
    o.handle(RemoveLocalRef("o/x"))
    assert o.refs.get_ref("o/x").contained_in == {"o/y"}
    # A reader of y becomes a borrower of x.
    fx = o.handle(Received("r", GetObject(object_id="o/y", requester="r")))
    msgs = [(e.dst, e.msg) for e in fx]
    assert ("r", WaitForRefRemoved(object_id="o/x", owner="o", via="o/y", borrower="r")) in msgs
    assert any(isinstance(m, ObjectValue) and m.value is not None for _, m in msgs)
    o.handle(RemoveLocalRef("o/y"))
    assert set(o.refs.table) == {"o/x"}, "x stays while its reader may hold it"
    o.handle(Received("r", RefRemoved(object_id="o/x", borrower="r")))
    assert o.refs.table == {}


def test_get_of_unknown_object_fails_with_object_lost() -> None:
    w = registered_worker("a", "n1")
    [done] = w.handle(GetValue(7, "z/p9"))
    assert isinstance(done, GetDone) and done.error.kind == "object_lost"


def test_owner_answers_get_object_for_freed_object_with_error() -> None:
    o = registered_worker("o", "n1")
    [send] = o.handle(Received("r", GetObject(object_id="o/p1", requester="r")))
    assert send.dst == "r" and send.msg.error.kind == "object_lost"


def test_sub_borrower_naming_the_caller_still_reaches_the_owner(h) -> None:
    # w runs a task of caller c (not the owner o) and lent x to c itself in
    # a nested task that c still runs: c would drop itself from the report,
    # so w keeps that entry and hands it to o once w is done (RefCounting,
    # deviation 2 from Ray).
    w = registered_worker("w", "n1")
    from ownership.core.messages import Payload, PushTask, TaskSpec

    shared = Payload(data=b"ref", refs=(RefInfo(object_id="o/x", owner="o"),))
    task = TaskSpec(task_id="c/t1", owner="c", return_id="c/t1.r", function_id="f", function=Payload(data=b"f"), args=(Arg(value=shared),))
    w.handle(Received("c", PushTask(task=task, lease_id="l", attempt=1)))
    w.refs.get_ref("o/x").sub_borrowers.append(Borrower(address="c"))
    fx = w.handle(TaskDone("c/t1", value=h.value()))
    [reply] = [e.msg for e in fx if isinstance(getattr(e, "msg", None), TaskReply)]
    assert reply.borrowed[0].borrowers == (Borrower(address="c"),)
    handed = [e.msg for e in fx if isinstance(getattr(e, "msg", None), RefRemoved)]
    assert handed == [RefRemoved(object_id="o/x", borrower="w", borrowers=(Borrower(address="c"),), owner="o", answer=False)]
    assert w.refs.table == {}


def test_handed_over_borrowers_do_not_count_as_an_answer(h) -> None:
    o = registered_worker("o", "n1")
    o.handle(Put("o/x", h.value()))
    o.refs.get_ref("o/x").borrowers["w"] = 1
    o.handle(Received("w", RefRemoved(object_id="o/x", borrower="w", borrowers=(Borrower(address="c"),), answer=False)))
    assert o.refs.get_ref("o/x").borrowers == {"w": 1, "c": 1}


def _lent_task(w: WorkerCore, *, caller: str = "c", owner: str = "o", oid: str = "o/x"):
    """Caller ``caller`` (a borrower) pushes to ``w`` a task that takes shared(x) of ``owner``."""
    from ownership.core.messages import Payload, TaskSpec

    shared = Payload(data=b"ref", refs=(RefInfo(object_id=oid, owner=owner),))
    task = TaskSpec(task_id=f"{caller}/t1", owner=caller, return_id=f"{caller}/t1.r", function_id="f", function=Payload(data=b"f"), args=(Arg(value=shared),))
    return task, w.handle(Received(caller, PushTask(task=task, lease_id="l", attempt=1)))


def test_sub_borrower_registers_with_the_owner_before_its_task_runs() -> None:
    from ownership.core.events import Execute
    from ownership.core.messages import AddBorrower, BorrowerAdded, Payload

    w = registered_worker("w", "n1")
    task, fx = _lent_task(w)
    assert [(e.dst, e.msg) for e in fx if isinstance(getattr(e, "msg", None), AddBorrower)] == [
        ("o", AddBorrower(object_ids=("o/x",), owner="o", borrower="w"))
    ]
    assert not any(isinstance(e, Execute) for e in fx), "ran before the owner counted the worker"
    fx = w.handle(Received("o", BorrowerAdded(object_ids=("o/x",), owner="o", borrower="w")))
    assert [e.task.task_id for e in fx if isinstance(e, Execute)] == [task.task_id]
    assert w.refs.get_ref("o/x").owner_waiting == 1, "the answer stands for the owner's WaitForRefRemoved"
    fx = w.handle(TaskDone(task.task_id, value=Payload(data=b"v")))
    assert RefRemoved(object_id="o/x", borrower="w", owner="o") in [getattr(e, "msg", None) for e in fx]


def test_task_from_the_owner_runs_without_registering() -> None:
    from ownership.core.events import Execute

    w = registered_worker("w", "n1")
    _task, fx = _lent_task(w, caller="o")
    assert [type(e).__name__ for e in fx] == [Execute.__name__]


def test_owner_counts_a_borrower_that_asks(h) -> None:
    from ownership.core.messages import AddBorrower, BorrowerAdded, Payload

    o = registered_worker("o", "n1")
    o.handle(Put("o/x", h.value()))
    fx = o.handle(Received("w", AddBorrower(object_ids=("o/x",), owner="o", borrower="w")))
    assert o.refs.get_ref("o/x").borrowers == {"w": 1}
    assert [(e.dst, e.msg) for e in fx] == [("w", BorrowerAdded(object_ids=("o/x",), owner="o", borrower="w"))]
    o.handle(RemoveLocalRef("o/x"))
    assert o.refs.get_ref("o/x") is not None, "freed while the registered borrower holds it"
    # The answer was the owner's request too: the borrower's RefRemoved releases it.
    o.handle(Received("w", RefRemoved(object_id="o/x", borrower="w", owner="o")))
    assert o.refs.get_ref("o/x") is None


def test_add_borrower_of_freed_object_fails_the_task_with_object_lost(h) -> None:
    from ownership.core.messages import AddBorrower, BorrowerAdded, Payload

    o = registered_worker("o", "n1")
    o.handle(Put("o/x", h.value()))
    o.handle(RemoveLocalRef("o/x"))
    assert o.refs.get_ref("o/x") is None
    fx = o.handle(Received("w", AddBorrower(object_ids=("o/x",), owner="o", borrower="w")))
    assert [(e.dst, e.msg) for e in fx] == [("w", BorrowerAdded(object_ids=("o/x",), owner="o", borrower="w", refused=("o/x",)))]

    w = registered_worker("w", "n1")
    task, _fx = _lent_task(w)
    fx = w.handle(Received("o", fx[0].msg))
    [reply] = [e.msg for e in fx if isinstance(getattr(e, "msg", None), TaskReply)]
    assert reply.task_id == task.task_id
    assert reply.error is not None and reply.error.kind == "object_lost" and "freed by its owner" in reply.error.message
    assert w.refs.table == {} and w.executor.running == {}


def test_owner_death_while_registering_fails_the_task_with_owner_died() -> None:
    from ownership.core.messages import WorkerDied

    w = registered_worker("w", "n1")
    task, _fx = _lent_task(w)
    fx = w.handle(Received("n1", WorkerDied(worker="o", node="n2")))
    [reply] = [e.msg for e in fx if isinstance(getattr(e, "msg", None), TaskReply)]
    assert reply.task_id == task.task_id and reply.error is not None and reply.error.kind == "owner_died"
    assert w.executor.running == {}


def _run(o: WorkerCore, spec, value=None, *, stored_at: str | None = None) -> None:
    """``spec`` is leased, runs and replies with ``value`` inline, or with the
    node that stores its (large) value."""
    o.handle(Submit(spec))
    task = o.submitter.tasks[spec.task_id]
    lease = f"l-{spec.task_id}"
    o.handle(Received(o.node, LeaseGranted(request_id=task.request_id, lease_id=lease, worker="w", node=o.node)))
    refs = value.refs if value is not None else ()
    reply = TaskReply(task_id=spec.task_id, return_id=spec.return_id, attempt=task.attempt, worker="w", lease_id=lease, value=value, refs=refs, location=stored_at)
    o.handle(Received(stored_at or "w", reply))


def test_freed_value_that_a_lineage_keeps_releases_the_refs_it_held(h) -> None:
    """y's value holds x, and z was computed from y, so y's entry stays (its
    lineage) once y is freed. The value is gone, and with it what it held:
    x is freed, not kept for as long as z lives."""
    o = registered_worker("o", "n1")
    o.handle(Put("o/x", h.value(b"inner")))
    x = RefInfo(object_id="o/x", owner="o")
    y = h.spec(o)
    _run(o, y, h.value(b"outer", refs=[x]))
    assert o.refs.get_ref("o/x").contained_in == {y.return_id}
    z = h.spec(o, args=[Arg(ref=RefInfo(object_id=y.return_id, owner="o"))], max_retries=1)
    _run(o, z, stored_at="n2")  # z's copy may be lost: its lineage (y) is kept
    o.handle(RemoveLocalRef("o/x"))
    o.handle(RemoveLocalRef(y.return_id))
    assert o.refs.get_ref(y.return_id).status == "freed"  # z's lineage keeps the entry
    assert "o/x" not in o.refs.table


def test_failed_rebuild_of_a_finished_task_does_not_release_its_arguments_again(h) -> None:
    """z = g(y) finished (its reply released y's submitted-task count) and its
    copy at n2 is lost; with no retry left its rebuild fails. That failure
    must not release y a second time: the count is v's, which still runs."""
    o = registered_worker("o", "n1")
    y = h.spec(o)
    _run(o, y, h.value(b"y"))
    on_y = [Arg(ref=RefInfo(object_id=y.return_id, owner="o"))]
    z = h.spec(o, args=on_y, max_retries=0)
    _run(o, z, stored_at="n2")
    v = h.spec(o, args=on_y)
    o.handle(Submit(v))
    assert o.refs.get_ref(y.return_id).submitted == 1
    o.handle(Received("r", GetObject(object_id=z.return_id, requester="r", bad=("n2",))))
    assert o.refs.get_ref(z.return_id).status == "failed"
    assert o.refs.get_ref(y.return_id).submitted == 1


def _sent(fx, kind):
    return [(e.dst, e.msg) for e in fx if isinstance(getattr(e, "msg", None), kind)]


def test_borrower_serving_a_value_that_holds_a_borrowed_ref_has_the_owner_count_the_reader_first(h) -> None:
    # b borrows x (owned by o) and owns y, whose value holds x; r gets y
    # from b. If only b knew of r (r among b's sub-borrowers, as in Ray), b's
    # death before it reports r would let o free x while r uses it.
    from ownership.core.messages import BorrowerRegistered, RegisterBorrower, WorkerDied

    o = registered_worker("o", "n1")
    o.handle(Put("o/x", h.value(b"inner")))
    o.refs.get_ref("o/x").borrowers["b"] = 1
    b = registered_worker("b", "n2")
    b.handle(Put("b/y", h.value(b"outer", refs=[RefInfo(object_id="o/x", owner="o")])))
    fx = b.handle(Received("r", GetObject(object_id="b/y", requester="r")))
    assert _sent(fx, ObjectValue) == [], "served before the owner counts the reader"
    assert _sent(fx, RegisterBorrower) == [
        ("o", RegisterBorrower(object_ids=("o/x",), owner="o", borrower="r", lender="b", via="b/y", lend=1))
    ]
    assert b.refs.get_ref("o/x").sub_borrowers == []
    fx = o.handle(Received("b", _sent(fx, RegisterBorrower)[0][1]))
    assert o.refs.get_ref("o/x").borrowers == {"b": 1, "r": 1}
    assert _sent(fx, WaitForRefRemoved) == [("r", WaitForRefRemoved(object_id="o/x", owner="o", via="b/y", borrower="r"))]
    [(dst, registered)] = _sent(fx, BorrowerRegistered)
    assert dst == "b"
    # b drops y and x meanwhile: it still holds x for the value it keeps back.
    b.handle(RemoveLocalRef("b/y"))
    assert b.refs.get_ref("o/x").lending == 1
    fx = b.handle(Received("o", registered))
    [(dst, value)] = _sent(fx, ObjectValue)
    assert dst == "r" and value.value is not None
    # b dies before it could report anything: o still counts r.
    o.handle(Received("n1", WorkerDied(worker="b", node="n2")))
    o.handle(RemoveLocalRef("o/x"))
    assert o.refs.get_ref("o/x") is not None and o.refs.get_ref("o/x").borrowers == {"r": 1}, "freed while the reader holds it"


def test_lender_whose_owner_dies_hands_the_value_over_without_its_count(h) -> None:
    from ownership.core.messages import RegisterBorrower, WorkerDied

    b = registered_worker("b", "n2")
    b.handle(Put("b/y", h.value(b"outer", refs=[RefInfo(object_id="o/x", owner="o")])))
    fx = b.handle(Received("r", GetObject(object_id="b/y", requester="r")))
    assert _sent(fx, RegisterBorrower)
    fx = b.handle(Received("n2", WorkerDied(worker="o", node="n1")))
    [(dst, value)] = _sent(fx, ObjectValue)
    assert dst == "r" and value.value is not None
    assert b.refs.lends == {}


def test_task_returning_a_borrowed_ref_its_caller_did_not_pass_replies_once_the_owner_counts_the_caller(h) -> None:
    # w borrows x (owned by o) beyond a task (actor state), then a task of
    # caller c returns x inside its value: c's count must not rest on w.
    from ownership.core.messages import BorrowerRegistered, Payload, RegisterBorrower, TaskSpec

    w = registered_worker("w", "n1")
    w.handle(Put("w/keep", h.value(b"state", refs=[RefInfo(object_id="o/x", owner="o")])))
    task = TaskSpec(task_id="c/t1", owner="c", return_id="c/t1.r", function_id="f", function=Payload(data=b"f"), args=())
    w.handle(Received("c", PushTask(task=task, lease_id="l", attempt=1)))
    fx = w.handle(TaskDone("c/t1", value=h.value(b"[x]", refs=[RefInfo(object_id="o/x", owner="o")])))
    assert _sent(fx, TaskReply) == [], "replied before the owner counts the caller"
    [(dst, register)] = _sent(fx, RegisterBorrower)
    assert dst == "o" and register.borrower == "c" and register.via == "c/t1.r"
    w.handle(RemoveLocalRef("w/keep"))
    assert w.refs.get_ref("o/x").lending == 1
    fx = w.handle(Received("o", BorrowerRegistered(object_ids=("o/x",), owner="o", borrower="c", lender="w", lend=register.lend)))
    [(dst, reply)] = _sent(fx, TaskReply)
    assert dst == "c" and reply.task_id == "c/t1"
    assert "o/x" not in w.refs.table or not w.refs.get_ref("o/x").in_use()
