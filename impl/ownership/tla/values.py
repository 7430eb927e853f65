"""TLA+ values as TLC prints them, and their Python counterparts.

=================  =====================================  =========================
TLA+               TLC prints                             Python
=================  =====================================  =========================
record             ``[a |-> 1, b |-> "x"]``               :class:`TLARecord`
function           ``(p1 :> 0 @@ p2 :> 1)``               :class:`TLAFunction`
sequence / tuple   ``<<1, 2>>`` (any function on 1..n)    ``tuple``
empty function     ``<<>>``, ``<< >>``                    ``()``
set                ``{1, 2}``, interval ``1..3``          ``frozenset``
string             ``"a\\"b"``                            ``str``
integer            ``-5``                                 ``int``
boolean            ``TRUE`` / ``FALSE``                   ``bool``
model value        ``p1``                                 :class:`ModelValue`
=================  =====================================  =========================

Records and functions are both TLA+ functions; TLC prints a function whose
domain is all strings as a record and one whose domain is ``1..n`` as a
sequence, and :func:`parse_value` normalises the same way, so equal TLA+
values give equal Python values. ``TLARecord`` and ``TLAFunction`` are
immutable, hashable ``dict`` subclasses (they can be set elements and
function keys) and compare equal to each other and to plain dicts with the
same items, as the TLA+ values do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import attrs

__all__ = [
    "ModelValue",
    "TLARecord",
    "TLAFunction",
    "TLAValueSyntaxError",
    "parse_value",
    "parse_state",
    "format_value",
    "format_state",
    "is_identifier",
    "function_value",
    "sort_key",
]


@attrs.frozen(order=True, repr=False)
class ModelValue:
    """A TLC model value (an uninterpreted constant such as ``p1``).

    ``type`` is the uninterpreted type Apalache gives it (``PROC`` for
    ``"p1_OF_PROC"`` in an ITF trace); it takes no part in equality, because
    TLC has no such types and the same constant must compare equal whichever
    checker produced it.
    """

    name: str
    type: str | None = attrs.field(default=None, eq=False, order=False)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        if self.type is None:
            return f"ModelValue({self.name!r})"
        return f"ModelValue({self.name!r}, type={self.type!r})"


class _FrozenDict(dict):
    """A ``dict`` that refuses mutation and hashes by its items."""

    __slots__ = ("_hash",)

    def __hash__(self) -> int:  # type: ignore[override]
        try:
            return self._hash
        except AttributeError:
            # Same formula in both subclasses: equal TLA+ functions hash equal.
            self._hash = hash(frozenset(self.items()))
            return self._hash

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is immutable; build a new one instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _immutable
    __ior__ = _immutable

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> _FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _FrozenDict:
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


class TLARecord(_FrozenDict):
    """A TLA+ record: a function from field names (strings) to values."""

    __slots__ = ()


class TLAFunction(_FrozenDict):
    """A TLA+ function whose domain is neither ``1..n`` nor all strings."""

    __slots__ = ()


class TLAValueSyntaxError(ValueError):
    """Text that is not a TLC value; ``line``/``column`` are 1-based."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.message = message
        self.text = text
        self.position = position
        self.line = text.count("\n", 0, position) + 1
        line_start = text.rfind("\n", 0, position) + 1
        self.column = position - line_start + 1
        line_end = text.find("\n", position)
        source_line = text[line_start : line_end if line_end != -1 else len(text)]
        super().__init__(
            f"{message} at line {self.line}, column {self.column}:\n"
            f"    {source_line}\n    {' ' * (self.column - 1)}^"
        )


