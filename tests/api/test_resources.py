"""Custom resources: nodes that offer them, tasks that ask for them, and tasks
that ask for what no node has (announced once, run when such a node joins)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import cloudpickle
import pytest
import trio

import ownership
from ownership.testing import memory_cluster

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ownership.remote(resources={"GPU": 1})
def on_gpu(x):
    return x * 2


@ownership.remote(resources={"TPU": 1})
def on_tpu(x):
    return x + 1


def _infeasible_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ownership.scheduling" and r.levelno == logging.WARNING]


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    """Poll a real condition of the cluster's state, within a bound."""
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"not within {timeout} s: {what}")


async def test_task_no_node_can_run_is_announced_once_and_shown_as_infeasible(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ownership.scheduling")
    async with memory_cluster(nodes=2) as c:
        refs = [on_gpu.remote(i) for i in range(3)]
        await _until(lambda: c.driver.core.submitter.infeasible, "the driver hears its task is infeasible")
        await c.settle()
        [text] = _infeasible_warnings(caplog)
        assert "on_gpu()" in text and '"GPU": 1' in text and "cannot be scheduled" in text
        [entry] = c.driver.core.submitter.snapshot()["infeasible"].values()
        assert entry["name"] == "on_gpu" and entry["resources"] == {"CPU": 1.0, "GPU": 1.0}
        assert entry["tasks_waiting"] == 3
        assert [r["resources"] for r in c.nodes["n1"].core.scheduler.snapshot()["infeasible"]] == [{"CPU": 1.0, "GPU": 1.0}]
        ready, _ = await ownership.wait(refs, timeout=0.05)
        assert ready == []  # still waiting, not failed
        for ref in refs:
            ownership.cancel(ref)
        await c.settle()
        assert c.driver.core.submitter.snapshot()["infeasible"] == {}
        assert _infeasible_warnings(caplog) == [text]


@ownership.remote(resources={"GPU": 2})
class OnTwoGpus:
    def ping(self) -> int:
        return 1


async def test_actor_no_node_can_host_is_announced_as_an_actor(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ownership.scheduling")
    async with memory_cluster(nodes=1, node_resources={"n1": {"GPU": 1}}) as c:
        actor = OnTwoGpus.remote()
        await _until(lambda: c.driver.core.submitter.infeasible, "the driver hears its actor is infeasible")
        [text] = _infeasible_warnings(caplog)
        assert text.startswith("actor OnTwoGpus (") and '"GPU": 2' in text
        del actor


@pytest.mark.slow
async def test_cluster_nodes_offer_resources_and_a_joining_node_runs_what_none_could(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="ownership.scheduling")
    with trio.fail_after(120):
        async with ownership.cluster(nodes=1, num_cpus=1, resources={"GPU": 1}) as local:
            assert await on_gpu.remote(21) == 42
            ref = on_tpu.remote(1)
            await _until(lambda: local.driver.core.submitter.infeasible, "the TPU task is announced", timeout=30)
            [text] = _infeasible_warnings(caplog)
            assert "on_tpu()" in text and "TPU" in text
            snapshot = await local.snapshot()
            [node] = snapshot.nodes.values()
            [told] = snapshot.workers[local.driver.address]["submitter"]["infeasible"].values()
            assert [r["task_id"] for r in node["scheduler"]["infeasible"]] == [told["task_id"]]
            await local.add_node(num_cpus=1, resources={"TPU": 1})
            assert await ref == 2
            assert local.driver.core.submitter.infeasible == {}


def test_cluster_rejects_bad_resources_clearly() -> None:
    async def start(resources) -> None:
        async with ownership.cluster(resources=resources):
            pass

    for bad, reason in (({"GPU": -1}, ">= 0"), ({"CPU": 2}, "num_cpus"), ([1], "mapping"), ({"GPU": "one"}, "number")):
        with pytest.raises(ValueError, match=reason):
            trio.run(start, bad)


@pytest.mark.parametrize(
    "text, reason",
    [("{bad", "not JSON"), ('{"GPU": -1}', ">= 0"), ('{"CPU": 4}', "--num-cpus"), ("[1]", "mapping")],
)
def test_start_rejects_bad_resources_in_one_line(tmp_path, text, reason) -> None:
    env = {"OWNERSHIP_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "ownership.cli", "start", "--head", "--resources", text],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert reason in last and "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "session.json").exists()  # nothing started


@pytest.mark.slow
async def test_start_with_resources_offers_them_to_tasks(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OWNERSHIP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "300")  # tables unwrapped

    async def cli(*args: str) -> str:
        result = await trio.run_process([sys.executable, "-m", "ownership.cli", *args], capture_stdout=True, capture_stderr=True, check=False)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    try:
        with trio.fail_after(120):
            await cli("start", "--head", "--num-cpus", "1", "--resources", '{"GPU": 1}')
            status = json.loads(await cli("status", "--json"))
            [node] = status["nodes"].values()
            assert node["scheduler"]["total"]["GPU"] == 1.0
            session = json.loads((tmp_path / "home" / "session.json").read_text())
            async with ownership.connect(session["head"]) as driver:
                assert await on_gpu.remote(5) == 10
                ref = on_tpu.remote(1)
                await _until(lambda: driver.core.submitter.infeasible, "the TPU task is announced", timeout=30)
                out = await cli("status")
                # the "waiting to run" table: the function, its shape, infeasible
                assert "on_tpu" in out and "1 CPU, 1 TPU" in out and "infeasible" in out, out
                ownership.cancel(ref)
    finally:
        await cli("stop")
