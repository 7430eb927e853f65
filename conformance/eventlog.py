"""The implementation's own steps as an NDJSON event log (implementation -> model).

Every core already keeps a stimulus log (``core/events.py::EventLog``: each
event with the effects it produced), but per process, without an order
across processes. On the in-memory cluster every process runs in one trio
thread, so :class:`Recorder` wraps each core's ``handle`` from outside and
stamps each stimulus with one global counter: a logical clock that orders
every step consistently with causality (a send is stamped before the
delivery it causes). Crashes and message losses come from the network's
observers, on the same clock.

The spec's mapping turns each recorded step into the spec actions it
stands for (:meth:`recognize`); a log line is one action::

    {"clock": 17, "process": "n1", "action": "SchedulerGrantLease",
     "params": {"n": "n1_OF_MODEL", "w": "w1_OF_MODEL", "m": {...}}}

after a header line naming the spec, the model config and its constants.
The actions of one stimulus share its clock, in the order the
implementation took them.
Parameters are ITF-encoded spec values; a line gives the parameters the
step fixes, and :mod:`conformance.validate` asks TLC for a behaviour of the
spec whose ``lastAction`` matches each line in turn.

Over TCP no one process sees every step: each process writes its own
(``ownership.cluster(event_log=DIR)``, ``runtime/steplog.py``) and
:mod:`conformance.merge` orders them by causality into the same
:class:`CoreStep`/:class:`NetStep` list, with Lamport clocks, for the same
``recognize`` (``ownership conformance log --from-dir DIR``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from ownership.runtime.memory import NetworkEvent
from ownership.tla.itf import decode_value, encode_value

__all__ = ["CoreStep", "NetStep", "UserStep", "LogLine", "Recorder", "write_log", "read_log", "LogFormatError", "random_workload"]

FORMAT = "ownership-eventlog/1"


class LogFormatError(ValueError):
    """An event log that cannot be read; the message names the line."""


@attrs.frozen
class CoreStep:
    """One stimulus handled by one core, with the effects it produced."""

    clock: int
    process: str
    event: Any
    effects: tuple[Any, ...]
    before: Any = None
    after: Any = None


@attrs.frozen
class NetStep:
    """A crash or a lost message, as the network reported it."""

    clock: int
    event: NetworkEvent


@attrs.frozen
class UserStep:
    """Something user code did that no core sees (keeping a ref in a global,
    dropping one): the user program's own log line, on the same clock."""

    clock: int
    process: str
    kind: str
    detail: Any = None


@attrs.frozen
class LogLine:
    clock: int
    process: str
    action: str
    params: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "process": self.process,
            "action": self.action,
            "params": {k: encode_value(v) for k, v in sorted(self.params.items())},
        }


class Recorder:
    """Stamps every core stimulus, crash and message loss of a cluster with
    one logical clock (see the module doc). ``snapshot(process, core)`` is
    called before and after each stimulus, for state a mapping reads
    (task retries, say) that the effects do not show."""

    def __init__(self, cluster: Any, snapshot: Any = None) -> None:
        self.cluster = cluster
        self.steps: list[CoreStep | NetStep | UserStep] = []
        self.clock = 0
        self._snapshot = snapshot
        self._wrapped: set[int] = set()
        self.wrap_all()
        cluster.network.observers.append(self._network)

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    def wrap_all(self) -> None:
        c = self.cluster
        runtimes = [c.head, *c.nodes.values(), *c.workers.values(), *getattr(c, "drivers", {}).values()]
        for rt in runtimes:
            if rt is not None and id(rt.core) not in self._wrapped:
                self._wrap(rt.address, rt.core)

    def _wrap(self, process: str, core: Any) -> None:
        original = core.handle
        snapshot = self._snapshot

        def handle(event: Any) -> list[Any]:
            before = snapshot(process, core) if snapshot else None
            effects = original(event)
            after = snapshot(process, core) if snapshot else None
            self.steps.append(CoreStep(self._tick(), process, event, tuple(effects), before, after))
            return effects

        core.handle = handle
        self._wrapped.add(id(core))

    def user(self, process: str, kind: str, detail: Any = None) -> None:
        self.steps.append(UserStep(self._tick(), process, kind, detail))

    def _network(self, event: NetworkEvent) -> None:
        if event.kind in ("crash", "drop"):
            self.steps.append(NetStep(self._tick(), event))


def write_log(path: Path, header: dict[str, Any], lines: Iterable[LogLine]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"format": FORMAT, **header}, sort_keys=True) + "\n")
        for line in lines:
            f.write(json.dumps(line.to_json(), sort_keys=True, ensure_ascii=False) + "\n")


def read_log(path: Path) -> tuple[dict[str, Any], list[LogLine]]:
    """The header and the lines of an NDJSON event log."""
    header: dict[str, Any] | None = None
    lines: list[LogLine] = []
    last_clock = -1
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise LogFormatError(f"{path}:{number}: not JSON: {exc.msg}") from None
            if not isinstance(data, dict):
                raise LogFormatError(f"{path}:{number}: a line must be a JSON object")
            if header is None:
                if data.get("format") != FORMAT:
                    raise LogFormatError(f"{path}:{number}: the first line must be a header with format {FORMAT!r}")
                header = data
                continue
            try:
                clock, process, action, params = data["clock"], data["process"], data["action"], data["params"]
            except KeyError as exc:
                raise LogFormatError(f"{path}:{number}: missing field {exc.args[0]!r}") from None
            if not isinstance(clock, int) or clock < last_clock:
                raise LogFormatError(f"{path}:{number}: clock {clock!r} goes back (previous line: {last_clock})")
            if not isinstance(action, str) or not action.isidentifier() or not isinstance(params, dict):
                raise LogFormatError(f"{path}:{number}: action must be a name and params an object")
            decoded = {k: decode_value(v, f"line {number} params.{k}") for k, v in params.items()}
            lines.append(LogLine(clock, str(process), action, decoded))
            last_clock = clock
    if header is None:
        raise LogFormatError(f"{path}: empty log (no header line)")
    return header, lines


async def random_workload(mapping: Any, *, seed: int, max_steps: int = 200) -> tuple[dict[str, Any], list[LogLine]]:
    """Run the implementation under a seeded random environment and return
    the event log of what it did: the mapping offers the stimuli that make
    sense now (:meth:`offers`: submit the next task, deliver a message,
    crash a process within the model's crash budget, a timeout); one is
    picked at random until nothing is left to do."""
    rng = random.Random(seed)
    async with mapping.cluster() as cluster:
        await mapping.start(cluster)
        recorder = Recorder(cluster, mapping.snapshot_for_log)
        mapping.recorder = recorder
        mapping.rng = rng
        for _ in range(max_steps):
            recorder.wrap_all()
            offers = mapping.offers()
            if not offers:
                break
            name, stimulus = offers[rng.randrange(len(offers))]
            await stimulus()
        recorder.wrap_all()
        lines = mapping.recognize(recorder.steps)
    header = {
        "spec": mapping.spec,
        "seed": seed,
        "constants": {k: encode_value(v) for k, v in sorted(mapping.constants.items())},
    }
    return header, lines
