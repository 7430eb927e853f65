"""One ownership service (head, node or worker) as an OS process over TCP.

    python -m ownership.runtime.process --role head   --token-file F [--host H] [--port P]
    python -m ownership.runtime.process --role node   --token-file F --head ADDR [--num-cpus N]
    python -m ownership.runtime.process --role worker --token-file F --node ADDR

``ADDR`` is a ``HOST:PORT`` or a process identity ``HOST:PORT#INCARNATION``
(see :mod:`.auth`); the process dials it first and fails with a clear line
when nothing of the cluster answers there.

The process serves the same trio service as on the in-memory network
(:mod:`.head`, :mod:`.node`, :mod:`.worker`), over a :class:`~.tcp.TCPTransport`
authenticated with the cluster token read from ``--token-file`` (mode 0600).
Once it serves, it prints exactly one line, ``OWNERSHIP-READY <identity>``, on
stdout (a node: once its initial workers have registered, or starting them
failed too often); a worker prints ``OWNERSHIP-ADDRESS <identity>`` before
it, before its hello to the node (see :mod:`.launch`). Everything else goes
to stderr through :mod:`logging`.

A node starts its workers as child processes (:class:`SubprocessLauncher`),
learns of their exit through the transport (``watch``: their connection
closes when they die), and removes its shared-memory segments on the way
out (and those left by dead nodes of its session on the way in).

Stopping: SIGTERM or SIGINT stop the service cleanly. With ``--lifeline``
the process also stops when its stdin reaches end of file, i.e. when the
process that started it dies, however it dies: that is how workers follow
their node, and an embedded cluster's processes follow their driver.
(``PR_SET_PDEATHSIG`` would not do: trio starts children from a worker
thread, and the signal fires when that *thread* exits.) A node stops in
order: its scheduler first, then its workers (their lifelines), then its
connections, so no worker hears of the stop as a lost node; a second
signal stops it at once. A node that cannot reach its head before it
serves exits with status 2; one that loses its head for ``--node-timeout``
seconds later stops with status 1 (a head never comes back), and one the
head declared dead (fenced: it was cut off, or missed its heartbeats, and
the cluster has retried its work elsewhere) stops with status 3. Like
warnings are logged once per ten seconds, with a count of those held back.

In a worker, what a task prints goes to the task's owner (:mod:`.output`).

Time: services tick every ``--tick`` seconds (default 0.1). A node sends a
heartbeat to the head on every tick. The head declares a node dead when its
connection drops and fresh dials of it fail (a few milliseconds for a
process that died, at most ``probe_attempts`` x ``probe_timeout_ticks``
ticks for one that does not answer), or after ``--node-timeout`` seconds
without a heartbeat (default 5, i.e. 50 ticks: the backstop for a process
that hangs); both defaults are also documented in :func:`.cluster.cluster`
and ``ownership start --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from ..core.config import CoreConfig
from .auth import load_token
from .launch import (
    ADDRESS_PREFIX,
    DEFAULT_NODE_TIMEOUT,
    DEFAULT_TICK,
    READY_PREFIX,
    ProcessStartError,
    WorkerStartError,
    drain,
    read_ready_line,
    read_ready_line_sync,
    service_command,
)
from .objects import machine_shm_id
from .output import capture_task_output, forward_task_output
from .shm import SharedMemoryStore, cleanup_leftovers
from .status import StatusTransport, runtime_details
from .tcp import open_tcp_transport

__all__ = [
    "DEFAULT_NODE_TIMEOUT",
    "DEFAULT_TICK",
    "READY_PREFIX",
    "ProcessStartError",
    "SubprocessLauncher",
    "WORKER_THREAD_VARS",
    "main",
    "read_ready_line",
    "read_ready_line_sync",
    "service_command",
    "worker_environment",
]

logger = logging.getLogger("ownership.process")


#: Thread pools of numerical libraries (OpenMP, OpenBLAS, MKL, Accelerate,
#: numexpr), which start one thread per core by default. A worker runs one
#: task per CPU of its lease beside the node's other workers, so a pool per
#: worker oversubscribes the cores, and OpenBLAS's idle threads spin after
#: each call (after the small matrix product of each batch, a Model actor of
#: examples/serving.py spent 3 ms of CPU per request in them, three times
#: the rest of its work). Workers get one thread each, as Dask's nanny
#: starts its workers, unless the node was started with the variable set.
WORKER_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def worker_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a node starts its workers with: its own, with one
    thread per numerical library's pool where it sets none."""
    env = dict(os.environ if environ is None else environ)
    for name in WORKER_THREAD_VARS:
        env.setdefault(name, "1")
    return env


