"""``ownership start | stop | status | memory``: a cluster of daemons, one machine at a time.

``start --head`` creates a fresh cluster token (``~/.ownership/cluster.token``,
mode 0600; ``$OWNERSHIP_HOME`` moves the folder), starts the head and one
node, and records every process it starts in ``~/.ownership/session.json``
(before the process is even ready, so ``stop`` knows it whatever happens);
the head serves the dashboard (its URL printed, and kept in the session
file); logs go to ``~/.ownership/logs/<session>/``. ``start --address`` asks the
head first, so a wrong address fails at once, before anything starts.
``stop`` stops the nodes (each stops its workers), then the head.

A mistake (a wrong address, a missing or wrong token, a second cluster) is
one line on stderr and exit status 2; Ctrl-C is exit status 130, SIGTERM
143, and an interrupted ``start`` stops what it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.table import Table

from ..dashboard.server import DEFAULT_PORT as DASHBOARD_PORT
from ..dashboard.server import url_of
from ..cli import CommandError, Terminated
from .auth import default_token_path, generate_token, load_token, ownership_home, write_token
from .cluster import check_resources, cluster_address, local_host_towards, session_file, spawn_service
from .launch import DEFAULT_NODE_TIMEOUT, DEFAULT_TICK, ProcessStartError
from .shm import cleanup_leftovers
from .status import (
    ClusterSnapshot,
    ClusterUnreachable,
    LostPeers,
    ask,
    cluster_snapshot,
    demand_rows,
    memory_rows,
    not_the_head,
)
from .tcp import open_tcp_transport, parse_address
from .pids import pid_alive, pid_exists

__all__ = ["add_subparsers", "human_size", "render_memory", "render_status"]

_FORMATTER = argparse.RawDescriptionHelpFormatter

_START_EPILOG = """\
examples:
  ownership start --head                         # a new cluster on this machine
  ownership start --head --host 10.0.0.5         # reachable from other machines
  ownership start --address 10.0.0.5:6380        # one more node (the token must be here)
  ownership start --head --num-cpus 4 --port 6380
  ownership start --head --resources '{"GPU": 1}'   # custom resources besides CPUs
"""

_STATUS_EPILOG = """\
examples:
  ownership status
  ownership status --address 10.0.0.5:6380 --token-file ./cluster.token
  ownership status --json | python -m json.tool
