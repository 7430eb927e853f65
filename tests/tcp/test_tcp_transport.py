"""The TCP transport over real sockets on 127.0.0.1."""

from __future__ import annotations

import logging
import struct
import threading

import attrs
import msgpack
import numpy as np
import pytest
import trio
import trio.testing

from ownership.core.messages import RequestLease
from ownership.runtime.auth import Channel, Hello, Verdict, dialer_handshake
from ownership.runtime.resend import Resume, control_frame
from ownership.runtime.framing import TAG_BYTES, ByteReceiver, FrameTooLarge
from ownership.runtime.serialization import SerializationError, SerializedValue, encode_message, serialize
from ownership.runtime.tcp import open_tcp_transport, parse_address, parse_identity, serve_tcp_transport
from ownership.runtime.transport import TransportClosed

TCP_LOGGER = "ownership.tcp"


@attrs.frozen(kw_only=True)
class TcpTestPing:
    seq: int
    body: object = None


@attrs.frozen(kw_only=True)
class TcpTestPong:
    seq: int


class LostPeers:
    """Records on_peer_lost calls; tests wait on it instead of sleeping."""

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


async def exchange(a, b, n: int = 3) -> None:
    """a pings b n times and b answers each: the pair works."""
    for i in range(n):
        a.send_nowait(b.address, TcpTestPing(seq=i))
    with trio.fail_after(10):
        for i in range(n):
            env = await b.receive()
            assert (env.src, env.msg) == (a.address, TcpTestPing(seq=i))
            b.send_nowait(env.src, TcpTestPong(seq=i))
        for i in range(n):
            env = await a.receive()
            assert (env.src, env.msg) == (b.address, TcpTestPong(seq=i))


def error_records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == TCP_LOGGER and r.levelno >= logging.ERROR]


async def test_messages_arrive_in_order_over_one_connection(token):
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        n = 5000
        for i in range(n):
            a.send_nowait(b.address, TcpTestPing(seq=i, body={"i": i, "pad": "x" * (i % 50)}))
            if i % 7 == 0:
                await trio.lowlevel.checkpoint()  # let the writer run mid-stream too
        with trio.fail_after(20):
            for i in range(n):
                env = await b.receive()
                assert env.msg.seq == i and env.msg.body["i"] == i
                b.send_nowait(env.src, TcpTestPong(seq=i))
            for i in range(n):
                assert (await a.receive()).msg == TcpTestPong(seq=i)
        sa, sb = a.statistics(), b.statistics()
        # The replies reused a's connection: one connection, dialed once.
        assert (sa.connections, sb.connections) == (1, 1)
        assert (sa.connections_dialed, sa.connections_accepted) == (1, 0)
        assert (sb.connections_dialed, sb.connections_accepted) == (0, 1)
        assert sa.frames_sent == sb.frames_received == n
        assert sa.bytes_sent == sb.bytes_received


async def test_small_sends_are_coalesced_into_few_writes(token):
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        await exchange(a, b, 1)  # connect first, so the batch below is queued on a live connection
        before = a.statistics()
        n = 2000
        for i in range(n):
            a.send_nowait(b.address, TcpTestPing(seq=i))
        with trio.fail_after(10):
            for i in range(n):
                assert (await b.receive()).msg.seq == i
        after = a.statistics()
        assert after.frames_sent - before.frames_sent == n
        writes = after.writes - before.writes
        # ~30 bytes a frame: 2000 frames fit in one or two 1 MiB batches.
        assert 1 <= writes <= 2, writes


