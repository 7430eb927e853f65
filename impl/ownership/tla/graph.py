"""TLC's state graph (``-dump dot,actionlabels``) and paths that cover it.

TLC 2.15 writes the graph as DOT, one line per node or edge::

    strict digraph DiskGraph {
    nodesep=0.35;
    subgraph cluster_graph {
    color="white";
    -2543021176978041085 [label="/\\\\ x = 0\\n/\\\\ y = {}",style = filled]
    -2543021176978041085 -> -622757702089971118 [label="Next",color="black",fontcolor="black"];
    -622757702089971118 [label="/\\\\ x = 1\\n/\\\\ y = {1}"];
    {rank = same; -622757702089971118;}
    }
    }

Node ids are state fingerprints; a node's label is the state (``\\n``
between ``/\\ var = value`` lines, ``\\"`` and ``\\\\`` escaped); initial
states carry ``style = filled``; an edge's label is the action's name only
(no parameters: keep them in a ``lastAction`` variable). An edge may come
before the line that defines its target. Fingerprints change from run to run
(TLC picks the fingerprint polynomial at random), so everything here that
orders nodes orders them by their state text, never by id.

With a ``VIEW``, a node is the first state TLC found for that view, so its
variables outside the view (``lastAction``) need not match every edge that
arrives at it.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

import attrs

from .tlc import INITIAL_PREDICATE, TraceState
from .values import TLAValueSyntaxError, parse_state

__all__ = [
    "Edge",
    "GraphFormatError",
    "StateGraph",
    "cover_actions",
    "cover_edges",
    "last_action_key",
    "load_dot",
    "parse_dot",
    "path_to_trace",
]


class GraphFormatError(ValueError):
    """A DOT dump this module cannot read; ``line`` is 1-based."""

    def __init__(self, message: str, line: int | None = None, source: str | None = None) -> None:
        self.message = message
        self.line = line
        self.source = source
        where = f"{source or '<dot>'}" + (f":{line}" if line is not None else "")
        super().__init__(f"{where}: {message}")


@attrs.frozen
class Edge:
    """A transition ``source -> target`` by ``action`` (``None`` when the
    dump was written without ``actionlabels``)."""

    source: int
    target: int
    action: str | None


@attrs.frozen(eq=False)
class StateGraph:
    """States by fingerprint, their transitions, and the initial states.

    ``labels`` keeps each state's text as TLC printed it; it is also the
    stable sort key of a state.
    """

    states: dict[int, dict[str, Any]]
    labels: dict[int, str]
    edges: tuple[Edge, ...]
    initial: tuple[int, ...]
    _out: dict[int, tuple[Edge, ...]] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        out: dict[int, list[Edge]] = {node: [] for node in self.states}
        for edge in self.edges:
            out[edge.source].append(edge)
        ordered = {node: tuple(sorted(edges, key=self.edge_key)) for node, edges in out.items()}
        object.__setattr__(self, "_out", ordered)

    def successors(self, node: int) -> tuple[Edge, ...]:
        """Edges leaving ``node``, in stable order (action, then target state)."""
        return self._out[node]

    def edge_key(self, edge: Edge) -> tuple[str, str, str]:
        return (self.labels[edge.source], edge.action or "", self.labels[edge.target])

    def reachable(self) -> list[int]:
        """Nodes reachable from the initial states, in breadth-first order."""
        return list(self._bfs()[0])

    def _bfs(self) -> tuple[dict[int, int], dict[int, Edge | None]]:
        """Distances from the initial states and a shortest-path tree.

        Initial states and successors are visited in stable order, so the
        tree is the same whatever fingerprints TLC chose.
        """
        dist: dict[int, int] = {}
        parent: dict[int, Edge | None] = {}
        frontier = sorted(self.initial, key=self.labels.__getitem__)
        for node in frontier:
            dist[node] = 0
            parent[node] = None
        while frontier:
            following: list[int] = []
            for node in frontier:
                for edge in self._out[node]:
                    if edge.target not in dist:
                        dist[edge.target] = dist[node] + 1
                        parent[edge.target] = edge
                        following.append(edge.target)
            frontier = following
        return dist, parent


_NODE = re.compile(r'^(-?\d+)\s*\[label="((?:[^"\\]|\\.)*)"(.*)\]\s*;?\s*$')
_EDGE = re.compile(r"^(-?\d+)\s*->\s*(-?\d+)\s*(?:\[(.*)\])?\s*;?\s*$")
_LABEL_ATTR = re.compile(r'label="((?:[^"\\]|\\.)*)"')
_FILLED = re.compile(r"style\s*=\s*\"?filled\"?")
_DOT_ESCAPE = re.compile(r"\\(.)")
_IGNORED = re.compile(r"^(?:strict\s+)?digraph\b|^subgraph\b|^[{}]|^\}|^\w+\s*=|^$")


def _unescape(text: str) -> str:
    return _DOT_ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse_dot(text: str, *, source: str | None = None) -> StateGraph:
    """Read TLC's ``-dump dot,actionlabels`` output."""
    labels: dict[int, str] = {}
    states: dict[int, dict[str, Any]] = {}
    initial: list[int] = []
    edges: dict[Edge, int] = {}  # edge -> line, deduplicated in file order
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if m := _EDGE.match(line):
            label = _LABEL_ATTR.search(m.group(3) or "")
            edge = Edge(int(m.group(1)), int(m.group(2)), _unescape(label.group(1)) if label else None)
            edges.setdefault(edge, number)
        elif m := _NODE.match(line):
            node = int(m.group(1))
            label = _unescape(m.group(2))
            if node in labels:
                if labels[node] != label:
                    raise GraphFormatError(f"state {node} is defined twice with different labels", number, source)
                continue
            try:
                states[node] = parse_state(label)
            except TLAValueSyntaxError as exc:
                raise GraphFormatError(f"cannot read state {node}: {exc}", number, source) from exc
            labels[node] = label
            if _FILLED.search(m.group(3)):
                initial.append(node)
        elif not _IGNORED.match(line) and not line.startswith("{rank"):
            raise GraphFormatError(f"unrecognised line: {line[:120]!r}", number, source)
    for edge, number in edges.items():
        for end in (edge.source, edge.target):
            if end not in states:
                raise GraphFormatError(f"edge refers to state {end}, which is never defined (truncated dump?)", number, source)
    if states and not initial:
        raise GraphFormatError("no initial state (no node has style = filled)", None, source)
    return StateGraph(states, labels, tuple(edges), tuple(initial))


