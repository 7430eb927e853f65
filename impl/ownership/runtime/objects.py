"""Large values through a node's shared memory (the TCP runtime's object plane).

The cores move large values as :class:`~ownership.core.messages.Payload`
records: a worker sends its node ``PutObject``, a reader pulls a copy. Over
TCP the shells change how the bytes travel, not what the cores see:

* **Writing.** A worker on the node's machine writes a large value it made
  (a task's return, a ``put``) straight into a new shared-memory segment
  under its node's prefix and sends the node :class:`SegmentStored` instead
  of the bytes. The node maps the segment read-only and hands its core a
  ``PutObject`` whose payload is backed by the mapping: the store core pins
  it as the primary copy and answers the owner as before. The value never
  passes through the node's heap, nor through the owner.
* **Reading.** Every pull of a worker goes to its own node
  (:class:`~ownership.core.store.FetchObject`). If the node holds the copy,
  a worker that can map the node's segments gets :class:`SegmentCopy` (the
  segment's name) and maps it: its payload's buffers, and so the numpy
  arrays unpickled from them, are read-only views of the shared pages. If
  the copy is on another node, the node pulls it from there, writes it into
  a segment of its own, keeps it as a secondary copy (the owner is told, and
  frees it with the others), and answers the same way.
* **Between nodes of one machine.** A node pulling a copy from another
  node tells it the identity of its shared-memory namespace
  (:class:`SegmentPull`); a source that shares it answers with its
  segment's name (:class:`PeerSegmentCopy`), and the puller takes that
  segment under a name of its own (:func:`~.shm.link_segment`, a hard link):
  no byte moves, and the copy is the puller's, outliving the source's node.
  If the link fails (the copy was freed meanwhile) the puller asks again
  for the bytes. ``OWNERSHIP_LINK_NODE_SEGMENTS=0`` turns this off, so
  copies move over TCP as between machines.
* **Freeing.** When the store core drops a copy (the owner freed the object,
  or the owner died), the node unlinks its segment. A reader's mapping
  stays valid after the unlink; the pages go with the last mapping. A reader
  holds a reference to the object while it maps, so the owner cannot free
  the object in between; if the segment is gone anyway (its owner died), the
  reader's core hears "no copy" and recovers as from any failed pull.

Whether a worker can map its node's segments is checked, not assumed: the
node tells each worker that registers its segment prefix and an identity of
its shared-memory namespace (:class:`SharedMemoryInfo`); a worker whose own
namespace matches (same machine, same ``/dev/shm``) answers
:class:`MapsSegments`, and only then writes and maps. A driver attached
from another machine keeps getting bytes over TCP, through its node.

Nothing here runs on the in-memory network: there the shells move payloads
as Python objects and workers pull straight from the source node.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import logging
import os
from collections.abc import Callable
from typing import Any

import attrs

from ..core.messages import (
    FreeObject,
    GetObject,
    LeaseGranted,
    ObjectCopy,
    ObjectValue,
    Payload,
    PullObject,
    PushTask,
    PutObject,
    RefInfo,
    RegisterWorker,
    TaskReply,
    message,
)
from ..core.store import FetchObject, ObjectFetched
from .bufpool import value_pool
from .values import SerializationError, SerializedValue, dumps_oob, pack, snapshot
from .shm import (
    SHM_DIR,
    ArgumentSegments,
    FrameSegments,
    SegmentInfo,
    SharedMemoryStore,
    SpareSegments,
    link_segment,
    open_segment,
    unlink_segment,
    write_segment,
)

__all__ = [
    "MapsSegments",
    "SegmentArguments",
    "SharesSegments",
    "NodeObjects",
    "PeerSegmentCopy",
    "SegmentCopy",
    "SegmentPull",
    "SegmentStored",
    "SharedMemoryInfo",
    "WorkerObjects",
    "machine_shm_id",
]

logger = logging.getLogger("ownership.objects")


# -- shell messages (never seen by a core) ----------------------------------------


@message
class SharedMemoryInfo:
    """Node -> a worker that registers: where the node's segments are."""

    prefix: str
    shm_id: str  # identity of the node's /dev/shm (machine_shm_id())


@message
class MapsSegments:
    """Worker -> its node: this process shares the node's /dev/shm.

    ``pid`` names the segments it writes (see :func:`segment_key`), so the
    node can remove those it never heard of once the worker is gone.
    """

    worker: str
    pid: int


