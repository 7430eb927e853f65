"""Spec-level coverage reached by replays: the share of the model's edges,
actions and actions-with-parameters that the implementation followed.

The totals come from the graph index the generator writes next to the
traces (``traces/<Spec>/<Config>_<cover>.index.json``): the model as the
implementation can follow it (its eager steps and choices constrained, see
:mod:`conformance.generate`). An edge counts as exercised when the
implementation followed the trace through it, up to the last state that
matched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .replay import ReplayResult

__all__ = ["coverage", "find_indexes"]


def coverage(results: Sequence[ReplayResult], indexes: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """Spec-level coverage reached by the replays: the share of the model's
    edges, actions and actions-with-parameters the implementation followed."""
    out: dict[str, Any] = {}
    groups: dict[tuple[str, str], list[ReplayResult]] = {}
    for r in results:
        groups.setdefault((r.spec, r.config), []).append(r)
    for (spec, config), rs in sorted(groups.items()):
        edges = {e for r in rs for e in r.edges}
        actions = {a for r in rs for a, _ in r.actions}
        with_params = {a for r in rs for a in r.actions}
        index = indexes.get((spec, config))
        entry: dict[str, Any] = {
            "traces": len(rs),
            "passed": sum(1 for r in rs if r.passed),
            "steps": sum(r.length - 1 for r in rs),
            "edges": {"exercised": len(edges)},
            "actions": {"exercised": sorted(actions)},
            "action_params": {"exercised": len(with_params)},
        }
        if index is not None:
            total_actions = sorted(index.get("actions", {}))
            # A whole edge cover's graph may leave out what a targeted trace
            # reaches (a config's constraints on its cover): count those apart.
            # Its actions count the same way.
            covering = {e for r in rs if not r.targeted for e in r.edges}
            if covering and index.get("cover") == "edges" and index.get("max_paths") is None:
                entry["edges"].update(exercised=len(covering), beyond=len(edges - covering))
                edges = covering
                actions = {a for r in rs if not r.targeted for a, _ in r.actions}
                with_params = {a for r in rs if not r.targeted for a in r.actions}
                entry["actions"]["exercised"] = sorted(actions)
                entry["action_params"]["exercised"] = len(with_params)
            entry["edges"].update(total=index["edges"], share=_share(len(edges), index["edges"]))
            entry["actions"].update(
                total=len(total_actions),
                share=_share(len(actions & set(total_actions)), len(total_actions)),
                missed=sorted(set(total_actions) - actions),
            )
            entry["action_params"].update(total=index["action_params"], share=_share(len(with_params), index["action_params"]))
            entry["model"] = {
                "states": index.get("states"),
                "eager": index.get("eager", []),
                "spec_hash": index.get("spec_hash"),
            }
        out[f"{spec}/{config}"] = entry
    return out


def _share(n: int, total: int) -> float:
    return round(n / total, 4) if total else 0.0


def find_indexes(paths: Iterable[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """The graph indexes (``<Config>_<cover>.index.json``) next to the traces."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    folders = {p if p.is_dir() else p.parent for p in map(Path, paths)}
    for folder in sorted(folders):
        for f in sorted(folder.rglob("*.index.json")):
            data = json.loads(f.read_text(encoding="utf-8"))
            out.setdefault((data["spec"], data["config"]), data)
    return out
