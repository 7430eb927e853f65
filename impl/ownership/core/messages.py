"""Wire messages of the protocol.

Every message is an ``@message`` class: an attrs frozen, keyword-only value
named after the spec's message ``type`` string in CamelCase, with the spec's
field names (DESIGN §4). ``@message`` also registers the class by name, so a
transport can encode ``(type_name, fields)`` and decode it back without
trusting the peer to name arbitrary Python classes.

Nested value types carried inside messages (task specs, payloads, error
descriptions) are ``@record`` classes, registered the same way, so an encoder
can walk a message down to plain data: :func:`unstructure` turns a message
into nested dicts/lists tagged with type names, :func:`structure` rebuilds it.
:class:`Payload` is the one opaque leaf: user values, already pickled by the
runtime (protocol 5, out-of-band buffers kept apart), which a TCP encoder
ships as bytes.

The concrete message classes are all defined in this module so that the
transport helpers and the spec cross-reference have one place to read.
"""

from __future__ import annotations

from typing import Any, TypeVar

import attrs

__all__ = [
    "MESSAGE_TYPES",
    "RECORD_TYPES",
    "message",
    "record",
    "UnknownMessageType",
    "message_type_of",
    "message_from_fields",
    "message_fields",
    "unstructure",
    "structure",
]

MESSAGE_TYPES: dict[str, type] = {}

T = TypeVar("T")


class UnknownMessageType(ValueError):
    """A decoded envelope names a message type that this process does not know."""


