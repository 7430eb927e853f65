"""A synchronous harness for the cores: no trio, no transport.

Tests get it through fixtures: ``mini`` (a small cluster of cores) and
``h`` (the helpers: ``h.Mini``, ``h.spec``, ``h.value``, ``h.Router``).

``Router`` holds the messages the cores send and delivers them when a test
says so, so each test can check the effects of one stimulus at a time.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
import types
from typing import Any

import pytest

from ownership.core.config import CoreConfig
from ownership.core.events import Effect, Event, Received, Send, StartWorker
from ownership.core.head import HeadCore
from ownership.core.messages import Payload, RegisterWorker, TaskSpec, WorkerRegistered
from ownership.core.node import NodeCore
from ownership.core.worker import WorkerCore


class Router:
    def __init__(self) -> None:
        self.cores: dict[str, Any] = {}
        self.flight: collections.deque[tuple[str, str, Any]] = collections.deque()
        self.effects: list[tuple[str, Effect]] = []  # every non-Send effect, in order
        self.delivered: list[tuple[str, str, Any]] = []

    def add(self, core: Any) -> Any:
        self.cores[core.address] = core
        return core

    def feed(self, address: str, event: Event) -> list[Effect]:
        effects = self.cores[address].handle(event)
        for e in effects:
            if isinstance(e, Send):
                self.flight.append((address, e.dst, e.msg))
            else:
                self.effects.append((address, e))
        return effects

    def sent(self, kind: type | None = None, *, dst: str | None = None) -> list[tuple[str, str, Any]]:
        return [f for f in self.flight if (kind is None or isinstance(f[2], kind)) and (dst is None or f[1] == dst)]

    def deliver(self, match: Callable[[tuple[str, str, Any]], bool] = lambda f: True) -> tuple[str, str, Any]:
        for f in self.flight:
            if match(f):
                self.flight.remove(f)
                self.delivered.append(f)
                src, dst, msg = f
                if dst in self.cores:
                    self.feed(dst, Received(src, msg))
                return f
        raise AssertionError(f"no matching message in flight: {list(self.flight)}")

    def deliver_type(self, kind: type, **fields: Any) -> Any:
        def match(f):
            return isinstance(f[2], kind) and all(getattr(f[2], k) == v for k, v in fields.items())

        return self.deliver(match)[2]

    def run(self, limit: int = 10_000, skip: Callable[[tuple[str, str, Any]], bool] = lambda f: False) -> int:
        """Deliver everything (FIFO) except what ``skip`` holds back."""
        n = 0
        while n < limit:
            candidates = [f for f in self.flight if not skip(f)]
            if not candidates:
                return n
            self.deliver(lambda f, c=candidates[0]: f is c)
            n += 1
        raise AssertionError("messages keep flowing")

    def drop_to(self, address: str) -> None:
        self.flight = collections.deque(f for f in self.flight if f[1] != address and f[0] != address)


def spec(owner: WorkerCore, *, args=(), resources=(("CPU", 1.0),), max_retries=0, kind="task", actor_id=None, method=None) -> TaskSpec:
    task_id, return_id = owner.new_task_ids()
    return TaskSpec(
        task_id=task_id,
        owner=owner.address,
        return_id=return_id,
        function_id="f",
        function=Payload(data=b"fn"),
        args=tuple(args),
        resources=resources,
        max_retries=max_retries,
        kind=kind,
        actor_id=actor_id,
        method=method,
    )


def value(data: bytes = b"v", refs=()) -> Payload:
    return Payload(data=data, refs=tuple(refs))


def registered_worker(address: str, node: str, config: CoreConfig | None = None) -> WorkerCore:
    """A worker core its node registered with the head ``head``: a worker
    runs the tasks pushed to it only once it is registered."""
    w = WorkerCore(address, node, config) if config is not None else WorkerCore(address, node)
    w.handle(Received(node, WorkerRegistered(worker=address, node=node, head="head")))
    return w


class Mini:
    """A head, nodes n1..nN with registered workers, and a driver on n1."""

    def __init__(self, nodes: int = 2, workers: int = 2, cpus: float | None = None, config: CoreConfig | None = None, extra: dict | None = None) -> None:
        self.config = config or CoreConfig(lease_idle_ticks=0)
        self.r = Router()
        self.head = self.r.add(HeadCore("head", self.config))
        self.nodes: dict[str, NodeCore] = {}
        self.workers: dict[str, WorkerCore] = {}
        for i in range(1, nodes + 1):
            name = f"n{i}"
            shape = {"CPU": float(workers if cpus is None else cpus)}
            shape.update((extra or {}).get(name, {}))
            node = self.r.add(NodeCore(name, "head", tuple(sorted(shape.items())), pool_size=workers, config=self.config))
            self.nodes[name] = node
            for e in node.start():
                if isinstance(e, Send):
                    self.r.flight.append((name, e.dst, e.msg))
                else:
                    assert isinstance(e, StartWorker)
            for k in range(1, workers + 1):
                self.add_worker(name, f"w{k}@{name}")
        self.driver = self.add_worker("n1", "d@n1", driver=True)
        self.r.run()
        self.r.effects.clear()

    def add_worker(self, node: str, address: str, *, driver: bool = False) -> WorkerCore:
        w = self.r.add(WorkerCore(address, node, self.config, driver=driver))
        if not driver:
            self.workers[address] = w
        self.r.flight.append((address, node, RegisterWorker(worker=address, node=node, driver=driver)))
        return w


@pytest.fixture
def mini() -> Mini:
    return Mini()


@pytest.fixture
def h() -> types.SimpleNamespace:
    return types.SimpleNamespace(Mini=Mini, Router=Router, spec=spec, value=value)
