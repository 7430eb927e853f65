"""Where a spec's modules, model configs and test predicates are.

A spec is described by its manifest ``spec/<Spec>.json`` (contract):
``module``, ``model``, ``configs`` (name -> ``{"file": ...}``) and
``tests_module``. The Test* predicates come from the manifest's ``tests``
(names, or objects with a ``name``) when it lists them, else from the
definitions ``Test<Name> ==`` in the tests module. Without a manifest, the
conventional names are used (``MC<Spec>.tla``, ``MC<Spec>_<Config>.cfg``,
``<Spec>Tests.tla``), so a spec can be traced while its manifest is written.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "SpecError",
    "SpecModel",
    "default_spec_dir",
    "known_specs",
    "resolve_spec",
    "spec_hash",
    "strip_cfg",
]


class SpecError(ValueError):
    """A spec, config or test predicate that cannot be found; the message says which."""


def default_spec_dir() -> Path:
    here = Path.cwd() / "spec"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[1] / "spec"


@attrs.frozen
class SpecModel:
    name: str
    spec_dir: Path
    module: Path
    model: Path
    configs: dict[str, Path]
    tests_module: Path | None
    tests: tuple[str, ...]
    deadlock: bool = True
    #: the config a test predicate is meant for (manifest ``tests[].config``)
    test_configs: dict[str, str] = attrs.field(factory=dict)

    def tests_for(self, config: str) -> tuple[str, ...]:
        """The test predicates meant for ``config`` (those naming no config go with every one)."""
        return tuple(t for t in self.tests if self.test_configs.get(t, config) == config)

    def config(self, name: str) -> Path:
        if name in self.configs:
            return self.configs[name]
        file = Path(name)
        if file.suffix == ".cfg" and file.is_file():
            return file.resolve()
        raise SpecError(f"{self.name} has no config {name!r} (it has: {', '.join(sorted(self.configs)) or 'none'})")


_TEST_DEF = re.compile(r"^(Test\w+)\s*(?:\([^)]*\))?\s*==", re.M)


def _tests_in(module: Path) -> tuple[str, ...]:
    text = _strip_tla_comments(module.read_text(encoding="utf-8"))
    names = []
    for m in _TEST_DEF.finditer(text):
        if "(" in m.group(0):
            continue  # a parameterised helper is not a predicate on states
        if m.group(1) not in names:
            names.append(m.group(1))
    return tuple(names)


def _strip_tla_comments(text: str) -> str:
    text = re.sub(r"\(\*.*?\*\)", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return re.sub(r"\\\*[^\n]*", "", text)


def known_specs(spec_dir: Path) -> list[str]:
    """Specs described by a manifest in ``spec_dir``."""
    return sorted(p.stem for p in spec_dir.glob("*.json") if p.name != "manifest.json")


def resolve_spec(name: str, spec_dir: Path | None = None) -> SpecModel:
    """The spec called ``name`` (``Scheduling``, or a path to its manifest)."""
    spec_dir = spec_dir if spec_dir is not None else default_spec_dir()
    candidate = Path(name)
    if candidate.suffix == ".json":
        manifest_path = candidate
        spec_dir = candidate.parent
        name = candidate.stem
    else:
        if candidate.suffix == ".tla":
            name = candidate.stem.removeprefix("MC")
        manifest_path = spec_dir / f"{name}.json"
    manifest: dict[str, Any] = {}
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SpecError(f"manifest {manifest_path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        if not isinstance(manifest, dict):
            raise SpecError(f"manifest {manifest_path} is not a JSON object")
    module = spec_dir / manifest.get("module", f"{name}.tla")
    model = spec_dir / manifest.get("model", f"MC{name}.tla")
    if not model.is_file():
        known = ", ".join(known_specs(spec_dir)) or "none"
        raise SpecError(f"no model for spec {name!r}: {model} does not exist (specs with a manifest: {known})")
    configs: dict[str, Path] = {}
    for cname, entry in (manifest.get("configs") or {}).items():
        if isinstance(entry, dict) and "file" in entry:
            configs[cname] = spec_dir / entry["file"]
    if not manifest:
        for cfg in sorted(spec_dir.glob(f"{model.stem}_*.cfg")):
            configs[cfg.stem.removeprefix(f"{model.stem}_")] = cfg
    tests_module = spec_dir / manifest.get("tests_module", f"{name}Tests.tla")
    tests: tuple[str, ...] = ()
    test_configs: dict[str, str] = {}
    listed = manifest.get("tests")
    if isinstance(listed, list):
        tests = tuple(t["name"] if isinstance(t, dict) else str(t) for t in listed)
        test_configs = {t["name"]: t["config"] for t in listed if isinstance(t, dict) and "config" in t}
    elif tests_module.is_file():
        tests = _tests_in(tests_module)
    return SpecModel(
        name=name,
        spec_dir=spec_dir,
        module=module,
        model=model,
        configs=configs,
        tests_module=tests_module if tests_module.is_file() else None,
        tests=tests,
        deadlock=bool(manifest.get("deadlock", True)),
        test_configs=test_configs,
    )


_EXTENDS = re.compile(r"\bEXTENDS\s+(\w+(?:\s*,\s*\w+)*)|\bINSTANCE\s+(\w+)")


def _modules_used(root: Path, spec_dir: Path) -> list[Path]:
    """``root`` and every module of ``spec_dir`` it extends or instantiates."""
    seen: dict[str, Path] = {}
    stack = [root]
    while stack:
        path = stack.pop()
        if path.name in seen or not path.is_file():
            continue
        seen[path.name] = path
        text = _strip_tla_comments(path.read_text(encoding="utf-8"))
        for m in _EXTENDS.finditer(text):
            for mod in re.findall(r"\w+", m.group(1) or m.group(2)):
                stack.append(spec_dir / f"{mod}.tla")
    return [seen[k] for k in sorted(seen)]


def spec_hash(spec: SpecModel, *extra: Path) -> str:
    """SHA-256 of the spec's own modules (those in spec/ that the model and
    the tests module use), by name and content: traces record it so that
    stale ones are recognised."""
    files: dict[str, Path] = {}
    for root in (spec.model, spec.tests_module, *extra):
        if root is not None:
            for path in _modules_used(root, spec.spec_dir):
                files[path.name] = path
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


_CFG_KEYWORDS = re.compile(
    r"\b(CONSTANTS?|INIT|NEXT|SPECIFICATION|INVARIANTS?|PROPERTY|PROPERTIES|VIEW|SYMMETRY|"
    r"CONSTRAINTS?|ACTION_CONSTRAINTS?|CHECK_DEADLOCK|POSTCONDITION|ALIAS)\b"
)


def strip_cfg(text: str, drop: tuple[str, ...] = ("VIEW", "SYMMETRY", "PROPERTY", "INVARIANT")) -> str:
    """A TLC config without the sections named in ``drop`` (a name also
    drops its plural: ``INVARIANT`` drops ``INVARIANTS``).

    Trace generation needs every state as itself: a VIEW or a SYMMETRY
    merges states that differ in ``lastAction`` (so a node would not carry
    the parameters of the edges into it), and invariants and properties only
    slow the run down.
    """
    text = re.sub(r"\(\*.*?\*\)", " ", text, flags=re.S)
    text = re.sub(r"\\\*[^\n]*", "", text)
    parts = _CFG_KEYWORDS.split(text)
    out = [parts[0].strip()] if parts[0].strip() else []
    dropped = {d for d in drop} | {d + "S" for d in drop} | ({"PROPERTIES"} if "PROPERTY" in drop else set())
    for keyword, body in zip(parts[1::2], parts[2::2]):
        if keyword in dropped:
            continue
        out.append(f"{keyword}{body.rstrip()}")
    return "\n".join(out) + "\n"
