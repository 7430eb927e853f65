"""Whether a process still runs, by pid."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["pid_alive", "pid_exists"]


def pid_exists(pid: int) -> bool:
    """Whether ``pid`` names a process, a zombie (dead, not yet reaped) included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (dead, not yet reaped by its parent) does not."""
    if not pid_exists(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs here: kill() said it exists
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
