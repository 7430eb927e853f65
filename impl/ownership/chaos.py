"""``ownership chaos``: a mixed workload with known answers under random kills.

An embedded cluster (:func:`ownership.cluster`, real processes over TCP)
runs jobs whose every result is known in advance, while a killer SIGKILLs
workers, workers that own futures (tasks that submitted tasks) and whole
nodes (each replaced with ``add_node``), and, with ``net_faults``, breaks
connections: the driver's to workers (``TCPTransport.cut``), and those of
the head, nodes and workers, each told by SIGUSR2 to break one of its own
(the services' fault hook, on with ``$OWNERSHIP_FAULT_CUTS``). A broken
connection resets: what it carried and its peer had not read is lost, and
the sender sends again what was not acknowledged, so the receiver gets
some frames twice and must deliver them once (``frames_resent``,
``duplicates_dropped``). It also delays messages: the head, a node or a
worker is paused (SIGSTOP) for up to two seconds, or half the node
timeout if less, and what it sends and what is sent to it waits (a
pause, not a death: below the head's timeout). Each result is checked; each failure
must be one of the documented errors (:data:`DOCUMENTED`); each ``get`` is
bounded, and one that runs past the bound is a hang, reported with its
job's description. After the run the workload drains and the cluster is
checked for leaks: objects, borrowed refs, stored copies, pulls, leases,
busy resources, queued requests and shared-memory segments still held, and
processes left running after the cluster stopped. With a log folder, the
processes' core steps are merged into one causal order and the run's
Scheduling event log (all of it, or its first ``check_lines`` lines) is
checked with TLC against the spec, the model sized from the run, a window
of lines at a time (``conformance/sized.py``): a line no behaviour of the
spec can take fails the run, and the report shows it with the state before
it.

The jobs (each a few tasks; ``JOBS`` names them):

- ``plain``: ``square(x)``, with 0, 1 or 3 retries;
- ``nested``: a task submits tasks (it owns their futures) and sums them;
- ``chain``: ``y = add(y, i)`` by reference, a ref passed as an argument;
- ``blob``: a 1 MiB value made by a task (stored at its node), transformed
  by another, digested by a third (by-reference arguments, lineage), with
  3 retries or none;
- ``borrow``: refs passed inside a list to a task that gets them (it
  borrows them) and to one that returns them inside its value;
- ``owner_borrow``: a task owns futures and lends them, inside a list, to a
  task it submits (a borrower of a worker-owned ref: OwnerDiedError when
  that worker dies);
- ``owner_dies``: a task returns futures it owns inside its value (the
  driver borrows them), and half the time the job kills that worker before
  it gets them: each gives its value or OwnerDiedError;
- ``put``: ``put`` objects, small and large, as direct arguments and
  inside containers;
- ``actor``: an actor counter called k times: the replies are 1..j in
  order, then only ActorDiedError (an actor is not restarted);
- ``wrap``: a task puts the refs it borrowed and returns that put (it owns a
  value holding refs it borrows); a second task gets that value from it,
  then the refs inside, while half the time the wrapper is killed: the
  values, or OwnerDiedError when the value was not served yet.

The seed fixes each job slot's sequence of jobs and arguments and the
killer's sequence of choices; the interleaving with the processes' timing
is the machine's, so a rerun with the same seed is the same workload and
kill schedule, not the same execution.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import logging
import math
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import trio

from . import api as ownership
from .errors import ActorDiedError, GetTimeoutError, ObjectLostError, OwnerDiedError, OwnershipError, TaskError, WorkerCrashedError
from .runtime.process import FAULT_CUTS_ENV
from .runtime.pids import pid_alive

__all__ = ["ChaosOptions", "ChaosReport", "DOCUMENTED", "JOBS", "add_subparsers", "run_chaos"]

#: the errors a get may raise under crashes (README "The API"): anything else is a finding
DOCUMENTED = frozenset(t.__name__ for t in (OwnerDiedError, ObjectLostError, WorkerCrashedError, ActorDiedError))

BLOB_SIZE = 1 << 20  # large enough to live in a node's shared-memory store


# ---------------------------------------------------------------------------
# Task bodies (workers import them from this module)
# ---------------------------------------------------------------------------


class ChaosMismatch(Exception):
    """Raised inside a task that got a wrong value from a task it called."""


def _work(seconds: float) -> None:
    # Simulated work, so that kills land in the middle of tasks.
    if seconds > 0:
        time.sleep(seconds)


class _OwnerMark:
    """A file naming this worker while its task owns futures: the killer's
    list of owners to kill. Removed when the task ends."""

    def __init__(self, directory: str) -> None:
        self.path = Path(directory, f"{os.getpid()}-{os.urandom(4).hex()}")

    def __enter__(self) -> None:
        self.path.write_text("")

    def __exit__(self, *exc: Any) -> None:
        self.path.unlink(missing_ok=True)


@ownership.remote
def square(x: int, work: float = 0.0) -> int:
    _work(work)
    return x * x


@ownership.remote
def add(a: int, b: int, work: float = 0.0) -> int:
    _work(work)
    return a + b


@ownership.remote
def fanout(x: int, n: int, work: float, owners: str, bound: float) -> int:
    """Owns ``n`` futures of its own, and sums them."""
    with _OwnerMark(owners):
        refs = [square.remote(x + i, work) for i in range(n)]
        return sum(ownership.get(refs, timeout=bound))


def _pattern(seed: int, size: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def _rotate(data: bytes, k: int) -> bytes:
    k %= len(data)
    return data[k:] + data[:k]


@ownership.remote
def make_blob(seed: int, size: int, work: float = 0.0) -> bytes:
    _work(work)
    return _pattern(seed, size)


@ownership.remote
def rotate_blob(data: bytes, k: int, work: float = 0.0) -> bytes:
    _work(work)
    return _rotate(data, k)


@ownership.remote
def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@ownership.remote
def digest_all(refs: list, bound: float) -> list:
    """A borrower: gets the refs it was given inside a list."""
    return [hashlib.sha256(v).hexdigest() for v in ownership.get(refs, timeout=bound)]


@ownership.remote
def sum_refs(refs: list, bound: float, work: float = 0.0) -> int:
    """A borrower: gets the refs it was given inside a list."""
    _work(work)
    return sum(ownership.get(refs, timeout=bound))


@ownership.remote
def keep_return(refs: list, work: float = 0.0) -> list:
    """A borrower that passes the refs back inside its value."""
    _work(work)
    return list(refs)


@ownership.remote
def owner_lends(x: int, n: int, work: float, owners: str, bound: float) -> int:
    """Owns futures and lends them, inside a list, to a task it submits."""
    with _OwnerMark(owners):
        refs = [square.remote(x + i, work) for i in range(n)]
        total = ownership.get(sum_refs.remote(refs, bound, work), timeout=bound)
        direct = sum(ownership.get(refs, timeout=bound))
        if total != direct:
            raise ChaosMismatch(f"the borrower summed {total}, the owner {direct}")
        return total


@ownership.remote
def lend_owned(x: int, n: int, work: float) -> tuple:
    """Owns ``n`` futures and returns them inside its value (the driver borrows
    them from this worker), with its pid."""
    _work(work)
    return os.getpid(), [square.remote(x + i, work) for i in range(n)]


@ownership.remote
def wrap(refs: list, work: float = 0.0) -> tuple:
    """A borrower that owns a value holding what it borrowed: it puts the
    refs it was given and returns that put (the driver borrows it from this
    worker), with its pid."""
    _work(work)
    return os.getpid(), [ownership.put(list(refs))]


@ownership.remote
def unwrap(outer: list, bound: float) -> int:
    """Gets the wrapper's value from the wrapper, a borrower of the refs
    inside it (their owner counts this worker before it has them), then
    those refs."""
    [inner] = ownership.get(outer, timeout=bound)
    return sum(ownership.get(inner, timeout=bound))


@ownership.remote
class ChaosCounter:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int, work: float = 0.0) -> int:
        _work(work)
        self.n += k
        return self.n


# ---------------------------------------------------------------------------
# Options and report
# ---------------------------------------------------------------------------


@attrs.frozen
class ChaosOptions:
    minutes: float = 1.0
    seed: int = 0
    nodes: int = 3
    cpus: int = 2
    #: jobs in flight at once
    concurrency: int = 6
    #: mean seconds between two kills (exponential)
    kill_every: float = 1.5
    #: a get that takes longer is a hang
    get_timeout: float = 90.0
    #: how long the cluster may take to free everything after the run
    drain: float = 60.0
    #: also break connections between processes (see the module doc)
    net_faults: bool = False
    node_timeout: float = 5.0
    tick: float = 0.1
    #: where the processes' step logs go (``conformance log --from-dir``); None: no logs
    log_dir: Path | None = None
    #: lines of the Scheduling event log checked with TLC (None: all of them)
    check_lines: int | None = None


@attrs.define
class ChaosReport:
    options: dict[str, Any]
    seconds: float = 0.0
    kills: Counter = attrs.field(factory=Counter)
    #: processes paused (SIGSTOP, then SIGCONT): their messages delayed
    pauses: int = 0
    nodes_added: int = 0
    add_node_failures: list[str] = attrs.field(factory=list)
    jobs: Counter = attrs.field(factory=Counter)
    checked: int = 0
    wrong: list[str] = attrs.field(factory=list)
    errors: Counter = attrs.field(factory=Counter)
    undocumented: list[str] = attrs.field(factory=list)
    hangs: list[str] = attrs.field(factory=list)
    leaks: dict[str, list[str]] = attrs.field(factory=dict)
    drain_seconds: float | None = None
    event_log: dict[str, Any] = attrs.field(factory=dict)
    #: ERROR lines of the processes' logs (a message refused between members...), by kind
    log_errors: Counter = attrs.field(factory=Counter)
    #: why the run could not be done as asked (the cluster would not start...)
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.failure is None
            and not self.wrong
            and not self.hangs
            and not self.undocumented
            and not any(self.leaks.values())
            and not self.event_log.get("error")
            and not self.event_log.get("rejected")
            and not self.log_errors
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "options": self.options,
            "seconds": round(self.seconds, 1),
            "kills": dict(self.kills),
            "kills_total": sum(self.kills.values()),
            "pauses": self.pauses,
            "nodes_added": self.nodes_added,
            "add_node_failures": self.add_node_failures,
            "jobs": dict(self.jobs),
            "checked": self.checked,
            "wrong": len(self.wrong),
            "wrong_details": self.wrong,
            "errors": dict(self.errors),
            "undocumented": len(self.undocumented),
            "undocumented_details": self.undocumented,
            "hangs": len(self.hangs),
            "hang_details": self.hangs,
            "leaks": {k: v for k, v in self.leaks.items() if v},
            "leaks_total": sum(len(v) for v in self.leaks.values()),
            "drain_seconds": None if self.drain_seconds is None else round(self.drain_seconds, 1),
            "event_log": self.event_log,
            "log_errors": dict(self.log_errors),
            "failure": self.failure,
        }

    def summary(self) -> str:
        o = self.options
        kills = ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items())) or "none"
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        jobs = ", ".join(f"{k} {v}" for k, v in sorted(self.jobs.items()))
        leaks = {k: v for k, v in self.leaks.items() if v}
        lines = [
            f"chaos seed {o['seed']}: {self.seconds:.0f} s on {o['nodes']} nodes x {o['cpus']} CPUs"
            f"{' with network faults' if o['net_faults'] else ''}: {'OK' if self.ok else 'FAILED'}",
            f"  kills     {sum(self.kills.values())} ({kills}); nodes added {self.nodes_added}"
            + (f", {len(self.add_node_failures)} failed to start" if self.add_node_failures else "")
            + (f"; {self.pauses} processes paused (messages delayed)" if self.pauses else ""),
            f"  jobs      {sum(self.jobs.values())} ({jobs})",
            f"  checked   {self.checked} results, wrong {len(self.wrong)}",
            f"  errors    {sum(self.errors.values())} ({errors}); undocumented {len(self.undocumented)}",
            f"  hangs     {len(self.hangs)} (gets past {o['get_timeout']:g} s)",
            f"  leaks     {sum(len(v) for v in leaks.values())}"
            + (f" ({', '.join(f'{k} {len(v)}' for k, v in sorted(leaks.items()))})" if leaks else "")
            + ("" if self.drain_seconds is None else f"; drained in {self.drain_seconds:.1f} s"),
        ]
        lines.append(f"  log       {sum(self.log_errors.values())} ERROR lines in the processes' logs")
        if self.event_log:
            lines.append(f"  event log {self.event_log.get('summary', '')}")
            for name, value in self.event_log.get("scheduling", {}).get("state", {}).items():
                lines.append(f"    before it: {name} = {value}"[:400])
        if self.failure:
            lines.append(f"  failure   {self.failure}")
        for title, items in (("wrong", self.wrong), ("undocumented", self.undocumented), ("hang", self.hangs)):
            for item in items[:5]:
                lines.append(f"  {title}: {item}")
            if len(items) > 5:
                lines.append(f"  ... and {len(items) - 5} more {title} (see --json)")
        for text, count in self.log_errors.most_common(3):
            lines.append(f"  log error x{count}: {text}")
        for kind, items in sorted(leaks.items()):
            for item in items[:3]:
                lines.append(f"  leak {kind}: {item}")
            if len(items) > 3:
                lines.append(f"  ... and {len(items) - 3} more leaks of {kind} (see --json)")
        if not self.ok:
            lines.append(f"  rerun: ownership chaos --seed {o['seed']} --minutes {o['minutes']:g} --nodes {o['nodes']} --cpus {o['cpus']}"
                         + (" --net-faults" if o["net_faults"] else ""))
        return "\n".join(lines)


def classify(exc: BaseException) -> str:
    """The name an error is counted under: the documented error at its root.

    A task that let a nested task's documented error through fails with a
    TaskError whose cause is that error: ``TaskError<-OwnerDiedError``.
    """
    names = []
    cur: BaseException | None = exc
    while isinstance(cur, TaskError):
        names.append("TaskError")
        if cur.cause is None:
            names[-1] = f"TaskError({cur.type_name or '?'})"
            cur = None
            break
        cur = cur.cause
    if cur is not None:
        names.append(type(cur).__name__)
    return "<-".join(names)


def root_error(exc: BaseException) -> tuple[str, BaseException | None]:
    """The name of the innermost error of a TaskError chain, and the error when known."""
    cur: BaseException = exc
    while isinstance(cur, TaskError):
        if cur.cause is None:
            return cur.type_name or "TaskError", None
        cur = cur.cause
    return type(cur).__name__, cur


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

#: job kind -> weight in the mix
JOBS: dict[str, int] = {
    "plain": 4,
    "nested": 2,
    "chain": 2,
    "blob": 1,
    "borrow": 2,
    "owner_borrow": 2,
    "owner_dies": 1,
    "put": 2,
    "actor": 1,
    "wrap": 2,
}

_WORK = (0.0, 0.0, 0.01, 0.05, 0.2)
_HANG = object()
_FAILED = object()


def _proc_children(parents: set[int]) -> list[int]:
    """Live processes whose parent is one of ``parents``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) in parents:
            found.append(int(entry.name))
    return found


