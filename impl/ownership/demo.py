"""``make demo``: the model checks, then a workload on an embedded local cluster.

Run as ``python -m ownership.demo``. It prints each step as it happens and
the time it took:

1. model-check the Small configuration of every spec with TLC;
2. start an embedded cluster (head, two nodes, their workers: OS processes
   talking over TCP), print its dashboard's URL, and run nested tasks, an
   actor, a large array passed by reference, a task that raises, and a
   future an actor borrows;
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


@ownership.remote(max_retries=0)
def parse_port(text: str) -> int:
    return int(text)  # "eighty" raises: the caller gets TaskError with this traceback


@ownership.remote
class Keeper:
    """An actor that keeps the futures it is given: it borrows them."""

    def __init__(self) -> None:
        self.kept: list = []

    def keep(self, ref) -> int:
        self.kept.append(ref)
        return len(self.kept)


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


async def cluster_workload(keep_dashboard: bool = False) -> None:
    with step("start an embedded cluster: head, 2 nodes, their workers (OS processes over TCP)"):
        stack = contextlib.AsyncExitStack()
        local = await stack.enter_async_context(cluster(nodes=2, num_cpus=2, node_timeout=1.0))
        say(f"head {local.head}, nodes {', '.join(local.nodes)}; this process is the driver")
        if local.dashboard_url:
            say(f"[bold]dashboard: {local.dashboard_url}[/] (open it to watch the steps below)")
    async with stack:
        kept = await workload(local)
        if keep_dashboard and local.dashboard_url:
            console.print(f"  the cluster and its dashboard ({local.dashboard_url}) stay up: press Enter to stop them")
            await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        del kept


async def workload(local) -> tuple:
    """The demo's steps on ``local``; returns what stays referenced (a future an actor borrows)."""
    import numpy as np

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

    with step("a task that raises: its caller gets the remote traceback"):
        try:
            await parse_port.remote("eighty")
        except ownership.TaskError as exc:
            say(f"TaskError from the worker: {str(exc).splitlines()[0]}")

    with step("a first-class future: an actor borrows a 1 MiB array the driver owns"):
        keeper = Keeper.remote()
        shared = ownership.put(np.arange(2**17, dtype=np.float64))
        say(f"the actor holds {await keeper.keep.remote(ownership.shared(shared))} borrowed future(s) of {shared.object_id}")

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
    return keeper, shared


def conformance_run() -> bool:
    from conformance.cli import _run_replay

    traces = sorted((REPO / "traces" / "Scheduling").glob("Reuse_*.itf.json"))
    with step(f"conformance: replay {len(traces)} Scheduling traces from TLC on the in-memory cluster"), tempfile.TemporaryDirectory() as tmp:
        args = argparse.Namespace(
            paths=[str(t) for t in traces], coverage=Path(tmp) / "coverage.json", timeout=60.0, no_shrink=False, verbose=True
        )
        status = _run_replay(args, console)
    return status == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ownership.demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep-dashboard", action="store_true", help="after the cluster workload, keep the cluster and its dashboard up until Enter"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if not model_checks():
        console.print("[red]a model check failed; stopping the demo[/]")
        return 1
    trio.run(cluster_workload, args.keep_dashboard)
    if not conformance_run():
        console.print("[red]a conformance trace diverged[/]")
        return 1
    console.print(f"[bold green]demo finished in {time.perf_counter() - started:.1f} s[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
