"""``ownership bench --scale``: how cost grows with the work, ours beside the peers.

Each *curve* is one workload measured at several sizes (its x values); a
point yields one or more metrics. Every system runs in its own subprocess
(:mod:`bench.scale_ours`, :mod:`bench.peers.ray_scale`,
:mod:`bench.peers.dask_scale`), one after the other, and rewrites its JSON
after every point, so a runner killed on timeout keeps what it measured. A
curve a system cannot run the same way is "n/a" with the reason.

The report gives, per metric, the growth exponent between the first and
the last point (``log(y_last / y_first) / log(x_last / x_first)``) and flags
what grows worse than linear: a total (a release time, a reconstruction
time) whose exponent is above 1, a per-unit cost (bytes per object, CPU per
task) that grows by more than half over the range, a rate that falls by
more than half.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from . import ROOT

__all__ = ["CURVES", "CURVE_BY_KEY", "ScaleSizes", "FULL", "QUICK", "ScaleDoc", "scale_runner_main", "run_scale", "growth", "rss_bytes", "cpu_seconds"]

Kind = Literal["total", "per_unit", "rate"]


@attrs.frozen
class CurveMetric:
    key: str
    title: str
    unit: str
    #: total: grows with x, linear is exponent 1; per_unit: should stay flat; rate: should not fall
    kind: Kind


@attrs.frozen
class Curve:
    key: str
    title: str
    x_label: str
    metrics: tuple[CurveMetric, ...]
    loglog: bool = True


CURVES: tuple[Curve, ...] = (
    Curve("inflight", "no-op tasks submitted at once, then got", "tasks in flight", (
        CurveMetric("tasks_per_s", "throughput", "tasks/s", "rate"),
        CurveMetric("driver_cpu_us", "driver CPU per task", "us", "per_unit"),
    )),
    Curve("memory", "small objects put and kept alive by the driver", "live objects", (
        CurveMetric("owned_bytes", "driver memory per owned object (put)", "bytes", "per_unit"),
    )),
    Curve("borrowed", "refs a task put and returned, kept alive by the driver", "borrowed refs", (
        CurveMetric("borrowed_bytes", "driver memory per borrowed ref", "bytes", "per_unit"),
        CurveMetric("borrowed_us", "wall time per ref, task start to refs in hand", "us", "per_unit"),
    )),
    Curve("release", "one object borrowed by k tasks; the driver drops it at once", "borrowing tasks", (
        CurveMetric("release_ms", "submission to release", "ms", "total"),
    )),
    Curve("lineage", "a chain of tasks whose every value was on a killed node", "lineage depth", (
        CurveMetric("reconstruct_ms", "kill to the last value rebuilt", "ms", "total"),
    )),
    Curve("nodes", "no-op tasks over node processes with the same total CPUs", "node processes", (
        CurveMetric("tasks_per_s", "throughput", "tasks/s", "rate"),
    ), loglog=False),
    Curve("owners", "nested: k owner tasks each submitting and getting no-op tasks", "concurrent owners", (
        CurveMetric("tasks_per_s", "throughput of the inner tasks", "tasks/s", "rate"),
    ), loglog=False),
)
CURVE_BY_KEY = {c.key: c for c in CURVES}


@attrs.frozen
class ScaleSizes:
    inflight: tuple[int, ...]
    memory: tuple[int, ...]
    borrowed: tuple[int, ...]
    release: tuple[int, ...]
    lineage: tuple[int, ...]
    nodes: tuple[int, ...]
    owners: tuple[int, ...]
    #: logical CPUs in total for the nodes and owners curves (the machine has 2 cores)
    total_cpus: int
    #: no-op tasks per point of the nodes curve, inner tasks in all of the owners curve
    nodes_tasks: int
    owners_tasks: int
    #: bytes of each value in the release and lineage curves (above the inline threshold)
    object_bytes: int

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScaleSizes:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


FULL = ScaleSizes(
    inflight=(1_000, 10_000, 100_000),
    memory=(10_000, 100_000, 1_000_000),
    borrowed=(10_000, 100_000, 300_000),
    release=(1, 10, 100, 1_000),
    lineage=(1, 10, 100, 1_000),
    nodes=(1, 2, 4, 8),
    owners=(1, 2, 4, 8),
    total_cpus=8,
    nodes_tasks=4_000,
    owners_tasks=4_000,
    object_bytes=128 * 1024,
)

QUICK = ScaleSizes(
    inflight=(300, 3_000),
    memory=(10_000, 50_000),
    borrowed=(10_000, 20_000),
    release=(1, 10, 100),
    lineage=(1, 10, 30),
    nodes=(1, 2, 4),
    owners=(1, 2, 4),
    total_cpus=4,
    nodes_tasks=400,
    owners_tasks=400,
    object_bytes=128 * 1024,
)


# ------------------------------------------------------------------ measuring
def rss_bytes() -> int:
    """Resident memory of this process, after a full collection."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    """User + system CPU of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class NotApplicable(Exception):
    """The system cannot run this curve the same way; the message says why."""


