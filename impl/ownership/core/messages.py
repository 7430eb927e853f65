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

Field annotations are also what a received message is checked against
before any core sees it (:func:`validate`; the TCP decoder builds the same
checks into its per-class builders with :func:`check_source`): a message
with a field of the wrong type, an empty :data:`Address`, a negative or
huge :data:`Count`, a negative or non-finite resource :data:`Amount`, or a
``kind`` outside its ``Literal``, raises :class:`InvalidMessage`.

The concrete message classes are all defined in this module so that the
transport helpers and the spec cross-reference have one place to read.
"""

from __future__ import annotations

import reprlib
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import attrs

__all__ = [
    "MESSAGE_TYPES",
    "RECORD_TYPES",
    "message",
    "record",
    "UnknownMessageType",
    "InvalidMessage",
    "Address",
    "Count",
    "Amount",
    "Availability",
    "Balance",
    "Bounds",
    "validate",
    "check_source",
    "peer_text",
    "message_type_of",
    "message_from_fields",
    "message_fields",
    "unstructure",
    "structure",
]

MESSAGE_TYPES: dict[str, type] = {}

_bounded = reprlib.Repr()
_bounded.maxstring = _bounded.maxother = 160


def peer_text(value: Any) -> str:
    """``value`` (which a peer sent) for the text of an error, which gets
    logged: a repr, escaped and shortened."""
    return _bounded.repr(value)

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
    """Rebuild a message; unknown types and bad fields raise clear errors
    (:class:`InvalidMessage` for a field that does not fit, see :func:`validate`)."""
    try:
        cls = MESSAGE_TYPES[type_name]
    except KeyError:
        raise UnknownMessageType(f"unknown message type {peer_text(type_name)}") from None
    try:
        msg = cls(**fields)
    except TypeError as exc:
        raise UnknownMessageType(f"bad fields for message type {peer_text(type_name)}: {peer_text(str(exc))}") from None
    validate(msg)
    return msg


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
    make this process build an arbitrary class; fields that do not fit
    their class raise :class:`InvalidMessage`.
    """
    if isinstance(tree, dict) and _TAG in tree:
        name = tree[_TAG]
        cls = MESSAGE_TYPES.get(name) or RECORD_TYPES.get(name)
        if cls is None:
            raise UnknownMessageType(f"unknown message or record type {peer_text(name)}")
        fields = {k: structure(v) for k, v in tree.items() if k != _TAG}
        try:
            obj = cls(**fields)
        except TypeError as exc:
            raise UnknownMessageType(f"bad fields for {peer_text(name)}: {peer_text(str(exc))}") from None
        validate(obj, deep=False)  # its records were checked as they were built
        return obj
    if isinstance(tree, list):
        return tuple(structure(x) for x in tree)
    if isinstance(tree, dict):
        return {k: structure(v) for k, v in tree.items()}
    return tree


# ---------------------------------------------------------------------------
# Validation: what a decoder checks before any core sees a message.
# ---------------------------------------------------------------------------


class InvalidMessage(UnknownMessageType):
    """A received message, or a record inside it, has a field that does not fit its class."""


@attrs.frozen
class Bounds:
    """Field metadata: ``low <= value <= high`` (which also refuses NaN)."""

    low: float
    high: float


#: Field metadata: a str that must not be empty.
NON_EMPTY = "non-empty"

#: A process as its peers name it: opaque to the cores, never empty.
Address = Annotated[str, NON_EMPTY]
#: A count, attempt or sequence number: a non-negative 64-bit integer.
Count = Annotated[int, Bounds(0, 2**63 - 1)]
#: An amount of a resource: finite and non-negative; ints pass too
#: (``num_cpus=2``), bools do not.
Amount = Annotated[float, Bounds(0.0, 1e18)]
#: What a node has left of a resource: finite, and negative while the node
#: is oversubscribed (a blocked worker took back the CPU it had lent).
Balance = Annotated[float, Bounds(-1e18, 1e18)]


