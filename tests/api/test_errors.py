"""Errors as a Ray user expects them: catchable as the remote type, with the
user's file and line in the remote traceback and no runtime frames."""

from __future__ import annotations

import asyncio
import copy
import pickle

import pytest
import trio

import ownership
from ownership.errors import OwnershipError, TaskError
from ownership.runtime.values import UnpicklableValue
from ownership.testing import memory_cluster


@ownership.remote
def divide(a, b):
    return a / b


@ownership.remote
def outer(x):
    # A sync task that waits on a failing nested task and lets its error through.
    return ownership.get(divide.remote(x, 0)) + 1


class Sealed(Exception):
    """A user exception type that refuses subclasses."""

    def __init_subclass__(cls, **kwargs):
        raise TypeError("Sealed cannot be subclassed")


@ownership.remote
def raise_sealed():
    raise Sealed("sealed one")


class WithFields(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


@ownership.remote
def raise_with_fields():
    raise WithFields(7, "seven")


async def test_remote_error_is_catchable_as_its_own_type() -> None:
    async with memory_cluster():
        with pytest.raises(ZeroDivisionError) as info:
            await divide.remote(1, 0)
        err = info.value
        assert isinstance(err, TaskError) and isinstance(err, OwnershipError)
        assert type(err).__name__ == "TaskError(ZeroDivisionError)"
        assert isinstance(err.cause, ZeroDivisionError) and not isinstance(err.cause, TaskError)
        assert str(err).startswith("ZeroDivisionError: division by zero")


async def test_remote_error_keeps_the_user_exception_fields() -> None:
    async with memory_cluster():
        with pytest.raises(WithFields) as info:
            await raise_with_fields.remote()
        assert info.value.code == 7 and info.value.detail == "seven"


async def test_remote_error_of_a_type_that_cannot_be_subclassed_is_a_plain_task_error() -> None:
    async with memory_cluster():
        with pytest.raises(TaskError) as info:
            await raise_sealed.remote()
        err = info.value
        assert type(err) is TaskError and not isinstance(err, Sealed)
        assert isinstance(err.cause, Sealed) and "sealed one" in str(err)


async def test_remote_traceback_shows_the_users_file_and_line_without_runtime_frames() -> None:
    # Defined here, so cloudpickle ships it by value (as for a script's
    # __main__ or a notebook cell): the file name must survive the trip.
    def local_failure(n):
        items = [1, 2]
        return items[n]

    fn = ownership.remote(local_failure)
    async with memory_cluster():
        with pytest.raises(IndexError) as info:
            await fn.remote(5)
        text = str(info.value)
        assert f'File "{__file__}"' in text, text
        assert "in local_failure" in text and "return items[n]" in text
        assert "<dynamic-code>" not in text
        assert "ownership/runtime" not in text and "/trio/" not in text, text
        assert "task local_failure()" in text


async def test_nested_task_error_keeps_the_outer_traceback_and_the_inner_as_cause() -> None:
    async with memory_cluster(workers_per_node=2):
        with pytest.raises(ZeroDivisionError) as info:
            await outer.remote(3)
        err = info.value
        text = str(err)
        assert "in outer" in text and "ownership.get(divide.remote(x, 0))" in text, text
        assert "in divide" in text and "return a / b" in text, text
        assert text.index("in outer") < text.index("in divide")
        assert "ownership/runtime" not in text, text
        inner = err.cause
        assert isinstance(inner, TaskError) and isinstance(inner, ZeroDivisionError)
        assert "in divide" in str(inner) and "in outer" not in str(inner)
        assert isinstance(inner.cause, ZeroDivisionError)


def test_task_error_of_a_user_type_pickles_and_copies() -> None:
    err = TaskError.from_remote("division by zero", type_name="ZeroDivisionError", cause=ZeroDivisionError("division by zero"))
    assert isinstance(err, ZeroDivisionError)
    for again in (pickle.loads(pickle.dumps(err)), copy.copy(err), copy.deepcopy(err)):
        assert type(again) is type(err) and str(again) == str(err)
        assert isinstance(again.cause, ZeroDivisionError)


def test_unpicklable_value_is_an_ownership_error() -> None:
    assert issubclass(UnpicklableValue, OwnershipError)
    assert ownership.UnpicklableValue is UnpicklableValue


async def test_unpicklable_argument_raises_unpicklable_value() -> None:
    import threading

    async with memory_cluster():
        with pytest.raises(ownership.OwnershipError, match="cannot send"):
            divide.remote(threading.Lock(), 1)


def test_no_runtime_error_points_to_cluster_and_connect() -> None:
    with pytest.raises(ownership.NoRuntimeError) as info:
        divide.remote(1, 2)
    text = str(info.value)
    assert "ownership.cluster()" in text and "ownership.connect()" in text and "ownership.blocking" in text
    assert "memory_cluster" not in text


def test_cluster_under_asyncio_says_it_needs_trio() -> None:
    async def main() -> None:
        async with ownership.cluster():
            pass

    with pytest.raises(ownership.NoRuntimeError, match="trio") as info:
        asyncio.run(main())
    assert "ownership.blocking" in str(info.value)


def test_connect_under_asyncio_says_it_needs_trio() -> None:
    async def main() -> None:
        async with ownership.connect("127.0.0.1:1"):
            pass

    with pytest.raises(ownership.NoRuntimeError, match="trio"):
        asyncio.run(main())


@ownership.remote
class Counter:
    def incr(self) -> int:
        return 1


async def test_calling_an_actor_method_directly_says_to_use_remote() -> None:
    async with memory_cluster():
        counter = Counter.remote()
        with pytest.raises(TypeError, match=r"counter\.incr\.remote\(\.\.\.\)|\.incr\.remote\(") as info:
            counter.incr()
        assert "remote" in str(info.value)
        with trio.fail_after(10):
            assert await counter.incr.remote() == 1
