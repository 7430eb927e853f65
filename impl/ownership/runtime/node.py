"""The node service: local scheduler + object store, around :class:`NodeCore`.

A node starts and stops worker processes through a :class:`WorkerLauncher`
(in-memory: trio tasks; over TCP: OS processes) and learns of their exit
through :meth:`Transport.watch` (a local PeerLost notification); a start
that fails is an event too (:class:`WorkerStartFailed`), so the scheduler
frees the slot and starts another or sends its requests elsewhere. Over TCP,
its store's large copies live in the node's shared memory
(:class:`~.objects.NodeObjects`); in memory they are Python objects.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Protocol

import trio

from ..core.config import CoreConfig
from ..core.events import (
    Effect,
    Event,
    Fenced,
    KillWorker,
    ObjectFreed,
    PeerLost,
    Received,
    Send,
    StartWorker,
    Tick,
    Watch,
    WorkerStartFailed,
)
from ..core.messages import LeaseGranted, ObjectCopy, PullObject, Resources
from ..core.node import NodeCore
from ..core.scheduler import DRIVER, SchedulingPolicy
from ..core.store import ObjectFetched
from .launch import WorkerStartError
from .objects import NodeObjects, PeerSegmentCopy
from .shm import SharedMemoryStore
from .shell import ServiceShell, printable
from .transport import Transport

__all__ = ["WorkerLauncher", "WorkerStartError", "NodeRuntime", "serve"]

logger = logging.getLogger("ownership.node")


class WorkerLauncher(Protocol):
    """Starts and stops worker processes for a node."""

    async def launch(self, node: str) -> None:
        """Start one worker process for ``node``; it registers itself with the node.

        Returns once the worker serves; raises :class:`WorkerStartError` if
        it does not (any other exception counts as a failed start too).
        """

    def kill(self, worker: str) -> None:
        """Stop worker ``worker`` (its exit is then seen through ``Transport.watch``)."""


class NodeRuntime(ServiceShell):
    def __init__(
        self,
        transport: Transport,
        core: NodeCore,
        nursery: trio.Nursery,
        launcher: WorkerLauncher,
        *,
        tick_interval: float | None = None,
        shm: SharedMemoryStore | None = None,
        on_fenced: Callable[[str], None] | None = None,
    ) -> None:
        self.transport = transport
        #: called once when the head declared this node dead (see Fenced);
        #: None: the service stops, and whoever runs it sees it return
        self.on_fenced = on_fenced
        self.fenced: str | None = None
        self.core = core
        self.address = core.address
        self.launcher = launcher
        self.tick_interval = tick_interval
        self._nursery = nursery
        self.closed = False
        self.ready = trio.Event()
        #: workers whose lost connection a probe confirmed: their PeerLost goes to the core
        self._probed_dead: set[str] = set()
        #: probes of workers whose connection closed, by outcome
        self.worker_probes = {"answered": 0, "unanswered": 0}
        #: the store's copies in shared memory (TCP runtime only)
        self.objects: NodeObjects | None = None
        if shm is not None:
            self.objects = NodeObjects(shm, self.address, self.send)

    def handle(self, event: Event) -> None:
        if isinstance(event, PeerLost) and not self._confirmed(event.address):
            return
        if self.objects is None:
            self._apply(self.core.handle(event))
        else:
            self._handle_with_objects(event)
        if not self.ready.is_set():
            s = self.core.scheduler
            if sum(1 for w in s.workers.values() if w.state == "idle") >= s.pool_size or (s.start_paused and not s.starting):
                # Ready with a full pool, or once starting workers failed too
                # often: the node serves with what it has, and says so.
                self.ready.set()

    def _confirmed(self, address: str) -> bool:
        """Whether a lost connection to ``address`` may go to the core as a death.

        The transport tells a watcher as soon as a connection closes, and a
        connection closes under a live worker too (a reset, a network
        fault); the core takes PeerLost as the worker's death
        (Scheduling!SchedulerDetectWorkerDeath needs it dead). So a
        registered worker is probed first, as the head probes a node; a
        death the probe confirmed, or any other peer's, goes through.
        """
        if address in self._probed_dead:
            self._probed_dead.discard(address)
            return True
        if address not in self.core.scheduler.workers:
            return True
        self._nursery.start_soon(self._probe_worker, address, name=f"probe worker {address}")
        return False

    async def _probe_worker(self, address: str) -> None:
        """Answered: the worker lives; watch it again (a watch reports once).
        Unanswered: it is gone or hung; a worker of ours is killed first
        (it is our child), so that what the node declares dead is dead.

        A driver registered here cannot be killed, and a busy driver may
        take longer than a probe's time to answer a dial: it is probed
        again while its probes time out, for up to the node timeout (the
        backstop the head uses for nodes); a refused dial ends it at once.
        """
        config = self.core.config
        slot = self.core.scheduler.workers.get(address)
        attempts = 1 if slot is None or slot.state != DRIVER else max(1, config.node_timeout_ticks // max(1, config.probe_timeout_ticks))
        reachable = False
        for _ in range(attempts):
            with trio.move_on_after(self.probe_timeout) as probe:
                reachable = await self.transport.probe(address)
            if reachable or not probe.cancelled_caught:
                break  # answered, or refused: no process there
        slot = self.core.scheduler.workers.get(address)
        if self.closed or slot is None:
            return
        self.worker_probes["answered" if reachable else "unanswered"] += 1
        if reachable:
            logger.info("%s: connection with worker %s closed; it answered a probe", self.address, address)
            self.transport.watch(address)
            return
        if slot.state != DRIVER:
            self.launcher.kill(address)
        self._probed_dead.add(address)
        self._local(PeerLost(address=address))

    def _handle_with_objects(self, event: Event) -> None:
        objects = self.objects
        assert objects is not None
        segment = None
        if isinstance(event, Received):
            if self._stale_copy(event.src, event.msg):
                if isinstance(event.msg, PeerSegmentCopy):
                    return  # nobody here waits for it: not worth a link
            else:
                msg, segment = objects.incoming(event.src, event.msg)
                if msg is None:
                    return  # the object plane's own message
                event = Received(event.src, msg)
        elif isinstance(event, PeerLost):
            objects.worker_lost(event.address)
        elif isinstance(event, Tick):
            objects.spares.trim()
            objects.frames.trim()
        effects = self.core.handle(event)
        if segment is not None:
            offered = event.msg  # type: ignore[attr-defined]
            kept = self.core.store.objects.get(offered.object_id)
            objects.settle(offered.object_id, segment, kept.value if kept else None, offered.value)
        self._apply(effects)

    def _stale_copy(self, src: str, msg: Any) -> bool:
        """A copy nobody here waits for any more: not worth a segment (the core drops it)."""
        if not isinstance(msg, (ObjectCopy, PeerSegmentCopy)):
            return False
        pending = self.core.store.fetching.get(msg.object_id)
        return pending is None or pending.source != src

    def _apply(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Send):
                msg = e.msg
                if self.objects is not None and isinstance(msg, (ObjectFetched, ObjectCopy)):
                    kept = self.core.store.objects.get(msg.object_id)
                    msg = self.objects.outgoing(e.dst, msg, kept.value if kept else None)
                elif self.objects is not None and isinstance(msg, PullObject) and e.dst in self.core.scheduler.view:
                    msg = self.objects.pull(e.dst, msg)
                elif self.objects is not None and isinstance(msg, LeaseGranted):
                    note = self.objects.grant_note(e.dst, msg)
                    if note is not None:  # before the grant, on the same connection
                        self.send(e.dst, note)
                self.send(e.dst, msg)
            elif isinstance(e, StartWorker):
                self._nursery.start_soon(self._launch, name=f"start a worker for {self.address}")
            elif isinstance(e, KillWorker):
                self.launcher.kill(e.worker)
            elif isinstance(e, Watch):
                self.transport.watch(e.address)
            elif isinstance(e, Fenced):
                self._fenced(e.reason)
            elif isinstance(e, ObjectFreed):
                if self.objects is not None:
                    self.objects.freed(e.object_id)
            else:
                raise TypeError(f"node shell cannot carry out {e!r}")

    def _fenced(self, reason: str) -> None:
        """The cluster wrote this node off: stop serving (its workers were
        told to stop in the same step), and let the process exit."""
        if self.fenced is not None:
            return
        self.fenced = reason
        logger.error("%s: %s; stopping", self.address, printable(reason))
        if self.on_fenced is not None:
            self.on_fenced(reason)
        else:
            self._stop()

    async def _launch(self) -> None:
        """One StartWorker: the launcher starts the process; a failure goes to the core."""
        try:
            await self.launcher.launch(self.address)
        except Exception as exc:
            worker = exc.worker if isinstance(exc, WorkerStartError) else None
            reason = printable(str(exc) if isinstance(exc, WorkerStartError) else f"{type(exc).__name__}: {exc}")
            if self.closed:
                return
            self._local(WorkerStartFailed(worker=worker, reason=reason))
            s = self.core.scheduler
            if s.start_paused:
                logger.error(
                    "%s: %d worker starts failed in a row (last: %s); starting none for %d ticks, queued requests go to other nodes",
                    self.address,
                    s.start_failures,
                    reason,
                    s.start_pause_left,
                )
            else:
                logger.warning("%s: a worker did not start (%s); starting another", self.address, reason)

    def snapshot(self) -> dict[str, Any]:
        snap = self.core.snapshot()
        snap["handler_errors"] = self.handler_errors
        snap["messages_unsendable"] = self.messages_unsendable
        if self.objects is not None:
            snap["shm"] = self.objects.snapshot()
        snap["fenced"] = self.fenced
        snap["worker_probes"] = dict(self.worker_probes)
        return snap


async def serve(
    transport: Transport,
    *,
    head: str,
    resources: Resources,
    pool_size: int,
    launcher: WorkerLauncher,
    config: CoreConfig | None = None,
    policy: SchedulingPolicy | None = None,
    tick_interval: float | None = None,
    shm: SharedMemoryStore | None = None,
    on_fenced: Callable[[str], None] | None = None,
    task_status: trio.TaskStatus[NodeRuntime] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one node until its transport closes; starts its initial workers.

    With ``shm`` the store keeps its large copies in those shared-memory
    segments; the caller unlinks what is left (``shm.close()``) after.
    ``on_fenced(reason)`` is called when the head declared this node dead
    (the process should exit); without it the service returns then.
    """
    core = NodeCore(transport.address, head, resources, pool_size=pool_size, config=config, policy=policy)
    async with trio.open_nursery() as nursery:
        rt = NodeRuntime(transport, core, nursery, launcher, tick_interval=tick_interval, shm=shm, on_fenced=on_fenced)
        nursery.start_soon(rt._receive_loop, name=f"receive {rt.address}")
        if tick_interval is not None:
            nursery.start_soon(rt._ticker, name=f"ticks {rt.address}")
        rt._apply(core.start())
        task_status.started(rt)
    rt.closed = True
    if rt.objects is not None:
        rt.objects.spares.close()
        rt.objects.frames.close()
