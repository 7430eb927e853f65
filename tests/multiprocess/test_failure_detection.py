"""Failure detection between OS processes: fast on a lost connection, fenced on a false suspicion."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
import trio

import ownership
from ownership.runtime.cluster import cluster
from ownership.runtime.pids import pid_alive

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])

FAR = {"far": 1.0}


def _wait_for_file(path: str, timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


@ownership.remote(resources={"far": 1.0}, max_retries=2)
def gated(x: int, marks: str, gate: str) -> tuple[int, int]:
    # Record where this attempt runs (worker pid, node pid), then wait at the gate.
    tmp = Path(marks, f".{os.getpid()}")
    tmp.write_text(str(os.getppid()))
    tmp.rename(Path(marks, str(os.getpid())))
    _wait_for_file(gate)
    return 7 * x, os.getppid()


async def _attempts(marks: Path, n: int) -> dict[int, int]:
    """Worker pid -> node pid of the first ``n`` attempts, once they started."""
    while True:
        found = {int(p.name): int(p.read_text()) for p in marks.glob("[0-9]*")}
        if len(found) >= n:
            return found
        await trio.sleep(0.02)


async def _declared_dead(owner, node: str) -> None:
    while node not in owner.dead_nodes:
        await trio.sleep(0.01)


async def test_killed_node_declared_dead_long_before_heartbeat_timeout(tmp_path):
    # A 60 s heartbeat timeout: only the lost connection and the probe can
    # make the death known within the bound below.
    async with cluster(nodes=1, num_cpus=1, node_timeout=60.0) as local:
        first = await local.add_node(num_cpus=1, resources=FAR)
        second = await local.add_node(num_cpus=1, resources=FAR)
        marks, gate = tmp_path / "marks", tmp_path / "gate"
        marks.mkdir()
        with trio.fail_after(60):
            ref = gated.remote(6, str(marks), str(gate))
            [(_, node_pid)] = (await _attempts(marks, 1)).items()
        victim, survivor = (first, second) if node_pid == local.pid(first) else (second, first)
        local.kill(victim, signal.SIGKILL)
        with trio.fail_after(10):
            await _declared_dead(local.driver.core, victim)
        gate.touch()
        with trio.fail_after(60):
            value, ran_on = await ref
        assert value == 42 and ran_on == local.pid(survivor)


async def test_node_declared_dead_while_alive_is_fenced_and_exits(tmp_path):
    """A false suspicion: the node hangs (SIGSTOP) past the heartbeat timeout
    and is declared dead while its process lives. When it runs again it is
    told so, and exits (status 3) with its workers, while its task has run
    again elsewhere with the right result."""
    async with cluster(nodes=1, num_cpus=1, node_timeout=1.0) as local:
        first = await local.add_node(num_cpus=1, resources=FAR)
        second = await local.add_node(num_cpus=1, resources=FAR)
        marks, gate = tmp_path / "marks", tmp_path / "gate"
        marks.mkdir()
        with trio.fail_after(60):
            ref = gated.remote(6, str(marks), str(gate))
            [(worker_pid, node_pid)] = (await _attempts(marks, 1)).items()
        victim, survivor = (first, second) if node_pid == local.pid(first) else (second, first)
        local.kill(victim, signal.SIGSTOP)
        try:
            with trio.fail_after(30):
                await _declared_dead(local.driver.core, victim)
                retried = await _attempts(marks, 2)  # the task runs again on the survivor
            assert local.alive(victim), "declared dead, yet its process lives: the false suspicion"
            assert {n for w, n in retried.items() if w != worker_pid} == {local.pid(survivor)}
        finally:
            local.kill(victim, signal.SIGCONT)
        with trio.fail_after(30):
            assert await local.wait_exit(victim) == 3
            while pid_alive(worker_pid):
                await trio.sleep(0.02)
        gate.touch()
        with trio.fail_after(60):
            value, ran_on = await ref
        assert value == 42 and ran_on == local.pid(survivor)
        snapshot = await local.snapshot()
        assert victim not in snapshot.nodes


def _cut_connections(pid: int, port: int) -> int:
    """Destroy every established TCP socket of process ``pid`` to local port
    ``port`` (``ss -K``: the kernel resets the peer's end too); how many."""
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", "dport", "=", f":{port}"], capture_output=True, text=True, check=True
    ).stdout
    local_ports = []
    for line in listing.splitlines():
        found = re.search(r":(\d+)\s", line)
        if f"pid={pid}," in line and found:
            local_ports.append(found.group(1))
    for lport in local_ports:
        subprocess.run(["ss", "-K", "state", "established", "sport", "=", f":{lport}", "dport", "=", f":{port}"], capture_output=True, check=True)
    return len(local_ports)


def _can_destroy_sockets() -> str | None:
    """Why ``ss -K`` cannot cut a connection here, or None when it can."""
    if shutil.which("ss") is None:
        return "ss (iproute2) is not installed"
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                _cut_connections(os.getpid(), server.getsockname()[1])
                try:
                    client.send(b"x")
                    client.recv(1)
                except OSError:
                    return None
    return "ss -K cannot destroy sockets here (it needs CAP_NET_ADMIN and a kernel with INET_DIAG_DESTROY)"


