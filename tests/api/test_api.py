"""The public API on the in-memory cluster."""

from __future__ import annotations

import gc
import sys
import threading

import pytest
import trio
import trio.testing

import ownership
from ownership.runtime.refs import current_runtime
from ownership.testing import memory_cluster


@ownership.remote
def add(a, b):
    return a + b


@ownership.remote
def thread_name() -> str:
    return threading.current_thread().name


@ownership.remote
async def loop_thread() -> bool:
    trio.lowlevel.current_task()  # only works on the worker's trio loop
    return True


@ownership.remote
def nested_blocking(x):
    # A sync task (in a thread) submits a task and blocks on it.
    return ownership.get(add.remote(x, 1)) * 10


@ownership.remote
async def nested_owner():
    ref = add.remote(1, 1)
    return ref.owner, current_runtime().address, await ref


class Boom(Exception):
    pass


@ownership.remote
def fail():
    raise Boom("bad input 42")


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("nope")


@ownership.remote
def fail_unpicklable():
    raise Unpicklable("cannot travel")


@ownership.remote
async def slow(t: float):
    await trio.sleep(t)
    return t


@ownership.remote
async def forever():
    await trio.sleep_forever()


async def test_remote_returns_a_ref_at_once_and_await_gets_the_value() -> None:
    async with memory_cluster() as c:
        ref = add.remote(1, 2)
        assert isinstance(ref, ownership.ObjectRef) and ref.owner == c.driver.address
        assert await ref == 3
        assert await ownership.get([add.remote(i, i) for i in range(5)]) == [0, 2, 4, 6, 8]
        assert await add.remote(b=2, a=1) == 3


async def test_refs_as_arguments_are_dereferenced_and_shared_ones_are_not() -> None:
    async with memory_cluster():
        x = ownership.put(20)
        assert await add.remote(x, 1) == 21

        @ownership.remote
        async def kind(r):
            return type(r).__name__, await r

        assert await kind.remote(ownership.shared(x)) == ("ObjectRef", 20)


async def test_sync_tasks_run_in_threads_and_async_ones_on_the_loop() -> None:
    async with memory_cluster():
        assert await thread_name.remote() != threading.main_thread().name
        assert await loop_thread.remote() is True


async def test_blocking_get_inside_a_sync_task() -> None:
    async with memory_cluster(workers_per_node=1):
        assert await nested_blocking.remote(4) == 50


async def test_nested_remote_makes_the_executing_worker_the_owner() -> None:
    async with memory_cluster() as c:
        owner, executor, value = await nested_owner.remote()
        assert owner == executor != c.driver.address and value == 2


async def test_task_error_carries_type_message_and_remote_traceback() -> None:
    async with memory_cluster():
        with pytest.raises(ownership.TaskError) as info:
            await fail.remote()
        err = info.value
        assert err.type_name.endswith("Boom") and "bad input 42" in str(err)
        assert ", in fail\n" in err.remote_traceback and "Boom: bad input 42" in err.remote_traceback
        assert isinstance(err.cause, Boom)


async def test_unpicklable_exception_arrives_without_cause() -> None:
    async with memory_cluster():
        with pytest.raises(ownership.TaskError) as info:
            await fail_unpicklable.remote()
        assert info.value.cause is None and "cannot travel" in str(info.value)


async def test_get_timeout_raises_get_timeout_error() -> None:
    async with memory_cluster():
        ref = forever.remote()
        with pytest.raises(ownership.GetTimeoutError):
            await ownership.get(ref, timeout=0.05)
        ownership.cancel(ref)


async def test_cancelled_await_leaks_nothing() -> None:
    async with memory_cluster() as c:
        ref = slow.remote(0.01)
        with trio.move_on_after(0.001):
            await ref
        assert not any(r.waiters for r in c.driver.core.refs.table.values())
        assert await ref == 0.01
        del ref
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}


async def test_wait_returns_ready_and_not_ready() -> None:
    async with memory_cluster():
        fast, never = add.remote(1, 1), forever.remote()
        ready, not_ready = await ownership.wait([never, fast], num_returns=1, timeout=5)
        assert ready == [fast] and not_ready == [never]
        ready, not_ready = await ownership.wait([never], timeout=0.02)
        assert ready == [] and not_ready == [never]
        ownership.cancel(never)


