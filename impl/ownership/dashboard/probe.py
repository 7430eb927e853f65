"""What one process tells the dashboard: its core's steps, read as they are logged.

Every core keeps a log of its stimuli (``core/events.py::EventLog``): each
``handle(event)`` appends the event and its effects. The dashboard's probe
takes the place of that log object in a process once the dashboard first
asks (:func:`probe_of`): it logs exactly as before, and also notes, with
the wall-clock time, the few steps the dashboard shows:

``["submit", t, task, name, kind, actor, return_id, resources]``
    an owner's ``Submit`` (``f.remote()``);
``["push", t, task, attempt, worker]``
    an owner's ``PushTask`` sent (the attempt's bar until its executor
    tells more, and for good if the executor dies first);
``["start", t, task, name, attempt, owner, kind, actor]``
    an executor's ``Execute`` effect (user code handed to the shell);
``["end", t, task, error kind or None, error type, attempt]``
    an executor's ``TaskDone`` (user code returned or raised);
``["reply", t, task, attempt, worker, error kind, error type, message, traceback]``
    an owner's ``TaskReply`` received;
``["gone", t, task, error kind, message]``
    an owner's task that ended without a reply (its worker died with no
    retries left, cancelled, its argument's owner died);
``["resubmit", t, task, retries left]``
    an owner's task sent again after its worker died;
``["notified", t, dead workers, dead nodes, fate-shared ids, lost ids]``
    a worker's failure notification, with the borrowed objects whose owner
    died (they fate-share) and the owned ones whose every copy died;
``["died", t, "node" | "worker", address, node, workers, last heartbeat t]``
    the head's publication of a death;
``["exited", t, worker, "stopped" | "died"]``
    a node's worker process gone, stopped by the node (``KillWorker``: an
    actor no longer referenced, a dead owner's lease) or not.

and counts the messages the core sends, by type, with the bytes of user
values they carry. Nothing here changes what a core decides: the probe reads
the event, the effects, and the core's tables after the step.

Without a dashboard nothing is installed and nothing is paid. With one, the
cost per step is a type lookup and, for the steps above, a clock read and a
short list; the records wait in a bounded queue until the next report
(:func:`report`), and what overflows is counted as dropped.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from typing import Any

from ..core.events import Cancel, EventLog, Execute, KillWorker, PeerLost, Received, Send, Submit, TaskDone
from ..core.messages import (
    Heartbeat,
    NodeDied,
    ObjectCopy,
    ObjectValue,
    PushTask,
    PutObject,
    TaskReply,
    WorkerDied,
)

__all__ = ["ProbeLog", "probe_of", "report", "MAX_RECORDS"]

logger = logging.getLogger("ownership.dashboard")

#: records kept between two reports; past that the oldest are dropped (and counted)
MAX_RECORDS = 200_000
#: tasks an owner follows between submit and reply (for "gone" and "resubmit")
_MAX_OPEN = 100_000
#: object ids listed per failure notification
_MAX_IDS = 1_000


def _push_bytes(msg: PushTask) -> int:
    task = msg.task
    n = task.function.size
    for a in task.args:
        if a.value is not None:
            n += a.value.size
    return n


def _value_bytes(msg: Any) -> int:
    value = msg.value
    return 0 if value is None else value.size


_PAYLOAD_BYTES = {PushTask: _push_bytes, TaskReply: _value_bytes, ObjectValue: _value_bytes, ObjectCopy: _value_bytes, PutObject: _value_bytes}


class ProbeLog(EventLog):
    """A core's own log, going on as before, with the dashboard's notes beside it."""

    def __init__(self, core: Any, log: EventLog) -> None:
        # The same entries and count: the core's log is taken over, not reset.
        self.__dict__.update(log.__dict__)
        self._core = core
        self.broken = False
        self.records: collections.deque[list] = collections.deque(maxlen=MAX_RECORDS)
        self.recorded = 0
        self.reported = 0
        #: message type -> [messages sent, bytes of user values in them]
        self.sent: dict[type, list[int]] = {}
        #: owner side: task id -> [return id, retries left when last seen]
        self._open: dict[str, list] = {}
        self._published: set[str] = set()
        self._stopping: set[str] = set()
        #: executor side: task id -> the attempt it runs
        self._running: dict[str, int] = {}
        #: owner side: finished tasks sent again (task id -> its attempts then)
        self._rebuilding: dict[str, int] = {}
        self._heard: dict[str, float] = {}
        self._clock: Any = _no_time
        self._on_event = {
            Submit: self._submit,
            Received: self._received,
            TaskDone: self._done,
            Cancel: self._cancel,
            PeerLost: self._peer_lost,
        }
        # What the core logged before: noted without times (the log has
        # none), so counts, failures and tracebacks from before the
        # dashboard asked are not lost; the task stream starts now.
        try:
            for _, event, effects in log._entries:
                self._observe(event, effects)
        except Exception:
            self.broken = True
            logger.exception("the dashboard's probe cannot read the core's log: it notes no steps (the process goes on)")
        self._clock = time.time

    # -- the hook ---------------------------------------------------------------
    def append(self, event: Any, effects: list[Any]) -> None:
        EventLog.append(self, event, effects)
        if self.broken:
            return
        try:
            self._observe(event, effects)
        except Exception:  # the dashboard must never take a core down
            self.broken = True
            logger.exception("the dashboard's probe failed: it notes no more steps (the process goes on)")

    def _observe(self, event: Any, effects: Any) -> None:
        on_event = self._on_event.get(type(event))
        if on_event is not None:
            on_event(event)
        for e in effects:
            cls = type(e)
            if cls is Send:
                mtype = type(e.msg)
                counts = self.sent.get(mtype)
                if counts is None:
                    counts = self.sent[mtype] = [0, 0]
                counts[0] += 1
                size = _PAYLOAD_BYTES.get(mtype)
                if size is not None:
                    counts[1] += size(e.msg)
                if mtype is PushTask:
                    msg = e.msg
                    self._note(["push", self._clock(), msg.task.task_id, msg.attempt, e.dst])
                elif mtype is NodeDied or mtype is WorkerDied:
                    self._death_sent(e.msg)
            elif cls is Execute:
                self._start(e)
            elif cls is KillWorker:
                self._stopping.add(e.worker)

    def _note(self, record: list) -> None:
        self.recorded += 1
        self.records.append(record)

    # -- owner side -----------------------------------------------------------------
    def _submit(self, event: Submit) -> None:
        spec = event.task
        self._note(
            ["submit", self._clock(), spec.task_id, spec.name, spec.kind, spec.actor_id, spec.return_id, dict(spec.resources)]
        )
        if len(self._open) >= _MAX_OPEN:
            del self._open[next(iter(self._open))]
        self._open[spec.task_id] = [spec.return_id, spec.max_retries]

    def _reply(self, msg: TaskReply) -> None:
        err = msg.error
        self._note(
            [
                "reply",
                self._clock(),
                msg.task_id,
                msg.attempt,
                msg.worker,
                None if err is None else err.kind,
                None if err is None else err.type_name,
                None if err is None else err.message,
                None if err is None else err.traceback,
            ]
        )
        task = self._core.submitter.tasks.get(msg.task_id)
        if task is None or task.state in ("done", "failed"):
            self._open.pop(msg.task_id, None)

    def _check_open(self) -> None:
        """After a failure or a cancel: which followed tasks ended, or went again."""
        if not self._open:
            return
        tasks = self._core.submitter.tasks
        table = self._core.refs.table
        now = self._clock()
        for task_id, entry in list(self._open.items()):
            task = tasks.get(task_id)
            if task is None or task.state == "failed":
                ref = table.get(entry[0])
                err = None if ref is None else ref.error
                self._note(["gone", now, task_id, None if err is None else err.kind, None if err is None else err.message])
                del self._open[task_id]
            elif task.retries_left < entry[1]:
                entry[1] = task.retries_left
                self._note(["resubmit", now, task_id, task.retries_left])

    def _cancel(self, event: Cancel) -> None:
        self._check_open()

    # -- executor side ----------------------------------------------------------------
    def _start(self, effect: Execute) -> None:
        spec = effect.task
        running = self._core.executor.running.get(spec.task_id)
        attempt = 1 if running is None else running.attempt
        self._running[spec.task_id] = attempt
        self._note(["start", self._clock(), spec.task_id, spec.name, attempt, spec.owner, spec.kind, spec.actor_id])

    def _done(self, event: TaskDone) -> None:
        err = event.error
        attempt = self._running.pop(event.task_id, 1)
        self._note(
            ["end", self._clock(), event.task_id, None if err is None else err.kind, None if err is None else err.type_name, attempt]
        )

    # -- failures ------------------------------------------------------------------------
    def _received(self, event: Received) -> None:
        msg = event.msg
        cls = type(msg)
        if cls is TaskReply:
            self._reply(msg)
        elif cls is Heartbeat:
            self._heard[msg.node] = self._clock()
        elif cls is WorkerDied or cls is NodeDied:
            if hasattr(self._core, "refs"):
                if cls is WorkerDied:
                    self._notified({msg.worker}, set())
                else:
                    self._notified(set(msg.workers), {msg.node})

    def _peer_lost(self, event: PeerLost) -> None:
        """A node saw one of its processes exit: stopped by it, or died."""
        cause = "stopped" if event.address in self._stopping else "died"
        self._stopping.discard(event.address)
        self._note(["exited", self._clock(), event.address, cause])

    def _notified(self, workers: set[str], nodes: set[str]) -> None:
        fate_shared: list[str] = []
        lost: list[str] = []
        for oid, ref in self._core.refs.table.items():
            if not ref.owned and ref.owner in workers:
                if len(fate_shared) < _MAX_IDS:
                    fate_shared.append(oid)
            elif ref.owned and ref.status == "lost" and len(lost) < _MAX_IDS:
                lost.append(oid)  # rebuilt when something waits for it
        now = self._clock()
        for task_id, task in self._core.submitter.tasks.items():
            # A finished task going again: its object was lost with the node,
            # and something waits for it (reconstruction starts at once).
            if (
                task.attempt >= 1
                and task.state in ("waiting", "queued")
                and task_id not in self._open
                and self._rebuilding.get(task_id) != task.attempt
            ):
                self._rebuilding[task_id] = task.attempt
                if len(self._rebuilding) > _MAX_OPEN:
                    del self._rebuilding[next(iter(self._rebuilding))]
                if len(lost) < _MAX_IDS:
                    lost.append(task.spec.return_id)
                self._note(["resubmit", now, task_id, task.retries_left])
        self._note(["notified", now, sorted(workers), sorted(nodes), fate_shared, lost])
        self._check_open()

    def _death_sent(self, msg: NodeDied | WorkerDied) -> None:
        """A head publishes a death (once, whoever it tells)."""
        if type(self._core).__name__ != "HeadCore":
            return
        if type(msg) is NodeDied:
            if "node " + msg.node in self._published:
                return
            self._published.add("node " + msg.node)
            self._note(["died", self._clock(), "node", msg.node, msg.node, list(msg.workers), self._heard.get(msg.node)])
        else:
            if "worker " + msg.worker in self._published:
                return
            self._published.add("worker " + msg.worker)
            self._note(["died", self._clock(), "worker", msg.worker, msg.node, [msg.worker], None])


def _no_time() -> None:
    return None


def probe_of(core: Any) -> ProbeLog:
    """The core's probe, installed on first use."""
    log = core.log
    if not isinstance(log, ProbeLog):
        log = core.log = ProbeLog(core, log)
    return log


