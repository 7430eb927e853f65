"""Two "hosts" in network namespaces, each with its own address; one is cut off.

Needs root and a working ``ip netns``; skips, saying why, where that is not
available. The head and the first node live on host A, the second node on
host B; the driver runs on host A. Cutting B's link (no RST, no FIN: the
packets just stop) must be noticed through missed heartbeats, and the
tasks that ran on B must complete on A: nothing hangs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from ownership.runtime.auth import generate_token, write_token
from ownership.runtime.cluster import spawn_service

pytestmark = pytest.mark.slow


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@attrs.frozen
class Hosts:
    a: str  # namespace names
    b: str
    addr_a: str
    addr_b: str
    link_b: str  # host B's interface


@pytest.fixture
def two_hosts():
    if shutil.which("ip") is None:
        pytest.skip("two-host test needs the `ip` command (iproute2)")
    if os.geteuid() != 0:
        pytest.skip("two-host test needs root for `ip netns` (network namespaces)")
    tag = secrets.token_hex(3)
    ns_a, ns_b = f"own-{tag}-a", f"own-{tag}-b"
    probe = ip("netns", "add", ns_a)
    if probe.returncode != 0:
        pytest.skip(f"`ip netns add` does not work here: {probe.stderr.strip()}")
    try:
        subnet = f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(250) + 1}"
        link_a, link_b = f"oa{tag}", f"ob{tag}"
        steps = [
            ("netns", "add", ns_b),
            ("link", "add", link_a, "type", "veth", "peer", "name", link_b),
            ("link", "set", link_a, "netns", ns_a),
            ("link", "set", link_b, "netns", ns_b),
            ("-n", ns_a, "addr", "add", f"{subnet}.1/24", "dev", link_a),
            ("-n", ns_b, "addr", "add", f"{subnet}.2/24", "dev", link_b),
            ("-n", ns_a, "link", "set", link_a, "up"),
            ("-n", ns_b, "link", "set", link_b, "up"),
            ("-n", ns_a, "link", "set", "lo", "up"),
            ("-n", ns_b, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot build the two-host network (`ip {' '.join(step)}`): {done.stderr.strip()}")
        yield Hosts(ns_a, ns_b, f"{subnet}.1", f"{subnet}.2", link_b)
    finally:
        ip("netns", "del", ns_a)
        ip("netns", "del", ns_b)


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def read_line(proc: subprocess.Popen, prefix: str, timeout: float) -> str:
    """The driver's first stdout line starting with ``prefix``, waiting at most ``timeout``."""
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            for line in buf.split(b"\n")[:-1]:
                if line.decode().startswith(prefix):
                    return line.decode()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {prefix!r} line within {timeout} s")
            if sel.select(remaining):
                data = os.read(proc.stdout.fileno(), 65536)
                if not data:
                    raise RuntimeError(f"driver exited ({proc.wait()}) before printing {prefix!r}")
                buf += data


def test_host_cut_off_is_detected_and_its_tasks_rerun(two_hosts, tmp_path):
    token_file = write_token(generate_token(), tmp_path / "cluster.token")
    marks, gate = tmp_path / "marks", tmp_path / "gate"
    marks.mkdir()
    on_a = ("ip", "netns", "exec", two_hosts.a)
    on_b = ("ip", "netns", "exec", two_hosts.b)
    common = ("--tick", "0.1", "--node-timeout", "1", "--num-cpus", "2")
    procs: list[subprocess.Popen] = []
    try:
        head, head_addr = spawn_service("head", token_file, "--host", two_hosts.addr_a, "--tick", "0.1", "--node-timeout", "1", prefix=on_a)
        procs.append(head)
        node_a, addr_a = spawn_service("node", token_file, "--host", two_hosts.addr_a, "--head", head_addr, *common, prefix=on_a)
        procs.append(node_a)
        node_b, addr_b = spawn_service("node", token_file, "--host", two_hosts.addr_b, "--head", head_addr, *common, prefix=on_b)
        procs.append(node_b)
        assert addr_b.startswith(two_hosts.addr_b + ":")

        program = Path(__file__).with_name("driver_programs.py")
        driver = subprocess.Popen(
            [*on_a, sys.executable, str(program), "two-hosts", addr_a, str(token_file), str(marks), str(gate), "4"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        procs.append(driver)
        read_line(driver, "PLACED", 90)
        placed = {int(p.name.split("-")[0]): int(p.read_text()) for p in marks.glob("[0-9]*")}
        on_host_b = sorted(i for i, ppid in placed.items() if ppid == node_b.pid)
        assert len(on_host_b) == 2, placed  # two of four tasks run on host B

        assert ip("-n", two_hosts.b, "link", "set", two_hosts.link_b, "down").returncode == 0
        gate.touch()
        result = json.loads(read_line(driver, "RESULT", 90).split(" ", 1)[1])
        assert result == {"warmup": [3, 8, 1, 2], "values": [0, 10, 20, 30]}
        reruns = {int(p.name.split("-")[0]) for p in marks.glob("[0-9]*") if int(p.read_text()) == node_a.pid}
        assert set(on_host_b) <= reruns  # host B's tasks ran again on host A
    finally:
        stop(procs)


def test_driver_on_another_host_connects_to_the_head(two_hosts, tmp_path):
    """The head and a node on host A; a driver on host B, with nothing but the
    token in its OWNERSHIP_HOME, attaches by the head's address and gets a
    task's value and output back (workers dial it on B's address)."""
    token_file = write_token(generate_token(), tmp_path / "cluster.token")
    home_b = tmp_path / "b"
    write_token(bytes.fromhex(token_file.read_text().strip()), home_b / "cluster.token")
    on_a = ("ip", "netns", "exec", two_hosts.a)
    on_b = ("ip", "netns", "exec", two_hosts.b)
    procs: list[subprocess.Popen] = []
    try:
        head, head_addr = spawn_service("head", token_file, "--host", two_hosts.addr_a, "--tick", "0.1", prefix=on_a)
        procs.append(head)
        node, node_addr = spawn_service(
            "node", token_file, "--host", two_hosts.addr_a, "--head", head_addr, "--num-cpus", "1", prefix=on_a
        )
        procs.append(node)
        program = Path(__file__).with_name("driver_programs.py")
        # The head's bare HOST:PORT, as a person sets it (head_addr is its identity).
        env = {**os.environ, "OWNERSHIP_HOME": str(home_b), "OWNERSHIP_ADDRESS": head_addr.partition("#")[0]}
        driver = subprocess.Popen(
            [*on_b, sys.executable, str(program), "from-elsewhere"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        procs.append(driver)
        out, _ = driver.communicate(timeout=90)
        assert driver.returncode == 0
        lines = out.decode().splitlines()
        result = json.loads(next(line for line in lines if line.startswith("RESULT ")).split(" ", 1)[1])
        assert result["node"] == node_addr and result["value"] == 42
        assert result["driver"].startswith(two_hosts.addr_b + ":")  # it listens where host A can reach it
        assert f"(where_am_i pid={result['pid']}) task got 41" in lines
    finally:
        stop(procs)
