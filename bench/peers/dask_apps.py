"""examples/serving.py and examples/video.py on Dask distributed.

The same stage functions and actor classes; what Dask's model changes:

- An actor's method returns an ``ActorFuture``, a handle only its caller can
  wait on, not a future that can be passed on. So where our Router returns
  the future of a Model's answer, Dask's Router submits a small task,
  :func:`call_model`, that calls the Model actor and whose (ordinary) future
  goes back to the client; and the Decoder's frames come out of
  :func:`decode_via` tasks, each depending on the previous frame's task so
  that they run in order.
- Futures travel inside :class:`~bench.peers.dask_runner.Borrowed` (opaque
  to Dask's argument unpacking), bound to the receiving worker's client.
- The Router keeps the futures of the batches it sent (the client binds its
  copy later; the key must not be forgotten in between), so they live
  until the run ends. The scheduler drops a client's interest in a key it
  does not know yet, and the client's submits travel on their own stream:
  the Router returns a batch's future only once the scheduler knows its
  key, and a Model binds a batch's images only once it knows theirs.

The client side runs on ``Client(asynchronous=True)`` with asyncio tasks.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from bench.harness import Sample, timer
from bench.peers.dask_runner import Borrowed
from bench.rows import Sizes


def _serving_classes() -> tuple[type, type]:
    from examples import serving

    class DaskModel(serving.Model):
        def resolve(self, batch: list[Any]) -> list[Any]:
            from distributed import get_client

            if batch and isinstance(batch[0], Borrowed):
                client = get_client()
                # The client's submit of an image reaches the scheduler on its
                # own stream, which can be behind the Router's call that
                # brought the image here: wanting a key the scheduler does not
                # know yet is dropped, and the gather below would wait forever
                # (seen: the image in memory, this worker's client not among
                # those wanting it).
                _wait_until_scheduler_knows(client, *(item.futures[0].key for item in batch))
                for item in batch:
                    item.bind(client)
                return client.gather([item.futures[0] for item in batch])
            return batch

    class DaskRouter(serving.Router):
        def __init__(self, models: list[Any], batch: int) -> None:
            super().__init__(models, batch)
            self.kept: list[Any] = []

        def _send(self) -> list[tuple[int, int, Any, int]]:
            from distributed import get_client

            batch, self.open = self.open, []
            number, self.batch_no = self.batch_no, self.batch_no + 1
            model = self.alive[self.turn % len(self.alive)]
            self.turn += 1
            client = get_client()
            future = client.submit(call_model, self.models[model], batch, pure=False)
            # The client that gets this future asks the scheduler for it; a
            # request for a key the scheduler does not know yet is dropped,
            # so return it only once the scheduler has it.
            _wait_until_scheduler_knows(client, future.key)
            self.kept.append(future)
            return [(number, model, Borrowed([future]), len(batch))]

    return DaskModel, DaskRouter


def _scheduler_has(*keys: Any, dask_scheduler: Any = None) -> bool:
    return all(key in dask_scheduler.tasks for key in keys)


def _wait_until_scheduler_knows(client: Any, *keys: Any) -> None:
    """Return once the scheduler knows every key (it drops a client's
    interest in a key it does not know yet)."""
    while not client.run_on_scheduler(_scheduler_has, *keys):
        pass


def call_model(model: Any, batch: list[Any]) -> list[int]:
    """A task standing for the Model actor's answer (an actor's result is not a future).

    It leaves the worker's thread pool while it waits (``secede``), as Dask
    documents for tasks that wait on other work: the images it waits for
    may still have to be computed on this worker's only thread.
    """
    from distributed import rejoin, secede

    secede()
    try:
        return model.predict(batch).result()
    finally:
        rejoin()


async def _serve(client: Any, config: Any, router: Any) -> Any:
    from examples import serving

    batches: dict[int, list[Any]] = {}  # number -> [event, future, remaining]
    latencies: list[float] = []
    outcomes: list[Any] = [None] * config.requests
    pending: set[Any] = set()
    counter = iter(range(config.requests))

    def batch(number: int) -> list[Any]:
        return batches.setdefault(number, [asyncio.Event(), None, 0])

    def record(sent: list[Any]) -> None:
        for number, _model, borrowed, size in sent:
            borrowed.bind(client)
            b = batch(number)
            b[1], b[2] = borrowed.futures[0], size
            b[0].set()

    async def timeout(number: int) -> None:
        await asyncio.sleep(config.timeout)
        b = batches.get(number)
        if b is not None and not b[0].is_set():
            record(await router.flush(number))

    async def one_client() -> None:
        for i in counter:
            t0 = timer()
            image = client.submit(serving.preprocess, serving.raw_image(i, config.raw_side), config.scale, pure=False)
            item = (await image) if config.by_value else Borrowed([image])
            number, index, sent = await router.submit(item)
            record(sent)
            b = batch(number)
            if index == 0 and not b[0].is_set():
                task = asyncio.ensure_future(timeout(number))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await b[0].wait()
            outcomes[i] = (await b[1])[index]
            b[2] -= 1
            if b[2] == 0:
                del batches[number]
            del image
            latencies.append(timer() - t0)

    t0 = timer()
    await asyncio.gather(*(one_client() for _ in range(config.clients)))
    wall = timer() - t0
    await asyncio.gather(*pending)
    return serving.ServingReport(config=config, outcomes=outcomes, latencies=latencies, wall=wall, retried=0, dead_models=[])


async def _serving_sample(address: str, s: Sizes) -> Sample:
    from distributed import Client

    from bench.ours import serving_config, warm_serving
    from examples import serving

    model_cls, router_cls = _serving_classes()
    sample: Sample = {}
    async with Client(address, asynchronous=True) as client:
        for by_value, name in ((False, "serving_ref"), (True, "serving_value")):
            config = serving_config(s, by_value)
            models = [await client.submit(model_cls, config.pool, config.classes, actor=True, pure=False) for _ in range(config.models)]
            await asyncio.gather(*(m.pid() for m in models))
            router = await client.submit(router_cls, models, config.batch, actor=True, pure=False)
            await router.flush(-1)
            await _serve(client, warm_serving(config), router)
            report = await _serve(client, config, router)
            del router, models
            if report.ok != config.requests or serving.check(report):
                raise AssertionError(f"{name}: wrong labels {serving.check(report)[:5]}")
            sample[name] = report.throughput
            sample[f"{name}_p50"] = report.percentile(50) * 1e3
            sample[f"{name}_p99"] = report.percentile(99) * 1e3
    return sample


def decode_via(decoder: Any, previous: Any) -> Any:
    """A task standing for the Decoder's next frame; ``previous`` orders the tasks."""
    from distributed import rejoin, secede

    secede()
    try:
        return decoder.decode().result()
    finally:
        rejoin()