"""


def add_subparsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    start = subparsers.add_parser(
        "start",
        help="start a cluster (head and a first node), or add a node to one",
        description="Start the head of a new cluster and its first node (--head), or one more node of the "
        "cluster whose head is at --address. Processes run in the background until `ownership stop`.",
        epilog=_START_EPILOG,
        formatter_class=_FORMATTER,
    )
    where = start.add_mutually_exclusive_group(required=True)
    where.add_argument("--head", action="store_true", help="start a new cluster: its head and a first node")
    where.add_argument("--address", metavar="HOST:PORT", help="add a node to the cluster whose head is there")
    start.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    start.add_argument("--port", type=int, default=0, help="the head's port (default: any free port)")
    start.add_argument("--num-cpus", type=float, default=None, help="CPUs the node offers (default: all of this machine's)")
    start.add_argument(
        "--resources",
        type=_resources_arg,
        default=None,
        metavar="JSON",
        help='custom resources the node offers besides its CPUs, e.g. \'{"GPU": 1}\'',
    )
    start.add_argument("--token-file", type=Path, default=None, help="cluster token (default ~/.ownership/cluster.token)")
    start.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the head to answer (default 10)")
    start.add_argument("--tick", type=float, default=DEFAULT_TICK, help=f"seconds per tick (default {DEFAULT_TICK})")
    start.add_argument(
        "--node-timeout",
        type=float,
        default=DEFAULT_NODE_TIMEOUT,
        help=f"seconds without a heartbeat before a node is declared dead (default {DEFAULT_NODE_TIMEOUT})",
    )
    start.add_argument(
        "--dashboard-port", type=int, default=None, help=f"head: the dashboard's port (default {DASHBOARD_PORT}, or any free one if taken; 0: any)"
    )
    start.add_argument("--dashboard-host", default="127.0.0.1", help="head: address the dashboard binds (default 127.0.0.1)")
    start.add_argument("--no-dashboard", action="store_true", help="head: run without the dashboard")
    start.set_defaults(func=_start)

    stop = subparsers.add_parser(
        "stop",
        help="stop every process `ownership start` started on this machine",
        description="Stop the nodes this machine runs (each stops its workers first), then the head, "
        "and remove their shared memory.",
        formatter_class=_FORMATTER,
    )
    stop.add_argument("--timeout", type=float, default=10.0, help="seconds to wait before SIGKILL (default 10)")
    stop.set_defaults(func=_stop)

    for name, func, text, description in (
        (
            "status",
            _status,
            "nodes, resources, processes and the tasks waiting to run",
            "The cluster as its processes see it: each node's resources and shared memory, every process "
            "(driver, worker, actor) and what it is doing, the tasks waiting for a worker or for arguments, "
            "and those no node can ever run (infeasible).",
        ),
        (
            "memory",
            _memory,
            "objects by node: size, the call that made them, owner, references",
            "Every object the cluster holds, grouped by the node that stores it (small values live with "
            "their owner): its size, the call that made it, its owner, and who still refers to it.",
        ),
    ):
        p = subparsers.add_parser(
            name, help=text, description=description, epilog=_STATUS_EPILOG.replace("status", name), formatter_class=_FORMATTER
        )
        p.add_argument("--address", metavar="HOST:PORT", help="the head (default: $OWNERSHIP_ADDRESS, else this machine's cluster)")
        p.add_argument("--token-file", type=Path, default=None, help="cluster token (default ~/.ownership/cluster.token)")
        p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
        p.add_argument("--json", action="store_true", help="print JSON instead of tables")
        p.set_defaults(func=func)


def _resources_arg(text: str) -> dict[str, float]:
    """``--resources '{"GPU": 1}'``, checked before anything starts (argparse
    turns the ValueError into a one-line usage error, exit 2)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg}): {text!r}; write it like '{{\"GPU\": 1}}'") from None
    try:
        return check_resources(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- session file ---------------------------------------------------------------


def _read_session() -> dict[str, Any] | None:
    path = session_file()
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path}: {exc}; remove it if no cluster runs here") from None
    return info if isinstance(info, dict) else None


def _write_session(info: dict[str, Any]) -> None:
    path = session_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path)


def _ours(pid: int, session: dict[str, Any]) -> bool:
    """``pid`` is alive and is a service process of this session (not a reused pid)."""
    if not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to ask: trust the session file
    return b"ownership.runtime.process" in argv and str(session.get("token_file", "")).encode() in argv


def _session_pids(session: dict[str, Any]) -> list[int]:
    return [int(p) for p in session.get("pids", {}).values()] + [int(p) for p in session.get("starting", [])]


def _live(session: dict[str, Any]) -> list[int]:
    return [p for p in _session_pids(session) if _ours(p, session)]


def _load_token(path: Path) -> bytes:
    """The token at ``path``, or a :class:`CommandError` that says what to do."""
    try:
        return load_token(path)
    except FileNotFoundError:
        raise CommandError(
            f"no cluster token at {path}: start a cluster with `ownership start --head`, or copy the head "
            "machine's token there (mode 0600), or pass --token-file"
        ) from None
    except (OSError, ValueError) as exc:  # an exposed file, not a token, a directory
        raise CommandError(str(exc) if not isinstance(exc, OSError) or not exc.strerror else f"{path}: {exc.strerror}") from None


def _address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a HOST:PORT address (for example 127.0.0.1:6380)") from None
    return text


