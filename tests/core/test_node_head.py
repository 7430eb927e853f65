"""LocalScheduler, ObjectStore and HeadCore."""

from __future__ import annotations

from ownership.core.config import CoreConfig
from ownership.core.events import Fenced, KillWorker, ObjectFreed, PeerLost, Probe, ProbeResult, Received, StartWorker, Tick, Watch
from ownership.core.events import Send
from ownership.core.head import HeadCore
from ownership.core.messages import (
    ClusterView,
    FreeObject,
    Heartbeat,
    LeaseGranted,
    NodeDied,
    NodeView,
    ObjectCopy,
    ObjectStored,
    PullObject,
    PutObject,
    RegisterWorker,
    RequestLease,
    ReturnLease,
    Spillback,
    TaskReply,
    WorkerBlocked,
    WorkerDied,
    WorkerRegistered,
    WorkerUnblocked,
)
from ownership.core.node import NodeCore

CPU1 = (("CPU", 1.0),)


def node(cpus: float = 2.0, workers: tuple[str, ...] = ("w1", "w2"), name: str = "n1") -> NodeCore:
    n = NodeCore(name, "head", (("CPU", cpus),), pool_size=len(workers))
    assert [type(e) for e in n.start()].count(StartWorker) == len(workers)
    for w in workers:
        n.handle(Received(w, RegisterWorker(worker=w, node=name)))
        n.handle(Received("head", WorkerRegistered(worker=w, node=name)))
    return n


def req(i: int, owner: str = "o", resources=CPU1, spilled: bool = False) -> RequestLease:
    return RequestLease(request_id=f"q{i}", owner=owner, task_id=f"t{i}", resources=resources, spilled=spilled)


def sends(fx):
    return [(e.dst, e.msg) for e in fx if hasattr(e, "msg")]


def test_registration_goes_through_the_head_before_use() -> None:
    n = NodeCore("n1", "head", CPU1, pool_size=1)
    fx = n.handle(Received("w1", RegisterWorker(worker="w1", node="n1")))
    assert Watch(address="w1") in fx and ("head", RegisterWorker(worker="w1", node="n1")) in sends(fx)
    assert n.scheduler.workers["w1"].state == "registering"
    fx = n.handle(Received("head", WorkerRegistered(worker="w1", node="n1")))
    # The worker learns where the head is (it logs recoverable objects there).
    assert sends(fx) == [("w1", WorkerRegistered(worker="w1", node="n1", head="head"))]
    assert n.scheduler.workers["w1"].state == "idle"


def test_grant_when_local_resources_are_free() -> None:
    n = node()
    [(dst, grant)] = sends(n.handle(Received("o", req(1))))
    assert dst == "o" and isinstance(grant, LeaseGranted) and grant.worker == "w1"
    assert n.scheduler.available["CPU"] == 1.0


def test_spill_to_least_loaded_node_with_room() -> None:
    n = node(cpus=1.0, workers=("w1",))
    n.handle(Received("o", req(1)))
    view = ClusterView(nodes=(NodeView(node="n2", total=(("CPU", 4.0),), available=(("CPU", 1.0),)), NodeView(node="n3", total=(("CPU", 4.0),), available=(("CPU", 3.0),))))
    n.handle(Received("head", view))
    assert sends(n.handle(Received("o", req(2)))) == [("o", Spillback(request_id="q2", node="n3"))]


def test_queue_when_nowhere_has_room_then_grant_on_release() -> None:
    n = node(cpus=1.0, workers=("w1", "w2"))
    [(_, grant)] = sends(n.handle(Received("o", req(1))))
    assert sends(n.handle(Received("o", req(2)))) == []
    assert [r.request_id for r in n.scheduler.queue] == ["q2"]
    fx = n.handle(Received("o", ReturnLease(lease_id=grant.lease_id, worker=grant.worker)))
    [(dst, second)] = sends(fx)
    assert dst == "o" and second.request_id == "q2"


def test_spilled_request_is_spilled_again_when_no_room_here() -> None:
    n = node(cpus=1.0, workers=("w1",))
    n.handle(Received("o", req(1)))
    n.handle(Received("head", ClusterView(nodes=(NodeView(node="n2", total=CPU1, available=CPU1),))))
    fx = sends(n.handle(Received("o", req(2, spilled=True))))
    assert [(dst, type(msg).__name__) for dst, msg in fx] == [("o", "Spillback")]
    assert len(n.scheduler.queue) == 0


def test_spilled_request_is_spilled_again_when_room_here_but_no_idle_worker() -> None:
    # as Scheduling!SchedulerSpillback: no idle worker here, another node has room
    n = node(cpus=2.0, workers=("w1",))
    n.handle(Received("o", req(1)))
    n.handle(Received("head", ClusterView(nodes=(NodeView(node="n2", total=CPU1, available=CPU1),))))
    assert sends(n.handle(Received("o", req(2, spilled=True)))) == [("o", Spillback(request_id="q2", node="n2"))]
    assert len(n.scheduler.queue) == 0


