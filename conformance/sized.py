"""Event logs of whole TCP runs, with a model sized from the run itself.

A model config (``Small``...) fixes how many nodes, workers, owners and tasks
there are; a chaos run has hundreds of processes and thousands of tasks, and
its nodes and workers come and go (a process's address carries its
incarnation, so a worker started on a dead one's port is another worker).
Here the model's constants are read off the merged run instead:

- ``Nodes``: every node process of the run (those added to replace killed
  ones too), in order of start; ``Capacity`` from each node's first
  heartbeat (its CPUs: every lease of a one-CPU task takes one);
- ``Workers``: every worker process, with ``WorkerNode`` its node, and
  ``Unregistered`` all of them: a node starts its workers after it starts,
  and leases each once it has registered;
- ``Owners``: every process that submitted a task (the driver and the
  workers whose tasks submit tasks), ``OwnerNode`` its node, ``OwnerWorker``
  its worker process (an owner that is a worker dies with it);
- ``Tasks``: every task and actor creation submitted (an actor's lease is
  held for its life, which the spec allows), ``TaskOwner``
  its submitter, ``TaskKey`` its scheduling key (the submitter's: resource
  shape and by-reference arguments), ``TaskRetries`` its
  ``max_retries``, ``SubmitOrder`` the merged order of the submissions;
- ``StaleViews``: on (a node redirects a request where its view, as of the
  last heartbeats, says there is room; the room may be gone by then);
- ``Lending``: on (a task that waits in a get lends its slot: nested jobs);
- ``Reconstruction``: on (an owner reruns a finished task whose value is
  lost: blob jobs, when the node that stored a value dies);
- ``FreeKeys``: the keys that ask for no CPU (an actor by default), whose
  leases take no slot;
- ``MaxCrashes``: the crashes of the run; ``PipelineDepth`` and
  ``MaxPendingLeaseRequests``: the owners' configuration, from their logs'
  headers (an owner's config bounds what its core does, and the spec's
  guards are those bounds).

An actor's calls go to the actor directly, past the schedulers, so their
steps are left out, and said so. Its creation is leased like a task, and the
lease is held for the actor's life; the lease's return stops the worker
(``ReturnLease.kill``), which is the worker's crash in the model, at once.

``validate_log`` checks a run's whole log against this model, a window of
lines at a time (``ownership conformance validate --from-dir DIR``, and
``ownership chaos --log-dir DIR`` after a chaos run).
"""

from __future__ import annotations

from typing import Any

from ownership.core.events import Submit
from ownership.core.messages import Heartbeat
from ownership.core.submitter import scheduling_key
from ownership.tla.values import ModelValue, TLAFunction

from .eventlog import CoreStep, LogLine
from .merge import MergedRun, StepLogError

__all__ = ["scheduling_log", "contains_unbound", "validate_log", "validate_lines", "window_model"]


def _mv(prefix: str, i: int) -> ModelValue:
    return ModelValue(f"{prefix}{i}")


def _capacity(run: MergedRun, node: str) -> int | None:
    for s in run.steps:
        if isinstance(s, CoreStep) and s.process == node:
            for e in s.effects:
                msg = getattr(e, "msg", None)
                if isinstance(msg, Heartbeat):
                    cpu = dict(msg.total).get("CPU")
                    return None if cpu is None else int(cpu)
    return None


def _owner_limit(run: MergedRun, owners: list[str], name: str, default: int, notes: list[str]) -> int:
    """One bound of the owners' configuration: the model has one value, so
    owners configured differently are a run no sized model describes."""
    values = {run.processes[a].limits[name] for a in owners if name in run.processes[a].limits}
    if not values:
        notes.append(f"no owner's log names its {name}: {default} assumed")
        return default
    if len(values) > 1:
        raise StepLogError(f"the owners of the run have different {name} ({sorted(values)}): one model cannot size them")
    return values.pop()


