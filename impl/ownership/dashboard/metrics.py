"""``/metrics``: the collector's figures in the Prometheus text format.

Built at each scrape from the collector (a prometheus-client custom
collector on a registry of its own), so nothing is counted twice and
nothing is kept beside what the pages show.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector as _PromCollector

from .collector import Collector

__all__ = ["metrics_text", "registry_for"]

#: seconds: detection is bounded by the node timeout (5 s by default),
#: recovery by a task's run time after it
_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _histogram(name: str, doc: str, values: list[float]) -> HistogramMetricFamily:
    buckets = [(str(b), float(sum(1 for v in values if v <= b))) for b in _BUCKETS]
    buckets.append(("+Inf", float(len(values))))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=float(sum(values)))


class _ClusterMetrics(_PromCollector):
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        c = self.collector
        fn = ["function"]
        submitted = CounterMetricFamily("ownership_tasks_submitted", "Tasks submitted, by function.", labels=fn)
        finished = CounterMetricFamily("ownership_tasks_finished", "Task results returned to their owners, by function.", labels=fn)
        failed = CounterMetricFamily("ownership_tasks_failed", "Tasks ended with an error, by function.", labels=fn)
        retried = CounterMetricFamily("ownership_tasks_retried", "Tasks pushed again (retries and reconstructions), by function.", labels=fn)
        states = GaugeMetricFamily("ownership_tasks", "Tasks now pending or running, by function and state.", labels=["function", "state"])
        for name, counts in sorted(c.function_counts().items()):
            submitted.add_metric([name], counts["submitted"])
            finished.add_metric([name], counts["finished"])
            failed.add_metric([name], counts["failed"])
            retried.add_metric([name], counts["retried"])
            for state in ("pending", "running"):
                states.add_metric([name, state], counts[state])
        yield from (submitted, finished, failed, retried, states)

        nodes = GaugeMetricFamily("ownership_nodes", "Nodes the head knows, alive or dead.", labels=["state"])
        head_nodes = c.head_snapshot.get("nodes", {})
        alive = sum(1 for r in head_nodes.values() if r.get("alive"))
        nodes.add_metric(["alive"], alive)
        nodes.add_metric(["dead"], len(head_nodes) - alive)
        yield nodes

        store_objects = GaugeMetricFamily("ownership_store_objects", "Objects in a node's store.", labels=["node"])
        store_bytes = GaugeMetricFamily("ownership_store_bytes", "Bytes of the objects in a node's store.", labels=["node"])
        leases = GaugeMetricFamily("ownership_leases", "Worker leases granted by a node.", labels=["node"])
        resources_total = GaugeMetricFamily("ownership_resources_total", "Resources a node offers.", labels=["node", "resource"])
        resources_free = GaugeMetricFamily("ownership_resources_available", "Resources of a node not leased.", labels=["node", "resource"])
        for node, snap in sorted(c._node_snapshots().items()):
            store = snap.get("store", {})
            sched = snap.get("scheduler", {})
            store_objects.add_metric([node], len(store))
            store_bytes.add_metric([node], sum(o.get("size", 0) for o in store.values()))
            leases.add_metric([node], len(sched.get("leases", {})))
            for res, amount in sorted(sched.get("total", {}).items()):
                resources_total.add_metric([node, res], amount)
            for res, amount in sorted(sched.get("available", {}).items()):
                resources_free.add_metric([node, res], amount)
        yield from (store_objects, store_bytes, leases, resources_total, resources_free)

        workers = GaugeMetricFamily("ownership_workers", "Worker processes alive, by role.", labels=["role"])
        owned = GaugeMetricFamily("ownership_owned_objects", "Objects in the ownership tables, summed over the live processes.")
        borrowed = GaugeMetricFamily("ownership_borrowed_refs", "Borrowed references held, summed over the live processes.")
        borrowers = GaugeMetricFamily("ownership_borrowers", "Borrowers the owners wait on, summed over owned objects.")
        inline = GaugeMetricFamily("ownership_inline_bytes", "Bytes of small values kept inline in the owners' tables.")
        roles: dict[str, int] = {"driver": 0, "actor": 0, "task": 0}
        totals = {"owned": 0, "borrowed": 0, "borrowers": 0, "inline_bytes": 0}
        for proc in c.processes.values():
            if proc.role not in ("worker", "driver") or not proc.alive:
                continue
            s = proc.summary
            roles["driver" if proc.role == "driver" else ("actor" if s.get("actor_id") else "task")] += 1
            for key in totals:
                totals[key] += s.get(key, 0)
        for role, n in roles.items():
            workers.add_metric([role], n)
        owned.add_metric([], totals["owned"])
        borrowed.add_metric([], totals["borrowed"])
        borrowers.add_metric([], totals["borrowers"])
        inline.add_metric([], totals["inline_bytes"])
        yield from (workers, owned, borrowed, borrowers, inline)

        messages = CounterMetricFamily("ownership_messages_sent", "Protocol messages the cores sent, by type.", labels=["type"])
        value_bytes = CounterMetricFamily(
            "ownership_message_value_bytes", "Bytes of user values (functions, arguments, results) the cores' messages carried, by type.", labels=["type"]
        )
        for mtype, (count, nbytes) in sorted(c.messages_sent().items()):
            messages.add_metric([mtype], count)
            value_bytes.add_metric([mtype], nbytes)
        yield from (messages, value_bytes)

        deaths = CounterMetricFamily("ownership_deaths", "Deaths published by the head, by kind (stopped workers excluded).", labels=["kind"])
        kinds = {"node": 0, "worker": 0}
        for d in c.deaths:
            if c.is_failure(d):
                kinds[d.kind] = kinds.get(d.kind, 0) + 1
        for kind, n in sorted(kinds.items()):
            deaths.add_metric([kind], n)
        yield deaths
        yield _histogram(
            "ownership_failure_detection_seconds", "From the last heartbeat the head heard from a node to its death published.", c.detections
        )
        yield _histogram(
            "ownership_recovery_seconds", "From a death published to the result of a task run again because of it, at its owner.", c.recoveries()
        )
        dropped = CounterMetricFamily("ownership_dashboard_records_dropped", "Probe records lost because the dashboard read too late.")
        dropped.add_metric([], c.records_dropped)
        yield dropped


def registry_for(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ClusterMetrics(collector))
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
