"""A borrower of a borrower outlives its lender.

The owner learns of a worker that got a reference from another borrower
from that worker itself (AddBorrower, before its task runs), not only from
the lender's reply: a lender that dies before its reply reaches the owner
must not take the owner's knowledge of its sub-borrower with it.
Messages are delivered by hand (``auto=False``) so the lender dies exactly
between lending the reference and reporting it.
"""

from __future__ import annotations

import gc

import trio

import ownership
from ownership.core.config import CoreConfig
from ownership.core.messages import AddBorrower, TaskReply
from ownership.runtime.transport import Envelope
from ownership.testing import memory_cluster

CONFIG = CoreConfig(node_timeout_ticks=3)


@ownership.remote(resources={"keeper": 0.01})
class Keeper:
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

    def count(self) -> int:
        return len(self.refs)


@ownership.remote(resources={"lender": 0.01}, max_retries=0)
async def lend(ref, keeper) -> int:
    # Borrows `ref` and lends it on to the actor, which keeps it: the actor
    # is a borrower of a borrower.
    return await keeper.keep.remote(ownership.shared(ref))


def nothing(env: Envelope) -> bool:
    return False


async def test_sub_borrower_keeps_the_object_after_its_lender_dies_unreported() -> None:
    shapes = {"n1": {"CPU": 0.0}, "n2": {"lender": 1.0}, "n3": {"keeper": 1.0}}
    async with memory_cluster(nodes=3, workers_per_node=1, tick_interval=None, config=CONFIG, auto=False, node_resources=shapes) as c:
        driver = c.driver.core
        x = ownership.put("precious")
        x_id = x.object_id
        keeper = Keeper.remote()
        lent = lend.remote(ownership.shared(x), keeper)

        def lenders_reply(env: Envelope) -> bool:
            return isinstance(env.msg, TaskReply) and env.msg.return_id == lent.object_id

        # The actor got x from the lender and kept it; the lender's reply,
        # which would report the actor to the owner, is still in flight.
        await c.network.deliver_except(lenders_reply)
        [(_, reply)] = [(mid, env) for mid, env in c.network.in_flight() if lenders_reply(env)]
        lender = reply.src
        actor_worker = driver.submitter.actors[keeper.object_id].worker
        assert c.workers[actor_worker].core.refs.get_ref(x_id).local == 1, "the actor keeps x"
        # The lender dies before its reply arrives: the reply is lost with it.
        c.crash(lender)
        await c.network.deliver_except(nothing)
        assert lender in driver.dead_workers
        with trio.fail_after(5):
            try:
                await lent
            except ownership.WorkerCrashedError:
                pass
        # The driver lets go of x: only the actor holds it now.
        del x
        gc.collect()
        await c.network.deliver_except(nothing)
        entry = driver.refs.get_ref(x_id)
        assert entry is not None and entry.status != "freed", "the owner freed x while the actor holds it"
        assert entry.borrowers == {actor_worker: 1}
        first = keeper.first.remote()
        await c.network.deliver_except(nothing)
        with trio.fail_after(5):
            assert await first == "precious"
        drop = keeper.drop.remote()
        await c.network.deliver_except(nothing)
        with trio.fail_after(5):
            assert await drop == 0
        del first, drop
        gc.collect()
        await c.network.deliver_except(nothing)
        assert driver.refs.get_ref(x_id) is None, "freed once the actor let go"