def scheduling_constants(run: MergedRun, pipeline_depth: int = 2) -> tuple[dict[str, Any], dict[str, dict[Any, str]], list[str]]:
    """The Scheduling constants of ``run``, the binding of model values to
    the run's addresses and task ids, and notes for the reader."""
    notes: list[str] = []
    logs = run.processes
    node_logs = sorted((l for l in logs.values() if l.role == "node"), key=lambda l: (l.started, l.address))
    if not node_logs:
        raise StepLogError("the run has no node processes")
    nodes = {_mv("n", i): l.address for i, l in enumerate(node_logs, start=1)}
    node_of = {a: n for n, a in nodes.items()}
    worker_logs = sorted((l for l in logs.values() if l.role == "worker"), key=lambda l: (l.started, l.address))
    workers = {_mv("w", i): l.address for i, l in enumerate(worker_logs, start=1)}
    worker_mv = {a: w for w, a in workers.items()}
    capacity = {}
    for n, address in nodes.items():
        cpu = _capacity(run, address)
        if cpu is None:
            notes.append(f"{n.name} ({address}) sent no heartbeat: capacity 0")
        capacity[n] = cpu or 0
    submits = [s for s in run.steps if isinstance(s, CoreStep) and isinstance(s.event, Submit)]
    # An actor's creation is leased like a task (its lease is held for the
    # actor's life, which the spec allows: nothing forces a return); its
    # calls go to the actor, past the schedulers, and are left out.
    plain = [s for s in submits if s.event.task.kind in ("task", "actor_create")]
    if len(plain) < len(submits):
        notes.append(f"{len(submits) - len(plain)} actor calls left out: they go to the actor, past the schedulers")
    owner_addrs: list[str] = []
    for s in plain:
        if s.process not in owner_addrs:
            owner_addrs.append(s.process)
    owners = {_mv("o", i): a for i, a in enumerate(owner_addrs, start=1)}
    owner_of = {a: o for o, a in owners.items()}
    owner_node = {}
    for o, a in owners.items():
        node = logs[a].node if logs[a].role != "node" else a
        if node not in node_of:
            raise StepLogError(f"owner {a} is on node {node}, which left no step log")
        owner_node[o] = node_of[node]
    shapes: dict[tuple, ModelValue] = {}
    key_cpus: dict[ModelValue, float] = {}
    tasks: dict[ModelValue, str] = {}
    task_owner, task_key, task_retries, order = {}, {}, {}, []
    for i, s in enumerate(plain, start=1):
        spec = s.event.task
        t = _mv("t", i)
        shape = scheduling_key(spec)
        if shape not in shapes:
            shapes[shape] = _mv("k", len(shapes) + 1)
            key_cpus[shapes[shape]] = float(dict(spec.resources).get("CPU", 0.0))
        tasks[t] = spec.task_id
        task_owner[t] = owner_of[s.process]
        task_key[t] = shapes[shape]
        task_retries[t] = int(spec.max_retries)
        order.append(t)
    worker_node = {}
    for w, a in workers.items():
        node = logs[a].node
        if node not in node_of:
            raise StepLogError(f"worker {a} is on node {node}, which left no step log")
        worker_node[w] = node_of[node]
    constants: dict[str, Any] = {
        "Owners": frozenset(owners),
        "Nodes": frozenset(nodes),
        "Workers": frozenset(workers),
        "Unregistered": frozenset(workers),
        "Tasks": frozenset(tasks),
        "Keys": frozenset(shapes.values()) or frozenset({_mv("k", 1)}),
        "OwnerNode": TLAFunction(owner_node),
        "OwnerWorker": TLAFunction({o: worker_mv.get(a, ModelValue("NoWorker")) for o, a in owners.items()}),
        "WorkerNode": TLAFunction(worker_node),
        "Capacity": TLAFunction(capacity),
        "TaskOwner": TLAFunction(task_owner),
        "TaskKey": TLAFunction(task_key),
        "SubmitOrder": tuple(order),
        "MaxCrashes": len(run.crashed),
        "TaskRetries": TLAFunction(task_retries),
        "PipelineDepth": _owner_limit(run, owner_addrs, "pipeline_depth", pipeline_depth, notes),
        "MaxPendingLeaseRequests": _owner_limit(run, owner_addrs, "max_pending_lease_requests", 1, notes),
        # a node redirects where its last view of the cluster said there was room
        "StaleViews": True,
        # a leased worker whose task waits in a get lends its slot
        "Lending": True,
        # an owner reruns a finished task whose value is lost
        "Reconstruction": True,
        # keys asking for no CPU (actors by default) take no slot
        "FreeKeys": frozenset(k for k, cpus in key_cpus.items() if cpus <= 0.0),
        "NoOwner": ModelValue("NoOwner"),
        "NoNode": ModelValue("NoNode"),
        "NoWorker": ModelValue("NoWorker"),
        "NoTask": ModelValue("NoTask"),
        "NoKey": ModelValue("NoKey"),
    }
    key_resources = {k: shape[1] if shape[0] == "task" else () for shape, k in shapes.items()}
    binding = {"owner": owners, "node": nodes, "worker": workers, "task": tasks, "key": key_resources}
    return constants, binding, notes


