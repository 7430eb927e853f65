"""Model serving (the Ownership paper's Fig. 3a) on an embedded cluster.

::

    python examples/serving.py                      # 400 requests, 8 clients, 2 models
    python examples/serving.py --by-value           # images copied through the Router
    python examples/serving.py --kill-model-at 200  # SIGKILL a Model actor mid-run

Each client sends a raw image to a ``preprocess`` task (resize, normalise)
and hands the future it gets, *by reference* (``ownership.shared``), to a
``Router`` actor. The Router buffers the futures and passes a batch of
them, still by reference, to one of several ``Model`` actors, which keep
their weights warm and read the images themselves; so the images never go
through the Router. A batch is sent when it is full, or when its first
request has waited ``timeout`` (a partial batch). With ``--by-value`` each
client fetches its image and the Router receives and forwards the arrays:
the paper's Fig. 15a comparison, where the Router becomes the bottleneck.

An actor runs one call at a time, so the Router never waits for a Model:
``Router.submit`` returns at once with the request's place in a batch and
the batches it has just sent (their result futures, owned by the Router and
borrowed by the client). The client side (:class:`Frontend`) starts the
batch's timeout with its first request, and hands each client its label
once the batch's future resolves.

When a Model actor dies, the requests of its batches get
``ownership.ActorDiedError``; the Frontend tells the Router to stop using
that model and resubmits the request (the preprocessed future is still
valid: it is owned by the client) up to ``retries`` times, so the run goes
on with the models that are left. A request out of retries reports the
error. Every label is checked against the same computation done locally.
"""

from __future__ import annotations

import argparse
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

# Workers import this module's functions by value: examples/ is a folder of
# the clone, not an installed package, so a worker could not import it.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

__all__ = [
    "ServingConfig",
    "ServingReport",
    "raw_image",
    "preprocess",
    "model_weights",
    "predict_batch",
    "expected_label",
    "Model",
    "Router",
    "Frontend",
    "start",
    "run",
    "main",
]


@attrs.frozen(kw_only=True)
class ServingConfig:
    requests: int = 400
    clients: int = 8
    models: int = 2
    batch: int = 8
    timeout: float = 0.010  # seconds a partial batch waits for more requests
    raw_side: int = 56  # the client's image: raw_side x raw_side x 3 bytes
    scale: int = 4  # preprocessing upsamples it to (raw_side * scale)^2 x 3 float32
    pool: int = 8  # the model pools the image to pool x pool x 3 features
    classes: int = 1000
    by_value: bool = False
    retries: int = 2  # resubmissions of a request whose Model died

    @property
    def image_side(self) -> int:
        return self.raw_side * self.scale


# ------------------------------------------------------------------ the numbers
# Everything is integer-valued (float32 holds the pixels exactly, float64 the
# logits), so a label does not depend on how a batch was summed: the answer
# computed locally is the answer the cluster must give.


def raw_image(i: int, side: int) -> np.ndarray:
    """Request ``i``'s image as a client sends it (deterministic in ``i``)."""
    return np.random.default_rng(i).integers(0, 256, size=(side, side, 3), dtype=np.uint8)


def preprocess(raw: np.ndarray, scale: int) -> np.ndarray:
    """Resize (nearest neighbour) and centre: the model's input, float32."""
    big = np.repeat(np.repeat(raw, scale, axis=0), scale, axis=1)
    return big.astype(np.float32) - 128.0


def model_weights(pool: int, classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-8, 8, size=(pool * pool * 3, classes)).astype(np.float64)


def _features(image: np.ndarray, pool: int) -> np.ndarray:
    side = image.shape[0]
    if side % pool:
        raise ValueError(f"image side {side} is not a multiple of the pool {pool}")
    block = side // pool
    return image.reshape(pool, block, pool, block, 3).sum(axis=(1, 3), dtype=np.float64).ravel()


def predict_batch(weights: np.ndarray, images: Sequence[np.ndarray], pool: int) -> list[int]:
    """One matrix product for the whole batch (what a GPU model batches for)."""
    features = np.stack([_features(img, pool) for img in images])
    return [int(k) for k in np.argmax(features @ weights, axis=1)]


def expected_label(i: int, config: ServingConfig) -> int:
    """The label of request ``i``, computed here without the cluster."""
    image = preprocess(raw_image(i, config.raw_side), config.scale)
    return predict_batch(model_weights(config.pool, config.classes), [image], config.pool)[0]


# ------------------------------------------------------------------ the actors
class Model:
    """Keeps its weights warm; reads the images of a batch itself."""

    def __init__(self, pool: int, classes: int) -> None:
        self.pool = pool
        self.weights = model_weights(pool, classes)
        self.batches = 0

    def pid(self) -> int:
        return os.getpid()

    def predict(self, batch: list[Any]) -> list[int]:
        self.batches += 1
        return predict_batch(self.weights, self.resolve(batch), self.pool)

    def resolve(self, batch: list[Any]) -> list[Any]:
        """The images of a batch: by reference the list holds futures (refs
        inside a list travel as refs), which this actor borrows and fetches."""
        refs = [i for i, item in enumerate(batch) if isinstance(item, ownership.ObjectRef)]
        if not refs:
            return batch
        batch = list(batch)
        for i, value in zip(refs, ownership.get([batch[i] for i in refs])):
            batch[i] = value
        return batch