def _log_tail(path: Path) -> str:
    """The last line a process wrote to its log, for a one-line error."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    if not lines:
        return ""
    last = lines[-1]
    return last.split(": ", 1)[1] if ": " in last and " ownership." in last else last


# -- start / stop -----------------------------------------------------------------


class _Starting:
    """The processes one ``ownership start`` started; stops them if it does not finish."""

    def __init__(self, session: dict[str, Any]) -> None:
        self.session = session
        self.started: list[int] = []

    def spawned(self, proc: Any) -> None:
        self.started.append(proc.pid)
        self.session.setdefault("starting", []).append(proc.pid)
        _write_session(self.session)  # `ownership stop` knows it from now on

    def ready(self, address: str, pid: int) -> None:
        self.session["starting"].remove(pid)
        self.session["pids"][address] = pid
        _write_session(self.session)

    def undo(self) -> None:
        for pid in reversed(self.started):
            _terminate([pid], self.session, timeout=5.0)
        for address, pid in list(self.session["pids"].items()):
            if pid in self.started:
                del self.session["pids"][address]
        self.session["starting"] = [p for p in self.session.get("starting", []) if p not in self.started]
        if not self.session["pids"]:
            session_file().unlink(missing_ok=True)
            cleanup_leftovers(self.session["session"])
        else:
            _write_session(self.session)


def _terminate(pids: list[int], session: dict[str, Any], timeout: float) -> int:
    """SIGTERM ``pids`` (those still ours), wait up to ``timeout``, then SIGKILL; how many were killed.

    Each gets SIGCONT after the SIGTERM, as systemd does: a stopped process
    (Ctrl-Z, a debugger) would otherwise hold the signal until the SIGKILL."""
    live = [p for p in pids if _ours(p, session)]
    for pid in live:
        os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in live) and time.monotonic() < deadline:
        time.sleep(0.05)  # not our children: there is no wait() to block on
    killed = [p for p in live if pid_alive(p)]
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    # Exited; their parent (init, or a subreaper) reaps them in a moment.
    deadline = time.monotonic() + 2.0
    while any(pid_exists(p) for p in live) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(killed)



def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _start(args: argparse.Namespace) -> int:
    previous = signal.signal(signal.SIGTERM, _on_sigterm)  # an interrupted start stops what it started
    try:
        return _start_head(args) if args.head else _start_node(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _logs(session: dict[str, Any]) -> Path:
    logs = ownership_home() / "logs" / session["session"]
    logs.mkdir(mode=0o700, parents=True, exist_ok=True)
    return logs


def _spawn(
    role: str, token_file: Path, options: list[str], starting: _Starting, log: Path, timeout: float, pass_fds: tuple[int, ...] = ()
) -> str:
    with open(log, "ab") as stderr:
        try:
            proc, address = spawn_service(
                role, token_file, *options, lifeline=False, stderr=stderr, timeout=timeout, on_spawn=starting.spawned, pass_fds=pass_fds
            )
        except ProcessStartError as exc:
            why = _log_tail(log) or str(exc)
            raise CommandError(f"the {role} did not start: {why} (log: {log})") from None
    proc.stdout.close()
    starting.ready(address, proc.pid)
    return address


def _common(args: argparse.Namespace) -> list[str]:
    return ["--host", args.host, "--tick", str(args.tick), "--node-timeout", str(args.node_timeout)]


def _start_head(args: argparse.Namespace) -> int:
    session = _read_session()
    if session and _live(session):
        raise CommandError(f"a cluster is already running here (head {session.get('head')}): `ownership stop` it first")
    if session and session.get("session"):  # left by processes that are gone: their shared memory too
        cleanup_leftovers(session["session"])
    ownership_home().mkdir(mode=0o700, parents=True, exist_ok=True)
    listener = None if args.no_dashboard else _dashboard_socket(args)
    token_file = write_token(generate_token(), args.token_file or default_token_path())
    session = {"session": secrets.token_hex(4), "token_file": str(token_file), "head": None, "nodes": [], "pids": {}, "starting": []}
    logs = _logs(session)
    session["logs"] = str(logs)
    starting = _Starting(session)
    head_options = [*_common(args), "--port", str(args.port)]
    if listener is not None:
        head_options += ["--dashboard-fd", str(listener.fileno())]
        session["dashboard"] = url_of(listener)
    try:
        try:
            fds = () if listener is None else (listener.fileno(),)
            session["head"] = _spawn("head", token_file, head_options, starting, logs / "head.log", 30.0, pass_fds=fds)
        finally:
            if listener is not None:
                listener.close()  # the head has its own copy
        _write_session(session)
        node = _start_one_node(args, session, token_file, starting)
    except BaseException:
        starting.undo()
        raise
    _print_next_steps(args, session, node, token_file)
    return 0


def _start_one_node(args: argparse.Namespace, session: dict[str, Any], token_file: Path, starting: _Starting) -> str:
    options = [*_common(args), "--head", session["head"], "--session", session["session"]]
    if session.get("dashboard"):
        options.append("--dashboard-probe")
    if args.port and not args.head:
        options += ["--port", str(args.port)]
    if args.num_cpus is not None:
        options += ["--num-cpus", str(args.num_cpus)]
    if args.resources:
        options += ["--resources", json.dumps(args.resources)]
    logs = _logs(session)
    log = logs / f"node-{len(list(logs.glob('node-*.log'))) + 1}.log"
    node = _spawn("node", token_file, options, starting, log, 60.0)
    session["nodes"].append(node)
    _write_session(session)
    return node


async def _probe_head(token: bytes, address: str, timeout: float) -> str:
    """The head's name, once it answered as a head."""
    lost = LostPeers()
    async with open_tcp_transport(token, local_host_towards(parse_address(address)[0]), on_peer_lost=lost) as transport:
        head, reply = await ask(transport, lost, address, timeout)
    if reply.role != "head":
        raise CommandError(not_the_head(address, reply))
    return head


