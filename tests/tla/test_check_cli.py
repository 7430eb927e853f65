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


def test_check_cli_violation_prints_changed_variables(spec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["check", "Counter", "--config", "Broken", "--spec-dir", str(spec_dir)])
    out = capsys.readouterr().out
    assert code == 1
    assert "invariant NeverMax violated after 3 states" in out
    assert out.count("ProcIncrement ") >= 2
    assert "count = (p1 :> 2 @@ p2 :> 0)" in out
    # Step 3 changes count and log only: lastAction appears for steps 1 and 2.
    assert out.count("lastAction =") == 2


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
