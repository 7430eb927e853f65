"""Events into the cores and effects out of them (DESIGN §3).

A core is driven only through ``handle(event) -> list[Effect]``. Events are
received messages (:class:`Received`), API calls made in the core's process,
timer ticks and local notifications (a peer process gone). Effects are what
the shell must carry out: send a message, run user code, hand a value to a
waiting API call, start or kill a worker process.

Everything here is an attrs frozen value, so cores can log every stimulus
(dask ``worker_state_machine`` style) and tests can compare effects.
"""

from __future__ import annotations

import collections
import itertools
from typing import Any

import attrs

from .messages import ErrorInfo, Payload, TaskSpec

__all__ = [
    "Event",
    "Effect",
    "Received",
    "Tick",
    "PeerLost",
    "ProbeResult",
    "WorkerStartFailed",
    "Submit",
    "Put",
    "AddLocalRef",
    "RemoveLocalRef",
    "GetValue",
    "CancelGet",
    "Cancel",
    "TaskDone",
    "TaskBlocked",
    "TaskUnblocked",
    "Send",
    "Execute",
    "CancelExecution",
    "GetDone",
    "StartWorker",
    "KillWorker",
    "Watch",
    "Probe",
    "Fenced",
    "ObjectFreed",
    "Registered",
    "Logged",
    "Infeasible",
    "IdGenerator",
    "EventLog",
    "LogEntry",
    "PayloadSummary",
]


class Event:
    """Base of everything a core's ``handle`` accepts."""

    __slots__ = ()


class Effect:
    """Base of everything a core's ``handle`` returns."""

    __slots__ = ()


# ---------------------------------------------------------------------------
# Events shared by every core.
# ---------------------------------------------------------------------------


@attrs.frozen
class Received(Event):
    """A message arrived from ``src``."""

    src: str
    msg: Any


@attrs.frozen
class Tick(Event):
    """A timer period passed; the only notion of time a core has."""


@attrs.frozen
class PeerLost(Event):
    """The transport lost a watched peer: its process exited (a node's
    worker or driver), or its connection dropped or could not be dialed
    (a node, as the head sees it)."""

    address: str


@attrs.frozen
class ProbeResult(Event):
    """The answer to a :class:`Probe`: whether process ``address`` (that
    incarnation) answered a fresh dial within the probe's time."""

    address: str
    reachable: bool


@attrs.frozen
class WorkerStartFailed(Event):
    """A node's launcher could not start a worker process (a :class:`StartWorker`
    came to nothing): it failed, timed out, or died before it was ready.

    ``worker`` is the process's address when it got far enough to have one
    (it may even have registered), None otherwise.
    """

    worker: str | None = None
    reason: str = ""


# ---------------------------------------------------------------------------
# Worker events: API calls and user code, in the worker's own process.
# ---------------------------------------------------------------------------


@attrs.frozen
class Submit(Event):
    """``f.remote()``: the owner is this worker; ids come from its IdGenerator."""

    task: TaskSpec


@attrs.frozen
class Put(Event):
    """``ownership.put(value)``: a new owned object with no lineage."""

    object_id: str
    value: Payload
    #: logged at the head first (OwnerRecovery): it survives its owner
    recoverable: bool = False


@attrs.frozen
class AddLocalRef(Event):
    """A Python ObjectRef/ActorRef came to life in this process."""

    object_id: str
    owner: str
    kind: str = "object"


@attrs.frozen
class RemoveLocalRef(Event):
    """A Python ObjectRef/ActorRef was dropped."""

    object_id: str


@attrs.frozen
class GetValue(Event):
    """An API call wants the value; answered by a :class:`GetDone` effect.

    With ``fetch=False`` (``wait(fetch_local=False)``) it wants only to know
    that the object is available somewhere: GetDone comes once a copy exists
    (its ``location``), or with the value or error if one is at hand, and
    no copy is pulled.
    """

    request_id: int
    object_id: str
    fetch: bool = True


