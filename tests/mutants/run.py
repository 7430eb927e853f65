"""Planted protocol bugs in the core and the transport, each run against the conformance corpus and the tests.

Each mutant (a record in one of the ``*.toml`` files beside this one) is a
realistic bug planted in ``impl/ownership/core/`` (the transport's, in
``impl/ownership/runtime/``): one or more find/replace edits, each of whose
find text must occur exactly once in its file. The
runner applies one mutant at a time to a *copy* of the tree (``impl/``,
``conformance/``, ``spec/``, ``traces/``, ``tests/``, ``pyproject.toml``),
runs that copy with ``PYTHONPATH`` pointing into it (checked: the copy's
modules are the ones imported, not the editable install's), and reports for
each mutant:

- whether the committed conformance corpus kills it
  (``ownership conformance run traces/``), and with which traces (not run
  for a transport mutant: the corpus drives the cores in memory, past
  every byte of the transport);
- which of the tests of its part kill it: the scenario, core and API tests
  for the core, the TCP and frame-fuzzing tests for the transport;
- a hang, only when a time limit fired, and said so: a replay that took more
  than ``--trace-timeout`` (the conformance harness reports it as a
  divergence of kind timeout), a test that ran past ``--test-timeout``
  (pytest-timeout ends the run, naming the test; the runner runs the tests
  again without it to learn what else fails) and then past twice that on its
  own (a test that only crawled under load is reported as slow, and kills
  nothing), or a whole stage that ran past its limit and was ended.

Hypothesis does not shrink in these runs: a kill needs a failing example,
not a minimal one, and shrinking the stateful cluster test takes minutes.

The unmutated copy runs first: the corpus must pass there, and a test that
fails on it (a flaky test) is reported and counts towards no kill.

Usage (``make mutants`` runs every mutant)::

    python tests/mutants/run.py                        # every mutant, one job per core
    python tests/mutants/run.py worker-granted-twice   # one mutant (or a part: scheduler)
    python tests/mutants/run.py --list                 # the mutants
    python tests/mutants/run.py --check                # every mutant still applies

Exit status: 0 when every mutant run was killed, 1 when some survived, 2 when
a mutant no longer applies, the unmutated tree fails, or a run could not be
judged.

The runner lives with its mutants in ``tests/`` rather than in the
``conformance`` package: it is a check of the implementation that needs the
repository (tests, traces), not something the installed package ships.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Sequence

import attrs

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: what a copy of the tree holds
COPIED_DIRS = ("impl", "conformance", "spec", "traces", "tests")
COPIED_FILES = ("pyproject.toml",)
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", "*.egg-info", "states", "coverage.json")

#: where mutants may be planted
CORE = "impl/ownership/core/"
#: the parts, in the order the mutants are listed and run: the core's, then the transport
PARTS = ("submitter", "refcount", "recovery", "scheduler", "store", "head", "executor", "transport")
#: the parts not planted in the core: where their mutants go
PLANTED_IN = {"transport": "impl/ownership/runtime/"}
#: the tests run against a core mutant (the conformance corpus runs too)
DEFAULT_TESTS = ("tests/core", "tests/scenarios", "tests/api")
#: the tests run against the mutants of the other parts (no corpus)
PART_TESTS = {"transport": ("tests/tcp", "tests/runtime/test_message_fuzz.py")}


def planted_in(part: str) -> str:
    return PLANTED_IN.get(part, CORE)


def tests_of(part: str) -> tuple[str, ...]:
    return PART_TESTS.get(part, DEFAULT_TESTS)


def runs_conformance(part: str) -> bool:
    """Whether the corpus can see a mutant of ``part`` (it replays the cores in memory)."""
    return part not in PLANTED_IN

EXIT_ALL_KILLED, EXIT_SURVIVORS, EXIT_ERROR = 0, 1, 2


class MutantError(Exception):
    """A mutant record is malformed or no longer applies to the code."""


class RunnerError(Exception):
    """A run could not be judged (the copy's code did not run, a tool failed)."""


# ---------------------------------------------------------------------------
# Mutant records
# ---------------------------------------------------------------------------


@attrs.frozen
class Edit:
    file: str
    find: str
    replace: str


@attrs.frozen
class Mutant:
    name: str
    part: str
    aspect: str
    why: str
    edits: tuple[Edit, ...]
    source: str  # the record's file, relative to the repository

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.file for e in self.edits))


