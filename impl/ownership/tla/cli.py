"""``ownership check``: model-check the specs with TLC from the command line.

::

    ownership check spec/MCScheduling.tla --config spec/MCScheduling_Small.cfg
    ownership check Scheduling --config Small        # by manifest (spec/Scheduling.json)
    ownership check --all --config Large             # every spec with a Large config

A target is a ``.tla`` file, a manifest (``spec/<Spec>.json``), or the name
of a spec or model that a manifest describes. ``--config`` is a file or the
name of a config in the manifest (``Small`` -> ``MCScheduling_Small.cfg``);
without it a manifest's CI configs are checked, or ``<Spec>.cfg``.

Exit status: 0 when every check succeeds, 1 when one finds a violation, 2 for
bad usage or a spec TLC cannot check (parse, semantic, config errors).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .tlc import CheckResult, JavaNotFound, Progress, TraceState, check
from .values import format_value, is_identifier, sort_key

__all__ = ["add_subparsers", "CheckTarget", "CheckUsageError", "resolve_targets", "run_check"]

EXIT_OK, EXIT_VIOLATION, EXIT_ERROR = 0, 1, 2
DEFAULT_SIMULATION_SECONDS = 60.0


class CheckUsageError(Exception):
    """A target or config that cannot be resolved; the message says why."""


@attrs.frozen
class CheckTarget:
    """One TLC run to make: which model, which config, what to expect."""

    label: str
    spec: Path
    config: Path
    deadlock: bool = True
    expected_distinct_states: int | None = None


def _default_spec_dir() -> Path:
    here = Path.cwd() / "spec"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "spec"


def _load_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except OSError as exc:
        raise CheckUsageError(f"cannot read manifest {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CheckUsageError(f"manifest {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("configs"), dict):
        raise CheckUsageError(f"manifest {path} has no 'configs' object")
    if "model" not in manifest and "module" not in manifest:
        raise CheckUsageError(f"manifest {path} names neither a 'model' nor a 'module'")
    return manifest


def _manifests(spec_dir: Path) -> dict[Path, dict[str, Any]]:
    return {
        path: _load_manifest(path)
        for path in sorted(spec_dir.glob("*.json"))
        if path.name != "manifest.json"
    }


def _manifest_targets(path: Path, manifest: dict[str, Any], config: str | None) -> list[CheckTarget]:
    model = path.parent / manifest.get("model", manifest.get("module"))
    configs: dict[str, Any] = manifest["configs"]
    if config is None:
        names = [name for name, entry in configs.items() if entry.get("ci")] or list(configs)
    elif config in configs:
        names = [config]
    else:
        file = Path(config)
        if file.is_file():
            return [CheckTarget(f"{path.stem} {file.name}", model, file.resolve(), manifest.get("deadlock", True))]
        raise CheckUsageError(
            f"{path.name} has no config {config!r} (it has: {', '.join(configs) or 'none'})"
        )
    targets = []
    for name in names:
        entry = configs[name]
        if "file" not in entry:
            raise CheckUsageError(f"config {name!r} in {path.name} names no 'file'")
        targets.append(
            CheckTarget(
                label=f"{path.stem} {name}",
                spec=model,
                config=path.parent / entry["file"],
                deadlock=manifest.get("deadlock", True),
                expected_distinct_states=entry.get("distinct_states"),
            )
        )
    return targets


def resolve_targets(
    target: str | None, config: str | None, *, all_specs: bool, spec_dir: Path | None = None
) -> list[CheckTarget]:
    """What ``ownership check`` should run, or a :class:`CheckUsageError`."""
    spec_dir = spec_dir if spec_dir is not None else _default_spec_dir()
    if all_specs:
        if target is not None:
            raise CheckUsageError("give either a spec or --all, not both")
        if not spec_dir.is_dir():
            raise CheckUsageError(f"spec directory {spec_dir} does not exist")
        manifests = _manifests(spec_dir)
        if not manifests:
            raise CheckUsageError(f"no spec manifests (*.json) in {spec_dir}")
        targets = []
        for path, manifest in manifests.items():
            if config is not None and config not in manifest["configs"]:
                continue  # --all --config Large: the specs that have a Large config
            targets += _manifest_targets(path, manifest, config)
        if not targets:
            raise CheckUsageError(f"no manifest in {spec_dir} has a config named {config!r}")
        return targets
    if target is None:
        raise CheckUsageError("name a spec, model or manifest to check, or pass --all")

    path = Path(target)
    if path.suffix == ".json":
        if not path.is_file():
            raise CheckUsageError(f"manifest not found: {path}")
        return _manifest_targets(path.resolve(), _load_manifest(path), config)
    if path.suffix == ".tla":
        if not path.is_file():
            raise CheckUsageError(f"spec not found: {path}")
        path = path.resolve()
        manifest_hit = _manifest_for_file(path)
        if config is not None and Path(config).is_file():
            return [CheckTarget(path.name, path, Path(config).resolve(), manifest_hit[1].get("deadlock", True) if manifest_hit else True)]
        if manifest_hit is not None:
            return _manifest_targets(*manifest_hit, config)
        if config is not None:
            for candidate in (path.parent / config, path.parent / f"{config}.cfg", path.parent / f"{path.stem}_{config}.cfg"):
                if candidate.is_file():
                    return [CheckTarget(f"{path.name} {candidate.name}", path, candidate)]
            raise CheckUsageError(f"config not found: {config} (no such file, and no manifest describes {path.name})")
        default = path.with_suffix(".cfg")
        if not default.is_file():
            raise CheckUsageError(f"no config given and {default.name} does not exist; pass --config")
        return [CheckTarget(path.name, path, default)]

    # A bare name: a spec (manifest stem) or a model/module a manifest names.
    for manifest_path, manifest in _manifests(spec_dir).items() if spec_dir.is_dir() else ():
        names = {manifest_path.stem, Path(manifest.get("model", "")).stem, Path(manifest.get("module", "")).stem}
        if target in names:
            return _manifest_targets(manifest_path, manifest, config)
    raise CheckUsageError(f"{target!r} is not a .tla file, a manifest, or a spec described in {spec_dir}")


def _manifest_for_file(spec: Path) -> tuple[Path, dict[str, Any]] | None:
    if not spec.parent.is_dir():
        return None
    # The configs in a manifest belong to its model (the module it checks).
    for path, manifest in _manifests(spec.parent).items():
        if spec.name == manifest.get("model", manifest.get("module")):
            return path, manifest
    return None


# ---------------------------------------------------------------------------
# Printing results
# ---------------------------------------------------------------------------


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


#: the auxiliary variable our specs keep: the action taken, with its parameters
LAST_ACTION = "lastAction"


def _key(k: Any) -> str:
    return format_value(k)


def value_changes(name: str, old: Any, new: Any) -> list[str]:
    """What changed from ``old`` to ``new``, one line per changed entry.

    Functions and records are compared key by key (``local[b1]: 0 -> 1``,
    ``msg.type: ...``), nested ones too; sets by element (``up: - n2``);
    sequences by position, or as the elements appended; anything else as
    ``name: old -> new``. A key only one side has shows ``(none)`` there.
    """
    if old == new:
        return []
    # An empty function prints (and parses) as the empty sequence <<>>.
    if isinstance(new, Mapping) and not old and isinstance(old, (tuple, Mapping)):
        old = {}
    if isinstance(old, Mapping) and not new and isinstance(new, (tuple, Mapping)):
        new = {}
    if isinstance(old, Mapping) and isinstance(new, Mapping) and (old or new):
        record = all(isinstance(k, str) and is_identifier(k) for k in (*old, *new))
        lines = []
        for k in sorted(set(old) | set(new), key=sort_key):
            path = f"{name}.{k}" if record else f"{name}[{_key(k)}]"
            if k not in old:
                lines.append(f"{path}: (none) -> {format_value(new[k])}")
            elif k not in new:
                lines.append(f"{path}: {format_value(old[k])} -> (none)")
            else:
                lines.extend(value_changes(path, old[k], new[k]))
        return lines
    if isinstance(old, (frozenset, set)) and isinstance(new, (frozenset, set)):
        return [f"{name}: + {format_value(x)}" for x in sorted(new - old, key=sort_key)] + [
            f"{name}: - {format_value(x)}" for x in sorted(old - new, key=sort_key)
        ]
    if isinstance(old, tuple) and isinstance(new, tuple):
        if len(old) == len(new):
            lines = []
            for i, (a, b) in enumerate(zip(old, new), start=1):
                lines.extend(value_changes(f"{name}[{i}]", a, b))
            return lines
        if new[: len(old)] == old:
            return [f"{name}: + {format_value(x)} (appended)" for x in new[len(old) :]]
        if old[: len(new)] == new:
            return [f"{name}: - {format_value(x)} (removed from the end)" for x in old[len(new) :]]
    return [f"{name}: {format_value(old)} -> {format_value(new)}"]


def action_label(step: TraceState) -> str:
    """The step's action with its parameters, ``Name(p=o, c=b1)``, when the
    spec records them in ``lastAction`` (``[name |-> "Name", params |-> [...]]``,
    or the parameters as fields beside the name); else the action TLC names."""
    last = step.state.get(LAST_ACTION)
    if isinstance(last, Mapping) and isinstance(last.get("name"), str):
        params = last.get("params")
        if not isinstance(params, Mapping):  # [name |-> "A", p |-> p1]: the other fields
            params = {k: v for k, v in last.items() if k != "name"}
        if params:
            return f"{last['name']}(" + ", ".join(f"{k}={format_value(v)}" for k, v in params.items()) + ")"
        return str(last["name"])
    return step.action


def _trace_table(trace: Sequence[TraceState]) -> Table:
    table = Table(show_header=True, header_style="bold", show_lines=True, expand=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("action", style="cyan", overflow="fold", max_width=40)
    table.add_column("what changed")
    previous: dict[str, Any] | None = None
    for step in trace:
        body = Text()
        last = step.state.get(LAST_ACTION)
        labelled = isinstance(last, Mapping) and isinstance(last.get("name"), str)
        lines: list[tuple[str, str]] = []
        for name, value in step.state.items():
            if labelled and name == LAST_ACTION:
                continue  # shown in the action column
            if previous is None or name not in previous:
                lines.append((name, " = " + format_value(value)))
            else:
                for change in value_changes(name, previous[name], value):
                    head, _, rest = change.partition(":")
                    lines.append((head, ":" + rest))
        for i, (name, rest) in enumerate(lines):
            if i:
                body.append("\n")
            body.append(name, style="bold")
            body.append(rest)
        if not lines:
            body.append("(no change)", style="dim")
        table.add_row(str(step.index), Text(action_label(step)), body)  # Text: "[...]" is not markup
        previous = step.state
    return table


def _print_result(console: Console, target: CheckTarget, result: CheckResult) -> int:
    if result.errors:
        console.print(f"[bold red]✗ {target.label}: TLC could not check the model[/]")
        for error in result.errors:
            where = _display_path(error.file) if error.file else ""
            if error.line is not None:
                where += f":{error.line}" + (f":{error.column}" if error.column is not None else "")
            # soft_wrap: a file:line:col must stay whole for editors to jump to it.
            console.print(f"  [red]{error.kind} error[/] {where}".rstrip(), highlight=False, soft_wrap=True)
            console.print(Text("    " + error.text.replace("\n", "\n    ")), soft_wrap=True)
            if error.trace:
                console.print("  [dim]behaviour up to the failing evaluation:[/]")
                console.print(_trace_table(error.trace))
        return EXIT_ERROR
    violation = result.violation
    if violation is not None:
        what = {
            "invariant": f"invariant {violation.name} violated",
            "property": f"property {violation.name or '(unnamed)'} violated",
            "deadlock": "deadlock reached",
        }.get(violation.kind, f"{violation.kind} violated")
        console.print(f"[bold red]✗ {target.label}: {what}[/] after {len(violation.trace)} states")
        console.print(_trace_table(violation.trace))
        if violation.loop is not None:
            console.print(f"  then back to state {violation.loop}" + (f" by {violation.loop_action}" if violation.loop_action else ""))
        if violation.stuttering:
            console.print("  then stutters forever")
        return EXIT_VIOLATION
    if not result.ok:
        reason = "timed out" if result.timed_out else f"TLC exited with code {result.exit_code}"
        console.print(f"[bold red]✗ {target.label}: {reason} before finishing[/]")
        return EXIT_ERROR
    numbers = []
    if result.distinct_states is not None:
        numbers.append(f"{result.distinct_states:,} distinct states")
    if result.states_generated is not None:
        numbers.append(f"{result.states_generated:,} generated")
    if result.depth is not None:
        numbers.append(f"depth {result.depth}")
    if result.duration is not None:
        numbers.append(f"{result.duration:.1f} s")
    console.print(f"[bold green]✓ {target.label}[/]: " + ", ".join(numbers), highlight=False)
    expected = target.expected_distinct_states
    if expected is not None and result.distinct_states is not None and expected != result.distinct_states:
        console.print(
            f"  [yellow]the manifest records {expected:,} distinct states for this config: update it if the model changed[/]"
        )
    return EXIT_OK


def run_check(args: argparse.Namespace, console: Console | None = None) -> int:
    """The ``check`` command."""
    console = console or Console()
    try:
        targets = resolve_targets(args.target, args.config, all_specs=args.all, spec_dir=args.spec_dir)
    except CheckUsageError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_ERROR
    timeout = args.timeout
    if args.simulate and args.traces is None and timeout is None:
        timeout = DEFAULT_SIMULATION_SECONDS
        console.print(f"[dim]simulating for {timeout:.0f} s (set --traces or --timeout)[/]")

    status = EXIT_OK
    summary: list[tuple[CheckTarget, CheckResult, int]] = []
    for target in targets:
        with console.status(f"{target.label}: starting TLC") as spinner:

            def progress(p: Progress, spinner: Any = spinner, target: CheckTarget = target) -> None:
                found = f"{p.distinct_states:,} distinct states" if p.distinct_states is not None else ""
                parts = [x for x in (found, f"{p.states_generated:,} generated") if x]
                if p.left_on_queue is not None:
                    parts.append(f"{p.left_on_queue:,} on queue")
                spinner.update(f"{target.label}: " + ", ".join(parts))

            try:
                result = check(
                    target.spec,
                    target.config,
                    workers=args.workers,
                    seed=args.seed,
                    depth=args.depth,
                    simulate=args.simulate,
                    traces=args.traces,
                    deadlock=target.deadlock,
                    timeout=timeout,
                    on_progress=progress,
                )
            except JavaNotFound as exc:
                console.print(f"[bold red]error:[/] {exc}", highlight=False)
                return EXIT_ERROR
            except (FileNotFoundError, ValueError) as exc:
                console.print(f"[bold red]error:[/] {target.label}: {exc}", highlight=False)
                status = max(status, EXIT_ERROR)
                continue
        code = _print_result(console, target, result)
        summary.append((target, result, code))
        status = max(status, code)

    if len(summary) > 1:
        table = Table(title="summary", show_header=True, header_style="bold")
        for column in ("spec / config", "result", "distinct states", "seconds"):
            table.add_column(column)
        for target, result, code in summary:
            verdict = {EXIT_OK: "[green]ok[/]", EXIT_VIOLATION: "[red]violation[/]"}.get(code, "[red]error[/]")
            distinct = f"{result.distinct_states:,}" if result.distinct_states is not None else "-"
            seconds = f"{result.duration:.1f}" if result.duration is not None else "-"
            table.add_row(target.label, verdict, distinct, seconds)
        console.print(table)
    return status


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


_CHECK_DESCRIPTION = """\
Model-check the specs with TLC. A target is a .tla file, a manifest
(spec/<Spec>.json), or the name of a spec or model a manifest describes.
--config is a config file, or the name of a config in the manifest
(Small -> MCScheduling_Small.cfg); without it a manifest's CI configs are
checked, or <Spec>.cfg.

