"""Processes are identities: a node on a dead node's port is a new node; bare addresses resolve."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import cloudpickle
import pytest
import trio

import ownership
from ownership.runtime.auth import generate_token, load_token, parse_identity, write_token
from ownership.runtime.cluster import connect, spawn_service
from ownership.runtime.launch import service_command
from ownership.runtime.status import cluster_snapshot

from .conftest import stop

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])

TIMING = ("--tick", "0.1", "--node-timeout", "1")


@ownership.remote
def where(x):
    return x, os.getpid()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def alive_nodes(token: bytes, head: str) -> list[str]:
    snap = await cluster_snapshot(token, head)
    return sorted(n for n, rec in snap.head.get("nodes", {}).items() if rec.get("alive"))


async def test_node_on_a_dead_nodes_port_joins_as_a_new_node(tmp_path):
    token_file = write_token(generate_token(), tmp_path / "cluster.token")
    token = load_token(token_file)
    port = free_port()
    procs: list[subprocess.Popen] = []
    try:
        head, head_id = spawn_service("head", token_file, *TIMING)
        procs.append(head)
        # Started with the head's bare HOST:PORT, as a person would.
        bare_head = head_id.partition("#")[0]
        first, first_id = spawn_service("node", token_file, *TIMING, "--head", bare_head, "--port", str(port), "--num-cpus", "1")
        procs.append(first)
        assert parse_identity(first_id)[:2] == ("127.0.0.1", port)
        first.send_signal(signal.SIGKILL)
        first.wait()
        with trio.fail_after(30):
            while await alive_nodes(token, bare_head):
                await trio.sleep(0.2)  # polling the head's view: the head declares the death in its own time
        second, second_id = spawn_service("node", token_file, *TIMING, "--head", head_id, "--port", str(port), "--num-cpus", "1")
        procs.append(second)
        assert second_id != first_id and second_id.partition("#")[0] == first_id.partition("#")[0]
        with trio.fail_after(30):
            while await alive_nodes(token, head_id) != [second_id]:
                await trio.sleep(0.2)
        # A driver attached by the bare address runs on the new node's workers.
        async with connect(f"127.0.0.1:{port}", token_file=token_file):
            with trio.fail_after(60):
                results = await ownership.get([where.remote(i) for i in range(4)])
            snap = await cluster_snapshot(token, bare_head)
        assert [x for x, _ in results] == list(range(4))
        assert set(snap.nodes) == {second_id}
        assert {pid for _, pid in results} <= set(snap.nodes[second_id]["worker_pids"].values())
    finally:
        stop(procs)


def test_node_pointed_at_nothing_exits_with_one_clear_line(tmp_path):
    token_file = write_token(generate_token(), tmp_path / "cluster.token")
    done = subprocess.run(
        service_command("node", token_file, "--head", f"127.0.0.1:{free_port()}", "--num-cpus", "1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "ConnectionError: cannot reach 127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
