"""A task's argument lost around the time the task is leased, on the in-memory cluster.

The races of the Ownership spec (OwnerHandleGetObject, WorkerHandleObjectValue,
WorkerHandleObjectPending, WorkerPullArg, WorkerRegister): the owner answers
where an argument is with a node it has not heard is dead, the worker asking
has heard (or registered after the death was published), the rebuild of the
argument needs the CPU the waiting task holds, a ``put`` argument dropped by
the driver is needed by a rebuild, a long lineage is rebuilt at once.

Placement is pinned with custom resources, and time moves only on explicit
ticks. Tests that race messages deliver them by hand (``auto=False``),
holding back the ones named, oldest first per sender/receiver pair (as TCP).
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest
import trio

import ownership
from ownership.core.config import CoreConfig
from ownership.core.messages import GetObject, NodeDied, ObjectPending, ObjectValue
from ownership.runtime.transport import Envelope
from ownership.testing import memory_cluster

BIG = 200 * 1024  # above the 100 KiB inline threshold: stored at the node
# Deaths are declared when a test says so (detect_failures): these scenarios
# act between a crash and its detection, which a lost connection's probe
# would otherwise make within the crash's own settle.
CONFIG = CoreConfig(node_timeout_ticks=3, suspect_on_connection_loss=False)


@ownership.remote(resources={"big": 0.01})
def make_big(n: int) -> bytes:
    return bytes([n]) * BIG


@ownership.remote(resources={"n3": 0.01})
def size_on_n3(b: bytes) -> int:
    return len(b)


def cluster(**kwargs):
    kwargs.setdefault("tick_interval", None)
    kwargs.setdefault("config", CONFIG)
    return memory_cluster(**kwargs)


async def assert_no_leaks(c) -> None:
    gc.collect()
    await c.quiesce()
    assert c.leaks() == {}


def nothing(env: Envelope) -> bool:
    return False


def to_n1_from_head(env: Envelope) -> bool:
    # The head's connection to the driver's node is slow: the driver hears
    # of deaths last (everything the head sends n1 waits behind it).
    return env.src == "head" and env.dst == "n1"


async def declare_dead(c, node: str, hold: Callable[[Envelope], bool]) -> None:
    """Tick past the head's timeout for ``node``, delivering all but what ``hold`` keeps."""
    c.crash(node)
    for _ in range(CONFIG.node_timeout_ticks + 2):
        c.network.tick()
        await c.network.deliver_except(hold)


def answers_to(c, address: str) -> list:
    seen: list = []

    def observe(event) -> None:
        env = event.envelope
        if event.kind == "deliver" and env.dst == address and isinstance(env.msg, (ObjectValue, ObjectPending)):
            seen.append(env.msg)

    c.network.observers.append(observe)
    return seen


def three_nodes_and_a_spare():
    # n1: the driver's node, no CPU; n2: where x is made; n3: where its
    # dependent runs; n4: a spare node that can make x again.
    return {"n1": {"CPU": 0.0}, "n2": {"big": 1.0}, "n3": {"n3": 1.0}, "n4": {"big": 1.0}}


async def test_task_told_a_dead_location_by_its_owner_asks_again_and_gets_the_rebuilt_argument() -> None:
    async with cluster(nodes=4, workers_per_node=1, auto=False, node_resources=three_nodes_and_a_spare()) as c:
        driver = c.driver.address
        x = make_big.remote(7)
        await c.network.deliver_except(nothing)
        assert c.driver.core.refs.get_ref(x.object_id).locations == {"n2"}
        y = size_on_n3.remote(x)

        def asks(env: Envelope) -> bool:
            return isinstance(env.msg, GetObject) and env.dst == driver and env.msg.object_id == x.object_id

        await c.network.deliver_except(asks)
        [(_, ask)] = [(mid, env) for mid, env in c.network.in_flight() if asks(env)]
        worker = ask.src
        assert worker.endswith("@n3")
        # n2 dies; everyone hears of it but the driver, whose node hears last.
        await declare_dead(c, "n2", lambda env: asks(env) or to_n1_from_head(env))
        assert "n2" in c.workers[worker].core.dead_nodes
        assert "n2" not in c.driver.core.dead_nodes
        # The driver answers with the copy it still believes in.
        answers = answers_to(c, worker)
        await c.network.deliver_except(to_n1_from_head)
        assert answers[0] == ObjectValue(object_id=x.object_id, locations=("n2",))
        # The worker asked again, naming n2: x is lost, and being rebuilt.
        assert ObjectPending(object_id=x.object_id) in answers
        await c.network.deliver_except(nothing)
        assert c.driver.core.refs.get_ref(y.object_id).status == "ready"
        with trio.fail_after(5):
            assert await y == BIG
        assert x.object_id in c.nodes["n4"].core.store.objects
        del x, y
        await assert_no_leaks(c)


