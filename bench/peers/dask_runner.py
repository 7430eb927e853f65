"""The rows on Dask distributed.

``LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
dashboard_address=None)``: two worker processes, each under a nanny, one
thread each, which is the closest match to two single-CPU nodes. Every
submit passes ``pure=False`` so that identical calls are separate tasks
instead of one deduplicated key.

- Nested tasks use ``worker_client()``, which secedes the calling thread
  while it waits, as Dask documents for tasks that submit tasks.
- Dask has no borrowing protocol of its own: a future travelling inside a
  task argument is unpickled unbound. Each borrower binds it to its worker's
  client and tells the scheduler that it wants the keys, which is what
  ``Client.get_dataset`` does for published futures.
- Remote get: the object is scattered to worker A; a task pinned to worker B
  takes it as argument, so B gathers it from A.
- Recovery: the worker process that computed the object is SIGKILLed (in
  Dask the worker's memory *is* the store). The scheduler re-runs the task
  on the surviving worker for the future the client still holds; the nanny
  restarts the killed worker, and the next repeat waits for it.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import warnings
from collections.abc import Sequence
from typing import Any

from bench.harness import NotApplicable, RunnerDoc, Sample, Unavailable, runner_main, timer
from bench.rows import MIB, Sizes, percentile
from bench.workloads import Sink, check_array, checksum, make_array, make_array_recording, noop, read_recorded

N_WORKERS = 2


class Borrowed:
    """Futures hidden from Dask's argument unpacking, so they travel as futures."""

    __slots__ = ("futures",)

    def __init__(self, futures: list[Any]) -> None:
        self.futures = futures

    def __reduce__(self) -> Any:
        return (Borrowed, (self.futures,))

    def bind(self, client: Any) -> None:
        for future in self.futures:
            future.bind_client(client)
        client._inform_scheduler_of_futures()  # as Client.get_dataset does


def nested_outer(inner: int) -> int:
    from distributed import worker_client

    with worker_client() as client:
        return len(client.gather([client.submit(noop, pure=False) for _ in range(inner)]))


def borrower(borrowed: Borrowed, depth: int) -> int:
    from distributed import worker_client

    with worker_client() as client:
        borrowed.bind(client)
        if depth > 1:
            return client.submit(borrower, borrowed, depth - 1, pure=False).result()
        return sum(client.gather(borrowed.futures))


def nbytes_of(array: Any) -> int:
    check_array(array, array.nbytes)
    return int(array.nbytes)


