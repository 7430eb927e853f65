"""The TLC wrapper, against real TLC 2.15 runs on the fixture specs.

Each run takes a second or two; every result kind the wrapper reports has
one run here, and the stream reader has unit tests on recorded output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ownership.tla.tlc import (
    INITIAL_PREDICATE,
    JavaNotFound,
    Progress,
    check,
    config_properties,
    parse_tool_output,
)
from ownership.tla.tlc import _config_with_property, _duration, _sany_errors
from ownership.tla.values import ModelValue, TLAFunction, TLARecord


def no_states_dir_left(fixtures: Path) -> bool:
    return not (fixtures / "states").exists() and not any(fixtures.glob("*_TTrace_*"))


# ---------------------------------------------------------------------------
# Real runs
# ---------------------------------------------------------------------------


def test_check_success_reports_counts(fixtures: Path) -> None:
    progress: list[Progress] = []
    result = check(fixtures / "MCCounter.tla", fixtures / "MCCounter_Ok.cfg", on_progress=progress.append)
    assert result.ok, result.output
    assert result.errors == []
    assert result.violation is None
    assert (result.distinct_states, result.states_generated, result.depth) == (25, 51, 5)
    assert result.duration is not None and 0 < result.duration < 60
    assert result.exit_code == 0
    assert result.version is not None and "2.15" in result.version
    assert progress and progress[-1].distinct_states == 25
    assert no_states_dir_left(fixtures)


def test_check_invariant_violation_gives_trace(fixtures: Path) -> None:
    result = check(fixtures / "MCCounter.tla", fixtures / "MCCounter_Inv.cfg")
    assert not result.ok
    violation = result.violation
    assert violation is not None
    assert (violation.kind, violation.name) == ("invariant", "NeverMax")
    assert [s.index for s in violation.trace] == [1, 2, 3]
    assert [s.action for s in violation.trace] == [INITIAL_PREDICATE, "ProcIncrement", "ProcIncrement"]
    p1, p2 = ModelValue("p1"), ModelValue("p2")
    last = violation.trace[-1].state
    assert last["count"] == TLAFunction({p1: 2, p2: 0})
    assert last["lastAction"] == TLARecord(name="ProcIncrement", p=p1)
    assert last["log"] == (TLARecord(who=p1, n=1), TLARecord(who=p1, n=2))
    location = violation.trace[1].location
    assert location is not None and (location.module, location.line) == ("Counter", 21)
    assert no_states_dir_left(fixtures)


def test_check_invariant_violated_by_initial_state(fixtures: Path) -> None:
    result = check(fixtures / "Clock.tla", fixtures / "Clock_InitInv.cfg")
    assert result.violation is not None
    assert (result.violation.kind, result.violation.name) == ("invariant", "HourPositive")
    assert [(s.index, s.action, s.state) for s in result.violation.trace] == [(1, INITIAL_PREDICATE, {"hour": 0})]


def test_check_temporal_violation_lasso(fixtures: Path) -> None:
    result = check(fixtures / "Clock.tla", fixtures / "Clock_Lasso.cfg")
    violation = result.violation
    assert violation is not None
    assert (violation.kind, violation.name) == ("property", "EventuallyStuckAtZero")
    assert [s.state["hour"] for s in violation.trace] == [0, 1, 2]
    assert (violation.loop, violation.loop_action, violation.stuttering) == (1, "ClockTick", False)


def test_check_temporal_violation_stuttering(fixtures: Path) -> None:
    result = check(fixtures / "Clock.tla", fixtures / "Clock_Stutter.cfg")
    violation = result.violation
    assert violation is not None
    assert (violation.kind, violation.name) == ("property", "EventuallyLast")
    assert [s.state["hour"] for s in violation.trace] == [0, 1]
    assert violation.stuttering and violation.loop is None


def test_check_temporal_violation_named_among_several(fixtures: Path) -> None:
    # TLC 2.15 only says "Temporal properties were violated": the wrapper
    # re-checks each property alone to name the one that fails.
    assert config_properties((fixtures / "Clock_TwoProps.cfg").read_text()) == ["EventuallyLast", "EventuallyStuckAtZero"]
    result = check(fixtures / "Clock.tla", fixtures / "Clock_TwoProps.cfg")
    assert result.violation is not None
    assert (result.violation.kind, result.violation.name) == ("property", "EventuallyStuckAtZero")


def test_check_action_property_violation(fixtures: Path) -> None:
    result = check(fixtures / "Clock.tla", fixtures / "Clock_Action.cfg")
    violation = result.violation
    assert violation is not None
    assert (violation.kind, violation.name) == ("property", "Monotonic")
    assert [s.state["hour"] for s in violation.trace] == [0, 1, 2, 0]


def test_check_deadlock_reported(fixtures: Path) -> None:
    result = check(fixtures / "Clock.tla", fixtures / "Clock_Deadlock.cfg")
    violation = result.violation
    assert violation is not None
    assert violation.kind == "deadlock"
    assert [s.action for s in violation.trace] == [INITIAL_PREDICATE, "ClockTickBounded", "ClockTickBounded"]
    assert violation.trace[-1].state == {"hour": 2}


def test_check_deadlock_off_succeeds_and_dumps_graph(fixtures: Path, tmp_path: Path) -> None:
    result = check(
        fixtures / "Clock.tla", fixtures / "Clock_Deadlock.cfg", deadlock=False, dump_dot=tmp_path / "clock.dot"
    )
    assert "-deadlock" in result.command
    assert result.ok and result.distinct_states == 3
    text = (tmp_path / "clock.dot").read_text()
    assert text.startswith("strict digraph DiskGraph")
    assert text.count('[label="ClockTickBounded"') == 2


def test_check_parse_error_located(fixtures: Path) -> None:
    result = check(fixtures / "ParseError.tla", fixtures / "ParseError.cfg")
    assert not result.ok and result.violation is None
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error.kind == "parse"
    assert error.file == fixtures / "ParseError.tla"
    assert (error.line, error.column) == (7, 1)
    assert "Encountered" in error.text


def test_check_semantic_error_located(fixtures: Path) -> None:
    result = check(fixtures / "SemanticError.tla", fixtures / "SemanticError.cfg")
    assert not result.ok
    assert [(e.kind, e.file, e.line, e.column) for e in result.errors] == [
        ("semantic", fixtures / "SemanticError.tla", 7, 14)
    ]
    assert "Unknown operator: `Undefined'" in result.errors[0].text


def test_check_evaluation_error_located_with_trace(fixtures: Path) -> None:
    result = check(fixtures / "Runtime.tla", fixtures / "Runtime.cfg")
    assert not result.ok and result.violation is None
    [error] = result.errors
    assert error.kind == "runtime"
    assert (error.file, error.line, error.column) == (fixtures / "Runtime.tla", 9, 14)
    assert "Cannot cast" in error.text
    assert [s.state for s in error.trace] == [{"x": 0}]


def test_check_config_names_missing_invariant(fixtures: Path) -> None:
    result = check(fixtures / "Clock.tla", fixtures / "Clock_BadInv.cfg")
    assert not result.ok
    [error] = result.errors
    assert (error.kind, error.file) == ("config", fixtures / "Clock_BadInv.cfg")
    assert "NoSuchInvariant" in error.text


def test_check_false_assumption_reported(fixtures: Path) -> None:
    result = check(fixtures / "Clock.tla", fixtures / "Clock_Assume.cfg")
    assert not result.ok
    [error] = result.errors
    assert (error.kind, error.file, error.line) == ("assumption", fixtures / "Clock.tla", 14)


def test_check_simulation_bounded_by_traces(fixtures: Path) -> None:
    result = check(
        fixtures / "MCCounter.tla", fixtures / "MCCounter_Inv.cfg", simulate=True, traces=50, depth=6, seed=7
    )
    assert result.seed == 7
    assert ["-simulate", "num=50"] == result.command[result.command.index("-simulate") :][:2]
    # Every random behaviour reaches Max quickly, so simulation finds it too.
    assert result.violation is not None and result.violation.name == "NeverMax"


def test_check_simulation_names_the_failing_property_by_simulating_again(fixtures: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TLC 2.15 does not say which of several properties a behaviour broke:
    each is checked alone, the way the model was (a simulation with its
    seed), not exhaustively, which on a model too big to finish never ends."""
    from ownership.tla import tlc

    rechecks: list[dict] = []
    original = tlc.check

    def recording(*args, **kwargs):
        if kwargs.get("identify_property") is False:
            rechecks.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(tlc, "check", recording)
    result = tlc.check(fixtures / "Clock.tla", fixtures / "Clock_TwoProps.cfg", simulate=True, traces=20, depth=12, seed=3)
    assert result.violation is not None
    assert (result.violation.kind, result.violation.name) == ("property", "EventuallyStuckAtZero")
    assert rechecks and all(r["simulate"] and r["seed"] == 3 and r["depth"] == 12 and r["traces"] == 20 for r in rechecks)


