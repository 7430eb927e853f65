"""The Scheduling recognizer on the steps of a TCP run (no cluster): which
spec actions a node's steps are."""

from __future__ import annotations

from conformance.eventlog import CoreStep, NetStep
from conformance.mappings.scheduling import SchedulingMapping
from ownership.core.events import KillWorker, PeerLost, Received, Send
from ownership.core.messages import LeaseGranted, RequestLease, ReturnLease
from ownership.runtime.memory import NetworkEvent
from ownership.tla.values import ModelValue, TLAFunction

OWNER, NODE, WORKER, TASK = "127.0.0.1:1000#a", "127.0.0.1:2000#b", "127.0.0.1:3000#c", "T1"


def _mapping(task_ids: tuple[str, ...] = (TASK,)) -> SchedulingMapping:
    o, n, w, k = (ModelValue(v) for v in ("o1", "n1", "w1", "k1"))
    tasks = {ModelValue(f"t{i}"): tid for i, tid in enumerate(task_ids, start=1)}
    none = {name: ModelValue(name) for name in ("NoOwner", "NoNode", "NoWorker", "NoTask", "NoKey")}
    constants = {
        "Owners": {o}, "Nodes": {n}, "Workers": {w}, "Tasks": set(tasks), "Keys": {k},
        "OwnerNode": TLAFunction({o: n}), "WorkerNode": TLAFunction({w: n}), "Capacity": TLAFunction({n: 2}),
        "TaskOwner": TLAFunction({t: o for t in tasks}), "TaskKey": TLAFunction({t: k for t in tasks}), "MaxRetries": 1,
        "PipelineDepth": 2, "MaxCrashes": 1, **none,
    }
    mapping = SchedulingMapping(constants)
    mapping.bind.owner_addr = {o: OWNER}
    mapping.bind.node_addr = {n: NODE}
    mapping.bind.worker_addr = {w: WORKER}
    mapping.bind.task_id = tasks
    mapping.bind.key_resources = {k: (("CPU", 1.0),)}
    mapping.head_address = "head"
    return mapping


GRANTED = LeaseGranted(request_id="r1", lease_id="L1", worker=WORKER, node=NODE)


def _leased() -> list[CoreStep]:
    """The owner asks NODE for a lease for TASK (clock 1); NODE grants WORKER as L1 (clock 2)."""
    request = RequestLease(request_id="r1", owner=OWNER, task_id=TASK, resources=(("CPU", 1.0),))
    return [
        CoreStep(1, OWNER, Received(OWNER, request), (Send(NODE, request),)),
        CoreStep(2, NODE, Received(OWNER, request), (Send(OWNER, GRANTED),)),
    ]


def test_lease_returned_with_kill_is_its_workers_detection_at_once():
    """The owner lost the worker it leased and returns the lease with kill:
    the node marks the slot dying and never leases it again. The model's
    node must see the worker gone at that step (were it left in the pool
    until the process's exit is noticed, the model would grant it, and a
    spillback the node makes meanwhile would be rejected), and the exit,
    when the node notices it, is not a second detection."""
    steps = [
        *_leased(),
        NetStep(3, NetworkEvent("crash", None, None, WORKER)),
        CoreStep(4, NODE, Received(OWNER, ReturnLease(lease_id="L1", worker=WORKER, kill=True)), (KillWorker(WORKER),)),
        CoreStep(5, NODE, PeerLost(WORKER), ()),
    ]
    lines = _mapping().recognize(steps)
    at_node = [(line.clock, line.action) for line in lines if line.process in (NODE, WORKER)]
    assert at_node == [
        (2, "SchedulerGrantLease"),
        (3, "WorkerCrash"),
        (4, "SchedulerReleaseLease"),
        (4, "SchedulerDetectWorkerDeath"),
    ], at_node


