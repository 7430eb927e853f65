"""One test per protocol scenario, on the in-memory cluster.

Each asserts the outcome and, where the scenario ends with every reference
dropped, that every ownership table, lease table and object store is empty.
Placement is pinned with custom resources (a node offers ``{"n2": 1}``, a
task asks ``resources={"n2": 0.01}``), and time moves only on explicit ticks,
so each scenario runs the same way every time.
"""

from __future__ import annotations

import gc

import pytest
import trio

import ownership
from ownership.core.config import CoreConfig
from ownership.runtime.refs import current_runtime
from ownership.testing import memory_cluster

BIG = 200 * 1024  # above the 100 KiB inline threshold: stored at the node


def cluster(**kwargs):
    kwargs.setdefault("tick_interval", None)
    kwargs.setdefault("config", CoreConfig(node_timeout_ticks=3))
    return memory_cluster(**kwargs)


async def assert_no_leaks(c) -> None:
    gc.collect()
    await c.quiesce()
    assert c.leaks() == {}


@ownership.remote
def where() -> str:
    return current_runtime().address


# ---------------------------------------------------------------- borrowing


@ownership.remote
class Holder:
    def __init__(self) -> None:
        self.refs = []

    def keep(self, ref) -> int:
        self.refs.append(ref)
        return len(self.refs)

    async def first(self):
        return await self.refs[0]

    def drop(self) -> int:
        self.refs.clear()
        return 0


@ownership.remote
async def pass_on(ref, holder) -> int:
    # This task borrows `ref` and lends it on to the actor: the actor is a
    # borrower of a borrower.
    return await holder.keep.remote(ownership.shared(ref))


async def test_borrower_of_borrower_keeps_value_until_it_drops() -> None:
    async with cluster() as c:
        x = ownership.put("precious")
        holder = Holder.remote()
        assert await pass_on.remote(ownership.shared(x), holder) == 1
        x_id = x.object_id
        del x
        gc.collect()
        await c.quiesce()
        driver = c.driver.core.refs
        entry = driver.get_ref(x_id)
        assert entry is not None and entry.borrowers, "the owner must still wait on the nested borrower"
        assert await holder.first.remote() == "precious"
        assert await holder.drop.remote() == 0
        gc.collect()
        await c.quiesce()
        assert driver.get_ref(x_id) is None
        del holder
        await assert_no_leaks(c)


@ownership.remote
def leaf():
    return [ownership.put("from the leaf")]


@ownership.remote
def middle():
    return ownership.get(leaf.remote())


@ownership.remote
async def top():
    return await middle.remote()


async def test_ref_returned_up_a_chain_of_nested_tasks() -> None:
    async with cluster(nodes=2, workers_per_node=3) as c:
        [ref] = await top.remote()
        owner = ref.owner
        assert owner != c.driver.address
        assert await ref == "from the leaf"
        # Once the intermediate workers dropped it, the owner waits on the
        # driver alone (the borrowers were handed up the chain).
        gc.collect()
        await c.quiesce()
        owner_rt = c.workers[owner]
        assert owner_rt.core.refs.get_ref(ref.object_id).borrowers == {c.driver.address: 1}
        del ref
        await assert_no_leaks(c)


# ---------------------------------------------------------------- actors


async def test_actor_holding_refs_then_killed_releases_them() -> None:
    async with cluster() as c:
        refs = [ownership.put(i) for i in range(3)]
        holder = Holder.remote()
        for r in refs:
            await holder.keep.remote(ownership.shared(r))
        ids = [r.object_id for r in refs]
        del refs, r
        gc.collect()
        await c.quiesce()
        assert all(c.driver.core.refs.get_ref(i) is not None for i in ids)
        actor_worker = c.driver.core.submitter.actors[holder.object_id].worker
        c.crash(actor_worker)
        await c.quiesce()
        with pytest.raises(ownership.ActorDiedError):
            await holder.first.remote()
        assert all(c.driver.core.refs.get_ref(i) is None for i in ids)
        del holder
        await assert_no_leaks(c)


@ownership.remote
class Keeper:
    def __init__(self, handle) -> None:
        self.handle = handle

    def forget(self) -> None:
        self.handle = None


@ownership.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n


