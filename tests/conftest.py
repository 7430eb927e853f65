"""Which tests time real processes.

``make test`` runs the rest one test per core (pytest-xdist), then these
alone: they start OS processes, listen on TCP or drive a browser, and bound
how long that takes, so beside a second pytest worker their bounds would
measure that worker's load instead of the system. A new test that starts
processes belongs under one of these paths (a plain ``pytest`` runs all of
them, serially, either way).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: paths under tests/, as prefixes
REAL_PROCESSES = (
    "api/test_blocking.py",
    "api/test_resources.py",
    "apps/",
    "bench/",
    "chaos/",
    "conformance/test_tcp_",
    "dashboard/",
    "multiprocess/",
    "mutants/",
    "recovery/test_owner_recovery_tcp.py",
    "runtime/",
    "tcp/",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if path.is_relative_to(TESTS) and path.relative_to(TESTS).as_posix().startswith(REAL_PROCESSES):
            item.add_marker(pytest.mark.processes)
