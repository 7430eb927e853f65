"""Wire encoding of messages: msgpack envelopes, pickle-5 values out of band.

The contract with the core (how a message field travels):

* **Plain data** goes as msgpack and comes back equal and of the same type:
  ``None``, ``bool``, ``int`` (64-bit), ``float``, ``str``, ``bytes``, ``list``,
  ``dict`` and ``tuple`` of plain data. (``bytearray`` and ``memoryview``
  arrive as ``bytes``; ints beyond 64 bits are pickled.)
* **Registered classes** -- ``@message`` and ``@record`` classes of
  :mod:`ownership.core.messages` -- go as msgpack too, field by field, named
  by their registry name, at any depth (a ``TaskSpec`` in a ``PushTask``, a
  ``TaskReply`` in a ``PutObject``). Nothing of the protocol's own metadata is
  pickled, and a frame naming an unregistered type is refused with
  :class:`UnknownMessageType`.
* **A user value is a ``Payload`` record** (``data``: the protocol-5 pickle
  stream; ``buffers``: its out-of-band buffers; other fields as usual). The
  stream and every buffer go out of band, uncopied; on arrival ``data`` is
  ``bytes`` and each of ``buffers`` is a read-only ``memoryview`` into the
  received frame (bytes-like: ``len``, ``==`` and ``pickle.loads(data,
  buffers=...)`` work; nothing is copied). The transport never unpickles a
  payload. :class:`SerializedValue` (``serialize(obj)``) is the same thing
  for code outside the core and travels the same way.
* **Any other Python object** in a field (an exception, a function, a set)
  is pickled with protocol 5 by cloudpickle, its buffers out of band, and
  arrives as an equal object. The core should not need this; it is there so
  that nothing is silently unencodable.

Values are pickled in one place, :mod:`.values` (``pack`` for the cores'
payloads, ``serialize`` for views); this module only encodes and decodes
frames, and re-exports the view helpers it is used with.

Every out-of-band buffer (from a numpy array, a ``PickleBuffer``, or a
``SerializedValue``, also when nested inside a pickled record) goes after
the envelope in the frame, 64-byte aligned, and is never copied into the
pickle stream.

Frame body layout (after the u64 length of :mod:`.framing`)::

    nbuf:u32  buflen:u64 * nbuf  envlen:u32  envelope[envlen]  (pad to 64, buffer)*

``envelope`` is the message as a *tagged array*: ``[TAG(name), value of
each field, in the class's field order]``, where ``TAG`` is an ext of type 6
holding the registry name; a record inside it is a tagged array too, a tuple
is ``[TAG(""), items...]``, and a Payload is ``[TAG("Payload"), RANGE, other
fields...]`` with its stream and buffers out of band (``RANGE`` is an ext of
type 7 naming them). One msgpack packer walks the whole message and one
unpacker rebuilds it (``list_hook`` turns tagged arrays back into objects);
the envelope is packed and unpacked in a single C pass, with one Python call
per record, not a nested packer per record, which made the envelope the
largest cost of a small task's round trip. Decoding also accepts the older
map envelope ``{"type": <name>, "fields": {name: value}}`` with nested ext
records (type 4) and tuples (type 3), which hand-written frames use. Non-plain
values are msgpack ext types that name the buffers they use by index.
Decoding checks every length and index and raises :class:`FrameError` (or
:class:`UnknownMessageType`) on anything malformed, and checks every field
of every message and record against its class's annotations as it builds
them (:func:`ownership.core.messages.validate`), raising
:class:`InvalidMessage`: no core sees a field that does not fit its class.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import attrs
import msgpack

from ownership.core import messages as _messages
from ownership.core.messages import (
    InvalidMessage,
    UnknownMessageType,
    check_source,
    message_fields,
    message_from_fields,
    message_type_of,
    peer_text,
    validate,
)

from .framing import FrameError, frame_header
from .values import (
    ALIGNMENT,
    SerializationError,
    SerializedValue,
    as_view,
    deserialize,
    dumps_oob,
    serialize,
    serialized_from_buffer,
    serialized_layout,
)

__all__ = [
    "EncodedFrame",
    "FrameError",
    "InvalidMessage",
    "SerializationError",
    "SerializedValue",
    "UnknownMessageType",
    "decode_message",
    "deserialize",
    "encode_message",
    "serialize",
    "serialized_from_buffer",
    "serialized_layout",
]

_EXT_PICKLE = 1  # data: start:u32 count:u32 pickle-stream; OOB buffers[start:start+count]
_EXT_VALUE = 2  # data: start:u32 count:u32; buffers[start] is the stream, the rest its OOB buffers
_EXT_TUPLE = 3  # data: a msgpack array of the items
_EXT_RECORD = 4  # data: msgpack [type name, {field: value}] of a registered @message/@record
_EXT_PAYLOAD = 5  # data: msgpack [start, count, {other fields}]; buffers[start] is .data, the rest .buffers
_EXT_TAG = 6  # data: a registry name (utf-8); b"" tags a tuple. Heads a tagged array.
_EXT_RANGE = 7  # data: start:u32 count:u32; a Payload's stream (buffers[start]) and buffers
_EXT_BARE_PAYLOAD = 8  # data: start:u32 count:u32; a whole Payload without refs (most values)
_EXT_EMPTY_TUPLE = 9  # data: empty; ()

_RANGE = struct.Struct("!II")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


def _pad(n: int) -> int:
    return -n % ALIGNMENT



# -- messages ----------------------------------------------------------------


class EncodedFrame:
    """One message as frame chunks, ready for the writer to coalesce."""

    __slots__ = ("chunks", "nbytes")

    def __init__(self, chunks: list[bytes | memoryview], nbytes: int) -> None:
        self.chunks = chunks
        self.nbytes = nbytes


class _Encoder:
    """Packs one message, collecting the out-of-band buffers in order.

    Creates no reference cycle (the packer is a temporary, not an attribute):
    CPython's garbage collector can crash when it clears a memoryview that a
    PickleBuffer still exports, so buffers must be freed by refcount alone.
    """

    def __init__(self) -> None:
        self.buffers: list[memoryview] = []

    def pack(self, obj: Any) -> bytes:
        return msgpack.Packer(strict_types=True, default=self.default).pack(obj)

    def _pickle(self, obj: Any) -> msgpack.ExtType:
        start = len(self.buffers)
        try:
            data, found = dumps_oob(obj)
        except SerializationError as exc:
            raise SerializationError(f"cannot pickle {type(obj).__qualname__}: {exc.__cause__}") from None
        self.buffers.extend(as_view(b) for b in found)
        return msgpack.ExtType(_EXT_PICKLE, _RANGE.pack(start, len(found)) + data)

    def default(self, obj: Any) -> Any:
        # Returns what the same packer packs next: a tagged array of the
        # object's fields (which come back here if they are not plain).
        cls = type(obj)
        shape = _shapes.get(cls)
        if shape is None:
            if cls is tuple:
                return [_TUPLE_TAG, *obj] if obj else _EMPTY_TUPLE
            if cls is SerializedValue:
                return msgpack.ExtType(_EXT_VALUE, self._out_of_band(obj.data, obj.buffers))
            shape = _shape_of(cls)
            if shape is None:
                return self._pickle(obj)
        tag, names, payload = shape
        if payload:
            span = self._out_of_band(obj.data, obj.buffers)
            if not obj.refs and names == ("refs",):
                return msgpack.ExtType(_EXT_BARE_PAYLOAD, span)
            return [tag, msgpack.ExtType(_EXT_RANGE, span), *[getattr(obj, n) for n in names]]
        return [tag, *[getattr(obj, n) for n in names]]

    def _out_of_band(self, data: Any, buffers: Any) -> bytes:
        start = len(self.buffers)
        self.buffers.append(as_view(data))
        self.buffers.extend(as_view(b) for b in buffers)
        return _RANGE.pack(start, 1 + len(buffers))


_TUPLE_TAG = msgpack.ExtType(_EXT_TAG, b"")
_EMPTY_TUPLE = msgpack.ExtType(_EXT_EMPTY_TUPLE, b"")
#: registered class -> (its tag, the fields sent after the tag, whether it is
#: a Payload: stream and buffers go as one RANGE before the other fields)
_shapes: dict[type, tuple[msgpack.ExtType, tuple[str, ...], bool]] = {}


def _shape_of(cls: type) -> tuple[msgpack.ExtType, tuple[str, ...], bool] | None:
    name = _registered_name(cls)
    if name is None:
        return None
    names = tuple(a.name for a in attrs.fields(cls))
    payload = name == "Payload" and names[:2] == ("data", "buffers")
    shape = (msgpack.ExtType(_EXT_TAG, name.encode()), names[2:] if payload else names, payload)
    _shapes[cls] = shape
    return shape


def _record_types() -> dict[str, type]:
    return getattr(_messages, "RECORD_TYPES", {})


def _registered_name(cls: type) -> str | None:
    """The registry name of a @message or @record class, None for anything else."""
    name = cls.__name__
    if _messages.MESSAGE_TYPES.get(name) is cls or _record_types().get(name) is cls:
        return name
    return None


class _Tag:
    """A decoded TAG: the class it names and a builder for the array it heads."""

    __slots__ = ("name", "cls", "build")

    def __init__(self, name: str, cls: type | None, build: Any) -> None:
        self.name = name
        self.cls = cls  # None: a tuple
        self.build = build  # items (the tag first) -> the object


class _Range:
    """A Payload's stream and buffers, as the decoded RANGE ext names them."""

    __slots__ = ("data", "buffers")

    def __init__(self, data: bytes, buffers: tuple[memoryview, ...]) -> None:
        self.data = data
        self.buffers = buffers


