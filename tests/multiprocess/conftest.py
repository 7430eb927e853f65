"""A cluster of real processes, shared by the tests that only need a working one.

Tests that kill processes start their own cluster; the others attach a
driver to this one with ``ownership.runtime.cluster.connect``.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess

import attrs
import pytest

from ownership.runtime.auth import generate_token, write_token
from ownership.runtime.cluster import spawn_service


@attrs.frozen
class RunningCluster:
    head: str
    nodes: tuple[str, ...]
    pids: dict
    token_file: str


def stop(procs: list[subprocess.Popen]) -> None:
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


@pytest.fixture(scope="session")
def running_cluster(tmp_path_factory):
    token_file = write_token(generate_token(), tmp_path_factory.mktemp("session") / "cluster.token")
    common = ["--tick", "0.1", "--node-timeout", "5"]
    session = secrets.token_hex(4)
    procs = []
    try:
        head, head_addr = spawn_service("head", token_file, *common)
        procs.append(head)
        nodes = []
        for _ in range(2):
            proc, address = spawn_service(
                "node", token_file, *common, "--head", head_addr, "--num-cpus", "2", "--session", session
            )
            procs.append(proc)
            nodes.append((address, proc.pid))
        yield RunningCluster(
            head=head_addr,
            nodes=tuple(a for a, _ in nodes),
            pids={head_addr: head.pid, **dict(nodes)},
            token_file=str(token_file),
        )
    finally:
        stop(procs)
