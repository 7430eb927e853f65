"""The TCP transport: one authenticated, reused connection per peer pair.

Peers are named by their identity ``"host:port#incarnation"`` (:mod:`.auth`):
where they listen, and a random number drawn when their endpoint opened, so
a process that gets a dead one's port is a new name. The first message to
a peer dials it; the handshake checks that the process listening there is
the one named, and after it the connection carries frames both ways, each
with its tag, for as long as both processes live. A peer that turns out to
be gone (nothing listens, or another incarnation does) is reported lost. A
bare ``host:port`` (what a person types) becomes an identity with
:meth:`TCPTransport.resolve`, which dials it and keeps the connection.

Writes: ``send_nowait`` encodes the message (so an unserializable message
fails at the caller, at once). When the connection is idle and the frame is
small, it goes to the kernel right there, in one non-blocking write: no task
switch between a core's effect and the wire, which is most of a small
task's latency budget. Otherwise (a write in progress, a full socket, a
large frame, a connection still being dialed) the frame joins the peer's
queue, and one writer task per connection takes whatever is queued and
hands it to the kernel in as few writes as it can (small frames are
coalesced into one buffer; large out-of-band buffers are sent from where
they are, uncopied).

When both sides dial each other at the same moment, both would end up with
two connections. The tie is broken the same way on both sides without extra
messages: the connection dialed by the smaller identity wins, so an acceptor
that is itself dialing a larger peer answers that peer's dial with the
``DUPLICATE`` verdict, and the loser waits for the winner's connection.
A dial from a peer we already hold a connection to means that peer has lost
it: the new connection replaces the old one. A connection from a new
incarnation at an address means the older ones there are gone: they are
reported lost at once.

Failures are local: a failed handshake, a frame whose tag does not match, a
malformed, oversize or unknown frame is logged (logger ``ownership.tcp``)
and closes that one connection; the listener and every other connection
keep going. Unauthenticated connections are bounded: at most
``max_handshakes`` at once (the oldest is closed for a new one: a member's
handshake takes one round trip, an idle squatter stays), each reading in
small pieces. Messages to a peer that cannot be reached are dropped and
logged; the protocol learns about deaths through failure notifications.

A connection that closes between two live processes loses nothing: it is
dialed again at once and what the peer had not acknowledged is sent again
(:mod:`.resend`). A watcher of the peer (:meth:`TCPTransport.watch`: the
head watches its nodes, a node its workers) hears ``PeerLost`` as soon as
the connection goes, so it can probe; ``on_peer_lost`` tells the runtime
that a peer is gone for good (the dial again failed).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import socket
import struct
from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import attrs
import trio

from .auth import (
    INCARNATION_BYTES,
    Channel,
    HandshakeAbandoned,
    HandshakeError,
    Hello,
    PeerMismatch,
    Verdict,
    acceptor_handshake,
    dialer_handshake,
    format_address,
    format_identity,
    parse_address,
    parse_identity,
)
from .framing import (
    DEFAULT_MAX_FRAME_SIZE,
    ONE_SHOT_TAG,
    TAG_BYTES,
    ByteReceiver,
    FrameAuthError,
    FrameError,
    FrameTooLarge,
    receive_frame,
)
from .resend import Ack, Resume, Stream, control_frame, decode_control, is_control
from .serialization import EncodedFrame, UnknownMessageType, decode_message, encode_message
from .transport import Envelope, Transport, TransportClosed

__all__ = [
    "TCPTransport",
    "TCPTransportStatistics",
    "format_address",
    "format_identity",
    "open_tcp_transport",
    "parse_address",
    "parse_identity",
    "serve_tcp_transport",
]

logger = logging.getLogger("ownership.tcp")

# Chunks at least this large are sent from where they are instead of being
# copied into the batch buffer; the batch buffer is flushed at _FLUSH_AT.
_LARGE_CHUNK = 64 * 1024
_FLUSH_AT = 1024 * 1024
# Frames up to this size (header included) may be written by send_nowait
# itself; they are tagged in one call.
_DIRECT_WRITE = ONE_SHOT_TAG
# At most one warning about the handshake cap per this many seconds, and
# at most _FAILURE_LOG_LIMIT failed incoming handshakes logged per window.
# Connections opened again in a row that closed before the peer answered on
# them, dialed again at once; after these, with a growing backoff.
_FREE_RECONNECTS = 3
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 2.0
# Seconds between acknowledgements of what arrived since the last one.
_ACK_INTERVAL = 1.0
_CAP_WARNING_INTERVAL = 10.0
_FAILURE_LOG_WINDOW = 10.0
_FAILURE_LOG_LIMIT = 20


class _ControlFrame(EncodedFrame):
    """A frame of :mod:`.resend` (resume, acknowledgement): never numbered, counted apart."""

    __slots__ = ()


@attrs.frozen
class TCPTransportStatistics:
    """A snapshot of one endpoint's counters (trio ``statistics()`` style)."""

    address: str  # this endpoint's identity
    connections: int  # open and authenticated
    handshakes_pending: int  # accepted connections not yet authenticated
    connections_dialed: int
    connections_accepted: int
    frames_sent: int  # message frames (control frames of .resend are counted apart)
    bytes_sent: int  # on the wire: message frames and their tags
    writes: int  # hand-offs to the kernel: fewer than frames_sent when writes are batched
    frames_received: int
    bytes_received: int
    messages_queued: int  # waiting for a connection or for the writer
    messages_dropped: int  # unacknowledged when their peer was found gone (it may have had some)
    frames_resent: int  # unacknowledged when a connection broke, sent again on the next one
    duplicates_dropped: int  # received again after a reconnection, delivered once
    control_frames_sent: int  # resumes and acknowledgements (.resend)
    control_frames_received: int
    handshakes_failed: int
    handshakes_refused: int  # closed unauthenticated: over max_handshakes at once
    frames_rejected: int  # malformed, oversize, unknown type
    bad_macs: int  # frames whose tag did not match (forged, replayed, reordered)
    peers_lost: int


