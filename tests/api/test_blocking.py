"""ownership.blocking: the driver on a thread of its own, used from plain synchronous code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import cloudpickle
import pytest
import trio

import ownership
from ownership.runtime.auth import generate_token, write_token
from ownership.runtime.cluster import spawn_service

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@ownership.remote
def square(x):
    return x * x


@ownership.remote
def divide(a, b):
    return a / b


@ownership.remote
async def forever():
    await trio.sleep_forever()


@ownership.remote
class Counter:
    def __init__(self, start):
        self.n = start

    def incr(self):
        self.n += 1
        return self.n


def test_the_module_docstring_example_runs_as_a_script(tmp_path) -> None:
    doc = ownership.blocking.__doc__
    block = _code_block(doc)
    script = tmp_path / "example.py"
    script.write_text(block)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[0, 1, 4, 9]\n1\n"
    assert result.stderr == ""  # a clean run prints nothing but its output


def _code_block(doc: str) -> str:
    """The indented block after the docstring's first ``::``, dedented."""
    import textwrap

    lines = doc.split("::\n", 1)[1].splitlines()
    block: list[str] = []
    for line in lines:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


@pytest.fixture(scope="module")
def session():
    with ownership.blocking.cluster(nodes=1, num_cpus=2) as c:
        yield c


def _until(predicate, what: str, timeout: float = 10.0) -> None:
    """Poll a real condition, within a bound."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def test_a_driver_that_cannot_start_raises_in_the_caller() -> None:
    with pytest.raises(ValueError, match="at least one node"):
        ownership.blocking.cluster(nodes=0)
    with pytest.raises(ownership.NoRuntimeError):
        square.remote(1)


def test_tasks_actors_and_objects_from_synchronous_code(session) -> None:
    refs = [square.remote(i) for i in range(5)]
    assert session.get(refs, timeout=30) == [0, 1, 4, 9, 16]
    assert ownership.get(refs[2], timeout=30) == 4  # the module API works too
    ready, not_ready = session.wait(refs, num_returns=5, timeout=30)
    assert ready == refs and not_ready == []
    x = session.put(20)
    assert session.get(square.remote(x), timeout=30) == 400
    counter = Counter.remote(10)
    assert session.get([counter.incr.remote() for _ in range(3)], timeout=30) == [11, 12, 13]
    assert session.get(Counter.remote(0).incr.remote(), timeout=30) == 1
    with pytest.raises(ZeroDivisionError):
        session.get(divide.remote(1, 0), timeout=30)
    never = forever.remote()
    with pytest.raises(ownership.GetTimeoutError):
        session.get(never, timeout=0.05)
    session.cancel(never)
    with pytest.raises(ownership.TaskCancelledError):
        session.get(never, timeout=30)


def test_other_threads_of_the_process_use_the_driver_too(session) -> None:
    def work(i: int) -> int:
        return ownership.get(square.remote(i), timeout=30)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(work, range(8))) == [i * i for i in range(8)]


def test_ctrl_c_interrupts_a_blocking_get_promptly_and_withdraws_it(session) -> None:
    ref = forever.remote()
    driver = session.driver
    sent: list[float] = []

    def interrupt() -> None:
        _until(lambda: any(r.waiters for r in list(driver.core.refs.table.values())), "the get is waiting")
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        session.get(ref, timeout=30)
    assert time.monotonic() - sent[0] < 2.0
    _until(lambda: not any(r.waiters for r in list(driver.core.refs.table.values())), "the get is withdrawn")
    session.cancel(ref)
    assert session.get(square.remote(3), timeout=30) == 9  # the driver goes on


def test_works_where_an_asyncio_loop_runs_in_the_calling_thread(session) -> None:
    # A notebook cell: an asyncio loop runs in this thread already.
    async def cell() -> tuple:
        blocking = ownership.get(square.remote(6), timeout=30)
        awaited = await square.remote(7)
        return blocking, awaited

    assert asyncio.run(cell()) == (36, 49)


def test_await_ref_under_trio_in_another_thread(session) -> None:
    async def main() -> int:
        with trio.fail_after(30):
            return await square.remote(8)

    assert trio.run(main) == 64


def test_one_session_per_process(session) -> None:
    with pytest.raises(ownership.OwnershipError, match="already attached"):
        ownership.blocking.cluster(nodes=1, num_cpus=1)


def test_connect_attaches_to_a_running_cluster_and_close_detaches(tmp_path, session) -> None:
    session.close()  # the module's session gives way (one per process)
    with pytest.raises(ownership.NoRuntimeError):
        square.remote(1)
    token_file = write_token(generate_token(), tmp_path / "cluster.token")
    common = ["--tick", "0.1", "--node-timeout", "5"]
    procs: list[subprocess.Popen] = []
    try:
        head, head_address = spawn_service("head", token_file, *common)
        procs.append(head)
        node, node_address = spawn_service(
            "node", token_file, *common, "--head", head_address, "--num-cpus", "1", "--session", secrets.token_hex(4)
        )
        procs.append(node)
        c = ownership.blocking.connect(node_address, token_file=token_file)
        try:
            assert c.get(square.remote(9), timeout=30) == 81
            ref = c.put(b"kept")
            oid = c.driver.core.refs.get_ref(ref.object_id).object_id
            del ref
            gc.collect()
            _until(lambda: c.driver.core.refs.get_ref(oid) is None, "the dropped ref is released")
        finally:
            c.close()
        with pytest.raises(ownership.NoRuntimeError):
            square.remote(1)
        c.close()  # idempotent
    finally:
        for proc in procs:
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=30)
            proc.stdout.close()

