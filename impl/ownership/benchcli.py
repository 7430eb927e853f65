"""``ownership bench``: our runtime side by side with Ray and Dask.

::

    ownership bench                          # every row, every system, full sizes
    ownership bench --quick --systems ours   # tiny sizes: seconds, for the smoke test
    ownership bench --rows sync,async --systems ours,ray --out /tmp/b
    ownership bench --rows serving,video     # the paper's two applications
    ownership bench --scale [--quick] [--curves inflight,memory,borrowed,...]

``--scale`` measures how cost grows with the work instead (curves: tasks in
flight, memory per live object and borrowed ref, release of a borrowed
fan-out, reconstruction against lineage depth, throughput against node
processes and concurrent owners) and writes ``<date>-scale.json``,
``-scale.md`` and ``-scale.png``.

Each system runs in its own subprocess, one after the other, with the same
sizes. A peer that is not installed is reported as such, not failed. Writes
``<out>/<date>.json``, ``<out>/<date>.png`` and ``<out>/<date>.md`` (the
table in markdown) and prints the table.

Exit status: 0 when every requested system ran or is reported missing, 1
when a system or a row failed, 2 for bad usage (unknown row or system, or
no ``bench/`` folder because this is not a clone of the repository).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_subparsers", "run_bench_command"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# The benchmarks live in the clone's bench/ folder, next to impl/: they are
# not part of the installed distribution (an editable install finds them).
_ROOT = Path(__file__).resolve().parents[2]

#: the rows and curves of bench/rows.py and bench/scale.py, for --help, which
#: must work outside a clone (tests/bench checks that they agree)
ROW_NAMES = ("sync", "recoverable", "async", "actor", "nested", "array_ref", "array_value", "borrow", "remote_get", "recovery", "serving", "video")
CURVE_NAMES = ("inflight", "memory", "borrowed", "release", "lineage", "nodes", "owners")


def _import_bench() -> Any:
    if not (_ROOT / "bench" / "driver.py").is_file():
        raise FileNotFoundError(
            f"no bench/ folder at {_ROOT}: `ownership bench` runs from a clone of the repository "
            "(pip install -e .), where bench/ sits next to impl/"
        )
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    import bench.driver
    import bench.report
    import bench.rows
    import bench.scale

    return bench


def add_subparsers(subparsers: Any) -> None:
    from .cli import help_text

    parser = subparsers.add_parser(
        "bench",
        help="benchmarks against Ray and Dask, side by side",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds in total), for smoke tests")
    parser.add_argument("--rows", default=None, help="comma-separated rows (default: all): " + ",".join(ROW_NAMES))
    parser.add_argument("--systems", default="ours,ray,dask", help="comma-separated systems (default: ours,ray,dask)")
    parser.add_argument("--out", type=Path, default=None, help="directory for <date>.json and <date>.png (default: bench/results)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per system before its runner is killed "
                        "(default: 600 with --quick, 3600 otherwise)")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG (no matplotlib needed)")
    parser.add_argument("--scale", action="store_true", help="the cost-growth curves instead of the rows")
    parser.add_argument("--curves", default=None, help="with --scale, comma-separated curves (default: all): " + ",".join(CURVE_NAMES))
    parser.set_defaults(func=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # a log or a pipe: one line per metric
    err = Console(stderr=True)
    try:
        bench = _import_bench()
        if args.scale and args.rows:
            raise ValueError("--rows is for the rows; with --scale give --curves")
        if args.curves and not args.scale:
            raise ValueError("--curves needs --scale")
        rows = bench.rows.parse_rows(args.rows)
        curves = bench.scale.parse_curves(args.curves)
        systems = bench.driver.parse_systems(args.systems)
    except (ValueError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return EXIT_USAGE
    if args.timeout is not None and args.timeout <= 0:
        err.print("[red]error:[/red] --timeout must be a positive number of seconds")
        return EXIT_USAGE
    out_dir: Path = args.out if args.out is not None else bench.RESULTS_DIR
    if args.scale:
        return _run_scale(bench, args, systems, curves, out_dir, console, err)
    result = bench.driver.run_bench(
        systems, rows, quick=args.quick, timeout=args.timeout, progress=lambda line: err.print(f"[dim]{line}[/dim]")
    )
    bench.report.add_ratios(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = bench.report.result_stem(out_dir)
    json_path = out_dir / f"{stem}.json"
    if not args.no_chart:
        chart = bench.report.draw_chart(result, out_dir / f"{stem}.png")
        result["chart"] = chart.name
    bench.report.write_json(result, json_path)
    (out_dir / f"{stem}.md").write_text(bench.report.markdown_table(result))
    bench.report.print_report(result, console)
    console.print(f"wrote {json_path}, {json_path.with_suffix('.md').name}" + (f" and {result['chart']}" if "chart" in result else ""))
    return EXIT_FAILED if bench.driver.has_errors(result) else EXIT_OK


def _run_scale(bench: Any, args: argparse.Namespace, systems: Any, curves: Any, out_dir: Path, console: Any, err: Any) -> int:
    result = bench.scale.run_scale(
        systems, curves, quick=args.quick, timeout=args.timeout, progress=lambda line: err.print(f"[dim]{line}[/dim]")
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = bench.report.result_stem(out_dir) + "-scale"
    json_path = out_dir / f"{stem}.json"
    if not args.no_chart:
        result["chart"] = bench.scale.draw(result, out_dir / f"{stem}.png").name
    bench.report.write_json(result, json_path)
    text = bench.scale.markdown(result)
    (out_dir / f"{stem}.md").write_text(text)
    console.print(text, markup=False, highlight=False)
    for name, doc in result["systems"].items():
        for key, outcome in doc.get("curves", {}).items():
            if outcome.get("status") == "error":
                console.print(f"{name} {key}: error - {outcome.get('error')}", markup=False)
        if doc.get("status") == "error":
            console.print(f"{name}: error - {(doc.get('reason') or '').strip().splitlines()[-1:]}", markup=False)
    console.print(f"wrote {json_path}, {json_path.with_suffix('.md').name}" + (f" and {result['chart']}" if "chart" in result else ""))
    return EXIT_FAILED if bench.scale.has_errors(result) else EXIT_OK