def contains_unbound(value: Any) -> bool:
    """Whether a parameter holds an id no model value is bound to (or none)."""
    from .mappings.scheduling import _Unbound

    if value is None or isinstance(value, _Unbound):
        return True
    if isinstance(value, dict):
        return any(contains_unbound(v) for v in value.values())
    if isinstance(value, (tuple, list, frozenset, set)):
        return any(contains_unbound(v) for v in value)
    return False


def scheduling_log(run: MergedRun, pipeline_depth: int = 2) -> tuple[dict[str, Any], list[LogLine], list[str]]:
    """The constants, the Scheduling event log and notes of a whole run."""
    from .mappings.scheduling import SchedulingMapping

    constants, binding, notes = scheduling_constants(run, pipeline_depth)
    mapping = SchedulingMapping(constants)
    mapping.bind.owner_addr = dict(binding["owner"])
    mapping.bind.node_addr = dict(binding["node"])
    mapping.bind.worker_addr = dict(binding["worker"])
    mapping.bind.task_id = dict(binding["task"])
    mapping.bind.key_resources = dict(binding["key"])
    mapping.head_address = run.harness.head or next((l.address for l in run.processes.values() if l.role == "head"), "head")
    mapping.keep_unbound = True
    lines = mapping.recognize(list(run.steps))
    kept = [line for line in lines if not contains_unbound(line.params)]
    if len(kept) < len(lines):
        notes.append(f"{len(lines) - len(kept)} actions of actor tasks left out")
    return constants, kept, notes


#: lines of a run's Scheduling log checked at a time by ``validate_log`` unless told
WINDOW = 2000


def _rejected(out: dict[str, Any], v: Any, offset: int, total: int, checked: str) -> dict[str, Any]:
    """``out`` with the rejection of validation ``v`` (of lines from
    ``offset`` on): the line, the state before it and a summary."""
    from .replay import Step

    line = v.failed
    at = offset + v.consumed + 1
    out.update(accepted=False, consumed=at - 1)
    out["failed"] = None if line is None else f"clock {line.clock}, {line.process}: {Step(at, line.action, line.params)}"
    out["state"] = {} if v.state is None else {k: _salient(x) for k, x in sorted(v.state.items()) if k != "lastAction"}
    out["summary"] = f"Scheduling REJECTED line {at:,} of {total:,} ({checked}, {out['seconds']:.0f} s): {out['failed']}"
    return out


def _salient(value: Any) -> str:
    """A state variable in short: a function's entries that differ from its most common value."""
    from collections import Counter

    from ownership.tla.values import format_value

    if isinstance(value, dict) and len(value) > 4 and not all(isinstance(k, str) for k in value):
        common, _n = Counter(format_value(v) for v in value.values()).most_common(1)[0]
        rest = {k: v for k, v in value.items() if format_value(v) != common}
        shown = format_value(TLAFunction(rest)) if rest else "()"
        return f"{shown} (every other of {len(value)}: {common})"
    return format_value(value)


# ---------------------------------------------------------------------------
# The whole log, window by window
# ---------------------------------------------------------------------------
#
# TLC's cost per line grows with the model: every task the run submitted is
# an entry of five functions, every owner a row of queues, and every death a
# message to each owner, so a whole chaos log takes time quadratic in its
# length. Checked a window at a time, each window starting in the states the
# one before ended in, the model of a window holds only what its lines can
# touch, and the cost is linear.

#: the statuses of a task that some action may still read without naming it
_PENDING = frozenset({"queued", "requested", "pushed"})
#: message types whose destination is the ``owner`` field (the others go to ``node``)
_TO_OWNER = frozenset({"LeaseGranted", "Spillback", "TaskReply", "WorkerDied", "NodeDied"})


