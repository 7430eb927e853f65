"""A core's exception never ends its service: the message's connection closes, the service goes on."""

from __future__ import annotations

import logging

import pytest
import trio

import ownership
from ownership.core.events import PeerLost, Received
from ownership.core.messages import FreeObject, Heartbeat
from ownership.runtime.tcp import open_tcp_transport
from ownership.testing import memory_cluster


@ownership.remote
def double(x: int) -> int:
    return 2 * x


class Boom(Exception):
    pass


async def test_core_exception_closes_only_that_connection_and_is_logged_once(monkeypatch, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="ownership.shell")
    async with memory_cluster(nodes=1, workers_per_node=1, tick_interval=None) as c:
        await c.settle()
        node = c.nodes["n1"]
        handle = node.core.handle

        def flaky(event):
            if isinstance(event, Received) and isinstance(event.msg, FreeObject) and event.msg.object_id.startswith("boom"):
                raise Boom("line one\nline two")  # a peer's bytes may end up in the text
            return handle(event)

        monkeypatch.setattr(node.core, "handle", flaky)
        peer = c.network.endpoint("peer")
        peer.watch("n1")
        peer.send_nowait("n1", FreeObject(object_id="boom-1"))
        await c.settle()
        assert node.handler_errors == 1
        assert c.network.stats["rejected"]["by the receiver"] == 1
        # The connection closed, as over TCP: the peer watching the node hears
        # it, the node lives on, and the connection is dialed again.
        with trio.fail_after(5):
            lost = await peer.receive()
        assert lost.msg == PeerLost("n1") and c.network.alive("n1")
        peer.send_nowait("n1", FreeObject(object_id="boom-2"))
        await c.settle()
        assert node.handler_errors == 2
        lines = [r.getMessage() for r in caplog.records if r.name == "ownership.shell"]
        assert len(lines) == 2
        assert "line one\\nline two" in lines[0] and "Traceback" not in lines[0]
        assert lines[0].count("\n") > 1, "the first failure of its kind comes with the code lines"
        assert lines[1].count("\n") == 0, "later ones take one line"
        with trio.fail_after(10):
            assert await double.remote(21) == 42


async def test_core_exception_on_a_tick_is_logged_and_the_ticks_go_on(monkeypatch, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="ownership.shell")
    async with memory_cluster(nodes=1, workers_per_node=1, tick_interval=None) as c:
        await c.settle()
        head = c.head
        handle = head.core.handle
        failing = [True]

        def flaky(event):
            if failing[0]:
                failing[0] = False
                raise Boom("tick")
            return handle(event)

        monkeypatch.setattr(head.core, "handle", flaky)
        ticks = head.core.ticks
        await c.advance(2)
        assert head.handler_errors == 1 and head.core.ticks == ticks + 1
        assert not head.closed


async def test_reject_closes_the_tcp_connection_and_counts_it(token) -> None:
    lost: list[str] = []
    async with open_tcp_transport(token) as a, open_tcp_transport(token, on_peer_lost=lost.append) as b:
        b.send_nowait(a.address, Heartbeat(node=b.address, seq=1))
        with trio.fail_after(10):
            env = await a.receive()
            a.reject(env.src, "cannot handle it")
            # Only that connection: it is dialed again at once (both live),
            # b is heard on the new one, and the rejected message, resent
            # since it was never acknowledged, is not delivered twice.
            b.send_nowait(a.address, Heartbeat(node=b.address, seq=2))
            assert (await a.receive()).msg.seq == 2
        sa, sb = a.statistics(), b.statistics()
        assert sa.frames_rejected == 1
        assert sa.connections_dialed + sb.connections_dialed == 2 and lost == []


@pytest.fixture
def token() -> bytes:
    import secrets

    return secrets.token_bytes(32)
