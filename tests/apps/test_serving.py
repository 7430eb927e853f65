"""examples/serving.py at tiny sizes: right labels, and the run survives a Model's or a node's death."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

import ownership

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # examples/ is a folder of the clone

from examples import serving  # noqa: E402

pytestmark = pytest.mark.slow

TINY = serving.ServingConfig(requests=48, clients=4, models=2, batch=4, timeout=0.005, raw_side=8, scale=2, pool=4, classes=50)
DOCUMENTED = {cls.__name__ for cls in (
    ownership.ActorDiedError, ownership.WorkerCrashedError, ownership.OwnerDiedError, ownership.ObjectLostError,
)} | {"NoModelLeftError"}


def test_labels_are_integer_exact_whatever_the_batch() -> None:
    # The known answers must not depend on how the Router batched: one image
    # alone and the same image inside a batch get the same label.
    config = TINY
    weights = serving.model_weights(config.pool, config.classes)
    images = [serving.preprocess(serving.raw_image(i, config.raw_side), config.scale) for i in range(7)]
    alone = [serving.predict_batch(weights, [img], config.pool)[0] for img in images]
    assert serving.predict_batch(weights, images, config.pool) == alone
    assert len(set(alone)) > 1  # the labels tell requests apart


@pytest.mark.parametrize("by_value", [False, True], ids=["by-reference", "by-value"])
async def test_serving_answers_every_request_right(by_value: bool) -> None:
    config = _with(TINY, by_value=by_value)
    async with ownership.cluster(nodes=1, num_cpus=2):
        with trio.fail_after(120):
            deployment = await serving.start(config)
            report = await serving.run(config, deployment)
    assert report.outcomes == [serving.expected_label(i, config) for i in range(config.requests)]
    assert len(report.latencies) == config.requests and report.retried == 0
    # Both models served, and the batches were really batches (full ones at least once).
    assert report.wall > 0 and report.throughput > 0


async def test_serving_goes_on_when_a_model_actor_is_killed() -> None:
    config = _with(TINY, requests=64)
    async with ownership.cluster(nodes=1, num_cpus=2) as cluster:
        with trio.fail_after(120):
            deployment = await serving.start(config)
            victim = deployment.model_pids[1]

            async def kill() -> None:
                cluster.kill_worker(victim)

            report = await serving.run(config, deployment, after=(16, kill))
    _check_survived(report, config, dead_model=1)


async def test_serving_goes_on_when_a_model_node_is_killed() -> None:
    # The driver's node runs preprocessing; node A holds the Router and model
    # 0, node B model 1 (and whatever preprocessing spilled there). B dies.
    config = _with(TINY, requests=64)
    async with ownership.cluster(nodes=1, num_cpus=1, node_timeout=1.0) as cluster:
        with trio.fail_after(180):
            await cluster.add_node(1, {"a": 1.0})
            node_b = await cluster.add_node(1, {"b": 1.0})
            deployment = await serving.start(
                config, model_resources=[{"a": 0.5}, {"b": 0.5}], router_resources={"a": 0.1}
            )

            async def kill() -> None:
                cluster.kill(node_b)

            report = await serving.run(config, deployment, after=(16, kill))
    _check_survived(report, config, dead_model=1)


# ------------------------------------------------------------------ helpers
def _with(config: serving.ServingConfig, **changes) -> serving.ServingConfig:
    import attrs

    return attrs.evolve(config, **changes)


def _check_survived(report: serving.ServingReport, config: serving.ServingConfig, dead_model: int) -> None:
    errors = {o for o in report.outcomes if isinstance(o, str)}
    assert "" not in errors, "a request never finished"
    assert errors <= DOCUMENTED, errors
    assert serving.check(report) == []  # every label given is the right one
    # At most the requests in flight at the kill fail; with resubmission, none should.
    assert report.ok >= config.requests - config.clients, report.outcomes
    # The kill hit: the Router was told, so the rest went to the live model.
    assert report.dead_models == [dead_model]
    assert report.retried >= 1