async def test_actor_stopped_when_its_last_ref_is_dropped() -> None:
    async with cluster() as c:
        counter = Counter.remote()
        assert await counter.incr.remote() == 1
        worker = c.driver.core.submitter.actors[counter.object_id].worker
        # A borrowed handle keeps the actor alive after the driver drops its own.
        keeper = Keeper.remote(counter)
        assert await counter.incr.remote() == 2
        del counter
        gc.collect()
        await c.quiesce()
        assert c.network.alive(worker)
        await keeper.forget.remote()
        gc.collect()
        await c.quiesce()
        assert not c.network.alive(worker), "the actor's worker must be stopped"
        del keeper
        await assert_no_leaks(c)


# ---------------------------------------------------------------- recovery


@ownership.remote(resources={"big": 0.01})
def make_big(n: int) -> bytes:
    return bytes([n]) * BIG


@ownership.remote(resources={"big": 0.01})
def grow(b: bytes) -> bytes:
    return b + b[:16]


def big_nodes():
    return {"n2": {"big": 1.0}, "n3": {"big": 1.0}, "n4": {"big": 1.0}}


async def test_lost_large_object_reconstructed_with_its_lost_argument() -> None:
    async with cluster(nodes=4, node_resources=big_nodes()) as c:
        x = make_big.remote(7)
        y = grow.remote(x)
        assert len(await y) == BIG + 16
        # The policy spreads them: x's copy on n2, y's on n3.
        assert x.object_id in c.nodes["n2"].core.store.objects
        assert y.object_id in c.nodes["n3"].core.store.objects
        c.crash("n2")
        c.crash("n3")
        await c.detect_failures()
        assert c.driver.core.dead_nodes == {"n2", "n3"}
        # get(y) finds y lost; its task needs x, lost too: both are rebuilt on n4.
        assert await y == bytes([7]) * BIG + bytes([7]) * 16
        tasks = c.driver.core.submitter.tasks
        assert sorted(t.attempt for t in tasks.values()) == [2, 2]
        assert set(c.nodes["n4"].core.store.objects) == {x.object_id, y.object_id}
        del x, y
        await assert_no_leaks(c)


async def test_reconstruction_budget_exhausted_gives_object_lost() -> None:
    async with cluster(nodes=3, node_resources=big_nodes()) as c:
        y = make_big.options(max_retries=0).remote(3)
        assert len(await y) == BIG
        assert y.object_id in c.nodes["n2"].core.store.objects
        c.crash("n2")
        await c.detect_failures()
        with pytest.raises(ownership.ObjectLostError):
            await y
        del y
        await assert_no_leaks(c)


# ---------------------------------------------------------------- fate sharing


@ownership.remote
async def hang() -> None:
    await trio.sleep_forever()


@ownership.remote
async def own_pending():
    # The executing worker owns the pending object and hands it out.
    return [hang.remote()]


@ownership.remote
def consume(value) -> str:
    return f"consumed {value}"


async def test_owner_death_while_borrower_waits_on_get() -> None:
    async with cluster(nodes=2, workers_per_node=3) as c:
        [ref] = await own_pending.remote()
        owner = ref.owner
        got = []

        async def getter():
            with pytest.raises(ownership.OwnerDiedError):
                await ref
            got.append("OwnerDiedError")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(getter)
            await c.settle()
            assert got == []
            c.crash(owner)
        assert got == ["OwnerDiedError"]
        del ref
        await assert_no_leaks(c)


async def test_task_pending_on_dead_owners_object_fails() -> None:
    async with cluster(nodes=2, workers_per_node=3) as c:
        [ref] = await own_pending.remote()
        out = consume.remote(ref)
        await c.settle()
        c.crash(ref.owner)
        with pytest.raises(ownership.OwnerDiedError):
            await out
        del ref, out
        await assert_no_leaks(c)


# ---------------------------------------------------------------- scheduling


@ownership.remote
async def wait_then_where(gate) -> str:
    await gate
    return current_runtime().address


async def test_spillback_when_local_node_is_full() -> None:
    async with cluster(nodes=2, workers_per_node=1) as c:
        gate = hang.remote()  # fills n1's only CPU
        await c.settle()
        assert c.nodes["n1"].core.scheduler.available["CPU"] == 0.0
        spilled = where.remote()
        assert (await spilled).endswith("@n2")
        assert c.network.stats["sent"]["Spillback"] >= 1
        ownership.cancel(gate)
        with pytest.raises(ownership.TaskCancelledError):
            await gate
        del gate, spilled
        await assert_no_leaks(c)