def validate(obj: Any, *, deep: bool = True) -> None:
    """Raise :class:`InvalidMessage` unless every field of ``obj`` (a
    ``@message`` or ``@record``) fits its annotation.

    The check of each class is compiled once from its annotations (str,
    int, bool, float, bytes, ``X | None``, ``tuple[X, ...]``, fixed tuples,
    ``Literal``, registered records, and the metadata of :data:`Address`,
    :data:`Count` and :data:`Amount`). ``deep=False`` checks a record-typed
    field's class only, for decoders that validated the record when they
    built it.
    """
    cls = type(obj)
    checks = _checkers_deep if deep else _checkers_shallow
    check = checks.get(cls)
    if check is None:
        check = checks[cls] = _compile_checker(cls, deep)
    check(obj)


_checkers_deep: dict[type, Callable[[Any], None]] = {}
_checkers_shallow: dict[type, Callable[[Any], None]] = {}
_BYTES_LIKE = (bytes, bytearray, memoryview)
_SHOWN_AS_VALUES = (str, bytes, int, float, bool, type(None))


def _show(value: Any) -> str:
    # The value came from a peer and goes into a log line: escaped and short.
    kind = reprlib.repr(type(value).__name__)[1:-1]
    if type(value) in _SHOWN_AS_VALUES:
        return f"{kind} {reprlib.repr(value)}"
    return kind


def _fail(cls_name: str, path: str, expected: str, value: Any) -> None:
    raise InvalidMessage(f"bad field {cls_name}.{path}: expected {expected}, got {_show(value)}")


def _registered(cls: Any) -> bool:
    name = getattr(cls, "__name__", None)
    return isinstance(cls, type) and (MESSAGE_TYPES.get(name) is cls or RECORD_TYPES.get(name) is cls)


