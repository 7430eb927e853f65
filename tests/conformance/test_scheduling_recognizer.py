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


def _mapping() -> SchedulingMapping:
    o, n, w, t, k = (ModelValue(v) for v in ("o1", "n1", "w1", "t1", "k1"))
    none = {name: ModelValue(name) for name in ("NoOwner", "NoNode", "NoWorker", "NoTask", "NoKey")}
    constants = {
        "Owners": {o}, "Nodes": {n}, "Workers": {w}, "Tasks": {t}, "Keys": {k},
        "OwnerNode": TLAFunction({o: n}), "WorkerNode": TLAFunction({w: n}), "Capacity": TLAFunction({n: 2}),
        "TaskOwner": TLAFunction({t: o}), "TaskKey": TLAFunction({t: k}), "MaxRetries": 1,
        "PipelineDepth": 2, "MaxCrashes": 1, **none,
    }
    mapping = SchedulingMapping(constants)
    mapping.bind.owner_addr = {o: OWNER}
    mapping.bind.node_addr = {n: NODE}
    mapping.bind.worker_addr = {w: WORKER}
    mapping.bind.task_id = {t: TASK}
    mapping.bind.key_resources = {k: (("CPU", 1.0),)}
    mapping.head_address = "head"
    return mapping


def test_lease_returned_with_kill_is_its_workers_detection_at_once():
    """The owner lost the worker it leased and returns the lease with kill:
    the node marks the slot dying and never leases it again. The model's
    node must see the worker gone at that step (were it left in the pool
    until the process's exit is noticed, the model would grant it, and a
    spillback the node makes meanwhile would be rejected), and the exit,
    when the node notices it, is not a second detection."""
    request = RequestLease(request_id="r1", owner=OWNER, task_id=TASK, resources=(("CPU", 1.0),))
    steps = [
        CoreStep(1, OWNER, Received(OWNER, request), (Send(NODE, request),)),
        CoreStep(2, NODE, Received(OWNER, request),
                 (Send(OWNER, LeaseGranted(request_id="r1", lease_id="L1", worker=WORKER, node=NODE)),)),
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


def test_window_model_keeps_only_the_keys_of_the_tasks_it_submits():
    """The prefix's model: tasks cut to those its lines submit, keys to
    theirs (each owner's queues are one per key), free keys among them."""
    from conformance.eventlog import LogLine
    from conformance.sized import scheduling_prefix

    o = ModelValue("o1")
    t1, t2, t3 = (ModelValue(f"t{i}") for i in (1, 2, 3))
    k1, k2, k3 = (ModelValue(f"k{i}") for i in (1, 2, 3))
    constants = {
        "Tasks": {t1, t2, t3}, "Keys": {k1, k2, k3}, "FreeKeys": {k2, k3},
        "TaskOwner": TLAFunction({t1: o, t2: o, t3: o}), "TaskKey": TLAFunction({t1: k1, t2: k2, t3: k3}),
        "TaskRetries": TLAFunction({t1: 1, t2: 1, t3: 1}), "SubmitOrder": (t1, t2, t3),
    }
    lines = [LogLine(1, OWNER, "OwnerSubmit", {"o": o, "t": t1}), LogLine(2, OWNER, "OwnerSubmit", {"o": o, "t": t2}),
             LogLine(3, OWNER, "OwnerSubmit", {"o": o, "t": t3})]
    cut, prefix = scheduling_prefix(constants, lines, 2)
    assert len(prefix) == 2
    assert (cut["Tasks"], cut["Keys"], cut["FreeKeys"]) == ({t1, t2}, {k1, k2}, {k2})
    assert cut["SubmitOrder"] == (t1, t2) and dict(cut["TaskKey"].items()) == {t1: k1, t2: k2}
