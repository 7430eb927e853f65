"""Spec <-> code cross-references (DESIGN §4, notes/contract.md).

Parses every ``spec/*.tla`` module that has a ``Next``: the actions of
``Next`` (following groupings such as ``ProcessNext``), and the ``\\* impl:``
/ ``\\* env:`` comment of each. Parses every core method docstring that
starts with ``Spec: <Module>!<Action>``. Fails when
- an action of a ``Next`` has neither an implementation comment nor a core
  method naming it,
- an ``\\* impl:`` / ``\\* env:`` target does not exist,
- an implementing method's docstring does not name the action, or does not
  carry the action's TLA+ header (``Action(params) ==``),
- a core method names an action that no spec defines.
Stuttering steps (``UNCHANGED vars`` only) need no implementation.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "spec"
CORE_MODULES = ["submitter", "actors", "ownerlog", "scheduler", "executor", "refcount", "recovery", "store", "head", "node", "worker"]
#: Outside the core, the transport implements spec/Resend.tla.
RUNTIME_MODULES = ["resend", "tcp"]

DEF = re.compile(r"^([A-Z]\w*)\s*(\([^)]*\))?\s*==")
ANNOT = re.compile(r"\\\*\s*(impl|env|none):\s*(\S.*)$")
WORD = re.compile(r"\b([A-Za-z_]\w*)\b")


@attrs.frozen
class Action:
    module: str
    name: str
    header: str  # "Name(params) =="
    kind: str | None  # "impl" | "env" | "none" | None
    target: str | None
    stutter: bool


@attrs.define
class Definition:
    name: str
    header: str
    start: int
    body: list[str] = attrs.Factory(list)
    annotation: tuple[str, str] | None = None


def parse_module(path: Path) -> dict[str, Definition]:
    """Top-level operator definitions, with the impl/env/none comment of each.

    A comment belongs to the definition that follows it directly (only
    comments and blank lines between), or else to the definition it sits in.
    """
    lines = path.read_text().splitlines()
    defs: dict[str, Definition] = {}
    current: Definition | None = None
    pending: tuple[str, str] | None = None
    for i, line in enumerate(lines):
        m = DEF.match(line)
        if m:
            current = Definition(name=m.group(1), header=line.split("==")[0].rstrip() + " ==", start=i)
            current.body.append(line.split("==", 1)[1])
            defs[current.name] = current
            if pending is not None:
                current.annotation, pending = pending, None
            continue
        stripped = line.strip()
        a = ANNOT.search(stripped)
        if a and stripped.startswith("\\*"):
            nxt = next((l for l in lines[i + 1 :] if l.strip() and not l.strip().startswith(("\\*", "(*"))), "")
            if DEF.match(nxt):
                pending = (a.group(1), a.group(2).strip())
            elif current is not None:
                current.annotation = (a.group(1), a.group(2).strip())
            continue
        if line and not line.startswith((" ", "\t")) and not stripped.startswith(("\\*", "(*")):
            current = None  # a separator, VARIABLES, ...: no definition goes on
            continue
        if current is not None:
            current.body.append(line)
    return defs


def _formula(lines: list[str]) -> str:
    text = "\n".join(l for l in lines if not l.strip().startswith(("\\*", "(*")) and not re.match(r"^\s*\(?\*", l))
    return re.sub(r"\(\*.*?\*\)", "", text, flags=re.S)


def next_actions(module: str, defs: dict[str, Definition]) -> list[Action]:
    """The actions of Next, following groupings (definitions with no prime)."""
    out: dict[str, Action] = {}
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        d = defs[name]
        body = _formula(d.body)
        has_prime = "'" in body
        if d.annotation is None and not has_prime and "UNCHANGED" not in body and name != "Next":
            for w in WORD.findall(body):
                if w in defs and w != name:
                    visit(w)
            return
        if name == "Next":
            for w in WORD.findall(body):
                if w in defs:
                    visit(w)
            return
        kind, target = d.annotation if d.annotation else (None, None)
        stutter = not has_prime and "UNCHANGED" in body
        out[name] = Action(module=module, name=name, header=d.header, kind=kind, target=target, stutter=stutter)

    visit("Next")
    return sorted(out.values(), key=lambda a: a.name)


def spec_modules() -> dict[str, dict[str, Definition]]:
    """The protocol specs: modules with a Next, but not models, scenario
    modules, or contracts another spec refines (``INSTANCE Futures``: their
    steps are the refining spec's, which the code implements)."""
    paths = sorted(SPEC_DIR.glob("*.tla"))
    refined = {m for path in paths for m in re.findall(r"\bINSTANCE\s+(\w+)", path.read_text())}
    mods = {}
    for path in paths:
        defs = parse_module(path)
        if "Next" in defs and not path.stem.startswith("MC") and not path.stem.endswith("Tests") and path.stem not in refined:
            mods[path.stem] = defs
    return mods


def core_methods() -> dict[tuple[str, str], list[tuple[str, object]]]:
    """(Module, Action) -> [(qualified name, function)] from the core docstrings."""
    found: dict[tuple[str, str], list[tuple[str, object]]] = {}
    for package, mod_name in [("core", m) for m in CORE_MODULES] + [("runtime", m) for m in RUNTIME_MODULES]:
        mod = importlib.import_module(f"ownership.{package}.{mod_name}")
        for cls_name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != mod.__name__:
                continue
            for meth_name, fn in vars(cls).items():
                doc = inspect.getdoc(fn) if callable(fn) else None
                if not doc:
                    continue
                for line in doc.splitlines():
                    m = re.match(r"^Spec:\s*(\w+)!(\w+)\s*$", line.strip())
                    if not m:
                        break
                    found.setdefault((m.group(1), m.group(2)), []).append((f"impl/ownership/{package}/{mod_name}.py::{cls_name}.{meth_name}", fn))
    return found


def resolve(target: str) -> object | None:
    """``impl/ownership/<path>.py::Class.method`` -> the function, or None."""
    m = re.fullmatch(r"impl/(ownership/[\w/]+)\.py::(\w+)\.(\w+)", target)
    if not m:
        return None
    module = m.group(1).replace("/", ".")
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    cls = getattr(mod, m.group(2), None)
    return getattr(cls, m.group(3), None) if cls is not None else None


#: Specs checked ahead of their implementation, each with the reason. Their
#: actions need no ``\* impl:`` comment yet; the tests below fail as soon as
#: one gains an implementation, so the exemption is removed with it.
NOT_YET_IMPLEMENTED: dict[str, str] = {}

MODULES = spec_modules()
ACTIONS = [
    a for defs_mod, defs in MODULES.items() if defs_mod not in NOT_YET_IMPLEMENTED for a in next_actions(defs_mod, defs)
]
DOCS = core_methods()


def test_specs_are_present() -> None:
    assert MODULES, f"no spec with a Next in {SPEC_DIR}"


@pytest.mark.parametrize("action", [a for a in ACTIONS if not a.stutter], ids=lambda a: f"{a.module}!{a.name}")
def test_every_next_action_is_implemented(action: Action) -> None:
    key = (action.module, action.name)
    if action.kind is None:
        assert key in DOCS, f"{action.module}!{action.name} has no \\* impl:/\\* env: comment and no core method names it"
        return
    if action.kind == "none":
        pytest.fail(f"{action.module}!{action.name} is marked `none` but is not a stuttering step")
    if action.kind == "env":
        assert resolve(action.target) is not None, f"env target {action.target} does not exist"
        return
    fn = resolve(action.target)
    assert fn is not None, f"{action.module}!{action.name}: impl target {action.target} does not exist"
    names = [q for q, _ in DOCS.get(key, [])]
    assert action.target in names, f"{action.target} must start its docstring with Spec: {action.module}!{action.name} (methods naming it: {names})"


def test_unimplemented_specs_have_no_implementation_yet() -> None:
    """An exempted spec (none today) is really unimplemented: no action
    carries an ``impl:`` comment and no core method names one of its
    actions. When that changes, the spec joins the checks above and leaves
    NOT_YET_IMPLEMENTED."""
    for module in sorted(NOT_YET_IMPLEMENTED):
        assert module in MODULES, f"{module} is exempted but spec/{module}.tla has no Next"
        actions = next_actions(module, MODULES[module])
        assert actions, f"{module} has no actions"
        annotated = [a.name for a in actions if a.kind == "impl"]
        assert annotated == [], f"{module} has impl comments ({annotated}): remove it from NOT_YET_IMPLEMENTED"
        named = sorted(name for (mod, name) in DOCS if mod == module)
        assert named == [], f"core methods implement {module}!{named}: remove it from NOT_YET_IMPLEMENTED"


@pytest.mark.parametrize("key", sorted(DOCS), ids=lambda k: f"{k[0]}!{k[1]}")
def test_every_spec_line_names_an_existing_action(key: tuple[str, str]) -> None:
    module, name = key
    assert module in MODULES, f"a core method names {module}!{name} but there is no spec {module}"
    actions = {a.name: a for a in next_actions(module, MODULES[module])}
    assert name in actions, f"a core method names {module}!{name}, which is not an action of {module}'s Next"
    header = " ".join(actions[name].header.split())
    for qual, fn in DOCS[key]:
        doc = " ".join((inspect.getdoc(fn) or "").split())
        assert header in doc, f"{qual} must carry the TLA+ text of {module}!{name} (starting `{actions[name].header}`)"
