"""Owner recovery (spec/OwnerRecovery.tla) on the in-memory cluster.

A task owns recoverable futures and hands them to holders (two tasks that
block, an actor); its worker crashes. The driver takes the objects over,
every holder's get returns the value (a copy re-pinned in a store, a put
restored from the head's log, a small result rebuilt from its lineage),
a default future of the same owner fails with OwnerDiedError, and nothing
leaks once the references are dropped.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import trio

import ownership
from ownership.core.config import CoreConfig
from ownership.runtime.refs import current_runtime
from ownership.testing import memory_cluster

BIG = 2**15  # float64s: 256 KiB, above the inline threshold (stored at a node)


def cluster(**kwargs):
    kwargs.setdefault("tick_interval", None)
    kwargs.setdefault("config", CoreConfig(node_timeout_ticks=3))
    return memory_cluster(**kwargs)


@ownership.remote
def double(x: int) -> int:
    return 2 * x


@ownership.remote
def ones() -> np.ndarray:
    return np.ones(BIG)


@ownership.remote
def owner_task():
    """Owns three recoverable futures and a default one; returns them nested
    (so the caller borrows them) with the address of its worker."""
    small = double.options(recoverable=True).remote(21)
    big = ones.options(recoverable=True).remote()
    put = ownership.put("kept at the head", recoverable=True)
    default = double.remote(5)
    ownership.get([small, big, default])  # made, before the owner dies
    return current_runtime().address, [small, big, put], [default]


@ownership.remote
async def hang() -> None:
    await trio.sleep_forever()


@ownership.remote
def hold_then_get(refs, gate):
    """Holds ``refs`` while blocked on ``gate`` (cancelled to open it), then gets them."""
    try:
        ownership.get(gate[0])
    except ownership.TaskCancelledError:
        pass
    small, big, put = ownership.get(refs)
    return small, float(big.sum()), put


@ownership.remote
class Keeper:
    def __init__(self) -> None:
        self.refs = None

    def keep(self, refs) -> int:
        self.refs = refs
        return len(refs)

    def values(self):
        small, big, put = ownership.get(self.refs)
        return small, float(big.sum()), put

    def drop(self) -> None:
        self.refs = None


EXPECTED = (42, float(BIG), "kept at the head")


async def test_recoverable_futures_survive_their_owners_crash_memory() -> None:
    async with cluster(nodes=2, workers_per_node=4) as c:
        with trio.fail_after(60):
            owner, refs, [default] = await owner_task.remote()
            assert owner != c.driver.address
            gate = hang.remote()
            holders = [hold_then_get.remote(refs, [gate]) for _ in range(2)]
            keeper = Keeper.remote()
            assert await keeper.keep.remote(refs) == 3
            await c.settle()
            c.crash(owner)
            await c.settle()
            ownership.cancel(gate)
            assert [await h for h in holders] == [EXPECTED, EXPECTED]
            assert await keeper.values.remote() == EXPECTED
            with pytest.raises(ownership.OwnerDiedError):
                await default
            head = c.head.core
            assert {oid: (log["owner"], log["epoch"]) for oid, log in head.snapshot()["recovery_logs"].items()} == {
                r.object_id: (c.driver.address, 1) for r in refs
            }
            assert c.driver.core.takeover.completed == 3
            # The large result's copy outlived its owner: pinned again for the driver.
            [store] = [n.core.store for n in c.nodes.values() if refs[1].object_id in n.core.store.objects]
            kept = store.objects[refs[1].object_id]
            assert (kept.owner, kept.epoch) == (c.driver.address, 1)
            await keeper.drop.remote()
            del refs, holders, default, gate
            gc.collect()
            await c.quiesce()
            del keeper
            gc.collect()
            await c.quiesce()
            assert c.leaks() == {}


@ownership.remote
class Collector:
    """Keeps every list of refs it is given; counts the turns of a parent."""

    def __init__(self) -> None:
        self.kept = []
        self.turns = 0

    def turn(self) -> int:
        self.turns += 1
        return self.turns

    def keep(self, refs) -> int:
        self.kept.append(refs)
        return len(self.kept)

    def ids(self) -> list[str]:
        return [r.object_id for refs in self.kept for r in refs]

    def values(self) -> list:
        return [ownership.get(r) for refs in self.kept for r in refs]

    def drop(self) -> None:
        self.kept = []


def _until_cancelled(gate) -> None:
    try:
        ownership.get(gate[0])
    except ownership.TaskCancelledError:
        pass


@ownership.remote
def parent(collector, gate, again=None):
    """Makes a recoverable x, hands it to ``collector``, then blocks on ``gate``.
    With ``again``, a re-execution first waits on it, so that a test can free
    the object taken over before it is made anew."""
    if again is not None and ownership.get(collector.turn.remote()) > 1:
        _until_cancelled(again)
    x = double.options(recoverable=True).remote(21)
    ownership.get(collector.keep.remote([x]))
    _until_cancelled(gate)
    return current_runtime().address, [x]


async def test_reexecuted_parent_adopts_the_recovered_object_instead_of_making_a_second() -> None:
    async with cluster(nodes=2, workers_per_node=4) as c:
        with trio.fail_after(60):
            collector = Collector.remote()
            gate = hang.remote()
            p = parent.remote(collector, [gate])
            await c.settle()
            [first] = [t.location for t in c.driver.core.submitter.tasks.values() if t.spec.name == "parent"]
            c.crash(first)
            await c.settle()
            ownership.cancel(gate)
            second, [x] = await p
            assert second != first
            ids = await collector.ids.remote()
            # The re-execution made the same id, and borrowed it from the driver.
            assert ids == [x.object_id, x.object_id]
            owners = [a for a, rt in c.runtimes().items() if hasattr(rt, "core") and getattr(rt.core, "refs", None) and (e := rt.core.refs.table.get(x.object_id)) is not None and e.owned]
            assert owners == [c.driver.address]
            assert await x == 42
            assert await collector.values.remote() == [42, 42]
            await c.quiesce()
            assert c.head.core.recovery_logs[x.object_id].adopters == set()  # the re-execution let go
            await collector.drop.remote()
            del x, p, gate, collector
            gc.collect()
            await c.quiesce()
            assert c.leaks() == {}


async def test_object_made_anew_after_the_taken_over_one_was_freed_is_borrowed_from_its_maker() -> None:
    """Every process heard that x moved to the driver; the driver freed it;
    the parent's re-execution made x again (same id, a new epoch) and handed
    it out. A reference naming the live maker is not redirected to the
    driver, which no longer has x (it answered "freed by its owner")."""
    async with cluster(nodes=2, workers_per_node=4) as c:
        with trio.fail_after(60):
            collector = Collector.remote()
            gate, again = hang.remote(), hang.remote()
            p = parent.remote(collector, [gate], [again])
            await c.settle()
            [first] = [t.location for t in c.driver.core.submitter.tasks.values() if t.spec.name == "parent"]
            c.crash(first)
            await c.settle()
            await collector.drop.remote()
            gc.collect()
            await c.quiesce()
            assert c.head.core.recovery_logs == {}  # the driver freed what it took over
            ownership.cancel(again)
            ownership.cancel(gate)
            second, [x] = await p
            assert second != first
            log = c.head.core.recovery_logs[x.object_id]
            assert (log.owner, log.epoch) == (second, 2)
            assert await x == 42
            assert await collector.values.remote() == [42]
            await collector.drop.remote()
            del x, p, gate, again, collector
            gc.collect()
            await c.quiesce()
            assert c.leaks() == {}


@ownership.remote
def make_small():
    """Owns one recoverable result, made before it returns."""
    small = double.options(recoverable=True).remote(21)
    ownership.get(small)
    return current_runtime().address, [small]


async def test_new_owner_rebuilds_on_the_worker_that_ran_the_task_for_the_dead_owner() -> None:
    """The new owner's first run of a taken-over task is a new attempt, not
    a duplicate of the dead owner's: pushed to the very worker that ran the
    task for the dead owner (here the only idle worker it can get), it runs,
    and a get of the object returns (it used to wait forever: the worker
    took the push for a duplicate of the attempt it had finished)."""
    config = CoreConfig(node_timeout_ticks=3, max_workers_per_node=2)
    async with cluster(nodes=1, workers_per_node=2, config=config) as c:
        with trio.fail_after(30):
            owner, [small] = await make_small.remote()
            await c.quiesce()  # the owner gave its leases back: the maker is idle
            task_id = small.object_id.removesuffix(".r")
            [maker] = [a for a, rt in c.workers.items() if c.network.alive(a) and (task_id, owner, 0, 1) in rt.core.executor._finished_set]
            assert maker != owner
            c.crash(owner)
            await c.settle()
            assert c.driver.core.takeover.completed == 1
            assert c.head.core.recovery_logs[small.object_id].attempts == 1
            assert await small == 42
            # The maker ran it again, as the driver's attempt at the new
            # epoch, numbered on from the dead owner's.
            assert (task_id, c.driver.address, 1, 2) in c.workers[maker].core.executor._finished_set
            del small
            gc.collect()
            await c.quiesce()
            assert c.leaks() == {}


@ownership.remote(resources={"parent": 1}, max_retries=1)
def make_drop_then_wait(gate):
    """Makes a recoverable result on the maker node, gets it and lets it go
    (its owner frees it: nothing was taken over), then waits on ``gate``."""
    x = double.options(recoverable=True, resources={"maker": 1}).remote(21)
    value = ownership.get(x)
    del x
    try:
        ownership.get(gate[0])
    except ownership.TaskCancelledError:
        pass
    return current_runtime().address, value


async def test_reexecuted_parent_makes_a_freed_object_again_on_the_worker_that_made_it() -> None:
    """The parent made x, got it and freed it; its node died; its
    re-execution made x again: the same id, and (nothing having been taken
    over) the same epoch and attempt. The maker node's only worker, which
    ran the first, runs the second: a push is another when its owner is
    (it used to take it for a duplicate of the one it had finished, and
    the re-execution's get waited forever)."""
    config = CoreConfig(node_timeout_ticks=3, max_workers_per_node=1)
    node_resources = {"n0": {"parent": 1.0}, "n1": {"maker": 1.0}, "n2": {"parent": 1.0}, "n3": {"gate": 1.0}}
    async with cluster(nodes=4, workers_per_node=1, node_resources=node_resources, config=config) as c:
        with trio.fail_after(30):
            gate = hang.options(resources={"gate": 1.0}).remote()
            p = make_drop_then_wait.remote([gate])
            await c.quiesce()
            [first] = [t.location for t in c.driver.core.submitter.tasks.values() if t.spec.name == "make_drop_then_wait"]
            [maker] = [rt for rt in c.workers.values() if rt.core.executor._finished_set]
            [(task_id, owner, epoch, attempt)] = maker.core.executor._finished_set
            assert (owner, epoch, attempt) == (first, 0, 1)
            assert c.head.core.recovery_logs == {}  # freed by its owner
            c.crash(first)
            await c.settle()
            ownership.cancel(gate)
            second, value = await p
            assert second != first
            assert value == 42
            assert (task_id, second, 0, 1) in maker.core.executor._finished_set
            del p, gate
            gc.collect()
            await c.quiesce()
            assert c.leaks() == {}


async def test_task_pushed_before_its_worker_registered_still_logs_its_recoverable_objects() -> None:
    """The node tells a new worker it is registered and grants it to an owner
    at once; the owner's push comes from another process and can arrive
    first. A task run then does not know the head yet, so its recoverable
    objects would be made as default ones (never logged): when its worker
    died they would fate-share, and no take-over would start. A worker runs
    a push only once it is registered (OwnerRecovery!WorkerStart: w \\in up);
    one that came first waits for it."""
    from ownership.core.messages import WorkerRegistered

    async with cluster(nodes=1, workers_per_node=1, cpus_per_node=3, auto=False) as c:
        net = c.network
        with trio.fail_after(30):
            gate = hang.remote()  # busy: the next task needs a new worker, w2
            await net.run_until_quiet()
            made = make_small.remote()
            await net.deliver_except(lambda env: isinstance(env.msg, WorkerRegistered) and env.dst == "w2@n1")
            await net.run_until_quiet()
            owner, [small] = await made
            assert owner == "w2@n1"
            assert small.object_id in c.head.core.recovery_logs
            ownership.cancel(gate)