class SubprocessLauncher:
    """Starts a node's workers as child processes; satisfies ``node.WorkerLauncher``.

    A start that fails (the process cannot be spawned, exits, or is not
    ready within ``startup_timeout``) raises :class:`WorkerStartError`,
    which the node turns into a core event; the process is killed and
    reaped first. A worker's death once it serves is learnt by the node
    through its transport (the worker's connection closes); the launcher
    reaps the process and logs how it ended.
    """

    def __init__(self, nursery: trio.Nursery, command: Sequence[str], *, startup_timeout: float = 60.0) -> None:
        self._nursery = nursery
        self._command = list(command)
        self._startup_timeout = startup_timeout
        self._env = worker_environment()
        self.workers: dict[str, trio.Process] = {}
        #: pid -> process, for workers not yet ready
        self.starting: dict[int, trio.Process] = {}
        #: address -> process, for workers that said their address but are not ready yet
        self._announced: dict[str, trio.Process] = {}
        #: workers the node killed before we read their address (a worker
        #: registers, and can be leased and killed, before its ready line
        #: reaches us): killed when they say it
        self._doomed: set[str] = set()
        self.failed_starts = 0

    async def launch(self, node: str) -> None:
        try:
            proc = await trio.lowlevel.open_process(
                [*self._command, "--node", node], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self._env
            )
        except OSError as exc:
            self.failed_starts += 1
            raise WorkerStartError(f"cannot start a worker process for node {node}: {exc}") from None
        said: list[str] = []  # the address it announced before it said hello to the node

        def announced(address: str) -> None:
            said.append(address)
            self._announced[address] = proc
            if address in self._doomed:
                self._doomed.discard(address)
                proc.kill()

        self.starting[proc.pid] = proc
        try:
            with trio.fail_after(self._startup_timeout):
                address = await read_ready_line(proc.stdout, announced)
        except BaseException as exc:  # includes being cancelled: never leave it running
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
            if not isinstance(exc, (trio.TooSlowError, ProcessStartError)):
                raise
            if not said:
                # What it wrote before it died is still in the pipe.
                with trio.move_on_after(5), contextlib.suppress(ProcessStartError, trio.BrokenResourceError):
                    await read_ready_line(proc.stdout, said.append)
            self.failed_starts += 1
            why = "timed out" if isinstance(exc, trio.TooSlowError) else str(exc)
            raise WorkerStartError(
                f"worker process {proc.pid} for node {node} did not start: {why} ({_how_it_ended(proc.returncode)})",
                worker=said[0] if said else None,
            ) from None
        finally:
            self.starting.pop(proc.pid, None)
            for name in said:
                self._announced.pop(name, None)
            if not self.starting:
                self._doomed.clear()  # a kill can be early only for a worker still starting
        self.workers[address] = proc
        self._nursery.start_soon(self._reap, address, proc, name=f"reap {address}")

    async def _reap(self, address: str, proc: trio.Process) -> None:
        try:
            await drain(proc.stdout, address)
            code = await proc.wait()
        finally:
            self.workers.pop(address, None)
        how = _how_it_ended(code)
        (logger.info if code in (0, -signal.SIGTERM, -signal.SIGKILL) else logger.warning)(
            "worker %s (pid %d) ended with %s", address, proc.pid, how
        )

    def kill(self, worker: str) -> None:
        """Kill the worker at address ``worker``, also when it is still starting:
        it registers with the node (and can be leased, and its owner die)
        before its ready line reaches this launcher. The signal lands some
        time after the node's step that asked for it, and the worker may run
        meanwhile (Scheduling!SchedulerStopWorker)."""
        proc = self.workers.get(worker) or self._announced.get(worker)
        if proc is None:
            if self.starting:
                self._doomed.add(worker)  # its address line is still on its way
            return
        if proc.returncode is None:
            proc.kill()

    def pid_of(self, worker: str) -> int | None:
        proc = self.workers.get(worker)
        return None if proc is None else proc.pid

    def kill_all(self) -> None:
        for proc in [*self.workers.values(), *self.starting.values()]:
            if proc.returncode is None:
                proc.kill()