def test_a_worker_told_to_stop_may_run_until_the_stop_lands():
    """The owner, itself a worker, dies; its node hears of it and tells the
    worker leased to it to stop (KillWorker, a SIGKILL). The signal takes
    its time: the worker runs the task the owner pushed before it died,
    then ends. The stop is SchedulerStopWorker at the worker's end, not a
    death at the reclaim: a 90 s chaos log was rejected at that execution."""
    from ownership.core.events import TaskDone
    from ownership.core.messages import Payload, PushTask, TaskReply, TaskSpec, WorkerDied

    mapping = _mapping()
    mapping.unregistered = frozenset()
    spec = TaskSpec(task_id=TASK, owner=OWNER, return_id=f"{TASK}.r", function_id="f", function=Payload(data=b"f"), args=())
    push = PushTask(task=spec, lease_id="L1", attempt=1)
    reply = TaskReply(task_id=TASK, return_id=spec.return_id, attempt=1, worker=WORKER, lease_id="L1", value=Payload(data=b"1"))
    steps = [
        *_leased(),
        CoreStep(3, OWNER, Received(NODE, GRANTED), (Send(WORKER, push),)),
        CoreStep(4, WORKER, Received(OWNER, push), ()),
        NetStep(5, NetworkEvent("crash", None, None, OWNER)),
        CoreStep(6, NODE, Received("head", WorkerDied(worker=OWNER, node="127.0.0.1:9000#z")), (KillWorker(WORKER),)),
        CoreStep(7, WORKER, TaskDone(task_id=TASK, value=Payload(data=b"1")), (Send(OWNER, reply),)),
        NetStep(8, NetworkEvent("crash", None, None, WORKER)),
        CoreStep(9, NODE, PeerLost(WORKER), ()),
    ]
    lines = mapping.recognize(steps)
    at_node = [(line.clock, line.action) for line in lines if line.process in (NODE, WORKER)]
    assert at_node == [
        (2, "SchedulerGrantLease"),
        (6, "SchedulerReclaimLeases"),
        (7, "WorkerExecute"),
        (8, "SchedulerStopWorker"),
        (9, "SchedulerDetectWorkerDeath"),
    ], at_node


def test_a_task_failed_by_its_argument_before_any_lease_is_not_a_resubmit():
    """The owner hears that a worker died: the task that ran there is failed
    by the scan (out of retries), and the task waiting for that task's
    result as its argument fails with it. Only the first is an
    OwnerResubmit; the second never asked for a lease, and Scheduling (no
    arguments) leaves it queued. A 90 s chaos log was rejected there."""
    from ownership.core.messages import WorkerDied

    mapping = _mapping((TASK, "T2"))
    before = {TASK: ("running", 0), "T2": ("waiting", 0)}
    after = {TASK: ("failed", 0), "T2": ("failed", 0)}
    died = WorkerDied(worker=WORKER, node=NODE)
    steps = [CoreStep(1, OWNER, Received(NODE, died), (), before, after)]
    lines = mapping.recognize(steps)
    resubmits = [(line.action, line.params.get("t")) for line in lines if line.action == "OwnerResubmit"]
    assert resubmits == [("OwnerResubmit", ModelValue("t1"))], lines


def test_a_reply_the_worker_sends_in_a_step_other_than_the_tasks_end_is_its_execution():
    """A pushed task whose argument holds a ref it must register with that
    ref's owner fails without running when that owner dies: the worker
    replies in the step of the death notice, not of a TaskDone. So does a
    reply kept back until the owners of borrowed refs in its value counted
    the caller. Either reply is the spec's WorkerExecute; a 3-minute chaos
    log was rejected at the owner's handling of such a reply."""
    from ownership.core.messages import BorrowerRegistered, ErrorInfo, PushTask, TaskReply, TaskSpec, Payload, WorkerDied

    spec = TaskSpec(task_id=TASK, owner=OWNER, return_id=f"{TASK}.r", function_id="f", function=Payload(data=b"f"), args=())
    push = PushTask(task=spec, lease_id="L1", attempt=1)
    failed = TaskReply(task_id=TASK, return_id=spec.return_id, attempt=1, worker=WORKER, lease_id="L1",
                       error=ErrorInfo(kind="owner_died", message="the owner of an argument died"))
    died = WorkerDied(worker="127.0.0.1:4000#d", node=NODE)
    registered = BorrowerRegistered(object_ids=("o/x",), owner="127.0.0.1:4000#d", borrower=OWNER, lender=WORKER, lend=1)
    for event in (Received(NODE, died), Received("127.0.0.1:4000#d", registered)):
        steps = [
            CoreStep(1, WORKER, Received(OWNER, push), ()),
            CoreStep(2, WORKER, event, (Send(OWNER, failed),)),
        ]
        at_worker = [(line.clock, line.action) for line in _mapping().recognize(steps) if line.process == WORKER]
        assert at_worker == [(2, "WorkerExecute")], (type(event.msg).__name__, at_worker)


