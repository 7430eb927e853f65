"""A cluster of real processes, shared by the tests that only need a working one.

Tests that kill processes start their own cluster; the others attach a
driver to this one with ``ownership.runtime.cluster.connect``.

The ``cli`` fixture runs the real ``ownership`` command in a subprocess with a
private OWNERSHIP_HOME, every run bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

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


# -- the real `ownership` command ---------------------------------------------------


@attrs.frozen
class Run:
    code: int
    out: str
    err: str
    seconds: float


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OWNERSHIP_ADDRESS", "OWNERSHIP_LOG_LEVEL", "COLUMNS")}
    env["OWNERSHIP_HOME"] = str(home)
    env.update(extra)
    return env


def ownership(home: Path, *args: str, timeout: float = 90.0, **extra_env: str) -> Run:
    """``ownership ARGS`` with OWNERSHIP_HOME=home; bounded by ``timeout``."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ownership.cli", *args],
        env=env_for(home, **extra_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def session(home: Path) -> dict[str, Any]:
    return json.loads((home / "session.json").read_text())


def second_machine(home: Path, token_file: Path) -> Path:
    """An OWNERSHIP_HOME as another machine has it: nothing but a copy of the token."""
    home.mkdir(parents=True, exist_ok=True)
    write_token(bytes.fromhex(token_file.read_text().strip()), home / "cluster.token")
    return home


def processes_with(text: str) -> list[int]:
    """Pids of live processes whose command line mentions ``text`` (a token file path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in cmdline and state != "Z" and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true (a state another process reaches), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def stop_all(home: Path) -> None:
    if (home / "session.json").exists():
        ownership(home, "stop", timeout=60)
    if home.exists():
        shutil.rmtree(home, ignore_errors=True)


def assert_one_line_error(run: Run, *fragments: str) -> None:
    """Exit status 2, nothing on stdout, one line on stderr with every fragment, no traceback."""
    assert run.code == 2, (run.code, run.out, run.err)
    assert run.out == "", run.out
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def cli():
    """The helpers above, for tests (test modules cannot import each other here)."""
    names = ("Run", "env_for", "ownership", "session", "second_machine", "processes_with", "wait_until", "stop_all", "assert_one_line_error")
    return types.SimpleNamespace(**{n: globals()[n] for n in names})