async def test_numpy_array_of_10_mib_crosses_out_of_band(token):
    arr = np.random.default_rng(0).random(10 * 2**20 // 8)
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        a.send_nowait(b.address, TcpTestPing(seq=1, body=arr))
        a.send_nowait(b.address, TcpTestPing(seq=2, body=serialize({"arr": arr})))
        with trio.fail_after(20):
            first = (await b.receive()).msg.body
            second = (await b.receive()).msg.body
        assert np.array_equal(first, arr) and not first.flags.owndata and not first.flags.writeable
        assert isinstance(second, SerializedValue)
        assert np.array_equal(second.deserialize()["arr"], arr)
        # Each frame is the array plus well under a page of envelope and stream.
        stats = a.statistics()
        assert stats.frames_sent == 2
        assert 2 * arr.nbytes < stats.bytes_sent < 2 * arr.nbytes + 8192
        assert stats.bytes_sent == b.statistics().bytes_received


async def test_simultaneous_dials_end_with_one_connection(token):
    for _ in range(5):
        async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
            # Both sides queue before either dial can finish: both dial at once.
            for i in range(50):
                a.send_nowait(b.address, TcpTestPing(seq=i))
                b.send_nowait(a.address, TcpTestPing(seq=i))
            with trio.fail_after(10):
                for i in range(50):
                    assert (await a.receive()).msg.seq == i
                    assert (await b.receive()).msg.seq == i
            sa, sb = a.statistics(), b.statistics()
            assert (sa.connections, sb.connections) == (1, 1)
            assert sa.messages_dropped == sb.messages_dropped == 0
            # The winner is the dial of the smaller address, on both sides.
            small, large = sorted([sa, sb], key=lambda s: s.address)
            assert (small.connections_dialed, small.connections_accepted) == (1, 0)
            assert (large.connections_dialed, large.connections_accepted) == (0, 1)
            assert small.peers_lost == large.peers_lost == 0


async def test_send_to_unreachable_peer_drops_and_reports(token):
    lost = LostPeers()
    async with open_tcp_transport(token) as gone:
        dead_address = gone.address
    async with open_tcp_transport(token, on_peer_lost=lost) as a:
        for i in range(10):
            a.send_nowait(dead_address, TcpTestPing(seq=i))  # does not raise
        await lost.wait_for(dead_address)
        assert a.statistics().messages_dropped == 10
        await a.wait_all_sent()


async def test_unreachable_peer_sent_only_queries_is_no_warning(token, caplog):
    # The dashboard polls processes that may be stopping: a poll that finds
    # one gone is no news; a protocol message that finds one gone is.
    from ownership.runtime.status import StatusRequest

    caplog.set_level(logging.DEBUG, logger="ownership.tcp")
    async with open_tcp_transport(token) as gone_polled, open_tcp_transport(token) as gone_sent:
        polled, sent = gone_polled.address, gone_sent.address
    lost = LostPeers()
    async with open_tcp_transport(token, on_peer_lost=lost) as a:
        a.send_nowait(polled, StatusRequest(request_id="r1"))
        a.send_nowait(sent, TcpTestPing(seq=1))
        await lost.wait_for(polled)
        await lost.wait_for(sent)
    about = {
        peer: [r.levelno for r in caplog.records if r.name == "ownership.tcp" and f"peer {peer} unreachable" in r.getMessage()]
        for peer in (polled, sent)
    }
    assert about == {polled: [logging.DEBUG], sent: [logging.WARNING]}


async def test_process_on_a_recycled_port_is_a_new_identity(token):
    from ownership.core.events import PeerLost

    lost = LostPeers()
    async with open_tcp_transport(token, on_peer_lost=lost) as a:
        async with open_tcp_transport(token) as b:
            old = b.address
            await exchange(a, b)
        await lost.wait_for(old)
        host, port, _ = parse_identity(old)
        async with open_tcp_transport(token, host, port) as b2:
            assert b2.address != old and b2.listen_address == b.listen_address
            # The old process is gone: a message to it is dropped and it is
            # reported lost, though a member listens at its address.
            lost.addresses.clear()
            a.send_nowait(old, TcpTestPing(seq=666))
            await lost.wait_for(old)
            a.watch(old)
            with trio.fail_after(10):
                assert (await a.receive()).msg == PeerLost(address=old)
            # The new one is reachable under its own name, and never saw
            # what was meant for the old one.
            await exchange(a, b2)
            sa = a.statistics()
            assert (sa.connections, sa.messages_dropped, sa.handshakes_failed) == (1, 1, 0)
            assert b2.statistics().frames_received == 3


async def test_restarted_peer_dials_back_on_same_port(token):
    async with open_tcp_transport(token) as a:
        async with open_tcp_transport(token) as b:
            await exchange(b, a)
        host, port, _ = parse_identity(b.address)
        async with open_tcp_transport(token, host, port) as b2:
            await exchange(b2, a)
            await exchange(a, b2)
            assert a.statistics().connections == 1


async def test_connection_from_new_incarnation_reports_the_old_one_lost(token, caplog):
    # A peer restarted on its port dials while we still hold the old
    # process's connection (we have not seen it die yet): only one process
    # listens at an address, so the old one is reported lost at once and
    # its connection closed.
    from ownership.core.events import PeerLost

    caplog.set_level(logging.INFO, logger=TCP_LOGGER)
    async with open_tcp_transport(token) as a:
        old, _ = await authenticated_raw_client(a.address, token, incarnation=b"\x01" * 4)
        a.watch("127.0.0.1:9#01010101")
        new, channel = await authenticated_raw_client(a.address, token, incarnation=b"\x02" * 4)
        await assert_closed_by_peer(old)
        await old.aclose()
        with trio.fail_after(10):
            assert (await a.receive()).msg == PeerLost(address="127.0.0.1:9#01010101")
        assert any("127.0.0.1:9#01010101 is gone" in r.getMessage() for r in caplog.records)
        # Messages to the new process go over the new connection.
        a.send_nowait("127.0.0.1:9#02020202", TcpTestPing(seq=7))
        receiver = ByteReceiver(new)
        header = await receiver.receive_exactly(8)
        (length,) = struct.unpack("!Q", header)
        body = await receiver.receive_exactly(length)
        assert channel.incoming.check(header + body, await receiver.receive_exactly(TAG_BYTES))
        stats = a.statistics()
        assert (stats.connections, stats.peers_lost, stats.messages_dropped) == (1, 1, 0)
        await new.aclose()


async def test_resolve_names_the_process_and_keeps_the_connection(token):
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        assert b.address == f"{b.listen_address}#{b.incarnation.hex()}"
        assert await a.resolve(b.listen_address) == b.address
        assert await a.resolve(b.address) == b.address  # no second dial: the connection is there
        await exchange(a, b)
        assert (a.statistics().connections_dialed, b.statistics().connections_accepted) == (1, 1)


async def test_ipv6_identities_resolve_and_carry_messages(token):
    try:
        listener = (await trio.open_tcp_listeners(0, host="::1"))[0]
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    await listener.aclose()
    async with open_tcp_transport(token, "::1") as a, open_tcp_transport(token, "::1") as b:
        host, port, incarnation = parse_identity(b.address)
        assert (host, b.address) == ("::1", f"[::1]:{port}#{incarnation}")
        assert await a.resolve(f"[::1]:{port}") == b.address
        await exchange(a, b)


async def test_resolve_of_a_gone_process_or_a_closed_port_is_a_connection_error(token):
    async with open_tcp_transport(token) as gone:
        dead = gone.address
    async with open_tcp_transport(token) as a:
        with pytest.raises(ConnectionError, match="cannot reach"):
            await a.resolve(dead.partition("#")[0])
        host, port, _ = parse_identity(dead)
        async with open_tcp_transport(token, host, port) as successor:
            with pytest.raises(ConnectionError, match="is gone"):
                await a.resolve(dead)
            assert await a.resolve(dead.partition("#")[0]) == successor.address
        with pytest.raises(ValueError, match="host:port"):
            await a.resolve("nowhere")


async def test_probe_answers_whether_that_incarnation_lives(token):
    async with open_tcp_transport(token) as gone:
        dead = gone.address
    async with open_tcp_transport(token) as head, open_tcp_transport(token) as node:
        with trio.fail_after(10):
            assert await head.probe(node.address)  # a fresh dial, kept for what follows
            assert head.connected_peers() == [node.address]
            assert not await head.probe(dead)  # nothing listens there
            host, port, _ = parse_identity(dead)
            async with open_tcp_transport(token, host, port):
                assert not await head.probe(dead)  # another incarnation listens there
            assert not await head.probe("nowhere")


async def test_probe_of_a_process_that_does_not_answer_is_bounded_by_the_caller(token):
    # A listener that accepts and never speaks: a hung process.
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    async with listener, open_tcp_transport(token) as head:
        with trio.move_on_after(0.3) as scope:
            await head.probe(f"127.0.0.1:{port}#{'00' * 4}")
        assert scope.cancelled_caught


async def test_wrong_token_is_rejected_and_listener_keeps_serving(token, caplog):
    lost = LostPeers()
    async with open_tcp_transport(token) as server, open_tcp_transport(token) as good:
        async with open_tcp_transport(b"w" * 32, on_peer_lost=lost) as bad:
            bad.send_nowait(server.address, TcpTestPing(seq=666))
            await lost.wait_for(server.address)
            assert bad.statistics().messages_dropped == 1
        assert server.statistics().handshakes_failed == 1
        assert any("failed to prove the cluster token" in m for m in error_records(caplog))
        await exchange(good, server)
        assert server.statistics().frames_received == 3  # the bad ping never got through


async def raw_connect(address: str) -> trio.SocketStream:
    return await trio.open_tcp_stream(*parse_address(address))


async def assert_closed_by_peer(stream: trio.SocketStream) -> None:
    with trio.fail_after(10):
        while True:
            try:
                data = await stream.receive_some()
            except trio.BrokenResourceError:
                return  # reset: closed with our bytes unread
            if not data:
                return


async def authenticated_raw_client(
    address: str, token: bytes, incarnation: bytes = b"\x01" * 4, *, resume: bool = True
) -> tuple[trio.SocketStream, Channel]:
    """A client that passes the handshake as "127.0.0.1:9" and then sends raw bytes.

    The channel tags what it sends (:func:`tagged`), as a member would; with
    ``resume`` it first opens its direction with a resume frame, as a member does.
    """
    stream = await raw_connect(address)
    receiver = ByteReceiver(stream)
    hello = Hello(address="127.0.0.1:9", incarnation=incarnation)
    peer, verdict, channel = await dialer_handshake(stream, receiver, token, hello, address)
    assert (peer.identity, verdict) == (address, Verdict.ACCEPT)
    if resume:
        await stream.send_all(tagged(channel, control_frame(Resume(first=1, received=0, nonce=1, your_nonce=0))))
    return stream, channel


def tagged(channel: Channel, frame: bytes) -> bytes:
    return frame + channel.outgoing.tag(frame)


def raw_frame(envelope: object) -> bytes:
    env = msgpack.packb(envelope)
    body = struct.pack("!II", 0, len(env)) + env
    return struct.pack("!Q", len(body)) + body


BAD_FRAMES = {
    # name: (bytes after the handshake, whether they are tagged, expected log text)
    "oversize": (struct.pack("!Q", 2**40), False, "exceeds the limit"),
    "unknown-type": (raw_frame({"type": "NoSuchMessage", "fields": {}}), True, "unknown message type 'NoSuchMessage'"),
    "bad-fields": (raw_frame({"type": "TcpTestPing", "fields": {"nope": 1}}), True, "bad fields"),
    # well-formed, as a peer's encoder writes it, but a field of the wrong
    # type: refused as it is decoded, before any handler sees it
    "wrong-field-type": (b"".join(bytes(c) for c in encode_message(TcpTestPing(seq="one")).chunks), True, "bad field TcpTestPing.seq"),
    "malformed": (struct.pack("!Q", 6) + b"\xff" * 6, True, "bad frame"),
    "truncated": (struct.pack("!Q", 100) + b"\x00" * 10, False, "stream ended"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FRAMES))
async def test_bad_frame_closes_only_that_connection(token, caplog, kind):
    payload, tag, expected = BAD_FRAMES[kind]
    async with open_tcp_transport(token, max_frame_size=2**20) as server, open_tcp_transport(token) as good:
        await exchange(good, server)  # a live connection before the bad one
        stream, channel = await authenticated_raw_client(server.address, token)
        await stream.send_all(tagged(channel, payload) if tag else payload)
        if kind == "truncated":
            await stream.send_eof()
        # The oversize header alone is refused: the body is never awaited, and
        # 1 TiB is never allocated.
        await assert_closed_by_peer(stream)
        await stream.aclose()
        assert any(expected in m for m in error_records(caplog)), error_records(caplog)
        assert server.statistics().frames_rejected == 1
        await exchange(good, server)
        await exchange(server, good)
        assert server.statistics().connections == 1


def _ping(seq: int) -> bytes:
    return b"".join(bytes(c) for c in encode_message(TcpTestPing(seq=seq)).chunks)


def _forged(channel: Channel) -> bytes:
    frame = _ping(1)
    tag = bytearray(channel.outgoing.tag(frame))
    tag[0] ^= 1
    return frame + bytes(tag)


def _replayed(channel: Channel) -> bytes:
    first = tagged(channel, _ping(1))
    return first + first


def _reordered(channel: Channel) -> bytes:
    first, second = tagged(channel, _ping(1)), tagged(channel, _ping(2))
    return second + first


def _reflected(channel: Channel) -> bytes:
    # Tagged as the server's own frames are: sent back at it, it must fail.
    frame = _ping(1)
    return frame + channel.incoming.tag(frame)


def _untagged(channel: Channel) -> bytes:
    return _ping(1) + bytes(TAG_BYTES)


UNAUTHENTIC = {"forged": _forged, "replayed": _replayed, "reordered": _reordered, "reflected": _reflected, "untagged": _untagged}


@pytest.mark.parametrize("kind", sorted(UNAUTHENTIC))
async def test_frame_with_a_bad_tag_closes_only_that_connection(token, caplog, kind):
    async with open_tcp_transport(token) as server, open_tcp_transport(token) as good:
        await exchange(good, server)
        stream, channel = await authenticated_raw_client(server.address, token)
        await stream.send_all(UNAUTHENTIC[kind](channel))
        await assert_closed_by_peer(stream)
        await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()  # the server is done closing it
        assert any("failed authentication" in m for m in error_records(caplog)), error_records(caplog)
        stats = server.statistics()
        assert (stats.bad_macs, stats.frames_rejected, stats.connections) == (1, 0, 1)
        # The authentic frame before a replay was delivered, and only it.
        delivered = 1 if kind == "replayed" else 0
        with trio.fail_after(10):
            for _ in range(delivered):
                assert (await server.receive()).msg == TcpTestPing(seq=1)
        await exchange(good, server)
        assert server.statistics().frames_received == 3 + delivered + 3


async def test_large_frames_are_tagged_in_pieces_both_ways(token):
    # Frames over the one-call size, with an out-of-band buffer, both ways.
    arr = np.arange(3 * 2**20 // 8, dtype=np.float64)
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        for i in range(3):
            a.send_nowait(b.address, TcpTestPing(seq=i, body=arr))
            b.send_nowait(a.address, TcpTestPing(seq=i, body=b"x" * 100_000))  # in the envelope, not a buffer
        with trio.fail_after(20):
            for i in range(3):
                got = await b.receive()
                assert got.msg.seq == i and np.array_equal(got.msg.body, arr)
                assert (await a.receive()).msg == TcpTestPing(seq=i, body=b"x" * 100_000)
        assert a.statistics().bad_macs == b.statistics().bad_macs == 0


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 64, b"OWN"],
    ids=["http", "zeros", "short"],
)
async def test_garbage_before_handshake_is_rejected(token, caplog, garbage):
    async with open_tcp_transport(token) as server, open_tcp_transport(token) as good:
        stream = await raw_connect(server.address)
        await stream.send_all(garbage)
        await stream.send_eof()
        await assert_closed_by_peer(stream)
        await stream.aclose()
        assert server.statistics().handshakes_failed == 1
        assert any("handshake" in m for m in error_records(caplog))
        await exchange(good, server)


