"""Model -> traces: the generator, on a tiny fixture spec and on the committed corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conformance.generate import edge_id, generate, targeted_file_name
from conformance.replay import load_traces
from conformance.specs import SpecError, resolve_spec, spec_hash, strip_cfg
from ownership.cli import main
from ownership.tla.itf import load_itf

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
REPO = HERE.parents[1]
TRACES = REPO / "traces"
SPEC_DIR = REPO / "spec"


@pytest.fixture(scope="module")
def counter_traces(tmp_path_factory):
    """The fixture spec's traces, generated twice into two folders."""
    spec = resolve_spec("Counter", FIXTURES)
    outs = []
    for name, tests in (("first", True), ("second", False)):
        out = tmp_path_factory.mktemp(name)
        result = generate(spec, "Small", out, cover="edges", tests=tests)
        outs.append((out, result))
    return outs


def test_strip_cfg_drops_view_symmetry_invariants_and_properties():
    text = (FIXTURES / "MCCounter_Small.cfg").read_text() + "SYMMETRY Sym\nPROPERTIES\n    Live\n    Safe\n"
    stripped = strip_cfg(text)
    for keyword in ("VIEW", "SYMMETRY", "INVARIANT", "PROPERTIES", "Live", "TypeOK", "\\*"):
        assert keyword not in stripped
    assert "SPECIFICATION Spec" in stripped and "Procs <- MCProcs" in stripped and "Max = 2" in stripped


def test_generated_traces_cover_every_edge_of_the_graph(counter_traces):
    out, result = counter_traces[0]
    g = result.graph
    # counts 0..2 for two processes, and the lastAction each state was reached by
    assert g["edges"] > 9 and g["actions"] == {"Inc": g["actions"]["Inc"], "Reset": g["actions"]["Reset"]}
    traces = load_traces([out])
    covering = [t for p, t in traces if p.name.startswith("Small_edges_")]
    assert len(covering) == g["traces"]
    edges = {edge_id(t.states[i - 1], t.states[i]) for t in covering for i in range(1, len(t.states))}
    assert len(edges) == g["edges"]


def test_generated_traces_record_spec_config_checker_constants_and_actions(counter_traces):
    out, _result = counter_traces[0]
    trace = load_itf(next(out.glob("Small_edges_*.itf.json")))
    meta = trace.meta
    assert meta["spec"] == "Counter" and meta["config"] == "Small" and meta["source"] == "MCCounter.tla"
    assert meta["spec_hash"] == spec_hash(resolve_spec("Counter", FIXTURES))
    assert meta["checker"].startswith("TLC2 Version 2.15")
    assert meta["constants"]["Max"] == {"#bigint": "2"}
    for state, smeta in zip(trace.states, trace.state_meta):
        # each state's lastAction is its own (no VIEW), and #meta repeats it
        assert state["lastAction"]["name"] == smeta["action"]
        assert {k: str(v) for k, v in state["lastAction"]["params"].items()} == {
            k: v.removesuffix("_OF_MODEL") for k, v in smeta["params"].items()
        }


def test_generation_is_deterministic(counter_traces):
    (a, _), (b, _) = counter_traces
    names = sorted(p.name for p in a.iterdir() if not p.name.startswith("test_"))
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_targeted_trace_ends_where_the_test_predicate_holds(counter_traces):
    out, result = counter_traces[0]
    assert set(result.tests) == {"TestBothAtMax"}
    assert "TestAboveMax" in result.missing_tests
    trace = load_itf(out / targeted_file_name("TestBothAtMax"))
    assert trace.meta["test"] == "TestBothAtMax"
    assert all(v == 2 for v in trace.states[-1]["count"].values())
    assert all(any(v != 2 for v in s["count"].values()) for s in trace.states[:-1])
    assert len(trace.states) == 5  # the shortest way: four increments


def test_generate_cli_reports_an_unknown_spec(capsys, tmp_path):
    assert main(["traces", "generate", "NoSuchSpec", "--spec-dir", str(FIXTURES), "--out", str(tmp_path)]) == 2
    assert "no model for spec 'NoSuchSpec'" in capsys.readouterr().out


def _traced_small_specs() -> list[str]:
    """Specs whose Small traces are committed: a manifest with a Small
    config (spec/*.json) and a mapping that replays their traces."""
    from conformance.mappings import load_mapping
    from conformance.specs import known_specs

    out = []
    for name in known_specs(SPEC_DIR):
        cls = load_mapping(name)
        if cls is not None and not getattr(cls, "log_only", None) and "Small" in resolve_spec(name, SPEC_DIR).configs:
            out.append(name)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("spec_name", _traced_small_specs())
