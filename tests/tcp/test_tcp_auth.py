"""The cluster token file and the handshake, without the transport around them."""

from __future__ import annotations

import os
import stat

import pytest
import trio
import trio.testing

from ownership.runtime.auth import (
    Channel,
    FrameMac,
    HandshakeAbandoned,
    HandshakeError,
    Hello,
    InsecureTokenFile,
    PeerMismatch,
    Verdict,
    acceptor_handshake,
    default_token_path,
    dialer_handshake,
    format_address,
    format_identity,
    generate_token,
    load_token,
    parse_address,
    parse_identity,
    write_token,
)
from ownership.runtime.framing import ByteReceiver


def test_token_file_is_private_and_round_trips(tmp_path):
    token = generate_token()
    path = write_token(token, tmp_path / "session" / "cluster.token")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_token(path) == token
    assert len(token) == 32 and generate_token() != token
    assert [p.name for p in path.parent.iterdir()] == ["cluster.token"]  # no temp file left


def test_token_file_replaced_atomically_keeps_mode(tmp_path):
    path = write_token(generate_token(), tmp_path / "t")
    second = generate_token()
    write_token(second, path)
    assert load_token(path) == second and stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_exposed_token_file_is_refused(tmp_path, mode):
    path = write_token(generate_token(), tmp_path / "t")
    os.chmod(path, mode)
    with pytest.raises(InsecureTokenFile, match="chmod 600"):
        load_token(path)


@pytest.mark.parametrize("content", ["not hex\n", "abcd\n", ""])
def test_bad_token_content_is_refused(tmp_path, content):
    path = tmp_path / "t"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(ValueError, match="token"):
        load_token(path)


def test_short_token_is_not_written(tmp_path):
    with pytest.raises(ValueError, match="16 bytes"):
        write_token(b"short", tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_default_token_path_follows_ownership_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OWNERSHIP_HOME", str(tmp_path))
    assert default_token_path() == tmp_path / "cluster.token"
    write_token(generate_token())
    assert (tmp_path / "cluster.token").exists()


DIALER = Hello(address="127.0.0.1:1111", incarnation=b"dddd")
ACCEPTOR = Hello(address="127.0.0.1:2222", incarnation=b"aaaa")


async def run_pair(
    dialer_token: bytes,
    acceptor_token: bytes,
    decide=lambda hello, channel: Verdict.ACCEPT,
    dialed: str = ACCEPTOR.identity,
    acceptor_hello: Hello = ACCEPTOR,
):
    left, right = trio.testing.memory_stream_pair()
    results: dict[str, object] = {}

    async def side(name, coro_fn):
        try:
            results[name] = await coro_fn()
        except HandshakeError as exc:
            results[name] = exc
            # A failed side closes its end, as the transport does.
            await (left if name == "dialer" else right).aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, "dialer", lambda: dialer_handshake(left, ByteReceiver(left), dialer_token, DIALER, dialed))
        nursery.start_soon(
            side, "acceptor", lambda: acceptor_handshake(right, ByteReceiver(right), acceptor_token, acceptor_hello, decide)
        )
    return results


def test_identity_is_address_and_incarnation():
    assert ACCEPTOR.identity == "127.0.0.1:2222#61616161"
    assert parse_identity("[::1]:41234#9f3a0c1e") == ("::1", 41234, "9f3a0c1e")
    assert parse_address("[::1]:41234#9f3a0c1e") == parse_address("[::1]:41234") == ("::1", 41234)
    assert format_identity(format_address("::1", 41234), bytes.fromhex("9f3a0c1e")) == "[::1]:41234#9f3a0c1e"


@pytest.mark.parametrize("bad", ["127.0.0.1:80#9F3A0C1E", "127.0.0.1:80#9f3a", "127.0.0.1#9f3a0c1e", "h:0#9f3a0c1e", ""])
def test_malformed_identity_is_a_value_error(bad):
    with pytest.raises(ValueError):
        parse_identity(bad)


def test_bare_address_where_an_identity_is_needed_says_so():
    with pytest.raises(ValueError, match="bare host:port.*resolve"):
        parse_identity("127.0.0.1:80")


async def test_handshake_authenticates_both_identities():
    token = generate_token()
    seen: list[Hello] = []
    results = await run_pair(token, token, decide=lambda hello, channel: seen.append(hello) or Verdict.DUPLICATE)
    peer_of_dialer, verdict, _ = results["dialer"]
    peer_of_acceptor, verdict2 = results["acceptor"]
    assert (peer_of_dialer.identity, peer_of_acceptor.identity) == (ACCEPTOR.identity, DIALER.identity)
    assert verdict == verdict2 == Verdict.DUPLICATE
    assert seen == [peer_of_acceptor]