def _tuple_of(items: list) -> tuple:
    return tuple(items[1:])


def _builder(name: str, cls: type, names: tuple[str, ...], payload: bool) -> Any:
    """A function building ``cls`` from a tagged array, with keyword arguments
    read by position (attrs classes here are keyword-only), each field
    checked against its annotation first (:func:`ownership.core.messages.check_source`):
    generated once per class, as attrs generates its own methods, so a
    record costs one call. Records inside it were checked when they were built.
    """
    first = 2 if payload else 1
    local = {n: f"_f{i}" for i, n in enumerate(names)}
    checks, namespace = check_source(cls, local)
    kwargs = [f"{n}={local[n]}" for n in names]
    if payload:
        # The stream and buffers come from the frame's own buffer table.
        kwargs[:0] = ["data=items[1].data", "buffers=items[1].buffers"]
        check = "len(items) != N or type(items[1]) is not Range"
    else:
        check = "len(items) != N"
    unpack = [f"    {local[n]} = items[{first + i}]" for i, n in enumerate(names)]
    source = (
        "def build(items):\n"
        f"    if {check}:\n"
        "        raise UnknownMessageType(f'bad fields for {NAME!r}: {len(items) - 1} values')\n"
        + "".join(line + "\n" for line in unpack + checks)
        + "    try:\n"
        f"        return cls({', '.join(kwargs)})\n"
        "    except Exception as exc:\n"
        "        raise UnknownMessageType(f'bad fields for {NAME!r}: {exc}') from None\n"
    )
    namespace.update(cls=cls, N=first + len(names), NAME=name, Range=_Range, UnknownMessageType=UnknownMessageType)
    exec(source, namespace)
    return namespace["build"]


