"""State graphs from TLC's DOT dump, and the paths that cover them."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from ownership.tla.graph import (
    Edge,
    GraphFormatError,
    StateGraph,
    cover_actions,
    cover_edges,
    last_action_key,
    load_dot,
    parse_dot,
    path_to_trace,
)
from ownership.tla.tlc import INITIAL_PREDICATE, check
from ownership.tla.values import ModelValue, TLAFunction, TLARecord

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def flip_dot(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The state graph of MCFlip as TLC 2.15 dumps it (one real run)."""
    path = tmp_path_factory.mktemp("graph") / "flip.dot"
    result = check(FIXTURES / "MCFlip.tla", dump_dot=path)
    assert result.ok, result.output
    assert result.distinct_states == 38
    return path.read_text()


def test_load_dot_real_dump(flip_dot: str, tmp_path: Path) -> None:
    (tmp_path / "flip.dot").write_text(flip_dot)
    graph = load_dot(tmp_path / "flip.dot")
    # 38 distinct states, 116 generated = 2 initial + 114 transitions.
    assert len(graph.states) == 38
    assert len(graph.edges) == 114
    assert len(graph.initial) == 2
    assert {graph.states[i]["round"] for i in graph.initial} == {0, 1}
    assert {e.action for e in graph.edges} == {"ProcFlip", "RoundAdvance", "RoundIdle"}
    self_loops = [e for e in graph.edges if e.source == e.target]
    assert self_loops and all(e.action == "RoundIdle" for e in self_loops)
    p1, p2 = ModelValue("p1"), ModelValue("p2")
    some = next(s for s in graph.states.values() if s["lastAction"] == TLARecord(name="ProcFlip", p=p2))
    assert set(some["bits"]) == {p1, p2} and isinstance(some["bits"], TLAFunction)


def test_parse_dot_every_edge_target_state_matches_action(flip_dot: str) -> None:
    graph = parse_dot(flip_dot)
    for edge in graph.edges:
        assert graph.states[edge.target]["lastAction"]["name"] == edge.action


def _check_paths(graph: StateGraph, paths: list[list[Edge]]) -> None:
    for path in paths:
        assert path, "empty path"
        assert path[0].source in graph.initial
        for before, after in zip(path, path[1:]):
            assert before.target == after.source


def test_cover_edges_covers_every_edge(flip_dot: str) -> None:
    graph = parse_dot(flip_dot)
    paths = cover_edges(graph)
    _check_paths(graph, paths)
    assert {e for path in paths for e in path} == set(graph.edges)
    # Each path adds an edge no earlier path took.
    seen: set[Edge] = set()
    for path in paths:
        assert set(path) - seen
        seen |= set(path)


def test_cover_actions_covers_every_action_and_parameters(flip_dot: str) -> None:
    graph = parse_dot(flip_dot)
    paths = cover_actions(graph)
    _check_paths(graph, paths)
    wanted = {last_action_key(graph, e) for e in graph.edges}
    assert len(wanted) == 4  # ProcFlip(p1), ProcFlip(p2), RoundAdvance, RoundIdle
    assert {last_action_key(graph, e) for path in paths for e in path} == wanted
    assert len(paths) <= len(cover_edges(graph))


def test_cover_actions_custom_key(flip_dot: str) -> None:
    graph = parse_dot(flip_dot)
    paths = cover_actions(graph, key=lambda g, e: e.action)
    assert {e.action for path in paths for e in path} == {"ProcFlip", "RoundAdvance", "RoundIdle"}


def test_cover_edges_max_paths_limits(flip_dot: str) -> None:
    graph = parse_dot(flip_dot)
    everything = cover_edges(graph)
    assert cover_edges(graph, max_paths=3) == everything[:3]
    assert cover_edges(graph, max_paths=0) == []
    with pytest.raises(ValueError, match="must not be negative"):
        cover_edges(graph, max_paths=-1)


