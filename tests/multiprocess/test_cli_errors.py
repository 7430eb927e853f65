"""CLI mistakes are quick single lines (exit 2), interrupts leave nothing behind.

Every run is the real ``ownership`` command in a subprocess with a private
OWNERSHIP_HOME, bounded by a timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ownership.runtime.auth import generate_token, write_token
from ownership.runtime.launch import service_command

pytestmark = pytest.mark.slow


def test_start_address_where_nothing_listens_fails_in_one_line(tmp_path, cli):
    home = tmp_path / "home"
    write_token(generate_token(), home / "cluster.token")
    run = cli.ownership(home, "start", "--address", "127.0.0.1:1", timeout=30)
    cli.assert_one_line_error(run, "cannot connect to 127.0.0.1:1", "connection refused")
    assert run.seconds < 10
    assert not (home / "session.json").exists()  # nothing was started, nothing recorded
    assert cli.processes_with(str(home)) == []


@pytest.mark.parametrize(
    ("address", "says"),
    [("foo", "'foo' is not a HOST:PORT address"), ("foo:1234", "unknown host 'foo'"), ("127.0.0.1:99999", "not a HOST:PORT")],
)
def test_start_address_that_is_no_address_fails_in_one_line(tmp_path, cli, address, says):
    home = tmp_path / "home"
    write_token(generate_token(), home / "cluster.token")
    run = cli.ownership(home, "start", "--address", address, timeout=30)
    cli.assert_one_line_error(run, says)
    assert run.seconds < 10


def test_start_address_of_a_node_names_the_head(running_cluster, tmp_path, cli):
    home = cli.second_machine(tmp_path / "other", Path(running_cluster.token_file))
    run = cli.ownership(home, "start", "--address", running_cluster.nodes[0], timeout=30)
    cli.assert_one_line_error(run, f"{running_cluster.nodes[0]} is a node process", f"head of its cluster is {running_cluster.head}")
    assert run.seconds < 10
    assert cli.processes_with(str(home)) == []


def test_node_whose_head_does_not_answer_exits_with_one_error(tmp_path):
    token_file = write_token(generate_token(), tmp_path / "cluster.token")
    command = service_command("node", token_file, "--head", "127.0.0.1:1", "--num-cpus", "1", "--session", "t0")
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert time.monotonic() - started < 10
    errors = [line for line in done.stderr.splitlines() if " WARNING: " in line or " ERROR: " in line]
    assert any("cannot reach" in line and "127.0.0.1:1" in line for line in errors), done.stderr
    assert len(errors) <= 3, done.stderr  # not one "unreachable" line per tick
    assert "Traceback" not in done.stderr


def test_status_and_memory_mistakes_are_one_line(running_cluster, tmp_path, cli):
    head = running_cluster.head
    empty = tmp_path / "empty"
    empty.mkdir()
    cli.assert_one_line_error(cli.ownership(empty, "status"), "no cluster to connect to")
    cli.assert_one_line_error(cli.ownership(empty, "status", "--address", head), f"no cluster token at {empty / 'cluster.token'}")
    cli.assert_one_line_error(cli.ownership(empty, "memory", "--address", "nonsense"), "'nonsense' is not a HOST:PORT address")

    wrong = tmp_path / "wrong"
    write_token(generate_token(), wrong / "cluster.token")
    run = cli.ownership(wrong, "status", "--address", head)
    cli.assert_one_line_error(run, "the cluster token does not match")
    assert run.seconds < 10

    right = cli.second_machine(tmp_path / "right", Path(running_cluster.token_file))
    run = cli.ownership(right, "status", "--address", "127.0.0.1:1")
    cli.assert_one_line_error(run, "cannot connect to 127.0.0.1:1")
    run = cli.ownership(right, "memory", "--address", running_cluster.nodes[0])
    cli.assert_one_line_error(run, "is a node process, not a cluster's head")
    os.chmod(right / "cluster.token", 0o644)
    cli.assert_one_line_error(cli.ownership(right, "status", "--address", head), "the cluster token must be private")
    run = cli.ownership(right, "status", "--address", head, "--token-file", str(tmp_path / "missing"))
    cli.assert_one_line_error(run, f"no cluster token at {tmp_path / 'missing'}")


def test_start_head_twice_is_one_line(tmp_path, cli):
    home = tmp_path / "home"
    try:
        assert cli.ownership(home, "start", "--head", "--num-cpus", "1").code == 0
        run = cli.ownership(home, "start", "--head")
        cli.assert_one_line_error(run, "a cluster is already running here", cli.session(home)["head"])
    finally:
        cli.stop_all(home)


@pytest.mark.parametrize(("sig", "code", "says"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_start_interrupted_stops_what_it_started(tmp_path, cli, sig, code, says):
    home = tmp_path / "home"
    # Ctrl-C as in a terminal: tests started in the background (`make test &`)
    # ignore SIGINT, and a child started so ignores it too (Python makes it
    # KeyboardInterrupt only where it was not ignored at startup); start
    # then ran on to the end, or waited for a node held stopped.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ownership.cli", "start", "--head", "--num-cpus", "1"],
            env=cli.env_for(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        # The head is up and the node has been spawned: start is waiting for it.
        cli.wait_until(
            lambda: (home / "session.json").exists() and cli.session(home).get("head") and cli.session(home).get("starting"),
            60,
            "the node's spawn",
        )
        # Held stopped, the node cannot come up before the signal; stopping
        # what start started must still end it.
        os.kill(int(cli.session(home)["starting"][0]), signal.SIGSTOP)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err
    assert err.strip().splitlines() == [f"ownership start: {says}"]
    assert "Started" not in out
    cli.wait_until(lambda: cli.processes_with(str(home)) == [], 20, "every process of the interrupted start stopping")
    assert not (home / "session.json").exists()


def test_stop_knows_the_processes_of_a_killed_start(tmp_path, cli):
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ownership.cli", "start", "--head", "--num-cpus", "1"],
        env=cli.env_for(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        cli.wait_until(
            lambda: (home / "session.json").exists() and cli.session(home).get("head") and cli.session(home).get("starting"),
            60,
            "the node's spawn",
        )
        proc.kill()  # no chance to clean up: the session file must name what it started
        proc.wait(timeout=10)
        assert cli.processes_with(str(home))
        run = cli.ownership(home, "stop")
        assert run.code == 0 and "stopped 2 processes" in run.out, run
        cli.wait_until(lambda: cli.processes_with(str(home)) == [], 20, "every process stopping")
    finally:
        if proc.poll() is None:
            proc.kill()
        cli.stop_all(home)


def test_node_stops_when_its_head_is_gone(tmp_path, cli):
    """A head never comes back: a node that cannot reach it for as long as the
    head would take to declare the node dead stops, its workers with it, and
    says so without one warning per tick."""
    from ownership.runtime.cluster import spawn_service

    token_file = write_token(generate_token(), tmp_path / "cluster.token")
    common = ("--tick", "0.1", "--node-timeout", "1")
    log = tmp_path / "node.log"
    head, head_address = spawn_service("head", token_file, *common)
    node = None
    try:
        with open(log, "wb") as stderr:
            node, _ = spawn_service("node", token_file, *common, "--head", head_address, "--num-cpus", "2", stderr=stderr)
        assert len(cli.processes_with(str(token_file))) == 4  # head, node, 2 workers
        head.kill()
        head.wait(timeout=10)
        assert node.wait(timeout=20) == 1
        text = log.read_text()
        assert f"the head at {head_address} has been unreachable for 1 s: stopping" in text
        warnings = [line for line in text.splitlines() if " WARNING: " in line]
        assert len(warnings) <= 3, text  # ~10 dials failed: the first is logged, the rest counted
        cli.wait_until(lambda: cli.processes_with(str(token_file)) == [], 20, "the node's workers stopping")
    finally:
        for proc in (head, node):
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdin.close()
                proc.stdout.close()
