"""The trio shells on the in-memory network: manual stepping, crashes, snapshots."""

from __future__ import annotations

import gc

import pytest
import trio

import ownership
from ownership.core.config import CoreConfig
from ownership.core.messages import CancelTask, PushTask, RequestLease
from ownership.testing import memory_cluster


@ownership.remote
def double(x: int) -> int:
    return 2 * x


@ownership.remote
async def forever() -> None:
    await trio.sleep_forever()


async def test_manual_cluster_moves_only_when_messages_are_delivered() -> None:
    async with memory_cluster(auto=False, tick_interval=None) as c:
        ref = double.remote(21)
        await c.network.settle()
        [(mid, env)] = c.network.in_flight()
        assert isinstance(env.msg, RequestLease) and env.dst == "n1"
        c.network.deliver(mid)
        await c.network.settle()
        assert [type(e.msg) for _, e in c.network.in_flight()] == [ownership.core.messages.LeaseGranted]
        await c.network.run_until_quiet()
        assert c.network.stats["delivered"]["PushTask"] == 1
        with trio.fail_after(5):
            assert await ref == 42


async def test_seeded_manual_runs_deliver_in_the_same_order() -> None:
    orders = []
    for _ in range(2):
        async with memory_cluster(auto=False, tick_interval=None, seed=3) as c:
            seen: list[str] = []
            c.network.observers.append(lambda e: seen.append(f"{e.kind}:{type(e.envelope.msg).__name__}") if e.envelope else None)
            refs = [double.remote(i) for i in range(4)]
            await c.network.run_until_quiet()
            assert await ownership.get(refs) == [0, 2, 4, 6]
            orders.append(seen)
    assert orders[0] == orders[1]


async def test_worker_death_reaches_every_worker_through_the_head() -> None:
    async with memory_cluster(nodes=2, workers_per_node=2, tick_interval=None) as c:
        c.crash("w1@n2")
        await c.settle()
        for address, rt in c.runtimes().items():
            if hasattr(rt.core, "dead_workers") and address != "head":
                assert "w1@n2" in rt.core.dead_workers, address
        # The node keeps its pool size.
        assert len(c.alive_workers("n2")) == 2


async def test_node_death_is_declared_after_missed_heartbeats() -> None:
    # The backstop alone: no connection watch, no probe.
    config = CoreConfig(node_timeout_ticks=3, suspect_on_connection_loss=False)
    async with memory_cluster(nodes=2, tick_interval=None, config=config) as c:
        c.crash("n2")
        await c.advance(3)
        assert c.head.core.nodes["n2"].alive, "not before the timeout"
        await c.advance(1)
        assert not c.head.core.nodes["n2"].alive
        assert "n2" in c.driver.core.dead_nodes
        assert {"w1@n2", "w2@n2"} <= c.driver.core.dead_workers


async def test_node_death_is_declared_at_once_when_its_connection_drops() -> None:
    config = CoreConfig(node_timeout_ticks=1000)
    async with memory_cluster(nodes=2, tick_interval=None, config=config) as c:
        c.crash("n2")
        await c.settle()  # no tick: the lost connection and a failed probe
        assert not c.head.core.nodes["n2"].alive
        assert {"w1@n2", "w2@n2"} <= c.driver.core.dead_workers


async def test_live_node_whose_connection_drops_stays_a_member() -> None:
    async with memory_cluster(nodes=2, tick_interval=None) as c:
        c.network._disconnect("head", "n2")
        await c.settle()
        assert c.head.core.nodes["n2"].alive and not c.head.core.nodes["n2"].suspected
        assert c.network.alive("n2") and c.head.core.fenced == 0
        assert "n2" not in c.driver.core.dead_nodes


@ownership.remote(max_retries=2)
def where(x: int) -> tuple[int, str]:
    from ownership.runtime.refs import current_runtime

    return 3 * x, str(current_runtime().address)