_TUPLE = _Tag("", None, _tuple_of)
#: tag bytes -> decoded tag, valid while the registries are the same objects
_tags: dict[bytes, _Tag] = {}
_tags_of: tuple[int, int] = (0, 0)


def _registry_class(name: str) -> type | None:
    return _messages.MESSAGE_TYPES.get(name) or _record_types().get(name)


def _tag_of(data: bytes) -> _Tag:
    global _tags_of
    tag = _tags.get(data)
    if tag is not None:
        return tag
    if not data:
        return _TUPLE
    try:
        name = data.decode()
    except UnicodeDecodeError:
        raise FrameError("malformed tag ext") from None
    cls = _registry_class(name)
    if cls is None or not attrs.has(cls):
        raise UnknownMessageType(f"unknown message or record type {peer_text(name)}")
    names = tuple(a.name for a in attrs.fields(cls))
    payload = name == "Payload" and names[:2] == ("data", "buffers")
    tag = _tags[data] = _Tag(name, cls, _builder(name, cls, names[2:] if payload else names, payload))
    return tag


def _check_registries() -> None:
    """Forget decoded tags and encoded shapes when a registry was replaced (tests do)."""
    global _tags_of
    current = (id(_messages.MESSAGE_TYPES), id(_record_types()))
    if current != _tags_of:
        _tags.clear()
        _shapes.clear()
        _tags_of = current