async def test_hung_node_whose_connection_drops_is_probed_dead_fenced_and_its_task_retried(tmp_path):
    """A false suspicion through the fast path: the node's connection to the
    head is cut while the node hangs (SIGSTOP), so the head's probes go
    unanswered and it is declared dead long before the 60 s heartbeat
    timeout. When it runs again it redials, is told it was declared dead,
    and exits (status 3) with its workers; its task has run elsewhere."""
    reason = _can_destroy_sockets()
    if reason is not None:
        pytest.skip(reason)
    async with cluster(nodes=1, num_cpus=1, node_timeout=60.0) as local:
        first = await local.add_node(num_cpus=1, resources=FAR)
        second = await local.add_node(num_cpus=1, resources=FAR)
        marks, gate = tmp_path / "marks", tmp_path / "gate"
        marks.mkdir()
        with trio.fail_after(60):
            ref = gated.remote(6, str(marks), str(gate))
            [(worker_pid, node_pid)] = (await _attempts(marks, 1)).items()
        victim, survivor = (first, second) if node_pid == local.pid(first) else (second, first)
        head_port = int(local.head.partition("#")[0].rpartition(":")[2])
        local.kill(victim, signal.SIGSTOP)
        try:
            assert _cut_connections(local.pid(victim), head_port) == 1
            with trio.fail_after(10):  # the probes' time, not the heartbeat timeout
                await _declared_dead(local.driver.core, victim)
                retried = await _attempts(marks, 2)
            assert local.alive(victim)
            assert {n for w, n in retried.items() if w != worker_pid} == {local.pid(survivor)}
        finally:
            local.kill(victim, signal.SIGCONT)
        with trio.fail_after(30):
            assert await local.wait_exit(victim) == 3
            while pid_alive(worker_pid):
                await trio.sleep(0.02)
        gate.touch()
        with trio.fail_after(60):
            value, ran_on = await ref
        assert value == 42 and ran_on == local.pid(survivor)


async def test_live_node_whose_connection_drops_answers_the_probe_and_stays(tmp_path):
    """A false suspicion cleared: the node's connection to the head is cut
    while the node is stopped, so the head sees the loss first and probes
    (had the node run on, its redial could replace the connection before the
    head read the reset, and no suspicion would arise: also correct, but not
    this path). The probe's window is 5 s; the node runs again as soon as
    the head suspects it, answers, and stays."""
    reason = _can_destroy_sockets()
    if reason is not None:
        pytest.skip(reason)
    async with cluster(nodes=1, num_cpus=1, node_timeout=60.0, config={"probe_timeout_ticks": 50}) as local:
        victim = await local.add_node(num_cpus=1, resources=FAR)
        head_port = int(local.head.partition("#")[0].rpartition(":")[2])
        local.kill(victim, signal.SIGSTOP)
        try:
            assert _cut_connections(local.pid(victim), head_port) == 1
            with trio.fail_after(10):
                # Short queries: the stopped node does not answer its own.
                while not (await local.snapshot(timeout=0.2)).head["nodes"][victim]["suspected"]:
                    await trio.sleep(0.02)
        finally:
            local.kill(victim, signal.SIGCONT)
        with trio.fail_after(30):
            while (await local.snapshot()).head.get("suspicions_cleared", 0) < 1:
                await trio.sleep(0.02)
            marks, gate = tmp_path / "marks", tmp_path / "gate"
            marks.mkdir()
            gate.touch()
            value, ran_on = await gated.remote(6, str(marks), str(gate))
        assert value == 42 and ran_on == local.pid(victim)
        head = (await local.snapshot()).head
        assert head["nodes"][victim]["alive"] and head["fenced"] == 0 and head["tcp"]["peers_lost"] >= 1
        assert victim not in local.driver.core.dead_nodes and local.alive(victim)


async def test_worker_whose_connection_to_its_node_drops_is_probed_and_keeps_its_task(tmp_path):
    """A reset connection between a node and a live worker is not the
    worker's death: the node probes it, it answers, and its task ends there,
    run once. (The node used to declare it dead at once: its owner retried
    the task elsewhere while it still ran, and Scheduling rejected a chaos
    run's event log at that SchedulerDetectWorkerDeath.)"""
    reason = _can_destroy_sockets()
    if reason is not None:
        pytest.skip(reason)
    async with cluster(nodes=1, num_cpus=1, node_timeout=60.0) as local:
        node = await local.add_node(num_cpus=1, resources=FAR)
        node_port = int(node.partition("#")[0].rpartition(":")[2])
        marks, gate = tmp_path / "marks", tmp_path / "gate"
        marks.mkdir()
        with trio.fail_after(60):
            ref = gated.remote(6, str(marks), str(gate))
            [(worker_pid, _)] = (await _attempts(marks, 1)).items()
        assert _cut_connections(worker_pid, node_port) == 1
        with trio.fail_after(30):
            while (await local.snapshot()).nodes[node]["worker_probes"]["answered"] < 1:
                await trio.sleep(0.02)
            gate.touch()
            value, ran_on = await ref
        assert value == 42 and ran_on == local.pid(node)
        assert len(list(marks.glob("[0-9]*"))) == 1, "run once"
        assert pid_alive(worker_pid) and not local.driver.core.dead_workers
