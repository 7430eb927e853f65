"""The docstring refresher keeps Spec lines and prose, and takes the TLA+ from the spec."""

from __future__ import annotations

import pytest

from ownership.core.specdoc import action_text, refresh

SPEC = r"""---- MODULE Toy ----
(***************************************************************************)
(* A toy.                                                                  *)
(***************************************************************************)
\* impl: impl/ownership/core/toy.py::Toy.step
Step(x) ==
    (***********************************************************************)
    (* boxed prose inside                                                  *)
    (***********************************************************************)
    /\ x' = x + 1
    /\ UNCHANGED y

Other == TRUE
====
"""

SOURCE = '''class Toy:
    def step(self) -> None:
        r"""Spec: Toy!Step

            \\* Toy
            Step(x) ==
                /\\ x' = x + 2

        Implementation:

        Moves x along.
        """
'''


def test_action_text_drops_boxed_comments_and_impl_lines() -> None:
    assert action_text(SPEC, "Step") == ["Step(x) ==", "    /\\ x' = x + 1", "    /\\ UNCHANGED y"]
    assert action_text(SPEC, "Missing") is None


def test_refresh_rewrites_the_tla_text_and_keeps_the_prose() -> None:
    out = refresh(SOURCE, {"Toy": SPEC})
    assert "x' = x + 1" in out and "x' = x + 2" not in out
    assert "Moves x along." in out and out.count("Spec: Toy!Step") == 1
    assert refresh(out, {"Toy": SPEC}) == out


def test_refresh_refuses_an_action_the_spec_lacks() -> None:
    with pytest.raises(SystemExit, match="Toy!Step"):
        refresh(SOURCE, {"Toy": "---- MODULE Toy ----\n===="})
