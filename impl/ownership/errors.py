"""Errors users see (DESIGN §7). All subclass :class:`OwnershipError`."""

from __future__ import annotations

import builtins
from typing import Any

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
    ``remote_traceback`` the traceback text as printed on the worker (the
    user's frames, not the runtime's). ``cause`` is the exception the task
    raised when it could be pickled back, None otherwise; for a task that
    let a nested task's failure through, ``cause`` is that nested
    TaskError. It is not chained as ``__cause__``: the remote traceback in
    the message already shows it, from the outermost call down.

    As with Ray's RayTaskError, the error a ``get`` raises is also an
    instance of the user's exception type: ``except ZeroDivisionError``
    catches a remote division by zero. Its class, ``TaskError(ZeroDivisionError)``,
    subclasses both, and reads the user exception's own attributes from
    ``cause``. When that type cannot be subclassed (or did not unpickle
    here) the error is a plain TaskError.
    """

    def __init__(self, message: str, *, type_name: str = "", remote_traceback: str = "", cause: BaseException | None = None) -> None:
        # Not super().__init__: in a dual class the next __init__ is the user
        # exception's, whose signature is unknown.
        BaseException.__init__(self, message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback
        self.cause = cause

    @classmethod
    def from_remote(
        cls,
        message: str,
        *,
        type_name: str = "",
        remote_traceback: str = "",
        cause: BaseException | None = None,
        user_type: type | None = None,
    ) -> TaskError:
        """The error for a task that raised: of the dual class when one can be made.

        The user type is ``user_type``, else the cause's, else the builtin
        exception ``type_name`` names (a cause that did not unpickle).
        """
        user_type = user_type or _user_type_of(cause) or _builtin_type(type_name)
        if user_type is not None:
            dual = _dual_class(user_type)
            if dual is not None:
                try:
                    return dual(message, type_name=type_name, remote_traceback=remote_traceback, cause=cause)
                except Exception:  # a user type whose __new__ wants other arguments
                    pass
        return cls(message, type_name=type_name, remote_traceback=remote_traceback, cause=cause)

    def __str__(self) -> str:
        head = f"{self.type_name}: {self.args[0]}" if self.type_name else str(self.args[0])
        if self.remote_traceback:
            return f"{head}\n\nRemote traceback:\n{self.remote_traceback.rstrip()}"
        return head

    def __reduce__(self) -> Any:
        return (
            _rebuild_task_error,
            (_user_type_of(self) if type(self) is not TaskError else None, self.args[0], self.type_name, self.remote_traceback, self.cause),
        )


def _builtin_type(type_name: str) -> type | None:
    found = getattr(builtins, type_name, None) if type_name and "." not in type_name else None
    return found if isinstance(found, type) and issubclass(found, Exception) else None


def _user_type_of(exc: BaseException | None) -> type | None:
    """The user exception type a TaskError for ``exc`` should also be."""
    if exc is None:
        return None
    if isinstance(exc, TaskError):
        return getattr(type(exc), "_user_type", None)  # a nested task's failure: the same type
    if isinstance(exc, OwnershipError) or not isinstance(exc, Exception):
        return None  # our own errors are not wrapped (as Ray does not wrap its own)
    return type(exc)


class _DualTaskError(TaskError):
    """Base of the ``TaskError(<user type>)`` classes."""

    _user_type: type

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: the user exception's own fields.
        if name.startswith("__") or name == "cause":
            raise AttributeError(name)
        cause = self.__dict__.get("cause")
        if cause is None:
            raise AttributeError(name)
        return getattr(cause, name)


_DUALS: dict[type, type | None] = {}


def _dual_class(user_type: type) -> type | None:
    """``TaskError(user_type)``, made once per type; None when the type refuses."""
    try:
        return _DUALS[user_type]
    except KeyError:
        pass
    except TypeError:  # an unhashable class: no cache, but still try
        return _make_dual(user_type)
    dual = _DUALS[user_type] = _make_dual(user_type)
    return dual


def _make_dual(user_type: type) -> type | None:
    name = f"TaskError({user_type.__name__})"
    try:
        dual = type(name, (_DualTaskError, user_type), {"_user_type": user_type, "__module__": "ownership", "__qualname__": name})
    except Exception:  # a layout conflict, a metaclass or __init_subclass__ that refuses
        return None
    return dual


def _rebuild_task_error(user_type: type | None, message: str, type_name: str, remote_traceback: str, cause: BaseException | None) -> TaskError:
    if user_type is None:
        return TaskError(message, type_name=type_name, remote_traceback=remote_traceback, cause=cause)
    return TaskError.from_remote(message, type_name=type_name, remote_traceback=remote_traceback, cause=cause, user_type=user_type)


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
    """No ownership runtime here: start one (``ownership.cluster()``), attach
    to one (``ownership.connect()``), or use :mod:`ownership.blocking` from
    synchronous code."""
