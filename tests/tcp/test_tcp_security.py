"""The TCP transport against a hostile network: relays, floods of handshakes, log injection."""

from __future__ import annotations

import logging
import socket
import struct

import attrs
import pytest
import trio
import trio.testing

from ownership.runtime.auth import MAGIC, NONCE_BYTES, Hello
from ownership.runtime.framing import ByteReceiver
from ownership.runtime.tcp import open_tcp_transport, parse_identity

TCP_LOGGER = "ownership.tcp"


@attrs.frozen(kw_only=True)
class TcpSecPing:
    seq: int


class LostPeers:
    def __init__(self) -> None:
        self.addresses: list[str] = []
        self._changed = trio.Event()

    def __call__(self, address: str) -> None:
        self.addresses.append(address)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, address: str) -> None:
        with trio.fail_after(10):
            while address not in self.addresses:
                await self._changed.wait()


async def exchange(a, b) -> None:
    a.send_nowait(b.address, TcpSecPing(seq=1))
    with trio.fail_after(10):
        env = await b.receive()
        assert (env.src, env.msg) == (a.address, TcpSecPing(seq=1))
        b.send_nowait(a.address, TcpSecPing(seq=2))
        assert (await a.receive()).msg == TcpSecPing(seq=2)


async def assert_closed_by_peer(stream: trio.SocketStream) -> None:
    with trio.fail_after(10):
        while True:
            try:
                if not await stream.receive_some():
                    return
            except trio.BrokenResourceError:
                return


class Relay:
    """A listener without the token that pipes every connection it accepts to a member.

    With ``pose_as`` it rewrites the member's hello so that it names
    ``pose_as`` (the identity the dialer expects at this address), keeping
    the member's nonce: the dialer's identity check passes, and what the
    dialer proves is bound to a transcript the member never saw.
    """

    def __init__(self, target: str, pose_as: str | None = None) -> None:
        self.target = parse_identity(target)[:2]
        self.pose_as = pose_as
        self.from_dialer = bytearray()
        self.from_acceptor = bytearray()
        self.accepted = 0
        self.done = trio.Event()

    async def handle(self, dialer: trio.SocketStream) -> None:
        self.accepted += 1
        try:
            member = await trio.open_tcp_stream(*self.target)
            async with member, dialer, trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, dialer, member, self.from_dialer, None, nursery.cancel_scope)
                nursery.start_soon(self._pump, member, dialer, self.from_acceptor, self.pose_as, nursery.cancel_scope)
        finally:
            self.done.set()

    async def _pump(self, src, dst, record: bytearray, pose_as: str | None, scope: trio.CancelScope) -> None:
        try:
            if pose_as is not None:
                receiver = ByteReceiver(src)
                head = await receiver.receive_exactly(len(MAGIC) + NONCE_BYTES + 4 + 1)
                addr = await receiver.receive_exactly(head[-1])
                record += head + addr
                host_port, _, incarnation = pose_as.partition("#")
                forged = Hello(address=host_port, incarnation=bytes.fromhex(incarnation)).encode()
                await dst.send_all(head[: len(MAGIC) + NONCE_BYTES] + forged[len(MAGIC) + NONCE_BYTES :])
                if receiver.buffered:
                    rest = await receiver.receive_exactly(receiver.buffered)
                    record += rest
                    await dst.send_all(rest)
            while data := await src.receive_some(65536):
                record += data
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, Exception):
            pass
        scope.cancel()  # one side is gone: so is the relayed connection


def hello_size(transport) -> int:
    return len(MAGIC) + NONCE_BYTES + 4 + 1 + len(transport.listen_address)


@pytest.mark.parametrize("posing", [False, True], ids=["transparent", "posing-as-the-stale-process"])
async def test_relay_on_a_stale_address_gets_no_connection_either_way(token, caplog, posing):
    # A member dials a process that died (the head telling a dead node it
    # died, say); a listener without the token now holds that port and
    # relays the handshake to another member. Neither member may end up
    # with an authenticated connection: not the one that dialed the relay,
    # not the one the relay dialed.
    lost = LostPeers()
    async with open_tcp_transport(token, on_peer_lost=lost) as caller, open_tcp_transport(token) as member:
        async with open_tcp_transport(token) as dead:
            stale = dead.address
        host, port, _ = parse_identity(stale)
        relay = Relay(member.address, pose_as=stale if posing else None)
        listeners = await trio.open_tcp_listeners(port, host=host)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, relay.handle, listeners)
            caller.send_nowait(stale, TcpSecPing(seq=666))
            await lost.wait_for(stale)
            with trio.fail_after(10):
                await relay.done.wait()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert relay.accepted == 1
        sc, sm = caller.statistics(), member.statistics()
        assert (sc.connections, sc.messages_dropped, sc.handshakes_failed) == (0, 1, 1)
        assert (sm.connections, sm.connections_accepted, sm.frames_received, sm.handshakes_failed) == (0, 0, 0, 1)
        # The member the relay dialed never proved anything: its hello is all
        # the relay got from it.
        assert len(relay.from_acceptor) == hello_size(member)
        if posing:
            # The caller saw the identity it expected and proved the token,
            # but over hellos the member never sent: the member refused it.
            assert len(relay.from_dialer) == hello_size(caller) + 32
            assert any("failed to prove the cluster token" in r.getMessage() for r in caplog.records)
        else:
            # The caller saw another process's hello and left without proving.
            assert len(relay.from_dialer) == hello_size(caller)
        # Both members still talk to each other directly.
        await exchange(caller, member)