def test_window_model_keeps_only_the_keys_of_the_tasks_it_names():
    """The first window's model: tasks cut to those its lines name, keys to
    theirs (each owner's queues are one per key), free keys among them."""
    from conformance.eventlog import LogLine
    from conformance.sized import _Lifetimes, window_model

    o = ModelValue("o1")
    t1, t2, t3 = (ModelValue(f"t{i}") for i in (1, 2, 3))
    k1, k2, k3 = (ModelValue(f"k{i}") for i in (1, 2, 3))
    constants = {
        "Tasks": {t1, t2, t3}, "Keys": {k1, k2, k3}, "FreeKeys": {k2, k3},
        "TaskOwner": TLAFunction({t1: o, t2: o, t3: o}), "TaskKey": TLAFunction({t1: k1, t2: k2, t3: k3}),
        "TaskRetries": TLAFunction({t1: 1, t2: 1, t3: 1}), "SubmitOrder": (t1, t2, t3),
        **_processes({o: None}, {}),
    }
    lines = [LogLine(1, OWNER, "OwnerSubmit", {"o": o, "t": t1}), LogLine(2, OWNER, "OwnerSubmit", {"o": o, "t": t2}),
             LogLine(3, OWNER, "OwnerSubmit", {"o": o, "t": t3})]
    cut, start = window_model(constants, _Lifetimes(lines), 0, 2, None)
    assert start is None
    assert (cut["Tasks"], cut["Keys"], cut["FreeKeys"]) == ({t1, t2}, {k1, k2}, {k2})
    assert cut["SubmitOrder"] == (t1, t2) and dict(cut["TaskKey"].items()) == {t1: k1, t2: k2}


def _processes(owners: dict, workers: dict) -> dict:
    """Owners (each to its worker, None for a driver) and workers (each to
    its node) as a sized model's constants."""
    no_worker, n = ModelValue("NoWorker"), ModelValue("n1")
    return {
        "Owners": frozenset(owners), "OwnerNode": TLAFunction({o: n for o in owners}),
        "OwnerWorker": TLAFunction({o: w or no_worker for o, w in owners.items()}),
        "Workers": frozenset(workers), "Unregistered": frozenset(workers), "WorkerNode": TLAFunction(workers),
        "NoWorker": no_worker,
    }


