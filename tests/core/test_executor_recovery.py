"""TaskExecutor and FailureHandler."""

from __future__ import annotations

import attrs
import pytest

from ownership.core.events import CancelExecution, Execute, GetDone, GetValue, Put, Received, RemoveLocalRef, Submit, TaskDone
from ownership.core.messages import (
    Arg,
    GetObject,
    NodeDied,
    ObjectValue,
    Payload,
    PushTask,
    PutObject,
    RefInfo,
    RequestLease,
    TaskReply,
    TaskSpec,
    WorkerDied,
    WorkerRegistered,
)
from ownership.core.worker import UnexpectedEvent, WorkerCore

from .conftest import registered_worker


def push(task_id="o/t1", owner="o", args=(), kind="task", attempt=1) -> PushTask:
    s = TaskSpec(task_id=task_id, owner=owner, return_id=f"{task_id}.r", function_id="f", function=Payload(data=b"f"), args=tuple(args), kind=kind)
    return PushTask(task=s, lease_id="n1/l1", attempt=attempt)


def test_execute_with_inline_args_runs_at_once() -> None:
    w = registered_worker("w", "n1")
    [e] = w.handle(Received("o", push(args=[Arg(value=Payload(data=b"1"))])))
    assert isinstance(e, Execute) and e.args == (Payload(data=b"1"),)


def test_push_that_overtakes_the_registration_runs_once_registered() -> None:
    # Until its node registers it, a worker knows neither the head (where a
    # recoverable object of the task must be logged) nor the dead.
    w = WorkerCore("w", "n1")
    assert w.handle(Received("o", push(args=[Arg(value=Payload(data=b"1"))]))) == []
    fx = w.handle(Received("n1", WorkerRegistered(worker="w", node="n1", head="head")))
    assert [e.task.task_id for e in fx if isinstance(e, Execute)] == ["o/t1"]


def test_duplicate_push_runs_once() -> None:
    w = registered_worker("w", "n1")
    assert w.handle(Received("o", push()))
    assert w.handle(Received("o", push())) == []
    w.handle(TaskDone("o/t1", value=Payload(data=b"r")))
    assert w.handle(Received("o", push())) == []


def test_push_of_another_owner_or_epoch_is_not_a_duplicate() -> None:
    # A re-executed parent makes a recoverable object again under the same
    # task id (at the same epoch and attempt once the first was freed), and
    # a new owner reruns a taken-over one at its own epoch: the worker that
    # ran the first push runs these too.
    w = registered_worker("w", "n1")
    w.handle(Received("o", push(task_id="p/t1", owner="o")))
    w.handle(TaskDone("p/t1", value=Payload(data=b"r")))
    assert w.handle(Received("o", push(task_id="p/t1", owner="o"))) == []
    [e] = w.handle(Received("o2", push(task_id="p/t1", owner="o2")))
    assert isinstance(e, Execute)
    w.handle(TaskDone("p/t1", value=Payload(data=b"r")))
    rerun = attrs.evolve(push(task_id="p/t1", owner="o2"), epoch=1)
    [e] = w.handle(Received("o2", rerun))
    assert isinstance(e, Execute)


def test_argument_by_reference_is_fetched_from_its_owner_first() -> None:
    w = registered_worker("w", "n1")
    fx = w.handle(Received("o", push(args=[Arg(ref=RefInfo(object_id="p/x", owner="p"))])))
    assert [(e.dst, e.msg) for e in fx] == [("p", GetObject(object_id="p/x", requester="w"))]
    [e] = w.handle(Received("p", ObjectValue(object_id="p/x", value=Payload(data=b"x"))))
    assert isinstance(e, Execute) and e.args == (Payload(data=b"x"),)
    fx = w.handle(TaskDone("o/t1", value=Payload(data=b"r")))
    assert w.refs.table == {}, "the fetched argument is released with the task"


def test_large_return_is_stored_and_the_store_relays_the_reply() -> None:
    w = registered_worker("w", "n1")
    w.handle(Received("o", push()))
    big = Payload(data=b"x" * (w.config.inline_threshold + 1))
    [send] = w.handle(TaskDone("o/t1", value=big))
    assert send.dst == "n1" and isinstance(send.msg, PutObject)
    assert send.msg.reply.location == "n1" and send.msg.reply.value is None