class _Lifetimes:
    """When each model value is named in a log: the first and last line
    (by index) naming it in a parameter or a message's field, the last line
    naming each message, and the failure detections (which send a message
    to every owner)."""

    def __init__(self, lines: list[LogLine]) -> None:
        from ownership.tla.values import TLARecord

        from .validate import model_value_names

        self.first: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.message_last: dict[Any, int] = {}
        #: (line index, "WorkerDied" or "NodeDied", the worker or node)
        self.detections: list[tuple[int, str, ModelValue]] = []
        for i, line in enumerate(lines):
            names: set[str] = set()
            model_value_names(line.params, names)
            for name in names:
                self.first.setdefault(name, i)
                self.last[name] = i
            m = line.params.get("m")
            if isinstance(m, dict):
                self.message_last[TLARecord(m)] = i
            if line.action == "SchedulerDetectWorkerDeath":
                self.detections.append((i, "WorkerDied", line.params["w"]))
            elif line.action == "HeadDetectNodeDeath":
                self.detections.append((i, "NodeDied", line.params["n"]))

    def named(self, value: ModelValue, a: int, b: int) -> bool:
        """Whether a line of ``[a, b)`` or of both sides of it names ``value``:
        ``value`` is named before ``b`` and again at ``a`` or later."""
        return self.first.get(value.name, b) < b and self.last.get(value.name, -1) >= a

    def named_from(self, value: ModelValue, a: int) -> bool:
        return self.last.get(value.name, -1) >= a


def _fn(value: Any) -> dict[Any, Any]:
    """A function TLC printed: ``<<>>`` is also the empty function."""
    return {} if value == () else value


def _message(constants: dict[str, Any], kind: str, owner: ModelValue, about: ModelValue) -> Any:
    """``WorkerDiedMsg(owner, about)`` or ``NodeDiedMsg(owner, about)`` of the spec."""
    from ownership.tla.values import TLARecord

    c = constants
    worker = about if kind == "WorkerDied" else c["NoWorker"]
    node = c["WorkerNode"][about] if kind == "WorkerDied" else about
    return TLARecord(
        {"type": kind, "owner": owner, "task": c["NoTask"], "key": c["NoKey"], "node": node, "worker": worker, "retry_at": c["NoNode"]}
    )