def test_spilled_request_waits_when_no_idle_worker_and_no_room_elsewhere() -> None:
    n = node(cpus=2.0, workers=("w1",))
    n.handle(Received("o", req(1)))
    n.handle(Received("head", ClusterView(nodes=(NodeView(node="n2", total=CPU1, available=(("CPU", 0.0),)),))))
    assert [type(m).__name__ for _d, m in sends(n.handle(Received("o", req(2, spilled=True))))] == []
    assert len(n.scheduler.queue) == 1


def test_worker_death_publishes_reclaims_and_replaces() -> None:
    n = node()
    n.handle(Received("o", req(1)))
    fx = n.handle(PeerLost("w1"))
    assert ("head", WorkerDied(worker="w1", node="n1")) in sends(fx)
    assert StartWorker() in fx
    assert n.scheduler.leases == {} and n.scheduler.available["CPU"] == 2.0


def test_owner_death_stops_its_leased_workers() -> None:
    n = node()
    n.handle(Received("o", req(1)))
    fx = n.handle(Received("head", WorkerDied(worker="o", node="n9")))
    assert KillWorker(worker="w1") in fx


def test_blocked_worker_lends_its_cpu() -> None:
    n = node(cpus=1.0, workers=("w1", "w2"))
    [(_, grant)] = sends(n.handle(Received("o", req(1))))
    n.handle(Received("o", req(2)))
    fx = n.handle(Received("w1", WorkerBlocked(worker="w1", lease_id=grant.lease_id)))
    [(_, second)] = sends(fx)
    assert isinstance(second, LeaseGranted) and second.worker == "w2"
    n.handle(Received("w1", WorkerUnblocked(worker="w1", lease_id=grant.lease_id)))
    assert n.scheduler.available["CPU"] == -1.0  # oversubscribed until one returns


def test_store_pins_copy_then_relays_reply() -> None:
    n = node()
    from ownership.core.messages import Payload

    reply = TaskReply(task_id="t", return_id="o/t.r", attempt=1, worker="w1", lease_id=None, location="n1")
    fx = n.handle(Received("w1", PutObject(object_id="o/t.r", owner="o", value=Payload(data=b"v"), reply=reply)))
    assert sends(fx) == [("o", reply)]
    assert sends(n.handle(Received("r", PullObject(object_id="o/t.r", requester="r")))) == [("r", ObjectCopy(object_id="o/t.r", value=Payload(data=b"v")))]
    assert n.handle(Received("o", FreeObject(object_id="o/t.r"))) == [ObjectFreed(object_id="o/t.r")]
    assert sends(n.handle(Received("r", PullObject(object_id="o/t.r", requester="r")))) == [("r", ObjectCopy(object_id="o/t.r"))]


def test_store_frees_copies_of_a_dead_owner_and_refuses_new_ones() -> None:
    from ownership.core.messages import Payload

    n = node()
    # A worker of this node stores the values of tasks it ran for owner o.
    fx = n.handle(Received("w1", PutObject(object_id="o/p", owner="o", value=Payload(data=b"v"))))
    assert sends(fx) == [("o", ObjectStored(object_id="o/p", node="n1"))]
    fx = n.handle(Received("head", WorkerDied(worker="o", node="n2")))
    assert ObjectFreed(object_id="o/p") in fx
    assert n.handle(Received("w1", PutObject(object_id="o/q", owner="o", value=Payload(data=b"v")))) == []
    assert n.store.objects == {}


def test_head_declares_silent_node_dead_after_timeout() -> None:
    head = HeadCore("head", CoreConfig(node_timeout_ticks=2))
    for name in ("n1", "n2"):
        head.handle(Received(name, Heartbeat(node=name, seq=1, total=CPU1, available=CPU1, workers=(f"w@{name}",))))
    for _ in range(2):
        head.handle(Tick())
        head.handle(Received("n1", Heartbeat(node="n1", seq=2, total=CPU1, available=CPU1)))
    fx = head.handle(Tick())
    died = NodeDied(node="n2", workers=("w@n2",))
    assert ("n1", died) in sends(fx) and ("n2", died) in sends(fx)
    # Fenced: that incarnation is told it was declared dead, never taken back.
    fence = NodeDied(node="n2", workers=())
    assert head.handle(Received("n2", Heartbeat(node="n2", seq=3, total=CPU1, available=CPU1))) == [Send("n2", fence)]
    assert head.handle(Received("n2", RegisterWorker(worker="w2@n2", node="n2"))) == [Send("n2", fence)]
    assert not head.nodes["n2"].alive and head.fenced == 2


def member_heads(config: CoreConfig | None = None) -> HeadCore:
    head = HeadCore("head", config)
    for name in ("n1", "n2"):
        fx = head.handle(Received(name, Heartbeat(node=name, seq=1, total=CPU1, available=CPU1, workers=(f"w@{name}",))))
        assert Watch(address=name) in fx
    return head