@attrs.define
class _Counters:
    connections_dialed: int = 0
    connections_accepted: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    writes: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    messages_dropped: int = 0
    frames_resent: int = 0
    duplicates_dropped: int = 0
    control_frames_sent: int = 0
    control_frames_received: int = 0
    handshakes_failed: int = 0
    handshakes_refused: int = 0
    frames_rejected: int = 0
    bad_macs: int = 0
    peers_lost: int = 0


@attrs.define(eq=False)
class _Connection:
    peer: _Peer
    stream: trio.SocketStream
    receiver: ByteReceiver
    dialed_by_me: bool
    channel: Channel
    cancel_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    superseded: bool = False
    #: handshake done and the writer started: send_nowait may write itself
    ready: bool = False
    #: the writer task is writing (or waiting for room), or has yet to run
    #: after send_nowait wrote a frame itself: send_nowait queues, so that a
    #: burst of sends costs one direct write and one batch
    writing: bool = False
    #: what send_nowait could not write of a frame (and the frame's size):
    #: the writer finishes it before anything else
    rest: tuple[memoryview, int, bool] | None = None  # and whether it is a control frame
    #: the number of the peer's next message frame on this connection (0
    #: until its resume control frame arrived: see :mod:`.resend`)
    next_in: int = 0


@attrs.define(eq=False)
class _Peer:
    address: str  # its identity
    queue: deque[EncodedFrame] = attrs.field(factory=deque)
    data_ready: trio.Event = attrs.field(factory=trio.Event)
    conn: _Connection | None = None
    conn_changed: trio.Event = attrs.field(factory=trio.Event)
    dialing: bool = False
    #: only queries were sent to it (a message class with ``best_effort``
    #: set, such as the dashboard's status polls): when it cannot be
    #: reached (a process that is stopping), nobody needs to hear of it
    queries_only: bool = True


