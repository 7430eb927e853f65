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

The log's header carries the constants (``"model": "sized"``), and
:mod:`conformance.validate` writes them into the trace spec's config rather
than reading a model config.
"""

from __future__ import annotations

from typing import Any

from ownership.core.events import Submit
from ownership.core.messages import Heartbeat
from ownership.core.submitter import scheduling_key
from ownership.tla.values import ModelValue, TLAFunction

from .eventlog import CoreStep, LogLine
from .merge import MergedRun, StepLogError

__all__ = ["SIZED", "scheduling_log", "contains_unbound"]

#: the name a sized model goes by in a log's header, where a config name would be
SIZED = "sized"


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


def scheduling_prefix(constants: dict[str, Any], lines: list[LogLine], limit: int) -> tuple[dict[str, Any], list[LogLine]]:
    """The first ``limit`` lines, with the model's tasks cut down to those
    they submit, and its keys to those tasks' keys.

    A task that no line has submitted yet is ``"new"`` in every state of
    the prefix: no action of Scheduling but its own ``OwnerSubmit`` reads a
    task in that state (``InFlight``, ``Requesting``, ``Busy`` and the
    failure scan look at tasks requested or pushed; the program-order guard
    of ``OwnerSubmit(o, t)`` looks at the tasks *before* ``t``, all submitted
    in the prefix already). So a behaviour of the cut model taking the prefix
    is one of the whole model with the other tasks left new, and the other
    way round: the prefix is accepted by one exactly when by the other.

    Owners and workers are cut the same way (:func:`_window_processes`).
    """
    prefix = lines[:limit]
    submitted = [line.params["t"] for line in prefix if line.action == "OwnerSubmit"]
    keep = set(submitted)
    cut = dict(constants)
    cut["Tasks"] = frozenset(keep)
    for name in ("TaskOwner", "TaskKey", "TaskRetries"):
        cut[name] = TLAFunction({t: v for t, v in constants[name].items() if t in keep})
    cut["SubmitOrder"] = tuple(t for t in constants["SubmitOrder"] if t in keep)
    # A key no kept task has is read by no action (a queue of it stays empty,
    # no request or lease names it): the model keeps only the prefix's keys,
    # and each owner's queues shrink from every key of the run to those.
    keys = frozenset(cut["TaskKey"].values()) or frozenset(sorted(constants["Keys"], key=str)[:1])
    cut["Keys"] = keys
    cut["FreeKeys"] = frozenset(constants.get("FreeKeys", frozenset())) & keys
    owners, workers = _window_processes(constants, prefix, keep)
    cut["Owners"] = owners
    cut["OwnerNode"] = TLAFunction({o: v for o, v in constants["OwnerNode"].items() if o in owners})
    cut["OwnerWorker"] = TLAFunction({o: v for o, v in constants["OwnerWorker"].items() if o in owners})
    cut["Workers"] = workers
    cut["Unregistered"] = frozenset(constants["Unregistered"]) & workers
    cut["WorkerNode"] = TLAFunction({w: v for w, v in constants["WorkerNode"].items() if w in workers})
    return cut, prefix


def _window_processes(constants: dict[str, Any], prefix: list[LogLine], tasks: set[ModelValue]) -> tuple[frozenset, frozenset]:
    """The owners and workers a window's model keeps: those its lines name
    (in a parameter or a message), the owners of its tasks, every driver,
    and the worker each kept owner runs in.

    A process no line names stays as it starts in every state of the
    prefix, but for what the actions that name nobody do to all of them:

    - a worker: it is unregistered (the sized model registers every worker
      by ``SchedulerRegisterWorker``, which names it), so no pool holds it
      and no grant, push or lease can name it; a node's crash or fencing
      marks it dead, which only its own actions read;
    - an owner: its queues and leases stay empty; the ``WorkerDied`` and
      ``NodeDied`` sent to every owner pile up in ``msgs`` for it, since
      handling or losing one names it. The one guard that reads them is the
      second disjunct of ``SchedulerDetectWorkerDeath``'s: some live owner
      has not been told that ``w`` died. For an owner no line names, that
      is "no detection of ``w`` yet"; for a driver (alive always, and kept)
      it is the same, since a driver is told at the detection and keeps
      it. So with a driver kept the disjunct is the same without the cut
      owners, and ``DriverOn`` needs every driver anyway.

    So the cut model takes exactly the steps of the whole one on the kept
    processes, and a window is accepted by one exactly when by the other.
    """
    from .validate import model_value_names

    names: set[str] = set()
    model_value_names([line.params for line in prefix], names)
    named = {v for v in (*constants["Owners"], *constants["Workers"]) if v.name in names}
    owner_worker = constants["OwnerWorker"]
    no_worker = constants["NoWorker"]
    drivers = {o for o in constants["Owners"] if owner_worker[o] == no_worker}
    if not drivers:  # the argument above needs a driver: keep every owner
        named |= set(constants["Owners"])
    owners = {o for o in constants["Owners"] if o in named} | drivers
    owners |= {constants["TaskOwner"][t] for t in tasks}
    workers = {w for w in constants["Workers"] if w in named}
    workers |= {owner_worker[o] for o in owners if owner_worker[o] != no_worker}
    return frozenset(owners), frozenset(workers)


#: lines of a run's Scheduling log checked by ``validate_window`` unless told
WINDOW = 2000


def validate_window(run: MergedRun, limit: int = WINDOW, pipeline_depth: int = 2) -> dict[str, Any]:
    """Check the first ``limit`` lines of ``run``'s Scheduling log with TLC
    (the model cut to them, see :func:`scheduling_prefix`): what was
    checked, accepted or not, and on a rejection the line and the state
    before it (its entries that differ from the most common value)."""
    import time

    from .specs import resolve_spec
    from .validate import validate_sized

    started = time.monotonic()
    constants, lines, notes = scheduling_log(run, pipeline_depth)
    cut, prefix = scheduling_prefix(constants, lines, limit)
    v = validate_sized(prefix, resolve_spec("Scheduling", None), cut)
    out: dict[str, Any] = {
        "spec": "Scheduling",
        "lines": len(lines),
        "window": len(prefix),
        "accepted": v.accepted,
        "consumed": v.consumed,
        "seconds": round(time.monotonic() - started, 1),
        "notes": notes,
    }
    if v.accepted:
        whole = "all" if len(prefix) == len(lines) else "the first"
        out["summary"] = f"Scheduling accepted {whole} {len(prefix):,} of its {len(lines):,} lines ({out['seconds']:.0f} s)"
        return out
    from .replay import Step

    line = v.failed
    out["failed"] = None if line is None else f"clock {line.clock}, {line.process}: {Step(v.consumed + 1, line.action, line.params)}"
    out["state"] = {} if v.state is None else {k: _salient(x) for k, x in sorted(v.state.items()) if k != "lastAction"}
    out["summary"] = (
        f"Scheduling REJECTED line {v.consumed + 1} of {len(lines):,} (checked the first {len(prefix):,}, "
        f"{out['seconds']:.0f} s): {out['failed']}"
    )
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
