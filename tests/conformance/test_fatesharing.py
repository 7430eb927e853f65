"""FateSharing conformance: a holder that skips fate-sharing is caught by
replay, and logs of random runs with crashes are accepted by the spec (the
corpus itself, every edge of Small, replays in test_replay.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conformance.eventlog import random_workload, write_log
from conformance.mappings.fatesharing import FateSharingMapping
from conformance.replay import load_traces, model_constants, replay
from conformance.specs import resolve_spec
from conformance.validate import validate
from ownership.core.executor import TaskExecutor
from ownership.core.recovery import FailureHandler
from ownership.core.scheduler import LocalScheduler

REPO = Path(__file__).resolve().parents[2]
FATESHARING = REPO / "traces" / "FateSharing"
SPEC_DIR = REPO / "spec"


@pytest.fixture(scope="module")
def fate_sharing_traces():
    """The corpus's traces in which a holder fate-shares (the whole corpus
    replays, with every edge of Small, in test_replay.py)."""
    files = [f for f in sorted(FATESHARING.glob("*.itf.json")) if '"HolderFateShare"' in f.read_text(encoding="utf-8")]
    traces = load_traces(files)
    assert traces, f"no FateSharing trace under {FATESHARING} has a holder fate-share"
    return traces


def _skip_fate_sharing(monkeypatch) -> None:
    """The planted bug: a holder of a reference whose owner died keeps going.

    Both layers that make a holder fate-share are switched off: the worker's
    own (fail the borrowed reference, stop tasks of the dead owner or holding
    its references) and the node's (stop the workers leased by the dead owner).
    """
    monkeypatch.setattr(FailureHandler, "fate_share", lambda self, ref: [])
    monkeypatch.setattr(TaskExecutor, "fate_share_tasks", lambda self, dead: [])
    monkeypatch.setattr(TaskExecutor, "handle_owner_death", lambda self, dead: [])

    def reclaim_without_stopping(self, dead_owners):
        for req in list(self.queue):
            if req.owner in dead_owners:
                self.queue.remove(req)
        return []

    monkeypatch.setattr(LocalScheduler, "reclaim_leases", reclaim_without_stopping)


async def test_planted_bug_skip_fate_sharing_is_caught(fate_sharing_traces, monkeypatch):
    fate_shares = [(p, t) for p, t in fate_sharing_traces if any(m["action"] == "HolderFateShare" for m in t.state_meta)]
    assert fate_shares, "no trace of the corpus has a holder fate-share"
    for path, trace in fate_shares:  # the same traces pass without the bug
        result = await replay(trace, source=str(path))
        assert result.passed, result.divergence.describe()
    _skip_fate_sharing(monkeypatch)
    results = [await replay(trace, source=str(path)) for path, trace in fate_shares]
    caught = [r.divergence for r in results if r.divergence is not None]
    assert len(caught) == len(results), [r.source for r in results if r.divergence is None]
    # the holder's body should have failed (spec: HolderFateShare) and did not
    assert all(d.kind == "state" and "ctx" in d.diffs for d in caught), caught[0].describe()
    expected, actual = caught[0].diffs["ctx"]
    assert any(v["body"] == "failed" and actual[w]["body"] == "running" for w, v in expected.items()), caught[0].describe()


@pytest.fixture(scope="module")
def small_constants():
    return model_constants(resolve_spec("FateSharing", SPEC_DIR), "Small", REPO / "traces")


@pytest.mark.slow
@settings(max_examples=1, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=10_000))
@example(seed=62)  # the owner A crashes while B runs: B fate-shares, the driver re-executes A
async def test_random_runs_with_crashes_are_accepted(small_constants, tmp_path, seed):
    header, lines = await random_workload(FateSharingMapping(small_constants), seed=seed)
    path = tmp_path / f"fs{seed}.ndjson"
    write_log(path, {**header, "config": "Small"}, lines)
    actions = [line.action for line in lines]
    assert actions[0] == "OwnerSubmit" and "WorkerExecute" in actions
    if seed == 62:
        assert {"OwnerCrash", "SchedulerDetectWorkerDeath", "HolderFateShare", "OwnerReexecute"} <= set(actions)
    result = validate(path, resolve_spec("FateSharing", SPEC_DIR), "Small")
    assert result.accepted, f"seed {seed}: rejected at line {result.consumed + 1}: {result.failed}"
    assert result.consumed == len(lines)
