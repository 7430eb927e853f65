"""The stimulus log keeps values' sizes, not their bytes (a freed value must not stay in memory)."""

from __future__ import annotations

import weakref

from ownership.core.events import SUMMARY_OVER, EventLog, PayloadSummary, Put, Received, summarized
from ownership.core.messages import Arg, Payload, PushTask, RefInfo, TaskSpec
from ownership.core.worker import WorkerCore


class _Buffer(bytearray):
    """A bytes-like buffer that can be weakly referenced (bytes cannot)."""


def test_event_log_put_of_large_value_keeps_no_reference_to_it() -> None:
    w = WorkerCore("w", "n1")
    buf = _Buffer(4 * SUMMARY_OVER)
    alive = weakref.ref(buf)
    w.handle(Put("w/p1", Payload(data=b"\x80\x05.", buffers=(buf,))))
    [entry] = list(w.log)
    assert entry.event == Put("w/p1", PayloadSummary(size=3 + 4 * SUMMARY_OVER))  # type: ignore[arg-type]
    del buf
    w.refs.table.clear()
    w.submitter.tasks.clear()
    assert alive() is None


def test_event_log_nested_payload_in_message_is_summarized_at_depth() -> None:
    big = Payload(data=b"x" * (SUMMARY_OVER + 1), refs=(RefInfo(object_id="a", owner="o"),))
    spec = TaskSpec(task_id="t", owner="o", return_id="t.r", function_id="f", function=Payload(data=b"f"), args=(Arg(value=big),))
    light = summarized(Received("o", PushTask(task=spec, lease_id="l", attempt=0)))
    assert light.msg.task.args[0].value == PayloadSummary(size=SUMMARY_OVER + 1, refs=big.refs)
    assert light.msg.task.function == Payload(data=b"f")  # small values stay as they are


def test_event_log_message_without_large_values_is_logged_unchanged() -> None:
    spec = TaskSpec(task_id="t", owner="o", return_id="t.r", function_id="f", function=Payload(data=b"f"), args=(Arg(value=Payload(data=b"1")),))
    event = Received("o", PushTask(task=spec, lease_id="l", attempt=0))
    log = EventLog()
    log.append(event, [])
    assert next(iter(log)).event is event