class TCPTransport(Transport):
    """One process's endpoint on the TCP network; make it with :func:`open_tcp_transport`."""

    def __init__(
        self,
        token: bytes,
        *,
        nursery: trio.Nursery,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        handshake_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        max_inbound_messages: int = 10_000,
        max_handshakes: int = 64,
        on_peer_lost: Callable[[str], None] | None = None,
    ) -> None:
        if len(token) < 16:
            raise ValueError("a cluster token needs at least 16 bytes")
        if max_handshakes < 1:
            raise ValueError("max_handshakes must be at least 1")
        self._token = token
        self._nursery = nursery
        self._max_frame_size = max_frame_size
        self._handshake_timeout = handshake_timeout
        self._connect_timeout = connect_timeout
        self._max_inbound = max_inbound_messages
        self._on_peer_lost = on_peer_lost
        self._max_handshakes = max_handshakes
        self._incarnation = os.urandom(INCARNATION_BYTES)
        self._listen = ""  # host:port
        self._address = ""  # host:port#incarnation: our identity
        # Accepted connections still in their handshake, oldest first.
        self._handshaking: dict[trio.CancelScope, None] = {}
        self._cap_warned_at = -math.inf
        self._failure_log_window = -math.inf
        self._failures_logged = self._failures_not_logged = 0
        self._peers: dict[str, _Peer] = {}
        # Per peer identity, across connections: what was sent and not yet
        # acknowledged, and how much of the peer's was delivered (.resend).
        self._streams: dict[str, Stream[EncodedFrame]] = {}
        self._watched: set[str] = set()
        self._open_connections = 0
        self._counters = _Counters()
        self._inbound_send, self._inbound_receive = trio.open_memory_channel[Envelope](math.inf)
        self._inbound_space = trio.Event()
        self._inbound_count = 0  # received from peers, not yet taken by receive()
        # Set by the service (set_receiver): a message from a peer goes to it
        # from the reader itself when nothing waits in the channel before it.
        self._direct: Callable[[Envelope], None] | None = None
        self._unsent = 0
        self._all_sent = trio.Event()
        self._all_sent.set()
        self._closed = False
        #: Provides the buffers of large incoming frames (None: our own).
        self.frame_buffers: Callable[[int], memoryview | None] | None = None

    # -- Transport ------------------------------------------------------------

    @property
    def address(self) -> str:
        """This endpoint's identity, ``host:port#incarnation``."""
        return self._address

    @property
    def listen_address(self) -> str:
        """Where this endpoint listens, ``host:port``."""
        return self._listen

    @property
    def incarnation(self) -> bytes:
        """Random per endpoint: tells a restarted peer at the same address from the old one."""
        return self._incarnation

    def send_nowait(self, dst: str, msg: Any) -> None:
        """Queue ``msg`` for identity ``dst``; never blocks, never raises for a dead peer.

        Raises SerializationError if ``msg`` cannot be encoded, FrameTooLarge
        if its frame exceeds ``max_frame_size``, ValueError for a ``dst``
        that is not ``host:port#incarnation`` (a bare address: :meth:`resolve` it).
        """
        if self._closed:
            logger.debug("%s: closed, dropping %s to %s", self._address, type(msg).__name__, dst)
            return
        if dst == self._address:
            self._inbound_count += 1
            self._inbound_send.send_nowait(Envelope(self._address, dst, msg))
            return
        frame = encode_message(msg)
        if frame.nbytes - 8 > self._max_frame_size:
            raise FrameTooLarge(
                f"{type(msg).__name__} to {dst} encodes to {frame.nbytes - 8} bytes, "
                f"over the frame limit of {self._max_frame_size} bytes"
            )
        peer = self._peers.get(dst)
        if peer is None:
            parse_identity(dst)
            peer = self._peers[dst] = _Peer(dst)
        if peer.queries_only and not getattr(msg, "best_effort", False):
            peer.queries_only = False  # looked up until the first protocol message only
        self._stream(dst).assign(frame)
        self._enqueue(peer, frame)
        if peer.conn is None and not peer.dialing:
            peer.dialing = True
            self._nursery.start_soon(self._dial, peer, name=f"ownership.tcp dial {dst}")

    def _enqueue(self, peer: _Peer, frame: EncodedFrame) -> None:
        """Write ``frame`` now when the connection is idle and it is small, else queue it for the writer."""
        conn = peer.conn
        if (
            conn is not None
            and conn.ready
            and not conn.writing
            and conn.rest is None
            and not peer.queue
            and frame.nbytes <= _DIRECT_WRITE
        ):
            conn.writing = True  # until the writer has run: the rest of a burst is batched
            peer.data_ready.set()
            if not self._write_now(conn, frame):
                self._add_unsent(1)  # the writer finishes conn.rest
            return
        peer.queue.append(frame)
        self._add_unsent(1)
        peer.data_ready.set()

    def _stream(self, peer: str) -> Stream[EncodedFrame]:
        stream = self._streams.get(peer)
        if stream is None:
            stream = self._streams[peer] = Stream()
        return stream

    def _send_control(self, peer: _Peer, msg: Resume | Ack) -> None:
        frame = control_frame(msg)
        self._enqueue(peer, _ControlFrame([frame], len(frame)))

    def _discard_stream(self, address: str) -> int:
        """The peer is gone: what it never acknowledged is lost with it. Returns how many."""
        stream = self._streams.pop(address, None)
        lost = 0 if stream is None else len(stream.unacked)
        self._counters.messages_dropped += lost
        return lost

    def watch(self, address: str) -> None:
        """Deliver a local ``PeerLost(address)`` once the connection to identity ``address`` is lost.

        With no connection to ``address`` yet, one is opened now, so a peer
        that is already dead is reported too (its dial fails, or finds
        another incarnation). Reported once; watch again to hear of a later
        loss. ValueError for a bare ``host:port``.
        """
        parse_identity(address)
        if address == self._address or self._closed:
            return
        self._watched.add(address)
        peer = self._peers.get(address)
        if peer is None:
            peer = self._peers[address] = _Peer(address)
        if peer.conn is None and not peer.dialing:
            peer.dialing = True
            self._nursery.start_soon(self._dial, peer, name=f"ownership.tcp dial {address}")

    async def resolve(self, address: str) -> str:
        """The identity of the process listening at ``address``, and a connection to it.

        ``address`` is a bare ``host:port`` (what a person types) or an
        identity (then this checks that the process still listens there).
        With a connection open to a process at that address, no dial is
        needed; otherwise it is dialed, and the connection is kept for the
        messages that follow. Raises ConnectionError (with the reason) when
        nothing answers there, it is not a member of this cluster, or a
        different process than the identity named listens there; ValueError
        for a malformed address.
        """
        host, port = parse_address(address)
        if self._closed:
            raise TransportClosed(f"transport {self._address} is closed")
        base = address.partition("#")[0]
        if base == self._listen and address in (base, self._address):
            return self._address
        for identity, peer in self._peers.items():
            if peer.conn is not None and identity.partition("#")[0] == base and address in (base, identity):
                return identity
        stream = None
        try:
            with trio.fail_after(self._connect_timeout):
                stream = await trio.open_tcp_stream(host, port)
            receiver = ByteReceiver(stream)
            with trio.fail_after(self._handshake_timeout):
                hello, verdict, channel = await dialer_handshake(stream, receiver, self._token, self._hello(), address)
        except (HandshakeError, trio.TooSlowError, trio.BrokenResourceError, OSError) as exc:
            reason = "timed out" if isinstance(exc, trio.TooSlowError) else str(exc) or type(exc).__name__
            if isinstance(exc, HandshakeError) and not (isinstance(exc, PeerMismatch) and exc.same_address):
                self._counters.handshakes_failed += 1
                logger.error("%s: handshake with %s failed: %s", self._address, address, reason)
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise ConnectionError(f"cannot reach {address}: {reason}") from None
        except BaseException:
            if stream is not None:
                with trio.CancelScope(shield=True):
                    await trio.aclose_forcefully(stream)
            raise
        identity = hello.identity
        peer = self._peers.get(identity)
        if peer is None:
            peer = self._peers[identity] = _Peer(identity)
        if verdict is Verdict.DUPLICATE:
            await trio.aclose_forcefully(stream)
            # The peer is dialing us too and its connection wins.
            with trio.move_on_after(self._handshake_timeout):
                while peer.conn is None:
                    await peer.conn_changed.wait()
            if peer.conn is None:
                self._forget(peer)
                raise ConnectionError(f"cannot reach {address}: its own connection to us never arrived")
            return identity
        conn = self._install(peer, hello, stream, receiver, channel, dialed_by_me=True)
        self._counters.connections_dialed += 1
        self._nursery.start_soon(self._run_connection, conn, name=f"ownership.tcp connection {identity}")
        return identity

    def reject(self, peer: str, reason: str) -> None:
        """Close the connection with ``peer`` (its message could not be handled);
        counted in ``frames_rejected``. The caller logs ``reason``."""
        self._counters.frames_rejected += 1
        p = self._peers.get(peer)
        if p is not None and p.conn is not None:
            p.conn.cancel_scope.cancel()

    def set_receiver(self, deliver: Callable[[Envelope], None]) -> bool:
        """Messages from peers go to ``deliver`` straight from the connection's
        reader, sparing a task switch each, whenever nothing received earlier
        still waits for :meth:`receive` (so the order of arrival is kept).

        ``deliver`` runs on the reader's task: it must not block, and what it
        raises it must handle itself. Messages to ourselves and the
        PeerLost notices still come through :meth:`receive`.
        """
        self._direct = deliver
        return True

    async def receive(self) -> Envelope:
        try:
            envelope = await self._inbound_receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise TransportClosed(f"transport {self._address} is closed") from None
        self._inbound_count -= 1
        if self._inbound_count < self._max_inbound:
            self._inbound_space.set()
        return envelope

    async def aclose(self) -> None:
        """Close the listener and every connection; queued messages are dropped."""
        if self._closed:
            return
        self._acknowledge_all()  # so peers do not dial back to resend what we have
        self._closed = True
        self._all_sent.set()
        self._inbound_send.close()
        self._inbound_receive.close()
        dropped = sum(len(p.queue) for p in self._peers.values())
        if dropped:
            logger.info("%s: closing with %d unsent messages", self._address, dropped)
        # Our tasks run in a nursery of their own (see open_tcp_transport), so
        # this stops them without cancelling the caller.
        self._nursery.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            await trio.lowlevel.checkpoint()

    # -- observation ------------------------------------------------------------

    def statistics(self) -> TCPTransportStatistics:
        c = self._counters
        return TCPTransportStatistics(
            address=self._address,
            connections=self._open_connections,
            handshakes_pending=len(self._handshaking),
            messages_queued=sum(len(p.queue) for p in self._peers.values()),
            **attrs.asdict(c),
        )

    def cut(self, address: str) -> bool:
        """Break the connection to identity ``address`` now, as a network fault would.

        For fault injection (``ownership chaos --net-faults``): the socket is
        reset (SO_LINGER 0), so what the kernel still held for the peer is
        lost as well as what was queued here; both sides see the connection
        go, and the next message to the peer dials it again. False when
        there is no connection to ``address``.
        """
        peer = self._peers.get(address)
        conn = None if peer is None else peer.conn
        if conn is None:
            return False
        with contextlib.suppress(OSError):
            conn.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.cancel_scope.cancel()
        return True

    def connected_peers(self) -> list[str]:
        return sorted(a for a, p in self._peers.items() if p.conn is not None)

    async def wait_all_sent(self) -> None:
        """Wait until every queued message was handed to the kernel or dropped (or we closed)."""
        while self._unsent and not self._closed:
            await self._all_sent.wait()
        await trio.lowlevel.checkpoint()

    def _add_unsent(self, n: int) -> None:
        if self._unsent == 0 and n > 0:
            self._all_sent = trio.Event()
        self._unsent += n
        if self._unsent == 0:
            self._all_sent.set()

    # -- listening ------------------------------------------------------------

    async def _start(self, host: str, port: int, advertise_host: str | None) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        sockname = listeners[0].socket.getsockname()
        public = advertise_host or host
        if public in ("", "0.0.0.0", "::"):
            raise ValueError(f"binding to {host!r} needs advertise_host: peers cannot dial {host!r}")
        self._listen = format_address(public, sockname[1])
        self._address = format_identity(self._listen, self._incarnation)
        await self._nursery.start(trio.serve_listeners, self._handle_incoming, listeners)
        self._nursery.start_soon(self._acknowledge_periodically, name="ownership.tcp acknowledgements")
        logger.debug("%s: listening", self._address)

    def _hello(self) -> Hello:
        return Hello(address=self._listen, incarnation=self._incarnation)

    def _admit_handshake(self, scope: trio.CancelScope, remote: str) -> None:
        """Count ``scope`` among the handshakes in progress, closing the oldest over the cap."""
        while len(self._handshaking) >= self._max_handshakes:
            oldest = next(iter(self._handshaking))
            del self._handshaking[oldest]
            oldest.cancel()
            self._counters.handshakes_refused += 1
            now = trio.current_time()
            if now - self._cap_warned_at >= _CAP_WARNING_INTERVAL:
                self._cap_warned_at = now
                logger.warning(
                    "%s: more than %d unauthenticated connections at once (the latest from %s): closing the oldest "
                    "(%d so far)",
                    self._address,
                    self._max_handshakes,
                    remote,
                    self._counters.handshakes_refused,
                )
        self._handshaking[scope] = None

    async def _handle_incoming(self, stream: trio.SocketStream) -> None:
        try:
            remote = format_address(*stream.socket.getpeername()[:2])
        except OSError:
            remote = "<unknown>"
        receiver = ByteReceiver(stream)
        installed: list[_Connection] = []
        pending = trio.CancelScope()
        self._admit_handshake(pending, remote)

        def decide(hello: Hello, channel: Channel) -> Verdict:
            self._handshaking.pop(pending, None)  # authenticated: no longer counted, never evicted
            identity = hello.identity
            verdict = self._decide(identity)
            if verdict is Verdict.ACCEPT:
                peer = self._peers.get(identity)
                if peer is None:
                    peer = self._peers[identity] = _Peer(identity)
                installed.append(self._install(peer, hello, stream, receiver, channel, dialed_by_me=False))
            return verdict

        try:
            with trio.fail_after(self._handshake_timeout):
                with pending:
                    hello, verdict = await acceptor_handshake(stream, receiver, self._token, self._hello(), decide)
            if pending.cancelled_caught:  # evicted over the cap: counted and logged there
                await trio.aclose_forcefully(stream)
                return
        except (HandshakeError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            reason = "timed out" if isinstance(exc, trio.TooSlowError) else str(exc) or type(exc).__name__
            self._counters.handshakes_failed += 1
            # A dialer that leaves on seeing our hello wanted a process that
            # used to listen here (routine after a restart), and one that
            # closes without a byte is a port check: neither is an attack.
            # Nor is a connection that breaks under a handshake whose bytes
            # were right so far: its dialer died, or gave up while we were
            # paused. What was wrong (a bad hello or MAC) or too slow is.
            if isinstance(exc, HandshakeAbandoned) or (
                receiver.bytes_received == 0 and not isinstance(exc, trio.TooSlowError)
            ):
                level = logging.INFO
            elif isinstance(exc, (HandshakeError, trio.TooSlowError)):
                level = logging.ERROR
            else:
                level = logging.WARNING
            self._log_handshake_failure(
                level,
                "%s: handshake with %s failed: %s; connection closed",
                self._address,
                remote,
                reason,
            )
            await trio.aclose_forcefully(stream)
            if installed:
                self._connection_closed(installed[0], reason)
            return
        except Exception:
            self._counters.handshakes_failed += 1
            logger.exception("%s: handshake with %s crashed; connection closed", self._address, remote)
            await trio.aclose_forcefully(stream)
            if installed:
                self._connection_closed(installed[0], "handshake crashed")
            return
        except BaseException:  # cancelled: the transport is closing
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
            if installed:
                self._connection_closed(installed[0], "transport closed")
            raise
        finally:
            self._handshaking.pop(pending, None)
        if verdict is Verdict.DUPLICATE:
            logger.debug("%s: %s dialed while our own dial wins; declined", self._address, hello.identity)
            await trio.aclose_forcefully(stream)
            return
        self._counters.connections_accepted += 1
        await self._run_connection(installed[0])

    def _log_handshake_failure(self, level: int, message: str, *args: Any) -> None:
        """Log a failed incoming handshake, at most 20 in 10 s: a flood must not fill the disk."""
        now = trio.current_time()
        if now - self._failure_log_window >= _FAILURE_LOG_WINDOW:
            if self._failures_not_logged:
                logger.warning(
                    "%s: %d more failed handshakes in the last %.0f s were counted, not logged",
                    self._address,
                    self._failures_not_logged,
                    now - self._failure_log_window,
                )
            self._failure_log_window, self._failures_logged, self._failures_not_logged = now, 0, 0
        if self._failures_logged < _FAILURE_LOG_LIMIT:
            self._failures_logged += 1
            logger.log(level, message, *args)
        else:
            self._failures_not_logged += 1

    def _decide(self, identity: str) -> Verdict:
        peer = self._peers.get(identity)
        if peer is None or not self._address < identity:
            return Verdict.ACCEPT
        if peer.dialing:
            return Verdict.DUPLICATE
        conn = peer.conn
        if conn is not None and conn.dialed_by_me:
            return Verdict.DUPLICATE
        return Verdict.ACCEPT

    # -- dialing --------------------------------------------------------------

    async def _dial(self, peer: _Peer, backoff: float = 0.0, *, again: bool = False) -> None:
        """Dial ``peer`` (``again``: its connection closed, so it may have exited)."""
        try:
            stream = receiver = None
            if backoff:
                await trio.sleep(backoff)
            try:
                host, port, _ = parse_identity(peer.address)
                with trio.fail_after(self._connect_timeout):
                    stream = await trio.open_tcp_stream(host, port)
                receiver = ByteReceiver(stream)
                with trio.fail_after(self._handshake_timeout):
                    hello, verdict, channel = await dialer_handshake(
                        stream, receiver, self._token, self._hello(), peer.address
                    )
            except (HandshakeError, trio.TooSlowError, trio.BrokenResourceError, OSError) as exc:
                reason = "timed out" if isinstance(exc, trio.TooSlowError) else str(exc) or type(exc).__name__
                # Another incarnation at the address: the process is gone,
                # as if the connection had been refused. Anything else is
                # not a member where one should be (a relay, a mistake).
                if isinstance(exc, HandshakeError) and not (isinstance(exc, PeerMismatch) and exc.same_address):
                    self._counters.handshakes_failed += 1
                    level = logging.DEBUG if peer.queries_only else logging.ERROR
                    logger.log(level, "%s: handshake with %s failed: %s", self._address, peer.address, reason)
                if stream is not None:
                    await trio.aclose_forcefully(stream)
                self._unreachable(peer, f"cannot connect: {reason}", again=again)
                return
            except BaseException as exc:  # cancelled (the transport is closing), or a bug
                if stream is not None:
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(stream)
                if not isinstance(exc, Exception):
                    raise
                logger.exception("%s: dialing %s crashed", self._address, peer.address)
                self._unreachable(peer, f"dial crashed: {exc!r}", again=again)
                return
            if verdict is Verdict.DUPLICATE:
                await trio.aclose_forcefully(stream)
                # The peer is dialing us too and its connection wins; it may
                # already be installed, else it arrives within a handshake.
                with trio.move_on_after(self._handshake_timeout):
                    while peer.conn is None:
                        await peer.conn_changed.wait()
                if peer.conn is None:
                    self._unreachable(peer, "its own connection to us never arrived", again=again)
                return
            peer.dialing = False
            conn = self._install(peer, hello, stream, receiver, channel, dialed_by_me=True)
            self._counters.connections_dialed += 1
        finally:
            peer.dialing = False
        await self._run_connection(conn)

    def _unreachable(self, peer: _Peer, reason: str, *, again: bool = False) -> None:
        peer.dialing = False
        self._drop_queue(peer)
        dropped = self._discard_stream(peer.address)
        if again:
            # Its connection closed and it cannot be dialed again: how a peer
            # that exited or died looks, routine (what it had not acknowledged
            # may well have arrived).
            logger.info(
                "%s: peer %s is gone (%s); %d messages it had not acknowledged dropped",
                self._address,
                peer.address,
                reason,
                dropped,
            )
        else:
            level = logging.DEBUG if peer.queries_only else logging.WARNING
            logger.log(level, "%s: peer %s unreachable (%s); dropped %d messages", self._address, peer.address, reason, dropped)
        self._forget(peer)
        self._peer_lost(peer.address)

    # -- connections ----------------------------------------------------------

    def _install(
        self,
        peer: _Peer,
        hello: Hello,
        stream: trio.SocketStream,
        receiver: ByteReceiver,
        channel: Channel,
        *,
        dialed_by_me: bool,
    ) -> _Connection:
        r"""Spec: Resend!Connect

            \* Resend
            Connect ==
                /\ ~up
                /\ up' = TRUE
                /\ wire' = <<Frame("resume", firstUnacked)>>
                /\ back' = <<Frame("resume", received)>>
                /\ nextOut' = firstUnacked
                /\ nextIn' = 0
                /\ UNCHANGED <<sent, firstUnacked, received, log, resets, broken>>

        Implementation:

        Make the authenticated connection current for ``peer``, replacing an
        older one; queue our resume and every unacknowledged message.
        """
        old = peer.conn
        if old is not None:
            old.superseded = True
            old.cancel_scope.cancel()
            logger.info("%s: new connection with %s replaces the old one", self._address, peer.address)
        receiver.authenticated()
        conn = _Connection(peer, stream, receiver, dialed_by_me, channel)
        peer.conn = conn
        peer.conn_changed.set()
        peer.conn_changed = trio.Event()
        self._open_connections += 1
        self._bury_older_incarnations(peer, hello.address)
        # The connection opens with our resume, then every message the peer
        # has not acknowledged (all of them on a first connection), in order.
        stream = self._stream(peer.address)
        before = len(peer.queue)
        peer.queue.clear()
        self._add_unsent(-before)
        resent = len(stream.unacked) - before  # about: the queue held frames never written too
        if resent > 0:
            self._counters.frames_resent += resent
        self._send_control(peer, stream.resume())
        peer.queue.extend(stream.unacked)
        self._add_unsent(len(stream.unacked))
        peer.data_ready.set()
        return conn

    def _bury_older_incarnations(self, peer: _Peer, address: str) -> None:
        """Report lost every other process we know at ``address``: only one listens there.

        ``peer`` has just proved it listens at ``address`` (it holds the
        token, and its hello is in the MACs), so any other incarnation
        there has gone, whatever its connection still seems to say.
        """
        for other in [p for a, p in self._peers.items() if p is not peer and a.partition("#")[0] == address]:
            if other.dialing:
                continue  # its dial finds the new incarnation and reports it
            conn, other.conn = other.conn, None
            if conn is not None:
                conn.superseded = True  # closing it reports nothing more
                conn.cancel_scope.cancel()
            self._drop_queue(other)
            dropped = self._discard_stream(other.address)
            logger.warning(
                "%s: %s is gone: %s listens at its address now%s",
                self._address,
                other.address,
                peer.address,
                f"; dropped {dropped} queued messages" if dropped else "",
            )
            self._forget(other)
            self._peer_lost(other.address)

    async def _run_connection(self, conn: _Connection) -> None:
        reason = "closed"
        try:
            with conn.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, conn, nursery.cancel_scope)
                    conn.ready = True
                    reason = await self._reader(conn)
                    nursery.cancel_scope.cancel()
        finally:
            conn.ready = False
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(conn.stream)
            self._connection_closed(conn, "replaced" if conn.superseded else reason)

    async def _reader(self, conn: _Connection) -> str:
        peer = conn.peer.address
        mac = conn.channel.incoming
        stream = self._stream(peer)
        while True:
            # Nothing of the last frame is held while waiting for the next:
            # a large frame's buffer (a pooled one, or a node's segment) is
            # free for reuse as soon as what was decoded from it is gone.
            body = msg = None
            try:
                body = await receive_frame(conn.receiver, self._max_frame_size, mac, self.frame_buffers)
                if body is None:
                    return "peer closed the connection"
                if is_control(body):
                    self._counters.control_frames_received += 1
                    self._control(conn, stream, decode_control(body))
                    continue
                if not conn.next_in:
                    raise FrameError("a message frame before the resume frame")
                number, conn.next_in = conn.next_in, conn.next_in + 1
                if not stream.arrived(number, len(body)):
                    self._counters.duplicates_dropped += 1
                    continue
                ack = stream.ack_now(len(body))
                if ack is not None:
                    self._send_control(conn.peer, ack)
                msg = decode_message(body)
            except FrameAuthError as exc:
                self._counters.bad_macs += 1
                logger.error("%s: frame from %s rejected: %s; connection closed", self._address, peer, exc)
                return f"bad frame: {exc}"
            except (FrameError, UnknownMessageType) as exc:
                self._counters.frames_rejected += 1
                logger.error("%s: bad frame from %s: %s; connection closed", self._address, peer, exc)
                return f"bad frame: {exc}"
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                return f"connection broken: {exc}"
            except Exception as exc:
                self._counters.frames_rejected += 1
                logger.exception("%s: decoding a frame from %s crashed; connection closed", self._address, peer)
                return f"decode crashed: {exc!r}"
            self._counters.frames_received += 1
            self._counters.bytes_received += 8 + len(body) + TAG_BYTES
            if self._direct is not None and self._inbound_count == 0 and not self._closed:
                self._direct(Envelope(peer, self._address, msg))
                continue
            try:
                self._inbound_send.send_nowait(Envelope(peer, self._address, msg))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return "transport closed"
            self._inbound_count += 1
            # Backpressure: stop reading (TCP then slows the sender) while the
            # service has too many messages still to handle.
            while self._inbound_count >= self._max_inbound:
                if self._inbound_space.is_set():  # one event shared by every waiting reader
                    self._inbound_space = trio.Event()
                await self._inbound_space.wait()

    def _control(self, conn: _Connection, stream: Stream[EncodedFrame], msg: Resume | Ack) -> None:
        """A control frame of :mod:`.resend` (raises FrameError for one that breaks the stream)."""
        if isinstance(msg, Resume):
            if conn.next_in:
                raise FrameError("a second resume frame on one connection")
            conn.next_in = stream.resumed(msg)
        else:
            stream.acknowledged(msg.received, msg.your_nonce)

    async def _acknowledge_periodically(self) -> None:
        """Acknowledge what arrived since the last acknowledgement, every ACK_INTERVAL seconds,
        so that a peer that sends little does not keep its last messages forever."""
        while True:
            await trio.sleep(_ACK_INTERVAL)
            self._acknowledge_all()

    def _acknowledge_all(self) -> None:
        for address, stream in self._streams.items():
            peer = self._peers.get(address)
            if peer is not None and peer.conn is not None and peer.conn.ready:
                ack = stream.ack_due()
                if ack is not None:
                    self._send_control(peer, ack)

    def _count_sent(self, control: bool, nbytes: int) -> None:
        if control:
            self._counters.control_frames_sent += 1  # a few dozen bytes: not in bytes_sent
        else:
            self._counters.frames_sent += 1
            self._counters.bytes_sent += nbytes

    def _write_now(self, conn: _Connection, frame: EncodedFrame) -> bool:
        """Write a small frame from ``send_nowait``: True once the kernel has all of it.

        Otherwise what is left (all of it after an error) becomes ``conn.rest``
        for the writer, which also meets the error again and closes the
        connection: a send never raises for a dead peer.
        """
        chunks = frame.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        data = data + conn.channel.outgoing.tag(data)  # tagged now: this frame is the next on the wire
        nbytes = frame.nbytes + TAG_BYTES
        try:
            written = os.write(conn.stream.socket.fileno(), data)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            conn.rest = (memoryview(data), nbytes, isinstance(frame, _ControlFrame))
            return False
        self._counters.writes += 1
        if written == len(data):
            self._count_sent(isinstance(frame, _ControlFrame), nbytes)
            return True
        conn.rest = (memoryview(data)[written:], nbytes, isinstance(frame, _ControlFrame))
        return False

    async def _write_all(
        self,
        conn: _Connection,
        data: bytes | bytearray | memoryview,
        feed: Callable[[memoryview], None] | None = None,
    ) -> None:
        """All of ``data`` to the kernel; waits for room when the socket is full.

        ``feed`` gets each piece once the kernel has it (a large frame's
        tag is computed while the piece is still in the cache).
        """
        sock = conn.stream.socket
        view = memoryview(data).cast("B")
        self._counters.writes += 1
        while view:
            try:
                written = os.write(sock.fileno(), view)
            except (BlockingIOError, InterruptedError):
                await trio.lowlevel.wait_writable(sock)
                continue
            if feed is not None:
                feed(view[:written])
            view = view[written:]

    async def _writer(self, conn: _Connection, scope: trio.CancelScope) -> None:
        peer = conn.peer
        try:
            while True:
                if peer.conn is not conn:
                    # Replaced or closed: the queue is the new connection's now
                    # (it opens with its resume frame); this writer must not
                    # take it, even before its cancellation reaches it.
                    return
                if conn.rest is None and not peer.queue:
                    conn.writing = False
                    await peer.data_ready.wait()
                    peer.data_ready = trio.Event()
                    continue
                peer.data_ready = trio.Event()
                conn.writing = True
                try:
                    if conn.rest is not None:
                        (rest, nbytes, control), conn.rest = conn.rest, None
                        try:
                            await self._write_all(conn, rest)
                        finally:
                            self._add_unsent(-1)
                        self._count_sent(control, nbytes)
                    batch = list(peer.queue)
                    peer.queue.clear()
                    try:
                        await self._write_batch(conn, batch)
                    finally:
                        # A batch cut short by a broken or replaced connection
                        # stays in the peer's stream: the next connection resends it.
                        self._add_unsent(-len(batch))
                        # Not held while waiting for the next: a large value's
                        # pages go (or back to its pool) once its frame is written.
                        batch = None
                except BaseException:
                    conn.writing = False
                    raise
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            logger.warning("%s: writing to %s failed: %s", self._address, peer.address, exc)
        except Exception:
            logger.exception("%s: writer for %s crashed", self._address, peer.address)
        scope.cancel()

    async def _write_batch(self, conn: _Connection, batch: list[EncodedFrame]) -> None:
        r"""Spec: Resend!Write

            \* Resend
            Write ==
                /\ up
                /\ nextOut <= sent
                /\ wire' = Append(wire, Frame("msg", nextOut))
                /\ nextOut' = nextOut + 1
                /\ UNCHANGED <<sent, firstUnacked, received, log, up, nextIn, back, resets, broken>>

        Implementation:

        The frames of ``batch`` to the kernel, each with its tag, small ones
        coalesced (send_nowait writes a lone small frame itself).
        """
        mac = conn.channel.outgoing
        out = bytearray()
        for frame in batch:
            if frame.nbytes <= ONE_SHOT_TAG:
                start = len(out)
                for chunk in frame.chunks:
                    out += chunk
                with memoryview(out) as whole, whole[start:] as this:  # released before out grows
                    tag = mac.tag(this)
                out += tag
            else:
                pieces = mac.begin()
                for chunk in frame.chunks:
                    if len(chunk) >= _LARGE_CHUNK:
                        if out:
                            await self._write_all(conn, out)
                            out = bytearray()
                        await self._write_all(conn, chunk, pieces.update)
                    else:
                        out += chunk
                        pieces.update(chunk)
                out += pieces.tag()
            if len(out) >= _FLUSH_AT:
                await self._write_all(conn, out)
                out = bytearray()
            self._count_sent(isinstance(frame, _ControlFrame), frame.nbytes + TAG_BYTES)
        if out:
            await self._write_all(conn, out)

    def _connection_closed(self, conn: _Connection, reason: str) -> None:
        self._open_connections -= 1
        if conn.rest is not None:  # begun by send_nowait, never finished (resent on the next connection)
            conn.rest = None
            self._add_unsent(-1)
        peer = conn.peer
        if peer.conn is not conn:
            return  # replaced by a newer connection: nothing was lost
        peer.conn = None
        self._drop_queue(peer)
        if self._closed:
            return
        if peer.dialing:
            return  # its dial reports the peer lost if it fails
        # Between two live processes a connection is only a means: dial again
        # (the peer may be dialing us too; the tie-break keeps one) and resend
        # what it has not acknowledged. The peer is lost only when that dial
        # fails (a dead process refuses it, or another incarnation answers),
        # and is reported then. Connections that keep closing before the peer
        # answers on them are dialed again ever more slowly, never given up:
        # the peer proved it lives at each handshake.
        stream = self._stream(peer.address)
        stream.reconnects += 1
        backoff = 0.0 if stream.reconnects <= _FREE_RECONNECTS else min(_MAX_BACKOFF, _FIRST_BACKOFF * 2 ** (stream.reconnects - _FREE_RECONNECTS - 1))
        logger.info(
            "%s: connection with %s closed (%s); reconnecting%s (%d unacknowledged messages)",
            self._address,
            peer.address,
            reason,
            f" in {backoff:.2f} s" if backoff else "",
            len(stream.unacked),
        )
        peer.dialing = True
        self._nursery.start_soon(
            functools.partial(self._dial, peer, backoff, again=True), name=f"ownership.tcp redial {peer.address}"
        )
        # A watcher probes the peer at once rather than wait for the dial: a
        # hung process accepts the dial and never answers its handshake.
        self._connection_lost(peer.address)

    def _drop_queue(self, peer: _Peer) -> None:
        """Empty the queue of a connection that is gone: its messages stay in the peer's stream."""
        self._add_unsent(-len(peer.queue))
        peer.queue.clear()

    def _forget(self, peer: _Peer) -> None:
        if self._peers.get(peer.address) is peer and peer.conn is None and not peer.dialing:
            del self._peers[peer.address]

    def _peer_lost(self, address: str) -> None:
        self._counters.peers_lost += 1
        self._connection_lost(address)
        if self._on_peer_lost is not None:
            try:
                self._on_peer_lost(address)
            except Exception:
                logger.exception("%s: on_peer_lost(%s) raised", self._address, address)

    def _connection_lost(self, address: str) -> None:
        """Tell a watcher of ``address`` that its connection went: a watcher is a
        failure detector, which probes the peer itself (the head its nodes)."""
        if address in self._watched:
            self._watched.discard(address)
            # The core's event type; imported here so the transport does not
            # depend on the core for anything but watched peers.
            from ownership.core.events import PeerLost

            self._inbound_count += 1
            self._inbound_send.send_nowait(Envelope(self._address, self._address, PeerLost(address=address)))