Exit status: 0 when every check succeeds, 1 when one finds a violation, 2
for bad usage or a spec TLC cannot check (parse, semantic, config errors).
A violation prints the behaviour as a table: each step's action with its
parameters, and only what changed (local[b1]: 0 -> 1)."""

_CHECK_EPILOG = """\
examples:
  ownership check --all                                # every spec's CI configs
  ownership check Scheduling --config Small
  ownership check --all --config Large                 # minutes
  ownership check spec/MCScheduling.tla --config spec/MCScheduling_Small.cfg
  ownership check Scheduling --config Large --simulate --depth 50 --timeout 60
"""


def config_listing(spec_dir: Path | None = None) -> str:
    """Every config of every spec, from the manifests: ``Scheduling: Small (CI), ...``."""
    spec_dir = spec_dir if spec_dir is not None else _default_spec_dir()
    try:
        manifests = _manifests(spec_dir) if spec_dir.is_dir() else {}
    except CheckUsageError:
        return ""
    lines = []
    for path, manifest in manifests.items():
        names = [f"{name} (CI)" if entry.get("ci") else name for name, entry in manifest["configs"].items()]
        lines.append(f"  {path.stem}: {', '.join(names)}")
    return "configs of the specs in " + _display_path(spec_dir) + ":\n" + "\n".join(lines) + "\n" if lines else ""


def add_subparsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``check`` on the ``ownership`` command."""
    parser = subparsers.add_parser(
        "check",
        help="model-check a TLA+ spec with TLC",
        description=_CHECK_DESCRIPTION,
        epilog=_CHECK_EPILOG + ("\n" + listing if (listing := config_listing()) else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", nargs="?", metavar="SPEC_OR_MODEL", help=".tla file, spec/<Spec>.json, or a spec name")
    parser.add_argument(
        "--config",
        metavar="NAME_OR_FILE",
        help="config file, or the name of a config in the spec's manifest (listed below)",
    )
    parser.add_argument("--workers", type=_positive, default=1, help="TLC worker threads (default 1)")
    parser.add_argument("--seed", type=int, help="random seed (simulation, fingerprints)")
    parser.add_argument("--depth", type=_positive, help="maximum behaviour length when simulating")
    parser.add_argument("--simulate", action="store_true", help="check random behaviours instead of all states")
    parser.add_argument("--traces", type=_positive, help="number of behaviours to simulate")
    parser.add_argument("--timeout", type=float, help="stop TLC after this many seconds")
    parser.add_argument("--all", action="store_true", help="check every spec described by spec/*.json")
    parser.add_argument("--spec-dir", type=Path, default=None, help="where the manifests live (default: ./spec)")
    parser.set_defaults(func=_run_from_args)
    parser.set_defaults(_check_parser=parser)


def _run_from_args(args: argparse.Namespace) -> int:
    if (args.depth is not None or args.traces is not None) and not args.simulate:
        args._check_parser.error("--depth and --traces apply to --simulate only (TLC 2.15)")
    return run_check(args)
