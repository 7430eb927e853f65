"""Run Apalache (``apalache-mc``) and read its counterexamples.

Apalache is not in the package registries reachable here: this backend runs
when ``apalache-mc`` is on PATH or ``APALACHE_HOME`` is set
(``$APALACHE_HOME/bin/apalache-mc``), and raises :class:`ApalacheNotFound`
otherwise.

What this module relies on (Apalache's CLI documentation and integration
tests; not run here, since no Apalache is installed):

- ``apalache-mc typecheck SPEC`` prints ``Type checker [OK]`` or type errors
  as ``[File.tla:L:C-L2:C2]: message`` and ``Type checker [FAILED]``.
- ``apalache-mc check --out-dir=D --run-dir=R --write-intermediate=false
  --length=N [--inv=X] [--config=C] SPEC`` writes counterexamples to ``R``
  as ``violation1.itf.json`` (also ``violation.itf.json``), and ends with
  ``The outcome is: NoError|Error|Deadlock`` and ``EXITCODE: OK`` or
  ``EXITCODE: ERROR (n)``.
- Exit codes: 0 no error, 12 counterexample, 75 evaluation failure, 120 type
  error, 150 parse error, 255 anything else.

Counterexamples come back in the shape TLC results have
(:class:`~ownership.tla.tlc.CheckResult`, :class:`~ownership.tla.tlc.Violation`,
:class:`~ownership.tla.tlc.TraceState`). ITF records no action names, so a
state's ``action`` is the ``action`` in its ``#meta`` when present and ``""``
otherwise; indices are 1-based as in TLC traces (ITF's are 0-based).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from .itf import ITFFormatError, load_itf
from .tlc import (
    INITIAL_PREDICATE,
    CheckResult,
    TLCErrorMessage,
    TraceState,
    Violation,
    _sany_errors,
    config_invariants,
)

__all__ = [
    "ApalacheNotFound",
    "TypecheckResult",
    "apalache_available",
    "check",
    "find_apalache",
    "read_counterexample",
    "typecheck",
]

NOT_INSTALLED = "apalache-mc not installed (set APALACHE_HOME or put apalache-mc on PATH)"

_LOG_SUFFIX = re.compile(r"\s+[IEWD]@\d\d:\d\d:\d\d\.\d+\s*$", re.M)
_TYPE_ERROR = re.compile(r"^\[([^\]:]+):(\d+):(\d+)(?:-\d+:\d+)?\]:\s*(.*)$", re.M)
_EXITCODE = re.compile(r"EXITCODE: (?:OK|ERROR \((\d+)\))")
_OUTCOME = re.compile(r"The outcome is: (\w+)")
_VERSION = re.compile(r"APALACHE version (\S+)")


class ApalacheNotFound(RuntimeError):
    """No ``apalache-mc`` to run."""


def find_apalache() -> str:
    """``$APALACHE_HOME/bin/apalache-mc`` if set, else ``apalache-mc`` on PATH."""
    home = os.environ.get("APALACHE_HOME")
    if home:
        candidate = Path(home) / "bin" / "apalache-mc"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("apalache-mc")
    if found is None:
        raise ApalacheNotFound(NOT_INSTALLED)
    return found


def apalache_available() -> bool:
    try:
        find_apalache()
    except ApalacheNotFound:
        return False
    return True


@attrs.frozen
class TypecheckResult:
    ok: bool
    errors: list[TLCErrorMessage]
    exit_code: int | None
    command: list[str]
    output: str = attrs.field(repr=False)


def _clean(output: str) -> str:
    """Apalache's console lines without their ``I@12:00:00.000`` log stamps."""
    return _LOG_SUFFIX.sub("", output)


def _errors(output: str, exit_code: int | None, spec_dir: Path) -> list[TLCErrorMessage]:
    """Type errors, SANY's parse and semantic errors, or a summary of a failure."""

    def module_file(module: str | None) -> Path | None:
        if module is None:
            return None
        name = module if module.endswith(".tla") else f"{module}.tla"
        candidate = spec_dir / name
        return candidate if candidate.exists() else Path(name)

    errors = [
        TLCErrorMessage("type", module_file(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4).strip(), exit_code)
        for m in _TYPE_ERROR.finditer(output)
    ]
    if exit_code in (150, 255):
        errors += _sany_errors(output, module_file)
    if not errors and exit_code not in (0, 12, None):
        kind = {75: "runtime", 120: "type", 150: "parse"}.get(exit_code, "apalache")
        tail = "\n".join(output.strip().splitlines()[-15:])
        errors.append(TLCErrorMessage(kind, None, None, None, f"apalache-mc exited with code {exit_code}:\n{tail}", exit_code))
    return errors


