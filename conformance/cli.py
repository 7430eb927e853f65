"""``ownership traces generate`` and ``ownership conformance run|validate``.

::

    ownership traces generate Scheduling --config Small --cover actions
    ownership conformance run traces/
    ownership conformance validate run.ndjson --spec Scheduling

Exit status: 0 when everything passed, 1 when a trace diverged or a log was
rejected, 2 for bad usage or a checker that could not run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

__all__ = ["add_subparsers"]

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2
_FORMATTER = argparse.RawDescriptionHelpFormatter


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# ---------------------------------------------------------------------------
# traces generate
# ---------------------------------------------------------------------------


def _run_generate(args: argparse.Namespace, console: Console | None = None) -> int:
    from ownership.tla.tlc import JavaNotFound

    from .generate import GenerationError, config_cover, generate
    from .specs import SpecError, default_spec_dir, known_specs, resolve_spec

    console = console or Console(soft_wrap=True)
    spec_dir = args.spec_dir or default_spec_dir()
    names = args.specs
    if not names:
        from .mappings import load_mapping

        # By default the specs whose traces the harness replays: the corpus
        # under traces/ is what `conformance run` checks.
        names = []
        for name in known_specs(spec_dir):
            cls = load_mapping(name)
            if cls is None or getattr(cls, "log_only", None):
                why = getattr(cls, "log_only", None) or "no mapping in conformance/mappings/"
                console.print(f"[dim]{name}: not traced by default ({why}); name it to generate its traces anyway[/]", highlight=False)
            else:
                names.append(name)
    if not names:
        console.print(f"[bold red]error:[/] no spec manifests (*.json) in {spec_dir}; name a spec", highlight=False)
        return EXIT_ERROR
    status = EXIT_OK
    for name in names:
        try:
            spec = resolve_spec(name, spec_dir)
            out = (args.out or Path("traces")) / spec.name
            cover = args.cover or config_cover(spec, args.config)
            with console.status(f"{spec.name}: starting") as spinner:
                result = generate(
                    spec,
                    args.config,
                    out,
                    cover=cover,
                    max_paths=args.max,
                    graph=not args.tests_only,
                    tests=not args.no_tests,
                    workers=args.workers,
                    on_status=spinner.update,
                )
        except (SpecError, GenerationError, JavaNotFound, FileNotFoundError) as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            status = EXIT_ERROR
            continue
        g = result.graph
        if g:
            console.print(
                f"[bold green]✓ {result.spec} {result.config}[/]: {g['states']:,} states, {g['edges']:,} edges, "
                f"{len(g['actions'])} actions ({g['action_params']:,} with parameters) -> "
                f"{g['traces']:,} traces covering {cover} ({g['steps']:,} steps) in {out}",
                highlight=False,
            )
        if result.tests:
            console.print(f"  {len(result.tests)} targeted traces: " + ", ".join(sorted(result.tests)), highlight=False)
        for test, why in sorted(result.missing_tests.items()):
            console.print(f"  [yellow]no trace for {test}[/]: {why}", highlight=False)
            status = max(status, EXIT_FAILED)
    return status


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------


def add_subparsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``traces`` and ``conformance`` on the ``ownership`` command."""
    traces = subparsers.add_parser(
        "traces",
        help="ITF traces generated from the specs' state graphs",
        description="Generate ITF traces from the specs' state graphs (ownership traces generate --help).",
        formatter_class=_FORMATTER,
    )
    traces_sub = traces.add_subparsers(dest="traces_command", metavar="COMMAND")
    gen = traces_sub.add_parser(
        "generate",
        help="cover a model's state graph with paths and write them as ITF traces",
        description="Run TLC on a spec's model (without its VIEW), cover the state graph's edges or "
        "actions with paths from the initial state, and write each path as an ITF trace under "
        "traces/<Spec>/; add one targeted trace per Test* predicate of the spec's tests module.",
        epilog="""\
examples:
  ownership traces generate                                   # every traced spec, Small config
  ownership traces generate Scheduling --config Small
  ownership traces generate Scheduling --config Medium --no-tests --out /tmp/covers
""",
        formatter_class=_FORMATTER,
    )
    gen.add_argument("specs", nargs="*", metavar="SPEC", help="spec names (default: every spec/*.json)")
    gen.add_argument("--config", default="Small", metavar="NAME_OR_FILE", help="model config (default: Small)")
    gen.add_argument(
        "--cover",
        choices=("edges", "actions"),
        default=None,
        help="what the paths must cover (default: the config's conformance cover in its manifest, else edges)",
    )
    gen.add_argument("--max", type=_positive, metavar="N", help="write at most N covering paths")
    gen.add_argument("--out", type=Path, metavar="DIR", help="traces root (default: ./traces)")
    gen.add_argument("--spec-dir", type=Path, default=None, help="where the specs live (default: ./spec)")
    gen.add_argument("--workers", type=_positive, default=1, help="TLC worker threads (default 1)")
    what = gen.add_mutually_exclusive_group()
    what.add_argument("--no-tests", action="store_true", help="skip the targeted traces of the Test* predicates")
    what.add_argument("--tests-only", action="store_true", help="only the targeted traces (no state graph)")
    gen.set_defaults(func=_run_generate)
    traces.set_defaults(func=lambda _args, p=traces: (p.print_help(), EXIT_ERROR)[1])
    _add_conformance(subparsers)



