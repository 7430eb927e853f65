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

``envelope`` is the msgpack map ``{"type": <message class name>, "fields":
{name: value}}``; non-plain values are msgpack ext types that name the
buffers they use by index. Decoding checks every length and index and raises
:class:`FrameError` (or :class:`UnknownMessageType`) on anything malformed.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import msgpack

from ownership.core import messages as _messages
from ownership.core.messages import UnknownMessageType, message_fields, message_from_fields, message_type_of

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

    def default(self, obj: Any) -> msgpack.ExtType:
        cls = type(obj)
        if cls is tuple:
            return msgpack.ExtType(_EXT_TUPLE, self.pack(list(obj)))
        if cls is SerializedValue:
            start = len(self.buffers)
            self.buffers.append(as_view(obj.data))
            self.buffers.extend(obj.buffers)
            return msgpack.ExtType(_EXT_VALUE, _RANGE.pack(start, 1 + len(obj.buffers)))
        name = _registered_name(cls)
        if name is not None:
            fields = message_fields(obj)
            if name == "Payload" and "data" in fields and "buffers" in fields:
                start = len(self.buffers)
                self.buffers.append(as_view(fields.pop("data")))
                extra = [as_view(b) for b in fields.pop("buffers")]
                self.buffers.extend(extra)
                return msgpack.ExtType(_EXT_PAYLOAD, self.pack([start, 1 + len(extra), fields]))
            return msgpack.ExtType(_EXT_RECORD, self.pack([name, fields]))
        return self._pickle(obj)


def _record_types() -> dict[str, type]:
    return getattr(_messages, "RECORD_TYPES", {})


def _registered_name(cls: type) -> str | None:
    """The registry name of a @message or @record class, None for anything else."""
    name = cls.__name__
    if _messages.MESSAGE_TYPES.get(name) is cls or _record_types().get(name) is cls:
        return name
    return None


def _build_record(name: Any, fields: Any) -> Any:
    if not isinstance(name, str) or not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
        raise FrameError("malformed record ext")
    cls = _messages.MESSAGE_TYPES.get(name) or _record_types().get(name)
    if cls is None:
        raise UnknownMessageType(f"unknown message or record type {name!r}")
    try:
        return cls(**fields)
    except Exception as exc:
        raise UnknownMessageType(f"bad fields for {name!r}: {exc}") from None


def encode_message(msg: Any) -> EncodedFrame:
    """Encode a ``@message`` instance as a whole frame (header included).

    Raises SerializationError for a field that cannot be pickled; the caller
    learns at once, nothing is half-sent.
    """
    encoder = _Encoder()
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
            start, count, stream = _checked_range(data, len(buffers))
            try:
                return pickle.loads(stream, buffers=buffers[start : start + count])
            except Exception as exc:
                raise FrameError(f"cannot unpickle a field: {type(exc).__name__}: {exc}") from None
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

    try:
        decoded = _Decoder(buffers).unpack(envelope)
    except (FrameError, UnknownMessageType):
        raise
    except (ValueError, TypeError, RecursionError, msgpack.ExtraData) as exc:
        raise FrameError(f"undecodable envelope: {type(exc).__name__}: {exc}") from None
    if not isinstance(decoded, dict) or set(decoded) != {"type", "fields"}:
        raise FrameError("envelope is not a {type, fields} map")
    type_name, fields = decoded["type"], decoded["fields"]
    if not isinstance(type_name, str):
        raise FrameError("envelope type is not a string")
    if not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
        raise FrameError(f"fields of {type_name!r} are not a map of names")
    try:
        return message_from_fields(type_name, fields)
    except UnknownMessageType:
        raise
    except Exception as exc:  # a validator of the message class refused the values
        raise UnknownMessageType(f"bad fields for message type {type_name!r}: {exc}") from None
