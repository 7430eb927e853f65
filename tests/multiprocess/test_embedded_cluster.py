"""ownership.cluster(): an embedded cluster of subprocesses, and node failures in it."""

from __future__ import annotations

import gc
import os
import signal
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import trio

import ownership
from ownership.runtime.cluster import cluster
from ownership.runtime.shm import list_segments
from ownership.runtime.pids import pid_alive

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ownership.remote
def square(x):
    return x * x, os.getppid()


@ownership.remote
def big(n):
    return np.ones(n)


@ownership.remote
def borrow_sum(ref):
    return float(ownership.get(ref).sum())


@ownership.remote
class Holder:
    def __init__(self):
        self.kept = []

    def keep(self, ref):
        self.kept.append(ref)  # an actor holding a borrowed ref
        return len(self.kept)


async def wait_empty(local, timeout: float = 30.0):
    """Poll the cluster's state (a real condition) until nothing is held anywhere."""
    with trio.fail_after(timeout):
        while True:
            snapshot = await local.snapshot()
            if snapshot.is_empty() and not snapshot.unreachable:
                return snapshot
            await trio.sleep(0.05)


async def test_embedded_cluster_runs_tasks_and_stops_everything():
    async with cluster(nodes=1, num_cpus=1) as local:
        pids = {address: local.pid(address) for address in [local.head, *local.nodes]}
        session_dir = local.session_dir
        assert (session_dir / "cluster.token").stat().st_mode & 0o777 == 0o600
        with trio.fail_after(60):
            results = await ownership.get([square.remote(i) for i in range(5)])
        assert [r for r, _ in results] == [0, 1, 4, 9, 16]
        assert {ppid for _, ppid in results} == {pids[local.nodes[0]]}
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not session_dir.exists()
    assert list_segments(f"own_{local.session}_") == []
    with pytest.raises(ownership.NoRuntimeError):
        square.remote(1)  # the driver is gone with the cluster


@ownership.remote
async def never():
    await trio.sleep_forever()


async def test_get_with_timeout_zero_returns_ready_values_over_tcp():
    # A ready value is returned at once, also with no time at all to wait;
    # only one not at hand is a timeout.
    async with cluster(nodes=1, num_cpus=2):
        with trio.fail_after(60):
            ref = ownership.put(41)
            assert await ownership.get(ref, timeout=0) == 41
            done = square.remote(3)
            await ownership.wait([done], timeout=30)
            [(nine, _node_pid), forty_one] = await ownership.get([done, ref], timeout=0)
            assert (nine, forty_one) == (9, 41)
            waiting = never.remote()
            with pytest.raises(ownership.GetTimeoutError):
                await ownership.get([done, waiting], timeout=0)
            ownership.cancel(waiting)


async def test_no_object_or_lease_left_after_the_workload(tmp_path):
    async with cluster(nodes=2, num_cpus=1) as local:
        with trio.fail_after(90):
            large = big.remote(2**18)  # 2 MiB: stored at a node
            holder = Holder.remote()
            assert await holder.keep.remote(ownership.shared(large)) == 1
            assert await borrow_sum.remote(ownership.shared(large)) == 2**18
            assert await ownership.get([square.remote(i) for i in range(3)])
            during = await local.snapshot()
            assert during.objects() and any(during.stored().values())
            del large, holder  # the last refs: the actor and its borrowed ref go too
            gc.collect()
            after = await wait_empty(local)
        assert after.objects() == {} and not any(after.stored().values())
        assert all(s["shm"]["segments"] == 0 for s in after.nodes.values())


