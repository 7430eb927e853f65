"""Cluster token and the mutual HMAC handshake every connection starts with.

Values and functions travel as pickles, so a peer that can send us a frame
can run code in our process. Hence every connection first proves, in both
directions, that both ends know the cluster's token, and no frame is decoded
before that. The handshake itself reads only fixed-format fields of bounded
size (never msgpack or pickle), under a timeout.

Handshake (D dials A; all integers big-endian)::

    D -> A   hello_D  = MAGIC nonce:32 incarnation:16 addrlen:u8 addr
    A -> D   hello_A  = (same format)
    D -> A   mac_D    = HMAC-SHA256(token, "ownership/1 dialer\\0"   || hello_D || hello_A)
    A -> D   verdict:u8 || HMAC-SHA256(token, "ownership/1 acceptor\\0" || hello_D || hello_A || verdict)

Both nonces are fresh, so neither MAC can be replayed; the role labels stop
a MAC being reflected back at its author. The acceptor proves itself only
after the dialer did, so a peer without the token learns nothing but a
closed connection. The addresses in the hellos are the listening addresses
each side is known by, and they are covered by the MACs, so a connection's
peer address is authenticated. The verdict lets the acceptor decline a
connection that duplicates one already being set up (see :mod:`.tcp`).
"""

from __future__ import annotations

import enum
import hmac
import os
import secrets
import stat
from hashlib import sha256
from pathlib import Path
from typing import Callable

import attrs
import trio

from .framing import ByteReceiver, TruncatedFrame

__all__ = [
    "TOKEN_BYTES",
    "HandshakeError",
    "Hello",
    "InsecureTokenFile",
    "Verdict",
    "acceptor_handshake",
    "default_token_path",
    "dialer_handshake",
    "generate_token",
    "load_token",
    "ownership_home",
    "write_token",
]

TOKEN_BYTES = 32
MAGIC = b"OWNRSHP\x01"
NONCE_BYTES = 32
INCARNATION_BYTES = 16
MAX_ADDRESS_BYTES = 255
_DIALER_LABEL = b"ownership/1 dialer\0"
_ACCEPTOR_LABEL = b"ownership/1 acceptor\0"


class HandshakeError(Exception):
    """The peer is not a member of this cluster, or broke the handshake."""


class InsecureTokenFile(PermissionError):
    """The token file can be read by someone other than its owner."""


class Verdict(enum.IntEnum):
    ACCEPT = 1
    DUPLICATE = 2  # the acceptor keeps the connection it dialed itself


# -- token ------------------------------------------------------------------


def generate_token() -> bytes:
    return secrets.token_bytes(TOKEN_BYTES)


def ownership_home() -> Path:
    """``$OWNERSHIP_HOME``, else ``~/.ownership``: where the CLI keeps cluster state."""
    env = os.environ.get("OWNERSHIP_HOME")
    return Path(env) if env else Path.home() / ".ownership"


def default_token_path() -> Path:
    return ownership_home() / "cluster.token"


def write_token(token: bytes, path: Path | str | None = None) -> Path:
    """Write ``token`` (hex) to ``path`` with mode 0600; its directory gets 0700.

    The file is created with its final mode (never world-readable, not even
    for an instant) and moved into place, so a reader sees the old token or
    the new one, never half a file.
    """
    if len(token) < 16:
        raise ValueError(f"a cluster token needs at least 16 bytes, got {len(token)}")
    path = Path(path) if path is not None else default_token_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(token.hex() + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_token(path: Path | str | None = None) -> bytes:
    """Read a token written by :func:`write_token`, refusing an exposed file."""
    path = Path(path) if path is not None else default_token_path()
    fd = os.open(path, os.O_RDONLY)
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InsecureTokenFile(
                f"{path} has mode {stat.S_IMODE(st.st_mode):04o}; the cluster token must be private (chmod 600 {path})"
            )
        if st.st_uid != os.getuid():
            raise InsecureTokenFile(f"{path} belongs to uid {st.st_uid}, not to this user ({os.getuid()})")
        text = f.read(4 * TOKEN_BYTES).strip()
    try:
        token = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path} does not hold a hex cluster token") from None
    if len(token) < 16:
        raise ValueError(f"{path} holds a token of {len(token)} bytes; at least 16 are needed")
    return token