@attrs.frozen
class CancelGet(Event):
    """The API call gave up (cancelled or timed out); ``fetch`` as in its GetValue."""

    request_id: int
    fetch: bool = True


@attrs.frozen
class Cancel(Event):
    """``ownership.cancel(ref)`` at the owner."""

    object_id: str


@attrs.frozen
class TaskDone(Event):
    """User code of a task returned (``value``) or raised (``error``).

    ``calls_in_order`` (an actor's creation only): the shell runs this
    actor's calls one at a time, in the order it is handed them (a sync
    actor on its own thread), so the core may hand it a call before the
    previous one has ended.
    """

    task_id: str
    value: Payload | None = None
    error: ErrorInfo | None = None
    calls_in_order: bool = False


@attrs.frozen
class TaskBlocked(Event):
    """A running task waits on a get: its lease's CPU can be lent."""

    task_id: str


@attrs.frozen
class TaskUnblocked(Event):
    task_id: str


# ---------------------------------------------------------------------------
# Effects.
# ---------------------------------------------------------------------------


@attrs.frozen
class Send(Effect):
    dst: str
    msg: Any


@attrs.frozen
class Execute(Effect):
    """Run user code: the task and its argument values, in order."""

    task: TaskSpec
    args: tuple[Payload, ...]


@attrs.frozen
class CancelExecution(Effect):
    task_id: str


@attrs.frozen
class GetDone(Effect):
    """Answer to :class:`GetValue`: exactly one of value / error / location."""

    request_id: int
    object_id: str
    value: Payload | None = None
    error: ErrorInfo | None = None
    location: str | None = None  # an actor's worker address


@attrs.frozen
class StartWorker(Effect):
    """The node needs one more worker process. It registers itself
    (RegisterWorker), or the shell reports :class:`WorkerStartFailed`."""


@attrs.frozen
class KillWorker(Effect):
    """Stop this worker process (its owner died, or its actor is gone)."""

    worker: str


@attrs.frozen
class Watch(Effect):
    """Tell the transport to report (PeerLost) when this process goes away."""

    address: str


@attrs.frozen
class Probe(Effect):
    """Dial process ``address`` afresh, within the probe's time, and report
    whether that incarnation answered (:class:`ProbeResult`)."""

    address: str


@attrs.frozen
class Fenced(Effect):
    """The head declared this process dead: it must stop, its workers with
    it, because the rest of the cluster has written it off."""

    reason: str = ""


@attrs.frozen
class ObjectFreed(Effect):
    """The store dropped its copy (the shell releases shared memory, if any)."""

    object_id: str


@attrs.frozen
class Logged(Effect):
    """A recoverable object of ours is logged at the head (or the head refused
    it, ``ok`` False): its reference may be handed out now."""

    object_id: str
    ok: bool = True


@attrs.frozen
class Registered(Effect):
    """The worker is registered with its node and the head: it may serve."""


@attrs.frozen
class Infeasible(Effect):
    """No node of the cluster can run this task as asked: tell the user
    (once per function and resource shape; the task keeps waiting)."""

    task_id: str
    name: str
    resources: tuple[tuple[str, float], ...]
    node: str
    kind: str = "task"  # or "actor_create"


# ---------------------------------------------------------------------------
# Deterministic ids and the bounded stimulus log.
# ---------------------------------------------------------------------------


@attrs.define
class IdGenerator:
    """Ids ``<address>/<kind><n>``: unique cluster-wide, reproducible per run.

    Addresses are never reused, so a counter per process is enough.
    """

    address: str
    _counter: itertools.count = attrs.field(factory=lambda: itertools.count(1))

    def next(self, kind: str) -> str:
        return f"{self.address}/{kind}{next(self._counter)}"


@attrs.frozen
class PayloadSummary:
    """A value as the log keeps it: its size and the refs inside, not its bytes.

    The log holds its entries long after the values are freed; with the
    payloads themselves, 10,000 entries could pin gigabytes of freed
    arrays (and the shared-memory pages they map).
    """

    size: int
    refs: tuple = ()


