"""The stream bookkeeping of runtime/resend.py, without sockets."""

from __future__ import annotations

import pytest

from ownership.runtime.framing import FrameError
from ownership.runtime.resend import Ack, Resume, Stream, control_frame, decode_control, encode_control, is_control


def test_control_frames_round_trip_and_are_told_from_message_frames():
    for msg in (Resume(first=3, received=7, nonce=11, your_nonce=13), Ack(received=5, your_nonce=9)):
        body = encode_control(msg)
        assert is_control(body) and decode_control(body) == msg
        assert control_frame(msg)[8:] == body
    assert not is_control(b"\x00\x00\x00\x00rest")  # a message frame: its buffer count first


@pytest.mark.parametrize(
    "body, error",
    [
        (b"\xff\xff\xff\xff\x01", "control frame of 5 bytes"),
        (encode_control(Ack(received=1, your_nonce=1))[:5] + b"\x00" * 32 + b"\x00", "control frame of"),
        (b"\xff\xff\xff\xff\x07" + b"\x00" * 32, "unknown control frame kind 7"),
        (encode_control(Resume(first=1, received=0, nonce=1, your_nonce=0)).replace(b"\x00" * 7 + b"\x01", b"\x00" * 8, 1), "resume names frame 0"),
    ],
)
def test_malformed_control_frame_is_a_frame_error(body, error):
    with pytest.raises(FrameError, match=error):
        decode_control(body)


def test_resend_starts_at_the_oldest_unacknowledged_and_duplicates_are_dropped():
    sender, receiver = Stream[str](), Stream[str]()
    for frame in "abcd":
        sender.assign(frame)
    first = receiver.resumed(sender.resume())
    assert [receiver.arrived(first + i, 1) for i in range(2)] == [True, True]  # a, b arrived; then the reset
    assert sender.acknowledged(receiver.resume().received, receiver.resume().your_nonce) == 2  # the peer's resume acks a, b
    assert list(sender.unacked) == ["c", "d"]
    # A resume from before that acknowledgement would resend a and b: dropped as duplicates.
    again = receiver.resumed(Resume(first=1, received=0, nonce=sender.nonce, your_nonce=0))
    assert [receiver.arrived(again + i, 1) for i in range(4)] == [False, False, True, True]


def test_a_gap_in_the_peer_stream_is_refused_and_a_new_stream_starts_over():
    receiver = Stream[str]()
    receiver.resumed(Resume(first=1, received=0, nonce=7, your_nonce=0))
    assert receiver.arrived(1, 1)
    with pytest.raises(FrameError, match="frame 2 never arrived"):
        receiver.resumed(Resume(first=5, received=0, nonce=7, your_nonce=0))
    # The peer forgot its stream (a new nonce): counting restarts at its first frame.
    assert receiver.resumed(Resume(first=1, received=0, nonce=8, your_nonce=0)) == 1
    assert receiver.arrived(1, 1)


def test_acknowledgements_of_another_stream_or_of_frames_never_sent():
    sender = Stream[str]()
    sender.assign("a")
    assert sender.acknowledged(1, sender.nonce + 1) == 0  # an old stream's count: ignored
    with pytest.raises(FrameError, match="only 1 were sent"):
        sender.acknowledged(2, sender.nonce)


def test_acknowledgement_is_due_after_a_large_frame_many_frames_or_the_period():
    receiver = Stream[str]()
    receiver.resumed(Resume(first=1, received=0, nonce=7, your_nonce=0))
    receiver.arrived(1, 10)
    assert receiver.ack_now(10) is None
    assert receiver.ack_due() == Ack(received=1, your_nonce=7)
    assert receiver.ack_due() is None
    receiver.arrived(2, 1 << 20)
    assert receiver.ack_now(1 << 20) == Ack(received=2, your_nonce=7)
    for n in range(3, 3 + 64):
        receiver.arrived(n, 1)
    assert receiver.ack_now(1) == Ack(received=66, your_nonce=7)