async def test_node_cut_off_from_head_is_declared_dead_fenced_and_its_tasks_retried() -> None:
    config = CoreConfig(node_timeout_ticks=1000)
    shapes = {"n2": {"far": 1.0}, "n3": {"far": 1.0}}
    async with memory_cluster(
        auto=False, nodes=3, workers_per_node=1, tick_interval=None, config=config, node_resources=shapes
    ) as c:
        # Hold the task at its worker on n2 or n3: pushed, not yet run.
        ref = where.options(resources={"far": 0.5}).remote(14)
        await c.network.settle()
        pushed = None
        while pushed is None:
            flight = c.network.in_flight()
            push = next(((m, e) for m, e in flight if isinstance(e.msg, PushTask)), None)
            if push is not None:
                pushed = push
                break
            c.network.deliver(flight[0][0])
            await c.network.settle()
        mid, env = pushed
        victim_node = c.workers[env.dst].core.node
        c.network.partition("head", victim_node)  # false suspicion: it lives on
        await c.network.settle()
        assert not c.head.core.nodes[victim_node].alive
        assert c.network.alive(victim_node), "cut off, not crashed"
        c.network.heal("head", victim_node)
        c.tick(victim_node)  # its next heartbeat is answered with its death
        await c.network.run_until_quiet()
        assert not c.network.alive(victim_node) and not c.network.alive(env.dst)
        assert c.head.core.fenced >= 1
        with trio.fail_after(5):
            value, ran_on = await ref
        assert value == 42 and not ran_on.endswith("@" + victim_node)


async def test_driver_crash_frees_what_it_owned_everywhere() -> None:
    async with memory_cluster(nodes=2, tick_interval=None) as c:
        big = ownership.put(b"b" * (200 * 1024))
        await c.settle()
        assert big.object_id in c.nodes["n1"].core.store.objects
        c.crash(c.driver.address)
        await c.settle()
        assert c.nodes["n1"].core.store.objects == {}
        assert c.leaks() == {}
        del big
        gc.collect()


async def test_snapshot_shows_every_process_and_what_is_in_flight() -> None:
    async with memory_cluster(nodes=1, workers_per_node=1, auto=False, tick_interval=None) as c:
        double.remote(1)
        await c.network.settle()
        snap = c.snapshot()
        assert set(snap["processes"]) == {"head", "n1", "w1@n1", "driver@n1"}
        assert [m[3] for m in snap["in_flight"]] == ["RequestLease"]
        await c.network.run_until_quiet()
        assert not c.snapshot()["in_flight"]
        assert c.network.stats["sent"][PushTask.__name__] == 1


@ownership.remote
def sleepy(t: float) -> float:
    import time

    time.sleep(t)  # user code that takes real time in its thread
    return t


async def test_non_deterministic_mode_overlaps_sync_tasks() -> None:
    async with memory_cluster(nodes=1, workers_per_node=2, deterministic=False) as c:
        start = trio.current_time()
        assert await ownership.get([sleepy.remote(0.5), sleepy.remote(0.5)]) == [0.5, 0.5]
        # One after the other they take 1 s at least.
        assert trio.current_time() - start < 0.95, "the two tasks did not overlap"
        assert c.network.busy_threads == 0


async def test_a_cancel_handled_right_after_its_push_stops_an_async_task() -> None:
    """A push and its cancel handled back to back, before the async task's
    trio task has started (as the TCP reader hands over the frames of one
    read): the task still stops and answers, and its lease goes back. The
    cancel used to find no cancel scope yet and be lost: the task ran
    forever, its lease held (the owner-recovery TCP test's gate, re-pushed
    after its worker died and cancelled at once, left at "nothing left")."""
    async with memory_cluster(nodes=1, workers_per_node=1, auto=False, tick_interval=None) as c:
        net = c.network
        held = lambda env: isinstance(env.msg, (PushTask, CancelTask))  # noqa: E731
        with trio.fail_after(10):
            ref = forever.remote()
            await net.deliver_except(held)
            ownership.cancel(ref)
            await net.deliver_except(held)
            envs = [net.drop(mid) for mid, env in net.in_flight() if held(env)]
            assert [type(e.msg) for e in envs] == [PushTask, CancelTask]
            [worker] = {e.dst for e in envs}
            for env in envs:
                c.workers[worker]._deliver_direct(env)
            await net.run_until_quiet()
            assert c.workers[worker].core.executor.running == {}
            assert [t.state for t in c.driver.core.submitter.tasks.values()] == ["done"]
            with pytest.raises(ownership.TaskCancelledError):
                await ref
            del ref
            gc.collect()
            await c.quiesce()
            assert c.leaks() == {}