def _processes_naming(text: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``text``."""
    found = []
    needle = text.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


class _Chaos:
    def __init__(self, options: ChaosOptions, report: ChaosReport, work_dir: Path) -> None:
        self.o = options
        self.report = report
        self.owners_dir = work_dir / "owners"
        self.owners_dir.mkdir()
        self.local: Any = None
        self.stopping = False
        self.job_ids = iter(range(1, 1 << 62))
        self.replacing = 0
        self.seen_pids: set[int] = set()

    # -- results ------------------------------------------------------------
    async def outcome(self, what: str, ref: Any) -> Any:
        """The value of ``ref`` (a ref or a list of refs), or _FAILED after a
        documented or undocumented error (counted), or _HANG (reported)."""
        try:
            with trio.move_on_after(self.o.get_timeout) as scope:
                return await ownership.get(ref)
        except OwnershipError as exc:
            return self.failed(what, exc)
        if scope.cancelled_caught:
            self.report.hangs.append(f"{what}: no value after {self.o.get_timeout:g} s")
        return _HANG

    def failed(self, what: str, exc: BaseException) -> Any:
        name = classify(exc)
        root, err = root_error(exc)
        if root == "ChaosMismatch":
            self.report.wrong.append(f"{what}: a task saw a wrong value: {exc.args[0] if exc.args else exc}".splitlines()[0])
        elif root == "GetTimeoutError" or isinstance(err, GetTimeoutError):
            self.report.hangs.append(f"{what}: a get inside a task ran out of its {self.o.get_timeout - 10:g} s ({name})")
        elif root in DOCUMENTED:
            self.report.errors[name] += 1
        else:
            text = str(exc).splitlines()[0] if str(exc) else ""
            self.report.undocumented.append(f"{what}: {name}: {text}")
        return _FAILED

    def check(self, what: str, value: Any, expected: Any) -> None:
        if value is _FAILED or value is _HANG:
            return
        if value == expected:
            self.report.checked += 1
        else:
            self.report.wrong.append(f"{what}: got {_short(value)}, expected {_short(expected)}")

    # -- jobs ---------------------------------------------------------------
    async def job_plain(self, rng: random.Random, name: str) -> None:
        x, retries, work = rng.randrange(10**6), rng.choice((0, 1, 3)), rng.choice(_WORK)
        what = f"{name} square({x}, work={work}) max_retries={retries}"
        self.check(what, await self.outcome(what, square.options(max_retries=retries).remote(x, work)), x * x)

    async def job_nested(self, rng: random.Random, name: str) -> None:
        x, n, work = rng.randrange(10**6), rng.randint(2, 5), rng.choice(_WORK)
        what = f"{name} fanout({x}, n={n}, work={work}): a task owning {n} futures"
        ref = fanout.remote(x, n, work, str(self.owners_dir), self.inner_bound)
        self.check(what, await self.outcome(what, ref), sum((x + i) ** 2 for i in range(n)))

    async def job_chain(self, rng: random.Random, name: str) -> None:
        x, n, work = rng.randrange(10**3), rng.randint(2, 6), rng.choice(_WORK)
        ref = square.remote(x, work)
        for i in range(n):
            ref = add.remote(ref, i, work)  # by reference: the previous ref is only an argument now
        what = f"{name} chain square({x}) then add(y, i) for i < {n}, work={work}"
        self.check(what, await self.outcome(what, ref), x * x + n * (n - 1) // 2)

    async def job_blob(self, rng: random.Random, name: str) -> None:
        seed, k, work = rng.randrange(10**6), rng.randrange(BLOB_SIZE), rng.choice(_WORK)
        retries = rng.choice((0, 3))  # with none, a value lost with its node stays lost
        blob = make_blob.options(max_retries=retries).remote(seed, BLOB_SIZE, work)
        turned = rotate_blob.options(max_retries=retries).remote(blob, k, work)
        what = f"{name} digest(rotate_blob(make_blob({seed}, 1 MiB), {k})), work={work}, max_retries={retries}"
        expected = _rotate(_pattern(seed, BLOB_SIZE), k)
        self.check(what, await self.outcome(what, digest.remote(turned)), hashlib.sha256(expected).hexdigest())
        if rng.random() < 0.3:  # the value itself, read by the driver
            what = f"{name} rotate_blob(make_blob({seed}, 1 MiB), {k}) read by the driver"
            self.check(what, await self.outcome(what, turned), expected)

    async def job_borrow(self, rng: random.Random, name: str) -> None:
        x, n, work = rng.randrange(10**6), rng.randint(2, 4), rng.choice(_WORK)
        refs = [square.remote(x + i, work) for i in range(n)]
        expected = [(x + i) ** 2 for i in range(n)]
        total = sum_refs.remote(refs, self.inner_bound, work)  # inside a list: borrowed
        back = keep_return.remote(refs, work)
        what = f"{name} sum_refs([square({x}+i) for i < {n}]) (borrowed)"
        self.check(what, await self.outcome(what, total), sum(expected))
        what = f"{name} keep_return([square({x}+i) for i < {n}]) (refs returned inside a value)"
        returned = await self.outcome(what, back)
        if returned is _FAILED or returned is _HANG:
            return
        if not (isinstance(returned, list) and all(isinstance(r, ownership.ObjectRef) for r in returned)):
            self.report.wrong.append(f"{what}: got {_short(returned)}, expected {n} ObjectRefs")
            return
        del refs
        what += ", then their values"
        self.check(what, await self.outcome(what, returned), expected)

    async def job_owner_borrow(self, rng: random.Random, name: str) -> None:
        x, n, work = rng.randrange(10**6), rng.randint(2, 4), rng.choice(_WORK)
        what = f"{name} owner_lends({x}, n={n}, work={work}): a task lending its futures to a task"
        ref = owner_lends.remote(x, n, work, str(self.owners_dir), self.inner_bound)
        self.check(what, await self.outcome(what, ref), sum((x + i) ** 2 for i in range(n)))

    async def job_owner_dies(self, rng: random.Random, name: str) -> None:
        """The driver borrows futures a worker owns; half the time that worker is
        killed first: each get then gives the value or OwnerDiedError (fate-sharing)."""
        x, n, work = rng.randrange(10**6), rng.randint(1, 3), rng.choice(_WORK)
        kill = rng.random() < 0.5
        what = f"{name} lend_owned({x}, n={n}): refs owned by a worker, borrowed by the driver"
        got = await self.outcome(what, lend_owned.remote(x, n, work))
        if got is _FAILED or got is _HANG:
            return
        pid, refs = got
        if kill and self.kill_worker(pid):
            self.report.kills["owner"] += 1
        for i, ref in enumerate(refs):
            what_i = f"{what}, ref {i}{' after its owner was killed' if kill else ''}"
            try:
                with trio.move_on_after(self.o.get_timeout) as scope:
                    value = await ownership.get(ref)
            except OwnerDiedError:
                self.report.errors["OwnerDiedError"] += 1
                continue
            except OwnershipError as exc:
                self.failed(what_i, exc)
                continue
            if scope.cancelled_caught:
                self.report.hangs.append(f"{what_i}: no value after {self.o.get_timeout:g} s")
                continue
            self.check(what_i, value, (x + i) ** 2)

    async def job_put(self, rng: random.Random, name: str) -> None:
        seed, k = rng.randrange(10**6), rng.randrange(10**6)
        small = ownership.put(k)
        large = ownership.put(_pattern(seed, BLOB_SIZE))
        what = f"{name} add(put({k}), 1)"
        self.check(what, await self.outcome(what, add.remote(small, 1)), k + 1)
        what = f"{name} digest(put(1 MiB blob {seed}))"
        expected = hashlib.sha256(_pattern(seed, BLOB_SIZE)).hexdigest()
        self.check(what, await self.outcome(what, digest.remote(large)), expected)
        what = f"{name} digest_all([put(1 MiB blob {seed})]) (borrowed)"
        self.check(what, await self.outcome(what, digest_all.remote([large], self.inner_bound)), [expected])

    async def job_wrap(self, rng: random.Random, name: str) -> None:
        """A borrower serves a value holding refs it borrowed; half the time
        it is killed while its reader may be getting that value: the reader
        then gets the values, or OwnerDiedError if it had not got the value
        yet, never an object freed under it."""
        x, n, work = rng.randrange(10**6), rng.randint(1, 3), rng.choice(_WORK)
        kill = rng.random() < 0.5
        refs = [square.remote(x + i, work) for i in range(n)]
        what = f"{name} wrap([square({x}+i) for i < {n}]): a borrower owning a value that holds them"
        got = await self.outcome(what, wrap.remote(refs, work))
        if got is _FAILED or got is _HANG:
            return
        pid, outer = got
        del refs  # the wrapper's value holds them now, and soon the reader
        total = unwrap.remote(outer, self.inner_bound)
        if kill:
            await trio.sleep(rng.uniform(0.0, 0.5))  # a random point of the reader's get, not a wait for it
            if self.kill_worker(pid):
                self.report.kills["owner"] += 1
        what = f"{name} unwrap(wrap([square({x}+i) for i < {n}])){' with the wrapper killed' if kill else ''}"
        self.check(what, await self.outcome(what, total), sum((x + i) ** 2 for i in range(n)))

    async def job_actor(self, rng: random.Random, name: str) -> None:
        calls, work = rng.randint(3, 10), rng.choice(_WORK)
        counter = ChaosCounter.remote()
        refs = [counter.add.remote(1, work) for _ in range(calls)]
        first_error: str | None = None
        for i, ref in enumerate(refs, start=1):
            what = f"{name} actor call {i} of {calls} (work={work})"
            try:
                with trio.move_on_after(self.o.get_timeout) as scope:
                    value = await ownership.get(ref)
            except OwnershipError as exc:
                if self.failed(what, exc) is _FAILED and first_error is None:
                    first_error = classify(exc)
                continue
            if scope.cancelled_caught:
                self.report.hangs.append(f"{what}: no value after {self.o.get_timeout:g} s")
                continue
            if first_error is not None:
                self.report.wrong.append(f"{what}: replied {value} after an earlier call failed ({first_error}): the actor was restarted?")
            else:
                self.check(what, value, i)

    # -- slots, killer, run -------------------------------------------------
    @property
    def inner_bound(self) -> float:
        # A get inside a task ends before the driver's bound: it names the task.
        return max(1.0, self.o.get_timeout - 10)

    async def slot(self, index: int, deadline: float) -> None:
        rng = random.Random(f"{self.o.seed}/slot/{index}")
        kinds, weights = list(JOBS), list(JOBS.values())
        while trio.current_time() < deadline:
            kind = rng.choices(kinds, weights)[0]
            name = f"job {next(self.job_ids)} ({kind}, slot {index})"
            self.report.jobs[kind] += 1
            await getattr(self, f"job_{kind}")(rng, name)

    def node_pids(self) -> dict[str, int]:
        return {a: self.local.pid(a) for a in self.local.nodes if self.local.alive(a)}

    def service_pids(self) -> list[int]:
        """The head's, the nodes' and the workers' pids (not the driver's: this process)."""
        return [self.local.pid(self.local.head)] + sorted(self.node_pids().values()) + sorted(self.worker_pids())

    def worker_pids(self) -> list[int]:
        pids = _proc_children(set(self.node_pids().values()))
        self.seen_pids.update(pids)
        return pids

    async def killer(self, deadline: float) -> None:
        rng = random.Random(f"{self.o.seed}/killer")
        kinds = {"worker": 5, "owner": 3, "node": 1}
        if self.o.net_faults:
            kinds["cut"] = 2
            kinds["pause"] = 2
        # Kinds are dealt from a shuffled deck holding each kind as often as
        # its weight, not drawn independently: over any run of a deck's
        # length every kind comes up its share, so a short run still has
        # its cuts and pauses (independent draws gave a 90 s run 2 cuts).
        deck: list[str] = []
        async with trio.open_nursery() as replacing:
            while True:
                pause = rng.expovariate(1 / self.o.kill_every)
                if trio.current_time() + pause >= deadline:
                    break
                await trio.sleep(pause)
                if not deck:
                    deck = [kind for kind, weight in kinds.items() for _ in range(weight)]
                    rng.shuffle(deck)
                await self.kill(deck.pop(), rng, replacing)

    async def kill(self, kind: str, rng: random.Random, replacing: trio.Nursery) -> None:
        local = self.local
        if kind == "node":
            driver_node = local.nodes[0]
            victims = [a for a in self.node_pids() if a != driver_node]
            if victims and self.replacing == 0:
                victim = rng.choice(sorted(victims))
                self.worker_pids()  # its workers are among the processes that must end
                local.kill(victim)
                self.report.kills["node"] += 1
                self.replacing += 1
                replacing.start_soon(self.replace_node)
                return
            kind = "worker"
        if kind == "cut":
            # Half the cuts are the driver's, half another process's; when
            # the one drawn has no connection to break, the other is tried.
            driver_first = rng.random() < 0.5
            for driver in (driver_first, not driver_first):
                if driver and self.cut(rng):
                    self.report.kills["cut_driver"] += 1
                    return
                if not driver and self.cut_elsewhere(rng):
                    self.report.kills["cut_process"] += 1
                    return
            kind = "worker"
        if kind == "pause":
            if self.pause(rng, replacing):
                self.report.pauses += 1
                return
            kind = "worker"
        if kind == "owner":
            marks = sorted(self.owners_dir.iterdir())
            rng.shuffle(marks)
            for mark in marks:
                pid = int(mark.name.split("-")[0])
                if self.kill_worker(pid):
                    self.report.kills["owner"] += 1
                    return
            kind = "worker"
        pids = sorted(self.worker_pids())
        rng.shuffle(pids)
        for pid in pids:
            if self.kill_worker(pid):
                self.report.kills["worker"] += 1
                return

    def kill_worker(self, pid: int) -> bool:
        try:
            self.local.kill_worker(pid)
        except (ProcessLookupError, ValueError):
            return False  # gone already, or not one of ours (any more)
        self.seen_pids.add(pid)
        return True

    def cut(self, rng: random.Random) -> bool:
        """Close one of the driver's connections to a worker, as a network fault would."""
        tcp = self.local.driver.transport.inner
        nodes = set(self.local.nodes) | {self.local.head}
        peers = sorted(p for p in tcp.connected_peers() if p not in nodes)
        if not peers:
            return False
        return tcp.cut(rng.choice(peers))

    def pause(self, rng: random.Random, nursery: trio.Nursery) -> bool:
        """Stop the head, a node or a worker for a moment (SIGSTOP; SIGCONT
        later, from ``nursery``): what it sends, and what it is sent, waits
        meanwhile, on a connection that stays up. The pause stays below
        half the node timeout, so that it delays and is not taken for a
        death (the false suspicion of a hung node is tested on its own)."""
        pids = self.service_pids()
        pid = rng.choice(pids)
        seconds = rng.uniform(0.05, min(2.0, self.o.node_timeout / 2))
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        nursery.start_soon(self._resume, pid, seconds)
        return True

    @staticmethod
    async def _resume(pid: int, seconds: float) -> None:
        try:
            await trio.sleep(seconds)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def cut_elsewhere(self, rng: random.Random) -> bool:
        """Make the head, a node or a worker break one of its connections (SIGUSR2:
        the services' fault hook, installed when ``$OWNERSHIP_FAULT_CUTS`` is set)."""
        pids = self.service_pids()
        rng.shuffle(pids)
        for pid in pids:
            if _catches(pid, signal.SIGUSR2):  # a worker still starting would die of it
                try:
                    os.kill(pid, signal.SIGUSR2)
                except ProcessLookupError:
                    continue
                return True
        return False

    async def replace_node(self) -> None:
        try:
            await self.local.add_node(self.o.cpus)
            self.report.nodes_added += 1
        except Exception as exc:  # a start that failed is a finding, not the end of the run
            self.report.add_node_failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.replacing -= 1

    async def drain(self) -> None:
        """Wait (bounded) until the cluster holds nothing; what it still holds is a leak."""
        gc.collect()
        started = trio.current_time()
        leaks: dict[str, list[str]] = {}
        with trio.move_on_after(self.o.drain):
            while True:
                leaks = await self.leaks_now()
                if not any(leaks.values()):
                    self.report.drain_seconds = trio.current_time() - started
                    break
                await trio.sleep(0.2)  # polling the cluster's state
        self.report.leaks.update(leaks)

    async def leaks_now(self) -> dict[str, list[str]]:
        from .runtime.shm import list_segments
        from .runtime.status import _entries

        leaks: dict[str, list[str]] = {}
        try:
            snap = await self.local.snapshot(timeout=5.0)
        except (OSError, ValueError) as exc:
            return {"status": [f"the cluster's state could not be read: {exc}"]}
        leaks["unreachable"] = [f"{a} did not answer a status request" for a in snap.unreachable]
        entries, tasks = [], []
        for address, s in sorted(snap.workers.items()):
            role = "driver" if s.get("driver") else "worker"
            for oid, e in _entries(s):
                how = "owned" if e.get("owned") else f"borrowed from {e.get('owner')}"
                entries.append(f"{role} {address}: object {oid} ({how}, status {e.get('status')})")
            for tid, d in s.get("task_details", {}).items():
                tasks.append(f"{role} {address}: task {tid} {d.get('name')} ({d.get('kind')}, {d.get('state')})")
        leaks["objects"] = entries
        leaks["tasks"] = tasks
        stored, leases, busy, segments = [], [], [], []
        for node, s in sorted(snap.nodes.items()):
            stored += [f"node {node}: stores {oid}" for oid in s.get("store", {})]
            stored += [f"node {node}: pulling {oid}" for oid in s.get("fetching", {})]
            sched = s.get("scheduler", {})
            leases += [f"node {node}: lease {lid} of {l.get('owner')} on {l.get('worker')}" for lid, l in sched.get("leases", {}).items()]
            leases += [f"node {node}: request {rid} of {owner} queued" for rid, owner in sched.get("queue", [])]
            if sched.get("available") != sched.get("total"):
                busy.append(f"node {node}: available {sched.get('available')} of {sched.get('total')}")
            if s.get("shm", {}).get("segments"):
                segments.append(f"node {node}: {s['shm']['segments']} shared-memory segments")
        leaks["stored"] = stored
        leaks["leases"] = leases
        leaks["resources"] = busy
        alive_nodes = set(self.node_pids().values())
        dead = [seg.name for seg in list_segments(f"own_{self.local.session}_") if seg.node_pid not in alive_nodes]
        leaks["shm"] = segments + [f"segment {name} of a dead node" for name in dead]
        return leaks

    async def run(self) -> None:
        o = self.o
        started = time.monotonic()
        config = {"max_pending_lease_requests": 8}
        try:
            async with ownership.cluster(
                nodes=o.nodes,
                num_cpus=o.cpus,
                tick=o.tick,
                node_timeout=o.node_timeout,
                config=config,
                event_log=None if o.log_dir is None else o.log_dir / "steps",
            ) as local:
                self.local = local
                session_dir = str(local.session_dir)
                self.seen_pids.update(local.pid(a) for a in [local.head, *local.nodes])
                deadline = trio.current_time() + o.minutes * 60
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.killer, deadline)
                    for i in range(o.concurrency):
                        nursery.start_soon(self.slot, i, deadline)
                # Killer and jobs are done (each get bounded): the replacements too.
                self.report.seconds = time.monotonic() - started
                self.worker_pids()
                await self.drain()
                self.seen_pids.update(local.pid(a) for a in local.processes)
        except OSError as exc:  # the cluster did not start (ProcessStartError, ...)
            self.report.failure = f"{type(exc).__name__}: {exc}"
            return
        await self.processes_left(session_dir)

    async def processes_left(self, session_dir: str) -> None:
        """Every process of the run must end with the cluster (bounded wait)."""
        left: list[int] = []
        with trio.move_on_after(15):
            while True:
                left = sorted({p for p in self.seen_pids if pid_alive(p)} | set(_processes_naming(session_dir)))
                left = [p for p in left if pid_alive(p)]
                if not left:
                    break
                await trio.sleep(0.1)
        self.report.leaks["processes"] = [f"pid {p}: {_cmdline(p)}" for p in left]
        for pid in left:  # ours (named by the session's token path): do not leave them running
            if session_dir.encode() in _cmdline_bytes(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (/proc/PID/status SigCgt)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


@contextlib.contextmanager
def _environment(name: str, value: str | None) -> Iterator[None]:
    """``$name`` set to ``value`` (unset when None) for the block: the processes
    started in it inherit it."""
    before = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _cmdline_bytes(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _cmdline(pid: int) -> str:
    return _cmdline_bytes(pid).replace(b"\0", b" ").decode(errors="replace").strip()[:160]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} chars)"


