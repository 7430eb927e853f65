"""``ownership start | stop | status | memory``: a cluster of daemons on this machine.

    ownership start --head [--host 127.0.0.1] [--port P] [--num-cpus N] [--resources '{"GPU": 1}']
                    [--dashboard-port P | --no-dashboard]
    ownership start --address HOST:PORT [--num-cpus N] [--resources JSON]   # one more node
    ownership status                                        # nodes, workers, resources, leases
    ownership memory                                        # objects: owner, size, copies, refs, borrowers
    ownership stop

``start --head`` creates a fresh cluster token (``~/.ownership/cluster.token``,
mode 0600; ``$OWNERSHIP_HOME`` moves the directory), starts the head and one
node, and records them in ``~/.ownership/session.json``; the head serves the
dashboard (its URL printed, and recorded in the session file); logs go to
``~/.ownership/logs/``. A driver attaches with
``async with ownership.connect("HOST:PORT")`` (the head's address, or a
node's). ``stop`` stops every process the session file names.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..dashboard.server import DEFAULT_PORT as DASHBOARD_PORT
from ..dashboard.server import url_of
from .auth import default_token_path, generate_token, load_token, ownership_home, write_token
from .cluster import check_resources, session_file, spawn_service
from .launch import DEFAULT_NODE_TIMEOUT, DEFAULT_TICK
from .shm import cleanup_leftovers
from .status import ClusterSnapshot, cluster_snapshot, infeasible_rows, memory_rows
from .tcp import parse_address

__all__ = ["add_subparsers"]


def add_subparsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    start = subparsers.add_parser("start", help="start a head (and a node), or add a node", description=__doc__)
    where = start.add_mutually_exclusive_group(required=True)
    where.add_argument("--head", action="store_true", help="start a new cluster: head and a first node")
    where.add_argument("--address", metavar="HOST:PORT", help="add a node to the cluster whose head is there")
    start.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    start.add_argument("--port", type=int, default=0, help="head port (default: any free port)")
    start.add_argument("--num-cpus", type=float, default=None, help="CPUs the node offers (default: all)")
    start.add_argument(
        "--resources",
        type=_resources_arg,
        default=None,
        metavar="JSON",
        help='custom resources the node offers besides its CPUs, e.g. \'{"GPU": 1}\'',
    )
    start.add_argument("--token-file", type=Path, default=None, help="cluster token (default ~/.ownership/cluster.token)")
    start.add_argument("--tick", type=float, default=DEFAULT_TICK, help=f"seconds per tick (default {DEFAULT_TICK})")
    start.add_argument(
        "--node-timeout", type=float, default=DEFAULT_NODE_TIMEOUT, help=f"heartbeat timeout (default {DEFAULT_NODE_TIMEOUT} s)"
    )
    start.add_argument(
        "--dashboard-port", type=int, default=None, help=f"head: the dashboard's port (default {DASHBOARD_PORT}, or any free one if taken; 0: any)"
    )
    start.add_argument("--dashboard-host", default="127.0.0.1", help="head: address the dashboard binds (default 127.0.0.1)")
    start.add_argument("--no-dashboard", action="store_true", help="head: run without the dashboard")
    start.set_defaults(func=_start)

    stop = subparsers.add_parser("stop", help="stop every process of this machine's session")
    stop.add_argument("--timeout", type=float, default=10.0, help="seconds to wait before SIGKILL (default 10)")
    stop.set_defaults(func=_stop)

    for name, func, text in (
        ("status", _status, "nodes, workers, resources and leases"),
        ("memory", _memory, "objects: owner, size, copies, reference kinds, borrowers"),
    ):
        p = subparsers.add_parser(name, help=text)
        p.add_argument("--address", metavar="HOST:PORT", help="the head (default: this machine's session)")
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
    return json.loads(path.read_text()) if path.exists() else None


def _write_session(info: dict[str, Any]) -> None:
    path = session_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- start / stop -----------------------------------------------------------------


def _start(args: argparse.Namespace) -> int:
    err = Console(stderr=True)
    ownership_home().mkdir(mode=0o700, parents=True, exist_ok=True)
    logs = ownership_home() / "logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    common = ["--host", args.host, "--tick", str(args.tick), "--node-timeout", str(args.node_timeout)]
    session = _read_session()
    if args.head:
        if session and any(_alive(pid) for pid in session.get("pids", {}).values()):
            err.print(f"[red]a cluster is already running here (head {session['head']}); `ownership stop` it first[/]")
            return 1
        listener = None if args.no_dashboard else _dashboard_socket(args, err)
        if listener is False:
            return 1
        token_file = write_token(generate_token(), args.token_file or default_token_path())
        session = {"session": secrets.token_hex(4), "token_file": str(token_file), "nodes": [], "pids": {}}
        dashboard = [] if listener is None else ["--dashboard-fd", str(listener.fileno())]
        with open(logs / "head.log", "ab") as log:
            proc, head = spawn_service(
                "head", token_file, *common, "--port", str(args.port), *dashboard, lifeline=False, stderr=log,
                pass_fds=() if listener is None else (listener.fileno(),),
            )
        proc.stdout.close()
        if listener is not None:
            session["dashboard"] = url_of(listener)
            listener.close()  # the head has its own copy
        session.update(head=head)
        session["pids"][head] = proc.pid
        _write_session(session)
        port_options: list[str] = []
    else:
        parse_address(args.address)
        token_file = Path(args.token_file or (session or {}).get("token_file") or default_token_path())
        load_token(token_file)  # refuse an exposed or missing token before starting anything
        head = (session or {}).get("head") or ""
        if args.address not in (head, head.partition("#")[0]):  # the session names the head by identity
            session = {"session": secrets.token_hex(4), "token_file": str(token_file), "nodes": [], "pids": {}, "head": args.address}
        port_options = ["--port", str(args.port)] if args.port else []
    node_options = [*common, *port_options, "--head", session["head"], "--session", session["session"]]
    if session.get("dashboard"):
        node_options.append("--dashboard-probe")
    if args.num_cpus is not None:
        node_options += ["--num-cpus", str(args.num_cpus)]
    if args.resources:
        node_options += ["--resources", json.dumps(args.resources)]
    with open(logs / f"node-{len(session['nodes']) + 1}.log", "ab") as log:
        proc, node = spawn_service("node", token_file, *node_options, lifeline=False, stderr=log)
    proc.stdout.close()
    session["nodes"].append(node)
    session["pids"][node] = proc.pid
    _write_session(session)
    out = Console()
    if args.head:
        out.print(f"head  {session['head']}\nnode  {node}\ntoken {token_file}")
        if session.get("dashboard"):
            out.print(f"dashboard {session['dashboard']}")
        out.print(f'connect a driver with: async with ownership.connect("{session["head"]}"): ...')
    else:
        out.print(f"node  {node} (head {session['head']})")
    return 0


def _dashboard_socket(args: argparse.Namespace, err: Console) -> Any:
    """The dashboard's listening socket for the head to inherit; False after a clear error."""
    from ..dashboard.server import bind

    port = DASHBOARD_PORT if args.dashboard_port is None else args.dashboard_port
    try:
        return bind(args.dashboard_host, port)
    except OSError as exc:
        if args.dashboard_port is not None:
            err.print(f"[red]{escape(exc.strerror or str(exc))}[/]: choose another --dashboard-port (0: any free port), or --no-dashboard")
            return False
    # The default port is taken (another cluster's dashboard?): any free one.
    try:
        sock = bind(args.dashboard_host, 0)
    except OSError as exc:
        err.print(f"[red]{escape(exc.strerror or str(exc))}[/]: pass --dashboard-host, or --no-dashboard")
        return False
    err.print(f"[yellow]the dashboard's default port {DASHBOARD_PORT} is taken: serving it on {url_of(sock)}[/]")
    return sock


