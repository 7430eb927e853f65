"""Exactly-once, in-order delivery between two live processes across broken connections.

The specs assume that a message between two live processes arrives, once,
in the order sent (a process's death is the only loss). One TCP connection
gives that only for its own life: when it resets, what the kernel still
held or the peer had not read yet is gone, and a new connection starts
from nothing. A :class:`Stream` per peer identity (``host:port#incarnation``)
restores the assumption over any number of connections, the way a session
layer does:

- every message frame sent to the peer gets the next sequence number and
  stays in ``unacked`` until the peer says it has it;
- every new connection opens, in each direction, with a *resume* control
  frame: the sequence number of the first frame that follows (the oldest
  unacknowledged one) and how many frames of the peer's this side has
  delivered; the frames after it are numbered from there, so the sequence
  number travels once per connection, not once per frame;
- the receiver delivers frame ``received + 1`` and drops a number it has
  already delivered (a frame resent because its acknowledgement was lost
  with the connection);
- acknowledgements are control frames too: after 64 frames or 1 MiB, at
  once after a large frame (so a large value is not held for long), and
  for whatever is left every second (:meth:`Stream.ack_due`).

A stream is drawn with a random ``nonce``; the peer keeps the nonce of the
stream it receives from. A new nonce (we forgot the stream because the
peer was declared unreachable, and it was not) restarts the peer's count at
the resume's first number: nothing the old stream left unacknowledged is
resent, so nothing is delivered twice.

This module is the bookkeeping alone (no I/O); :mod:`.tcp` frames and
sends what it decides. A control frame's body starts with ``0xFFFFFFFF``,
which as a message frame would announce more buffers than any frame can
hold, so the two are never confused.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from typing import Generic, TypeVar

import attrs

from .framing import FRAME_HEADER, FrameError

__all__ = ["CONTROL_MARKER", "Ack", "Resume", "Stream", "control_frame", "decode_control", "encode_control", "is_control"]

#: The first four bytes of a control frame's body.
CONTROL_MARKER = b"\xff\xff\xff\xff"
_CONTROL = struct.Struct("!4sBQQQQ")  # marker, kind, then four numbers
_RESUME, _ACK = 1, 2

#: Acknowledge after this many frames or bytes received since the last
#: acknowledgement, and at once after a frame at least _LARGE_FRAME long.
ACK_FRAMES = 64
ACK_BYTES = 1 << 20
LARGE_FRAME = 64 * 1024

F = TypeVar("F")


@attrs.frozen
class Resume:
    """Opens a connection's direction: my next frame is number ``first`` of my stream ``nonce``;
    I have delivered ``received`` frames of your stream ``your_nonce`` (0: none known)."""

    first: int
    received: int
    nonce: int
    your_nonce: int


@attrs.frozen
class Ack:
    """I have delivered ``received`` frames of your stream ``your_nonce``."""

    received: int
    your_nonce: int


def encode_control(msg: Resume | Ack) -> bytes:
    """The body of a control frame (without the length header)."""
    if isinstance(msg, Resume):
        return _CONTROL.pack(CONTROL_MARKER, _RESUME, msg.first, msg.received, msg.nonce, msg.your_nonce)
    return _CONTROL.pack(CONTROL_MARKER, _ACK, msg.received, msg.your_nonce, 0, 0)


def control_frame(msg: Resume | Ack) -> bytes:
    """A whole control frame: the length header, then :func:`encode_control`'s body."""
    body = encode_control(msg)
    return FRAME_HEADER.pack(len(body)) + body


def is_control(body: bytearray | memoryview) -> bool:
    # Checked on every frame received: a message frame's first byte (the top
    # byte of its buffer count) is 0, so the slice is rarely made.
    return len(body) >= 4 and body[0] == 0xFF and body[:4] == CONTROL_MARKER


def decode_control(body: bytearray | memoryview) -> Resume | Ack:
    """Raises FrameError for a control frame of the wrong size or kind."""
    if len(body) != _CONTROL.size:
        raise FrameError(f"control frame of {len(body)} bytes, not {_CONTROL.size}")
    _, kind, a, b, c, d = _CONTROL.unpack(body)
    if kind == _RESUME:
        if a < 1:
            raise FrameError("resume names frame 0")
        return Resume(first=a, received=b, nonce=c, your_nonce=d)
    if kind == _ACK:
        return Ack(received=a, your_nonce=b)
    raise FrameError(f"unknown control frame kind {kind}")