class _CheckWriter:
    """Writes the statements that check values against annotations."""

    def __init__(self, cls: type, deep: bool, prefix: str) -> None:
        self.cls = cls
        self.deep = deep
        self.prefix = prefix
        self.namespace: dict[str, Any] = {}
        self.lines: list[str] = []
        self._vars = 0
        self.name = self.const(cls.__name__)
        self.fail = self.const(_fail)

    def const(self, value: Any) -> str:
        name = f"{self.prefix}c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def var(self) -> str:
        self._vars += 1
        return f"{self.prefix}v{self._vars}"

    def failing(self, condition: str, expr: str, path: str, expected: str, indent: str) -> None:
        self.lines.append(f"{indent}if {condition}:")
        self.lines.append(f"{indent}    {self.fail}({self.name}, {path!r}, {expected!r}, {expr})")

    def check(self, hint: Any, expr: str, path: str, indent: str) -> None:
        meta: tuple = ()
        if typing.get_origin(hint) is Annotated:
            hint, *rest = typing.get_args(hint)
            meta = tuple(rest)
        origin = typing.get_origin(hint)
        bounds = next((m for m in meta if isinstance(m, Bounds)), None)
        if hint is Any or hint is object:
            return
        if origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(options) != 1 or len(typing.get_args(hint)) != 2:
                raise TypeError(f"{self.cls.__name__}.{path}: only X | None unions can be checked, not {hint!r}")
            self.lines.append(f"{indent}if {expr} is not None:")
            self.check(options[0], expr, path, indent + "    ")
            return
        if origin is Literal:
            allowed = typing.get_args(hint)
            self.failing(f"{expr} not in {self.const(frozenset(allowed))} or type({expr}) not in {self.const(frozenset(map(type, allowed)))}", expr, path, "one of " + ", ".join(map(repr, allowed)), indent)
            return
        if hint is str:
            if NON_EMPTY in meta:
                self.failing(f"type({expr}) is not str or not {expr}", expr, path, "a non-empty str", indent)
            else:
                self.failing(f"type({expr}) is not str", expr, path, "str", indent)
            return
        if hint is bool:
            self.failing(f"type({expr}) is not bool", expr, path, "bool", indent)
            return
        if hint is int:
            if bounds is not None:
                self.failing(f"type({expr}) is not int or not {bounds.low!r} <= {expr} <= {bounds.high!r}", expr, path, f"an int in [{bounds.low}, {bounds.high}]", indent)
            else:
                self.failing(f"type({expr}) is not int", expr, path, "int", indent)
            return
        if hint is float:
            cond = f"(type({expr}) is not float and type({expr}) is not int)"
            if bounds is not None:
                self.failing(f"{cond} or not {bounds.low!r} <= {expr} <= {bounds.high!r}", expr, path, f"a number in [{bounds.low}, {bounds.high}]", indent)
            else:
                self.failing(cond, expr, path, "a number", indent)
            return
        if hint is bytes:
            self.failing(f"type({expr}) not in {self.const(_BYTES_LIKE)}", expr, path, "bytes", indent)
            return
        if hint is dict or origin is dict:
            self.failing(f"type({expr}) is not dict", expr, path, "dict", indent)
            return
        if hint is tuple or origin is tuple:
            args = typing.get_args(hint)
            if len(args) == 2 and args[1] is Ellipsis:
                self.failing(f"type({expr}) is not tuple", expr, path, "tuple", indent)
                item = self.var()
                body: list[str] = []
                outer, self.lines = self.lines, body
                self.check(args[0], item, path + "[]", indent + "    ")
                self.lines = outer
                if body:
                    self.lines.append(f"{indent}for {item} in {expr}:")
                    self.lines.extend(body)
                return
            if not args:
                self.failing(f"type({expr}) is not tuple", expr, path, "tuple", indent)
                return
            self.failing(f"type({expr}) is not tuple or len({expr}) != {len(args)}", expr, path, f"a tuple of {len(args)}", indent)
            for i, a in enumerate(args):
                item = self.var()
                self.lines.append(f"{indent}{item} = {expr}[{i}]")
                self.check(a, item, f"{path}[{i}]", indent)
            return
        if _registered(hint):
            self.failing(f"type({expr}) is not {self.const(hint)}", expr, path, hint.__name__, indent)
            if self.deep:
                self.lines.append(f"{indent}{self.const(validate)}({expr})")
            return
        raise TypeError(f"{self.cls.__name__}.{path}: cannot check values of type {hint!r}")


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:
        raise TypeError(f"cannot resolve the field types of {cls.__name__}: {exc}") from None


def check_source(cls: type, exprs: dict[str, str], *, deep: bool = False, indent: str = "    ", prefix: str = "_chk_") -> tuple[list[str], dict[str, Any]]:
    """Python statements that check the fields of ``cls``, each read from the
    expression ``exprs[name]`` (fields not named are not checked), and the
    namespace they need (names start with ``prefix``).

    A decoder builds its own per-class function from these, so that a
    message is checked as it is built without a call per field.
    """
    hints = _hints(cls)
    writer = _CheckWriter(cls, deep, prefix)
    for a in attrs.fields(cls):
        if a.name in exprs:
            writer.check(hints.get(a.name, Any), exprs[a.name], a.name, indent)
    return writer.lines, writer.namespace


def _compile_checker(cls: type, deep: bool) -> Callable[[Any], None]:
    if not attrs.has(cls) or not _registered(cls):
        raise InvalidMessage(f"{cls.__name__!r} is not a registered message or record")
    names = [a.name for a in attrs.fields(cls)]
    exprs = {n: f"_f{i}" for i, n in enumerate(names)}
    lines, namespace = check_source(cls, exprs, deep=deep)
    body = [f"    _f{i} = obj.{n}" for i, n in enumerate(names)] + lines
    source = "def check(obj):\n" + "\n".join(body or ["    pass"]) + "\n    return None\n"
    exec(source, namespace)
    return namespace["check"]


# ---------------------------------------------------------------------------
# Records: values nested inside messages.
# ---------------------------------------------------------------------------

