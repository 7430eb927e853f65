"""The embedded local cluster, and connecting a driver to a running one.

    async with ownership.cluster(nodes=2, num_cpus=2) as cluster:
        ref = f.remote(1)                    # this process is the driver
        print(await ref)

``cluster()`` starts a head and ``nodes`` nodes as subprocesses of this
process (each node then starts its workers), over TCP on 127.0.0.1, with a
fresh cluster token in a private session directory; the calling context
becomes a driver attached to the first node. Leaving the block stops the
driver, then every process, and removes the session directory and any
shared-memory segment of the session.

``connect()`` attaches a driver to a cluster that is already running
(started by ``ownership start``): the one ``$OWNERSHIP_ADDRESS`` names, else
the one this machine runs; ``connect("HOST:PORT")`` names its head (or one of
its nodes), from any machine that has the cluster's token. The head says
which nodes are alive; the driver attaches to one on its own machine when
there is one (large values then pass through shared memory), else to any,
and its values travel over TCP.
Processes are named by their identity, ``HOST:PORT#INCARNATION`` (what
``cluster.head``, ``cluster.nodes`` and the ready lines hold); wherever a
person gives an address, a bare ``HOST:PORT`` will do.

Time: every service ticks every ``tick`` seconds (default 0.1 s); nodes
heartbeat to the head on each tick. The head declares a node dead when its
connection drops and fresh dials of it go unanswered (a killed node within
milliseconds), or after ``node_timeout`` seconds without a heartbeat
(default 5 s: the backstop for a node that hangs).

The head serves the dashboard (:mod:`ownership.dashboard`) on a free port of
127.0.0.1 (``dashboard_host``, ``dashboard_port`` to choose), kept as
``cluster.dashboard_url`` and logged (INFO, so a script's output stays its
own); ``dashboard=False``, or ``OWNERSHIP_DASHBOARD=0`` in the environment,
runs without it.

With ``event_log=DIR`` every process of the cluster, the driver included,
appends its core steps to a file of its own in DIR (:mod:`.steplog`), and
the cluster records in ``DIR/cluster.ndjson`` what only it knows: which
process is the head, the nodes in order, the driver, every ``kill`` and
``kill_worker``, and when the caller's block ended. ``ownership conformance
log --from-dir DIR`` merges them into one event log.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from ..core.config import CoreConfig
from .auth import default_token_path, generate_token, load_token, ownership_home, write_token
from .launch import (
    DEFAULT_NODE_TIMEOUT,
    DEFAULT_TICK,
    ProcessStartError,
    drain,
    read_ready_line,
    read_ready_line_sync,
    service_command,
)
from .objects import machine_shm_id
from .output import print_task_output
from .refs import _runtime_var, require_trio
from .shm import cleanup_leftovers
from .status import (
    ClusterSnapshot,
    ClusterUnreachable,
    LostPeers,
    StatusTransport,
    ask,
    cluster_snapshot,
    query_status,
    runtime_details,
)
from .steplog import StepLog
from .tcp import open_tcp_transport, parse_address
from .worker import WorkerRuntime
from .worker import serve as serve_worker

__all__ = [
    "LocalCluster",
    "check_resources",
    "cluster",
    "cluster_address",
    "connect",
    "dashboard_default",
    "local_host_towards",
    "session_file",
    "spawn_service",
]

logger = logging.getLogger("ownership.cluster")


def _single(group: BaseExceptionGroup) -> BaseException:
    """The one exception inside nested single-member groups of our own nurseries.

    The caller's exception, raised in the body of ``cluster()``, reaches it
    as itself rather than wrapped once per nursery between us.
    """
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def session_file() -> Path:
    """Where ``ownership start`` records the cluster it started on this machine."""
    return ownership_home() / "session.json"


class LocalCluster:
    """Handles to the processes of an embedded cluster."""

    def __init__(self, nursery: trio.Nursery, session: str, session_dir: Path, token: bytes, options: list[str]) -> None:
        self._nursery = nursery
        self.session = session
        self.session_dir = session_dir
        self.token_file = session_dir / "cluster.token"
        self._token = token
        self._options = options
        self.head = ""
        self.nodes: list[str] = []
        self.driver: WorkerRuntime | None = None
        #: the dashboard's address, None when the cluster runs without one
        self.dashboard_url: str | None = None
        self.processes: dict[str, trio.Process] = {}
        #: ``cluster.ndjson`` of the event log, when there is one
        self._harness_fd: int | None = None

    def _record(self, **record: Any) -> None:
        """One line of ``cluster.ndjson`` (one write: a crash of ours loses no earlier line)."""
        if self._harness_fd is not None:
            record.setdefault("time", time.monotonic_ns())
            os.write(self._harness_fd, (json.dumps(record, sort_keys=True) + "\n").encode())

    def pid(self, address: str) -> int:
        """The pid of the head or of a node."""
        return self.processes[address].pid

    def kill(self, address: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) to the head or a node; its workers follow it."""
        proc = self.processes[address]
        if proc.returncode is None:
            self._record(kill=address, pid=proc.pid, signal=int(sig))
            proc.send_signal(sig)

    def kill_worker(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) to a worker process of this cluster, by pid.

        A worker is a child of its node process; any other pid is refused
        (it may be reused by now, or never have been ours).
        """
        nodes = {self.processes[a].pid for a in self.nodes if self.alive(a)}
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            raise ProcessLookupError(f"no process {pid}") from None
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid not in nodes:
            raise ValueError(f"process {pid} is not a worker of this cluster (its parent {ppid} is none of its live nodes)")
        self._record(kill=None, pid=pid, signal=int(sig))
        os.kill(pid, sig)

    async def wait_exit(self, address: str) -> int:
        return await self.processes[address].wait()

    def alive(self, address: str) -> bool:
        return self.processes[address].returncode is None

    async def snapshot(self, timeout: float = 5.0) -> ClusterSnapshot:
        """What every process of the cluster holds (``ownership status`` / ``memory``)."""
        return await cluster_snapshot(self._token, self.head, timeout=timeout)

    async def add_node(self, num_cpus: float | None = None, resources: dict[str, float] | None = None) -> str:
        """Start one more node process; returns its address once its workers are up.

        ``resources``: custom resources the node offers besides its CPUs
        (``{"GPU": 1}``); a task that asks for them runs there.
        """
        resources = check_resources(resources)
        options = ["--head", self.head, "--session", self.session]
        if num_cpus is not None:
            options += ["--num-cpus", str(num_cpus)]
        if resources:
            options += ["--resources", json.dumps(resources)]
        address = await self._start("node", options)
        self.nodes.append(address)
        return address

    async def _start(self, role: str, options: list[str], pass_fds: Sequence[int] = ()) -> str:
        command = service_command(role, self.token_file, *self._options, *options, "--lifeline")
        proc = await trio.lowlevel.open_process(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=tuple(pass_fds))
        try:
            with trio.fail_after(60):
                address = await read_ready_line(proc.stdout)
        except BaseException as exc:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
            if isinstance(exc, trio.TooSlowError):
                raise ProcessStartError(f"{role} process did not get ready within 60 s") from None
            if isinstance(exc, ProcessStartError):
                raise ProcessStartError(f"{role} process exited with {proc.returncode} before it was ready") from None
            raise
        self.processes[address] = proc
        self._nursery.start_soon(self._reap, proc, address, name=f"stdout of {address}")
        logger.info("%s %s started (pid %d)", role, address, proc.pid)
        return address

    async def _reap(self, proc: trio.Process, address: str) -> None:
        """Drain the process's stdout, then reap it: a killed node does not
        stay a zombie (its pid would still look alive to the survivors)."""
        await drain(proc.stdout, address)
        await proc.wait()

    async def _stop_all(self, grace: float) -> None:
        """Stop the nodes (each stops its workers first), then the head.

        A clean stop closes the lifeline; what is left after ``grace`` is
        killed. The head goes last so that no node's heartbeat meets a
        closed head, and no node is declared dead while it stops.
        """
        nodes = [a for a in self.processes if a != self.head]
        await self._stop(nodes, grace)
        await self._stop([a for a in self.processes if a == self.head], grace)

    async def _stop(self, addresses: list[str], grace: float) -> None:
        procs = {a: self.processes[a] for a in addresses}
        for proc in procs.values():
            if proc.stdin is not None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    await proc.stdin.aclose()
        with trio.move_on_after(grace):
            for proc in procs.values():
                await proc.wait()
        for address, proc in procs.items():
            if proc.returncode is None:
                logger.warning("%s (pid %d) did not stop within %.1f s: killing it", address, proc.pid, grace)
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def cluster(
    nodes: int = 1,
    num_cpus: float | None = None,
    *,
    resources: dict[str, float] | None = None,
    host: str = "127.0.0.1",
    tick: float = DEFAULT_TICK,
    node_timeout: float = DEFAULT_NODE_TIMEOUT,
    config: dict[str, Any] | None = None,
    stop_grace: float = 10.0,
    event_log: Path | str | None = None,
    dashboard: bool | None = None,
    dashboard_host: str = "127.0.0.1",
    dashboard_port: int = 0,
) -> AsyncIterator[LocalCluster]:
    """Start an embedded local cluster; the calling context becomes its driver.

    ``num_cpus`` per node defaults to ``os.cpu_count()``; each node keeps
    that many workers. ``resources``: custom resources each node offers
    besides its CPUs (``{"GPU": 1}``; ``add_node`` gives others). ``config`` overrides :class:`CoreConfig` fields for
    every process (the driver included). ``event_log``: a folder where every
    process logs its core steps (see the module doc); it may exist, but
    must not hold the logs of an earlier run. ``dashboard``: serve the
    dashboard from the head (default: yes, unless ``OWNERSHIP_DASHBOARD=0``).
    """
    require_trio("ownership.cluster()")
    if nodes < 1:
        raise ValueError("a cluster needs at least one node")
    resources = check_resources(resources)
    if dashboard is None:
        dashboard = dashboard_default()
    overrides = dict(config or {})
    options = ["--host", host, "--tick", str(tick), "--node-timeout", str(node_timeout), "--config", json.dumps(overrides)]
    if dashboard:
        options.append("--dashboard-probe")  # nodes and workers note steps from their start
    step_log: StepLog | None = None
    if event_log is not None:
        log_dir = Path(event_log).resolve()
        if log_dir.is_dir() and any(log_dir.glob("*.steps")):
            raise FileExistsError(f"{log_dir} already holds step logs (*.steps) of another run: give an empty folder")
        step_log = StepLog(log_dir)
        options += ["--event-log", str(log_dir)]
    driver_config = CoreConfig(**{"node_timeout_ticks": max(1, math.ceil(node_timeout / tick)), **overrides})
    session = secrets.token_hex(4)
    session_dir = Path(tempfile.mkdtemp(prefix=f"ownership-{session}-"))
    token = generate_token()
    write_token(token, session_dir / "cluster.token")
    lost = LostPeers()
    try:
        async with trio.open_nursery() as nursery:
            local = LocalCluster(nursery, session, session_dir, token, options)
            if step_log is not None:
                local._harness_fd = os.open(
                    step_log.directory / "cluster.ndjson", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600
                )
                local._record(format="ownership-cluster/1", pid=os.getpid())
            # The driver's endpoint outlives the driver: it still takes what
            # the workers send while they stop, so nothing meets a closed port.
            async with open_tcp_transport(token, host, on_peer_lost=lost) as tcp:
                try:
                    if dashboard:
                        from ..dashboard.server import bind, url_of

                        with bind(dashboard_host, dashboard_port) as listener:
                            local.head = await local._start("head", ["--dashboard-fd", str(listener.fileno())], (listener.fileno(),))
                            local.dashboard_url = url_of(listener)
                        logger.info("dashboard at %s", local.dashboard_url)
                    else:
                        local.head = await local._start("head", [])
                    async with trio.open_nursery() as starting:  # nodes start their workers in parallel
                        for _ in range(nodes):
                            starting.start_soon(local.add_node, num_cpus, resources)
                    async with _serve_driver(
                        tcp, lost, local.nodes[0], driver_config, tick, step_log=step_log, probe=dashboard
                    ) as driver:
                        local.driver = driver
                        local._record(head=local.head, nodes=local.nodes, driver=driver.address)
                        try:
                            yield local
                        finally:
                            local._record(end=True)
                finally:
                    with trio.CancelScope(shield=True):
                        await local._stop_all(stop_grace)
                    if local._harness_fd is not None:
                        os.close(local._harness_fd)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _single(group) from None
    finally:
        shutil.rmtree(session_dir, ignore_errors=True)
        for name in cleanup_leftovers(session):
            logger.warning("removed leftover shared-memory segment %s", name)


def dashboard_default() -> bool:
    """Whether a cluster serves the dashboard when not told: yes, unless
    ``OWNERSHIP_DASHBOARD`` is ``0``, ``no``, ``off`` or ``false``."""
    return os.environ.get("OWNERSHIP_DASHBOARD", "1").strip().lower() not in ("0", "no", "off", "false")


@contextlib.asynccontextmanager
async def _serve_driver(
    tcp: Any,
    lost: LostPeers,
    node: str,
    config: CoreConfig,
    tick: float,
    timeout: float = 30.0,
    step_log: StepLog | None = None,
    probe: bool = False,
) -> AsyncIterator[WorkerRuntime]:
    """A driver on ``tcp``, registered with ``node``, for the caller's block.

    Leaving the block stops the driver's shell; ``tcp`` stays open (the
    caller closes it), so replies still on their way are taken, not refused.
    """
    transport = StatusTransport(tcp, "driver")
    transport.on_output = lambda env: print_task_output(env.msg)

    async def node_lost(scope: trio.CancelScope) -> None:
        while node not in lost:
            await lost.changed()
        scope.cancel()  # no node there (or it died while we registered)

    async with trio.open_nursery() as nursery:
        driver: WorkerRuntime | None = None
        with trio.CancelScope(deadline=trio.current_time() + timeout) as attaching:
            async with trio.open_nursery() as watching:
                watching.start_soon(node_lost, attaching)
                driver = await nursery.start(
                    lambda **kw: serve_worker(
                        transport, node=node, driver=True, config=config, tick_interval=tick, shared_memory=True, **kw
                    )
                )
                watching.cancel_scope.cancel()
        if driver is None:
            why = "it closed the connection" if node in lost else f"no answer within {timeout:g} s"
            raise ClusterUnreachable(f"cannot attach a driver to node {node}: {why}")
        if step_log is not None:
            step_log.attach(driver)  # before the caller can submit anything
        transport.snapshot = lambda: {**driver.snapshot(), **runtime_details(driver), "pid": os.getpid()}
        transport.core = driver.core
        if probe:
            from ..dashboard.probe import probe_of

            probe_of(driver.core)  # before the caller can submit anything
        reset = _runtime_var.set(driver)
        try:
            yield driver
        finally:
            _runtime_var.reset(reset)
            try:
                driver._stop()
            finally:
                if step_log is not None:
                    step_log.close()


def check_resources(resources: Any) -> dict[str, float]:
    """Custom resources a node offers, checked: names to amounts >= 0, CPUs apart.

    Raises ValueError with a one-line reason.
    """
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise ValueError(f"resources must be a mapping of names to amounts, like {{\"GPU\": 1}}, not {type(resources).__name__}")
    out: dict[str, float] = {}
    for name, amount in resources.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"a resource name must be a non-empty string, not {name!r}")
        if name == "CPU":
            raise ValueError("give a node's CPUs with num_cpus (--num-cpus), not as a resource")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount < 0:
            raise ValueError(f"resource {name!r}: the amount must be a number >= 0, not {amount!r}")
        out[name] = float(amount)
    return out


def spawn_service(
    role: str,
    token_file: Path | str,
    *options: str,
    lifeline: bool = True,
    timeout: float = 60.0,
    stderr: Any = None,
    prefix: Sequence[str] = (),
    pass_fds: Sequence[int] = (),
    on_spawn: Callable[[subprocess.Popen], None] | None = None,
) -> tuple[subprocess.Popen, str]:
    """Start a service process from synchronous code; returns it and its address.

    With ``lifeline`` the child stops when this process dies or closes the
    child's stdin (``proc.stdin.close()`` is the clean stop). Without it the
    child is a daemon in its own session that runs until signalled
    (``ownership start``). Once the child is ready it no longer writes to
    the stdout pipe, which the caller may close. ``prefix`` runs the command
    through another one (``ip netns exec NS``: a process on another "host").
    ``on_spawn(proc)`` runs as soon as the child exists, before it is ready
    (``ownership start`` records its pid there). If waiting fails or is
    interrupted, the child is killed.
    """
    command = [*prefix, *service_command(role, token_file, *options, *(["--lifeline"] if lifeline else []))]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE if lifeline else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        start_new_session=not lifeline,
        pass_fds=tuple(pass_fds),
    )
    try:
        if on_spawn is not None:
            on_spawn(proc)
        address = read_ready_line_sync(proc.stdout.fileno(), timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, address


def _session() -> dict[str, Any]:
    """This machine's session file (written by ``ownership start``), or {}."""
    try:
        info = json.loads(session_file().read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def cluster_address(address: str | None = None, token_file: Path | str | None = None) -> tuple[str, Path]:
    """The head to talk to and the token to prove: given, ``$OWNERSHIP_ADDRESS``,
    or this machine's cluster (its session file); ``ConnectionError`` if none."""
    session = _session()
    address = address or os.environ.get("OWNERSHIP_ADDRESS") or session.get("head")
    if not address:
        raise ClusterUnreachable(
            "no cluster to connect to: pass its head's HOST:PORT, set OWNERSHIP_ADDRESS, "
            "or start one on this machine with `ownership start --head`"
        )
    parse_address(address)
    if token_file is None:
        head = session.get("head")
        # the session names the head by identity; a person types its address
        mine = isinstance(head, str) and address in (head, head.partition("#")[0]) and session.get("token_file")
        token_file = mine or default_token_path()
    return address, Path(token_file)


def local_host_towards(host: str) -> str:
    """The address of this machine that ``host`` can reach us at (the interface
    that routes there); the loopback address for a head on this machine."""
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0]
        target = ipaddress.ip_address(sockaddr[0])
        if target.is_loopback:
            return str(target)
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((sockaddr[0], 9))  # UDP: picks a route, sends nothing
            return probe.getsockname()[0]
    except (OSError, ValueError):
        return "127.0.0.1"


