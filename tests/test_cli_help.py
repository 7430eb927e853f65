"""``ownership ... --help``: plain text, examples one per line, every config named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ownership.cli import help_text, main

SPEC = Path(__file__).resolve().parents[1] / "spec"

COMMANDS = [
    [],
    ["start"],
    ["stop"],
    ["status"],
    ["memory"],
    ["check"],
    ["traces", "generate"],
    ["conformance", "run"],
    ["conformance", "validate"],
    ["conformance", "log"],
    ["bench"],
]


def _help(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "ownership")
def test_help_is_plain_text_with_examples_on_their_own_lines(capsys, argv):
    text = _help(capsys, argv)
    assert "``" not in text and "::" not in text  # no reST markup
    if argv not in (["stop"], ["conformance", "validate"]):
        examples = [line for line in text.splitlines() if line.strip().startswith("ownership ")]
        assert len(examples) >= 2, text  # each example is a line of its own


def test_check_help_lists_every_config_of_every_spec(capsys):
    text = _help(capsys, ["check"])
    for manifest in sorted(SPEC.glob("*.json")):
        if manifest.name == "manifest.json":
            continue
        configs = json.loads(manifest.read_text())["configs"]
        names = ", ".join(f"{n} (CI)" if c.get("ci") else n for n, c in configs.items())
        assert f"{manifest.stem}: {names}" in text


def test_help_text_drops_rest_markup():
    doc = """``ownership x``: does y.

::

    ownership x --a     # one
    ownership x --b     # two

Writes ``<out>/file``::

    more
"""
    assert help_text(doc) == (
        "ownership x: does y.\n\n\n    ownership x --a     # one\n    ownership x --b     # two\n\nWrites <out>/file:\n\n    more"
    )
