"""What every service shell shares: the loops that feed a core.

A shell (head, node, worker) turns what arrives on its transport into core
events, and its timer into ticks. Local notifications (a tick, a watched
peer lost) come back on the transport addressed from the process to itself
and go to the core as they are; everything else is a message received.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import trio

from ..core.events import Event, PeerLost, Received, Tick
from .bufpool import frame_pool, value_pool
from .transport import Envelope, Transport, TransportClosed

__all__ = ["ServiceShell"]


class ServiceShell(abc.ABC):
    transport: Transport
    address: str
    tick_interval: float | None
    closed: bool
    _nursery: trio.Nursery
    #: Set in a service process started with ``--event-log DIR``
    #: (runtime/steplog.py): every shell of the process records its core's
    #: steps from its first event on. None costs one check per shell start.
    step_log: ClassVar[Any] = None

    @abc.abstractmethod
    def handle(self, event: Event) -> None:
        """Give ``event`` to the core and carry out its effects."""

    def _received(self, env: Envelope) -> None:
        """A message from a peer; shells with an object plane translate it first."""
        self.handle(Received(env.src, env.msg))

    def _stop(self) -> None:
        self.closed = True
        self._nursery.cancel_scope.cancel()

    async def _receive_loop(self) -> None:
        if self.step_log is not None:
            self.step_log.attach(self)
        set_receiver = getattr(self.transport, "set_receiver", None)
        if set_receiver is not None:
            set_receiver(self._deliver_direct)
        try:
            while True:
                try:
                    env = await self.transport.receive()
                except TransportClosed:
                    return
                if env.src == env.dst == self.address and isinstance(env.msg, (Tick, PeerLost)):
                    self.handle(env.msg)
                else:
                    self._received(env)
        finally:
            self._stop()

    def _deliver_direct(self, env: Envelope) -> None:
        """A peer's message handed over by the transport's reader (set_receiver).

        What handling raises stops the shell as it would in the receive loop:
        it is raised again in the shell's nursery, not in the transport's.
        """
        if self.closed:
            return
        try:
            self._received(env)
        except BaseException as exc:
            self.closed = True
            self._nursery.start_soon(_reraise, exc)

    async def _ticker(self) -> None:
        assert self.tick_interval is not None
        while True:
            await trio.sleep(self.tick_interval)
            self.handle(Tick())
            # Large buffers nobody has used for a while go back to the kernel,
            # also in a process that has stopped passing large values.
            frame_pool.trim()
            value_pool.trim()


async def _reraise(exc: BaseException) -> None:
    raise exc
