"""One run out of the step logs of a TCP cluster's processes (implementation -> model).

``ownership.cluster(event_log=DIR)`` makes every process append its core
steps to a file of its own (``runtime/steplog.py``) and the cluster write
``DIR/cluster.ndjson`` (head, nodes, driver, kills, end of the run). No
process saw the others' steps, so this module builds one order of all of
them that causality allows:

- **process order**: the steps of one process, in its file's order;
- **messages**: a message's send comes before its receipt. A receipt is
  matched to a send by channel (sender, addressee) and message identity
  (type and plain fields): the k-th receipt of an identity on a channel is
  the k-th send of it, which never puts a receipt before its send;
- **crashes**: a process killed (``kill``/``kill_worker``), or seen lost by
  a peer without a clean stop in its log, crashes after its last step and
  before every peer notices (a ``PeerLost`` of it, the head's ``NodeDied``),
  and after a peer took a message of it whose send no log holds (sent
  before its first logged step), unless a peer noticed the death first.
  A worker of a crashed node dies with it. A message to a dead process that
  it never took is lost after the crash, and so is a task it was running
  (a received ``PushTask`` with neither a ``TaskDone`` nor a reply sent);
- **the end**: steps after the cluster's block ended (without
  ``cluster.ndjson``: after the first clean stop of a driver, node or head)
  are left out: shutdown is not part of the run. The files share one
  clock (one machine's monotonic clock), so that cut is consistent.

Each step gets a Lamport clock computed over this graph; the steps are
ordered by it, ties broken by the time each process logged them. The
mapping's ``recognize`` turns them into spec actions (``conformance log
--from-dir DIR``). A file cut short (a process killed in the middle of a
write) is read up to its last complete record, and the merge says so.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ownership.core.events import PeerLost, Received, Send, TaskDone
from ownership.core.messages import NodeDied, PushTask, TaskReply
from ownership.runtime.memory import NetworkEvent
from ownership.runtime.steplog import FORMAT as STEP_FORMAT
from ownership.runtime.steplog import SCHEMA as STEP_SCHEMA
from ownership.runtime.transport import Envelope

from .eventlog import CoreStep, NetStep

__all__ = ["StepLogError", "ProcessLog", "Harness", "MergedRun", "read_dir", "merge", "merge_dir"]

HARNESS = "cluster.ndjson"
HARNESS_FORMAT = "ownership-cluster/1"


class StepLogError(ValueError):
    """Step logs that cannot be merged; the message names the file and line."""


@attrs.frozen
class RawStep:
    seq: int
    time: int
    event: Any
    effects: tuple[Any, ...]
    #: the owner's task table after the step, when the step changed it
    tasks: dict[str, tuple[str, int]] | None
    line: int


@attrs.frozen
class ProcessLog:
    path: Path
    address: str
    role: str
    pid: int
    node: str | None
    started: int
    tasks: dict[str, tuple[str, int]] | None
    steps: tuple[RawStep, ...]
    #: time of the clean stop; None when the process was killed (or is still running)
    stop: int | None
    #: what was dropped from the end of a file cut short
    truncated: str | None = None
    #: the core's bounds from the header (``pipeline_depth``,
    #: ``max_pending_lease_requests``); empty in logs written before they were
    limits: dict[str, int] = attrs.field(factory=dict)


@attrs.frozen
class Kill:
    address: str | None
    pid: int
    signal: int
    time: int


@attrs.frozen
class Harness:
    head: str | None = None
    nodes: tuple[str, ...] = ()
    driver: str | None = None
    kills: tuple[Kill, ...] = ()
    end: int | None = None


@attrs.frozen
class MergedRun:
    steps: tuple[CoreStep | NetStep, ...]
    processes: dict[str, ProcessLog]
    harness: Harness
    #: address -> Lamport clock of its crash
    crashed: dict[str, int]
    #: what a reader should know: files cut short, steps left out
    notes: tuple[str, ...]


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

_SAFE_BUILTINS = frozenset({"set", "frozenset", "tuple", "list", "dict", "bytes", "bytearray", "complex", "slice", "range"})


class _StepUnpickler(pickle.Unpickler):
    """Only the runtime's own classes and plain containers: a step log is data,
    and unpickling it must not run anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "ownership" or module.startswith("ownership."):
            return super().find_class(module, name)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return super().find_class(module, name)
        if module == "copyreg" and name == "_reconstructor":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _lines(path: Path) -> tuple[list[tuple[int, str]], str | None]:
    """The complete lines of a file, and a note when its last one is cut short."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty unless the last write was cut
    out = [(i, raw.decode("utf-8", errors="replace")) for i, raw in enumerate(lines, start=1)]
    note = None
    if tail:
        note = (
            f"{path}: line {len(lines) + 1} is cut short ({len(tail)} bytes, no end of line): "
            f"the process was killed while writing it; kept the {len(lines)} complete lines before it"
        )
    return out, note


def _json(path: Path, number: int, raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise StepLogError(f"{path}:{number}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise StepLogError(f"{path}:{number}: a record must be a JSON object")
    return data


def read_process_log(path: Path) -> ProcessLog:
    lines, note = _lines(path)
    if not lines:
        if note:
            raise StepLogError(f"{path}: its header line is cut short: nothing to read")
        raise StepLogError(f"{path}: empty (no header line)")
    number, raw = lines[0]
    header = _json(path, number, raw)
    if header.get("format") != STEP_FORMAT:
        raise StepLogError(f"{path}:1: the first line must be a header with format {STEP_FORMAT!r}")
    if header.get("schema") != STEP_SCHEMA:
        raise StepLogError(
            f"{path}:1: written by another version of ownership (message schema {header.get('schema') or 'unnamed'}, "
            f"this one's {STEP_SCHEMA}): read it with the version that wrote it"
        )
    try:
        address, role, pid, started = str(header["address"]), str(header["role"]), int(header["pid"]), int(header["time"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StepLogError(f"{path}:1: header lacks a valid {exc}") from None
    tasks = None if header.get("tasks") is None else {str(t): (str(s), int(r)) for t, s, r in header["tasks"]}
    steps: list[RawStep] = []
    stop = None
    for number, raw in lines[1:]:
        if not raw.strip():
            continue
        if stop is not None:
            raise StepLogError(f"{path}:{number}: a record after the stop mark")
        record = _json(path, number, raw)
        if "stop" in record:
            stop = int(record["stop"])
            continue
        try:
            seq, time, blob = int(record["seq"]), int(record["time"]), base64.b64decode(record["step"], validate=True)
        except KeyError as exc:
            raise StepLogError(f"{path}:{number}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError, binascii.Error) as exc:
            raise StepLogError(f"{path}:{number}: bad record: {exc}") from None
        expected = steps[-1].seq + 1 if steps else 1
        if seq != expected:
            raise StepLogError(f"{path}:{number}: step {seq} where step {expected} was due: records are missing")
        try:
            event, effects, after = _StepUnpickler(io.BytesIO(blob)).load()
        except Exception as exc:
            raise StepLogError(f"{path}:{number}: cannot read the step: {type(exc).__name__}: {exc}") from None
        steps.append(RawStep(seq, time, event, tuple(effects), after, number))
    limits = header.get("limits") or {}
    if not isinstance(limits, dict) or not all(isinstance(k, str) and type(v) is int for k, v in limits.items()):
        raise StepLogError(f"{path}:1: the header's limits must map names to integers, not {limits!r}")
    return ProcessLog(path, address, role, pid, header.get("node"), started, tasks, tuple(steps), stop, note, limits)


def read_harness(path: Path) -> tuple[Harness, str | None]:
    lines, note = _lines(path)
    if not lines:
        raise StepLogError(f"{path}: empty (no header line)")
    header = _json(path, *lines[0])
    if header.get("format") != HARNESS_FORMAT:
        raise StepLogError(f"{path}:1: the first line must be a header with format {HARNESS_FORMAT!r}")
    fields: dict[str, Any] = {}
    kills: list[Kill] = []
    for number, raw in lines[1:]:
        record = _json(path, number, raw)
        try:
            if "kill" in record:
                kills.append(Kill(record["kill"], int(record["pid"]), int(record["signal"]), int(record["time"])))
            elif "end" in record:
                fields["end"] = int(record["time"])
            elif "nodes" in record:
                fields.update(head=record["head"], nodes=tuple(record["nodes"]), driver=record["driver"])
            else:
                raise StepLogError(f"{path}:{number}: unknown record {sorted(record)}")
        except (KeyError, TypeError, ValueError) as exc:
            raise StepLogError(f"{path}:{number}: bad record: {exc}") from None
    return Harness(kills=tuple(kills), **fields), note


def read_dir(directory: Path) -> tuple[dict[str, ProcessLog], Harness, list[str]]:
    if not directory.is_dir():
        raise StepLogError(f"{directory}: no such folder")
    files = sorted(directory.glob("*.steps"))
    if not files:
        raise StepLogError(f"{directory}: no step logs (*.steps); start the cluster with event_log={str(directory)!r}")
    notes: list[str] = []
    processes: dict[str, ProcessLog] = {}
    for path in files:
        if path.stat().st_size == 0:
            # The header is the file's first write, before any step: a process
            # killed between creating its log and writing it took no step.
            notes.append(f"{path}: empty: its process was killed before it wrote its header, so it took no step")
            continue
        log = read_process_log(path)
        if log.address in processes:
            raise StepLogError(f"{path}: address {log.address} is also the process of {processes[log.address].path}: logs of two runs?")
        processes[log.address] = log
        if log.truncated:
            notes.append(log.truncated)
    harness = Harness()
    if (directory / HARNESS).exists():
        harness, note = read_harness(directory / HARNESS)
        if note:
            notes.append(note)
    else:
        notes.append(
            f"{directory}: no {HARNESS}: crashes only where a peer saw the process lost, the run ends at the first "
            "clean stop of a driver, node or head, nodes in order of start"
        )
    return processes, harness, notes


# ---------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------

_PLAIN = (str, int, float, bool, type(None))


def _plain(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return True
    return isinstance(value, tuple) and all(_plain(v) for v in value)


def message_key(msg: Any) -> tuple[Any, ...]:
    """What identifies a message at both ends: its type and its plain fields
    (and the ids of a record inside it, such as a PushTask's task)."""
    cls = type(msg)
    parts: list[Any] = [cls.__name__]
    if attrs.has(cls):
        for f in attrs.fields(cls):
            value = getattr(msg, f.name)
            if _plain(value):
                parts.append((f.name, value))
            elif attrs.has(type(value)):
                parts.extend((f"{f.name}.{k}", getattr(value, k)) for k in ("task_id", "object_id") if hasattr(value, k))
    return tuple(parts)


@attrs.define(eq=False)
class _Node:
    kind: str  # "step" | "crash" | "drop"
    process: str
    time: int
    seq: int
    raw: RawStep | None = None
    envelope: Envelope | None = None
    succ: list[_Node] = attrs.Factory(list)
    preds: int = 0
    clock: int = 0


def _edge(a: _Node, b: _Node) -> None:
    a.succ.append(b)
    b.preds += 1


def merge(processes: dict[str, ProcessLog], harness: Harness, notes: Iterable[str] = ()) -> MergedRun:
    notes = list(notes)
    end = harness.end
    if end is None:
        # No word from the cluster: the run ends where the shutdown begins,
        # at the first clean stop of a driver, node or head (a worker may
        # stop cleanly during the run, when its node dies).
        stops = [l.stop for l in processes.values() if l.stop is not None and l.role in ("driver", "node", "head")]
        end = min(stops, default=None)
    chains: dict[str, list[_Node]] = {}
    cut = 0
    for address, log in processes.items():
        kept = [s for s in log.steps if end is None or s.time <= end]
        cut += len(log.steps) - len(kept)
        chains[address] = [_Node("step", address, s.time, s.seq, raw=s) for s in kept]
        for a, b in zip(chains[address], chains[address][1:]):
            _edge(a, b)
    if cut:
        notes.append(f"{cut} steps after the end of the run (the cluster shutting down) left out")

    # Messages: the k-th receipt of an identity on a channel is its k-th send.
    sends: dict[tuple[Any, ...], list[tuple[_Node, Any]]] = {}
    receipts: dict[tuple[Any, ...], list[_Node]] = {}
    for address, chain in chains.items():
        for node in chain:
            assert node.raw is not None
            for e in node.raw.effects:
                if isinstance(e, Send):
                    sends.setdefault((address, e.dst, message_key(e.msg)), []).append((node, e.msg))
            ev = node.raw.event
            if isinstance(ev, Received):
                receipts.setdefault((ev.src, address, message_key(ev.msg)), []).append(node)
    #: receipts of messages whose send no log holds, by sender: what a
    #: process sends before its core's first logged step (a worker's
    #: RegisterWorker goes out as it starts)
    unlogged: dict[str, list[_Node]] = {}
    for key, rs in receipts.items():
        ss = sends.get(key, ())
        for (send, _msg), receipt in zip(ss, rs):
            _edge(send, receipt)
        unlogged.setdefault(key[0], []).extend(rs[len(ss) :])

    # Crashes.
    pid_of = {log.pid: a for a, log in processes.items()}
    killed: dict[str, int] = {}
    for kill in harness.kills:
        if end is not None and kill.time > end:
            continue
        address = kill.address or pid_of.get(kill.pid)
        if address is None:
            notes.append(f"killed process {kill.pid} left no step log: its crash is not in the run")
        elif address in processes:
            killed.setdefault(address, kill.time)
    # Who noticed a death: a peer whose connection to it closed (PeerLost),
    # the head declaring a node dead. Only the first is evidence of a crash:
    # the head also declares a node dead that only missed heartbeats, which
    # the spec does not allow, and the log must show it.
    observers: dict[str, list[_Node]] = {}
    saw_lost: set[str] = set()
    for chain in chains.values():
        for node in chain:
            assert node.raw is not None
            ev = node.raw.event
            if isinstance(ev, PeerLost) and ev.address != node.process:
                observers.setdefault(ev.address, []).append(node)
                saw_lost.add(ev.address)
            for e in node.raw.effects:
                if isinstance(e, Send) and isinstance(e.msg, NodeDied):
                    observers.setdefault(e.msg.node, []).append(node)
    crashes: dict[str, _Node] = {}
    for address, log in processes.items():
        chain = chains[address]
        last = chain[-1].time if chain else log.started
        # A peer that lost its connection to a process that went on stepping
        # saw a broken connection, not a crash (a false suspicion, which the
        # head's probe clears): only what was noticed after its last step
        # (one machine's clock) is evidence of one.
        noticed = [o for o in observers.get(address, ()) if o.time >= last]
        lost = address in saw_lost and log.stop is None and bool(noticed)  # a clean stop, even after the end, is no crash
        if address not in killed and not lost:
            continue
        crash = _Node("crash", address, max(killed.get(address, last), last) + 1, 0)
        if chain:
            _edge(chain[-1], crash)
        for observer in noticed:
            _edge(crash, observer)
        # A message of it that a peer took was sent while it lived, though no
        # log shows the send: the crash comes after that receipt too, unless
        # someone noticed the death first (one machine's clock; every edge
        # here goes forward in it, so this one closes no cycle). A worker
        # killed as it started has no step, but its node registered it.
        for receipt in unlogged.get(address, ()):
            if all(receipt.time < o.time for o in noticed):
                _edge(receipt, crash)
        crashes[address] = crash
    # A worker of a crashed node dies with it: its steps come first.
    dead: dict[str, _Node] = dict(crashes)
    for address, log in processes.items():
        if log.role in ("worker", "driver") and log.node in crashes and address not in crashes:
            if chains[address]:
                _edge(chains[address][-1], crashes[log.node])
            dead[address] = crashes[log.node]

    # Losses: what a dead process never took, and the task it was running.
    drops: list[_Node] = []
    for key, ss in sends.items():
        src, dst, _ = key
        if dst not in dead:
            continue
        for send, msg in ss[len(receipts.get(key, ())) :]:
            drop = _Node("drop", dst, max(send.time, dead[dst].time), len(drops), envelope=Envelope(src, dst, msg))
            _edge(send, drop)
            _edge(dead[dst], drop)
            drops.append(drop)
    for address in dead:
        running: dict[str, tuple[_Node, Envelope]] = {}
        for node in chains[address]:
            assert node.raw is not None
            ev = node.raw.event
            if isinstance(ev, Received) and isinstance(ev.msg, PushTask):
                running[ev.msg.task.task_id] = (node, Envelope(ev.src, address, ev.msg))
            elif isinstance(ev, TaskDone):
                running.pop(ev.task_id, None)
            # A task can also end without a TaskDone: failed as it arrived,
            # or before it ran (the owner of a borrowed argument died), its
            # reply sent in that step.
            for e in node.raw.effects:
                if isinstance(e, Send):
                    reply = e.msg if isinstance(e.msg, TaskReply) else getattr(e.msg, "reply", None)
                    if isinstance(reply, TaskReply):
                        running.pop(reply.task_id, None)
        for node, env in running.values():
            drop = _Node("drop", address, dead[address].time, len(drops), envelope=env)
            _edge(dead[address], drop)
            drops.append(drop)

    # Lamport clocks (Kahn's order), then the order: clock, then time logged.
    every = [n for chain in chains.values() for n in chain] + list(crashes.values()) + drops
    ready = [n for n in every if n.preds == 0]
    for n in ready:
        n.clock = 1
    done = 0
    pending = {id(n): n.preds for n in every}
    while ready:
        n = ready.pop()
        done += 1
        for s in n.succ:
            s.clock = max(s.clock, n.clock + 1)
            pending[id(s)] -= 1
            if pending[id(s)] == 0:
                ready.append(s)
    if done != len(every):
        stuck = [n for n in every if pending[id(n)] > 0]
        first = min(stuck, key=lambda n: n.time)
        where = f"{processes[first.process].path}:{first.raw.line}" if first.raw else first.process
        raise StepLogError(
            f"the step logs contradict causality ({len(stuck)} steps on a cycle or after one, first at {where}): "
            "a receipt matched to a later send; are these the logs of one run?"
        )
    order = sorted(every, key=lambda n: (n.clock, n.time, n.process, n.kind, n.seq))

    tables: dict[str, dict[str, tuple[str, int]] | None] = {a: log.tasks for a, log in processes.items()}
    steps: list[CoreStep | NetStep] = []
    for n in order:
        if n.kind == "step":
            assert n.raw is not None
            before = tables[n.process]
            after = before if n.raw.tasks is None else n.raw.tasks
            tables[n.process] = after
            steps.append(CoreStep(n.clock, n.process, n.raw.event, n.raw.effects, before, after))
        elif n.kind == "crash":
            steps.append(NetStep(n.clock, NetworkEvent("crash", None, None, n.process)))
        else:
            steps.append(NetStep(n.clock, NetworkEvent("drop", None, n.envelope)))
    return MergedRun(tuple(steps), processes, harness, {a: c.clock for a, c in crashes.items()}, tuple(notes))


def merge_dir(directory: Path) -> MergedRun:
    processes, harness, notes = read_dir(directory)
    return merge(processes, harness, notes)


# ---------------------------------------------------------------------------
# Binding a run to a model, and its event log
# ---------------------------------------------------------------------------


def bind_scheduling(mapping: Any, run: MergedRun) -> list[str]:
    """Bind the Scheduling model's values to the run's processes and tasks.

    Owner ``o`` (in name order) is the i-th driver (by start), and
    ``OwnerNode[o]`` the node it attached to; the other model nodes are the
    other nodes in the cluster's order. Each node's model workers (in name
    order) are its first workers (by start); workers started later replace
    dead ones and are not in the model. The i-th task an owner submits is
    its i-th task of ``SubmitOrder``, which must have the model's retries
    and key. Returns notes for the reader.
    """
    from ownership.core.events import Submit

    notes: list[str] = []
    logs = run.processes
    drivers = sorted((l for l in logs.values() if l.role == "driver"), key=lambda l: l.started)
    if len(drivers) != len(mapping.owners):
        raise StepLogError(f"the run has {len(drivers)} drivers, the model {len(mapping.owners)} owners ({', '.join(o.name for o in mapping.owners)})")
    nodes = [a for a in run.harness.nodes if a in logs] or [
        l.address for l in sorted((l for l in logs.values() if l.role == "node"), key=lambda l: l.started)
    ]
    if len(nodes) != len(mapping.nodes):
        raise StepLogError(f"the run has {len(nodes)} nodes, the model {len(mapping.nodes)} ({', '.join(n.name for n in mapping.nodes)})")
    node_addr: dict[Any, str] = {}
    owner_addr: dict[Any, str] = {}
    for o, d in zip(mapping.owners, drivers):
        n = mapping.owner_node[o]
        if node_addr.get(n, d.node) != d.node or d.node not in nodes:
            raise StepLogError(f"owner {o.name} is on {n.name}, but driver {d.address} is on {d.node}, which is not {n.name}'s node")
        owner_addr[o], node_addr[n] = d.address, str(d.node)
    rest = [a for a in nodes if a not in node_addr.values()]
    for n in mapping.nodes:
        if n not in node_addr:
            node_addr[n] = rest.pop(0)
    worker_addr: dict[Any, str] = {}
    for n in mapping.nodes:
        model = [w for w in mapping.workers if mapping.worker_node[w] == n]
        real = sorted((l for l in logs.values() if l.role == "worker" and l.node == node_addr[n]), key=lambda l: l.started)
        if len(real) < len(model):
            raise StepLogError(f"node {n.name} ({node_addr[n]}) has {len(real)} workers in the logs, the model {len(model)}")
        for w, l in zip(model, real):
            worker_addr[w] = l.address
        if len(real) > len(model):
            notes.append(
                f"{n.name}: workers {', '.join(l.address for l in real[len(model):])} started later (replacing dead ones): "
                "not in the model, so a step that leases one is rejected"
            )
    task_id: dict[Any, str] = {}
    for o in mapping.owners:
        model = [t for t in mapping.constants["SubmitOrder"] if mapping.task_owner[t] == o]
        submitted = [s.event.task for s in run.steps if isinstance(s, CoreStep) and s.process == owner_addr[o] and isinstance(s.event, Submit)]
        if len(submitted) > len(model):
            raise StepLogError(f"owner {o.name} ({owner_addr[o]}) submitted {len(submitted)} tasks, the model has {len(model)}")
        for t, spec in zip(model, submitted):
            want = mapping.bind.key_resources[mapping.task_key[t]]
            if spec.max_retries != mapping.task_retries[t] or tuple(spec.resources) != tuple(want):
                raise StepLogError(
                    f"task {spec.task_id} is {t.name} of the model, which has {mapping.task_retries[t]} retries and resources {want}; "
                    f"it was submitted with max_retries={spec.max_retries} and resources {tuple(spec.resources)}"
                )
            task_id[t] = spec.task_id
    mapping.bind.owner_addr = owner_addr
    mapping.bind.node_addr = node_addr
    mapping.bind.worker_addr = worker_addr
    mapping.bind.task_id = task_id
    mapping.head_address = run.harness.head or next((l.address for l in logs.values() if l.role == "head"), "head")
    return notes


def bind_ownership(mapping: Any, run: MergedRun) -> list[str]:
    """Bind the Ownership model's values to the run's processes and objects.

    ``HeadNode`` is the driver's node and the other model nodes (in
    ``NodeOrder``) the other nodes by address (the order in which the
    scheduling policy breaks ties, as the spec's ``NodeOrder``); each node's
    workers (by start) are its model workers in ``WorkerOrder``, a worker
    started later at a new address being the next one of them; the
    driver's i-th submit or put is the i-th of its body's. Returns notes
    for the reader.
    """
    from ownership.core.events import Put, Submit

    notes: list[str] = []
    logs = run.processes
    drivers = sorted((l for l in logs.values() if l.role == "driver"), key=lambda l: l.started)
    if len(drivers) != 1:
        raise StepLogError(f"the run has {len(drivers)} drivers, the model one ({mapping.driver.name})")
    driver = drivers[0]
    # the nodes the cluster started with, then those added in the block, by start
    nodes = [a for a in run.harness.nodes if a in logs]
    nodes += [l.address for l in sorted((l for l in logs.values() if l.role == "node"), key=lambda l: l.started) if l.address not in nodes]
    order = [n for n in mapping.constants["NodeOrder"]]
    if len(nodes) != len(order) or driver.node not in nodes:
        raise StepLogError(f"the run has {len(nodes)} nodes (the driver on {driver.node}), the model {len(order)} with the driver on {mapping.head_node.name}")
    # the scheduling policy breaks ties by name, the spec by NodeOrder
    others = sorted(a for a in nodes if a != driver.node)
    node_addr = {mapping.head_node: str(driver.node)}
    for n in order:
        if n != mapping.head_node:
            node_addr[n] = others.pop(0)
    mapping.node_alias = {a: n for n, a in node_addr.items()}
    mapping.proc_of = {driver.address: (mapping.driver, 0)}
    mapping.bound = {a: [] for a in mapping.addrs}
    mapping.bound[mapping.driver].append(driver.address)
    for n, address in node_addr.items():
        model = [w for w in mapping.workers if mapping.worker_node[w] == n]
        real = sorted((l for l in logs.values() if l.role == "worker" and l.node == address), key=lambda l: l.started)
        if len(real) > len(model):
            notes.append(f"{n.name}: workers {', '.join(l.address for l in real[len(model):])} are more than the model has: "
                         "a step of one is rejected")
        for w, l in zip(model, real):
            mapping.proc_of[l.address] = (w, 0)
            mapping.bound[w].append(l.address)
            mapping.addr_node[l.address] = address
    made = [op["obj"] for op in mapping.body[mapping.root] if op["op"] in ("submit", "put")]
    events = [s.event for s in run.steps if isinstance(s, CoreStep) and s.process == driver.address and isinstance(s.event, (Submit, Put))]
    if len(events) > len(made):
        raise StepLogError(f"the driver ({driver.address}) made {len(events)} objects, the model's program {len(made)}")
    for x, event in zip(made, events):
        if isinstance(event, Submit):
            if mapping.kind[x] != "task" or event.task.max_retries != mapping.retries[x]:
                raise StepLogError(f"task {event.task.task_id} is {x.name} of the model, a {mapping.kind[x]} with "
                                   f"{mapping.retries[x]} retries; it was submitted with max_retries={event.task.max_retries}")
            mapping.obj_of[event.task.return_id.removesuffix(".r")] = x
            mapping.obj_of[event.task.task_id] = x
        else:
            if mapping.kind[x] != "put":
                raise StepLogError(f"object {event.object_id} is {x.name} of the model, a task, but the driver put it")
            mapping.obj_of[event.object_id.removesuffix(".r")] = x
        mapping.owner_addr[x] = driver.address
    mapping.head_address = run.harness.head or next((l.address for l in logs.values() if l.role == "head"), "head")
    return notes


def bind_ownerrecovery(mapping: Any, run: MergedRun) -> list[str]:
    """Bind the OwnerRecovery model's values to the run's processes and objects.

    The driver's node is ``Driver``; the nodes added in the block, in the
    order they started, are the other processes in the order the model
    names them: ``ParentPlacement``, each object's first place, then the
    holders by name (Small: o, w, h). A worker is part of its node's
    process. The parent is the driver's first plain task; the i-th
    recoverable task the parent submits is the i-th object its ``Body``
    makes. Returns notes for the reader.
    """
    from ownership.core.events import Submit

    notes: list[str] = []
    logs = run.processes
    drivers = sorted((l for l in logs.values() if l.role == "driver"), key=lambda l: l.started)
    if len(drivers) != 1:
        raise StepLogError(f"the run has {len(drivers)} drivers, the model one ({mapping.driver.name})")
    driver = drivers[0]
    order: list[Any] = []
    for p in [*mapping.parent_places, *(mapping.place[x] for x in mapping.objects), *mapping.all_holders]:
        if p != mapping.driver and p not in order:
            order.append(p)
    missing = [p for p in mapping.procs if p != mapping.driver and p not in order]
    if missing:
        raise StepLogError(f"the model's processes {', '.join(p.name for p in missing)} run nothing: no node of the run stands for them")
    nodes = [l.address for l in sorted((l for l in logs.values() if l.role == "node"), key=lambda l: l.started) if l.address != driver.node]
    if driver.node not in logs or len(nodes) != len(order):
        raise StepLogError(f"the run has {len(nodes) + 1} nodes (the driver's first), the model {len(order) + 1} processes "
                           f"({mapping.driver.name}, then {', '.join(p.name for p in order)})")
    mapping.node_alias = {str(driver.node): mapping.driver, **dict(zip(nodes, order))}
    mapping.alias = {driver.address: mapping.driver}
    for l in logs.values():
        if l.role == "worker" and l.node in mapping.node_alias:
            mapping.alias[l.address] = mapping.node_alias[l.node]
    mapping.driver_addr = driver.address
    mapping.owner_tables = False
    submits = [s for s in run.steps if isinstance(s, CoreStep) and isinstance(s.event, Submit)]
    plain = [s.event.task for s in submits if s.process == driver.address and s.event.task.kind == "task"]
    if not plain:
        raise StepLogError(f"the driver ({driver.address}) submitted no task: the model's parent")
    mapping.parent_task = plain[0].task_id
    if plain[0].max_retries != len(mapping.parent_places) - 1:
        notes.append(f"the parent ({plain[0].task_id}) has max_retries={plain[0].max_retries}, the model "
                     f"{len(mapping.parent_places) - 1} (one per further place)")
    made = [op["obj"] for op in mapping.body if op["op"] == "make"]
    tasks = [s.event.task for s in submits if s.process != driver.address and s.event.task.recoverable]
    for x, task in zip(made, dict((t.task_id, t) for t in tasks).values()):
        if task.max_retries != mapping.retries[x]:
            raise StepLogError(f"task {task.task_id} is {x.name} of the model, with {mapping.retries[x]} retries; "
                               f"it was submitted with max_retries={task.max_retries}")
        mapping.obj_of[task.return_id] = x
        mapping.oid[x] = task.return_id
    mapping.head_address = run.harness.head or next((l.address for l in logs.values() if l.role == "head"), "head")
    return notes


BINDERS = {"Scheduling": bind_scheduling, "Ownership": bind_ownership, "OwnerRecovery": bind_ownerrecovery}


def event_log(run: MergedRun, spec: str, constants: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """The spec actions of a merged run (``LogLine``s) and notes on the binding."""
    from .mappings import load_mapping

    binder = BINDERS.get(spec)
    cls = load_mapping(spec)
    if binder is None or cls is None:
        raise StepLogError(f"no binding of TCP runs to {spec} yet (there is one for {', '.join(sorted(BINDERS))})")
    mapping = cls(constants)
    notes = binder(mapping, run)
    return mapping.recognize(list(run.steps)), notes