async def _video_sample(address: str, s: Sizes) -> Sample:
    from distributed import Client

    from bench.ours import video_config, warm_video

    config = video_config(s)
    async with Client(address, asynchronous=True) as client:
        await _video_run(client, warm_video(config))
        return await _video_run(client, config)


async def _video_run(client: Any, config: Any) -> Sample:
    from examples import video

    tex = video.texture(config.height, config.width, config.seed)
    path = video.positions(config.frames)
    # One decoder per run: its state starts at frame 0.
    decoder = await client.submit(video.Decoder, config.height, config.width, config.seed, actor=True, pure=False)
    await decoder.pid()
    queue: asyncio.Queue = asyncio.Queue(config.in_flight)
    trajectory: list[Any] = []
    latencies: list[float] = []
    wrong: list[int] = []

    async def produce() -> None:
        previous = None
        window: collections.deque = collections.deque(maxlen=config.window)
        for i in range(config.frames):
            t0 = timer()
            frame = client.submit(decode_via, decoder, previous, pure=False)
            point = (0, 0) if previous is None else client.submit(
                video.cumsum, window[-1], client.submit(video.flow, previous, frame, pure=False), pure=False
            )
            window.append(point)
            await queue.put((i, t0, point, client.submit(video.smooth, frame, *window, pure=False)))
            previous = frame

    async def sink() -> None:
        for _ in range(config.frames):
            i, t0, point, out = await queue.get()
            frame = await out
            latencies.append(timer() - t0)
            trajectory.append(point if isinstance(point, tuple) else await point)
            if not video._matches(frame, i, config, tex, path):
                wrong.append(i)

    t0 = timer()
    await asyncio.gather(produce(), sink())
    wall = timer() - t0
    report = video.VideoReport(config=config, outputs=[], trajectory=trajectory, latencies=latencies, wall=wall, wrong=wrong)
    if report.wrong or report.trajectory != path:
        raise AssertionError(f"wrong frames {report.wrong[:5]}")
    return {"video": report.fps, "video_p50": report.percentile(50) * 1e3, "video_p99": report.percentile(99) * 1e3}


def row_serving(address: str, s: Sizes) -> Sample:
    return asyncio.run(_serving_sample(address, s))


def row_video(address: str, s: Sizes) -> Sample:
    return asyncio.run(_video_sample(address, s))
