"""Cluster token, process identities, the handshake and the frame MACs.

Values and functions travel as pickles, so a peer that can send us a frame
can run code in our process. Hence every connection first proves, in both
directions, that both ends know the cluster's token, and every frame after
that carries a MAC under keys only the two ends of *this* connection hold;
nothing is decoded before it is authenticated. The handshake itself reads
only fixed-format fields of bounded size (never msgpack or pickle), under a
timeout, and a peer's unauthenticated bytes reach a log only escaped.

Identities. A process's endpoint is named ``host:port#incarnation``: where
it listens, and 8 hex digits drawn at random when the endpoint opens
(``127.0.0.1:41234#9f3a0c1e``, ``[::1]:41234#9f3a0c1e``). A process that
gets a dead one's port is a different identity, so whoever remembers the
dead by name never mistakes the new one for it. A bare ``host:port`` is
what a person types; the transport resolves it to an identity by dialing it.

Handshake (D dials A; integers big-endian)::

    hello    = MAGIC:8 nonce:32 incarnation:4 addrlen:u8 addr    (addr: "host:port", ASCII)
    D -> A   hello_D
    A -> D   hello_A
             D checks that hello_A names the address (and, dialing an
             identity, the incarnation) it dialed; else it closes, having
             proved nothing
    D -> A   HMAC-SHA256(token, "ownership/2 dialer\\0"   || hello_D || hello_A)
    A -> D   verdict:u8 || HMAC-SHA256(token, "ownership/2 acceptor\\0" || hello_D || hello_A || verdict)

Both hellos, with both addresses, incarnations and fresh nonces, are the
transcript that both MACs cover, so neither MAC can be replayed on another
connection; the role labels stop a MAC being reflected back at its author.
The dialer checks whom it reached before it proves anything, and the
acceptor proves itself only after the dialer did: a listener on a stale or
mistyped address that relays the handshake to a real member hands the
dialer a hello that names the wrong process, and the dialer leaves; if it
rewrites that hello to name the process expected there, the dialer's MAC
covers hellos the member never sent, and the member refuses it. The
verdict lets the acceptor decline a connection that duplicates one being
set up (:mod:`.tcp`).

Frames. Both ends then derive two keys, one per direction::

    k_DA || k_AD = HKDF-SHA256(ikm=token, salt=none, info="ownership/2 frame keys\\0" || hello_D || hello_A, 64 bytes)

and every frame (``length:u64be || body``, :mod:`.framing`) is followed by
a 16-byte tag, AES-256-GCM with an empty plaintext (GMAC) over the frame::

    tag = GMAC(k_dir, nonce = n as 12 bytes big-endian, associated data = length || body)

where ``n`` counts the frames sent in that direction on this connection,
from 0. A frame replayed, reordered, dropped from the middle, reflected
back, or sent by anyone but the other end fails its tag; the receiver then
closes that connection. Large frames are tagged piece by piece as they are
written and as they arrive, never joined into one buffer.
"""

from __future__ import annotations

import enum
import hmac
import os
import re
import secrets
import stat
import string
from hashlib import sha256
from pathlib import Path
from typing import Callable

import attrs
import trio
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .framing import ByteReceiver, TruncatedFrame

__all__ = [
    "INCARNATION_BYTES",
    "TOKEN_BYTES",
    "Channel",
    "FrameMac",
    "HandshakeAbandoned",
    "HandshakeError",
    "Hello",
    "InsecureTokenFile",
    "PeerMismatch",
    "Verdict",
    "acceptor_handshake",
    "default_token_path",
    "dialer_handshake",
    "escape",
    "format_address",
    "format_identity",
    "generate_token",
    "is_identity",
    "load_token",
    "ownership_home",
    "parse_address",
    "parse_identity",
    "write_token",
]

TOKEN_BYTES = 32
MAGIC = b"OWNRSHP\x02"
NONCE_BYTES = 32
INCARNATION_BYTES = 4
MAX_ADDRESS_BYTES = 255
_DIALER_LABEL = b"ownership/2 dialer\0"
_ACCEPTOR_LABEL = b"ownership/2 acceptor\0"
_KEYS_LABEL = b"ownership/2 frame keys\0"


class HandshakeError(Exception):
    """The peer is not a member of this cluster, or broke the handshake."""


class HandshakeAbandoned(HandshakeError):
    """The dialer left after the hellos: the process it wanted is not this one."""


class PeerMismatch(HandshakeError):
    """The acceptor's hello names another process than the one dialed.

    ``found`` is the identity it claims (unauthenticated: for logs, escaped).
    Same address with another incarnation means the process dialed is gone.
    """

    def __init__(self, message: str, *, dialed: str, found: str) -> None:
        super().__init__(message)
        self.dialed = dialed
        self.found = found

    @property
    def same_address(self) -> bool:
        return parse_address(self.dialed) == parse_address(self.found)


