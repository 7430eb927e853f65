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
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["add_subparsers"]

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


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

    from .generate import GenerationError, generate
    from .specs import SpecError, default_spec_dir, known_specs, resolve_spec

    console = console or Console()
    spec_dir = args.spec_dir or default_spec_dir()
    names = args.specs or known_specs(spec_dir)
    if not names:
        console.print(f"[bold red]error:[/] no spec manifests (*.json) in {spec_dir}; name a spec", highlight=False)
        return EXIT_ERROR
    status = EXIT_OK
    for name in names:
        try:
            spec = resolve_spec(name, spec_dir)
            out = (args.out or Path("traces")) / spec.name
            with console.status(f"{spec.name}: starting") as spinner:
                result = generate(
                    spec,
                    args.config,
                    out,
                    cover=args.cover,
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
                f"{g['traces']:,} traces covering {args.cover} ({g['steps']:,} steps) in {out}",
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
    traces = subparsers.add_parser("traces", help="ITF traces generated from the specs' state graphs")
    traces_sub = traces.add_subparsers(dest="traces_command", metavar="COMMAND")
    gen = traces_sub.add_parser(
        "generate",
        help="cover a model's state graph with paths and write them as ITF traces",
        description="Run TLC on a spec's model (without its VIEW), cover the state graph's edges or "
        "actions with paths from the initial state, and write each path as an ITF trace under "
        "traces/<Spec>/; add one targeted trace per Test* predicate of the spec's tests module.",
    )
    gen.add_argument("specs", nargs="*", metavar="SPEC", help="spec names (default: every spec/*.json)")
    gen.add_argument("--config", default="Small", metavar="NAME_OR_FILE", help="model config (default: Small)")
    gen.add_argument("--cover", choices=("edges", "actions"), default="edges", help="what the paths must cover (default: edges)")
    gen.add_argument("--max", type=_positive, metavar="N", help="write at most N covering paths")
    gen.add_argument("--out", type=Path, metavar="DIR", help="traces root (default: ./traces)")
    gen.add_argument("--spec-dir", type=Path, default=None, help="where the specs live (default: ./spec)")
    gen.add_argument("--workers", type=_positive, default=1, help="TLC worker threads (default 1)")
    what = gen.add_mutually_exclusive_group()
    what.add_argument("--no-tests", action="store_true", help="skip the targeted traces of the Test* predicates")
    what.add_argument("--tests-only", action="store_true", help="only the targeted traces (no state graph)")
    gen.set_defaults(func=_run_generate)
    traces.set_defaults(func=lambda _args, p=traces: (p.print_help(), EXIT_ERROR)[1])