async def test_silent_client_times_out_in_handshake(token, caplog):
    async with open_tcp_transport(token, handshake_timeout=0.2) as server, open_tcp_transport(token) as good:
        stream = await raw_connect(server.address)
        await assert_closed_by_peer(stream)
        await stream.aclose()
        assert any("timed out" in m for m in error_records(caplog))
        await exchange(good, server)


async def test_unserializable_message_raises_at_send(token):
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        with pytest.raises(SerializationError):
            a.send_nowait(b.address, TcpTestPing(seq=0, body=threading.Lock()))
        await exchange(a, b)


async def test_message_over_frame_limit_raises_at_send(token):
    async with open_tcp_transport(token, max_frame_size=1024) as a, open_tcp_transport(token) as b:
        with pytest.raises(FrameTooLarge):
            a.send_nowait(b.address, TcpTestPing(seq=0, body=b"x" * 2048))
        assert a.statistics().messages_queued == 0
        await exchange(a, b)


async def test_bad_address_raises_value_error(token):
    async with open_tcp_transport(token) as a:
        with pytest.raises(ValueError, match="host:port"):
            a.send_nowait("no-port", TcpTestPing(seq=0))


async def test_bare_address_where_an_identity_is_needed_raises_value_error(token):
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        with pytest.raises(ValueError, match="bare host:port.*resolve"):
            a.send_nowait(b.listen_address, TcpTestPing(seq=0))
        with pytest.raises(ValueError, match="bare host:port"):
            a.watch(b.listen_address)
        assert a.statistics().messages_queued == 0


