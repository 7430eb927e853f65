"""Serving the dashboard from the head process: hypercorn's trio worker, no HTTP of ours.

The process that starts the head binds the dashboard's listening socket
itself (:func:`bind`) and hands it to the head (``--dashboard-fd``), so it
knows the URL before the head is up, even for port 0, and a busy port is a
clear error at once. The head then serves on it (:func:`serve`, started by
``runtime/head.py``): the collector polls the cluster through a transport of
its own, and hypercorn serves the app. Whatever goes wrong in the dashboard
is logged and ends the dashboard, never the head.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import attrs
import trio

__all__ = ["DashboardOptions", "DEFAULT_PORT", "bind", "serve", "url_of"]

logger = logging.getLogger("ownership.dashboard")

#: ``ownership start --head``'s port (``ownership.cluster()`` takes any free one)
DEFAULT_PORT = 8285


@attrs.frozen(kw_only=True)
class DashboardOptions:
    token: bytes = attrs.field(repr=False)
    #: a listening TCP socket, inherited from the process that started the head
    fd: int
    #: where the collector's own endpoint binds and what peers dial back
    host: str = "127.0.0.1"
    advertise_host: str | None = None
    interval: float = 0.5


def bind(host: str, port: int) -> socket.socket:
    """A listening socket for the dashboard; OSError with a clear message if the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OSError(exc.errno, f"cannot serve the dashboard on {host}:{port}: {reason}") from None
    return sock


def _import_parts() -> None:
    import hypercorn.trio  # noqa: F401
    import prometheus_client  # noqa: F401
    import starlette.applications  # noqa: F401

    from . import app  # noqa: F401


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


async def serve(head: Any, options: DashboardOptions) -> None:
    """Collect and serve until cancelled (the head stops)."""
    try:
        # Imported off the loop: the head goes on hearing its nodes meanwhile.
        await trio.to_thread.run_sync(_import_parts)
        from hypercorn.config import Config
        from hypercorn.trio import serve as hypercorn_serve

        from ..runtime.tcp import open_tcp_transport
        from .app import create_app
        from .collector import Collector

        # Only to read the address: hypercorn makes its own socket object of
        # the fd, and two objects would close it twice.
        sock = socket.socket(fileno=options.fd)
        host, port = sock.getsockname()[:2]
        sock.detach()
        config = Config()
        config.bind = [f"fd://{options.fd}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("ownership.dashboard.http")
        config.graceful_timeout = 0.5
        config.include_server_header = False
        collector = Collector(head, interval=options.interval)
        app = create_app(collector)
        async with open_tcp_transport(
            options.token, options.host, advertise_host=options.advertise_host, on_peer_lost=collector.peer_lost
        ) as transport:
            async with trio.open_nursery() as nursery:
                await nursery.start(collector.run, transport)
                logger.info("dashboard at http://%s:%d/ (pid %d)", host, port, os.getpid())
                await hypercorn_serve(app, config)
    except Exception:
        logger.exception("the dashboard stopped; the head goes on without it")
