"""``ownership timeline [-o trace.json]``: a run's task events in Chrome's trace-event format.

Written as ``ray timeline`` writes it: a JSON object whose ``traceEvents``
are one complete event (``ph: "X"``) per task attempt, named after its
function, with its start (``ts``) and duration (``dur``) in microseconds;
one process (``pid``) per node and one thread (``tid``, the worker's OS pid)
per worker, named by metadata events; deaths are instant events. Open it
in Perfetto (ui.perfetto.dev) or ``chrome://tracing``.

The events come from the head's dashboard, which records them while the
cluster runs: the cluster of this machine's session file (``ownership start
--head``), or the dashboard at ``--dashboard URL`` (``cluster.dashboard_url``
of an embedded cluster).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["add_subparsers", "fetch_timeline"]


def add_subparsers(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "timeline",
        help="the task events of a run, for Perfetto or chrome://tracing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-o", "--output", type=Path, default=None, help="write the trace here (default: standard output)")
    p.add_argument("--dashboard", metavar="URL", default=None, help="the dashboard (default: this machine's session's)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the dashboard (default 10)")
    p.set_defaults(func=_timeline)


def fetch_timeline(url: str, timeout: float = 10.0) -> dict[str, Any]:
    """The trace of the dashboard at ``url``; ConnectionError with a clear message."""
    target = url.rstrip("/") + "/api/timeline"
    if not target.startswith(("http://", "https://")):
        raise ConnectionError(f"{url!r} is not a dashboard URL (http://HOST:PORT/)")
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            trace = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"cannot read the timeline from the dashboard at {url}: {reason}") from None
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        raise ConnectionError(f"{url} answered something that is not a trace")
    return trace


def _timeline(args: argparse.Namespace) -> int:
    from ..runtime.cluster import session_file

    url = args.dashboard
    if url is None:
        path = session_file()
        session = json.loads(path.read_text()) if path.exists() else {}
        url = session.get("dashboard")
        if url is None:
            which = "no cluster recorded" if not session else "the cluster recorded there runs without a dashboard"
            print(f"ownership timeline: {which} in {path}; pass --dashboard URL", file=sys.stderr)
            return 1
    try:
        trace = fetch_timeline(url, args.timeout)
    except ConnectionError as exc:
        print(f"ownership timeline: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(trace)
    if args.output is None:
        sys.stdout.write(text + "\n")
    else:
        try:
            args.output.write_text(text)
        except OSError as exc:
            print(f"ownership timeline: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        tasks = sum(1 for e in trace["traceEvents"] if e.get("ph") == "X")
        print(f"wrote {tasks} task events to {args.output}", file=sys.stderr)
    return 0
