"""Workloads on real processes over TCP: tasks, nested tasks, actors, refs, failures."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import cloudpickle
import pytest
import trio

import ownership
from ownership.runtime.cluster import connect

pytestmark = pytest.mark.slow

# Workers cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ownership.remote
def add(a, b):
    return a + b


@ownership.remote
def nested(x):
    return ownership.get(add.remote(x, 1)) * 2


@ownership.remote
def where():
    return os.getpid(), os.getppid()


@ownership.remote
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self, k):
        self.n += k
        return self.n, os.getppid()


@ownership.remote(max_retries=1)
def die_once(marker: str):
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return "second attempt", os.getpid()


async def test_tasks_nested_tasks_and_actor_over_tcp(running_cluster):
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            assert await add.remote(1, 2) == 3
            assert await nested.remote(3) == 8
            counter = Counter.remote()
            assert (await counter.incr.remote(2))[0] == 2
            n, actor_node = await counter.incr.remote(3)
            assert n == 5 and actor_node in running_cluster.pids.values()
            workers = await ownership.get([where.remote() for _ in range(8)])
            # Workers are children of the nodes that run them.
            assert {ppid for _, ppid in workers} <= {running_cluster.pids[n] for n in running_cluster.nodes}


async def test_sigkilled_worker_task_is_retried(running_cluster, tmp_path):
    marker = tmp_path / "died"
    async with connect(running_cluster.nodes[0], token_file=running_cluster.token_file):
        with trio.fail_after(60):
            result, pid = await die_once.remote(str(marker))
    assert result == "second attempt"
    assert int(marker.read_text()) != pid  # the first worker died; another ran the retry