class ScaleDoc:
    """The document one scale runner writes: status, version, and per curve its points."""

    def __init__(self, system: str, out: Path, sizes: ScaleSizes) -> None:
        self.out = out
        self.sizes = sizes
        self.data: dict[str, Any] = {"system": system, "status": "ok", "reason": None, "version": None, "setup": {}, "notes": {}, "curves": {}}

    def set_version(self, version: str) -> None:
        self.data["version"] = version
        self.flush()

    def set_setup(self, **setup: Any) -> None:
        self.data["setup"].update(setup)
        self.flush()

    def note(self, curve: str, text: str) -> None:
        self.data["notes"][curve] = text

    def fail(self, status: str, reason: str) -> None:
        self.data["status"], self.data["reason"] = status, reason
        self.flush()

    def run_curve(self, key: str, point: Callable[[int], dict[str, float]]) -> None:
        """Measure every x of the curve in increasing order; stop it at its first failure."""
        outcome = self._begin(key)
        for x in getattr(self.sizes, key):
            try:
                metrics = point(x)
            except Exception as exc:
                self._stop(outcome, x, exc)
                break
            self._add(outcome, x, metrics)
        self.flush()

    async def run_curve_async(self, key: str, point: Callable[[int], Awaitable[dict[str, float]]]) -> None:
        outcome = self._begin(key)
        for x in getattr(self.sizes, key):
            try:
                metrics = await point(x)
            except Exception as exc:
                self._stop(outcome, x, exc)
                break
            self._add(outcome, x, metrics)
        self.flush()

    def _begin(self, key: str) -> dict[str, Any]:
        outcome: dict[str, Any] = {"status": "ok", "points": []}
        self.data["curves"][key] = outcome
        self.flush()
        return outcome

    def _add(self, outcome: dict[str, Any], x: int, metrics: dict[str, float]) -> None:
        outcome["points"].append({"x": x, "metrics": metrics})
        self.flush()

    @staticmethod
    def _stop(outcome: dict[str, Any], x: int, exc: Exception) -> None:
        if isinstance(exc, NotApplicable):
            outcome.update(status="n/a", reason=str(exc))
        else:
            outcome.update(status="error", error=f"at x={x}: {type(exc).__name__}: {exc}",
                           traceback="".join(traceback.format_exception(exc))[-4000:])

    def mark_na(self, key: str, reason: str) -> None:
        self.data["curves"][key] = {"status": "n/a", "reason": reason, "points": []}
        self.flush()

    def flush(self) -> None:
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.out)


class Unavailable(Exception):
    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


