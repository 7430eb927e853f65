"""The ``ownership`` command.

Each area registers its own subcommands (``add_subparsers``) so that the
model-checking, conformance, cluster and benchmark commands live next to the
code they drive.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (module, what it adds) — a module that is not importable is a packaging bug,
# so the import error surfaces instead of silently hiding commands.
_COMMAND_MODULES = (
    "ownership.tla.cli",          # check
    "ownership.runtime.cli",      # start, stop, status, memory
    "conformance.cli",            # traces generate, conformance run/validate
    "ownership.benchcli",         # bench
    "ownership.dashboard.cli",    # timeline
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ownership",
        description="Distributed futures on the Ownership protocol: clusters, model checks, conformance, benchmarks.",
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
