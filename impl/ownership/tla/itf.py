"""ITF traces (Apalache ADR-015, the Informal Trace Format), read and written.

A trace is a JSON object ``{"#meta": {...}, "params": [...], "vars": [...],
"states": [...], "loop": i}``; each state is ``{"#meta": {"index": i, ...},
"<var>": value, ...}``. Values are encoded as follows, and convert to and
from the Python values of :mod:`ownership.tla.values`:

=======================  ======================================  ======================
ITF                      example                                 Python
=======================  ======================================  ======================
boolean, string          ``true``, ``"x"``                       ``bool``, ``str``
integer                  ``{"#bigint": "-12"}`` (or a JSON int)  ``int``
sequence                 ``[1, 2]``                              ``tuple``
tuple                    ``{"#tup": [1, "a"]}``                  ``tuple``
set                      ``{"#set": [...]}``                     ``frozenset``
function                 ``{"#map": [[k, v], ...]}``             :class:`TLAFunction`
record (and variant)     ``{"a": 1}``                            :class:`TLARecord`
model value              ``"p1_OF_PROC"``                        ``ModelValue("p1", type="PROC")``
=======================  ======================================  ======================

Model values follow Apalache's convention: the string ``<name>_OF_<TYPE>``
(``TYPE`` an upper-case identifier) is the constant ``name`` of the
uninterpreted type ``TYPE``; any other string is a string. A model value
without a type (TLC has none) is written with :data:`DEFAULT_MODEL_VALUE_TYPE`.
Functions are normalised as TLC prints them: a function on ``1..n`` reads
as a sequence, one on strings as a record, so a trace read from ITF compares
equal to the same trace parsed from TLC.

Reading validates the whole file: anything malformed raises
:class:`ITFFormatError` naming the state index, the variable and the place
inside the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from .values import ModelValue, TLARecord, function_value, sort_key

__all__ = [
    "DEFAULT_MODEL_VALUE_TYPE",
    "ITFFormatError",
    "ITFTrace",
    "decode_value",
    "dump_itf",
    "dumps_itf",
    "encode_value",
    "load_itf",
    "loads_itf",
]

#: The uninterpreted type written for a model value that has none.
DEFAULT_MODEL_VALUE_TYPE = "MODEL"

_MODEL_VALUE = re.compile(r"\A([A-Za-z0-9_]*[A-Za-z_][A-Za-z0-9_]*)_OF_([A-Z][A-Z0-9_]*)\Z")
_TYPE_NAME = re.compile(r"\A[A-Z][A-Z0-9_]*\Z")
_SPECIAL_KEYS = ("#bigint", "#tup", "#set", "#map", "#unserializable")


class ITFFormatError(ValueError):
    """A malformed ITF trace; ``where`` says where (``states[2].count.#map[0]``)."""

    def __init__(self, message: str, where: str = "", source: str | None = None) -> None:
        self.message = message
        self.where = where
        self.source = source
        prefix = f"{source}: " if source else ""
        location = f" at {where}" if where else ""
        super().__init__(f"{prefix}{message}{location}")


@attrs.frozen
class ITFTrace:
    """One behaviour: the variables' values in each state, in order.

    ``loop`` is the index of the state that follows the last one (a lasso),
    or ``None``. ``state_meta`` holds each state's ``#meta`` apart from
    ``index`` (which is always the position and is written back as such),
    e.g. the action that led to the state.
    """

    vars: tuple[str, ...]
    states: tuple[dict[str, Any], ...]
    meta: dict[str, Any] = attrs.field(factory=dict)
    params: tuple[str, ...] = ()
    loop: int | None = None
    state_meta: tuple[dict[str, Any], ...] = attrs.field()

    @state_meta.default
    def _no_state_meta(self) -> tuple[dict[str, Any], ...]:
        return tuple({} for _ in self.states)

    def __attrs_post_init__(self) -> None:
        if len(self.state_meta) != len(self.states):
            raise ValueError(f"{len(self.state_meta)} state_meta entries for {len(self.states)} states")
        if self.loop is not None and not 0 <= self.loop < len(self.states):
            raise ValueError(f"loop {self.loop} is not the index of a state (0..{len(self.states) - 1})")
        names = set(self.vars) | set(self.params)
        for i, state in enumerate(self.states):
            if set(state) - names or set(self.vars) - set(state):
                raise ValueError(
                    f"state {i} has variables {sorted(state)} but the trace declares {sorted(names)}"
                )

    @classmethod
    def from_states(
        cls,
        states: Iterable[Mapping[str, Any]],
        *,
        actions: Iterable[str] | None = None,
        meta: Mapping[str, Any] | None = None,
        loop: int | None = None,
    ) -> ITFTrace:
        """A trace of ``states``; ``actions`` (one per state) go into each
        state's ``#meta`` as ``action``."""
        states = tuple(dict(s) for s in states)
        variables = tuple(states[0]) if states else ()
        if actions is None:
            state_meta = tuple({} for _ in states)
        else:
            state_meta = tuple({"action": a} for a in actions)
        return cls(variables, states, dict(meta or {}), (), loop, state_meta)


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------


def encode_value(value: Any, *, model_value_type: str = DEFAULT_MODEL_VALUE_TYPE) -> Any:
    """The ITF JSON form of a Python TLA+ value."""

    def enc(v: Any) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, int):
            return {"#bigint": str(v)}
        if isinstance(v, str):
            if _MODEL_VALUE.match(v):
                raise ValueError(f"string {v!r} would read back as a model value (it has the form name_OF_TYPE)")
            return v
        if isinstance(v, ModelValue):
            type_name = v.type or model_value_type
            if not _TYPE_NAME.match(type_name):
                raise ValueError(f"model value type {type_name!r} is not an upper-case identifier")
            encoded = f"{v.name}_OF_{type_name}"
            match = _MODEL_VALUE.match(encoded)
            if match is None or match.group(1) != v.name:
                raise ValueError(f"model value name {v.name!r} cannot be written as name_OF_TYPE")
            return encoded
        if isinstance(v, (tuple, list)):
            return [enc(x) for x in v]
        if isinstance(v, (frozenset, set)):
            return {"#set": [enc(x) for x in sorted(v, key=sort_key)]}
        if isinstance(v, Mapping):
            normal = function_value(v.items())
            if isinstance(normal, tuple):
                return [enc(x) for x in normal]
            if isinstance(normal, TLARecord) and not any(k.startswith("#") for k in normal):
                return {k: enc(x) for k, x in normal.items()}
            pairs = sorted(normal.items(), key=lambda kv: sort_key(kv[0]))
            return {"#map": [[enc(k), enc(x)] for k, x in pairs]}
        raise TypeError(f"no ITF encoding for {type(v).__name__} {v!r}")

    return enc(value)


