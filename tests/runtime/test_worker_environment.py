"""What a worker starts with: the environment its node gives it, the modules it preloads."""

from __future__ import annotations

import sys

from ownership.runtime.process import WORKER_THREAD_VARS, preload_in_background, worker_environment


def test_worker_environment_gives_one_thread_per_numerical_pool() -> None:
    env = worker_environment({"PATH": "/usr/bin"})
    assert env["PATH"] == "/usr/bin"
    assert {name: env[name] for name in WORKER_THREAD_VARS} == dict.fromkeys(WORKER_THREAD_VARS, "1")


def test_worker_environment_keeps_a_thread_count_the_node_was_given() -> None:
    env = worker_environment({"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": ""})
    assert env["OPENBLAS_NUM_THREADS"] == "4" and env["OMP_NUM_THREADS"] == ""
    assert env["MKL_NUM_THREADS"] == "1"


def test_preload_imports_the_modules_that_are_installed(tmp_path, monkeypatch, caplog) -> None:
    (tmp_path / "preload_probe_ok.py").write_text("VALUE = 1\n")
    (tmp_path / "preload_probe_broken.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("preload_probe_ok", "preload_probe_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    thread = preload_in_background(["preload_probe_missing", "preload_probe_broken", "preload_probe_ok"])
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert sys.modules["preload_probe_ok"].VALUE == 1  # after a missing and a broken one
    assert "preload_probe_missing" not in sys.modules
    assert "preloading preload_probe_broken failed: RuntimeError: broken on import" in caplog.text
