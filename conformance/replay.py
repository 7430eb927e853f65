"""Replaying ITF traces on the in-memory cluster (model -> implementation).

For each trace: start a cluster shaped by the trace's constants (the
spec's mapping builds it), compare the mapping's projection with the
initial state, then for every step apply the step's stimulus (none for an
action the implementation takes by itself) and, in every *settled* state
(the next step is not such an action, or the trace ends), compare the
projection with the trace's state. The first difference ends the replay
with a :class:`Divergence`: the step, its action, and expected against
actual per variable.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from ownership.tla.itf import ITFFormatError, ITFTrace, decode_value, load_itf
from ownership.tla.values import format_value, sort_key

from .cluster import StimulusError
from .generate import canonical, edge_ids
from .mappings import Mapping, load_mapping

__all__ = ["Divergence", "ReplayResult", "TraceError", "replay", "replay_all", "load_traces", "diff_states", "trace_steps", "model_constants"]

#: seconds a single trace may take before it counts as hung
DEFAULT_TIMEOUT = 60.0


class TraceError(ValueError):
    """A trace the harness cannot replay (no spec, no constants, no mapping)."""


@attrs.frozen
class Step:
    """Step ``index`` of a trace: the action that led to state ``index``."""

    index: int
    action: str
    params: Any

    def __str__(self) -> str:
        if isinstance(self.params, dict) and self.params:
            shown = ", ".join(f"{k} = {_compact(v)}" for k, v in sorted(self.params.items()) if not _is_null(v))
            return f"{self.action}({shown})"
        return self.action


def _is_null(value: Any) -> bool:
    """The specs' null values (``NoWorker``, a message of type "None")."""
    name = getattr(value, "name", None)
    if isinstance(name, str) and name.startswith("No"):
        return True
    return isinstance(value, dict) and value.get("type") == "None"


def _compact(value: Any) -> str:
    """A message record as ``Type{field: value, ...}`` without its null fields."""
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        fields = ", ".join(f"{k}: {_compact(v)}" for k, v in sorted(value.items()) if k != "type" and not _is_null(v))
        return f"{value['type']}{{{fields}}}"
    return format_value(value)


@attrs.frozen
class Divergence:
    """Where the implementation stopped following the trace.

    ``kind``: ``"state"`` (the projection differs from the trace's state),
    ``"stimulus"`` (the step's stimulus could not be given, e.g. its message
    is not in flight), ``"error"`` (the implementation raised) or
    ``"timeout"``.
    """

    step: int
    action: str
    kind: str
    message: str
    diffs: dict[str, tuple[Any, Any]] = attrs.field(factory=dict)
    steps: tuple[Step, ...] = ()

    def describe(self) -> str:
        lines = [f"step {self.step}: {self.steps[-1] if self.steps else self.action} — {self.message}"]
        for name, (expected, actual) in sorted(self.diffs.items()):
            lines.append(f"  {name}:")
            lines.extend("    " + line for line in diff_lines(expected, actual))
        return "\n".join(lines)


@attrs.frozen
class ReplayResult:
    source: str
    spec: str
    config: str
    length: int
    compared: int
    divergence: Divergence | None
    #: ids of the transitions the implementation followed (up to the last state that matched)
    edges: tuple[str, ...]
    #: (action, parameters) of those transitions
    actions: tuple[tuple[str, str], ...]
    seconds: float
    #: a targeted trace (of a Test* predicate), not one of a config's cover
    targeted: bool = False

    @property
    def passed(self) -> bool:
        return self.divergence is None


def trace_steps(trace: ITFTrace) -> list[Step]:
    steps = []
    for i, meta in enumerate(trace.state_meta):
        params = decode_value(meta.get("params", {}), f"states[{i}].#meta.params")
        steps.append(Step(i, str(meta.get("action", "?")), params))
    return steps


def _constants(trace: ITFTrace, source: str) -> dict[str, Any]:
    raw = trace.meta.get("constants")
    if not isinstance(raw, dict):
        raise TraceError(f"{source}: the trace has no #meta.constants (regenerate it with `ownership traces generate`)")
    return {k: decode_value(v, f"#meta.constants.{k}") for k, v in raw.items()}


def mapping_for(trace: ITFTrace, source: str) -> Mapping:
    spec = trace.meta.get("spec")
    if not isinstance(spec, str):
        raise TraceError(f"{source}: the trace names no spec in #meta.spec")
    cls = load_mapping(spec)
    if cls is None:
        raise TraceError(f"{source}: no mapping for spec {spec} (conformance/mappings/)")
    if getattr(cls, "log_only", None):
        raise TraceError(f"{source}: {spec} traces are not replayed: {cls.log_only}")
    return cls(_constants(trace, source))


