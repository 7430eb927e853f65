"""The wire codec: what survives a round trip, what goes out of band, what is refused."""

from __future__ import annotations

import gc
import pickle
import struct

import attrs
import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ownership.runtime.framing import FRAME_HEADER, FrameError
from ownership.runtime.serialization import (
    SerializationError,
    SerializedValue,
    UnknownMessageType,
    decode_message,
    encode_message,
    serialize,
    serialized_from_buffer,
    serialized_layout,
)


@attrs.frozen(kw_only=True)
class SerTestCarrier:
    value: object
    other: object = None


@attrs.frozen
class SerTestRecord:
    name: str
    args: tuple


class SerTestError(Exception):
    pass


def frame_bytes(msg: object) -> bytes:
    return b"".join(bytes(c) for c in encode_message(msg).chunks)


def round_trip(msg: object) -> object:
    raw = frame_bytes(msg)
    (length,) = FRAME_HEADER.unpack_from(raw)
    assert length == len(raw) - FRAME_HEADER.size
    return decode_message(bytearray(raw[FRAME_HEADER.size :]))


PLAIN = [
    None,
    True,
    0,
    -(2**63),
    2**64 - 1,
    2**200,
    1.5,
    "ünïcode",
    b"\x00bytes",
    [1, [2, [3]]],
    (1, (2, "x"), []),
    {"a": [1, 2], "b": {"c": None}},
    {1: "int key", (1, 2): "tuple key"},
    [(), [()]],
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_field_round_trip_keeps_value_and_type(value):
    out = round_trip(SerTestCarrier(value=value)).value
    assert out == value
    assert repr(out) == repr(value)  # tuple stays tuple, list stays list


def test_python_objects_are_pickled_transparently():
    exc = SerTestError("boom")
    out = round_trip(SerTestCarrier(value=SerTestRecord(name="f", args=(1, "x")), other=[exc, {1, 2}, frozenset("ab")]))
    assert out.value == SerTestRecord(name="f", args=(1, "x"))
    assert isinstance(out.other[0], SerTestError) and out.other[0].args == ("boom",)
    assert out.other[1:] == [{1, 2}, frozenset("ab")]


def test_functions_travel_by_value_with_cloudpickle():
    k = 7
    out = round_trip(SerTestCarrier(value=lambda x: x * k))
    assert out.value(6) == 42


def test_numpy_array_goes_out_of_band_without_copy():
    arr = np.arange(1 << 17, dtype=np.float64)  # 1 MiB
    frame = encode_message(SerTestCarrier(value=arr))
    big = [c for c in frame.chunks if len(c) >= arr.nbytes]
    assert len(big) == 1 and np.shares_memory(np.frombuffer(big[0], np.uint8), arr)
    assert sum(len(c) for c in frame.chunks if c is not big[0]) < 4096  # the stream holds no data

    raw = b"".join(bytes(c) for c in frame.chunks)
    body = bytearray(raw[FRAME_HEADER.size :])
    out = decode_message(body).value
    assert np.array_equal(out, arr)
    assert np.shares_memory(out, np.frombuffer(body, np.uint8))
    assert not out.flags.writeable  # values are immutable, as from the object store
    assert out.ctypes.data % 16 == 0


def test_serialized_value_stays_serialized_with_buffers_out_of_band():
    arr = np.ones(1 << 16)
    sv = serialize({"arr": arr, "tag": "t"})
    nested = SerTestRecord(name="task", args=(sv,))
    frame = encode_message(SerTestCarrier(value=sv, other=nested))
    # Both copies of the array's buffer (the field and the one nested in a
    # pickled record) are out of band.
    assert sum(1 for c in frame.chunks if len(c) == arr.nbytes) == 2
    out = round_trip(SerTestCarrier(value=sv, other=nested))
    assert isinstance(out.value, SerializedValue) and out.value == sv
    assert isinstance(out.other.args[0], SerializedValue)
    got = out.other.args[0].deserialize()
    assert got["tag"] == "t" and np.array_equal(got["arr"], arr)


def test_codec_leaves_no_cyclic_garbage():
    # CPython's collector can crash clearing a memoryview that a PickleBuffer
    # still exports, so the codec must free its buffers by refcount alone.
    sv = serialize({"arr": np.ones(1 << 12)})
    msg = SerTestCarrier(value=sv, other=[SerTestRecord(name="t", args=(sv, (1, 2)))])
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            out = round_trip(msg)
            assert out.other[0].args[0] == sv
            del out
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_serialized_layout_round_trips_and_aligns():
    sv = serialize([np.arange(10, dtype=np.int32), np.zeros(3)])
    size, writes = serialized_layout(sv)
    buf = bytearray(size)
    for off, chunk in writes:
        buf[off : off + len(memoryview(chunk).cast("B"))] = memoryview(chunk).cast("B")
    back = serialized_from_buffer(memoryview(buf))
    assert back == sv
    base = np.frombuffer(buf, np.uint8).ctypes.data
    assert [(np.frombuffer(b, np.uint8).ctypes.data - base) % 64 for b in back.buffers] == [0, 0]
    assert all(np.shares_memory(np.frombuffer(b, np.uint8), np.frombuffer(buf, np.uint8)) for b in back.buffers)


def test_unpicklable_field_raises_serialization_error():
    import threading

    with pytest.raises(SerializationError, match="lock"):
        encode_message(SerTestCarrier(value=threading.Lock()))


def _body(envelope: object, buffers: list[bytes] = ()) -> bytearray:
    env = msgpack.packb(envelope)
    head = struct.pack("!I", len(buffers)) + b"".join(struct.pack("!Q", len(b)) for b in buffers)
    head += struct.pack("!I", len(env)) + env
    for b in buffers:
        head += bytes(-len(head) % 64) + b
    return bytearray(head)


def test_unknown_message_type_is_refused():
    with pytest.raises(UnknownMessageType, match="NoSuchMessage"):
        decode_message(_body({"type": "NoSuchMessage", "fields": {}}))


def test_unknown_field_is_refused():
    with pytest.raises(UnknownMessageType, match="SerTestCarrier"):
        decode_message(_body({"type": "SerTestCarrier", "fields": {"value": 1, "bogus": 2}}))


@pytest.mark.parametrize(
    "body, match",
    [
        (bytearray(b""), "truncated"),
        (bytearray(b"\x00\x00"), "truncated"),
        (bytearray(struct.pack("!I", 1 << 30)), "buffers"),
        (bytearray(struct.pack("!II", 0, 100) + b"\x80"), "overruns"),
        (_body({"type": "SerTestCarrier", "fields": {"value": 1}}) + b"x", "trailing"),
        (_body([1, 2]), "not a"),
        (_body({"type": 3, "fields": {}}), "type is not a string"),
        (_body({"type": "SerTestCarrier", "fields": {1: 2}}), "not a map of names"),
        (_body({"type": "SerTestCarrier", "fields": {"value": msgpack.ExtType(99, b"")}}), "unknown ext"),
        (_body({"type": "SerTestCarrier", "fields": {"value": msgpack.ExtType(1, struct.pack("!II", 0, 3))}}), "names buffers"),
        (_body({"type": "SerTestCarrier", "fields": {"value": msgpack.ExtType(1, struct.pack("!II", 0, 0) + b"junk")}}), "unpickle"),
        (bytearray(struct.pack("!II", 0, 3) + b"\xc1\xc1\xc1"), "undecodable"),
    ],
)
def test_malformed_body_raises_frame_error(body, match):
    with pytest.raises(FrameError, match=match):
        decode_message(body)


_VALID = frame_bytes(SerTestCarrier(value=[1, "two", (3.0, None)], other={"k": b"v"}))[FRAME_HEADER.size :]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_corrupted_frame_raises_only_frame_errors(data):
    body = bytearray(_VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    try:
        msg = decode_message(body[:cut])
    except (FrameError, UnknownMessageType):
        return
    assert isinstance(msg, SerTestCarrier)  # a flip that still decodes must still be a valid message


@attrs.frozen(kw_only=True)
class SerTestInner:
    ids: tuple
    note: str = ""


def test_registered_classes_travel_as_msgpack_records(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("protocol metadata must not be pickled")

    monkeypatch.setattr("ownership.runtime.serialization.dumps_oob", refuse)
    msg = SerTestCarrier(value=SerTestInner(ids=("a", "b"), note="n"), other=[SerTestInner(ids=())])
    assert round_trip(msg) == msg


def test_unknown_record_type_is_refused():
    body = _body({"type": "SerTestCarrier", "fields": {"value": msgpack.ExtType(4, msgpack.packb(["NoSuchRecord", {}]))}})
    with pytest.raises(UnknownMessageType, match="NoSuchRecord"):
        decode_message(body)


@attrs.frozen(kw_only=True)
class Payload:
    """Stands in for the core's Payload record: same name and fields."""

    data: bytes
    buffers: tuple = ()
    refs: tuple = ()


def test_payload_record_goes_out_of_band_and_stays_pickled(monkeypatch):
    from ownership.core import messages

    monkeypatch.setattr(messages, "RECORD_TYPES", {"Payload": Payload}, raising=False)
    arr = np.arange(1 << 16, dtype=np.int64)
    sv = serialize(arr)
    payload = Payload(data=bytes(sv.data), buffers=sv.buffers, refs=("r1",))
    frame = encode_message(SerTestCarrier(value=payload))
    assert any(len(c) == arr.nbytes and np.shares_memory(np.frombuffer(c, np.uint8), arr) for c in frame.chunks)
    assert not any(bytes(sv.data) in bytes(c) for c in frame.chunks[:1])  # the stream is not in the envelope

    raw = b"".join(bytes(c) for c in frame.chunks)
    body = bytearray(raw[FRAME_HEADER.size :])
    out = decode_message(body).value
    assert isinstance(out, Payload) and out.refs == ("r1",)
    assert type(out.data) is bytes and out.data == payload.data
    assert all(isinstance(b, memoryview) and b.readonly for b in out.buffers)
    assert np.shares_memory(np.frombuffer(out.buffers[0], np.uint8), np.frombuffer(body, np.uint8))
    assert np.array_equal(pickle.loads(out.data, buffers=out.buffers), arr)


# Registered by conftest while this module runs.
TEST_MESSAGES = (SerTestCarrier, SerTestInner)
