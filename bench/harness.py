"""The runner side: repeats, warm-up, medians, and the JSON a runner writes.

Every runner is started as ``python -m <module> --sizes JSON --rows a,b --out
FILE`` by :mod:`bench.driver`. It rewrites FILE after every row, so that a
runner killed on timeout still leaves the rows it finished.

A row function takes the :class:`~bench.rows.Sizes` and returns one sample:
``{metric key: value}``. It times only the workload itself and checks the
answers it gets back, so a system that returns wrong values fails the row
instead of looking fast. It raises :class:`NotApplicable` when the system has
no such feature.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from .rows import ROW_BY_KEY, Row, Sizes, median

__all__ = [
    "NotApplicable",
    "Unavailable",
    "RunnerDoc",
    "Sample",
    "runner_main",
    "timer",
]

Sample = dict[str, float]
RowFn = Callable[[Sizes], Sample]
AsyncRowFn = Callable[[Sizes], Awaitable[Sample]]

#: How much of a traceback a failed row keeps in the JSON.
_TRACEBACK_CHARS = 4000

timer = time.perf_counter


class NotApplicable(Exception):
    """The system has no such feature; the message says why (shown as "n/a")."""


class Unavailable(Exception):
    """The whole system cannot run: ``status`` is "not installed" or "not available"."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


def _short_traceback(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= _TRACEBACK_CHARS else "...\n" + text[-_TRACEBACK_CHARS:]


def _summary(row: Row, samples: Sequence[Sample]) -> dict[str, Any]:
    metrics = {}
    for metric in row.metrics:
        values = [float(s[metric.key]) for s in samples]
        metrics[metric.key] = {"median": median(values), "samples": values, "unit": metric.unit}
    return metrics


class RunnerDoc:
    """The document one runner writes: its status, versions, setup, and rows."""

    def __init__(self, system: str, out: Path, sizes: Sizes) -> None:
        self.out = out
        self.sizes = sizes
        self.data: dict[str, Any] = {
            "system": system,
            "status": "ok",
            "reason": None,
            "version": None,
            "setup": {},
            "notes": {},
            "rows": {},
            "pid": os.getpid(),
        }
        self._started = timer()

    # ------------------------------------------------------------------ fields
    def set_version(self, version: str) -> None:
        self.data["version"] = version
        self.flush()

    def set_setup(self, **setup: Any) -> None:
        self.data["setup"].update(setup)
        self.flush()

    def note(self, row: str, text: str) -> None:
        """A fact about how this system runs ``row`` (printed under the table)."""
        self.data["notes"][row] = text

    def fail(self, status: str, reason: str) -> None:
        self.data["status"] = status
        self.data["reason"] = reason
        self.flush()

    # ------------------------------------------------------------------ rows
    def _plan(self, row: Row) -> tuple[int, int]:
        return row.warmup, getattr(self.sizes, row.repeats_field)

    def run_row(self, key: str, fn: RowFn) -> None:
        row = ROW_BY_KEY[key]
        warmup, repeats = self._plan(row)
        started = timer()
        samples: list[Sample] = []
        try:
            for _ in range(warmup):
                fn(self.sizes)
            for _ in range(repeats):
                samples.append(fn(self.sizes))
        except NotApplicable as exc:
            self._record(key, {"status": "n/a", "reason": str(exc)}, started)
        except Exception as exc:  # a failed row is reported; the next rows still run
            self._record(key, self._error(exc, samples), started)
        else:
            self._record(key, {"status": "ok", "metrics": _summary(row, samples)}, started)

    async def run_row_async(self, key: str, fn: AsyncRowFn) -> None:
        row = ROW_BY_KEY[key]
        warmup, repeats = self._plan(row)
        started = timer()
        samples: list[Sample] = []
        try:
            for _ in range(warmup):
                await fn(self.sizes)
            for _ in range(repeats):
                samples.append(await fn(self.sizes))
        except NotApplicable as exc:
            self._record(key, {"status": "n/a", "reason": str(exc)}, started)
        except Exception as exc:
            self._record(key, self._error(exc, samples), started)
        else:
            self._record(key, {"status": "ok", "metrics": _summary(row, samples)}, started)

    def mark_na(self, key: str, reason: str) -> None:
        """A row the system cannot run, found out before the row started."""
        self._record(key, {"status": "n/a", "reason": reason}, timer())

    def skip_rows(self, keys: Sequence[str], reason: str) -> None:
        """Rows that could not start because their setup failed."""
        for key in keys:
            if key not in self.data["rows"]:
                self._record(key, {"status": "error", "error": reason}, timer())

    def _error(self, exc: BaseException, samples: Sequence[Sample]) -> dict[str, Any]:
        return {
            "status": "error",
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": _short_traceback(exc),
            "completed_repeats": len(samples),
        }

    def _record(self, key: str, outcome: dict[str, Any], started: float) -> None:
        outcome["wall_s"] = round(timer() - started, 3)
        self.data["rows"][key] = outcome
        self.flush()

    def flush(self) -> None:
        self.data["wall_s"] = round(timer() - self._started, 3)
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.out)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one system's benchmark runner (started by `ownership bench`)")
    parser.add_argument("--sizes", required=True, help="the Sizes as JSON")
    parser.add_argument("--rows", required=True, help="comma-separated row keys")
    parser.add_argument("--out", required=True, type=Path, help="where to write this runner's JSON")
    return parser.parse_args(argv)


def _import_numpy() -> None:
    """Import numpy in the runner (every system's driver), untimed.

    The rows' values are numpy arrays: otherwise the first row that gets
    one back times numpy's import in the driver (100-200 ms on a loaded
    2-core machine), on whichever system does not import it by itself
    (Ray's driver does), and a row run alone, such as recovery, pays it
    in its first repeat.
    """
    try:
        import numpy  # noqa: F401
    except ImportError:
        pass


def runner_main(system: str, body: Callable[[RunnerDoc, tuple[str, ...]], None], argv: Sequence[str] | None = None) -> int:
    """Run ``body`` and always leave a JSON document behind.

    ``body`` raises :class:`Unavailable` when the system cannot run at all
    (a peer that is not installed, our API not importable); any other
    exception outside a row marks the system "error" with its traceback.
    """
    args = _parse(argv)
    sizes = Sizes.from_json(json.loads(args.sizes))
    rows = tuple(r for r in args.rows.split(",") if r)
    doc = RunnerDoc(system, args.out, sizes)
    doc.flush()
    _import_numpy()
    try:
        body(doc, rows)
    except Unavailable as exc:
        doc.fail(exc.status, exc.reason)
    except BaseException as exc:
        doc.fail("error", _short_traceback(exc))
        doc.skip_rows(rows, f"the runner failed before this row: {type(exc).__name__}: {exc}")
        if not isinstance(exc, Exception):
            raise
    doc.flush()
    sys.stdout.flush()
    return 0