class Router:
    """Buffers requests and sends each batch to the next live model, round robin."""

    def __init__(self, models: list[Any], batch: int) -> None:
        self.models = list(models)  # a list of actor handles: they stay handles
        self.alive = list(range(len(self.models)))
        self.batch = batch
        self.open: list[Any] = []
        self.batch_no = 0
        self.turn = 0

    def submit(self, item: Any) -> tuple[int, int, list[tuple[int, int, Any, int]]]:
        """``(batch number, index in it, batches sent now)`` for one request.

        ``item`` is the preprocessed image's future (``ownership.shared``)
        or, by value, the image itself.
        """
        self.open.append(item)
        place = (self.batch_no, len(self.open) - 1)
        sent = self._send() if len(self.open) >= self.batch else []
        return place[0], place[1], sent

    def flush(self, batch_no: int) -> list[tuple[int, int, Any, int]]:
        """The batch's timeout ran out: send it, partial, unless it already went."""
        if batch_no == self.batch_no and self.open:
            return self._send()
        return []

    def drop_model(self, index: int) -> int:
        """A client saw this model die: route around it. Returns the models left."""
        if index in self.alive:
            self.alive.remove(index)
        return len(self.alive)

    def _send(self) -> list[tuple[int, int, Any, int]]:
        batch, self.open = self.open, []
        number, self.batch_no = self.batch_no, self.batch_no + 1
        if not self.alive:
            return [(number, -1, None, len(batch))]
        model = self.alive[self.turn % len(self.alive)]
        self.turn += 1
        # The future of the model's answer goes back inside the reply: the
        # client borrows it from us, and the batch's items (refs) are lent on.
        return [(number, model, self.models[model].predict.remote(batch), len(batch))]


# ------------------------------------------------------------------ the client side
class NoModelLeftError(RuntimeError):
    """Every Model actor died: the Router has nowhere to send a batch."""


@attrs.define(eq=False)
class _Batch:
    sent: trio.Event = attrs.Factory(trio.Event)
    model: int = -1
    ref: Any = None
    #: requests of the batch still to take their label (its size once sent)
    remaining: int = 0


class Frontend:
    """The clients' side of the Router: batch timeouts and results."""

    def __init__(self, router: Any, config: ServingConfig, nursery: trio.Nursery) -> None:
        self.router = router
        self.config = config
        self.nursery = nursery
        self.batches: dict[int, _Batch] = {}
        self.dead_models: set[int] = set()
        self.retried = 0

    def _batch(self, number: int) -> _Batch:
        batch = self.batches.get(number)
        if batch is None:
            batch = self.batches[number] = _Batch()
        return batch

    def _record(self, sent: list[tuple[int, int, Any, int]]) -> None:
        for number, model, ref, size in sent:
            batch = self._batch(number)
            batch.model, batch.ref, batch.remaining = model, ref, size
            batch.sent.set()

    async def _timeout(self, number: int) -> None:
        await trio.sleep(self.config.timeout)  # the batching timeout itself
        batch = self.batches.get(number)
        if batch is not None and not batch.sent.is_set():
            self._record(await self.router.flush.remote(number))

    async def _model_died(self, model: int) -> None:
        if model not in self.dead_models:
            self.dead_models.add(model)
            await self.router.drop_model.remote(model)

    async def request(self, item: Any) -> int:
        """One request's label; ``item`` is what goes to the Router."""
        attempt = 0
        while True:
            number, index, sent = await self.router.submit.remote(item)
            self._record(sent)
            batch = self._batch(number)
            if index == 0 and not batch.sent.is_set():
                self.nursery.start_soon(self._timeout, number)
            try:
                await batch.sent.wait()
                if batch.ref is None:
                    raise NoModelLeftError("every Model actor died")
                labels = await batch.ref
                return labels[index]
            except ownership.ActorDiedError:
                await self._model_died(batch.model)
                if attempt >= self.config.retries:
                    raise
                attempt += 1
                self.retried += 1
            finally:
                # Every request of a sent batch passes here once, whatever
                # order the Router's replies came back in.
                if batch.sent.is_set():
                    batch.remaining -= 1
                    if batch.remaining == 0:
                        del self.batches[number]  # drops our borrow of the batch's answer


