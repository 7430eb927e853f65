"""Every CI config of every spec model-checks clean, and every mutant bites.

A mutant is a textual find/replace on a spec module, declared in the spec's
manifest (spec/<Spec>.json). Each must make TLC report exactly its target
invariant or property violated, with a trace: that is what shows the
invariant constrains the protocol rather than holding vacuously.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ownership.tla.tlc import check

SPEC_DIR = Path(__file__).resolve().parents[2] / "spec"


def load_manifests() -> dict[str, dict]:
    """Every spec's manifest, spec/<Spec>.json, by spec name."""
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted(SPEC_DIR.glob("*.json"))
        if path.name != "manifest.json"
    }

MANIFESTS = load_manifests()

CI_CONFIGS = [
    pytest.param(spec, name, id=f"{spec}-{name}")
    for spec, manifest in MANIFESTS.items()
    for name, config in manifest["configs"].items()
    if config.get("ci")
]
#: A mutant whose check explores a whole graph for a liveness property takes
#: minutes; those marked ``"ci": false`` run with ``make check-mutants``
#: (OWNERSHIP_SPEC_MUTANTS=all), the rest in every ``make test``.
ALL_MUTANTS = os.environ.get("OWNERSHIP_SPEC_MUTANTS") == "all"
MUTANTS = [
    pytest.param(spec, mutant, id=f"{spec}-{mutant['name']}")
    for spec, manifest in MANIFESTS.items()
    for mutant in manifest.get("mutants", [])
    if ALL_MUTANTS or mutant.get("ci", True)
]


def test_every_spec_has_a_manifest_with_ci_config():
    assert set(MANIFESTS) >= {"Scheduling", "RefCounting", "FateSharing"}
    for spec, manifest in MANIFESTS.items():
        assert any(c.get("ci") for c in manifest["configs"].values()), spec
        assert "Large" in manifest["configs"], f"{spec} documents no Large config"


@pytest.mark.parametrize(("spec", "config_name"), CI_CONFIGS)
def test_model_checks_clean_small_config(spec, config_name):
    manifest = MANIFESTS[spec]
    config = manifest["configs"][config_name]
    result = check(
        SPEC_DIR / manifest["model"],
        SPEC_DIR / config["file"],
        deadlock=manifest.get("deadlock", True),
    )
    assert result.errors == [], result.errors
    assert result.violation is None, result.violation
    assert result.ok
    # Same model, same config: TLC's distinct-state count is deterministic, so
    # a change means the protocol model changed and the manifest must say so.
    assert result.distinct_states == config["distinct_states"]


@pytest.mark.parametrize(("spec", "mutant"), MUTANTS)
def test_mutant_violates_its_target(spec, mutant, tmp_path: Path):
    manifest = MANIFESTS[spec]
    workdir = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, workdir, ignore=shutil.ignore_patterns("states", "*.json", "docs"))
    target_file = workdir / mutant.get("file", manifest["module"])
    text = target_file.read_text()
    assert text.count(mutant["find"]) == 1, f"mutant {mutant['name']}: find text must occur exactly once"
    target_file.write_text(text.replace(mutant["find"], mutant["replace"]))

    config = manifest["configs"][mutant.get("config", "Small")]
    # A mutant that makes a get hang may turn deadlock checking off
    # ("deadlock": false), so that TLC names the liveness property it breaks
    # rather than the stuck state.
    deadlock = mutant.get("deadlock", manifest.get("deadlock", True))
    result = check(workdir / manifest["model"], workdir / config["file"], deadlock=deadlock)

    assert result.errors == [], result.errors
    assert result.violation is not None, f"mutant {mutant['name']} was not caught: {mutant['why']}"
    assert result.violation.kind == mutant.get("kind", "invariant")
    assert result.violation.name == mutant["target"]
    assert len(result.violation.trace) >= 1
