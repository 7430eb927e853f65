"""The cluster token file and the handshake, without the transport around them."""

from __future__ import annotations

import os
import stat

import pytest
import trio
import trio.testing

from ownership.runtime.auth import (
    HandshakeError,
    Hello,
    InsecureTokenFile,
    Verdict,
    acceptor_handshake,
    default_token_path,
    dialer_handshake,
    generate_token,
    load_token,
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


async def run_pair(dialer_token: bytes, acceptor_token: bytes, decide=lambda hello: Verdict.ACCEPT):
    left, right = trio.testing.memory_stream_pair()
    dialer_hello = Hello(address="127.0.0.1:1111", incarnation=b"d" * 16)
    acceptor_hello = Hello(address="127.0.0.1:2222", incarnation=b"a" * 16)
    results: dict[str, object] = {}

    async def side(name, coro_fn):
        try:
            results[name] = await coro_fn()
        except HandshakeError as exc:
            results[name] = exc
            # A failed side closes its end, as the transport does.
            await (left if name == "dialer" else right).aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, "dialer", lambda: dialer_handshake(left, ByteReceiver(left), dialer_token, dialer_hello))
        nursery.start_soon(
            side, "acceptor", lambda: acceptor_handshake(right, ByteReceiver(right), acceptor_token, acceptor_hello, decide)
        )
    return results


async def test_handshake_authenticates_both_addresses():
    token = generate_token()
    results = await run_pair(token, token, decide=lambda hello: Verdict.DUPLICATE)
    peer_of_dialer, verdict = results["dialer"]
    peer_of_acceptor, verdict2 = results["acceptor"]
    assert (peer_of_dialer.address, peer_of_acceptor.address) == ("127.0.0.1:2222", "127.0.0.1:1111")
    assert verdict == verdict2 == Verdict.DUPLICATE
    assert peer_of_acceptor.incarnation == b"d" * 16


async def test_handshake_with_different_tokens_fails_on_both_sides():
    results = await run_pair(generate_token(), generate_token())
    assert isinstance(results["acceptor"], HandshakeError)
    assert isinstance(results["dialer"], HandshakeError)


async def test_dialer_refuses_acceptor_that_cannot_prove_the_token():
    # An impostor listening at a cluster address that answers without the
    # token: the dialer must not go on to send frames to it.
    left, right = trio.testing.memory_stream_pair()
    token = generate_token()

    async def impostor():
        receiver = ByteReceiver(right)
        await receiver.receive_exactly(8 + 32 + 16 + 1 + len("127.0.0.1:1111"))
        await right.send_all(Hello(address="127.0.0.1:2222", incarnation=b"i" * 16).encode())
        await receiver.receive_exactly(32)
        await right.send_all(bytes([Verdict.ACCEPT]) + os.urandom(32))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(impostor)
        with pytest.raises(HandshakeError, match="failed to prove"):
            await dialer_handshake(left, ByteReceiver(left), token, Hello(address="127.0.0.1:1111", incarnation=b"d" * 16))
