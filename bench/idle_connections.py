"""What idle unauthenticated connections cost a node: its resident memory.

    python -m bench.idle_connections [--connections 1000] [--window 3]

Starts a head and a one-CPU node (their own token, in a temporary folder),
then opens ``--connections`` TCP connections to the node that send nothing,
as a scanner or a flood would. Prints the node's RSS (``VmRSS``) before, the
peak while they are open (sampled every 50 ms for ``--window`` seconds,
shorter than the 10 s handshake timeout), how many of them the node had
closed by then, and the RSS once they are all closed again.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ownership.runtime.auth import generate_token, write_token
from ownership.runtime.cluster import spawn_service
from ownership.runtime.tcp import parse_address


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def sample_peak(pid: int, seconds: float) -> float:
    peak, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, rss_mib(pid))
        time.sleep(0.05)
    return peak


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.idle_connections", description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--window", type=float, default=3.0, help="seconds to sample while the connections are open")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ownership-idle-") as tmp:
        token_file = write_token(generate_token(), Path(tmp) / "cluster.token")
        procs: list[subprocess.Popen] = []
        try:
            head, head_address = spawn_service("head", token_file)
            procs.append(head)
            node, node_address = spawn_service("node", token_file, "--head", head_address, "--num-cpus", "1")
            procs.append(node)
            before = sample_peak(node.pid, 1.0)
            host, port = parse_address(node_address)
            socks = [socket.create_connection((host, port)) for _ in range(args.connections)]
            peak = sample_peak(node.pid, args.window)
            closed = sum(closed_by_peer(s) for s in socks)
            for s in socks:
                s.close()
            time.sleep(args.window)  # let the node see them go
            after = rss_mib(node.pid)
        finally:
            for proc in procs:
                proc.stdin.close()  # the lifeline: a clean stop
            for proc in procs:
                proc.wait(timeout=30)
    print(f"node RSS before: {before:.1f} MiB")
    print(f"with {args.connections} idle unauthenticated connections: {peak:.1f} MiB (peak; {closed} closed by the node)")
    print(f"after they closed: {after:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
