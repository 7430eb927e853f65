"""A task's argument that is lost or being made: owner, executor and node, one stimulus at a time.

The owner writes off the nodes a requester found without a copy (GetObject's
``bad``) and tells a requester that must wait (ObjectPending); a requester
never stops asking; a leased task told to wait lends its CPU; a worker that
registers learns the deaths its node heard of; a ``put`` that a lineage
names is kept.
"""

from __future__ import annotations

from ownership.core.config import CoreConfig
from ownership.core.events import Execute, GetDone, GetValue, Put, Received, RemoveLocalRef, Send, Submit, TaskDone
from ownership.core.messages import (
    Arg,
    ErrorInfo,
    FreeObject,
    GetObject,
    LeaseGranted,
    NodeDied,
    ObjectCopy,
    ObjectPending,
    ObjectStored,
    ObjectValue,
    Payload,
    PullObject,
    PushTask,
    RefInfo,
    RegisterWorker,
    RequestLease,
    TaskReply,
    TaskSpec,
    WorkerBlocked,
    WorkerRegistered,
    WorkerUnblocked,
)
from ownership.core.node import NodeCore
from ownership.core.worker import WorkerCore

from .conftest import registered_worker

BIG = Payload(data=b"b" * (200 * 1024))


def sends(fx) -> list[tuple[str, object]]:
    return [(e.dst, e.msg) for e in fx if isinstance(e, Send)]


def run_on(o: WorkerCore, spec: TaskSpec, *, node: str, lease: str) -> None:
    """The owner submits ``spec``; it is leased, and its large value stored at ``node``."""
    o.handle(Submit(spec))
    task = o.submitter.tasks[spec.task_id]
    grant = LeaseGranted(request_id=task.request_id, lease_id=lease, worker="w", node=o.node)
    o.handle(Received(o.node, grant))
    reply = TaskReply(task_id=spec.task_id, return_id=spec.return_id, attempt=task.attempt, worker="w", lease_id=lease, location=node)
    o.handle(Received(node, reply))


def stored_at_n2(h, retries: int = 1) -> tuple[WorkerCore, TaskSpec]:
    o = registered_worker("o", "n1", CoreConfig(lease_idle_ticks=0))  # the lease went back with the reply
    s = h.spec(o, max_retries=retries)
    run_on(o, s, node="n2", lease="n1/l1")
    assert o.refs.get_ref(s.return_id).locations == {"n2"}
    return o, s


def test_owner_writes_off_the_nodes_a_requester_found_without_a_copy_and_rebuilds(h) -> None:
    o, s = stored_at_n2(h)
    fx = o.handle(Received("r", GetObject(object_id=s.return_id, requester="r", bad=("n2",))))
    [(to_r, pending), (to_node, req)] = sends(fx)
    assert (to_r, pending) == ("r", ObjectPending(object_id=s.return_id))
    assert to_node == "n1" and isinstance(req, RequestLease) and req.task_id == s.task_id
    ref = o.refs.get_ref(s.return_id)
    assert ref.status == "pending" and ref.locations == set() and ref.remote_waiters == ["r"]
    assert o.submitter.tasks[s.task_id].retries_left == 0
    # Made again at n3: the requester hears where.
    task = o.submitter.tasks[s.task_id]
    o.handle(Received("n1", LeaseGranted(request_id=task.request_id, lease_id="n1/l2", worker="w", node="n1")))
    reply = TaskReply(task_id=s.task_id, return_id=s.return_id, attempt=task.attempt, worker="w", lease_id="n1/l2", location="n3")
    fx = o.handle(Received("n3", reply))
    assert ("r", ObjectValue(object_id=s.return_id, locations=("n3",))) in sends(fx)


def test_owner_keeps_the_locations_a_requester_did_not_name(h) -> None:
    o, s = stored_at_n2(h)
    fx = o.handle(Received("r", GetObject(object_id=s.return_id, requester="r", bad=("n9",))))
    assert sends(fx) == [("r", ObjectValue(object_id=s.return_id, locations=("n2",)))]


def test_owner_tells_a_requester_of_a_pending_object_to_wait(h) -> None:
    o = registered_worker("o", "n1")
    s = h.spec(o)
    o.handle(Submit(s))
    fx = o.handle(Received("r", GetObject(object_id=s.return_id, requester="r")))
    assert sends(fx) == [("r", ObjectPending(object_id=s.return_id))]
    fx = o.handle(Received("r", GetObject(object_id=s.return_id, requester="r")))  # asked twice: one answer later
    assert o.refs.get_ref(s.return_id).remote_waiters == ["r"]


def push_with_arg(w: WorkerCore, lease: str | None = "n1/l1") -> list:
    spec = TaskSpec(
        task_id="p/t1",
        owner="p",
        return_id="p/t1.r",
        function_id="f",
        function=Payload(data=b"f"),
        args=(Arg(ref=RefInfo(object_id="o/x", owner="o")),),
    )
    return w.handle(Received("p", PushTask(task=spec, lease_id=lease, attempt=1)))


def test_executor_told_only_dead_locations_asks_the_owner_again_naming_them() -> None:
    w = registered_worker("w", "n1")
    w.dead_nodes.add("n2")
    assert sends(push_with_arg(w)) == [("o", GetObject(object_id="o/x", requester="w"))]
    fx = w.handle(Received("o", ObjectValue(object_id="o/x", locations=("n2",))))
    assert sends(fx) == [("o", GetObject(object_id="o/x", requester="w", bad=("n2",)))]


