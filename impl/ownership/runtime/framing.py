"""Length-prefixed frames on a byte stream.

A frame is ``length:u64be`` followed by ``length`` bytes of body. The length
is checked against a limit *before* the body is allocated, so a peer cannot
make us reserve memory by announcing a huge frame. The body's layout belongs
to :mod:`ownership.runtime.serialization`.

Why 512 MiB by default: values that are too large for a frame do not travel
in frames at all on one node (they live in shared memory), and copies between
nodes of arrays of a few hundred MiB still fit; beyond that a single frame
would hold a connection (and every message queued behind it) for seconds, and
a wrong or hostile length would cost that much memory. Configure it per
transport (``max_frame_size``).

:class:`ByteReceiver` is the one buffered reader of a connection: the
handshake reads its fixed-format fields through it, then frames are read
through the same object, so bytes that arrived together with the last
handshake message are not lost.
"""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING, Callable

import trio

from .bufpool import frame_pool

if TYPE_CHECKING:
    from .auth import FrameMac

#: The size of the tag after each frame of a connection (:mod:`.auth`).
TAG_BYTES = 16
#: Frames up to this size (header included) are tagged in one call over
#: one buffer, larger ones piece by piece: the one-shot call costs about
#: 1 us a frame, the piecewise one about 4.
ONE_SHOT_TAG = 64 * 1024

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "FRAME_HEADER",
    "ByteReceiver",
    "FrameAuthError",
    "FrameError",
    "FrameTooLarge",
    "TruncatedFrame",
    "frame_header",
    "receive_frame",
]

DEFAULT_MAX_FRAME_SIZE = 512 * 2**20

FRAME_HEADER = struct.Struct("!Q")

# Reads of at least this size go straight into the destination buffer
# (socket.recv_into), so a large frame is not copied through our staging buffer.
_DIRECT_READ = 32 * 1024
# SO_RCVLOWAT while a large body arrives: a wake-up per this many bytes.
_LOWAT = 512 * 1024
# Below glibc's mmap threshold, so the staging buffer is cheap to keep.
_CHUNK = 64 * 1024
# Reads before the handshake ends: a hello is at most 300 bytes.
_SMALL_CHUNK = 512


class FrameError(ValueError):
    """A frame is malformed: bad length, bad layout, undecodable envelope."""


class FrameTooLarge(FrameError):
    """A frame announces more bytes than the receiver's ``max_frame_size``."""


class TruncatedFrame(FrameError):
    """The stream ended in the middle of a frame or handshake message."""


class FrameAuthError(FrameError):
    """A frame's tag does not match: forged, replayed, reordered or corrupted."""


def frame_header(body_len: int) -> bytes:
    return FRAME_HEADER.pack(body_len)