def window_model(
    constants: dict[str, Any], life: _Lifetimes, a: int, b: int, starts: list[dict[str, Any]] | None
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """The model of lines ``[a, b)`` and the states it starts in: those of
    ``starts`` (the states the window before ended in; None for the first
    window, which starts in ``Init``) cut to what the window keeps, with
    the rows of what enters it added.

    What a window keeps, and why a behaviour of its model takes its lines
    exactly when one of the whole model does (from the same state):

    - every node and every worker (they are few, and a node's death writes
      the aliveness of all its workers);
    - the tasks its lines name, those of a live owner that are pending
      (queued, requested or pushed: ``InFlight``, ``RequestsOut`` and the
      failure scan read them without naming them) and those the state
      names in a lease, a live owner's queue or a message. The rest are
      finished, or a dead owner's, and never named again, or not yet
      submitted: no action but one naming them reads them (every action
      of an owner needs it alive), and the guard of ``OwnerSubmit`` on the
      tasks before it is met by both. A task enters a window once, new (no
      action wrote its row before);
    - the owners its lines name, every driver, the owners of its tasks and
      those the state names in a lease, a live owner's queue or a message
      to a node (a dead owner's queues and leases are read by no action).
      An owner dropped is never named again; one not yet named has written
      nothing, and enters with empty rows and the failure notices every
      owner got from the detections before the window
      (``SchedulerDetectWorkerDeath`` and ``HeadDetectNodeDeath`` send one to
      every owner). The one guard that reads another owner's notices, the
      second disjunct of ``SchedulerDetectWorkerDeath``'s, is the same with
      any set of live owners that holds a driver: every live owner has heard
      of ``w`` exactly when ``w``'s death was detected;
    - of a kept owner's queues, those of its tasks' keys (every action reads
      ``queue[o][k]`` for a task of ``o`` or a lease it holds);
    - of what a kept owner knows is dead, and of the failure notices to it
      that no later line names, only what an action from the window on
      may read: a worker a later line names, a node a later line names
      (or one of its workers), where the owner's tasks are and where they
      ran. The
      actions that read ``deadWorkers``/``deadNodes`` ask about a task's
      location (``LocationDied``), the workers a finished task ran on and
      their nodes (``OwnerReconstruct``), a worker a line names (the knownDead of
      ``OwnerHandleGrant``, the guard of ``SchedulerDetectWorkerDeath``) or
      a node a line names (``OwnerHandleSpillback``); a notice no line
      names is read only by that guard. Without this, what every owner
      knows grows with owners times deaths.
    """
    from ownership.tla.values import TLARecord

    c = constants
    no_worker = c["NoWorker"]
    drivers = {o for o in c["Owners"] if c["OwnerWorker"][o] == no_worker}
    states = starts or []
    tasks = {t for t in c["Tasks"] if life.named(t, a, b)}
    owners = {o for o in c["Owners"] if life.named(o, a, b)} | drivers
    to_owner: list[Any] = []
    for s in states:
        alive = {o for o in c["Owners"] if c["OwnerWorker"][o] == no_worker or _fn(s["workerAlive"]).get(c["OwnerWorker"][o], True)}
        tasks |= {t for t, st in _fn(s["status"]).items() if st in _PENDING and c["TaskOwner"][t] in alive}
        held = [leases for o, leases in _fn(s["held"]).items() if o in alive]
        for leases in (*s["granted"].values(), *held):
            tasks |= {l["task"] for l in leases}
            owners |= {l["owner"] for l in leases}
        for o, queues in _fn(s["queue"]).items():
            for q in _fn(queues).values():
                if q and o in alive:
                    tasks |= set(q)
                    owners.add(o)
        for m in s["msgs"]:
            if m["type"] in _TO_OWNER:
                to_owner.append(m)
            else:
                tasks.add(m["task"])
                owners.add(m["owner"])
    tasks &= set(c["Tasks"])
    owners |= {c["TaskOwner"][t] for t in tasks}
    owners &= set(c["Owners"])
    tasks |= {m["task"] for m in to_owner if m["owner"] in owners and m["task"] in c["TaskOwner"]}
    keys_of: dict[Any, set[Any]] = {o: set() for o in owners}
    for t in tasks:
        keys_of[c["TaskOwner"][t]].add(c["TaskKey"][t])
    keys = frozenset(k for ks in keys_of.values() for k in ks) or frozenset(sorted(c["Keys"], key=str)[:1])

    cut = dict(c)
    cut["Tasks"] = frozenset(tasks)
    for name in ("TaskOwner", "TaskKey", "TaskRetries"):
        cut[name] = TLAFunction({t: v for t, v in c[name].items() if t in tasks})
    cut["SubmitOrder"] = tuple(t for t in c["SubmitOrder"] if t in tasks)
    cut["Keys"] = keys
    cut["FreeKeys"] = frozenset(c.get("FreeKeys", frozenset())) & keys
    cut["Owners"] = frozenset(owners)
    cut["OwnerNode"] = TLAFunction({o: v for o, v in c["OwnerNode"].items() if o in owners})
    cut["OwnerWorker"] = TLAFunction({o: v for o, v in c["OwnerWorker"].items() if o in owners})
    if starts is None:
        return cut, None

    # the notices an owner entering here got from the detections before it
    before = [(kind, about) for i, kind, about in life.detections if i < a]
    node_named = {n for n in c["Nodes"] if life.named_from(n, a)}
    node_named |= {c["WorkerNode"][w] for w in c["Workers"] if life.named_from(w, a)}

    def read_later(s: dict[str, Any], o: Any, kind: str, about: Any) -> bool:
        """Whether an action from line ``a`` on may read that owner ``o``
        knows ``about`` (a worker or node) is dead (see above)."""
        field = "worker" if kind == "WorkerDied" else "node"
        mine = [t for t in tasks if c["TaskOwner"][t] == o]
        at = {_fn(s["location"]).get(t, {}).get(field) for t in mine}
        # OwnerReconstruct reads the deaths of the workers a finished task
        # ran on, and of their nodes, which no later line need name.
        ran_on = {w for t in mine for w in _fn(s["ranOn"]).get(t, ())}
        if kind == "WorkerDied":
            return life.named_from(about, a) or about in at or about in ran_on
        return about in node_named or about in at or about in {c["WorkerNode"][w] for w in ran_on}

    out = []
    for s in states:
        new = dict(s)
        new["status"] = TLAFunction({t: _fn(s["status"]).get(t, "new") for t in tasks})
        new["location"] = TLAFunction(
            {t: _fn(s["location"]).get(t, TLARecord({"node": c["NoNode"], "worker": no_worker})) for t in tasks}
        )
        new["retries"] = TLAFunction({t: _fn(s["retries"]).get(t, c["TaskRetries"][t]) for t in tasks})
        new["execs"] = TLAFunction({t: _fn(s["execs"]).get(t, 0) for t in tasks})
        new["ranOn"] = TLAFunction({t: _fn(s["ranOn"]).get(t, frozenset()) for t in tasks})
        msgs = {m for m in s["msgs"] if m["type"] not in _TO_OWNER or m["owner"] in owners}
        dead_workers = {o: set(_fn(s["deadWorkers"]).get(o, ())) for o in owners}
        dead_nodes = {o: set(_fn(s["deadNodes"]).get(o, ())) for o in owners}
        for o in owners - set(_fn(s["held"])):
            msgs |= {_message(c, kind, o, about) for kind, about in before}
        for m in list(msgs):
            if m["type"] in ("WorkerDied", "NodeDied") and life.message_last.get(m, -1) < a:
                about = m["worker"] if m["type"] == "WorkerDied" else m["node"]
                if not read_later(s, m["owner"], m["type"], about):
                    msgs.discard(m)
        for o in owners:
            dead_workers[o] = {w for w in dead_workers[o] if read_later(s, o, "WorkerDied", w)}
            dead_nodes[o] = {n for n in dead_nodes[o] if read_later(s, o, "NodeDied", n)}
        new["msgs"] = frozenset(msgs)
        new["deadWorkers"] = TLAFunction({o: frozenset(v) for o, v in dead_workers.items()})
        new["deadNodes"] = TLAFunction({o: frozenset(v) for o, v in dead_nodes.items()})
        new["held"] = TLAFunction({o: _fn(s["held"]).get(o, frozenset()) for o in owners})
        new["queue"] = TLAFunction(
            {o: TLAFunction({k: _fn(_fn(s["queue"]).get(o, {})).get(k, ()) for k in keys_of[o]}) for o in owners}
        )
        out.append(new)
    return cut, _distinct(out)


def _distinct(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from ownership.tla.values import format_value

    seen: dict[str, dict[str, Any]] = {}
    for s in states:
        seen.setdefault("\n".join(f"{k} = {format_value(v)}" for k, v in sorted(s.items())), s)
    return list(seen.values())


def validate_log(
    run: MergedRun, window: int = WINDOW, pipeline_depth: int = 2, limit: int | None = None, on_window: Any = None
) -> dict[str, Any]:
    """Check ``run``'s whole Scheduling log with TLC (or its first ``limit``
    lines), ``window`` lines at a time, each window starting in the states
    the one before ended in (:func:`window_model`). What was checked,
    accepted or not, and on a rejection the line and the state before it.
    ``on_window(done, total)`` is told after each window."""
    constants, lines, notes = scheduling_log(run, pipeline_depth)
    return validate_lines(constants, lines, notes, window=window, limit=limit, on_window=on_window)


def validate_lines(
    constants: dict[str, Any], lines: list[LogLine], notes: list[str] = (), *, window: int = WINDOW, limit: int | None = None, on_window: Any = None
) -> dict[str, Any]:
    """:func:`validate_log` of a Scheduling log already read from a run."""
    import time

    from .specs import resolve_spec
    from .validate import validate_sized

    started = time.monotonic()
    spec = resolve_spec("Scheduling", None)
    checked = lines if limit is None else lines[:limit]
    life = _Lifetimes(checked)
    starts: list[dict[str, Any]] | None = None
    widest = 0
    out: dict[str, Any] = {"spec": "Scheduling", "lines": len(lines), "window": window, "notes": list(notes)}
    for a in range(0, max(len(checked), 1), window):
        b = min(a + window, len(checked))
        cut, start = window_model(constants, life, a, b, starts)
        v = validate_sized(checked[a:b], spec, cut, start=start, collect_end=b < len(checked))
        if on_window is not None:
            on_window(b, len(checked))
        if not v.accepted:
            out["seconds"] = round(time.monotonic() - started, 1)
            return _rejected(out, v, a, len(lines), f"checked {b:,} in windows of {window:,}")
        starts = list(v.end)
        widest = max(widest, len(starts))
    seconds = round(time.monotonic() - started, 1)
    out.update(accepted=True, consumed=len(checked), seconds=seconds, start_states=widest)
    whole = "all" if len(checked) == len(lines) else "the first"
    out["summary"] = f"Scheduling accepted {whole} {len(checked):,} of its {len(lines):,} lines ({seconds:.0f} s, windows of {window:,})"
    return out
