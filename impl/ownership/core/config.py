"""Tunables of the protocol, shared by every core (all counts, no clocks)."""

from __future__ import annotations

import attrs

__all__ = ["CoreConfig"]


@attrs.frozen(kw_only=True)
class CoreConfig:
    #: values up to this size travel inline (with the reply, in the owner's
    #: table); larger ones go to the executing node's store (DESIGN §2).
    inline_threshold: int = 100 * 1024
    #: ticks an idle lease is kept before it is returned; 0 returns it as
    #: soon as its scheduling key's queue is empty.
    lease_idle_ticks: int = 1
    #: tasks pushed to one leased worker before the first one replied.
    pipeline_depth: int = 1
    #: lease requests in flight per scheduling key.
    max_pending_lease_requests: int = 1
    #: before asking for a lease, give back the idle leases of other
    #: scheduling keys that have nothing queued (OwnerReturnLease, taken
    #: then rather than at a later tick): such a lease holds a CPU that the
    #: new key needs (a task taking a new ref has a new key). The
    #: conformance mappings turn it off: they take OwnerReturnLease with ticks.
    return_idle_leases_on_request: bool = True
    #: ticks without a heartbeat after which the head declares a node dead.
    node_timeout_ticks: int = 10
    #: worker processes a node may run (tasks blocked in get, actors).
    max_workers_per_node: int = 64
    #: stimuli each core keeps in its log.
    log_size: int = 10_000
