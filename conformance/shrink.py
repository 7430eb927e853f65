"""Shorter traces that still diverge.

A trace that diverges at step ``k`` is cut after ``k``. Then, without
running TLC again, the traces of the same model (the corpus being replayed)
are merged into one graph of spec states: every step of every trace is a
transition TLC produced, so any path in that graph is a behaviour of the
spec. The shortest path from the initial state to the settled state where
the divergent stimulus was applied, followed by the divergent steps, is a
shorter trace that reaches the same step from the same state; if it still
diverges, it replaces the trace, and the search repeats from it.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import attrs

from ownership.tla.itf import ITFTrace
from ownership.tla.values import TLARecord

from .generate import canonical
from .replay import Divergence, ReplayResult, replay, trace_steps

__all__ = ["ShrinkResult", "shrink"]


@attrs.frozen
class ShrinkResult:
    trace: ITFTrace
    result: ReplayResult
    original_length: int
    attempts: int


def _key(state: dict[str, Any]) -> str:
    return canonical(TLARecord(state))


def _segment_start(trace: ITFTrace, eager: frozenset[str], k: int) -> int:
    """The last settled state before step ``k``: where its stimulus was applied."""
    steps = trace_steps(trace)
    j = k - 1
    while j > 0 and steps[j].action in eager:
        j -= 1
    return j


def _sub(trace: ITFTrace, indexes: Sequence[tuple[ITFTrace, int]], note: str) -> ITFTrace:
    states = tuple(t.states[i] for t, i in indexes)
    meta = tuple(t.state_meta[i] for t, i in indexes)
    return ITFTrace(trace.vars, states, {**trace.meta, "shrunk": note}, trace.params, None, meta)


def _candidates(trace: ITFTrace, k: int, eager: frozenset[str], corpus: Sequence[ITFTrace]) -> list[ITFTrace]:
    out = [_sub(trace, [(trace, i) for i in range(k + 1)], "cut after the divergent step")]
    j = _segment_start(trace, eager, k)
    # The union of the corpus's transitions, searched breadth-first from the initial state.
    succ: dict[str, list[tuple[str, ITFTrace, int]]] = collections.defaultdict(list)
    for t in [trace, *corpus]:
        if t.meta.get("spec") != trace.meta.get("spec") or t.meta.get("constants") != trace.meta.get("constants"):
            continue
        keys = [_key(s) for s in t.states]
        for i in range(1, len(keys)):
            succ[keys[i - 1]].append((keys[i], t, i))
    start, goal = _key(trace.states[0]), _key(trace.states[j])
    parent: dict[str, tuple[str, ITFTrace, int] | None] = {start: None}
    queue = collections.deque([start])
    while queue and goal not in parent:
        node = queue.popleft()
        for nxt, t, i in succ.get(node, ()):
            if nxt not in parent:
                parent[nxt] = (node, t, i)
                queue.append(nxt)
    if goal in parent:
        path: list[tuple[ITFTrace, int]] = []
        node = goal
        while (link := parent[node]) is not None:
            prev, t, i = link
            path.append((t, i))
            node = prev
        path.reverse()
        shorter = [(trace, 0), *path, *[(trace, i) for i in range(j + 1, k + 1)]]
        if len(shorter) < k + 1:
            out.append(_sub(trace, shorter, f"a shortest way through the corpus to step {j}, then steps {j + 1}..{k}"))
    return sorted(out, key=lambda t: len(t.states))


async def shrink(
    trace: ITFTrace,
    divergence: Divergence,
    corpus: Sequence[ITFTrace] = (),
    *,
    eager: frozenset[str] = frozenset(),
    source: str = "<trace>",
    max_rounds: int = 10,
    timeout: float = 60.0,
) -> ShrinkResult | None:
    """The shortest diverging trace found, or ``None`` if none is shorter."""
    best: ShrinkResult | None = None
    current, k = trace, divergence.step
    attempts = 0
    for _ in range(max_rounds):
        improved = False
        for candidate in _candidates(current, k, eager, corpus):
            if len(candidate.states) >= len(current.states):
                continue
            attempts += 1
            result = await replay(candidate, source=f"{source} (shrunk)", timeout=timeout)
            if result.divergence is not None:
                best = ShrinkResult(candidate, result, len(trace.states), attempts)
                current, k = candidate, result.divergence.step
                improved = True
                break
        if not improved:
            break
    return best