def test_window_model_keeps_the_owners_its_lines_name_its_tasks_owners_and_drivers():
    """Owners no line of the first window names are cut (their state stays
    initial in every state of the window); kept are the owners the lines
    name, messages included, the owners of the window's tasks and every
    driver. Every worker is kept: a node's death writes all of its own."""
    from conformance.eventlog import LogLine
    from conformance.sized import _Lifetimes, window_model
    from ownership.tla.values import TLARecord

    driver, busy, told, idle, late = (ModelValue(f"o{i}") for i in range(1, 6))
    w = {i: ModelValue(f"w{i}") for i in range(1, 8)}
    n, t1, t2, k = ModelValue("n1"), ModelValue("t1"), ModelValue("t2"), ModelValue("k1")
    constants = {
        "Tasks": {t1, t2}, "Keys": {k}, "FreeKeys": set(),
        "TaskOwner": TLAFunction({t1: busy, t2: late}), "TaskKey": TLAFunction({t1: k, t2: k}),
        "TaskRetries": TLAFunction({t1: 1, t2: 1}), "SubmitOrder": (t1, t2),
        **_processes({driver: None, busy: w[1], told: w[2], idle: w[3], late: w[4]}, {x: n for x in w.values()}),
    }
    died = TLARecord({"type": "WorkerDied", "owner": told, "worker": w[6]})
    lines = [
        LogLine(1, OWNER, "OwnerSubmit", {"o": busy, "t": t1}),
        LogLine(2, NODE, "SchedulerRegisterWorker", {"n": n, "w": w[5]}),
        LogLine(3, OWNER, "OwnerHandleFailure", {"o": told, "m": died}),
        LogLine(4, OWNER, "OwnerSubmit", {"o": late, "t": t2}),
    ]
    cut, _start = window_model(constants, _Lifetimes(lines), 0, 3, None)
    assert cut["Owners"] == {driver, busy, told}
    assert cut["Tasks"] == {t1} and cut["SubmitOrder"] == (t1,)
    assert cut["Workers"] == cut["Unregistered"] == set(w.values())
    assert dict(cut["OwnerWorker"].items()) == {driver: ModelValue("NoWorker"), busy: w[1], told: w[2]}
    assert set(cut["OwnerNode"]) == cut["Owners"]


def test_a_window_keeps_the_deaths_a_reconstruction_reads():
    """A window that starts with a lineage reconstruction keeps what the
    owner knows of the deaths of the worker the task ran on and of its
    node, though no later line names either: OwnerReconstruct reads them
    through ranOn. (A chaos run's log was rejected at such a line, 17
    lines into its window, the notice in the window before it.)"""
    from conformance.eventlog import LogLine
    from conformance.sized import _Lifetimes, window_model
    from ownership.tla.values import TLARecord

    o, t, k = ModelValue("o1"), ModelValue("t1"), ModelValue("k1")
    ran, other = ModelValue("w1"), ModelValue("w2")
    n1, n2 = ModelValue("n1"), ModelValue("n2")
    constants = {
        "Tasks": {t}, "Keys": {k}, "FreeKeys": set(), "Nodes": {n1, n2}, "NoNode": ModelValue("NoNode"),
        "TaskOwner": TLAFunction({t: o}), "TaskKey": TLAFunction({t: k}),
        "TaskRetries": TLAFunction({t: 3}), "SubmitOrder": (t,),
        **_processes({o: None}, {ran: n2, other: n1}),
    }
    nowhere = TLARecord({"node": constants["NoNode"], "worker": constants["NoWorker"]})
    state = {
        "workerAlive": TLAFunction({ran: False, other: True}), "status": TLAFunction({t: "done"}),
        "location": TLAFunction({t: nowhere}), "retries": TLAFunction({t: 3}), "execs": TLAFunction({t: 1}),
        "ranOn": TLAFunction({t: frozenset({ran})}), "held": TLAFunction({o: frozenset()}),
        "granted": TLAFunction({n1: frozenset(), n2: frozenset()}), "queue": TLAFunction({o: TLAFunction({k: ()})}),
        "msgs": frozenset(), "deadWorkers": TLAFunction({o: frozenset({ran})}),
        "deadNodes": TLAFunction({o: frozenset({n2})}),
    }
    lines = [
        LogLine(1, NODE, "HeadDetectNodeDeath", {"n": n2}),
        LogLine(2, OWNER, "OwnerReconstruct", {"o": o, "t": t}),
    ]
    _cut, starts = window_model(constants, _Lifetimes(lines), 1, 2, [state])
    assert [(s["deadWorkers"][o], s["deadNodes"][o]) for s in starts] == [({ran}, {n2})]


