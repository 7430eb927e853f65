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
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import trio

from ..core.messages import message
from .tcp import open_tcp_transport
from .transport import Envelope, Transport

__all__ = [
    "ClusterSnapshot",
    "StatusReply",
    "StatusRequest",
    "StatusTransport",
    "cluster_snapshot",
    "infeasible_rows",
    "memory_rows",
    "query_status",
]

logger = logging.getLogger("ownership.status")


@message
class StatusRequest:
    """Anyone with the token -> any process: send me your snapshot."""

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

    @property
    def address(self) -> str:
        return self.inner.address

    def send_nowait(self, dst: str, msg: Any) -> None:
        self.inner.send_nowait(dst, msg)

    async def receive(self) -> Envelope:
        while True:
            env = await self.inner.receive()
            if not isinstance(env.msg, StatusRequest):
                return env
            self._answer(env.src, env.msg)

    def set_receiver(self, deliver: Callable[[Envelope], None]) -> bool:
        """As the inner transport's ``set_receiver``, status requests answered
        here; False when the inner transport delivers only through receive()."""
        inner = getattr(self.inner, "set_receiver", None)
        if inner is None:
            return False

        def direct(env: Envelope) -> None:
            if isinstance(env.msg, StatusRequest):
                self._answer(env.src, env.msg)
            else:
                deliver(env)

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

    async def aclose(self) -> None:
        await self.inner.aclose()

    def reject(self, peer: str, reason: str) -> None:
        self.inner.reject(peer, reason)

    def watch(self, address: str) -> None:
        self.inner.watch(address)

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


_request_ids = itertools.count(1)


async def query_status(transport: Transport, addresses: list[str], timeout: float) -> dict[str, StatusReply]:
    """Ask each of ``addresses``; the replies that came within ``timeout``.

    ``transport`` must be one nobody else receives from.
    """
    pending: dict[str, str] = {}
    for address in addresses:
        rid = f"status-{next(_request_ids)}"
        pending[rid] = address
        transport.send_nowait(address, StatusRequest(request_id=rid))
    replies: dict[str, StatusReply] = {}
    with trio.move_on_after(timeout):
        while pending:
            env = await transport.receive()
            if isinstance(env.msg, StatusReply) and env.msg.request_id in pending:
                replies[pending.pop(env.msg.request_id)] = env.msg
    return replies


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

    ``head`` is the head's ``HOST:PORT`` or identity.
    """
    async with open_tcp_transport(token, host) as transport:
        try:
            with trio.fail_after(timeout):
                head = await transport.resolve(head)
        except (ConnectionError, trio.TooSlowError) as exc:
            raise ConnectionError(f"the head at {head} does not answer: {exc or 'timed out'}") from None
        got = await query_status(transport, [head], timeout)
        if head not in got:
            raise ConnectionError(f"the head at {head} does not answer")
        head_snap = got[head].snapshot
        node_addresses = sorted(n for n, rec in head_snap.get("nodes", {}).items() if rec.get("alive"))
        nodes = {a: r.snapshot for a, r in (await query_status(transport, node_addresses, timeout)).items()}
        worker_addresses = sorted(
            {w for snap in nodes.values() for w in snap.get("scheduler", {}).get("workers", {})}
        )
        workers = {a: r.snapshot for a, r in (await query_status(transport, worker_addresses, timeout)).items()}
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


def memory_rows(snapshot: ClusterSnapshot) -> list[dict[str, Any]]:
    """One row per object known anywhere: owner, size, copies, reference kinds, borrowers.

    Borrowed refs whose owner did not answer (or no longer has the object)
    are listed too, marked ``owner_entry=False``: that is what a leak, or a
    refcount that seems wrong, looks like.
    """
    rows: dict[str, dict[str, Any]] = {}
    for address, snap in sorted(snapshot.workers.items()):
        for oid, e in _entries(snap):
            if e.get("owned"):
                row = rows.setdefault(oid, _row(oid, e.get("owner", address)))
                row.update(
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


def _row(oid: str, owner: str) -> dict[str, Any]:
    return {
        "object_id": oid,
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
