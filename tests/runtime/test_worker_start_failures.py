"""A worker that fails to start frees its slot: the node starts another, or sends its requests elsewhere."""

from __future__ import annotations

import sys

import trio

import ownership
from ownership.core.config import CoreConfig
from ownership.core.messages import RegisterWorker
from ownership.runtime.launch import ADDRESS_PREFIX, WorkerStartError
from ownership.runtime.process import SubprocessLauncher
from ownership.testing import memory_cluster


@ownership.remote
def double(x: int) -> int:
    return 2 * x


def failing_launches(cluster, node: str, count: int | None) -> list[str]:
    """Make the next ``count`` (None: every) worker starts of ``node`` fail; returns a log of them."""
    launch = cluster.launcher.launch
    failed: list[str] = []

    async def launch_or_fail(at: str) -> None:
        if at == node and (count is None or len(failed) < count):
            failed.append(at)
            raise WorkerStartError(f"start {len(failed)} of a worker for {at} failed")
        await launch(at)

    cluster.launcher.launch = launch_or_fail
    return failed


async def test_failed_start_frees_its_slot_and_another_worker_starts() -> None:
    async with memory_cluster(nodes=1, workers_per_node=1, tick_interval=None) as c:
        await c.settle()
        failed = failing_launches(c, "n1", 2)
        c.crash("w1@n1")
        with trio.fail_after(10):
            assert await double.remote(21) == 42
        s = c.nodes["n1"].core.scheduler
        assert len(failed) == 2 and s.starting == 0
        assert s.start_failures == 0, "a worker that registered resets the count"
        assert c.alive_workers("n1") == ["w2@n1"]


async def test_too_many_failed_starts_pause_and_requests_go_to_another_node() -> None:
    config = CoreConfig(max_worker_start_failures=3, worker_start_pause_ticks=5)
    async with memory_cluster(nodes=2, workers_per_node=1, tick_interval=None, config=config) as c:
        await c.settle()
        failed = failing_launches(c, "n1", None)
        c.crash("w1@n1")
        await c.settle()
        s = c.nodes["n1"].core.scheduler
        assert len(failed) == 3 and s.starting == 0 and s.start_paused
        # More tasks than n2 has room for: n1, which has the CPUs but cannot
        # start a worker, sends them on instead of queueing them for good.
        with trio.fail_after(10):
            assert await ownership.get([double.remote(i) for i in range(4)]) == [0, 2, 4, 6]
        assert not s.queue
        # The pause ends: one start is tried (and fails again, which pauses again).
        await c.advance(config.worker_start_pause_ticks)
        assert len(failed) == 4 and s.start_paused
        # Starting works again: the next try brings the pool back.
        c.launcher.launch = type(c.launcher).launch.__get__(c.launcher)
        await c.advance(config.worker_start_pause_ticks)
        assert c.alive_workers("n1") == ["w2@n1"] and not s.start_paused and s.start_failures == 0


async def test_worker_dying_between_its_hello_and_registration_is_replaced() -> None:
    async with memory_cluster(nodes=1, workers_per_node=1, auto=False, tick_interval=None) as c:
        net = c.network
        c.crash("w1@n1")
        await net.settle()
        # w2's hello reaches the node, which asks the head to register it...
        with trio.fail_after(10):
            while not any(e.src == "n1" and e.dst == "head" and isinstance(e.msg, RegisterWorker) for _, e in net.in_flight()):
                [(mid, _)] = [(mid, e) for mid, e in net.deliverable() if e.src in ("w2@n1", "n1")][:1] or [(None, None)]
                assert mid is not None, "w2's registration is not on its way"
                net.deliver(mid)
                await net.settle()
            # ...and dies before the head's answer is back.
            c.crash("w2@n1")
            await net.run_until_quiet()
            s = c.nodes["n1"].core.scheduler
            assert s.starting == 0 and "w2@n1" not in s.workers
            assert c.alive_workers("n1") == ["w3@n1"]
            ref = double.remote(21)
            await net.run_until_quiet()
            assert await ref == 42


class NeverStarts:
    """A launcher whose every start fails (a broken worker command, say)."""

    def __init__(self) -> None:
        self.tries = 0

    async def launch(self, node: str) -> None:
        self.tries += 1
        raise WorkerStartError("the worker command is broken")

    def kill(self, worker: str) -> None:
        pass


