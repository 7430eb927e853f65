"""The probe and the collector on the in-memory cluster: what the pages count.

The processes of a cluster report to the head's collector one by one, each
when its answer comes: the counts must not depend on the order the reports
arrive in, and a process that reports late (or whose executor records died
with it) must not make a task count twice.
"""

from __future__ import annotations

import random
import time

import trio

import ownership
from ownership.core.config import CoreConfig
from ownership.core.events import EventLog
from ownership.dashboard import probe as probe_module
from ownership.dashboard.collector import Collector
from ownership.dashboard.probe import ProbeLog, probe_of, report
from ownership.runtime.head import HeadRuntime
from ownership.runtime.node import NodeRuntime


@ownership.remote
def square(x: int) -> int:
    return x * x


@ownership.remote(max_retries=0)
def parse_port(text: str) -> int:
    return int(text)


@ownership.remote(resources={"gpu": 1}, max_retries=2)
def block(seed: int) -> bytes:
    return bytes([seed]) * (1 << 20)  # in a node's store: lost with the node, rebuilt from lineage


@ownership.remote
class Keeper:
    def __init__(self) -> None:
        self.kept: list = []

    def keep(self, ref) -> int:
        self.kept.append(ref)
        return len(self.kept)


def _role(rt) -> str:
    if isinstance(rt, HeadRuntime):
        return "head"
    if isinstance(rt, NodeRuntime):
        return "node"
    return "driver" if rt.core.driver else "worker"


async def _run_workload() -> tuple[list[tuple[str, str, dict, list[dict]]], dict]:
    """Run a workload with a failure on an in-memory cluster; every process's
    reports (several per process, as several polls would get them)."""
    config = CoreConfig(node_timeout_ticks=3)
    reports: dict[str, list[dict]] = {}
    roles: dict[str, str] = {}
    snapshots: dict[str, dict] = {}

    def poll(cluster) -> None:
        for address, rt in cluster.runtimes().items():
            roles[address] = _role(rt)
            snapshots[address] = rt.snapshot()
            reports.setdefault(address, []).append(report(rt.core, roles[address]))

    async with ownership.testing.memory_cluster(
        nodes=3, workers_per_node=2, seed=0, node_resources={"n2": {"gpu": 1}, "n3": {"gpu": 1}}, config=config
    ) as cluster:
        for rt in cluster.runtimes().values():
            probe_of(rt.core)
        assert sum(await ownership.get([square.remote(i) for i in range(10)])) == 285
        poll(cluster)
        try:
            await parse_port.remote("eighty")
        except ownership.TaskError:
            pass
        keeper = Keeper.remote()
        x = ownership.put(b"x" * 1000)
        assert await keeper.keep.remote(ownership.shared(x)) == 1
        ref = block.remote(7)
        assert len(await ref) == 1 << 20
        poll(cluster)
        [holder] = [n for n, rt in cluster.nodes.items() if ref.object_id in rt.core.store.objects]
        last = {a: report(rt.core, _role(rt)) for a, rt in cluster.runtimes().items() if a.endswith("@" + holder)}
        cluster.crash(holder)  # its workers' last records die with them, unread
        del last
        await cluster.detect_failures()
        assert (await ref)[:3] == bytes([7, 7, 7])
        poll(cluster)
        head = snapshots[cluster.head.address]
        del keeper, x, ref
    feeds = [(a, roles[a], snapshots[a], reps) for a, reps in reports.items()]
    return feeds, head


def _collect(feeds, head_snapshot, rng: random.Random) -> Collector:
    """Feed the reports in a random order that keeps each process's own order."""
    collector = Collector(head=None)
    collector.head_snapshot = head_snapshot
    queues = {a: list(reps) for a, _, _, reps in feeds}
    meta = {a: (role, snap) for a, role, snap, _ in feeds}
    while any(queues.values()):
        address = rng.choice([a for a, q in queues.items() if q])
        role, snap = meta[address]
        collector.take(address, role, snap if role == "node" else None, queues[address].pop(0))
    return collector


async def test_collector_counts_the_same_in_any_order_reports_arrive() -> None:
    with trio.fail_after(60):
        feeds, head = await _run_workload()
    views = []
    for seed in range(8):
        collector = _collect(feeds, head, random.Random(seed))
        tasks = collector.tasks_view()
        counts = {f["function"]: {k: f[k] for k in ("submitted", "pending", "running", "finished", "failed", "retried")} for f in tasks["functions"]}
        views.append(counts)
        assert counts["square"] == {"submitted": 10, "pending": 0, "running": 0, "finished": 10, "failed": 0, "retried": 0}
        assert counts["parse_port"] == {"submitted": 1, "pending": 0, "running": 0, "finished": 0, "failed": 1, "retried": 0}
        assert counts["block"] == {"submitted": 1, "pending": 0, "running": 0, "finished": 1, "failed": 0, "retried": 1}
        assert counts["Keeper.__init__"]["finished"] == 1 and counts["Keeper.keep"]["finished"] == 1
        [failed] = tasks["failed"]
        assert failed["function"] == "parse_port" and failed["type"] == "ValueError"
        assert "invalid literal for int()" in failed["traceback"]
        failures = collector.failures_view()
        [death] = [d for d in failures["deaths"] if d["kind"] == "node"]
        [rerun] = death["recovered"]
        assert rerun["function"] == "block" and rerun["kind"] == "reconstruction" and rerun["seconds"] >= 0
        stream = collector.stream_view(window=3600)
        attempts = {(b["function"], b["attempt"], b["outcome"]) for b in stream["bars"]}
        assert {b["worker"] for b in stream["bars"]} <= {w["address"] for w in stream["workers"]}  # each has its row
        assert ("block", 1, "ok") in attempts and ("block", 2, "ok") in attempts
        assert ("parse_port", 1, "failed") in attempts
    assert all(v == views[0] for v in views)


