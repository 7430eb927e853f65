"""What is measured, in which unit, at which size: shared by every system.

A *row* is one workload (one function per system); it yields one or more
*metrics* per repeat (the sync row yields p50 and p99 from the same round
trips). The table, the JSON and the chart are keyed by metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import attrs

__all__ = [
    "Metric",
    "Row",
    "Sizes",
    "ROWS",
    "METRICS",
    "FULL",
    "QUICK",
    "MIB",
    "parse_rows",
    "percentile",
    "median",
    "row_sizes_text",
]

MIB = 1024 * 1024


@attrs.frozen
class Metric:
    key: str
    title: str
    unit: str
    better: Literal["higher", "lower"]


@attrs.frozen
class Row:
    key: str
    title: str
    metrics: tuple[Metric, ...]
    #: Runs whose figures are thrown away before the repeats; 0 where a run
    #: destroys something expensive (recovery kills a node) and the rows
    #: before it already warmed the code paths.
    warmup: int = 1
    #: Needs the two-node layout (an object on another node's store).
    two_nodes: bool = False
    #: The field of :class:`Sizes` that says how many repeats the row gets.
    repeats_field: str = "repeats"


@attrs.frozen
class Sizes:
    """Every size a row uses; all systems get the same instance."""

    repeats: int
    sync_round_trips: int
    async_tasks: int
    actor_calls: int
    nested_outer: int
    nested_inner: int
    array_mib: int
    array_tasks: int
    remote_get_mib: int
    recovery_mib: int
    recovery_repeats: int
    borrow_refs: int
    borrow_chain: int
    #: the applications (examples/serving.py, examples/video.py)
    app_repeats: int
    serving_requests: int
    serving_clients: int
    serving_models: int
    serving_batch: int
    serving_timeout_ms: float
    serving_raw_side: int  # the preprocessed image is (4 * raw_side)^2 x 3 float32
    video_frames: int
    video_height: int
    video_width: int
    video_in_flight: int

    def to_json(self) -> dict[str, int]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, int]) -> Sizes:
        return cls(**data)


FULL = Sizes(
    repeats=5,
    sync_round_trips=500,
    async_tasks=5000,
    actor_calls=5000,
    nested_outer=10,
    nested_inner=100,
    array_mib=10,
    array_tasks=100,
    remote_get_mib=100,
    recovery_mib=10,
    recovery_repeats=7,
    borrow_refs=1000,
    borrow_chain=3,
    app_repeats=3,
    serving_requests=600,
    serving_clients=8,
    serving_models=2,
    serving_batch=8,
    serving_timeout_ms=10.0,
    serving_raw_side=56,  # 224 x 224 x 3 float32 = 588 KiB per image
    video_frames=300,
    video_height=240,  # 300 KiB float32 frames: in the node's store
    video_width=320,
    video_in_flight=8,
)

# Tiny, so that the smoke test runs every code path in seconds. The objects
# stay above the 100 KiB inline threshold (ours and Ray's) so that they still
# live in a node's store.
QUICK = Sizes(
    repeats=2,
    sync_round_trips=20,
    async_tasks=40,
    actor_calls=40,
    nested_outer=2,
    nested_inner=5,
    array_mib=1,
    array_tasks=3,
    remote_get_mib=2,
    recovery_mib=1,
    recovery_repeats=1,
    borrow_refs=20,
    borrow_chain=3,
    app_repeats=1,
    serving_requests=24,
    serving_clients=4,
    serving_models=2,
    serving_batch=4,
    serving_timeout_ms=5.0,
    serving_raw_side=8,
    video_frames=16,
    video_height=32,
    video_width=48,
    video_in_flight=4,
)

ROWS: tuple[Row, ...] = (
    Row("sync", "sync round trip of a no-op task", (
        Metric("sync_p50", "sync p50", "ms", "lower"),
        Metric("sync_p99", "sync p99", "ms", "lower"),
    )),
    # The price of owner recovery on the critical path: in a task (the
    # driver logs nothing, its objects live as long as the job), sync round
    # trips of a no-op task made with recoverable=True (logged at the head
    # before remote() returns, and its dispatch before its push) and
    # default ones, interleaved, in one run. Peers have no such feature.
    Row("recoverable", "sync round trip in a task: recoverable=True against the default", (
        Metric("recoverable_p50", "recoverable sync p50", "ms", "lower"),
        Metric("recoverable_default_p50", "default sync p50 (same task)", "ms", "lower"),
        Metric("recoverable_cost", "recoverable / default p50", "x", "lower"),
    )),
    Row("async", "no-op tasks from one driver", (
        Metric("async", "async", "tasks/s", "higher"),
    )),
    Row("actor", "async calls to one actor (1:1)", (
        Metric("actor", "actor calls", "calls/s", "higher"),
    )),
    # Counts every task: the outer ones and the ones they submit.
    Row("nested", "tasks each submitting and getting tasks", (
        Metric("nested", "nested", "tasks/s", "higher"),
    )),
    Row("array_ref", "numpy array put once, passed by reference", (
        Metric("array_ref", "array by ref", "tasks/s", "higher"),
    )),
    Row("array_value", "numpy array passed by value on every call", (
        Metric("array_value", "array by value", "tasks/s", "higher"),
    )),
    # From the put of the refs to the chain's answer back and the driver's
    # refs dropped; the release messages that follow are asynchronous in all
    # three systems and are not waited for.
    Row("borrow", "refs through a chain of borrowers, released", (
        Metric("borrow", "borrowing", "ms", "lower"),
    )),
    # Our nodes of one machine pass a copy by linking the holder's segment;
    # the second metric pulls from a holder that does not (the bytes cross
    # TCP, as between machines). The peers have one path, over TCP on one
    # machine as between machines, and report its figure for both.
    Row("remote_get", "get of an object held in another node's store", (
        Metric("remote_get", "remote get", "GB/s", "higher"),
        Metric("remote_get_tcp", "remote get, bytes over TCP", "GB/s", "higher"),
    ), two_nodes=True),
    Row("recovery", "SIGKILL of the holder of an object's only copy to its reconstructed value", (
        Metric("recovery", "recovery", "ms", "lower"),
    ), warmup=0, two_nodes=True, repeats_field="recovery_repeats"),
    # The paper's applications (Fig. 3), the same code on every system
    # (examples/serving.py, examples/video.py and their ports in bench/peers).
    Row("serving", "model serving: Preprocess task, Router actor batching to Model actors", (
        Metric("serving_ref", "serving by ref", "requests/s", "higher"),
        Metric("serving_ref_p50", "serving by ref p50", "ms", "lower"),
        Metric("serving_ref_p99", "serving by ref p99", "ms", "lower"),
        Metric("serving_value", "serving by value", "requests/s", "higher"),
        Metric("serving_value_p50", "serving by value p50", "ms", "lower"),
        Metric("serving_value_p99", "serving by value p99", "ms", "lower"),
    ), repeats_field="app_repeats"),
    Row("video", "video stabilisation: Decoder actor, per-frame Flow, CumSum, Smooth tasks", (
        Metric("video", "video", "frames/s", "higher"),
        Metric("video_p50", "video frame p50", "ms", "lower"),
        Metric("video_p99", "video frame p99", "ms", "lower"),
    ), repeats_field="app_repeats"),
)

ROW_BY_KEY = {row.key: row for row in ROWS}
METRICS: tuple[Metric, ...] = tuple(m for row in ROWS for m in row.metrics)
METRIC_BY_KEY = {m.key: m for m in METRICS}


def parse_rows(text: str | None) -> tuple[str, ...]:
    """Row keys from ``--rows a,b``: all rows when empty; unknown names are an error."""
    if not text:
        return tuple(row.key for row in ROWS)
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in wanted if name not in ROW_BY_KEY]
    if unknown:
        raise ValueError(f"unknown row(s) {', '.join(unknown)}; rows are {', '.join(ROW_BY_KEY)}")
    # Table order, whatever order they were given in.
    return tuple(row.key for row in ROWS if row.key in wanted)


def row_sizes_text(row: str, sizes: Sizes) -> str:
    """The size of a row in words, for the table."""
    s = sizes
    return {
        "sync": f"{s.sync_round_trips} round trips",
        "recoverable": f"{s.sync_round_trips} round trips of each",
        "async": f"{s.async_tasks} tasks",
        "actor": f"{s.actor_calls} calls",
        "nested": f"{s.nested_outer} x {s.nested_inner}",
        "array_ref": f"{s.array_mib} MiB x {s.array_tasks}",
        "array_value": f"{s.array_mib} MiB x {s.array_tasks}",
        "borrow": f"{s.borrow_refs} refs x {s.borrow_chain} borrowers",
        "remote_get": f"{s.remote_get_mib} MiB",
        "recovery": f"{s.recovery_mib} MiB",
        "serving": f"{s.serving_requests} requests, {s.serving_clients} clients, batch {s.serving_batch}, "
                   f"{s.serving_models} models, {4 * s.serving_raw_side}^2 px",
        "video": f"{s.video_frames} frames {s.video_height}x{s.video_width}, {s.video_in_flight} in flight",
    }[row]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): always one of the measured values."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
