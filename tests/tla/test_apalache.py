"""The Apalache backend.

Apalache is not installable here, so three layers are tested separately:
reading counterexamples and console output (always), the subprocess plumbing
against a stand-in ``apalache-mc`` script that follows Apalache's documented
CLI contract (always), and real Apalache runs (skipped unless installed).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ownership.tla import apalache
from ownership.tla.apalache import (
    NOT_INSTALLED,
    ApalacheNotFound,
    apalache_available,
    find_apalache,
    read_counterexample,
)
from ownership.tla.itf import ITFFormatError
from ownership.tla.tlc import INITIAL_PREDICATE
from ownership.tla.values import ModelValue, TLAFunction

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# What Apalache writes for a 3-state counterexample of Clock's HourBelowLast
# (shape per ADR-015 and Apalache's output manager).
COUNTEREXAMPLE = {
    "#meta": {"format": "ITF", "source": "Clock.tla", "description": "Created by Apalache"},
    "vars": ["hour", "owner"],
    "states": [
        {"#meta": {"index": 0}, "hour": {"#bigint": "0"}, "owner": {"#map": [["p1_OF_PROC", {"#bigint": "0"}]]}},
        {"#meta": {"index": 1}, "hour": {"#bigint": "1"}, "owner": {"#map": [["p1_OF_PROC", {"#bigint": "1"}]]}},
        {"#meta": {"index": 2, "action": "ClockTick"}, "hour": {"#bigint": "2"}, "owner": {"#map": [["p1_OF_PROC", {"#bigint": "2"}]]}},
    ],
}


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_read_counterexample_tlc_shape(tmp_path: Path) -> None:
    violation = read_counterexample(_write(tmp_path / "violation1.itf.json", COUNTEREXAMPLE), name="HourBelowLast")
    assert (violation.kind, violation.name, violation.loop) == ("invariant", "HourBelowLast", None)
    assert [(s.index, s.action, s.state["hour"]) for s in violation.trace] == [
        (1, INITIAL_PREDICATE, 0),
        (2, "", 1),
        (3, "ClockTick", 2),
    ]
    assert violation.trace[2].state["owner"] == TLAFunction({ModelValue("p1"): 2})


def test_read_counterexample_loop_is_one_based(tmp_path: Path) -> None:
    violation = read_counterexample(_write(tmp_path / "v.itf.json", {**COUNTEREXAMPLE, "loop": 1}), kind="property")
    assert violation.loop == 2  # ITF state 1 is TLC-style state 2


def test_read_counterexample_malformed_raises(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(COUNTEREXAMPLE))
    bad["states"][1]["hour"] = {"#bigint": 1}
    with pytest.raises(ITFFormatError, match=r"states\[1\]\.hour"):
        read_counterexample(_write(tmp_path / "v.itf.json", bad))


def _result(tmp_path: Path, output: str, exit_code: int, inv: str | None = "HourBelowLast"):
    return apalache._result(
        output, exit_code, False, 1.0, ["apalache-mc"], tmp_path, FIXTURES / "Clock.tla", inv, None
    )


def test_result_no_error(tmp_path: Path) -> None:
    result = _result(tmp_path, "# APALACHE version 0.44.11\n...\nThe outcome is: NoError\nEXITCODE: OK\n", 0)
    assert result.ok and result.violation is None and result.errors == []
    assert result.version == "0.44.11"


def test_result_violation_reads_itf(tmp_path: Path) -> None:
    _write(tmp_path / "violation1.itf.json", COUNTEREXAMPLE)
    output = "State 2: state invariant 0 violated.\nFound 1 error(s)\nThe outcome is: Error\nEXITCODE: ERROR (12)\n"
    result = _result(tmp_path, output, 12)
    assert not result.ok
    assert result.violation is not None
    assert (result.violation.kind, result.violation.name) == ("invariant", "HourBelowLast")
    assert [s.state["hour"] for s in result.violation.trace] == [0, 1, 2]


def test_result_deadlock(tmp_path: Path) -> None:
    _write(tmp_path / "violation1.itf.json", COUNTEREXAMPLE)
    result = _result(tmp_path, "Found a deadlock. Check the counterexample in: ...\nThe outcome is: Deadlock\n", 12)
    assert result.violation is not None and result.violation.kind == "deadlock" and result.violation.name is None


def test_result_violation_without_itf_is_an_error(tmp_path: Path) -> None:
    result = _result(tmp_path, "The outcome is: Error\nEXITCODE: ERROR (12)\n", 12)
    assert not result.ok and result.violation is None
    assert "wrote no ITF counterexample" in result.errors[0].text


def test_result_type_errors_located(tmp_path: Path) -> None:
    output = (
        "[Clock.tla:25:14-25:35]: Mismatch in argument types. Expected: (Int) => Bool\n"
        "[Clock.tla:25:1-25:35]: Error when computing the type of ClockTick\n"
        "Type checker [FAILED]\nEXITCODE: ERROR (120)\n"
    )
    result = _result(tmp_path, output, 120)
    assert [(e.kind, e.file, e.line, e.column) for e in result.errors] == [
        ("type", FIXTURES / "Clock.tla", 25, 14),
        ("type", FIXTURES / "Clock.tla", 25, 1),
    ]
    assert result.errors[0].text.startswith("Mismatch in argument types")


def test_result_parse_error_from_sany(tmp_path: Path) -> None:
    output = (
        "***Parse Error***\nEncountered \"x\" at line 7, column 1 and token \"/\\\\\"\n\n"
        "Could not parse module Clock from file Clock.tla\nEXITCODE: ERROR (255)\n"
    )
    [error] = _result(tmp_path, output, 255).errors
    assert (error.kind, error.file, error.line, error.column) == ("parse", FIXTURES / "Clock.tla", 7, 1)


def test_result_other_failure_keeps_output_tail(tmp_path: Path) -> None:
    [error] = _result(tmp_path, "something went wrong\nEXITCODE: ERROR (75)\n", 75).errors
    assert error.kind == "runtime" and "something went wrong" in error.text


def test_find_apalache_missing_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("APALACHE_HOME", raising=False)
    with pytest.raises(ApalacheNotFound, match="set APALACHE_HOME or put apalache-mc on PATH"):
        find_apalache()
    assert not apalache_available()


# ---------------------------------------------------------------------------
# A stand-in apalache-mc: the documented CLI contract, as a shell script
# ---------------------------------------------------------------------------

STAND_IN = """#!/bin/sh
# Records its arguments, then behaves as apalache-mc does on a violation:
# the counterexample goes to --run-dir, the outcome to stdout, exit code 12.
printf '%s\\n' "$@" > "{args}"
for arg in "$@"; do
  case "$arg" in
    --run-dir=*) run="${{arg#--run-dir=}}" ;;
  esac
