"""Micro-benchmark of frame MACs: what authenticating every TCP frame costs.

    python -m bench.frame_mac [--repeat N]

For each candidate and frame size (64 B, 4 KiB, 10 MiB, 100 MiB) it times
one sender-side tag the way the transport computes it: a fresh MAC state
per frame, the per-direction counter first, then the frame's chunks one by
one (a large value is an out-of-band buffer, never joined with its header).
Prints microseconds per frame and GB/s, the median and the best round (on
a busy machine the best one is nearer the cost itself). The candidates:

- ``hmac-sha256``: :mod:`hmac` over OpenSSL (SHA-NI where the CPU has it),
  the keyed state copied per frame;
- ``blake2b``: keyed :func:`hashlib.blake2b`, 16-byte tag, state copied;
- ``gmac``: AES-256-GCM of the ``cryptography`` package with the frame as
  associated data and no plaintext (the counter is the nonce): the
  transport's own :class:`~ownership.runtime.auth.FrameMac`, one call for a
  frame up to 64 KiB, piece by piece above.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import statistics
import struct
import time
from collections.abc import Callable, Sequence

_COUNTER = struct.Struct("!Q")
SIZES = (("64 B", 64), ("4 KiB", 4096), ("10 MiB", 10 * 2**20), ("100 MiB", 100 * 2**20))


def _frame(size: int) -> list[memoryview]:
    """A frame as the encoder hands it over: a small head chunk, then the body."""
    body = memoryview(bytearray(os.urandom(min(size, 2**20)) * max(1, size // 2**20))[:size])
    head = memoryview(struct.pack("!QII", size + 8, 0, size))
    return [head, body] if size > 4096 else [memoryview(bytes(head) + bytes(body))]


def hmac_sha256(key: bytes) -> Callable[[int, Sequence[memoryview]], bytes]:
    base = hmac.new(key, digestmod=hashlib.sha256)

    def tag(counter: int, chunks: Sequence[memoryview]) -> bytes:
        h = base.copy()
        h.update(_COUNTER.pack(counter))
        for c in chunks:
            h.update(c)
        return h.digest()[:16]

    return tag


def blake2b(key: bytes) -> Callable[[int, Sequence[memoryview]], bytes]:
    base = hashlib.blake2b(key=key, digest_size=16)

    def tag(counter: int, chunks: Sequence[memoryview]) -> bytes:
        h = base.copy()
        h.update(_COUNTER.pack(counter))
        for c in chunks:
            h.update(c)
        return h.digest()

    return tag


def gmac(key: bytes) -> Callable[[int, Sequence[memoryview]], bytes]:
    """The transport's own tags (:class:`ownership.runtime.auth.FrameMac`)."""
    from ownership.runtime.auth import FrameMac
    from ownership.runtime.framing import ONE_SHOT_TAG

    mac = FrameMac(key)

    def tag(counter: int, chunks: Sequence[memoryview]) -> bytes:
        if len(chunks) == 1 and len(chunks[0]) <= ONE_SHOT_TAG:
            return mac.tag(chunks[0])
        pieces = mac.begin()
        for c in chunks:
            pieces.update(c)
        return pieces.tag()

    return tag


CANDIDATES = {"hmac-sha256": hmac_sha256, "blake2b": blake2b, "gmac": gmac}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.frame_mac", description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="timed rounds per cell (median is printed)")
    args = p.parse_args(argv)
    key = os.urandom(32)
    print(f"{'candidate':<12} {'frame':>8} {'us/frame':>12} {'GB/s':>8} {'best us':>12} {'best GB/s':>10}")
    for name, make in CANDIDATES.items():
        tag = make(key)
        for label, size in SIZES:
            chunks = _frame(size)
            n = max(1, min(20_000, (200 * 2**20) // max(size, 1)))
            times = []
            for r in range(args.repeat):
                t0 = time.perf_counter()
                for i in range(n):
                    tag(i, chunks)
                times.append((time.perf_counter() - t0) / n)
            per, best = statistics.median(times), min(times)
            print(
                f"{name:<12} {label:>8} {per * 1e6:>12.2f} {size / per / 1e9:>8.2f}"
                f" {best * 1e6:>12.2f} {size / best / 1e9:>10.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