Resources = tuple[tuple[str, Amount], ...]
Availability = tuple[tuple[str, Balance], ...]


@record
class RefInfo:
    """A reference as it travels: which object, who owns it, object or actor."""

    object_id: str
    owner: Address
    kind: Literal["object", "actor"] = "object"


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

    kind: Literal["task", "owner_died", "object_lost", "worker_crashed", "actor_died", "cancelled"]
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
    owner: Address
    return_id: str
    function_id: str
    function: Payload
    args: tuple[Arg, ...] = ()
    resources: Resources = ()
    max_retries: Count = 0
    kind: Literal["task", "actor_create", "actor_method"] = "task"
    actor_id: str | None = None
    method: str | None = None
    name: str = ""
    #: its owner logs it at the head, and it survives the owner's death
    #: (OwnerRecovery); a default task shares its owner's fate
    recoverable: bool = False


@record
class Borrower:
    """A worker holding a reference; ``via`` names the object whose value gave it."""

    address: Address
    via: str | None = None


@record
class BorrowInfo:
    """What an executor reports about one borrowed ref when its task ends."""

    object_id: str
    owner: Address
    held: bool
    borrowers: tuple[Borrower, ...] = ()
    kind: Literal["object", "actor"] = "object"


@record
class NodeView:
    """One node as the head last heard of it."""

    node: Address
    total: Resources
    available: Availability


# ---------------------------------------------------------------------------
# Messages. Names are the spec's ``type`` strings (contract).
# ---------------------------------------------------------------------------


@message
class RequestLease:
    """Owner -> scheduler: lease a worker for ``task_id`` (paper fig. 8c)."""

    request_id: str
    owner: Address
    task_id: str
    resources: Resources
    deps: tuple[str, ...] = ()
    spilled: bool = False  # redirected once already: spilled again only when the node has no room at all
    actor: bool = False


@message
class LeaseGranted:
    request_id: str
    lease_id: str
    worker: Address
    node: Address


@message
class Spillback:
    request_id: str
    node: Address


@message
class LeaseInfeasible:
    """Scheduler -> owner: no live node has the resources the request asks
    for. The request keeps waiting (a node that has them may join); the
    owner tells its user once."""

    request_id: str
    node: Address


@message
class PushTask:
    task: TaskSpec
    lease_id: str | None
    attempt: Count
    #: the owner's epoch of a recoverable task's object (0: a default task);
    #: a worker that heard of a later one drops the push as stale
    epoch: Count = 0


@message
class TaskReply:
    """Executor -> owner (directly, or relayed by the store for a stored value)."""

    task_id: str
    return_id: str
    attempt: Count
    worker: Address
    lease_id: str | None
    value: Payload | None = None
    location: Address | None = None  # node whose store holds the value
    error: ErrorInfo | None = None
    refs: tuple[RefInfo, ...] = ()  # refs contained in the return value
    borrowed: tuple[BorrowInfo, ...] = ()
    #: the epoch of the push it answers (OwnerRecovery; 0 for a default task)
    epoch: Count = 0


@message
class ReturnLease:
    lease_id: str
    worker: Address
    kill: bool = False  # an actor's lease: stop the worker


@message
class CancelTask:
    task_id: str


@message
class WorkerDied:
    worker: Address
    node: Address


@message
class NodeDied:
    node: Address
    workers: tuple[Address, ...] = ()


@message
class WaitForRefRemoved:
    """Owner -> borrower: answer with RefRemoved once you no longer hold it."""

    object_id: str
    owner: Address
    via: str | None = None  # the borrower got the ref inside this object's value
    borrower: str = ""  # the addressee


@message
class RefRemoved:
    """Borrower -> owner: one WaitForRefRemoved answered (``answer``), or, with
    ``answer=False``, sub-borrowers handed over without answering anything."""

    object_id: str
    borrower: Address
    borrowers: tuple[Borrower, ...] = ()  # the borrower's own borrowers, now the owner's to wait on
    owner: str = ""  # the addressee
    answer: bool = True


