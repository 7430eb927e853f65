"""The object store of a node: pinned primary copies of large values.

Large task returns (and large ``put`` values) are kept at the node where
they were made; the owner learns the location only once the copy is pinned
(the store relays the executor's TaskReply, or answers ObjectStored), so an
owner never points a reader at a copy that does not exist yet. Readers pull
a copy; the owner frees it; a copy whose owner died is freed at once (it
fate-shares with its owner).

A reader can also pull through its own node (:class:`FetchObject`, what the
TCP runtime does so that a same-node reader maps the node's shared memory):
the store serves its own copy, or pulls one from the source node, keeps it
as a *secondary* copy, and tells the owner (ObjectStored) so that the owner
frees it with the rest. A secondary copy is not on the owner's critical
path: the owner adds it to the object's locations if the object is still
there, and frees it at once otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from .events import Effect, ObjectFreed, Send
from .messages import FreeObject, ObjectCopy, ObjectStored, Payload, PullObject, PutObject, message

if TYPE_CHECKING:  # pragma: no cover
    from .node import NodeCore

__all__ = ["FetchObject", "ObjectFetched", "ObjectStore", "PendingFetch", "StoredObject"]


# Store traffic below the spec's level (the specs read a value from any live
# copy in one step): how a copy reaches a reader's node. Only the TCP runtime
# sends these; the in-memory runtime pulls from the source node directly.


@message
class FetchObject:
    """Worker -> its own node: bring a copy of ``object_id`` from ``source``
    into this node's store, and hand it to ``requester`` (ObjectFetched)."""

    object_id: str
    owner: str
    source: str
    requester: str


@message
class ObjectFetched:
    """Node -> the worker that asked: the copy, or None when ``source`` had none.

    ``source`` is the node the worker named: to the worker's core this is
    the answer of ``source`` to its pull.
    """

    object_id: str
    source: str
    value: Payload | None = None


@attrs.define(eq=False)
class StoredObject:
    object_id: str
    owner: str
    value: Payload
    pinned: bool = True  # the primary copy; False: a copy fetched for a reader here
    #: the owner's epoch it is pinned at: 0 for its first owner, the epoch
    #: of the take-over once pinned again for a new owner (OwnerRecovery)
    epoch: int = 0


@attrs.define(eq=False)
class PendingFetch:
    """A pull from ``source`` on behalf of local readers."""

    owner: str
    source: str
    waiters: list[tuple[str, str]] = attrs.Factory(list)  # (requester, the source it named)