async def test_send_to_self_is_delivered_locally(token):
    async with open_tcp_transport(token) as a:
        a.send_nowait(a.address, TcpTestPing(seq=5))
        env = await a.receive()
        assert (env.src, env.dst, env.msg) == (a.address, a.address, TcpTestPing(seq=5))
        assert a.statistics().connections == 0


async def test_receive_after_close_raises_transport_closed(token):
    async with open_tcp_transport(token) as a:
        async with trio.open_nursery() as nursery:
            failures = []

            async def waiter():
                with pytest.raises(TransportClosed):
                    await a.receive()
                failures.append("closed")

            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await a.aclose()
        assert failures == ["closed"]
        a.send_nowait("127.0.0.1:9#01010101", TcpTestPing(seq=0))  # dropped quietly after close
        assert [env async for env in a] == []


async def test_wait_all_sent_returns_when_closed_mid_dial(token):
    # A listener that accepts and never answers: the dial hangs in the handshake.
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    mute = f"127.0.0.1:{listeners[0].socket.getsockname()[1]}#00000000"
    async with trio.open_nursery() as outer:
        outer.start_soon(trio.serve_listeners, lambda stream: trio.sleep_forever(), listeners)
        async with open_tcp_transport(token, handshake_timeout=60) as a:
            a.send_nowait(mute, TcpTestPing(seq=0))
            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(a.wait_all_sent)
                    await trio.testing.wait_all_tasks_blocked()
                    assert a.statistics().messages_queued == 1
                    await a.aclose()
        outer.cancel_scope.cancel()


