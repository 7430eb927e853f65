"""A blocking driver, for scripts and notebooks.

The trio API (``async with ownership.cluster()``) is the primary one; this
module runs the same driver on a thread of its own, so plain synchronous
code (a script, a Jupyter cell, an asyncio program) can use it::

    import ownership

    @ownership.remote
    def square(x):
        return x * x

    @ownership.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

    with ownership.blocking.cluster(nodes=2) as c:     # or: ownership.blocking.connect("HEAD:PORT")
        refs = [square.remote(i) for i in range(4)]
        print(c.get(refs))                             # [0, 1, 4, 9]; ownership.get(refs) works too
        counter = Counter.remote()
        print(c.get(counter.incr.remote()))            # 1
        ready, pending = c.wait(refs, num_returns=2, timeout=5)

In a notebook the session can outlive a cell: ``c = ownership.blocking.cluster()``
in one cell, ``c.get(...)`` in the next, ``c.close()`` at the end (or at
interpreter exit). While a session is open, ``f.remote()``,
``ownership.get``/``wait``/``put``/``cancel`` and actors work from any
thread of the process, and ``await ref`` works in an asyncio or trio
program too. Ctrl-C interrupts a blocking ``get`` or ``wait`` at once (the
wait is withdrawn on the driver's side). One session per process at a time.
"""

from __future__ import annotations

import atexit
import functools
import queue
import threading
from collections.abc import Iterable
from typing import Any

import trio

from .errors import OwnershipError
from .runtime import cluster as _cluster
from .runtime import refs as _refs
from .runtime.refs import ObjectRef

__all__ = ["Session", "cluster", "connect"]

_lock = threading.Lock()


class Session:
    """A driver running on a thread of its own; blocking methods for the caller.

    Made by :func:`cluster` or :func:`connect`. Usable as a context manager
    (leaving the block closes it) or kept open and closed with :meth:`close`.
    """

    def __init__(self, opener: Any, *, start_timeout: float | None) -> None:
        self._opener = opener
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._scope: trio.CancelScope | None = None
        self._loop_started = threading.Event()  # _token, _stop and _scope are set (or the loop failed)
        self._closed = False
        #: the :class:`~ownership.runtime.cluster.LocalCluster` of ``cluster()``, None for ``connect()``
        self.cluster: _cluster.LocalCluster | None = None
        self.driver: Any = None
        with _lock:
            if _refs._process_runtime is not None and not _refs._process_runtime.closed:
                raise OwnershipError(
                    "a blocking driver is already attached in this process: close it (session.close()) before opening another"
                )
            self._thread = threading.Thread(target=self._serve, name="ownership blocking driver", daemon=True)
            self._thread.start()
            try:
                got = self._ready.get(timeout=start_timeout)
            except queue.Empty:
                self._abandon_start()
                raise TimeoutError(f"the driver did not start within {start_timeout} s") from None
            except KeyboardInterrupt:
                self._abandon_start()
                raise
            if isinstance(got, BaseException):
                self._thread.join()
                raise got
            _refs._process_runtime = self.driver
        atexit.register(self.close)

    # -- the driver's thread ---------------------------------------------------------
    def _serve(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the opener if it still waits
            self._ready.put(_single(exc))
        finally:
            self._loop_started.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        self._scope = trio.CancelScope()
        self._loop_started.set()
        with self._scope:
            async with self._opener() as opened:
                if isinstance(opened, _cluster.LocalCluster):
                    self.cluster, self.driver = opened, opened.driver
                else:
                    self.driver = opened
                self._ready.put(self)
                await self._stop.wait()

    def _request_stop(self) -> None:
        """Leave the driver's block (the cluster stops its processes on the way out)."""
        if self._token is not None and self._stop is not None:
            try:
                self._token.run_sync_soon(self._stop.set)
            except trio.RunFinishedError:
                pass

    def _abandon_start(self) -> None:
        """The opener gave up waiting (timeout, Ctrl-C): cancel the start, wait for the thread."""
        self._closed = True
        self._loop_started.wait()
        if self._token is not None and self._scope is not None:
            try:
                self._token.run_sync_soon(self._scope.cancel)
            except trio.RunFinishedError:
                pass
        self._thread.join()

    # -- the caller's side -----------------------------------------------------------
    def _runtime(self) -> Any:
        if self._closed or self.driver is None or self.driver.closed:
            raise _refs.NoRuntimeError("this blocking driver is closed")
        return self.driver

    def get(self, refs: ObjectRef | Iterable[ObjectRef], *, timeout: float | None = None) -> Any:
        """The value(s) of one ref or a list of refs, blocking; see :func:`ownership.get`."""
        rt = self._runtime()
        single = isinstance(refs, ObjectRef)
        items = [refs] if single else list(refs)  # type: ignore[arg-type]
        values = rt.get_blocking(items, timeout)
        return values[0] if single else values

    def wait(
        self, refs: Iterable[ObjectRef], *, num_returns: int = 1, timeout: float | None = None, fetch_local: bool = True
    ) -> tuple[list[ObjectRef], list[ObjectRef]]:
        """``(ready, not_ready)``, blocking; see :func:`ownership.wait`."""
        return self._runtime().wait_blocking(list(refs), num_returns, timeout, fetch_local)

    def put(self, value: Any) -> ObjectRef:
        """Store ``value``; this driver owns the new future."""
        return self._runtime().put(value)

    def cancel(self, ref: ObjectRef) -> None:
        """Cancel the task that makes ``ref``; see :func:`ownership.cancel`."""
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"cancel() takes an ObjectRef, not {type(ref).__qualname__}")
        self._runtime().cancel(ref)

    def call(self, async_fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``await async_fn(*args, **kwargs)`` on the driver's trio loop, blocking
        (``c.call(c.cluster.add_node, resources={"GPU": 1})``)."""
        return self._runtime().call_from_thread(functools.partial(async_fn, *args, **kwargs), getattr(async_fn, "__name__", "a call"))

    def close(self) -> None:
        """Stop the driver (and the processes of ``cluster()``); idempotent."""
        if self._closed:
            return
        self._closed = True
        with _lock:
            if _refs._process_runtime is self.driver:
                _refs._process_runtime = None
        self._request_stop()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        atexit.unregister(self.close)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"driver {self.driver.address}" if self.driver is not None else "starting"
        return f"<ownership.blocking.Session {state}>"


def _single(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def cluster(nodes: int = 1, num_cpus: float | None = None, *, start_timeout: float | None = 120.0, **options: Any) -> Session:
    """Start an embedded cluster with a driver on its own thread (see :func:`ownership.cluster`).

    ``with ownership.blocking.cluster(nodes=2) as c: ...``; the session's
    ``cluster`` attribute is the :class:`~ownership.runtime.cluster.LocalCluster`.
    """
    return Session(functools.partial(_cluster.cluster, nodes, num_cpus, **options), start_timeout=start_timeout)


def connect(*args: Any, start_timeout: float | None = 120.0, **options: Any) -> Session:
    """Attach a driver on its own thread to a running cluster (see :func:`ownership.connect`).

    ``with ownership.blocking.connect("HEAD:PORT") as c: ...``
    """
    return Session(functools.partial(_cluster.connect, *args, **options), start_timeout=start_timeout)

