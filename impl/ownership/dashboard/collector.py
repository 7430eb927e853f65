"""The head's view of a running cluster, gathered for the dashboard.

The collector runs in the head process. Every ``interval`` it reads the
head's own core (in-process) and asks every node and worker, over the
cluster's own transport and token, for what its probe recorded since the
last time (:mod:`.probe`) with a :class:`~ownership.runtime.status.StatusRequest`:
nodes always with their snapshot (scheduler, store: small), workers with
theirs (ownership tables: large) only while a page that shows objects is
open. Replies are taken as they come; a process that does not answer in
time is asked again later, and one the cluster declared dead is no longer
asked.

From the records it keeps what the pages and ``/metrics`` show: tasks by
function and state, each attempt as a bar on its worker (the task stream),
failed tasks with their tracebacks, deaths with what followed them, and
the processes' counters. Everything is bounded: the last ``keep_tasks``
tasks in detail, the counts for all of them.
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

__all__ = ["Collector", "Attempt", "TaskRecord", "Death"]

logger = logging.getLogger("ownership.dashboard")

PENDING, RUNNING, FINISHED, FAILED = "pending", "running", "finished", "failed"
_DONE = (FINISHED, FAILED)
#: a request unanswered this long is given up on (the process is asked again)
_REQUEST_TIMEOUT = 5.0


@attrs.define(eq=False)
class Attempt:
    """One run of a task on one worker: a bar of the task stream."""

    task_id: str
    name: str
    worker: str
    attempt: int
    start: float
    end: float | None = None
    #: running, ok, failed (user code raised), cancelled, killed (its worker died)
    outcome: str = "running"
    #: who said when it started and ended: the executor (exact) or, until it
    #: does (or if it died first), the owner (when it pushed, when it heard)
    start_by: str = "owner"
    end_by: str = "owner"


@attrs.define(eq=False)
class TaskRecord:
    task_id: str
    name: str
    kind: str = "task"
    owner: str = ""
    state: str = PENDING
    submitted: float | None = None
    resources: dict[str, float] = attrs.Factory(dict)
    attempt: int = 0
    #: the attempt whose end the state says (records of processes come in any order)
    done_attempt: int = 0
    attempts: list[Attempt] = attrs.Factory(list)
    finished: float | None = None
    error: dict[str, Any] | None = None
    #: attempts heard of, and those that returned a value (reports come in
    #: any order: what is counted is what is in these sets)
    seen: set[int] = attrs.Factory(set)
    succeeded: set[int] = attrs.Factory(set)
    #: times its owner sent it again after its worker died
    resubmitted: list[float] = attrs.Factory(list)


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
    steps: int = 0
    last_report: float | None = None


def _counts() -> dict[str, int]:
    # States now (pending .. failed), and events so far (*_total never go
    # down: a reconstructed task finishes twice).
    return {"submitted": 0, PENDING: 0, RUNNING: 0, FINISHED: 0, FAILED: 0, "retried": 0, "finished_total": 0, "failed_total": 0}


class Collector:
    """Gathers the cluster's state in the head process (see the module doc)."""

    def __init__(
        self,
        head: Any,
        *,
        interval: float = 0.5,
        keep_tasks: int = 50_000,
        keep_attempts: int = 50_000,
        keep_failed: int = 200,
    ) -> None:
        self.head = head
        self.interval = interval
        self.keep_tasks = keep_tasks
        self.started = time.time()
        self.processes: dict[str, Process] = {}
        self.head_snapshot: dict[str, Any] = {}
        self.tasks: collections.OrderedDict[str, TaskRecord] = collections.OrderedDict()
        self.keep_attempts = keep_attempts
        #: (task id, attempt) -> its bar, oldest first
        self.attempts: collections.OrderedDict[tuple[str, int], Attempt] = collections.OrderedDict()
        self.functions: dict[str, dict[str, int]] = {}
        self.failed: collections.deque[TaskRecord] = collections.deque(maxlen=keep_failed)
        self.deaths: list[Death] = []
        self.actor_names: dict[str, str] = {}
        #: worker -> the last attempt started there
        self._last_on: dict[str, Attempt] = {}
        #: worker -> "stopped" (its node stopped it: an actor no longer
        #: referenced, an owner's death) or "died", as its node saw it exit
        self.exits: dict[str, str] = {}
        self.records_dropped = 0
        self.tasks_forgotten = 0
        self.detections: list[float] = []
        #: tasks run more than once, and failure notices: matched with the
        #: deaths when shown, as the processes' reports come in any order
        self.reruns: collections.OrderedDict[str, TaskRecord] = collections.OrderedDict()
        self.notices: collections.deque[Notice] = collections.deque(maxlen=1000)
        self.version = 0
        #: pages open that show ownership tables (workers' full snapshots),
        #: and since when the workers are asked for them
        self.object_watchers = 0
        self._tables_since: float | None = None
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
                with trio.move_on_after(self.interval):
                    await self._wake.wait()
                self._wake = trio.Event()
                self.poll()
                self._publish()

    def wake(self) -> None:
        """Poll now (a page that needs the ownership tables just opened)."""
        self._wake.set()

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
        self.take(self.head.address, "head", self.head_snapshot, report(self.head.core, "head"))
        now = time.monotonic()
        for address, (_, sent) in list(self._outstanding.items()):
            if now - sent > _REQUEST_TIMEOUT:
                del self._outstanding[address]
        for address, rec in sorted(self.head_snapshot.get("nodes", {}).items()):
            node = self.processes.get(address)
            if node is None:
                node = self.processes[address] = Process(address=address, role="node", node=address)
            node.alive = bool(rec.get("alive"))
            if node.alive:
                self._ask(address, snapshot=True)
        for proc in list(self.processes.values()):
            if proc.role in ("worker", "driver") and proc.alive:
                self._ask(proc.address, snapshot=self.object_watchers > 0)

    def _ask(self, address: str, *, snapshot: bool) -> None:
        if address in self._outstanding or self._transport is None:
            return
        rid = f"dash-{next(self._ids)}"
        self._outstanding[address] = (rid, time.monotonic())
        try:
            self._transport.send_nowait(address, StatusRequest(request_id=rid, probe=True, snapshot=snapshot))
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
        summary = probe.get("summary")
        if summary is not None:
            proc.summary = summary
            proc.node = summary.get("node", proc.node)
            proc.role = "driver" if summary.get("driver") else "worker"
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

    # ------------------------------------------------------------------ tasks
    def _task(self, task_id: str, name: str) -> TaskRecord:
        task = self.tasks.get(task_id)
        if task is None:
            task = self.tasks[task_id] = TaskRecord(task_id=task_id, name=name)
            counts = self.functions.setdefault(name, _counts())
            counts["submitted"] += 1
            counts[PENDING] += 1
            if len(self.tasks) > self.keep_tasks:
                self.tasks.popitem(last=False)
                self.tasks_forgotten += 1
        return task

    def _set_state(self, task: TaskRecord, state: str) -> None:
        if task.state == state:
            return
        counts = self.functions.setdefault(task.name, _counts())
        counts[task.state] -= 1
        counts[state] += 1
        if state == FAILED:
            counts["failed_total"] += 1
        task.state = state

    def _display_name(self, name: str, kind: str, actor_id: str | None) -> str:
        if kind == "actor_method" and actor_id:
            return f"{self.actor_names.get(actor_id, 'actor')}.{name}"
        if kind == "actor_create":
            return f"{name}.__init__"
        return name

    def _on_submit(self, owner: str, r: list) -> None:
        _, t, task_id, name, kind, actor_id, return_id, resources = r[:8]
        if kind == "actor_create":
            self.actor_names[return_id] = name
        task = self._task(task_id, self._display_name(name, kind, actor_id))
        task.kind, task.owner, task.submitted, task.resources = kind, owner, t, resources or {}

    def _bar(self, task: TaskRecord, attempt: int, worker: str, t: float) -> tuple[Attempt, bool]:
        """The bar of one attempt, made if new (True)."""
        key = (task.task_id, attempt)
        bar = self.attempts.get(key)
        if bar is not None:
            return bar, False
        bar = self.attempts[key] = Attempt(task_id=task.task_id, name=task.name, worker=worker, attempt=attempt, start=t)
        task.attempts.append(bar)
        if len(self.attempts) > self.keep_attempts:
            self.attempts.popitem(last=False)
        return bar, True

    def _on_push(self, owner: str, r: list) -> None:
        _, t, task_id, attempt, worker = r[:5]
        task = self.tasks.get(task_id)
        if task is None or t is None:
            return
        self._bar(task, attempt, worker, t)
        self._attempt_began(task, attempt)

    def _on_start(self, worker: str, r: list) -> None:
        _, t, task_id, name, attempt, owner, kind, actor_id = r[:8]
        if kind == "actor_create":
            self.actor_names.setdefault(f"{task_id}.r", name)
        task = self._task(task_id, self._display_name(name, kind, actor_id))
        task.owner = task.owner or owner
        task.kind = kind
        if t is not None:  # (a start logged before the dashboard asked has no time: counted, not drawn)
            previous = self._last_on.get(worker)
            if kind == "actor_method" and previous is not None and previous.end is not None and previous.end > t:
                # An actor's calls are handed to its thread as their arguments
                # become ready and run one after the other: each starts when
                # the previous one on that worker ended, if that was later.
                t = previous.end
            bar, _ = self._bar(task, attempt, worker, t)
            bar.start, bar.start_by, bar.worker = t, "executor", worker
            if bar.end is not None and bar.end_by == "owner" and bar.end < t:
                bar.end = t
            self._last_on[worker] = bar
        self._attempt_began(task, attempt)

    def _attempt_began(self, task: TaskRecord, attempt: int) -> None:
        """An attempt was pushed or started (whichever is heard first counts it)."""
        if attempt not in task.seen:
            task.seen.add(attempt)
            if attempt > 1:
                self.functions.setdefault(task.name, _counts())["retried"] += 1
                self.reruns[task.task_id] = task
                if len(self.reruns) > 10_000:
                    self.reruns.popitem(last=False)
        if task.state in _DONE and attempt <= task.done_attempt:
            task.attempt = max(task.attempt, attempt)  # heard after its end
            return
        task.attempt = max(task.attempt, attempt)
        self._set_state(task, RUNNING)

    def _succeeded(self, task: TaskRecord, attempt: int) -> None:
        if attempt not in task.succeeded:
            task.succeeded.add(attempt)
            self.functions.setdefault(task.name, _counts())["finished_total"] += 1

    def _end_bar(self, task: TaskRecord, attempt: int, t: float | None, outcome: str, by: str) -> None:
        bar = self.attempts.get((task.task_id, attempt))
        if bar is None or (by == "owner" and bar.end_by == "executor" and bar.end is not None):
            return
        bar.end = max(bar.start, t) if t is not None else bar.start
        bar.outcome, bar.end_by = outcome, by

    def _on_end(self, worker: str, r: list) -> None:
        _, t, task_id, err_kind, _err_type, attempt = r[:6]
        task = self.tasks.get(task_id)
        if task is None:
            return
        outcome = "ok" if err_kind is None else ("cancelled" if err_kind == "cancelled" else "failed")
        self._end_bar(task, attempt, t, outcome, "executor")
        if err_kind is None:
            self._succeeded(task, attempt)
        if attempt >= task.attempt and attempt > task.done_attempt and task.state not in _DONE:
            # The owner's reply says the same, or more (its traceback).
            task.done_attempt = attempt
            task.finished = t
            self._set_state(task, FINISHED if err_kind is None else FAILED)

    def _on_reply(self, owner: str, r: list) -> None:
        _, t, task_id, attempt, worker, err_kind, err_type, message, traceback = r[:9]
        task = self.tasks.get(task_id)
        if task is None:
            return
        self._end_bar(task, attempt, t, "ok" if err_kind is None else "failed", "owner")
        if err_kind is None:
            self._succeeded(task, attempt)
        if attempt < task.attempt or attempt < task.done_attempt:
            return  # a reply for an attempt given up on
        counted = task.state in _DONE and task.done_attempt == attempt
        task.attempt = max(task.attempt, attempt)
        task.done_attempt = attempt
        task.finished = t
        if err_kind is None:
            if not counted:
                self._set_state(task, FINISHED)
        else:
            task.error = {"kind": err_kind, "type": err_type or "", "message": message or "", "traceback": traceback or "", "worker": worker}
            self._set_state(task, FAILED)
            if not any(f is task for f in self.failed):
                self.failed.append(task)

    def _on_gone(self, owner: str, r: list) -> None:
        _, t, task_id, err_kind, message = r[:5]
        task = self.tasks.get(task_id)
        if task is None or task.state == FINISHED:
            return
        task.finished = t
        task.error = {"kind": err_kind or "unknown", "type": "", "message": message or "", "traceback": "", "worker": ""}
        for bar in task.attempts:
            if bar.end is None:
                bar.end, bar.outcome = (t if t is not None else bar.start), "killed"
        self._set_state(task, FAILED)
        self.failed.append(task)

    def _on_resubmit(self, owner: str, r: list) -> None:
        _, t, task_id, _retries_left = r[:4]
        task = self.tasks.get(task_id)
        if task is None:
            return
        for bar in task.attempts:
            if bar.end is None:
                bar.end, bar.outcome = (t if t is not None else bar.start), "killed"
        if t is not None:
            task.resubmitted.append(t)
            self.reruns[task_id] = task
        if task.state == RUNNING:
            self._set_state(task, PENDING)

    def _on_notified(self, worker: str, r: list) -> None:
        _, t, dead_workers, dead_nodes, fate_shared, lost = r[:6]
        self.notices.append(Notice(time=t, worker=worker, dead=set(dead_workers) | set(dead_nodes), fate_shared=fate_shared, lost=lost))

    def _on_died(self, head: str, r: list) -> None:
        _, t, kind, address, node, workers, heard = r[:7]
        if t is None:
            t = time.time()
        detection = None if heard is None else max(0.0, t - heard)
        death = Death(time=t, kind=kind, address=address, node=node, workers=list(workers), detection=detection)
        self.deaths.append(death)
        if detection is not None:
            self.detections.append(detection)
        dead = set(workers) | {address}
        for a in dead:
            proc = self.processes.get(a)
            if proc is not None:
                proc.alive = False
        for bar in reversed(self.attempts.values()):
            if bar.end is None and bar.worker in dead:
                bar.end, bar.outcome = max(bar.start, t), "killed"

    def _on_exited(self, node: str, r: list) -> None:
        _, _t, address, cause = r[:4]
        self.exits[address] = cause
        proc = self.processes.get(address)
        if proc is not None:
            proc.alive = False

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
        "submit": _on_submit,
        "push": _on_push,
        "start": _on_start,
        "end": _on_end,
        "reply": _on_reply,
        "gone": _on_gone,
        "resubmit": _on_resubmit,
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
            running = [self.tasks[t].name if t in self.tasks else t for t in s.get("running", [])] if proc.alive else []
            workers.append(
                {
                    "address": proc.address,
                    "node": proc.node,
                    "pid": proc.pid,
                    "role": role,
                    "alive": proc.alive,
                    "state": slot.get("state", "dead" if not proc.alive else "?"),
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
        for task in self.tasks.values():
            if task.state != PENDING or task.kind == "actor_method":
                continue
            key = (task.name, tuple(sorted(task.resources.items())))
            entry = shapes.get(key)
            if entry is None:
                feasible = any(all(total.get(k, 0.0) >= v for k, v in task.resources.items()) for total in totals)
                entry = shapes[key] = {"function": task.name, "resources": task.resources, "tasks": 0, "feasible": feasible}
            entry["tasks"] += 1
        rows = sorted(shapes.values(), key=lambda e: (-e["tasks"], e["function"]))
        waiting_at_owners = sum(p.summary.get("queued_to_lease", 0) for p in self.processes.values() if p.alive)
        requests = sum(p.summary.get("lease_requests", 0) for p in self.processes.values() if p.alive)
        return {
            "pending": [r for r in rows if r["feasible"]],
            "infeasible": [r for r in rows if not r["feasible"]],
            "queued_at_owners": waiting_at_owners,
            "lease_requests": requests,
        }

    def tasks_view(self) -> dict[str, Any]:
        functions = [{"function": name, **counts} for name, counts in sorted(self.functions.items())]
        failed = []
        for task in reversed(self.failed):
            err = task.error or {}
            failed.append(
                {
                    "task_id": task.task_id,
                    "function": task.name,
                    "owner": task.owner,
                    "worker": err.get("worker", ""),
                    "time": task.finished,
                    "kind": err.get("kind", ""),
                    "type": err.get("type", ""),
                    "message": err.get("message", ""),
                    "traceback": err.get("traceback", ""),
                    "attempts": task.attempt,
                }
            )
        totals = _counts()
        for counts in self.functions.values():
            for k, v in counts.items():
                totals[k] += v
        return {"functions": functions, "failed": failed, "totals": totals, "forgotten": self.tasks_forgotten}

    def stream_view(self, window: float = 60.0, limit: int = 5000) -> dict[str, Any]:
        now = time.time()
        since = now - window
        bars = []
        for bar in reversed(self.attempts.values()):
            if bar.end is not None and bar.end < since:
                continue
            bars.append(bar)
            if len(bars) >= limit:
                break
        names = sorted(self.functions)
        workers = [
            {"address": p.address, "node": p.node, "alive": p.alive, "role": p.role}
            for p in sorted(self.processes.values(), key=lambda p: (p.node or "", p.role != "driver", p.address))
            if p.role in ("worker", "driver")
        ]
        return {
            "now": now,
            "since": max(since, min((b.start for b in bars), default=now)),
            "functions": names,
            "workers": workers,
            "bars": [
                {
                    "task_id": b.task_id,
                    "function": b.name,
                    "worker": b.worker,
                    "attempt": b.attempt,
                    "start": b.start,
                    "end": b.end,
                    "outcome": b.outcome,
                }
                for b in reversed(bars)
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
        """What followed each death (by its index in ``deaths``): tasks sent
        again, borrowed refs fate-shared, objects lost, and the reruns'
        results with the time from the death to each."""
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
        for task in self.reruns.values():
            for t in task.resubmitted:
                death = self._death_before(t, deaths)
                if death is not None:
                    out[index[id(death)]]["retried"].append({"task": task.task_id, "function": task.name, "time": t})
            last = max(task.attempts, key=lambda a: a.attempt, default=None)
            if last is None or last.attempt < 2:
                continue
            death = self._death_before(last.start, deaths)
            if death is None:
                continue
            item: dict[str, Any] = {
                "task": task.task_id,
                "function": task.name,
                "kind": "reconstruction" if any(a < last.attempt for a in task.succeeded) else "retry",
                "attempt": last.attempt,
            }
            if task.state == FINISHED and task.finished is not None and last.attempt == task.done_attempt:
                item["seconds"] = max(0.0, task.finished - death.time)
            elif task.state == FAILED:
                item["failed"] = True
            out[index[id(death)]]["recovered"].append(item)
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
            "failed_tasks": sum(c[FAILED] for c in self.functions.values()),
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
        for bar in sorted(self.attempts.values(), key=lambda b: b.start):
            pid, tid = ids(bar.worker)
            end = bar.end if bar.end is not None else now
            events.append(
                {
                    "name": bar.name,
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


