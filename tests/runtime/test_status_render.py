"""``ownership status`` and ``memory`` read well at 80 and 120 columns.

The tables are rendered from a snapshot shaped like the one the processes
answer with (``ClusterSnapshot``), with long addresses (a host, a port and
an incarnation) so that a column too narrow would have to cut them.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ownership.runtime.cli import human_size, render_memory, render_status
from ownership.runtime.status import ClusterSnapshot, demand_rows, memory_rows

HEAD = "10.20.30.40:40001#0a1b2c3d"
N1 = "10.20.30.40:41021#1b2c3d4e"
N2 = "10.20.30.41:41022#2c3d4e5f"
N3 = "10.20.30.42:41023#3d4e5f60"  # dead
DRIVER = "10.20.30.40:45061#4e5f6071"
W1 = "10.20.30.40:43971#5f607182"
ACTOR = "10.20.30.41:45571#60718293"


def _entry(oid, owner, *, status="ready", task_id=None, kind="object", locations=(), has_value=False, size=None, local=1, borrowers=()):
    return {
        "object_id": oid, "owner": owner, "owned": True, "kind": kind, "local": local, "submitted": 0,
        "contained_in": [], "borrowers": {b: 1 for b in borrowers}, "status": status, "task_id": task_id,
        "has_value": has_value, "size": size, "locations": list(locations),
    }


def snapshot() -> ClusterSnapshot:
    head = {
        "nodes": {
            N1: {"alive": True, "total": {"CPU": 2.0}, "available": {"CPU": 0.0}},
            N2: {"alive": True, "total": {"CPU": 2.0}, "available": {"CPU": 1.0}},
            N3: {"alive": False, "total": {"CPU": 2.0}, "available": {"CPU": 2.0}},
        }
    }
    nodes = {
        N1: {
            "scheduler": {
                "total": {"CPU": 2.0},
                "available": {"CPU": 0.0},
                "workers": {DRIVER: {"state": "driver"}, W1: {"state": "leased"}},
            },
            "store": {f"{DRIVER}/t1.r": {"owner": DRIVER, "size": 2 * 2**20 + 300}, f"{DRIVER}/p2": {"owner": DRIVER, "size": 300_000}},
        },
        N2: {
            "scheduler": {"total": {"CPU": 2.0}, "available": {"CPU": 1.0}, "workers": {ACTOR: {"state": "leased"}}},
            "store": {f"{DRIVER}/p2": {"owner": DRIVER, "size": 300_000}},
        },
    }
    details = {
        f"{DRIVER}/t1": {"name": "make_array", "kind": "task", "return_id": f"{DRIVER}/t1.r", "resources": {"CPU": 1.0}, "state": "done"},
        f"{DRIVER}/t4": {"name": "slow", "kind": "task", "return_id": f"{DRIVER}/t4.r", "resources": {"CPU": 1.0}, "state": "running"},
        f"{DRIVER}/t5": {"name": "slow", "kind": "task", "return_id": f"{DRIVER}/t5.r", "resources": {"CPU": 1.0}, "state": "queued"},
        f"{DRIVER}/t6": {"name": "slow", "kind": "task", "return_id": f"{DRIVER}/t6.r", "resources": {"CPU": 1.0}, "state": "queued"},
        f"{DRIVER}/t7": {"name": "train", "kind": "task", "return_id": f"{DRIVER}/t7.r", "resources": {"CPU": 1.0, "GPU": 1.0}, "state": "queued"},
        f"{DRIVER}/t8": {"name": "Counter", "kind": "actor_create", "return_id": f"{DRIVER}/t8.r", "resources": {}, "state": "done"},
        f"{DRIVER}/t9": {
            "name": "incr", "kind": "actor_method", "method": "incr", "actor_id": f"{DRIVER}/t8.r",
            "return_id": f"{DRIVER}/t9.r", "resources": {}, "state": "done",
        },
    }
    workers = {
        DRIVER: {
            "driver": True,
            "pid": 1001,
            "task_details": details,
            "running_details": {},
            "objects": {
                f"{DRIVER}/t1.r": _entry(f"{DRIVER}/t1.r", DRIVER, task_id=f"{DRIVER}/t1", locations=[N1], borrowers=[W1]),
                f"{DRIVER}/p2": _entry(f"{DRIVER}/p2", DRIVER, locations=[N1, N2]),
                f"{DRIVER}/p3": _entry(f"{DRIVER}/p3", DRIVER, has_value=True, size=5),
                f"{DRIVER}/t4.r": _entry(f"{DRIVER}/t4.r", DRIVER, status="pending", task_id=f"{DRIVER}/t4"),
                f"{DRIVER}/t7.r": _entry(f"{DRIVER}/t7.r", DRIVER, status="pending", task_id=f"{DRIVER}/t7"),
                f"{DRIVER}/t8.r": _entry(f"{DRIVER}/t8.r", DRIVER, kind="actor", task_id=f"{DRIVER}/t8", locations=[ACTOR]),
                f"{DRIVER}/t9.r": _entry(f"{DRIVER}/t9.r", DRIVER, task_id=f"{DRIVER}/t9", has_value=True, size=12),
            },
        },
        W1: {"pid": 1002, "running_details": {f"{DRIVER}/t4": {"name": "slow", "kind": "task", "owner": DRIVER}}, "objects": {}},
        ACTOR: {"pid": 1003, "actor_class": "Counter", "running_details": {}, "objects": {}},
    }
    return ClusterSnapshot(head=head, nodes=nodes, workers=workers)


def _render(fn, width: int, *args) -> str:
    buf = io.StringIO()
    fn(snapshot(), Console(file=buf, width=width, color_system=None, highlight=False), *args)
    return buf.getvalue()


def _unwrapped(text: str) -> str:
    """The text with table cells' wrapped lines joined: what a reader reads across."""
    return " ".join(text.split())