def _text(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise MutantError(f"{where}: {key!r} must be a string")
    return value


def load_mutants(folder: Path = HERE) -> list[Mutant]:
    """Every mutant record in ``folder/*.toml``, in file order."""
    mutants: list[Mutant] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.toml")):
        rel = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise MutantError(f"{rel}: not valid TOML: {exc}") from None
        for i, record in enumerate(doc.get("mutant", []), start=1):
            where = f"{rel}, mutant {i}"
            name = _text(record, "name", where)
            where = f"{rel}, mutant {name!r}"
            if name in seen:
                raise MutantError(f"{where}: the name is also used in {seen[name]}")
            seen[name] = rel
            file = record.get("file")
            raw_edits = record.get("edit")
            if raw_edits is None:
                raw_edits = [{"find": record.get("find"), "replace": record.get("replace")}]
            elif "find" in record or "replace" in record:
                raise MutantError(f"{where}: give either find/replace or [[mutant.edit]] tables, not both")
            if record.get("part") not in PARTS:
                raise MutantError(f"{where}: part must be one of {', '.join(PARTS)} (got {record.get('part')!r})")
            root = planted_in(record["part"])
            edits = []
            for edit in raw_edits:
                target = edit.get("file", file)
                if not isinstance(target, str) or not target.startswith(root):
                    raise MutantError(f"{where}: every edit must name a file under {root} (got {target!r})")
                find, replace = _text(edit, "find", where), _text(edit, "replace", where)
                if not find or find == replace:
                    raise MutantError(f"{where}: an edit must replace a non-empty text with a different one")
                edits.append(Edit(file=target, find=find, replace=replace))
            unknown = set(record) - {"name", "part", "aspect", "why", "file", "find", "replace", "edit"}
            if unknown:
                raise MutantError(f"{where}: unknown keys {sorted(unknown)}")
            mutants.append(
                Mutant(
                    name=name,
                    part=_text(record, "part", where),
                    aspect=_text(record, "aspect", where),
                    why=" ".join(_text(record, "why", where).split()),
                    edits=tuple(edits),
                    source=rel,
                )
            )
    rank = {part: i for i, part in enumerate(PARTS)}
    return sorted(mutants, key=lambda m: rank.get(m.part, len(rank)))  # stable: file order within a part


def mutate(mutant: Mutant, read: Callable[[str], str]) -> dict[str, str]:
    """The mutated text of every file ``mutant`` touches (``read`` gives the originals).

    Raises :class:`MutantError` when a find text does not occur exactly once,
    or the mutated file no longer compiles.
    """
    texts: dict[str, str] = {}
    for edit in mutant.edits:
        text = texts[edit.file] if edit.file in texts else read(edit.file)
        count = text.count(edit.find)
        if count != 1:
            first = edit.find.strip().splitlines()[0] if edit.find.strip() else edit.find
            raise MutantError(
                f"mutant {mutant.name} ({mutant.source}) no longer applies: its text to find occurs "
                f"{count} times in {edit.file}, not once (first line: {first!r}); update the record to the current code"
            )
        texts[edit.file] = text.replace(edit.find, edit.replace)
    for file, text in texts.items():
        try:
            compile(text, file, "exec")
        except SyntaxError as exc:
            raise MutantError(f"mutant {mutant.name} ({mutant.source}): {file} no longer compiles once mutated: {exc}") from None
    return texts


def select(mutants: Sequence[Mutant], names: Sequence[str]) -> list[Mutant]:
    """The mutants named, or those of the parts named (all when none is)."""
    if not names:
        return list(mutants)
    known = {m.name for m in mutants} | {m.part for m in mutants}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MutantError(f"no mutant or part named {', '.join(unknown)} (try --list)")
    wanted = set(names)
    return [m for m in mutants if m.name in wanted or m.part in wanted]


# ---------------------------------------------------------------------------
# Copies of the tree
# ---------------------------------------------------------------------------


def make_copy(dest: Path, source: Path = REPO) -> Path:
    """A copy of what the checks need, in ``dest``."""
    for name in COPIED_DIRS:
        shutil.copytree(source / name, dest / name, ignore=_IGNORED, symlinks=True)
    for name in COPIED_FILES:
        shutil.copy2(source / name, dest / name)
    return dest


def apply(mutant: Mutant, root: Path) -> None:
    for file, text in mutate(mutant, lambda f: (root / f).read_text(encoding="utf-8")).items():
        (root / file).write_text(text, encoding="utf-8")


def copy_env(root: Path) -> dict[str, str]:
    """The environment a copy runs in: its own code first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "impl"), str(root)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["OWNERSHIP_HOME"] = str(root / ".ownership-home")
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


_PROBE = """
import importlib, json, sys
names = sys.argv[1:]
print(json.dumps({n: importlib.import_module(n).__file__ for n in names}))
"""


def verify_copy_runs(root: Path, env: dict[str, str], modules: Sequence[str]) -> None:
    """Fail unless ``modules`` import from the copy (not from the editable install)."""
    names = ["ownership", "conformance", *modules]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *names], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise RunnerError(f"the copy in {root} does not import: {proc.stderr.strip().splitlines()[-1:]}")
    files = json.loads(proc.stdout)
    outside = {n: f for n, f in files.items() if not Path(f).resolve().is_relative_to(root.resolve())}
    if outside:
        raise RunnerError(f"the copy's code is not what runs: {outside} import from outside {root}")


def module_of(file: str) -> str:
    """``impl/ownership/core/x.py`` -> ``ownership.core.x``."""
    return file.removeprefix("impl/").removesuffix(".py").replace("/", ".")


# ---------------------------------------------------------------------------
# Running one stage
# ---------------------------------------------------------------------------


@attrs.define
class Stage:
    """What one check (the corpus, or the tests) said about one tree."""

    #: "passed", "killed", "hang" (only time limits fired), "error" (not judged)
    outcome: str
    failures: list[str] = attrs.Factory(list)  # traces or tests that failed
    hangs: list[str] = attrs.Factory(list)  # traces or tests ended by their time limit
    slow: list[str] = attrs.Factory(list)  # tests past their time limit once, not on their own: no kill
    limit_fired: bool = False  # the whole stage ran past its limit and was ended
    detail: str = ""
    seconds: float = 0.0

    @property
    def killed(self) -> bool:
        return self.outcome in ("killed", "hang")

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


#: process groups of the runs going on, ended at once when the runner is interrupted
_live_groups: set[int] = set()
_live_lock = threading.Lock()
_stopping = threading.Event()


class Interrupted(Exception):
    """The runner was told to stop (SIGINT, SIGTERM)."""


def _end_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_all_runs() -> None:
    """End every run going on and start no new one (the runner was interrupted)."""
    _stopping.set()
    with _live_lock:
        groups = list(_live_groups)
    for pgid in groups:
        _end_group(pgid)


def _run(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], limit: float, log: Path) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; ``None`` when ``limit`` fired (the group is ended)."""
    with log.open("w", encoding="utf-8") as out:
        with _live_lock:  # so that stop_all_runs either sees this run or stops it from starting
            if _stopping.is_set():
                raise Interrupted("the runner was interrupted")
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            _live_groups.add(proc.pid)
        try:
            rc: int | None = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            # Whatever the run left behind (a test's cluster processes after
            # pytest-timeout ended it, the whole run when the limit fired) goes.
            _end_group(proc.pid)
            proc.wait()
            with _live_lock:
                _live_groups.discard(proc.pid)
    if _stopping.is_set():
        raise Interrupted("the runner was interrupted")
    return rc, log.read_text(encoding="utf-8", errors="replace")


_TRACE_FAILED = re.compile(r"^✗ (\S+) \(")
_REPLAY_TIMEOUT = "the replay took more than"


def known_divergences() -> frozenset[str]:
    """The corpus's traces on which the unmutated implementation already
    diverges (``KNOWN_DIVERGENCES`` of tests/conformance/test_replay.py, which
    checks that each still does, exactly there): their failure kills nothing."""
    import ast

    tree = ast.parse((REPO / "tests" / "conformance" / "test_replay.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "KNOWN_DIVERGENCES" and isinstance(node.value, ast.Dict):
            return frozenset(ast.literal_eval(k) for k in node.value.keys if k is not None)
    return frozenset()


def run_conformance(root: Path, env: dict[str, str], *, trace_timeout: float, limit: float) -> Stage:
    """``ownership conformance run traces/`` in the copy."""
    known = known_divergences()
    # A kill needs one diverging trace: with none known to diverge on the
    # unmutated tree, the first one ends the stage.
    first = [] if known else ["--exitfirst"]
    cmd = [
        sys.executable, "-m", "ownership.cli", "conformance", "run", "--no-shrink", *first,
        "--timeout", f"{trace_timeout:g}", "--coverage", str(root / "conformance-coverage.json"), "traces",
    ]  # fmt: skip
    start = time.monotonic()
    rc, out = _run(cmd, cwd=root, env=env, limit=limit, log=root / "conformance.log")
    stage = Stage(outcome="passed", seconds=time.monotonic() - start)
    current = None
    first_divergence = ""
    for line in out.splitlines():
        m = _TRACE_FAILED.match(line)
        if m and any(m.group(1).endswith(name) for name in known):
            current = None  # diverges on the unmutated tree too: not a kill
            continue
        if m:
            current = m.group(1)
            stage.failures.append(current)
            continue
        if current is not None and line.startswith("step "):
            if _REPLAY_TIMEOUT in line:
                stage.hangs.append(current)
            elif not first_divergence:
                first_divergence = f"{current}: {line.strip()}"
            current = None
    if rc is None:
        stage.limit_fired = True
        stage.outcome = "hang" if not first_divergence else "killed"
        stage.detail = f"ended after {limit:g} s (stage limit); {len(stage.failures)} traces had failed by then"
        if first_divergence:
            stage.detail += f"; first: {first_divergence}"
        return stage
    if rc in (0, 1) and not stage.failures:
        return stage  # (1: only known divergences failed)
    if rc == 1 and stage.failures:
        stage.outcome = "killed" if len(stage.hangs) < len(stage.failures) else "hang"
        stage.detail = first_divergence or f"{stage.failures[0]}: the replay took more than {trace_timeout:g} s"
        return stage
    stage.outcome = "error"
    stage.detail = f"`ownership conformance run` exited {rc}: " + " | ".join(out.strip().splitlines()[-3:])
    return stage


#: loaded into every pytest run of a copy (``-p``): Hypothesis reports the
#: first failing example without shrinking it, since a kill needs no minimal
#: example, and shrinking a stateful cluster test takes minutes, long enough
#: to pass for a hang.
_PYTEST_PLUGIN = """\
from hypothesis import Phase, settings

settings.register_profile("mutants", phases=[p for p in Phase if p is not Phase.shrink])
settings.load_profile("mutants")
"""
_PLUGIN_MODULE = "mutant_run_plugin"

_TIMEOUT_BANNER = re.compile(r"\+{3,} Timeout \+{3,}")
_NODE_ID = re.compile(r"(tests/\S+?\.py::\S+)")


def _junit_failures(path: Path) -> tuple[int, list[str], dict[str, str]]:
    """(tests run, failed test ids, first message of each) from a JUnit XML report (xunit1)."""
    root = ET.parse(path).getroot()
    failed: list[str] = []
    messages: dict[str, str] = {}
    total = 0
    for case in root.iter("testcase"):
        total += 1
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is None:
            continue
        file = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        classname = case.get("classname", "")
        module = file.removesuffix(".py").replace("/", ".")
        cls = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
        test_id = "::".join(p for p in (file, cls, case.get("name", "")) if p)
        failed.append(test_id)
        messages[test_id] = (bad.get("message") or "").splitlines()[0][:200] if bad.get("message") else ""
    return total, failed, messages


def _pytest(
    root: Path, env: dict[str, str], paths: Sequence[str], *, deselect: Sequence[str], test_timeout: float, limit: float, log: str
) -> tuple[str, Any]:
    """One pytest run of the copy.

    ("report", (failed ids, first message of each)), ("hang", the test
    pytest-timeout ended the run in), ("limit", None) when the whole run was
    ended after ``limit`` s, or ("error", what pytest said).
    """
    xml = root / "tests-report.xml"
    xml.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", _PLUGIN_MODULE, "-o", "junit_family=xunit1",
        "-o", "timeout_method=thread", f"--timeout={test_timeout:g}", f"--junit-xml={xml}", *paths,
        *(f"--deselect={d}" for d in deselect),
    ]  # fmt: skip
    rc, out = _run(cmd, cwd=root, env=env, limit=limit, log=root / log)
    tail = " | ".join(out.strip().splitlines()[-3:])
    if rc is None:
        return "limit", None
    if xml.exists():
        _total, failed, messages = _junit_failures(xml)
        # 5: nothing left to run once the tests that hung are deselected
        if rc not in (0, 1, 5) and not failed:
            return "error", f"pytest exited {rc}: {tail}"
        return "report", (failed, messages)
    banner = _TIMEOUT_BANNER.search(out)
    ids = _NODE_ID.findall(out[: banner.start()]) if banner else []
    if not ids:
        return "error", f"pytest exited {rc} without a report: {tail}"
    return "hang", ids[-1]


def run_tests(
    root: Path,
    env: dict[str, str],
    *,
    paths: Sequence[str],
    test_timeout: float,
    limit: float,
    max_hangs: int,
) -> Stage:
    """The tests in ``paths``, in the copy.

    A test that runs past ``test_timeout`` ends its pytest run (pytest-timeout
    names it); the others run again without it. Each such test then runs once
    more on its own with twice the time: only if it runs past that too is it
    a hang (a test that only crawled under load is reported as slow, and a
    test that fails then is a failure).
    """
    (root / f"{_PLUGIN_MODULE}.py").write_text(_PYTEST_PLUGIN, encoding="utf-8")
    stage = Stage(outcome="passed")
    start = time.monotonic()
    messages: dict[str, str] = {}
    ended: list[str] = []  # tests pytest-timeout ended
    failed: list[str] = []

    def finish(outcome: str, detail: str) -> Stage:
        stage.outcome, stage.detail = outcome, detail
        stage.seconds = time.monotonic() - start
        return stage

    for attempt in range(max_hangs + 1):
        kind, data = _pytest(root, env, paths, deselect=ended, test_timeout=test_timeout, limit=limit, log=f"tests-{attempt}.log")
        if kind == "error":
            return finish("error", data)
        if kind == "limit":
            stage.limit_fired = True
            stage.detail = f"a pytest run was ended after {limit:g} s (stage limit)"
            break
        if kind == "report":
            failed, messages = data
            break
        ended.append(data)
    else:
        stage.detail = f"stopped after {max_hangs} tests ran past their time limit; the others were not run to the end"
    for i, test in enumerate(ended):
        kind, data = _pytest(root, env, [test], deselect=(), test_timeout=2 * test_timeout, limit=limit, log=f"confirm-{i}.log")
        if kind in ("hang", "limit"):
            stage.hangs.append(test)
            messages[test] = f"hang: ran past {test_timeout:g} s, and past {2 * test_timeout:g} s on its own"
        elif kind == "report" and data[0]:
            failed.append(test)
            messages[test] = data[1].get(data[0][0], "")
        elif kind == "report":
            stage.slow.append(test)
        else:
            return finish("error", data)
    stage.seconds = time.monotonic() - start
    stage.failures = stage.hangs + [f for f in failed if f not in stage.hangs]
    if stage.failures or stage.limit_fired:
        hung_only = len(stage.hangs) == len(stage.failures)
        stage.outcome = "hang" if hung_only else "killed"
        if not stage.detail:
            first = stage.hangs[0] if hung_only else next(f for f in stage.failures if f not in stage.hangs)
            stage.detail = f"{first}: {messages.get(first, '')}".rstrip(": ")
    return stage


# ---------------------------------------------------------------------------
# Runs and the report
# ---------------------------------------------------------------------------


@attrs.define
class Options:
    #: the tests run against every mutant; None: each mutant's part's (tests_of)
    tests: tuple[str, ...] | None = None
    trace_timeout: float = 10.0
    conformance_limit: float = 600.0
    test_timeout: float = 60.0
    tests_limit: float = 300.0
    max_hangs: int = 3
    keep: bool = False


@attrs.define
class Result:
    name: str
    part: str
    aspect: str
    why: str
    conformance: Stage | None = None
    tests: Stage | None = None
    #: tests that failed but also fail on the unmutated tree: no kill
    unreliable: list[str] = attrs.Factory(list)
    error: str = ""
    copy: str = ""

    @property
    def killers(self) -> list[str]:
        return [t for t in self.tests.failures if t not in self.unreliable] if self.tests else []

    @property
    def by_conformance(self) -> bool:
        return self.conformance is not None and self.conformance.killed

    @property
    def by_tests(self) -> bool:
        return bool(self.killers) or (self.tests is not None and self.tests.limit_fired)

    @property
    def verdict(self) -> str:
        """"conformance" (the corpus alone kills it), "tests" (only tests do), "survived", "error"."""
        if self.error or any(s is not None and s.outcome == "error" for s in (self.conformance, self.tests)):
            return "error"
        if self.by_conformance:
            return "conformance"
        if self.by_tests:
            return "tests"
        return "survived"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "part": self.part,
            "aspect": self.aspect,
            "why": self.why,
            "verdict": self.verdict,
            "conformance": self.conformance.to_json() if self.conformance else None,
            "tests": self.tests.to_json() if self.tests else None,
            "killing_tests": self.killers,
            "unreliable_tests": self.unreliable,
            "error": self.error,
        }


def check_tree(
    root: Path,
    mutant: Mutant | None,
    options: Options,
    *,
    unreliable: set[str],
    conformance: bool = True,
    paths: Sequence[str] | None = None,
) -> Result:
    """Plant ``mutant`` (None: the unmutated tree) in a fresh copy and run both
    checks: the corpus (unless ``conformance`` is off, or the mutant's part
    is out of its sight) and ``paths`` (default: the options' tests, else
    the mutant's part's)."""
    name = mutant.name if mutant else "(unmutated)"
    if mutant is not None:
        conformance = conformance and runs_conformance(mutant.part)
    if paths is None:
        paths = options.tests or tests_of(mutant.part if mutant else "")
    result = Result(name=name, part=mutant.part if mutant else "", aspect=mutant.aspect if mutant else "", why=mutant.why if mutant else "")
    if _stopping.is_set():
        result.error = "not run: the runner was interrupted"
        return result
    workdir = Path(tempfile.mkdtemp(prefix=f"ownership-mutant-{name.strip('()')}-"))
    try:
        copy = make_copy(workdir / "tree", root)
        result.copy = str(copy)
        if mutant is not None:
            apply(mutant, copy)
        env = copy_env(copy)
        verify_copy_runs(copy, env, [module_of(f) for f in (mutant.files if mutant else ())])
        if conformance:
            result.conformance = run_conformance(copy, env, trace_timeout=options.trace_timeout, limit=options.conformance_limit)
        result.tests = run_tests(
            copy, env, paths=paths, test_timeout=options.test_timeout, limit=options.tests_limit, max_hangs=options.max_hangs
        )
        result.unreliable = [t for t in result.tests.failures if t in unreliable]
    except (MutantError, RunnerError, Interrupted, OSError, subprocess.SubprocessError) as exc:
        result.error = str(exc)
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def _stage_text(stage: Stage | None, what: str) -> str:
    if stage is None:
        return "-"
    if stage.outcome == "error":
        return "error"
    if not stage.killed:
        return "survived"
    parts = []
    failed = [f for f in stage.failures if f not in stage.hangs]
    if failed:
        parts.append(_count(len(failed), what))
    if stage.hangs:
        parts.append(f"hang: {_count(len(stage.hangs), what)} past the time limit")
    if stage.limit_fired:
        parts.append("hang: stage time limit fired")
    return "killed (" + "; ".join(parts) + ")"


def _count(n: int, what: str) -> str:
    return f"{n} {what if n != 1 else what.removesuffix('s')}"


def _short(test_id: str) -> str:
    return test_id.rsplit("/", 1)[-1]


def summary_line(r: Result) -> str:
    if r.verdict == "error":
        detail = r.error or next(s.detail for s in (r.conformance, r.tests) if s is not None and s.outcome == "error")
        return f"{r.name}: ERROR {detail}"
    conf = _stage_text(r.conformance, "traces")
    tests = _stage_text(r.tests, "tests") if r.killers or (r.tests and r.tests.limit_fired) else "survived"
    line = f"{r.name}: {r.verdict.upper()} - conformance {conf}; tests {tests}"
    if r.unreliable:
        line += f"; also failed (fails on the unmutated tree too, not counted): {', '.join(map(_short, r.unreliable))}"
    if r.tests and r.tests.slow:
        line += f"; slow under load, not hung (not counted): {', '.join(map(_short, r.tests.slow))}"
    return line


def print_report(results: Sequence[Result], unreliable: set[str], out: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, soft_wrap=False, width=200) if out is not None else Console(width=200)
    table = Table(title="Planted bugs", show_lines=False)
    table.add_column("mutant")
    table.add_column("part: aspect")
    table.add_column("conformance corpus")
    table.add_column("tests of its part")
    table.add_column("verdict")
    style = {"conformance": "green", "tests": "yellow", "survived": "bold red", "error": "bold magenta"}
    for r in results:
        if r.verdict == "error":
            conf, tests = "error", r.error or "error"
        else:
            conf = _stage_text(r.conformance, "traces")
            if r.by_tests:
                names = ", ".join(_short(t) for t in r.killers[:2])
                more = f" +{len(r.killers) - 2}" if len(r.killers) > 2 else ""
                hung = f" [{len(r.tests.hangs)} hung]" if r.tests and r.tests.hangs else ""
                limit = " [stage limit fired]" if r.tests and r.tests.limit_fired else ""
                tests = f"{len(r.killers)}: {names}{more}{hung}{limit}"
            else:
                tests = "survived"
        table.add_row(r.name, f"{r.part}: {r.aspect}", conf, tests, f"[{style[r.verdict]}]{r.verdict}[/]")
    console.print(table)
    counts = {v: sum(1 for r in results if r.verdict == v) for v in ("conformance", "tests", "survived", "error")}
    hangs = sum(1 for r in results if r.verdict != "error" and any(s is not None and (s.hangs or s.limit_fired) for s in (r.conformance, r.tests)))
    console.print(
        f"{len(results)} mutants: {counts['conformance'] + counts['tests']} killed "
        f"({counts['conformance']} by the conformance corpus alone, {counts['tests']} only by tests), "
        f"{counts['survived']} survived, {counts['error']} not judged; {hangs} killed at least in part by a time limit (hang)",
        highlight=False,
    )
    if unreliable:
        console.print(f"failing on the unmutated tree too, counted towards no kill: {', '.join(sorted(unreliable))}", highlight=False)
    slow = sorted({t for r in results if r.tests for t in r.tests.slow})
    if slow:
        console.print(f"past the test time limit once but not on their own (slow, not hung; no kill): {', '.join(slow)}", highlight=False)
    for r in results:
        if r.verdict == "survived":
            console.print(f"[bold red]survived[/] {r.name} ({r.part}: {r.aspect}): {r.why}", highlight=False)
        elif r.verdict == "error":
            console.print(f"[bold magenta]not judged[/] {r.name}: {r.error or summary_line(r)}", highlight=False)


def baseline(
    root: Path,
    options: Options,
    runs: int,
    jobs: int,
    log: Callable[[str], None],
    parts: Sequence[str] = ("submitter",),
) -> tuple[set[str], list[Result]]:
    """Run the unmutated tree: the corpus must pass; tests that fail there are
    unreliable. The tests are those the mutants of ``parts`` will run."""
    paths = options.tests or tuple(dict.fromkeys(p for part in parts for p in tests_of(part)))
    conformance = any(runs_conformance(part) for part in parts)
    results = _in_pool(
        min(jobs, runs),
        lambda i: check_tree(root, None, options, unreliable=set(), conformance=conformance and i == 0, paths=paths),
        range(runs),
    )
    unreliable: set[str] = set()
    for i, r in enumerate(results, start=1):
        if r.error:
            raise RunnerError(f"the unmutated tree could not be run: {r.error}")
        if r.conformance is not None and r.conformance.outcome != "passed":
            raise RunnerError(f"the conformance corpus fails on the unmutated tree: {r.conformance.detail}")
        if r.tests is not None and r.tests.outcome == "error":
            raise RunnerError(f"the tests could not run on the unmutated tree: {r.tests.detail}")
        if r.tests is not None:
            unreliable |= set(r.tests.failures)
        took = sum(s.seconds for s in (r.conformance, r.tests) if s is not None)
        log(f"unmutated tree, run {i} of {runs}: {len(r.tests.failures) if r.tests else 0} tests failed ({took:.0f} s)")
    return unreliable, results


def run_mutants(
    mutants: Sequence[Mutant],
    options: Options,
    *,
    jobs: int,
    unreliable: set[str],
    root: Path = REPO,
    log: Callable[[str], None] = print,
) -> list[Result]:
    results: dict[str, Result] = {}
    lock = threading.Lock()
    done = 0

    def one(mutant: Mutant) -> Result:
        nonlocal done
        start = time.monotonic()
        r = check_tree(root, mutant, options, unreliable=unreliable)
        with lock:
            done += 1
            log(f"[{done}/{len(mutants)}] {summary_line(r)} ({time.monotonic() - start:.0f} s)")
        return r

    for mutant, result in zip(mutants, _in_pool(jobs, one, mutants)):
        results[mutant.name] = result
    return [results[m.name] for m in mutants]


def _in_pool(jobs: int, fn: Callable[[Any], Result], items: Sequence[Any]) -> list[Result]:
    """``fn`` over ``items``, ``jobs`` at a time; interrupted, every run going on is ended first."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [pool.submit(fn, item) for item in items]
        return [f.result() for f in futures]
    except BaseException:
        stop_all_runs()  # so that the threads' waits return
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tests/mutants/run.py",
        description="Plant each mutant in a copy of the tree; run the conformance corpus and the tests against it.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="mutants, or parts (submitter, refcount, ...), to run (default: all)")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="mutants run at once (default: one per core)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true", help="only check that every mutant still applies and compiles")
    parser.add_argument(
        "--tests", nargs="+", default=None, metavar="PATH",
        help=f"test paths run against each mutant (default: {' '.join(DEFAULT_TESTS)} for the core's, "
        + "; ".join(f"{' '.join(t)} for the {part}'s" for part, t in PART_TESTS.items()) + ")",
    )
    parser.add_argument("--trace-timeout", type=float, default=10.0, help="seconds one replayed trace may take (default 10)")
    parser.add_argument("--conformance-limit", type=float, default=600.0, help="seconds the whole corpus may take (default 600)")
    parser.add_argument("--test-timeout", type=float, default=60.0, help="seconds one test may take (default 60)")
    parser.add_argument("--tests-limit", type=float, default=300.0, help="seconds one pytest run may take (default 300)")
    parser.add_argument("--max-hangs", type=int, default=3, help="tests that may hang before the rest of a run is given up (default 3)")
    parser.add_argument("--baseline-runs", type=int, default=2, help="runs of the unmutated tree first (default 2; 0 skips)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep each mutant's copy (and its logs) in the temp folder")
    args = parser.parse_args(argv)

    try:
        mutants = select(load_mutants(), args.names)
        for mutant in mutants:
            mutate(mutant, lambda f: (REPO / f).read_text(encoding="utf-8"))
    except MutantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.list:
        for m in mutants:
            print(f"{m.name:50} {m.part}: {m.aspect}")
        return EXIT_ALL_KILLED
    if args.check:
        print(f"{len(mutants)} mutants apply to the current code and compile")
        return EXIT_ALL_KILLED
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    options = Options(
        tests=tuple(args.tests) if args.tests else None,
        trace_timeout=args.trace_timeout,
        conformance_limit=args.conformance_limit,
        test_timeout=args.test_timeout,
        tests_limit=args.tests_limit,
        max_hangs=args.max_hangs,
        keep=args.keep,
    )

    def log(line: str) -> None:
        print(line, flush=True)

    start = time.monotonic()
    parts = tuple(dict.fromkeys(m.part for m in mutants))
    against = " ".join(options.tests) if options.tests else "the tests of its part"
    log(f"{len(mutants)} mutants, {args.jobs} at a time; each against the conformance corpus (core parts) and {against}")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        unreliable, _ = baseline(REPO, options, args.baseline_runs, args.jobs, log, parts) if args.baseline_runs > 0 else (set(), [])
        results = run_mutants(mutants, options, jobs=args.jobs, unreliable=unreliable, log=log)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: every run was ended", file=sys.stderr)
        return EXIT_ERROR
    print_report(results, unreliable)
    log(f"{time.monotonic() - start:.0f} s in all")
    if args.json:
        args.json.write_text(
            json.dumps({"unreliable_tests": sorted(unreliable), "mutants": [r.to_json() for r in results]}, indent=1) + "\n",
            encoding="utf-8",
        )
    if any(r.verdict == "error" for r in results):
        return EXIT_ERROR
    return EXIT_SURVIVORS if any(r.verdict == "survived" for r in results) else EXIT_ALL_KILLED


if __name__ == "__main__":
    sys.exit(main())
