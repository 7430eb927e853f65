"""The table, the JSON file and the chart of one bench run.

Ratios are oriented so that > 1.0 means we are better: ours / peer for
rates, peer / ours for times. The chart shows every system relative to Ray
(Ray = 1.0) in the same orientation, one bar group per metric.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .rows import METRIC_BY_KEY, ROW_BY_KEY, Metric, Sizes, row_sizes_text

__all__ = [
    "better_ratio",
    "metric_value",
    "add_ratios",
    "render_table",
    "render_notes",
    "write_json",
    "draw_chart",
    "result_stem",
    "print_report",
    "markdown_table",
    "main",
]

PEERS = ("ray", "dask")


def better_ratio(ours: float, peer: float, metric: Metric) -> float:
    """> 1.0 when ``ours`` is better than ``peer`` on ``metric``."""
    if ours <= 0 or peer <= 0:
        raise ValueError(f"{metric.key}: cannot compare non-positive values {ours} and {peer}")
    return ours / peer if metric.better == "higher" else peer / ours


def metric_value(doc: dict[str, Any] | None, metric_key: str) -> float | None:
    """The median of ``metric_key`` in one system's document, or None."""
    if not doc:
        return None
    row = ROW_BY_KEY[_row_of(metric_key)].key
    outcome = doc.get("rows", {}).get(row, {})
    if outcome.get("status") != "ok":
        return None
    value = outcome.get("metrics", {}).get(metric_key, {}).get("median")
    return float(value) if isinstance(value, (int, float)) else None


def _row_of(metric_key: str) -> str:
    for row in ROW_BY_KEY.values():
        if any(m.key == metric_key for m in row.metrics):
            return row.key
    raise KeyError(metric_key)


def add_ratios(result: dict[str, Any]) -> dict[str, Any]:
    """``result["ratios"][metric][peer]``: our ratio to each peer (None when one side is missing)."""
    systems = result["systems"]
    ratios: dict[str, dict[str, float | None]] = {}
    for key in result["metrics"]:
        metric = METRIC_BY_KEY[key]
        ours = metric_value(systems.get("ours"), key)
        ratios[key] = {}
        for peer in PEERS:
            if peer not in systems:
                continue
            theirs = metric_value(systems[peer], key)
            ratios[key][peer] = None if ours is None or theirs is None else round(better_ratio(ours, theirs, metric), 4)
    result["ratios"] = ratios
    return result


def format_number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}".replace(",", " ")
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(doc: dict[str, Any] | None, metric_key: str) -> Text:
    if doc is None:
        return Text("-", style="dim")
    status = doc.get("status")
    if status in ("not installed", "not available"):
        return Text(status, style="dim")
    outcome = doc.get("rows", {}).get(_row_of(metric_key))
    if outcome is None:
        return Text("error" if status == "error" else "-", style="red" if status == "error" else "dim")
    if outcome.get("status") == "n/a":
        return Text("n/a", style="dim")
    if outcome.get("status") != "ok":
        return Text("error", style="red")
    value = metric_value(doc, metric_key)
    return Text(format_number(value)) if value is not None else Text("-", style="dim")


def _ratio_cell(ratio: float | None) -> Text:
    if ratio is None:
        return Text("-", style="dim")
    return Text(f"{ratio:.2f}x", style="green" if ratio >= 1.0 else "red")


def render_table(result: dict[str, Any]) -> Table:
    systems: dict[str, Any] = result["systems"]
    sizes = Sizes.from_json(result["sizes"])
    title = f"ownership bench, {result['date']}" + (" (quick sizes)" if result.get("quick") else "")
    table = Table(title=title, caption="medians over repeats; ratio > 1.0 means ours is better")
    table.add_column("row")
    table.add_column("size", style="dim")
    table.add_column("unit")
    for name in systems:
        table.add_column(name, justify="right")
    peers = [p for p in PEERS if p in systems] if "ours" in systems else []
    for peer in peers:
        table.add_column(f"ours/{peer}", justify="right")
    for key in result["metrics"]:
        metric = METRIC_BY_KEY[key]
        unit = f"{metric.unit} ({'↑' if metric.better == 'higher' else '↓'})"
        cells: list[Text | str] = [metric.title, row_sizes_text(_row_of(key), sizes), unit]
        cells += [_cell(doc, key) for doc in systems.values()]
        cells += [_ratio_cell(result.get("ratios", {}).get(key, {}).get(peer)) for peer in peers]
        table.add_row(*cells)
    return table


def render_notes(result: dict[str, Any]) -> Group:
    """One line per system (status, version, setup), then its row notes and failures."""
    lines: list[Text] = []
    machine = result.get("machine", {})
    lines.append(Text(
        f"machine: {machine.get('cores')} cores ({machine.get('cpu')}), {machine.get('memory_gib')} GiB, "
        f"{machine.get('python')}, {machine.get('os')}, load {machine.get('load_average_at_start')}",
        style="dim",
    ))
    for name, doc in result["systems"].items():
        status = doc.get("status")
        head = f"{name}: {status}"
        if doc.get("version"):
            head += f", version {doc['version']}"
        if doc.get("reason"):
            head += f" - {doc['reason'].strip().splitlines()[-1]}"
        lines.append(Text(head, style="bold" if status == "ok" else "yellow"))
        for what, setup in (doc.get("setup") or {}).items():
            lines.append(Text(f"  {what}: {setup}", style="dim"))
        for row, outcome in (doc.get("rows") or {}).items():
            if outcome.get("status") == "n/a":
                lines.append(Text(f"  {row}: n/a - {outcome.get('reason')}", style="dim"))
            elif outcome.get("status") == "error":
                lines.append(Text(f"  {row}: error - {outcome.get('error')}", style="red"))
        for row, note in (doc.get("notes") or {}).items():
            if row in result["rows"]:
                lines.append(Text(f"  {row}: {note}", style="dim"))
    return Group(*lines)