async def test_node_whose_workers_never_start_is_ready_after_the_failures_not_never() -> None:
    from ownership.runtime import node as node_service
    from ownership.runtime.memory import MemoryNetwork

    network = MemoryNetwork()
    launcher = NeverStarts()
    config = CoreConfig(max_worker_start_failures=3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(network.run)
        rt = await network.spawn(
            nursery, "n1", node_service.serve, head="head", resources=(("CPU", 2.0),), pool_size=2, launcher=launcher, config=config
        )
        with trio.fail_after(10):
            await rt.ready.wait()
        s = rt.core.scheduler
        assert s.start_paused and s.starting == 0 and not s.workers
        # Three failures in a row paused it; the pool's other start was under
        # way by then (and failed too): a bounded number of tries.
        assert launcher.tries == config.max_worker_start_failures + 1
        nursery.cancel_scope.cancel()


async def _start_expecting_failure(launcher: SubprocessLauncher, failures: list) -> None:
    try:
        await launcher.launch("127.0.0.1:8#00000008")
    except WorkerStartError as exc:
        failures.append(exc)


async def test_worker_killed_after_it_registered_but_before_it_was_ready_dies() -> None:
    """A worker says its address, registers, and can be leased and told to die
    (its owner died) before its ready line reaches the launcher: the kill
    must not be lost, or the worker and its lease stay forever."""
    address = "127.0.0.1:9#00000009"
    # Says its address, then never gets ready (as a worker between its hello and its ready line).
    script = f"import time; print({ADDRESS_PREFIX + address!r}, flush=True); time.sleep(120)"
    async with trio.open_nursery() as nursery:
        launcher = SubprocessLauncher(nursery, [sys.executable, "-c", script], startup_timeout=120)
        failures: list[WorkerStartError] = []
        with trio.fail_after(30):
            async with trio.open_nursery() as starting:
                starting.start_soon(_start_expecting_failure, launcher, failures)
                while not any(a == address for a in _announced(launcher)):  # it said its address
                    await trio.sleep(0.01)
                launcher.kill(address)
        [failure] = failures
        assert failure.worker == address and "signal SIGKILL" in str(failure)
        assert not launcher.starting and not launcher.workers


async def test_worker_killed_before_its_address_line_is_read_dies_when_it_is() -> None:
    address = "127.0.0.1:9#0000000a"
    script = f"import sys, time; sys.stdin.readline(); print({ADDRESS_PREFIX + address!r}, flush=True); time.sleep(120)"
    async with trio.open_nursery() as nursery:
        launcher = SubprocessLauncher(nursery, [sys.executable, "-c", script], startup_timeout=120)
        failures: list[WorkerStartError] = []
        with trio.fail_after(30):
            async with trio.open_nursery() as starting:
                starting.start_soon(_start_expecting_failure, launcher, failures)
                while not launcher.starting:
                    await trio.sleep(0.01)
                launcher.kill(address)  # its registration overtook its address line
                [proc] = launcher.starting.values()
                await proc.stdin.send_all(b"go\n")  # now it says its address
        [failure] = failures
        assert failure.worker == address and "signal SIGKILL" in str(failure)


def _announced(launcher: SubprocessLauncher) -> list[str]:
    """The addresses of workers that said them and are not ready yet."""
    return list(launcher._announced)


def test_a_worker_whose_node_died_while_it_started_exits_without_an_error(monkeypatch, caplog) -> None:
    """The node that started a worker is SIGKILLed before the worker writes
    its address line: the pipe has no reader. The worker exits quietly (its
    node's death is what the cluster already handles); a 6-minute chaos
    run counted the BrokenPipeError it used to log as an ERROR."""
    import logging
    import os

    from ownership.runtime import process

    read_end, write_end = os.pipe()
    os.close(read_end)
    pipe = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stdout", pipe)
    try:
        try:
            process._tell_parent(f"{ADDRESS_PREFIX}127.0.0.1:1#00000001")
        except process.ParentGone:
            pass
        else:
            raise AssertionError("a write to a pipe with no reader must raise ParentGone")
        pipe.write("later prints go to the log, not to the dead pipe\n")
        pipe.flush()  # no BrokenPipeError: the pipe's fd is stderr's now
    finally:
        pipe.close()

    async def starter_gone(args) -> int:
        raise process.ParentGone("the process that started us is gone")

    monkeypatch.setattr(process, "_run", starter_gone)
    with caplog.at_level(logging.INFO, logger="ownership.process"):
        code = process.main(["--role", "worker", "--token-file", "/nonexistent", "--node", "127.0.0.1:1"])
    assert code == 1
    assert [r.levelname for r in caplog.records if "started us is gone" in r.getMessage()] == ["INFO"], caplog.records
