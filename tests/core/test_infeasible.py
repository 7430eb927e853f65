"""A lease request no node has the resources for: announced to its owner once, run when a node that has them joins."""

from __future__ import annotations

from ownership.core.events import Infeasible, Received, Send, StartWorker, Submit, Tick
from ownership.core.messages import LeaseInfeasible, PushTask, RequestLease, Spillback
from ownership.core.node import NodeCore


def _gpu_spec(h, d):
    return h.spec(d, resources=(("CPU", 1.0), ("GPU", 1.0)))


def test_request_no_node_can_grant_is_announced_to_its_owner_once(h) -> None:
    m = h.Mini()
    d = m.driver
    first, second = _gpu_spec(h, d), _gpu_spec(h, d)
    m.r.feed(d.address, Submit(first))
    m.r.run()
    [(src, dst, _)] = [f for f in m.r.delivered if isinstance(f[2], LeaseInfeasible)]
    assert (src, dst) == ("n1", d.address)
    [(where, told)] = [(a, e) for a, e in m.r.effects if isinstance(e, Infeasible)]
    assert where == d.address and told.task_id == first.task_id and dict(told.resources) == {"CPU": 1.0, "GPU": 1.0}
    assert list(d.submitter.snapshot()["infeasible"].values())[0]["task_id"] == first.task_id
    assert [r["task_id"] for r in m.nodes["n1"].scheduler.snapshot()["infeasible"]] == [first.task_id]
    # The same function and shape again: waits too, but the user was told already.
    m.r.feed(d.address, Submit(second))
    m.r.run()
    assert len([e for _, e in m.r.effects if isinstance(e, Infeasible)]) == 1
    # Heartbeats and views come and go: still one announcement.
    for _ in range(3):
        for core in [m.head, *m.nodes.values()]:
            for e in core.handle(Tick()):
                if isinstance(e, Send):
                    m.r.flight.append((core.address, e.dst, e.msg))
        m.r.run()
    assert len(m.r.sent(LeaseInfeasible)) == 0
    assert len([f for f in m.r.delivered if isinstance(f[2], LeaseInfeasible)]) == 1


def test_request_waits_until_a_node_with_the_resources_joins_then_runs_there(h) -> None:
    m = h.Mini()
    d = m.driver
    spec = _gpu_spec(h, d)
    m.r.feed(d.address, Submit(spec))
    m.r.run()
    assert d.submitter.infeasible and not m.r.sent(PushTask)
    gpu = m.r.add(NodeCore("n3", "head", (("CPU", 1.0), ("GPU", 1.0)), pool_size=1, config=m.config))
    m.nodes["n3"] = gpu
    for e in gpu.start():
        if isinstance(e, Send):
            m.r.flight.append(("n3", e.dst, e.msg))
        else:
            assert isinstance(e, StartWorker)
    m.add_worker("n3", "w1@n3")
    m.r.run(skip=lambda f: isinstance(f[2], PushTask))
    spilled = [f for f in m.r.delivered if isinstance(f[2], Spillback)]
    assert spilled and spilled[-1][2].node == "n3"
    [(_, worker, push)] = m.r.sent(PushTask)
    assert worker == "w1@n3" and push.task.task_id == spec.task_id
    assert d.submitter.infeasible == {} and m.nodes["n1"].scheduler.infeasible == {}


def test_request_is_not_judged_before_the_node_has_a_view(h) -> None:
    m = h.Mini()
    fresh = NodeCore("n9", "head", (("CPU", 1.0),), pool_size=0, config=m.config)
    d = m.driver
    req = RequestLease(request_id="q1", owner=d.address, task_id="t1", resources=(("CPU", 1.0), ("GPU", 1.0)))
    assert not [e for e in fresh.handle(Received(d.address, req)) if isinstance(e, Send) and isinstance(e.msg, LeaseInfeasible)]
    assert fresh.scheduler.infeasible == {}
