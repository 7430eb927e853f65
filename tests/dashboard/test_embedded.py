"""``ownership.cluster()`` serves the dashboard unless told not to."""

from __future__ import annotations

import urllib.request

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

import ownership
from ownership.runtime.cluster import dashboard_default

pytestmark = pytest.mark.slow


@ownership.remote
def square(x: int) -> int:
    return x * x


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


async def test_embedded_cluster_serves_metrics_of_its_tasks_by_default() -> None:
    with trio.fail_after(90):
        async with ownership.cluster(nodes=1, num_cpus=1) as cluster:
            assert cluster.dashboard_url is not None and cluster.dashboard_url.startswith("http://127.0.0.1:")
            assert await ownership.get([square.remote(i) for i in range(5)]) == [0, 1, 4, 9, 16]
            while True:  # the head polls every half second: bounded by fail_after
                text = await trio.to_thread.run_sync(_get, cluster.dashboard_url + "metrics")
                samples = {
                    (s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(text)
                    for s in family.samples
                }
                if samples.get(("ownership_tasks_finished_total", (("function", "square"),))) == 5:
                    break
                await trio.sleep(0.1)
            assert samples[("ownership_nodes", (("state", "alive"),))] == 1
            assert samples[("ownership_workers", (("role", "driver"),))] == 1


def test_dashboard_default_follows_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("OWNERSHIP_DASHBOARD", raising=False)
    assert dashboard_default()
    for off in ("0", "no", "off", "False"):
        monkeypatch.setenv("OWNERSHIP_DASHBOARD", off)
        assert not dashboard_default()
    monkeypatch.setenv("OWNERSHIP_DASHBOARD", "1")
    assert dashboard_default()