async def test_watched_peer_loss_is_a_local_notification(token):
    from ownership.core.events import PeerLost

    async with open_tcp_transport(token) as node:
        async with open_tcp_transport(token) as worker:
            await exchange(worker, node)
            node.watch(worker.address)
            await trio.testing.wait_all_tasks_blocked()
            node.send_nowait(node.address, TcpTestPing(seq=99))
            assert (await node.receive()).msg == TcpTestPing(seq=99)  # nothing reported while it lives
        with trio.fail_after(10):
            env = await node.receive()
        assert (env.src, env.dst, env.msg) == (node.address, node.address, PeerLost(address=worker.address))


async def test_watching_a_dead_address_reports_it(token):
    from ownership.core.events import PeerLost

    async with open_tcp_transport(token) as gone:
        dead = gone.address
    async with open_tcp_transport(token) as node:
        node.watch(dead)
        with trio.fail_after(10):
            env = await node.receive()
        assert env.msg == PeerLost(address=dead)
        # Reported once: further failed sends do not repeat it.
        node.send_nowait(dead, TcpTestPing(seq=1))
        await node.wait_all_sent()
        node.send_nowait(node.address, TcpTestPing(seq=2))
        assert (await node.receive()).msg == TcpTestPing(seq=2)


async def test_body_exception_propagates_unwrapped(token):
    with pytest.raises(KeyError, match="mine"):
        async with open_tcp_transport(token):
            raise KeyError("mine")


