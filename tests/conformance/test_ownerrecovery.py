"""OwnerRecovery conformance: planted bugs in the take-over are caught by
replaying the committed traces (the corpus itself, the action cover of
Small and its targeted traces, replays in test_replay.py)."""

from __future__ import annotations

from pathlib import Path

from conformance.replay import load_traces, replay, trace_steps
from ownership.core.recovery import TakeOver
from ownership.core.store import ObjectStore

OWNER_RECOVERY = Path(__file__).resolve().parents[2] / "traces" / "OwnerRecovery"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _traces(name: str):
    [(path, trace)] = load_traces([OWNER_RECOVERY / name])
    return path, trace


async def test_planted_bug_store_keeps_the_dead_owners_pin_is_caught(monkeypatch):
    """The node's store does not pin the dead owner's copy for the new owner:
    the copy shares its dead owner's fate instead of surviving it."""
    path, trace = _traces("test_holder_gets_value_from_new_owner.itf.json")
    result = await replay(trace, source=str(path))
    assert result.passed, result.divergence.describe()
    monkeypatch.setattr(ObjectStore, "repin", lambda self, moved, dead, new_owner: [])
    result = await replay(trace, source=str(path))
    assert result.divergence is not None and "copies" in result.divergence.diffs, result.divergence
    expected, actual = result.divergence.diffs["copies"]
    assert {c["o"].name for c in expected} == {"d"}
    assert not any(c["o"].name == "d" for c in actual), result.divergence.describe()


async def test_planted_bug_never_dispatched_task_spends_a_retry_is_caught(monkeypatch):
    """The new owner counts a retry for the first run of a task its dead
    owner never pushed (the bug TakeOver._lineage had): the holder's get
    still returns, but with one run fewer than the spec allows."""
    path, trace = _traces("test_parent_adopts_recovered_object.itf.json")
    result = await replay(trace, source=str(path))
    assert result.passed, result.divergence.describe()
    original = TakeOver._lineage

    def one_run_short(self, ref, m):
        fx = original(self, ref, m)
        task = self.worker.submitter.tasks.get(ref.task_id)
        if task is not None and m.attempts == 0:
            task.retries_left -= 1
        return fx

    monkeypatch.setattr(TakeOver, "_lineage", one_run_short)
    result = await replay(trace, source=str(path))
    assert result.divergence is not None and "ent" in result.divergence.diffs, result.divergence
    expected, actual = result.divergence.diffs["ent"]
    budgets = [(expected[p][x]["budget"], actual[p][x]["budget"]) for p in expected for x in expected[p]
               if expected[p][x]["budget"] != actual[p][x]["budget"]]
    assert budgets and all(a == e - 1 for e, a in budgets), result.divergence.describe()


def test_traces_avoid_runs_the_implementation_stops():
    """No committed trace tells a process of a death while it runs a task of
    the dead owner (the node stops those; the mapping's choice)."""
    for path, trace in load_traces([OWNER_RECOVERY]):
        steps = trace_steps(trace)
        for before, step in zip(trace.states, steps[1:]):
            if step.action != "ProcessHandleOwnerMoved":
                continue
            q, dead = step.params["p"], step.params["m"]["w"]
            assert not any(r["o"] == dead for r in before["run"][q]), f"{path.name}: {q} runs a task of {dead}"


def test_conformance_log_says_the_mapping_does_not_log_runs(capsys, tmp_path):
    from ownership.cli import main

    for extra in ([], ["--from-dir", str(tmp_path)]):
        assert main(["conformance", "log", "--spec", "OwnerRecovery", *extra]) == 2
        err = capsys.readouterr()
        text = err.out + err.err
        assert "does not log runs yet" in text and "Traceback" not in text


async def test_an_object_made_again_after_a_take_over_and_a_free_runs_and_is_borrowed_from_its_maker():
    """o makes x and dies; the driver takes x over and, as nothing refers to
    it, frees it; the re-executed parent at w makes x again, with the same
    id, pushes it to a worker of w and hands it to h, both of which heard
    that x moved to the driver. The head keeps the epoch of a deleted object
    that was taken over, so the new push's epoch is later and the worker
    runs it (were it forgotten, the push would be dropped as stale and a get
    of x would wait forever); h borrows x from w, not from the driver."""
    path, trace = _traces("test_remade_object_borrowed_from_its_maker.itf.json")
    actions = [s.action for s in trace_steps(trace)]
    assert actions.count("ParentMake") == 2 and "OwnerFree" in actions
    assert actions.index("OwnerFree") < len(actions) - 1 - actions[::-1].index("ParentMake")
    assert actions[-1] == "HolderGetReturns" and "WorkerStart" in actions
    result = await replay(trace, source=str(path))
    assert result.passed, result.divergence and result.divergence.describe()
    assert len(result.actions) == len(trace.states) - 1  # every step followed, the run at w included
