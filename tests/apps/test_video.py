"""examples/video.py at tiny sizes: frames in order with their known values, through a worker's and a node's death."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import attrs
import numpy as np
import pytest
import trio

import ownership

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # examples/ is a folder of the clone

from examples import video  # noqa: E402

pytestmark = pytest.mark.slow

TINY = video.VideoConfig(frames=30, height=32, width=48, window=4, in_flight=4)
# 128 x 256 float32 = 128 KiB: above the inline threshold, so frames live in
# a node's store and a node's death loses some.
STORED = attrs.evolve(TINY, frames=40, height=128, width=256)


def test_stages_find_the_known_motion() -> None:
    config = TINY
    decoder = video.Decoder(config.height, config.width, config.seed)
    frames = [decoder.decode() for _ in range(6)]
    assert [video.flow(a, b) for a, b in zip(frames, frames[1:])] == [video.shake(i) for i in range(1, 6)]
    path = video.positions(6)
    assert video.cumsum(path[4], video.shake(5)) == path[5]
    out = video.smooth(frames[5], *path[2:6])
    assert np.array_equal(out, video.expected_frame(5, config))
    assert not np.array_equal(out, frames[5])  # the correction moved it


async def test_video_frames_come_out_in_order_with_their_values() -> None:
    config = TINY
    async with ownership.cluster(nodes=1, num_cpus=2):
        with trio.fail_after(120):
            decoder, _ = await video.create_decoder(config)
            report = await video.run(config, decoder, keep_frames=True)
    _check(report)


async def test_video_goes_on_when_a_task_worker_is_killed() -> None:
    config = attrs.evolve(TINY, frames=60)
    async with ownership.cluster(nodes=1, num_cpus=2) as cluster:
        with trio.fail_after(120):
            decoder, decoder_pid = await video.create_decoder(config)
            workers = [p for p in video._children(cluster.pid(cluster.nodes[0])) if p != decoder_pid]
            assert workers, "the node has no task worker"
            killed = []

            async def kill() -> None:
                cluster.kill_worker(workers[0])
                killed.append(workers[0])

            report = await video.run(config, decoder, keep_frames=True, after=(15, kill))
            assert killed and workers[0] not in video._children(cluster.pid(cluster.nodes[0]))
    _check(report)


async def test_video_goes_on_when_a_node_is_killed() -> None:
    # The decoder's node survives (its state is not checkpointed); the other
    # added node runs tasks and stores frames, and dies mid-stream.
    config = STORED
    async with ownership.cluster(nodes=1, num_cpus=1, node_timeout=1.0) as cluster:
        with trio.fail_after(180):
            await cluster.add_node(1, {"decoder": 1.0})
            victim = await cluster.add_node(1)
            decoder, _ = await video.create_decoder(config, resources={"decoder": 0.1})

            async def kill() -> None:
                cluster.kill(victim)

            report = await video.run(config, decoder, keep_frames=True, after=(10, kill))
            assert await cluster.wait_exit(victim) == -signal.SIGKILL
    _check(report)


def _check(report: video.VideoReport) -> None:
    config = report.config
    assert report.trajectory == video.positions(config.frames)
    assert report.wrong == []
    tex = video.texture(config.height, config.width, config.seed)
    assert len(report.outputs) == config.frames
    for i, frame in enumerate(report.outputs):
        assert np.array_equal(frame, video.expected_frame(i, config, tex)), f"frame {i}"
    assert len(report.latencies) == config.frames and report.fps > 0
