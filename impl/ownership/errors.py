"""Errors users see (DESIGN §7). All subclass :class:`OwnershipError`."""

from __future__ import annotations

__all__ = [
    "OwnershipError",
    "TaskError",
    "OwnerDiedError",
    "ObjectLostError",
    "WorkerCrashedError",
    "ActorDiedError",
    "TaskCancelledError",
    "GetTimeoutError",
    "NoRuntimeError",
]


class OwnershipError(Exception):
    """Base of every error of the ownership runtime."""


class TaskError(OwnershipError):
    """The task's user code raised.

    ``type_name`` is the original exception's qualified type name and
    ``remote_traceback`` the traceback text as printed on the worker.
    ``cause`` is the original exception when it could be pickled back (it is
    also chained as ``__cause__``); None otherwise.
    """

    def __init__(self, message: str, *, type_name: str = "", remote_traceback: str = "", cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback
        self.cause = cause
        if cause is not None:
            self.__cause__ = cause

    def __str__(self) -> str:
        head = f"{self.type_name}: {self.args[0]}" if self.type_name else str(self.args[0])
        if self.remote_traceback:
            return f"{head}\n\nRemote traceback:\n{self.remote_traceback.rstrip()}"
        return head


class OwnerDiedError(OwnershipError):
    """The owner of the object died; holders of its references fate-share (paper §4.3)."""


class ObjectLostError(OwnershipError):
    """Every copy of the object is gone and it cannot be recreated (no lineage, or
    the retry budget of its task is spent), or it was already freed."""


class WorkerCrashedError(OwnershipError):
    """The worker running the task died and the task has no retries left."""


class ActorDiedError(WorkerCrashedError):
    """The actor's worker died, or the actor was stopped."""


class TaskCancelledError(OwnershipError):
    """The task was cancelled with :func:`ownership.cancel`."""


class GetTimeoutError(OwnershipError, TimeoutError):
    """``get``/``wait`` with a ``timeout`` did not get the value in time."""


class NoRuntimeError(OwnershipError, RuntimeError):
    """No ownership runtime here: call inside a cluster (or a task) context."""
