"""A worker that stops while user code waits in it: the code gets an error, the worker stops cleanly."""

from __future__ import annotations

import pytest
import trio

import ownership
from ownership.testing import memory_cluster


@ownership.remote
def never() -> int:
    return 1


@ownership.remote
def get_inner() -> int:
    # Nobody has a GPU: the nested task is never leased, the get never returns.
    return ownership.get(never.options(resources={"GPU": 1}).remote())


async def test_worker_whose_node_dies_while_a_task_thread_waits_in_get_stops_cleanly() -> None:
    async with memory_cluster(nodes=2, workers_per_node=1, node_resources={"n2": {"X": 1}}, tick_interval=None) as c:
        outer = get_inner.options(resources={"X": 1}, max_retries=0).remote()
        await c.settle()
        [waiting] = [rt for rt in c.workers.values() if rt.core.executor.running]
        assert waiting.core.node == "n2" and waiting._blocked, "its task thread waits in get()"
        # The node dies: its worker stops while the thread still waits (the
        # get's loop side is cancelled), and the worker's run must end as any
        # other, not with an error in trio's own machinery.
        c.crash("n2")
        await c.settle()
        assert waiting.closed
        await c.detect_failures()
        with trio.fail_after(10), pytest.raises(ownership.WorkerCrashedError):
            await outer


@ownership.remote
class Blocked:
    def __init__(self) -> None:
        ownership.get(never.options(resources={"GPU": 1}).remote())

    def ping(self) -> int:
        return 1


async def test_actor_whose_worker_dies_while_it_is_created_fails_calls_with_actor_died() -> None:
    async with memory_cluster(nodes=1, workers_per_node=2, tick_interval=None) as c:
        actor = Blocked.remote()
        call = actor.ping.remote()
        await c.settle()
        [creating] = [a for a, rt in c.workers.items() if any(r.spec.kind == "actor_create" for r in rt.core.executor.running.values())]
        c.crash(creating)
        await c.settle()
        with trio.fail_after(10):
            with pytest.raises(ownership.ActorDiedError, match="creating actor"):
                await call
            with pytest.raises(ownership.ActorDiedError):
                await actor.ping.remote()


@ownership.remote
class Holder:
    def ping(self) -> int:
        return 1


async def test_task_whose_lease_request_waited_at_a_dead_node_says_so() -> None:
    async with memory_cluster(nodes=2, workers_per_node=1, node_resources={"n2": {"X": 1}}, tick_interval=None) as c:
        holder = Holder.options(resources={"X": 1}).remote()  # an actor keeps its lease: n2's X is taken
        with trio.fail_after(10):
            assert await holder.ping.remote() == 1
        waiting = never.options(resources={"X": 1}, max_retries=0).remote()
        await c.settle()
        assert len(c.nodes["n2"].core.scheduler.queue) == 1, "its lease request waits at n2"
        c.crash("n2")
        await c.detect_failures()
        with trio.fail_after(10), pytest.raises(ownership.WorkerCrashedError) as raised:
            await waiting
        assert str(raised.value).endswith("never ran: its lease request waited at node n2, which died, and no retries are left")