def scale_runner_main(system: str, body: Callable[[ScaleDoc, tuple[str, ...]], None], argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one system's scale runner (started by `ownership bench --scale`)")
    parser.add_argument("--sizes", required=True)
    parser.add_argument("--curves", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    doc = ScaleDoc(system, args.out, ScaleSizes.from_json(json.loads(args.sizes)))
    doc.flush()
    try:
        body(doc, tuple(c for c in args.curves.split(",") if c))
    except Unavailable as exc:
        doc.fail(exc.status, exc.reason)
    except BaseException as exc:
        doc.fail("error", "".join(traceback.format_exception(exc))[-4000:])
        if not isinstance(exc, Exception):
            raise
    doc.flush()
    return 0


# ------------------------------------------------------------------ the driver
SCALE_SYSTEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ours": ("bench.scale_ours", ("ownership", "trio")),
    "ray": ("bench.peers.ray_scale", ("ray",)),
    "dask": ("bench.peers.dask_scale", ("dask", "distributed")),
}


def parse_curves(text: str | None) -> tuple[str, ...]:
    if not text:
        return tuple(CURVE_BY_KEY)
    wanted = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [w for w in wanted if w not in CURVE_BY_KEY]
    if unknown:
        raise ValueError(f"unknown curve(s) {', '.join(unknown)}; curves are {', '.join(CURVE_BY_KEY)}")
    return tuple(c.key for c in CURVES if c.key in wanted)


def run_scale(
    systems: Sequence[str], curves: Sequence[str], *, quick: bool, timeout: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    from .driver import _kill_group, _log_tail, _missing_module, machine_info

    sizes = QUICK if quick else FULL
    timeout = timeout if timeout is not None else (300.0 if quick else 5400.0)
    result: dict[str, Any] = {
        "schema": 1,
        "kind": "scale",
        "date": _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds"),
        "quick": quick,
        "sizes": sizes.to_json(),
        "curves": list(curves),
        "machine": machine_info(),
        "systems": {},
    }
    with tempfile.TemporaryDirectory(prefix="ownership-scale-") as tmp:
        for system in systems:
            module, needs = SCALE_SYSTEMS[system]
            missing = _missing_module(needs)
            if missing is not None:
                status = "not available" if system == "ours" else "not installed"
                result["systems"][system] = {"system": system, "status": status, "reason": f"no module named {missing!r} in {sys.executable}", "curves": {}}
                progress(f"{system}: {status}")
                continue
            progress(f"{system}: measuring {len(curves)} curve(s) ({'quick' if quick else 'full'} sizes)")
            out, log = Path(tmp) / f"{system}.json", Path(tmp) / f"{system}.log"
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
            cmd = [sys.executable, "-m", module, "--sizes", json.dumps(sizes.to_json()), "--curves", ",".join(curves), "--out", str(out)]
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
                    _kill_group(proc.pid)
            try:
                doc = json.loads(out.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                doc = {"system": system, "status": "error", "reason": f"the runner left no result ({exc})", "curves": {}}
            if timed_out:
                doc["status"], doc["reason"] = "error", f"timed out after {timeout:.0f} s; points measured before are kept"
            elif rc != 0 and doc.get("status") == "ok":
                doc["status"], doc["reason"] = "error", f"the runner exited with status {rc}"
            for key in curves:
                doc["curves"].setdefault(key, {"status": "error", "error": doc.get("reason") or "not reached", "points": []})
            if doc.get("status") == "error" or any(c.get("status") == "error" for c in doc["curves"].values()):
                doc["log_tail"] = _log_tail(log)
            result["systems"][system] = doc
            progress(f"{system}: {doc.get('status')}" + (f" ({doc['reason'].strip().splitlines()[-1]})" if doc.get("reason") else ""))
    add_growth(result)
    return result


def has_errors(result: dict[str, Any]) -> bool:
    for doc in result["systems"].values():
        if doc.get("status") == "error" or any(c.get("status") == "error" for c in doc.get("curves", {}).values()):
            return True
    return False


# ------------------------------------------------------------------ growth
def growth(points: Sequence[dict[str, Any]], metric: CurveMetric) -> dict[str, Any] | None:
    """Exponent from the first to the last point, and whether it is worse than linear."""
    pts = [(p["x"], p["metrics"].get(metric.key)) for p in points if isinstance(p["metrics"].get(metric.key), (int, float))]
    pts = [(x, y) for x, y in pts if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    (x0, y0), (x1, y1) = pts[0], pts[-1]
    exponent = math.log(y1 / y0) / math.log(x1 / x0) if x1 != x0 else 0.0
    change = y1 / y0
    if metric.kind == "total":
        worse = exponent > 1.15
        verdict = "worse than linear" if worse else ("linear" if exponent > 0.8 else "sublinear")
    elif metric.kind == "per_unit":
        worse = change > 1.5
        verdict = f"per-unit cost x{change:.2f} over the range" + (" (grows: worse than linear)" if worse else "")
    else:
        worse = change < 0.5
        verdict = f"rate x{change:.2f} over the range" + (" (falls: worse than linear)" if worse else "")
    return {"exponent": round(exponent, 3), "change": round(change, 3), "worse_than_linear": worse, "verdict": verdict,
            "from": [x0, y0], "to": [x1, y1]}


def add_growth(result: dict[str, Any]) -> dict[str, Any]:
    for doc in result["systems"].values():
        for key, outcome in doc.get("curves", {}).items():
            curve = CURVE_BY_KEY.get(key)
            if curve is None or outcome.get("status") != "ok":
                continue
            outcome["growth"] = {m.key: growth(outcome["points"], m) for m in curve.metrics}
    return result


# ------------------------------------------------------------------ report
def _fmt(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "-"
    if v >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.3g}"


def markdown(result: dict[str, Any]) -> str:
    """One table per curve: a row per metric and system, a column per x, then the growth."""
    lines: list[str] = []
    for key in result["curves"]:
        curve = CURVE_BY_KEY[key]
        xs = list(result["sizes"][key])
        lines.append(f"**{key}**: {curve.title} (x = {curve.x_label})")
        lines.append("")
        lines.append("| metric | system | " + " | ".join(_fmt(x) for x in xs) + " | growth |")
        lines.append("|---|---|" + "---:|" * len(xs) + "---|")
        for metric in curve.metrics:
            for name, doc in result["systems"].items():
                outcome = doc.get("curves", {}).get(key)
                if doc.get("status") in ("not installed", "not available"):
                    cells, verdict = ["-"] * len(xs), doc["status"]
                elif outcome is None:
                    cells, verdict = ["-"] * len(xs), "-"
                elif outcome.get("status") == "n/a":
                    cells, verdict = ["n/a"] * len(xs), "n/a: " + str(outcome.get("reason"))
                else:
                    by_x = {p["x"]: p["metrics"].get(metric.key) for p in outcome.get("points", [])}
                    cells = [_fmt(by_x.get(x)) for x in xs]
                    g = (outcome.get("growth") or {}).get(metric.key)
                    verdict = f"exp {g['exponent']:.2f}; {g['verdict']}" if g else ("error: " + outcome.get("error", "")[:80] if outcome.get("status") == "error" else "-")
                lines.append(f"| {metric.title} ({metric.unit}) | {name} | " + " | ".join(cells) + f" | {verdict} |")
        lines.append("")
    machine = result.get("machine", {})
    versions = machine.get("versions", {})
    lines.append(
        f"{result['date']}{' (quick sizes)' if result.get('quick') else ''}; {machine.get('cores')} cores ({machine.get('cpu')}), "
        f"{machine.get('memory_gib')} GiB, {machine.get('python')}, {machine.get('os')}; load {machine.get('load_average_at_start')} at start; "
        + ", ".join(f"{k} {versions[k]}" for k in ("ownership", "ray", "dask") if k in versions) + "."
    )
    return "\n".join(lines) + "\n"


def draw(result: dict[str, Any], path: Path) -> Path:
    """One panel per (curve, metric), a line per system; log-log where the curve says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(CURVE_BY_KEY[k], m) for k in result["curves"] for m in CURVE_BY_KEY[k].metrics]
    cols = min(4, max(1, len(panels)))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), dpi=100, squeeze=False)
    markers = {"ours": "o", "ray": "s", "dask": "^"}
    # A system keeps its colour in every panel, also where another has no points.
    colors = {name: f"C{i}" for i, name in enumerate(result["systems"])}
    for ax, (curve, metric) in zip(axes.flat, panels):
        for name, doc in result["systems"].items():
            outcome = doc.get("curves", {}).get(curve.key) or {}
            pts = [(p["x"], p["metrics"].get(metric.key)) for p in outcome.get("points", [])]
            pts = [(x, y) for x, y in pts if isinstance(y, (int, float)) and y > 0]
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker=markers.get(name, "x"), color=colors[name], label=name)
        ax.set_xscale("log", base=10 if curve.loglog else 2)
        if curve.loglog:
            ax.set_yscale("log")
        # A flat line should look flat: at least a decade on log axes, zero at the bottom on linear ones.
        values = [y for line in ax.get_lines() for y in line.get_ydata()]
        if values and curve.loglog:
            low, high = min(values), max(values)
            if high / low < 10:
                middle = math.sqrt(low * high)
                ax.set_ylim(middle / math.sqrt(10), middle * math.sqrt(10))
        elif values:
            ax.set_ylim(0, max(values) * 1.15)
        ax.set_title(f"{curve.key}: {metric.title}", fontsize=8)
        ax.set_xlabel(curve.x_label, fontsize=8)
        ax.set_ylabel(metric.unit, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    machine = result.get("machine", {})
    fig.suptitle(
        f"ownership bench --scale {result['date'][:16]}{' (quick)' if result.get('quick') else ''}: "
        f"{machine.get('cores')} cores, {machine.get('python')}", fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