done
case "$1" in
  typecheck)
    echo '[Clock.tla:3:1-3:5]: Undefined name Foo'
    echo 'Type checker [FAILED]'
    echo 'EXITCODE: ERROR (120)'
    exit 120 ;;
esac
mkdir -p "$run"
cp "{itf}" "$run/violation1.itf.json"
echo 'State 2: state invariant 0 violated. E@12:00:00.000'
echo 'The outcome is: Error I@12:00:00.001'
echo 'EXITCODE: ERROR (12)'
exit 12
"""


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "apalache"
    (home / "bin").mkdir(parents=True)
    itf = _write(tmp_path / "cex.itf.json", COUNTEREXAMPLE)
    args = tmp_path / "args.txt"
    script = home / "bin" / "apalache-mc"
    script.write_text(STAND_IN.format(args=args, itf=itf))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("APALACHE_HOME", str(home))
    return args


def test_check_through_apalache_home(stand_in: Path) -> None:
    assert find_apalache() == os.path.join(os.environ["APALACHE_HOME"], "bin", "apalache-mc")
    result = apalache.check(
        FIXTURES / "Clock.tla", inv="HourBelowLast", length=4, config=FIXTURES / "Clock_Apalache.cfg", deadlock=False
    )
    args = stand_in.read_text().splitlines()
    assert args[0] == "check"
    assert {"--write-intermediate=false", "--length=4", "--inv=HourBelowLast", "--no-deadlock"} <= set(args)
    assert f"--config={FIXTURES / 'Clock_Apalache.cfg'}" in args
    assert args[-1] == str(FIXTURES / "Clock.tla")
    assert result.exit_code == 12
    assert result.violation is not None and result.violation.name == "HourBelowLast"
    assert [s.state["hour"] for s in result.violation.trace] == [0, 1, 2]
    assert "E@" not in result.output  # log stamps stripped


def test_typecheck_through_apalache_home(stand_in: Path) -> None:
    result = apalache.typecheck(FIXTURES / "Clock.tla")
    assert not result.ok
    assert [(e.kind, e.line, e.text) for e in result.errors] == [("type", 3, "Undefined name Foo")]


def test_check_missing_spec_rejected(stand_in: Path) -> None:
    with pytest.raises(FileNotFoundError, match="spec not found"):
        apalache.check(FIXTURES / "Nope.tla", inv="X")


# ---------------------------------------------------------------------------
# Real Apalache
# ---------------------------------------------------------------------------

needs_apalache = pytest.mark.skipif(not apalache_available(), reason=NOT_INSTALLED)


@pytest.mark.apalache
@needs_apalache
def test_apalache_typecheck_clock() -> None:
    result = apalache.typecheck(FIXTURES / "Clock.tla")
    assert result.ok, result.output


@pytest.mark.apalache
@needs_apalache
def test_apalache_check_clock_holds() -> None:
    result = apalache.check(FIXTURES / "Clock.tla", config=FIXTURES / "Clock_Apalache.cfg", length=5)
    assert result.ok, result.output


@pytest.mark.apalache
@needs_apalache
def test_apalache_check_clock_violation() -> None:
    result = apalache.check(
        FIXTURES / "Clock.tla", config=FIXTURES / "Clock_Apalache.cfg", inv="HourBelowLast", length=5
    )
    assert result.violation is not None, result.output
    assert result.violation.name == "HourBelowLast"
    assert result.violation.trace[-1].state["hour"] == 2
