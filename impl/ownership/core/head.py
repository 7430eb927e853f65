"""The head: node membership by heartbeats, and failure publication.

The head is never on a task's critical path (DESIGN §2). Nodes heartbeat to
it every tick; a node silent for ``node_timeout_ticks`` ticks is declared
dead and its death (with every worker registered on it) is published to
every live node, which relays it to its workers. Worker deaths reported by
a node's scheduler are published the same way.
"""

from __future__ import annotations

from typing import Any

import attrs

from .config import CoreConfig
from .events import Effect, Event, EventLog, Received, Send, Tick
from .messages import ClusterView, Heartbeat, NodeDied, NodeView, RegisterWorker, Resources, WorkerDied, WorkerRegistered
from .worker import UnexpectedEvent

__all__ = ["NodeRecord", "HeadCore"]


@attrs.define(eq=False)
class NodeRecord:
    node: str
    last_seen: int
    total: Resources = ()
    available: Resources = ()
    workers: set[str] = attrs.Factory(set)
    alive: bool = True


class HeadCore:
    def __init__(self, address: str, config: CoreConfig | None = None) -> None:
        self.address = address
        self.config = config or CoreConfig()
        self.nodes: dict[str, NodeRecord] = {}
        self.ticks = 0
        self.published: set[str] = set()  # workers whose death was published
        self.log = EventLog(self.config.log_size)
        self.dropped = 0

    def handle(self, event: Event) -> list[Effect]:
        effects = self._dispatch(event)
        self.log.append(event, effects)
        return effects

    def _dispatch(self, event: Event) -> list[Effect]:
        if isinstance(event, Tick):
            self.ticks += 1
            fx: list[Effect] = []
            for name in sorted(self.nodes):
                rec = self.nodes[name]
                if rec.alive and self.ticks - rec.last_seen > self.config.node_timeout_ticks:
                    fx += self.detect_node_death(name)
            return fx
        if isinstance(event, Received):
            return self._receive(event.src, event.msg)
        raise UnexpectedEvent(f"head core cannot handle {event!r}")

    def _receive(self, src: str, msg: Any) -> list[Effect]:
        if isinstance(msg, (Heartbeat, RegisterWorker, WorkerDied)) and msg.node != src:
            # Only a node speaks for itself: a record for any other name
            # would be a member nobody can reach, declared dead later.
            self.dropped += 1
            return []
        if isinstance(msg, Heartbeat):
            return self._heartbeat(msg)
        if isinstance(msg, RegisterWorker):
            rec = self._record(msg.node)
            if rec is None:
                return []
            rec.workers.add(msg.worker)
            return [Send(msg.node, WorkerRegistered(worker=msg.worker, node=msg.node))]
        if isinstance(msg, WorkerDied):
            return self._publish_worker_death(msg)
        self.dropped += 1
        return []

    def _record(self, node: str) -> NodeRecord | None:
        rec = self.nodes.get(node)
        if rec is None:
            rec = self.nodes[node] = NodeRecord(node=node, last_seen=self.ticks)
        return rec if rec.alive else None

    def _heartbeat(self, msg: Heartbeat) -> list[Effect]:
        new = msg.node not in self.nodes or not self.nodes[msg.node].total
        rec = self._record(msg.node)
        if rec is None:
            return []  # declared dead already: a node does not come back
        rec.last_seen = self.ticks
        rec.total, rec.available = msg.total, msg.available
        rec.workers |= set(msg.workers)
        view = ClusterView(
            nodes=tuple(
                NodeView(node=r.node, total=r.total, available=r.available)
                for _, r in sorted(self.nodes.items())
                if r.alive
            )
        )
        if new:
            # Membership changed: every node learns of the newcomer now,
            # not one heartbeat period later.
            return self._broadcast(view)
        return [Send(msg.node, view)]

    def _publish_worker_death(self, msg: WorkerDied) -> list[Effect]:
        if msg.worker in self.published:
            return []
        self.published.add(msg.worker)
        rec = self.nodes.get(msg.node)
        if rec is not None:
            rec.workers.discard(msg.worker)
        return self._broadcast(msg)

    def _broadcast(self, msg: Any) -> list[Effect]:
        return [Send(name, msg) for name, rec in sorted(self.nodes.items()) if rec.alive]

    def detect_node_death(self, node: str) -> list[Effect]:
        r"""Spec: Scheduling!HeadDetectNodeDeath
        Spec: FateSharing!HeadDetectNodeDeath

            \* Scheduling
            HeadDetectNodeDeath(n) ==
                /\ n \in members
                /\ ~nodeAlive[n]
                /\ members' = members \ {n}
                /\ msgs' = msgs \cup {NodeDiedMsg(o, n) : o \in Owners}
                /\ lastAction' = Step("HeadDetectNodeDeath", NoOwner, NoTask, n, NoWorker, NoNode, NoMsg)
                /\ UNCHANGED <<envVars, pool, granted, ownerVars, histVars>>

            \* FateSharing
            HeadDetectNodeDeath(n) ==
                /\ n \notin up
                /\ n \notin announcedNodes
                /\ announcedNodes' = announcedNodes \cup {n}
                /\ LET D == {w \in Workers : Born(w) /\ nodeOf[w] = n}
                   IN msgs' = msgs
                              \cup {NodeDiedMsg(n, p) : p \in {p \in Workers : Interested(p, D, {n})}}
                              \cup {NodeDiedStoreMsg(n, s) : s \in {s \in Nodes : StoreInterested(s, D)}}
                /\ lastAction' = Step("HeadDetectNodeDeath", NoWorker, Root, n, NoMsg)
                /\ UNCHANGED <<up, crashes, status, nodeOf, ctx, got, table, copies, announced>>

        Implementation:

        A node missed its heartbeats: declare it dead and publish the death,
        naming every worker that was registered on it.
        """
        rec = self.nodes.get(node)
        if rec is None or not rec.alive:
            return []
        rec.alive = False
        workers = tuple(sorted(rec.workers - self.published))
        self.published |= set(workers)
        msg = NodeDied(node=node, workers=workers)
        # The node itself is told too: if it is only cut off, it must stop its
        # workers, which everyone else now counts as dead.
        return self._broadcast(msg) + [Send(node, msg)]

    def snapshot(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "nodes": {
                n: {"alive": r.alive, "last_seen": r.last_seen, "workers": sorted(r.workers), "total": dict(r.total), "available": dict(r.available)}
                for n, r in sorted(self.nodes.items())
            },
            "published": sorted(self.published),
        }