def decode_value(data: Any, where: str = "value", *, source: str | None = None) -> Any:
    """The Python TLA+ value of ITF JSON ``data``; ``where`` names it in errors."""

    def fail(message: str, at: str) -> Any:
        raise ITFFormatError(message, at, source)

    def dec(d: Any, at: str) -> Any:
        if isinstance(d, bool):
            return d
        if isinstance(d, int):
            return d  # ADR-015 allows plain JSON integers in the safe range
        if isinstance(d, str):
            m = _MODEL_VALUE.match(d)
            return ModelValue(m.group(1), type=m.group(2)) if m else d
        if isinstance(d, list):
            return tuple(dec(x, f"{at}[{i}]") for i, x in enumerate(d))
        if isinstance(d, dict):
            special = [k for k in d if k.startswith("#")]
            if special:
                key = special[0]
                if len(d) != 1:
                    fail(f"{key} object must have no other keys, found {sorted(d)}", at)
                return dec_special(key, d[key], f"{at}.{key}")
            # {} is the empty function (Quint writes a unit variant's value so).
            return function_value((k, dec(x, f"{at}.{k}")) for k, x in d.items())
        if isinstance(d, float):
            fail(f"number {d!r} is not an integer (use {{\"#bigint\": \"...\"}})", at)
        fail(f"{json.dumps(d)} is not an ITF value", at)

    def dec_special(key: str, body: Any, at: str) -> Any:
        if key == "#bigint":
            if not isinstance(body, str) or not re.fullmatch(r"-?[0-9]+", body):
                fail(f"#bigint must be a string of decimal digits, found {json.dumps(body)}", at)
            return int(body)
        if key == "#unserializable":
            fail(f"value could not be serialised by the checker ({body!r}): no Python value for it", at)
        if not isinstance(body, list):
            fail(f"{key} must be a list, found {type(body).__name__}", at)
        if key == "#tup":
            return tuple(dec(x, f"{at}[{i}]") for i, x in enumerate(body))
        if key == "#set":
            items = [dec(x, f"{at}[{i}]") for i, x in enumerate(body)]
            return frozenset(items)
        if key == "#map":
            pairs: dict[Any, Any] = {}
            for i, pair in enumerate(body):
                if not isinstance(pair, list) or len(pair) != 2:
                    fail("#map entry must be a [key, value] pair", f"{at}[{i}]")
                k = dec(pair[0], f"{at}[{i}][0]")
                if k in pairs:
                    fail("#map has this key twice", f"{at}[{i}][0]")
                pairs[k] = dec(pair[1], f"{at}[{i}][1]")
            return function_value(pairs.items())
        fail(f"unknown ITF encoding {key!r} (expected one of {', '.join(_SPECIAL_KEYS)})", at)

    return dec(data, where)


# ---------------------------------------------------------------------------
# Traces
# ---------------------------------------------------------------------------


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ITFFormatError(f"JSON object has the key {key!r} twice")
        out[key] = value
    return out