def _run(cmd: list[str], cwd: Path, timeout: float | None) -> tuple[str, int | None, bool, float]:
    started = time.monotonic()
    # apalache-mc is a shell script that starts java: run it in its own
    # process group so that a timeout stops the JVM too, not just the script.
    with subprocess.Popen(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            out, _ = proc.communicate()
            return out, None, True, time.monotonic() - started
        except BaseException:
            _stop_group(proc)
            raise
    return out, proc.returncode, False, time.monotonic() - started


def _stop_group(proc: subprocess.Popen[str]) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def typecheck(spec: Path | str, *, timeout: float | None = None) -> TypecheckResult:
    """Run Apalache's type checker on ``spec``."""
    spec = Path(spec).resolve()
    if not spec.is_file():
        raise FileNotFoundError(f"spec not found: {spec}")
    exe = find_apalache()
    with tempfile.TemporaryDirectory(prefix="ownership-apalache-") as tmp_name:
        tmp = Path(tmp_name)
        # Apalache writes _apalache-out/ into its cwd whatever --out-dir says.
        cmd = [exe, "typecheck", f"--out-dir={tmp / 'out'}", str(spec)]
        raw, exit_code, timed_out, _ = _run(cmd, tmp, timeout)
    output = _clean(raw)
    errors = _errors(output, exit_code, spec.parent)
    if timed_out:
        errors.append(TLCErrorMessage("apalache", None, None, None, f"typecheck timed out after {timeout} s", None))
    ok = exit_code == 0 and "Type checker [FAILED]" not in output and not errors
    return TypecheckResult(ok, errors, exit_code, cmd, output)


def read_counterexample(
    path: Path | str, *, kind: str = "invariant", name: str | None = None, message: str = ""
) -> Violation:
    """An ITF counterexample as a :class:`Violation` with TLC-style states."""
    trace = load_itf(path)
    states = []
    for i, (state, meta) in enumerate(zip(trace.states, trace.state_meta)):
        action = meta.get("action")
        if not isinstance(action, str):
            action = INITIAL_PREDICATE if i == 0 else ""
        states.append(TraceState(i + 1, action, dict(state)))
    loop = trace.loop + 1 if trace.loop is not None else None
    return Violation(kind=kind, name=name, trace=states, loop=loop, message=message)


def _counterexample_file(run_dir: Path) -> Path | None:
    """The first counterexample Apalache wrote (``violation1.itf.json``)."""
    for pattern in ("violation1.itf.json", "violation*.itf.json", "counterexample1.itf.json", "*.itf.json"):
        found = sorted(run_dir.rglob(pattern))
        if found:
            return found[0]
    return None


def check(
    spec: Path | str,
    *,
    inv: str | None = None,
    length: int = 10,
    config: Path | str | None = None,
    init: str | None = None,
    next: str | None = None,
    cinit: str | None = None,
    deadlock: bool = True,
    timeout: float | None = None,
    extra_args: Sequence[str] = (),
) -> CheckResult:
    """Bounded model checking of ``spec`` with Apalache, up to ``length`` steps.

    ``inv`` names the invariant (else the config's INVARIANT is checked);
    ``deadlock=False`` passes ``--no-deadlock``. A counterexample is read from
    the ITF file Apalache writes.
    """
    spec = Path(spec).resolve()
    if not spec.is_file():
        raise FileNotFoundError(f"spec not found: {spec}")
    config_path = Path(config).resolve() if config is not None else None
    if config_path is not None and not config_path.is_file():
        raise FileNotFoundError(f"model config not found: {config_path}")
    if length < 0:
        raise ValueError(f"length must not be negative, got {length}")
    exe = find_apalache()
    with tempfile.TemporaryDirectory(prefix="ownership-apalache-") as tmp_name:
        tmp = Path(tmp_name)
        run_dir = tmp / "run"
        cmd = [
            exe,
            "check",
            f"--out-dir={tmp / 'out'}",
            f"--run-dir={run_dir}",
            "--write-intermediate=false",
            f"--length={length}",
        ]
        if inv is not None:
            cmd.append(f"--inv={inv}")
        if config_path is not None:
            cmd.append(f"--config={config_path}")
        for flag, value in (("--init", init), ("--next", next), ("--cinit", cinit)):
            if value is not None:
                cmd.append(f"{flag}={value}")
        if not deadlock:
            cmd.append("--no-deadlock")
        cmd += [*extra_args, str(spec)]
        raw, exit_code, timed_out, elapsed = _run(cmd, tmp, timeout)
        output = _clean(raw)
        return _result(output, exit_code, timed_out, elapsed, cmd, run_dir, spec, inv, config_path)


def _result(
    output: str,
    exit_code: int | None,
    timed_out: bool,
    elapsed: float,
    cmd: list[str],
    run_dir: Path,
    spec: Path,
    inv: str | None,
    config: Path | None,
) -> CheckResult:
    outcome = _OUTCOME.search(output)
    errors = [] if exit_code == 12 else _errors(output, exit_code, spec.parent)
    violation = None
    if exit_code == 12:
        kind = "deadlock" if (outcome and outcome.group(1) == "Deadlock") or "Found a deadlock" in output else "invariant"
        name = None
        if kind == "invariant":
            names = [inv] if inv else (config_invariants(config.read_text()) if config else [])
            name = names[0] if len(names) == 1 else None
        found = _counterexample_file(run_dir)
        if found is None:
            errors.append(TLCErrorMessage("apalache", None, None, None, "Apalache reported a violation but wrote no ITF counterexample", 12))
        else:
            try:
                violation = read_counterexample(found, kind=kind, name=name, message=outcome.group(0) if outcome else "")
            except ITFFormatError as exc:
                errors.append(TLCErrorMessage("apalache", found, None, None, f"unreadable counterexample: {exc}", 12))
    if timed_out:
        errors.append(TLCErrorMessage("apalache", None, None, None, "apalache-mc timed out", None))
    version = _VERSION.search(output)
    ok = exit_code == 0 and violation is None and not errors
    return CheckResult(
        ok=ok,
        distinct_states=None,
        states_generated=None,
        depth=None,
        duration=elapsed,
        violation=violation,
        errors=errors,
        exit_code=exit_code,
        timed_out=timed_out,
        seed=None,
        version=version.group(1) if version else None,
        command=cmd,
        output=output,
        stderr="",
    )
