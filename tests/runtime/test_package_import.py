"""``import ownership`` stays light: every worker process pays for it at start."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import ownership
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"pytest", "_pytest", "hypothesis"})
before = "ownership.testing" in sys.modules
api = {name: getattr(ownership, name).__module__ for name in ("cluster", "connect")}
print(json.dumps({"heavy": heavy, "testing_before": before, "api": api,
                  "all": "cluster" in ownership.__all__ and "connect" in ownership.__all__,
                  "memory_cluster": ownership.testing.memory_cluster.__module__}))
"""


def test_import_ownership_loads_no_test_framework() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(out.stdout)
    assert got["heavy"] == []  # neither pytest (through trio.testing) nor hypothesis
    assert got["testing_before"] is False
    assert got["api"] == {"cluster": "ownership.runtime.cluster", "connect": "ownership.runtime.cluster"}
    assert got["all"] is True
    assert got["memory_cluster"] == "ownership.testing"  # still reachable, on first use


def test_service_module_runs_without_a_double_import_warning() -> None:
    # ``import ownership`` must not import ownership.runtime.process, which
    # ``python -m`` runs as __main__ in every service process.
    out = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "ownership.runtime.process", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "--role" in out.stdout