async def test_handshake_cap_closes_the_oldest_unauthenticated_connection(token, caplog):
    async with open_tcp_transport(token, max_handshakes=4) as server, open_tcp_transport(token) as good:
        host, port, _ = parse_identity(server.address)
        idle = [await trio.open_tcp_stream(host, port) for _ in range(10)]
        await trio.testing.wait_all_tasks_blocked()  # the server has accepted them all
        stats = server.statistics()
        assert (stats.handshakes_pending, stats.handshakes_refused) == (4, 6)
        for stream in idle[:6]:  # the oldest went first
            await assert_closed_by_peer(stream)
        # A member's handshake is one round trip: it still gets in, and
        # closes one more squatter on the way.
        await exchange(good, server)
        stats = server.statistics()
        assert (stats.handshakes_pending, stats.handshakes_refused, stats.connections) == (3, 7, 1)
        warnings = [r for r in caplog.records if r.name == TCP_LOGGER and r.levelno == logging.WARNING]
        assert len([r for r in warnings if "unauthenticated connections at once" in r.getMessage()]) == 1
        for stream in idle:
            await stream.aclose()


@pytest.mark.parametrize(
    "address",
    [b"127.0.0.1:1\n2026-01-01 head ERROR: forged line", b"\x1b[2J\x1b[H" + b"x" * 200, b"127.0.0.1:9"],
    ids=["newline", "terminal-escape", "wrong-token"],
)
async def test_unauthenticated_bytes_reach_the_log_escaped(token, caplog, address):
    caplog.set_level(logging.DEBUG, logger=TCP_LOGGER)
    async with open_tcp_transport(token) as server:
        stream = await trio.open_tcp_stream(*parse_identity(server.address)[:2])
        await stream.send_all(MAGIC + bytes(NONCE_BYTES) + b"\n\n\n\n" + bytes([len(address)]) + address)
        await stream.send_all(b"\n" * 32)  # a "MAC", in case the address passed
        await assert_closed_by_peer(stream)
        await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().handshakes_failed == 1
    messages = [r.getMessage() for r in caplog.records if r.name == TCP_LOGGER]
    assert any("handshake" in m for m in messages)
    for m in messages:
        assert m.isprintable() and len(m) < 400, m


async def test_a_handshake_cut_by_its_dialer_is_a_warning_not_an_error(token, caplog):
    """The dialer's first bytes are right, then its connection resets (it was
    killed, or gave up waiting for us while we were paused): counted, and
    logged as a warning; an error is for what was wrong or too slow."""
    caplog.set_level(logging.DEBUG, logger=TCP_LOGGER)
    async with open_tcp_transport(token) as server:
        stream = await trio.open_tcp_stream(*parse_identity(server.address)[:2])
        await stream.send_all(MAGIC + bytes(NONCE_BYTES))
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()  # a reset, not a clean close
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().handshakes_failed == 1
    logged = [r for r in caplog.records if r.name == TCP_LOGGER and "handshake with" in r.getMessage()]
    assert [r.levelno for r in logged] == [logging.WARNING], [(r.levelname, r.getMessage()) for r in logged]


async def test_a_flood_of_bad_handshakes_is_counted_but_not_all_logged(token, caplog):
    async with open_tcp_transport(token) as server, open_tcp_transport(token) as good:
        for _ in range(30):
            stream = await trio.open_tcp_stream(*parse_identity(server.address)[:2])
            await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
            await assert_closed_by_peer(stream)
            await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert server.statistics().handshakes_failed == 30
        logged = [r for r in caplog.records if r.name == TCP_LOGGER and "handshake with" in r.getMessage()]
        assert len(logged) == 20 and all(r.levelno == logging.ERROR for r in logged)
        await exchange(good, server)


TEST_MESSAGES = (TcpSecPing,)