class InsecureTokenFile(PermissionError):
    """The token file can be read by someone other than its owner."""


class Verdict(enum.IntEnum):
    ACCEPT = 1
    DUPLICATE = 2  # the acceptor keeps the connection it dialed itself


# -- addresses and identities -------------------------------------------------

_INCARNATION = re.compile(r"[0-9a-f]{%d}" % (2 * INCARNATION_BYTES))
# What a hello's address may hold: no whitespace, nothing a terminal or a
# log reader would interpret.
_ADDRESS_CHARS = frozenset(string.ascii_letters + string.digits + ".:-_[]%")


def escape(data: bytes | str, limit: int = 80) -> str:
    """``data`` as a one-line printable literal of bounded length, for logs of unauthenticated input."""
    text = repr(data[:limit])
    return text + ("..." if len(data) > limit else "")


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or an identity (``...#incarnation``) -> ``(host, port)``.

    ValueError for anything else.
    """
    if not isinstance(address, str):
        raise ValueError(f"not a host:port address: {address!r}")
    base, sep, incarnation = address.partition("#")
    if sep and not _INCARNATION.fullmatch(incarnation):
        raise ValueError(f"not a host:port#incarnation identity (8 lowercase hex digits after '#'): {escape(address)}")
    host, sep, port = base.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a host:port address: {escape(address)}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def parse_identity(identity: str) -> tuple[str, int, str]:
    """``"host:port#incarnation"`` -> ``(host, port, incarnation)``.

    ValueError for a bare ``host:port`` (it names a place, not a process:
    resolve it first) and for anything malformed.
    """
    if not isinstance(identity, str) or "#" not in identity:
        raise ValueError(
            f"{escape(identity)} is a bare host:port, not a process identity host:port#incarnation "
            "(resolve it first: transport.resolve)"
        )
    host, port = parse_address(identity)
    return host, port, identity.rpartition("#")[2]


def is_identity(address: str) -> bool:
    try:
        parse_identity(address)
    except ValueError:
        return False
    return True


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_identity(address: str, incarnation: bytes) -> str:
    """``"host:port"`` and the incarnation's bytes -> ``"host:port#<hex>"``."""
    return f"{address}#{incarnation.hex()}"


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
    """One side's opening: nonce, incarnation, listening address (``host:port``).

    The handshake functions draw a fresh nonce for the local side.
    """

    address: str
    incarnation: bytes
    nonce: bytes = attrs.field(factory=lambda: secrets.token_bytes(NONCE_BYTES))

    @property
    def identity(self) -> str:
        return format_identity(self.address, self.incarnation)

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
        if magic[:7] == MAGIC[:7]:
            raise HandshakeError(f"peer speaks handshake version {magic[7]}, this process {MAGIC[7]}")
        raise HandshakeError(f"not an ownership peer (opening bytes {magic!r})")
    fixed = await receiver.receive_exactly(NONCE_BYTES + INCARNATION_BYTES + 1)
    addr = await receiver.receive_exactly(fixed[-1])
    # Checked before anyone logs it: the address is the peer's to choose.
    if not addr or not set(addr.decode("latin-1")) <= _ADDRESS_CHARS:
        raise HandshakeError(f"bad address in the peer's hello: {escape(addr)}")
    address = addr.decode("ascii")
    try:
        parse_address(address)
    except ValueError:
        raise HandshakeError(f"bad address in the peer's hello: {escape(addr)}") from None
    hello = Hello(address=address, incarnation=fixed[NONCE_BYTES:-1], nonce=fixed[:NONCE_BYTES])
    return hello, magic + fixed + addr


def _fresh(local: Hello) -> Hello:
    """``local`` with a nonce of its own: a nonce used twice would give two
    connections the same frame keys, so the handshake never takes one from
    its caller."""
    return attrs.evolve(local, nonce=secrets.token_bytes(NONCE_BYTES))


def _mac(token: bytes, label: bytes, *parts: bytes) -> bytes:
    return hmac.new(token, label + b"".join(parts), sha256).digest()


def _check_dialed(peer: Hello, dialed: str) -> None:
    """Raise PeerMismatch unless ``peer`` is what ``dialed`` (address or identity) names."""
    found = peer.identity
    if peer.address != dialed.partition("#")[0]:
        raise PeerMismatch(f"dialed {dialed} but the peer there is {escape(found)}", dialed=dialed, found=found)
    if "#" in dialed and found != dialed:
        raise PeerMismatch(
            f"{dialed} is gone: another process ({escape(found)}) listens at its address", dialed=dialed, found=found
        )


class FrameMac:
    """The tags of one direction of one connection (see the module doc).

    Tags are numbered: each :meth:`tag`, :meth:`check` or :meth:`begin`
    takes the next frame number, so the sender and the receiver must tag
    and check the frames in the order they cross the wire.
    """

    __slots__ = ("_aead", "_aes", "frames")

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._aes = algorithms.AES(key)
        self.frames = 0

    def _nonce(self) -> bytes:
        n = self.frames
        self.frames = n + 1
        return n.to_bytes(12, "big")

    def tag(self, frame: bytes | bytearray | memoryview) -> bytes:
        """The tag of one whole frame (length header included) held in one buffer."""
        return self._aead.encrypt(self._nonce(), b"", frame)

    def check(self, frame: bytes | bytearray | memoryview, tag: bytes) -> bool:
        return hmac.compare_digest(self._aead.encrypt(self._nonce(), b"", frame), tag)

    def begin(self) -> PieceMac:
        """A tag computed over a frame given in pieces, in order."""
        return PieceMac(Cipher(self._aes, modes.GCM(self._nonce())).encryptor())


class PieceMac:
    """One frame's tag, fed piece by piece (a large frame, never joined)."""

    __slots__ = ("_enc",)

    def __init__(self, enc) -> None:
        self._enc = enc

    def update(self, piece: bytes | bytearray | memoryview) -> None:
        self._enc.authenticate_additional_data(piece)

    def tag(self) -> bytes:
        self._enc.finalize()
        return self._enc.tag

    def matches(self, tag: bytes) -> bool:
        return hmac.compare_digest(self.tag(), tag)


@attrs.frozen(eq=False)
class Channel:
    """What a handshake leaves: the tags of each direction of the connection."""

    outgoing: FrameMac
    incoming: FrameMac

    @classmethod
    def derive(cls, token: bytes, hello_d: bytes, hello_a: bytes, *, dialer: bool) -> Channel:
        keys = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_KEYS_LABEL + hello_d + hello_a).derive(token)
        d_to_a, a_to_d = FrameMac(keys[:32]), FrameMac(keys[32:])
        return cls(outgoing=d_to_a, incoming=a_to_d) if dialer else cls(outgoing=a_to_d, incoming=d_to_a)