def diff_states(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    out = {}
    for name in sorted(set(expected) | set(actual)):
        e, a = expected.get(name, _MISSING), actual.get(name, _MISSING)
        if e != a:
            out[name] = (e, a)
    return out


class _Missing:
    def __repr__(self) -> str:
        return "(not projected)"


_MISSING = _Missing()


def _show(v: Any) -> str:
    if v is _MISSING:
        return "(absent)"
    try:
        return format_value(v)
    except (TypeError, ValueError):
        return repr(v)


def diff_lines(expected: Any, actual: Any) -> list[str]:
    """A readable difference: set elements missing/extra, function entries
    that differ, else the two values."""
    if isinstance(expected, frozenset) and isinstance(actual, frozenset):
        lines = [f"- expected, missing: {_show(x)}" for x in sorted(expected - actual, key=_safe_key)]
        lines += [f"+ actual, unexpected: {_show(x)}" for x in sorted(actual - expected, key=_safe_key)]
        return lines
    if isinstance(expected, dict) and isinstance(actual, dict) and not isinstance(expected, str):
        lines = []
        for key in sorted(set(expected) | set(actual), key=_safe_key):
            e, a = expected.get(key, _MISSING), actual.get(key, _MISSING)
            if e != a:
                sub = diff_lines(e, a)
                if len(sub) == 2 and sub[0].startswith("expected") and sub[1].startswith("actual"):
                    lines.append(f"[{_show(key)}] expected {_show(e)}, actual {_show(a)}")
                else:
                    lines.append(f"[{_show(key)}]")
                    lines.extend("  " + line for line in sub)
        return lines
    return [f"expected {_show(expected)}", f"actual   {_show(actual)}"]


def _safe_key(v: Any) -> Any:
    try:
        return (0, sort_key(v))
    except TypeError:
        return (1, repr(v))


async def replay(
    trace: ITFTrace,
    *,
    source: str = "<trace>",
    mapping: Mapping | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ReplayResult:
    """Replay one trace on a fresh cluster."""
    started = time.monotonic()
    mapping = mapping or mapping_for(trace, source)
    steps = trace_steps(trace)
    states = trace.states
    eager = mapping.eager
    compared = 0
    good = 0  # the last state index known to match
    divergence: Divergence | None = None
    done: list[Step] = []

    def settled(i: int) -> bool:
        return i == len(states) - 1 or steps[i + 1].action not in eager

    async def run() -> None:
        nonlocal compared, good, divergence
        async with mapping.cluster() as cluster:
            await mapping.start(cluster)
            for i in range(len(states)):
                step = steps[i]
                done.append(step)
                if i > 0 and step.action not in eager:
                    # the steps the implementation takes by itself next, in the trace's order
                    ahead = []
                    for later in steps[i + 1 :]:
                        if later.action not in eager:
                            break
                        ahead.append((later.action, later.params))
                    mapping.expect(ahead)
                    try:
                        await mapping.apply(step.action, dict(step.params))
                    except StimulusError as exc:
                        divergence = Divergence(i, step.action, "stimulus", str(exc), steps=tuple(done))
                        return
                if not settled(i):
                    continue
                compared += 1
                diffs = diff_states(mapping.abstract(states[i]), mapping.project())
                if diffs:
                    what = "the implementation's state differs from the trace's"
                    divergence = Divergence(i, step.action, "state", what, diffs, tuple(done))
                    return
                good = i

    try:
        with trio.fail_after(timeout):
            await run()
    except trio.TooSlowError:
        divergence = Divergence(len(done) - 1, done[-1].action if done else "", "timeout", f"the replay took more than {timeout:.0f} s", steps=tuple(done))
    except StimulusError as exc:
        divergence = Divergence(len(done) - 1, done[-1].action if done else "", "stimulus", str(exc), steps=tuple(done))
    except Exception as exc:  # the implementation (or the harness) raised: report, do not crash the run
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6))
        divergence = Divergence(len(done) - 1, done[-1].action if done else "", "error", f"{type(exc).__name__}: {exc}\n{tb}", steps=tuple(done))
    edges = edge_ids(states[: good + 1]) if good > 0 else ()
    actions = tuple((steps[i].action, canonical(steps[i].params)) for i in range(1, good + 1))
    return ReplayResult(
        source=source,
        spec=str(trace.meta.get("spec", "?")),
        config=str(trace.meta.get("config", "?")),
        length=len(states),
        compared=compared,
        divergence=divergence,
        edges=edges,
        actions=actions,
        seconds=time.monotonic() - started,
        targeted="test" in trace.meta,
    )


def load_traces(paths: Iterable[Path | str]) -> list[tuple[Path, ITFTrace]]:
    """Every ``*.itf.json`` under ``paths`` (files or folders), sorted."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.rglob("*.itf.json")))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such trace file or folder: {p}")
    out = []
    for f in files:
        try:
            out.append((f, load_itf(f)))
        except ITFFormatError as exc:
            raise TraceError(str(exc)) from None
    return out


async def replay_all(
    traces: Sequence[tuple[Path, ITFTrace]], *, timeout: float = DEFAULT_TIMEOUT, on_result: Any = None
) -> list[ReplayResult]:
    results = []
    for path, trace in traces:
        result = await replay(trace, source=str(path), timeout=timeout)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def model_constants(spec: Any, config: str, traces_root: Path = Path("traces")) -> dict[str, Any]:
    """The constants of ``spec``'s model ``config``, as its traces record
    them (``traces/<Spec>/<Config>_*.index.json``), else from TLC."""
    folder = Path(traces_root) / spec.name
    for index in sorted(folder.glob(f"{config}_*.index.json")) if folder.is_dir() else ():
        data = json.loads(index.read_text(encoding="utf-8"))
        if isinstance(data.get("constants"), dict):
            return {k: decode_value(v, f"{index}: constants.{k}") for k, v in data["constants"].items()}
    from .generate import LAST_ACTION, _Workspace, read_constants

    with _Workspace(spec, frozenset(), LAST_ACTION) as ws:
        constants = read_constants(spec, config, ws)
    if not constants:
        raise TraceError(f"TLC printed no constants for {spec.name} ({config})")
    return constants
