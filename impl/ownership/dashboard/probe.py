"""What one process tells the dashboard: its core's steps, read as they are logged.

Every core keeps a log of its stimuli (``core/events.py::EventLog``): each
``handle(event)`` appends the event and its effects. The dashboard's probe
takes the place of that log object in a process (:func:`probe_of`): it logs
exactly as before, and also reads each step as it goes by. Nothing here
changes what a core decides: the probe reads the event, the effects, and
the core's tables after the step.

What it keeps is shaped by its cost, paid on every task. A task that
succeeds costs its owner a counter and a dict entry (submit to reply), and
its executor one record, ``("ran", ...)``, with the wall-clock start and end
of its run. Everything else is rare and noted in detail:

``("actor", actor id, class name)``
    an owner creating an actor (to name its methods);
``("ran", task, name, kind, actor, attempt, owner, start, end, error kind)``
    an executor's run of a task, from its ``Execute`` effect to its
    ``TaskDone``: a bar of the task stream;
``("failed", t, task, kind, name, actor, attempt, worker, error kind, type, message, traceback)``
    an owner's task that ended in an error (a ``TaskReply`` with one, or no
    reply: its worker died with no retries left, it was cancelled);
``("killed", pushed, t, task, kind, name, actor, attempt, worker)``
    an owner's attempt lost with its worker (the bar its executor never sent);
``("rerun", t, task, kind, name, actor, attempt, worker, finished before)``
    an owner pushing a task again: a retry, or a reconstruction of a task
    that had finished (its value was lost);
``("rerun_done", t, task, attempt, error kind)``
    the result of such an attempt at the owner;
``("notified", t, dead workers, dead nodes, fate-shared ids, lost ids)``
    a worker's failure notification, with the borrowed objects whose owner
    died (they fate-share) and the owned ones whose every copy died;
``("died", t, "node" | "worker", address, node, workers, last heartbeat t)``
    the head's publication of a death;
``("exited", t, worker, "stopped" | "died")``
    a node's worker process gone, stopped by the node (``KillWorker``: an
    actor no longer referenced, a dead owner's lease) or not.

Beside the records, each report (:func:`report`) carries the owner's task
counts by function (submitted, finished, failed, run again, and now pending
or running), what its executor runs now, and the messages the core sent by
type with the bytes of user values they carried.

Without a dashboard nothing is installed and nothing is paid. Records wait
in a bounded queue until the next report; what overflows is counted.
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
#: tasks an owner follows between submit and reply
_MAX_OPEN = 200_000
#: object ids listed per failure notification
_MAX_IDS = 1_000

# An owner's open task: [function key, return id, retries left, resources,
# attempt pushed (0: none yet), when, to which worker, whether it is a
# finished task run again (its result is not counted twice)]
_KEY, _RETURN, _RETRIES, _RESOURCES, _ATTEMPT, _PUSHED, _WORKER, _REBUILD = range(8)
# A function's counts: submitted, finished, failed, run again
_SUBMITTED, _FINISHED, _FAILED, _RERUN = range(4)


def _size(p: Any) -> int:
    # Payload.size, without its generator for the common case of no buffer
    data = getattr(p, "data", None)
    if data is None:  # a PayloadSummary: the core's log kept the size only
        return p.size
    return len(data) + sum(map(len, p.buffers)) if p.buffers else len(data)


def _push_bytes(msg: PushTask) -> int:
    task = msg.task
    n = _size(task.function)
    for a in task.args:
        if a.value is not None:
            n += _size(a.value)
    return n


def _value_bytes(msg: Any) -> int:
    value = msg.value
    return 0 if value is None else _size(value)


_PAYLOAD_BYTES = {PushTask: _push_bytes, TaskReply: _value_bytes, ObjectValue: _value_bytes, ObjectCopy: _value_bytes, PutObject: _value_bytes}


class ProbeLog(EventLog):
    """A core's own log, going on as before, with the dashboard's notes beside it."""

    def __init__(self, core: Any, log: EventLog) -> None:
        # The same entries and count: the core's log is taken over, not reset.
        self.__dict__.update(log.__dict__)
        self._core = core
        self.broken = False
        # Tuples of plain values: the garbage collector soon stops looking
        # at them, so records waiting for a report cost it nothing.
        self.records: collections.deque[tuple] = collections.deque(maxlen=MAX_RECORDS)
        self.recorded = 0
        self.reported = 0
        #: message type -> [messages sent, bytes of user values in them]
        self.sent: dict[type, list[int]] = {}
        #: owner side: (kind, name, actor id) -> counts (see _SUBMITTED ...)
        self.functions: dict[tuple, list[int]] = {}
        #: owner side: task id -> its open entry (see _KEY ...)
        self._open: dict[str, list] = {}
        #: executor side: task id -> (start, attempt, name, kind, actor, owner)
        self._running: dict[str, tuple] = {}
        self._published: set[str] = set()
        self._stopping: set[str] = set()
        self._heard: dict[str, float] = {}
        self._clock: Any = _no_time
        self._on_event = {
            Submit: self._submit,
            Received: self._received,
            TaskDone: self._done,
            Cancel: self._cancel,
            PeerLost: self._peer_lost,
        }
        # What the core logged before is read too, without times (the log
        # has none): counts, failures and tracebacks from before the
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
        # On every step of the core: a few lookups when there is nothing to note.
        on_event = self._on_event.get(type(event))
        if on_event is not None:
            on_event(event)
        for e in effects:
            cls = type(e)
            if cls is Send:
                msg = e.msg
                mtype = type(msg)
                counts = self.sent.get(mtype)
                if counts is None:
                    counts = self.sent[mtype] = [0, 0]
                counts[0] += 1
                size = _PAYLOAD_BYTES.get(mtype)
                if size is not None:
                    counts[1] += size(msg)
                    if mtype is PushTask:
                        self._pushed(e.dst, msg)
                elif mtype is NodeDied or mtype is WorkerDied:
                    self._death_sent(msg)
            elif cls is Execute:
                spec = e.task
                running = self._core.executor.running.get(spec.task_id)
                attempt = 1 if running is None else running.attempt
                self._running[spec.task_id] = (self._clock(), attempt, spec.name, spec.kind, spec.actor_id, spec.owner)
            elif cls is KillWorker:
                self._stopping.add(e.worker)

    def _note(self, record: tuple) -> None:
        self.recorded += 1
        self.records.append(record)

    # -- owner side -----------------------------------------------------------------
    def _submit(self, event: Submit) -> None:
        spec = event.task
        key = (spec.kind, spec.name, spec.actor_id)
        counts = self.functions.get(key)
        if counts is None:
            counts = self.functions[key] = [0, 0, 0, 0]
            if spec.kind == "actor_create":
                self._note(("actor", spec.return_id, spec.name))
        counts[_SUBMITTED] += 1
        if len(self._open) >= _MAX_OPEN:
            del self._open[next(iter(self._open))]
        self._open[spec.task_id] = [key, spec.return_id, spec.max_retries, spec.resources, 0, None, None, False]

    def _pushed(self, worker: str, msg: PushTask) -> None:
        task_id = msg.task.task_id
        attempt = msg.attempt
        entry = self._open.get(task_id)
        if entry is not None:
            entry[_ATTEMPT], entry[_PUSHED], entry[_WORKER] = attempt, self._clock(), worker
            if attempt > 1:
                key = entry[_KEY]
                self.functions[key][_RERUN] += 1
                self._note(("rerun", entry[_PUSHED], task_id, *key, attempt, worker, False))
            return
        if attempt > 1:
            # A task that had finished runs again: its value was lost.
            spec = msg.task
            key = (spec.kind, spec.name, spec.actor_id)
            counts = self.functions.get(key)
            if counts is None:
                counts = self.functions[key] = [0, 0, 0, 0]
            counts[_RERUN] += 1
            now = self._clock()
            self._open[task_id] = [key, spec.return_id, 0, spec.resources, attempt, now, worker, True]
            self._note(("rerun", now, task_id, *key, attempt, worker, True))

    def _reply(self, msg: TaskReply) -> None:
        entry = self._open.get(msg.task_id)
        if entry is None or entry[_ATTEMPT] != msg.attempt:
            return  # the reply of an attempt given up on
        del self._open[msg.task_id]
        err = msg.error
        key = entry[_KEY]
        if err is None:
            if not entry[_REBUILD]:
                self.functions[key][_FINISHED] += 1
        else:
            self.functions[key][_FAILED] += 1
            self._note(
                ("failed", self._clock(), msg.task_id, *key, msg.attempt, msg.worker, err.kind, err.type_name, err.message, err.traceback)
            )
        if msg.attempt > 1:
            self._note(("rerun_done", self._clock(), msg.task_id, msg.attempt, None if err is None else err.kind))

    def _check_open(self, deaths: bool) -> None:
        """After a failure notice or a cancel: which open tasks ended, or went again."""
        if not self._open:
            return
        tasks = self._core.submitter.tasks
        table = self._core.refs.table
        now = self._clock()
        for task_id, entry in list(self._open.items()):
            task = tasks.get(task_id)
            gone = task is None or task.state == "failed"
            if not gone and task.retries_left >= entry[_RETRIES]:
                continue
            # (Pushed again in this very step, on an idle lease: a new attempt.)
            if deaths and entry[_PUSHED] is not None and (gone or task.state != "running" or task.attempt != entry[_ATTEMPT]):
                # The pushed attempt died with its worker: its bar, from the owner.
                self._note(("killed", entry[_PUSHED], now, task_id, *entry[_KEY], entry[_ATTEMPT], entry[_WORKER]))
                entry[_PUSHED] = None
            if gone:
                ref = table.get(entry[_RETURN])
                err = None if ref is None else ref.error
                del self._open[task_id]
                key = entry[_KEY]
                self.functions[key][_FAILED] += 1
                self._note(
                    ("failed", now, task_id, *key, entry[_ATTEMPT], entry[_WORKER], None if err is None else err.kind, "",
                     "" if err is None else err.message, "")
                )
            else:
                entry[_RETRIES] = task.retries_left

    def _cancel(self, event: Cancel) -> None:
        self._check_open(deaths=False)

    # -- executor side ----------------------------------------------------------------
    def _done(self, event: TaskDone) -> None:
        run = self._running.pop(event.task_id, None)
        if run is None:
            return
        start, attempt, name, kind, actor_id, owner = run
        err = event.error
        self._note(("ran", event.task_id, name, kind, actor_id, attempt, owner, start, self._clock(), None if err is None else err.kind))

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
        self._note(("exited", self._clock(), event.address, cause))

    def _notified(self, workers: set[str], nodes: set[str]) -> None:
        fate_shared: list[str] = []
        lost: list[str] = []
        for oid, ref in self._core.refs.table.items():
            if not ref.owned and ref.owner in workers:
                if len(fate_shared) < _MAX_IDS:
                    fate_shared.append(oid)
            elif ref.owned and ref.status == "lost" and len(lost) < _MAX_IDS:
                lost.append(oid)  # rebuilt when something waits for it
        for task_id, task in self._core.submitter.tasks.items():
            # A finished task going again at once (something waits for its
            # value): the value was lost with the node.
            if task.attempt >= 1 and task.state in ("waiting", "queued") and task_id not in self._open and len(lost) < _MAX_IDS:
                lost.append(task.spec.return_id)
        self._note(("notified", self._clock(), sorted(workers), sorted(nodes), fate_shared, lost))
        self._check_open(deaths=True)

    def _death_sent(self, msg: NodeDied | WorkerDied) -> None:
        """A head publishes a death (once, whoever it tells)."""
        if type(self._core).__name__ != "HeadCore":
            return
        if type(msg) is NodeDied:
            if "node " + msg.node in self._published:
                return
            self._published.add("node " + msg.node)
            self._note(("died", self._clock(), "node", msg.node, msg.node, list(msg.workers), self._heard.get(msg.node)))
        else:
            if "worker " + msg.worker in self._published:
                return
            self._published.add("worker " + msg.worker)
            self._note(("died", self._clock(), "worker", msg.worker, msg.node, [msg.worker], None))


def _no_time() -> None:
    return None


def probe_of(core: Any) -> ProbeLog:
    """The core's probe, installed on first use."""
    log = core.log
    if not isinstance(log, ProbeLog):
        log = core.log = ProbeLog(core, log)
    return log


