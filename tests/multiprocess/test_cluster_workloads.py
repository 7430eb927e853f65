"""Workloads on real processes over TCP: tasks, nested tasks, actors, refs, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
import trio
import trio.testing

import ownership
from ownership.runtime.cluster import connect

pytestmark = pytest.mark.slow

# Workers cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ownership.remote
def add(a, b):
    return a + b


@ownership.remote
def nested(x):
    return ownership.get(add.remote(x, 1)) * 2


@ownership.remote
def where():
    return os.getpid(), os.getppid()


@ownership.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self, k):
        self.n += k
        return self.n, os.getppid()


@ownership.remote(max_retries=1)
def die_once(marker: str):
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return "second attempt", os.getpid()


async def test_tasks_nested_tasks_and_actor_over_tcp(running_cluster):
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            assert await add.remote(1, 2) == 3
            assert await nested.remote(3) == 8
            counter = Counter.remote()
            assert (await counter.incr.remote(2))[0] == 2
            n, actor_node = await counter.incr.remote(3)
            assert n == 5 and actor_node in running_cluster.pids.values()
            workers = await ownership.get([where.remote() for _ in range(8)])
            # Workers are children of the nodes that run them.
            assert {ppid for _, ppid in workers} <= {running_cluster.pids[n] for n in running_cluster.nodes}


@ownership.remote
def thread_pool_settings():
    from ownership.runtime.process import WORKER_THREAD_VARS

    return {name: os.environ.get(name) for name in WORKER_THREAD_VARS}


async def test_worker_numerical_thread_pools_get_one_thread(running_cluster):
    """A worker runs one task per CPU beside the node's other workers: its
    OpenMP and BLAS pools get one thread each (the nodes were started with
    this test's environment, whose own settings win)."""
    from ownership.runtime.process import WORKER_THREAD_VARS

    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            got = await thread_pool_settings.remote()
    assert got == {name: os.environ.get(name, "1") for name in WORKER_THREAD_VARS}


async def test_sigkilled_worker_task_is_retried(running_cluster, tmp_path):
    """A worker SIGKILLed in the middle of a task: its node publishes the death,
    the owner resubmits the task, and another worker runs it."""
    marker = tmp_path / "died"
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            result, pid = await die_once.remote(str(marker))
    assert result == "second attempt"
    assert int(marker.read_text()) != pid  # the first worker died; another ran the retry


@ownership.remote
def total(arr):
    return float(arr.sum()), arr.nbytes


@ownership.remote
def make_array(n):
    import numpy as np

    return np.ones(n)


@ownership.remote
def read_shared(ref):
    # ``ref`` is the future itself (shared()), not its value: this task is a borrower.
    assert isinstance(ref, ownership.ObjectRef)
    return ownership.get(ref) + 1


async def test_shared_ref_makes_the_task_a_borrower(running_cluster):
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            ref = add.remote(10, 20)
            assert await read_shared.remote(ownership.shared(ref)) == 31


async def test_numpy_10_mib_by_reference_across_nodes(running_cluster):
    import numpy as np

    arr = np.arange(10 * 2**20 // 8, dtype=np.float64)
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            ref = ownership.put(arr)
            assert await total.remote(ref) == (float(arr.sum()), arr.nbytes)
            made = make_array.remote(10 * 2**20 // 8)
            assert await total.remote(made) == (float(10 * 2**20 // 8), 10 * 2**20)
            got = await made
            assert got.nbytes == 10 * 2**20 and float(got.sum()) == 10 * 2**20 // 8


def wait_for_file(path: str, timeout: float = 60.0) -> None:
    """Inside a task: block until the test creates ``path`` (a cross-process barrier)."""
    import time

    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


async def wait_for_files(paths, timeout: float = 60.0) -> None:
    """In the test: wait (polling a real condition) until every path exists."""
    with trio.fail_after(timeout):
        while not all(os.path.exists(p) for p in paths):
            await trio.sleep(0.02)


@ownership.remote
def pending_until(path: str):
    wait_for_file(path)
    return "released"


@ownership.remote
def owner_of_pending(path: str):
    # This worker owns the pending future and hands it out inside its value:
    # the caller becomes a borrower of a future owned by this process.
    return [pending_until.remote(path)], os.getpid()


async def test_borrower_waiting_on_killed_owner_gets_owner_died(running_cluster, tmp_path):
    release = str(tmp_path / "release")
    try:
        async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
            with trio.fail_after(60):
                (ref,), owner_pid = await owner_of_pending.remote(release)
                killed_at = []
                async with trio.open_nursery() as nursery:

                    async def borrower_get():
                        with pytest.raises(ownership.OwnerDiedError):
                            await ownership.get(ref)
                        return trio.current_time() - killed_at[0]

                    async def run():
                        elapsed.append(await borrower_get())

                    elapsed: list[float] = []
                    nursery.start_soon(run)
                    await trio.testing.wait_all_tasks_blocked()
                    killed_at.append(trio.current_time())
                    os.kill(owner_pid, signal.SIGKILL)
                # The node sees the owner's connection close at once and
                # publishes the death; no heartbeat timeout is involved.
                assert elapsed and elapsed[0] < 5.0, elapsed
    finally:
        Path(release).touch()  # let the orphaned task finish, so the shared cluster gets its CPU back


async def test_driver_exit_returns_its_leases(running_cluster, tmp_path):
    cpus = 2 * len(running_cluster.nodes)
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            # Each actor holds its lease, and here a CPU, for its whole life.
            actors = [Counter.options(num_cpus=1).remote() for _ in range(cpus)]
            await ownership.get([a.incr.remote(1) for a in actors])
    # The first driver is gone: its actors and leases with it. A new driver
    # can use every CPU again.
    release = str(tmp_path / "go")
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            refs = [pending_until.remote(release) for _ in range(cpus)]
            Path(release).touch()
            assert await ownership.get(refs) == ["released"] * cpus


async def test_driver_crash_returns_its_leases(running_cluster, tmp_path):
    cpus = 2 * len(running_cluster.nodes)
    program = Path(__file__).with_name("driver_programs.py")
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(program), "hold-actors", running_cluster.nodes[0], running_cluster.token_file, str(cpus)],
        stdout=subprocess.PIPE,
    )
    try:
        with trio.fail_after(60):
            assert (await proc.stdout.receive_some()).strip() == b"READY"  # its actors hold every CPU
        proc.kill()  # SIGKILL: no goodbye to anyone
        assert await proc.wait() == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()
    release = str(tmp_path / "go")
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            refs = [pending_until.remote(release) for _ in range(cpus)]
            Path(release).touch()
            assert await ownership.get(refs) == ["released"] * cpus