def _how_it_ended(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit code {code}"


# -- the process ---------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ownership.runtime.process", description=__doc__.splitlines()[0])
    p.add_argument("--role", choices=("head", "node", "worker"), required=True)
    p.add_argument("--token-file", required=True, help="the cluster token (mode 0600)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind (default: any free port)")
    p.add_argument("--advertise-host", default=None, help="the name peers dial, when --host is a wildcard")
    p.add_argument("--head", help="node: the head's HOST:PORT")
    p.add_argument("--node", help="worker: its node's HOST:PORT")
    p.add_argument("--num-cpus", type=float, default=None, help="node: CPUs to offer (default: os.cpu_count())")
    p.add_argument("--resources", default="{}", help='node: extra resources as JSON, e.g. {"GPU": 1}')
    p.add_argument("--session", default=None, help="node: session name for shared-memory segments")
    p.add_argument("--tick", type=float, default=DEFAULT_TICK, help=f"seconds per tick (default {DEFAULT_TICK})")
    p.add_argument(
        "--node-timeout",
        type=float,
        default=DEFAULT_NODE_TIMEOUT,
        help=f"head: seconds without heartbeat before a node is dead (default {DEFAULT_NODE_TIMEOUT})",
    )
    p.add_argument("--config", default="{}", help="CoreConfig overrides as JSON")
    p.add_argument("--lifeline", action="store_true", help="stop when stdin reaches end of file")
    p.add_argument(
        "--event-log",
        default=None,
        metavar="DIR",
        help="append every core step to a file of this process in DIR (runtime/steplog.py); a node passes it to its workers",
    )
    p.add_argument(
        "--dashboard-fd",
        type=int,
        default=None,
        metavar="FD",
        help="head: serve the dashboard on this inherited listening socket (ownership.dashboard)",
    )
    p.add_argument(
        "--dashboard-probe",
        action="store_true",
        help="note what the dashboard shows from the start, not from its first question "
        "(ownership/dashboard/probe.py); a node passes it to its workers",
    )
    p.add_argument("--log-level", default=os.environ.get("OWNERSHIP_LOG_LEVEL", "WARNING"))
    return p


def _config(args: argparse.Namespace) -> CoreConfig:
    overrides: dict[str, Any] = json.loads(args.config)
    overrides.setdefault("node_timeout_ticks", max(1, math.ceil(args.node_timeout / args.tick)))
    return CoreConfig(**overrides)


class _Stop:
    """How a service process stops: at once, or (a node) in order.

    A stop request (a signal, the lifeline) cancels the process, unless its
    service asked to stop in order (:meth:`in_order`): then the first
    request sets :attr:`requested` for the service to act on, and a second
    one cancels at once.
    """

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self.requested = trio.Event()
        self._in_order = False
        #: the exit status when the service itself decided to fail
        self.exit_code = 0

    def in_order(self) -> None:
        self._in_order = True

    def request(self, why: str) -> None:
        if self._in_order and not self.requested.is_set():
            logger.info("%s: stopping", why)
            self.requested.set()
        else:
            logger.info("%s: stopping now", why)
            self.scope.cancel()

    def fail(self, code: int, message: str, *, in_order: bool = False) -> None:
        logger.error("%s", message)
        self.exit_code = code
        if in_order and self._in_order:
            self.requested.set()
        else:
            self.scope.cancel()


async def _watch_signals(stop: _Stop) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            stop.request(f"received {signal.Signals(signum).name}")


async def _watch_lifeline(stop: _Stop) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stdin:
        while await stdin.receive_some():
            pass
    stop.request("lifeline closed (the process that started us is gone)")


class ParentGone(Exception):
    """The process that started this one closed the pipe it reads our
    lines from before we were ready: it is gone (a node SIGKILLed while
    its worker starts), and this process has no one to serve."""


def _tell_parent(line: str) -> None:
    """Write ``line`` to the pipe the process that started us reads."""
    try:
        sys.stdout.write(f"{line}\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # What is still buffered goes to the log at exit, not to the pipe.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        raise ParentGone("the process that started us is gone") from None


def _announce(address: str) -> None:
    _tell_parent(f"{READY_PREFIX}{address}")
    # From now on stdout is the log: whoever started us may stop reading
    # the pipe (``ownership start`` does), and a print must not hit EPIPE.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


async def _run_head(args: argparse.Namespace, token: bytes, config: CoreConfig) -> None:
    from .head import serve as serve_head

    dashboard = None
    if args.dashboard_fd is not None:
        from ..dashboard.server import DashboardOptions

        dashboard = DashboardOptions(token=token, fd=args.dashboard_fd, host=args.host, advertise_host=args.advertise_host)
    async with open_tcp_transport(token, args.host, args.port, advertise_host=args.advertise_host) as tcp:
        _cut_on_signal(tcp)
        transport = StatusTransport(tcp, "head")
        async with trio.open_nursery() as nursery:
            rt = await nursery.start(
                lambda **kw: serve_head(transport, config=config, tick_interval=args.tick, dashboard=dashboard, **kw)
            )
            transport.snapshot = lambda: {**rt.snapshot(), "tcp": attrs.asdict(tcp.statistics())}
            transport.core = rt.core
            _announce(transport.address)


#: seconds a stopping node gives its workers to stop before it kills them
WORKER_STOP_GRACE = 5.0


async def _stop_workers(launcher: SubprocessLauncher, grace: float) -> None:
    """Close every worker's lifeline (those still starting too), so each
    stops cleanly, then wait for them.

    The node's connections stay open meanwhile: a worker hears of the stop
    from its lifeline, not from a lost node, and nothing it still sends is
    refused. What is left after ``grace`` is killed.
    """
    procs = [*launcher.workers.values(), *launcher.starting.values()]
    for proc in procs:
        if proc.stdin is not None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await proc.stdin.aclose()
    with trio.move_on_after(grace):
        for proc in procs:
            await proc.wait()
    for proc in procs:
        if proc.returncode is None:
            logger.warning("worker pid %d did not stop within %.1f s: killing it", proc.pid, grace)
            proc.kill()


async def _sweep_dead_nodes_segments(session: str, every: float) -> None:
    """Remove the shared-memory segments of the session's dead nodes, every ``every`` s.

    A node removes its own segments when it stops; one that was killed
    cannot, and nodes starting later remove what it left. Without a later
    start its objects would hold /dev/shm until the cluster stops, so the
    live nodes look for them too (a dead node's objects are lost anyway).
    """
    while True:
        await trio.sleep(every)
        for name in await trio.to_thread.run_sync(cleanup_leftovers, session):
            logger.info("removed shared-memory segment %s of a dead node", name)


async def _run_node(args: argparse.Namespace, token: bytes, config: CoreConfig, stop: _Stop) -> None:
    from .node import serve as serve_node

    if not args.head:
        raise SystemExit("--role node needs --head HOST:PORT")
    cpus = float(args.num_cpus if args.num_cpus is not None else (os.cpu_count() or 1))
    resources = {"CPU": cpus, **{k: float(v) for k, v in json.loads(args.resources).items()}}
    session = args.session or "default"
    for name in cleanup_leftovers(session):
        logger.warning("removed shared-memory segment %s of a dead node", name)
    store = SharedMemoryStore(session)
    worker_command = service_command(
        "worker", args.token_file, "--host", args.host, "--tick", str(args.tick), "--config", args.config, "--lifeline"
    )
    if args.advertise_host:
        worker_command += ["--advertise-host", args.advertise_host]
    if args.event_log:
        worker_command += ["--event-log", args.event_log]
    if args.dashboard_probe:
        worker_command += ["--dashboard-probe"]
    ready = False
    watching: list[trio.Nursery] = []
    head_lost = trio.Event()
    head = args.head  # its identity, once resolved

    def peer_lost(address: str) -> None:
        # A node that cannot reach its head before it serves has no cluster
        # to join: it says so once and exits, instead of retrying every tick.
        # Later, a head unreachable for as long as it would take to declare
        # this node dead means the cluster is gone (a head never comes back).
        if address != head:
            return
        if not ready:
            stop.fail(2, f"cannot reach the head at {head}: stopping")
        elif watching and not head_lost.is_set():
            head_lost.set()
            watching[0].start_soon(head_gone)

    async def head_gone() -> None:
        nonlocal head_lost
        deadline = trio.current_time() + args.node_timeout
        while trio.current_time() < deadline:
            await trio.sleep(args.tick)
            if head in tcp.connected_peers():
                head_lost = trio.Event()
                return
        stop.fail(1, f"the head at {head} has been unreachable for {args.node_timeout:g} s: stopping", in_order=True)

    try:
        async with open_tcp_transport(
            token, args.host, args.port, advertise_host=args.advertise_host, on_peer_lost=peer_lost
        ) as tcp:
            # Nothing of the cluster there: ConnectionError, one line (main).
            head = await tcp.resolve(args.head)
            _cut_on_signal(tcp)
            transport = StatusTransport(tcp, "node")
            async with trio.open_nursery() as nursery:
                watching.append(nursery)
                launcher = SubprocessLauncher(nursery, worker_command)
                try:
                    rt = await nursery.start(
                        lambda **kw: serve_node(
                            transport,
                            head=head,
                            resources=tuple(sorted(resources.items())),
                            pool_size=max(1, int(cpus)),
                            launcher=launcher,
                            config=config,
                            tick_interval=args.tick,
                            shm=store,
                            on_fenced=lambda reason: stop.fail(3, f"{reason}: stopping", in_order=True),
                            **kw,
                        )
                    )
                    transport.core = rt.core
                    if rt.objects is not None:
                        tcp.frame_buffers = rt.objects.frames.buffer
                    if args.dashboard_probe:
                        _probe(rt.core)
                    transport.snapshot = lambda: {
                        **rt.snapshot(),
                        "pid": os.getpid(),
                        "head": head,
                        "machine": machine_shm_id(),
                        "worker_pids": {a: p.pid for a, p in launcher.workers.items()},
                        "starting_pids": sorted(launcher.starting),
                        "tcp": attrs.asdict(tcp.statistics()),
                    }
                    await rt.ready.wait()
                    nursery.start_soon(_sweep_dead_nodes_segments, session, max(args.node_timeout, 1.0))
                    ready = True
                    stop.in_order()  # from now on; a node still starting stops at once
                    _announce(transport.address)
                    await stop.requested.wait()
                    # In order: the node stops scheduling (its shell), its
                    # workers stop, then its connections close.
                    rt._stop()
                    await _stop_workers(launcher, WORKER_STOP_GRACE)
                    nursery.cancel_scope.cancel()
                finally:
                    launcher.kill_all()
    finally:
        for name in store.close():
            logger.info("removed shared-memory segment %s", name)


async def _run_worker(args: argparse.Namespace, token: bytes, config: CoreConfig, scope: trio.CancelScope) -> None:
    from .worker import serve as serve_worker

    if not args.node:
        raise SystemExit("--role worker needs --node HOST:PORT")
    node = args.node

    def peer_lost(address: str) -> None:
        # A worker belongs to its node: without it, it can neither get
        # leases nor hear of deaths, so it stops (its owners learn it from
        # the node's death notice).
        if address == node:
            logger.warning("lost the connection to node %s: stopping", address)
            scope.cancel()

    _preload(preload_modules())
    async with open_tcp_transport(
        token, args.host, args.port, advertise_host=args.advertise_host, on_peer_lost=peer_lost
    ) as tcp:
        node = await tcp.resolve(args.node)
        _cut_on_signal(tcp)
        transport = StatusTransport(tcp, "worker")
        # Before the hello to the node: if we die now, the node's launcher
        # knows we may have registered (see launch.py).
        _tell_parent(f"{ADDRESS_PREFIX}{transport.address}")
        async with trio.open_nursery() as nursery:
            rt = await nursery.start(
                lambda **kw: serve_worker(
                    transport, node=node, config=config, tick_interval=args.tick, shared_memory=True, **kw
                )
            )
            transport.snapshot = lambda: {
                **rt.snapshot(),
                **runtime_details(rt),
                "pid": os.getpid(),
                "tcp": attrs.asdict(tcp.statistics()),
            }
            # What a task prints goes to its owner, and so to the driver.
            rt.output_streams = capture_task_output(rt)
            transport.on_output = forward_task_output(rt)
            transport.core = rt.core
            if args.dashboard_probe:
                _probe(rt.core)
            _announce(transport.address)


#: in a worker's environment: modules (comma-separated) it imports once it
#: serves; unset, numpy if installed; empty, none
PRELOAD_ENV = "OWNERSHIP_PRELOAD"


def preload_modules() -> tuple[str, ...]:
    """The modules a worker imports once it serves (``$OWNERSHIP_PRELOAD``)."""
    names = os.environ.get(PRELOAD_ENV)
    if names is None:
        return ("numpy",) if importlib.util.find_spec("numpy") is not None else ()
    return tuple(n.strip() for n in names.split(",") if n.strip())


def _preload(names: tuple[str, ...]) -> None:
    """Import ``names`` before the worker serves, so that the first task that
    makes or takes an array does not pay the import (numpy's is ~0.1 s) on
    its critical path, which matters most when a task is re-executed on a
    new worker after a failure. Not in a thread beside the first tasks:
    numpy imported from two threads at once fails with a partially
    initialized module."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # a user's module may be missing or fail: say so once
            logger.warning("preloading %s (%s) failed: %s: %s", name, PRELOAD_ENV, type(exc).__name__, exc)


def _probe(core: Any) -> None:
    from ..dashboard.probe import probe_of

    probe_of(core)


async def _run(args: argparse.Namespace) -> int:
    token = load_token(args.token_file)
    config = _config(args)
    async with trio.open_nursery() as nursery:
        stop = _Stop(nursery.cancel_scope)
        nursery.start_soon(_watch_signals, stop)
        if args.lifeline:
            nursery.start_soon(_watch_lifeline, stop)
        if args.role == "head":
            await _run_head(args, token, config)
        elif args.role == "node":
            await _run_node(args, token, config, stop)
        else:
            await _run_worker(args, token, config, nursery.cancel_scope)
        # The service ended by itself (its transport closed): stop watchers.
        nursery.cancel_scope.cancel()
    return stop.exit_code


#: in a service's environment (any value): SIGUSR2 breaks one of its connections
FAULT_CUTS_ENV = "OWNERSHIP_FAULT_CUTS"


def _cut_on_signal(tcp: Any) -> None:
    """With ``$OWNERSHIP_FAULT_CUTS`` set, each SIGUSR2 breaks one connection of
    this process, to a peer drawn at random, as a network fault would
    (``TCPTransport.cut``; fault injection for ``ownership chaos --net-faults``).
    Without it, nothing is installed and SIGUSR2 keeps its default action."""
    if not os.environ.get(FAULT_CUTS_ENV):
        return
    import random

    token = trio.lowlevel.current_trio_token()
    draw = random.Random()

    def cut() -> None:
        peers = tcp.connected_peers()
        if peers:
            peer = draw.choice(peers)
            logger.info("fault injection: breaking the connection to %s", peer)
            tcp.cut(peer)

    def on_signal(signum: int, frame: Any) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(cut)

    signal.signal(signal.SIGUSR2, on_signal)


def _profile_on_signal(directory: str, role: str) -> None:
    """SIGUSR1 starts a CPU-time cProfile of the loop thread; the next one
    writes it to ``<directory>/<role>-<pid>-<n>.prof`` (benchmark profiling:
    the samplers count a process preempted on a busy machine as running)."""
    import cProfile
    import time

    state: dict[str, Any] = {"profile": None, "n": 0}

    def toggle(signum: int, frame: Any) -> None:
        profile = state["profile"]
        if profile is None:
            state["profile"] = profile = cProfile.Profile(time.process_time)
            profile.enable()
            return
        profile.disable()
        state["profile"] = None
        state["n"] += 1
        profile.dump_stats(os.path.join(directory, f"{role}-{os.getpid()}-{state['n']}.prof"))

    signal.signal(signal.SIGUSR1, toggle)


def _single(group: BaseExceptionGroup) -> BaseException:
    """The one exception inside nested single-member groups, else the group itself."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class _Repeats(logging.Filter):
    """Lets the first of a run of like warnings through, then one per
    ``window`` seconds that says how many were held back (a peer that stays
    unreachable would otherwise fill the log once per tick). Records are
    alike when their logger, level, text and string arguments are (counts
    may differ)."""

    def __init__(self, window: float = 10.0) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple, list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        key = (record.name, record.levelno, str(record.msg), tuple(a for a in args if isinstance(a, str)))
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} ({seen[1]:.0f} more like it in the last {now - seen[0]:.0f} s)"
        if len(self._seen) > 1024:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
        self._seen[key] = [now, 0]
        return True


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s {args.role}[{os.getpid()}] %(name)s %(levelname)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_Repeats())
    step_log = None
    if args.event_log:
        from .shell import ServiceShell
        from .steplog import StepLog

        step_log = ServiceShell.step_log = StepLog(args.event_log)
    if os.environ.get("OWNERSHIP_PROFILE_DIR"):
        _profile_on_signal(os.environ["OWNERSHIP_PROFILE_DIR"], args.role)
    try:
        try:
            code = trio.run(_run, args)
        except BaseExceptionGroup as group:  # our nurseries wrap what the service raised
            raise _single(group) from None
    except KeyboardInterrupt:
        return 130
    except ParentGone as exc:  # the answer to our starter's death, not a fault of ours
        logger.info("%s before we were ready; exiting", exc)
        return 1
    except (OSError, ValueError) as exc:  # the token file, the address to bind or dial: a clear line, not a traceback
        logger.error("%s: %s", type(exc).__name__, exc)
        return 2
    finally:
        if step_log is not None:
            step_log.close()  # a clean stop; a SIGKILLed process leaves no stop mark
    return code


if __name__ == "__main__":
    sys.exit(main())