def message(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen keyword-only attrs class and register it by name."""
    frozen = attrs.frozen(kw_only=True)(cls)
    name = frozen.__name__
    if name in MESSAGE_TYPES and MESSAGE_TYPES[name] is not frozen:
        raise TypeError(f"message type {name!r} is defined twice")
    MESSAGE_TYPES[name] = frozen
    return frozen


def message_type_of(msg: Any) -> str:
    return type(msg).__name__


def message_fields(msg: Any) -> dict[str, Any]:
    """Shallow field dict of a message (values are left as they are)."""
    return {a.name: getattr(msg, a.name) for a in attrs.fields(type(msg))}


def message_from_fields(type_name: str, fields: dict[str, Any]) -> Any:
    """Rebuild a message; unknown types and bad fields raise clear errors."""
    try:
        cls = MESSAGE_TYPES[type_name]
    except KeyError:
        raise UnknownMessageType(f"unknown message type {type_name!r}") from None
    try:
        return cls(**fields)
    except TypeError as exc:
        raise UnknownMessageType(f"bad fields for message type {type_name!r}: {exc}") from None


RECORD_TYPES: dict[str, type] = {}


def record(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen keyword-only attrs value carried inside messages."""
    frozen = attrs.frozen(kw_only=True)(cls)
    name = frozen.__name__
    if name in RECORD_TYPES and RECORD_TYPES[name] is not frozen:
        raise TypeError(f"record type {name!r} is defined twice")
    RECORD_TYPES[name] = frozen
    return frozen


_TAG = "__type__"


def unstructure(obj: Any) -> Any:
    """A message, record or container as plain nested data.

    Messages and records become dicts with a ``"__type__"`` key; tuples,
    lists and frozensets become lists; :class:`Payload` stays as it is (the
    transport decides how values travel). The result is msgpack-ready except
    for the payloads.
    """
    if isinstance(obj, Payload):
        return obj
    cls = type(obj)
    name = cls.__name__
    if (MESSAGE_TYPES.get(name) is cls) or (RECORD_TYPES.get(name) is cls):
        out = {_TAG: name}
        for a in attrs.fields(cls):
            out[a.name] = unstructure(getattr(obj, a.name))
        return out
    if isinstance(obj, (tuple, list, frozenset, set)):
        return [unstructure(x) for x in obj]
    if isinstance(obj, dict):
        return {k: unstructure(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, (str, int, float, bool, bytes)):
        return obj
    raise TypeError(f"cannot put a {cls.__qualname__} on the wire")


def structure(tree: Any) -> Any:
    """Inverse of :func:`unstructure`; lists come back as tuples.

    Unknown type names raise :class:`UnknownMessageType`, so a peer cannot
    make this process build an arbitrary class.
    """
    if isinstance(tree, dict) and _TAG in tree:
        name = tree[_TAG]
        cls = MESSAGE_TYPES.get(name) or RECORD_TYPES.get(name)
        if cls is None:
            raise UnknownMessageType(f"unknown message or record type {name!r}")
        fields = {k: structure(v) for k, v in tree.items() if k != _TAG}
        try:
            return cls(**fields)
        except TypeError as exc:
            raise UnknownMessageType(f"bad fields for {name!r}: {exc}") from None
    if isinstance(tree, list):
        return tuple(structure(x) for x in tree)
    if isinstance(tree, dict):
        return {k: structure(v) for k, v in tree.items()}
    return tree


# ---------------------------------------------------------------------------
# Records: values nested inside messages.
# ---------------------------------------------------------------------------

Resources = tuple[tuple[str, float], ...]


@record
class RefInfo:
    """A reference as it travels: which object, who owns it, object or actor."""

    object_id: str
    owner: str
    kind: str = "object"


@record
class Payload:
    """A user value pickled by the runtime (protocol 5).

    ``buffers`` are the out-of-band pickle buffers; ``refs`` are the
    references found inside the value while pickling, which the protocol
    must count (DESIGN §2, contained-in).
    """

    data: bytes
    buffers: tuple[bytes, ...] = ()
    refs: tuple[RefInfo, ...] = ()

    @property
    def size(self) -> int:
        return len(self.data) + sum(len(b) for b in self.buffers)


@record
class ErrorInfo:
    """Why an object has no value; the API turns it into an exception.

    ``kind`` is one of ``task`` (user code raised), ``owner_died``,
    ``object_lost``, ``worker_crashed``, ``actor_died``, ``cancelled``.
    """

    kind: str
    message: str
    type_name: str = ""
    traceback: str = ""
    exception: Payload | None = None


@record
class Arg:
    """One task argument: an inlined value, or a reference to dereference."""

    value: Payload | None = None
    ref: RefInfo | None = None
    name: str | None = None  # keyword name, None for positional


@record
class TaskSpec:
    """A task as its owner keeps it (lineage) and as the executor receives it.

    ``kind`` is ``task``, ``actor_create`` or ``actor_method``.
    """

    task_id: str
    owner: str
    return_id: str
    function_id: str
    function: Payload
    args: tuple[Arg, ...] = ()
    resources: Resources = ()
    max_retries: int = 0
    kind: str = "task"
    actor_id: str | None = None
    method: str | None = None
    name: str = ""


@record
class Borrower:
    """A worker holding a reference; ``via`` names the object whose value gave it."""

    address: str
    via: str | None = None


@record
class BorrowInfo:
    """What an executor reports about one borrowed ref when its task ends."""

    object_id: str
    owner: str
    held: bool
    borrowers: tuple[Borrower, ...] = ()
    kind: str = "object"


@record
class NodeView:
    """One node as the head last heard of it."""

    node: str
    total: Resources
    available: Resources


# ---------------------------------------------------------------------------
# Messages. Names are the spec's ``type`` strings (contract).
# ---------------------------------------------------------------------------


@message
class RequestLease:
    """Owner -> scheduler: lease a worker for ``task_id`` (paper fig. 8c)."""

    request_id: str
    owner: str
    task_id: str
    resources: Resources
    deps: tuple[str, ...] = ()
    spilled: bool = False  # redirected once already: spilled again only when the node has no room at all
    actor: bool = False


@message
class LeaseGranted:
    request_id: str
    lease_id: str
    worker: str
    node: str


@message
class Spillback:
    request_id: str
    node: str


@message
class LeaseInfeasible:
    """Scheduler -> owner: no live node has the resources the request asks
    for. The request keeps waiting (a node that has them may join); the
    owner tells its user once."""

    request_id: str
    node: str


@message
class PushTask:
    task: TaskSpec
    lease_id: str | None
    attempt: int


@message
class TaskReply:
    """Executor -> owner (directly, or relayed by the store for a stored value)."""

    task_id: str
    return_id: str
    attempt: int
    worker: str
    lease_id: str | None
    value: Payload | None = None
    location: str | None = None  # node whose store holds the value
    error: ErrorInfo | None = None
    refs: tuple[RefInfo, ...] = ()  # refs contained in the return value
    borrowed: tuple[BorrowInfo, ...] = ()


@message
class ReturnLease:
    lease_id: str
    worker: str
    kill: bool = False  # an actor's lease: stop the worker


@message
class CancelTask:
    task_id: str


@message
class WorkerDied:
    worker: str
    node: str


@message
class NodeDied:
    node: str
    workers: tuple[str, ...] = ()


@message
class WaitForRefRemoved:
    """Owner -> borrower: answer with RefRemoved once you no longer hold it."""

    object_id: str
    owner: str
    via: str | None = None  # the borrower got the ref inside this object's value
    borrower: str = ""  # the addressee


@message
class RefRemoved:
    """Borrower -> owner: one WaitForRefRemoved answered (``answer``), or, with
    ``answer=False``, sub-borrowers handed over without answering anything."""

    object_id: str
    borrower: str
    borrowers: tuple[Borrower, ...] = ()  # the borrower's own borrowers, now the owner's to wait on
    owner: str = ""  # the addressee
    answer: bool = True


@message
class GetObject:
    object_id: str
    requester: str


@message
class ObjectValue:
    """Owner -> requester: the value, where copies are, or why there is none."""

    object_id: str
    value: Payload | None = None
    locations: tuple[str, ...] = ()
    error: ErrorInfo | None = None


@message
class PullObject:
    object_id: str
    requester: str


@message
class ObjectCopy:
    """Store -> requester; ``value`` is None when the store has no copy."""

    object_id: str
    value: Payload | None = None


@message
class PutObject:
    """Worker -> its node's store: keep this value pinned for ``owner``.

    The store forwards ``reply`` (a TaskReply) to the owner once the copy is
    stored, so an owner never learns of a location before the copy exists;
    without a reply the store tells the owner with ObjectStored.
    """

    object_id: str
    owner: str
    value: Payload
    reply: TaskReply | None = None


@message
class ObjectStored:
    object_id: str
    node: str


@message
class FreeObject:
    object_id: str


@message
class Heartbeat:
    node: str
    seq: int
    total: Resources = ()
    available: Resources = ()
    workers: tuple[str, ...] = ()


@message
class ClusterView:
    nodes: tuple[NodeView, ...] = ()


@message
class RegisterWorker:
    worker: str
    node: str
    driver: bool = False


@message
class WorkerRegistered:
    worker: str
    node: str


@message
class WorkerBlocked:
    """A leased worker waits on a get: its CPU can run other tasks meanwhile."""

    worker: str
    lease_id: str


@message
class WorkerUnblocked:
    worker: str
    lease_id: str
