"""Refresh the TLA+ text in the core's docstrings from ``spec/*.tla``.

Every core method that implements a spec action starts its docstring with
``Spec: <Module>!<Action>`` lines (the source of truth for the mapping),
followed by each action's TLA+ text and then, after an ``Implementation:``
line, prose about the code. This tool rewrites the TLA+ part from the
current specs, keeping the Spec lines and the prose:

    python -m ownership.core.specdoc            # rewrite in place
    python -m ownership.core.specdoc --check    # exit 1 if any is stale

It is a development tool: it reads ``spec/`` next to ``impl/``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

__all__ = ["action_text", "refresh", "main"]

CORE = Path(__file__).resolve().parent
SPEC_DIR = CORE.parent.parent.parent / "spec"
#: Modules outside the core that implement a spec's actions: the transport's
#: streams (spec/Resend.tla).
RUNTIME_IMPLEMENTING = ("resend.py", "tcp.py")
HEADER = re.compile(r"^([A-Z]\w*)(\([^)]*\))?\s*==")
METHOD = re.compile(r'^(?P<indent>[ ]+)(?P<prefix>r?)"""Spec: (?P<rest>.*?)"""', re.S | re.M)
ANNOTATION = re.compile(r"\\\* (impl|env|none):")


def action_text(spec_text: str, name: str) -> list[str] | None:
    """The definition of ``name``: header and body, boxed comments and impl lines dropped."""
    lines = spec_text.splitlines()
    for i, line in enumerate(lines):
        m = HEADER.match(line)
        if not (m and m.group(1) == name):
            continue
        out = [line.rstrip()]
        in_box = False
        for body in lines[i + 1 :]:
            if body.strip() and not body.startswith((" ", "\t")):
                break
            s = body.strip()
            if s.startswith("(*"):
                in_box = not s.endswith("*)") or s == "(*"
                continue
            if in_box:
                in_box = not s.endswith("*)")
                continue
            if ANNOTATION.match(s):
                continue
            out.append(body.rstrip())
        while out and not out[-1].strip():
            out.pop()
        return out
    return None


def _render(indent: str, actions: list[tuple[str, str]], prose: list[str], specs: dict[str, str]) -> str:
    new = []
    for i, (mod, act) in enumerate(actions):
        new.append(f"Spec: {mod}!{act}" if i == 0 else f"{indent}Spec: {mod}!{act}")
    for mod, act in actions:
        text = action_text(specs.get(mod, ""), act)
        if text is None:
            raise SystemExit(f"{mod}!{act} is named in a docstring but not defined in spec/{mod}.tla")
        new.append("")
        new.append(f"{indent}    \\* {mod}")
        new.extend(f"{indent}    {t}" if t.strip() else "" for t in text)
    new += ["", f"{indent}Implementation:", ""]
    new.extend(prose)
    new.append(indent)
    return f'{indent}r"""' + "\n".join(new) + '"""'


def refresh(source: str, specs: dict[str, str]) -> str:
    """One module's source with every Spec docstring's TLA+ text refreshed."""

    def rewrite(m: re.Match[str]) -> str:
        indent = m.group("indent")
        lines = ("Spec: " + m.group("rest")).split("\n")
        actions = []
        k = 0
        while k < len(lines) and lines[k].strip().startswith("Spec:"):
            mod, _, act = lines[k].strip()[len("Spec:") :].strip().partition("!")
            actions.append((mod, act))
            k += 1
        marker = [i for i, line in enumerate(lines) if line.strip() == "Implementation:"]
        prose = lines[marker[0] + 1 :] if marker else lines[k:]
        while prose and not prose[-1].strip():
            prose.pop()
        while prose and not prose[0].strip():
            prose.pop(0)
        return _render(indent, actions, prose, specs)

    return METHOD.sub(rewrite, source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ownership.core.specdoc", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale docstrings")
    args = parser.parse_args(argv)
    specs = {p.stem: p.read_text() for p in sorted(SPEC_DIR.glob("*.tla"))}
    stale = []
    for path in [*sorted(CORE.glob("*.py")), *(CORE.parent / "runtime" / name for name in RUNTIME_IMPLEMENTING)]:
        old = path.read_text()
        new = refresh(old, specs)
        if new != old:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    verb = "stale" if args.check else "refreshed"
    print(f"{verb}: {', '.join(stale) if stale else 'none'}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
