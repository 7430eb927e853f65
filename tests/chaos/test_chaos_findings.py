"""Bugs the chaos run found, each reduced to a small reproducer.

Each stays as its bug's regression test (a bug that stands is a strict
xfail, with the reason, until its fix lands).
"""

from __future__ import annotations

import trio

import ownership
from ownership.core.events import Tick
from ownership.core.messages import Heartbeat, LeaseGranted, RegisterWorker, RequestLease, WorkerBlocked, WorkerRegistered, WorkerUnblocked
from ownership.core.node import NodeCore
from ownership.runtime.framing import FRAME_HEADER
from ownership.runtime.serialization import decode_message, encode_message


def _round_trip(msg: object) -> object:
    raw = b"".join(bytes(c) for c in encode_message(msg).chunks)
    return decode_message(bytearray(raw[FRAME_HEADER.size :]))


def test_heartbeat_of_an_oversubscribed_node_is_accepted_by_the_head():
    n = NodeCore("127.0.0.1:1#00000001", "127.0.0.1:2#00000002", (("CPU", 1.0),), pool_size=2)
    n.start()
    workers = ["127.0.0.1:11#0000000b", "127.0.0.1:12#0000000c"]
    for w in workers:
        n.handle(_received(w, RegisterWorker(worker=w, node=n.address)))
        n.handle(_received(n.head, WorkerRegistered(worker=w, node=n.address)))
    owner = "127.0.0.1:3#00000003"
    fx = n.handle(_received(owner, RequestLease(request_id="q1", owner=owner, task_id="t1", resources=(("CPU", 1.0),))))
    grant = next(e.msg for e in fx if isinstance(getattr(e, "msg", None), LeaseGranted))
    n.handle(_received(owner, RequestLease(request_id="q2", owner=owner, task_id="t2", resources=(("CPU", 1.0),))))
    n.handle(_received(grant.worker, WorkerBlocked(worker=grant.worker, lease_id=grant.lease_id)))  # lends its CPU: q2 runs
    n.handle(_received(grant.worker, WorkerUnblocked(worker=grant.worker, lease_id=grant.lease_id)))  # takes it back
    [heartbeat] = [e.msg for e in n.handle(Tick()) if isinstance(getattr(e, "msg", None), Heartbeat)]
    assert dict(heartbeat.available)["CPU"] == -1.0
    assert _round_trip(heartbeat) == heartbeat


def _received(src: str, msg: object):
    from ownership.core.events import Received

    return Received(src, msg)


@ownership.remote
def double(x: int) -> int:
    return 2 * x


async def test_replies_on_connections_that_reset_are_not_lost():
    """The driver's connections to its workers reset again and again while replies travel on
    them (chaos --net-faults): what a reset connection held is sent again on the next, so every
    get returns its value and nothing is declared dead (the processes all live)."""
    async with ownership.cluster(nodes=1, num_cpus=2) as local:
        tcp = local.driver.transport.inner
        refs = []
        cuts = 0
        with trio.fail_after(60):
            for round_ in range(30):
                batch = [double.remote(i) for i in range(10 * round_, 10 * round_ + 10)]
                refs += batch
                # A reply has come, so a worker's connection is up (on a loaded
                # machine the workers may not have started at the first rounds):
                # cut it while the rest of the round travels on it.
                await ownership.get(batch[0])
                workers = [p for p in tcp.connected_peers() if p not in {local.head, *local.nodes}]
                cuts += bool(workers) and tcp.cut(workers[round_ % len(workers)])
            values = await ownership.get(refs)
        assert values == [2 * i for i in range(300)]
        assert cuts >= 5
        stats = tcp.statistics()
        assert stats.peers_lost == 0 and stats.messages_dropped == 0
        assert not local.driver.core.dead_workers
