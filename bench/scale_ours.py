"""The scale curves on our runtime (see :mod:`bench.scale`).

Layouts: the in-flight and release curves run on one node with 2 CPUs;
each memory and borrowed point in a fresh driver process with a 1-CPU
node; the lineage curve on the driver's node plus a ``holder`` node that
runs the chain and is SIGKILLed, and a 2-CPU spare holder (node timeout
1 s, so that detection does not hide the rebuild); the nodes curve on 1..8 node
processes sharing ``total_cpus`` CPUs; the owners curve on one node with
``total_cpus`` CPUs.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any

import trio

from bench.scale import NotApplicable, ScaleDoc, ScaleSizes, Unavailable, cpu_seconds, rss_bytes, scale_runner_main
from bench.workloads import noop
from bench.harness import timer

_cache: dict[Any, Any] = {}


def _remote(fn: Any, **options: Any) -> Any:
    import ownership

    key = (fn, repr(sorted(options.items())))
    if key not in _cache:
        _cache[key] = ownership.remote(fn).options(**options) if options else ownership.remote(fn)
    return _cache[key]


# ---------------------------------------------------------------- task bodies
def make_refs(n: int) -> list[Any]:
    import ownership

    return [ownership.put(i) for i in range(n)]


def hold(ref: Any) -> bool:
    return ref is not None  # a borrower while it runs


def make_block(nbytes: int) -> Any:
    import numpy as np

    return np.zeros(nbytes // 8, dtype=np.float64)


def step(block: Any) -> Any:
    return block + 1.0


def outer(inner: int) -> int:
    import ownership

    return len(ownership.get([_remote(noop).remote() for _ in range(inner)]))


# ---------------------------------------------------------------- curves
class OurScale:
    def __init__(self, sizes: ScaleSizes) -> None:
        self.sizes = sizes
        self._release_warm = False

    async def inflight(self, n: int) -> dict[str, float]:
        import ownership

        task = _remote(noop)
        cpu0, t0 = cpu_seconds(), timer()
        values = await ownership.get([task.remote() for _ in range(n)])
        dt, cpu = timer() - t0, cpu_seconds() - cpu0
        assert values == [None] * n
        return {"tasks_per_s": n / dt, "driver_cpu_us": cpu / n * 1e6}

    async def memory(self, n: int) -> dict[str, float]:
        # Each point in a fresh interpreter: memory freed by an earlier point
        # stays in this process's heap and would be reused, not counted.
        return await trio.to_thread.run_sync(_memory_in_subprocess, "owned", n)

    async def borrowed(self, n: int) -> dict[str, float]:
        return await trio.to_thread.run_sync(_memory_in_subprocess, "borrowed", n)

    async def release(self, k: int) -> dict[str, float]:
        import ownership
        from ownership.runtime.refs import current_runtime

        table = current_runtime().core.refs.table
        if not self._release_warm:  # the first borrowing task pays for the function and the worker
            self._release_warm = True
            await self.release(1)
        x = ownership.put(make_block(self.sizes.object_bytes))
        oid = x.object_id
        task = _remote(hold)
        t0 = timer()
        refs = [task.remote(ownership.shared(x)) for _ in range(k)]
        del x  # the driver lets go at once: the borrowers and pending tasks keep it
        assert await ownership.get(refs) == [True] * k
        del refs
        with trio.fail_after(120):
            while oid in table:  # the owner's table: the release decision itself
                await trio.sleep(0.0005)
        return {"release_ms": (timer() - t0) * 1e3}

    async def lineage(self, depth: int) -> dict[str, float]:
        import ownership

        holder = {"holder": 0.01}
        async with ownership.cluster(nodes=1, num_cpus=1, node_timeout=1.0) as cluster:
            node = await cluster.add_node(1, {"holder": 1.0})
            chain = [_remote(make_block, resources=holder, max_retries=3).remote(self.sizes.object_bytes)]
            for _ in range(depth):
                chain.append(_remote(step, resources=holder, max_retries=3).remote(chain[-1]))
            ready, _ = await ownership.wait([chain[-1]], timeout=600, fetch_local=False)
            assert ready, "the chain did not finish"
            # Where the rebuild runs: two CPUs, as in every run of this curve,
            # so that its points compare across runs.
            await cluster.add_node(2, {"holder": 1.0})
            t0 = timer()
            cluster.kill(node, signal.SIGKILL)
            value = await ownership.get(chain[-1], timeout=600)
            dt = timer() - t0
            assert float(value[0]) == depth and float(value[-1]) == depth
            del value, chain
        return {"reconstruct_ms": dt * 1e3}

    async def nodes(self, n: int) -> dict[str, float]:
        import ownership

        cpus = self.sizes.total_cpus // n
        if cpus < 1 or cpus * n != self.sizes.total_cpus:
            raise NotApplicable(f"{self.sizes.total_cpus} CPUs do not split evenly over {n} nodes")
        async with ownership.cluster(nodes=n, num_cpus=cpus):
            task = _remote(noop)
            await ownership.get([task.remote() for _ in range(self.sizes.nodes_tasks // 4)])  # warm: workers up
            t0 = timer()
            values = await ownership.get([task.remote() for _ in range(self.sizes.nodes_tasks)])
            dt = timer() - t0
            assert values == [None] * self.sizes.nodes_tasks
        return {"tasks_per_s": self.sizes.nodes_tasks / dt}

    async def owners(self, k: int) -> dict[str, float]:
        import ownership

        inner = self.sizes.owners_tasks // k
        async with ownership.cluster(nodes=1, num_cpus=self.sizes.total_cpus):
            task = _remote(outer)
            await ownership.get([task.remote(max(1, inner // 4)) for _ in range(k)])  # warm
            t0 = timer()
            counts = await ownership.get([task.remote(inner) for _ in range(k)])
            dt = timer() - t0
            assert counts == [inner] * k
        return {"tasks_per_s": inner * k / dt}


#: a memory point that has not finished by then has failed
MEMORY_POINT_TIMEOUT = 900.0


def _memory_in_subprocess(kind: str, n: int) -> dict[str, float]:
    import json
    import subprocess
    import sys

    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.scale_ours", "--memory-point", kind, str(n)],
            capture_output=True, text=True, timeout=MEMORY_POINT_TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"the {kind} point at {n} did not finish within {MEMORY_POINT_TIMEOUT:.0f} s") from None
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} point at {n} failed: {out.stderr.strip().splitlines()[-1:] or out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _memory_point(kind: str, n: int) -> dict[str, float]:
    """Driver bytes per live object: ``n`` puts kept, or ``n`` refs borrowed from the task that put them."""
    import ownership

    async with ownership.cluster(nodes=1, num_cpus=1):
        await ownership.get(_remote(make_refs).remote(10))  # warm: the function and the worker
        await trio.sleep(0)
        base = rss_bytes()
        t0 = timer()
        if kind == "owned":
            refs = [ownership.put(i) for i in range(n)]
            await trio.sleep(0)  # let the loop take the puts' bookkeeping
        else:
            refs = await _remote(make_refs).remote(n)
        dt = timer() - t0
        per = (rss_bytes() - base) / n
        assert len(refs) == n and await ownership.get(refs[-1], timeout=60) == n - 1
        del refs
    if kind == "owned":
        return {"owned_bytes": per}
    return {"borrowed_bytes": per, "borrowed_us": dt / n * 1e6}


async def _run(doc: ScaleDoc, curves: Sequence[str]) -> None:
    import ownership

    impl = OurScale(doc.sizes)
    shared = [c for c in curves if c in ("inflight", "release")]
    if shared:
        async with ownership.cluster(nodes=1, num_cpus=2):
            await ownership.get([_remote(noop).remote() for _ in range(200)])  # warm
            for key in shared:
                await doc.run_curve_async(key, getattr(impl, key))
    for key in (c for c in curves if c not in shared):
        await doc.run_curve_async(key, getattr(impl, key))


def body(doc: ScaleDoc, curves: Sequence[str]) -> None:
    try:
        import ownership
    except ImportError as exc:
        raise Unavailable("not available", f"our API is not importable: {exc}") from None
    doc.set_version(ownership.__version__)
    doc.set_setup(cluster="ownership.cluster (embedded, multi-process)")
    doc.note("release", "time from submitting k tasks that borrow a 128 KiB object (ownership.shared) to the owner's table dropping it")
    doc.note("lineage", "chain on a 1-CPU holder node, rebuilt on a 2-CPU spare; kill to value includes failure detection (node timeout 1 s)")
    trio.run(_run, doc, curves)


def main(argv: Sequence[str] | None = None) -> int:
    return scale_runner_main("ours", body, argv)


if __name__ == "__main__":
    import json
    import sys

    import bench.scale_ours

    if sys.argv[1:2] == ["--memory-point"]:
        print(json.dumps(trio.run(bench.scale_ours._memory_point, sys.argv[2], int(sys.argv[3]))))
        raise SystemExit(0)
    raise SystemExit(bench.scale_ours.main())