#: events a task of the scenario below waits for: the memory cluster runs
#: every process in the test's own trio run, so a task can wait for the test
_GATES: dict[str, trio.Event] = {}


async def _held_until(name: str) -> str:
    await _GATES[name].wait()
    return current_runtime().address


# Decorated apart from its definition, so that the function is pickled by
# reference (the module's _held_until) and its worker sees this module's
# _GATES, not a copy shipped with the function.
held_until = ownership.remote(_held_until)


async def test_idle_lease_returned_at_once_while_another_keys_request_waits() -> None:
    """n1 has one CPU. A task of one scheduling key holds it while a task of
    another key asks n1 for a lease and waits there. When the first task
    ends, its key has nothing queued: the owner gives its idle lease back at
    once (Scheduling!OwnerReturnLease needs only that), and n1 grants the
    waiting request. No tick ever comes in this cluster, so an owner that
    kept the idle lease until its tick would leave the second task waiting."""
    _GATES["first"] = trio.Event()
    async with cluster(nodes=1, workers_per_node=2, cpus_per_node=1.0) as c:
        first = held_until.remote("first")
        await c.settle()
        assert c.nodes["n1"].core.scheduler.available["CPU"] == 0.0
        second = where.options(num_cpus=0.5).remote()  # another scheduling key
        await c.settle()
        sent = c.network.stats["sent"]
        assert sent["RequestLease"] == 2 and sent["LeaseGranted"] == 1  # the second waits at n1
        _GATES["first"].set()
        with trio.fail_after(5):
            assert (await first).endswith("@n1")
            assert (await second).endswith("@n1")
        assert sent["ReturnLease"] == 1 and sent["LeaseGranted"] == 2
        del first, second
        await assert_no_leaks(c)


@ownership.remote
def square(x: int) -> int:
    return x * x


async def test_lease_reuse_many_tasks_one_lease_request() -> None:
    async with cluster(nodes=2, workers_per_node=2) as c:
        for i in range(20):
            assert await square.remote(i) == i * i
        assert c.network.stats["sent"]["RequestLease"] == 1
        assert c.network.stats["sent"]["PushTask"] == 20
        await assert_no_leaks(c)
        assert c.network.stats["sent"]["ReturnLease"] == 1


# ---------------------------------------------------------------- failure detection


async def test_worker_whose_connection_to_its_node_closes_is_not_declared_dead() -> None:
    """A closed connection between a node and a worker that lives on is not
    its death (Scheduling!SchedulerDetectWorkerDeath needs the worker dead):
    the node probes it, it answers, and it runs its task to the end, once.
    A chaos run's event log (a connection cut by a network fault) showed
    the node declaring such a worker dead; Scheduling rejected the log."""
    _GATES["cut"] = trio.Event()
    async with cluster() as c:
        ref = held_until.remote("cut")
        await c.quiesce()  # the task waits at its gate
        node = c.nodes["n1"].core
        [worker] = [t["location"] for t in c.driver.core.submitter.snapshot()["tasks"].values()]
        c.network._disconnect("n1", worker, lose=False)
        await c.quiesce()
        assert worker not in node.dead_workers and worker in node.scheduler.workers
        assert worker not in c.driver.core.dead_workers
        _GATES["cut"].set()
        with trio.fail_after(10):
            assert await ref == worker
        c.network._disconnect("n1", worker, lose=False)  # watched again after its probe
        await c.quiesce()
        assert worker not in node.dead_workers and c.network.alive(worker)
        del ref
        await assert_no_leaks(c)


async def test_driver_whose_connection_to_its_node_closes_stays_its_owner() -> None:
    """The same for the driver, which its node registers as a worker: a
    chaos run's driver was declared dead by its node after a network fault
    cut their connection, and every get it made after that hung."""
    async with cluster() as c:
        driver = c.driver.core.address
        node = c.nodes["n1"].core
        c.network._disconnect("n1", driver, lose=False)
        await c.quiesce()
        assert driver not in node.dead_workers and driver in node.scheduler.workers
        with trio.fail_after(10):
            assert await where.remote() in node.scheduler.workers
        await assert_no_leaks(c)