def _relabel(dot: str, seed: int) -> str:
    """The same graph as another TLC run could write it: other fingerprints,
    nodes and edges in another order."""
    rng = random.Random(seed)
    ids = sorted(set(re.findall(r"-?\d{6,}", dot)))
    fresh: set[int] = set()
    while len(fresh) < len(ids):
        fresh.add(rng.getrandbits(63) - 2**62)
    mapping = dict(zip(ids, map(str, sorted(fresh, key=lambda _: rng.random()))))
    lines = dot.splitlines()
    body = [line for line in lines if re.match(r"-?\d", line)]
    rng.shuffle(body)
    head = lines[:4]
    tail = [line for line in lines[4:] if not re.match(r"-?\d", line)]
    text = "\n".join(head + body + tail)
    return re.sub(r"-?\d{6,}", lambda m: mapping[m.group()], text)


def _as_labels(graph: StateGraph, paths: list[list[Edge]]) -> list[list[tuple[str, str | None, str]]]:
    return [[graph.edge_key(e) for e in path] for path in paths]


def test_cover_paths_independent_of_fingerprints_and_file_order(flip_dot: str) -> None:
    graph = parse_dot(flip_dot)
    other = parse_dot(_relabel(flip_dot, seed=11))
    assert set(other.labels.values()) == set(graph.labels.values())
    assert _as_labels(graph, cover_edges(graph)) == _as_labels(other, cover_edges(other))
    assert _as_labels(graph, cover_actions(graph)) == _as_labels(other, cover_actions(other))


def test_path_to_trace_states_in_order(flip_dot: str) -> None:
    graph = parse_dot(flip_dot)
    path = cover_actions(graph)[0]
    trace = path_to_trace(graph, path)
    assert [s.index for s in trace] == list(range(1, len(path) + 2))
    assert trace[0].action == INITIAL_PREDICATE
    assert [s.action for s in trace[1:]] == [e.action for e in path]
    assert trace[-1].state == graph.states[path[-1].target]
    with pytest.raises(ValueError, match="not a path"):
        path_to_trace(graph, [path[0], path[0]] if path[0].source != path[0].target else [path[0], path[-1]])


SMALL = r"""strict digraph DiskGraph {
nodesep=0.35;
subgraph cluster_graph {
color="white";
1 [label="/\\ s = \"a\\\"b\\\\c\"\n/\\ x = 0",style = filled]
1 -> 2 [label="Inc",color="black",fontcolor="black"];
2 [label="/\\ s = \"a\\\"b\\\\c\"\n/\\ x = 1"];
1 -> 2 [label="Inc",color="black",fontcolor="black"];
2 -> 2 [label="Stay",color="black",fontcolor="black"];
{rank = same; 1;}
}
}
"""


def test_parse_dot_unescapes_labels_and_deduplicates_edges() -> None:
    graph = parse_dot(SMALL)
    assert graph.states[1] == {"s": 'a"b\\c', "x": 0}
    assert graph.edges == (Edge(1, 2, "Inc"), Edge(2, 2, "Stay"))
    assert graph.initial == (1,)
    assert cover_edges(graph) == [[Edge(1, 2, "Inc"), Edge(2, 2, "Stay")]]


def test_parse_dot_truncated_dump_rejected() -> None:
    truncated = "\n".join(SMALL.splitlines()[:6])  # killed after the first edge
    with pytest.raises(GraphFormatError, match="state 2, which is never defined") as info:
        parse_dot(truncated, source="cut.dot")
    assert info.value.line == 6
    assert str(info.value).startswith("cut.dot:6:")


def test_parse_dot_bad_state_label_rejected() -> None:
    bad = SMALL.replace(r"/\\ x = 1", r"/\\ x = {1")
    with pytest.raises(GraphFormatError, match="cannot read state 2") as info:
        parse_dot(bad)
    assert info.value.line == 7


def test_parse_dot_garbage_line_rejected() -> None:
    with pytest.raises(GraphFormatError, match="unrecognised line") as info:
        parse_dot(SMALL.replace("nodesep=0.35;", "what is this"))
    assert info.value.line == 2


def test_parse_dot_without_initial_state_rejected() -> None:
    with pytest.raises(GraphFormatError, match="no initial state"):
        parse_dot(SMALL.replace(",style = filled", ""))