def _names_head(session: dict[str, Any] | None, address: str) -> bool:
    """Whether ``session`` is the cluster whose head is at ``address``: the
    session names the head by identity, a person types its HOST:PORT."""
    head = (session or {}).get("head")
    return isinstance(head, str) and address in (head, head.partition("#")[0])


def _start_node(args: argparse.Namespace) -> int:
    address = _address(args.address)
    session = _read_session()
    mine = _names_head(session, address)
    token_file = Path(args.token_file or (session.get("token_file") if mine and session else None) or default_token_path())
    token = _load_token(token_file)
    try:
        head = trio.run(_probe_head, token, address, args.timeout)
    except ClusterUnreachable as exc:
        raise CommandError(str(exc)) from None
    same = bool(session) and session.get("head") in (address, head)
    if session and not same and _live(session):
        raise CommandError(
            f"this machine already runs the cluster whose head is {session.get('head')}: "
            "`ownership stop` it before joining another"
        )
    address = head
    if not same or not session:
        session = {"session": secrets.token_hex(4), "token_file": str(token_file), "head": address, "nodes": [], "pids": {}, "starting": []}
        session["logs"] = str(_logs(session))
    else:  # forget the processes of this session that are gone
        live = {a: p for a, p in session.get("pids", {}).items() if _ours(p, session)}
        session.update(pids=live, nodes=[n for n in session.get("nodes", []) if n in live], starting=[])
    starting = _Starting(session)
    try:
        node = _start_one_node(args, session, token_file, starting)
    except BaseException:
        starting.undo()
        raise
    Console(highlight=False, soft_wrap=True).print(f"node {node} joined the cluster whose head is {address} (logs in {_logs(session)})")
    return 0


def _dashboard_socket(args: argparse.Namespace) -> Any:
    """The dashboard's listening socket, for the head to inherit."""
    from ..dashboard.server import bind

    port = DASHBOARD_PORT if args.dashboard_port is None else args.dashboard_port
    try:
        return bind(args.dashboard_host, port)
    except OSError as exc:
        if args.dashboard_port is not None:
            raise CommandError(f"{exc.strerror or exc}: choose another --dashboard-port (0: any free port), or --no-dashboard") from None
    # The default port is taken (another cluster's dashboard?): any free one.
    try:
        sock = bind(args.dashboard_host, 0)
    except OSError as exc:
        raise CommandError(f"{exc.strerror or exc}: pass --dashboard-host, or --no-dashboard") from None
    Console(stderr=True).print(f"[yellow]the dashboard's default port {DASHBOARD_PORT} is taken: serving it on {url_of(sock)}[/]")
    return sock


