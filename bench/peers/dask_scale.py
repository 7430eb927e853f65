"""The scale curves on Dask distributed (see :mod:`bench.scale`).

``LocalCluster(processes=True)`` as in :mod:`bench.peers.dask_runner`; its
scheduler runs in the client's process, so the driver's memory includes
the scheduler's table of every key (Dask's centralised counterpart of our
ownership table). Borrowed refs and a borrowed fan-out's release have no
counterpart in Dask (it has no borrowing protocol: the scheduler counts
who wants each key), so those are n/a.

- lineage: the chain is pinned to worker A (``workers=[A]``,
  ``allow_other_workers=True``); A's process is SIGKILLed and the
  scheduler recomputes the chain on worker B;
- nodes: 1..8 worker processes sharing the threads.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from bench.harness import timer
from bench.scale import NotApplicable, ScaleDoc, Unavailable, cpu_seconds, rss_bytes, scale_runner_main
from bench.workloads import noop


NO_BORROWING = "Dask has no borrowing: the scheduler counts the clients and tasks that want a key"


def make_block(nbytes: int) -> Any:
    import numpy as np

    return np.zeros(nbytes // 8, dtype=np.float64)


def step(block: Any) -> Any:
    return block + 1.0


def pid() -> int:
    return os.getpid()


def outer(inner: int) -> int:
    from distributed import worker_client

    with worker_client() as client:
        return len(client.gather([client.submit(noop, pure=False) for _ in range(inner)]))


def _cluster(n_workers: int, threads: int) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads, processes=True, dashboard_address=None)
    client = Client(cluster)
    client.wait_for_workers(n_workers)
    return cluster, client


class DaskScale:
    def __init__(self, doc: ScaleDoc) -> None:
        self.sizes = doc.sizes
        self.client: Any = None

    def inflight(self, n: int) -> dict[str, float]:
        c = self.client
        cpu0, t0 = cpu_seconds(), timer()
        values = c.gather([c.submit(noop, pure=False) for _ in range(n)])
        dt, cpu = timer() - t0, cpu_seconds() - cpu0
        assert values == [None] * n
        return {"tasks_per_s": n / dt, "driver_cpu_us": cpu / n * 1e6}

    def memory(self, n: int) -> dict[str, float]:
        return {"owned_bytes": _memory_in_subprocess(n)}

    def release(self, k: int) -> dict[str, float]:
        raise NotApplicable(NO_BORROWING)

    def borrowed(self, n: int) -> dict[str, float]:
        raise NotApplicable(NO_BORROWING)

    def lineage(self, depth: int) -> dict[str, float]:
        from distributed import wait

        cluster, c = _cluster(2, 1)
        try:
            a, b = sorted(c.nthreads())[:2]
            victim = c.submit(pid, workers=[a], pure=False).result()
            opts = {"workers": [a], "allow_other_workers": True, "pure": False}
            chain = [c.submit(make_block, self.sizes.object_bytes, **opts)]
            for _ in range(depth):
                chain.append(c.submit(step, chain[-1], **opts))
            wait(chain[-1])
            t0 = timer()
            os.kill(victim, signal.SIGKILL)
            value = chain[-1].result(timeout=900)
            dt = timer() - t0
            assert float(value[0]) == depth
            del value, chain
        finally:
            c.close()
            cluster.close()
        return {"reconstruct_ms": dt * 1e3}

    def nodes(self, n: int) -> dict[str, float]:
        threads = self.sizes.total_cpus // n
        if threads * n != self.sizes.total_cpus:
            raise NotApplicable(f"{self.sizes.total_cpus} threads do not split evenly over {n} workers")
        cluster, c = _cluster(n, threads)
        try:
            c.gather([c.submit(noop, pure=False) for _ in range(self.sizes.nodes_tasks // 4)])
            t0 = timer()
            values = c.gather([c.submit(noop, pure=False) for _ in range(self.sizes.nodes_tasks)])
            dt = timer() - t0
            assert values == [None] * self.sizes.nodes_tasks
        finally:
            c.close()
            cluster.close()
        return {"tasks_per_s": self.sizes.nodes_tasks / dt}

    def owners(self, k: int) -> dict[str, float]:
        inner = self.sizes.owners_tasks // k
        cluster, c = _cluster(self.sizes.total_cpus // 2, 2)
        try:
            c.gather([c.submit(outer, max(1, inner // 4), pure=False) for _ in range(k)])
            t0 = timer()
            counts = c.gather([c.submit(outer, inner, pure=False) for _ in range(k)])
            dt = timer() - t0
            assert counts == [inner] * k
        finally:
            c.close()
            cluster.close()
        return {"tasks_per_s": inner * k / dt}


def _memory_in_subprocess(n: int) -> float:
    from bench.scale_ours import MEMORY_POINT_TIMEOUT

    out = subprocess.run(
        [sys.executable, "-m", "bench.peers.dask_scale", "--memory-point", str(n)],
        capture_output=True, text=True, timeout=MEMORY_POINT_TIMEOUT, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory point {n} failed: {out.stderr.strip().splitlines()[-1:] or out.returncode}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["owned_bytes"])


def _memory_point(n: int) -> dict[str, float]:
    cluster, c = _cluster(1, 1)
    try:
        c.gather(c.scatter(list(range(10)), hash=False))
        base = rss_bytes()
        futures = c.scatter(list(range(n)), hash=False)  # n keys held by this client
        per = (rss_bytes() - base) / n
        assert len(futures) == n and futures[-1].result() == n - 1
        del futures
    finally:
        c.close()
        cluster.close()
    return {"owned_bytes": per}


def body(doc: ScaleDoc, curves: Sequence[str]) -> None:
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise Unavailable("not installed", f"import dask/distributed failed: {exc}") from None
    warnings.simplefilter("ignore")
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    doc.set_version(f"dask {dask.__version__}, distributed {distributed.__version__}")
    doc.set_setup(cluster="LocalCluster(processes=True, dashboard_address=None); scheduler in the client's process")
    doc.note("memory", "owned: n small values scattered and held by the client (client + scheduler state per key)")
    doc.note("lineage", "chain pinned to worker A, whose process is SIGKILLed; recomputed on worker B")
    impl = DaskScale(doc)
    if "inflight" in curves:
        cluster, impl.client = _cluster(2, 1)
        try:
            impl.client.gather([impl.client.submit(noop, pure=False) for _ in range(200)])
            doc.run_curve("inflight", impl.inflight)
        finally:
            impl.client.close()
            cluster.close()
    for key in (c for c in curves if c != "inflight"):
        if key in ("release", "borrowed"):
            doc.mark_na(key, NO_BORROWING)
            continue
        doc.run_curve(key, getattr(impl, key))


def main(argv: Sequence[str] | None = None) -> int:
    return scale_runner_main("dask", body, argv)


if __name__ == "__main__":
    import bench.peers.dask_scale

    if sys.argv[1:2] == ["--memory-point"]:
        warnings.simplefilter("ignore")
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        print(json.dumps(bench.peers.dask_scale._memory_point(int(sys.argv[2]))))
        raise SystemExit(0)
    raise SystemExit(bench.peers.dask_scale.main())
