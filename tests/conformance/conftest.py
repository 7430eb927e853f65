"""Shared paths and fixtures of the conformance tests."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from conformance.replay import load_traces

REPO = Path(__file__).resolve().parents[2]
TRACES = REPO / "traces"
SPEC_DIR = REPO / "spec"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def corpus():
    """Every committed trace, as (path, ITFTrace), in path order."""
    traces = load_traces([TRACES])
    assert traces, f"no committed traces under {TRACES}"
    # The parsed corpus is millions of objects kept for the whole session;
    # every later full collection would scan them again (the stateful
    # test's quiesce collects ~150 times: 5 s alone, 300 s after the
    # corpus). Nothing in it is garbage: move it out of the collector's way.
    gc.collect()
    gc.freeze()
    return traces


@pytest.fixture(scope="session")
def scheduling_constants():
    from conformance.replay import model_constants
    from conformance.specs import resolve_spec

    return model_constants(resolve_spec("Scheduling", SPEC_DIR), "Small", TRACES)