@pytest.mark.parametrize("width", [80, 120])
def test_status_shows_whole_addresses_roles_totals_and_demand(width):
    out = _render(render_status, width, HEAD)
    assert all(len(line) <= width for line in out.splitlines())
    assert "…" not in out  # nothing is cut
    for address in (N1, N2, N3, DRIVER, W1, ACTOR):
        assert address in out, (address, out)  # whole, on one line
    text = _unwrapped(out)
    assert f"cluster of head {HEAD.partition('#')[0]}: 2 nodes alive, 1 dead, 2 workers (1 actor), 1 driver" in text
    assert "total 3/4 CPU 2 3 (2.57 MiB)" in text
    # Nodes by number in the processes table, so every address fits whole.
    assert f"1 {N1} 2/2 CPU" in text and f"3 {N3} dead 0 0" in text
    assert f"{DRIVER} 1 driver 1001 4 tasks in flight" in text
    assert f"{W1} 1 worker 1002 running slow" in text
    assert f"{ACTOR} 2 actor Counter 1003" in text
    assert "train 1 1 CPU, 1 GPU driver (pid 1001) infeasible" in text
    assert "slow 2 1 CPU driver (pid 1001) a worker" in text


@pytest.mark.parametrize("width", [80, 120])
def test_memory_fits_without_cutting_anything(width):
    out = _render(render_memory, width)
    assert all(len(line) <= width for line in out.splitlines())
    assert "…" not in out
    assert N1 in out and N2 not in out.split("with their owners")[0].replace(f"node {N1}", "")
    for word in ("make_array()", "Counter.remote()", "Counter.incr()", "293 KiB", "2 MiB", "borrowed by", "2 copies"):
        assert word in out


def test_memory_groups_by_node_with_sizes_and_the_call_that_made_them():
    # At 120 columns every row is on one line: the cells read across.
    out = _render(render_memory, 120)
    text = _unwrapped(out)
    assert "7 objects, 2.29 MiB in all" in text
    assert f"node {N1}: 2 objects, 2.29 MiB in shared memory" in text
    assert "t1.r 2 MiB make_array() driver (pid 1001) ready 1 local; borrowed by worker (pid 1002)" in text
    assert "p2 293 KiB put() driver (pid 1001) ready, 2 copies" in text
    assert "t8.r - Counter.remote()" in text
    assert "t9.r 12 B Counter.incr()" in text
    assert "t7.r - train() driver (pid 1001) pending" in text
    # Grouped by where each object lives: the node's store first, then owners.
    assert text.index(f"node {N1}") < text.index("with their owners")


def test_demand_marks_only_what_no_node_can_run_infeasible():
    rows = {(r["name"], r["infeasible"]) for r in demand_rows(snapshot())}
    assert rows == {("slow", False), ("train", True)}


def test_memory_rows_name_the_call_that_made_each_object():
    made = {r["object_id"].rsplit("/", 1)[1]: r["made_by"] for r in memory_rows(snapshot())}
    assert made == {"t1.r": "make_array()", "p2": "put()", "p3": "put()", "t4.r": "slow()", "t7.r": "train()",
                    "t8.r": "Counter.remote()", "t9.r": "Counter.incr()"}


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (5, "5 B"), (1023, "1023 B"), (1024, "1 KiB"), (300_000, "293 KiB"), (2 * 2**20 + 300, "2 MiB"),
                    (1.5 * 2**30, "1.5 GiB"), (None, "-")]
)
def test_human_size(n, text):
    assert human_size(n) == text
