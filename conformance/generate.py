"""``ownership traces generate``: ITF traces from the specs' state graphs.

For a spec and one of its model configs:

1. TLC checks the model without its VIEW, SYMMETRY, invariants and
   properties (a temporary copy of the config) and dumps the whole state
   graph (``-dump dot,actionlabels``). Without a VIEW every state is itself,
   so each state's ``lastAction`` names the action and the parameters of
   every edge into it (TLC 2.15 labels edges with the action name only).
2. Walks from the initial state cover every edge (``--cover edges``) or
   every action with each of its parameter values (``--cover actions``):
   each walk goes on to the nearest uncovered edge until none is reachable
   (:func:`greedy_walks`), so there are few, long traces. Ties are broken
   by the states' text, never by TLC's fingerprints, so the same spec and
   config always give the same traces. The model is the one the
   implementation can follow (its own steps taken at once, its choices
   made its way) and, when the manifest says so for the config, a smaller
   part of it (:func:`config_constraints`).
3. Each path is written as an ITF trace ``traces/<Spec>/<Config>_<cover>_NNNN.itf.json``
   (one line of JSON).
   The trace's ``#meta`` has the spec hash, the config, the model's
   constants, the checker version and the generator's settings; each
   state's ``#meta`` has the action that led to it with its parameters.
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
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

import attrs

from ownership.tla.graph import Edge, GraphFormatError, StateGraph, path_to_trace
from ownership.tla.itf import ITFTrace, dumps_itf, encode_value
from ownership.tla.tlc import CheckResult, TraceState, check
from ownership.tla.values import TLARecord, parse_state, parse_value

from .specs import SpecError, SpecModel, spec_hash, strip_cfg

__all__ = [
    "Exploration",
    "GeneratedSet",
    "GenerationError",
    "LAST_ACTION",
    "StateGraphData",
    "action_of",
    "covering_paths",
    "edge_id",
    "edge_ids",
    "explore",
    "generate",
    "greedy_walks",
    "read_state_graph",
    "canonical",
    "targeted_file_name",
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


def canonical(value: Any) -> str:
    """A value's ITF JSON with sorted keys: equal TLA+ values, equal text."""
    return json.dumps(encode_value(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def edge_id(source: dict[str, Any], target: dict[str, Any]) -> str:
    """A run-independent name of a transition, from its two states (TLC's
    fingerprints change from run to run): generation counts the model's
    edges with it, replay the edges it exercised."""
    text = canonical(TLARecord(source)) + "\0" + canonical(TLARecord(target))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def edge_ids(states: Any) -> tuple[str, ...]:
    """:func:`edge_id` of each step of a path of states, each state's text
    made once (a long trace of a spec with large states spends most of its
    replay here otherwise)."""
    texts: list[str] = []
    previous: dict[str, tuple[Any, str]] = {}
    for state in states:
        # a step changes few variables: a variable's text is made again only
        # when its value differs from the previous state's (the text of the
        # record is that of canonical(TLARecord(state)))
        parts = []
        for name in sorted(state):
            value = state[name]
            known = previous.get(name)
            if known is None or type(known[0]) is not type(value) or known[0] != value:
                known = (value, canonical(value))
                previous[name] = known
            parts.append(json.dumps(name, ensure_ascii=False) + ":" + known[1])
        texts.append("{" + ",".join(parts) + "}")
    return tuple(
        hashlib.sha256((texts[i - 1] + "\0" + texts[i]).encode()).hexdigest()[:20] for i in range(1, len(texts))
    )


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


def _itf(steps: list[TraceState], meta: dict[str, Any]) -> str:
    variables = tuple(sorted(steps[0].state)) if steps else ()
    states = tuple({v: s.state[v] for v in variables} for s in steps)
    state_meta = []
    for i, step in enumerate(steps):
        name, params = action_of(step.state, step.action)
        state_meta.append({"action": name, "params": encode_value(params)})
    trace = ITFTrace(variables, states, meta, (), None, tuple(state_meta))
    # One line: a corpus of long walks is read by programs, and indented
    # ITF is several times larger.
    return dumps_itf(trace, indent=None)


def targeted_file_name(test: str) -> str:
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



# ---------------------------------------------------------------------------
# Running TLC on the model, as the implementation can follow it
# ---------------------------------------------------------------------------

_ROOT = "ConformanceModel"
_CONSTANTS_BEGIN = "ownership-conformance-constants-begin"
_CONSTANTS_END = "ownership-conformance-constants-end"


def _constant_names(module: Path) -> list[str]:
    """The CONSTANT(S) a spec module declares (operator constants left out)."""
    text = _strip_comments(module.read_text(encoding="utf-8"))
    names: list[str] = []
    for m in re.finditer(r"^\s*CONSTANTS?\b(.*?)(?=^\S)", text, flags=re.S | re.M):
        depth = 0
        item = ""
        for ch in m.group(1) + ",":
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            if ch == "," and depth == 0:
                if "(" not in item and (ident := re.match(r"\s*([A-Za-z_]\w*)\s*$", item)):
                    names.append(ident.group(1))
                item = ""
            else:
                item += ch
    return names


def _strip_comments(text: str) -> str:
    text = re.sub(r"\(\*.*?\*\)", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return re.sub(r"\\\*[^\n]*", "", text)


def _root_module(
    spec: SpecModel,
    eager: frozenset[str],
    last_action: str,
    definitions: tuple[str, ...] = (),
    choices: tuple[str, ...] = (),
) -> str:
    """A module over the model that prints the constants and keeps only the
    behaviours the implementation can follow.

    ``eager`` names the actions the implementation takes on its own: in a
    state where one is enabled, the next step is one of them (the
    implementation takes them inside the stimulus that enabled them, before
    the harness can apply another). ``choices`` are action formulas (over
    ``lastAction'``) for choices the implementation makes deterministically
    where the spec may choose (which idle worker a scheduler grants);
    ``definitions`` are the operators they use.
    """
    names = _constant_names(spec.module)
    record = ", ".join(f"{n} |-> {n}" for n in names) or 'none |-> "none"'
    lines = [
        f"---- MODULE {_ROOT} ----",
        f"EXTENDS {spec.model.stem}, TLC",
        f'ASSUME PrintT("{_CONSTANTS_BEGIN}") /\\ PrintT([{record}]) /\\ PrintT("{_CONSTANTS_END}")',
        f"\\* No state satisfies it: a run that only prints the constants.",
        f"ConformanceNothing == {last_action} # {last_action}",
    ]
    conjuncts = list(choices)
    if eager:
        actions = ", ".join(f'"{a}"' for a in sorted(eager))
        lines += [
            f"ConformanceEager == {{{actions}}}",
            f"ConformanceUnsettled == ENABLED (Next /\\ {last_action}'.name \\in ConformanceEager /\\ vars' # vars)",
            "ConformanceSettled == ~ConformanceUnsettled",
        ]
        conjuncts.insert(0, f"ConformanceUnsettled => {last_action}'.name \\in ConformanceEager")
    else:
        lines.append("ConformanceSettled == TRUE")
    lines += list(definitions)
    if conjuncts:
        lines.append("ConformanceOrder ==")
        lines += [f"    /\\ {c}" for c in conjuncts]
    lines.append("====")
    return "\n".join(lines) + "\n"


def _constants(output: str) -> dict[str, Any]:
    begin = output.find(f'"{_CONSTANTS_BEGIN}"')
    end = output.find(f'"{_CONSTANTS_END}"')
    if begin < 0 or end < 0:
        return {}
    text = output[begin + len(_CONSTANTS_BEGIN) + 2 : end]
    text = re.sub(r"@!@!@(?:START|END)MSG[^@]*@!@!@", "", text).strip()
    value = parse_value(text)
    return dict(value) if isinstance(value, dict) else {}


@attrs.frozen(eq=False)
class Exploration:
    """A model explored by TLC: its graph (if dumped), constants, checker."""

    spec: SpecModel
    config: str
    cfg_path: Path
    cfg_text: str
    data: StateGraphData | None
    constants: dict[str, Any]
    checker: str
    eager: frozenset[str]
    meta: dict[str, Any]

    def settled(self, node: int) -> bool:
        return not any(e.action in self.eager for e in self.data.graph.successors(node)) if self.data else True


class _Workspace:
    """A temporary copy of spec/ with the conformance root module."""

    def __init__(self, spec: SpecModel, eager: frozenset[str], last_action: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="ownership-traces-")
        self.dir = Path(self._tmp.name)
        # TLC finds extended modules next to the root module: run on a copy
        # so the temporary modules and configs never land in spec/.
        for path in spec.spec_dir.glob("*.tla"):
            shutil.copy2(path, self.dir / path.name)
        self.spec = spec
        self.last_action = last_action
        self.eager = eager
        self.choices: tuple[str, ...] = ()
        self.set_choices((), ())

    def set_choices(self, definitions: tuple[str, ...], choices: tuple[str, ...]) -> None:
        self.choices = tuple(choices)
        text = _root_module(self.spec, self.eager, self.last_action, tuple(definitions), self.choices)
        (self.dir / f"{_ROOT}.tla").write_text(text, encoding="utf-8")

    def config(self, name: str, cfg_text: str, *extra: str) -> Path:
        text = strip_cfg(cfg_text)
        if self.eager or self.choices:
            text += "ACTION_CONSTRAINT ConformanceOrder\n"
        text += "".join(line + "\n" for line in extra)
        path = self.dir / f"{name}.cfg"
        path.write_text(text, encoding="utf-8")
        return path

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> _Workspace:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_constants(spec: SpecModel, config: str, workspace: _Workspace, *, workers: int = 1) -> dict[str, Any]:
    """The model's constants, from a TLC run that explores nothing."""
    cfg_text = spec.config(config).read_text(encoding="utf-8")
    cfg = workspace.dir / "Constants.cfg"
    cfg.write_text(strip_cfg(cfg_text) + "CONSTRAINT ConformanceNothing\n", encoding="utf-8")
    result = check(workspace.dir / f"{_ROOT}.tla", cfg, workers=workers, deadlock=False)
    if result.errors:
        raise _tlc_failure(f"TLC could not read the constants of {spec.model.name} under {config}", result)
    return _constants(result.output)


def config_constraints(spec: SpecModel, config: str) -> list[str]:
    """The action constraints a config's manifest entry names for its traces.

    ``"conformance": {"action_constraint": "SmallCrashPoints"}`` (a name or a
    list of names of action formulas of the model module) restricts the
    graph the traces cover, not the model TLC checks: a config small enough
    to check with crashes anywhere can have far more edges than a corpus
    worth committing.
    """
    manifest = spec.spec_dir / f"{spec.name}.json"
    if config not in spec.configs or not manifest.is_file():
        return []
    entry = json.loads(manifest.read_text(encoding="utf-8")).get("configs", {}).get(config, {})
    names = (entry.get("conformance") or {}).get("action_constraint", [])
    names = [names] if isinstance(names, str) else list(names)
    bad = [n for n in names if not isinstance(n, str) or not re.fullmatch(r"[A-Za-z_]\w*", n)]
    if bad:
        raise SpecError(f"{manifest}: configs.{config}.conformance.action_constraint must name operators, not {bad!r}")
    return names


def config_cover(spec: SpecModel, config: str) -> str:
    """What a config's committed traces cover: ``"conformance": {"cover":
    "actions"}`` in its manifest entry (a model whose edge cover is too big
    to commit), else ``"edges"``."""
    manifest = spec.spec_dir / f"{spec.name}.json"
    if config not in spec.configs or not manifest.is_file():
        return "edges"
    entry = json.loads(manifest.read_text(encoding="utf-8")).get("configs", {}).get(config, {})
    cover = (entry.get("conformance") or {}).get("cover", "edges")
    if cover not in ("edges", "actions"):
        raise SpecError(f"{manifest}: configs.{config}.conformance.cover must be 'edges' or 'actions', not {cover!r}")
    return cover


def prepare(spec: SpecModel, config: str, workspace: _Workspace, *, workers: int = 1) -> dict[str, Any]:
    """Read the constants and install the mapping's choice constraints and
    the config's own constraints on its traces (:func:`config_constraints`)."""
    constants = read_constants(spec, config, workspace, workers=workers)
    install_choices(spec, config, workspace, constants)
    return constants


def install_choices(
    spec: SpecModel, config: str, workspace: _Workspace, constants: dict[str, Any], *, covering: bool = True
) -> None:
    """Install the mapping's choice constraints, and with ``covering`` the
    config's constraints on its covering traces. A targeted trace is looked
    for without the latter: they choose which edges the cover walks, not
    which behaviours of the model a Test* predicate may reach."""
    from .mappings import load_mapping

    cls = load_mapping(spec.name)
    definitions: list[str] = []
    choices: list[str] = []
    if cls is not None and constants:
        definitions, choices = (list(x) for x in cls.model_choices(constants))
    if covering:
        choices += config_constraints(spec, config)
    workspace.set_choices(tuple(definitions), tuple(choices))


def _base_meta(spec: SpecModel, config: str, cfg_path: Path, cfg_text: str, eager: frozenset[str]) -> dict[str, Any]:
    meta = {
        "source": spec.model.name,
        "spec": spec.name,
        "config": config,
        "config_file": cfg_path.name,
        "spec_hash": spec_hash(spec),
        "config_hash": "sha256:" + hashlib.sha256(cfg_text.encode()).hexdigest(),
        "generator": GENERATOR,
    }
    if eager:
        meta["eager"] = sorted(eager)
    return meta


def _choices_meta(workspace: _Workspace) -> dict[str, Any]:
    return {"choices": list(workspace.choices)} if workspace.choices else {}


def explore(
    spec: SpecModel,
    config: str,
    workspace: _Workspace,
    *,
    graph: bool = True,
    workers: int = 1,
) -> Exploration:
    """Run TLC on the model (dumping its state graph when ``graph``)."""
    cfg_path = spec.config(config)
    cfg_text = cfg_path.read_text(encoding="utf-8")
    config_name = config if config in spec.configs else cfg_path.stem
    cfg = workspace.config("Generate", cfg_text)
    dot = workspace.dir / "graph.dot"
    result = check(
        workspace.dir / f"{_ROOT}.tla", cfg, workers=workers, deadlock=False, dump_dot=dot if graph else None
    )
    if not result.ok or (graph and not dot.is_file()):
        raise _tlc_failure(f"TLC could not explore {spec.model.name} under {cfg_path.name}", result)
    data = None
    if graph:
        data = read_state_graph(dot)
        dot.unlink()
    return Exploration(
        spec=spec,
        config=config_name,
        cfg_path=cfg_path,
        cfg_text=cfg_text,
        data=data,
        constants=_constants(result.output),
        checker=_tlc_version(result),
        eager=workspace.eager,
        meta={**_base_meta(spec, config_name, cfg_path, cfg_text, workspace.eager), **_choices_meta(workspace)},
    )


def _nearest_uncovered(
    g: StateGraph, sources: list[int], uncovered: set[Hashable], cls: Callable[[Edge], Hashable]
) -> list[Edge] | None:
    """A shortest path from one of ``sources`` whose last edge is of an
    uncovered class (``None`` when none is reachable).

    Breadth-first, sources and successors in the graph's stable order (state
    text, never fingerprints), so the same graph gives the same path.
    """
    parent: dict[int, Edge | None] = {s: None for s in sources}
    frontier = list(parent)
    while frontier:
        following: list[int] = []
        for node in frontier:
            for edge in g.successors(node):
                if cls(edge) in uncovered:
                    path = [edge]
                    while (back := parent[path[-1].source]) is not None:
                        path.append(back)
                    path.reverse()
                    return path
                if edge.target not in parent:
                    parent[edge.target] = edge
                    following.append(edge.target)
        frontier = following
    return None


def greedy_walks(
    g: StateGraph, cls: Callable[[Edge], Hashable], max_paths: int | None = None
) -> list[list[Edge]]:
    """Few, long paths from the initial states that take an edge of every class.

    A path starts at the initial state nearest to an uncovered class and
    keeps walking to the nearest edge of an uncovered class (breadth-first
    from where it is) until none is reachable from there (the model's
    history variables and crash budget make its graph mostly acyclic, so a
    walk ends in a terminal state); then the next path starts again from
    the initial states. Each replay starts a cluster, so fewer paths replay
    faster than one shortest path per edge, and walking on from where the
    last uncovered edge left the model repeats fewer prefixes.
    """
    if max_paths is not None and max_paths < 0:
        raise ValueError(f"max_paths must not be negative, got {max_paths}")
    initial = sorted(g.initial, key=g.labels.__getitem__)
    reachable = set(g.reachable())
    uncovered = {cls(e) for e in g.edges if e.source in reachable}
    paths: list[list[Edge]] = []
    while uncovered and (max_paths is None or len(paths) < max_paths):
        path: list[Edge] = []
        sources = initial
        while (route := _nearest_uncovered(g, sources, uncovered, cls)) is not None:
            path += route
            uncovered.difference_update(cls(e) for e in route)
            sources = [route[-1].target]
        if not path:
            break  # cannot happen: every class left is on a reachable edge
        paths.append(path)
    return paths


def covering_paths(ex: Exploration, cover: str, max_paths: int | None = None) -> list[list[Edge]]:
    """Paths that cover the graph's edges or actions (:func:`greedy_walks`),
    each extended along the implementation's own steps until it ends in a
    settled state (where the implementation has nothing left to do by itself)."""
    if cover not in ("edges", "actions"):
        raise ValueError(f"cover must be 'edges' or 'actions', not {cover!r}")
    assert ex.data is not None
    g = ex.data.graph
    if cover == "edges":
        paths = greedy_walks(g, lambda e: e, max_paths)
    else:
        paths = greedy_walks(g, ex.data.action_key, max_paths)
    for path in paths:
        node = path[-1].target
        for _ in range(len(g.states)):
            if ex.settled(node):
                break
            step = next(e for e in g.successors(node) if e.action in ex.eager)
            path.append(step)
            node = step.target
    return paths


def _trace(ex: Exploration, steps: list[TraceState], meta: dict[str, Any]) -> str:
    full = {k: v for k, v in {**ex.meta, "checker": ex.checker, **meta}.items() if v is not None}
    if ex.constants:
        full["constants"] = {k: encode_value(v) for k, v in sorted(ex.constants.items())}
    return _itf(steps, full)


def graph_index(ex: Exploration, cover: str, max_paths: int | None, paths: list[list[Edge]]) -> dict[str, Any]:
    assert ex.data is not None
    g = ex.data.graph
    return {
        "spec": ex.spec.name,
        "config": ex.config,
        "spec_hash": ex.meta["spec_hash"],
        "config_hash": ex.meta["config_hash"],
        "checker": ex.checker,
        "eager": sorted(ex.eager),
        "states": len(g.states),
        "edges": len(g.edges),
        "stuttering_edges": ex.data.self_loops,
        "actions": dict(sorted(ex.data.action_names().items())),
        "action_params": len(ex.data.action_keys()),
        "cover": cover,
        "max_paths": max_paths,
        "traces": len(paths),
        "steps": sum(len(p) for p in paths),
        "constants": {k: encode_value(v) for k, v in sorted(ex.constants.items())},
    }


def path_text(ex: Exploration, path: list[Edge], index: int, total: int, cover: str) -> str:
    """The ITF text of covering path ``index`` (1-based) of ``total``."""
    assert ex.data is not None
    g = ex.data.graph
    meta = {
        "cover": cover,
        "trace": f"{index}/{total}",
        "description": f"path {index} of {total} covering the {cover} of {ex.spec.model.stem} ({ex.config})",
    }
    return _trace(ex, path_to_trace(g, path), meta)


def test_text(ex: Exploration, workspace: _Workspace, test: str, *, workers: int = 1) -> str | None:
    """The ITF text of a shortest behaviour that ends, settled, in a state
    where ``test`` holds; ``None`` when no reachable state satisfies it."""
    spec = ex.spec
    if spec.tests_module is None:
        raise SpecError(f"{spec.name} has no tests module, so no Test* predicates to trace")
    module = f"Conformance{test}"
    negated = f"ConformanceNot{test}"
    (workspace.dir / f"{module}.tla").write_text(
        f"---- MODULE {module} ----\n"
        f"EXTENDS {_ROOT}, {spec.tests_module.stem}\n"
        f"\\* A counterexample to {negated} is a behaviour that reaches {test}.\n"
        f"{negated} == ~({test} /\\ ConformanceSettled)\n"
        "====\n",
        encoding="utf-8",
    )
    cfg = workspace.config(module, ex.cfg_text, f"INVARIANT {negated}")
    result = check(workspace.dir / f"{module}.tla", cfg, workers=workers, deadlock=False)
    if result.errors:
        raise _tlc_failure(f"TLC could not check {test}", result)
    if result.violation is None:
        if result.ok:
            return None
        raise _tlc_failure(f"TLC did not finish looking for {test}", result)
    if result.violation.kind != "invariant" or result.violation.name != negated:
        raise _tlc_failure(f"TLC stopped on something else while looking for {test}", result)
    meta = {
        "test": test,
        "description": f"a shortest behaviour of {spec.model.stem} ({ex.config}) that ends in a state where {test} holds",
        # the choices it was looked for under (without the cover's own constraints)
        "choices": list(workspace.choices) or None,
    }
    return _trace(ex, list(result.violation.trace), meta)


def generate(
    spec: SpecModel,
    config: str,
    out_dir: Path,
    *,
    cover: str = "edges",
    max_paths: int | None = None,
    graph: bool = True,
    tests: bool | Iterable[str] = True,
    eager: frozenset[str] | None = None,
    workers: int = 1,
    on_status: Callable[[str], None] | None = None,
) -> GeneratedSet:
    """Write the traces of ``spec`` under ``config`` into ``out_dir``.

    ``eager`` names the actions the implementation takes by itself (default:
    those of the spec's mapping, see :mod:`conformance.mappings`). Old
    traces of the same config and cover (and old test traces, when tests
    are generated) are removed first, so the folder holds exactly what this
    run produced.
    """
    if cover not in ("edges", "actions"):
        raise ValueError(f"cover must be 'edges' or 'actions', not {cover!r}")
    status = on_status or (lambda _msg: None)
    if eager is None:
        from .mappings import eager_actions

        eager = eager_actions(spec.name)
    if tests is True:
        test_names = list(spec.tests_for(config))
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
    test_files: dict[str, Path] = {}
    missing: dict[str, str] = {}
    index: dict[str, Any] = {}
    with _Workspace(spec, eager, LAST_ACTION) as ws:
        status(f"{spec.name} {config}: TLC is reading the model's constants")
        constants = prepare(spec, config, ws, workers=workers)
        status(f"{spec.name} {config}: TLC is exploring the model")
        ex = explore(spec, config, ws, graph=graph, workers=workers)
        if graph:
            assert ex.data is not None
            status(f"{spec.name} {ex.config}: covering {len(ex.data.graph.edges):,} edges ({cover})")
            paths = covering_paths(ex, cover, max_paths)
            index = graph_index(ex, cover, max_paths, paths)
            for old in out_dir.glob(f"{ex.config}_{cover}_*.itf.json"):
                old.unlink()
            width = max(4, len(str(len(paths))))
            for i, path in enumerate(paths, start=1):
                file = out_dir / f"{ex.config}_{cover}_{i:0{width}d}.itf.json"
                file.write_text(path_text(ex, path, i, len(paths), cover), encoding="utf-8")
                written.append(file)
            index_file = out_dir / f"{ex.config}_{cover}.index.json"
            index_file.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        if test_names and config_constraints(spec, config):
            install_choices(spec, config, ws, constants, covering=False)
        for test in test_names:
            status(f"{spec.name} {ex.config}: TLC is looking for a behaviour where {test} holds")
            text = test_text(ex, ws, test, workers=workers)
            file = out_dir / targeted_file_name(test)
            if text is None:
                missing[test] = f"no reachable settled state of {ex.config} satisfies {test}"
                if file.exists():
                    file.unlink()
                continue
            file.write_text(text, encoding="utf-8")
            test_files[test] = file
            written.append(file)
    return GeneratedSet(spec.name, ex.config, out_dir, tuple(written), test_files, missing, index, ex.checker)