async def test_handshake_keys_differ_per_direction_and_per_connection():
    token = generate_token()
    channels: list[Channel] = []
    first = await run_pair(token, token, decide=lambda hello, channel: channels.append(channel) or Verdict.ACCEPT)
    dialer, acceptor = first["dialer"][2], channels[0]
    frame = b"\x00" * 8 + b"a frame"
    # What one end tags, the other checks, in order.
    assert acceptor.incoming.check(frame, dialer.outgoing.tag(frame))
    assert dialer.incoming.check(frame, acceptor.outgoing.tag(frame))
    # Reflected back at its author, a frame fails: the directions' keys differ.
    assert not dialer.incoming.check(frame, dialer.outgoing.tag(frame))
    # The same frame at the same position of another connection has another tag.
    second = await run_pair(token, token)
    one, other = dialer.outgoing, second["dialer"][2].outgoing
    other.frames = one.frames
    assert one.tag(frame) != other.tag(frame)


def test_frame_tag_in_one_call_equals_tag_in_pieces():
    a, b = FrameMac(b"k" * 32), FrameMac(b"k" * 32)
    frame = bytes(range(256)) * 1000 + b"tail"
    pieces = b.begin()
    for start, end in [(0, 8), (8, 1000), (1000, 70_001), (70_001, len(frame))]:
        pieces.update(memoryview(frame)[start:end])
    assert pieces.tag() == a.tag(frame)
    # Numbered: the next frame's tag differs though the bytes are the same.
    assert a.tag(frame) != FrameMac(b"k" * 32).tag(frame)


async def test_handshake_with_different_tokens_fails_on_both_sides():
    results = await run_pair(generate_token(), generate_token())
    assert isinstance(results["acceptor"], HandshakeError)
    assert isinstance(results["dialer"], HandshakeError)


@pytest.mark.parametrize(
    "acceptor_hello, dialed",
    [
        (Hello(address="127.0.0.1:3333", incarnation=b"aaaa"), ACCEPTOR.identity),  # another address
        (Hello(address="127.0.0.1:2222", incarnation=b"bbbb"), ACCEPTOR.identity),  # another incarnation
        (Hello(address="127.0.0.1:3333", incarnation=b"aaaa"), ACCEPTOR.address),  # resolving a bare address
    ],
    ids=["address", "incarnation", "bare"],
)
async def test_dialer_leaves_before_proving_when_another_process_answers(acceptor_hello, dialed):
    # The acceptor knows the token, but is not whom the dialer dialed: the
    # dialer must not send its MAC (a relay would pass it on).
    token = generate_token()
    results = await run_pair(token, token, dialed=dialed, acceptor_hello=acceptor_hello)
    assert isinstance(results["dialer"], PeerMismatch)
    assert results["dialer"].same_address == (acceptor_hello.address == ACCEPTOR.address)
    assert isinstance(results["acceptor"], HandshakeAbandoned)  # no MAC ever came


async def test_dialer_refuses_acceptor_that_cannot_prove_the_token():
    # An impostor listening at a cluster address that answers without the
    # token: the dialer must not go on to send frames to it.
    left, right = trio.testing.memory_stream_pair()
    token = generate_token()

    async def impostor():
        receiver = ByteReceiver(right)
        await receiver.receive_exactly(len(DIALER.encode()))
        await right.send_all(ACCEPTOR.encode())  # it claims the right identity
        await receiver.receive_exactly(32)
        await right.send_all(bytes([Verdict.ACCEPT]) + os.urandom(32))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(impostor)
        with pytest.raises(HandshakeError, match="failed to prove"):
            await dialer_handshake(left, ByteReceiver(left), token, DIALER, ACCEPTOR.identity)


@pytest.mark.parametrize(
    "address", [b"127.0.0.1:1\nERROR forged line", b"\x1b[31mred:1", b"127.0.0.1:x", b"\xff\xfe:1", b""]
)
async def test_hello_with_a_bad_address_is_refused_with_an_escaped_reason(address):
    left, right = trio.testing.memory_stream_pair()
    hello = b"OWNRSHP\x02" + os.urandom(32) + b"dddd" + bytes([len(address)]) + address
    await left.send_all(hello)
    with pytest.raises(HandshakeError, match="bad address") as info:
        await acceptor_handshake(right, ByteReceiver(right), generate_token(), ACCEPTOR, lambda h, c: Verdict.ACCEPT)
    message = str(info.value)
    assert message.isprintable() and len(message) < 200


async def test_hello_of_another_version_is_named():
    left, right = trio.testing.memory_stream_pair()
    await left.send_all(b"OWNRSHP\x01" + bytes(60))
    with pytest.raises(HandshakeError, match="version 1, this process 2"):
        await acceptor_handshake(right, ByteReceiver(right), generate_token(), ACCEPTOR, lambda h, c: Verdict.ACCEPT)


async def test_receiver_reads_small_pieces_until_authenticated():
    # No 64 KiB buffer per connection before the peer proved anything.
    left, right = trio.testing.memory_stream_pair()
    await left.send_all(bytes(100_000))
    receiver = ByteReceiver(right)
    await receiver.receive_exactly(1)
    assert receiver.buffered < 512
    receiver.authenticated()
    await receiver.receive_exactly(receiver.buffered + 1)
    assert receiver.buffered > 4096