async def test_cancel_running_task_raises_task_cancelled() -> None:
    async with memory_cluster() as c:
        ref = forever.remote()
        await c.settle()
        ownership.cancel(ref)
        with pytest.raises(ownership.TaskCancelledError):
            await ref
        del ref
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}


async def test_large_put_lives_in_the_store_until_dropped() -> None:
    async with memory_cluster() as c:
        big = b"z" * (300 * 1024)
        ref = ownership.put(big)
        await c.settle()
        assert ref.object_id in c.nodes["n1"].core.store.objects
        assert await add.remote(ref, b"!") == big + b"!"
        del ref
        gc.collect()
        await c.quiesce()
        assert c.nodes["n1"].core.store.objects == {}


async def test_dropping_the_last_python_ref_releases_the_object() -> None:
    async with memory_cluster() as c:
        ref = ownership.put("x")
        oid = ref.object_id
        copy = ref
        del ref
        gc.collect()
        await c.settle()
        assert c.driver.core.refs.get_ref(oid) is not None
        del copy
        gc.collect()
        await c.settle()
        assert c.driver.core.refs.get_ref(oid) is None


def test_api_outside_a_cluster_raises_no_runtime() -> None:
    with pytest.raises(ownership.NoRuntimeError):
        add.remote(1, 2)
    with pytest.raises(ownership.NoRuntimeError):
        ownership.put(1)


def test_calling_a_remote_function_directly_is_an_error() -> None:
    with pytest.raises(TypeError, match=r"\.remote"):
        add(1, 2)


def test_bad_options_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        add.options(max_retries=-1)
    with pytest.raises(ValueError, match="bad resource"):
        ownership.remote(resources={"GPU": -1})(lambda: 1)
    with pytest.raises(TypeError, match="function or a class"):
        ownership.remote(42)


async def test_a_ref_cannot_be_pickled_on_its_own() -> None:
    import pickle

    async with memory_cluster():
        ref = ownership.put(1)
        with pytest.raises(TypeError, match="only travel"):
            pickle.dumps(ref)


async def test_options_route_tasks_by_custom_resource() -> None:
    async with memory_cluster(nodes=2, node_resources={"n2": {"special": 1}}):

        @ownership.remote(resources={"special": 1})
        def where():
            return current_runtime().core.node

        assert await where.remote() == "n2"


@ownership.remote
class Counter:
    def __init__(self, start: int) -> None:
        self.n = start

    def incr(self) -> int:
        self.n += 1
        return self.n

    async def incr_async(self) -> int:
        self.n += 1
        return self.n


@ownership.remote
async def bump_twice(counter) -> int:
    # A borrowed handle: this task calls the actor its caller created.
    await counter.incr.remote()
    return await counter.incr_async.remote()


async def test_actor_methods_run_in_order_and_handles_can_be_passed() -> None:
    async with memory_cluster() as c:
        counter = Counter.remote(10)
        assert await ownership.get([counter.incr.remote() for _ in range(3)]) == [11, 12, 13]
        assert await bump_twice.remote(counter) == 15
        assert await counter.incr.remote() == 16
        del counter
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}


@ownership.remote
class BadInit:
    def __init__(self) -> None:
        raise ValueError("no")

    def ping(self) -> int:
        return 1


async def test_actor_whose_constructor_raises_fails_its_calls() -> None:
    async with memory_cluster() as c:
        actor = BadInit.remote()
        with pytest.raises(ownership.TaskError, match="no"):
            await actor.ping.remote()
        del actor
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}


# In-process (memory cluster): the actor's thread and the test share these.
HOLD_EVENTS = (threading.Event(), threading.Event())


@ownership.remote
class Ledger:
    """A sync-only actor: its calls go through one thread, in order."""

    def __init__(self) -> None:
        self.entries: list[int] = []
        self.lock = threading.Lock()

    def add(self, i: int) -> int:
        if not self.lock.acquire(blocking=False):
            raise RuntimeError("two calls of one actor overlap")
        try:
            self.entries.append(i)
            return len(self.entries)
        finally:
            self.lock.release()

    def hold(self) -> int:
        # Looked up in this very module: the class travels pickled by value,
        # and its copy must wait on the test's events, not on copies of them.
        started, release = sys.modules[__name__].HOLD_EVENTS
        started.set()
        release.wait()
        return len(self.entries)

    def entries_so_far(self) -> list[int]:
        return list(self.entries)


def _actor_runtime(c, actor):
    worker = c.driver.core.submitter.actors[actor.object_id].worker
    return c.workers[worker]