@message
class AddBorrower:
    """Borrower -> owner: count me as a borrower of each of ``object_ids``.

    Sent by a worker that got the refs in a task's arguments from a caller
    that is not their owner (a borrower of a borrower), before the task
    runs, so that the owner's count does not depend on the lender reporting
    it. One message per task and owner: a task can carry thousands of refs.
    """

    object_ids: tuple[str, ...]
    owner: Address  # the addressee
    borrower: Address


@message
class BorrowerAdded:
    """Owner -> borrower: counted for ``object_ids``, except ``refused``, the
    objects freed already (the spec's ``ok`` is FALSE for those). For each
    object counted it is also a WaitForRefRemoved: the borrower answers with
    RefRemoved once it no longer holds it."""

    object_ids: tuple[str, ...]
    owner: Address
    borrower: Address  # the addressee
    refused: tuple[str, ...] = ()


@message
class RegisterBorrower:
    """Lender -> owner: count ``borrower`` for each of ``object_ids``.

    Sent by a borrower of those objects that is about to hand them over
    inside the value of object ``via`` (serving it to a reader, or
    returning it to a task's caller), before it does: the reader's count
    must not depend on the lender reporting it, since the lender may die
    first. The lender keeps the value back, and holds the objects, until
    the owner answers (BorrowerRegistered; ``lend`` names the hand-over).
    """

    object_ids: tuple[str, ...]
    owner: Address  # the addressee
    borrower: Address
    lender: Address
    via: str
    lend: Count


@message
class BorrowerRegistered:
    """Owner -> lender: ``borrower`` is counted for ``object_ids``, except
    ``refused`` (freed already), and has been sent a WaitForRefRemoved for
    each; the lender may hand the value over."""

    object_ids: tuple[str, ...]
    owner: Address
    borrower: Address
    lender: Address  # the addressee
    lend: Count
    refused: tuple[str, ...] = ()


@message
class GetObject:
    """Requester -> owner: where is the object (or what is it)?

    ``bad`` names the nodes the requester found without a copy since it
    last asked: dead as far as it knows, or a store that answered
    ObjectCopy(value=None). The owner writes them off first.
    """

    object_id: str
    requester: Address
    bad: tuple[Address, ...] = ()
    #: the epoch the requester knows the object at (OwnerRecovery): a new
    #: owner that has not heard of the take-over yet keeps the request
    epoch: Count = 0


@message
class ObjectValue:
    """Owner -> requester: the value, where copies are, or why there is none."""

    object_id: str
    value: Payload | None = None
    locations: tuple[Address, ...] = ()
    error: ErrorInfo | None = None


@message
class ObjectPending:
    """Owner -> requester: the object is being made (its task runs, or it is
    being rebuilt); an ObjectValue follows once it is there."""

    object_id: str


@message
class PullObject:
    object_id: str
    requester: Address


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
    owner: Address
    value: Payload
    reply: TaskReply | None = None


@message
class ObjectStored:
    object_id: str
    node: Address


@message
class FreeObject:
    object_id: str
    #: the epoch the copy was pinned at (0: a default object): a store frees
    #: no copy pinned at another
    epoch: Count = 0


@message
class Heartbeat:
    node: Address
    seq: Count
    total: Resources = ()
    available: Availability = ()
    workers: tuple[Address, ...] = ()


@message
class ClusterView:
    nodes: tuple[NodeView, ...] = ()


@message
class RegisterWorker:
    worker: Address
    node: Address
    driver: bool = False


@record
class MovedRef:
    """Where an object of a dead owner moved: its new owner, at ``epoch``."""

    object_id: str
    owner: Address
    epoch: Count


@message
class WorkerRegistered:
    """Head -> node, then node -> the worker: registered. To the worker it
    carries the deaths its node has heard of, and where the objects of the
    dead moved, which it must know too: a reference handed to it later may
    still name a dead owner."""

    worker: Address
    node: Address
    dead_workers: tuple[Address, ...] = ()
    dead_nodes: tuple[Address, ...] = ()
    #: the head, where an owner logs its recoverable objects ("" when unknown)
    head: str = ""
    moved: tuple[MovedRef, ...] = ()


