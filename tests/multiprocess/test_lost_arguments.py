"""A task's argument lost while the task is leased, over TCP with real processes.

The driver's node has no CPU; two one-CPU nodes run the tasks. The node
holding x's only copy is SIGKILLed just as x's dependent is leased on the
other: the owner may still name the dead node, and the rebuild of x needs
the one CPU the dependent holds while it waits.
"""

from __future__ import annotations

import gc
import signal
import sys

import cloudpickle
import numpy as np
import pytest
import trio

import ownership
from ownership.runtime.cluster import cluster

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])

N = 2**18  # 2 MiB of float64: stored at the node that makes it


@ownership.remote
def ones() -> np.ndarray:
    return np.ones(N)


@ownership.remote
def total(v: np.ndarray) -> float:
    return float(v.sum())


@ownership.remote
def doubled(v: np.ndarray) -> np.ndarray:
    return v * 2


async def two_one_cpu_nodes(local) -> dict[str, str]:
    """Two more nodes of one CPU each; node -> the resource only it offers."""
    pins = {}
    for name in ("left", "right"):
        pins[await local.add_node(num_cpus=1, resources={name: 1})] = name
    return pins


async def stored_at(owner, ref) -> str:
    """The node holding ``ref``'s copy, once its owner knows it."""
    while not (where := owner.refs.table[ref.object_id].locations):
        await trio.sleep(0.02)
    [node] = where
    return node


async def test_one_cpu_node_rebuilds_the_lost_argument_of_its_leased_task():
    async with cluster(nodes=1, num_cpus=0, node_timeout=1.0) as local:
        owner = local.driver.core
        pins = await two_one_cpu_nodes(local)
        with trio.fail_after(90):
            x = ones.remote()
            holder = await stored_at(owner, x)
            [survivor] = [n for n in pins if n != holder]
            local.kill(holder, signal.SIGKILL)
            # x's dependent takes the survivor's only CPU, and the survivor is
            # the only node left to make x again.
            y = total.options(resources={pins[survivor]: 1}).remote(x)
            assert await y == float(N)
        assert await stored_at(owner, x) == survivor


async def test_put_dropped_by_the_driver_is_kept_for_its_dependents_rebuild():
    async with cluster(nodes=1, num_cpus=0, node_timeout=1.0) as local:
        owner = local.driver.core
        await two_one_cpu_nodes(local)
        with trio.fail_after(90):
            x = ownership.put(np.arange(N, dtype=np.float64))
            x_id = x.object_id
            y = doubled.remote(x)
            holder = await stored_at(owner, y)
            del x
            gc.collect()
            while owner.refs.table[x_id].local:
                await trio.sleep(0.02)
            local.kill(holder, signal.SIGKILL)
            value = await y
        assert value.shape == (N,) and float(value[3]) == 6.0