class ByteReceiver:
    """Exact-size reads from a trio stream, with one staging buffer.

    Not safe for concurrent use: a connection has exactly one reader task.
    Reads at most 512 bytes at a time until :meth:`authenticated` is called.
    """

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._sock = getattr(stream, "socket", None)
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already consumed
        self._chunk = _SMALL_CHUNK
        self._scratch = bytearray(_SMALL_CHUNK) if self._sock is not None else None
        self.bytes_received = 0

    def authenticated(self) -> None:
        """The peer passed the handshake: from now on read in large pieces."""
        self._chunk = _CHUNK
        if self._sock is not None:
            self._scratch = bytearray(_CHUNK)

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def _consume(self, n: int) -> None:
        self._pos += n
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[self._pos : self._pos + n])
        self._consume(n)
        return out

    def _append(self, data: bytes | memoryview) -> None:
        if self._pos and self._pos >= len(self._buf) // 2:
            # Consumed bytes are dropped in bulk, not frame by frame.
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    async def _receive_some(self) -> bytes | memoryview:
        """Some bytes (empty at EOF); a returned view is valid until the next call."""
        if self._scratch is not None:
            try:
                got = await self._sock.recv_into(self._scratch)
            except OSError as exc:
                raise trio.BrokenResourceError(f"receive failed: {exc}") from exc
            self.bytes_received += got
            return memoryview(self._scratch)[:got]
        data = await self._stream.receive_some(self._chunk)
        self.bytes_received += len(data)
        return data

    async def at_eof(self) -> bool:
        """True if the stream ended cleanly with nothing buffered."""
        if self.buffered:
            return False
        data = await self._receive_some()
        if not data:
            return True
        self._append(data)
        return False

    async def receive_exactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes; TruncatedFrame if the stream ends first."""
        while self.buffered < n:
            data = await self._receive_some()
            if not data:
                raise TruncatedFrame(f"stream ended after {self.buffered} of {n} bytes")
            self._append(data)
        return self._take(n)

    async def receive_into(self, view: memoryview, feed: Callable[[memoryview], None] | None = None) -> None:
        """Fill ``view`` completely; TruncatedFrame if the stream ends first.

        ``feed`` gets each piece of ``view`` as it is filled, in order (a
        frame's tag is computed while the piece is still in the cache).
        """
        total = len(view)
        pos = min(self.buffered, total)
        if pos:
            view[:pos] = self._buf[self._pos : self._pos + pos]
            self._consume(pos)
            if feed is not None:
                feed(view[:pos])
        lowat = 1
        try:
            while pos < total:
                remaining = total - pos
                if self._sock is not None and remaining >= _DIRECT_READ:
                    # Wake up for the rest of a large body once a good part
                    # of it is there, not for every few segments the
                    # sender's kernel hands over; never for more than this
                    # body still needs (the sender is sending that much).
                    want = min(remaining, _LOWAT)
                    if want != lowat:
                        lowat = self._set_lowat(want)
                    try:
                        got = await self._sock.recv_into(view[pos:])
                    except OSError as exc:
                        raise trio.BrokenResourceError(f"receive failed: {exc}") from exc
                    self.bytes_received += got
                    if got == 0:
                        raise TruncatedFrame(f"stream ended after {pos} of {total} bytes")
                    if feed is not None:
                        feed(view[pos : pos + got])
                    pos += got
                else:
                    if lowat != 1:  # the rest is small: any byte will do
                        lowat = self._set_lowat(1)
                    data = await self._receive_some()
                    if not data:
                        raise TruncatedFrame(f"stream ended after {pos} of {total} bytes")
                    take = min(len(data), remaining)
                    view[pos : pos + take] = data[:take]
                    if feed is not None:
                        feed(view[pos : pos + take])
                    pos += take
                    if take < len(data):
                        self._append(data[take:])
        finally:
            if lowat != 1:
                self._set_lowat(1)

    def _set_lowat(self, n: int) -> int:
        """SO_RCVLOWAT of our socket (the last value set; 1 if it cannot be set)."""
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, n)
        except (OSError, AttributeError):
            return 1
        return n


#: Frames from this size on (large values) are received into memory that
#: is neither zero-filled first nor faulted in 4 KiB at a time.
LARGE_FRAME = 4 * 1024 * 1024


def _frame_buffer(length: int) -> bytearray | memoryview:
    """A writable buffer of ``length`` bytes for a frame body, nothing else using it.

    ``bytearray(length)`` zero-fills the whole buffer before the socket
    fills it again, faulting in every 4 KiB page on the way: on the VMs
    here page faults dominate (100 MiB: ~210 ms to allocate, ~50 ms to
    fill). A large frame goes into a buffer of :data:`~.bufpool.frame_pool`
    (a huge-page mapping, reused once no value decoded from an earlier
    frame uses it; values decoded from this frame keep views of it).
    """
    if length < LARGE_FRAME:
        return bytearray(length)
    return frame_pool.take(length)


async def receive_frame(
    receiver: ByteReceiver,
    max_frame_size: int,
    mac: FrameMac | None = None,
    allocate: Callable[[int], memoryview | None] | None = None,
) -> bytearray | memoryview | None:
    """The next frame's body, or None if the stream ended between frames.

    The body is a buffer (a bytearray, or a view of an anonymous mapping
    for a large frame) that nothing else uses or writes to while any view
    of it lives, so decoded values may keep zero-copy views into it.

    With ``mac`` (the incoming side of a connection's channel) the frame's
    tag follows the body and is checked first: FrameAuthError if it does
    not match, and nothing of the frame is returned.

    ``allocate(length)`` may provide the buffer of a large body (a node
    receives copies of objects straight into shared memory); None from it,
    or no ``allocate``, means a buffer of our own.
    """
    if await receiver.at_eof():
        return None
    header = await receiver.receive_exactly(FRAME_HEADER.size)
    (length,) = FRAME_HEADER.unpack(header)
    if length > max_frame_size:
        raise FrameTooLarge(f"frame of {length} bytes exceeds the limit of {max_frame_size} bytes")
    body = allocate(length) if allocate is not None and length >= LARGE_FRAME else None
    if body is None:
        body = _frame_buffer(length)
    if mac is None:
        await receiver.receive_into(memoryview(body))
        return body
    number = mac.frames
    if length + FRAME_HEADER.size <= ONE_SHOT_TAG:
        await receiver.receive_into(memoryview(body))
        ok = mac.check(header + body, await receiver.receive_exactly(TAG_BYTES))
    else:
        pieces = mac.begin()
        pieces.update(header)
        await receiver.receive_into(memoryview(body), pieces.update)
        ok = pieces.matches(await receiver.receive_exactly(TAG_BYTES))
    if not ok:
        raise FrameAuthError(f"frame {number} ({length} bytes) failed authentication")
    return body
