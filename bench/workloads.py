"""The task bodies every system runs: the same Python, so only the system differs.

They import numpy lazily: the workers of every system import this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["noop", "make_array", "checksum", "check_array", "make_array_recording", "make_recording_here", "read_recorded", "Sink"]

#: Stride of the checksum: it touches the whole array's extent, not every byte,
#: so the row measures moving the argument, not summing it.
_STRIDE = 4093


def noop(*_: Any) -> None:
    return None


def make_array(nbytes: int) -> Any:
    import numpy as np

    return np.arange(nbytes, dtype=np.uint8)  # i % 256: checkable anywhere


def checksum(array: Any) -> int:
    return int(array[::_STRIDE].sum(dtype="int64")) + int(array.nbytes)


def check_array(array: Any, nbytes: int) -> None:
    """Raise unless ``array`` is what :func:`make_array` made."""
    if array.nbytes != nbytes:
        raise AssertionError(f"got {array.nbytes} bytes, expected {nbytes}")
    idx = [0, 1, nbytes // 2, nbytes - 1]
    got = [int(array[i]) for i in idx]
    if got != [i % 256 for i in idx]:
        raise AssertionError(f"array content differs at {idx}: {got}")


def make_array_recording(nbytes: int, record: str, identity: str = "") -> Any:
    """:func:`make_array`, leaving ``<pid> <identity>`` in the file ``record``.

    The recovery row reads it to know which process to kill, and reads it
    again afterwards: a new pid proves the value was recomputed, not served
    from a copy that survived.
    """
    Path(record).write_text(f"{os.getpid()} {identity}")
    return make_array(nbytes)


def make_recording_here(nbytes: int, record: str) -> Any:
    """:func:`make_array_recording` naming the executing worker of ours:
    ``<address> <node pid>`` (workers are children of their node). Here,
    not in ``bench/ours.py``, so that a worker unpickling it imports this
    light module only, as a peer's worker does for its recovery task."""
    try:
        from ownership.runtime.refs import current_runtime

        address = str(current_runtime().address)
    except Exception:
        address = "?"
    return make_array_recording(nbytes, record, f"{address} {os.getppid()}")


def read_recorded(record: str) -> tuple[int, str]:
    text = Path(record).read_text().split(" ", 1)
    return int(text[0]), (text[1] if len(text) > 1 else "")


class Sink:
    """The actor of the actor row: a method that does nothing."""

    def ping(self) -> None:
        return None
