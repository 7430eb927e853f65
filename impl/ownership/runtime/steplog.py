"""Step logs: every core step of a TCP process, appended to a file of its own.

On the in-memory cluster one recorder sees every core and stamps each step
with one clock (``conformance/eventlog.py::Recorder``). Over TCP every
process is separate, so each one writes its own steps, and
``ownership conformance log --from-dir DIR`` merges the files afterwards
into one order that respects causality (``conformance/merge.py``).

Enabled by ``ownership.cluster(event_log=DIR)``: the head and node processes
get ``--event-log DIR`` and pass it on to the workers they start; the driver
attaches its own shell. In a service process, :class:`StepLog` is installed
as ``ServiceShell.step_log``, so every shell attaches itself when its receive
loop starts (``runtime/shell.py``); when logging is off that is one class
attribute check per shell and nothing per step.

A file is named ``<role>-<pid>-<n>.steps``. Its first line is a JSON header
(format, address, role, pid, the node of a worker); then one JSON line per
step: a sequence number, ``time`` (``time.monotonic_ns()``, one clock for
every process of the machine: a hint for the merge, which orders by
causality first), a readable summary, and ``step``: the base64 of a pickle
of ``(event, effects, tasks)``. ``tasks`` is the owner's task table
(state and retries left per task id) when the step changed it, else None: a
resubmission shows only there, as it need not send anything at once.
User values are kept as their size and refs (:class:`PayloadSummary`),
never their bytes. A clean stop appends ``{"stop": time}``; a process
killed by a signal has none.

Each record is one ``os.write`` on a file opened with ``O_APPEND``: what was
logged before a SIGKILL is in the file. A process killed in the middle of
a write may leave a partial last line, which the reader drops and reports.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any

import attrs

from ..core import events as _events
from ..core.events import Event, PayloadSummary, Received, Send, Tick
from ..core.messages import MESSAGE_TYPES, RECORD_TYPES, Payload

__all__ = ["FORMAT", "SCHEMA", "StepLog", "dumps_step", "task_table"]

FORMAT = "ownership-steplog/1"


def _schema() -> str:
    """A digest of the names and fields of every class a step pickles: the
    messages, their records and the core's events and effects. A step
    unpickled by a version whose classes differ would lack fields (or
    carry unknown ones), so a reader refuses a log of another schema."""
    classes = {**MESSAGE_TYPES, **RECORD_TYPES}
    for name in dir(_events):
        obj = getattr(_events, name)
        if isinstance(obj, type) and attrs.has(obj):
            classes[name] = obj
    text = ";".join(f"{name}:{','.join(a.name for a in attrs.fields(cls))}" for name, cls in sorted(classes.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: the step log header's ``schema``: see :func:`_schema`
SCHEMA = _schema()

logger = logging.getLogger("ownership.steplog")


class _StepPickler(pickle.Pickler):
    """Pickles a step with every user value reduced to its size and refs."""

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls is Payload:
            return PayloadSummary, (obj.size, obj.refs)
        if cls is memoryview:
            return bytes, (obj.tobytes(),)
        return NotImplemented


def dumps_step(step: Any) -> bytes:
    buf = io.BytesIO()
    _StepPickler(buf, protocol=5).dump(step)
    return buf.getvalue()


def task_table(core: Any) -> dict[str, tuple[str, int]] | None:
    """An owner's tasks: id -> (state, retries left); None for a core that owns none."""
    sub = getattr(core, "submitter", None)
    if sub is None:
        return None
    return {tid: (t.state, t.retries_left) for tid, t in sub.tasks.items()}


def _role(core: Any) -> str:
    name = type(core).__name__
    if name == "HeadCore":
        return "head"
    if name == "NodeCore":
        return "node"
    return "driver" if getattr(core, "driver", False) else "worker"


def _summary(event: Event, effects: list[Any]) -> str:
    if isinstance(event, Received):
        what = f"Received {type(event.msg).__name__} from {event.src}"
    else:
        what = type(event).__name__
    sent = [f"{type(e.msg).__name__} to {e.dst}" for e in effects if isinstance(e, Send)]
    return what + (": sends " + ", ".join(sent) if sent else "")


class _File:
    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self.seq = 0
        self.broken = False
        self.write(header)

    def write(self, record: dict[str, Any]) -> None:
        if self.broken:
            return
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self.fd, data)
        except OSError as exc:
            # A log with a hole would be merged into a wrong run: stop here,
            # and the reader reports the file as ending without a stop.
            self.broken = True
            logger.error("step log %s: cannot write (%s): no more steps are logged", self.path, exc)

    def close(self) -> None:
        self.write({"stop": time.monotonic_ns()})
        os.close(self.fd)


#: the core's configuration a model of the run needs (Scheduling's
#: PipelineDepth and MaxPendingLeaseRequests)
_LIMITS = ("pipeline_depth", "max_pending_lease_requests")


def _limits(core: Any) -> dict[str, int]:
    config = getattr(core, "config", None)
    return {} if config is None else {name: int(getattr(config, name)) for name in _LIMITS}


class StepLog:
    """The step-log sink of one process (see the module doc)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: list[_File] = []
        self._attached: set[int] = set()
        self._numbers = itertools.count(1)

    def attach(self, shell: Any) -> None:
        """Log every step of ``shell``'s core from now on (once per core)."""
        core = shell.core
        if id(core) in self._attached:
            return
        self._attached.add(id(core))
        role = _role(core)
        last_tasks = task_table(core)
        path = self.directory / f"{role}-{os.getpid()}-{next(self._numbers)}.steps"
        header = {
            "format": FORMAT,
            "schema": SCHEMA,
            "address": shell.address,
            "role": role,
            "pid": os.getpid(),
            "node": getattr(core, "node", None) if role in ("worker", "driver") else None,
            "time": time.monotonic_ns(),
            "wall": time.time(),
            "tasks": None if last_tasks is None else sorted([tid, *st] for tid, st in last_tasks.items()),
            # the bounds a model sized from the run takes from its owners
            "limits": _limits(core),
        }
        f = _File(path, header)
        self._files.append(f)
        original = core.handle
        last = [last_tasks]

        def handle(event: Event) -> list[Any]:
            effects = original(event)
            tasks = task_table(core)
            changed = tasks != last[0]
            if effects or changed or not isinstance(event, Tick):
                f.seq += 1
                step = dumps_step((event, tuple(effects), tasks if changed else None))
                f.write(
                    {
                        "seq": f.seq,
                        "time": time.monotonic_ns(),
                        "what": _summary(event, effects),
                        "step": base64.b64encode(step).decode(),
                    }
                )
                last[0] = tasks
            return effects

        core.handle = handle

    def close(self) -> None:
        """A clean stop: mark the end of every file."""
        files, self._files = self._files, []
        for f in files:
            f.close()