async def _node_to_attach(tcp: Any, lost: LostPeers, address: str, timeout: float) -> str:
    """The node a driver should attach to, asked of the process at ``address``.

    A head names its live nodes; a node on this machine is preferred (its
    shared memory is ours too), else the first that answers.
    """
    address, reply = await ask(tcp, lost, address, timeout)
    if reply.role == "node":
        return address
    if reply.role != "head":
        raise ValueError(f"{address} is a {reply.role} process: connect to the cluster's head (or one of its nodes)")
    nodes = sorted(n for n, rec in reply.snapshot.get("nodes", {}).items() if rec.get("alive"))
    if not nodes:
        raise ClusterUnreachable(f"the head at {address} has no live node to attach a driver to")
    answers = await query_status(tcp, nodes, min(timeout, 5.0), lost)
    here = machine_shm_id()
    local = [n for n in nodes if n in answers and here and answers[n].snapshot.get("machine") == here]
    alive = local or [n for n in nodes if n in answers]
    if not alive:
        raise ClusterUnreachable(f"none of the nodes the head at {address} names answers: {', '.join(nodes)}")
    return alive[0]


def _has_dashboard(address: str) -> bool:
    """Whether this machine's session file says the cluster of ``address`` serves a dashboard."""
    path = session_file()
    if not path.exists():
        return False
    info = json.loads(path.read_text())
    names = {info.get("head"), *info.get("nodes", ())}
    names |= {n.partition("#")[0] for n in names if isinstance(n, str)}  # a person types the bare HOST:PORT
    return bool(info.get("dashboard")) and address in names


