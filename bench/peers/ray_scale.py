"""The scale curves on Ray (see :mod:`bench.scale`), the same workloads as :mod:`bench.scale_ours`.

- in flight, release, owners: ``ray.init(num_cpus=...)`` on this machine;
- memory: each figure in a fresh driver process (``ray.init(num_cpus=1)``);
- release: Ray's own reference table (``get_all_reference_counts``, what
  ``ray memory`` reads) is polled until the object leaves it;
- lineage: ``ray.cluster_utils.Cluster``: the chain on node B (custom
  resource ``holder``), a spare holder with 2 CPUs, B removed without grace
  (SIGKILL); Ray's default failure detection;
- nodes: ``ray.cluster_utils.Cluster`` with 1..8 nodes sharing the CPUs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

from bench.harness import timer
from bench.scale import NotApplicable, ScaleDoc, Unavailable, cpu_seconds, rss_bytes, scale_runner_main
from bench.workloads import noop

_cache: dict[Any, Any] = {}
STORE = 200 * 1024 * 1024


def _remote(fn: Any, **options: Any) -> Any:
    import ray

    key = (fn, repr(sorted(options.items())))
    if key not in _cache:
        _cache[key] = ray.remote(fn).options(**options) if options else ray.remote(fn)
    return _cache[key]


def make_refs(n: int) -> list[Any]:
    import ray

    return [ray.put(i) for i in range(n)]


def hold(refs: list[Any]) -> bool:
    return refs[0] is not None  # a borrower while it runs (a ref inside a list stays a ref)


def make_block(nbytes: int) -> Any:
    import numpy as np

    return np.zeros(nbytes // 8, dtype=np.float64)


def step(block: Any) -> Any:
    return block + 1.0


def outer(inner: int) -> int:
    import ray

    return len(ray.get([_remote(noop).remote() for _ in range(inner)]))


class RayScale:
    def __init__(self, doc: ScaleDoc) -> None:
        self.sizes = doc.sizes
        self._release_warm = False

    def inflight(self, n: int) -> dict[str, float]:
        import ray

        task = _remote(noop)
        cpu0, t0 = cpu_seconds(), timer()
        values = ray.get([task.remote() for _ in range(n)])
        dt, cpu = timer() - t0, cpu_seconds() - cpu0
        assert values == [None] * n
        return {"tasks_per_s": n / dt, "driver_cpu_us": cpu / n * 1e6}

    def memory(self, n: int) -> dict[str, float]:
        return _memory_in_subprocess("owned", n)

    def borrowed(self, n: int) -> dict[str, float]:
        return _memory_in_subprocess("borrowed", n)

    def release(self, k: int) -> dict[str, float]:
        import ray
        from ray._private.worker import global_worker

        if not self._release_warm:
            self._release_warm = True
            self.release(1)
        x = ray.put(make_block(self.sizes.object_bytes))
        oid = x.hex()
        task = _remote(hold)
        t0 = timer()
        refs = [task.remote([x]) for _ in range(k)]
        del x
        assert ray.get(refs) == [True] * k
        del refs
        deadline = time.monotonic() + 120
        while oid in {ref.hex() if hasattr(ref, "hex") else str(ref) for ref in global_worker.core_worker.get_all_reference_counts()}:
            if time.monotonic() > deadline:
                raise TimeoutError("the object was not released within 120 s")
            time.sleep(0.0005)
        return {"release_ms": (timer() - t0) * 1e3}

    def lineage(self, depth: int) -> dict[str, float]:
        import ray
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": STORE})
        try:
            b = cluster.add_node(num_cpus=1, resources={"holder": 1.0}, object_store_memory=STORE)
            ray.init(address=cluster.address, log_to_driver=False)
            cluster.wait_for_nodes()
            holder = {"resources": {"holder": 0.01}, "max_retries": 3}
            chain = [_remote(make_block, **holder).remote(self.sizes.object_bytes)]
            for _ in range(depth):
                chain.append(_remote(step, **holder).remote(chain[-1]))
            ready, _ = ray.wait([chain[-1]], timeout=600, fetch_local=False)
            assert ready, "the chain did not finish"
            cluster.add_node(num_cpus=2, resources={"holder": 1.0}, object_store_memory=STORE)
            cluster.wait_for_nodes()
            t0 = timer()
            cluster.remove_node(b, allow_graceful=False)
            value = ray.get(chain[-1], timeout=900)
            dt = timer() - t0
            assert float(value[0]) == depth
            del value, chain
        finally:
            ray.shutdown()
            cluster.shutdown()
            _cache.clear()
        return {"reconstruct_ms": dt * 1e3}

    def nodes(self, n: int) -> dict[str, float]:
        import ray
        from ray.cluster_utils import Cluster

        cpus = self.sizes.total_cpus // n
        if cpus * n != self.sizes.total_cpus:
            raise NotApplicable(f"{self.sizes.total_cpus} CPUs do not split evenly over {n} nodes")
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False, "object_store_memory": STORE})
        try:
            for _ in range(n - 1):
                cluster.add_node(num_cpus=cpus, object_store_memory=STORE)
            ray.init(address=cluster.address, log_to_driver=False)
            cluster.wait_for_nodes()
            task = _remote(noop)
            ray.get([task.remote() for _ in range(self.sizes.nodes_tasks // 4)])
            t0 = timer()
            values = ray.get([task.remote() for _ in range(self.sizes.nodes_tasks)])
            dt = timer() - t0
            assert values == [None] * self.sizes.nodes_tasks
        finally:
            ray.shutdown()
            cluster.shutdown()
            _cache.clear()
        return {"tasks_per_s": self.sizes.nodes_tasks / dt}

    def owners(self, k: int) -> dict[str, float]:
        import ray

        inner = self.sizes.owners_tasks // k
        ray.init(num_cpus=self.sizes.total_cpus, include_dashboard=False, log_to_driver=False)
        try:
            task = _remote(outer)
            ray.get([task.remote(max(1, inner // 4)) for _ in range(k)])
            t0 = timer()
            counts = ray.get([task.remote(inner) for _ in range(k)])
            dt = timer() - t0
            assert counts == [inner] * k
        finally:
            ray.shutdown()
            _cache.clear()
        return {"tasks_per_s": inner * k / dt}


def _memory_in_subprocess(kind: str, n: int) -> dict[str, float]:
    from bench.scale_ours import MEMORY_POINT_TIMEOUT

    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.peers.ray_scale", "--memory-point", kind, str(n)],
            capture_output=True, text=True, timeout=MEMORY_POINT_TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"the {kind} point at {n} did not finish within {MEMORY_POINT_TIMEOUT:.0f} s") from None
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} point at {n} failed: {out.stderr.strip().splitlines()[-1:] or out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _memory_point(kind: str, n: int) -> dict[str, float]:
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        ray.get(_remote(make_refs).remote(10))
        base = rss_bytes()
        t0 = timer()
        refs = [ray.put(i) for i in range(n)] if kind == "owned" else ray.get(_remote(make_refs).remote(n))
        dt = timer() - t0
        per = (rss_bytes() - base) / n
        assert len(refs) == n and ray.get(refs[-1], timeout=60) == n - 1
        del refs
    finally:
        ray.shutdown()
    if kind == "owned":
        return {"owned_bytes": per}
    return {"borrowed_bytes": per, "borrowed_us": dt / n * 1e6}


def body(doc: ScaleDoc, curves: Sequence[str]) -> None:
    try:
        import ray
    except ImportError as exc:
        raise Unavailable("not installed", f"import ray failed: {exc}") from None
    warnings.simplefilter("ignore")
    doc.set_version(ray.__version__)
    doc.set_setup(cluster="ray.init(num_cpus=...) on this machine; ray.cluster_utils.Cluster for lineage and nodes")
    doc.note("release", "Ray's reference table (get_all_reference_counts) polled until the object leaves it")
    doc.note("lineage", "node B removed without grace (SIGKILL); Ray's default failure detection; spare holder with 2 CPUs")
    impl = RayScale(doc)
    shared = [c for c in curves if c in ("inflight", "release")]
    if shared:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            ray.get([_remote(noop).remote() for _ in range(200)])
            for key in shared:
                doc.run_curve(key, getattr(impl, key))
        finally:
            ray.shutdown()
            _cache.clear()
    for key in (c for c in curves if c not in shared):
        doc.run_curve(key, getattr(impl, key))


def main(argv: Sequence[str] | None = None) -> int:
    return scale_runner_main("ray", body, argv)


if __name__ == "__main__":
    import bench.peers.ray_scale

    if sys.argv[1:2] == ["--memory-point"]:
        warnings.simplefilter("ignore")
        print(json.dumps(bench.peers.ray_scale._memory_point(sys.argv[2], int(sys.argv[3]))))
        raise SystemExit(0)
    raise SystemExit(bench.peers.ray_scale.main())