class DaskRows:
    def __init__(self) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=N_WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(N_WORKERS)

    def close(self) -> None:
        self.client.close()
        self.cluster.close()

    def workers(self) -> list[str]:
        # nthreads() asks the scheduler each time; scheduler_info()'s worker
        # list can be overwritten by a periodic refresh that carries none.
        workers = sorted(self.client.nthreads())
        if len(workers) < N_WORKERS:
            raise RuntimeError(f"the cluster has {len(workers)} worker(s), {N_WORKERS} needed")
        return workers

    def row_recoverable(self, s: Sizes) -> Sample:
        raise NotApplicable("no owner recovery: a future whose client is gone is released, and its result with it")

    def row_sync(self, s: Sizes) -> Sample:
        c = self.client
        lat = []
        for _ in range(s.sync_round_trips):
            t0 = timer()
            c.submit(noop, pure=False).result()
            lat.append(timer() - t0)
        return {"sync_p50": percentile(lat, 50) * 1e3, "sync_p99": percentile(lat, 99) * 1e3}

    def row_async(self, s: Sizes) -> Sample:
        c = self.client
        t0 = timer()
        futures = [c.submit(noop, pure=False) for _ in range(s.async_tasks)]
        values = c.gather(futures)
        dt = timer() - t0
        assert values == [None] * s.async_tasks
        return {"async": s.async_tasks / dt}

    def row_actor(self, s: Sizes) -> Sample:
        c = self.client
        created = c.submit(Sink, actor=True, pure=False)  # the actor lives while this future does
        actor = created.result()
        actor.ping().result()  # created and placed: not part of the rate
        t0 = timer()
        futures = [actor.ping() for _ in range(s.actor_calls)]
        values = [f.result() for f in futures]
        dt = timer() - t0
        assert values == [None] * s.actor_calls
        del actor, created
        return {"actor": s.actor_calls / dt}

    def row_nested(self, s: Sizes) -> Sample:
        c = self.client
        t0 = timer()
        counts = c.gather([c.submit(nested_outer, s.nested_inner, pure=False) for _ in range(s.nested_outer)])
        dt = timer() - t0
        assert counts == [s.nested_inner] * s.nested_outer
        return {"nested": s.nested_outer * (1 + s.nested_inner) / dt}

    def row_array_ref(self, s: Sizes) -> Sample:
        c = self.client
        array = make_array(s.array_mib * MIB)
        expected = checksum(array)
        t0 = timer()
        ref = c.scatter(array, hash=False)
        values = c.gather([c.submit(checksum, ref, pure=False) for _ in range(s.array_tasks)])
        dt = timer() - t0
        assert values == [expected] * s.array_tasks
        return {"array_ref": s.array_tasks / dt}

    def row_array_value(self, s: Sizes) -> Sample:
        c = self.client
        array = make_array(s.array_mib * MIB)
        expected = checksum(array)
        t0 = timer()
        values = c.gather([c.submit(checksum, array, pure=False) for _ in range(s.array_tasks)])
        dt = timer() - t0
        assert values == [expected] * s.array_tasks
        return {"array_value": s.array_tasks / dt}

    def row_borrow(self, s: Sizes) -> Sample:
        c = self.client
        t0 = timer()
        futures = c.scatter(list(range(s.borrow_refs)), hash=False)
        total = c.submit(borrower, Borrowed(futures), s.borrow_chain, pure=False).result()
        del futures
        dt = timer() - t0
        assert total == sum(range(s.borrow_refs))
        return {"borrow": dt * 1e3}

    def row_remote_get(self, s: Sizes) -> Sample:
        from distributed import wait

        c = self.client
        a, b = self.workers()[:2]
        nbytes = s.remote_get_mib * MIB
        held = c.scatter(make_array(nbytes), workers=[a], hash=False)
        wait(held)
        t0 = timer()
        got = c.submit(nbytes_of, held, workers=[b], allow_other_workers=False, pure=False).result()
        dt = timer() - t0
        assert got == nbytes
        del held
        # One path: over TCP between processes of one machine as between machines.
        return {"remote_get": nbytes / dt / 1e9, "remote_get_tcp": nbytes / dt / 1e9}

    def row_recovery(self, s: Sizes) -> Sample:
        from distributed import wait

        c = self.client
        nbytes = s.recovery_mib * MIB
        with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
            record = os.path.join(tmp, "made-by")
            future = c.submit(make_array_recording, nbytes, record, pure=False)
            wait(future)
            killed_pid, _ = read_recorded(record)
            os.unlink(record)
            t0 = timer()
            os.kill(killed_pid, signal.SIGKILL)
            value = future.result(timeout=300)
            dt = timer() - t0
            check_array(value, nbytes)
            remade_pid, _ = read_recorded(record)
            assert remade_pid != killed_pid, "the value was not reconstructed"
        del value, future
        c.wait_for_workers(N_WORKERS, timeout=120)  # the nanny restarts the killed worker
        return {"recovery": dt * 1e3}

    # The applications run on their own asynchronous client of this cluster.
    def row_serving(self, s: Sizes) -> Sample:
        from bench.peers.dask_apps import row_serving

        return row_serving(self.cluster.scheduler_address, s)

    def row_video(self, s: Sizes) -> Sample:
        from bench.peers.dask_apps import row_video

        return row_video(self.cluster.scheduler_address, s)


def body(doc: RunnerDoc, rows: Sequence[str]) -> None:
    try:
        import dask
        import distributed
    except ImportError as exc:
        raise Unavailable("not installed", f"import dask/distributed failed: {exc}") from None
    warnings.simplefilter("ignore")  # "large graph" and shutdown warnings go to the log, not the table
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    doc.set_version(f"dask {dask.__version__}, distributed {distributed.__version__}")
    doc.set_setup(
        cluster=f"LocalCluster(n_workers={N_WORKERS}, threads_per_worker=1, processes=True, dashboard_address=None)"
    )
    doc.note("remote_get", "scattered to worker A; a task pinned to worker B takes it as argument (includes one task)")
    doc.note("recovery", "the worker process that computed it SIGKILLed; the scheduler recomputes the task")
    doc.note("borrow", "futures inside an opaque argument, bound to each borrower's worker client")
    doc.note("serving", "examples/serving.py's actors and stages as Dask actors; the Router returns the future of a task "
             "that calls the Model (an actor's result is not a future); asyncio clients")
    doc.note("video", "examples/video.py's stages; the Decoder actor's frames come out of tasks chained in order")
    rows_impl = DaskRows()
    try:
        for key in rows:
            doc.run_row(key, getattr(rows_impl, f"row_{key}"))
    finally:
        rows_impl.close()


def main(argv: Sequence[str] | None = None) -> int:
    return runner_main("dask", body, argv)


if __name__ == "__main__":
    # Run the module under its importable name, so that the task bodies above
    # are pickled by reference (workers import them) and not by value.
    import bench.peers.dask_runner

    raise SystemExit(bench.peers.dask_runner.main())
