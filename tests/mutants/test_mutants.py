"""The planted bugs stay current, cover every part of the core and the transport, and get killed.

``make mutants`` runs every mutant of ``tests/mutants/*.toml`` against the
conformance corpus and the scenario, core and API tests (minutes). Here:
every mutant still applies to the current code (a refactor that moves the
text a mutant plants its bug in fails here, naming the record to update),
the list covers each part of the core, the runner's judgement holds up (its
copy runs its own code, a hang is reported only when a time limit fired),
and a fast subset runs end to end.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _load_runner():
    spec = importlib.util.spec_from_file_location("ownership_mutants_run", HERE / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


runner = _load_runner()
MUTANTS = runner.load_mutants()

#: what the list must cover: each part of the core, and the transport, with the aspects it has
REQUIRED = {
    "submitter": {"leases", "pipelining", "replies", "resubmission", "spillback", "actors", "cancel"},
    "refcount": {
        "local counts", "submitted-task counts", "borrowers", "sub-borrowers", "contained-in counts",
        "lineage counts", "WaitForRefRemoved", "RefRemoved", "free",
    },
    "recovery": {"reconstruction", "fate-sharing", "re-execution", "failure scans"},
    "scheduler": {"grant", "spillback", "release", "worker death", "lending"},
    "store": {"pin", "free", "fate-sharing"},
    "head": {"membership", "failure publication", "failure detection", "fencing"},
    "executor": {"argument resolution", "ordering", "actor gating", "cancel"},
    "transport": {"handshake", "authentication", "frame tags", "resend", "object plane"},
}  # fmt: skip

#: run end to end in CI, against the corpus and the core tests: mutant -> the
#: verdict it must get, and a test that must be among its killers (None: the
#: corpus must kill it). Quick kills only (no time limit has to fire): one by
#: both checks, one by the corpus alone, one by a test alone.
FAST_SUBSET = {
    "worker-death-not-retried": ("conformance", "tests/core/test_submitter.py::test_stale_reply_after_resubmission_is_ignored"),
    "borrower-reports-only-its-local-handles": ("conformance", None),
    "hand-over-counted-as-an-answer": ("tests", "tests/core/test_refcount.py::test_handed_over_borrowers_do_not_count_as_an_answer"),
}
FAST_SUBSET_TESTS = "tests/core"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_applies_to_the_current_core(mutant):
    mutated = runner.mutate(mutant, lambda f: (REPO / f).read_text(encoding="utf-8"))
    for file, text in mutated.items():
        assert text != (REPO / file).read_text(encoding="utf-8"), f"{mutant.name} leaves {file} unchanged"


def test_mutants_cover_every_part_of_the_core():
    assert len(MUTANTS) >= 25
    have: dict[str, set[str]] = {}
    for m in MUTANTS:
        have.setdefault(m.part, set()).add(m.aspect)
        assert m.why, f"{m.name} does not say why it is a realistic bug"
    missing = {part: sorted(aspects - have.get(part, set())) for part, aspects in REQUIRED.items()}
    assert {p: a for p, a in missing.items() if a} == {}


def test_fast_subset_names_existing_mutants():
    assert set(FAST_SUBSET) <= {m.name for m in MUTANTS}


def test_mutant_that_no_longer_applies_is_a_clear_error(tmp_path: Path):
    record = tmp_path / "gone.toml"
    record.write_text(
        '[[mutant]]\nname = "gone"\npart = "head"\naspect = "membership"\nwhy = "a refactor moved it"\n'
        'file = "impl/ownership/core/head.py"\nfind = "this text is not in head.py\\n"\nreplace = "x\\n"\n',
        encoding="utf-8",
    )
    (mutant,) = runner.load_mutants(tmp_path)
    with pytest.raises(runner.MutantError, match=r"mutant gone .* no longer applies: .* occurs 0 times in impl/ownership/core/head.py"):
        runner.mutate(mutant, lambda f: (REPO / f).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('name = "x"\npart = "nowhere"\naspect = "a"\nwhy = "w"\nfile = "impl/ownership/core/head.py"\nfind = "a"\nreplace = "b"\n', "part must be one of"),
        ('name = "x"\npart = "head"\naspect = "a"\nwhy = "w"\nfile = "impl/ownership/api.py"\nfind = "a"\nreplace = "b"\n', "under impl/ownership/core/"),
        ('name = "x"\npart = "head"\naspect = "a"\nwhy = "w"\nfile = "impl/ownership/core/head.py"\nfind = "a"\nreplace = "a"\n', "different"),
    ],
    ids=["unknown-part", "outside-the-core", "no-change"],
)
def test_malformed_mutant_record_is_rejected(tmp_path: Path, text: str, error: str):
    (tmp_path / "bad.toml").write_text("[[mutant]]\n" + text, encoding="utf-8")
    with pytest.raises(runner.MutantError, match=error):
        runner.load_mutants(tmp_path)


def test_copy_runs_its_own_code_not_the_installed_one(tmp_path: Path):
    copy = runner.make_copy(tmp_path / "tree")
    (mutant,) = runner.select(MUTANTS, ["worker-granted-twice"])
    runner.apply(mutant, copy)
    env = runner.copy_env(copy)
    runner.verify_copy_runs(copy, env, ["ownership.core.scheduler"])
    probe = "import ownership.core.scheduler as s, inspect; print('slot.state, slot.lease_id = LEASED' in inspect.getsource(s))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=copy, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the mutated scheduler is the one imported
    # Without the copy first on the path, the editable install answers: caught.
    elsewhere = dict(env, PYTHONPATH="")
    with pytest.raises(runner.RunnerError, match="not what runs"):
        runner.verify_copy_runs(copy, elsewhere, ["ownership.core.scheduler"])


@pytest.mark.slow
def test_hanging_test_is_named_as_a_hang_and_the_others_still_run(tmp_path: Path):
    root = tmp_path / "tree"
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\ntrio_mode = true\n", encoding="utf-8")
    (root / "tests" / "test_fake.py").write_text(
        "import trio\n\n"
        "async def test_hangs():\n    await trio.Event().wait()\n\n"
        "def test_fails():\n    assert 1 == 2\n\n"
        "async def test_passes():\n    await trio.sleep(0)\n\n"
        "async def test_crawls():\n    await trio.sleep(3)\n",
        encoding="utf-8",
    )
    stage = runner.run_tests(root, runner.copy_env(root), paths=["tests"], test_timeout=2, limit=120, max_hangs=3)
    assert stage.outcome == "killed"
    assert stage.hangs == ["tests/test_fake.py::test_hangs"]
    assert stage.failures == ["tests/test_fake.py::test_hangs", "tests/test_fake.py::test_fails"]
    # Past 2 s in the run, within 4 s on its own: slow, not a hang, no kill.
    assert stage.slow == ["tests/test_fake.py::test_crawls"]
    assert not stage.limit_fired

    # Only the hang: killed by a time limit, and reported so.
    (root / "tests" / "test_fake.py").write_text(
        "import trio\n\nasync def test_hangs():\n    await trio.Event().wait()\n", encoding="utf-8"
    )
    stage = runner.run_tests(root, runner.copy_env(root), paths=["tests"], test_timeout=2, limit=120, max_hangs=2)
    assert (stage.outcome, stage.hangs) == ("hang", ["tests/test_fake.py::test_hangs"])


@pytest.mark.slow
def test_fast_subset_of_mutants_is_killed(tmp_path: Path):
    report = tmp_path / "report.json"
    cmd = [
        sys.executable, str(HERE / "run.py"), "--jobs", "2", "--baseline-runs", "0", "--tests", FAST_SUBSET_TESTS,
        "--json", str(report), *FAST_SUBSET,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=270)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the runner ends every run it started, then exits
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"the fast subset took more than 270 s:\n{out}")
    assert report.exists(), out
    results = {r["name"]: r for r in json.loads(report.read_text(encoding="utf-8"))["mutants"]}
    assert {name: results[name]["verdict"] for name in FAST_SUBSET} == {n: v for n, (v, _t) in FAST_SUBSET.items()}, out
    for name, (_verdict, test) in FAST_SUBSET.items():
        if test is not None:
            assert test in results[name]["killing_tests"], (name, results[name]["killing_tests"])
    assert results["borrower-reports-only-its-local-handles"]["killing_tests"] == []  # the corpus alone
    assert proc.returncode == 0, out
