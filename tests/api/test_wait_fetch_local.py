"""``ownership.wait(..., fetch_local=False)``: available somewhere, nothing pulled (as in Ray)."""

from __future__ import annotations

import gc

import pytest
import trio

import ownership
from ownership.testing import memory_cluster

BIG = 300 * 1024  # above the inline threshold: the value lives in its maker's node store
HOLDER = {"n2": {"holder": 1}}
#: How long the slow maker runs, in trio time: these tests run on pytest-trio's
#: autojump clock, so it passes as soon as everything else is blocked.
SLOW = 5.0


@ownership.remote(resources={"holder": 1})
async def make_big(n: int) -> bytes:
    # async: on the worker's loop, not in a thread the autojump clock cannot see
    return b"v" * n


@ownership.remote(resources={"holder": 1})
async def make_big_slowly(n: int) -> bytes:
    await trio.sleep(SLOW)
    return b"v" * n


@ownership.remote
def fail() -> None:
    raise ValueError("no value")


@ownership.remote
def ready_in_borrower(refs: list) -> int:
    # A sync task (blocking wait): it borrows the refs and asks their owner.
    ready, _ = ownership.wait(refs, num_returns=len(refs), timeout=10 * SLOW, fetch_local=False)
    return len(ready)


@ownership.remote
async def ready_in_async_borrower(refs: list) -> int:
    ready, _ = await ownership.wait(refs, num_returns=len(refs), timeout=10 * SLOW, fetch_local=False)
    return len(ready)


def _pulls(c, node: str) -> int:
    return c.nodes[node].core.store.pulls_served


async def test_wait_fetch_local_false_is_ready_once_stored_and_pulls_nothing() -> None:
    async with memory_cluster(nodes=2, node_resources=HOLDER) as c:
        ref = make_big.remote(BIG)
        ready, not_ready = await ownership.wait([ref], timeout=10, fetch_local=False)
        assert ready == [ref] and not_ready == []
        await c.settle()
        entry = c.driver.core.refs.table[ref.object_id]
        assert entry.locations == {"n2"} and entry.value is None
        assert _pulls(c, "n2") == 0 and ref.object_id not in c.nodes["n1"].core.store.objects
        assert await ref == b"v" * BIG
        assert _pulls(c, "n2") == 1  # the get pulled; the wait did not


async def test_wait_fetch_local_true_pulls_a_copy() -> None:
    async with memory_cluster(nodes=2, node_resources=HOLDER) as c:
        ref = make_big.remote(BIG)
        ready, _ = await ownership.wait([ref], timeout=10)
        assert ready == [ref]
        assert _pulls(c, "n2") == 1


async def test_wait_fetch_local_false_pending_object_is_not_ready_until_made(autojump_clock) -> None:
    async with memory_cluster(nodes=2, node_resources=HOLDER) as c:
        ref = make_big_slowly.remote(BIG)
        ready, not_ready = await ownership.wait([ref], timeout=SLOW / 2, fetch_local=False)
        assert ready == [] and not_ready == [ref]
        assert not any(r.waiters for r in c.driver.core.refs.table.values())  # the timed-out wait left nothing
        ready, _ = await ownership.wait([ref], timeout=10 * SLOW, fetch_local=False)
        assert ready == [ref] and _pulls(c, "n2") == 0
        del ref, ready, not_ready
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}


async def test_wait_fetch_local_false_num_returns_counts_ready_refs(autojump_clock) -> None:
    async with memory_cluster(nodes=2, node_resources=HOLDER):
        made, pending, small = make_big.remote(BIG), make_big_slowly.remote(BIG), ownership.put(7)
        ready, not_ready = await ownership.wait([pending, made, small], num_returns=2, timeout=SLOW / 2, fetch_local=False)
        assert ready == [made, small] and not_ready == [pending]


async def test_wait_fetch_local_false_failed_task_counts_as_ready() -> None:
    async with memory_cluster():
        ref = fail.remote()
        ready, _ = await ownership.wait([ref], timeout=10, fetch_local=False)
        assert ready == [ref]
        with pytest.raises(ownership.TaskError, match="no value"):
            await ref


async def test_wait_fetch_local_false_in_sync_borrower_asks_the_owner_and_pulls_nothing() -> None:
    async with memory_cluster(nodes=2, node_resources=HOLDER) as c:
        made = make_big.remote(BIG)
        await ownership.wait([made], timeout=10, fetch_local=False)
        assert await ready_in_borrower.remote([made]) == 1
        assert _pulls(c, "n2") == 0


async def test_wait_fetch_local_false_in_async_borrower_waits_for_the_owner_to_store_it(autojump_clock) -> None:
    # On the loop, not in a thread: the autojump clock must see every waiter.
    async with memory_cluster(nodes=2, node_resources=HOLDER) as c:
        later = make_big_slowly.remote(BIG)
        counted = ready_in_async_borrower.remote([later])
        ready, _ = await ownership.wait([counted], timeout=SLOW / 2)
        assert ready == []  # the borrower still waits for `later`
        assert await counted == 1
        assert _pulls(c, "n2") == 0
