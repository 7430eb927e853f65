"""Which tests time real processes.

``make test`` runs the rest one test per core (pytest-xdist), then these
alone: they start OS processes, listen on TCP or drive a browser, and bound
how long that takes, so beside a second pytest worker their bounds would
measure that worker's load instead of the system. A new test that starts
processes belongs under one of these paths (a plain ``pytest`` runs all of
them, serially, either way).
"""

from __future__ import annotations

import pytest

#: test ids (from the repository's root), as prefixes. The bench smoke
#: tests start processes but bound nothing tighter than minutes, so they
#: run with the rest. The mutant runner's subset runs here: each of its
#: mutants replays the whole corpus (two at a time, one per core), and
#: beside the other pytest worker it went past its bound.
REAL_PROCESSES = (
    "tests/api/test_blocking.py",
    "tests/api/test_resources.py",
    "tests/apps/",
    "tests/chaos/",
    "tests/conformance/test_tcp_",
    "tests/dashboard/",
    "tests/multiprocess/",
    "tests/mutants/test_mutants.py::test_fast_subset",
    "tests/mutants/test_mutants.py::test_hanging_test",
    "tests/recovery/test_owner_recovery_tcp.py",
    "tests/runtime/",
    "tests/tcp/",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(REAL_PROCESSES):
            item.add_marker(pytest.mark.processes)