async def test_worker_started_after_a_node_death_knows_of_it() -> None:
    async with cluster(nodes=4, workers_per_node=1, auto=False, node_resources=three_nodes_and_a_spare()) as c:
        x = make_big.remote(7)
        await c.network.deliver_except(nothing)
        assert c.driver.core.refs.get_ref(x.object_id).locations == {"n2"}
        await declare_dead(c, "n2", to_n1_from_head)
        assert "n2" in c.nodes["n3"].core.dead_nodes
        # n3's worker dies after n2's death was published: its replacement
        # registers with a node that knows.
        [old] = c.alive_workers("n3")
        c.crash(old)
        await c.network.deliver_except(to_n1_from_head)
        [new] = c.alive_workers("n3")
        assert new != old
        assert "n2" in c.workers[new].core.dead_nodes
        # Leased x's dependent, it is told n2 by the driver, which has not heard.
        y = size_on_n3.remote(x)
        answers = answers_to(c, new)
        await c.network.deliver_except(to_n1_from_head)
        assert answers[0] == ObjectValue(object_id=x.object_id, locations=("n2",))
        assert ObjectPending(object_id=x.object_id) in answers
        await c.network.deliver_except(nothing)
        assert c.driver.core.refs.get_ref(y.object_id).status == "ready"
        with trio.fail_after(5):
            assert await y == BIG
        del x, y
        await assert_no_leaks(c)


async def test_one_cpu_node_rebuilds_the_argument_its_leased_task_waits_for() -> None:
    # n3 has one CPU, taken by x's dependent, and is the only live node that
    # can make x again: the waiting task lends its CPU to the rebuild.
    nodes = {"n1": {"CPU": 0.0}, "n2": {"big": 1.0}, "n3": {"big": 1.0, "n3": 1.0}}
    async with cluster(nodes=3, workers_per_node=1, node_resources=nodes) as c:
        x = make_big.remote(7)
        await c.settle()
        assert c.driver.core.refs.get_ref(x.object_id).locations == {"n2"}
        c.crash("n2")
        y = size_on_n3.remote(x)
        await c.settle()
        [worker] = c.alive_workers("n3")
        assert c.workers[worker].core.executor.running, "y is leased, and waits for x"
        await c.detect_failures()
        with trio.fail_after(10):
            assert await y == BIG
        assert x.object_id in c.nodes["n3"].core.store.objects
        assert c.network.stats["sent"]["WorkerBlocked"] >= 1
        assert len(c.alive_workers("n3")) == 2, "n3 started a worker for the rebuild"
        del x, y
        await assert_no_leaks(c)


@ownership.remote(resources={"big": 0.01})
def grow(b: bytes) -> bytes:
    return b + b[:16]


async def test_put_argument_dropped_by_the_driver_is_kept_for_its_dependents_rebuild() -> None:
    nodes = {"n2": {"big": 1.0}, "n3": {"big": 1.0}}
    async with cluster(nodes=3, node_resources=nodes) as c:
        x = ownership.put(bytes([5]) * BIG)
        x_id = x.object_id
        y = grow.remote(x)
        await c.settle()
        [where] = c.driver.core.refs.get_ref(y.object_id).locations
        del x
        gc.collect()
        await c.settle()
        # Nothing refers to x but y's lineage, and nothing could make x again.
        kept = c.driver.core.refs.get_ref(x_id)
        assert kept.local == 0 and kept.status == "ready" and kept.locations == {"n1"}
        c.crash(where)
        await c.detect_failures()
        with trio.fail_after(10):
            assert await y == bytes([5]) * (BIG + 16)
        del y
        await assert_no_leaks(c)
        assert c.driver.core.refs.get_ref(x_id) is None, "x goes with the last lineage that needs it"


