"""An in-memory network that holds every message in flight.

All processes (head, nodes, workers, drivers) of an in-memory cluster run as
trio tasks of one ``trio.run``; each has a :class:`MemoryTransport` endpoint
and its own cancel scope. Sent messages are not delivered by themselves:
they wait in :meth:`MemoryNetwork.in_flight` until someone delivers them.

- A test or the conformance harness delivers, drops or duplicates a chosen
  message (:meth:`~MemoryNetwork.deliver`, :meth:`~MemoryNetwork.drop`,
  :meth:`~MemoryNetwork.duplicate`), lets the cluster settle
  (:meth:`~MemoryNetwork.settle`), runs to quiescence with a seeded random
  order (:meth:`~MemoryNetwork.run_until_quiet`), and crashes any process at
  any step (:meth:`~MemoryNetwork.crash`).
- For normal use, :meth:`~MemoryNetwork.run` delivers automatically in a
  seeded random order (FIFO per sender/receiver pair, as over TCP).

Given a seed and deterministic user code, the sequence of deliveries is
reproducible: a delivery happens only when every process has finished
reacting to the previous one (``settle``), and the next message is drawn
from a seeded generator.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import trio

from ..core.events import PeerLost, Tick
from ..core.messages import MESSAGE_TYPES, RECORD_TYPES, InvalidMessage, validate
from .launch import WorkerStartError
from .transport import Envelope, Transport, TransportClosed

__all__ = ["MemoryNetwork", "MemoryTransport", "MemoryLauncher", "NetworkEvent", "AddressInUse"]


logger = logging.getLogger("ownership.memory")


def _registered(cls: type) -> bool:
    name = cls.__name__
    return MESSAGE_TYPES.get(name) is cls or RECORD_TYPES.get(name) is cls


class AddressInUse(ValueError):
    """Addresses are never reused, so that a dead process stays dead."""


@attrs.frozen
class NetworkEvent:
    """What happened to a message (for observers: logs, conformance)."""

    kind: str  # "send" | "deliver" | "drop" | "duplicate" | "crash" | "tick" | "reject"
    id: int | None
    envelope: Envelope | None
    address: str | None = None


@attrs.define(eq=False)
class _Process:
    address: str
    parent: str | None
    scope: trio.CancelScope | None = None
    children: set[str] = attrs.Factory(set)


class _Status:
    """Passes ``started`` through and remembers whether it was called."""

    def __init__(self, inner: trio.TaskStatus[Any]) -> None:
        self._inner = inner
        self.done = False

    def started(self, value: Any = None) -> None:
        self.done = True
        self._inner.started(value)


class MemoryTransport(Transport):
    def __init__(self, network: MemoryNetwork, address: str) -> None:
        self._network = network
        self._address = address
        self._send_ch, self._recv_ch = trio.open_memory_channel[Envelope](math.inf)

    @property
    def address(self) -> str:
        return self._address

    def send_nowait(self, dst: str, msg: Any) -> None:
        self._network._send(self._address, dst, msg)

    async def receive(self) -> Envelope:
        try:
            return await self._recv_ch.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed(f"endpoint {self._address} is closed") from None

    def _put(self, env: Envelope) -> bool:
        try:
            self._send_ch.send_nowait(env)
            return True
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False

    def _close(self) -> None:
        self._send_ch.close()

    async def aclose(self) -> None:
        self._close()
        await trio.lowlevel.checkpoint()

    def reject(self, peer: str, reason: str) -> None:
        # Counted under a key of its own: the receiver, not the network, refused it.
        # Over TCP the connection closes (watchers hear PeerLost) and is dialed
        # again at once; the transport resends what it held (runtime/resend.py).
        self._network.stats["rejected"]["by the receiver"] += 1
        self._network._disconnect(self._address, peer, lose=False)

    def watch(self, address: str) -> None:
        self._network._watch(self._address, address)

    async def probe(self, address: str) -> bool:
        await trio.lowlevel.checkpoint()
        return self._network.alive(address) and not self._network.partitioned(self._address, address)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        self._network._busy_add(1)
        try:
            yield
        finally:
            self._network._busy_add(-1)

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        self._network._busy_add(-1)
        try:
            yield
        finally:
            self._network._busy_add(1)


class MemoryNetwork:
    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self._flight: dict[int, Envelope] = {}
        self._endpoints: dict[str, MemoryTransport] = {}
        self._processes: dict[str, _Process] = {}
        self._dead: set[str] = set()
        self._watchers: dict[str, set[str]] = collections.defaultdict(set)
        #: pairs of live processes that cannot reach each other (partition)
        self._cut: set[frozenset[str]] = set()
        self._busy = 0
        self._quiet_threads = trio.Event()
        self._quiet_threads.set()
        self._lot = trio.lowlevel.ParkingLot()
        self._quiet_waiters: list[trio.Event] = []
        self.running = False
        self.stats: dict[str, collections.Counter] = {
            "sent": collections.Counter(),
            "delivered": collections.Counter(),
            "dropped": collections.Counter(),
            "rejected": collections.Counter(),
        }
        self.observers: list[Callable[[NetworkEvent], None]] = []
        self.steps = 0

    # ------------------------------------------------------------------ processes
    def endpoint(self, address: str) -> MemoryTransport:
        """A new process's endpoint; an address is used once in a network's life."""
        if address in self._endpoints or address in self._dead:
            raise AddressInUse(f"address {address!r} is already used on this network")
        ep = self._endpoints[address] = MemoryTransport(self, address)
        return ep

    async def spawn(
        self,
        nursery: trio.Nursery,
        address: str,
        service: Callable[..., Awaitable[Any]],
        *args: Any,
        parent: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``service(endpoint, *args, task_status=..., **kwargs)`` as process ``address``.

        Returns what the service passes to ``task_status.started``. A crash of
        ``parent`` (a node) crashes this process too.
        """
        transport = self.endpoint(address)
        proc = self._processes[address] = _Process(address=address, parent=parent)
        if parent is not None and parent in self._processes:
            self._processes[parent].children.add(address)
        if parent is not None and parent in self._dead:
            self.crash(address)

        async def run(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
            status = _Status(task_status)
            with trio.CancelScope() as scope:
                proc.scope = scope
                if address in self._dead:
                    scope.cancel()
                await service(transport, *args, task_status=status, **kwargs)
            if not status.done:
                # Crashed while starting: the starter gets None, not an error.
                task_status.started(None)

        return await nursery.start(run)

    def alive(self, address: str) -> bool:
        return address in self._endpoints and address not in self._dead

    @property
    def addresses(self) -> list[str]:
        return sorted(a for a in self._endpoints if a not in self._dead)

    @property
    def dead(self) -> set[str]:
        return set(self._dead)

    def children(self, address: str) -> list[str]:
        proc = self._processes.get(address)
        return sorted(proc.children) if proc else []

    def crash(self, address: str) -> None:
        """Spec env: the process crashes; its state and its messages are gone.

        Its children (a node's workers) crash with it; in-flight messages to
        or from it are dropped; processes that watch it (its node) get a
        PeerLost notification, from which the protocol's failure detection
        takes over (the node publishes a worker death; the head notices a
        silent node after its heartbeat timeout).
        """
        if address in self._dead or address not in self._endpoints:
            return
        self._dead.add(address)
        self._notify(NetworkEvent("crash", None, None, address))
        proc = self._processes.get(address)
        if proc is not None:
            for child in sorted(proc.children):
                self.crash(child)
        for mid in [m for m, env in self._flight.items() if address in (env.src, env.dst)]:
            self._drop(mid)
        self._endpoints[address]._close()
        if proc is not None and proc.scope is not None:
            proc.scope.cancel()
        for watcher in sorted(self._watchers.pop(address, set())):
            if self.alive(watcher):
                self._endpoints[watcher]._put(Envelope(watcher, watcher, PeerLost(address)))
        self._lot.unpark_all()

    def _watch(self, watcher: str, address: str) -> None:
        # A process that never was is as gone as a dead one (over TCP, the dial fails).
        if address in self._dead or address not in self._endpoints:
            self._endpoints[watcher]._put(Envelope(watcher, watcher, PeerLost(address)))
        else:
            self._watchers[address].add(watcher)

    def partition(self, a: str, b: str) -> None:
        """Spec env: ``a`` and ``b`` lose each other while both live on.

        Their connection closes (messages in flight between them are lost,
        watchers hear PeerLost), and until :meth:`heal` what one sends the
        other is lost and probes between them fail, as across a network
        partition.
        """
        self._cut.add(frozenset((a, b)))
        self._disconnect(a, b)

    def heal(self, a: str, b: str) -> None:
        self._cut.discard(frozenset((a, b)))

    def partitioned(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self._cut

    def tick(self, address: str | None = None) -> None:
        """Deliver one timer tick to ``address`` (or to every live process)."""
        targets = [address] if address is not None else self.addresses
        for a in targets:
            if self.alive(a):
                self._endpoints[a]._put(Envelope(a, a, Tick()))
                self._notify(NetworkEvent("tick", None, None, a))

    # ------------------------------------------------------------------ messages
    def _send(self, src: str, dst: str, msg: Any) -> None:
        if src in self._dead:
            return  # a crashed process says nothing more
        env = Envelope(src, dst, msg)
        mid = next(self._ids)
        self.stats["sent"][type(msg).__name__] += 1
        if dst in self._dead or (self._cut and frozenset((src, dst)) in self._cut):
            self.stats["dropped"][type(msg).__name__] += 1
            self._notify(NetworkEvent("drop", mid, env))
            return
        self._flight[mid] = env
        self._notify(NetworkEvent("send", mid, env))
        self._lot.unpark_all()

    def in_flight(self) -> list[tuple[int, Envelope]]:
        """Every message sent and not yet delivered or dropped, oldest first."""
        return list(self._flight.items())

    def deliverable(self) -> list[tuple[int, Envelope]]:
        """The oldest in-flight message of each sender/receiver pair (TCP order)."""
        heads: dict[tuple[str, str], tuple[int, Envelope]] = {}
        for mid, env in self._flight.items():
            heads.setdefault((env.src, env.dst), (mid, env))
        return sorted(heads.values(), key=lambda x: x[0])

    async def deliver_except(self, hold: Callable[[Envelope], bool], *, limit: int = 20_000) -> None:
        """Deliver every message but those ``hold`` keeps back, oldest first per
        pair, until only held ones are left; AssertionError after ``limit``."""
        for _ in range(limit):
            await self.settle()
            heads = [mid for mid, env in self.deliverable() if not hold(env)]
            if not heads:
                return
            self.deliver(heads[0])
        raise AssertionError(f"messages keep flowing after {limit} deliveries")

    def deliver(self, mid: int) -> Envelope:
        """Hand message ``mid`` to its receiver (any in-flight message, in any order).

        A message of a registered type is first checked against its class,
        as a TCP decoder does: one whose fields do not fit is not delivered,
        is counted in ``stats["rejected"]``, and the two processes are
        disconnected (:meth:`MemoryTransport.reject`).
        """
        env = self._flight.pop(mid)
        self.steps += 1
        if _registered(type(env.msg)):
            try:
                validate(env.msg)
            except InvalidMessage as exc:
                logger.warning("%s: bad message from %s: %s; disconnected", env.dst, env.src, exc)
                self.stats["rejected"][type(env.msg).__name__] += 1
                self._notify(NetworkEvent("reject", mid, env))
                self._disconnect(env.dst, env.src, lose=False)  # see MemoryTransport.reject
                return env
        ep = self._endpoints.get(env.dst)
        if ep is None or env.dst in self._dead or not ep._put(env):
            self.stats["dropped"][type(env.msg).__name__] += 1
            self._notify(NetworkEvent("drop", mid, env))
        else:
            self.stats["delivered"][type(env.msg).__name__] += 1
            self._notify(NetworkEvent("deliver", mid, env))
        return env

    def _disconnect(self, address: str, peer: str, *, lose: bool = True) -> None:
        """The connection between two processes that live on closes: each hears
        PeerLost of the other if it watches it. With ``lose`` the messages in
        flight between them are lost, as across a partition (the dial that
        would resend them fails); without, they arrive, as over TCP when the
        connection is dialed again and the transport resends (runtime/resend.py)."""
        if address == peer:
            return
        for mid in [m for m, env in self._flight.items() if lose and {env.src, env.dst} == {address, peer}]:
            self._drop(mid)
        for watcher, watched in ((address, peer), (peer, address)):
            watchers = self._watchers.get(watched)
            if watchers is not None and watcher in watchers and self.alive(watcher):
                watchers.discard(watcher)
                self._endpoints[watcher]._put(Envelope(watcher, watcher, PeerLost(watched)))
        self._lot.unpark_all()

    def drop(self, mid: int) -> Envelope:
        """Spec env: the message is lost."""
        env = self._flight[mid]
        self._drop(mid)
        return env

    def _drop(self, mid: int) -> None:
        env = self._flight.pop(mid)
        self.stats["dropped"][type(env.msg).__name__] += 1
        self._notify(NetworkEvent("drop", mid, env))

    def duplicate(self, mid: int) -> int:
        """Put a copy of message ``mid`` in flight; returns the copy's id."""
        env = self._flight[mid]
        new = next(self._ids)
        self._flight[new] = env
        self._notify(NetworkEvent("duplicate", new, env))
        self._lot.unpark_all()
        return new

    def _notify(self, event: NetworkEvent) -> None:
        for observer in self.observers:
            observer(event)

    # ------------------------------------------------------------------ quiescence
    def _busy_add(self, n: int) -> None:
        self._busy += n
        if self._busy > 0 and self._quiet_threads.is_set():
            self._quiet_threads = trio.Event()
        elif self._busy <= 0:
            self._quiet_threads.set()

    @property
    def busy_threads(self) -> int:
        return self._busy

    async def settle(self, *, threads: bool = True) -> None:
        """Wait until every process has reacted to what it received.

        That is: every trio task is blocked, and (unless ``threads=False``) no
        user code runs in a thread (a thread waiting on a blocking get does
        not count).
        """
        # trio.testing imports pytest: loaded here, not with the module, so
        # that importing ownership (every worker process does) stays light.
        from trio.testing import wait_all_tasks_blocked

        while True:
            await wait_all_tasks_blocked()
            if self._busy <= 0 or not threads:
                return
            await self._quiet_threads.wait()

    async def step(self) -> Envelope | None:
        """Settle, then deliver one deliverable message chosen by the seeded generator."""
        await self.settle()
        heads = self.deliverable()
        if not heads:
            return None
        mid, _ = heads[self._rng.randrange(len(heads))]
        env = self.deliver(mid)
        await self.settle()
        return env

    async def run_until_quiet(self, max_steps: int = 100_000) -> int:
        """Deliver in seeded random order until nothing is in flight; returns the steps."""
        steps = 0
        while steps < max_steps:
            if await self.step() is None:
                return steps
            steps += 1
        raise RuntimeError(f"network not quiet after {max_steps} deliveries (a livelock?)")

    def reseed(self, seed: int | None = None) -> None:
        """Restart the delivery order's generator (e.g. once a cluster has started)."""
        self._rng = random.Random(self.seed if seed is None else seed)

    async def run(self, *, wait_for_threads: bool = True) -> None:
        """Deliver automatically forever, one message per settled cluster.

        With ``wait_for_threads=False`` deliveries go on while sync user code
        runs in threads: tasks overlap as they would across processes, at the
        price of an order that depends on the threads' timing.

        Only one task may call ``settle`` while this runs (trio wakes every
        ``wait_all_tasks_blocked`` waiter at once); others use :meth:`wait_quiet`.
        """
        if self.running:
            raise RuntimeError("this network already delivers automatically")
        self.running = True
        try:
            while True:
                await self.settle(threads=wait_for_threads)
                if not self._flight and not wait_for_threads and self._busy > 0:
                    # Quiet only counts once user code has finished too.
                    await self._quiet_or_message()
                    continue
                if not self._flight:
                    waiters, self._quiet_waiters = self._quiet_waiters, []
                    for ev in waiters:
                        ev.set()
                    await self._lot.park()
                    continue
                heads = self.deliverable()
                mid, _ = heads[self._rng.randrange(len(heads))]
                self.deliver(mid)
        finally:
            self.running = False

    async def _quiet_or_message(self) -> None:
        """Wait until the threads are done or something is sent."""
        async with trio.open_nursery() as nursery:

            async def threads_done() -> None:
                await self._quiet_threads.wait()
                nursery.cancel_scope.cancel()

            async def message() -> None:
                await self._lot.park()
                nursery.cancel_scope.cancel()

            nursery.start_soon(threads_done)
            nursery.start_soon(message)

    async def wait_quiet(self) -> None:
        """Wait until nothing is in flight and every process has reacted.

        With :meth:`run` going, the delivery task tells; without it, this is
        :meth:`settle` (messages in flight then stay where they are).
        """
        if not self.running:
            await self.settle()
            return
        ev = trio.Event()
        self._quiet_waiters.append(ev)
        self._lot.unpark_all()
        await ev.wait()


class MemoryLauncher:
    """Starts worker processes for nodes of an in-memory cluster.

    Workers run in the cluster's nursery, as children of their node (a node
    crash takes them down); a kill is a crash.
    """

    def __init__(self, network: MemoryNetwork, nursery: trio.Nursery, **worker_options: Any) -> None:
        self.network = network
        self.nursery = nursery
        self.worker_options = worker_options
        self._counters: dict[str, itertools.count] = collections.defaultdict(lambda: itertools.count(1))
        self.started: list[str] = []

    def next_address(self, node: str) -> str:
        return f"w{next(self._counters[node])}@{node}"

    async def launch(self, node: str) -> None:
        from .worker import serve as serve_worker

        address = self.next_address(node)
        self.started.append(address)
        if not self.network.alive(node):
            return
        rt = await self.network.spawn(self.nursery, address, serve_worker, node=node, parent=node, **self.worker_options)
        if rt is None:
            raise WorkerStartError(f"worker {address} crashed while it started", worker=address)

    def kill(self, worker: str) -> None:
        self.network.crash(worker)
