"""Large values in a node's shared memory, with real processes over TCP.

A value made on node A is written by the producing worker straight into a
segment of A; a task on A maps that segment (no copy: its array is a
read-only view of /dev/shm, and the bytes never crossed a socket to the owner
or to A's node process); a task on B gets it through a pull, which B's node
keeps in a segment of its own: A's file under a second name (both nodes
share this machine's /dev/shm), or, with those links off, its bytes
received over TCP. Once the refs are dropped the segments are
gone and ``ownership memory`` lists nothing.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys

import cloudpickle
import numpy as np
import pytest
import trio

import ownership
from ownership.runtime.shm import SHM_DIR, list_segments
from ownership.runtime.status import memory_rows

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])

N = 10 * 2**20 // 8  # 10 MiB of float64
MiB = 2**20


def mapping_of(arr: np.ndarray) -> str | None:
    """The file mapped at the array's data, from this process's /proc/self/maps."""
    address = arr.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high:
                return fields[5].strip() if len(fields) > 5 else ""
    return None


@ownership.remote(resources={"A": 1})
def make(n, runs: str):
    with open(runs, "a") as f:  # one line per execution
        f.write(f"{os.getpid()}\n")
    return np.arange(n, dtype=np.float64)


def describe(arr):
    return {"sum": float(arr.sum()), "writeable": arr.flags.writeable, "mapping": mapping_of(arr), "node_pid": os.getppid()}


@ownership.remote(resources={"A": 1})
def read_on_a(arr):
    return describe(arr)


@ownership.remote(resources={"B": 1})
def read_on_b(arr):
    return describe(arr)


async def add_a_and_b(local) -> tuple[str, str]:
    """Two more nodes, offering A and B: where ``make`` and the readers run."""
    return await local.add_node(num_cpus=1, resources={"A": 1}), await local.add_node(num_cpus=1, resources={"B": 1})


def segment_of(mapping: str, session: str, node_pid: int) -> tuple[str, int]:
    """The segment name and the pid that wrote it, from a /dev/shm mapping of a node."""
    prefix = f"/dev/shm/own_{session}_{node_pid}_"
    assert mapping.startswith(prefix), mapping
    name = mapping.removeprefix("/dev/shm/").removesuffix(" (deleted)")
    writer = int(name.removeprefix(prefix.removeprefix("/dev/shm/")).split("-")[1])
    return name, writer


@pytest.mark.parametrize("links", [True, False], ids=["linked", "over-tcp"])
async def test_10_mib_array_is_mapped_on_its_node_and_pulled_to_another(tmp_path, monkeypatch, links):
    """Also: the copy outlives the worker that made it (it is the node's, as in
    Ray's plasma store): SIGKILLing that worker loses nothing, and nothing is
    recomputed. B takes A's segment under a name of its own (nodes of one
    machine), or, with links off, receives its bytes as from another machine."""
    monkeypatch.setenv("OWNERSHIP_LINK_NODE_SEGMENTS", "1" if links else "0")
    runs = tmp_path / "runs"
    expected = float(np.arange(N, dtype=np.float64).sum())
    async with ownership.cluster(nodes=1, num_cpus=1) as local:
        with trio.fail_after(120):
            a, b = await add_a_and_b(local)
            pid_a, pid_b, session = local.pid(a), local.pid(b), local.session
            ref = make.remote(N, str(runs))

            # On A: the reader maps the segment the producing worker wrote.
            on_a = await read_on_a.remote(ref)
            assert on_a["sum"] == expected and on_a["node_pid"] == pid_a
            assert on_a["writeable"] is False
            name, writer = segment_of(on_a["mapping"], session, pid_a)
            snap = await local.snapshot()
            assert writer in snap.nodes[a]["worker_pids"].values()  # a worker of A wrote it, not A
            assert snap.nodes[a]["shm"]["objects"] == {ref.object_id: name}
            assert snap.nodes[a]["store"][ref.object_id]["pinned"] is True
            # The 10 MiB crossed no socket: not to A's node process, not to the owner.
            assert snap.nodes[a]["tcp"]["bytes_received"] < MiB
            assert local.driver.transport.statistics().bytes_received < MiB

            # The producing worker dies; its value stays in A's shared memory.
            os.kill(writer, signal.SIGKILL)
            while writer in (await local.snapshot()).nodes[a]["worker_pids"].values():
                await trio.sleep(0.05)  # until A has seen the death (and published it)

            # On B: B's node pulled a copy from A into a segment of its own.
            on_b = await read_on_b.remote(ref)
            assert on_b["sum"] == expected and on_b["node_pid"] == pid_b and on_b["writeable"] is False
            name_b, writer_b = segment_of(on_b["mapping"], session, pid_b)
            assert writer_b == pid_b
            snap = await local.snapshot()
            assert snap.nodes[b]["store"][ref.object_id]["pinned"] is False  # a secondary copy
            assert snap.nodes[b]["shm"]["objects"] == {ref.object_id: name_b}
            if links:
                # A's file under B's name: not a byte crossed a socket.
                assert (SHM_DIR / name_b).stat().st_ino == (SHM_DIR / name).stat().st_ino
                assert snap.nodes[b]["shm"]["linked"] == {"segments": 1, "pulled": 1, "served": 0, "fallbacks": 0}
                assert snap.nodes[b]["tcp"]["bytes_received"] < MiB
            else:
                # Received straight into that segment, not into memory and then copied.
                assert snap.nodes[b]["shm"]["frames"] == {"received": 1, "adopted": 1, "reused": 0}
                assert snap.nodes[b]["shm"]["linked"]["pulled"] == 0
            assert sorted(local.driver.core.refs.table[ref.object_id].locations) == sorted([a, b])
            assert runs.read_text().split() == [str(writer)]  # made once: no reconstruction

            # The owner's own get maps a copy on its node too.
            got = await ref
            assert float(got.sum()) == expected and not got.flags.writeable
            segment_of(mapping_of(got), session, local.pid(local.nodes[0]))
            del got

            del ref
            gc.collect()
            # Every copy's segment goes; the spares a node keeps to write later
            # copies into (not values) go when the node stops, checked below.
            while memory_rows(await local.snapshot()) or [s for s in list_segments(f"own_{session}_") if "_spare." not in s.name]:
                await trio.sleep(0.05)
            result = await trio.run_process(
                [sys.executable, "-m", "ownership.cli", "memory", "--json", "--address", local.head, "--token-file", str(local.token_file)],
                capture_stdout=True,
                capture_stderr=True,
            )
            assert json.loads(result.stdout) == []
            snap = await local.snapshot()
            assert all(s["shm"]["segments"] == 0 and not s["store"] for s in snap.nodes.values())
    assert list_segments(f"own_{session}_") == []


async def test_a_copy_linked_by_another_node_outlives_the_node_that_made_it(tmp_path):
    """B linked A's segment; A is SIGKILLed and the sweep removes A's
    segments: B's copy is whole, and the owner's get reads it, not a rebuild."""
    runs = tmp_path / "runs"
    expected = float(np.arange(N, dtype=np.float64).sum())
    async with ownership.cluster(nodes=1, num_cpus=1) as local:
        with trio.fail_after(120):
            a, b = await add_a_and_b(local)
            pid_a = local.pid(a)
            ref = make.remote(N, str(runs))
            assert (await read_on_b.remote(ref))["sum"] == expected
            assert (await local.snapshot()).nodes[b]["shm"]["linked"]["pulled"] == 1
            local.kill(a, signal.SIGKILL)
            while a in local.driver.core.refs.table[ref.object_id].locations:
                await trio.sleep(0.05)  # until the owner has heard of A's death
            while list_segments(f"own_{local.session}_{pid_a}_"):
                await trio.sleep(0.05)  # until a node swept A's segments
            got = await ref
            assert float(got.sum()) == expected
            assert len(runs.read_text().split()) == 1  # made once: no reconstruction
            del got, ref


@ownership.remote
def describe_here(arr):
    return describe(arr)


async def test_an_array_passed_by_value_reaches_a_worker_of_the_node_by_segment():
    """Copied once at the call into a segment of the driver's node, and mapped
    by the worker: not sent through a socket. The copy is the value at the
    call, whatever the caller does with its array afterwards."""
    async with ownership.cluster(nodes=1, num_cpus=1) as local:
        with trio.fail_after(120):
            session, node_pid = local.session, local.pid(local.nodes[0])
            arr = np.arange(N, dtype=np.float64)
            expected = float(arr.sum())
            ref = describe_here.remote(arr)
            arr[:] = 0.0
            first = await ref
            assert first["sum"] == expected and first["writeable"] is False and first["node_pid"] == node_pid
            name, writer = segment_of(first["mapping"], session, node_pid)
            assert writer == os.getpid() and "_arg." in name  # the copy the driver made
            arr = np.arange(N, dtype=np.float64)
            got = await ownership.get([describe_here.remote(arr) for _ in range(4)])
            assert [g["sum"] for g in got] == [expected] * 4
            stats = local.driver.objects.stats
            assert stats.arguments_by_segment == 5 and local.driver.objects.arguments.fresh <= 5
            # Neither way did 10 MiB cross the driver's socket.
            assert local.driver.transport.statistics().bytes_sent < 4 * MiB
            snap = await local.snapshot()
            assert snap.nodes[local.nodes[0]]["shm"]["segments"] == 0  # the copies are not stored values
    assert list_segments(f"own_{session}_") == []
