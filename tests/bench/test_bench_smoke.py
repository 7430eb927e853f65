"""The benchmark code cannot rot: `ownership bench --quick` runs for real.

The full benchmark stays out of `make test`; these run tiny sizes (seconds)
through the same command, runner, report and chart code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # bench/ is a folder of the clone, not an installed package

from bench import report  # noqa: E402
from bench.harness import NotApplicable, RunnerDoc  # noqa: E402
from bench.rows import METRIC_BY_KEY, METRICS, QUICK, ROWS, parse_rows, percentile  # noqa: E402

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _bench(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ownership.cli", "bench", "--quick", "--out", str(tmp_path), *args]
    env = {**os.environ, "COLUMNS": "200"}  # one table line per metric
    if not HAVE_MATPLOTLIB:
        cmd.append("--no-chart")
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_bench_quick_ours_measures_every_row(tmp_path: Path) -> None:
    proc = _bench(tmp_path, "--systems", "ours")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [json_path] = tmp_path.glob("*.json")
    result = json.loads(json_path.read_text())
    assert result["quick"] is True and result["sizes"] == QUICK.to_json()
    assert result["machine"]["cores"] >= 1 and result["machine"]["versions"]["ownership"] != "not installed"
    ours = result["systems"]["ours"]
    assert ours["status"] == "ok", ours
    assert "ownership" in ours["setup"]["cluster"]
    for row in ROWS:
        outcome = ours["rows"][row.key]
        assert outcome["status"] == "ok", (row.key, outcome)
        for metric in row.metrics:
            measured = outcome["metrics"][metric.key]
            expected_repeats = getattr(QUICK, row.repeats_field)
            assert len(measured["samples"]) == expected_repeats
            assert all(v > 0 for v in measured["samples"]), (metric.key, measured)
            assert min(measured["samples"]) <= measured["median"] <= max(measured["samples"])
    # The table names every metric with our measured median.
    for metric in METRICS:
        assert metric.title in proc.stdout
    assert "in-process" in proc.stdout or "embedded" in proc.stdout
    markdown = json_path.with_suffix(".md").read_text()
    assert markdown.startswith("| row |") and all(f"| {m.title} |" in markdown for m in METRICS)
    if HAVE_MATPLOTLIB:
        png = json_path.with_suffix(".png")
        assert result["chart"] == png.name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("peer", ["ray", "dask"])
def test_peer_runner_reports_not_installed_when_import_fails(tmp_path: Path, peer: str) -> None:
    # Hide the peer from the import system, as on a machine without the extra.
    hidden = {"ray": ["ray"], "dask": ["dask", "distributed"]}[peer]
    out = tmp_path / f"{peer}.json"
    code = (
        "import sys\n"
        + "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
        + f"from bench.peers.{peer}_runner import main\n"
        + f"raise SystemExit(main(['--sizes', {json.dumps(json.dumps(QUICK.to_json()))}, '--rows', 'sync', '--out', {str(out)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["status"] == "not installed" and peer in doc["reason"] and doc["rows"] == {}


def test_bench_missing_peer_is_not_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import driver

    monkeypatch.setitem(driver.SYSTEMS, "ray", ("bench.peers.ray_runner", ("no_such_module_for_bench",)))
    result = driver.run_bench(["ray"], ["sync"], quick=True)
    assert result["systems"]["ray"]["status"] == "not installed"
    assert not driver.has_errors(result)
    report.add_ratios(result)
    assert result["ratios"] == {"sync_p50": {"ray": None}, "sync_p99": {"ray": None}}


def test_runner_doc_records_failed_and_not_applicable_rows(tmp_path: Path) -> None:
    doc = RunnerDoc("ours", tmp_path / "ours.json", QUICK)

    def broken(_):
        raise ZeroDivisionError("boom")

    def absent(_):
        raise NotApplicable("no such feature")

    calls = []

    def fine(_):
        calls.append(1)
        return {"async": 10.0 * len(calls)}

    doc.run_row("sync", broken)
    doc.run_row("recovery", absent)
    doc.run_row("async", fine)
    saved = json.loads((tmp_path / "ours.json").read_text())
    assert saved["rows"]["sync"]["status"] == "error" and "boom" in saved["rows"]["sync"]["error"]
    assert saved["rows"]["recovery"] == {"status": "n/a", "reason": "no such feature", "wall_s": saved["rows"]["recovery"]["wall_s"]}
    # One warm-up is thrown away, then the repeats: the median is over them only.
    assert len(calls) == 1 + QUICK.repeats
    assert saved["rows"]["async"]["metrics"]["async"]["samples"] == [20.0, 30.0]
    assert saved["rows"]["async"]["metrics"]["async"]["median"] == 25.0


def test_ratio_is_above_one_when_ours_is_better_in_either_direction() -> None:
    assert report.better_ratio(2000.0, 1000.0, METRIC_BY_KEY["async"]) == 2.0  # rate: higher is better
    assert report.better_ratio(0.5, 2.0, METRIC_BY_KEY["sync_p50"]) == 4.0  # time: lower is better
    with pytest.raises(ValueError):
        report.better_ratio(0.0, 2.0, METRIC_BY_KEY["sync_p50"])


def test_rows_and_percentile_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown row"):
        parse_rows("sync,warp")
    assert parse_rows("recovery, sync") == ("sync", "recovery")
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile(list(range(1, 101)), 99) == 99
    with pytest.raises(ValueError):
        percentile([], 50)


def test_bench_unknown_system_is_a_usage_error(tmp_path: Path) -> None:
    proc = _bench(tmp_path, "--systems", "ours,spark")
    assert proc.returncode == 2
    assert "unknown system" in proc.stderr and not list(tmp_path.glob("*.json"))


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib (the 'bench' extra) is not installed")
def test_chart_marks_missing_values_and_normalises_to_ray(tmp_path: Path) -> None:
    def system(value: float | None) -> dict:
        rows = {} if value is None else {"async": {"status": "ok", "metrics": {"async": {"median": value}}}}
        return {"status": "ok" if value is not None else "not installed", "rows": rows}

    result = {
        "date": "2026-01-01T00:00:00+00:00",
        "metrics": ["async"],
        "machine": {"cores": 2, "python": "CPython"},
        "systems": {"ours": system(300.0), "ray": system(150.0), "dask": system(None)},
    }
    labels, series, baselines = report._chart_series(result)
    assert baselines == ["ray"] and series == {"ours": [2.0], "ray": [1.0], "dask": [None]}
    png = report.draw_chart(result, tmp_path / "chart.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
