"""Model -> implementation for RefCounting: the committed traces drive user
code inside running tasks (conformance/mappings/refcounting.py) and the
implementation follows them; a planted counting bug is caught by replay."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import trio

from conformance.coverage import coverage, find_indexes
from conformance.generate import targeted_file_name
from conformance.replay import load_traces, replay
from ownership.core.refcount import Reference

REPO = Path(__file__).resolve().parents[2]
TRACES = REPO / "traces" / "RefCounting"
MANIFEST = REPO / "spec" / "RefCounting.json"


@pytest.fixture(scope="module")
def refcounting_corpus():
    traces = load_traces([TRACES])
    assert traces, f"no RefCounting traces under {TRACES}"
    return traces


async def _replay_all(corpus, *, stop_at_first: bool = False):
    out = []
    for path, trace in corpus:
        result = await replay(trace, source=str(path))
        out.append((path, result))
        if stop_at_first and result.divergence is not None:
            break
    return out


@pytest.fixture(scope="module")
def replayed(refcounting_corpus):
    return trio.run(_replay_all, refcounting_corpus)


def test_refcounting_corpus_replays_with_every_small_edge(replayed):
    failed = {str(p): r.divergence.describe() for p, r in replayed if r.divergence is not None}
    assert not failed, "traces that diverge:\n" + "\n".join(f"{k}:\n{v}" for k, v in failed.items())
    cov = coverage([r for _p, r in replayed], find_indexes([TRACES]))
    small = cov["RefCounting/Small"]
    assert small["edges"]["exercised"] == small["edges"]["total"] > 100
    assert small["actions"]["missed"] == []
    # the steps the implementation takes by itself were followed too
    assert {"OwnerFree", "BorrowerSendRefRemoved"} <= set(small["actions"]["exercised"])


def test_refcounting_targeted_traces_cover_every_test_predicate_of_the_manifest(replayed):
    manifest = json.loads(MANIFEST.read_text())
    by_name = {p.name: r for p, r in replayed}
    for test in manifest["tests"]:
        name = targeted_file_name(test["name"])
        assert name in by_name, f"no targeted trace {name} for {test['name']} ({test['config']})"
        result = by_name[name]
        assert result.config == test["config"] and result.passed, result.divergence and result.divergence.describe()
        assert result.compared == result.length or result.compared >= 2


async def test_planted_bug_free_ignoring_borrowers_is_caught_by_replay(refcounting_corpus, monkeypatch):
    """The owner frees x once its own counts reach zero, whatever its
    borrowers still hold (the spec mutant free-ignores-borrowers)."""

    def in_scope_ignoring_borrowers(self: Reference) -> bool:
        return bool(self.local or self.submitted or self.task_args or self.contained_in or self.waiters)

    monkeypatch.setattr(Reference, "in_scope", in_scope_ignoring_borrowers)
    results = await _replay_all(refcounting_corpus, stop_at_first=True)
    caught = [r.divergence for _p, r in results if r.divergence is not None]
    assert caught, "no trace noticed that the owner frees under its borrowers"
    d = caught[0]
    assert d.kind == "state" and "freed" in d.diffs, d.describe()
    assert d.diffs["freed"] == (False, True), d.describe()


async def test_replay_of_a_returned_ref_reports_the_worker_no_longer_borrowing(refcounting_corpus):
    """WorkerReturnRefInValue: the reply carries x in its value and the
    worker, which kept nothing, does not report itself as a borrower (nor
    the caller as its sub-borrower)."""
    for path, trace in refcounting_corpus:
        steps = [m["action"] for m in trace.state_meta]
        if "WorkerReturnRefInValue" in steps:
            i = steps.index("WorkerReturnRefInValue")
            cut = attrs.evolve(trace, states=trace.states[: i + 1], state_meta=trace.state_meta[: i + 1])
            result = await replay(cut, source=str(path))
            assert result.passed, result.divergence.describe()
            replies = [m for m in trace.states[i]["msgs"] if m["type"] == "TaskReply"]
            assert replies and all(m["contained"] for m in replies)
            return
    raise AssertionError("no trace returns x in a value")