async def test_serve_tcp_transport_runs_in_a_nursery(token):
    async with trio.open_nursery() as nursery:
        a = await nursery.start(serve_tcp_transport, token)
        b = await nursery.start(serve_tcp_transport, token)
        await exchange(a, b)
        nursery.cancel_scope.cancel()


async def test_encoded_size_matches_wire_bytes(token):
    msg = TcpTestPing(seq=1, body=np.arange(1000))
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        a.send_nowait(b.address, msg)
        await b.receive()
        assert a.statistics().bytes_sent == encode_message(msg).nbytes + TAG_BYTES


async def test_slow_receiver_stops_reading_and_resumes_in_order(token):
    async with open_tcp_transport(token, max_inbound_messages=3) as server:
        async with open_tcp_transport(token) as c1, open_tcp_transport(token) as c2:
            for i in range(200):
                c1.send_nowait(server.address, TcpTestPing(seq=i))
                c2.send_nowait(server.address, TcpTestPing(seq=i))
            await trio.testing.wait_all_tasks_blocked()
            # Both readers wait for the service to catch up (3 queued + at most one each).
            assert server.statistics().frames_received <= 5
            seen = {c1.address: [], c2.address: []}
            with trio.fail_after(10):
                for _ in range(400):
                    env = await server.receive()
                    seen[env.src].append(env.msg.seq)
            assert seen == {c1.address: list(range(200)), c2.address: list(range(200))}


