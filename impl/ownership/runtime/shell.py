"""What every service shell shares: the loops that feed a core.

A shell (head, node, worker) turns what arrives on its transport into core
events, and its timer into ticks. Local notifications (a tick, a watched
peer lost) come back on the transport addressed from the process to itself
and go to the core as they are; everything else is a message received.

A handler's exception never ends a service. Messages reach a core only
after their fields were checked against their classes (the decoder does it
over TCP, the in-memory network on delivery), and a core drops what it
cannot use; should a core still raise on a message, the shell logs it once
(escaped, bounded), counts it (``handler_errors``) and closes the
connection it came from (:meth:`Transport.reject`), and goes on serving.
"""

from __future__ import annotations

import abc
import logging
import traceback
from typing import Any, ClassVar

import trio

from ..core.events import Event, PeerLost, Received, Tick
from .bufpool import frame_pool, value_pool
from .framing import FrameError
from .transport import Envelope, Transport, TransportClosed

__all__ = ["ServiceShell", "printable"]

logger = logging.getLogger("ownership.shell")


def printable(text: str, limit: int = 300) -> str:
    """``text`` fit for one log line: control characters escaped, at most ``limit`` characters."""
    shown = repr(text)[1:-1]
    return shown if len(shown) <= limit else shown[:limit] + "..."


class ServiceShell(abc.ABC):
    transport: Transport
    core: Any
    address: str
    tick_interval: float | None
    closed: bool
    _nursery: trio.Nursery
    #: Set in a service process started with ``--event-log DIR``
    #: (runtime/steplog.py): every shell of the process records its core's
    #: steps from its first event on. None costs one check per shell start.
    step_log: ClassVar[Any] = None
    #: Events whose handling raised: each was logged and dropped (a
    #: message's connection closed); the service went on.
    handler_errors: int = 0
    #: Messages to an address no process can have, dropped (see :meth:`send`).
    messages_unsendable: int = 0
    #: (event type, exception type) pairs already logged with a traceback.
    _errors_traced: set[tuple[str, str]] | None = None

    @property
    def probe_timeout(self) -> float:
        """Seconds one probe of a peer may take: the core's ``probe_timeout_ticks``
        at this shell's tick interval (0.1 s, the default, without a ticker)."""
        tick = self.tick_interval if self.tick_interval is not None else 0.1
        return self.core.config.probe_timeout_ticks * tick

    @abc.abstractmethod
    def handle(self, event: Event) -> None:
        """Give ``event`` to the core and carry out its effects."""

    def _received(self, env: Envelope) -> None:
        """A message from a peer; shells with an object plane translate it first."""
        self.handle(Received(env.src, env.msg))

    def _message(self, env: Envelope) -> None:
        """A message from a peer, through the backstop: what handling it
        raises closes its connection and is logged, never ends the service."""
        try:
            self._received(env)
        except Exception as exc:
            self.handler_failed(env.src, env.msg, exc)

    def _local(self, event: Event) -> None:
        """A tick or a local notification, through the same backstop."""
        try:
            self.handle(event)
        except Exception as exc:
            self.handler_failed(None, event, exc)

    def handler_failed(self, src: str | None, what: Any, exc: Exception) -> None:
        """Handling ``what`` (from peer ``src``; None: a local event) raised ``exc``.

        Logged in one line, with the traceback the first time this event
        type fails with this exception type; the peer's connection is
        closed, so a peer that keeps sending what we cannot handle costs
        one handshake per message.
        """
        self.handler_errors += 1
        kind = type(what).__name__
        if self._errors_traced is None:
            self._errors_traced = set()
        key = (kind, type(exc).__name__)
        trace = ""
        if key not in self._errors_traced:
            self._errors_traced.add(key)
            # Code lines only: the exception's text can carry a peer's bytes.
            trace = "\n" + "".join(traceback.format_tb(exc.__traceback__)).rstrip()
        reason = printable(f"{type(exc).__name__}: {exc}")
        if src is None:
            logger.error("%s: handling %s failed (%s); dropped it%s", self.address, kind, reason, trace)
            return
        logger.error(
            "%s: %s from %s could not be handled (%s); closing that connection%s",
            self.address,
            printable(kind, 80),
            printable(src, 80),
            reason,
            trace,
        )
        try:
            self.transport.reject(src, reason)
        except Exception:
            logger.exception("%s: closing the connection with %s failed", self.address, printable(src, 80))

    def send(self, dst: str, msg: Any) -> None:
        """Hand a core's message to the transport.

        A destination no process can have (a malformed address, taken from
        a peer's message) is a peer that cannot be reached: the message is
        dropped and logged (``messages_unsendable``), as one to a dead peer
        would be, and the other effects of the step are still carried out.
        A message that cannot be encoded still raises.
        """
        try:
            self.transport.send_nowait(dst, msg)
        except FrameError:
            raise
        except ValueError as exc:
            self.messages_unsendable += 1
            logger.warning(
                "%s: dropped %s to %s: %s",
                self.address,
                type(msg).__name__,
                printable(dst, 80),
                printable(str(exc)),
            )

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
                    self._local(env.msg)
                else:
                    self._message(env)
        finally:
            self._stop()

    def _deliver_direct(self, env: Envelope) -> None:
        """A peer's message handed over by the transport's reader (set_receiver).

        Handled through the same backstop as in the receive loop; anything
        else it raises (a cancellation) is raised again in the shell's
        nursery, not in the transport's.
        """
        if self.closed:
            return
        try:
            self._message(env)
        except BaseException as exc:
            self.closed = True
            self._nursery.start_soon(_reraise, exc)

    async def _ticker(self) -> None:
        assert self.tick_interval is not None
        while True:
            await trio.sleep(self.tick_interval)
            self._local(Tick())
            # Large buffers nobody has used for a while go back to the kernel,
            # also in a process that has stopped passing large values.
            frame_pool.trim()
            value_pool.trim()


async def _reraise(exc: BaseException) -> None:
    raise exc
