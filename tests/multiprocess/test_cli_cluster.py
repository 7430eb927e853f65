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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_cli_start_status_memory_stop(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("OWNERSHIP_HOME", str(home))  # the CLI children inherit it
    try:
        with trio.fail_after(120):
            await cli("start", "--head", "--num-cpus", "1")
            session = json.loads(session_file().read_text())
            token_file = home / "cluster.token"
            assert session["token_file"] == str(token_file)
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
            await cli("start", "--address", session["head"], "--num-cpus", "1")
            session = json.loads(session_file().read_text())
            assert len(session["nodes"]) == 2 and all(_alive(p) for p in session["pids"].values())

            status = json.loads(await cli("status", "--json"))
            assert sorted(n for n, rec in status["head"]["nodes"].items() if rec["alive"]) == sorted(session["nodes"])

            async with connect(session["head"]) as driver:
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
            assert not any(_alive(p) for p in session["pids"].values())
            assert not session_file().exists()
    finally:
        if session_file().exists():
            await trio.run_process([sys.executable, "-m", "ownership.cli", "stop"], check=False)