@message
class ClusterDeaths:
    """Head -> a node on its first contact: the deaths published before it
    joined, and where the objects of the dead moved. The node tells its
    workers as they register."""

    dead_workers: tuple[Address, ...] = ()
    dead_nodes: tuple[Address, ...] = ()
    moved: tuple[MovedRef, ...] = ()


@message
class WorkerBlocked:
    """A leased worker waits on a get: its CPU can run other tasks meanwhile."""

    worker: Address
    lease_id: str


@message
class WorkerUnblocked:
    worker: Address
    lease_id: str


# ---------------------------------------------------------------------------
# Owner recovery (spec/OwnerRecovery.tla): the log at the head, the take-over.
# ---------------------------------------------------------------------------


@message
class LogObject:
    """Owner -> head: log a recoverable object before its reference is
    handed to anyone: its lineage (``task``) or, for a put, its value."""

    object_id: str
    owner: Address
    task: TaskSpec | None = None
    value: Payload | None = None
    retries: Count = 0


@message
class ObjectLogged:
    """Head -> owner: logged at ``epoch``. ``ok`` is False when the head
    refuses the write (the owner was declared dead); ``adopted_from`` set:
    the object exists already (a re-executed parent made it again), borrow
    it from that owner instead of making a second one."""

    object_id: str
    epoch: Count
    ok: bool = True
    adopted_from: Address | None = None


@message
class LogDispatch:
    """Owner -> head: a recoverable task is about to be pushed to ``worker``
    (its ``attempt``-th run): the head logs where it runs before it does."""

    object_id: str
    epoch: Count
    owner: Address
    worker: Address
    attempt: Count


@message
class DispatchLogged:
    """Head -> owner: the dispatch is logged (``ok``), or refused: the owner
    is stale (declared dead, or at an older epoch) and must not push."""

    object_id: str
    epoch: Count
    attempt: Count
    ok: bool


@message
class DeleteObject:
    """Owner -> head: the object is freed; drop its log before its copies."""

    object_id: str
    epoch: Count
    owner: Address


@message
class ObjectDeleted:
    """Head -> owner: the log is dropped (``ok``), or the delete is refused:
    a stale owner (then it frees nothing), or an adopter still holds it
    (then :class:`AdoptersGone` follows)."""

    object_id: str
    epoch: Count
    ok: bool


@message
class AdoptersGone:
    """Head -> owner: the last adopter of the object let go; free it again."""

    object_id: str
    epoch: Count


@message
class ReleaseAdopted:
    """Re-executed parent -> head: it no longer holds the object it adopted."""

    object_id: str
    epoch: Count
    adopter: Address


@record
class MovedObject:
    """One object of a dead owner, taken over at ``epoch``; with what the new
    owner needs to make it again: its lineage, or a put's value."""

    object_id: str
    epoch: Count
    task: TaskSpec | None = None
    value: Payload | None = None
    attempts: Count = 0


@message
class OwnerMoved:
    """Head -> every live node, relayed to its workers: the death of
    ``workers`` (and of ``node``, if set), which replaces WorkerDied/NodeDied
    when a dead process had logged objects; ``new_owner`` owns ``moved``
    from now on, and waits for a RecoveryReport from each of ``told``."""

    workers: tuple[Address, ...]
    new_owner: Address
    moved: tuple[MovedObject, ...]
    told: tuple[Address, ...]
    node: Address | None = None


@record
class ReportEntry:
    """What one process knows of one moved object."""

    object_id: str
    epoch: Count
    held: bool = False
    copy: bool = False
    running: bool = False


@message
class RecoveryReport:
    """Any process told -> the new owner: its answers for every moved object."""

    reporter: Address
    new_owner: Address
    entries: tuple[ReportEntry, ...] = ()
