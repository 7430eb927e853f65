"""The ``ownership`` command.

Each area registers its own subcommands (``add_subparsers``) so that the
model-checking, conformance, cluster and benchmark commands live next to the
code they drive.

A command reports a user's mistake by raising :class:`CommandError`: one
line on stderr, exit status 2, no traceback. Ctrl-C ends any command with
exit status 130 and one line, SIGTERM (where a command turns it into
:class:`Terminated`) with 143.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

__all__ = ["CommandError", "Terminated", "build_parser", "help_text", "main"]

# (module, what it adds) — a module that is not importable is a packaging bug,
# so the import error surfaces instead of silently hiding commands.
_COMMAND_MODULES = (
    "ownership.tla.cli",          # check
    "ownership.runtime.cli",      # start, stop, status, memory
    "conformance.cli",            # traces generate, conformance run/validate
    "ownership.benchcli",         # bench
    "ownership.dashboard.cli",    # timeline
    "ownership.chaos",            # chaos
)

_EPILOG = """\
examples:
  ownership start --head          # a cluster on this machine
  ownership status                # its nodes, processes and waiting tasks
  ownership stop
  ownership check --all           # model-check every spec's CI configs
  ownership conformance run       # replay the committed traces
  ownership bench --quick
  ownership chaos --minutes 6     # a workload under random kills, checked

`ownership COMMAND --help` tells more about each command.
"""


class CommandError(Exception):
    """A mistake the user can fix (a wrong address, a missing token): one line, exit 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where a command must clean up as on Ctrl-C."""


def help_text(doc: str | None) -> str:
    """A docstring as ``--help`` shows it: no reST markup, examples kept line by line.

    Double backquotes go, a ``::`` that introduces a literal block goes
    (or becomes ``:`` at the end of a sentence).
    """
    if not doc:
        return ""
    lines = []
    for line in doc.strip("\n").splitlines():
        if line.strip() == "::":
            continue
        if line.rstrip().endswith("::"):
            line = line.rstrip()[:-1]
        lines.append(line.replace("``", ""))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ownership",
        description="Distributed futures on the Ownership protocol: clusters, model checks, conformance, benchmarks.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # this area of the project is not installed in this build
        module.add_subparsers(subparsers)
    return parser


def _configure_logging() -> None:
    """The runtime's warnings reach the user as the command's own one-line
    errors, not as log records; ``OWNERSHIP_LOG_LEVEL`` shows them too."""
    level = os.environ.get("OWNERSHIP_LOG_LEVEL")
    if level:
        logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    else:
        logging.getLogger("ownership").addHandler(logging.NullHandler())


def main(argv: list[str] | None = None) -> int:
    command = "ownership"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        command = f"ownership {args.command}"
        _configure_logging()
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"{command}: {'terminated' if isinstance(exc, Terminated) else 'interrupted'}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # `ownership status | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    # `python -m ownership.cli` runs this file as __main__: the commands raise
    # ownership.cli's CommandError, so run that module's main.
    from ownership.cli import main as _main

    sys.exit(_main())
