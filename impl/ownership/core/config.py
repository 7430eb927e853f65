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
    #: tasks in flight on one lease (pushed, not yet answered) while a lease
    #: request of their key is out (Scheduling!OwnerReuseLease). The worker
    #: runs them one at a time; the next one is there when the previous
    #: ends, so the reply->push round trip is hidden. 1 turns pipelining
    #: off. Each task past the first may wait behind a long one while a
    #: lease granted meanwhile idles, hence 2: ~2x by-reference tasks/s in
    #: ``bench/`` against 1, and 4 added under 10 % more.
    pipeline_depth: int = 2
    #: pipeline only while a lease request of the key is out, as
    #: Scheduling!OwnerReuseLease says. The RefCounting mapping turns it off
    #: to hand one borrower several tasks of a caller on one lease.
    pipeline_only_while_requesting: bool = True
    #: pipeline only a task whose function's last task answered within the
    #: tick it was pushed in: a task queued behind a long one would wait for
    #: it while a lease granted meanwhile idles. The Scheduling mapping turns
    #: it off (the spec lets the owner pipeline whatever the durations).
    pipeline_short_tasks_only: bool = True
    #: tasks a worker runs at once (a lease is one CPU). Only the RefCounting
    #: mapping raises it: its processes run several of their tasks at once.
    tasks_at_once_per_worker: int = 1
    #: lease requests in flight per scheduling key.
    max_pending_lease_requests: int = 1
    #: before asking for a lease, give back the idle leases of other
    #: scheduling keys that have nothing queued (OwnerReturnLease, taken
    #: then rather than at a later tick): such a lease holds a CPU that the
    #: new key needs (a task taking a new ref has a new key). The
    #: conformance mappings turn it off: they take OwnerReturnLease with ticks.
    return_idle_leases_on_request: bool = True
    #: ticks without a heartbeat after which the head declares a node dead:
    #: the backstop for a node that hangs with its connection open.
    node_timeout_ticks: int = 10
    #: a node whose connection to the head drops (or cannot be dialed) is
    #: suspected at once and probed with fresh dials: dead when
    #: ``probe_attempts`` probes in a row go unanswered, each given
    #: ``probe_timeout_ticks`` ticks (the shell's clock), instead of after
    #: ``node_timeout_ticks`` of silence. A dead process refuses the dial at
    #: once; the time limit is for one that hangs or is cut off, and is
    #: generous because a live node found dead is fenced (it exits). The
    #: conformance mappings turn it off: they take HeadDetectNodeDeath with
    #: ticks.
    suspect_on_connection_loss: bool = True
    probe_attempts: int = 2
    probe_timeout_ticks: int = 5
    #: worker processes a node may run (tasks blocked in get, actors).
    max_workers_per_node: int = 64
    #: worker starts that may fail in a row before a node stops starting
    #: workers for ``worker_start_pause_ticks`` (its queued requests spill
    #: to other nodes meanwhile); then it tries one start again.
    max_worker_start_failures: int = 3
    worker_start_pause_ticks: int = 50
    #: stimuli each core keeps in its log.
    log_size: int = 10_000