async def test_sync_actor_calls_are_handed_over_at_once_and_run_one_at_a_time_in_order() -> None:
    async with memory_cluster() as c:
        ledger = Ledger.remote()
        assert await ledger.add.remote(-1) == 1
        rt = _actor_runtime(c, ledger)
        assert rt.core.executor.calls_in_order  # no async method: one thread, in order
        counts = await ownership.get([ledger.add.remote(i) for i in range(200)])
        assert counts == list(range(2, 202))
        assert await ledger.entries_so_far.remote() == [-1, *range(200)]
        del ledger
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}


#: The gate an async actor's held call waits on: a trio.Event made inside the
#: test's run (the memory cluster runs the actor on the same trio loop).
GATE: dict[str, trio.Event] = {}


@ownership.remote
class Recorder:
    """An async actor that records its calls in the order they start."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def step(self, i: int, hold: bool = False) -> int:
        self.seen.append(i)
        if hold:
            # Looked up in this very module: the class travels pickled by
            # value, and its copy must wait on the test's event.
            await sys.modules[__name__].GATE["open"].wait()
        return i

    async def seen_so_far(self) -> list[int]:
        return list(self.seen)


async def test_async_actor_runs_calls_queued_behind_a_running_one_in_submission_order() -> None:
    # The Ownership spec's CallsInOrder: two calls queued behind a running
    # one are what tells the front of the worker's queue from its back
    # (the spec's Calls model); with one queued call any end will do.
    GATE["open"] = trio.Event()
    async with memory_cluster() as c:
        recorder = Recorder.remote()
        assert await recorder.step.remote(-1) == -1
        rt = _actor_runtime(c, recorder)
        assert not rt.core.executor.calls_in_order
        held = recorder.step.remote(0, hold=True)
        queued = [recorder.step.remote(i) for i in (1, 2, 3)]
        with trio.fail_after(10):
            while len(rt.core.executor.actor_queue) < 3:
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        # one call at a time: the held one runs, the others wait in the core
        assert len(rt.core.executor.actor_queue) == 3
        assert rt.core.executor.actor_busy is not None
        GATE["open"].set()
        assert await ownership.get([held, *queued]) == [0, 1, 2, 3]
        assert await recorder.seen_so_far.remote() == [-1, 0, 1, 2, 3]
        del recorder, held, queued
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}


async def test_actor_with_an_async_method_keeps_one_call_at_a_time_in_the_core() -> None:
    async with memory_cluster() as c:
        counter = Counter.remote(0)
        assert await counter.incr.remote() == 1
        assert not _actor_runtime(c, counter).core.executor.calls_in_order
        del counter
        gc.collect()
        await c.quiesce()


async def test_cancelled_call_queued_behind_a_running_one_never_runs() -> None:
    started, release = HOLD_EVENTS
    started.clear()
    release.clear()
    # Deliveries go on while user code runs in threads (the deterministic
    # network would hold the queued call back until `hold` returns).
    async with memory_cluster(deterministic=False) as c:
        ledger = Ledger.remote()
        assert await ledger.add.remote(0) == 1
        holding = ledger.hold.remote()
        await trio.to_thread.run_sync(started.wait)
        queued = ledger.add.remote(1)
        rt = _actor_runtime(c, ledger)
        # Until the worker has it: the network's delivery task moves a message
        # each time every task is blocked, so we wait for that with a longer
        # cushion than its own (the shortest cushion wakes first).
        for _ in range(100):
            if any(r.spec.method == "add" for r in rt.core.executor.running.values()):
                break
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        [r] = [r for r in rt.core.executor.running.values() if r.spec.method == "add"]
        assert r.started  # handed over while the other call still runs
        ownership.cancel(queued)
        with pytest.raises(ownership.TaskCancelledError):
            await queued
        # The owner fails the ref at once; the worker hears of the cancel
        # by message. Only once it has may `hold` return, or the queued call
        # runs next in the actor's thread before the cancel arrives.
        for _ in range(100):
            if not any(r.spec.method == "add" for r in rt.core.executor.running.values()):
                break
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        assert not any(r.spec.method == "add" for r in rt.core.executor.running.values())
        release.set()
        assert await holding == 1
        assert await ledger.entries_so_far.remote() == [0]  # the cancelled call did not run
        del ledger, holding, queued
        gc.collect()
        await c.quiesce()
        assert c.leaks() == {}