# ------------------------------------------------------------------ running it
@attrs.define
class ServingReport:
    config: ServingConfig
    #: per request: its label, or the name of the documented error it got
    outcomes: list[int | str]
    latencies: list[float]  # seconds, of the requests that got a label
    wall: float
    retried: int
    dead_models: list[int]

    @property
    def ok(self) -> int:
        return sum(1 for o in self.outcomes if isinstance(o, int))

    @property
    def throughput(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@attrs.frozen
class Deployment:
    router: Any
    models: list[Any]
    model_pids: list[int]


async def start(config: ServingConfig, *, model_resources: Sequence[dict[str, float] | None] = (), router_resources: dict[str, float] | None = None) -> Deployment:
    """Create the Model actors and the Router; returns once they answer.

    ``model_resources[k]`` / ``router_resources`` place them (custom
    resources of the nodes); default anywhere.
    """
    models = []
    for k in range(config.models):
        placed = model_resources[k] if k < len(model_resources) else None
        cls = ownership.remote(Model).options(resources=placed) if placed else ownership.remote(Model)
        models.append(cls.remote(config.pool, config.classes))
    pids = await ownership.get([m.pid.remote() for m in models])
    router_cls = ownership.remote(Router).options(resources=router_resources) if router_resources else ownership.remote(Router)
    router = router_cls.remote(models, config.batch)
    await router.flush.remote(-1)  # created and placed
    return Deployment(router=router, models=models, model_pids=list(pids))


async def run(
    config: ServingConfig,
    deployment: Deployment,
    *,
    after: tuple[int, Callable[[], Awaitable[None]]] | None = None,
) -> ServingReport:
    """``config.requests`` requests from ``config.clients`` closed-loop clients.

    ``after=(n, hook)`` awaits ``hook()`` (in its own task) once ``n``
    requests have their answer: the chaos tests kill something there.
    """
    preprocess_task = ownership.remote(preprocess)
    outcomes: list[int | str] = [""] * config.requests
    latencies: list[float] = []
    next_request = 0
    done = 0

    async with trio.open_nursery() as nursery:
        frontend = Frontend(deployment.router, config, nursery)

        async def client() -> None:
            nonlocal next_request, done
            while next_request < config.requests:
                i = next_request
                next_request += 1
                t0 = time.perf_counter()
                image = preprocess_task.remote(raw_image(i, config.raw_side), config.scale)
                item = (await image) if config.by_value else ownership.shared(image)
                try:
                    outcomes[i] = await frontend.request(item)
                    latencies.append(time.perf_counter() - t0)
                except (ownership.OwnershipError, NoModelLeftError) as exc:
                    outcomes[i] = type(exc).__name__
                del image, item
                done += 1
                if after is not None and done == after[0]:
                    nursery.start_soon(after[1])

        t0 = time.perf_counter()
        async with trio.open_nursery() as clients:
            for _ in range(config.clients):
                clients.start_soon(client)
        wall = time.perf_counter() - t0
    return ServingReport(
        config=config, outcomes=outcomes, latencies=latencies, wall=wall,
        retried=frontend.retried, dead_models=sorted(frontend.dead_models),
    )


def check(report: ServingReport) -> list[int]:
    """Requests whose label differs from the local computation (errors aside)."""
    return [
        i for i, outcome in enumerate(report.outcomes)
        if isinstance(outcome, int) and outcome != expected_label(i, report.config)
    ]


async def _main(config: ServingConfig, kill_at: int | None) -> ServingReport:
    async with ownership.cluster(nodes=1, num_cpus=os.cpu_count() or 2) as cluster:
        deployment = await start(config)
        after = None
        if kill_at is not None:
            victim = deployment.model_pids[-1]

            async def kill() -> None:
                print(f"SIGKILL to Model actor {config.models - 1} (pid {victim}) after {kill_at} requests")
                cluster.kill_worker(victim)

            after = (kill_at, kill)
        return await run(config, deployment, after=after)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python examples/serving.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--timeout-ms", type=float, default=10.0, help="how long a partial batch waits")
    parser.add_argument("--by-value", action="store_true", help="send the images through the Router")
    parser.add_argument("--kill-model-at", type=int, default=None, metavar="N",
                        help="SIGKILL the last Model actor once N requests are answered")
    args = parser.parse_args(argv)
    if min(args.requests, args.clients, args.models, args.batch) < 1 or args.timeout_ms < 0:
        parser.error("--requests, --clients, --models and --batch must be >= 1, --timeout-ms >= 0")
    if args.kill_model_at is not None and not 0 < args.kill_model_at < args.requests:
        parser.error("--kill-model-at must be between 1 and --requests - 1")
    config = ServingConfig(
        requests=args.requests, clients=args.clients, models=args.models, batch=args.batch,
        timeout=args.timeout_ms / 1000, by_value=args.by_value,
    )
    report = trio.run(_main, config, args.kill_model_at)
    wrong = check(report)
    errors = [o for o in report.outcomes if isinstance(o, str)]
    print(
        f"{report.ok}/{config.requests} requests answered in {report.wall:.2f} s: {report.throughput:.0f} requests/s, "
        f"latency p50 {report.percentile(50) * 1e3:.1f} ms, p99 {report.percentile(99) * 1e3:.1f} ms "
        f"({'by value' if config.by_value else 'by reference'} through the Router)"
    )
    if report.retried or errors:
        print(f"{report.retried} resubmitted after a Model died (models lost: {report.dead_models}); "
              f"{len(errors)} ended with an error: {sorted(set(errors))}")
    if wrong:
        print(f"WRONG labels for requests {wrong[:10]}")
        return 1
    print("every label matches the local computation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
