"""Starting service processes and waiting until they serve.

A service process (:mod:`.process`) prints exactly one line,
``OWNERSHIP-READY <address>``, on stdout once it serves. A worker also
prints ``OWNERSHIP-ADDRESS <address>`` before it says hello to its node, so
that a node whose worker dies while it starts knows whether it may have
registered. This module builds
its command line and reads that line, for the embedded cluster, the CLI and
a node starting its workers. It is separate from :mod:`.process` so that
importing ``ownership`` (which re-exports :func:`~.cluster.cluster`) does not
import the module that ``python -m ownership.runtime.process`` runs.
"""

from __future__ import annotations

import logging
import os
import selectors
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trio

__all__ = [
    "DEFAULT_NODE_TIMEOUT",
    "DEFAULT_TICK",
    "ADDRESS_PREFIX",
    "READY_PREFIX",
    "ProcessStartError",
    "WorkerStartError",
    "drain",
    "read_ready_line",
    "read_ready_line_sync",
    "service_command",
]

logger = logging.getLogger("ownership.process")

READY_PREFIX = "OWNERSHIP-READY "
ADDRESS_PREFIX = "OWNERSHIP-ADDRESS "
DEFAULT_TICK = 0.1
DEFAULT_NODE_TIMEOUT = 5.0
_MAX_READY_LINE = 4096


class ProcessStartError(RuntimeError):
    """A service process exited, or said something else, before it was ready."""


class WorkerStartError(ProcessStartError):
    """A node's worker did not start: it failed, timed out, or died before it was ready.

    ``worker`` is its address if it said it before it ended (it may have
    registered with the node), else None.
    """

    def __init__(self, message: str, *, worker: str | None = None) -> None:
        super().__init__(message)
        self.worker = worker


def service_command(role: str, token_file: Path | str, *options: str) -> list[str]:
    """The argv that starts one service process with this interpreter."""
    return [sys.executable, "-m", "ownership.runtime.process", "--role", role, "--token-file", str(token_file), *options]


def _take_ready(buf: bytearray, on_address: Callable[[str], None] | None = None) -> str | None:
    """Consume complete lines of ``buf``; the address once the ready line is among them."""
    while (nl := buf.find(b"\n")) >= 0:
        line = bytes(buf[:nl]).decode(errors="replace").rstrip("\r")
        del buf[: nl + 1]
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX) :].strip()
        if line.startswith(ADDRESS_PREFIX) and on_address is not None:
            on_address(line[len(ADDRESS_PREFIX) :].strip())
            continue
        logger.warning("child said %r before it was ready", line)
    if len(buf) > _MAX_READY_LINE:
        raise ProcessStartError(f"child wrote {len(buf)} bytes without a newline before it was ready")
    return None


async def read_ready_line(stream: trio.abc.ReceiveStream, on_address: Callable[[str], None] | None = None) -> str:
    """Read up to the ``OWNERSHIP-READY`` line of a child; returns its address.

    An ``OWNERSHIP-ADDRESS`` line before it goes to ``on_address``; other
    lines (a stray print in user code imported early) are logged and
    skipped. End of file first means the child died.
    """
    buf = bytearray()
    while (address := _take_ready(buf, on_address)) is None:
        data = await stream.receive_some()
        if not data:
            raise ProcessStartError("child exited before it was ready")
        buf += data
    return address


def read_ready_line_sync(fd: int, timeout: float) -> str:
    """:func:`read_ready_line` for synchronous callers (a blocking pipe fd)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (address := _take_ready(buf)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProcessStartError(f"child did not get ready within {timeout} s")
            if not selector.select(remaining):
                continue
            data = os.read(fd, 4096)
            if not data:
                raise ProcessStartError("child exited before it was ready")
            buf += data
    return address


async def drain(stream: trio.abc.ReceiveStream | None, who: str) -> None:
    """Keep reading a child's stdout so it never blocks on a full pipe."""
    if stream is None:
        return
    try:
        while data := await stream.receive_some():
            for line in data.decode(errors="replace").splitlines():
                logger.info("%s: %s", who, line)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
