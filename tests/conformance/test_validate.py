"""Implementation -> model: event logs of random runs, checked by TLC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.eventlog import LogFormatError, random_workload, read_log, write_log
from conformance.mappings.scheduling import SchedulingMapping
from conformance.specs import resolve_spec
from conformance.validate import trace_module, validate
from ownership.cli import main

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO / "spec"


async def _log(constants, seed: int, path: Path):
    header, lines = await random_workload(SchedulingMapping(constants), seed=seed)
    write_log(path, {**header, "config": "Small"}, lines)
    return lines


@pytest.mark.slow
async def test_random_workloads_with_crashes_are_accepted(scheduling_constants, tmp_path):
    spec = resolve_spec("Scheduling", SPEC_DIR)
    crashed = 0
    for seed in range(3):
        path = tmp_path / f"seed{seed}.ndjson"
        lines = await _log(scheduling_constants, seed, path)
        actions = [line.action for line in lines]
        assert actions.count("OwnerSubmit") == 2 and "WorkerExecute" in actions
        crashed += any(a in ("WorkerCrash", "NodeCrash") for a in actions)
        result = validate(path, spec, "Small")
        assert result.accepted, f"seed {seed}: rejected at line {result.consumed + 1}: {result.failed}"
        assert result.consumed == len(lines) and len(result.witness) == len(lines) + 1
    assert crashed, "no run crashed a process: the workload must exercise failures"


async def test_a_log_missing_a_step_is_rejected_at_the_first_line_the_spec_cannot_take(scheduling_constants, tmp_path):
    path = tmp_path / "run.ndjson"
    lines = await _log(scheduling_constants, 0, path)
    first_exec = next(i for i, line in enumerate(lines) if line.action == "WorkerExecute")
    header, _ = read_log(path)
    bad = tmp_path / "bad.ndjson"
    write_log(bad, {k: v for k, v in header.items() if k != "format"}, lines[:first_exec] + lines[first_exec + 1 :])
    result = validate(bad, resolve_spec("Scheduling", SPEC_DIR), "Small")
    assert not result.accepted
    # the reply of the run that was left out cannot be handled
    assert result.failed is not None and result.failed.action == "OwnerHandleReply"
    assert result.consumed < len(lines) - 1
    assert result.state is not None and "msgs" in result.state


def test_validate_cli_reports_rejection_with_the_line_and_state(tmp_path, capsys, scheduling_constants):
    from ownership.tla.itf import encode_value

    header = {"spec": "Scheduling", "config": "Small", "constants": {k: encode_value(v) for k, v in scheduling_constants.items()}}
    log = tmp_path / "two.ndjson"
    t2 = {"o": scheduling_constants["SubmitOrder"][0], "t": scheduling_constants["SubmitOrder"][1]}
    from conformance.eventlog import LogLine

    # t2 before t1: against the owner's program order
    write_log(log, header, [LogLine(1, "driver@n1", "OwnerSubmit", {"o": sorted(scheduling_constants["Owners"])[0], "t": t2["t"]})])
    status = main(["conformance", "validate", str(log), "--spec-dir", str(SPEC_DIR)])
    text = capsys.readouterr().out
    assert status == 1, text
    assert "rejected" in text and "no behaviour can take line 1" in text and "OwnerSubmit(o = o1, t = t2)" in text
    assert 'status = (t1 :> "new" @@ t2 :> "new")' in text


def test_read_log_rejects_malformed_logs(tmp_path):
    cases = {
        "empty": "",
        "no header": '{"clock": 1, "process": "p", "action": "A", "params": {}}\n',
        "not json": '{"format": "ownership-eventlog/1"}\n{oops\n',
        "clock back": '{"format": "ownership-eventlog/1"}\n'
        '{"clock": 2, "process": "p", "action": "A", "params": {}}\n'
        '{"clock": 1, "process": "p", "action": "A", "params": {}}\n',
        "no action": '{"format": "ownership-eventlog/1"}\n{"clock": 1, "process": "p", "params": {}}\n',
    }
    for name, text in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.ndjson"
        path.write_text(text)
        with pytest.raises(LogFormatError) as info:
            read_log(path)
        assert str(path) in str(info.value), name


def test_trace_module_holds_the_log_as_records():
    from conformance.eventlog import LogLine
    from ownership.tla.values import ModelValue, TLARecord

    text = trace_module(
        "MCScheduling",
        [
            LogLine(3, "driver@n1", "OwnerSubmit", {"o": ModelValue("o1"), "t": ModelValue("t1")}),
            LogLine(4, "n1", "SchedulerGrantLease", {"m": TLARecord({"type": "RequestLease", "task": ModelValue("t1")})}),
        ],
    )
    assert "EXTENDS MCScheduling, TLC, Naturals, Sequences" in text
    assert '[action |-> "OwnerSubmit", params |-> [o |-> o1, t |-> t1], clock |-> 3, process |-> "driver@n1"],  \\* clock 3, driver@n1' in text
    assert '[action |-> "SchedulerGrantLease", params |-> [m |-> [type |-> "RequestLease", task |-> t1]], clock |-> 4, process |-> "n1"]' in text
    # lines of one clock from different processes (concurrent steps) may be taken in either order
    assert "TraceLog[j].clock = TraceLog[i].clock /\\ TraceLog[j].process # TraceLog[i].process" in text
    assert "TraceIncomplete == l <= Len(TraceLog)" in text
    json.dumps(text)


# ---------------------------------------------------------------------------
# RefCounting: random programs that pass one object around
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refcounting_constants():
    """Medium's constants (three tasks): Small has one task, too few for a
    random program to pass x on."""
    from conformance.replay import model_constants

    return model_constants(resolve_spec("RefCounting", SPEC_DIR), "Medium", REPO / "traces")


async def _refcounting_log(constants, seed: int, path: Path):
    from conformance.mappings.refcounting import RefCountingMapping

    # Values that contain x are left out: the implementation keeps the
    # executor as a borrower of a returned ref and registers the caller as
    # one (via the value), where the spec counts contained-in at the caller
    # only; such runs are rejected (reported, see the conformance notes).
    header, lines = await random_workload(RefCountingMapping(constants, return_refs=False), seed=seed)
    write_log(path, {**header, "config": "Medium"}, lines)
    return lines


@pytest.mark.slow
async def test_random_programs_passing_a_ref_around_are_accepted(refcounting_constants, tmp_path):
    spec = resolve_spec("RefCounting", SPEC_DIR)
    seen = set()
    for seed in (1, 2, 3):
        path = tmp_path / f"rc{seed}.ndjson"
        lines = await _refcounting_log(refcounting_constants, seed, path)
        seen |= {line.action for line in lines}
        result = validate(path, spec, "Medium")
        assert result.accepted, f"seed {seed}: rejected at line {result.consumed + 1}: {result.failed}"
    assert {"HolderSubmitWithRef", "BorrowerReceiveRef", "HolderHandleReply", "OwnerHandleRefRemoved", "OwnerFree"} <= seen


@pytest.mark.slow
async def test_planted_bug_free_ignoring_borrowers_is_caught(refcounting_constants, tmp_path, monkeypatch):
    """The owner frees x once its own counts reach zero, whatever its
    borrowers still hold (the spec mutant free-ignores-borrowers)."""
    from ownership.core.refcount import Reference

    def in_scope_ignoring_borrowers(self) -> bool:
        return bool(self.local or self.submitted or self.task_args or self.contained_in or self.waiters)

    monkeypatch.setattr(Reference, "in_scope", in_scope_ignoring_borrowers)
    spec = resolve_spec("RefCounting", SPEC_DIR)
    rejected = []
    for seed in (1, 2, 3):
        path = tmp_path / f"bug{seed}.ndjson"
        await _refcounting_log(refcounting_constants, seed, path)
        result = validate(path, spec, "Medium")
        if not result.accepted:
            rejected.append(result)
    assert rejected, "no run's log was rejected although the owner frees under its borrowers"
    assert any(r.failed is not None and r.failed.action == "OwnerFree" for r in rejected), [str(r.failed) for r in rejected]


# ---------------------------------------------------------------------------
# One action per line, the model given as constants (conformance/sized.py)
# ---------------------------------------------------------------------------


def test_next_actions_reads_each_actions_quantifiers():
    from conformance.validate import next_actions, unused_domains

    text = (SPEC_DIR / "Scheduling.tla").read_text(encoding="utf-8")
    actions = next_actions(text)
    assert len(actions) == 25 and "NodeFenced" in actions and "OwnerReconstruct" in actions and "SchedulerStopWorker" in actions
    assert actions["OwnerReuseLease"].binds == (("o", "Owners"), ("w", "Workers"), ("t", "Tasks"))
    assert actions["SchedulerGrantLease"].args == "n, m"
    # the message sets only Next quantifies over; msgs is what actions read
    assert "LeaseGrantedMsgs" in unused_domains(text, actions) and "Tasks" not in unused_domains(text, actions)
    refcounting = next_actions((SPEC_DIR / "RefCounting.tla").read_text(encoding="utf-8"))
    assert refcounting["BorrowerHandleWaitForRefRemoved"].args == "m.borrower, m"
    assert refcounting["OwnerFree"].binds == ()


async def test_sized_validation_takes_one_action_per_line(scheduling_constants, tmp_path):
    from conformance.validate import validate_sized

    spec = resolve_spec("Scheduling", SPEC_DIR)
    lines = await _log(scheduling_constants, 0, tmp_path / "run.ndjson")
    accepted = validate_sized(lines, spec, scheduling_constants)
    assert accepted.accepted and accepted.consumed == len(lines)
    first_exec = next(i for i, line in enumerate(lines) if line.action == "WorkerExecute")
    rejected = validate_sized(lines[:first_exec] + lines[first_exec + 1 :], spec, scheduling_constants)
    assert not rejected.accepted
    assert rejected.failed is not None and rejected.failed.action == "OwnerHandleReply"
    assert rejected.state is not None and rejected.state["status"] and "msgs" in rejected.state