class Stream(Generic[F]):
    """Both directions' counts with one peer identity; outlives connections."""

    __slots__ = (
        "nonce",
        "sent",
        "unacked",
        "received",
        "peer_nonce",
        "acked_to_peer",
        "frames_since_ack",
        "bytes_since_ack",
        "reconnects",
    )

    def __init__(self) -> None:
        self.nonce = int.from_bytes(os.urandom(8), "big") or 1  # 0 means "none known"
        #: number of the last frame given out
        self.sent = 0
        #: frames ``sent - len(unacked) + 1 .. sent``, oldest first
        self.unacked: deque[F] = deque()
        #: number of the last frame of the peer's delivered here
        self.received = 0
        #: the nonce of the peer's stream ``received`` counts (None: none yet)
        self.peer_nonce: int | None = None
        #: the last ``received`` the peer was told
        self.acked_to_peer = 0
        self.frames_since_ack = 0
        self.bytes_since_ack = 0
        #: connections opened again in a row that closed before the peer's
        #: resume arrived on them (the transport gives up after a few)
        self.reconnects = 0

    # -- sending ----------------------------------------------------------------

    def assign(self, frame: F) -> int:
        r"""Spec: Resend!Send

            \* Resend
            Send ==
                /\ sent < N
                /\ sent' = sent + 1
                /\ UNCHANGED <<firstUnacked, received, log, up, nextOut, nextIn, wire, back, resets, broken>>

        Implementation:

        Number ``frame`` and keep it until acknowledged; returns its number.
        """
        self.sent += 1
        self.unacked.append(frame)
        return self.sent

    @property
    def first_unacked(self) -> int:
        return self.sent - len(self.unacked) + 1

    def acknowledged(self, received: int, nonce: int) -> int:
        r"""Spec: Resend!ReceiveAck

            \* Resend
            ReceiveAck ==
                /\ up
                /\ back # <<>>
                /\ back' = Tail(back)
                /\ firstUnacked' = IF Head(back).n + 1 > firstUnacked THEN Head(back).n + 1 ELSE firstUnacked
                /\ UNCHANGED <<sent, received, log, up, nextOut, nextIn, wire, resets, broken>>

        Implementation:

        The peer has frames up to ``received`` of stream ``nonce``: forget them.
        Returns how many were forgotten (none when ``nonce`` is another stream's).
        Raises FrameError when the peer claims a frame never sent.
        """
        if nonce != self.nonce:
            return 0
        if received > self.sent:
            raise FrameError(f"peer acknowledges frame {received}, only {self.sent} were sent")
        n = max(0, received - self.first_unacked + 1)
        for _ in range(n):
            self.unacked.popleft()
        return n

    def resume(self) -> Resume:
        """The control frame that opens a new connection's outgoing direction."""
        self.acked_to_peer = self.received
        self.frames_since_ack = self.bytes_since_ack = 0
        return Resume(first=self.first_unacked, received=self.received, nonce=self.nonce, your_nonce=self.peer_nonce or 0)

    # -- receiving --------------------------------------------------------------

    def resumed(self, msg: Resume) -> int:
        r"""Spec: Resend!ReceiveResume

            \* Resend
            ReceiveResume ==
                /\ up
                /\ wire # <<>>
                /\ Head(wire).kind = "resume"
                /\ wire' = Tail(wire)
                /\ IF Head(wire).n > received + 1
                     THEN /\ broken' = TRUE             \* FrameError: the connection closes
                          /\ UNCHANGED nextIn
                     ELSE /\ nextIn' = Head(wire).n
                          /\ UNCHANGED broken
                /\ UNCHANGED <<sent, firstUnacked, received, log, up, nextOut, back, resets>>

        Implementation:

        The peer opened its direction of a connection: returns the number of
        its next frame. Raises FrameError for a gap (the peer would skip frames
        never delivered here); the connection then closes. A new nonce (the
        peer forgot its stream) restarts the count at the resume's first number.
        """
        self.reconnects = 0  # the peer answers: it lives
        self.acknowledged(msg.received, msg.your_nonce)
        if msg.nonce != self.peer_nonce:
            self.peer_nonce = msg.nonce
            self.received = msg.first - 1
        elif msg.first > self.received + 1:
            raise FrameError(f"peer resumes at frame {msg.first}, frame {self.received + 1} never arrived")
        return msg.first

    def arrived(self, number: int, nbytes: int) -> bool:
        r"""Spec: Resend!ReceiveMessage

            \* Resend
            ReceiveMessage ==
                /\ up
                /\ wire # <<>>
                /\ Head(wire).kind = "msg"
                /\ nextIn > 0
                /\ wire' = Tail(wire)
                /\ nextIn' = nextIn + 1
                /\ IF nextIn <= received
                     THEN UNCHANGED <<received, log>>          \* a duplicate: dropped
                     ELSE /\ received' = nextIn
                          /\ log' = Append(log, Head(wire).n)
                /\ UNCHANGED <<sent, firstUnacked, up, nextOut, back, resets, broken>>

        Implementation:

        Frame ``number`` (of ``nbytes``) arrived in order: True to deliver it,
        False for a duplicate.
        """
        if number <= self.received:
            return False
        self.received = number
        self.frames_since_ack += 1
        self.bytes_since_ack += nbytes
        return True

    def ack_now(self, nbytes: int) -> Ack | None:
        r"""Spec: Resend!Acknowledge

            \* Resend
            Acknowledge ==
                /\ up
                /\ IF back = <<>> THEN TRUE ELSE back[Len(back)] # Frame("ack", received)  \* nothing new: no frame
                /\ back' = Append(back, Frame("ack", received))
                /\ UNCHANGED <<sent, firstUnacked, received, log, up, nextOut, nextIn, wire, resets, broken>>

        Implementation:

        After delivering a frame of ``nbytes``: the acknowledgement to send now,
        if one is due (:meth:`ack_due` sends the rest every second).
        """
        if nbytes >= LARGE_FRAME or self.frames_since_ack >= ACK_FRAMES or self.bytes_since_ack >= ACK_BYTES:
            return self._ack()
        return None

    def ack_due(self) -> Ack | None:
        """The periodic acknowledgement of whatever was delivered since the last one."""
        return self._ack() if self.received > self.acked_to_peer else None

    def _ack(self) -> Ack:
        self.acked_to_peer = self.received
        self.frames_since_ack = self.bytes_since_ack = 0
        return Ack(received=self.received, your_nonce=self.peer_nonce or 0)