# ---------------------------------------------------------------------------
# conformance run
# ---------------------------------------------------------------------------


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


def _run_replay(args: argparse.Namespace, console: Console | None = None) -> int:
    import json

    import trio

    from .coverage import coverage, find_indexes
    from .replay import TraceError, load_traces, replay
    from .shrink import shrink

    console = console or Console(soft_wrap=True)
    paths = [Path(p) for p in (args.paths or ["traces"])]
    try:
        traces = load_traces(paths)
    except (TraceError, FileNotFoundError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_ERROR
    if not traces:
        console.print(f"[bold red]error:[/] no *.itf.json traces under {', '.join(map(str, paths))}", highlight=False)
        return EXIT_ERROR

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a log or a pipe gets the results only
    )

    async def main() -> list[Any]:
        results = []
        bar = progress.add_task("replaying", total=len(traces))
        for path, trace in traces:
            progress.update(bar, description=f"replaying {_trace_name(path)}")
            try:
                result = await replay(trace, source=str(path), timeout=args.timeout)
            except TraceError as exc:
                console.print(f"[bold red]error:[/] {exc}", highlight=False)
                results.append(None)
                progress.advance(bar)
                continue
            results.append(result)
            progress.advance(bar)
            if args.verbose or not result.passed:
                mark = "[green]✓[/]" if result.passed else "[bold red]✗[/]"
                console.print(f"{mark} {path} ({result.length - 1} steps, {result.seconds:.2f} s)", highlight=False)
            if result.divergence is not None:
                console.print(result.divergence.describe(), highlight=False, markup=False, soft_wrap=True)
                if not args.no_shrink:
                    corpus = [t for _p, t in traces]
                    from .mappings import load_mapping

                    cls = load_mapping(result.spec)
                    shrunk = await shrink(trace, result.divergence, corpus, eager=cls.eager if cls else frozenset(), source=str(path), timeout=args.timeout)
                    if shrunk is not None:
                        div = shrunk.result.divergence
                        console.print(
                            f"  shrunk to {len(shrunk.trace.states) - 1} steps (from {shrunk.original_length - 1}), "
                            f"diverging at step {div.step if div else '?'}:",
                            highlight=False,
                        )
                        for step in div.steps[1:] if div else ():
                            console.print(f"    {step.index}. {step}", highlight=False, markup=False, soft_wrap=True)
                    else:
                        console.print("  no shorter diverging trace found", highlight=False)
                if args.exitfirst:
                    break
        return results

    with progress:
        results = trio.run(main)
    done = [r for r in results if r is not None]
    status = EXIT_OK if len(done) == len(results) else EXIT_ERROR
    groups: dict[str, list[Any]] = {}
    for r in done:
        groups.setdefault(f"{r.spec}/{r.config}", []).append(r)
    for name, rs in sorted(groups.items()):
        passed = sum(1 for r in rs if r.passed)
        steps = sum(r.length - 1 for r in rs)
        color = "green" if passed == len(rs) else "red"
        console.print(f"[bold {color}]{name}: {passed} of {len(rs)} traces passed[/] ({steps:,} steps)", highlight=False)
        if passed != len(rs):
            status = max(status, EXIT_FAILED)
    cov = coverage(done, find_indexes(paths))
    for name, entry in cov.items():
        edges, actions, params = entry["edges"], entry["actions"], entry["action_params"]
        if "total" in edges:
            line = (
                f"coverage {name}: edges {edges['exercised']:,}/{edges['total']:,} ({_pct(edges['share'])}), "
                f"actions {len(actions['exercised'])}/{actions['total']} ({_pct(actions['share'])}), "
                f"actions with parameters {params['exercised']}/{params['total']} ({_pct(params['share'])})"
            )
            if edges.get("beyond"):
                line += f"; targeted traces: {edges['beyond']:,} edges more, outside the covered graph"
            if actions.get("missed"):
                line += f"; never exercised: {', '.join(actions['missed'])}"
        else:
            line = f"coverage {name}: {edges['exercised']:,} edges, {len(actions['exercised'])} actions (no graph index next to the traces)"
        console.print(line, highlight=False)
    out = args.coverage or default_coverage_path()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(cov, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        console.print(f"[bold red]error:[/] cannot write coverage to {out}: {exc.strerror or exc}", highlight=False)
        return max(status, EXIT_ERROR)
    console.print(f"coverage written to {out}", highlight=False)
    return status


def default_coverage_path() -> Path:
    """Where ``conformance run`` writes coverage unless told: a cache folder,
    never the working tree (``$XDG_CACHE_HOME/ownership``, else ``~/.cache/ownership``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ownership" / "coverage.json"


def _trace_name(path: Path) -> str:
    """``Scheduling/Small_edges_0007`` rather than the whole path."""
    return "/".join(path.parts[-2:]).removesuffix(".itf.json")


def _add_conformance(subparsers: Any) -> None:
    conf = subparsers.add_parser(
        "conformance",
        help="check the implementation against the specs, in both directions",
        description="Replay spec traces on the implementation (run), and check implementation event logs "
        "against the specs with TLC (log, validate).",
        formatter_class=_FORMATTER,
    )
    sub = conf.add_subparsers(dest="conformance_command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="replay ITF traces on the in-memory cluster and compare every settled state",
        description="Replay each trace stimulus by stimulus on an in-memory cluster shaped like the model, "
        "compare the mapping's projection of the implementation with the trace after every settled step, "
        "report the first divergence with a diff and a shrunk trace, and the spec-level coverage reached. "
        "On a terminal a progress bar shows the trace being replayed.",
        epilog="""\
examples:
  ownership conformance run                       # every trace under traces/
  ownership conformance run traces/Scheduling -v
  ownership conformance run /tmp/covers --no-shrink --coverage-out /tmp/covers/coverage.json
""",
        formatter_class=_FORMATTER,
    )
    run.add_argument("paths", nargs="*", metavar="PATH", help="trace files or folders (default: traces/)")
    run.add_argument(
        "--coverage-out",
        "--coverage",
        dest="coverage",
        type=Path,
        metavar="FILE",
        help="where to write coverage JSON (default: ~/.cache/ownership/coverage.json, or under $XDG_CACHE_HOME)",
    )
    run.add_argument("--timeout", type=float, default=60.0, help="seconds one trace may take (default 60)")
    run.add_argument("--no-shrink", action="store_true", help="do not search for shorter diverging traces")
    run.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first trace that diverges")
    run.add_argument("-v", "--verbose", action="store_true", help="list every trace, not only failures")
    run.set_defaults(func=_run_replay)
    _add_validate(sub)
    conf.set_defaults(func=lambda _args, p=conf: (p.print_help(), EXIT_ERROR)[1])


# ---------------------------------------------------------------------------
# conformance validate / log
# ---------------------------------------------------------------------------


def _header_spec(log: Path) -> tuple[str | None, str | None]:
    from .eventlog import read_log

    header, _lines = read_log(log)
    return header.get("spec"), header.get("config")


def _run_validate(args: argparse.Namespace, console: Console | None = None) -> int:
    from ownership.tla.tlc import JavaNotFound

    from .eventlog import LogFormatError
    from .generate import GenerationError
    from .specs import SpecError, resolve_spec
    from .validate import validate

    console = console or Console(soft_wrap=True)
    if (args.log is None) == (args.from_dir is None):
        console.print("[bold red]error:[/] give an event log LOG or --from-dir DIR (one of the two)", highlight=False)
        return EXIT_ERROR
    if args.from_dir is not None:
        return _run_validate_run(args, console)
    try:
        spec_name, config = _header_spec(args.log)
        spec = resolve_spec(args.spec or spec_name or "", args.spec_dir)
        config = args.config or config or "Small"
        with console.status(f"TLC is checking {args.log} against {spec.name} ({config})"):
            v = validate(args.log, spec, config, workers=args.workers)
    except (LogFormatError, SpecError, GenerationError, JavaNotFound, FileNotFoundError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_ERROR
    if v.accepted:
        console.print(
            f"[bold green]accepted[/]: {spec.name} ({config}) can take all {v.lines} lines of {args.log} in order ({v.seconds:.1f} s)",
            highlight=False,
        )
        return EXIT_OK
    from ownership.tla.values import format_value

    from .replay import Step

    console.print(
        f"[bold red]rejected[/]: {spec.name} ({config}) takes the first {v.consumed} of {v.lines} lines of {args.log}; "
        f"no behaviour can take line {v.consumed + 1}:",
        highlight=False,
    )
    if v.failed is not None:
        step = Step(v.consumed + 1, v.failed.action, v.failed.params)
        console.print(f"  clock {v.failed.clock}, {v.failed.process}: {step}", highlight=False, markup=False, soft_wrap=True)
    if v.state is not None:
        console.print("  a state the spec can be in just before it:", highlight=False)
        for name, value in sorted(v.state.items()):
            console.print(f"    {name} = {format_value(value)}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_FAILED


def _run_validate_run(args: argparse.Namespace, console: Console) -> int:
    """``validate --from-dir``: a TCP run's Scheduling log, the model sized
    from the run, checked a window at a time (conformance.sized.validate_log)."""
    from ownership.tla.tlc import JavaNotFound

    from .generate import GenerationError
    from .merge import StepLogError, merge_dir
    from .sized import validate_log

    if args.spec not in (None, "Scheduling") or args.config is not None:
        console.print("[bold red]error:[/] --from-dir checks the Scheduling log with a model sized from the run: "
                      "no other --spec, and no --config", highlight=False)
        return EXIT_ERROR
    if not args.from_dir.is_dir():
        console.print(f"[bold red]error:[/] --from-dir {args.from_dir}: no such folder", highlight=False)
        return EXIT_ERROR
    try:
        run = merge_dir(args.from_dir)
        with console.status(f"TLC is checking the Scheduling log of {args.from_dir}") as status:
            def progress(done: int, total: int) -> None:
                status.update(f"TLC is checking the Scheduling log of {args.from_dir}: {done:,} of {total:,} lines")

            out = validate_log(run, window=args.window, limit=args.lines, on_window=progress)
    except (StepLogError, GenerationError, JavaNotFound, ValueError, OSError) as exc:
        console.print(f"[bold red]error:[/] {str(exc).splitlines()[0]}", highlight=False)
        return EXIT_ERROR
    from rich.markup import escape

    for note in out.get("notes", ()):
        console.print(f"  note: {note}", highlight=False, markup=False)
    if out["accepted"]:
        console.print(f"[bold green]accepted[/]: {escape(out['summary'])}", highlight=False)
        return EXIT_OK
    console.print(f"[bold red]rejected[/]: {escape(out['summary'])}", highlight=False)
    if out.get("state"):
        console.print("  a state the spec can be in just before it:", highlight=False)
        for name, value in out["state"].items():
            console.print(f"    {name} = {value}", highlight=False, markup=False, soft_wrap=True)
    return EXIT_FAILED


def _run_log(args: argparse.Namespace, console: Console | None = None) -> int:
    import trio

    from .eventlog import random_workload, write_log
    from .mappings import load_mapping
    from .replay import TraceError, model_constants
    from .specs import SpecError, resolve_spec

    console = console or Console(soft_wrap=True)
    try:
        known = load_mapping(resolve_spec(args.spec, args.spec_dir).name)
    except SpecError:
        known = None  # reported below, as each path reports it
    if known is not None and not hasattr(known, "recognize"):
        console.print(f"[bold red]error:[/] the {args.spec} mapping replays traces but does not log runs yet", highlight=False)
        return EXIT_ERROR
    if args.from_dir is not None:
        from .merge import BINDERS

        if known is not None and known.spec not in BINDERS:
            console.print(f"[bold red]error:[/] the {known.spec} mapping logs runs on the in-memory cluster but has no binding "
                          f"of TCP runs yet (there is one for {', '.join(sorted(BINDERS))})", highlight=False)
            return EXIT_ERROR
        return _log_from_dir(args, console)
    try:
        spec = resolve_spec(args.spec, args.spec_dir)
        cls = load_mapping(spec.name)
        if cls is None:
            raise SpecError(f"no mapping for {spec.name} in conformance/mappings/")
        constants = model_constants(spec, args.config, args.traces)
        mapping = cls(constants)  # refuses a model it cannot drive (ValueError)
    except (SpecError, TraceError, FileNotFoundError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_ERROR

    async def main() -> Any:
        return await random_workload(mapping, seed=args.seed, max_steps=args.max_steps)

    header, lines = trio.run(main)
    header["config"] = args.config
    out = args.output or Path(f"{spec.name.lower()}-{args.config.lower()}-seed{args.seed}.ndjson")
    write_log(out, header, lines)
    console.print(f"wrote {len(lines)} actions of a random run (seed {args.seed}) on {spec.name} ({args.config}) to {out}", highlight=False)
    return EXIT_OK


def _log_from_dir(args: argparse.Namespace, console: Console) -> int:
    """The event log of a TCP run, from the step logs of its processes."""
    from ownership.tla.itf import encode_value

    from .eventlog import write_log
    from .merge import StepLogError, event_log, merge_dir
    from .replay import TraceError, model_constants
    from .specs import SpecError, resolve_spec

    try:
        spec = resolve_spec(args.spec, args.spec_dir)
        run = merge_dir(args.from_dir)  # bad files first: before TLC is asked for the constants
        constants = model_constants(spec, args.config, args.traces)
        lines, binding = event_log(run, spec.name, constants)
    except (StepLogError, SpecError, TraceError, ValueError, OSError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return EXIT_ERROR
    for note in (*run.notes, *binding):
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    header = {
        "spec": spec.name,
        "config": args.config,
        "constants": {k: encode_value(v) for k, v in sorted(constants.items())},
        "source": str(args.from_dir),
    }
    out = args.output or args.from_dir / f"{spec.name.lower()}.ndjson"
    write_log(out, header, lines)
    crashed = ", ".join(sorted(run.crashed)) or "none"
    console.print(
        f"wrote {len(lines)} actions of the TCP run in {args.from_dir} ({len(run.processes)} processes, "
        f"{len(run.steps)} steps merged, crashed: {crashed}) on {spec.name} ({args.config}) to {out}",
        highlight=False,
    )
    return EXIT_OK


def _add_validate(sub: Any) -> None:
    val = sub.add_parser(
        "validate",
        help="check an implementation event log (NDJSON) against a spec with TLC",
        description="Write the log into a trace spec with a cursor over it (EWD998ChanTrace style) and ask TLC "
        "for a behaviour of the spec that takes every line; report accepted, or the first line no behaviour "
        "can take with a state the spec can be in just before it.",
        epilog="""\
With --from-dir, the step logs of a TCP run (ownership.cluster(event_log=DIR),
or DIR/steps of ownership chaos --log-dir DIR) are merged and their
Scheduling log is checked with the model sized from the run, a window of
lines at a time, each starting where the one before ended.

examples:
  ownership conformance log --spec Scheduling --seed 1 -o run.ndjson
  ownership conformance validate run.ndjson
  ownership conformance validate --from-dir chaos-run/steps --lines 10000
""",
        formatter_class=_FORMATTER,
    )
    val.add_argument("log", type=Path, nargs="?", metavar="LOG", help="NDJSON event log (ownership conformance log)")
    val.add_argument("--from-dir", type=Path, metavar="DIR", help="step logs of a TCP run instead of LOG: its Scheduling log, the model sized from the run")
    val.add_argument("--window", type=_positive, default=2000, metavar="N", help="with --from-dir: lines TLC checks at a time (default 2000)")
    val.add_argument("--lines", type=_positive, metavar="N", help="with --from-dir: check only the first N lines (default: all)")
    val.add_argument("--spec", help="spec name (default: the log's header)")
    val.add_argument("--config", help="model config whose constants the run used (default: the log's header, else Small)")
    val.add_argument("--spec-dir", type=Path, default=None, help="where the specs live (default: ./spec)")
    val.add_argument("--workers", type=_positive, default=1, help="TLC worker threads (default 1)")
    val.set_defaults(func=_run_validate)
    log = sub.add_parser(
        "log",
        epilog="""\
examples:
  ownership conformance log --spec Scheduling --seed 1 -o run.ndjson
  ownership conformance log --from-dir run1 --spec Scheduling --config Small
""",
        formatter_class=_FORMATTER,
        help="run a seeded random workload (with crashes) on the in-memory cluster and write its event log; "
        "or, with --from-dir, merge the step logs of a TCP run into one",
    )
    log.add_argument(
        "--from-dir",
        type=Path,
        metavar="DIR",
        help="step logs of a TCP run (ownership.cluster(event_log=DIR)): merge them in causal order instead of running anything",
    )
    log.add_argument("--spec", required=True, help="spec whose mapping names the events")
    log.add_argument("--config", default="Small", help="model config shaping the cluster (default: Small)")
    log.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    log.add_argument("--max-steps", type=_positive, default=200, help="stimuli at most (default 200)")
    log.add_argument("--traces", type=Path, default=Path("traces"), help="traces root holding the model's constants (default: traces/)")
    log.add_argument("--spec-dir", type=Path, default=None, help="where the specs live (default: ./spec)")
    log.add_argument("-o", "--output", type=Path, help="log file (default: <spec>-<config>-seed<N>.ndjson; with --from-dir, DIR/<spec>.ndjson)")
    log.set_defaults(func=_run_log)