def _print_next_steps(args: argparse.Namespace, session: dict[str, Any], node: str, token_file: Path) -> None:
    head = session["head"]
    address = head.partition("#")[0]  # what a person types; the identity is for the session file
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"[bold green]Started a cluster[/]: head {head}, node {node}")
    out.print(f"  token {token_file}, logs in {_logs(session)}")
    if session.get("dashboard"):
        out.print(f"  dashboard {session['dashboard']}")
    out.print()
    out.print("[bold]Next steps[/]")
    out.print("  Add a node (on another machine, copy the token file there first, mode 0600):")
    out.print(f"    ownership start --address {address}")
    if args.host in ("127.0.0.1", "localhost", "::1"):
        out.print("    (the head listens on 127.0.0.1: for other machines, start it with --host ADDRESS)")
    out.print("  Connect a driver from Python, on this machine:")
    out.print("    async with ownership.connect(): ...")
    out.print("  or from another machine that has the token:")
    out.print(f'    async with ownership.connect("{address}"): ...')
    out.print("  See the cluster, its objects:")
    out.print("    ownership status")
    out.print("    ownership memory")
    out.print("  Stop it:")
    out.print("    ownership stop")


def _stop(args: argparse.Namespace) -> int:
    out = Console(highlight=False)
    session = _read_session()
    if not session:
        out.print(f"no cluster is running here (no {session_file()})")
        return 0
    head_pid = session.get("pids", {}).get(session.get("head"))
    pids = _session_pids(session)
    # Nodes first (each stops its workers), then the head: no node's
    # heartbeat meets a closed head.
    nodes = [p for p in pids if p != head_pid]
    killed = _terminate(nodes, session, args.timeout)
    if head_pid is not None:
        killed += _terminate([head_pid], session, args.timeout)
    if session.get("session"):
        cleanup_leftovers(session["session"])
    session_file().unlink(missing_ok=True)
    out.print(f"stopped {len(pids)} process{'es' * (len(pids) != 1)}" + (f" ({killed} with SIGKILL)" if killed else ""))
    return 0


# -- status / memory -----------------------------------------------------------------


def _snapshot(args: argparse.Namespace) -> ClusterSnapshot:
    try:
        address, token_path = cluster_address(args.address, args.token_file)
    except ClusterUnreachable as exc:
        raise CommandError(str(exc)) from None
    except ValueError:
        raise CommandError(f"{args.address!r} is not a HOST:PORT address (for example 127.0.0.1:6380)") from None
    token = _load_token(token_path)
    host = local_host_towards(parse_address(address)[0])
    try:
        return trio.run(lambda: cluster_snapshot(token, address, timeout=args.timeout, host=host))
    except (ClusterUnreachable, ValueError) as exc:
        raise CommandError(str(exc)) from None


