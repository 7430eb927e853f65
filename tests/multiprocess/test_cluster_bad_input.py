"""Bad input against the processes of a running cluster: each is refused, the cluster keeps working."""

from __future__ import annotations

import secrets
import struct
import sys

import cloudpickle
import msgpack
import pytest
import trio

import ownership
from ownership.core.messages import Heartbeat
from ownership.runtime.auth import Channel, Hello, Verdict, dialer_handshake, load_token
from ownership.runtime.resend import Resume, control_frame
from ownership.runtime.cluster import connect
from ownership.runtime.framing import ByteReceiver
from ownership.runtime.tcp import open_tcp_transport, parse_address

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ownership.remote
def echo(x):
    return x


async def closed_by_peer(stream: trio.SocketStream) -> bool:
    with trio.fail_after(10):
        while True:
            try:
                if not await stream.receive_some():
                    return True
            except trio.BrokenResourceError:
                return True


async def authenticated(address: str, token: bytes) -> tuple[trio.SocketStream, Channel]:
    stream = await trio.open_tcp_stream(*parse_address(address))
    _, verdict, channel = await dialer_handshake(
        stream, ByteReceiver(stream), token, Hello(address="127.0.0.1:9", incarnation=secrets.token_bytes(4)), address
    )
    assert verdict is Verdict.ACCEPT
    resume = control_frame(Resume(first=1, received=0, nonce=1, your_nonce=0))  # as a member opens its direction
    await stream.send_all(resume + channel.outgoing.tag(resume))
    return stream, channel


def frame(envelope: object) -> bytes:
    env = msgpack.packb(envelope)
    body = struct.pack("!II", 0, len(env)) + env
    return struct.pack("!Q", len(body)) + body


# kind: (sent after a handshake, tagged as a member tags its frames, bytes)
BAD = {
    "garbage": (False, False, b"\x16\x03\x01\x02\x00" + bytes(200)),  # a TLS hello, say
    "oversize": (True, False, struct.pack("!Q", 2**62)),
    "unknown-type": (True, True, frame({"type": "FormatDisk", "fields": {}})),
    "malformed": (True, True, struct.pack("!Q", 9) + b"\xc1" * 9),
    "untagged": (True, False, frame({"type": "FormatDisk", "fields": {}}) + bytes(16)),
}


@pytest.mark.parametrize("kind", sorted(BAD))
async def test_bad_input_is_refused_and_cluster_keeps_working(running_cluster, kind):
    needs_auth, tag, payload = BAD[kind]
    token = load_token(running_cluster.token_file)
    for target in (running_cluster.head, *running_cluster.nodes):
        if needs_auth:
            stream, channel = await authenticated(target, token)
            if tag:
                payload = BAD[kind][2] + channel.outgoing.tag(BAD[kind][2])
        else:
            stream = await trio.open_tcp_stream(*parse_address(target))
        await stream.send_all(payload)
        assert await closed_by_peer(stream), target
        await stream.aclose()
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            assert await ownership.get([echo.remote(i) for i in range(4)]) == list(range(4))


async def test_wrong_token_cannot_send_to_the_cluster(running_cluster):
    target = running_cluster.nodes[0]
    refused = trio.Event()

    def lost(address: str) -> None:
        if address == target:
            refused.set()

    async with open_tcp_transport(secrets.token_bytes(32), on_peer_lost=lost) as intruder:
        # A well-formed protocol message, from a process without the token.
        intruder.send_nowait(target, Heartbeat(node=intruder.address, seq=1))
        with trio.fail_after(10):
            await refused.wait()
        assert intruder.statistics().messages_dropped == 1
    async with connect(target, token_file=running_cluster.token_file):
        with trio.fail_after(60):
            assert await echo.remote("still here") == "still here"
