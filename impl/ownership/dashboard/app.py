"""The dashboard's ASGI app (starlette): pages, their data, live updates, metrics.

Pages (one HTML shell each, drawn by ``static/dashboard.js``):
``/cluster``, ``/tasks``, ``/stream``, ``/objects``, ``/failures``.

Data: ``/api/<view>`` answers the view once as JSON; ``/api/events?view=<view>``
streams it as server-sent events, a new one each time the collector has
news (at most once per poll). ``graph`` takes ``object=<id>``; ``stream``
takes ``window=<seconds>``. ``/api/timeline`` is every task attempt kept, in
Chrome's trace-event format. ``/metrics`` is the Prometheus text format.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .collector import Collector
from .metrics import metrics_text, registry_for

__all__ = ["create_app", "PAGES"]

STATIC = Path(__file__).with_name("static")
#: path -> title, in the order of the navigation bar
PAGES = {
    "cluster": "Cluster",
    "tasks": "Tasks",
    "stream": "Task stream",
    "objects": "Objects",
    "failures": "Failures",
}
#: seconds between two comments on an idle event stream (proxies close silent ones)
_KEEPALIVE = 15.0


class BadQuery(ValueError):
    """A query parameter the API cannot use; answered with a 400 and one line."""


def _window(request: Request) -> float:
    raw = request.query_params.get("window", "60")
    try:
        window = float(raw)
    except ValueError:
        raise BadQuery(f"window must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(window) or window <= 0:
        raise BadQuery(f"window must be a positive number of seconds, not {raw!r}")
    return window


def _object(request: Request) -> str:
    oid = request.query_params.get("object", "")
    if not oid:
        raise BadQuery("graph needs object=<object id>")
    return oid


def _views(collector: Collector) -> dict[str, Callable[[Request], dict[str, Any]]]:
    return {
        "cluster": lambda r: collector.cluster_view(),
        "tasks": lambda r: collector.tasks_view(),
        "stream": lambda r: collector.stream_view(_window(r)),
        "objects": lambda r: collector.objects_view(),
        "graph": lambda r: collector.graph_view(_object(r)),
        "failures": lambda r: collector.failures_view(),
    }


#: views drawn from the workers' ownership tables: while one is open, the
#: collector asks the workers for their full snapshots
_NEED_TABLES = {"objects", "graph"}


def _page(name: str) -> str:
    nav = "".join(
        f'<a href="/{key}" class="{"current" if key == name else ""}" id="nav-{key}">{title}</a>' for key, title in PAGES.items()
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{PAGES[name]} · ownership</title>
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body data-page="{name}">
<header>
  <span class="brand">ownership</span>
  <nav>{nav}</nav>
  <span id="live" class="live">connecting…</span>
</header>
<main id="main"><p class="muted">Loading…</p></main>
<script src="/static/dashboard.js"></script>
</body>
</html>
"""


def create_app(collector: Collector) -> Starlette:
    views = _views(collector)
    registry = registry_for(collector)

    async def index(request: Request) -> Response:
        return RedirectResponse("/cluster")

    def page(name: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            return HTMLResponse(_page(name))

        return handler

    def _view(request: Request) -> tuple[str, Callable[[Request], dict[str, Any]]]:
        name = request.path_params.get("view") or request.query_params.get("view", "")
        if name not in views:
            raise BadQuery(f"unknown view {name!r}: one of {', '.join(sorted(views))}")
        return name, views[name]

    async def api(request: Request) -> Response:
        try:
            name, view = _view(request)
            collector.looked()
            if name in _NEED_TABLES:
                # The tables as they are now, not as a page saw them last.
                collector.watch_tables()
                try:
                    version = collector.version
                    with trio.move_on_after(3 * collector.interval + 2):
                        while view(request).get("loading"):
                            version = await collector.wait_changed(version)
                    return JSONResponse(view(request))
                finally:
                    collector.unwatch_tables()
            return JSONResponse(view(request))
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def events(request: Request) -> Response:
        try:
            name, view = _view(request)
            view(request)  # bad parameters answer 400 now, not inside the stream
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

        async def stream() -> AsyncIterator[str]:
            watching = name in _NEED_TABLES
            collector.watchers += 1
            collector.looked()
            if watching:
                collector.watch_tables()
            last = None
            try:
                while True:
                    version = collector.version
                    data = json.dumps(view(request), separators=(",", ":"))
                    if data != last:  # a page redraws only when what it shows changed
                        yield f"event: update\ndata: {data}\n\n"
                        last = data
                    while True:
                        with trio.move_on_after(_KEEPALIVE) as idle:
                            await collector.wait_changed(version)
                        if not idle.cancelled_caught:
                            break
                        yield ": keepalive\n\n"
            finally:
                collector.watchers -= 1
                if watching:
                    collector.unwatch_tables()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def timeline(request: Request) -> Response:
        collector.looked()
        return JSONResponse({"traceEvents": collector.trace_events(), "displayTimeUnit": "ms"})

    async def metrics(request: Request) -> Response:
        collector.looked()
        return Response(metrics_text(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    routes = [
        Route("/", index),
        *[Route(f"/{name}", page(name)) for name in PAGES],
        Route("/api/events", events),
        Route("/api/timeline", timeline),
        Route("/api/{view}", api),
        Route("/metrics", metrics),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