def human_size(n: float | None) -> str:
    """``2.0 MiB``: bytes in binary units, three significant digits."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}" if n < 100 else f"{n:.0f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _resources(res: dict[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in sorted(res.items())) or "-"


def _usage(total: dict[str, float], available: dict[str, float]) -> str:
    return ", ".join(f"{total[k] - available.get(k, 0.0):g}/{total[k]:g} {k}" for k in sorted(total)) or "-"


def _table(title: str | None = None) -> Table:
    return Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False, show_edge=False, header_style="bold")


def _address_column(table: Table, name: str) -> None:
    # Addresses are never cut: they wrap instead, so any column width shows them whole.
    table.add_column(name, overflow="fold", min_width=8)


def _processes(snap: ClusterSnapshot) -> dict[str, dict[str, Any]]:
    """Every process the nodes know: its role (driver, worker, actor ...), node, pid, what it does."""
    out: dict[str, dict[str, Any]] = {}
    for node, s in sorted(snap.nodes.items()):
        for address, w in sorted(s.get("scheduler", {}).get("workers", {}).items()):
            ws = snap.workers.get(address, {})
            state = str(w.get("state"))
            if state == "driver" or ws.get("driver"):
                role = "driver"
            elif ws.get("actor_class"):
                role = f"actor {ws['actor_class']}"
            else:
                role = "worker"
            running = ws.get("running_details", {})
            if running:
                names = sorted({d.get("method") or d.get("name") or "?" for d in running.values()})
                doing = "running " + ", ".join(names)
            elif role == "driver":
                tasks = ws.get("task_details", {})
                live = [d for d in tasks.values() if d.get("state") != "done"]
                doing = f"{len(live)} tasks in flight" if live else "idle"
            elif state == "leased":
                doing = "leased, idle"
            else:
                doing = state
            if address not in snap.workers:
                doing = "[yellow]no answer[/]"
            out[address] = {"role": role, "node": node, "pid": ws.get("pid"), "doing": doing, "state": state}
    return out


def _short(address: str, procs: dict[str, dict[str, Any]]) -> str:
    """An owner as people recognise it: ``driver (pid 12)``, ``worker (pid 34)``."""
    p = procs.get(address)
    if p is None:
        return address
    return f"{p['role']} (pid {p['pid']})" if p.get("pid") else p["role"]


def _status(args: argparse.Namespace) -> int:
    snap = _snapshot(args)
    if args.json:
        print(
            json.dumps(
                {
                    "head": snap.head,
                    "nodes": snap.nodes,
                    "workers": snap.workers,
                    "demand": demand_rows(snap),
                    "unreachable": snap.unreachable,
                },
                default=str,
            )
        )
        return 0
    head = args.address or os.environ.get("OWNERSHIP_ADDRESS") or (_read_session() or {}).get("head") or ""
    render_status(snap, Console(highlight=False), head)
    return 0


def render_status(snap: ClusterSnapshot, out: Console, head_address: str) -> None:
    """``ownership status``: a summary line, nodes with a total, processes, demand."""
    demand = demand_rows(snap)
    procs = _processes(snap)
    head_nodes = snap.head.get("nodes", {})
    alive = {n: r for n, r in head_nodes.items() if r.get("alive")}
    drivers = sum(1 for p in procs.values() if p["role"] == "driver")
    actors = sum(1 for p in procs.values() if p["role"].startswith("actor"))
    workers = len(procs) - drivers
    out.print(
        # the head's HOST:PORT, as people reach it (processes below go by identity)
        f"[bold]cluster[/] of head {head_address.partition('#')[0]}: {len(alive)} node{'s' * (len(alive) != 1)} alive"
        + (f", {len(head_nodes) - len(alive)} dead" if len(head_nodes) > len(alive) else "")
        + f", {workers} worker{'s' * (workers != 1)} ({actors} actor{'s' * (actors != 1)}), {drivers} driver{'s' * (drivers != 1)}"
    )
    out.print()

    # Nodes are numbered here and named by number below: the processes
    # table then has room for whole addresses.
    number = {name: i for i, name in enumerate(sorted(head_nodes), start=1)}
    nodes = _table("nodes")
    nodes.add_column("#", justify="right")
    _address_column(nodes, "node")
    for col in ("CPU and resources used", "workers", "objects stored"):
        nodes.add_column(col)
    total: dict[str, float] = {}
    available: dict[str, float] = {}
    stored_n = stored_bytes = 0
    for name, rec in sorted(head_nodes.items()):
        s = snap.nodes.get(name, {})
        sched = s.get("scheduler", {})
        t = sched.get("total", rec.get("total", {}))
        a = sched.get("available", rec.get("available", {}))
        store = s.get("store", {})
        size = sum(o.get("size", 0) or 0 for o in store.values())
        n_workers = sum(1 for p in procs.values() if p["node"] == name and p["role"] != "driver")
        if rec.get("alive"):
            for k, v in t.items():
                total[k] = total.get(k, 0.0) + v
                available[k] = available.get(k, 0.0) + a.get(k, 0.0)
            stored_n += len(store)
            stored_bytes += size
        nodes.add_row(
            str(number[name]),
            name,
            _usage(t, a) if rec.get("alive") else "[red]dead[/]",
            str(n_workers),
            f"{len(store)} ({human_size(size)})" if store else "0",
        )
    nodes.add_section()
    nodes.add_row("", "[bold]total[/]", _usage(total, available), str(workers), f"{stored_n} ({human_size(stored_bytes)})" if stored_n else "0")
    out.print(nodes)
    out.print()

    table = _table("processes")
    _address_column(table, "process")
    table.add_column("node", justify="right")
    for col in ("role", "pid", "doing"):
        table.add_column(col, overflow="fold")
    for address, p in sorted(procs.items(), key=lambda kv: (kv[1]["role"] != "driver", number.get(kv[1]["node"], 0), kv[0])):
        table.add_row(address, str(number.get(p["node"], "?")), p["role"], str(p["pid"] or "?"), p["doing"])
    out.print(table)

    out.print()
    if demand:
        table = _table("waiting to run")
        for col in ("what", "count", "needs", "owner", "waiting for"):
            table.add_column(col, overflow="fold")
        for d in demand:
            why = "[red]infeasible: no node has these resources[/]" if d["infeasible"] else d["waiting_for"]
            table.add_row(d["name"], str(d["count"]), _resources(d["resources"]), _short(d["owner"], procs), why)
        out.print(table)
    else:
        out.print("[bold]waiting to run[/]: nothing")
    if snap.unreachable:
        out.print(f"[yellow]no answer from: {', '.join(snap.unreachable)}[/]")


def _short_id(object_id: str, owner: str) -> str:
    """An object id without its owner's name in front, when it starts with it."""
    return object_id[len(owner) + 1 :] if owner and object_id.startswith(owner + "/") else object_id