def _stop(args: argparse.Namespace) -> int:
    session = _read_session()
    if not session:
        Console(stderr=True).print("no cluster recorded in " + str(session_file()))
        return 1
    pids = session.get("pids", {})
    # Nodes first (they stop their workers), then the head.
    order = [a for a in pids if a != session.get("head")] + [a for a in pids if a == session.get("head")]
    for address in order:
        if _alive(pids[address]):
            os.kill(pids[address], signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while any(_alive(pids[a]) for a in order) and time.monotonic() < deadline:
        time.sleep(0.05)  # not our children: no wait() to block on
    killed = [a for a in order if _alive(pids[a])]
    for address in killed:
        os.kill(pids[address], signal.SIGKILL)
    cleanup_leftovers(session["session"])
    session_file().unlink(missing_ok=True)
    Console().print(f"stopped {len(order)} processes" + (f" ({len(killed)} with SIGKILL)" if killed else ""))
    return 0


# -- status / memory -----------------------------------------------------------------


def _snapshot(args: argparse.Namespace) -> ClusterSnapshot:
    session = _read_session() or {}
    head = args.address or session.get("head")
    if not head:
        raise SystemExit("no cluster address: pass --address HOST:PORT or start one with `ownership start --head`")
    token = load_token(args.token_file or session.get("token_file") or default_token_path())
    return trio.run(lambda: cluster_snapshot(token, head, timeout=args.timeout))


def _fmt_resources(res: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in sorted(res.items())) or "-"


def _status(args: argparse.Namespace) -> int:
    snap = _snapshot(args)
    if args.json:
        print(json.dumps({"head": snap.head, "nodes": snap.nodes, "workers": snap.workers, "unreachable": snap.unreachable}, default=str))
        return 0
    out = Console()
    nodes = Table(title="nodes")
    for col in ("node", "alive", "total", "available", "workers", "leases", "stored objects", "shm"):
        nodes.add_column(col)
    for name, rec in sorted(snap.head.get("nodes", {}).items()):
        s = snap.nodes.get(name, {})
        sched = s.get("scheduler", {})
        store = s.get("store", {})
        shm = s.get("shm", {})
        nodes.add_row(
            name,
            "yes" if rec.get("alive") else "[red]dead[/]",
            _fmt_resources(sched.get("total", rec.get("total", {}))),
            _fmt_resources(sched.get("available", rec.get("available", {}))),
            str(len(sched.get("workers", {}))),
            str(len(sched.get("leases", {}))),
            f"{len(store)} ({sum(o.get('size', 0) for o in store.values())} B)",
            f"{shm.get('segments', 0)} ({shm.get('bytes', 0)} B)",
        )
    out.print(nodes)
    workers = Table(title="workers")
    for col in ("worker", "node", "pid", "state", "lease", "objects owned", "tasks run here"):
        workers.add_column(col)
    for node, s in sorted(snap.nodes.items()):
        for address, w in sorted(s.get("scheduler", {}).get("workers", {}).items()):
            ws = snap.workers.get(address, {})
            owned = sum(1 for e in ws.get("objects", {}).values() if e.get("owned"))
            running = ws.get("executor", {}).get("running", [])
            workers.add_row(address, node, str(ws.get("pid", "?")), str(w.get("state")), str(w.get("lease_id") or "-"), str(owned), str(len(running)))
    out.print(workers)
    leases = Table(title="leases")
    for col in ("lease", "node", "owner", "worker", "resources", "actor", "blocked"):
        leases.add_column(col)
    for node, s in sorted(snap.nodes.items()):
        for lid, lease in sorted(s.get("scheduler", {}).get("leases", {}).items()):
            leases.add_row(lid, node, lease["owner"], lease["worker"], _fmt_resources(lease["resources"]), str(lease["actor"]), str(lease["blocked"]))
    out.print(leases)
    infeasible = infeasible_rows(snap)
    if infeasible:
        table = Table(title="infeasible tasks: no node has the resources they ask for")
        for col in ("task", "function", "asks for", "tasks waiting", "owner", "waits at node"):
            table.add_column(col)
        for r in infeasible:
            table.add_row(str(r["task_id"]), f"{r['name']}()", _fmt_resources(r["resources"]), str(r["tasks_waiting"]), r["owner"], r["node"])
        out.print(table)
    if snap.unreachable:
        out.print(f"[yellow]no answer from: {', '.join(snap.unreachable)}[/]")
    return 0


def _memory(args: argparse.Namespace) -> int:
    snap = _snapshot(args)
    rows = memory_rows(snap)
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    out = Console()
    table = Table(title=f"objects ({len(rows)})")
    for col in ("object", "owner", "kind", "status", "size", "copies", "local", "submitted", "contained in", "borrowers", "held by"):
        table.add_column(col)
    for r in rows:
        copies = ", ".join(r["stored_at"] or r["locations"]) or ("inline" if r["inline"] else "-")
        table.add_row(
            r["object_id"],
            r["owner"] + ("" if r["owner_entry"] else " [red](no entry)[/]"),
            r["kind"],
            str(r["status"] or "-"),
            "-" if r["size"] is None else str(r["size"]),
            copies,
            str(r["local"]),
            str(r["submitted"]),
            ", ".join(r["contained_in"]) or "-",
            ", ".join(r["borrowers"]) or "-",
            ", ".join(r["held_by"]) or "-",
        )
    out.print(table)
    if snap.unreachable:
        out.print(f"[yellow]no answer from: {', '.join(snap.unreachable)}[/]")
    return 0