def _worker_summary(core: Any) -> dict[str, Any]:
    owned = borrowed = borrowers = inline_bytes = 0
    for ref in core.refs.table.values():
        if ref.owned:
            owned += 1
            borrowers += len(ref.borrowers)
            if ref.value is not None:
                inline_bytes += ref.value.size
        else:
            borrowed += 1
    sub = core.submitter
    states: dict[str, int] = {}
    for task in sub.tasks.values():
        states[task.state] = states.get(task.state, 0) + 1
    ex = core.executor
    return {
        "node": core.node,
        "driver": core.driver,
        "actor_id": ex.actor_id,
        "running": sorted(ex.running),
        "queued": len(ex.task_queue) + len(ex.actor_queue),
        "owned": owned,
        "borrowed": borrowed,
        "borrowers": borrowers,
        "inline_bytes": inline_bytes,
        "tasks": states,
        "queued_to_lease": sum(len(ks.queue) for ks in sub.keys.values()),
        "leases_held": len(sub.leases),
        "lease_requests": len(sub.requests),
    }


def report(core: Any, role: str) -> dict[str, Any]:
    """Everything recorded since the last report, the counters, a short summary."""
    probe = probe_of(core)
    records = list(probe.records)
    probe.records.clear()
    dropped = probe.recorded - probe.reported - len(records)
    probe.reported = probe.recorded
    out: dict[str, Any] = {
        "role": role,
        "pid": os.getpid(),
        "time": time.time(),
        "records": records,
        "dropped": dropped,
        "steps": probe.total,
        "sent": {cls.__name__: list(counts) for cls, counts in probe.sent.items()},
    }
    if hasattr(core, "refs"):
        out["summary"] = _worker_summary(core)
    return out
