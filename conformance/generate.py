"""``ownership traces generate``: ITF traces from the specs' state graphs.

For a spec and one of its model configs:

1. TLC checks the model without its VIEW, SYMMETRY, invariants and
   properties (a temporary copy of the config) and dumps the whole state
   graph (``-dump dot,actionlabels``). Without a VIEW every state is itself,
   so each state's ``lastAction`` names the action and the parameters of
   every edge into it (TLC 2.15 labels edges with the action name only).
2. Paths from the initial state cover every edge (``--cover edges``) or
   every action with each of its parameter values (``--cover actions``);
   ties are broken by the states' text, never by TLC's fingerprints, so the
   same spec and config always give the same paths.
3. Each path is written as an ITF trace ``traces/<Spec>/<Config>_<cover>_NNNN.itf.json``.
   The trace's ``#meta`` has the spec hash, the config, the checker version
   and the generator's settings; each state's ``#meta`` has the action that
   led to it with its parameters, and the id of the edge it took (a hash of
   the two states' text) for coverage.
4. For each Test* predicate of the spec's tests module, TLC looks for a
   counterexample to ``~TestX`` (a temporary module extending the model and
   the tests module, with ``INVARIANT NotTestX``): a shortest behaviour that
   reaches a state where ``TestX`` holds, written as ``test_<name>.itf.json``.

``traces/<Spec>/<Config>_<cover>.index.json`` records the size of the model's graph
(states, edges, actions, actions with parameters) so that coverage can be
computed from replays without running TLC again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

from ownership.tla.graph import Edge, GraphFormatError, StateGraph, cover_actions, cover_edges, path_to_trace
from ownership.tla.itf import ITFTrace, dumps_itf, encode_value
from ownership.tla.tlc import CheckResult, TraceState, check
from ownership.tla.values import TLARecord, parse_state

from .specs import SpecError, SpecModel, spec_hash, strip_cfg

__all__ = [
    "GeneratedSet",
    "GenerationError",
    "LAST_ACTION",
    "StateGraphData",
    "action_of",
    "edge_id",
    "generate",
    "read_state_graph",
    "state_id",
    "test_file_name",
]

#: The auxiliary variable every spec keeps: ``[name |-> "...", params |-> [...]]``.
LAST_ACTION = "lastAction"
GENERATOR = "ownership traces generate"


class GenerationError(RuntimeError):
    """TLC could not produce what a trace needs; the message says what and why."""


# ---------------------------------------------------------------------------
# The state graph, read lazily
# ---------------------------------------------------------------------------


class _LazyStates(dict):
    """Fingerprint -> state, parsing a state's text the first time it is read.

    A Small model's graph has ~10^5 states and the covering paths visit a
    small share of them: parsing only those keeps generation in seconds.
    """

    def __getitem__(self, key: int) -> dict[str, Any]:
        value = super().__getitem__(key)
        if isinstance(value, str):
            value = parse_state(value)
            super().__setitem__(key, value)
        return value


@attrs.frozen(eq=False)
class StateGraphData:
    """A state graph plus what a covering needs without parsing states."""

    graph: StateGraph
    #: each state's ``lastAction`` text, as TLC printed it
    last_action_text: dict[int, str]
    self_loops: int
    source: str

    def action_key(self, edge: Edge) -> tuple[str | None, str]:
        return (edge.action, self.last_action_text.get(edge.target, ""))

    def action_names(self) -> Counter:
        return Counter(edge.action or "" for edge in self.graph.edges)

    def action_keys(self) -> set[tuple[str | None, str]]:
        return {self.action_key(edge) for edge in self.graph.edges}


_NODE_LINE = re.compile(r'^(-?\d+)\s*\[label="((?:[^"\\]|\\.)*)"(.*)\]\s*;?\s*$')
_EDGE_LINE = re.compile(r'^(-?\d+)\s*->\s*(-?\d+)\s*(?:\[(?:label="((?:[^"\\]|\\.)*)")?.*\])?\s*;?\s*$')
_DOT_ESCAPE = re.compile(r"\\(.)")
_VAR_START = re.compile(r"^/\\ (\w+) = ", re.M)
_ACTION_NAME = re.compile(r'\bname \|-> "((?:[^"\\]|\\.)*)"')
_IGNORED = re.compile(r"^(?:strict\s+)?digraph\b|^subgraph\b|^\{rank|^[{}]|^\w+\s*=|^$")


def _unescape(text: str) -> str:
    return _DOT_ESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def _var_text(label: str, name: str) -> str | None:
    """The text of variable ``name`` in a state label, unparsed."""
    starts = list(_VAR_START.finditer(label))
    for i, m in enumerate(starts):
        if m.group(1) == name:
            end = starts[i + 1].start() if i + 1 < len(starts) else len(label)
            return label[m.end() : end].strip()
    return None


def read_state_graph(path: Path, *, last_action: str = LAST_ACTION) -> StateGraphData:
    """Read TLC's ``-dump dot,actionlabels`` output.

    Each edge's action is the name in its target's ``lastAction`` (TLC's
    own label names the disjunct of Next, which is ``Next`` itself for an
    action quantified over a variable such as ``m \\in msgs``). Self-loops
    (stuttering such as ``Terminated``) are left out: no stimulus makes them.
    """
    labels: dict[int, str] = {}
    states = _LazyStates()
    last: dict[int, str] = {}
    initial: list[int] = []
    raw_edges: list[tuple[int, int, str | None, int]] = []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if " -> " in line[:48] and (m := _EDGE_LINE.match(line)):
                raw_edges.append((int(m.group(1)), int(m.group(2)), m.group(3), number))
            elif m := _NODE_LINE.match(line):
                node = int(m.group(1))
                if node in labels:
                    continue
                label = _unescape(m.group(2))
                labels[node] = label
                dict.__setitem__(states, node, label)
                text = _var_text(label, last_action)
                if text is not None:
                    last[node] = text
                if "filled" in m.group(3):
                    initial.append(node)
            elif not _IGNORED.match(line):
                raise GraphFormatError(f"unrecognised line: {line[:120]!r}", number, str(path))
    edges: dict[Edge, None] = {}
    loops = 0
    for source, target, label, number in raw_edges:
        for end in (source, target):
            if end not in labels:
                raise GraphFormatError(f"edge refers to state {end}, which is never defined (truncated dump?)", number, str(path))
        if source == target:
            loops += 1
            continue
        action = label
        if target in last and (m := _ACTION_NAME.search(last[target])):
            action = m.group(1)
        edges.setdefault(Edge(source, target, action), None)
    if labels and not initial:
        raise GraphFormatError("no initial state (no node has style = filled)", None, str(path))
    graph = StateGraph(states, labels, tuple(edges), tuple(initial))
    return StateGraphData(graph, last, loops, str(path))


def state_id(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()[:16]


def edge_id(graph: StateGraph, edge: Edge) -> str:
    """A run-independent name of an edge: its states' text (fingerprints are random per run)."""
    text = graph.labels[edge.source] + "\0" + graph.labels[edge.target]
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def action_of(state: dict[str, Any], fallback: str, last_action: str = LAST_ACTION) -> tuple[str, Any]:
    """The action that led to ``state`` and its parameters, from ``lastAction``."""
    la = state.get(last_action)
    if isinstance(la, dict) and "name" in la:
        if "params" in la:
            return str(la["name"]), la["params"]
        return str(la["name"]), TLARecord({k: v for k, v in la.items() if k != "name"})
    return fallback, TLARecord({})