class _ArrayDecoder:
    """Unpacks a tagged-array envelope against its frame's buffers (no cycles, see _Encoder)."""

    def __init__(self, buffers: list[memoryview]) -> None:
        self.buffers = buffers

    def unpack(self, data: bytes | memoryview) -> Any:
        return msgpack.unpackb(
            data, ext_hook=self.ext_hook, list_hook=_build_tagged, raw=False, strict_map_key=False, use_list=True
        )

    def ext_hook(self, code: int, data: bytes) -> Any:
        if code == _EXT_TAG:
            return _tags.get(data) or _tag_of(data)
        if code == _EXT_EMPTY_TUPLE:
            if data:
                raise FrameError("malformed empty-tuple ext")
            return ()
        buffers = self.buffers
        if code in _RANGE_EXTS:
            start, count, rest = _checked_range(data, len(buffers))
            if count < 1 or rest:
                raise FrameError("malformed buffer range ext")
            if code == _EXT_VALUE:
                return SerializedValue(buffers[start], buffers[start + 1 : start + count])
            # The stream is small and copied (it is handed to pickle.loads
            # as bytes); the out-of-band buffers stay views into the frame.
            span = _Range(bytes(buffers[start]), tuple(buffers[start + 1 : start + count]))
            if code == _EXT_RANGE:
                return span
            payload = (_tags.get(b"Payload") or _tag_of(b"Payload")).build
            return payload([None, span, ()])
        if code == _EXT_PICKLE:
            return _unpickle_field(data, buffers)
        raise FrameError(f"unknown ext type {code}")


_RANGE_EXTS = frozenset({_EXT_VALUE, _EXT_RANGE, _EXT_BARE_PAYLOAD})


def _build_tagged(items: list) -> Any:
    if items and type(items[0]) is _Tag:
        return items[0].build(items)
    return items


def _build_record(name: Any, fields: Any) -> Any:
    if not isinstance(name, str) or not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
        raise FrameError("malformed record ext")
    cls = _messages.MESSAGE_TYPES.get(name) or _record_types().get(name)
    if cls is None:
        raise UnknownMessageType(f"unknown message or record type {peer_text(name)}")
    try:
        obj = cls(**fields)
    except Exception as exc:
        raise UnknownMessageType(f"bad fields for {peer_text(name)}: {peer_text(str(exc))}") from None
    validate(obj, deep=False)  # its records were checked as they were built
    return obj


def encode_message(msg: Any) -> EncodedFrame:
    """Encode a ``@message`` instance as a whole frame (header included).

    Raises SerializationError for a field that cannot be pickled; the caller
    learns at once, nothing is half-sent.
    """
    _check_registries()
    encoder = _Encoder()
    if _messages.MESSAGE_TYPES.get(type(msg).__name__) is type(msg):
        envelope = encoder.pack(msg)
    else:  # not a registered message: the receiver refuses it by name
        envelope = encoder.pack({"type": message_type_of(msg), "fields": message_fields(msg)})
    buffers = encoder.buffers
    head = bytearray(_U32.pack(len(buffers)))
    for b in buffers:
        head += _U64.pack(b.nbytes)
    head += _U32.pack(len(envelope))
    head += envelope
    chunks: list[bytes | memoryview] = [b""]
    pos = len(head)
    for b in buffers:
        pad = _pad(pos)
        if pad:
            chunks.append(bytes(pad))
            pos += pad
        chunks.append(b)
        pos += b.nbytes
    header = frame_header(pos)
    chunks[0] = header + head
    return EncodedFrame(chunks, len(header) + pos)


def _checked_range(data: bytes, nbuffers: int) -> tuple[int, int, bytes]:
    if len(data) < _RANGE.size:
        raise FrameError("ext value is shorter than its buffer range")
    start, count = _RANGE.unpack_from(data)
    if start + count > nbuffers:
        raise FrameError(f"ext value names buffers {start}..{start + count - 1} of {nbuffers}")
    return start, count, data[_RANGE.size :]


def _unpickle_field(data: bytes, buffers: list[memoryview]) -> Any:
    """A field the encoder pickled (no msgpack form), with its out-of-band buffers."""
    start, count, stream = _checked_range(data, len(buffers))
    try:
        return pickle.loads(stream, buffers=buffers[start : start + count])
    except Exception as exc:
        raise FrameError(f"cannot unpickle a field: {type(exc).__name__}: {exc}") from None