_IDENTIFIER = re.compile(r"[A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = frozenset({"TRUE", "FALSE"})


def is_identifier(name: str) -> bool:
    """True when ``name`` can stand bare in TLA+ (a record field, a model value)."""
    return bool(_IDENTIFIER.fullmatch(name)) and name not in _RESERVED


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>")
  | (?P<ident>[A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*)
  | (?P<int>-?[0-9]+)
  | (?P<punct><<|>>|\|->|:>|@@|\.\.|/\\|\\in|[{}\[\](),=])
    """,
    re.VERBOSE,
)
_STRING_BODY = re.compile(r'[^"\\]*')
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "f": "\f"}
_EOF = "end of input"


class _Token:
    __slots__ = ("kind", "text", "value", "pos")

    def __init__(self, kind: str, text: str, value: Any, pos: int) -> None:
        self.kind = kind  # "ident" | "int" | "string" | "punct" | "eof"
        self.text = text
        self.value = value
        self.pos = pos

    def describe(self) -> str:
        return _EOF if self.kind == "eof" else repr(self.text)


def _read_string(text: str, start: int) -> tuple[str, int]:
    """Read the string literal whose opening quote is at ``start``."""
    parts: list[str] = []
    pos = start + 1
    while True:
        m = _STRING_BODY.match(text, pos)
        parts.append(m.group())
        pos = m.end()
        if pos >= len(text):
            raise TLAValueSyntaxError("unterminated string", text, start)
        if text[pos] == '"':
            return "".join(parts), pos + 1
        # A backslash: TLC prints only these escapes.
        escaped = text[pos + 1 : pos + 2]
        if escaped not in _ESCAPES:
            raise TLAValueSyntaxError(f"unknown escape '\\{escaped}' in string", text, pos)
        parts.append(_ESCAPES[escaped])
        pos += 2


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise TLAValueSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = m.lastgroup
        if kind == "ws":
            pos = m.end()
            continue
        if kind == "string":
            value, end = _read_string(text, pos)
            tokens.append(_Token("string", text[pos:end], value, pos))
            pos = end
            continue
        tok = m.group()
        if kind == "int":
            tokens.append(_Token("int", tok, int(tok), pos))
        else:
            tokens.append(_Token(kind, tok, tok, pos))  # type: ignore[arg-type]
        pos = m.end()
    tokens.append(_Token("eof", "", None, n))
    return tokens


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return type(v) is int  # bool is an int subclass but a different TLA+ type


def function_value(pairs: Iterable[tuple[Any, Any]]) -> Any:
    """The Python value of a TLA+ function, normalised as TLC prints it."""
    mapping = dict(pairs)
    if not mapping:
        return ()
    keys = mapping.keys()
    if all(_is_int(k) for k in keys) and set(keys) == set(range(1, len(mapping) + 1)):
        return tuple(mapping[i] for i in range(1, len(mapping) + 1))
    if all(isinstance(k, str) for k in keys):
        return TLARecord(mapping)
    return TLAFunction(mapping)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def fail(self, message: str, token: _Token | None = None) -> NoReturn:
        token = token or self.tok
        raise TLAValueSyntaxError(message, self.text, token.pos)

    def at(self, text: str) -> bool:
        return self.tok.kind == "punct" and self.tok.text == text

    def expect(self, text: str, context: str) -> _Token:
        if not self.at(text):
            self.fail(f"expected '{text}' {context}, found {self.tok.describe()}")
        token = self.tok
        self.i += 1
        return token

    def end(self) -> None:
        if self.tok.kind != "eof":
            self.fail(f"unexpected {self.tok.describe()} after the value")

    def value(self) -> Any:
        tok = self.tok
        if tok.kind == "int":
            self.i += 1
            if self.at(".."):
                self.i += 1
                upper = self.tok
                if upper.kind != "int":
                    self.fail(f"expected an integer after '..', found {upper.describe()}")
                self.i += 1
                return frozenset(range(tok.value, upper.value + 1))
            return tok.value
        if tok.kind == "string":
            self.i += 1
            return tok.value
        if tok.kind == "ident":
            self.i += 1
            if tok.text == "TRUE":
                return True
            if tok.text == "FALSE":
                return False
            return ModelValue(tok.text)
        if tok.kind == "punct":
            if tok.text == "{":
                return self.set_()
            if tok.text == "<<":
                return self.sequence()
            if tok.text == "[":
                return self.record()
            if tok.text == "(":
                return self.function()
        self.fail(f"expected a value, found {tok.describe()}")

    def items(self, close: str, what: str) -> list[Any]:
        """Comma-separated values up to ``close`` (the opener is consumed)."""
        out: list[Any] = []
        if self.at(close):
            self.i += 1
            return out
        while True:
            out.append(self.value())
            if self.at(","):
                self.i += 1
                continue
            self.expect(close, f"or ',' in {what}")
            return out

    def set_(self) -> frozenset[Any]:
        self.i += 1
        return frozenset(self.items("}", "a set"))

    def sequence(self) -> tuple[Any, ...]:
        self.i += 1
        return tuple(self.items(">>", "a sequence"))

    def record(self) -> Any:
        self.i += 1
        fields: dict[str, Any] = {}
        if self.tok.kind == "ident" and self.tokens[self.i + 1].text == "\\in":
            return self.empty_function_constructor()
        while True:
            name_tok = self.tok
            if name_tok.kind != "ident" or name_tok.text in _RESERVED:
                self.fail(f"expected a record field name, found {name_tok.describe()}")
            self.i += 1
            self.expect("|->", f"after record field {name_tok.text!r}")
            if name_tok.text in fields:
                self.fail(f"record field {name_tok.text!r} appears twice", name_tok)
            fields[name_tok.text] = self.value()
            if self.at(","):
                self.i += 1
                continue
            if self.at("]"):
                self.i += 1
                break
            self.fail(f"expected ',' or ']' in a record, found {self.tok.describe()}")
        return TLARecord(fields)

    def empty_function_constructor(self) -> tuple[()]:
        # ``[x \in {} |-> e]``: the only function-constructor form a value can
        # take, since any other domain would have been enumerated by TLC.
        self.i += 2
        domain_tok = self.tok
        domain = self.value()
        if domain != frozenset():
            self.fail("a function constructor '[x \\in S |-> e]' is a value only when S is {}", domain_tok)
        self.expect("|->", "in the function constructor")
        self.value()
        self.expect("]", "closing the function constructor")
        return ()

    def function(self) -> Any:
        self.i += 1
        first = self.value()
        if self.at(")"):  # a parenthesised value
            self.i += 1
            return first
        pairs: dict[Any, Any] = {}
        key, key_tok = first, self.tokens[self.i - 1]
        while True:
            self.expect(":>", "between a function's argument and its value")
            if key in pairs:
                self.fail(f"function argument {format_value(key)} appears twice", key_tok)
            pairs[key] = self.value()
            if self.at("@@"):
                self.i += 1
                key_tok = self.tok
                key = self.value()
                continue
            self.expect(")", "or '@@' in a function")
            return function_value(pairs.items())

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        while self.tok.kind != "eof":
            if self.at("/\\"):
                self.i += 1
            name_tok = self.tok
            if name_tok.kind != "ident" or name_tok.text in _RESERVED:
                self.fail(f"expected a variable name, found {name_tok.describe()}")
            self.i += 1
            self.expect("=", f"after variable {name_tok.text!r}")
            if name_tok.text in state:
                self.fail(f"variable {name_tok.text!r} appears twice in the state", name_tok)
            state[name_tok.text] = self.value()
        return state


def parse_value(text: str) -> Any:
    """Parse one value printed by TLC into its Python counterpart."""
    parser = _Parser(text)
    value = parser.value()
    parser.end()
    return value


def parse_state(text: str) -> dict[str, Any]:
    """Parse a state as TLC prints it: ``/\\ var = value`` per variable.

    A spec with one variable prints ``var = value`` without the conjunction;
    values may span several lines.
    """
    return _Parser(text).state()


# ---------------------------------------------------------------------------
# Printer
# ---------------------------------------------------------------------------

_UNESCAPES = {v: "\\" + k for k, v in _ESCAPES.items()}
_NEEDS_ESCAPE = re.compile(r'["\\\n\t\r\f]')


def _format_string(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _UNESCAPES[m.group()], s) + '"'


def sort_key(v: Any) -> tuple[Any, ...]:
    """A total order over values so that sets and functions print stably."""
    if isinstance(v, bool):
        return (0, v)
    if isinstance(v, int):
        return (1, v)
    if isinstance(v, str):
        return (2, v)
    if isinstance(v, ModelValue):
        return (3, v.name)
    if isinstance(v, (tuple, list)):
        return (4, len(v), tuple(sort_key(x) for x in v))
    if isinstance(v, (frozenset, set)):
        return (5, len(v), tuple(sorted(sort_key(x) for x in v)))
    if isinstance(v, Mapping):
        return (6, len(v), tuple(sorted((sort_key(k), sort_key(x)) for k, x in v.items())))
    raise TypeError(f"no TLA+ value for {type(v).__name__} {v!r}")


def format_value(v: Any) -> str:
    """Print ``v`` in TLC's value syntax; :func:`parse_value` reads it back."""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _format_string(v)
    if isinstance(v, ModelValue):
        if not is_identifier(v.name):
            raise ValueError(f"model value name {v.name!r} is not a TLA+ identifier")
        return v.name
    if isinstance(v, (tuple, list)):
        return "<<" + ", ".join(format_value(x) for x in v) + ">>"
    if isinstance(v, (frozenset, set)):
        return "{" + ", ".join(format_value(x) for x in sorted(v, key=sort_key)) + "}"
    if isinstance(v, Mapping):
        if not v:
            return "<<>>"
        keys = list(v.keys())
        if all(_is_int(k) for k in keys) and set(keys) == set(range(1, len(keys) + 1)):
            return "<<" + ", ".join(format_value(v[i]) for i in range(1, len(keys) + 1)) + ">>"
        if all(isinstance(k, str) and is_identifier(k) for k in keys):
            return "[" + ", ".join(f"{k} |-> {format_value(x)}" for k, x in v.items()) + "]"
        pairs = sorted(v.items(), key=lambda kv: sort_key(kv[0]))
        return "(" + " @@ ".join(f"{format_value(k)} :> {format_value(x)}" for k, x in pairs) + ")"
    raise TypeError(f"no TLA+ value for {type(v).__name__} {v!r}")


def format_state(state: Mapping[str, Any]) -> str:
    """Print a state as TLC does: one ``/\\ var = value`` line per variable."""
    for name in state:
        if not is_identifier(name):
            raise ValueError(f"variable name {name!r} is not a TLA+ identifier")
    return "\n".join(f"/\\ {name} = {format_value(value)}" for name, value in state.items())