# ---------------------------------------------------------------------------
# Writing traces
# ---------------------------------------------------------------------------


def _itf(
    steps: list[TraceState],
    meta: dict[str, Any],
    edge_ids: list[str | None] | None = None,
) -> str:
    variables = tuple(sorted(steps[0].state)) if steps else ()
    states = tuple({v: s.state[v] for v in variables} for s in steps)
    state_meta = []
    for i, step in enumerate(steps):
        name, params = action_of(step.state, step.action)
        smeta: dict[str, Any] = {"action": name, "params": encode_value(params)}
        if edge_ids is not None and edge_ids[i] is not None:
            smeta["edge"] = edge_ids[i]
        state_meta.append(smeta)
    trace = ITFTrace(variables, states, meta, (), None, tuple(state_meta))
    return dumps_itf(trace)


def test_file_name(test: str) -> str:
    """``TestLeaseReusedThrice`` -> ``test_lease_reused_thrice.itf.json``."""
    stem = test.removeprefix("Test") or test
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", stem).lower()
    return f"test_{snake}.itf.json"


@attrs.frozen
class GeneratedSet:
    """What one ``generate`` call wrote, and the model's size."""

    spec: str
    config: str
    out_dir: Path
    files: tuple[Path, ...]
    tests: dict[str, Path]
    missing_tests: dict[str, str]
    graph: dict[str, Any]
    checker: str | None


