"""The wire vocabulary, ids and the stimulus log."""

from __future__ import annotations

import re

import attrs
import pytest

from ownership.core import messages as m
from ownership.core.events import EventLog, IdGenerator, Tick
from ownership.core.worker import WorkerCore


def sample(cls: type) -> object:
    """An instance of a message class, every field given a plausible value."""
    values = {
        "resources": (("CPU", 1.0),),
        "value": m.Payload(data=b"v", buffers=(b"b",), refs=(m.RefInfo(object_id="o/1", owner="o"),)),
        "task": m.TaskSpec(task_id="o/t1", owner="o", return_id="o/t1.r", function_id="f", function=m.Payload(data=b"f"), args=(m.Arg(value=m.Payload(data=b"1")),)),
        "reply": m.TaskReply(task_id="o/t1", return_id="o/t1.r", attempt=1, worker="w", lease_id="l"),
        "error": m.ErrorInfo(kind="task", message="boom"),
        "borrowers": (m.Borrower(address="b", via="o/y"),),
        "borrowed": (m.BorrowInfo(object_id="o/1", owner="o", held=True),),
        "nodes": (m.NodeView(node="n1", total=(("CPU", 1.0),), available=()),),
        "refs": (m.RefInfo(object_id="o/1", owner="o"),),
        "workers": ("w1", "w2"),
        "locations": ("n1",),
        "deps": ("o/1",),
        "object_ids": ("o/1", "o/2"),
        "refused": ("o/2",),
        "moved": (m.MovedObject(object_id="o/1", epoch=1, value=m.Payload(data=b"v")),),
        "told": ("n1", "w1"),
        "entries": (m.ReportEntry(object_id="o/1", epoch=1, held=True),),
        "segments": ("own_s_1", ""),
    }
    moved = attrs.fields_dict(cls).get("moved")
    if moved is not None and "MovedRef" in str(moved.type):  # where objects moved, not what moved
        values["moved"] = (m.MovedRef(object_id="o/1", owner="d", epoch=1),)
    if "push" in attrs.fields_dict(cls):  # SegmentArguments carries a PushTask
        values["push"] = m.PushTask(task=values["task"], lease_id="l", attempt=1)
    if "pull" in attrs.fields_dict(cls):  # SegmentPull carries a PullObject
        values["pull"] = m.PullObject(object_id="o/1", requester="n1")
    fields = {}
    for a in attrs.fields(cls):
        if a.name in values:
            fields[a.name] = values[a.name]
        elif a.default is not attrs.NOTHING:
            continue
        elif a.type in ("int", "Count"):
            fields[a.name] = 1
        elif a.type == "bool":
            fields[a.name] = True
        elif a.type == "dict":
            fields[a.name] = {"k": 1}
        else:
            fields[a.name] = f"{a.name}-x"
    return cls(**fields)


@pytest.mark.parametrize("name", sorted(m.MESSAGE_TYPES))
def test_every_message_roundtrips_through_plain_data(name: str) -> None:
    msg = sample(m.MESSAGE_TYPES[name])
    tree = m.unstructure(msg)
    assert tree["__type__"] == name
    assert m.structure(tree) == msg


def test_structure_rejects_unknown_type_names() -> None:
    with pytest.raises(m.UnknownMessageType, match="os.system"):
        m.structure({"__type__": "os.system", "command": "true"})


def test_message_from_fields_names_the_bad_field() -> None:
    with pytest.raises(m.UnknownMessageType, match="FreeObject"):
        m.message_from_fields("FreeObject", {"object": "x"})


def test_unstructure_refuses_arbitrary_objects() -> None:
    with pytest.raises(TypeError, match="cannot put"):
        m.unstructure(m.FreeObject(object_id=object()))  # type: ignore[arg-type]


def test_ids_are_deterministic_per_address() -> None:
    a, b = IdGenerator("w1@n1"), IdGenerator("w1@n1")
    assert [a.next("t"), a.next("p")] == [b.next("t"), b.next("p")] == ["w1@n1/t1", "w1@n1/p2"]


def test_event_log_keeps_only_the_last_entries() -> None:
    log = EventLog(maxlen=3)
    for _ in range(5):
        log.append(Tick(), [])
    assert len(log) == 3 and log.total == 5 and [e.seq for e in log] == [3, 4, 5]


def test_worker_core_logs_every_stimulus_with_its_effects() -> None:
    w = WorkerCore("w", "n1")
    w.handle(Tick())
    [entry] = list(w.log)
    assert entry.event == Tick() and entry.effects == ()


def test_errors_about_a_peers_names_are_escaped_and_short() -> None:
    with pytest.raises(m.UnknownMessageType) as raised:
        m.message_from_fields("Evil\nline" + "x" * 10_000, {})
    text = str(raised.value)
    assert "\n" not in text and "\\n" in text and len(text) < 300


def test_validate_names_the_field_and_refuses_what_does_not_fit() -> None:
    ok = m.Heartbeat(node="n1", seq=3, total=(("CPU", 2),), workers=("w",))
    m.validate(ok)
    for bad, field in [
        (m.Heartbeat(node="", seq=1), "Heartbeat.node"),
        (m.Heartbeat(node="n1", seq=-1), "Heartbeat.seq"),
        (m.Heartbeat(node="n1", seq=True), "Heartbeat.seq"),  # type: ignore[arg-type]
        (m.Heartbeat(node="n1", seq=2**64), "Heartbeat.seq"),
        (m.Heartbeat(node="n1", seq=1, total=(("CPU", float("nan")),)), "Heartbeat.total[][1]"),
        (m.Heartbeat(node="n1", seq=1, workers=["w"]), "Heartbeat.workers"),  # type: ignore[arg-type]
        (m.PushTask(task=m.TaskSpec(task_id="t", owner="o", return_id="r", function_id="f", function=m.Payload(data=b""), kind="rm -rf"), lease_id=None, attempt=1), "TaskSpec.kind"),  # type: ignore[arg-type]
        (m.PushTask(task={"task_id": "t"}, lease_id=None, attempt=1), "PushTask.task"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(m.InvalidMessage, match=re.escape(f"bad field {field}:")):
            m.validate(bad)