@ownership.remote(resources={"chain": 0.001}, num_cpus=0)
def first() -> int:
    return 0


@ownership.remote(resources={"chain": 0.001}, num_cpus=0)
def after(v: int) -> int:
    return v + 1


@ownership.remote(resources={"n3": 1.0, "chain": 1.0}, num_cpus=0)
async def occupy() -> None:
    await trio.sleep_forever()


DEPTH = 1000
CHAIN_NODES = {"n1": {"CPU": 0.0}, "n2": {"chain": 1000.0}, "n3": {"chain": 1.0, "n3": 1.0}}


def chain_cluster():
    # Every value goes to a store (inline_threshold 0), so a lost node loses
    # the whole chain; n3 can rebuild it, but is kept from making it first.
    config = CoreConfig(node_timeout_ticks=3, inline_threshold=0, suspect_on_connection_loss=False)
    return cluster(nodes=3, workers_per_node=1, node_resources=CHAIN_NODES, config=config)


async def lost_chain(c, root):
    """``root`` then DEPTH tasks each taking the previous value, all lost with n2."""
    blocker = occupy.remote()
    await c.settle()
    x = root.remote()
    for _ in range(DEPTH):
        x = after.remote(x)
    await c.settle()
    # The chain's values were freed as it went, but for the last one;
    # their lineage stays, to make them again.
    owned = c.driver.core.refs.table
    assert c.driver.core.refs.get_ref(x.object_id).locations == {"n2"}
    assert sum(1 for r in owned.values() if r.status == "freed") == DEPTH
    ownership.cancel(blocker)
    c.crash("n2")
    await c.detect_failures()
    return x, blocker


async def test_long_lineage_is_rebuilt_without_deep_recursion() -> None:
    async with chain_cluster() as c:
        x, blocker = await lost_chain(c, first)
        with trio.fail_after(60):
            assert await x == DEPTH
        assert x.object_id in c.nodes["n3"].core.store.objects
        del x, blocker
        await assert_no_leaks(c)


async def test_long_lineage_whose_root_cannot_be_rebuilt_fails_without_deep_recursion() -> None:
    async with chain_cluster() as c:
        x, blocker = await lost_chain(c, first.options(max_retries=0))
        with trio.fail_after(60), pytest.raises(ownership.ObjectLostError, match="no retries left"):
            await x
        del x, blocker
        await assert_no_leaks(c)


@ownership.remote(resources={"big": 0.01})
async def extend_first(refs: list) -> bytes:
    return (await refs[0]) + b"!"


async def test_object_passed_inside_a_value_is_kept_for_the_takers_rerun() -> None:
    # y takes x inside a list: it borrows x, which is not its argument. Once
    # y is done and the driver drops x, y's lineage still needs x, to run y
    # again when y's copy is lost.
    nodes = {"n2": {"big": 1.0}, "n3": {"big": 1.0}}
    async with cluster(nodes=3, node_resources=nodes) as c:
        x = make_big.remote(7)
        x_id = x.object_id
        y = extend_first.remote([x])
        await c.settle()
        assert c.driver.core.refs.get_ref(y.object_id).status == "ready"
        [where] = c.driver.core.refs.get_ref(y.object_id).locations
        del x
        gc.collect()
        await c.settle()
        assert c.driver.core.refs.get_ref(x_id) is not None, "y's lineage keeps x's entry"
        c.crash(where)
        await c.detect_failures()
        with trio.fail_after(10):
            assert await y == bytes([7]) * BIG + b"!"
        del y
        await assert_no_leaks(c)
        assert c.driver.core.refs.get_ref(x_id) is None, "x goes with the last lineage that needs it"