def _refs(r: dict[str, Any], procs: dict[str, dict[str, Any]]) -> str:
    parts = []
    if r["local"]:
        parts.append(f"{r['local']} local")
    if r["submitted"]:
        parts.append(f"{r['submitted']} task arg{'s' * (r['submitted'] != 1)}")
    if r["contained_in"]:
        parts.append(f"in {len(r['contained_in'])} object{'s' * (len(r['contained_in']) != 1)}")
    if r["borrowers"]:
        parts.append("borrowed by " + ", ".join(_short(b, procs) for b in r["borrowers"]))
    if r["held_by"] and not r["owner_entry"]:
        parts.append("held by " + ", ".join(_short(b, procs) for b in r["held_by"]))
    return "; ".join(parts) or "-"


def _memory(args: argparse.Namespace) -> int:
    snap = _snapshot(args)
    if args.json:
        print(json.dumps(memory_rows(snap), default=str))
        return 0
    render_memory(snap, Console(highlight=False))
    return 0


def render_memory(snap: ClusterSnapshot, out: Console) -> None:
    """``ownership memory``: objects grouped by the node storing them, largest first."""
    rows = memory_rows(snap)
    procs = _processes(snap)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        where = r["stored_at"][0] if r["stored_at"] else ""  # a node's store, else its owner's memory
        groups.setdefault(where, []).append(r)
    total = sum(r["size"] or 0 for r in rows)
    out.print(f"[bold]{len(rows)} object{'s' * (len(rows) != 1)}[/], {human_size(total)} in all")
    for where in sorted(groups, key=lambda w: (w == "", w)):
        rs = groups[where]
        size = sum(r["size"] or 0 for r in rs)
        count = f"{len(rs)} object{'s' * (len(rs) != 1)}"
        title = (
            f"node {where}: {count}, {human_size(size)} in shared memory"
            if where
            else f"with their owners: {count} (small values, pending results, actors)"
        )
        table = _table()
        for col, kw in (("object", {"overflow": "fold"}), ("size", {"justify": "right"}), ("made by", {}), ("owner", {}),
                        ("status", {}), ("references", {"overflow": "fold"})):
            table.add_column(col, **kw)
        for r in sorted(rs, key=lambda r: (-(r["size"] or 0), r["object_id"])):
            owner = _short(r["owner"], procs) + ("" if r["owner_entry"] else " [red](no entry)[/]")
            status = str(r["status"] or "-")
            if len(r["stored_at"]) > 1:
                status += f", {len(r['stored_at'])} copies"
            table.add_row(_short_id(r["object_id"], r["owner"]), human_size(r["size"]), r["made_by"], owner, status, _refs(r, procs))
        out.print()
        out.print(f"[bold]{title}[/]")  # a line of its own: it wraps at the terminal's width, not the table's
        out.print(table)
    if snap.unreachable:
        out.print(f"[yellow]no answer from: {', '.join(snap.unreachable)}[/]")