def test_check_simulation_stops_at_timeout(fixtures: Path) -> None:
    result = check(fixtures / "MCCounter.tla", fixtures / "MCCounter_Ok.cfg", simulate=True, timeout=1.5)
    assert result.timed_out
    assert result.ok  # nothing found in the time given
    assert result.errors == []


# ---------------------------------------------------------------------------
# Bad arguments fail before TLC starts
# ---------------------------------------------------------------------------


def test_check_java_missing_raises_clear_error(fixtures: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(JavaNotFound, match="make test.*default-jre-headless"):
        check(fixtures / "Clock.tla", fixtures / "Clock_Live.cfg")


def test_check_missing_spec_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="spec not found"):
        check(tmp_path / "Nope.tla", tmp_path / "Nope.cfg")


def test_check_missing_config_rejected(fixtures: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model config not found"):
        check(fixtures / "Clock.tla", fixtures / "Nope.cfg")


def test_check_not_a_module_rejected(fixtures: Path) -> None:
    with pytest.raises(ValueError, match="not a TLA\\+ module"):
        check(fixtures / "Clock_Live.cfg")


def test_check_depth_without_simulation_rejected(fixtures: Path) -> None:
    with pytest.raises(ValueError, match="depth applies to simulation"):
        check(fixtures / "Clock.tla", fixtures / "Clock_Live.cfg", depth=3)


def test_check_unbounded_simulation_rejected(fixtures: Path) -> None:
    with pytest.raises(ValueError, match="simulates forever"):
        check(fixtures / "Clock.tla", fixtures / "Clock_Live.cfg", simulate=True)


# ---------------------------------------------------------------------------
# The stream reader on recorded output
# ---------------------------------------------------------------------------

NESTED = """\
@!@!@STARTMSG 1000:1 @!@!@
TLC threw an unexpected exception.
The exception was a tlc2.tool.ConfigFileException
: @!@!@STARTMSG 5001:0 @!@!@
TLC encountered the following error when trying to read the configuration file Nope.cfg:
File not found.
@!@!@ENDMSG 5001 @!@!@
@!@!@ENDMSG 1000 @!@!@
Some untagged Print output
@!@!@STARTMSG 2186:0 @!@!@
Finished in 266ms at (2026-11-25 22:38:57)
@!@!@ENDMSG 2186 @!@!@
"""


def test_tool_stream_nested_messages() -> None:
    stream = parse_tool_output(NESTED)
    assert [m.code for m in stream.messages] == [1000, 2186]
    outer = stream.messages[0]
    assert [c.code for c in outer.children] == [5001]
    assert "File not found." in outer.children[0].text
    assert "File not found." not in outer.text
    assert stream.untagged_text() == "Some untagged Print output\n"


def test_tool_stream_truncated_output_closes_messages() -> None:
    stream = parse_tool_output("@!@!@STARTMSG 2217:4 @!@!@\n1: <Initial predicate>\nx = 1\n")
    assert [(m.code, m.text) for m in stream.messages] == [(2217, "1: <Initial predicate>\nx = 1")]


def test_tool_stream_stray_end_marker_kept_as_text() -> None:
    stream = parse_tool_output("@!@!@ENDMSG 2217 @!@!@\n")
    assert stream.messages == []
    assert "ENDMSG 2217" in stream.untagged_text()


def test_tool_stream_unclosed_inner_message_closed_by_outer_end() -> None:
    stream = parse_tool_output("@!@!@STARTMSG 1000:1 @!@!@\na\n@!@!@STARTMSG 2154:0 @!@!@\nb\n@!@!@ENDMSG 1000 @!@!@\n")
    [outer] = stream.messages
    assert outer.code == 1000 and [c.text for c in outer.children] == ["b"]


SANY_REPORT = """\
Semantic processing of module Sem2Base
Semantic errors:

*** Errors: 1

line 3, col 15 to line 3, col 17 of module Sem2Base

Unknown operator: `Baz'.



Semantic processing of module Sem2
*** Warnings: 1

line 9, col 1 to line 9, col 4 of module Sem2

Some warning text.


Semantic errors:

*** Errors: 2

line 3, col 15 to line 3, col 17 of module Sem2Base

Unknown operator: `Baz'.


line 5, col 17 to line 5, col 22 of module Sem2

The operator Bar requires 1 arguments.
"""


def test_sany_errors_deduplicated_and_warnings_skipped(tmp_path: Path) -> None:
    errors = _sany_errors(SANY_REPORT, lambda module: tmp_path / f"{module}.tla" if module else None)
    assert [(e.kind, e.file.name if e.file else None, e.line, e.column, e.text) for e in errors] == [
        ("semantic", "Sem2Base.tla", 3, 15, "Unknown operator: `Baz'."),
        ("semantic", "Sem2.tla", 5, 17, "The operator Bar requires 1 arguments."),
    ]


def test_sany_lexical_and_missing_module_errors(tmp_path: Path) -> None:
    text = (
        'Lexical error at line 3, column 17.  Encountered: "\\n" (10), after : "\\"abc"\n\n'
        "Could not parse module Lex from file Lex.tla\n"
        "Cannot find source file for module NoSuchModule imported in module Missing.\n"
    )
    errors = _sany_errors(text, lambda module: tmp_path / f"{module}.tla" if module else None)
    assert [(e.kind, e.file.name if e.file else None, e.line, e.column) for e in errors] == [
        ("parse", "Lex.tla", 3, 17),
        ("parse", "Missing.tla", None, None),
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1161ms at (2026-11-25 22:38:22)", 1.161), ("05min 10s at (x)", 310.0), ("01h 05min at (x)", 3900.0)],
)
def test_duration_formats(text: str, seconds: float) -> None:
    assert _duration(text) == pytest.approx(seconds)


def test_config_with_single_property_keeps_rest() -> None:
    text = "CONSTANT N = 3 \\* PROPERTY in a comment\nPROPERTIES A\n  B\nINVARIANT TypeOK\nPROPERTY C\n"
    single = _config_with_property(text, "B")
    assert config_properties(single) == ["B"]
    assert "INVARIANT TypeOK" in single and "CONSTANT N = 3" in single