def check_event_log(directory: Path, lines: int | None = None) -> dict[str, Any]:
    """Merge the run's step logs (causality checked) and check them against
    the specs: Scheduling with TLC over the run's whole log, or its first
    ``lines`` (conformance/sized.py: the model sized from the run, a window
    at a time; a rejection names the line and the state before it)."""
    try:
        import conformance  # noqa: F401
        from conformance.generate import GenerationError
        from conformance.merge import StepLogError, merge_dir
        from conformance.sized import validate_log
        from ownership.tla.tlc import JavaNotFound
    except ModuleNotFoundError as exc:
        return {"summary": f"not merged: the conformance package is not installed ({exc.name})", "merged": False}
    out: dict[str, Any] = {"directory": str(directory)}
    try:
        run = merge_dir(directory)
    except (StepLogError, OSError) as exc:
        out.update(merged=False, error=f"the step logs do not merge: {exc}")
        out["summary"] = f"{directory}: {out['error']}"
        return out
    out.update(merged=True, processes=len(run.processes), steps=len(run.steps), crashed=len(run.crashed), notes=len(run.notes))
    reasons: dict[str, str] = {}
    try:
        scheduling = validate_log(run, limit=lines)
    except (StepLogError, GenerationError, JavaNotFound, ValueError, OSError) as exc:
        reasons["Scheduling"] = f"not validated: {str(exc).splitlines()[0]}"
    else:
        out["scheduling"] = scheduling
        reasons["Scheduling"] = scheduling["summary"]
        out["rejected"] = not scheduling["accepted"]
    for spec_name in ("RefCounting", "FateSharing"):
        reasons[spec_name] = "no binding of TCP runs yet"
    out["validation"] = reasons
    out["summary"] = (
        f"{directory}: {len(run.steps)} steps of {len(run.processes)} processes merged in a causal order "
        f"({len(run.crashed)} crashed); " + "; ".join(v if v.startswith(k) else f"{k}: {v}" for k, v in reasons.items())
    )
    return out