def load_dot(path: Path | str) -> StateGraph:
    """Read a DOT dump from a file."""
    path = Path(path)
    return parse_dot(path.read_text(encoding="utf-8"), source=str(path))


# ---------------------------------------------------------------------------
# Covering paths
# ---------------------------------------------------------------------------


def _tree_path(parent: dict[int, Edge | None], node: int) -> list[Edge]:
    path: list[Edge] = []
    while (edge := parent[node]) is not None:
        path.append(edge)
        node = edge.source
    path.reverse()
    return path


def _cover(graph: StateGraph, cls: Callable[[Edge], Hashable], max_paths: int | None) -> list[list[Edge]]:
    """Paths from initial states until every class of reachable edge is on one.

    Repeatedly: the shortest path (through the breadth-first tree) that ends
    with an edge of an uncovered class, then extended greedily from its end
    along edges of uncovered classes. Ties go by the edges' state text, so the
    result depends only on the graph's states and transitions.
    """
    if max_paths is not None and max_paths < 0:
        raise ValueError(f"max_paths must not be negative, got {max_paths}")
    dist, parent = graph._bfs()
    candidates = [
        (dist[edge.source], graph.edge_key(edge), edge) for edge in graph.edges if edge.source in dist
    ]
    heapq.heapify(candidates)
    covered: set[Hashable] = set()
    paths: list[list[Edge]] = []
    while candidates and (max_paths is None or len(paths) < max_paths):
        _, _, edge = heapq.heappop(candidates)
        if cls(edge) in covered:
            continue
        path = _tree_path(parent, edge.source) + [edge]
        covered.update(cls(e) for e in path)
        node = edge.target
        while True:
            step = next((e for e in graph.successors(node) if cls(e) not in covered), None)
            if step is None:
                break
            path.append(step)
            covered.add(cls(step))
            node = step.target
        paths.append(path)
    return paths


def cover_edges(graph: StateGraph, max_paths: int | None = None) -> list[list[Edge]]:
    """Paths from initial states that together take every reachable edge
    (the first ``max_paths`` of them if given)."""
    return _cover(graph, lambda edge: edge, max_paths)


def last_action_key(graph: StateGraph, edge: Edge) -> Hashable:
    """The action's name and its parameters, read from the target state's
    ``lastAction`` variable (``None`` when the spec has none)."""
    return (edge.action, graph.states[edge.target].get("lastAction"))


def cover_actions(
    graph: StateGraph,
    key: Callable[[StateGraph, Edge], Hashable] = last_action_key,
    max_paths: int | None = None,
) -> list[list[Edge]]:
    """Paths from initial states that take each distinct ``key`` (by default:
    each action with each of its parameter values) at least once."""
    return _cover(graph, lambda edge: key(graph, edge), max_paths)


def path_to_trace(graph: StateGraph, path: Iterable[Edge]) -> list[TraceState]:
    """A path as a behaviour: its first state, then the state after each edge."""
    path = list(path)
    if not path:
        return []
    trace = [TraceState(1, INITIAL_PREDICATE, graph.states[path[0].source])]
    for previous, edge in zip(path, path[1:]):
        if previous.target != edge.source:
            raise ValueError(f"not a path: an edge ends at {previous.target}, the next starts at {edge.source}")
    for index, edge in enumerate(path, start=2):
        trace.append(TraceState(index, edge.action or "", graph.states[edge.target]))
    return trace
