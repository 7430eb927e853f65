"""Online video stabilisation (the Ownership paper's Fig. 3b) on an embedded cluster.

::

    python examples/video.py                        # 300 frames of 240 x 320
    python examples/video.py --kill-worker-at 100   # SIGKILL a task worker mid-stream

A ``Decoder`` actor holds the decoding state (the camera position so far)
and yields frames in order. For each frame a ``flow`` task estimates the
motion from the previous frame (phase correlation: two FFTs), a ``cumsum``
task adds it to the previous frame's trajectory (so each depends on the
one before), and a ``smooth`` task takes the moving average of the last
``window`` trajectory points and shifts the frame by the difference: the
stabilised frame. Frames travel by reference: a frame is read by its own
flow, the next frame's flow and its smooth task, and is freed when the
last of them is done. The driver keeps ``in_flight`` frames in the
pipeline and takes the stabilised frames in order.

The video is synthetic and its answer known: a random texture moved by a
known shake, so each flow, trajectory point and stabilised frame can be
checked exactly. Tasks are retried when their worker dies, and lost frames
are rebuilt from lineage; the Decoder actor itself is not restarted (its
state would have to be rebuilt from a checkpoint, which this example does
not keep), so its node must survive.

Stage costs at 240 x 320 float32 on one core: decode ~0.3 ms, flow ~6 ms,
cumsum ~0.01 ms, smooth ~0.4 ms.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import cloudpickle
import numpy as np
import trio

import ownership

# Workers get this module's functions by value (examples/ is not installed).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

__all__ = [
    "VideoConfig",
    "VideoReport",
    "texture",
    "shake",
    "positions",
    "target",
    "expected_frame",
    "Decoder",
    "flow",
    "cumsum",
    "smooth",
    "run",
    "main",
]


@attrs.frozen(kw_only=True)
class VideoConfig:
    frames: int = 300
    height: int = 240
    width: int = 320
    window: int = 5  # frames in Smooth's moving average
    in_flight: int = 8  # frames in the pipeline ahead of the sink
    seed: int = 0


# ------------------------------------------------------------------ the known video
def texture(height: int, width: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((height, width), dtype=np.float32) * 255).astype(np.float32)


def shake(i: int) -> tuple[int, int]:
    """The camera's move from frame ``i - 1`` to frame ``i`` (pixels, dy and dx)."""
    return (i * 7919) % 7 - 3, (i * 104729) % 5 - 2


def positions(n: int) -> list[tuple[int, int]]:
    """The camera position at frames ``0 .. n-1``: the trajectory CumSum must find."""
    out = [(0, 0)]
    for i in range(1, n):
        dy, dx = shake(i)
        out.append((out[-1][0] + dy, out[-1][1] + dx))
    return out[:n]


def _rounded_mean(values: Sequence[int]) -> int:
    return (2 * sum(values) + len(values)) // (2 * len(values))  # exact, half up


