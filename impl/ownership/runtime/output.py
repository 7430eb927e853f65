"""What tasks print, shown at the driver as ``(fn pid=N) text``, as Ray does.

In a worker process :func:`capture_task_output` replaces ``sys.stdout`` and
``sys.stderr`` with :class:`TaskStream` objects. Text written while a task
runs (its thread, or its trio task for ``async def``) is kept per task until
a line is complete, then sent to the task's owner in one :class:`TaskOutput`
message per stream and loop iteration; anything else (a library printing at
import, the runtime's own logging) goes where it went before. A task's last
partial line is sent when the task ends or flushes; a task that prints
nothing costs one set's truth test when it ends.

Who prints it: a driver writes the lines to its own stdout or stderr,
prefixed with the function (or the actor's class) and the pid of the worker
that ran it. A worker that owns the task (a nested task) passes the lines on
to the owner of a task it is running itself, so they climb to the driver
that started the work; with no task running there, it writes them to its
own stderr (its log).

The task's name and owner are looked up when it writes, from the
executor's table of running tasks: nothing is added to a task that does not
print.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from typing import Any, TextIO

from ..core.messages import message
from .refs import _task_var

__all__ = ["TaskOutput", "TaskStream", "capture_task_output", "forward_task_output", "print_task_output"]


@message
class TaskOutput:
    """Worker -> the owner of a task: complete lines the task wrote."""

    label: str  # the function, or the actor's class
    pid: int
    stream: str  # "stdout" or "stderr"
    text: str  # whole lines, each ending in a newline


class TaskStream(io.TextIOBase):
    """A worker's ``sys.stdout`` or ``sys.stderr``: a running task's text goes to its owner."""

    def __init__(self, runtime: Any, inner: TextIO, name: str) -> None:
        super().__init__()
        self._runtime = runtime
        self._inner = inner
        self._name = name
        self._lock = threading.Lock()
        #: task id -> [label, owner, text not yet sent]
        self._pending: dict[str, list[Any]] = {}
        self._flush_scheduled = False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._inner.fileno()

    def __getattr__(self, name: str) -> Any:
        # What a text stream may have besides (``buffer``, ``line_buffering``):
        # the stream we replaced has it. Bytes written to ``buffer`` bypass
        # the capture and go to the worker's log.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        task_id = _task_var.get()
        if task_id is None:
            return self._inner.write(text)
        with self._lock:
            entry = self._pending.get(task_id)
            if entry is None:
                where = self._whose(task_id)
                if where is None:  # not one of ours (finished, or a stray context)
                    return self._inner.write(text)
                entry = self._pending[task_id] = [*where, ""]
                self._runtime.output_pending.add(task_id)
            entry[2] += text
            schedule = "\n" in text and not self._flush_scheduled
            if schedule:
                self._flush_scheduled = True
        if schedule:
            self._soon(self._send_lines)
        return len(text)

    def flush(self) -> None:
        if _task_var.get() is not None and self._pending:
            self._soon(self._send_all)
        else:
            self._inner.flush()

    def task_done(self, task_id: str) -> None:
        """On the loop: the task ended; send what it left without a newline."""
        with self._lock:
            entry = self._pending.pop(task_id, None)
            if not any(task_id in stream._pending for stream in self._runtime.output_streams):
                self._runtime.output_pending.discard(task_id)
        if entry is not None and entry[2]:
            self._send(entry[0], entry[1], entry[2] if entry[2].endswith("\n") else entry[2] + "\n")

    # -- on the loop thread ------------------------------------------------------------

    def _whose(self, task_id: str) -> tuple[str, str] | None:
        """(label, owner) of a running task (read from any thread: one dict lookup)."""
        running = self._runtime.core.executor.running.get(task_id)
        if running is None:
            return None
        spec = running.spec
        label = spec.name
        if spec.kind == "actor_method" and self._runtime.actor is not None:
            label = type(self._runtime.actor).__name__
        return label or "task", spec.owner

    def _soon(self, fn: Any) -> None:
        if self._runtime.on_loop_thread():
            fn()
            return
        try:
            self._runtime.token.run_sync_soon(fn)
        except Exception:  # the loop is gone: the process is stopping
            pass

    def _send_lines(self) -> None:
        out = []
        with self._lock:
            self._flush_scheduled = False
            for entry in self._pending.values():
                text = entry[2]
                cut = text.rfind("\n") + 1
                if cut:
                    out.append((entry[0], entry[1], text[:cut]))
                    entry[2] = text[cut:]
        for label, owner, text in out:
            self._send(label, owner, text)

    def _send_all(self) -> None:
        """Everything pending, a last partial line included (a task's flush())."""
        with self._lock:
            out = [(e[0], e[1], e[2]) for e in self._pending.values() if e[2]]
            for entry in self._pending.values():
                entry[2] = ""
            self._flush_scheduled = False
        for label, owner, text in out:
            self._send(label, owner, text if text.endswith("\n") else text + "\n")

    def _send(self, label: str, owner: str, text: str) -> None:
        if not text or self._runtime.closed:
            return
        self._runtime.transport.send_nowait(
            owner, TaskOutput(label=label, pid=os.getpid(), stream=self._name, text=text)
        )


def capture_task_output(runtime: Any) -> tuple[TaskStream, TaskStream]:
    """Make this worker process's ``sys.stdout`` and ``sys.stderr`` forward task output."""
    out = TaskStream(runtime, sys.stdout, "stdout")
    err = TaskStream(runtime, sys.stderr, "stderr")
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    return out, err


def print_task_output(msg: TaskOutput, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
    """At a driver: each line with its ``(label pid=N)`` prefix."""
    stdout = stdout or sys.stdout
    stream = (stderr or sys.stderr) if msg.stream == "stderr" else stdout
    if stream is not stdout:
        stdout.flush()  # what the driver printed before comes before
    prefix = f"({msg.label} pid={msg.pid}) "
    stream.write("".join(prefix + line + "\n" for line in msg.text.splitlines()))
    stream.flush()


def forward_task_output(runtime: Any) -> Any:
    """A worker's ``on_output``: lines of a task it owns go on to the owner of
    a task it runs (towards the driver); with none running, to its own log."""
    log = sys.__stderr__

    def forward(env: Any) -> None:
        msg = env.msg
        upstream = None
        for running in runtime.core.executor.running.values():
            upstream = running.spec.owner
            break
        if upstream is None or upstream == runtime.address or runtime.closed:
            if log is not None:
                print_task_output(msg, stdout=log, stderr=log)
        else:
            runtime.transport.send_nowait(upstream, msg)

    return forward