def test_a_request_the_spec_reclaimed_is_not_lost_again_when_its_node_dies():
    """A node hears that an owner died and reclaims what the owner had
    there. The spec's reclaim also takes the owner's requests to that node
    still in flight; the node, which never read one, then dies, and the
    merge records the request's loss. That loss is no step of the spec: a
    6-minute chaos log was rejected at it. A request lost with its node
    while its owner lives is still a LoseMessage."""
    from ownership.core.messages import WorkerDied
    from ownership.runtime.memory import Envelope

    request = RequestLease(request_id="r1", owner=OWNER, task_id=TASK, resources=(("CPU", 1.0),))
    owner_died = WorkerDied(worker=OWNER, node="127.0.0.1:9000#z")
    for reclaimed in (True, False):
        steps = [
            CoreStep(1, OWNER, Received(OWNER, request), (Send(NODE, request),)),
            *([CoreStep(2, NODE, Received("head", owner_died), ())] if reclaimed else []),
            NetStep(3, NetworkEvent("crash", None, None, NODE)),
            NetStep(4, NetworkEvent("drop", None, Envelope(OWNER, NODE, request))),
        ]
        actions = [line.action for line in _mapping().recognize(steps) if line.process == NODE]
        expected = ["SchedulerReclaimLeases", "NodeCrash"] if reclaimed else ["NodeCrash", "LoseMessage"]
        assert actions == expected, (reclaimed, actions)


def test_a_finished_task_queued_again_is_a_reconstruction_in_the_order_it_asks():
    """The owner hears that a node died: a running task there is resubmitted
    and a finished one whose value was stored there is queued again (lineage
    reconstruction), and the step asks a lease for the finished one first.
    Both go to the end of their key's queue, so the lines put them in the
    order the step asks: a 6-minute chaos log was rejected at the request
    for the reconstructed task, queued behind the resubmitted one."""
    from ownership.core.messages import NodeDied

    mapping = _mapping((TASK, "T2"))
    before = {TASK: ("running", 1), "T2": ("done", 1)}
    after = {TASK: ("queued", 0), "T2": ("queued", 0)}
    asks = [RequestLease(request_id=f"r{i}", owner=OWNER, task_id=tid, resources=(("CPU", 1.0),)) for i, tid in enumerate(("T2", TASK))]
    died = NodeDied(node="127.0.0.1:9000#z", workers=())
    steps = [CoreStep(1, OWNER, Received("head", died), tuple(Send(NODE, r) for r in asks), before, after)]
    lines = [(line.action, str(line.params.get("t", ""))) for line in mapping.recognize(steps)]
    assert lines == [
        ("OwnerHandleFailure", ""),
        ("OwnerReconstruct", "t2"),
        ("OwnerResubmit", "t1"),
        ("OwnerRequestLease", "t2"),
        ("OwnerRequestLease", "t1"),
    ], lines


def test_tasks_queued_again_are_in_the_order_the_step_takes_them():
    """The owner hears that a node died: two tasks that ran there are
    resubmitted, and the step pushes the second (in the scan's order) to a
    lease it holds and asks a lease for the first. Both the push and the
    request take the head of the key's queue, so the resubmissions are in
    the order of those sends: a 6-minute chaos log was rejected at the
    reuse, which found the other task at the head."""
    from ownership.core.messages import NodeDied, Payload, PushTask, TaskSpec

    mapping = _mapping((TASK, "T2"))
    before = {TASK: ("running", 1), "T2": ("running", 1)}
    after = {TASK: ("queued", 0), "T2": ("queued", 0)}
    spec = TaskSpec(task_id="T2", owner=OWNER, return_id="T2.r", function_id="f", function=Payload(data=b"f"), args=())
    reuse = PushTask(task=spec, lease_id="L1", attempt=2)
    ask = RequestLease(request_id="r1", owner=OWNER, task_id=TASK, resources=(("CPU", 1.0),))
    died = NodeDied(node="127.0.0.1:9000#z", workers=())
    steps = [CoreStep(1, OWNER, Received("head", died), (Send(WORKER, reuse), Send(NODE, ask)), before, after)]
    lines = [(line.action, str(line.params.get("t", ""))) for line in mapping.recognize(steps)]
    assert lines == [
        ("OwnerHandleFailure", ""),
        ("OwnerResubmit", "t2"),
        ("OwnerResubmit", "t1"),
        ("OwnerReuseLease", "t2"),
        ("OwnerRequestLease", "t1"),
    ], lines