async def test_sub_borrower_task_waits_until_the_owner_counts_it() -> None:
    # The actor's AddBorrower is slow; meanwhile the lender dies and the
    # driver lets go of x, which nobody the driver knows of holds: it is
    # freed. The actor's call must not have run with x: the owner refuses
    # the late AddBorrower and the call fails instead of keeping a freed ref.
    shapes = {"n1": {"CPU": 0.0}, "n2": {"lender": 1.0}, "n3": {"keeper": 1.0}}
    async with memory_cluster(nodes=3, workers_per_node=1, tick_interval=None, config=CONFIG, auto=False, node_resources=shapes) as c:
        driver = c.driver.core
        x = ownership.put("precious")
        x_id = x.object_id
        keeper = Keeper.remote()
        lent = lend.remote(ownership.shared(x), keeper)

        def registration(env: Envelope) -> bool:
            return isinstance(env.msg, AddBorrower) and x_id in env.msg.object_ids

        def lenders_reply(env: Envelope) -> bool:
            return isinstance(env.msg, TaskReply) and env.msg.return_id == lent.object_id

        await c.network.deliver_except(lambda env: registration(env) or lenders_reply(env))
        assert any(registration(env) for _mid, env in c.network.in_flight())
        lender = driver.submitter.tasks[lent.object_id.removesuffix(".r")].location
        assert lender is not None and lender.endswith("@n2")
        c.crash(lender)
        await c.network.deliver_except(registration)
        with trio.fail_after(5):
            try:
                await lent
            except ownership.WorkerCrashedError:
                pass
        del x
        gc.collect()
        await c.network.deliver_except(registration)
        assert driver.refs.get_ref(x_id) is None, "x was freed: nobody the driver knows of holds it"
        await c.network.deliver_except(nothing)
        count = keeper.count.remote()
        await c.network.deliver_except(nothing)
        with trio.fail_after(5):
            assert await count == 0, "the actor kept x before its owner counted it"


@ownership.remote(resources={"lender": 0.01})
class Wrapper:
    """Borrows x and owns a value that holds it."""

    def __init__(self) -> None:
        self.outer = None

    def wrap(self, x) -> list:
        self.outer = ownership.put([x])
        return [self.outer]


@ownership.remote(resources={"keeper": 0.01})
class Reader:
    """Gets the wrapper's value, and with it x, from the wrapper."""

    def __init__(self) -> None:
        self.inner = None

    async def read(self, outer) -> int:
        [self.inner] = await outer
        return 1

    async def first(self):
        return await self.inner

    def drop(self) -> int:
        self.inner = None
        return 0


async def test_reader_of_a_value_a_borrower_owns_keeps_the_object_after_that_borrower_dies() -> None:
    # The wrapper serves its value, which holds x, to the reader. Counted
    # only as the wrapper's sub-borrower (as in Ray), the reader would be
    # reported when the wrapper lets go of x, which it never does before it
    # dies: the owner would then free x while the reader holds it.
    shapes = {"n1": {"CPU": 0.0}, "n2": {"lender": 1.0}, "n3": {"keeper": 1.0}}
    async with memory_cluster(nodes=3, workers_per_node=1, tick_interval=None, config=CONFIG, auto=False, node_resources=shapes) as c:
        driver = c.driver.core
        x = ownership.put("precious")
        x_id = x.object_id
        wrapper, reader = Wrapper.remote(), Reader.remote()
        wrapped = wrapper.wrap.remote(ownership.shared(x))
        await c.network.deliver_except(nothing)
        with trio.fail_after(5):
            [outer] = await wrapped
        read = reader.read.remote(ownership.shared(outer))
        await c.network.deliver_except(nothing)
        with trio.fail_after(5):
            assert await read == 1
        wrapper_worker = driver.submitter.actors[wrapper.object_id].worker
        reader_worker = driver.submitter.actors[reader.object_id].worker
        c.crash(wrapper_worker)
        await c.network.deliver_except(nothing)
        assert wrapper_worker in driver.dead_workers
        del x, wrapped, outer, read
        gc.collect()
        await c.network.deliver_except(nothing)
        entry = driver.refs.get_ref(x_id)
        assert entry is not None and entry.status != "freed", "the owner freed x while the reader holds it"
        assert entry.borrowers == {reader_worker: 1}
        first = reader.first.remote()
        await c.network.deliver_except(nothing)
        with trio.fail_after(5):
            assert await first == "precious"
        drop = reader.drop.remote()
        await c.network.deliver_except(nothing)
        with trio.fail_after(5):
            assert await drop == 0
        del first, drop
        gc.collect()
        await c.network.deliver_except(nothing)
        assert driver.refs.get_ref(x_id) is None, "freed once the reader let go"