def _string_list(data: Any, field: str, source: str | None) -> tuple[str, ...]:
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise ITFFormatError(f"'{field}' must be a list of strings", field, source)
    if len(set(data)) != len(data):
        raise ITFFormatError(f"'{field}' names a variable twice", field, source)
    return tuple(data)


def loads_itf(text: str, *, source: str | None = None) -> ITFTrace:
    """Read an ITF trace from JSON text (``source`` names it in errors)."""
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except ITFFormatError as exc:
        raise ITFFormatError(exc.message, "", source) from None
    except json.JSONDecodeError as exc:
        raise ITFFormatError(f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", "", source) from None
    if not isinstance(data, dict):
        raise ITFFormatError("an ITF trace must be a JSON object", "", source)
    unknown = set(data) - {"#meta", "params", "vars", "states", "loop"}
    if unknown:
        raise ITFFormatError(f"unknown top-level fields {sorted(unknown)}", "", source)
    meta = data.get("#meta", {})
    if not isinstance(meta, dict):
        raise ITFFormatError("'#meta' must be an object", "#meta", source)
    if "vars" not in data:
        raise ITFFormatError("missing 'vars'", "", source)
    if "states" not in data:
        raise ITFFormatError("missing 'states'", "", source)
    variables = _string_list(data["vars"], "vars", source)
    params = _string_list(data.get("params", []), "params", source)
    if set(variables) & set(params):
        raise ITFFormatError(f"{sorted(set(variables) & set(params))} are both params and vars", "params", source)
    states_data = data["states"]
    if not isinstance(states_data, list):
        raise ITFFormatError("'states' must be a list", "states", source)

    states: list[dict[str, Any]] = []
    state_meta: list[dict[str, Any]] = []
    allowed = set(variables) | set(params)
    for i, state_data in enumerate(states_data):
        at = f"states[{i}]"
        if not isinstance(state_data, dict):
            raise ITFFormatError("a state must be an object", at, source)
        if not isinstance(state_data.get("#meta", {}), dict):
            raise ITFFormatError("'#meta' must be an object", f"{at}.#meta", source)
        smeta = dict(state_data.get("#meta", {}))
        if "index" in smeta:
            index = smeta.pop("index")
            if type(index) is not int or index != i:
                raise ITFFormatError(f"#meta.index is {json.dumps(index)} but the state is number {i}", f"{at}.#meta.index", source)
        names = [k for k in state_data if k != "#meta"]
        extra = [k for k in names if k not in allowed]
        if extra:
            raise ITFFormatError(f"variables {extra} are not declared in 'vars' or 'params'", at, source)
        missing = [v for v in variables if v not in state_data]
        if missing:
            raise ITFFormatError(f"variables {missing} have no value", at, source)
        states.append({name: decode_value(state_data[name], f"{at}.{name}", source=source) for name in names})
        state_meta.append(smeta)

    loop = data.get("loop")
    if loop is not None and (type(loop) is not int or not 0 <= loop < len(states)):
        raise ITFFormatError(
            f"loop must be the index of a state (0..{len(states) - 1}), found {json.dumps(loop)}", "loop", source
        )
    return ITFTrace(variables, tuple(states), meta, params, loop, tuple(state_meta))


def load_itf(path: Path | str) -> ITFTrace:
    """Read an ITF trace from a file."""
    path = Path(path)
    return loads_itf(path.read_text(encoding="utf-8"), source=str(path))


def _trace_json(trace: ITFTrace, model_value_type: str) -> dict[str, Any]:
    meta = {"format": "ITF", "format-description": "https://apalache-mc.org/docs/adr/015adr-trace.html", **trace.meta}
    out: dict[str, Any] = {"#meta": meta}
    if trace.params:
        out["params"] = list(trace.params)
    out["vars"] = list(trace.vars)
    states = []
    for i, (state, smeta) in enumerate(zip(trace.states, trace.state_meta)):
        encoded: dict[str, Any] = {"#meta": {"index": i, **smeta}}
        for name in (*trace.params, *trace.vars):
            if name in state:
                try:
                    encoded[name] = encode_value(state[name], model_value_type=model_value_type)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"state {i}, variable {name!r}: {exc}") from exc
        states.append(encoded)
    out["states"] = states
    if trace.loop is not None:
        out["loop"] = trace.loop
    return out


def dumps_itf(trace: ITFTrace, *, model_value_type: str = DEFAULT_MODEL_VALUE_TYPE, indent: int | None = 1) -> str:
    """The ITF JSON text of ``trace`` (stable: sets and maps sorted)."""
    return json.dumps(_trace_json(trace, model_value_type), indent=indent, ensure_ascii=False) + "\n"


def dump_itf(trace: ITFTrace, path: Path | str, *, model_value_type: str = DEFAULT_MODEL_VALUE_TYPE) -> None:
    """Write ``trace`` as an ITF file."""
    Path(path).write_text(dumps_itf(trace, model_value_type=model_value_type), encoding="utf-8")
