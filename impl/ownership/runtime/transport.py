"""The transport interface shared by the TCP and in-memory networks.

A process (worker, node, head, driver) has one :class:`Transport` endpoint,
named by its address string, which is the process's identity: never reused
by another process. Addresses are opaque to the core:
``"host:port#incarnation"`` over TCP (a process on a dead one's port has
another incarnation), any unique string (``"w1@n1"``) in memory. Messages
are the core's ``@message`` classes (see :mod:`ownership.core.messages`).

Delivery semantics both transports share, and the protocol relies on:
- per sender/receiver pair, messages arrive in the order they were sent,
  unless a test reorders them on the in-memory network;
- a message to a dead or unknown peer is dropped, and the sender learns of
  the death through a failure notification, never through the send call;
- ``send`` does not wait for the receiver to process the message.

Besides messages from peers, ``receive`` also yields *local notifications*
addressed by the endpoint to itself (``src == dst == address``): a
:class:`~ownership.core.events.PeerLost` for a peer passed to :meth:`watch`
that went away, and :class:`~ownership.core.events.Tick` where the network
drives time (the in-memory network's manual ticks). Shells feed those to
their core as events, never as received messages.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from typing import Any

import attrs

__all__ = ["Envelope", "Transport", "TransportClosed"]


class TransportClosed(Exception):
    """The endpoint was closed (or its process crashed) while in use."""


@attrs.frozen
class Envelope:
    """One message in flight: who sent it, to whom, and what."""

    src: str
    dst: str
    msg: Any


class Transport(abc.ABC):
    """One process's endpoint on a network."""

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """This endpoint's address, as peers name it."""

    @abc.abstractmethod
    def send_nowait(self, dst: str, msg: Any) -> None:
        """Queue ``msg`` for ``dst``; never blocks, never raises for a dead peer."""

    async def send(self, dst: str, msg: Any) -> None:
        """Queue ``msg`` for ``dst`` and checkpoint."""
        import trio

        self.send_nowait(dst, msg)
        await trio.lowlevel.checkpoint()

    async def resolve(self, address: str) -> str:
        """The identity of the process at ``address``, as this network names it.

        Over TCP a person names a place (``host:port``) and this finds out
        which process listens there; in memory names are identities already.
        """
        return address

    @abc.abstractmethod
    async def receive(self) -> Envelope:
        """The next message for this endpoint; raises TransportClosed once closed."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the endpoint; pending receives raise TransportClosed."""

    def reject(self, peer: str, reason: str) -> None:
        """Close the connection with ``peer``: a message from it could not be handled.

        What was queued for ``peer`` is dropped and watchers of it hear
        PeerLost, as for any lost connection; the peer may connect again.
        Counted with the frames the transport rejected itself. A shell calls
        this for a message its core could not handle, so one bad peer costs
        its own connection only.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot reject peers")

    async def probe(self, address: str) -> bool:
        """Whether process ``address`` (that incarnation) answers a dial now.

        Over TCP: its connection if one is open, else a fresh dial and
        handshake (kept for the messages that follow). False when nothing
        answers, another incarnation does, or it is not a member; the
        caller bounds the time it waits.
        """
        try:
            return await self.resolve(address) == address
        except (ConnectionError, OSError, ValueError, TransportClosed):
            return False

    def watch(self, address: str) -> None:
        """Report (a local PeerLost notification) when process ``address`` goes away.

        A node watches its workers and drivers: over TCP, the exit of a child
        process or the loss of its connection (reported as soon as it closes,
        before it is dialed again: the watcher probes before it believes a
        death); in memory, a crash or a closed connection.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot watch peers")

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """User code of this process runs off the event loop meanwhile.

        The in-memory network counts this to know when the whole cluster is
        quiet; other transports need not care.
        """
        yield

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        """Inside :meth:`busy`: the user code waits on the network (a blocking get)."""
        yield

    def __aiter__(self):
        return self

    async def __anext__(self) -> Envelope:
        try:
            return await self.receive()
        except TransportClosed:
            raise StopAsyncIteration from None