def test_head_declares_node_dead_when_connection_lost_and_probes_fail() -> None:
    head = member_heads(CoreConfig(probe_attempts=2))
    assert head.handle(PeerLost("n2")) == [Probe("n2")]
    assert head.handle(PeerLost("n2")) == []  # one probe at a time
    assert head.handle(ProbeResult(address="n2", reachable=False)) == [Probe("n2")]
    fx = head.handle(ProbeResult(address="n2", reachable=False))
    died = NodeDied(node="n2", workers=("w@n2",))
    assert sends(fx) == [("n1", died)]  # n2 did not answer a dial: it is told when it speaks
    assert head.ticks == 0  # no heartbeat timeout was waited for
    assert head.handle(ProbeResult(address="n2", reachable=False)) == []
    fence = NodeDied(node="n2", workers=())
    assert head.handle(Received("n2", Heartbeat(node="n2", seq=2, total=CPU1, available=CPU1))) == [Send("n2", fence)]


def test_head_keeps_suspect_that_answers_probe() -> None:
    head = member_heads()
    head.handle(PeerLost("n2"))
    assert head.handle(ProbeResult(address="n2", reachable=True)) == [Watch("n2")]
    assert head.nodes["n2"].alive and not head.nodes["n2"].suspected
    assert head.suspicions_cleared == 1
    # a later loss is suspected afresh
    assert head.handle(PeerLost("n2")) == [Probe("n2")]


def test_head_clears_suspicion_when_suspect_heartbeats() -> None:
    head = member_heads()
    head.handle(PeerLost("n2"))
    fx = head.handle(Received("n2", Heartbeat(node="n2", seq=2, total=CPU1, available=CPU1)))
    assert Watch("n2") in fx and not head.nodes["n2"].suspected
    assert head.handle(ProbeResult(address="n2", reachable=False)) == []  # stale: it spoke since
    assert head.nodes["n2"].alive


def test_head_holds_deaths_for_a_suspect_until_it_answers() -> None:
    head = HeadCore("head")
    for name in ("n1", "n2", "n3"):
        head.handle(Received(name, Heartbeat(node=name, seq=1, total=CPU1, available=CPU1, workers=(f"w@{name}",))))
    head.handle(PeerLost("n2"))
    head.handle(PeerLost("n3"))
    head.handle(ProbeResult(address="n3", reachable=False))
    fx = head.handle(ProbeResult(address="n3", reachable=False))
    died = NodeDied(node="n3", workers=("w@n3",))
    assert sends(fx) == [("n1", died)]  # n2 has no connection: no dial for it now
    fx = head.handle(ProbeResult(address="n2", reachable=True))
    assert fx == [Watch("n2"), Send("n2", died)]


def test_head_ignores_connection_loss_when_suspicion_off() -> None:
    head = HeadCore("head", CoreConfig(suspect_on_connection_loss=False))
    fx = head.handle(Received("n1", Heartbeat(node="n1", seq=1, total=CPU1, available=CPU1)))
    assert not any(isinstance(e, Watch) for e in fx)
    assert head.handle(PeerLost("n1")) == []


def test_head_suspect_still_dies_by_heartbeat_timeout_when_probe_never_answers() -> None:
    head = member_heads(CoreConfig(node_timeout_ticks=2))
    head.handle(PeerLost("n2"))
    fx = []
    for seq in range(2, 5):
        head.handle(Received("n1", Heartbeat(node="n1", seq=seq, total=CPU1, available=CPU1)))
        fx = head.handle(Tick())
    assert ("n1", NodeDied(node="n2", workers=("w@n2",))) in sends(fx)


def test_node_told_it_was_declared_dead_stops_with_its_workers() -> None:
    n = node()
    fx = n.handle(Received("head", NodeDied(node="n1", workers=())))
    assert KillWorker(worker="w1") in fx and KillWorker(worker="w2") in fx
    assert [type(e) for e in fx].count(Fenced) == 1
    assert not [e for e in fx if isinstance(e, Send)]  # relays nothing: it is leaving


def test_node_ignores_its_death_notice_from_another_process() -> None:
    n = node()
    assert n.handle(Received("n2", NodeDied(node="n1", workers=()))) == []


def test_head_publishes_a_worker_death_once_to_every_node() -> None:
    head = HeadCore("head")
    for name in ("n1", "n2"):
        head.handle(Received(name, Heartbeat(node=name, seq=1, total=CPU1, available=CPU1)))
    msg = WorkerDied(worker="w", node="n1")
    assert sorted(d for d, _ in sends(head.handle(Received("n1", msg)))) == ["n1", "n2"]
    assert head.handle(Received("n1", msg)) == []


def test_head_tells_every_node_about_a_newcomer() -> None:
    head = HeadCore("head")
    head.handle(Received("n1", Heartbeat(node="n1", seq=1, total=CPU1, available=CPU1)))
    fx = head.handle(Received("n2", Heartbeat(node="n2", seq=1, total=CPU1, available=CPU1)))
    assert sorted(d for d, m in sends(fx) if isinstance(m, ClusterView)) == ["n1", "n2"]