@contextlib.asynccontextmanager
async def connect(
    address: str | None = None,
    *,
    token_file: Path | str | None = None,
    host: str | None = None,
    tick: float = DEFAULT_TICK,
    config: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> AsyncIterator[WorkerRuntime]:
    """Attach the calling context as a driver to a running cluster.

    ``address`` is the head's HOST:PORT (or one of its nodes'); without it,
    ``$OWNERSHIP_ADDRESS``, else the cluster ``ownership start`` runs on
    this machine. The token comes from ``token_file``, else this machine's
    session, else ``~/.ownership/cluster.token`` (copy it, mode 0600, to
    the machine the driver runs on). The driver listens on ``host``,
    default: this machine's address on the route to the head, since
    workers dial the driver to return results. When this machine's session
    file says the cluster serves a dashboard, the driver notes its steps for
    it from the start (elsewhere, from its first question). Raises ``ConnectionError``
    (:class:`~.status.ClusterUnreachable`) with the reason in one line when
    there is no cluster to attach to, and ``ValueError`` for an address
    that is not one.
    """
    require_trio("ownership.connect()")
    address, token_path = cluster_address(address, token_file)
    token = load_token(token_path)
    if host is None:
        host = local_host_towards(parse_address(address)[0])
    lost = LostPeers()
    try:
        async with open_tcp_transport(token, host, on_peer_lost=lost) as tcp:
            node = await _node_to_attach(tcp, lost, address, timeout)
            probe = _has_dashboard(address)
            async with _serve_driver(tcp, lost, node, CoreConfig(**(config or {})), tick, timeout, probe=probe) as driver:
                yield driver
    except BaseExceptionGroup as group:
        raise _single(group) from None
