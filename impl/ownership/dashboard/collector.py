"""The head's view of a running cluster, gathered for the dashboard.

The collector runs in the head process. Every ``interval`` it reads the
head's own core (in-process) and asks every node and worker, over the
cluster's own transport and token, for what its probe noted since the last
time (:mod:`.probe`) with a :class:`~ownership.runtime.status.StatusRequest`:
nodes always with their snapshot (scheduler, store: small), workers with
theirs (ownership tables: large) only while a page that shows objects is
open. Replies are taken as they come; a process that does not answer in
time is asked again later, and one the cluster declared dead is no longer
asked.

What it keeps: each process's latest counts (task counts by function are
its own as an owner, so reports may come in any order and nothing is
counted twice), the bars of the task stream (each run an executor reported,
and the attempts owners saw die with their workers), failed tasks with
their tracebacks, deaths with what followed them. Bounded: the last
``keep_attempts`` bars, the last ``keep_failed`` failures.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from typing import Any

import attrs
import trio

from ..runtime.status import ClusterSnapshot, StatusReply, StatusRequest, memory_rows

__all__ = ["Collector", "Bar", "Death"]

logger = logging.getLogger("ownership.dashboard")

#: a request unanswered this long is given up on (the process is asked again)
_REQUEST_TIMEOUT = 5.0
#: a process whose connection closed is not asked again for this long: it
#: has most likely died (the head will say), and asking again would dial a
#: dead address, with a warning each time
_LOST_BACKOFF = 10.0
_COUNTS = ("submitted", "finished", "failed", "retried", "pending", "running")


class Bar:
    """One run of a task on one worker: a bar of the task stream."""

    __slots__ = ("task_id", "key", "worker", "attempt", "start", "end", "outcome")

    def __init__(self, task_id: str, key: tuple, worker: str, attempt: int, start: float, end: float | None, outcome: str) -> None:
        self.task_id = task_id
        self.key = key  # (kind, name, actor id)
        self.worker = worker
        self.attempt = attempt
        self.start = start
        self.end = end
        #: running, ok, failed (user code raised), cancelled, killed (its worker died)
        self.outcome = outcome


@attrs.define(eq=False)
class Death:
    time: float
    kind: str  # node or worker
    address: str
    node: str
    workers: list[str]
    #: from the last heartbeat the head heard to the death published (nodes)
    detection: float | None = None


@attrs.define(eq=False)
class Notice:
    """A worker heard of deaths: the borrowed refs that fate-shared, the owned objects lost."""

    time: float | None
    worker: str
    dead: set[str]
    fate_shared: list[str]
    lost: list[str]


@attrs.define(eq=False)
class Rerun:
    """A task pushed again by its owner: a retry, or a reconstruction."""

    task_id: str
    key: tuple
    attempt: int
    time: float | None
    worker: str
    reconstruction: bool
    done: float | None = None
    error: str | None = None


@attrs.define(eq=False)
class Process:
    address: str
    role: str
    node: str | None = None
    pid: int | None = None
    alive: bool = True
    summary: dict[str, Any] = attrs.Factory(dict)
    snapshot: dict[str, Any] | None = None
    #: when ``snapshot`` came (monotonic)
    snapshot_at: float = 0.0
    sent: dict[str, list[int]] = attrs.Factory(dict)
    #: as an owner: [kind, name, actor, submitted, finished, failed, run again]
    functions: list[list] = attrs.Factory(list)
    #: as an owner, at the last summary: [kind, name, actor, pending, running],
    #: and [kind, name, actor, resources, tasks] not pushed yet
    in_flight: list[list] = attrs.Factory(list)
    pending: list[list] = attrs.Factory(list)
    #: as an executor: [task, attempt, name, kind, actor, owner, start]
    running: list[list] = attrs.Factory(list)
    steps: int = 0
    last_report: float | None = None
    #: when ``summary`` (and what comes with it) came (monotonic)
    summary_at: float = float("-inf")
    #: when our connection to it was lost (monotonic): not asked for a while
    lost_at: float = float("-inf")

    def fresh(self, within: float) -> bool:
        """Whether the summary is recent: an old one says what ran then, not now."""
        return self.alive and time.monotonic() - self.summary_at < within


class Collector:
    """Gathers the cluster's state in the head process (see the module doc)."""

    def __init__(
        self, head: Any, *, interval: float = 0.5, idle_interval: float = 1.0, keep_attempts: int = 50_000, keep_failed: int = 200
    ) -> None:
        self.head = head
        #: seconds between polls while someone looks, and while nobody does
        #: (then only to keep the history: records, counts)
        self.interval = interval
        self.idle_interval = idle_interval
        self.keep_attempts = keep_attempts
        self.started = time.time()
        self.processes: dict[str, Process] = {}
        self.head_snapshot: dict[str, Any] = {}
        #: (task id, attempt) -> its bar, oldest first
        self.bars: collections.OrderedDict[tuple[str, int], Bar] = collections.OrderedDict()
        #: failed tasks, latest last
        self.failed: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep_failed)
        self.failed_total = 0
        self.deaths: list[Death] = []
        self.notices: collections.deque[Notice] = collections.deque(maxlen=1000)
        self.reruns: collections.OrderedDict[tuple[str, int], Rerun] = collections.OrderedDict()
        self.actor_names: dict[str, str] = {}
        #: worker -> "stopped" (its node stopped it: an actor no longer
        #: referenced, an owner's death) or "died", as its node saw it exit
        self.exits: dict[str, str] = {}
        self.detections: list[float] = []
        self.records_dropped = 0
        self.version = 0
        #: pages open that show ownership tables (workers' full snapshots),
        #: and since when the workers are asked for them
        self.object_watchers = 0
        self._tables_since: float | None = None
        #: pages open, and when someone last asked (an API call, a scrape):
        #: processes sum up their tables only while someone looks
        self.watchers = 0
        self.looked_at = float("-inf")
        self._changed = trio.Event()
        self._dirty = False
        self._wake = trio.Event()
        self._outstanding: dict[str, tuple[str, float]] = {}
        self._ids = itertools.count(1)
        self._transport: Any = None

    # ------------------------------------------------------------------ running
    async def run(self, transport: Any, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll the cluster through ``transport`` (nobody else may receive from it)."""
        self._transport = transport
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive_loop, name="dashboard replies")
            self.poll()
            task_status.started()
            while True:
                with trio.move_on_after(self.interval if self.watched() else self.idle_interval):
                    await self._wake.wait()
                self._wake = trio.Event()
                self.poll()
                self._publish()

    def peer_lost(self, address: str) -> None:
        """The transport's connection to ``address`` closed (``on_peer_lost``)."""
        self._outstanding.pop(address, None)
        proc = self.processes.get(address)
        if proc is not None:
            proc.lost_at = time.monotonic()

    def wake(self) -> None:
        """Poll now (a page that needs the ownership tables just opened)."""
        self._wake.set()

    def looked(self) -> None:
        """Someone asked for a view or the metrics: summaries are wanted for a while."""
        if not self.watched():
            self.wake()
        self.looked_at = time.monotonic()

    def watched(self) -> bool:
        return self.watchers > 0 or time.monotonic() - self.looked_at < 60.0

    def _freshness(self) -> float:
        return 2 * self.interval + 2.0

    def watch_tables(self) -> None:
        """A page that shows the ownership tables opened: ask the workers for them, now."""
        self.object_watchers += 1
        if self.object_watchers == 1:
            self._tables_since = time.monotonic()
            self.wake()

    def unwatch_tables(self) -> None:
        self.object_watchers -= 1
        if self.object_watchers == 0:
            # Tables nobody looks at go stale: drop them, and the memory.
            self._tables_since = None
            for proc in self.processes.values():
                if proc.role in ("worker", "driver"):
                    proc.snapshot = None

    async def wait_changed(self, version: int) -> int:
        """Until the data is newer than ``version``; returns the new version."""
        while self.version <= version:
            await self._changed.wait()
        return self.version

    def _publish(self) -> None:
        if self._dirty:
            self._dirty = False
            self.version += 1
            self._changed.set()
            self._changed = trio.Event()

    def poll(self) -> None:
        """Read the head, and ask every live node and worker for news."""
        from .probe import report

        self.head_snapshot = self.head.snapshot()
        self.take(self.head.address, "head", self.head_snapshot, report(self.head.core, "head", summary=False))
        now = time.monotonic()
        for address, (_, sent) in list(self._outstanding.items()):
            if now - sent > _REQUEST_TIMEOUT:
                del self._outstanding[address]
        watched = self.watched()
        for address, rec in sorted(self.head_snapshot.get("nodes", {}).items()):
            node = self.processes.get(address)
            if node is None:
                node = self.processes[address] = Process(address=address, role="node", node=address)
            node.alive = bool(rec.get("alive"))
            # The head knows each node's workers (heartbeats): a node's own
            # snapshot (scheduler, store) is asked for only while someone looks.
            for worker in rec.get("workers", ()):
                if worker not in self.processes:
                    self.processes[worker] = Process(address=worker, role="worker", node=address)
            if node.alive:
                self._ask(address, snapshot=watched or node.snapshot is None, summary=False)
        for proc in list(self.processes.values()):
            if proc.role in ("worker", "driver") and proc.alive:
                self._ask(proc.address, snapshot=self.object_watchers > 0, summary=watched or not proc.summary)

    def _ask(self, address: str, *, snapshot: bool, summary: bool) -> None:
        if address in self._outstanding or self._transport is None:
            return
        proc = self.processes.get(address)
        if proc is not None and time.monotonic() - proc.lost_at < _LOST_BACKOFF:
            return
        rid = f"dash-{next(self._ids)}"
        self._outstanding[address] = (rid, time.monotonic())
        try:
            request = StatusRequest(request_id=rid, probe=2 if summary else 1, snapshot=snapshot)
            self._transport.send_nowait(address, request)
        except Exception:  # an address the transport refuses: forget it, never stop
            logger.exception("dashboard: cannot ask %s", address)
            self._outstanding.pop(address, None)

    async def _receive_loop(self) -> None:
        while True:
            env = await self._transport.receive()
            msg = env.msg
            if not isinstance(msg, StatusReply):
                continue
            pending = self._outstanding.get(env.src)
            if pending is None or pending[0] != msg.request_id:
                continue
            del self._outstanding[env.src]
            try:
                self.take(env.src, msg.role, msg.snapshot or None, msg.probe)
            except Exception:  # a bad report must not stop the dashboard
                logger.exception("dashboard: cannot read the report of %s", env.src)

    # ------------------------------------------------------------------ reports
    def take(self, address: str, role: str, snapshot: dict[str, Any] | None, probe: dict[str, Any] | None) -> None:
        proc = self.processes.get(address)
        if proc is None:
            proc = self.processes[address] = Process(address=address, role=role)
        proc.role = role
        if snapshot and "starting" not in snapshot:
            proc.snapshot = snapshot
            proc.snapshot_at = time.monotonic()
            if role == "node":
                self._learn_workers(address, snapshot)
        if probe is None:
            return
        self._dirty = True
        proc.pid = probe.get("pid", proc.pid)
        proc.last_report = probe.get("time")
        proc.sent = probe.get("sent", proc.sent)
        proc.steps = probe.get("steps", proc.steps)
        if "functions" in probe:
            proc.functions = probe["functions"]
        summary = probe.get("summary")
        if summary is not None:
            proc.summary = summary
            proc.summary_at = time.monotonic()
            proc.node = summary.get("node", proc.node)
            proc.role = "driver" if summary.get("driver") else "worker"
            proc.in_flight = probe.get("in_flight", [])
            proc.pending = probe.get("pending", [])
            proc.running = probe.get("running", [])
        self.records_dropped += probe.get("dropped", 0)
        for record in probe.get("records", ()):
            handler = self._handlers.get(record[0])
            if handler is not None:
                handler(self, address, record)

    def _learn_workers(self, node: str, snapshot: dict[str, Any]) -> None:
        sched = snapshot.get("scheduler", {})
        pids = snapshot.get("worker_pids", {})
        for address, slot in sched.get("workers", {}).items():
            proc = self.processes.get(address)
            if proc is None:
                role = "driver" if slot.get("state") == "driver" else "worker"
                proc = self.processes[address] = Process(address=address, role=role, node=node)
            proc.node = node
            if address in pids:
                proc.pid = pids[address]
        for address in snapshot.get("dead_workers", ()):
            proc = self.processes.get(address)
            if proc is not None:
                proc.alive = False

    # ------------------------------------------------------------------ records
    def display_name(self, key: Any) -> str:
        kind, name, actor_id = key
        if kind == "actor_method" and actor_id:
            return f"{self.actor_names.get(actor_id, 'actor')}.{name}"
        if kind == "actor_create":
            return f"{name}.__init__"
        return name

    def _add_bar(self, bar: Bar) -> None:
        key = (bar.task_id, bar.attempt)
        if key in self.bars and bar.outcome == "killed":
            return  # the executor said it ran (and ended) after all
        self.bars[key] = bar
        if len(self.bars) > self.keep_attempts:
            self.bars.popitem(last=False)

    def _on_actor(self, owner: str, r: list) -> None:
        self.actor_names[r[1]] = r[2]

    def _on_ran(self, worker: str, r: list) -> None:
        _, task_id, name, kind, actor_id, attempt, _owner, start, end, err_kind = r[:10]
        if kind == "actor_create":
            self.actor_names.setdefault(f"{task_id}.r", name)
        if start is None or end is None:
            return  # ran before the dashboard asked: counted by its owner, not drawn
        outcome = "ok" if err_kind is None else ("cancelled" if err_kind == "cancelled" else "failed")
        self._add_bar(Bar(task_id, (kind, name, actor_id), worker, attempt, start, end, outcome))

    def _dead_worker(self, address: str, node: str | None) -> None:
        """A worker named dead by a record: known from now on, also when it
        started and died between two polls (nobody had asked it yet), so that
        the attempt it took down has a row to be drawn in."""
        proc = self.processes.get(address)
        if proc is None:
            proc = self.processes[address] = Process(address=address, role="worker", node=node)
        elif proc.node is None:
            proc.node = node
        proc.alive = False
        proc.running = []

    def _on_killed(self, owner: str, r: list) -> None:
        _, pushed, t, task_id, kind, name, actor_id, attempt, worker = r[:9]
        if pushed is not None and t is not None:
            # Its owner heard of its worker's death: that worker is dead.
            self._dead_worker(worker, None)
            self._add_bar(Bar(task_id, (kind, name, actor_id), worker, attempt, pushed, t, "killed"))

    def _on_failed(self, owner: str, r: list) -> None:
        _, t, task_id, kind, name, actor_id, attempt, worker, err_kind, err_type, message, traceback = r[:12]
        self.failed_total += 1
        self.failed.append(
            {
                "task_id": task_id,
                "key": (kind, name, actor_id),
                "owner": owner,
                "worker": worker or "",
                "time": t,
                "kind": err_kind or "unknown",
                "type": err_type or "",
                "message": message or "",
                "traceback": traceback or "",
                "attempts": attempt,
            }
        )

    def _on_rerun(self, owner: str, r: list) -> None:
        _, t, task_id, kind, name, actor_id, attempt, worker, finished_before = r[:9]
        self.reruns[(task_id, attempt)] = Rerun(
            task_id=task_id, key=(kind, name, actor_id), attempt=attempt, time=t, worker=worker, reconstruction=bool(finished_before)
        )
        if len(self.reruns) > 10_000:
            self.reruns.popitem(last=False)

    def _on_rerun_done(self, owner: str, r: list) -> None:
        _, t, task_id, attempt, err_kind = r[:5]
        rerun = self.reruns.get((task_id, attempt))
        if rerun is not None:
            rerun.done, rerun.error = t, err_kind

    def _on_notified(self, worker: str, r: list) -> None:
        _, t, dead_workers, dead_nodes, fate_shared, lost = r[:6]
        self.notices.append(Notice(time=t, worker=worker, dead=set(dead_workers) | set(dead_nodes), fate_shared=fate_shared, lost=lost))

    def _on_died(self, head: str, r: list) -> None:
        _, t, kind, address, node, workers, heard = r[:7]
        if t is None:
            t = time.time()
        detection = None if heard is None else max(0.0, t - heard)
        self.deaths.append(Death(time=t, kind=kind, address=address, node=node, workers=list(workers), detection=detection))
        if detection is not None:
            self.detections.append(detection)
        for a in workers:
            self._dead_worker(a, node)
        proc = self.processes.get(address)
        if proc is not None:
            proc.alive = False
            proc.running = []

    def _on_exited(self, node: str, r: list) -> None:
        _, _t, address, cause = r[:4]
        self.exits[address] = cause
        proc = self.processes.get(address)
        if proc is not None:
            proc.alive = False
            proc.running = []

    def _ended(self, proc: Process) -> str:
        """How a process no longer alive ended: stopped on purpose, or died."""
        return "stopped" if self.exits.get(proc.address) == "stopped" or proc.role == "driver" else "dead"

    def is_failure(self, death: Death) -> bool:
        """A node's death, or a worker's that nobody asked for (not a driver leaving,
        not an actor stopped once unreferenced)."""
        if death.kind == "node":
            return True
        proc = self.processes.get(death.address)
        return self.exits.get(death.address) != "stopped" and not (proc is not None and proc.role == "driver")

    def _death_before(self, t: float | None, deaths: list[Death]) -> Death | None:
        """The last death published before ``t`` (a small margin: one machine's
        clock, but several processes reading it)."""
        if t is None:
            return None
        for death in reversed(deaths):
            if death.time <= t + 0.001:
                return death
        return None

    _handlers = {
        "actor": _on_actor,
        "ran": _on_ran,
        "killed": _on_killed,
        "failed": _on_failed,
        "rerun": _on_rerun,
        "rerun_done": _on_rerun_done,
        "notified": _on_notified,
        "died": _on_died,
        "exited": _on_exited,
    }

    # ------------------------------------------------------------------ views
    def _node_snapshots(self) -> dict[str, dict[str, Any]]:
        return {a: p.snapshot for a, p in self.processes.items() if p.role == "node" and p.alive and p.snapshot}

    def cluster_view(self) -> dict[str, Any]:
        head_nodes = self.head_snapshot.get("nodes", {})
        snaps = self._node_snapshots()
        nodes = []
        for address, rec in sorted(head_nodes.items()):
            snap = snaps.get(address, {}) if rec.get("alive") else {}
            sched = snap.get("scheduler", {})
            store = snap.get("store", {})
            nodes.append(
                {
                    "address": address,
                    "alive": bool(rec.get("alive")),
                    "total": sched.get("total", rec.get("total", {})),
                    "available": sched.get("available", rec.get("available", {})),
                    "workers": len(sched.get("workers", {})),
                    "leases": len(sched.get("leases", {})),
                    "queued_requests": len(sched.get("queue", [])),
                    "starting": sched.get("starting", 0),
                    "objects": len(store),
                    "object_bytes": sum(o.get("size", 0) for o in store.values()),
                    "pid": snap.get("pid"),
                }
            )
        slots: dict[str, dict[str, Any]] = {}
        for snap in snaps.values():
            slots.update(snap.get("scheduler", {}).get("workers", {}))
        workers = []
        for proc in sorted(self.processes.values(), key=lambda p: (p.node or "", p.role != "driver", p.address)):
            if proc.role not in ("worker", "driver"):
                continue
            s = proc.summary
            slot = slots.get(proc.address, {})
            if proc.role == "driver":
                role = "driver"
            elif s.get("actor_id"):
                role = "actor " + self.actor_names.get(s["actor_id"], s["actor_id"])
            else:
                role = "task worker"
            running = [self.display_name((r[3], r[2], r[4])) for r in proc.running] if proc.fresh(self._freshness()) else []
            workers.append(
                {
                    "address": proc.address,
                    "node": proc.node,
                    "pid": proc.pid,
                    "role": role,
                    "alive": proc.alive,
                    "state": slot.get("state", "?") if proc.alive else self._ended(proc),
                    "lease": slot.get("lease_id"),
                    "running": running,
                    "queued": s.get("queued", 0),
                    "owned": s.get("owned", 0),
                    "borrowed": s.get("borrowed", 0),
                }
            )
        leases = []
        for node, snap in sorted(snaps.items()):
            for lid, lease in sorted(snap.get("scheduler", {}).get("leases", {}).items()):
                leases.append({"lease": lid, "node": node, **lease})
        return {
            "nodes": nodes,
            "workers": workers,
            "leases": leases,
            "demand": self._demand(head_nodes),
        }

    def _demand(self, head_nodes: dict[str, Any]) -> dict[str, Any]:
        totals = [rec.get("total", {}) for rec in head_nodes.values() if rec.get("alive")]
        shapes: dict[tuple, dict[str, Any]] = {}
        for proc in self.processes.values():
            if not proc.fresh(self._freshness()):
                continue
            for kind, name, actor_id, resources, n in proc.pending:
                if kind == "actor_method":
                    continue  # an actor's calls wait for the actor, not for resources
                function = self.display_name((kind, name, actor_id))
                shape = (function, tuple(sorted(resources.items())))
                entry = shapes.get(shape)
                if entry is None:
                    feasible = any(all(total.get(k, 0.0) >= v for k, v in resources.items()) for total in totals)
                    entry = shapes[shape] = {"function": function, "resources": resources, "tasks": 0, "feasible": feasible}
                entry["tasks"] += n
        rows = sorted(shapes.values(), key=lambda e: (-e["tasks"], e["function"]))
        alive = [p for p in self.processes.values() if p.alive]
        return {
            "pending": [r for r in rows if r["feasible"]],
            "infeasible": [r for r in rows if not r["feasible"]],
            "queued_at_owners": sum(p.summary.get("queued_to_lease", 0) for p in alive),
            "lease_requests": sum(p.summary.get("lease_requests", 0) for p in alive),
        }

    def function_counts(self) -> dict[str, dict[str, int]]:
        """Display name -> counts, summed over the owners: submitted, finished,
        failed and run again as each owner counted them (a dead owner's last
        report included), pending and running now (live owners)."""
        out: dict[str, dict[str, int]] = {}

        def counts_of(key: tuple) -> dict[str, int]:
            name = self.display_name(key)
            counts = out.get(name)
            if counts is None:
                counts = out[name] = dict.fromkeys(_COUNTS, 0)
            return counts

        for proc in self.processes.values():
            for kind, name, actor_id, submitted, finished, failed, rerun in proc.functions:
                counts = counts_of((kind, name, actor_id))
                counts["submitted"] += submitted
                counts["finished"] += finished
                counts["failed"] += failed
                counts["retried"] += rerun
            if proc.fresh(self._freshness()):
                for kind, name, actor_id, pending, running in proc.in_flight:
                    counts = counts_of((kind, name, actor_id))
                    counts["pending"] += pending
                    counts["running"] += running
        return out

    def tasks_view(self) -> dict[str, Any]:
        counts = self.function_counts()
        functions = [{"function": name, **c} for name, c in sorted(counts.items())]
        failed = [{"function": self.display_name(f["key"]), **{k: v for k, v in f.items() if k != "key"}} for f in reversed(self.failed)]
        totals = dict.fromkeys(_COUNTS, 0)
        for c in counts.values():
            for k, v in c.items():
                totals[k] += v
        return {"functions": functions, "failed": failed, "totals": totals, "failed_total": self.failed_total}

    def stream_view(self, window: float = 60.0, limit: int = 5000) -> dict[str, Any]:
        now = time.time()
        since = now - window
        bars: list[Bar] = []
        for proc in self.processes.values():
            if proc.fresh(self._freshness()):
                for task_id, attempt, name, kind, actor_id, _owner, start in proc.running:
                    if start is not None and (task_id, attempt) not in self.bars:
                        bars.append(Bar(task_id, (kind, name, actor_id), proc.address, attempt, start, None, "running"))
        for bar in reversed(self.bars.values()):
            if len(bars) >= limit:
                break
            if bar.end is not None and bar.end < since:
                continue
            bars.append(bar)
        bars.sort(key=lambda b: b.start)
        workers = [
            {"address": p.address, "node": p.node, "alive": p.alive, "role": p.role, "ended": None if p.alive else self._ended(p)}
            for p in sorted(self.processes.values(), key=lambda p: (p.node or "", p.role != "driver", p.address))
            if p.role in ("worker", "driver")
        ]
        names = {id(b): self.display_name(b.key) for b in bars}
        return {
            "now": now,
            "since": max(since, min((b.start for b in bars), default=now)),
            "functions": sorted(set(names.values()) | set(self.function_counts())),
            "workers": workers,
            "bars": [
                {
                    "task_id": b.task_id,
                    "function": names[id(b)],
                    "worker": b.worker,
                    "attempt": b.attempt,
                    "start": b.start,
                    "end": b.end,
                    "outcome": b.outcome,
                }
                for b in bars
            ],
            "deaths": [{"time": d.time, "kind": d.kind, "address": d.address} for d in self.deaths if d.time >= since and self.is_failure(d)],
        }

    def cluster_snapshot(self, wait: float = 3.0) -> tuple[ClusterSnapshot | None, list[str]]:
        """The workers' tables asked for since the page opened, as one
        ClusterSnapshot, and the live workers missing from it; None while
        some are missing, for up to ``wait`` seconds."""
        since = self._tables_since
        if since is None:
            return None, []
        workers, missing = {}, []
        for a, p in self.processes.items():
            if p.role in ("worker", "driver") and p.alive:
                if p.snapshot is not None and p.snapshot_at >= since:
                    workers[a] = p.snapshot
                else:
                    missing.append(a)
        if missing and time.monotonic() - since < wait:
            return None, missing
        return ClusterSnapshot(head=self.head_snapshot, nodes=self._node_snapshots(), workers=workers), sorted(missing)

    def objects_view(self, limit: int = 5000) -> dict[str, Any]:
        snap, missing = self.cluster_snapshot()
        if snap is None:
            return {"loading": True, "rows": [], "total": 0}
        rows = memory_rows(snap)
        total = len(rows)
        rows.sort(key=lambda r: (-(r["size"] or 0), r["object_id"]))
        return {"loading": False, "rows": rows[:limit], "total": total, "unanswered": missing}

    def graph_view(self, object_id: str) -> dict[str, Any]:
        """Owner, borrowers, sub-borrowers and containing objects of one object."""
        snap, _ = self.cluster_snapshot()
        if snap is None:
            return {"loading": True}
        nodes: dict[str, dict[str, Any]] = {}
        edges: list[dict[str, str]] = []

        def node(key: str, kind: str, label: str, depth: int) -> None:
            if key not in nodes or nodes[key]["depth"] > depth:
                nodes[key] = {"id": key, "kind": kind, "label": label, "depth": depth}

        entry = None
        holders: dict[str, dict[str, Any]] = {}
        for address, ws in snap.workers.items():
            e = ws.get("objects", {}).get(object_id)
            if not isinstance(e, dict):
                continue
            if e.get("owned"):
                entry = e
                owner = address
            else:
                holders[address] = e
        if entry is None and not holders:
            return {"loading": False, "found": False, "object_id": object_id}
        owner = entry.get("owner") if entry else next(iter(holders.values())).get("owner", "?")
        obj = f"object:{object_id}"
        node(obj, "object", object_id, 1)
        node(f"process:{owner}", "owner", owner, 0)
        edges.append({"from": f"process:{owner}", "to": obj, "kind": "owns"})
        if entry is not None:
            for b in sorted(entry.get("borrowers", {})):
                node(f"process:{b}", "borrower", b, 2)
                edges.append({"from": obj, "to": f"process:{b}", "kind": "borrowed by"})
            for item in entry.get("sub_borrowers", []):
                address, via = item[0], item[1]
                node(f"process:{address}", "sub-borrower", address, 3)
                edges.append({"from": obj, "to": f"process:{address}", "kind": "sub-borrower" + (f" via {via}" if via else "")})
            for container in entry.get("contained_in", []):
                node(f"object:{container}", "container", container, 2)
                edges.append({"from": obj, "to": f"object:{container}", "kind": "contained in"})
            for inner in entry.get("contains", []):
                node(f"object:{inner}", "contained", inner, 2)
                edges.append({"from": obj, "to": f"object:{inner}", "kind": "contains"})
        for address, e in sorted(holders.items()):
            key = f"process:{address}"
            if key not in nodes:
                node(key, "borrower", address, 2)
                edges.append({"from": obj, "to": key, "kind": "held by"})
            for item in e.get("sub_borrowers", []):
                sub, via = item[0], item[1]
                node(f"process:{sub}", "sub-borrower", sub, 3)
                edges.append({"from": key, "to": f"process:{sub}", "kind": "lent to" + (f" via {via}" if via else "")})
        info = {}
        if entry is not None:
            info = {k: entry.get(k) for k in ("status", "size", "locations", "local", "submitted", "kind", "task_id")}
        return {
            "loading": False,
            "found": True,
            "object_id": object_id,
            "owner": owner,
            "info": info,
            "nodes": sorted(nodes.values(), key=lambda n: (n["depth"], n["id"])),
            "edges": edges,
        }

    def failure_effects(self) -> dict[int, dict[str, list[dict[str, Any]]]]:
        """What followed each death (by its index in ``deaths``): tasks pushed
        again, borrowed refs fate-shared, objects lost, and the time from the
        death to each rerun's result. Matched by time and address when shown,
        as the processes' reports come in any order."""
        deaths = [d for d in self.deaths if self.is_failure(d)]
        index = {id(d): i for i, d in enumerate(self.deaths)}
        out: dict[int, dict[str, list[dict[str, Any]]]] = {
            index[id(d)]: {"retried": [], "fate_shared": [], "lost": [], "recovered": []} for d in deaths
        }
        for notice in self.notices:
            death = next((d for d in reversed(deaths) if d.address in notice.dead or notice.dead & set(d.workers)), None)
            if death is None:
                continue
            effects = out[index[id(death)]]
            effects["fate_shared"] += [{"object": o, "holder": notice.worker, "time": notice.time} for o in notice.fate_shared]
            effects["lost"] += [{"object": o, "owner": notice.worker, "time": notice.time} for o in notice.lost]
        for rerun in self.reruns.values():
            death = self._death_before(rerun.time, deaths)
            if death is None:
                continue
            function = self.display_name(rerun.key)
            effects = out[index[id(death)]]
            if not rerun.reconstruction:
                effects["retried"].append({"task": rerun.task_id, "function": function, "time": rerun.time})
            item: dict[str, Any] = {
                "task": rerun.task_id,
                "function": function,
                "kind": "reconstruction" if rerun.reconstruction else "retry",
                "attempt": rerun.attempt,
            }
            if rerun.done is not None and rerun.error is None:
                item["seconds"] = max(0.0, rerun.done - death.time)
            elif rerun.error is not None:
                item["failed"] = True
            effects["recovered"].append(item)
        return out

    def recoveries(self) -> list[float]:
        return [r["seconds"] for e in self.failure_effects().values() for r in e["recovered"] if "seconds" in r]

    def failures_view(self) -> dict[str, Any]:
        effects = self.failure_effects()
        deaths = []
        for i in reversed(sorted(effects)):
            d, e = self.deaths[i], effects[i]
            deaths.append(
                {
                    "time": d.time,
                    "kind": d.kind,
                    "address": d.address,
                    "node": d.node,
                    "workers": d.workers,
                    "detection": d.detection,
                    "retried": e["retried"][:200],
                    "fate_shared": e["fate_shared"][:200],
                    "fate_shared_total": len(e["fate_shared"]),
                    "lost": e["lost"][:200],
                    "recovered": e["recovered"][:200],
                }
            )
        return {
            "deaths": deaths,
            "stopped": sum(1 for d in self.deaths if not self.is_failure(d)),
            "failed_tasks": self.failed_total,
        }

    # ------------------------------------------------------------------ timeline
    def trace_events(self) -> list[dict[str, Any]]:
        """Every attempt kept, as Chrome trace events (``ph: X``), with process
        and thread names: one process per node, one thread per worker."""
        node_ids: dict[str, int] = {}
        events: list[dict[str, Any]] = []
        workers: dict[str, tuple[int, int]] = {}

        def ids(worker: str) -> tuple[int, int]:
            got = workers.get(worker)
            if got is None:
                proc = self.processes.get(worker)
                node = (proc.node if proc else None) or "?"
                if node not in node_ids:
                    node_ids[node] = len(node_ids) + 1
                    events.append({"name": "process_name", "ph": "M", "pid": node_ids[node], "tid": 0, "args": {"name": f"node {node}"}})
                tid = (proc.pid if proc and proc.pid else 0) or len(workers) + 1
                got = workers[worker] = (node_ids[node], tid)
                role = proc.role if proc else "worker"
                events.append({"name": "thread_name", "ph": "M", "pid": got[0], "tid": tid, "args": {"name": f"{role} {worker}"}})
            return got

        now = time.time()
        for bar in sorted(self.bars.values(), key=lambda b: b.start):
            pid, tid = ids(bar.worker)
            end = bar.end if bar.end is not None else now
            events.append(
                {
                    "name": self.display_name(bar.key),
                    "cat": "task",
                    "ph": "X",
                    "ts": round(bar.start * 1e6, 3),
                    "dur": round(max(0.0, end - bar.start) * 1e6, 3),
                    "pid": pid,
                    "tid": tid,
                    "args": {"task_id": bar.task_id, "attempt": bar.attempt, "outcome": bar.outcome, "worker": bar.worker},
                }
            )
        for d in self.deaths:
            events.append(
                {"name": f"{d.kind} died: {d.address}", "cat": "failure", "ph": "i", "s": "g", "ts": round(d.time * 1e6, 3), "pid": 0, "tid": 0}
            )
        return events

    # ------------------------------------------------------------------ metrics
    def messages_sent(self) -> dict[str, list[int]]:
        """Message type -> [messages, bytes of user values], every process summed."""
        out: dict[str, list[int]] = {}
        for proc in self.processes.values():
            for name, (count, nbytes) in proc.sent.items():
                total = out.setdefault(name, [0, 0])
                total[0] += count
                total[1] += nbytes
        return out