#: Payloads up to this size stay in the log as they are: summarizing costs
#: more than they weigh (10,000 entries of them are at most ~10 MiB).
SUMMARY_OVER = 1024
# Fields that may hold a Payload, per class (annotations are strings here).
_CARRIERS = ("Payload", "TaskSpec", "TaskReply", "Arg", "ErrorInfo", "Any")
_walk_cache: dict[type, tuple[str, ...]] = {}
_PLAIN = frozenset({type(None), str, int, float, bool, bytes})


def _fields_to_walk(cls: type) -> tuple[str, ...]:
    names = _walk_cache.get(cls)
    if names is None:
        if attrs.has(cls):
            names = tuple(a.name for a in attrs.fields(cls) if any(c in str(a.type) for c in _CARRIERS))
        else:
            names = ()
        _walk_cache[cls] = names
    return names


def summarized(obj: Any) -> Any:
    """``obj`` with every Payload over SUMMARY_OVER bytes inside it (at any
    depth) replaced by a :class:`PayloadSummary`; ``obj`` itself when it holds none."""
    cls = type(obj)
    if cls is Payload:
        size = len(obj.data)
        for b in obj.buffers:
            size += len(b)
        return PayloadSummary(size, obj.refs) if size > SUMMARY_OVER else obj
    if cls is tuple:
        changed = False
        items = []
        for x in obj:
            light = summarized(x) if type(x) not in _PLAIN else x
            changed = changed or light is not x
            items.append(light)
        return tuple(items) if changed else obj
    if cls is TaskSpec and _light_spec(obj):
        return obj
    names = _walk_cache.get(cls)
    if names is None:
        names = _fields_to_walk(cls)
    if not names:
        return obj
    changes = None
    for name in names:
        value = getattr(obj, name)
        vcls = type(value)
        # The common cases settled here, without a call: nothing inside can
        # be a Payload, a small Payload, a TaskSpec with no large value.
        if vcls in _PLAIN or _walk_cache.get(vcls, _UNSEEN) == ():
            continue
        if vcls is Payload and not value.buffers and len(value.data) <= SUMMARY_OVER:
            continue
        if vcls is TaskSpec and _light_spec(value):
            continue
        light = summarized(value)
        if light is not value:
            if changes is None:
                changes = {}
            changes[name] = light
    return attrs.evolve(obj, **changes) if changes else obj


_UNSEEN: tuple = (None,)


def _light_spec(spec: TaskSpec) -> bool:
    """No Payload in ``spec`` is over SUMMARY_OVER: the common case, checked
    without the general walk (a TaskSpec is in every step of a task)."""
    f = spec.function
    if f.buffers or len(f.data) > SUMMARY_OVER:
        return False
    for a in spec.args:
        v = a.value
        if v is not None and (v.buffers or len(v.data) > SUMMARY_OVER):
            return False
    return True


@attrs.frozen
class LogEntry:
    seq: int
    event: Event
    effects: tuple[Effect, ...]


class EventLog:
    """The last ``maxlen`` stimuli of a core, with the effects each produced.

    Values are logged as :class:`PayloadSummary` (size and refs), so a freed
    value does not stay in memory because the log still mentions it.
    """

    def __init__(self, maxlen: int = 10_000) -> None:
        # (seq, event, effects) tuples: a LogEntry is built only when read,
        # the log being written on every step and read almost never.
        self._entries: collections.deque[tuple[int, Event, tuple[Effect, ...]]] = collections.deque(maxlen=maxlen)
        self._seq = 0

    def append(self, event: Event, effects: list[Effect]) -> None:
        self._seq += 1
        # Summarized now, not when read: the log must not keep a freed value alive.
        self._entries.append((self._seq, summarized(event), tuple(map(summarized, effects)) if effects else ()))

    def __iter__(self):
        return (LogEntry(seq, event, effects) for seq, event, effects in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total(self) -> int:
        """Stimuli seen since the core started (the log keeps only the last ones)."""
        return self._seq