def test_executor_names_a_store_without_the_copy_to_the_owner() -> None:
    w = registered_worker("w", "n1")
    push_with_arg(w)
    fx = w.handle(Received("o", ObjectValue(object_id="o/x", locations=("n2",))))
    assert sends(fx) == [("n2", PullObject(object_id="o/x", requester="w"))]
    fx = w.handle(Received("n2", ObjectCopy(object_id="o/x")))
    assert sends(fx) == [("o", GetObject(object_id="o/x", requester="w", bad=("n2",)))]
    # The owner's next answer starts afresh: nothing is named twice.
    fx = w.handle(Received("o", ObjectValue(object_id="o/x", locations=("n3",))))
    fx = w.handle(Received("n3", ObjectCopy(object_id="o/x")))
    assert sends(fx) == [("o", GetObject(object_id="o/x", requester="w", bad=("n3",)))]


def test_executor_pulling_from_a_node_that_dies_asks_the_owner_again() -> None:
    w = registered_worker("w", "n1")
    push_with_arg(w)
    w.handle(Received("o", ObjectValue(object_id="o/x", locations=("n2",))))
    fx = w.handle(Received("n1", NodeDied(node="n2", workers=("w1@n2",))))
    assert sends(fx) == [("o", GetObject(object_id="o/x", requester="w", bad=("n2",)))]


def test_leased_task_lends_its_cpu_while_its_argument_is_being_made() -> None:
    w = registered_worker("w", "n1")
    push_with_arg(w)
    fx = w.handle(Received("o", ObjectPending(object_id="o/x")))
    assert sends(fx) == [("n1", WorkerBlocked(worker="w", lease_id="n1/l1"))]
    assert w.handle(Received("o", ObjectPending(object_id="o/x"))) == []  # lent once
    fx = w.handle(Received("o", ObjectValue(object_id="o/x", value=Payload(data=b"x"))))
    assert sends(fx) == [("n1", WorkerUnblocked(worker="w", lease_id="n1/l1"))]
    assert [e for e in fx if isinstance(e, Execute)]
    assert w.executor.lent_lease is None and w.executor.blocked_tasks == 0


def test_leased_task_takes_its_cpu_back_when_its_argument_fails() -> None:
    w = registered_worker("w", "n1")
    push_with_arg(w)
    w.handle(Received("o", ObjectPending(object_id="o/x")))
    lost = ErrorInfo(kind="object_lost", message="gone")
    fx = w.handle(Received("o", ObjectValue(object_id="o/x", error=lost)))
    assert ("n1", WorkerUnblocked(worker="w", lease_id="n1/l1")) in sends(fx)
    [reply] = [m for _, m in sends(fx) if isinstance(m, TaskReply)]
    assert reply.error.kind == "object_lost"
    assert w.executor.blocked_tasks == 0 and w.executor.lent_lease is None


def test_task_without_a_lease_lends_nothing() -> None:
    w = registered_worker("w", "n1")
    push_with_arg(w, lease=None)  # an actor's call: its actor holds the CPU
    assert w.handle(Received("o", ObjectPending(object_id="o/x"))) == []


def test_worker_registered_after_deaths_learns_them_from_its_node() -> None:
    n = NodeCore("n1", "head", (("CPU", 1.0),), pool_size=1)
    n.handle(Received("head", NodeDied(node="n2", workers=("w1@n2",))))
    n.handle(Received("w2@n1", RegisterWorker(worker="w2@n1", node="n1")))
    fx = n.handle(Received("head", WorkerRegistered(worker="w2@n1", node="n1")))
    [(dst, registered)] = [(d, m) for d, m in sends(fx) if isinstance(m, WorkerRegistered)]
    assert dst == "w2@n1"
    assert registered.dead_nodes == ("n2",) and registered.dead_workers == ("w1@n2",)
    w = WorkerCore("w2@n1", "n1")
    w.handle(Received("n1", registered))
    assert w.dead_nodes == {"n2"} and w.dead_workers == {"w1@n2"}


def put_stored(o: WorkerCore, object_id: str = "o/p1") -> None:
    o.handle(Put(object_id, BIG))
    o.handle(Received("n1", ObjectStored(object_id=object_id, node="n1")))


def test_put_named_by_a_lineage_is_kept_until_that_lineage_goes(h) -> None:
    o = registered_worker("o", "n1")
    put_stored(o)
    s = h.spec(o, args=[Arg(ref=RefInfo(object_id="o/p1", owner="o"))], max_retries=1)
    run_on(o, s, node="n2", lease="n1/l1")
    fx = o.handle(RemoveLocalRef("o/p1"))
    assert not [m for _, m in sends(fx) if isinstance(m, FreeObject)]
    kept = o.refs.get_ref("o/p1")
    assert kept.status == "ready" and kept.locations == {"n1"} and kept.lineage == 1
    fx = o.handle(RemoveLocalRef(s.return_id))
    assert ("n1", FreeObject(object_id="o/p1")) in sends(fx)
    assert o.refs.table == {}


def test_put_without_a_lineage_naming_it_is_freed_when_dropped() -> None:
    o = registered_worker("o", "n1")
    put_stored(o)
    assert sends(o.handle(RemoveLocalRef("o/p1"))) == [("n1", FreeObject(object_id="o/p1"))]
    assert o.refs.table == {}


def test_lost_put_fails_saying_nothing_can_make_it_again() -> None:
    o = registered_worker("o", "n1")
    put_stored(o)
    fx = o.handle(Received("r", GetObject(object_id="o/p1", requester="r", bad=("n1",))))
    [(_, pending), (_, failed)] = sends(fx)
    assert pending == ObjectPending(object_id="o/p1")
    assert failed.error.kind == "object_lost" and "made by put" in failed.error.message
    [done] = [e for e in o.handle(GetValue(1, "o/p1")) if isinstance(e, GetDone)]
    assert "nothing can make it again" in done.error.message
