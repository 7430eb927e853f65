"""Implementation -> model over TCP for the end-to-end spec: step logs of
real processes shaped like Ownership's Small model, merged, checked by TLC.

The cluster: the driver's node without a CPU, and two nodes of one CPU and
one worker each (room for a second). The driver runs Small's program,
``x = f(); y = g(x); del x; get(y); del y``, with large values (kept in the
stores); ``g``'s first run blocks until the node it runs on is killed: its
task is retried, and when that node held x's only copy, x is rebuilt first.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import trio

import ownership
from conformance.eventlog import read_log
from conformance.replay import model_constants
from conformance.specs import resolve_spec
from conformance.validate import validate
from ownership.cli import main
from ownership.runtime.cluster import cluster

# Workers cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

REPO = Path(__file__).resolve().parents[2]
SPEC_DIR = REPO / "spec"
TRACES = REPO / "traces"


@ownership.remote
def f() -> bytes:
    return b"x" * 4096


@ownership.remote
def g(x: bytes, marker: str) -> int:
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        while True:  # the test kills this worker's node here
            time.sleep(0.01)
    return len(x)


async def _until_exists(path: Path) -> None:
    with trio.fail_after(60):
        while not path.exists():
            await trio.sleep(0.01)


@pytest.fixture(scope="module")
def constants():
    return model_constants(resolve_spec("Ownership", SPEC_DIR), "Small", TRACES)


@pytest.fixture(scope="module")
def tcp_run(constants, tmp_path_factory):
    """The step logs of the run described in the module doc."""
    nodes = list(constants["NodeOrder"])
    capacity = [constants["Capacity"][n] for n in nodes]
    shape_ok = (
        capacity == [0, 1, 1]
        and constants["HeadNode"] == nodes[0]
        and [op["op"] for op in constants["Body"][constants["Root"]]] == ["submit", "submit", "release", "get", "release"]
        and set(constants["Retries"].values()) == {1}
    )
    assert shape_ok, f"Ownership Small changed shape ({constants}): adapt this run to it"
    tmp = tmp_path_factory.mktemp("tcp")
    log_dir = tmp / "steps"
    marker = tmp / "marker"

    async def workload() -> None:
        config = {"pipeline_depth": 1, "max_pending_lease_requests": 1, "lease_idle_ticks": 0, "inline_threshold": 0,
                  "return_idle_leases_on_request": False, "max_workers_per_node": 2}
        async with cluster(nodes=1, num_cpus=0, config=config, event_log=log_dir, dashboard=False) as local:
            with trio.fail_after(120):
                await local.add_node(1)
                await local.add_node(1)
                x = f.options(max_retries=1).remote()
                y = g.options(max_retries=1).remote(x, str(marker))
                del x
                await _until_exists(marker)
                pid = int(marker.read_text())
                node = next(a for a, proc in local.processes.items() if a in local.nodes and _parent(pid) == proc.pid)
                local.kill(node)
                assert await ownership.get(y) == 4096
                del y

    trio.run(workload)
    return log_dir


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow  # the TCP run (module fixture)
def test_tcp_run_with_a_node_killed_mid_task_is_accepted(tcp_run, tmp_path, capsys):
    out = tmp_path / "run.ndjson"
    status = main(["conformance", "log", "--from-dir", str(tcp_run), "--spec", "Ownership", "--config", "Small",
                   "--traces", str(TRACES), "--spec-dir", str(SPEC_DIR), "-o", str(out)])
    text = capsys.readouterr().out
    assert status == 0, text
    _header, lines = read_log(out)
    actions = [line.action for line in lines]
    assert {"NodeCrash", "HeadDetectNodeDeath", "NodeHandleFailure", "ProcessHandleFailure", "WorkerPullArg", "HolderGet"} <= set(actions), actions
    assert actions.count("WorkerReceiveTask") >= 3  # x, y, and y again
    result = validate(out, resolve_spec("Ownership", SPEC_DIR), "Small")
    assert result.accepted, f"rejected at line {result.consumed + 1}: {result.failed}\n{result.state}"