def test_probe_takes_over_the_log_and_counts_what_it_drops(monkeypatch) -> None:
    from ownership.core.events import Submit, Tick
    from ownership.core.messages import Payload, TaskSpec
    from ownership.core.worker import WorkerCore

    core = WorkerCore("w", "n")
    core.handle(Tick())
    before = (len(core.log), core.log.total)
    monkeypatch.setattr(probe_module, "MAX_RECORDS", 3)
    probe = probe_of(core)
    assert isinstance(probe, ProbeLog) and isinstance(core.log, EventLog) and probe_of(core) is probe
    assert (len(core.log), core.log.total) == before  # the same log, going on
    for i in range(5):  # five actor classes: each first creation is noted
        spec = TaskSpec(
            task_id=f"t{i}", owner="w", return_id=f"t{i}.r", function_id="f", function=Payload(data=b""), name=f"A{i}", kind="actor_create"
        )
        core.handle(Submit(spec))
    assert core.log.total == before[1] + 5 and len(core.log) == before[0] + 5
    out = report(core, "worker")
    assert out["records"] == [["actor", "t2.r", "A2"], ["actor", "t3.r", "A3"], ["actor", "t4.r", "A4"]] and out["dropped"] == 2
    # Counted all the same: submitted 1, finished 0, failed 0, run again 0; pending 1, running 0.
    assert sorted(out["functions"]) == [["actor_create", f"A{i}", None, 1, 0, 0, 0] for i in range(5)]
    assert sorted(out["in_flight"]) == [["actor_create", f"A{i}", None, 1, 0] for i in range(5)]
    again = report(core, "worker")
    assert again["records"] == [] and again["dropped"] == 0


def test_stream_draws_the_killed_attempt_of_a_worker_no_poll_reached() -> None:
    # A worker started, took a task and died between two polls: the only
    # word of it is its owner's (the attempt killed) and the head's (the
    # death), in either order. Its row is on the stream, dead, with the bar.
    owner, worker, retry_worker, node = "d:1#a", "w:2#b", "w:3#c", "n:4#d"
    t = time.time() - 1.0
    killed = ["killed", t, t + 0.5, "d:1#a/t25", "task", "dies_first_time", None, 1, worker]
    died = ["died", t + 0.4, "worker", worker, node, [worker], None]
    ran = ["ran", "d:1#a/t25", "dies_first_time", "task", None, 2, owner, t + 0.6, t + 0.7, None]
    for order in ([("owner", killed), ("head", died)], [("head", died), ("owner", killed)]):
        collector = Collector(head=None)
        collector.take(retry_worker, "worker", None, {"records": [ran]})
        for who, record in order:
            address, role = (owner, "driver") if who == "owner" else ("h:5#e", "head")
            collector.take(address, role, None, {"records": [record]})
        stream = collector.stream_view(window=3600)
        rows = {w["address"]: w for w in stream["workers"]}
        assert {b["worker"] for b in stream["bars"]} <= set(rows)
        assert [(b["worker"], b["attempt"], b["outcome"]) for b in stream["bars"]] == [(worker, 1, "killed"), (retry_worker, 2, "ok")]
        assert rows[worker]["alive"] is False and rows[worker]["ended"] == "dead" and rows[worker]["node"] == node
        assert not collector.processes[worker].alive  # never asked: it is dead


def test_probe_reads_a_log_that_kept_only_the_size_of_a_large_value() -> None:
    # The core's log keeps a large value as its size (PayloadSummary): a
    # probe taken over later counts those bytes from the size, where it
    # broke on the missing buffers and noted nothing from then on.
    from ownership.core.events import Send, Tick
    from ownership.core.messages import ObjectValue, Payload
    from ownership.core.worker import WorkerCore

    core = WorkerCore("w", "n")
    big = Payload(data=b"x" * 5000)
    core.log.append(Tick(), [Send("o", ObjectValue(object_id="x", value=big))])
    probe = probe_of(core)
    assert not probe.broken
    assert probe.sent[ObjectValue] == [1, 5000]
