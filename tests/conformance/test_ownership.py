"""Ownership conformance: a worker that keeps its CPU while its argument is
rebuilt is caught by replay, and logs of random runs with a node crash are
accepted by the spec (the corpus itself, every edge of Small, replays in
test_replay.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conformance.eventlog import random_workload, write_log
from conformance.mappings.ownership import OwnershipMapping
from conformance.replay import load_traces, model_constants, replay
from conformance.specs import resolve_spec
from conformance.validate import validate
from ownership.core.executor import TaskExecutor

REPO = Path(__file__).resolve().parents[2]
OWNERSHIP = REPO / "traces" / "Ownership"
SPEC_DIR = REPO / "spec"


@pytest.fixture(scope="module")
def rebuild_traces():
    """Traces of the corpus in which a leased worker is told its argument is
    being rebuilt (ObjectPending), the first few."""
    files = [f for f in sorted(OWNERSHIP.glob("*.itf.json")) if '"WorkerHandleObjectPending"' in f.read_text(encoding="utf-8")]
    traces = load_traces(files[:3])
    assert traces, f"no Ownership trace under {OWNERSHIP} has a worker told its argument is pending"
    return traces


async def test_planted_bug_cpu_kept_while_an_argument_is_rebuilt_is_caught(rebuild_traces, monkeypatch):
    """The worker waits for an argument that is being rebuilt and keeps its
    CPU: on a one-CPU node the rebuild queues behind it (the deadlock over
    TCP, before the worker lent its CPU)."""
    for path, trace in rebuild_traces:  # the same traces pass without the bug
        result = await replay(trace, source=str(path))
        assert result.passed, result.divergence.describe()
    monkeypatch.setattr(TaskExecutor, "arg_pending", lambda self, task_id: [])
    results = [await replay(trace, source=str(path)) for path, trace in rebuild_traces]
    caught = [r.divergence for r in results if r.divergence is not None]
    assert len(caught) == len(results), [r.source for r in results if r.divergence is None]
    # the spec's worker lent its CPU to its node (a lent lease) and the rebuild took it
    assert all(d.kind == "state" and "leases" in d.diffs for d in caught), caught[0].describe()
    expected, actual = caught[0].diffs["leases"]
    lent = [l for ls in expected.values() for l in ls if l["lent"]]
    assert lent and not [l for ls in actual.values() for l in ls if l["lent"]], caught[0].describe()


@pytest.fixture(scope="module")
def small_constants():
    return model_constants(resolve_spec("Ownership", SPEC_DIR), "Small", REPO / "traces")


@pytest.mark.slow
@settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=10_000))
@example(seed=28)  # x's only copy lost with its node while y is leased: x rebuilt on a CPU y's worker lent
async def test_random_runs_with_a_node_crash_are_accepted(small_constants, tmp_path, seed):
    header, lines = await random_workload(OwnershipMapping(small_constants), seed=seed)
    path = tmp_path / f"own{seed}.ndjson"
    write_log(path, {**header, "config": "Small"}, lines)
    actions = [line.action for line in lines]
    assert actions[0] == "OwnerSubmit" and "WorkerReceiveTask" in actions
    if seed == 28:
        assert {"NodeCrash", "HeadDetectNodeDeath", "WorkerHandleObjectPending", "SchedulerLend", "SchedulerStartWorker",
                "WorkerRegister", "WorkerPullArg", "HolderGet"} <= set(actions)
    result = validate(path, resolve_spec("Ownership", SPEC_DIR), "Small")
    assert result.accepted, f"seed {seed}: rejected at line {result.consumed + 1}: {result.failed}"
    assert result.consumed == len(lines)
