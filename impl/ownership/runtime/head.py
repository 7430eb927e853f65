"""The head service: membership and failure publication, around :class:`HeadCore`.

Besides sending, the shell watches nodes' connections (:class:`Watch`: a
lost one comes back as PeerLost) and probes suspects (:class:`Probe`): one
fresh dial of that incarnation, given ``probe_timeout_ticks`` ticks, whose
outcome goes to the core as :class:`ProbeResult`.

With ``dashboard`` options the head also serves the dashboard
(:mod:`ownership.dashboard`), beside the core and off its path: the
dashboard reads the head's core and asks the other processes for their
snapshots and logs, and its failure never stops the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ..core.config import CoreConfig
from ..core.events import Effect, Event, Probe, ProbeResult, Send, Watch
from ..core.head import HeadCore
from .shell import ServiceShell
from .transport import Transport

if TYPE_CHECKING:
    from ..dashboard.server import DashboardOptions

__all__ = ["HeadRuntime", "serve"]


class HeadRuntime(ServiceShell):
    def __init__(self, transport: Transport, core: HeadCore, nursery: trio.Nursery, *, tick_interval: float | None = None) -> None:
        self.transport = transport
        self.core = core
        self.address = core.address
        self.tick_interval = tick_interval
        self._nursery = nursery
        self.closed = False

    def handle(self, event: Event) -> None:
        self._apply(self.core.handle(event))

    def _apply(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Send):
                self.send(e.dst, e.msg)
            elif isinstance(e, Watch):
                self.transport.watch(e.address)
            elif isinstance(e, Probe):
                self._nursery.start_soon(self._probe, e.address, name=f"probe {e.address}")
            else:
                raise TypeError(f"head shell cannot carry out {e!r}")

    async def _probe(self, address: str) -> None:
        reachable = False
        with trio.move_on_after(self.probe_timeout):
            reachable = await self.transport.probe(address)
        if not self.closed:
            self._local(ProbeResult(address=address, reachable=reachable))

    def snapshot(self) -> dict[str, Any]:
        return {**self.core.snapshot(), "handler_errors": self.handler_errors, "messages_unsendable": self.messages_unsendable}


async def serve(
    transport: Transport,
    *,
    config: CoreConfig | None = None,
    tick_interval: float | None = None,
    dashboard: DashboardOptions | None = None,
    task_status: trio.TaskStatus[HeadRuntime] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the head until its transport closes; with ``dashboard``, serve it too."""
    core = HeadCore(transport.address, config)
    async with trio.open_nursery() as nursery:
        rt = HeadRuntime(transport, core, nursery, tick_interval=tick_interval)
        nursery.start_soon(rt._receive_loop, name=f"receive {rt.address}")
        if tick_interval is not None:
            nursery.start_soon(rt._ticker, name=f"ticks {rt.address}")
        task_status.started(rt)
        if dashboard is not None:
            from ..dashboard.server import serve as serve_dashboard

            nursery.start_soon(serve_dashboard, rt, dashboard, name="dashboard")
    rt.closed = True