@message
class SegmentStored:
    """Worker -> its node: PutObject, with the value in segment ``segment``."""

    object_id: str
    owner: str
    segment: str
    refs: tuple[RefInfo, ...] = ()
    reply: TaskReply | None = None


@message
class SegmentCopy:
    """Node -> its worker: ObjectFetched, with the value in segment ``segment``."""

    object_id: str
    source: str
    segment: str
    refs: tuple[RefInfo, ...] = ()


@message
class SharesSegments:
    """Node -> a local owner, just before a LeaseGranted for ``worker``: that
    worker maps this node's segments too, so arguments passed by value may
    go to it by segment name (:class:`SegmentArguments`)."""

    worker: str


@message
class SegmentArguments:
    """Owner -> a worker of its node: ``push``, its large arguments by segment.

    ``segments[i]`` names the segment holding argument ``i``'s value (laid
    out as any stored value), or is empty for an argument that travels in
    ``push`` itself; a named argument's value in ``push`` keeps only its refs.
    """

    push: PushTask
    segments: tuple[str, ...]


@message
class SegmentPull:
    """Node -> another node: ``pull``, from a node whose shared memory is ``shm_id``.

    A source with the same ``shm_id`` may answer :class:`PeerSegmentCopy`.
    """

    pull: PullObject
    shm_id: str


@message
class PeerSegmentCopy:
    """Node -> a node of the same machine that pulled: ObjectCopy, with the
    value in the source's segment ``segment`` (the puller links it)."""

    object_id: str
    segment: str
    refs: tuple[RefInfo, ...] = ()


#: Arguments passed by value go into a segment from this size of their
#: out-of-band buffers (below, a heap copy and the socket cost less than a
#: segment's mapping at the worker).
ARGUMENT_SEGMENT_MIN = 1 << 20

#: Workers a process remembers as sharing its node's segments.
SHARING_KEPT = 4096


def link_node_segments() -> bool:
    """Whether nodes of one machine pass copies by segment (see the module doc)."""
    return os.environ.get("OWNERSHIP_LINK_NODE_SEGMENTS", "1") != "0"


@functools.cache
def machine_shm_id() -> str:
    """Who shares this process's POSIX shared memory: boot id and /dev/shm's inode.

    Empty when there is no shared-memory namespace to list (then nothing is
    shared). Two processes with the same id see the same segments.
    """
    try:
        st = os.stat(SHM_DIR)
    except OSError:
        return ""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:  # pragma: no cover - not Linux
        boot = "?"
    return f"{boot}:{st.st_dev}:{st.st_ino}"


def payload_from_segment(name: str, refs: tuple[RefInfo, ...] = (), *, populate: bool = False) -> Payload:
    """Map segment ``name``: a payload whose buffers are read-only views of it."""
    sv = open_segment(name, populate=populate)
    return Payload(data=bytes(sv.data), buffers=tuple(sv.buffers), refs=refs)  # type: ignore[arg-type]


#: Mappings a worker keeps for reuse (segments it read most recently).
MAPPINGS_KEPT = 8


def _as_serialized(payload: Payload) -> SerializedValue:
    return SerializedValue(payload.data, payload.buffers)


_keys = itertools.count(1)


def segment_key(object_id: str) -> str:
    """A fresh segment key for a copy of ``object_id``.

    Fresh per copy (a digest of the id, the writing process, a counter): a
    task retried on the same node writes a new segment, never over one that
    readers may still map.
    """
    digest = hashlib.sha256(object_id.encode()).hexdigest()[:24]
    return f"{digest}-{os.getpid()}-{next(_keys)}"


@attrs.define
class ObjectPlaneStatistics:
    segments_written: int = 0
    segments_mapped: int = 0
    bytes_mapped: int = 0
    fetches: int = 0
    fallbacks: int = 0  # values that went as bytes because shared memory failed
    mappings_reused: int = 0  # SegmentCopy answered from a mapping this worker kept
    arguments_by_segment: int = 0  # arguments sent to a worker of our node by segment name
    segments_linked: int = 0  # copies pulled from a node of this machine by linking its segment
    segments_offered: int = 0  # copies served to a node of this machine by segment name
    link_fallbacks: int = 0  # offered segments we could not link (freed meanwhile): pulled as bytes


