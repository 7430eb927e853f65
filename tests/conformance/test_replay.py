"""Model -> implementation: the committed corpus replays on the in-memory cluster."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import trio

from conformance.coverage import coverage, find_indexes
from conformance.replay import replay
from conformance.shrink import _candidates
from ownership.cli import main
from ownership.core.submitter import TaskSubmitter
from ownership.tla.itf import ITFTrace
from ownership.tla.values import ModelValue, TLAFunction

TRACES = Path(__file__).resolve().parents[2] / "traces"

#: Traces of the corpus on which the implementation does not do what the
#: spec does, reported to the owners of spec/ and impl/: name -> (step,
#: action, why). Each must diverge exactly there: when either side changes
#: so that it no longer does, the replay test fails until the entry is
#: removed (or the trace regenerated).
KNOWN_DIVERGENCES: dict[str, tuple[int, str, str]] = {}


def _name(path: Path) -> str:
    return path.relative_to(TRACES).as_posix()


async def _replay_all(corpus):
    return [(path, await replay(trace, source=str(path))) for path, trace in corpus]


@pytest.fixture(scope="module")
def replayed(corpus):
    """The whole corpus replayed once (every spec's traces under traces/)."""
    return trio.run(_replay_all, corpus)


def test_corpus_replays_except_known_divergences(replayed):
    diverged = {_name(p): r.divergence for p, r in replayed if r.divergence is not None}
    unexpected = {k: d.describe() for k, d in diverged.items() if k not in KNOWN_DIVERGENCES}
    assert not unexpected, "traces that diverge:\n" + "\n".join(f"{k}:\n{v}" for k, v in unexpected.items())
    for name, (step, action, _why) in KNOWN_DIVERGENCES.items():
        assert name in diverged, f"{name} no longer diverges: remove it from KNOWN_DIVERGENCES"
        assert (diverged[name].step, diverged[name].action) == (step, action), diverged[name].describe()
    passed = [r for _p, r in replayed if r.passed]
    assert len(passed) == len(replayed) - len(KNOWN_DIVERGENCES)
    assert all(r.compared >= 2 for r in passed)


def test_corpus_exercises_every_action_of_each_model(replayed):
    cov = coverage([r for _p, r in replayed], find_indexes([TRACES]))
    assert cov, "no coverage computed"
    for name, entry in cov.items():
        if "total" not in entry["edges"]:
            continue  # targeted traces of a config whose graph is not committed
        assert entry["actions"]["missed"] == [], f"{name}: actions never exercised: {entry['actions']['missed']}"
        assert 0 < entry["edges"]["exercised"] <= entry["edges"]["total"]


def test_edge_covers_are_replayed_in_full(replayed):
    """Every committed edge cover (every spec's Small, at least) is followed
    by the implementation edge for edge: 100 % of its model's edges."""
    indexes = {k: v for k, v in find_indexes([TRACES]).items() if v.get("cover") == "edges" and v.get("max_paths") is None}
    assert any(config == "Small" for _spec, config in indexes), "no committed edge cover of a Small config"
    cov = coverage([r for _p, r in replayed], indexes)
    for (spec, config), index in sorted(indexes.items()):
        edges = cov[f"{spec}/{config}"]["edges"]
        assert edges["exercised"] == index["edges"], f"{spec}/{config}: {edges['exercised']} of {index['edges']} edges"


async def test_planted_bug_lease_location_not_recorded_is_caught(corpus, monkeypatch):
    """The owner pushes the task to the leased worker but keeps the node as
    the task's location (the spec mutant grant-push-without-record)."""
    original = TaskSubmitter._dispatch

    def dispatch_forgetting_location(self, lease, task):
        before = task.location
        effects = original(self, lease, task)
        task.location = before
        return effects

    monkeypatch.setattr(TaskSubmitter, "_dispatch", dispatch_forgetting_location)
    caught = []
    for path, trace in corpus:
        if not _name(path).startswith("Scheduling/") or _name(path) in KNOWN_DIVERGENCES:
            continue
        result = await replay(trace, source=str(path))
        if result.divergence is not None:
            caught.append(result.divergence)
            if "location" in result.divergence.diffs:
                break
    assert caught, "no trace noticed that the lease location was not recorded"
    assert any("location" in d.diffs for d in caught), [d.describe() for d in caught[:3]]


def _first_passing(corpus, prefix: str):
    for path, trace in corpus:
        if _name(path).startswith(prefix) and _name(path) not in KNOWN_DIVERGENCES and len(trace.states) > 6:
            return path, trace
    raise AssertionError(f"no trace {prefix}* in the corpus")


async def test_replay_reports_the_first_divergent_state_with_a_diff(corpus):
    path, trace = _first_passing(corpus, "Scheduling/Small_edges")
    last = len(trace.states) - 1
    states = list(trace.states)
    retries = dict(states[last]["retries"])
    t = sorted(retries)[0]
    retries[t] = retries[t] + 5
    states[last] = {**states[last], "retries": TLAFunction(retries)}
    tampered = attrs.evolve(trace, states=tuple(states))
    result = await replay(tampered, source=str(path))
    d = result.divergence
    assert d is not None and d.kind == "state" and d.step == last
    assert set(d.diffs) == {"retries"}
    expected, actual = d.diffs["retries"]
    assert expected[t] == actual[t] + 5
    assert f"[{t}] expected {expected[t]}, actual {actual[t]}" in d.describe()


async def test_replay_reports_a_message_that_is_not_in_flight(corpus):
    path, trace = _first_passing(corpus, "Scheduling/Small_edges")
    i = next(i for i, m in enumerate(trace.state_meta) if m["action"] == "WorkerExecute")
    meta = [dict(m) for m in trace.state_meta]
    params = json.loads(json.dumps(meta[i]["params"]))
    params["m"]["worker"] = "w2_OF_MODEL" if params["m"]["worker"] != "w2_OF_MODEL" else "w1_OF_MODEL"
    meta[i]["params"] = params
    result = await replay(attrs.evolve(trace, state_meta=tuple(meta)), source=str(path))
    d = result.divergence
    assert d is not None and d.kind == "stimulus" and d.step == i and d.action == "WorkerExecute"
    assert "no message in flight is" in d.message


def _toy(states: list[int], actions: list[str]) -> ITFTrace:
    return ITFTrace(
        ("x",),
        tuple({"x": s} for s in states),
        {"spec": "Toy", "constants": {}},
        (),
        None,
        tuple({"action": a, "params": {}} for a in actions),
    )


def test_shrink_takes_a_shorter_way_through_the_corpus():
    long = _toy([0, 1, 2, 3, 4, 5], ["Init", "A", "A", "A", "B", "C"])
    short = _toy([0, 3], ["Init", "Jump"])
    candidates = _candidates(long, 5, frozenset({"C"}), [short])
    # cut after step 5, and: 0 -Jump-> 3 -B-> 4 -C-> 5 (step 5 is eager, so the stimulus is at 3)
    assert [[s["x"] for s in c.states] for c in candidates] == [[0, 3, 4, 5], [0, 1, 2, 3, 4, 5]]
    assert [m["action"] for m in candidates[0].state_meta] == ["Init", "Jump", "B", "C"]


def test_conformance_run_prints_the_result_and_writes_coverage(corpus, tmp_path, capsys):
    path, _trace = _first_passing(corpus, "Scheduling/Reuse_actions")
    out = tmp_path / "coverage.json"
    status = main(["conformance", "run", str(path), "--coverage", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "Scheduling/Reuse: 1 of 1 traces passed" in text
    assert "coverage Scheduling/Reuse: edges" in text
    data = json.loads(out.read_text())
    assert data["Scheduling/Reuse"]["passed"] == 1
    assert data["Scheduling/Reuse"]["edges"]["total"] > data["Scheduling/Reuse"]["edges"]["exercised"] > 0


def test_model_values_compare_across_checkers():
    # the projection builds ModelValue("o1"); traces read back ModelValue("o1", type="MODEL")
    assert ModelValue("o1") == ModelValue("o1", type="MODEL")


def test_conformance_run_writes_coverage_to_the_cache_not_the_traces(corpus, tmp_path, monkeypatch, capsys):
    path, _trace = _first_passing(corpus, "Scheduling/Reuse_actions")
    traces = tmp_path / "traces"
    traces.mkdir()
    copy = traces / path.name
    copy.write_text(path.read_text())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    status = main(["conformance", "run", str(traces)])
    text = capsys.readouterr().out
    assert status == 0, text
    assert sorted(p.name for p in traces.iterdir()) == [copy.name]  # nothing written next to the traces
    cache = tmp_path / "cache" / "ownership" / "coverage.json"
    assert f"coverage written to {cache}" in text
    assert json.loads(cache.read_text())["Scheduling/Reuse"]["passed"] == 1


@pytest.mark.parametrize("terminal", [True, False])
def test_conformance_run_shows_progress_on_a_terminal_only(corpus, tmp_path, terminal):
    import argparse
    import io

    from rich.console import Console

    from conformance.cli import _run_replay

    path, _trace = _first_passing(corpus, "Scheduling/Reuse_actions")
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=terminal, width=100, soft_wrap=True)
    args = argparse.Namespace(paths=[str(path)], timeout=60.0, verbose=False, no_shrink=True, coverage=tmp_path / "c.json")
    assert _run_replay(args, console=console) == 0
    out = buf.getvalue()
    assert ("replaying Scheduling/Reuse_actions_" in out) is terminal  # the bar names the trace it replays
    assert "Scheduling/Reuse: 1 of 1 traces passed" in out
