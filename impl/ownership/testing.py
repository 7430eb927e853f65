"""An in-process cluster on the in-memory network, for tests and examples.

    async with ownership.testing.memory_cluster(nodes=2, workers_per_node=2, seed=0) as cluster:
        ref = f.remote(1)
        assert await ref == ...
        cluster.crash("w1@n2")         # any process, at any step

Every process (head ``head``, nodes ``n1``..., workers ``w<k>@<node>``, the
driver ``driver@n1``) is a trio task of the caller's run, talking over one
:class:`~ownership.runtime.memory.MemoryNetwork`. With ``auto=True`` messages
are delivered by a background task in a seeded random order; with
``auto=False`` nothing moves until the test delivers (``cluster.network``),
which is how the conformance harness drives the implementation step by step.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import AsyncIterator
from typing import Any

import trio

from .core.config import CoreConfig
from .runtime import head as head_service
from .runtime import node as node_service
from .runtime import worker as worker_service
from .runtime.head import HeadRuntime
from .runtime.memory import MemoryLauncher, MemoryNetwork
from .runtime.node import NodeRuntime, WorkerStartError
from .runtime.refs import _runtime_var
from .runtime.worker import WorkerRuntime

__all__ = ["memory_cluster", "MemoryCluster"]


class _RecordingLauncher(MemoryLauncher):
    """A memory launcher that keeps each worker's runtime for inspection."""

    def __init__(self, cluster: MemoryCluster, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster

    async def launch(self, node: str) -> None:
        from .runtime.worker import serve as serve_worker

        address = self.next_address(node)
        self.started.append(address)
        if not self.network.alive(node):
            return
        rt = await self.network.spawn(self.nursery, address, serve_worker, node=node, parent=node, **self.worker_options)
        if rt is None:
            raise WorkerStartError(f"worker {address} crashed while it started", worker=address)
        self.cluster.workers[address] = rt


class MemoryCluster:
    """Handles to every process of an in-memory cluster."""

    def __init__(self, network: MemoryNetwork, nursery: trio.Nursery, config: CoreConfig, tick_interval: float | None) -> None:
        self.network = network
        self.nursery = nursery
        self.config = config
        self.tick_interval = tick_interval
        self.head: HeadRuntime | None = None
        self.nodes: dict[str, NodeRuntime] = {}
        self.workers: dict[str, WorkerRuntime] = {}
        self.driver: WorkerRuntime | None = None
        self.launcher: _RecordingLauncher | None = None

    # ------------------------------------------------------------------ faults
    def crash(self, address: str) -> None:
        """Crash a worker, node, driver or the head (see MemoryNetwork.crash)."""
        self.network.crash(address)

    def tick(self, address: str | None = None) -> None:
        """One timer tick to ``address`` (or every process); see :meth:`advance`."""
        self.network.tick(address)

    async def advance(self, ticks: int = 1) -> None:
        """Let ``ticks`` timer periods pass, each followed by all the messages it causes.

        Heartbeats, lease timeouts and the head's failure detection move on
        ticks; with ``tick_interval=None`` this is the only clock.
        """
        for _ in range(ticks):
            self.network.tick()
            await self._deliver_all()

    async def detect_failures(self) -> None:
        """Tick past the head's heartbeat timeout, so dead nodes are declared."""
        await self.advance(self.config.node_timeout_ticks + 2)

    # ------------------------------------------------------------------ inspection
    def alive_workers(self, node: str | None = None) -> list[str]:
        return [
            a
            for a in sorted(self.workers)
            if self.network.alive(a) and (node is None or self.workers[a].core.node == node)
        ]

    def runtimes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.head is not None and self.network.alive(self.head.address):
            out[self.head.address] = self.head
        for name, rt in self.nodes.items():
            if self.network.alive(name):
                out[name] = rt
        for address, rt in self.workers.items():
            if self.network.alive(address):
                out[address] = rt
        if self.driver is not None and self.network.alive(self.driver.address):
            out[self.driver.address] = self.driver
        return out

    def snapshot(self) -> dict[str, Any]:
        """Every live core's state plus the messages in flight."""
        return {
            "processes": {a: rt.snapshot() for a, rt in sorted(self.runtimes().items())},
            "in_flight": [(mid, env.src, env.dst, type(env.msg).__name__) for mid, env in self.network.in_flight()],
        }

    def leaks(self) -> dict[str, Any]:
        """What is still held anywhere: table entries, tasks, leases, stored copies.

        Empty once every ref is dropped and the cluster is quiet (no leak).
        Actor leases are counted too, so a live actor shows up here.
        """
        out: dict[str, Any] = {}
        for address, rt in sorted(self.runtimes().items()):
            if isinstance(rt, HeadRuntime):
                if rt.core.recovery_logs:
                    out[address] = {"recovery_logs": rt.core.snapshot()["recovery_logs"]}
                continue
            if isinstance(rt, WorkerRuntime):
                if not rt.core.is_idle():
                    snap = rt.core.snapshot()
                    out[address] = {
                        k: v
                        for k, v in {
                            "objects": snap["objects"],
                            "tasks": snap["submitter"]["tasks"],
                            "leases": snap["submitter"]["leases"],
                            "actors": snap["submitter"]["actors"],
                            "running": snap["executor"]["running"],
                        }.items()
                        if v
                    }
            elif isinstance(rt, NodeRuntime):
                s = rt.core
                if s.store.objects or s.scheduler.leases or s.scheduler.queue:
                    out[address] = {
                        "store": s.store.snapshot(),
                        "leases": s.scheduler.snapshot()["leases"],
                        "queue": s.scheduler.snapshot()["queue"],
                    }
        return out

    async def settle(self) -> None:
        """Wait until no message is in flight and every process is idle."""
        await self._deliver_all()

    async def quiesce(self, *, rounds: int = 50) -> None:
        """Collect garbage, deliver everything, and tick until nothing changes.

        Ticks let idle leases be returned; a round that moves no message and
        changes no core state ends it.
        """
        quiet = 0
        last: Any = None
        for _ in range(rounds):
            gc.collect()
            await self._deliver_all()
            self.network.tick()
            await self._deliver_all()
            state = self.leaks()
            if state == last:
                quiet += 1
                if quiet >= 2:
                    return
            else:
                quiet = 0
            last = state
        raise RuntimeError("the cluster did not quiesce")

    async def _deliver_all(self) -> None:
        if self.auto:
            # The background delivery task moves the messages and tells when done.
            await self.network.wait_quiet()
            return
        await self.network.settle()
        while self.network.in_flight():
            await self.network.step()

    auto = True


@contextlib.asynccontextmanager
async def memory_cluster(
    nodes: int = 2,
    workers_per_node: int = 2,
    seed: int = 0,
    *,
    cpus_per_node: float | None = None,
    resources: dict[str, float] | None = None,
    node_resources: dict[str, dict[str, float]] | None = None,
    config: CoreConfig | None = None,
    tick_interval: float | None = 0.05,
    auto: bool = True,
    deterministic: bool = True,
) -> AsyncIterator[MemoryCluster]:
    """An in-memory cluster; the calling context becomes its driver.

    ``cpus_per_node`` defaults to ``workers_per_node``. ``tick_interval``
    drives heartbeats and lease timeouts from trio's clock (None: only
    ``cluster.tick()``). With ``auto=False`` the caller delivers messages.
    With ``deterministic=False`` automatic delivery does not wait for sync
    task code running in threads, so such tasks overlap (the order then
    depends on their timing).
    """
    if nodes < 1 or workers_per_node < 0:
        raise ValueError("a cluster needs at least one node and workers_per_node >= 0")
    config = config or CoreConfig()
    network = MemoryNetwork(seed=seed)
    async with trio.open_nursery() as nursery:
        cluster = MemoryCluster(network, nursery, config, tick_interval)
        cluster.auto = auto
        launcher = _RecordingLauncher(cluster, network, nursery, config=config, tick_interval=tick_interval)
        cluster.launcher = launcher
        startup_delivery = trio.CancelScope()
        if not auto:
            # Startup handshakes need deliveries; the caller takes over after.
            nursery.start_soon(_deliver_until_cancelled, network, startup_delivery)
        else:
            nursery.start_soon(functools.partial(network.run, wait_for_threads=deterministic), name="memory network delivery")
        if True:
            cluster.head = await network.spawn(nursery, "head", head_service.serve, config=config, tick_interval=tick_interval)
            for i in range(1, nodes + 1):
                name = f"n{i}"
                shape = {"CPU": float(workers_per_node if cpus_per_node is None else cpus_per_node)}
                shape.update(resources or {})
                shape.update((node_resources or {}).get(name, {}))
                cluster.nodes[name] = await network.spawn(
                    nursery,
                    name,
                    node_service.serve,
                    head="head",
                    resources=tuple(sorted(shape.items())),
                    pool_size=workers_per_node,
                    launcher=launcher,
                    config=config,
                    tick_interval=tick_interval,
                    on_fenced=functools.partial(_fenced, network, name),
                )
            for rt in cluster.nodes.values():
                await rt.ready.wait()
            cluster.driver = await network.spawn(
                nursery, "driver@n1", worker_service.serve, node="n1", driver=True, config=config, tick_interval=tick_interval, parent="n1"
            )
            if not auto:
                await network.wait_quiet()
                startup_delivery.cancel()
            # Startup handshakes race with each other; what the caller does
            # from here on is reproducible for the seed.
            network.reseed()
        token = _runtime_var.set(cluster.driver)
        try:
            yield cluster
        finally:
            _runtime_var.reset(token)
            nursery.cancel_scope.cancel()


async def _deliver_until_cancelled(network: MemoryNetwork, scope: trio.CancelScope) -> None:
    with scope:
        await network.run()


def _fenced(network: MemoryNetwork, name: str, reason: str) -> None:
    """A node the head declared dead stops, its workers with it: on the
    memory network, its process ends as a crashed one does."""
    network.crash(name)
