"""Runs each system's runner in its own subprocess, one after the other.

Sequential on purpose: on a 2-core machine two systems at once would measure
each other. Each runner gets its own session (process group), so whatever it
leaves behind after it exits or times out is killed with it, and a hung peer
cannot stall the bench past its timeout.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import ROOT
from .rows import FULL, QUICK, ROW_BY_KEY, Sizes

__all__ = ["SYSTEMS", "parse_systems", "machine_info", "run_system", "run_bench", "has_errors"]

#: system -> (runner module, modules it needs)
SYSTEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ours": ("bench.ours", ("ownership", "trio")),
    "ray": ("bench.peers.ray_runner", ("ray",)),
    "dask": ("bench.peers.dask_runner", ("dask", "distributed")),
}
PEERS = ("ray", "dask")
_LOG_TAIL_LINES = 40
_VERSIONED = ("ownership", "ray", "dask", "distributed", "numpy", "trio", "matplotlib", "msgpack", "cloudpickle")


def parse_systems(text: str | None) -> tuple[str, ...]:
    if not text:
        return tuple(SYSTEMS)
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in wanted if name not in SYSTEMS]
    if unknown or not wanted:
        raise ValueError(f"unknown system(s) {', '.join(unknown) or '(none given)'}; systems are {', '.join(SYSTEMS)}")
    return tuple(name for name in SYSTEMS if name in wanted)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": {name: _version(name) for name in _VERSIONED},
        "git_commit": _git_commit(),
    }


def _missing_module(names: Sequence[str]) -> str | None:
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_system(
    system: str, sizes: Sizes, rows: Sequence[str], *, timeout: float, workdir: Path
) -> dict[str, Any]:
    """Run one system's runner and return its document, completed with failures."""
    module, needs = SYSTEMS[system]
    missing = _missing_module(needs)
    if missing is not None:
        status = "not available" if system == "ours" else "not installed"
        return {"system": system, "status": status, "reason": f"no module named {missing!r} in {sys.executable}", "rows": {}}
    out = workdir / f"{system}.json"
    log = workdir / f"{system}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    cmd = [
        sys.executable, "-m", module,
        "--sizes", json.dumps(sizes.to_json()),
        "--rows", ",".join(rows),
        "--out", str(out),
    ]
    timed_out = False
    with log.open("wb") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)
            rc = proc.wait()
        finally:
            # Whatever the runner started and left in its session goes with it.
            _kill_group(proc.pid)
    try:
        doc: dict[str, Any] = json.loads(out.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        doc = {"system": system, "status": "error", "reason": f"the runner left no result ({exc})", "rows": {}}
    if timed_out:
        doc["status"] = "error"
        doc["reason"] = f"timed out after {timeout:.0f} s; rows finished before are kept"
    elif rc != 0 and doc.get("status") == "ok":
        doc["status"] = "error"
        doc["reason"] = f"the runner exited with status {rc}"
    rows_done = doc.setdefault("rows", {})
    if doc.get("status") in ("ok", "error"):
        for key in rows:
            if key not in rows_done:
                rows_done[key] = {"status": "error", "error": doc.get("reason") or "the runner did not report this row"}
    if doc.get("status") == "error" or any(r.get("status") == "error" for r in rows_done.values()):
        doc["log_tail"] = _log_tail(log)
    doc["exit_status"] = rc
    return doc


def has_errors(result: dict[str, Any]) -> bool:
    """True when a system or a row failed (not installed, not available and n/a are not failures)."""
    for doc in result["systems"].values():
        if doc.get("status") == "error":
            return True
        if any(row.get("status") == "error" for row in doc.get("rows", {}).values()):
            return True
    return False


def run_bench(
    systems: Sequence[str],
    rows: Sequence[str],
    *,
    quick: bool,
    timeout: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Run every system in turn; the returned document is what the JSON holds."""
    sizes = QUICK if quick else FULL
    timeout = timeout if timeout is not None else (600.0 if quick else 3600.0)
    started = _dt.datetime.now(_dt.timezone.utc).astimezone()
    result: dict[str, Any] = {
        "schema": 1,
        "date": started.isoformat(timespec="seconds"),
        "quick": quick,
        "sizes": sizes.to_json(),
        "rows": list(rows),
        "metrics": [m.key for key in rows for m in ROW_BY_KEY[key].metrics],
        "machine": machine_info(),
        "systems": {},
    }
    with tempfile.TemporaryDirectory(prefix="ownership-bench-") as tmp:
        for system in systems:
            progress(f"{system}: running {len(rows)} row(s) ({'quick' if quick else 'full'} sizes)")
            doc = run_system(system, sizes, rows, timeout=timeout, workdir=Path(tmp))
            result["systems"][system] = doc
            wall = doc.get("wall_s")
            progress(f"{system}: {doc.get('status')}" + (f" in {wall:.1f} s" if isinstance(wall, (int, float)) else "")
                     + (f" ({doc['reason']})" if doc.get("reason") else ""))
    return result
