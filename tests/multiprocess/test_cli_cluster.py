"""`ownership start/status/memory/stop` with real daemons, and a driver attached with connect()."""

from __future__ import annotations

import gc
import json
import os
import stat
import sys

import cloudpickle
import numpy as np
import pytest
import trio

import ownership
from ownership.runtime.auth import load_token
from ownership.runtime.cluster import connect, session_file
from ownership.runtime.status import cluster_snapshot, memory_rows
from ownership.runtime.pids import pid_alive

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ownership.remote
def big(n):
    return np.ones(n)


async def cli(*args: str) -> str:
    result = await trio.run_process(
        [sys.executable, "-m", "ownership.cli", *args], capture_stdout=True, capture_stderr=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


async def test_cli_start_status_memory_stop(tmp_path, monkeypatch):
    """A cluster whose token is not at the default path, reached by the head's
    bare HOST:PORT: the session file (which names the head by identity)
    supplies the token to start, status and connect."""
    home = tmp_path / "home"
    monkeypatch.setenv("OWNERSHIP_HOME", str(home))  # the CLI children inherit it
    try:
        with trio.fail_after(120):
            token_file = tmp_path / "elsewhere" / "cluster.token"
            await cli("start", "--head", "--num-cpus", "1", "--token-file", str(token_file))
            session = json.loads(session_file().read_text())
            assert session["token_file"] == str(token_file)
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            assert not (home / "cluster.token").exists()
            bare = session["head"].partition("#")[0]
            assert bare != session["head"]
            await cli("start", "--address", bare, "--num-cpus", "1")
            joined = json.loads(session_file().read_text())
            assert joined["session"] == session["session"] and joined["head"] == session["head"]
            session = joined
            assert len(session["nodes"]) == 2 and all(pid_alive(p) for p in session["pids"].values())

            for address in ((), ("--address", bare)):
                status = json.loads(await cli("status", "--json", *address))
                assert sorted(n for n, rec in status["head"]["nodes"].items() if rec["alive"]) == sorted(session["nodes"])

            async with connect(bare) as driver:
                ref = big.remote(2**18)  # 2 MiB, stored at a node
                await ownership.wait([ref])
                rows = json.loads(await cli("memory", "--json"))
                (row,) = [r for r in rows if r["object_id"] == ref.object_id]
                assert row["owner"] == driver.address and row["owner_entry"]
                assert row["stored_at"] and row["size"] > 2 * 2**20 and row["local"] == 1
                del ref
                gc.collect()
                token = load_token(token_file)
                while memory_rows(await cluster_snapshot(token, session["head"])):
                    await trio.sleep(0.05)
            assert json.loads(await cli("memory", "--json")) == []

            out = await cli("stop")
            assert "stopped 3 processes" in out
            assert not any(pid_alive(p) for p in session["pids"].values())
            assert not session_file().exists()
    finally:
        if session_file().exists():
            await trio.run_process([sys.executable, "-m", "ownership.cli", "stop"], check=False)


@ownership.remote
def shout(text):
    print(text)
    print("to stderr", file=sys.stderr)
    return os.getpid()


@ownership.remote
def nbytes(array):
    return int(array.nbytes)


async def test_cli_driver_from_another_machine_and_without_an_address(tmp_path, monkeypatch, capsys, cli):
    """connect(HEAD) from a second OWNERSHIP_HOME holding only the token (a second
    machine's view, with its own node), connect() with no address, and the
    output of a task at the driver."""
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    try:
        with trio.fail_after(180):
            started = await trio.to_thread.run_sync(lambda: cli.ownership(home_a, "start", "--head", "--num-cpus", "1"))
            assert started.code == 0, started.err
            head = cli.session(home_a)["head"]  # its identity
            address = head.partition("#")[0]  # what a person types
            # `start --head` says what to do next, with the head's address.
            for step in (f"ownership start --address {address}", "ownership.connect()", f'ownership.connect("{address}")', "ownership status", "ownership stop"):
                assert step in started.out, started.out
            cli.second_machine(home_b, home_a / "cluster.token")
            joined = await trio.to_thread.run_sync(lambda: cli.ownership(home_b, "start", "--address", address, "--num-cpus", "1"))
            assert joined.code == 0 and f"joined the cluster whose head is {head}" in joined.out, joined
            assert cli.session(home_b)["head"] == head
            node_b = cli.session(home_b)["nodes"][0]

            # The second machine: a driver there cannot map the nodes' shared
            # memory, so its large values travel over TCP.
            monkeypatch.setenv("OWNERSHIP_HOME", str(home_b))
            monkeypatch.setattr("ownership.runtime.objects.machine_shm_id", lambda: "another-machine")
            monkeypatch.setattr("ownership.runtime.cluster.machine_shm_id", lambda: "another-machine")
            async with connect(address) as driver:
                assert driver.objects is not None and driver.objects.prefix is None
                array = await big.remote(2**18)  # 2 MiB back from a node, as bytes
                assert array.shape == (2**18,) and array.sum() == 2**18
                sent = ownership.put(np.ones(2**18))  # 2 MiB to the node, as bytes
                assert await nbytes.remote(sent) == 2**21
                assert driver.objects.stats.segments_mapped == 0 and driver.objects.stats.segments_written == 0
                pid = await shout.remote("hello from a task")
            monkeypatch.undo()
            captured = capsys.readouterr()
            assert f"(shout pid={pid}) hello from a task\n" in captured.out
            assert f"(shout pid={pid}) to stderr\n" in captured.err

            # No address: $OWNERSHIP_ADDRESS, else this machine's cluster.
            monkeypatch.setenv("OWNERSHIP_HOME", str(home_a))
            async with connect() as driver:
                assert driver.objects is not None and driver.objects.prefix is not None  # same machine: shared memory
                assert await shout.remote("again") > 0
            monkeypatch.setenv("OWNERSHIP_HOME", str(home_b))
            monkeypatch.setenv("OWNERSHIP_ADDRESS", address)
            async with connect() as driver:
                assert driver.core.node in (cli.session(home_a)["nodes"][0], node_b)
            monkeypatch.delenv("OWNERSHIP_ADDRESS")
            monkeypatch.setenv("OWNERSHIP_HOME", str(tmp_path / "nowhere"))
            with pytest.raises(ConnectionError, match="no cluster to connect to"):
                async with connect():
                    pass
    finally:
        monkeypatch.undo()
        await trio.to_thread.run_sync(lambda: (cli.stop_all(home_b), cli.stop_all(home_a)))


@ownership.remote
def gated(gate):
    import time

    while not os.path.exists(gate):
        time.sleep(0.02)
    return 1


@ownership.remote(resources={"GPU": 1})
def on_gpu():
    return 1


async def test_cli_status_and_memory_show_a_busy_cluster(tmp_path, monkeypatch, cli):
    home = tmp_path / "home"
    gate = tmp_path / "gate"
    try:
        with trio.fail_after(180):
            started = await trio.to_thread.run_sync(lambda: cli.ownership(home, "start", "--head", "--num-cpus", "1"))
            assert started.code == 0, started.err
            node = cli.session(home)["nodes"][0]
            monkeypatch.setenv("OWNERSHIP_HOME", str(home))
            async with connect() as driver:
                running = gated.remote(str(gate))
                queued = gated.remote(str(gate))
                infeasible = on_gpu.remote()
                stored = ownership.put(np.ones(2**18))  # 2 MiB in the node's shared memory
                token = load_token(home / "cluster.token")
                head = cli.session(home)["head"]

                def busy(snap) -> bool:
                    return any(w.get("running_details") for w in snap.workers.values())

                while not busy(await cluster_snapshot(token, head)):
                    await trio.sleep(0.05)
                status = await trio.to_thread.run_sync(lambda: cli.ownership(home, "status", COLUMNS="80"))
                memory = await trio.to_thread.run_sync(lambda: cli.ownership(home, "memory", COLUMNS="100"))
                gate.touch()
                assert await ownership.get([running, queued]) == [1, 1]
                del infeasible, stored
    finally:
        gate.touch()
        await trio.to_thread.run_sync(lambda: cli.stop_all(home))
    assert status.code == 0, status.err
    lines = status.out.splitlines()
    assert all(len(line) <= 80 for line in lines), status.out
    text = " ".join(status.out.split())
    # The header names the head as people type it; the session keeps its identity.
    assert f"cluster of head {head.partition('#')[0]}: 1 node alive, 1 worker (0 actors), 1 driver" in text
    assert node in status.out and driver.address in status.out  # whole addresses
    assert f"{driver.address} 1 driver" in text and "running gated" in text
    assert "total 1/1 CPU" in text
    assert "gated 1 1 CPU" in text and "a worker" in text
    assert "on_gpu 1 1 CPU, 1 GPU" in text and "infeasible" in text
    assert memory.code == 0, memory.err
    text = " ".join(memory.out.split())
    assert f"node {node}: 1 object, 2 MiB in shared memory" in text
    assert "2 MiB put() driver (pid" in text
    assert "gated() driver (pid" in text and "on_gpu() driver (pid" in text and "pending" in text
