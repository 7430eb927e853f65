"""``ownership check`` on the fixture specs, described by manifests."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from ownership.tla.cli import CheckUsageError, add_subparsers, resolve_targets

FIXTURES = Path(__file__).resolve().parent / "fixtures"

COUNTER = {
    "module": "Counter.tla",
    "model": "MCCounter.tla",
    "section": "test",
    "invariants": ["TypeOK", "LogBounded"],
    "configs": {
        "Small": {"file": "MCCounter_Ok.cfg", "ci": True, "distinct_states": 25, "seconds": 1},
        "Broken": {"file": "MCCounter_Inv.cfg", "ci": False},
    },
}
CLOCK = {
    "module": "Clock.tla",
    "model": "Clock.tla",
    "section": "test",
    "invariants": ["TypeOK"],
    # Bounded ticking stops: passes only if the command honours "deadlock".
    "deadlock": False,
    # Deliberately wrong count: the command must say the manifest is stale.
    "configs": {"Small": {"file": "Clock_Deadlock.cfg", "ci": True, "distinct_states": 4, "seconds": 1}},
}


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    target = tmp_path / "spec"
    shutil.copytree(FIXTURES, target)
    (target / "Counter.json").write_text(json.dumps(COUNTER))
    (target / "Clock.json").write_text(json.dumps(CLOCK))
    return target


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ownership")
    add_subparsers(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_check_cli_violation_prints_what_changed_per_key(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["check", "Counter", "--config", "Broken", "--spec-dir", str(spec_dir)])
    out = capsys.readouterr().out
    assert code == 1
    assert "invariant NeverMax violated after 3 states" in out
    # The first state in full; then each step's action once, with its
    # parameters (from lastAction), and only the entries that changed.
    assert "count = (p1 :> 0 @@ p2 :> 0)" in out
    assert out.count("ProcIncrement(p=p1)") == 2
    assert "count[p1]: 0 -> 1" in out and "count[p1]: 1 -> 2" in out
    assert "log: + [who |-> p1, n |-> 2] (appended)" in out
    assert "count = (p1 :> 2" not in out  # never the whole function again
    assert "lastAction" not in out  # it is the action column


def test_check_cli_all_runs_every_manifest(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["check", "--all", "--spec-dir", str(spec_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert "✓ Counter Small: 25 distinct states, 51 generated, depth 5" in out
    assert "✓ Clock Small: 3 distinct states" in out
    assert "manifest records 4 distinct states" in out
    assert "summary" in out


def test_check_cli_parse_error_exits_2(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["check", str(spec_dir / "ParseError.tla")])
    out = capsys.readouterr().out
    assert code == 2
    assert "parse error" in out and "ParseError.tla:7:1" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "Counter", "--config", "Huge"], "Counter.json has no config 'Huge' (it has: Small, Broken)"),
        (["check", "Nope.tla"], "spec not found: Nope.tla"),
        (["check", "Nowhere"], "'Nowhere' is not a .tla file, a manifest, or a spec described in"),
        (["check", "Counter", "--all"], "either a spec or --all"),
        (["check"], "name a spec, model or manifest"),
        (["check", "--all", "--config", "Large"], "no manifest in"),
    ],
)
def test_check_cli_usage_errors_exit_2(
    spec_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.chdir(spec_dir)
    code = run([*argv, "--spec-dir", str(spec_dir)])
    out = capsys.readouterr().out
    assert code == 2
    assert message in " ".join(out.split())


def test_check_cli_depth_needs_simulate(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(["check", "Counter", "--depth", "5", "--spec-dir", str(spec_dir)])
    assert info.value.code == 2
    assert "--simulate only" in capsys.readouterr().err


def test_resolve_targets_config_names_map_to_files(spec_dir: Path) -> None:
    [target] = resolve_targets("MCCounter", "Small", all_specs=False, spec_dir=spec_dir)
    assert (target.spec, target.config, target.expected_distinct_states) == (
        spec_dir / "MCCounter.tla",
        spec_dir / "MCCounter_Ok.cfg",
        25,
    )
    # A model file found next to its manifest uses the manifest's configs.
    [target] = resolve_targets(str(spec_dir / "MCCounter.tla"), "Broken", all_specs=False, spec_dir=spec_dir)
    assert target.config == spec_dir / "MCCounter_Inv.cfg"
    # Without --config: the manifest's CI configs.
    assert [t.label for t in resolve_targets("Counter", None, all_specs=False, spec_dir=spec_dir)] == ["Counter Small"]
    # A file given as --config wins.
    [target] = resolve_targets("Counter", str(spec_dir / "MCCounter_Inv.cfg"), all_specs=False, spec_dir=spec_dir)
    assert target.config == spec_dir / "MCCounter_Inv.cfg"


def test_resolve_targets_malformed_manifest(spec_dir: Path) -> None:
    (spec_dir / "Bad.json").write_text("{not json")
    with pytest.raises(CheckUsageError, match=r"Bad.json is not valid JSON"):
        resolve_targets(None, None, all_specs=True, spec_dir=spec_dir)


def test_resolve_targets_spec_without_config(spec_dir: Path) -> None:
    with pytest.raises(CheckUsageError, match="Clock.json has no config 'Nope'"):
        resolve_targets(str(spec_dir / "Clock.tla"), "Nope", all_specs=False, spec_dir=spec_dir)
    (spec_dir / "Flip.tla").rename(spec_dir / "Lonely.tla")
    with pytest.raises(CheckUsageError, match="Lonely.cfg does not exist; pass --config"):
        resolve_targets(str(spec_dir / "Lonely.tla"), None, all_specs=False, spec_dir=spec_dir)
    with pytest.raises(CheckUsageError, match="config not found: Nope"):
        resolve_targets(str(spec_dir / "Lonely.tla"), "Nope", all_specs=False, spec_dir=spec_dir)


def test_check_registered_on_ownership_command(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ownership.cli import main

    assert main(["check", "Nope.tla", "--spec-dir", str(spec_dir)]) == 2
    assert "spec not found" in capsys.readouterr().out


def test_value_changes_name_each_changed_entry() -> None:
    from ownership.tla.cli import value_changes
    from ownership.tla.values import ModelValue, TLAFunction, TLARecord

    b1, b2, o = ModelValue("b1"), ModelValue("b2"), ModelValue("o")
    local = TLAFunction({b1: 0, b2: 0, o: 1})
    assert value_changes("local", local, TLAFunction({b1: 1, b2: 0, o: 1})) == ["local[b1]: 0 -> 1"]
    nested_old = TLAFunction({b1: TLAFunction({o: 0}), b2: TLAFunction({o: 0})})
    nested_new = TLAFunction({b1: TLAFunction({o: 1}), b2: TLAFunction({o: 0})})
    assert value_changes("running", nested_old, nested_new) == ["running[b1][o]: 0 -> 1"]
    msg = TLARecord({"type": "PushTask", "worker": b1})
    assert value_changes("msgs", (), TLAFunction({msg: 1})) == ['msgs[[type |-> "PushTask", worker |-> b1]]: (none) -> 1']
    assert value_changes("msgs", TLAFunction({msg: 1}), ()) == ['msgs[[type |-> "PushTask", worker |-> b1]]: 1 -> (none)']
    assert value_changes("rec", TLARecord({"a": 1, "b": 2}), TLARecord({"a": 1, "b": 3})) == ["rec.b: 2 -> 3"]
    assert value_changes("up", frozenset({b1, b2}), frozenset({b1, o})) == ["up: + o", "up: - b2"]
    assert value_changes("log", (1, 2), (1, 2, 3)) == ["log: + 3 (appended)"]
    assert value_changes("log", (1, 2), (1, 5)) == ["log[2]: 2 -> 5"]
    assert value_changes("x", 1, 1) == []
    assert value_changes("flag", False, True) == ["flag: FALSE -> TRUE"]