# Registered by conftest while this module runs.
TEST_MESSAGES = (TcpTestPing, TcpTestPong)


async def test_cut_connection_is_replaced_and_neither_side_reports_the_other_lost(token):
    lost_a, lost_b = LostPeers(), LostPeers()
    async with open_tcp_transport(token, on_peer_lost=lost_a) as a, open_tcp_transport(token, on_peer_lost=lost_b) as b:
        await exchange(a, b)
        assert not a.cut("127.0.0.1:1#00000001")  # no connection there: nothing to cut
        assert a.cut(b.address)
        await exchange(a, b)  # over the connection dialed again at once
        await exchange(b, a)
        sa, sb = a.statistics(), b.statistics()
        assert sa.connections_dialed + sb.connections_dialed == 2
        assert (lost_a.addresses, lost_b.addresses) == ([], [])  # both live: nobody is lost


@pytest.mark.parametrize("cutter", ["sender", "receiver"])
async def test_messages_on_a_connection_that_resets_arrive_once_and_in_order(token, cutter):
    """What a reset connection held (queued here, in the kernel, unread there) is sent again on
    the next one, and what had arrived already is not delivered twice."""
    n = 400
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        await exchange(a, b)
        got: list[int] = []
        cuts = 0
        with trio.fail_after(30):
            for i in range(n):
                # Small frames and 256 KiB ones, so resets find data everywhere.
                body = bytes(256 * 1024) if i % 10 == 0 else {"i": i}
                a.send_nowait(b.address, TcpTestPing(seq=i, body=body))
                if i % 50 == 25:
                    cuts += a.cut(b.address) if cutter == "sender" else b.cut(a.address)  # False while redialing
                if i % 7 == 0:
                    await trio.lowlevel.checkpoint()
                    while b._inbound_count:  # take what arrived, as the service does
                        got.append((await b.receive()).msg.seq)
            while len(got) < n:
                got.append((await b.receive()).msg.seq)
        assert got == list(range(n))
        assert cuts >= 3
        sa, sb = a.statistics(), b.statistics()
        assert sa.frames_resent + sb.duplicates_dropped > 0  # a reset really cut something
        assert sa.messages_dropped == 0
        await exchange(b, a)  # and the pair goes on