def target(trajectory: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Where Smooth puts the frame: the rounded mean of the trajectory window."""
    return _rounded_mean([p[0] for p in trajectory]), _rounded_mean([p[1] for p in trajectory])


def expected_frame(i: int, config: VideoConfig, tex: np.ndarray | None = None) -> np.ndarray:
    """Frame ``i`` as the stabiliser must output it."""
    tex = texture(config.height, config.width, config.seed) if tex is None else tex
    path = positions(i + 1)
    return np.roll(tex, target(path[max(0, i - config.window + 1): i + 1]), axis=(0, 1))


# ------------------------------------------------------------------ the stages
class Decoder:
    """Decoding state: the frames must come out in order, one after the other."""

    def __init__(self, height: int, width: int, seed: int) -> None:
        self.texture = texture(height, width, seed)
        self.next = 0
        self.position = (0, 0)

    def pid(self) -> int:
        return os.getpid()

    def decode(self) -> np.ndarray:
        if self.next > 0:
            dy, dx = shake(self.next)
            self.position = (self.position[0] + dy, self.position[1] + dx)
        self.next += 1
        return np.roll(self.texture, self.position, axis=(0, 1))


def flow(previous: np.ndarray, frame: np.ndarray) -> tuple[int, int]:
    """The shift from ``previous`` to ``frame`` by phase correlation."""
    cross = np.fft.rfft2(frame) * np.conj(np.fft.rfft2(previous))
    cross /= np.maximum(np.abs(cross), 1e-12)
    peak = np.fft.irfft2(cross, s=frame.shape)
    dy, dx = np.unravel_index(int(np.argmax(peak)), peak.shape)
    height, width = frame.shape
    return int(dy if dy <= height // 2 else dy - height), int(dx if dx <= width // 2 else dx - width)


def cumsum(previous: tuple[int, int], motion: tuple[int, int]) -> tuple[int, int]:
    return previous[0] + motion[0], previous[1] + motion[1]


def smooth(frame: np.ndarray, *trajectory: tuple[int, int]) -> np.ndarray:
    """Move the frame from its own position to the window's mean position."""
    ty, tx = target(trajectory)
    y, x = trajectory[-1]
    return np.roll(frame, (ty - y, tx - x), axis=(0, 1))


# ------------------------------------------------------------------ running it
@attrs.define
class VideoReport:
    config: VideoConfig
    outputs: list[Any]  # the stabilised frames (kept only with keep_frames)
    trajectory: list[tuple[int, int]]
    latencies: list[float]  # seconds from decode to the stabilised frame, per frame
    wall: float
    wrong: list[int]  # frames whose pixels differ from the known answer

    @property
    def fps(self) -> float:
        return self.config.frames / self.wall if self.wall > 0 else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _matches(out: np.ndarray, i: int, config: VideoConfig, tex: np.ndarray, path: list[tuple[int, int]]) -> bool:
    """Cheap exact check of a few pixels against the known answer."""
    ty, tx = target(path[max(0, i - config.window + 1): i + 1])
    h, w = config.height, config.width
    for y, x in ((0, 0), (h // 2, w // 3), (h - 1, w - 1), (h // 3, w - 2)):
        if out[y, x] != tex[(y - ty) % h, (x - tx) % w]:
            return False
    return out.shape == (h, w)


async def create_decoder(config: VideoConfig, resources: dict[str, float] | None = None) -> tuple[Any, int]:
    cls = ownership.remote(Decoder)
    if resources:
        cls = cls.options(resources=resources)
    decoder = cls.remote(config.height, config.width, config.seed)
    return decoder, await decoder.pid.remote()


async def run(
    config: VideoConfig,
    decoder: Any,
    *,
    keep_frames: bool = False,
    after: tuple[int, Callable[[], Awaitable[None]]] | None = None,
) -> VideoReport:
    """Stream ``config.frames`` frames through the pipeline; check each output.

    ``after=(n, hook)`` awaits ``hook()`` in its own task once ``n`` frames
    are out (the chaos tests kill something there).
    """
    flow_t, cumsum_t, smooth_t = ownership.remote(flow), ownership.remote(cumsum), ownership.remote(smooth)
    tex = texture(config.height, config.width, config.seed)
    path = positions(config.frames)
    outputs: list[Any] = []
    trajectory: list[tuple[int, int]] = []
    latencies: list[float] = []
    wrong: list[int] = []
    send, receive = trio.open_memory_channel[tuple[int, float, Any, Any]](config.in_flight)

    async def produce() -> None:
        previous = None
        window: collections.deque[Any] = collections.deque(maxlen=config.window)
        async with send:
            for i in range(config.frames):
                t0 = time.perf_counter()
                frame = decoder.decode.remote()
                point = (0, 0) if previous is None else cumsum_t.remote(window[-1], flow_t.remote(previous, frame))
                window.append(point)
                out = smooth_t.remote(frame, *window)
                previous = frame
                await send.send((i, t0, point, out))

    async def sink() -> None:
        async with receive:
            async for i, t0, point, out in receive:
                frame = await out
                latencies.append(time.perf_counter() - t0)
                trajectory.append(point if isinstance(point, tuple) else await point)
                if not _matches(frame, i, config, tex, path):
                    wrong.append(i)
                if keep_frames:
                    outputs.append(frame)
                del frame, out, point
                if after is not None and i + 1 == after[0]:
                    nursery.start_soon(after[1])

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        nursery.start_soon(sink)
    wall = time.perf_counter() - t0
    return VideoReport(config=config, outputs=outputs, trajectory=trajectory, latencies=latencies, wall=wall, wrong=wrong)


async def _main(config: VideoConfig, kill_at: int | None) -> VideoReport:
    async with ownership.cluster(nodes=1, num_cpus=os.cpu_count() or 2) as cluster:
        decoder, decoder_pid = await create_decoder(config)
        after = None
        if kill_at is not None:
            node_pid = cluster.pid(cluster.nodes[0])

            async def kill() -> None:
                victims = [p for p in _children(node_pid) if p != decoder_pid]
                if victims:
                    print(f"SIGKILL to worker {victims[0]} after {kill_at} frames")
                    cluster.kill_worker(victims[0])

            after = (kill_at, kill)
        return await run(config, decoder, after=after)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a node's workers), lowest pid first."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python examples/video.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--window", type=int, default=5, help="frames in the moving average")
    parser.add_argument("--in-flight", type=int, default=8, help="frames in the pipeline at once")
    parser.add_argument("--kill-worker-at", type=int, default=None, metavar="N",
                        help="SIGKILL a task worker once N frames are out")
    args = parser.parse_args(argv)
    if min(args.frames, args.window, args.in_flight) < 1 or min(args.height, args.width) < 8:
        parser.error("--frames, --window and --in-flight must be >= 1, --height and --width >= 8")
    if args.kill_worker_at is not None and not 0 < args.kill_worker_at < args.frames:
        parser.error("--kill-worker-at must be between 1 and --frames - 1")
    config = VideoConfig(frames=args.frames, height=args.height, width=args.width, window=args.window, in_flight=args.in_flight)
    report = trio.run(_main, config, args.kill_worker_at)
    print(
        f"{config.frames} frames of {config.height} x {config.width} in {report.wall:.2f} s: {report.fps:.1f} frames/s, "
        f"latency p50 {report.percentile(50) * 1e3:.1f} ms, p99 {report.percentile(99) * 1e3:.1f} ms"
    )
    if report.trajectory != positions(config.frames):
        print("WRONG trajectory")
        return 1
    if report.wrong:
        print(f"WRONG frames {report.wrong[:10]}")
        return 1
    print("every frame in order and stabilised to the known answer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
