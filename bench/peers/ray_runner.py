"""The rows on Ray.

Single-node rows: ``ray.init(num_cpus=2, include_dashboard=False)``. The
remote-get and recovery rows need an object in *another* node's store, so
they run on a two-node ``ray.cluster_utils.Cluster`` (head and node B, one
CPU each; the driver is on the head). Ray keeps a large object in the
plasma store of the node's raylet, not in the worker that made it, so the
holder of the only copy that recovery kills is node B: every process of it
(raylet, store, workers) gets SIGKILL, and Ray's owner re-executes the task
on the head. Ray learns of the death from the GCS health check, whose
defaults we keep.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from bench.harness import NotApplicable, RunnerDoc, Sample, Unavailable, runner_main, timer
from bench.rows import MIB, ROW_BY_KEY, Sizes, percentile
from bench.workloads import Sink, check_array, checksum, make_array, make_array_recording, noop, read_recorded

NUM_CPUS = 2
STORE_BYTES_PER_NODE = 1024 * MIB  # room for the 100 MiB object and its copy

_remote_cache: dict[Any, Any] = {}


def _remote(fn: Any) -> Any:
    """``ray.remote(fn)`` once per process, so nested tasks do not re-export it."""
    import ray

    handle = _remote_cache.get(fn)
    if handle is None:
        handle = _remote_cache[fn] = ray.remote(fn)
    return handle


# ---------------------------------------------------------------- task bodies
def nested_outer(inner: int) -> int:
    import ray

    task = _remote(noop)
    return len(ray.get([task.remote() for _ in range(inner)]))


def borrower(refs: list[Any], depth: int) -> int:
    # A list of refs is passed as refs (not resolved): this task borrows them
    # and lends them to the next borrower, which is how Ray borrows.
    import ray

    if depth > 1:
        return ray.get(_remote(borrower).remote(refs, depth - 1))
    return sum(ray.get(refs))


# ---------------------------------------------------------------- single node rows
def row_sync(s: Sizes) -> Sample:
    import ray

    task = _remote(noop)
    lat = []
    for _ in range(s.sync_round_trips):
        t0 = timer()
        ray.get(task.remote())
        lat.append(timer() - t0)
    return {"sync_p50": percentile(lat, 50) * 1e3, "sync_p99": percentile(lat, 99) * 1e3}


def row_async(s: Sizes) -> Sample:
    import ray

    task = _remote(noop)
    t0 = timer()
    refs = [task.remote() for _ in range(s.async_tasks)]
    values = ray.get(refs)
    dt = timer() - t0
    assert values == [None] * s.async_tasks
    return {"async": s.async_tasks / dt}


def row_actor(s: Sizes) -> Sample:
    import ray

    actor = _remote(Sink).remote()
    ray.get(actor.ping.remote())  # created and placed: not part of the rate
    t0 = timer()
    refs = [actor.ping.remote() for _ in range(s.actor_calls)]
    values = ray.get(refs)
    dt = timer() - t0
    assert values == [None] * s.actor_calls
    ray.kill(actor)
    return {"actor": s.actor_calls / dt}


def row_nested(s: Sizes) -> Sample:
    import ray

    outer = _remote(nested_outer)
    t0 = timer()
    counts = ray.get([outer.remote(s.nested_inner) for _ in range(s.nested_outer)])
    dt = timer() - t0
    assert counts == [s.nested_inner] * s.nested_outer
    return {"nested": s.nested_outer * (1 + s.nested_inner) / dt}


def _array(s: Sizes) -> tuple[Any, int]:
    array = make_array(s.array_mib * MIB)
    return array, checksum(array)


def row_array_ref(s: Sizes) -> Sample:
    import ray

    array, expected = _array(s)
    task = _remote(checksum)
    t0 = timer()
    ref = ray.put(array)
    values = ray.get([task.remote(ref) for _ in range(s.array_tasks)])
    dt = timer() - t0
    assert values == [expected] * s.array_tasks
    return {"array_ref": s.array_tasks / dt}


def row_array_value(s: Sizes) -> Sample:
    import ray

    array, expected = _array(s)
    task = _remote(checksum)
    t0 = timer()
    values = ray.get([task.remote(array) for _ in range(s.array_tasks)])
    dt = timer() - t0
    assert values == [expected] * s.array_tasks
    return {"array_value": s.array_tasks / dt}


def row_borrow(s: Sizes) -> Sample:
    import ray

    task = _remote(borrower)
    t0 = timer()
    refs = [ray.put(i) for i in range(s.borrow_refs)]
    total = ray.get(task.remote(refs, s.borrow_chain))
    del refs
    dt = timer() - t0
    assert total == sum(range(s.borrow_refs))
    return {"borrow": dt * 1e3}


# ---------------------------------------------------------------- applications
# examples/serving.py and examples/video.py on Ray: the same stage functions
# and actor classes; only the client side (asyncio instead of trio) and the
# way a future is passed by reference (inside a list) differ.
def _serving_classes() -> tuple[Any, Any]:
    import ray

    from examples import serving

    class RayModel(serving.Model):
        def resolve(self, batch: list[Any]) -> list[Any]:
            refs = [i for i, item in enumerate(batch) if isinstance(item, ray.ObjectRef)]
            if not refs:
                return batch
            batch = list(batch)
            for i, value in zip(refs, ray.get([batch[i] for i in refs])):
                batch[i] = value
            return batch

    class RayRouter(serving.Router):
        def submit(self, boxed: list[Any]) -> Any:
            # A ref inside a list stays a ref (Ray resolves top-level ones).
            return super().submit(boxed[0])

    return ray.remote(num_cpus=0)(RayModel), ray.remote(num_cpus=0)(RayRouter)


async def _serve(config: Any, router: Any) -> Any:
    """The client side of examples/serving.py (its Frontend and run) on asyncio."""
    import asyncio

    from examples import serving

    preprocess = _remote(serving.preprocess)
    batches: dict[int, list[Any]] = {}  # number -> [event, ref, remaining]
    latencies: list[float] = []
    outcomes: list[Any] = [None] * config.requests
    pending: set[Any] = set()
    counter = iter(range(config.requests))

    def batch(number: int) -> list[Any]:
        return batches.setdefault(number, [asyncio.Event(), None, 0])

    def record(sent: list[Any]) -> None:
        for number, _model, ref, size in sent:
            b = batch(number)
            b[1], b[2] = ref, size
            b[0].set()

    async def timeout(number: int) -> None:
        await asyncio.sleep(config.timeout)
        b = batches.get(number)
        if b is not None and not b[0].is_set():
            record(await router.flush.remote(number))

    async def client() -> None:
        for i in counter:
            t0 = timer()
            image = preprocess.remote(serving.raw_image(i, config.raw_side), config.scale)
            item = [await image] if config.by_value else [image]
            number, index, sent = await router.submit.remote(item)
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
            latencies.append(timer() - t0)

    t0 = timer()
    await asyncio.gather(*(client() for _ in range(config.clients)))
    wall = timer() - t0
    await asyncio.gather(*pending)
    return serving.ServingReport(config=config, outcomes=outcomes, latencies=latencies, wall=wall, retried=0, dead_models=[])


def row_serving(s: Sizes) -> Sample:
    import asyncio

    import ray

    from bench.ours import serving_config, warm_serving
    from examples import serving

    model_cls, router_cls = _serving_classes()
    sample: Sample = {}
    for by_value, name in ((False, "serving_ref"), (True, "serving_value")):
        config = serving_config(s, by_value)
        models = [model_cls.remote(config.pool, config.classes) for _ in range(config.models)]
        ray.get([m.pid.remote() for m in models])
        router = router_cls.remote(models, config.batch)
        ray.get(router.flush.remote(-1))
        asyncio.run(_serve(warm_serving(config), router))
        report = asyncio.run(_serve(config, router))
        for actor in (router, *models):
            ray.kill(actor)
        if report.ok != config.requests or serving.check(report):
            raise AssertionError(f"{name}: wrong labels {serving.check(report)[:5]}")
        sample[name] = report.throughput
        sample[f"{name}_p50"] = report.percentile(50) * 1e3
        sample[f"{name}_p99"] = report.percentile(99) * 1e3
    return sample


async def _stream(config: Any, decoder: Any) -> Any:
    """The driver of examples/video.py (its run) on asyncio."""
    import asyncio
    import collections

    from examples import video

    flow, cumsum, smooth = _remote(video.flow), _remote(video.cumsum), _remote(video.smooth)
    tex = video.texture(config.height, config.width, config.seed)
    path = video.positions(config.frames)
    queue: asyncio.Queue = asyncio.Queue(config.in_flight)
    trajectory: list[Any] = []
    latencies: list[float] = []
    wrong: list[int] = []

    async def produce() -> None:
        previous = None
        window: collections.deque = collections.deque(maxlen=config.window)
        for i in range(config.frames):
            t0 = timer()
            frame = decoder.decode.remote()
            point = (0, 0) if previous is None else cumsum.remote(window[-1], flow.remote(previous, frame))
            window.append(point)
            await queue.put((i, t0, point, smooth.remote(frame, *window)))
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
    return video.VideoReport(config=config, outputs=[], trajectory=trajectory, latencies=latencies, wall=wall, wrong=wrong)


def row_video(s: Sizes) -> Sample:
    import asyncio

    import ray

    from bench.ours import video_config, warm_video
    from examples import video

    config = video_config(s)
    decoders = [ray.remote(num_cpus=0)(video.Decoder).remote(config.height, config.width, config.seed) for _ in range(2)]
    ray.get([d.pid.remote() for d in decoders])
    asyncio.run(_stream(warm_video(config), decoders[0]))
    report = asyncio.run(_stream(config, decoders[1]))
    for decoder in decoders:
        ray.kill(decoder)
    if report.wrong or report.trajectory != video.positions(config.frames):
        raise AssertionError(f"wrong frames {report.wrong[:5]}")
    return {"video": report.fps, "video_p50": report.percentile(50) * 1e3, "video_p99": report.percentile(99) * 1e3}


def row_recoverable(s: Sizes) -> Sample:
    raise NotApplicable("no owner recovery: an owner's death fate-shares every future it owns (Ray documents owner failure as unrecoverable)")


SINGLE_NODE: dict[str, Callable[[Sizes], Sample]] = {
    "sync": row_sync,
    "recoverable": row_recoverable,
    "async": row_async,
    "actor": row_actor,
    "nested": row_nested,
    "array_ref": row_array_ref,
    "array_value": row_array_value,
    "borrow": row_borrow,
    "serving": row_serving,
    "video": row_video,
}


# ---------------------------------------------------------------- two nodes
class TwoNodes:
    """Head (driver, 1 CPU) and node B (1 CPU), re-adding B after each kill."""

    def __init__(self) -> None:
        import ray
        from ray.cluster_utils import Cluster

        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": STORE_BYTES_PER_NODE},
        )
        self.node_b = self._add_b()
        ray.init(address=self.cluster.address, log_to_driver=False)
        self.cluster.wait_for_nodes()

    def _add_b(self) -> Any:
        return self.cluster.add_node(num_cpus=1, object_store_memory=STORE_BYTES_PER_NODE)

    def on_b(self, soft: bool) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id=self.node_b.node_id, soft=soft)

    def row_remote_get(self, s: Sizes) -> Sample:
        import ray

        nbytes = s.remote_get_mib * MIB
        ref = _remote(make_array).options(scheduling_strategy=self.on_b(soft=False)).remote(nbytes)
        ray.wait([ref], fetch_local=False)  # made and sealed on B, not pulled yet
        t0 = timer()
        value = ray.get(ref)
        dt = timer() - t0
        check_array(value, nbytes)
        del value, ref
        # One path: over TCP between processes of one machine as between machines.
        return {"remote_get": nbytes / dt / 1e9, "remote_get_tcp": nbytes / dt / 1e9}

    def row_recovery(self, s: Sizes) -> Sample:
        import ray

        nbytes = s.recovery_mib * MIB
        with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
            record = os.path.join(tmp, "made-by")
            # soft affinity: made on B, and free to be re-made on the head once B is gone
            task = _remote(make_array_recording).options(scheduling_strategy=self.on_b(soft=True), max_retries=3)
            ref = task.remote(nbytes, record)
            ray.wait([ref], fetch_local=False)
            killed_pid, _ = read_recorded(record)
            os.unlink(record)
            t0 = timer()
            self.cluster.remove_node(self.node_b, allow_graceful=False)  # SIGKILL to raylet, store, workers
            value = ray.get(ref, timeout=300)
            dt = timer() - t0
            check_array(value, nbytes)
            remade_pid, _ = read_recorded(record)  # absent file: not re-executed -> error
            assert remade_pid != killed_pid, "the value was not reconstructed"
        del value, ref
        self.node_b = self._add_b()
        self.cluster.wait_for_nodes()
        return {"recovery": dt * 1e3}

    def close(self) -> None:
        import ray

        ray.shutdown()
        self.cluster.shutdown()


def body(doc: RunnerDoc, rows: Sequence[str]) -> None:
    try:
        import ray
    except ImportError as exc:
        raise Unavailable("not installed", f"import ray failed: {exc}") from None
    warnings.simplefilter("ignore")
    doc.set_version(ray.__version__)
    doc.set_setup(
        single_node=f"ray.init(address=\"local\", num_cpus={NUM_CPUS}, include_dashboard=False)",
        two_nodes=f"ray.cluster_utils.Cluster: head + node B, 1 CPU and {STORE_BYTES_PER_NODE // MIB} MiB store each",
    )
    doc.note("remote_get", "driver on the head ray.get()s an object made on node B (pulled B -> head store)")
    doc.note("recovery", "node B (raylet + plasma + workers) SIGKILLed via cluster_utils.remove_node; "
             "detection by the GCS health check at Ray's defaults")
    doc.note("borrow", "list of ObjectRefs passed unresolved through nested tasks; the last one ray.get()s them")
    doc.note("serving", "examples/serving.py's actors and stages; num_cpus=0 actors; asyncio clients; refs passed inside a list")
    doc.note("video", "examples/video.py's Decoder and stages; num_cpus=0 Decoder; asyncio driver")
    single = [r for r in rows if not ROW_BY_KEY[r].two_nodes]
    double = [r for r in rows if ROW_BY_KEY[r].two_nodes]
    if single:
        ray.init(address="local", num_cpus=NUM_CPUS, include_dashboard=False, log_to_driver=False)
        try:
            for key in single:
                doc.run_row(key, SINGLE_NODE[key])
        finally:
            ray.shutdown()
    if double:
        try:
            nodes = TwoNodes()
        except Exception as exc:
            doc.skip_rows(double, f"the two-node cluster did not start: {type(exc).__name__}: {exc}")
            return
        try:
            for key in double:
                doc.run_row(key, getattr(nodes, f"row_{key}"))
        finally:
            nodes.close()


def main(argv: Sequence[str] | None = None) -> int:
    return runner_main("ray", body, argv)


if __name__ == "__main__":
    # Run the module under its importable name, so that the task bodies above
    # are pickled by reference (workers import them) and not by value.
    import bench.peers.ray_runner

    raise SystemExit(bench.peers.ray_runner.main())
