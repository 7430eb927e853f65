"""Random workloads on the in-memory cluster, with reordering, drops and crashes.

A hypothesis ``RuleBasedStateMachine`` drives the driver of a cluster whose
network delivers nothing by itself: rules submit tasks (plain, nested, with
``shared()`` refs, returning refs inside values, on an actor), put and drop
values, deliver a chosen message (any sender/receiver pair first, FIFO per
pair as over TCP), drop or duplicate a message where the protocol tolerates
it, crash workers (owners among them) and nodes, and let time pass.

Invariants:
- no value is freed while referenced: every ref the driver holds whose
  owner is alive is in its owner's table, and an object the owner has as
  ready has its value inline or in a live store;
- every get returns the right value or a documented error, and never hangs
  (``check_get`` runs the cluster, with ticks, until the get is answered);
- at quiescence, once every ref is dropped, every table and store is empty.

The cluster runs in its own ``trio.run`` on a thread; the machine calls into
it with ``trio.from_thread``.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

import attrs
import hypothesis.strategies as st
import trio
from hypothesis import HealthCheck, settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule

import ownership
from ownership.core.config import CoreConfig
from ownership.core.refcount import READY
from ownership.runtime.refs import _runtime_var
from ownership.testing import memory_cluster

BIG = 120 * 1024
ERRORS = (
    ownership.OwnerDiedError,
    ownership.ObjectLostError,
    ownership.WorkerCrashedError,  # ActorDiedError is one too
)
# Messages that the protocol lets the network lose or repeat (it never
# relies on a single heartbeat, and these handlers are idempotent).
DROPPABLE = {"Heartbeat", "ClusterView"}
DUPLICABLE = {"PushTask", "TaskReply", "LeaseGranted", "GetObject", "ObjectValue", "PullObject", "ObjectCopy", "FreeObject", "Heartbeat"}


# ---------------------------------------------------------------- workload


@ownership.remote
def square(x: int) -> int:
    return x * x


@ownership.remote
def add_one(x: int) -> int:
    return x + 1


@ownership.remote
def nested_square(x: int) -> int:
    return ownership.get(square.remote(x)) + 0


@ownership.remote
def wrap_square(x: int) -> list:
    # The executing worker owns the inner future and returns it in a value.
    return [square.remote(x)]


@ownership.remote
async def read_shared(ref) -> Any:
    return await ref


@ownership.remote
async def relay_shared(ref) -> Any:
    # A borrower lends the ref on: the nested task is a borrower of a borrower.
    return await read_shared.remote(ownership.shared(ref))


@ownership.remote
def echo_ref(ref) -> list:
    # A borrower returns the ref it borrowed inside its value.
    return [ref]


@ownership.remote(max_retries=2)
def make_big(x: int) -> bytes:
    return bytes([x % 256]) * BIG


@ownership.remote
class Keeper:
    def __init__(self) -> None:
        self.refs: list = []

    def keep(self, ref) -> int:
        self.refs.append(ref)
        return len(self.refs)

    def total(self) -> int:
        return sum(ownership.get(self.refs)) if self.refs else 0


@attrs.define(eq=False)
class Handle:
    ref: Any
    expected: Any  # the value (or, for wrap_square, the inner value)
    kind: str = "value"  # "value" | "wrapped" | "big"
    epoch: int = 0  # crashes seen before it was made
    checked: bool = False


class ClusterThread:
    """An in-memory cluster in its own trio.run, driven from this thread."""

    def __init__(self, seed: int) -> None:
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(seed,), daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self, seed: int) -> None:
        try:
            trio.run(self._main, seed)
        except BaseException as exc:  # surfaced by call() or close()
            self._error = exc
            self._ready.set()

    async def _main(self, seed: int) -> None:
        config = CoreConfig(node_timeout_ticks=2, lease_idle_ticks=1)
        async with memory_cluster(nodes=3, workers_per_node=2, seed=seed, config=config, tick_interval=None, auto=False) as c:
            self.cluster = c
            self.token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            self._ready.set()
            await self._stop.wait()

    def call(self, afn, *args):
        driver = self.cluster.driver

        async def in_driver():
            token = _runtime_var.set(driver)
            try:
                return await afn(*args)
            finally:
                _runtime_var.reset(token)

        return trio.from_thread.run(in_driver, trio_token=self.token)

    def close(self) -> None:
        try:
            trio.from_thread.run_sync(self._stop.set, trio_token=self.token)
        except trio.RunFinishedError:
            pass
        self._thread.join(timeout=30)
        if self._error is not None:
            raise self._error


class OwnershipMachine(RuleBasedStateMachine):
    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.ct = ClusterThread(seed=0)
        self.c = self.ct.cluster
        self.crashes = 0
        self.node_crashes = 0
        self.keeper: Handle | None = None
        self.kept: list[int] = []

    def teardown(self) -> None:
        try:
            self._drop_all_and_check_no_leak()
        finally:
            self.ct.close()

    # ------------------------------------------------------------ helpers
    async def _run_until_quiet(self) -> None:
        await self.c.network.run_until_quiet(max_steps=20_000)

    def quiet(self) -> None:
        self.ct.call(self._run_until_quiet)

    def _submit(self, make) -> Any:
        async def go():
            return make()

        return self.ct.call(go)

    def _get(self, ref, *, rounds: int = 40) -> tuple[str, Any]:
        """Run the cluster (with ticks) until the get is answered."""

        async def go():
            outcome: list[tuple[str, Any]] = []

            async def getter():
                try:
                    outcome.append(("value", await ref))
                except ownership.OwnershipError as exc:
                    outcome.append(("error", exc))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(getter)
                for _ in range(rounds):
                    await self._run_until_quiet()
                    if outcome:
                        break
                    self.c.network.tick()
                    await self.c.network.settle()
                else:
                    nursery.cancel_scope.cancel()
            return outcome

        outcome = self.ct.call(go)
        assert outcome, f"get({ref!r}) hangs: no answer after {rounds} ticks"
        return outcome[0]

    def _alive_workers(self) -> list[str]:
        return [a for a in self.c.alive_workers() if self.c.network.alive(a)]

    # ------------------------------------------------------------ submits
    @rule(target=handles, x=st.integers(0, 50))
    def submit(self, x: int) -> Handle:
        """Spec: OwnerSubmit (plain task)."""
        return Handle(self._submit(lambda: square.remote(x)), x * x, epoch=self.crashes)

    @rule(target=handles, x=st.integers(0, 50))
    def put(self, x: int) -> Handle:
        return Handle(self._submit(lambda: ownership.put(x)), x, epoch=self.crashes)

    @rule(target=handles, h=handles)
    def submit_with_dependency(self, h: Handle) -> Handle:
        """A task whose argument is another future (dereferenced)."""
        if h.kind != "value" or h.ref is None:
            return Handle(self._submit(lambda: square.remote(3)), 9, epoch=self.crashes)
        return Handle(self._submit(lambda: add_one.remote(h.ref)), ("plus1", h), epoch=self.crashes)

    @rule(target=handles, x=st.integers(0, 20))
    def submit_nested(self, x: int) -> Handle:
        """A task that submits a task (the executing worker becomes an owner)."""
        return Handle(self._submit(lambda: nested_square.remote(x)), x * x, epoch=self.crashes)

    @rule(target=handles, x=st.integers(0, 20))
    def submit_returning_ref(self, x: int) -> Handle:
        """A task returning a future it owns inside its value."""
        return Handle(self._submit(lambda: wrap_square.remote(x)), x * x, kind="wrapped", epoch=self.crashes)

    @rule(target=handles, h=handles)
    def submit_shared(self, h: Handle) -> Handle:
        """Pass a future itself (shared): the executor borrows it."""
        if h.kind != "value" or h.ref is None:
            return Handle(self._submit(lambda: square.remote(4)), 16, epoch=self.crashes)
        return Handle(self._submit(lambda: read_shared.remote(ownership.shared(h.ref))), ("same", h), epoch=self.crashes)

    @rule(target=handles, h=handles)
    def submit_relay(self, h: Handle) -> Handle:
        """A borrower passes the future on to a task of its own."""
        if h.kind != "value" or h.ref is None:
            return Handle(self._submit(lambda: square.remote(5)), 25, epoch=self.crashes)
        return Handle(self._submit(lambda: relay_shared.remote(ownership.shared(h.ref))), ("same", h), epoch=self.crashes)

    @rule(target=handles, h=handles)
    def submit_echo(self, h: Handle) -> Handle:
        """A borrower returns the future it borrowed inside its value."""
        if h.kind != "value" or h.ref is None:
            return Handle(self._submit(lambda: square.remote(6)), 36, epoch=self.crashes)
        return Handle(self._submit(lambda: echo_ref.remote(ownership.shared(h.ref))), ("same", h), kind="wrapped", epoch=self.crashes)

    @rule(target=handles, x=st.integers(0, 255))
    def submit_big(self, x: int) -> Handle:
        """A value above the inline threshold: stored at the executing node."""
        return Handle(self._submit(lambda: make_big.remote(x)), bytes([x]) * BIG, kind="big", epoch=self.crashes)

    @rule(h=handles)
    def actor_keeps(self, h: Handle) -> None:
        """An actor borrows a future and keeps it."""
        if h.kind != "value" or h.ref is None:
            return
        if self.keeper is None:
            self.keeper = Handle(self._submit(lambda: Keeper.remote()), None, kind="actor", epoch=self.crashes)
        keeper = self.keeper.ref
        self._submit(lambda: keeper.keep.remote(ownership.shared(h.ref)))

    # ------------------------------------------------------------ drops
    @rule(h=consumes(handles))
    def drop(self, h: Handle) -> None:
        """HolderReleaseRef: the driver drops its Python ref."""
        h.ref = None  # hypothesis keeps the Handle; the ref itself goes

    # ------------------------------------------------------------ network
    @rule(k=st.integers(0, 1000))
    def deliver_one(self, k: int) -> None:
        """Deliver a message of the network's choosing-by-hypothesis (reordering across pairs)."""

        async def go():
            await self.c.network.settle()
            heads = self.c.network.deliverable()
            if heads:
                self.c.network.deliver(heads[k % len(heads)][0])
                await self.c.network.settle()

        self.ct.call(go)

    @rule(k=st.integers(0, 1000))
    def drop_tolerated(self, k: int) -> None:
        """Lose a message the protocol does not rely on (a heartbeat)."""

        async def go():
            await self.c.network.settle()
            msgs = [(mid, env) for mid, env in self.c.network.in_flight() if type(env.msg).__name__ in DROPPABLE]
            if msgs:
                self.c.network.drop(msgs[k % len(msgs)][0])

        self.ct.call(go)

    @rule(k=st.integers(0, 1000))
    def duplicate_idempotent(self, k: int) -> None:
        """Deliver a message twice where its handler is idempotent."""

        async def go():
            await self.c.network.settle()
            msgs = [(mid, env) for mid, env in self.c.network.in_flight() if type(env.msg).__name__ in DUPLICABLE]
            if msgs:
                self.c.network.duplicate(msgs[k % len(msgs)][0])

        self.ct.call(go)

    @rule()
    def run_until_quiet(self) -> None:
        self.quiet()

    @rule()
    def tick(self) -> None:
        """A timer period passes (heartbeats, lease timeouts, failure detection).

        The heartbeats it causes are delivered before the next tick: a
        network that holds them for the whole timeout is a partition, and
        the head would rightly declare a live node dead.
        """

        async def go():
            self.c.network.tick()
            await self._run_until_quiet()

        self.ct.call(go)

    # ------------------------------------------------------------ crashes
    @precondition(lambda self: self.crashes < 3)
    @rule(k=st.integers(0, 1000))
    def crash_worker(self, k: int) -> None:
        """Crash a worker process: an executor, an owner of nested futures, or an actor."""

        async def go():
            await self.c.network.settle()
            workers = self._alive_workers()
            if workers:
                self.c.crash(workers[k % len(workers)])
                return True
            return False

        if self.ct.call(go):
            self.crashes += 1

    @precondition(lambda self: self.node_crashes < 1 and self.crashes < 3)
    @rule(which=st.sampled_from(["n2", "n3"]))
    def crash_node(self, which: str) -> None:
        """Crash a whole node (not the driver's)."""

        async def go():
            await self.c.network.settle()
            self.c.crash(which)

        self.ct.call(go)
        self.crashes += 1
        self.node_crashes += 1

    # ------------------------------------------------------------ gets
    def _expected(self, h: Handle) -> Any:
        e = h.expected
        if isinstance(e, tuple) and e[0] == "plus1":
            inner = self._expected(e[1])
            return None if inner is None else inner + 1
        if isinstance(e, tuple) and e[0] == "same":
            return self._expected(e[1])
        return e

    @rule(h=handles)
    def check_get(self, h: Handle) -> None:
        """HolderGet: the right value or a documented error, never a hang."""
        if h.kind == "actor" or h.ref is None:
            return
        kind, result = self._get(h.ref)
        if h.kind == "wrapped" and kind == "value":
            assert isinstance(result, list) and len(result) == 1
            kind, result = self._get(result[0])
        if kind == "error":
            assert isinstance(result, ERRORS), f"undocumented error {result!r}"
            assert self.crashes > 0, f"{result!r} without any crash"
            return
        assert result == self._expected(h)

    @precondition(lambda self: self.keeper is not None)
    @rule()
    def check_actor(self) -> None:
        keeper = self.keeper.ref
        ref = self._submit(lambda: keeper.total.remote())
        kind, result = self._get(ref)
        if kind == "error":
            assert isinstance(result, ERRORS) and self.crashes > 0, f"{result!r}"
        else:
            assert isinstance(result, int)

    # ------------------------------------------------------------ invariants
    @invariant()
    def no_value_freed_while_referenced(self) -> None:
        def check() -> list[str]:
            problems = []
            net = self.c.network
            for h in self._live_handles():
                ref = h.ref
                if not net.alive(ref.owner):
                    continue
                owner = self.c.driver if ref.owner == self.c.driver.address else self.c.workers.get(ref.owner)
                entry = owner.core.refs.get_ref(ref.object_id) if owner is not None else None
                if entry is None:
                    problems.append(f"{ref.object_id} is referenced by the driver but gone at its owner")
                    continue
                if entry.status == READY and entry.kind == "object" and entry.value is None:
                    live = [n for n in entry.locations if net.alive(n)]
                    for n in live:
                        if ref.object_id not in self.c.nodes[n].core.store.objects:
                            problems.append(f"{ref.object_id}: owner says {n} has it, the store does not")
            return problems

        async def go():
            return check()

        problems = self.ct.call(go)
        assert not problems, problems

    def _live_handles(self) -> list[Handle]:
        handles = [h for h in self.names_to_values.values() if isinstance(h, Handle) and h.ref is not None]
        return handles + ([self.keeper] if self.keeper else [])

    def _drop_all_and_check_no_leak(self) -> None:
        for h in self._live_handles():
            h.ref = None
        self.keeper = None
        gc.collect()

        async def go():
            gc.collect()
            await self.c.network.run_until_quiet(max_steps=20_000)
            await self.c.advance(self.c.config.node_timeout_ticks + 3)
            await self.c.quiesce()
            return self.c.leaks()

        leaks = self.ct.call(go)
        assert leaks == {}, f"leak after every ref was dropped: {leaks}"


OwnershipMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestOwnershipStateful = OwnershipMachine.TestCase
