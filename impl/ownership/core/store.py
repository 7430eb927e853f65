"""The object store of a node: pinned primary copies of large values.

Large task returns (and large ``put`` values) are kept at the node where
they were made; the owner learns the location only once the copy is pinned
(the store relays the executor's TaskReply, or answers ObjectStored), so an
owner never points a reader at a copy that does not exist yet. Readers pull
a copy; the owner frees it; a copy whose owner died is freed at once (it
fate-shares with its owner).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from .events import Effect, ObjectFreed, Send
from .messages import FreeObject, ObjectCopy, ObjectStored, Payload, PullObject, PutObject

if TYPE_CHECKING:  # pragma: no cover
    from .node import NodeCore

__all__ = ["StoredObject", "ObjectStore"]


@attrs.define(eq=False)
class StoredObject:
    object_id: str
    owner: str
    value: Payload
    pinned: bool = True


class ObjectStore:
    def __init__(self, node: NodeCore) -> None:
        self.node_core = node
        self.objects: dict[str, StoredObject] = {}
        self.pulls_served = 0

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
            self.objects[msg.object_id] = StoredObject(object_id=msg.object_id, owner=msg.owner, value=msg.value)
        if msg.reply is not None:
            return [Send(msg.owner, msg.reply)]
        return [Send(msg.owner, ObjectStored(object_id=msg.object_id, node=self.node_core.address))]

    def serve_copy(self, msg: PullObject) -> list[Effect]:
        """A reader pulls a copy (None when this store has none)."""
        obj = self.objects.get(msg.object_id)
        self.pulls_served += 1
        return [Send(msg.requester, ObjectCopy(object_id=msg.object_id, value=obj.value if obj else None))]

    def free(self, msg: FreeObject) -> list[Effect]:
        """The owner freed the object: drop the copy."""
        if self.objects.pop(msg.object_id, None) is None:
            return []
        return [ObjectFreed(object_id=msg.object_id)]

    def handle_failure(self, dead_owners: set[str]) -> list[Effect]:
        r"""Spec: FateSharing!StoreHandleFailure

            \* FateSharing
            StoreHandleFailure(s) ==
                \E m \in msgs :
                   /\ IsNotification(m)
                   /\ m.dstNode = s
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