def test_task_of_a_dead_owner_is_dropped_without_reply() -> None:
    w = registered_worker("w", "n1")
    w.handle(Received("o", push()))
    fx = w.handle(Received("n1", WorkerDied(worker="o", node="n2")))
    assert CancelExecution(task_id="o/t1") in fx and w.executor.running == {}
    assert w.handle(TaskDone("o/t1", value=Payload(data=b"r"))) == []


def test_task_holding_a_dead_owners_ref_fails_with_owner_died() -> None:
    w = registered_worker("w", "n1")
    shared = Payload(data=b"ref", refs=(RefInfo(object_id="p/x", owner="p"),))
    w.handle(Received("o", push(args=[Arg(value=shared)])))
    fx = w.handle(Received("n1", WorkerDied(worker="p", node="n2")))
    [reply] = [e.msg for e in fx if isinstance(getattr(e, "msg", None), TaskReply)]
    assert reply.error.kind == "owner_died"
    assert w.refs.table == {}


def test_node_death_loses_stored_object_and_get_reconstructs_it(mini, h) -> None:
    d = mini.driver
    s = h.spec(d, max_retries=1)
    mini.r.feed(d.address, Submit(s))
    mini.r.run(skip=lambda f: isinstance(f[2], PushTask))
    mini.r.deliver_type(PushTask)
    worker = d.submitter.tasks[s.task_id].location
    big = Payload(data=b"x" * (d.config.inline_threshold + 1))
    mini.r.feed(worker, TaskDone(s.task_id, value=big))
    mini.r.run()
    assert d.refs.get_ref(s.return_id).locations == {"n1"}
    d.handle(Received("n1", NodeDied(node="n1", workers=(worker,))))
    ref = d.refs.get_ref(s.return_id)
    assert ref.status == "lost", "lazy: nobody waits for it yet"
    fx = mini.r.feed(d.address, GetValue(1, s.return_id))
    assert d.submitter.tasks[s.task_id].retries_left == 0
    assert any(isinstance(getattr(e, "msg", None), RequestLease) for e in fx)


def test_lost_put_object_without_lineage_fails_with_object_lost() -> None:
    w = registered_worker("a", "n1")
    big = Payload(data=b"x" * (w.config.inline_threshold + 1))
    w.handle(Put("a/p1", big))
    from ownership.core.messages import ObjectStored

    w.handle(Received("n2", ObjectStored(object_id="a/p1", node="n2")))
    w.handle(Received("n1", NodeDied(node="n2", workers=())))
    [done] = w.handle(GetValue(1, "a/p1"))
    assert isinstance(done, GetDone) and done.error.kind == "object_lost"


def test_borrowed_ref_fate_shares_with_its_owner() -> None:
    b = registered_worker("b", "n1")
    from ownership.core.events import AddLocalRef

    b.handle(AddLocalRef("o/x", "o"))
    fx = b.handle(GetValue(1, "o/x"))
    assert [(e.dst, e.msg) for e in fx] == [("o", GetObject(object_id="o/x", requester="b"))]
    fx = b.handle(Received("n1", WorkerDied(worker="o", node="n2")))
    [done] = [e for e in fx if isinstance(e, GetDone)]
    assert done.error.kind == "owner_died"
    b.handle(RemoveLocalRef("o/x"))
    assert b.refs.table == {}


def test_messages_from_a_dead_worker_are_ignored() -> None:
    w = registered_worker("w", "n1")
    w.handle(Received("n1", WorkerDied(worker="o", node="n2")))
    assert w.handle(Received("o", push())) == []
    assert w.dropped == 1


def test_unknown_event_is_a_clear_error() -> None:
    w = registered_worker("w", "n1")
    with pytest.raises(UnexpectedEvent):
        w.handle(object())  # type: ignore[arg-type]


def test_task_arriving_with_a_dead_owners_ref_fails_before_running() -> None:
    w = registered_worker("w", "n1")
    w.handle(Received("n1", WorkerDied(worker="p", node="n2")))
    shared = Payload(data=b"ref", refs=(RefInfo(object_id="p/x", owner="p"),))
    fx = w.handle(Received("o", push(args=[Arg(value=shared)])))
    assert not [e for e in fx if isinstance(e, Execute)]
    [reply] = [e.msg for e in fx if isinstance(getattr(e, "msg", None), TaskReply)]
    assert reply.error.kind == "owner_died" and w.refs.table == {}