_LOG_ERROR = re.compile(r"^\S+ \S+ (\w+)\[\d+\] (\S+) (ERROR|CRITICAL): (.*)$")
_IDENTITY = re.compile(r"\d+\.\d+\.\d+\.\d+:\d+(#[0-9a-f]+)?")
_NUMBER = re.compile(r"\b\d+\b")


#: ERROR lines that are the documented answer to what the run does to the
#: cluster, not a fault of it: a node whose worker starts were SIGKILLed three
#: times in a row pauses its starts (README: "A worker that fails to start..."),
#: and a handshake whose other side was SIGKILLed in the middle of it ends
#: early (the log line cannot tell that end of stream from a process without
#: the token, which a chaos run has none of; a reset is only a warning)
EXPECTED_LOG_ERRORS = (
    re.compile(r"^node ownership\.node: ADDR: N worker starts failed in a row \(last: [^()]*\(signal SIGKILL\)\)"),
    re.compile(r"^\w+ ownership\.tcp: ADDR: handshake with ADDR failed: peer closed the connection during the handshake"),
)


def log_errors(text: str) -> Counter:
    """The ERROR lines of the processes' logs, by kind: role, logger and message
    with addresses and numbers blanked (``(N more like it...)`` dropped)."""
    found: Counter = Counter()
    for line in text.splitlines():
        m = _LOG_ERROR.match(line)
        if m is None:
            if line.startswith("Traceback"):
                found["a traceback on stderr"] += 1
            continue
        role, logger_name, _level, message = m.groups()
        message = re.sub(r" \(\d+ more like it[^)]*\)$", "", message)
        message = _NUMBER.sub("N", _IDENTITY.sub("ADDR", message))
        key = f"{role} {logger_name}: {message}"[:300]
        if not any(p.search(key) for p in EXPECTED_LOG_ERRORS):
            found[key] += 1
    return found


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's file descriptor 2, and so its children's stderr, to ``path``."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


