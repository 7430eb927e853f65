"""The API where a Ray user expects it to behave as Ray does."""

from __future__ import annotations

import copy
import gc

import pytest
import trio

import ownership
from ownership.testing import memory_cluster


@ownership.remote
def add(a, b):
    return a + b


@ownership.remote
def fail():
    raise ValueError("failed at once")


@ownership.remote
async def forever():
    await trio.sleep_forever()


@ownership.remote
def blocking_get_of(refs):
    # A sync task: the blocking get, with a ref that never ends among them.
    return ownership.get(refs)


async def test_get_of_a_list_raises_as_soon_as_one_ref_fails() -> None:
    async with memory_cluster():
        never, failed = forever.remote(), fail.remote()
        with trio.fail_after(10):
            with pytest.raises(ValueError, match="failed at once"):
                await ownership.get([never, failed])
        ownership.cancel(never)


async def test_blocking_get_of_a_list_raises_as_soon_as_one_ref_fails() -> None:
    async with memory_cluster(workers_per_node=2):
        never = forever.remote()
        with trio.fail_after(10):
            with pytest.raises(ValueError, match="failed at once"):
                await blocking_get_of.remote([never, fail.remote()])
        ownership.cancel(never)


async def test_get_of_a_list_raises_the_first_failed_ref_in_list_order() -> None:
    async with memory_cluster():

        @ownership.remote
        def fail_with(text):
            raise KeyError(text)

        a, b = fail_with.remote("a"), fail_with.remote("b")
        await ownership.wait([a, b], num_returns=2, timeout=10)
        with pytest.raises(KeyError, match="'b'"):
            await ownership.get([b, a])


async def test_get_with_timeout_zero_returns_a_ready_value() -> None:
    async with memory_cluster():
        ref = ownership.put(41)
        assert await ownership.get(ref, timeout=0) == 41
        done = add.remote(1, 2)
        await ownership.wait([done], timeout=10)
        assert await ownership.get([done, ref], timeout=0) == [3, 41]
        never = forever.remote()
        with pytest.raises(ownership.GetTimeoutError):
            await ownership.get([done, never], timeout=0)
        ownership.cancel(never)


@ownership.remote
def put_and_get_with_timeout(value, timeout):
    # Owned here and small: at hand the moment put returns.
    return ownership.get(ownership.put(value), timeout=timeout)


async def test_get_with_a_tiny_timeout_returns_values_at_hand() -> None:
    # The deadline has passed by the time the get first checks it; the
    # values were there all along and must win, async and blocking alike.
    async with memory_cluster(workers_per_node=2):
        ref = add.remote(2, 3)
        await ownership.wait([ref], timeout=10)
        for timeout in (0, 1e-9, 1e-6):
            assert await ownership.get(ref, timeout=timeout) == 5
            assert await put_and_get_with_timeout.remote(7, timeout) == 7


async def test_copy_of_a_ref_is_a_new_local_ref() -> None:
    async with memory_cluster() as c:
        ref = ownership.put("v")
        oid = ref.object_id
        shallow, deep = copy.copy(ref), copy.deepcopy(ref)
        assert shallow == ref and deep == ref and shallow is not ref
        assert c.driver.core.refs.get_ref(oid).local == 3
        nested = copy.deepcopy({"refs": [ref]})
        assert nested["refs"][0] == ref and c.driver.core.refs.get_ref(oid).local == 4
        del ref, nested
        gc.collect()
        await c.settle()
        assert c.driver.core.refs.get_ref(oid).local == 2
        assert await shallow == "v" and await deep == "v"
        del shallow, deep
        gc.collect()
        await c.settle()
        assert c.driver.core.refs.get_ref(oid) is None


@ownership.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self) -> int:
        self.n += 1
        return self.n


async def test_a_submitted_call_keeps_its_actor_alive() -> None:
    async with memory_cluster() as c:
        with trio.fail_after(10):
            assert await Counter.remote().incr.remote() == 1
            calls = [Counter.remote().incr.remote() for _ in range(3)]
            gc.collect()
            assert await ownership.get(calls) == [1, 1, 1]
        del calls
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}


async def test_an_actor_whose_handle_is_dropped_stops_after_its_last_call() -> None:
    async with memory_cluster() as c:
        counter = Counter.remote()
        first, second = counter.incr.remote(), counter.incr.remote()
        aid = counter.object_id
        del counter
        gc.collect()
        with trio.fail_after(10):
            assert await ownership.get([first, second]) == [1, 2]
        await c.settle()
        assert c.driver.core.refs.get_ref(aid) is None  # stopped: no handle, no call left
        del first, second
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}