class ObjectStore:
    def __init__(self, node: NodeCore) -> None:
        self.node_core = node
        self.objects: dict[str, StoredObject] = {}
        self.fetching: dict[str, PendingFetch] = {}
        self.pulls_served = 0
        self.fetches = 0

    @property
    def used_bytes(self) -> int:
        return sum(o.value.size for o in self.objects.values())

    def snapshot(self) -> dict[str, Any]:
        return {
            oid: {"owner": o.owner, "size": o.value.size, "pinned": o.pinned}
            for oid, o in sorted(self.objects.items())
        }

    def pin_copy(self, msg: PutObject) -> list[Effect]:
        """A large value made on this node is stored as its primary copy,
        pinned until its owner frees it; then the owner is told where it is.
        """
        if msg.owner in self.node_core.dead_workers:
            return []  # its owner died: the copy would fate-share at once
        if msg.object_id not in self.objects:
            # Pinned at the epoch of the push that made it (a put: its first owner's).
            epoch = msg.reply.epoch if msg.reply is not None else 0
            self.objects[msg.object_id] = StoredObject(object_id=msg.object_id, owner=msg.owner, value=msg.value, epoch=epoch)
        if msg.reply is not None:
            return [Send(msg.owner, msg.reply)]
        return [Send(msg.owner, ObjectStored(object_id=msg.object_id, node=self.node_core.address))]

    def serve_copy(self, msg: PullObject) -> list[Effect]:
        """A reader pulls a copy (None when this store has none)."""
        obj = self.objects.get(msg.object_id)
        self.pulls_served += 1
        return [Send(msg.requester, ObjectCopy(object_id=msg.object_id, value=obj.value if obj else None))]

    def fetch(self, msg: FetchObject) -> list[Effect]:
        """A local reader wants a copy that ``msg.source`` holds: serve ours,
        or pull one from the source (once, however many readers ask)."""
        oid = msg.object_id
        obj = self.objects.get(oid)
        if obj is not None:
            self.pulls_served += 1
            return [Send(msg.requester, ObjectFetched(object_id=oid, source=msg.source, value=obj.value))]
        if msg.source == self.node_core.address or msg.source in self.node_core.dead_nodes:
            return [Send(msg.requester, ObjectFetched(object_id=oid, source=msg.source))]
        pending = self.fetching.get(oid)
        if pending is not None:
            pending.waiters.append((msg.requester, msg.source))
            return []
        return self._start_fetch(oid, msg.owner, [(msg.requester, msg.source)])

    def _start_fetch(self, oid: str, owner: str, waiters: list[tuple[str, str]]) -> list[Effect]:
        source = waiters[0][1]
        self.fetching[oid] = PendingFetch(owner=owner, source=source, waiters=waiters)
        self.fetches += 1
        return [Send(source, PullObject(object_id=oid, requester=self.node_core.address))]

    def copy_arrived(self, src: str, msg: ObjectCopy) -> list[Effect]:
        """The source node answered our pull: keep the copy and hand it out."""
        oid = msg.object_id
        pending = self.fetching.get(oid)
        if pending is None or pending.source != src:
            return []
        del self.fetching[oid]
        if msg.value is None:
            return self._fetch_failed(oid, pending)
        fx: list[Effect] = []
        if pending.owner not in self.node_core.dead_workers and oid not in self.objects:
            self.objects[oid] = StoredObject(object_id=oid, owner=pending.owner, value=msg.value, pinned=False)
            # The owner frees it with the object's other copies (or at once
            # when the object is gone meanwhile).
            fx.append(Send(pending.owner, ObjectStored(object_id=oid, node=self.node_core.address)))
        for requester, source in pending.waiters:
            fx.append(Send(requester, ObjectFetched(object_id=oid, source=source, value=msg.value)))
        return fx

    def _fetch_failed(self, oid: str, pending: PendingFetch) -> list[Effect]:
        """The source had no copy: tell those who named it; the others named
        another source, which is tried next."""
        fx: list[Effect] = []
        retry = []
        for requester, source in pending.waiters:
            if source == pending.source or source in self.node_core.dead_nodes:
                fx.append(Send(requester, ObjectFetched(object_id=oid, source=source)))
            else:
                retry.append((requester, source))
        if retry:
            fx += self._start_fetch(oid, pending.owner, retry)
        return fx

    def free(self, msg: FreeObject) -> list[Effect]:
        r"""Spec: Ownership!StoreFree
        Spec: OwnerRecovery!StoreFree

            \* Ownership
            StoreFree(n, m) ==
                /\ m \in msgs
                /\ m.type = "FreeObject"
                /\ m.dstNode = n
                /\ n \in nodeUp
                /\ copies' = {c \in copies : ~(c.x = m.x /\ c.n = n)}
                /\ msgs' = msgs \ {m}
                /\ lastAction' = Step("StoreFree", NoAddr, m.x, n, m)
                /\ UNCHANGED <<actorVars, envVars, headVars, pool, starting, leases, nknown, ent, ex, known, brw, got, made, why>>

            \* OwnerRecovery
            StoreFree(n, m) ==
                /\ m \in msgs
                /\ m.type = "FreeObject"
                /\ m.dst = n
                /\ n \in up
                /\ msgs' = msgs \ {m}
                /\ copies' = {c \in copies : ~(c.x = m.x /\ c.n = n /\ c.o = m.o /\ c.ep = m.ep)}
                /\ lastAction' = Step("StoreFree", n, m.x, m)
                /\ UNCHANGED <<joined, up, crashes, declared, log, ent, brw, dk, mv, gst, run, fin, par, pb, got,
                               created, made, why, odied>>

        Implementation:

        The owner freed the object: drop the copy.
        """
        kept = self.objects.get(msg.object_id)
        if kept is None or (kept.pinned and kept.epoch != msg.epoch):
            # Pinned again at another epoch (for a new owner): this free is
            # a stale owner's, or a late one about an earlier life.
            return []
        del self.objects[msg.object_id]
        return [ObjectFreed(object_id=msg.object_id)]

    def repin(self, moved: Any, dead_owners: set[str], new_owner: str) -> list[Any]:
        """The copies here of ``moved`` objects (MovedObject records) whose
        owner died are pinned for ``new_owner`` at their new epoch; returns
        the records of the copies kept so. (The copies of other objects of
        the dead owners fate-share in handle_failure.)"""
        kept = []
        for m in moved:
            obj = self.objects.get(m.object_id)
            if obj is not None and obj.owner in dead_owners:
                obj.owner, obj.epoch = new_owner, m.epoch
                kept.append(m)
        return kept

    def handle_node_failure(self, node: str) -> list[Effect]:
        """A node died: the pulls from it will never be answered."""
        fx: list[Effect] = []
        for oid in sorted(self.fetching):
            pending = self.fetching[oid]
            if pending.source == node:
                del self.fetching[oid]
                fx += self._fetch_failed(oid, pending)
        return fx

    def handle_failure(self, dead_owners: set[str]) -> list[Effect]:
        r"""Spec: FateSharing!StoreHandleFailure

            \* FateSharing
            StoreHandleFailure(s) ==
                \E m \in msgs :
                   /\ IsNotification(m)
                   /\ m.dstNode = s
                   /\ m.node # s \/ m.type = "WorkerDied"
                   /\ s \in up
                   /\ copies' = {c \in copies : ~(c.node = s /\ c.owner \in DeadIn(m))}
                   /\ msgs' = msgs \ {m}
                   /\ lastAction' = Step("StoreHandleFailure", NoWorker, Root, s, m)
                   /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, table, announced,
                                  announcedNodes>>

        Implementation:

        The object store frees the copies whose owner died (fig. 11b).
        """
        fx: list[Effect] = []
        for oid in sorted(self.objects):
            if self.objects[oid].owner in dead_owners:
                del self.objects[oid]
                fx.append(ObjectFreed(object_id=oid))
        return fx