@asynccontextmanager
async def open_tcp_transport(
    token: bytes,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    advertise_host: str | None = None,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    handshake_timeout: float = 10.0,
    connect_timeout: float = 10.0,
    max_inbound_messages: int = 10_000,
    max_handshakes: int = 64,
    on_peer_lost: Callable[[str], None] | None = None,
) -> AsyncIterator[TCPTransport]:
    """Listen on ``host:port`` (port 0 picks one) and yield the endpoint.

    Binds to 127.0.0.1 unless told otherwise. Binding to a wildcard address
    needs ``advertise_host``, the name peers dial. Everything the transport
    runs lives in a nursery inside this context and stops when it exits.
    """
    try:
        async with trio.open_nursery() as outer:
            nursery = await outer.start(_open_background_nursery)
            try:
                transport = TCPTransport(
                    token,
                    nursery=nursery,
                    max_frame_size=max_frame_size,
                    handshake_timeout=handshake_timeout,
                    connect_timeout=connect_timeout,
                    max_inbound_messages=max_inbound_messages,
                    max_handshakes=max_handshakes,
                    on_peer_lost=on_peer_lost,
                )
            except BaseException:
                nursery.cancel_scope.cancel()
                raise
            try:
                await transport._start(host, port, advertise_host)
                yield transport
            finally:
                await transport.aclose()
    except BaseExceptionGroup as group:
        # The body's own exception should reach the caller as itself, not
        # wrapped in the group of our internal nursery.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


async def _open_background_nursery(*, task_status: trio.TaskStatus[trio.Nursery]) -> None:
    # A nursery that is not around the caller's body, so that closing the
    # transport cancels its tasks and nothing of the caller's.
    async with trio.open_nursery() as nursery:
        task_status.started(nursery)
        await trio.sleep_forever()


async def serve_tcp_transport(
    token: bytes,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[TCPTransport] = trio.TASK_STATUS_IGNORED,
    **options: Any,
) -> None:
    """Service form of :func:`open_tcp_transport` for ``nursery.start``; runs until cancelled."""
    async with open_tcp_transport(token, host, port, **options) as transport:
        task_status.started(transport)
        await trio.sleep_forever()
