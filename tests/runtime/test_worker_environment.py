"""What a worker starts with: the environment its node gives it."""

from __future__ import annotations


from ownership.runtime.process import WORKER_THREAD_VARS, worker_environment


def test_worker_environment_gives_one_thread_per_numerical_pool() -> None:
    env = worker_environment({"PATH": "/usr/bin"})
    assert env["PATH"] == "/usr/bin"
    assert {name: env[name] for name in WORKER_THREAD_VARS} == dict.fromkeys(WORKER_THREAD_VARS, "1")


def test_worker_environment_keeps_a_thread_count_the_node_was_given() -> None:
    env = worker_environment({"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": ""})
    assert env["OPENBLAS_NUM_THREADS"] == "4" and env["OMP_NUM_THREADS"] == ""
    assert env["MKL_NUM_THREADS"] == "1"