# -- handshake --------------------------------------------------------------


@attrs.frozen
class Hello:
    """One side's opening: fresh nonce, process incarnation, listening address."""

    address: str
    incarnation: bytes
    nonce: bytes = attrs.field(factory=lambda: secrets.token_bytes(NONCE_BYTES))

    def encode(self) -> bytes:
        addr = self.address.encode()
        if len(addr) > MAX_ADDRESS_BYTES:
            raise ValueError(f"address {self.address!r} is longer than {MAX_ADDRESS_BYTES} bytes")
        if len(self.incarnation) != INCARNATION_BYTES or len(self.nonce) != NONCE_BYTES:
            raise ValueError("bad incarnation or nonce length")
        return MAGIC + self.nonce + self.incarnation + bytes([len(addr)]) + addr


async def _receive_hello(receiver: ByteReceiver) -> tuple[Hello, bytes]:
    magic = await receiver.receive_exactly(len(MAGIC))
    if magic != MAGIC:
        raise HandshakeError(f"not an ownership peer (opening bytes {magic!r})")
    fixed = await receiver.receive_exactly(NONCE_BYTES + INCARNATION_BYTES + 1)
    addr = await receiver.receive_exactly(fixed[-1])
    try:
        address = addr.decode()
    except UnicodeDecodeError:
        raise HandshakeError("peer address is not UTF-8") from None
    hello = Hello(address=address, incarnation=fixed[NONCE_BYTES:-1], nonce=fixed[:NONCE_BYTES])
    return hello, magic + fixed + addr


def _mac(token: bytes, label: bytes, *parts: bytes) -> bytes:
    return hmac.new(token, label + b"".join(parts), sha256).digest()


async def dialer_handshake(
    stream: trio.abc.Stream, receiver: ByteReceiver, token: bytes, local: Hello
) -> tuple[Hello, Verdict]:
    """Run the dialer's side; returns the authenticated peer hello and its verdict."""
    try:
        mine = local.encode()
        await stream.send_all(mine)
        peer, theirs = await _receive_hello(receiver)
        await stream.send_all(_mac(token, _DIALER_LABEL, mine, theirs))
        answer = await receiver.receive_exactly(1 + sha256().digest_size)
    except TruncatedFrame:
        raise HandshakeError("peer closed the connection during the handshake (wrong cluster token?)") from None
    verdict_byte, mac = answer[:1], answer[1:]
    if not hmac.compare_digest(mac, _mac(token, _ACCEPTOR_LABEL, mine, theirs, verdict_byte)):
        raise HandshakeError(f"peer {peer.address} failed to prove the cluster token")
    try:
        verdict = Verdict(verdict_byte[0])
    except ValueError:
        raise HandshakeError(f"unknown handshake verdict {verdict_byte[0]}") from None
    return peer, verdict


async def acceptor_handshake(
    stream: trio.abc.Stream,
    receiver: ByteReceiver,
    token: bytes,
    local: Hello,
    decide: Callable[[Hello], Verdict],
) -> tuple[Hello, Verdict]:
    """Run the acceptor's side; ``decide`` picks the verdict for an authenticated peer.

    ``decide`` runs synchronously between verifying the dialer's MAC and
    sending the verdict, so the caller can install the connection atomically.
    """
    try:
        peer, theirs = await _receive_hello(receiver)
        mine = local.encode()
        await stream.send_all(mine)
        mac = await receiver.receive_exactly(sha256().digest_size)
    except TruncatedFrame:
        raise HandshakeError("peer closed the connection during the handshake") from None
    if not hmac.compare_digest(mac, _mac(token, _DIALER_LABEL, theirs, mine)):
        raise HandshakeError(f"peer claiming to be {peer.address} failed to prove the cluster token")
    verdict = decide(peer)
    verdict_byte = bytes([verdict])
    await stream.send_all(verdict_byte + _mac(token, _ACCEPTOR_LABEL, theirs, mine, verdict_byte))
    return peer, verdict