class WorkerObjects:
    """The worker (or driver) side: rewrites its core's pulls and puts."""

    def __init__(
        self,
        address: str,
        node: str,
        send: Callable[[str, Any], None],
        owner_of: Callable[[str], str],
        deliver: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.address = address
        self.node = node
        self._send = send
        self._owner_of = owner_of
        #: hands the worker a message as if received (a pull answered here)
        self._deliver = deliver
        self.prefix: str | None = None  # the node's segment prefix, once we know we can map it
        self.stats = ObjectPlaneStatistics()
        #: the segments this process mapped, most recent last (kept short)
        self.mapped: list[str] = []
        #: values put here that are already in a segment: object id -> segment
        self._written: dict[str, str] = {}
        #: segment -> (stream, buffers) of its mapping, most recently used last.
        #: A segment's content never changes (a new copy gets a new name), so
        #: a task reading the same object again (an argument passed by
        #: reference to many tasks) reuses the mapping and its mapped pages.
        #: Only segments that still exist are kept, so a freed object's
        #: pages are not held here beyond the next mapping.
        self._maps: collections.OrderedDict[str, tuple[bytes, tuple[memoryview, ...]]] = collections.OrderedDict()
        #: object id -> the kept segment holding it, and the refs inside it
        self._by_object: dict[str, tuple[str, tuple[RefInfo, ...]]] = {}
        #: large arguments passed by value, copied into segments of our node
        self.arguments: ArgumentSegments | None = None
        #: workers that map our node's segments (SharesSegments), oldest first
        self.sharing: collections.OrderedDict[str, None] = collections.OrderedDict()

    def pack(self, value: Any, threshold: int, new_id: Callable[[], str]) -> tuple[Payload, str | None]:
        """``value`` as a payload, pickled once; ``(payload, object id)``.

        A value larger than ``threshold`` goes straight into a new segment of
        our node under a new object id (``new_id()``): its payload is backed
        by the segment's mapping, one copy of the buffers instead of two
        (pack's heap copy, then the segment), and the PutObject that
        follows for that id goes as SegmentStored, naming the segment. A
        smaller value is packed as :func:`~.values.pack` does (id None).
        """
        refs: list[RefInfo] = []
        try:
            data, buffers = dumps_oob(value, refs)
        except SerializationError:
            return pack(value), None  # raises the error pack() gives for it
        first: dict[str, RefInfo] = {}
        for info in refs:
            first.setdefault(info.object_id, info)
        unique = tuple(first.values())
        serialized = SerializedValue(data, buffers)
        if self.prefix is not None and serialized.nbytes > threshold:
            object_id = new_id()
            name = self.prefix + segment_key(object_id)
            try:
                write_segment(name, serialized)
                payload = payload_from_segment(name, unique)
            except (OSError, ValueError) as exc:  # /dev/shm full: the value goes by the heap
                unlink_segment(name)
                self.stats.fallbacks += 1
                logger.warning("%s: cannot write segment %s (%s): packing the value in memory", self.address, name, exc)
            else:
                self.stats.segments_written += 1
                self._written[object_id] = name
                return payload, object_id
        return Payload(data=data, buffers=snapshot(buffers), refs=unique), None

    def pack_argument(self, value: Any) -> Payload:
        """An argument passed by value, copied as :func:`~.values.pack` does;
        a large one into a segment of our node (:class:`~.shm.ArgumentSegments`),
        so that it can go to a worker of the node by name."""
        if self.arguments is None:
            return pack(value)
        refs: list[RefInfo] = []
        try:
            data, buffers = dumps_oob(value, refs)
        except SerializationError:
            return pack(value)  # raises the error pack() gives for it
        first: dict[str, RefInfo] = {}
        for info in refs:
            first.setdefault(info.object_id, info)
        unique = tuple(first.values())
        serialized = SerializedValue(data, buffers)
        if sum(b.nbytes for b in serialized.buffers) >= ARGUMENT_SEGMENT_MIN:
            written = self.arguments.write(serialized)
            if written is not None:
                return Payload(data=data, buffers=written[1].buffers, refs=unique)  # type: ignore[arg-type]
            self.stats.fallbacks += 1
        return Payload(data=data, buffers=snapshot(buffers), refs=unique)

    def _by_segment(self, dst: str, push: PushTask) -> SegmentArguments | None:
        """``push`` with its arguments that lie in our segments named, not carried."""
        arguments = self.arguments
        if arguments is None or dst not in self.sharing:
            return None
        names: list[str] = []
        args = []
        for arg in push.task.args:
            name = None
            if arg.value is not None and arg.value.buffers:
                owners = {arguments.owner_of(b) for b in arg.value.buffers}
                name = owners.pop() if len(owners) == 1 else None
            if name is None:
                names.append("")
                args.append(arg)
            else:
                names.append(name)
                args.append(attrs.evolve(arg, value=Payload(data=b"", refs=arg.value.refs)))  # type: ignore[union-attr]
        if not any(names):
            return None
        self.stats.arguments_by_segment += sum(1 for n in names if n)
        return SegmentArguments(push=attrs.evolve(push, task=attrs.evolve(push.task, args=tuple(args))), segments=tuple(names))

    def _from_segments(self, src: str, msg: SegmentArguments) -> PushTask | None:
        """The PushTask ``msg`` stands for, its arguments mapped (None: refused)."""
        args = msg.push.task.args
        if self.prefix is None or len(msg.segments) != len(args):
            logger.error("%s: segment arguments from %s that this worker cannot take: ignored", self.address, src)
            return None
        out = []
        for arg, name in zip(args, msg.segments):
            if not name:
                out.append(arg)
                continue
            if not name.startswith(self.prefix) or "/" in name or arg.value is None:
                logger.error("%s: argument segment %r from %s is not one of our node's: ignored", self.address, name, src)
                return None
            try:
                sv = open_segment(name, populate=True)
            except (OSError, ValueError) as exc:
                # Renamed for reuse: its task was over for its owner already
                # (a copy of a PushTask that lost its way).
                logger.error("%s: cannot map argument segment %r from %s: %s; task %r ignored", self.address, name, src, exc, msg.push.task.task_id)
                return None
            out.append(attrs.evolve(arg, value=Payload(data=bytes(sv.data), buffers=tuple(sv.buffers), refs=arg.value.refs)))  # type: ignore[arg-type]
        return attrs.evolve(msg.push, task=attrs.evolve(msg.push.task, args=tuple(out)))

    def outgoing(self, dst: str, msg: Any) -> tuple[str, Any] | None:
        """The message the core sends to ``dst``, as it travels (None: answered here)."""
        if isinstance(msg, PushTask):
            shared = self._by_segment(dst, msg)
            return (dst, msg) if shared is None else (dst, shared)
        if isinstance(msg, FreeObject):
            # We own it and free it: our kept mapping of its copy goes now, not
            # at our next mapping, so the node may reuse the segment (shm's
            # spares) as soon as no value of ours uses it.
            found = self._by_object.pop(msg.object_id, None)
            if found is not None:
                self._maps.pop(found[0], None)
            return dst, msg
        if isinstance(msg, PullObject) and msg.requester == self.address:
            self.stats.fetches += 1
            kept = self._kept_copy(msg.object_id)
            if kept is not None and self._deliver is not None:
                # We still map the node's segment of this object: the node
                # would answer with that very segment, so answer ourselves.
                self._deliver(dst, ObjectCopy(object_id=msg.object_id, value=kept))
                return None
            fetch = FetchObject(object_id=msg.object_id, owner=self._owner_of(msg.object_id), source=dst, requester=self.address)
            return self.node, fetch
        if isinstance(msg, GetObject) and msg.requester == self.address and self._deliver is not None:
            kept = self._kept_copy(msg.object_id)
            if kept is not None and not kept.refs:
                # Asking the owner where the value is, while we map a live
                # copy of it: the owner's answer would lead to that copy.
                # (A value holding refs still goes through the owner, which
                # registers us as a borrower of them.)
                self._deliver(dst, ObjectValue(object_id=msg.object_id, value=kept))
                return None
        if isinstance(msg, PutObject) and dst == self.node and (written := self._written.pop(msg.object_id, None)) is not None:
            stored = SegmentStored(object_id=msg.object_id, owner=msg.owner, segment=written, refs=msg.value.refs, reply=msg.reply)
            return dst, stored
        if isinstance(msg, PutObject) and dst == self.node and self.prefix is not None:
            name = self.prefix + segment_key(msg.object_id)
            try:
                info = write_segment(name, _as_serialized(msg.value))
            except OSError as exc:  # /dev/shm full, or gone: the node gets the bytes
                self.stats.fallbacks += 1
                logger.warning("%s: cannot write segment %s (%s): sending the value to the node", self.address, name, exc)
                return dst, msg
            self.stats.segments_written += 1
            stored = SegmentStored(object_id=msg.object_id, owner=msg.owner, segment=info.name, refs=msg.value.refs, reply=msg.reply)
            return dst, stored
        return dst, msg

    def incoming(self, src: str, msg: Any) -> tuple[str, Any] | None:
        """A received message as the core should see it (None: consumed here)."""
        if isinstance(msg, SharedMemoryInfo):
            if src == self.node and msg.shm_id and msg.shm_id == machine_shm_id():
                self.prefix = msg.prefix
                if self.arguments is None or self.arguments.prefix != msg.prefix:
                    self.arguments = ArgumentSegments(msg.prefix, limit=value_pool.limit)
                self._send(self.node, MapsSegments(worker=self.address, pid=os.getpid()))
            return None
        if isinstance(msg, SharesSegments):
            if src == self.node:
                self.sharing[msg.worker] = None
                self.sharing.move_to_end(msg.worker)
                while len(self.sharing) > SHARING_KEPT:
                    self.sharing.popitem(last=False)
            return None
        if isinstance(msg, SegmentArguments):
            push = self._from_segments(src, msg)
            return None if push is None else (src, push)
        if isinstance(msg, (SegmentCopy, ObjectFetched)) and src != self.node:
            logger.error("%s: %s from %s, not from our node: ignored", self.address, type(msg).__name__, src)
            return None
        if isinstance(msg, SegmentCopy):
            value = self._map(msg.segment, msg.refs)
            if value is not None:
                self._by_object[msg.object_id] = (msg.segment, msg.refs)
            return msg.source, ObjectCopy(object_id=msg.object_id, value=value)
        if isinstance(msg, ObjectFetched):
            return msg.source, ObjectCopy(object_id=msg.object_id, value=msg.value)
        return src, msg

    def _kept_copy(self, object_id: str) -> Payload | None:
        """The value of ``object_id`` from a kept mapping whose segment still exists."""
        found = self._by_object.get(object_id)
        if found is None:
            return None
        segment, refs = found
        kept = self._maps.get(segment)
        if kept is None or not os.path.exists(SHM_DIR / segment):
            del self._by_object[object_id]
            return None
        self._maps.move_to_end(segment)
        self.stats.mappings_reused += 1
        return Payload(data=kept[0], buffers=kept[1], refs=refs)  # type: ignore[arg-type]

    def _map(self, segment: str, refs: tuple[RefInfo, ...]) -> Payload | None:
        """The value in ``segment``, from a kept mapping or a new one (None: gone)."""
        kept = self._maps.get(segment)
        if kept is not None:
            self._maps.move_to_end(segment)
            self.stats.mappings_reused += 1
            return Payload(data=kept[0], buffers=kept[1], refs=refs)  # type: ignore[arg-type]
        try:
            value = payload_from_segment(segment, refs, populate=True)
        except (OSError, ValueError) as exc:
            # Freed under us (its owner died): to the core, a pull that found no copy.
            logger.info("%s: cannot map segment %s: %s", self.address, segment, exc)
            return None
        self.stats.segments_mapped += 1
        self.stats.bytes_mapped += value.size
        self.mapped = [*self.mapped[-15:], segment]
        for name in [n for n in self._maps if not os.path.exists(SHM_DIR / n)]:
            del self._maps[name]  # freed: let its pages go with the values still using them
        self._maps[segment] = (value.data, value.buffers)  # type: ignore[assignment]
        while len(self._maps) > MAPPINGS_KEPT:
            self._maps.popitem(last=False)
        if len(self._by_object) > 4 * MAPPINGS_KEPT:
            self._by_object = {oid: kept for oid, kept in self._by_object.items() if kept[0] in self._maps}
        return value

    def snapshot(self) -> dict[str, Any]:
        return {"prefix": self.prefix, **attrs.asdict(self.stats), "mapped": list(self.mapped)}


class NodeObjects:
    """The node side: keeps the store core's large copies in shared memory."""

    def __init__(self, store: SharedMemoryStore, address: str, send: Callable[[str, Any], None]) -> None:
        self.store = store
        self.address = address
        self._send = send
        self.segments: dict[str, str] = {}  # object id -> segment of our copy
        self.mappers: dict[str, int] = {}  # local workers that map our segments -> their pids
        self.stats = ObjectPlaneStatistics()
        #: whether we pull from and serve to nodes of this machine by segment
        self.link_nodes = link_node_segments() and bool(machine_shm_id())
        #: our segments that are links to another node's file: freed by
        #: unlinking our name only, never written again as spares
        self.linked: set[str] = set()
        #: (node, object id) pulls whose answer may name our segment
        self._offers: set[tuple[str, str]] = set()
        #: large segments of freed objects, written again once nobody maps them
        self.spares = SpareSegments(store.prefix)
        #: large frames received straight into segments (the transport asks
        #: it for their buffers): a copy that arrived so is stored in place
        self.frames = FrameSegments(store.prefix, self.spares)

    # -- received, before the core --------------------------------------------------
    def incoming(self, src: str, msg: Any) -> tuple[Any, str | None]:
        """``(message for the core or None, segment it brings)``."""
        if isinstance(msg, RegisterWorker):
            # Before the core answers: a worker knows where segments are by the
            # time it is registered (one connection keeps the order).
            self._send(src, SharedMemoryInfo(prefix=self.store.prefix, shm_id=machine_shm_id()))
            return msg, None
        if isinstance(msg, MapsSegments):
            if msg.worker == src:
                self.mappers[src] = msg.pid
            return None, None
        if isinstance(msg, SegmentStored):
            return self._segment_stored(src, msg)
        if isinstance(msg, SegmentPull):
            if self.link_nodes and msg.shm_id == machine_shm_id() and msg.pull.requester == src:
                self._offers.add((src, msg.pull.object_id))
            return msg.pull, None
        if isinstance(msg, PeerSegmentCopy):
            return self._link(src, msg)
        if isinstance(msg, PutObject):
            return self._store_bytes(msg, msg.value, lambda v: attrs.evolve(msg, value=v))
        if isinstance(msg, ObjectCopy) and msg.value is not None:
            return self._store_bytes(msg, msg.value, lambda v: attrs.evolve(msg, value=v))
        return msg, None

    def _segment_stored(self, src: str, msg: SegmentStored) -> tuple[Any, str | None]:
        if not msg.segment.startswith(self.store.prefix):
            logger.error("%s: %s names segment %r outside this node's prefix: ignored", self.address, src, msg.segment)
            return None, None
        try:
            value = payload_from_segment(msg.segment, msg.refs)
        except (OSError, ValueError) as exc:
            logger.error("%s: cannot map segment %s stored by %s: %s", self.address, msg.segment, src, exc)
            unlink_segment(msg.segment)
            return None, None
        put = PutObject(object_id=msg.object_id, owner=msg.owner, value=value, reply=msg.reply)
        return put, msg.segment

    def _link(self, src: str, msg: PeerSegmentCopy) -> tuple[Any, str | None]:
        """A node of this machine answered our pull with its segment: take it
        under a name of ours. If we cannot (freed meanwhile, or not a
        segment of this session), ask ``src`` again, for the bytes."""
        name = self.store.prefix + segment_key(msg.object_id)
        try:
            if SegmentInfo(msg.segment, 0).session != self.store.session:
                raise ValueError(f"{msg.segment!r} is not a segment of session {self.store.session}")
            serialized = link_segment(msg.segment, name)
        except (OSError, ValueError) as exc:
            self.stats.link_fallbacks += 1
            logger.info("%s: cannot link segment %r of %s (%s): pulling the bytes", self.address, msg.segment, src, exc)
            self._send(src, PullObject(object_id=msg.object_id, requester=self.address))
            return None, None
        self.linked.add(name)
        self.stats.segments_linked += 1
        value = Payload(data=bytes(serialized.data), buffers=tuple(serialized.buffers), refs=msg.refs)  # type: ignore[arg-type]
        return ObjectCopy(object_id=msg.object_id, value=value), name

    def pull(self, dst: str, msg: PullObject) -> Any:
        """Our store's pull from node ``dst``, as it travels: offering to take
        the copy by segment when nodes of this machine may."""
        if self.link_nodes and msg.requester == self.address:
            return SegmentPull(pull=msg, shm_id=machine_shm_id())
        return msg

    def _store_bytes(self, msg: Any, value: Payload, rebuild: Callable[[Payload], Any]) -> tuple[Any, str | None]:
        """A value that came as bytes: write it into a segment of ours and map it
        (or keep the segment it was received into, see FrameSegments)."""
        name = self.frames.adopt(value.data, value.buffers)
        if name is not None:
            self.stats.segments_written += 1
            return msg, name
        name = self.store.prefix + segment_key(msg.object_id)
        try:
            serialized = _as_serialized(value)
            if self.spares.write(name, serialized) is None:
                write_segment(name, serialized)
            mapped = payload_from_segment(name, value.refs)
        except (OSError, ValueError) as exc:  # /dev/shm full: keep it in our heap
            unlink_segment(name)
            self.stats.fallbacks += 1
            logger.warning("%s: cannot write segment %s (%s): the copy stays in memory", self.address, name, exc)
            return msg, None
        self.stats.segments_written += 1
        return rebuild(mapped), name

    # -- after the core -------------------------------------------------------------
    def settle(self, object_id: str, segment: str, kept: Payload | None, offered: Payload) -> None:
        """The core handled a copy we put in ``segment``: keep the segment only if
        the store kept that very copy (not a duplicate, not a dead owner's)."""
        if kept is offered:
            old = self.segments.get(object_id)
            if old is not None and old != segment:  # pragma: no cover - the store keeps the first copy
                self._unlink(old)
            self.segments[object_id] = segment
        elif not self.frames.retire(segment):
            self._unlink(segment)

    def _unlink(self, segment: str) -> None:
        self.linked.discard(segment)
        unlink_segment(segment)

    def grant_note(self, dst: str, msg: LeaseGranted) -> SharesSegments | None:
        """What to tell ``dst`` before this grant: that its worker maps our
        segments too, when both do (None: nothing)."""
        if msg.node == self.address and dst in self.mappers and msg.worker in self.mappers:
            return SharesSegments(worker=msg.worker)
        return None

    def outgoing(self, dst: str, msg: Any, kept: Payload | None) -> Any:
        """A message of the core as it travels: a copy in a segment goes by name."""
        if isinstance(msg, ObjectFetched) and msg.value is not None and dst in self.mappers and msg.value is kept:
            segment = self.segments.get(msg.object_id)
            if segment is not None:
                return SegmentCopy(object_id=msg.object_id, source=msg.source, segment=segment, refs=msg.value.refs)
        if isinstance(msg, ObjectCopy) and self._offers:
            offered = (dst, msg.object_id) in self._offers
            self._offers.discard((dst, msg.object_id))
            segment = self.segments.get(msg.object_id)
            if offered and msg.value is not None and msg.value is kept and segment is not None:
                self.stats.segments_offered += 1
                return PeerSegmentCopy(object_id=msg.object_id, segment=segment, refs=msg.value.refs)
        return msg

    def freed(self, object_id: str) -> None:
        segment = self.segments.pop(object_id, None)
        if segment is None:
            return
        if segment in self.linked:
            self._unlink(segment)  # the file is another node's copy too: never a spare
        elif not self.frames.retire(segment):
            self.spares.retire(segment)  # kept for a later copy, or unlinked

    def worker_lost(self, address: str) -> list[str]:
        """A local worker is gone: remove the segments it wrote that we never
        kept (it died between writing one and telling us); returns their names."""
        pid = self.mappers.pop(address, None)
        if pid is None:
            return []
        kept = set(self.segments.values())
        removed = []
        for seg in self.store.list():
            if seg.key.split("-")[1:2] == [str(pid)] and seg.name not in kept and unlink_segment(seg.name):
                removed.append(seg.name)
        if removed:
            logger.info("%s: removed %d segment(s) left by worker %s", self.address, len(removed), address)
        return removed

    def snapshot(self) -> dict[str, Any]:
        usage = self.store.usage()
        return {
            "prefix": self.store.prefix,
            "segments": usage.segments,
            "bytes": usage.bytes,
            "objects": dict(sorted(self.segments.items())),
            "segments_written": self.stats.segments_written,
            "linked": {
                "segments": len(self.linked),
                "pulled": self.stats.segments_linked,
                "served": self.stats.segments_offered,
                "fallbacks": self.stats.link_fallbacks,
            },
            "spares": {"kept_bytes": self.spares.kept_bytes, "reused": self.spares.reused},
            "frames": {"received": self.frames.received, "adopted": self.frames.adopted, "reused": self.frames.reused},
            "fallbacks": self.stats.fallbacks,
        }