async def dialer_handshake(
    stream: trio.abc.Stream, receiver: ByteReceiver, token: bytes, local: Hello, dialed: str
) -> tuple[Hello, Verdict, Channel]:
    """Run the dialer's side against ``dialed`` (a ``host:port`` or an identity).

    Returns the authenticated peer hello, its verdict and the channel's
    frame tags. Raises PeerMismatch, before proving anything, when the
    acceptor is not the one dialed; HandshakeError for any other failure.
    """
    try:
        mine = _fresh(local).encode()
        await stream.send_all(mine)
        peer, theirs = await _receive_hello(receiver)
        _check_dialed(peer, dialed)
        await stream.send_all(_mac(token, _DIALER_LABEL, mine, theirs))
        answer = await receiver.receive_exactly(1 + sha256().digest_size)
    except TruncatedFrame:
        raise HandshakeError("peer closed the connection during the handshake (wrong cluster token?)") from None
    verdict_byte, mac = answer[:1], answer[1:]
    if not hmac.compare_digest(mac, _mac(token, _ACCEPTOR_LABEL, mine, theirs, verdict_byte)):
        raise HandshakeError(f"peer {escape(peer.identity)} failed to prove the cluster token")
    try:
        verdict = Verdict(verdict_byte[0])
    except ValueError:
        raise HandshakeError(f"unknown handshake verdict {verdict_byte[0]}") from None
    return peer, verdict, Channel.derive(token, mine, theirs, dialer=True)


async def acceptor_handshake(
    stream: trio.abc.Stream,
    receiver: ByteReceiver,
    token: bytes,
    local: Hello,
    decide: Callable[[Hello, Channel], Verdict],
) -> tuple[Hello, Verdict]:
    """Run the acceptor's side; ``decide`` picks the verdict for an authenticated peer.

    ``decide`` gets the peer's hello and the connection's channel, and runs
    synchronously between verifying the dialer's MAC and sending the
    verdict, so the caller can install the connection atomically.
    """
    try:
        peer, theirs = await _receive_hello(receiver)
        mine = _fresh(local).encode()
        await stream.send_all(mine)
    except TruncatedFrame as exc:
        raise HandshakeError(f"peer closed the connection during the handshake ({exc})") from None
    try:
        mac = await receiver.receive_exactly(sha256().digest_size)
    except TruncatedFrame:
        raise HandshakeAbandoned(
            f"peer claiming to be {escape(peer.identity)} left after the hellos (it dialed another process)"
        ) from None
    if not hmac.compare_digest(mac, _mac(token, _DIALER_LABEL, theirs, mine)):
        raise HandshakeError(f"peer claiming to be {escape(peer.identity)} failed to prove the cluster token")
    verdict = decide(peer, Channel.derive(token, theirs, mine, dialer=False))
    verdict_byte = bytes([verdict])
    await stream.send_all(verdict_byte + _mac(token, _ACCEPTOR_LABEL, theirs, mine, verdict_byte))
    return peer, verdict