def _owner_summary(probe: ProbeLog) -> tuple[list[list], list[list]]:
    """Tasks pending and running now by function, and those not yet pushed
    by function and resource shape (the demand)."""
    now: dict[tuple, list[int]] = {}
    demand: dict[tuple, int] = {}
    for entry in probe._open.values():
        key = entry[_KEY]
        state = now.get(key)
        if state is None:
            state = now[key] = [0, 0]
        if entry[_PUSHED] is None:
            state[0] += 1
            shape = (key, entry[_RESOURCES])
            demand[shape] = demand.get(shape, 0) + 1
        else:
            state[1] += 1
    in_flight = [[*key, *counts] for key, counts in now.items()]
    pending = [[*key, dict(resources), n] for (key, resources), n in demand.items()]
    return in_flight, pending


def _worker_summary(core: Any) -> dict[str, Any]:
    owned = borrowed = borrowers = inline_bytes = 0
    for ref in core.refs.table.values():
        if ref.owned:
            owned += 1
            borrowers += len(ref.borrowers)
            if ref.value is not None:
                inline_bytes += _size(ref.value)
        else:
            borrowed += 1
    sub = core.submitter
    ex = core.executor
    return {
        "node": core.node,
        "driver": core.driver,
        "actor_id": ex.actor_id,
        "queued": len(ex.task_queue) + len(ex.actor_queue),
        "owned": owned,
        "borrowed": borrowed,
        "borrowers": borrowers,
        "inline_bytes": inline_bytes,
        "queued_to_lease": sum(len(ks.queue) for ks in sub.keys.values()),
        "leases_held": len(sub.leases),
        "lease_requests": len(sub.requests),
    }


def report(core: Any, role: str, *, summary: bool = True) -> dict[str, Any]:
    """Everything noted since the last report and the counters; with
    ``summary``, what the process holds now (a pass over its tables)."""
    probe = probe_of(core)
    records = list(map(list, probe.records))  # lists travel as msgpack arrays, in C
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
        out["functions"] = [[*key, *counts] for key, counts in probe.functions.items()]
        if summary:
            out["summary"] = _worker_summary(core)
            out["in_flight"], out["pending"] = _owner_summary(probe)
            out["running"] = [[task_id, *run[1:], run[0]] for task_id, run in probe._running.items()]
    return out
