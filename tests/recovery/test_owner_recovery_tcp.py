"""Owner recovery over TCP, with real processes (spec/OwnerRecovery.tla).

A task owns recoverable futures (a small result, a large one stored at its
node, a put) and a default one; the refs go to three holders: two tasks
that block while they hold them, and an actor. The owner's worker is
SIGKILLed. Every holder's get returns the right values (the small result
rebuilt from its lineage, the large one from its copy pinned again for the
driver, the put restored from the head's log); the default future fails
with OwnerDiedError; once everything is dropped, no object, copy, lease or
log is left anywhere. The same holds when the owner is only declared dead
(its node hangs past the heartbeat timeout): the stale owner is fenced.
"""

from __future__ import annotations

import gc
import os
import signal
import sys

import cloudpickle
import numpy as np
import pytest
import trio

import ownership
from ownership.runtime.cluster import cluster
from ownership.runtime.pids import pid_alive

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])

BIG = 2**15  # float64s: 256 KiB, stored at the node that makes it


@ownership.remote
def double(x: int) -> int:
    return 2 * x


@ownership.remote
def ones() -> np.ndarray:
    return np.ones(BIG)


@ownership.remote
def owner_task():
    small = double.options(recoverable=True).remote(21)
    big = ones.options(recoverable=True).remote()
    put = ownership.put("kept at the head", recoverable=True)
    default = double.remote(5)
    ownership.get([small, big, default])
    return os.getpid(), [small, big, put], [default]


@ownership.remote
async def hang() -> None:
    await trio.sleep_forever()


@ownership.remote
def hold_then_get(refs, gate):
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


async def _driver_owns_them_at_epoch_1(local, refs) -> None:
    """The head's log names the driver as the owner of every recoverable future, at the take-over's epoch."""
    logs = (await local.snapshot()).head["recovery_logs"]
    assert {oid: (log["owner"], log["epoch"]) for oid, log in logs.items()} == {
        r.object_id: (local.driver.address, 1) for r in refs
    }


async def _until_nothing_is_left(local, left: dict | None = None) -> None:
    """Wait until no object, copy, pull or lease is held anywhere, and the head
    logs nothing; ``left`` holds what the last look found otherwise."""
    while not ((snap := await local.snapshot()).is_empty() and not snap.head["recovery_logs"]):
        if left is not None:
            left.clear()
            left.update(_what_is_left(snap))
        await trio.sleep(0.1)


def _what_is_left(snap) -> dict:
    objects = {a: s["objects"] for a, s in snap.workers.items() if s.get("objects")}
    tasks = {a: s["submitter"]["tasks"] for a, s in snap.workers.items() if s.get("submitter", {}).get("tasks")}
    running = {a: s["executor"]["running"] for a, s in snap.workers.items() if s.get("executor", {}).get("running")}
    leases = {n: s["scheduler"]["leases"] for n, s in snap.nodes.items() if s.get("scheduler", {}).get("leases")}
    stored = {n: v for n, v in snap.stored().items() if v}
    found = {"objects": objects, "tasks": tasks, "running": running, "leases": leases, "stored": stored, "logs": snap.head["recovery_logs"]}
    return {k: v for k, v in found.items() if v}


async def test_recoverable_futures_survive_the_sigkill_of_their_owner_tcp():
    async with cluster(nodes=1, num_cpus=6, node_timeout=2.0, dashboard=False) as local:
        driver = local.driver.core
        stage = "the owner's futures"
        left: dict = {}
        try:
            with trio.fail_after(120):
                pid, refs, [default] = await owner_task.remote()
                gate = hang.remote()
                holders = [hold_then_get.remote(refs, [gate]) for _ in range(2)]
                keeper = Keeper.remote()
                stage = "the actor to keep them"
                assert await keeper.keep.remote(refs) == 3
                # Both holders run (and hold the refs) before the owner dies.
                stage = "both holders to run"
                while sum(1 for t in driver.submitter.tasks.values() if t.spec.name == "hold_then_get" and t.state == "running") < 2:
                    await trio.sleep(0.02)
                local.kill_worker(pid)
                stage = "the driver's take-over of the three"
                while driver.takeover.completed < 3:
                    await trio.sleep(0.02)
                ownership.cancel(gate)
                stage = "the holders' gets"
                assert [await h for h in holders] == [EXPECTED, EXPECTED]
                stage = "the actor's get"
                assert await keeper.values.remote() == EXPECTED
                stage = "the default future's OwnerDiedError"
                with pytest.raises(ownership.OwnerDiedError):
                    await default
                await _driver_owns_them_at_epoch_1(local, refs)
                stage = "the actor to drop them"
                await keeper.drop.remote()
                del refs, holders, default, gate, keeper
                gc.collect()
                stage = "nothing left anywhere"
                await _until_nothing_is_left(local, left)
        except trio.TooSlowError:
            # Name the wait that hung, what the take-over still waits for, and what is left.
            raise AssertionError(
                f"no progress in 120 s waiting for {stage}; take-over: {driver.takeover.snapshot()}; left: {left}"
            ) from None


NEAR, FAR = {"near": 8.0}, {"far": 1.0}


async def test_recoverable_futures_survive_an_owner_falsely_declared_dead_tcp():
    """A false suspicion, end to end: the node of the owner's worker hangs
    (SIGSTOP) past the heartbeat timeout, and the owner is declared dead
    while it lives. The driver takes its recoverable futures over at a new
    epoch and every holder (on the other node) gets the right values; the
    default future fails with OwnerDiedError. When the node runs again it is
    told it is dead and exits with the stale owner; nothing is left."""
    async with cluster(nodes=1, num_cpus=6, node_timeout=1.0, resources=NEAR, dashboard=False) as local:
        far = await local.add_node(num_cpus=3, resources=FAR)
        driver = local.driver.core
        near = {"near": 1.0}
        with trio.fail_after(120):
            pid, refs, [default] = await owner_task.options(resources=FAR).remote()
            gate = hang.options(resources=near).remote()
            holders = [hold_then_get.options(resources=near).remote(refs, [gate]) for _ in range(2)]
            keeper = Keeper.options(resources=near).remote()
            assert await keeper.keep.remote(refs) == 3
            while sum(1 for t in driver.submitter.tasks.values() if t.spec.name == "hold_then_get" and t.state == "running") < 2:
                await trio.sleep(0.02)
            local.kill(far, signal.SIGSTOP)
            try:
                while driver.takeover.completed < 3:
                    await trio.sleep(0.02)
                assert local.alive(far) and pid_alive(pid), "declared dead while it lives: the false suspicion"
                ownership.cancel(gate)
                assert [await h for h in holders] == [EXPECTED, EXPECTED]
                assert await keeper.values.remote() == EXPECTED
                with pytest.raises(ownership.OwnerDiedError):
                    await default
            finally:
                local.kill(far, signal.SIGCONT)
            # Told it is dead, the node exits with its workers, the stale owner among them.
            assert await local.wait_exit(far) == 3
            while pid_alive(pid):
                await trio.sleep(0.02)
            await _driver_owns_them_at_epoch_1(local, refs)
            await keeper.drop.remote()
            del refs, holders, default, gate, keeper
            gc.collect()
            await _until_nothing_is_left(local)
