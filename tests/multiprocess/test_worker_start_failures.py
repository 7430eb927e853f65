"""Worker processes that die or fail while they start: the node frees the slot and goes on."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
import trio

import ownership
from ownership.runtime.auth import generate_token, load_token, write_token
from ownership.runtime.cluster import connect, spawn_service
from ownership.runtime.status import query_status
from ownership.runtime.tcp import open_tcp_transport

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])

COMMON = ("--tick", "0.1", "--node-timeout", "5")


@ownership.remote
def double(x: int) -> int:
    return 2 * x


@contextlib.contextmanager
def stopping(procs: list[subprocess.Popen]):
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the lifeline: a clean stop
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()


async def snapshot(token: bytes, address: str) -> dict:
    async with open_tcp_transport(token) as transport:
        replies = await query_status(transport, [address], timeout=10)
    return replies[address].snapshot


async def test_worker_killed_while_it_starts_is_replaced(tmp_path: Path) -> None:
    token_file = write_token(generate_token(), tmp_path / "cluster.token")
    token = load_token(token_file)
    with stopping([]) as procs:
        head, head_address = spawn_service("head", token_file, *COMMON)
        procs.append(head)
        node, node_address = spawn_service(
            "node", token_file, *COMMON, "--head", head_address, "--num-cpus", "1", "--session", secrets.token_hex(4)
        )
        procs.append(node)
        with trio.fail_after(60):
            [pid] = (await snapshot(token, node_address))["worker_pids"].values()
            os.kill(pid, signal.SIGKILL)
            # The node starts a replacement: kill that one while it starts.
            while not (starting := (await snapshot(token, node_address))["starting_pids"]):
                await trio.sleep(0.01)
            os.kill(starting[0], signal.SIGKILL)
            async with connect(node_address, token_file=token_file):
                assert await double.remote(21) == 42
                # (Inside: the driver's exit stops the worker it leased.)
                s = (await snapshot(token, node_address))["scheduler"]
            assert s["starting"] == 0 and s["start_failures"] == 0


async def test_node_whose_workers_cannot_start_sends_its_requests_on(tmp_path: Path) -> None:
    token = generate_token()
    # The same token in two files: the first node's workers read theirs,
    # which is gone by the time they start.
    lost_file, token_file = write_token(token, tmp_path / "lost.token"), write_token(token, tmp_path / "cluster.token")
    with stopping([]) as procs:
        head, head_address = spawn_service("head", token_file, *COMMON)
        procs.append(head)
        nodes = []
        for file in (lost_file, token_file):
            proc, address = spawn_service(
                "node", file, *COMMON, "--head", head_address, "--num-cpus", "1", "--session", secrets.token_hex(4)
            )
            procs.append(proc)
            nodes.append(address)
        broken, other = nodes
        os.unlink(lost_file)
        with trio.fail_after(60):
            [pid] = (await snapshot(token, broken))["worker_pids"].values()
            os.kill(pid, signal.SIGKILL)
            async with connect(broken, token_file=token_file):
                # More tasks than the other node has room for at once: the
                # broken node has the CPU but no worker, and sends them on.
                assert await ownership.get([double.remote(i) for i in range(4)]) == [0, 2, 4, 6]
                s = (await snapshot(token, broken))["scheduler"]
            assert s["starting"] == 0 and s["start_failures"] >= 3 and s["start_pause_left"] > 0
            assert not s["queue"]