def _tlc_version(result: CheckResult) -> str:
    return (result.version or "TLC (unknown version)").strip()


def _tlc_failure(what: str, result: CheckResult) -> GenerationError:
    if result.errors:
        detail = "; ".join(str(e) for e in result.errors[:3])
    elif result.violation is not None:
        detail = f"{result.violation.kind} {result.violation.name or ''} violated".strip()
    elif result.timed_out:
        detail = "timed out"
    else:
        detail = f"TLC exited with code {result.exit_code}"
    return GenerationError(f"{what}: {detail}")


def _copy_modules(spec: SpecModel, into: Path) -> None:
    # TLC finds extended modules next to the root module: run on a copy so
    # the temporary module and config never land in spec/.
    for path in spec.spec_dir.glob("*.tla"):
        shutil.copy2(path, into / path.name)


def generate(
    spec: SpecModel,
    config: str,
    out_dir: Path,
    *,
    cover: str = "edges",
    max_paths: int | None = None,
    graph: bool = True,
    tests: bool | Iterable[str] = True,
    workers: int = 1,
    on_status: Callable[[str], None] | None = None,
) -> GeneratedSet:
    """Write the traces of ``spec`` under ``config`` into ``out_dir``.

    Old traces of the same config and cover (and old test traces, when
    tests are generated) are removed first, so the folder holds exactly
    what this run produced.
    """
    if cover not in ("edges", "actions"):
        raise ValueError(f"cover must be 'edges' or 'actions', not {cover!r}")
    status = on_status or (lambda _msg: None)
    cfg_path = spec.config(config)
    cfg_text = cfg_path.read_text(encoding="utf-8")
    config_name = config if config in spec.configs else cfg_path.stem
    digest = spec_hash(spec)
    cfg_digest = "sha256:" + hashlib.sha256(cfg_text.encode()).hexdigest()
    base_meta = {
        "source": spec.model.name,
        "spec": spec.name,
        "config": config_name,
        "config_file": cfg_path.name,
        "spec_hash": digest,
        "config_hash": cfg_digest,
        "generator": GENERATOR,
    }
    if tests is True:
        test_names = list(spec.tests)
    elif tests is False:
        test_names = []
    else:
        test_names = list(tests)
        unknown = [t for t in test_names if t not in spec.tests]
        if unknown:
            raise SpecError(f"{spec.name} has no test predicate {', '.join(unknown)} (it has: {', '.join(spec.tests) or 'none'})")
    if test_names and spec.tests_module is None:
        raise SpecError(f"{spec.name} has no tests module, so no Test* predicates to trace")

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    graph_info: dict[str, Any] = {}
    checker: str | None = None
    test_files: dict[str, Path] = {}
    missing: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ownership-traces-") as tmp_name:
        tmp = Path(tmp_name)
        _copy_modules(spec, tmp)
        if graph:
            status(f"{spec.name} {config_name}: TLC is dumping the state graph")
            gen_cfg = tmp / "Generate.cfg"
            gen_cfg.write_text(strip_cfg(cfg_text), encoding="utf-8")
            dot = tmp / "graph.dot"
            result = check(tmp / spec.model.name, gen_cfg, workers=workers, deadlock=False, dump_dot=dot)
            if not result.ok or not dot.is_file():
                raise _tlc_failure(f"TLC could not explore {spec.model.name} under {cfg_path.name}", result)
            checker = _tlc_version(result)
            status(f"{spec.name} {config_name}: reading {result.distinct_states:,} states")
            data = read_state_graph(dot)
            dot.unlink()
            g = data.graph
            status(f"{spec.name} {config_name}: covering {len(g.edges):,} edges ({cover})")
            if cover == "edges":
                paths = cover_edges(g, max_paths)
            else:
                paths = cover_actions(g, key=lambda _g, e: data.action_key(e), max_paths=max_paths)
            graph_info = {
                "spec": spec.name,
                "config": config_name,
                "spec_hash": digest,
                "config_hash": cfg_digest,
                "checker": checker,
                "states": len(g.states),
                "edges": len(g.edges),
                "stuttering_edges": data.self_loops,
                "actions": dict(sorted(data.action_names().items())),
                "action_params": len(data.action_keys()),
                "cover": cover,
                "max_paths": max_paths,
                "traces": len(paths),
                "steps": sum(len(p) for p in paths),
            }
            for old in out_dir.glob(f"{config_name}_{cover}_*.itf.json"):
                old.unlink()
            width = max(4, len(str(len(paths))))
            for i, path in enumerate(paths, start=1):
                steps = path_to_trace(g, path)
                meta = {
                    **base_meta,
                    "checker": checker,
                    "cover": cover,
                    "trace": f"{i}/{len(paths)}",
                    "description": f"path {i} of {len(paths)} covering the {cover} of {spec.model.stem} ({config_name})",
                }
                ids: list[str | None] = [None] + [edge_id(g, e) for e in path]
                file = out_dir / f"{config_name}_{cover}_{i:0{width}d}.itf.json"
                file.write_text(_itf(steps, meta, ids), encoding="utf-8")
                written.append(file)
            (out_dir / f"{config_name}_{cover}.index.json").write_text(json.dumps(graph_info, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        for test in test_names:
            status(f"{spec.name} {config_name}: TLC is looking for a behaviour where {test} holds")
            steps, version = _test_trace(spec, test, cfg_text, tmp, workers)
            checker = checker or version
            file = out_dir / test_file_name(test)
            if steps is None:
                missing[test] = f"no reachable state of {config_name} satisfies {test}"
                if file.exists():
                    file.unlink()
                continue
            meta = {
                **base_meta,
                "checker": version,
                "test": test,
                "description": f"a shortest behaviour of {spec.model.stem} ({config_name}) that ends in a state where {test} holds",
            }
            file.write_text(_itf(steps, meta), encoding="utf-8")
            test_files[test] = file
            written.append(file)
    return GeneratedSet(spec.name, config_name, out_dir, tuple(written), test_files, missing, graph_info, checker)


def _test_trace(spec: SpecModel, test: str, cfg_text: str, tmp: Path, workers: int) -> tuple[list[TraceState] | None, str]:
    assert spec.tests_module is not None
    module = f"Conformance{test}"
    negated = f"Not{test}"
    (tmp / f"{module}.tla").write_text(
        f"---- MODULE {module} ----\n"
        f"EXTENDS {spec.model.stem}, {spec.tests_module.stem}\n"
        f"\\* A counterexample to {negated} is a behaviour that reaches {test}.\n"
        f"{negated} == ~{test}\n"
        "====\n",
        encoding="utf-8",
    )
    cfg = tmp / f"{module}.cfg"
    cfg.write_text(strip_cfg(cfg_text) + f"INVARIANT {negated}\n", encoding="utf-8")
    result = check(tmp / f"{module}.tla", cfg, workers=workers, deadlock=False)
    version = _tlc_version(result)
    if result.errors:
        raise _tlc_failure(f"TLC could not check {test}", result)
    if result.violation is None:
        if result.ok:
            return None, version
        raise _tlc_failure(f"TLC did not finish looking for {test}", result)
    if result.violation.kind != "invariant" or result.violation.name != negated:
        raise _tlc_failure(f"TLC stopped on something else while looking for {test}", result)
    return list(result.violation.trace), version

