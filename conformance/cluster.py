"""An in-memory cluster shaped like a model, driven one stimulus at a time.

``ownership.testing.memory_cluster`` gives every node the same pool; a model
config gives each node its own workers and slots (``WorkerNode``,
``Capacity``) and places owners on nodes. :func:`model_cluster` builds that
cluster from the same pieces (the in-memory network, the head, node and
worker services, the recording launcher) with every delivery left to the
caller (``auto=False``), like ``memory_cluster(..., auto=False)``.

The harness is the environment of the spec: it decides which message is
delivered, which process crashes, when time passes. Messages the spec does
not model (heartbeats, cluster views, registrations) are *hidden*: they wait
in flight until the mapping needs them, so they change nothing behind the
trace's back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import trio

from ownership.core.config import CoreConfig
from ownership.core.messages import ClusterView, Heartbeat
from ownership.runtime import head as head_service
from ownership.runtime import node as node_service
from ownership.runtime import worker as worker_service
from ownership.runtime.memory import MemoryNetwork, NetworkEvent
from ownership.runtime.transport import Envelope
from ownership.testing import MemoryCluster, _RecordingLauncher

__all__ = ["ActiveMapping", "NodeShape", "ModelCluster", "model_cluster", "StimulusError"]


class StimulusError(RuntimeError):
    """The implementation cannot be given the stimulus a step needs (the
    message is not in flight, the process is gone): a divergence."""


@attrs.frozen
class NodeShape:
    resources: tuple[tuple[str, float], ...]
    pool_size: int


class ModelCluster(MemoryCluster):
    """A :class:`~ownership.testing.MemoryCluster` with several drivers and
    the step primitives of a conformance harness."""

    def __init__(self, network: MemoryNetwork, nursery: trio.Nursery, config: CoreConfig) -> None:
        super().__init__(network, nursery, config, None)
        self.auto = False
        self.drivers: dict[str, Any] = {}
        #: every message ever sent, by id (the network forgets delivered ones)
        self.sent: dict[int, Envelope] = {}
        self.events: list[NetworkEvent] = []
        #: messages a crash dropped from the network and the harness put back (see crash)
        self.kept: set[int] = set()
        network.observers.append(self._observe)

    def _observe(self, event: NetworkEvent) -> None:
        self.events.append(event)
        if event.kind in ("send", "duplicate") and event.id is not None and event.envelope is not None:
            self.sent[event.id] = event.envelope

    # ------------------------------------------------------------------ stimuli
    async def deliver(self, mid: int) -> Envelope:
        """Deliver in-flight message ``mid`` and let every process react."""
        if mid not in dict(self.network.in_flight()):
            raise StimulusError(f"message {mid} is not in flight")
        env = self.network.deliver(mid)
        await self.network.settle()
        return env

    async def deliver_where(self, pred: Callable[[Envelope], bool]) -> int:
        """Deliver every in-flight message matching ``pred`` (oldest first),
        including those its deliveries cause; returns how many."""
        count = 0
        while True:
            match = next((mid for mid, env in self.network.in_flight() if pred(env)), None)
            if match is None:
                return count
            await self.deliver(match)
            count += 1

    def crash(self, address: str, *, keep_outgoing: bool = True) -> None:
        """Crash a process. With ``keep_outgoing`` the messages it had
        already sent to live processes stay in flight, as over TCP where
        bytes in the kernel's buffers still arrive (the in-memory network
        drops them; the specs let them arrive)."""
        kept: list[tuple[int, Envelope]] = []
        if keep_outgoing:
            doomed = {address, *self._descendants(address)}
            kept = [(mid, env) for mid, env in self.network.in_flight() if env.src in doomed and env.dst not in doomed]
        self.kept.update(mid for mid, _env in kept)
        self.network.crash(address)
        for mid, env in kept:
            if self.network.alive(env.dst):
                # Re-inserted under its own id so order (oldest first) is kept.
                self.network._flight[mid] = env
        if kept:
            self.network._flight = dict(sorted(self.network._flight.items()))

    def _descendants(self, address: str) -> list[str]:
        out: list[str] = []
        for child in self.network.children(address):
            out.append(child)
            out += self._descendants(child)
        return out

    async def tick_and_settle(self, *addresses: str) -> None:
        for address in addresses:
            self.network.tick(address)
        await self.network.settle()

    async def refresh_views(self) -> None:
        """One heartbeat round: every live node reports to the head and gets
        the head's current cluster view back, so spillback decisions read
        the cluster as it is now."""
        live = [n for n in sorted(self.nodes) if self.network.alive(n)]
        for node in live:
            self.network.tick(node)
        await self.network.settle()
        await self.deliver_where(lambda env: isinstance(env.msg, (Heartbeat, ClusterView)))

    async def declare_node_dead(self, address: str) -> None:
        """Heartbeat rounds until the head declares the node at ``address``
        dead (Scheduling/FateSharing ``HeadDetectNodeDeath``): its timeout
        and a few rounds to spare, else :class:`StimulusError`."""
        assert self.head is not None
        record = self.head.core.nodes.get(address)
        if record is None or not record.alive:
            raise StimulusError(f"the head does not count {address} as a member")
        for _ in range(self.config.node_timeout_ticks + 3):
            await self.refresh_views()
            await self.tick_and_settle("head")
            if not record.alive:
                return
        raise StimulusError(f"the head did not declare {address} dead after its heartbeat timeout")

    async def settle(self) -> None:
        await self.network.settle()


@contextlib.asynccontextmanager
async def model_cluster(
    nodes: dict[str, NodeShape],
    drivers: dict[str, str],
    *,
    config: CoreConfig,
    seed: int = 0,
) -> AsyncIterator[ModelCluster]:
    """A cluster with the given nodes (by name) and drivers (address -> node).

    Startup (registrations, the first heartbeats) runs with automatic
    delivery; then one heartbeat round so every node's view lists every
    node; from then on nothing moves unless the caller delivers it.
    """
    network = MemoryNetwork(seed=seed)
    async with trio.open_nursery() as nursery:
        cluster = ModelCluster(network, nursery, config)
        launcher = _RecordingLauncher(cluster, network, nursery, config=config, tick_interval=None)
        cluster.launcher = launcher
        startup = trio.CancelScope()

        async def deliver_startup() -> None:
            with startup:
                await network.run()

        nursery.start_soon(deliver_startup)
        cluster.head = await network.spawn(nursery, "head", head_service.serve, config=config, tick_interval=None)
        for name, shape in nodes.items():
            cluster.nodes[name] = await network.spawn(
                nursery,
                name,
                node_service.serve,
                head="head",
                resources=shape.resources,
                pool_size=shape.pool_size,
                launcher=launcher,
                config=config,
                tick_interval=None,
                on_fenced=lambda reason, name=name: network.crash(name),
            )
        for rt in cluster.nodes.values():
            await rt.ready.wait()
        for address, node in drivers.items():
            cluster.drivers[address] = await network.spawn(
                nursery, address, worker_service.serve, node=node, driver=True, config=config, tick_interval=None, parent=node
            )
        cluster.driver = next(iter(cluster.drivers.values()), None)
        await network.settle()
        startup.cancel()
        await network.settle()
        while network.in_flight():
            await network.step()
        await cluster.refresh_views()
        try:
            yield cluster
        finally:
            nursery.cancel_scope.cancel()


class ActiveMapping:
    """The mapping whose model cluster runs now, for one spec.

    A model's task bodies are user code that the cluster's workers run (in
    this process: the cluster is in memory); they find the mapping that
    scripts them here. ``cluster`` runs a model cluster with the model's
    driver at ``driver@<head node>`` and makes ``mapping`` the active one
    for as long as it runs.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._current: Any = None

    def get(self) -> Any:
        if self._current is None:
            raise RuntimeError(f"this task body runs only under the {self.spec} conformance harness")
        return self._current

    @staticmethod
    def driver_address(head_node: str) -> str:
        return f"driver@{head_node}"

    @contextlib.asynccontextmanager
    async def cluster(
        self, mapping: Any, shapes: dict[str, NodeShape], config: CoreConfig, head_node: str
    ) -> AsyncIterator[ModelCluster]:
        async with model_cluster(shapes, {self.driver_address(head_node): head_node}, config=config) as cluster:
            previous, self._current = self._current, mapping
            try:
                yield cluster
            finally:
                self._current = previous
