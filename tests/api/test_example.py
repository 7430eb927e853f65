"""The README's in-memory example, run as a test so that it keeps working.

Nested tasks, an actor, ``shared()``, and a crash with recovery (lineage
reconstruction of a value lost with its node).
"""

from __future__ import annotations

import trio

import ownership
from ownership.core.config import CoreConfig


@ownership.remote
def square(x: int) -> int:
    return x * x


@ownership.remote
async def sum_of_squares(n: int) -> int:
    # Nested tasks: this worker owns the futures it creates here.
    return sum(await ownership.get([square.remote(i) for i in range(n)]))


@ownership.remote
class Accumulator:
    def __init__(self) -> None:
        self.total = 0

    async def add(self, ref) -> int:
        # `ref` arrives as a future (shared), not as its value: a borrower.
        self.total += await ref
        return self.total


@ownership.remote(resources={"gpu": 1}, max_retries=2)
def big_block(seed: int) -> bytes:
    return bytes([seed]) * (1 << 20)  # 1 MiB: kept in the node's object store


async def example() -> list:
    out = []
    config = CoreConfig(node_timeout_ticks=3)
    async with ownership.testing.memory_cluster(
        nodes=3, workers_per_node=2, seed=0, node_resources={"n2": {"gpu": 1}, "n3": {"gpu": 1}}, config=config
    ) as cluster:
        out.append(await sum_of_squares.remote(4))  # 0 + 1 + 4 + 9

        acc = Accumulator.remote()
        x = ownership.put(10)
        await acc.add.remote(ownership.shared(x))
        out.append(await acc.add.remote(ownership.shared(square.remote(3))))  # 10 + 9

        block = big_block.remote(7)
        assert len(await block) == 1 << 20
        # Crash the node holding the only copy; the owner rebuilds it from lineage.
        [holder] = [n for n, rt in cluster.nodes.items() if block.object_id in rt.core.store.objects]
        cluster.crash(holder)
        await cluster.detect_failures()
        out.append((await block)[:3])
    return out


async def test_readme_example_runs_with_recovery() -> None:
    with trio.fail_after(30):
        assert await example() == [14, 19, bytes([7, 7, 7])]