def wait_for_file(path: str, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


@ownership.remote
def produce(i: int, marks: str, gate: str):
    # Record where this attempt runs (its node is our parent), then wait at the gate.
    tmp = Path(marks, f".{i}-{os.getpid()}")
    tmp.write_text(str(os.getppid()))
    tmp.rename(Path(marks, f"{i}-{os.getpid()}"))  # atomic: the test never reads half a mark
    wait_for_file(gate)
    return np.full(2**18, i, dtype=np.float64)  # 2 MiB: stored at the executing node


async def wait_placed(marks: Path, ids: range) -> dict[int, int]:
    """Task id -> node pid of its first attempt, once every task in ``ids`` started."""
    while True:
        placed: dict[int, int] = {}
        for p in marks.glob("[0-9]*"):
            i = int(p.name.split("-")[0])
            if i in ids:
                placed.setdefault(i, int(p.read_text()))
        if len(placed) == len(ids):
            return placed
        await trio.sleep(0.02)


async def test_killed_node_tasks_rerun_and_lost_objects_reconstructed(tmp_path):
    """SIGKILL the node holding the only copies of large objects (and running tasks).

    This is the issue's "kill the worker that holds the only copy": in our
    design, as in Ray's plasma store, a large value lives in its node's store
    (shared memory) and outlives the worker that produced it
    (test_shared_memory.py kills that worker and loses nothing), so the only
    copy dies with the node process. The owner reconstructs the lost objects
    from lineage, the interrupted tasks run again elsewhere, and get returns
    the right values.
    """
    marks, gate1, gate2 = tmp_path / "marks", tmp_path / "gate1", tmp_path / "gate2"
    marks.mkdir()
    async with cluster(nodes=2, num_cpus=2, node_timeout=1.0) as local:
        owner = local.driver.core
        victim = next(n for n in local.nodes if n != owner.node)
        victim_pid = local.pid(victim)
        with trio.fail_after(120):
            # Four tasks at once on 2 + 2 CPUs: two of them run on the victim.
            stored = [produce.remote(i, str(marks), str(gate1)) for i in range(4)]
            first = await wait_placed(marks, range(4))
            stored_on_victim = sorted(i for i, pid in first.items() if pid == victim_pid)
            assert len(stored_on_victim) == 2, first
            gate1.touch()
            # Finished, and nobody fetched them: the victim holds the only copies.
            while not all(owner.refs.table[r.object_id].locations for r in stored):
                await trio.sleep(0.02)

            running = [produce.remote(i, str(marks), str(gate2)) for i in range(4, 8)]
            second = await wait_placed(marks, range(4, 8))
            running_on_victim = sorted(i for i, pid in second.items() if pid == victim_pid)
            assert len(running_on_victim) == 2, second

            local.kill(victim, signal.SIGKILL)
            assert await local.wait_exit(victim) == -signal.SIGKILL
            # Its segments outlive it (nobody unlinked them) until the cluster exits.
            assert len(list_segments(f"own_{local.session}_{victim_pid}_")) >= 2
            gate2.touch()
            values = await ownership.get(stored + running)
        assert [float(v[0]) for v in values] == [float(i) for i in range(8)]
        assert all(v.shape == (2**18,) and float(v.sum()) == i * 2**18 for i, v in enumerate(values))
        # The lost objects and the interrupted tasks ran again, on the survivor.
        again = {int(p.name.split("-")[0]) for p in marks.glob("[0-9]*") if int(p.read_text()) != victim_pid}
        assert set(stored_on_victim + running_on_victim) <= again
    assert list_segments(f"own_{local.session}_") == []  # the dead node's leftovers too


def _state(pid: int) -> str | None:
    """The process's state letter (``Z`` for a zombie), None once it is reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


async def test_killed_node_is_reaped_and_live_nodes_remove_its_segments():
    """A SIGKILLed node leaves neither a zombie nor its shared-memory segments,
    though no node starts after it (which would remove them too)."""
    from ownership.runtime.shm import SharedMemoryStore

    async with cluster(nodes=2, num_cpus=1, node_timeout=1.0) as local:
        victim = local.nodes[1]
        pid = local.pid(victim)
        # What the killed node would have left: a segment under its pid.
        left = SharedMemoryStore(local.session, node_pid=pid).put("left-by-a-killed-node", b"x" * 64)
        local.kill(victim)
        with trio.fail_after(30):
            while _state(pid) is not None:  # reaped by the cluster, not left a zombie
                await trio.sleep(0.02)
            while any(s.name == left.name for s in list_segments(f"own_{local.session}_")):
                await trio.sleep(0.05)  # the survivor's sweep (every node_timeout) removes it


async def test_fault_hook_breaks_a_connection_on_sigusr2(monkeypatch):
    """With $OWNERSHIP_FAULT_CUTS every service breaks one of its connections per
    SIGUSR2 (ownership chaos --net-faults) and lives on. Whether work goes on
    after it depends on what the connection carried: a message lost with it
    is never resent (tests/chaos/test_chaos_findings.py), so no task is run here."""
    from ownership.runtime.process import FAULT_CUTS_ENV

    monkeypatch.setenv(FAULT_CUTS_ENV, "1")
    async with cluster(nodes=1, num_cpus=1) as local:
        with trio.fail_after(60):
            assert (await square.remote(3))[0] == 9
            node = local.nodes[0]
            before = (await local.snapshot()).nodes[node]["tcp"]["peers_lost"]
            os.kill(local.pid(node), signal.SIGUSR2)
            while (await local.snapshot()).nodes[node]["tcp"]["peers_lost"] == before:
                await trio.sleep(0.05)  # polling the node's own count
            assert local.alive(node)


@ownership.remote
def loaded(names):
    return [n for n in names if n in sys.modules]


async def test_workers_preload_the_modules_the_environment_names(monkeypatch, capfd):
    """$OWNERSHIP_PRELOAD: each worker imports them before it serves (a task
    that needs one later does not pay its import); one that fails is a
    warning, and the worker serves on."""
    from ownership.runtime.process import PRELOAD_ENV

    monkeypatch.setenv(PRELOAD_ENV, "no_such_module_here, wave")
    async with cluster(nodes=1, num_cpus=1):
        with trio.fail_after(60):
            while await loaded.remote(["wave", "numpy"]) != ["wave"]:
                await trio.sleep(0.02)  # a worker of the pool may still be starting
    err = capfd.readouterr().err
    assert "preloading no_such_module_here (OWNERSHIP_PRELOAD) failed: ModuleNotFoundError" in err


def test_preload_defaults_to_numpy_and_an_empty_setting_turns_it_off(monkeypatch):
    from ownership.runtime.process import PRELOAD_ENV, preload_modules

    monkeypatch.delenv(PRELOAD_ENV, raising=False)
    assert preload_modules() == ("numpy",)  # installed with the package's test extras
    monkeypatch.setenv(PRELOAD_ENV, "")
    assert preload_modules() == ()
    monkeypatch.setenv(PRELOAD_ENV, " pandas ,scipy.linalg,")
    assert preload_modules() == ("pandas", "scipy.linalg")
