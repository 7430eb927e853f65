"""``make demo``: the model checks, then a workload on an embedded local cluster.

Run as ``python -m ownership.demo``. It prints each step as it happens and
the time it took:

1. model-check the Small configuration of every spec with TLC;
2. start an embedded cluster (head, two nodes, their workers: OS processes
   talking over TCP) and run nested tasks, an actor, and a large array passed
   by reference;
3. SIGKILL a worker in the middle of its task: the owner retries the task;
4. SIGKILL the node holding the only copy of a large object: the owner
   rebuilds it from lineage and ``get`` returns the right value;
5. a short conformance run (model traces replayed on the implementation)
   with its coverage line, when the conformance package is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import trio
from rich.console import Console

import ownership
from ownership.runtime.cluster import cluster

console = Console(highlight=False)

# Workers cannot import this module by name when it runs as __main__.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    console.print(f"[bold cyan]▶ {title}[/]")
    started = time.perf_counter()
    yield
    console.print(f"  [green]✓[/] {title} [dim]({time.perf_counter() - started:.2f} s)[/]")


def say(text: str) -> None:
    console.print(f"  {text}")


# --------------------------------------------------------------------- tasks


@ownership.remote
def square(x: int) -> int:
    return x * x


@ownership.remote
def sum_of_squares(n: int) -> int:
    # Nested tasks: this worker owns the futures it creates here.
    return sum(ownership.get([square.remote(i) for i in range(n)]))


@ownership.remote
class Counter:
    def __init__(self) -> None:
        self.total = 0

    def add(self, k: int) -> int:
        self.total += k
        return self.total


@ownership.remote
def make_array(n: int, fill: float):
    import numpy as np

    return np.full(n, fill)


@ownership.remote
def array_sum(array) -> float:
    return float(array.sum())


@ownership.remote(max_retries=2)
def dies_first_time(marker: str) -> tuple[str, int]:
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies in the middle of its task
    return "retried", os.getpid()


# --------------------------------------------------------------------- steps


def model_checks() -> bool:
    from ownership.tla.cli import run_check

    with step("model-check the Small configuration of every spec (TLC)"):
        args = argparse.Namespace(
            target=None,
            config="Small",
            workers=1,
            seed=None,
            depth=None,
            simulate=False,
            traces=None,
            timeout=None,
            all=True,
            spec_dir=REPO / "spec",
        )
        status = run_check(args, console)
    return status == 0


async def cluster_workload() -> None:
    import numpy as np

    with step("start an embedded cluster: head, 2 nodes, their workers (OS processes over TCP)"):
        stack = contextlib.AsyncExitStack()
        local = await stack.enter_async_context(cluster(nodes=2, num_cpus=2, node_timeout=1.0))
        say(f"head {local.head}, nodes {', '.join(local.nodes)}; this process is the driver")
    async with stack:
        with step("nested tasks: a task that submits 10 tasks and gets them"):
            say(f"sum of squares 0..9 = {await sum_of_squares.remote(10)}")

        with step("an actor: 5 calls in order"):
            counter = Counter.remote()
            totals = [await counter.add.remote(k) for k in range(1, 6)]
            say(f"running totals {totals}")
            del counter

        with step("a 10 MiB array passed by reference to 4 tasks"):
            array = make_array.remote(10 * 2**20 // 8, 1.0)
            sums = await ownership.get([array_sum.remote(array) for _ in range(4)])
            say(f"each task summed {sums[0]:.0f} elements without the driver fetching the array")
            del array

        with step("SIGKILL a worker in the middle of its task"), tempfile.TemporaryDirectory() as tmp:
            marker = Path(tmp) / "first-attempt"
            result, pid = await dies_first_time.remote(str(marker))
            say(f"worker {marker.read_text()} was killed; the owner retried the task on worker {pid}: {result!r}")

        with step("SIGKILL the node holding the only copy of a large object; rebuild it from lineage"):
            # A custom resource places the task on a node other than the
            # driver's: the driver learns of failures through its own node.
            holder = await local.add_node(num_cpus=1, resources={"store": 1})
            block = make_array.options(resources={"store": 1}).remote(2**20, 7.0)
            # A task on the same node reads it there; the driver never fetches
            # it, so the holder keeps the only copy.
            assert await array_sum.options(resources={"store": 1}).remote(block) == 7.0 * 2**20
            assert set(local.driver.core.refs.table[block.object_id].locations) == {holder}
            spare = await local.add_node(num_cpus=1, resources={"store": 1})
            say(f"the only copy is on {holder}; a spare node {spare} joins; killing {holder}")
            killed = time.perf_counter()
            local.kill(holder, signal.SIGKILL)
            await local.wait_exit(holder)
            value = await block
            assert isinstance(value, np.ndarray) and float(value.sum()) == 7.0 * 2**20
            say(f"reconstructed value returned {1000 * (time.perf_counter() - killed):.0f} ms after the kill")


def conformance_run() -> bool:
    from conformance.cli import _run_replay

    traces = sorted((REPO / "traces" / "Scheduling").glob("Reuse_*.itf.json"))
    with step(f"conformance: replay {len(traces)} Scheduling traces from TLC on the in-memory cluster"), tempfile.TemporaryDirectory() as tmp:
        args = argparse.Namespace(
            paths=[str(t) for t in traces], coverage=Path(tmp) / "coverage.json", timeout=60.0, no_shrink=False, verbose=True
        )
        status = _run_replay(args, console)
    return status == 0


def main() -> int:
    started = time.perf_counter()
    if not model_checks():
        console.print("[red]a model check failed; stopping the demo[/]")
        return 1
    trio.run(cluster_workload)
    if not conformance_run():
        console.print("[red]a conformance trace diverged[/]")
        return 1
    console.print(f"[bold green]demo finished in {time.perf_counter() - started:.1f} s[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
