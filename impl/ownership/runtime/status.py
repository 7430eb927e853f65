"""Asking the processes of a running cluster what they hold.

Every process of the TCP runtime (head, nodes, workers, drivers) answers a
:class:`StatusRequest` with a :class:`StatusReply` carrying its core's
snapshot. The answer is given by :class:`StatusTransport`, a thin layer
around the process's transport, so the protocol cores and their shells
never see these messages. ``ownership status`` and ``ownership memory`` and
the no-leak tests read the cluster through :func:`cluster_snapshot`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import attrs
import trio

from ..core.messages import message
from .output import TaskOutput
from .tcp import open_tcp_transport, parse_address
from .transport import Envelope, Transport

__all__ = [
    "ClusterSnapshot",
    "ClusterUnreachable",
    "LostPeers",
    "StatusReply",
    "StatusRequest",
    "StatusTransport",
    "ask",
    "cluster_snapshot",
    "demand_rows",
    "infeasible_rows",
    "memory_rows",
    "runtime_details",
    "query_status",
]

logger = logging.getLogger("ownership.status")


@message
class StatusRequest:
    """Anyone with the token -> any process: send me your snapshot."""

    #: a query: a process that cannot be reached any more (it is stopping)
    #: is no news for the transport's log
    best_effort: ClassVar[bool] = True

    request_id: str
    #: the dashboard's query (``dashboard/probe.py``): 1, also what the
    #: process's core logged since the last such query; 2, and a summary of
    #: its tables. The snapshot only if asked.
    probe: int = 0
    snapshot: bool = True


@message
class StatusReply:
    request_id: str
    role: str  # head, node, worker or driver
    snapshot: dict
    probe: dict | None = None


class StatusTransport(Transport):
    """A process's transport that answers status requests itself.

    ``snapshot`` is set once the service runs; until then the reply says
    the process is starting.
    """

    def __init__(self, inner: Transport, role: str, snapshot: Callable[[], dict] | None = None) -> None:
        self.inner = inner
        self.role = role
        self.snapshot = snapshot
        #: the process's core, once it runs: the dashboard's probe reads it
        self.core: Any = None
        self.requests_answered = 0
        #: what to do with a task's output (:mod:`.output`); None drops it
        self.on_output: Callable[[Envelope], None] | None = None

    @property
    def address(self) -> str:
        return self.inner.address

    def send_nowait(self, dst: str, msg: Any) -> None:
        self.inner.send_nowait(dst, msg)

    async def receive(self) -> Envelope:
        while True:
            env = await self.inner.receive()
            if type(env.msg) not in _SHELL_MESSAGES:
                return env
            self._shell_message(env)

    def set_receiver(self, deliver: Callable[[Envelope], None]) -> bool:
        """As the inner transport's ``set_receiver``, status requests answered
        here; False when the inner transport delivers only through receive()."""
        inner = getattr(self.inner, "set_receiver", None)
        if inner is None:
            return False

        def direct(env: Envelope) -> None:
            if type(env.msg) not in _SHELL_MESSAGES:  # one lookup per message on the hot path
                deliver(env)
            else:
                self._shell_message(env)

        return bool(inner(direct))

    def _answer(self, src: str, request: StatusRequest) -> None:
        probe = None
        try:
            if not request.snapshot:
                snapshot = {}
            else:
                snapshot = {"starting": True} if self.snapshot is None else self.snapshot()
            if request.probe and self.core is not None:
                from ..dashboard.probe import report

                probe = report(self.core, self.role, summary=request.probe > 1)
        except Exception as exc:  # a snapshot must never take the process down
            logger.exception("%s: snapshot failed", self.address)
            snapshot = {"error": repr(exc)}
        self.requests_answered += 1
        self.inner.send_nowait(src, StatusReply(request_id=request.request_id, role=self.role, snapshot=snapshot, probe=probe))

    def _shell_message(self, env: Envelope) -> None:
        if type(env.msg) is StatusRequest:
            self._answer(env.src, env.msg)
        elif type(env.msg) is TaskOutput:
            self._output(env)
        # else a StatusReply: a late answer to a query that gave up

    def _output(self, env: Envelope) -> None:
        if self.on_output is None:
            return
        try:
            self.on_output(env)
        except Exception:  # printing must never take the process down
            logger.exception("%s: cannot pass on the output of a task", self.address)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def reject(self, peer: str, reason: str) -> None:
        self.inner.reject(peer, reason)

    def watch(self, address: str) -> None:
        self.inner.watch(address)

    async def resolve(self, address: str) -> str:
        return await self.inner.resolve(address)

    async def probe(self, address: str) -> bool:
        return await self.inner.probe(address)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        with self.inner.busy():
            yield

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        with self.inner.idle():
            yield

    def statistics(self) -> Any:
        return self.inner.statistics()  # type: ignore[attr-defined]


#: messages the shell around a process answers itself; its core never sees them
_SHELL_MESSAGES = frozenset({StatusRequest, StatusReply, TaskOutput})

_request_ids = itertools.count(1)


async def query_status(
    transport: Transport, addresses: list[str], timeout: float, lost: "LostPeers | None" = None
) -> dict[str, StatusReply]:
    """Ask each of ``addresses``; the replies that came within ``timeout``.

    ``transport`` must be one nobody else receives from. With ``lost`` (the
    transport's ``on_peer_lost``), an address whose connection failed is
    not waited for.
    """
    pending: dict[str, str] = {}
    for address in addresses:
        rid = f"status-{next(_request_ids)}"
        pending[rid] = address
        transport.send_nowait(address, StatusRequest(request_id=rid))
    replies: dict[str, StatusReply] = {}

    async def receive() -> None:
        while pending:
            env = await transport.receive()
            if isinstance(env.msg, StatusReply) and env.msg.request_id in pending:
                replies[pending.pop(env.msg.request_id)] = env.msg

    async def give_up_on_lost(scope: trio.CancelScope) -> None:
        assert lost is not None
        while True:
            if all(address in lost for address in pending.values()):
                scope.cancel()
                return
            await lost.changed()

    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            if lost is not None:
                nursery.start_soon(give_up_on_lost, nursery.cancel_scope)
            await receive()
            nursery.cancel_scope.cancel()
    return replies


class LostPeers:
    """The peers a transport lost, for its ``on_peer_lost`` (a waiter wakes on each)."""

    def __init__(self) -> None:
        self.addresses: set[str] = set()
        self._changed = trio.Event()

    def __call__(self, address: str) -> None:
        self.addresses.add(address)
        self._changed.set()
        self._changed = trio.Event()

    def __contains__(self, address: object) -> bool:
        return address in self.addresses

    async def changed(self) -> None:
        await self._changed.wait()


class ClusterUnreachable(ConnectionError):
    """A cluster address that did not answer; the message says why, in one line."""


async def _why_unreachable(
    transport: Any, address: str, handshakes_failed: int, timeout: float, said: str | None = None
) -> str:
    """Why ``address`` did not answer ``transport``: the token, the network, or
    silence (then ``said``, what the transport said, if it said anything)."""
    stats = transport.statistics()
    if stats.handshakes_failed > handshakes_failed:
        return (
            f"{address} refused the handshake: the cluster token does not match "
            "(or it is not an ownership process)"
        )
    try:
        host, port = parse_address(address)
    except ValueError:
        return f"{address} does not answer"
    try:
        with trio.fail_after(min(timeout, 5.0)):
            stream = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        return f"cannot connect to {address}: timed out"
    except socket.gaierror as exc:
        return f"cannot connect to {address}: unknown host {host!r} ({exc.strerror})"
    except OSError as exc:
        # trio's "all attempts to connect failed" carries each attempt's error.
        causes = getattr(exc.__cause__, "exceptions", None) or (exc,)
        first = causes[0]
        errno = getattr(first, "errno", None)
        reason = (os.strerror(errno) if errno else str(first)).lower()
        return f"cannot connect to {address}: {reason} (is a cluster running there?)"
    await trio.aclose_forcefully(stream)
    return said or f"{address} accepted a connection but did not answer within {timeout:g} s"


async def resolve(transport: Any, address: str, timeout: float) -> str:
    """The identity of the process listening at ``address`` (a bare
    ``HOST:PORT`` as typed, or an identity), or :class:`ClusterUnreachable`
    saying in one line why there is none.
    """
    failed_before = transport.statistics().handshakes_failed
    try:
        with trio.fail_after(timeout):
            return await transport.resolve(address)
    except trio.TooSlowError:
        raise ClusterUnreachable(f"cannot connect to {address}: timed out") from None
    except ConnectionError as exc:  # e.g. another process than the identity named listens there
        raise ClusterUnreachable(await _why_unreachable(transport, address, failed_before, timeout, str(exc))) from None


async def ask(transport: Any, lost: LostPeers, address: str, timeout: float) -> tuple[str, StatusReply]:
    """The name of the process at ``address`` and its status reply, or
    :class:`ClusterUnreachable` saying why there is none.

    ``transport`` is a TCP transport whose ``on_peer_lost`` is ``lost``.
    """
    failed_before = transport.statistics().handshakes_failed
    target = await resolve(transport, address, timeout)
    got = await query_status(transport, [target], timeout, lost)
    if target not in got:
        raise ClusterUnreachable(await _why_unreachable(transport, address, failed_before, timeout))
    return target, got[target]


@attrs.frozen
class ClusterSnapshot:
    """What every reachable process of a cluster said, and who did not answer."""

    head: dict
    nodes: dict[str, dict]
    workers: dict[str, dict]  # drivers included (snapshot["driver"] is True)
    unreachable: tuple[str, ...] = ()

    def objects(self) -> dict[str, dict]:
        """Every owned object, by id: the owner's table entry."""
        out = {}
        for snap in self.workers.values():
            for oid, entry in _entries(snap):
                if entry.get("owned"):
                    out[oid] = entry
        return out

    def stored(self) -> dict[str, dict[str, dict]]:
        """Node -> the objects its store holds."""
        return {node: dict(snap.get("store", {})) for node, snap in self.nodes.items()}

    def is_empty(self) -> bool:
        """No owned object, no borrowed ref, no stored copy, no pull, no lease anywhere."""
        return (
            not any(dict(_entries(s)) for s in self.workers.values())
            and not any(self.stored().values())
            and not any(s.get("fetching") for s in self.nodes.values())
            and not any(s.get("scheduler", {}).get("leases") for s in self.nodes.values())
        )


def _entries(worker_snapshot: dict) -> Iterator[tuple[str, dict]]:
    objects = worker_snapshot.get("objects", {})
    for oid, entry in (objects.items() if isinstance(objects, dict) else ()):
        if isinstance(entry, dict):
            yield oid, entry


async def cluster_snapshot(token: bytes, head: str, *, timeout: float = 5.0, host: str = "127.0.0.1") -> ClusterSnapshot:
    """Ask the head for its nodes, the nodes for their workers, and everyone for their state.

    Raises :class:`ClusterUnreachable` (one line: why) when the head does
    not answer, and ``ValueError`` when it is not the head.
    """
    lost = LostPeers()
    async with open_tcp_transport(token, host, on_peer_lost=lost) as transport:
        head, reply = await ask(transport, lost, head, timeout)
        if reply.role != "head":
            raise ValueError(not_the_head(head, reply))
        head_snap = reply.snapshot
        node_addresses = sorted(n for n, rec in head_snap.get("nodes", {}).items() if rec.get("alive"))
        nodes = {a: r.snapshot for a, r in (await query_status(transport, node_addresses, timeout, lost)).items()}
        worker_addresses = sorted(
            {w for snap in nodes.values() for w in snap.get("scheduler", {}).get("workers", {})}
        )
        workers = {a: r.snapshot for a, r in (await query_status(transport, worker_addresses, timeout, lost)).items()}
    unreachable = tuple(sorted(set(node_addresses) - set(nodes) | set(worker_addresses) - set(workers)))
    return ClusterSnapshot(head=head_snap, nodes=nodes, workers=workers, unreachable=unreachable)


def infeasible_rows(snapshot: ClusterSnapshot) -> list[dict[str, Any]]:
    """Tasks that wait for resources no node of the cluster has, by owner.

    The owner's word counts (a node may still hold a request whose tasks
    were cancelled since).
    """
    rows = []
    for address, snap in sorted(snapshot.workers.items()):
        infeasible = snap.get("submitter", {}).get("infeasible", {})
        for request_id, entry in sorted(infeasible.items() if isinstance(infeasible, dict) else ()):
            rows.append({"owner": address, "request_id": request_id, **entry})
    return rows


def not_the_head(address: str, reply: StatusReply) -> str:
    """What to say when ``address`` answered as something other than a head."""
    head = reply.snapshot.get("head") if isinstance(reply.snapshot, dict) else None
    hint = f": the head of its cluster is {head}" if head else ""
    return f"{address} is a {reply.role} process, not a cluster's head{hint}"


def runtime_details(rt: Any) -> dict[str, Any]:
    """What ``status`` and ``memory`` show beyond a worker core's snapshot: the
    function, kind and resource shape of each task it owns or runs, and the
    class of the actor it hosts. Read when asked, never on a task's path."""
    owned = {}
    for task_id, entry in list(rt.core.submitter.tasks.items()):
        spec = entry.spec
        owned[task_id] = {
            "name": spec.name,
            "kind": spec.kind,
            "return_id": spec.return_id,
            "method": spec.method,
            "actor_id": spec.actor_id,
            "resources": dict(spec.resources),
            "state": entry.state,
        }
    running = {}
    for task_id, r in list(rt.core.executor.running.items()):
        running[task_id] = {"name": r.spec.name, "kind": r.spec.kind, "method": r.spec.method, "owner": r.spec.owner}
    actor = getattr(rt, "actor", None)
    return {"task_details": owned, "running_details": running, "actor_class": type(actor).__name__ if actor is not None else None}


def _fits(need: dict[str, float], total: dict[str, float]) -> bool:
    return all(total.get(k, 0.0) >= v for k, v in need.items() if v > 0)


def demand_rows(snapshot: ClusterSnapshot) -> list[dict[str, Any]]:
    """Tasks and actors not running yet, grouped by function and resource shape
    (as ``ray status`` shows demand): how many, and whether any live node could
    ever run them (``infeasible`` when none has the resources)."""
    totals = [rec.get("total", {}) for rec in snapshot.head.get("nodes", {}).values() if rec.get("alive")]
    # What the owner heard from a node's scheduler counts too (it judged on
    # the head's view, which may be newer than this snapshot's).
    told = {(r["owner"], r.get("name"), tuple(sorted(r.get("resources", {}).items()))) for r in infeasible_rows(snapshot)}
    groups: dict[tuple, dict[str, Any]] = {}
    for address, snap in sorted(snapshot.workers.items()):
        for task_id, d in snap.get("task_details", {}).items():
            if d.get("state") not in ("waiting", "queued") or d.get("kind") == "actor_method":
                continue
            shape = tuple(sorted((k, float(v)) for k, v in d.get("resources", {}).items()))
            name = d.get("name") or "?"
            if d.get("kind") == "actor_create":
                name = f"actor {name}"
            key = (name, shape, d["state"], address)
            row = groups.setdefault(
                key,
                {
                    "name": name,
                    "resources": dict(shape),
                    "count": 0,
                    "owner": address,
                    "waiting_for": "arguments" if d["state"] == "waiting" else "a worker",
                    "infeasible": not any(_fits(dict(shape), t) for t in totals) or (address, d.get("name"), shape) in told,
                },
            )
            row["count"] += 1
    return [groups[k] for k in sorted(groups)]


def memory_rows(snapshot: ClusterSnapshot) -> list[dict[str, Any]]:
    """One row per object known anywhere: owner, size, copies, reference kinds, borrowers.

    Borrowed refs whose owner did not answer (or no longer has the object)
    are listed too, marked ``owner_entry=False``: that is what a leak, or a
    refcount that seems wrong, looks like.
    """
    rows: dict[str, dict[str, Any]] = {}
    for address, snap in sorted(snapshot.workers.items()):
        details = snap.get("task_details", {})
        for oid, e in _entries(snap):
            if e.get("owned"):
                row = rows.setdefault(oid, _row(oid, e.get("owner", address)))
                row.update(
                    made_by=_made_by(e, details),
                    owner_entry=True,
                    kind=e.get("kind", "object"),
                    status=e.get("status"),
                    size=e.get("size"),
                    inline=bool(e.get("has_value")),
                    locations=list(e.get("locations", [])),
                    local=e.get("local", 0),
                    submitted=e.get("submitted", 0),
                    contained_in=list(e.get("contained_in", [])),
                    borrowers=sorted(e.get("borrowers", {})),
                )
            else:
                row = rows.setdefault(oid, _row(oid, e.get("owner", "?")))
                row["held_by"].append(address)
    for node, objects in snapshot.stored().items():
        for oid, info in objects.items():
            row = rows.setdefault(oid, _row(oid, info.get("owner", "?")))
            row["stored_at"].append(node)
            if row.get("size") is None:
                row["size"] = info.get("size")
    return [rows[k] for k in sorted(rows)]


def _made_by(entry: dict, details: dict) -> str:
    """The call that made an owned object: ``f()``, ``Actor.m()``, ``put()``."""
    task_id = entry.get("task_id")
    if task_id is None:
        return "actor" if entry.get("kind") == "actor" else "put()"
    d = details.get(task_id)
    if d is None:
        return "?"
    if d.get("kind") == "actor_create":
        return f"{d.get('name')}.remote()"
    if d.get("kind") == "actor_method":
        cls = next((c.get("name") for c in details.values() if c.get("return_id") == d.get("actor_id")), None)
        return f"{cls or 'actor'}.{d.get('method') or d.get('name')}()"
    return f"{d.get('name')}()"


def _row(oid: str, owner: str) -> dict[str, Any]:
    return {
        "object_id": oid,
        "made_by": "?",
        "owner": owner,
        "owner_entry": False,
        "kind": "object",
        "status": None,
        "size": None,
        "inline": False,
        "locations": [],
        "local": 0,
        "submitted": 0,
        "contained_in": [],
        "borrowers": [],
        "held_by": [],
        "stored_at": [],
    }