@contextlib.contextmanager
def _driver_log_to(path: Path) -> Iterator[None]:
    """Also write this process's (the driver's) warnings and errors to
    ``path``, in the services' format: an embedding program (pytest) may
    route its logging elsewhere, and a message the driver failed to handle
    must be counted as any other process's is."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(f"%(asctime)s driver[{os.getpid()}] %(name)s %(levelname)s: %(message)s"))
    logger = logging.getLogger("ownership")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


async def run_chaos(options: ChaosOptions, stderr: Path | None = None) -> ChaosReport:
    """One chaos run (see the module doc); the report says what it found.

    The processes' logs (stderr) go to ``stderr`` (default: a temporary
    file) and their ERROR lines are counted in the report.
    """
    report = ChaosReport(options={k: (str(v) if isinstance(v, Path) else v) for k, v in attrs.asdict(options).items()})
    with tempfile.TemporaryDirectory(prefix="ownership-chaos-") as work:
        log = stderr or Path(work, "stderr.log")
        # With net_faults every process of the cluster installs its fault hook.
        with _stderr_to(log), _driver_log_to(log), _environment(FAULT_CUTS_ENV, "1" if options.net_faults else None):
            await _Chaos(options, report, Path(work)).run()
        report.log_errors = log_errors(log.read_text(errors="replace"))
    if options.log_dir is not None and report.failure is None:
        report.event_log = await trio.to_thread.run_sync(check_event_log, options.log_dir / "steps", options.check_lines)
    return report


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
        return value

    return parse


def add_subparsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .cli import help_text

    p = subparsers.add_parser(
        "chaos",
        help="run a workload with known answers on an embedded cluster while killing its processes",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
examples:
  ownership chaos --minutes 6 --seed 1
  ownership chaos --minutes 1 --net-faults --json chaos.json --log-dir chaos-run

exit status: 0 when every result was right, no get hung, nothing leaked,
every error was a documented one and (with --log-dir) the specs did not reject
the run's event log; 1 otherwise; 2 for a mistake in the command.""",
    )
    p.add_argument("--minutes", type=_positive(float), default=1.0, help="how long the workload runs (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, printed)")
    p.add_argument("--nodes", type=_positive(int), default=3, help="nodes (default 3; the driver's node is never killed)")
    p.add_argument("--cpus", type=_positive(int), default=2, help="CPUs (workers) per node (default 2)")
    p.add_argument("--concurrency", type=_positive(int), default=6, help="jobs in flight at once (default 6)")
    p.add_argument("--kill-every", type=_positive(float), default=1.5, help="mean seconds between kills (default 1.5)")
    p.add_argument("--get-timeout", type=_positive(float), default=90.0, help="a get that takes longer is a hang (default 90)")
    p.add_argument("--drain", type=_positive(float), default=60.0, help="seconds the cluster may take to free everything after the run (default 60)")
    p.add_argument("--node-timeout", type=_positive(float), default=5.0, help="the head declares a silent node dead after this (default 5)")
    p.add_argument("--net-faults", action="store_true", help="also break connections between the processes (reset, as a network fault) and pause processes for a moment (their messages delayed)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON to FILE")
    p.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="keep the processes' logs (DIR/stderr.log) and their core steps (DIR/steps, merged after the run, "
        "and its Scheduling event log checked with TLC)",
    )
    p.add_argument(
        "--check-lines",
        type=_positive(int),
        metavar="N",
        help="with --log-dir: check only the first N lines of the Scheduling event log (default: all; "
        "TLC takes a few seconds per 1,000 lines)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .cli import CommandError

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    if args.log_dir is not None:
        if args.log_dir.exists() and (not args.log_dir.is_dir() or any(args.log_dir.iterdir())):
            raise CommandError(f"--log-dir {args.log_dir}: give a new or empty folder")
        args.log_dir.mkdir(parents=True, exist_ok=True)
    if args.json is not None and not args.json.parent.is_dir():
        raise CommandError(f"--json {args.json}: no folder {args.json.parent}")
    if args.check_lines is not None and args.log_dir is None:
        raise CommandError("--check-lines needs --log-dir (the event log is kept there)")
    if args.get_timeout <= 10:
        raise CommandError("--get-timeout must be more than 10 s (gets inside tasks end 10 s before it)")
    options = ChaosOptions(
        minutes=args.minutes,
        seed=seed,
        nodes=args.nodes,
        cpus=args.cpus,
        concurrency=args.concurrency,
        kill_every=args.kill_every,
        get_timeout=args.get_timeout,
        drain=args.drain,
        net_faults=args.net_faults,
        node_timeout=args.node_timeout,
        log_dir=None if args.log_dir is None else args.log_dir.resolve(),
        check_lines=args.check_lines,
    )
    print(f"chaos: seed {seed}, {args.minutes:g} min on {args.nodes} nodes x {args.cpus} CPUs", file=sys.stderr, flush=True)
    stderr = None if options.log_dir is None else options.log_dir / "stderr.log"
    report = trio.run(run_chaos, options, stderr)
    print(report.summary())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    return 0 if report.ok else 1