def result_stem(out_dir: Path, when: _dt.datetime | None = None) -> str:
    """``YYYY-MM-DD``, or ``YYYY-MM-DD-2``... when that day already has a result."""
    day = (when or _dt.datetime.now()).strftime("%Y-%m-%d")
    stem, n = day, 1
    while (out_dir / f"{stem}.json").exists() or (out_dir / f"{stem}.png").exists():
        n += 1
        stem = f"{day}-{n}"
    return stem


def write_json(result: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, sort_keys=False) + "\n")
    return path


def _chart_series(result: dict[str, Any]) -> tuple[list[str], dict[str, list[float | None]], list[str]]:
    """Per metric, each system relative to the baseline (Ray when it has a value)."""
    systems: dict[str, Any] = result["systems"]
    labels: list[str] = []
    series: dict[str, list[float | None]] = {name: [] for name in systems}
    baselines: list[str] = []
    for key in result["metrics"]:
        metric = METRIC_BY_KEY[key]
        values = {name: metric_value(doc, key) for name, doc in systems.items()}
        order = ["ray", *[n for n in systems if n != "ray"]]
        baseline = next((n for n in order if values.get(n) is not None), None)
        label = metric.title
        if baseline is not None and baseline != "ray":
            label += f"\n(vs {baseline})"
        labels.append(label)
        baselines.append(baseline or "")
        for name in systems:
            value = values[name]
            base = values.get(baseline) if baseline else None
            series[name].append(None if value is None or base is None else better_ratio(value, base, metric))
    return labels, series, baselines


def draw_chart(result: dict[str, Any], path: Path) -> Path:
    """A PNG: one bar group per metric, bars relative to Ray = 1.0, higher is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, series, baselines = _chart_series(result)
    names = list(series)
    fig, ax = plt.subplots(figsize=(max(8.0, 1.3 * len(labels) + 2), 5.0), dpi=110)
    width = 0.8 / max(1, len(names))
    plotted: list[float] = []
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(labels))]
        heights = [v if v is not None else 0.0 for v in series[name]]
        bars = ax.bar(xs, heights, width, label=name)
        for bar, value in zip(bars, series[name]):
            if value is None:
                ax.annotate("n/a", (bar.get_x() + bar.get_width() / 2, 0.02), xycoords=("data", "axes fraction"),
                            ha="center", va="bottom", fontsize=7, rotation=90)
            else:
                plotted.append(value)
                ax.annotate(f"{value:.0f}" if value >= 10 else f"{value:.2g}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    if plotted and max(plotted) / max(min(plotted), 1e-9) > 30:
        ax.set_yscale("log")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8, rotation=20, ha="right")
    if all(b in ("ray", "") for b in baselines):
        ax.set_ylabel("relative to Ray (= 1.0), higher is better")
    else:  # Ray missing somewhere: the group's label names its baseline
        ax.set_ylabel("relative to Ray or the named baseline (= 1.0), higher is better", fontsize=8)
    machine = result.get("machine", {})
    load = machine.get("load_average_at_start") or ["?"]
    ax.set_title(
        f"ownership bench {result['date'][:10]}{' (quick)' if result.get('quick') else ''}: "
        f"{machine.get('cores')} cores, {machine.get('python')}, load {load[0]} at start",
        fontsize=10,
    )
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def print_report(result: dict[str, Any], console: Console) -> None:
    console.print(render_table(result))
    console.print(render_notes(result))


def markdown_table(result: dict[str, Any]) -> str:
    """The table as GitHub markdown, for the README's performance section."""
    systems: dict[str, Any] = result["systems"]
    sizes = Sizes.from_json(result["sizes"])
    peers = [p for p in PEERS if p in systems] if "ours" in systems else []
    head = ["row", "size", "unit", *systems, *[f"ours/{p}" for p in peers]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for key in result["metrics"]:
        metric = METRIC_BY_KEY[key]
        cells = [metric.title, row_sizes_text(_row_of(key), sizes), f"{metric.unit} ({'higher' if metric.better == 'higher' else 'lower'} is better)"]
        cells += [_cell(doc, key).plain for doc in systems.values()]
        for peer in peers:
            ratio = result.get("ratios", {}).get(key, {}).get(peer)
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    machine = result.get("machine", {})
    versions = machine.get("versions", {})
    lines.append("")
    lines.append(
        f"{result['date']}{' (quick sizes)' if result.get('quick') else ''}; {machine.get('cores')} cores "
        f"({machine.get('cpu')}), {machine.get('python')}, {machine.get('os')}; load {machine.get('load_average_at_start')} at start; "
        + ", ".join(f"{k} {versions[k]}" for k in ("ownership", "ray", "dask", "numpy") if k in versions)
        + ". Medians over repeats; a ratio above 1.0 means ours is better."
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Re-render a saved result: ``python -m bench.report FILE.json [--markdown] [--chart PNG]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    parser.add_argument("result", type=Path)
    parser.add_argument("--markdown", action="store_true", help="print the markdown table instead of the rich one")
    parser.add_argument("--chart", type=Path, default=None, help="also draw the chart to this PNG")
    args = parser.parse_args(argv)
    try:
        result = json.loads(args.result.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        parser.error(f"cannot read {args.result}: {exc}")
    if "ratios" not in result:
        add_ratios(result)
    if args.markdown:
        print(markdown_table(result), end="")
    else:
        print_report(result, Console(width=140))
    if args.chart is not None:
        draw_chart(result, args.chart)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