def test_committed_small_traces_have_not_drifted(spec_name, tmp_path):
    """Regenerating a spec's Small covering traces gives the committed bytes
    (one TLC run over the Small graph; the targeted traces, one TLC run
    each, are checked by their spec hash in the test below)."""
    spec = resolve_spec(spec_name, SPEC_DIR)
    folder = TRACES / spec_name
    indexes = sorted(folder.glob("Small_*.index.json"))
    assert indexes, f"no committed Small traces of {spec_name}: run `ownership traces generate {spec_name} --config Small`"
    for index_file in indexes:
        index = json.loads(index_file.read_text())
        out = tmp_path / index["cover"]
        generate(spec, "Small", out, cover=index["cover"], max_paths=index["max_paths"], tests=False)
        prefix = f"Small_{index['cover']}"
        committed = sorted(folder.glob(f"{prefix}[_.]*"))
        fresh = sorted(out.glob(f"{prefix}[_.]*"))
        regenerate = f"run `ownership traces generate {spec_name} --config Small --cover {index['cover']}`"
        assert [p.name for p in fresh] == [p.name for p in committed], f"{index_file}: {regenerate}"
        for new, old in zip(fresh, committed):
            assert new.read_bytes() == old.read_bytes(), f"{old} drifted: {regenerate}"


def test_committed_traces_come_from_the_current_specs(corpus):
    """Every committed trace (covering or targeted, every config) names the
    hash of the spec modules it was generated from: a spec change without
    regenerated traces fails here, in a second."""
    hashes = {}
    for path, trace in corpus:
        name = trace.meta["spec"]
        if name not in hashes:
            hashes[name] = spec_hash(resolve_spec(name, SPEC_DIR))
        assert trace.meta["spec_hash"] == hashes[name], f"{path} was generated from another version of the spec: regenerate it"
    for index_file in sorted(TRACES.glob("*/*.index.json")):
        index = json.loads(index_file.read_text())
        assert index["spec_hash"] == hashes.get(index["spec"], spec_hash(resolve_spec(index["spec"], SPEC_DIR))), index_file


def test_greedy_walks_walk_on_through_covered_edges():
    """A diamond, then a fork. A shortest path to each uncovered edge needs
    three paths (the second branch of the diamond, then again to the
    fork); walking on from where the last uncovered edge ended, through
    covered edges, needs the two the branches force."""
    from conformance.generate import greedy_walks
    from ownership.tla.graph import Edge, StateGraph

    names = dict(zip(range(1, 8), "abcdefg"))
    pairs = [(1, 2), (1, 3), (2, 4), (3, 4), (4, 5), (5, 6), (5, 7)]
    g = StateGraph({n: {"x": v} for n, v in names.items()}, dict(names), tuple(Edge(a, b, "X") for a, b in pairs), (1,))
    walks = greedy_walks(g, lambda e: e)
    assert [[(e.source, e.target) for e in w] for w in walks] == [
        [(1, 2), (2, 4), (4, 5), (5, 6)],
        [(1, 3), (3, 4), (4, 5), (5, 7)],
    ]
    assert greedy_walks(g, lambda e: e, max_paths=1) == walks[:1]


def test_spec_hash_changes_with_the_spec(tmp_path):
    for f in FIXTURES.iterdir():
        shutil.copy2(f, tmp_path / f.name)
    before = spec_hash(resolve_spec("Counter", tmp_path))
    (tmp_path / "Counter.tla").write_text((tmp_path / "Counter.tla").read_text().replace("count[p] < Max", "count[p] < Max + 0"))
    assert spec_hash(resolve_spec("Counter", tmp_path)) != before


def test_config_cover_comes_from_the_manifest_else_edges(tmp_path):
    from conformance.generate import config_cover

    assert config_cover(resolve_spec("Scheduling", SPEC_DIR), "Small") == "edges"
    spec_dir = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, spec_dir)
    manifest = json.loads((spec_dir / "OwnerRecovery.json").read_text())
    manifest["configs"]["Small"]["conformance"]["cover"] = "actions"
    (spec_dir / "OwnerRecovery.json").write_text(json.dumps(manifest))
    assert config_cover(resolve_spec("OwnerRecovery", spec_dir), "Small") == "actions"
    manifest["configs"]["Small"]["conformance"]["cover"] = "paths"
    (spec_dir / "OwnerRecovery.json").write_text(json.dumps(manifest))
    with pytest.raises(SpecError, match="must be 'edges' or 'actions'"):
        config_cover(resolve_spec("OwnerRecovery", spec_dir), "Small")



def test_config_constraints_name_operators_of_the_model(tmp_path):
    from conformance.generate import config_constraints

    assert config_constraints(resolve_spec("OwnerRecovery", SPEC_DIR), "Small") == ["SmallCrashPoints"]
    assert config_constraints(resolve_spec("OwnerRecovery", SPEC_DIR), "Suspicion") == []
    spec_dir = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, spec_dir)
    manifest = json.loads((spec_dir / "OwnerRecovery.json").read_text())
    manifest["configs"]["Small"]["conformance"]["action_constraint"] = ["SmallCrashPoints", "x' = 1"]
    (spec_dir / "OwnerRecovery.json").write_text(json.dumps(manifest))
    with pytest.raises(SpecError, match="must name operators"):
        config_constraints(resolve_spec("OwnerRecovery", spec_dir), "Small")