async def test_message_frame_before_the_resume_frame_closes_the_connection(token, caplog):
    async with open_tcp_transport(token) as server:
        stream, channel = await authenticated_raw_client(server.address, token, resume=False)
        await stream.send_all(tagged(channel, raw_frame({"type": "TcpTestPing", "fields": {"seq": 1, "body": None}})))
        await assert_closed_by_peer(stream)
        await stream.aclose()
        assert any("before the resume frame" in m for m in error_records(caplog)), error_records(caplog)
        assert server.statistics().frames_received == 0


@pytest.mark.parametrize("seed", [5, 9, 15])
async def test_both_ways_under_resets_and_refused_frames_every_message_arrives_once_in_order(token, seed):
    """Both sides send, cut their connection and send frames the other refuses (each refusal closes
    the connection), at random: each side still gets every message of the other, once, in order."""
    import random

    rng = random.Random(seed)
    refused = RequestLease(request_id="x/y", owner="a\nb", task_id=-1, resources=(), deps=(), spilled=False, actor=False)  # type: ignore[arg-type]
    async with open_tcp_transport(token) as a, open_tcp_transport(token) as b:
        sent = {a.address: 0, b.address: 0}
        got: dict[str, list[int]] = {a.address: [], b.address: []}
        done = trio.Event()

        async def receive(t, peer) -> None:
            async for env in t:
                got[t.address].append(env.msg.seq)
                if all(len(got[x.address]) == sent[y.address] for x, y in ((a, b), (b, a))) and sending_over:
                    done.set()

        sending_over = False
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive, a, b)
                nursery.start_soon(receive, b, a)
                for _ in range(1500):
                    src, dst = (a, b) if rng.random() < 0.5 else (b, a)
                    draw = rng.random()
                    if draw < 0.03:
                        src.send_nowait(dst.address, refused)
                    elif draw < 0.05:
                        src.cut(dst.address)
                    else:
                        src.send_nowait(dst.address, TcpTestPing(seq=sent[src.address]))
                        sent[src.address] += 1
                    if rng.random() < 0.3:
                        await trio.lowlevel.checkpoint()
                sending_over = True
                if all(len(got[x.address]) == sent[y.address] for x, y in ((a, b), (b, a))):
                    done.set()
                await done.wait()
                nursery.cancel_scope.cancel()
        assert got[b.address] == list(range(sent[a.address]))
        assert got[a.address] == list(range(sent[b.address]))
        assert a.statistics().messages_dropped == b.statistics().messages_dropped == 0
        assert a.statistics().frames_resent + b.statistics().frames_resent > 0
