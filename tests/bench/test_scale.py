"""`ownership bench --scale`: the curves' code cannot rot, and the growth verdicts say what they should."""

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

from bench import scale  # noqa: E402

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _bench(tmp_path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "ownership.cli", "bench", "--quick", "--out", str(tmp_path), *args]
    if not HAVE_MATPLOTLIB:
        cmd.append("--no-chart")
    return subprocess.run(cmd, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_scale_quick_ours_measures_its_curves(tmp_path: Path) -> None:
    curves = ("inflight", "memory", "borrowed", "release")
    proc = _bench(tmp_path, "--scale", "--systems", "ours", "--curves", ",".join(curves))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [json_path] = tmp_path.glob("*-scale.json")
    result = json.loads(json_path.read_text())
    assert result["kind"] == "scale" and result["quick"] is True and result["curves"] == list(curves)
    ours = result["systems"]["ours"]
    assert ours["status"] == "ok", ours
    for key in curves:
        outcome = ours["curves"][key]
        assert outcome["status"] == "ok", (key, outcome)
        assert [p["x"] for p in outcome["points"]] == list(getattr(scale.QUICK, key))
        for point in outcome["points"]:
            for metric in scale.CURVE_BY_KEY[key].metrics:
                assert point["metrics"][metric.key] > 0, (key, point)
        assert set(outcome["growth"]) == {m.key for m in scale.CURVE_BY_KEY[key].metrics}
    markdown = json_path.with_suffix(".md").read_text()
    assert all(f"**{key}**" in markdown for key in curves) and "| ours |" in markdown
    if HAVE_MATPLOTLIB:
        assert json_path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("peer,hidden", [("ray", ["ray"]), ("dask", ["dask", "distributed"])])
def test_scale_peer_runner_reports_not_installed(tmp_path: Path, peer: str, hidden: list[str]) -> None:
    out = tmp_path / f"{peer}.json"
    code = (
        "import sys\n"
        + "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
        + f"from bench.peers.{peer}_scale import main\n"
        + f"raise SystemExit(main(['--sizes', {json.dumps(json.dumps(scale.QUICK.to_json()))}, '--curves', 'inflight', '--out', {str(out)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["status"] == "not installed" and peer in doc["reason"] and doc["curves"] == {}


def test_scale_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args, message in (
        (["--scale", "--curves", "inflight,warp"], "unknown curve"),
        (["--curves", "inflight"], "--curves needs --scale"),
        (["--scale", "--rows", "sync"], "with --scale give --curves"),
    ):
        proc = _bench(tmp_path, *args, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.json"))


def _points(*pairs: tuple[int, float]) -> list[dict]:
    return [{"x": x, "metrics": {"m": y}} for x, y in pairs]


def test_growth_flags_only_what_grows_worse_than_linear() -> None:
    total = scale.CurveMetric("m", "t", "ms", "total")
    per_unit = scale.CurveMetric("m", "p", "bytes", "per_unit")
    rate = scale.CurveMetric("m", "r", "tasks/s", "rate")
    linear = scale.growth(_points((1, 10.0), (10, 100.0), (100, 1000.0)), total)
    assert linear["exponent"] == pytest.approx(1.0) and not linear["worse_than_linear"]
    quadratic = scale.growth(_points((1, 1.0), (100, 10_000.0)), total)
    assert quadratic["exponent"] == pytest.approx(2.0) and quadratic["worse_than_linear"]
    assert not scale.growth(_points((1_000, 300.0), (100_000, 320.0)), per_unit)["worse_than_linear"]
    assert scale.growth(_points((1_000, 300.0), (100_000, 900.0)), per_unit)["worse_than_linear"]
    assert scale.growth(_points((1_000, 2000.0), (100_000, 500.0)), rate)["worse_than_linear"]
    assert scale.growth(_points((1, 5.0)), total) is None  # one point: no slope


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib (the 'bench' extra) is not installed")
def test_scale_chart_and_markdown_show_missing_systems(tmp_path: Path) -> None:
    result = {
        "date": "2026-01-01T00:00:00+00:00",
        "quick": True,
        "sizes": scale.QUICK.to_json(),
        "curves": ["inflight", "release"],
        "machine": {"cores": 2, "python": "CPython", "versions": {}},
        "systems": {
            "ours": {"status": "ok", "curves": {
                "inflight": {"status": "ok", "points": [{"x": 300, "metrics": {"tasks_per_s": 900.0, "driver_cpu_us": 150.0}},
                                                        {"x": 3000, "metrics": {"tasks_per_s": 1000.0, "driver_cpu_us": 140.0}}]},
                "release": {"status": "ok", "points": [{"x": 1, "metrics": {"release_ms": 2.0}}]},
            }},
            "dask": {"status": "ok", "curves": {"release": {"status": "n/a", "reason": "no borrowing", "points": []}}},
            "ray": {"status": "not installed", "curves": {}},
        },
    }
    scale.add_growth(result)
    text = scale.markdown(result)
    assert "| throughput (tasks/s) | ours | 900 | 1 000 |" in text
    assert "n/a: no borrowing" in text and "not installed" in text
    assert scale.draw(result, tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_names_every_row_and_curve_the_bench_has() -> None:
    """``ownership bench --help`` lists the rows and curves from constants
    (it must work outside a clone, without bench/): they are bench's own."""
    from bench import rows, scale
    from ownership.benchcli import CURVE_NAMES, ROW_NAMES

    assert ROW_NAMES == tuple(row.key for row in rows.ROWS)
    assert CURVE_NAMES == tuple(curve.key for curve in scale.CURVES)
