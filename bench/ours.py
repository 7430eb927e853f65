"""The rows on our runtime, through the public API (``import ownership``).

The cluster is the embedded multi-process one, ``ownership.cluster(...)``,
when the package has it, and otherwise the in-process
``ownership.testing.memory_cluster(...)`` (``OWNERSHIP_BENCH_CLUSTER=memory``
forces it); the JSON's ``setup.cluster`` says which, and the table prints
it. Figures from the in-process cluster are not comparable with the peers'
multi-process ones: every worker shares one interpreter there.

Layouts, matching the peers':
- single-node rows: one node with 2 CPUs (2 workers);
- remote get and recovery: the driver's node plus two nodes offering the
  custom resource ``holder``, 1 CPU each. For remote get the object is made
  on a holder node and got by the driver. For recovery: large values live
  in the node's store, so the process holding the only copy is the maker's
  node; it gets SIGKILL (its workers follow it), and the owner's lineage
  reconstruction re-runs the task on the other holder.
  A new holder node replaces the killed one before the next repeat.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import tempfile
from collections.abc import AsyncIterator, Sequence
from typing import Any

import trio

from bench.harness import RunnerDoc, Sample, Unavailable, runner_main, timer
from bench.rows import MIB, ROW_BY_KEY, Sizes, percentile
from bench.workloads import Sink, check_array, checksum, make_array, make_recording_here, noop, read_recorded

CPUS = 2
HOLDER = "holder"  # custom resource that pins the object's maker to chosen nodes
ON_HOLDER = {HOLDER: 0.01}
#: a holder node that serves its copies as bytes over TCP, as between machines
TCP_HOLDER = "tcp_holder"
ON_TCP_HOLDER = {TCP_HOLDER: 0.01}

_remote_cache: dict[Any, Any] = {}


def _remote(target: Any, **options: Any) -> Any:
    """``ownership.remote(target)`` once per process (its function is packed once)."""
    import ownership

    key = (target, repr(sorted(options.items())))
    handle = _remote_cache.get(key)
    if handle is None:
        handle = _remote_cache[key] = ownership.remote(target).options(**options) if options else ownership.remote(target)
    return handle


async def wait_stored(ref: Any, timeout: float = 300.0) -> None:
    """Until ``ref``'s object is stored somewhere, without fetching it.

    ``ownership.wait(fetch_local=False)`` (Ray's ``fetch_local=False``):
    a plain wait or get would put a copy on the driver's node and spoil both
    remote get (no transfer left to time) and recovery (a surviving copy,
    nothing to reconstruct).
    """
    import ownership

    ready, _ = await ownership.wait([ref], timeout=timeout, fetch_local=False)
    if not ready:
        raise RuntimeError(f"{ref!r} was not stored within {timeout} s")


# ---------------------------------------------------------------- task bodies
def nested_outer(inner: int) -> int:
    import ownership

    task = _remote(noop)
    return len(ownership.get([task.remote() for _ in range(inner)]))


def recoverable_round_trips(n: int) -> tuple[float, float]:
    """p50 latencies (s) of ``n`` sync round trips of a no-op task made with
    recoverable=True and of ``n`` default ones, interleaved, in this task:
    its worker is the owner, whose recoverable objects are logged at the head."""
    import ownership

    default = _remote(noop)
    recoverable = _remote(noop, recoverable=True)
    lat: dict[bool, list[float]] = {False: [], True: []}
    for i in range(2 * n):
        durable = bool(i % 2)
        t0 = timer()
        ownership.get((recoverable if durable else default).remote())
        lat[durable].append(timer() - t0)
    return percentile(lat[True], 50), percentile(lat[False], 50)


def borrower(refs: list[Any], depth: int) -> int:
    # The list holds refs, so they arrive as refs: this task borrows them and
    # lends them on to the next one (a borrower of a borrower).
    import ownership

    if depth > 1:
        return ownership.get(_remote(borrower).remote(refs, depth - 1))
    return sum(ownership.get(refs))



# ---------------------------------------------------------------- clusters
def _embedded_factory() -> Any:
    """``ownership.cluster``, or ``ownership.runtime.cluster.cluster`` where the API does not re-export it."""
    import ownership

    if os.environ.get("OWNERSHIP_BENCH_CLUSTER") == "memory":
        return None
    factory = getattr(ownership, "cluster", None)
    if callable(factory):
        return factory
    try:
        from ownership.runtime.cluster import cluster
    except ImportError:
        return None
    return cluster


class Clusters:
    """Opens our clusters; ``kind`` names the one used, for the report."""

    def __init__(self) -> None:
        factory = _embedded_factory()
        self.embedded = factory is not None
        if factory is not None:
            self.kind = "embedded multi-process (ownership.cluster), default tick and node timeout"
            self._factory = factory
        else:
            from ownership.testing import memory_cluster

            self.kind = "in-process (ownership.testing.memory_cluster): not comparable with multi-process peers"
            self._factory = memory_cluster

    @contextlib.asynccontextmanager
    async def open(self, holders: int = 0, tcp_holder: bool = False) -> AsyncIterator[Any]:
        """One plain node (the driver's), plus ``holders`` nodes offering
        ``holder``, and with ``tcp_holder`` one offering ``tcp_holder``.

        Without holders the node has 2 CPUs; with them every node has 1.
        """
        cpus = CPUS if holders == 0 else 1
        if self.embedded:
            async with self._factory(nodes=1, num_cpus=cpus) as cluster:
                async with trio.open_nursery() as starting:  # nodes start in parallel
                    for _ in range(holders):
                        starting.start_soon(self.add_holder, cluster)
                if tcp_holder:
                    await self.add_tcp_holder(cluster)
                yield cluster
        else:
            node_resources = {f"n{i}": {HOLDER: 1.0} for i in range(2, 2 + holders)}
            async with self._factory(
                nodes=1 + holders, workers_per_node=cpus, cpus_per_node=cpus, node_resources=node_resources
            ) as cluster:
                yield cluster

    async def add_holder(self, cluster: Any) -> None:
        await cluster.add_node(num_cpus=1, resources={HOLDER: 1.0})

    async def add_tcp_holder(self, cluster: Any) -> None:
        """A holder node that does not pass copies to nodes of this machine by
        segment: a pull from it moves the bytes over TCP, as between machines.
        (The node process reads the setting from its environment at start;
        nothing else starts a process meanwhile.)"""
        previous = os.environ.get("OWNERSHIP_LINK_NODE_SEGMENTS")
        os.environ["OWNERSHIP_LINK_NODE_SEGMENTS"] = "0"
        try:
            await cluster.add_node(num_cpus=1, resources={TCP_HOLDER: 1.0})
        finally:
            if previous is None:
                del os.environ["OWNERSHIP_LINK_NODE_SEGMENTS"]
            else:
                os.environ["OWNERSHIP_LINK_NODE_SEGMENTS"] = previous

    def kill_holder(self, cluster: Any, identity: str) -> str:
        """Kill the process that holds the only copy: the node whose store has it."""
        address, _, node_pid = identity.partition(" ")
        if self.embedded:
            # Large values live in the node's shared-memory store, so the node
            # (not the worker that made the value) holds the copy; its
            # workers die with it.
            node = next((a for a in cluster.nodes if cluster.pid(a) == int(node_pid)), None)
            if node is None:
                raise RuntimeError(f"the maker's node (pid {node_pid}) is not a node of this cluster")
            cluster.kill(node, signal.SIGKILL)
            return f"SIGKILL to node {node} (pid {node_pid}) and so its workers"
        node = address.rsplit("@", 1)[-1]
        cluster.crash(node)
        return f"node {node} crashed on the memory network (no OS process to kill)"


# ---------------------------------------------------------------- rows
class OurRows:
    def __init__(self, clusters: Clusters) -> None:
        self.clusters = clusters
        self.cluster: Any = None  # the multi-node cluster, while its rows run
        self.killed: list[str] = []

    async def row_sync(self, s: Sizes) -> Sample:
        task = _remote(noop)
        lat = []
        for _ in range(s.sync_round_trips):
            t0 = timer()
            await task.remote()
            lat.append(timer() - t0)
        return {"sync_p50": percentile(lat, 50) * 1e3, "sync_p99": percentile(lat, 99) * 1e3}

    async def row_recoverable(self, s: Sizes) -> Sample:
        durable, default = await _remote(recoverable_round_trips).remote(s.sync_round_trips)
        return {
            "recoverable_p50": durable * 1e3,
            "recoverable_default_p50": default * 1e3,
            "recoverable_cost": durable / default,
        }

    async def row_async(self, s: Sizes) -> Sample:
        import ownership

        task = _remote(noop)
        t0 = timer()
        refs = [task.remote() for _ in range(s.async_tasks)]
        values = await ownership.get(refs)
        dt = timer() - t0
        assert values == [None] * s.async_tasks
        return {"async": s.async_tasks / dt}

    async def row_actor(self, s: Sizes) -> Sample:
        import ownership

        actor = _remote(Sink).remote()
        await actor.ping.remote()  # created and placed: not part of the rate
        t0 = timer()
        refs = [actor.ping.remote() for _ in range(s.actor_calls)]
        values = await ownership.get(refs)
        dt = timer() - t0
        assert values == [None] * s.actor_calls
        del actor, refs
        return {"actor": s.actor_calls / dt}

    async def row_nested(self, s: Sizes) -> Sample:
        import ownership

        outer = _remote(nested_outer)
        t0 = timer()
        counts = await ownership.get([outer.remote(s.nested_inner) for _ in range(s.nested_outer)])
        dt = timer() - t0
        assert counts == [s.nested_inner] * s.nested_outer
        return {"nested": s.nested_outer * (1 + s.nested_inner) / dt}

    async def row_array_ref(self, s: Sizes) -> Sample:
        import ownership

        array = make_array(s.array_mib * MIB)
        expected = checksum(array)
        task = _remote(checksum)
        t0 = timer()
        ref = ownership.put(array)
        values = await ownership.get([task.remote(ref) for _ in range(s.array_tasks)])
        dt = timer() - t0
        assert values == [expected] * s.array_tasks
        return {"array_ref": s.array_tasks / dt}

    async def row_array_value(self, s: Sizes) -> Sample:
        import ownership

        array = make_array(s.array_mib * MIB)
        expected = checksum(array)
        task = _remote(checksum)
        t0 = timer()
        values = await ownership.get([task.remote(array) for _ in range(s.array_tasks)])
        dt = timer() - t0
        assert values == [expected] * s.array_tasks
        return {"array_value": s.array_tasks / dt}

    async def row_borrow(self, s: Sizes) -> Sample:
        import ownership

        task = _remote(borrower)
        t0 = timer()
        refs = [ownership.put(i) for i in range(s.borrow_refs)]
        total = await task.remote(refs, s.borrow_chain)
        del refs
        dt = timer() - t0
        assert total == sum(range(s.borrow_refs))
        return {"borrow": dt * 1e3}

    async def row_remote_get(self, s: Sizes) -> Sample:
        sample = {"remote_get": await self._remote_get(s, ON_HOLDER)}
        if self.clusters.embedded:
            sample["remote_get_tcp"] = await self._remote_get(s, ON_TCP_HOLDER)
        return sample

    async def _remote_get(self, s: Sizes, on: dict[str, float]) -> float:
        nbytes = s.remote_get_mib * MIB
        ref = _remote(make_array, resources=on).remote(nbytes)
        await wait_stored(ref)  # made and stored on the holder node, not fetched
        t0 = timer()
        value = await ref
        dt = timer() - t0
        check_array(value, nbytes)
        del value, ref
        return nbytes / dt / 1e9

    async def row_recovery(self, s: Sizes) -> Sample:
        if not self.clusters.embedded:
            # The memory network cannot add a node: a fresh cluster per repeat.
            async with self.clusters.open(holders=2) as cluster:
                return await self._recover_once(cluster, s)
        sample = await self._recover_once(self.cluster, s)
        await self.clusters.add_holder(self.cluster)  # replaces the killed one, untimed
        return sample

    async def _recover_once(self, cluster: Any, s: Sizes) -> Sample:
        import ownership

        nbytes = s.recovery_mib * MIB
        with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
            record = os.path.join(tmp, "made-by")
            ref = _remote(make_recording_here, resources=ON_HOLDER, max_retries=3).remote(nbytes, record)
            await wait_stored(ref)  # the holder node has the only copy
            killed_pid, identity = read_recorded(record)
            os.unlink(record)
            t0 = timer()
            what = self.clusters.kill_holder(cluster, identity)
            value = await ownership.get(ref, timeout=300)
            dt = timer() - t0
            check_array(value, nbytes)
            remade_pid, remade_by = read_recorded(record)  # absent file: not re-executed -> error
            assert (remade_pid, remade_by) != (killed_pid, identity), "the value was not reconstructed"
            self.killed.append(what)
            del value, ref
            gc.collect()
        return {"recovery": dt * 1e3}


# ---------------------------------------------------------------- applications
def serving_config(s: Sizes, by_value: bool) -> Any:
    from examples.serving import ServingConfig

    return ServingConfig(
        requests=s.serving_requests, clients=s.serving_clients, models=s.serving_models, batch=s.serving_batch,
        timeout=s.serving_timeout_ms / 1000, raw_side=s.serving_raw_side, scale=4, pool=8, by_value=by_value,
    )


def video_config(s: Sizes) -> Any:
    from examples.video import VideoConfig

    return VideoConfig(frames=s.video_frames, height=s.video_height, width=s.video_width, in_flight=s.video_in_flight)


def warm_serving(config: Any) -> Any:
    """A short untimed run first, on every system: the task workers exist before the clock starts."""
    import attrs

    return attrs.evolve(config, requests=2 * config.clients * config.batch)


def warm_video(config: Any) -> Any:
    import attrs

    return attrs.evolve(config, frames=2 * config.in_flight)


class OurApps:
    """examples/serving.py and examples/video.py, as they run by themselves."""

    async def row_serving(self, s: Sizes) -> Sample:
        from examples import serving

        sample: Sample = {}
        for by_value, name in ((False, "serving_ref"), (True, "serving_value")):
            config = serving_config(s, by_value)
            deployment = await serving.start(config)  # actors created and answering: untimed
            await serving.run(warm_serving(config), deployment)  # workers for the tasks started: untimed
            report = await serving.run(config, deployment)
            del deployment
            if report.ok != config.requests or serving.check(report):
                raise AssertionError(f"{name}: {config.requests - report.ok} requests failed, wrong labels {serving.check(report)[:5]}")
            sample[name] = report.throughput
            sample[f"{name}_p50"] = report.percentile(50) * 1e3
            sample[f"{name}_p99"] = report.percentile(99) * 1e3
        return sample

    async def row_video(self, s: Sizes) -> Sample:
        from examples import video

        config = video_config(s)
        # Both decoders first, as Ray's runner does: an actor takes a worker
        # out of the node's pool, whose replacement starts in the background
        # (a process start, ~150 ms); made before the warm run, it does not
        # starve the timed run's first frames.
        warm, _ = await video.create_decoder(config)
        decoder, _ = await video.create_decoder(config)
        await video.run(warm_video(config), warm)  # workers for the stages started: untimed
        report = await video.run(config, decoder)
        del decoder, warm
        if report.wrong or report.trajectory != video.positions(config.frames):
            raise AssertionError(f"wrong frames {report.wrong[:5]}")
        return {"video": report.fps, "video_p50": report.percentile(50) * 1e3, "video_p99": report.percentile(99) * 1e3}


async def _run(doc: RunnerDoc, rows: Sequence[str], clusters: Clusters) -> None:
    impl = OurRows(clusters)
    apps = OurApps()
    single = [r for r in rows if not ROW_BY_KEY[r].two_nodes]
    if single:
        async with clusters.open() as _:
            for key in single:
                await doc.run_row_async(key, getattr(impl, f"row_{key}", None) or getattr(apps, f"row_{key}"))
    double = [r for r in rows if ROW_BY_KEY[r].two_nodes]
    if double:
        async with clusters.open(holders=2, tcp_holder="remote_get" in double) as cluster:
            impl.cluster = cluster
            for key in double:
                await doc.run_row_async(key, getattr(impl, f"row_{key}"))
        if impl.killed:
            doc.note("recovery", f"killed: {impl.killed[-1]}")


def body(doc: RunnerDoc, rows: Sequence[str]) -> None:
    try:
        import ownership

        from ownership import get, put, remote  # noqa: F401  (the API this runner needs)
        clusters = Clusters()
    except ImportError as exc:
        raise Unavailable("not available", f"our API is not importable: {exc}") from None
    doc.set_version(getattr(ownership, "__version__", "unknown"))
    doc.set_setup(cluster=clusters.kind, cpus=f"{CPUS} per single node; 1 per node in the multi-node rows")
    doc.note(
        "remote_get",
        "the driver gets an object made on another node: its node links the holder's segment (nodes of one "
        "machine, no bytes move); 'bytes over TCP' pulls from a node started with OWNERSHIP_LINK_NODE_SEGMENTS=0",
    )
    doc.note("borrow", "list of refs passed through nested tasks; the last one gets their values")
    doc.note("serving", "examples/serving.py: 0-CPU Router and Model actors, 1-CPU preprocess tasks, closed-loop clients on the driver")
    doc.note("video", "examples/video.py: 0-CPU Decoder actor, 1-CPU flow/cumsum/smooth tasks, frames by reference")
    trio.run(_run, doc, rows, clusters)


def main(argv: Sequence[str] | None = None) -> int:
    return runner_main("ours", body, argv)


if __name__ == "__main__":
    # Run the module under its importable name, so that the task bodies above
    # are pickled by reference (workers import them) and not by value.
    import bench.ours

    raise SystemExit(bench.ours.main())