class _Decoder:
    """Unpacks one envelope against its frame's buffers (no reference cycles, see _Encoder)."""

    def __init__(self, buffers: list[memoryview]) -> None:
        self.buffers = buffers

    def unpack(self, data: bytes | memoryview) -> Any:
        return msgpack.unpackb(data, ext_hook=self.ext_hook, raw=False, strict_map_key=False, use_list=True)

    def ext_hook(self, code: int, data: bytes) -> Any:
        buffers = self.buffers
        if code == _EXT_TUPLE:
            items = self.unpack(data)
            if not isinstance(items, list):
                raise FrameError("malformed tuple ext")
            return tuple(items)
        if code == _EXT_VALUE:
            start, count, rest = _checked_range(data, len(buffers))
            if count < 1 or rest:
                raise FrameError("malformed serialized-value ext")
            return SerializedValue(buffers[start], buffers[start + 1 : start + count])
        if code == _EXT_RECORD:
            item = self.unpack(data)
            if not isinstance(item, list) or len(item) != 2:
                raise FrameError("malformed record ext")
            return _build_record(*item)
        if code == _EXT_PAYLOAD:
            item = self.unpack(data)
            if (
                not isinstance(item, list)
                or len(item) != 3
                or not all(type(i) is int for i in item[:2])
                or not isinstance(item[2], dict)
            ):
                raise FrameError("malformed payload ext")
            start, count, fields = item
            if start < 0 or count < 1 or start + count > len(buffers):
                raise FrameError(f"payload names buffers {start}..{start + count - 1} of {len(buffers)}")
            # The stream is small and copied (it is handed to pickle.loads as
            # bytes); the out-of-band buffers stay views into the frame.
            fields = {**fields, "data": bytes(buffers[start]), "buffers": tuple(buffers[start + 1 : start + count])}
            return _build_record("Payload", fields)
        if code == _EXT_PICKLE:
            return _unpickle_field(data, buffers)
        raise FrameError(f"unknown ext type {code}")


def decode_message(body: bytearray | memoryview) -> Any:
    """Decode a frame body (without its length header) back into a message.

    Raises FrameError for anything malformed and UnknownMessageType for a
    well-formed envelope naming a type (or fields) this process does not know.
    Decoded buffers are read-only views into ``body``.
    """
    view = memoryview(body).toreadonly()
    size = len(view)
    try:
        (nbuf,) = _U32.unpack_from(view, 0)
        if 4 + 8 * nbuf + 4 > size:
            raise FrameError(f"frame announces {nbuf} buffers, more than fit in {size} bytes")
        lengths = struct.unpack_from(f"!{nbuf}Q", view, 4)
        (envlen,) = _U32.unpack_from(view, 4 + 8 * nbuf)
    except struct.error as exc:
        raise FrameError(f"frame header is truncated: {exc}") from None
    pos = 4 + 8 * nbuf + 4
    if pos + envlen > size:
        raise FrameError(f"envelope of {envlen} bytes overruns the {size}-byte frame")
    envelope = view[pos : pos + envlen]
    pos += envlen
    buffers: list[memoryview] = []
    for length in lengths:
        pos += _pad(pos)
        if pos + length > size:
            raise FrameError(f"buffer of {length} bytes at offset {pos} overruns the {size}-byte frame")
        buffers.append(view[pos : pos + length])
        pos += length
    if pos != size:
        raise FrameError(f"frame has {size - pos} trailing bytes after its last buffer")

    tagged = envlen > 0 and (0x90 <= envelope[0] <= 0x9F or envelope[0] in (0xDC, 0xDD))
    if tagged:
        _check_registries()
    try:
        decoded = (_ArrayDecoder if tagged else _Decoder)(buffers).unpack(envelope)
    except (FrameError, UnknownMessageType):
        raise
    except (ValueError, TypeError, RecursionError, msgpack.ExtraData) as exc:
        raise FrameError(f"undecodable envelope: {type(exc).__name__}: {exc}") from None
    if tagged:
        if _messages.MESSAGE_TYPES.get(type(decoded).__name__) is not type(decoded):
            raise FrameError("envelope is not a tagged message array")
        return decoded
    if not isinstance(decoded, dict) or set(decoded) != {"type", "fields"}:
        raise FrameError("envelope is not a {type, fields} map")
    type_name, fields = decoded["type"], decoded["fields"]
    if not isinstance(type_name, str):
        raise FrameError("envelope type is not a string")
    if not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
        raise FrameError(f"fields of {peer_text(type_name)} are not a map of names")
    try:
        return message_from_fields(type_name, fields)
    except UnknownMessageType:
        raise
    except Exception as exc:  # a validator of the message class refused the values
        raise UnknownMessageType(f"bad fields for message type {peer_text(type_name)}: {peer_text(str(exc))}") from None
