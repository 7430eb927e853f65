"""ITF traces: encoding, round trips, and malformed files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ownership.tla.itf import (
    DEFAULT_MODEL_VALUE_TYPE,
    ITFFormatError,
    ITFTrace,
    decode_value,
    dump_itf,
    dumps_itf,
    encode_value,
    load_itf,
    loads_itf,
)
from ownership.tla.values import ModelValue, TLAFunction, TLARecord, is_identifier

# Shaped like Apalache's output (Apalache itself is not installed here).
APALACHE_STYLE = {
    "#meta": {"format": "ITF", "source": "MC.tla", "description": "Created by Apalache"},
    "params": [],
    "vars": ["count", "msgs", "pending", "seq"],
    "states": [
        {
            "#meta": {"index": 0},
            "count": {"#map": [["p1_OF_PROC", {"#bigint": "0"}], ["p2_OF_PROC", {"#bigint": "-3"}]]},
            "msgs": {"#set": [{"type": "req", "src": "p1_OF_PROC"}]},
            "pending": {"#tup": [{"#bigint": "1"}, "x", True]},
            "seq": [],
        },
        {
            "#meta": {"index": 1, "action": "Send"},
            "count": {"#map": [[{"#bigint": "1"}, 5], [{"#bigint": "2"}, 6]]},
            "msgs": {"#set": []},
            "pending": {"tag": "None", "value": {}},
            "seq": [{"#bigint": "12345678901234567890123"}],
        },
    ],
    "loop": 0,
}


def test_load_apalache_style_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.itf.json"
    path.write_text(json.dumps(APALACHE_STYLE))
    trace = load_itf(path)
    p1, p2 = ModelValue("p1"), ModelValue("p2")
    assert trace.vars == ("count", "msgs", "pending", "seq")
    assert trace.loop == 0
    first, second = trace.states
    assert first["count"] == TLAFunction({p1: 0, p2: -3})
    assert next(iter(first["count"])).type == "PROC"
    assert first["msgs"] == frozenset({TLARecord(type="req", src=p1)})
    assert first["pending"] == (1, "x", True)
    assert first["seq"] == ()
    # A #map on 1..n is a sequence, as TLC prints it.
    assert second["count"] == (5, 6)
    assert second["pending"] == TLARecord(tag="None", value=())
    assert second["seq"] == (12345678901234567890123,)
    assert trace.state_meta == ({}, {"action": "Send"})
    assert trace.meta["source"] == "MC.tla"


def test_dumps_itf_encodings() -> None:
    trace = ITFTrace.from_states(
        [{"x": TLAFunction({ModelValue("p1"): frozenset({2, 1})}), "y": TLARecord(a=-1), "z": ("s", True)}],
        actions=["Init"],
        meta={"spec": "Counter"},
    )
    data = json.loads(dumps_itf(trace))
    assert data["#meta"]["format"] == "ITF" and data["#meta"]["spec"] == "Counter"
    assert data["vars"] == ["x", "y", "z"]
    assert data["states"] == [
        {
            "#meta": {"index": 0, "action": "Init"},
            "x": {"#map": [[f"p1_OF_{DEFAULT_MODEL_VALUE_TYPE}", {"#set": [{"#bigint": "1"}, {"#bigint": "2"}]}]]},
            "y": {"a": {"#bigint": "-1"}},
            "z": ["s", True],
        }
    ]
    assert "loop" not in data


def test_encode_value_model_value_keeps_its_type() -> None:
    assert encode_value(ModelValue("p1", type="PROC")) == "p1_OF_PROC"
    assert encode_value(ModelValue("p1"), model_value_type="NODE") == "p1_OF_NODE"


def test_encode_value_string_that_reads_as_model_value_rejected() -> None:
    with pytest.raises(ValueError, match="would read back as a model value"):
        encode_value("a_OF_B")


def test_encode_value_record_with_hash_key_uses_map() -> None:
    encoded = encode_value(TLARecord({"#x": 1}))
    assert encoded == {"#map": [["#x", {"#bigint": "1"}]]}
    assert decode_value(encoded) == TLARecord({"#x": 1})


def test_dump_itf_unencodable_value_names_state_and_variable(tmp_path: Path) -> None:
    trace = ITFTrace.from_states([{"x": 1}, {"x": 1.5}])
    with pytest.raises(ValueError, match="state 1, variable 'x'"):
        dump_itf(trace, tmp_path / "t.itf.json")


def test_itf_trace_rejects_inconsistent_states() -> None:
    with pytest.raises(ValueError, match="state 1 has variables"):
        ITFTrace(("x",), ({"x": 1}, {"y": 2}))
    with pytest.raises(ValueError, match="loop 2 is not the index"):
        ITFTrace(("x",), ({"x": 1},), loop=2)


def _bad(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(APALACHE_STYLE))
    for key, value in changes.items():
        data[key] = value
    return data


def _bad_state(index: int, var: str, value: Any) -> dict[str, Any]:
    data = _bad()
    data["states"][index][var] = value
    return data


@pytest.mark.parametrize(
    ("data", "message", "where"),
    [
        ([1, 2], "must be a JSON object", ""),
        (_bad(vars="count"), "'vars' must be a list of strings", "vars"),
        (_bad(vars=["count", "count"]), "names a variable twice", "vars"),
        (_bad(states={"a": 1}), "'states' must be a list", "states"),
        (_bad(loop=7), "loop must be the index of a state", "loop"),
        (_bad(extra=1), "unknown top-level fields ['extra']", ""),
        ({"vars": []}, "missing 'states'", ""),
        (_bad_state(1, "count", {"#bigint": "12x"}), "#bigint must be a string of decimal digits", "states[1].count.#bigint"),
        (_bad_state(0, "count", {"#map": [["p1_OF_PROC"]]}), "#map entry must be a [key, value] pair", "states[0].count.#map[0]"),
        (
            _bad_state(0, "count", {"#map": [[{"#bigint": "1"}, 1], [1, 2]]}),
            "#map has this key twice",
            "states[0].count.#map[1][0]",
        ),
        (_bad_state(1, "msgs", {"#set": {"a": 1}}), "#set must be a list", "states[1].msgs.#set"),
        (_bad_state(1, "msgs", {"#set": [], "x": 1}), "must have no other keys", "states[1].msgs"),
        (_bad_state(1, "msgs", {"#frob": []}), "unknown ITF encoding '#frob'", "states[1].msgs.#frob"),
        (_bad_state(0, "seq", [1.5]), "number 1.5 is not an integer", "states[0].seq[0]"),
        (_bad_state(0, "seq", None), "null is not an ITF value", "states[0].seq"),
        (_bad_state(0, "seq", {"#unserializable": "Nat"}), "could not be serialised", "states[0].seq.#unserializable"),
        (_bad_state(0, "ghost", 1), "variables ['ghost'] are not declared", "states[0]"),
        (_bad_state(1, "#meta", {"index": 5}), "#meta.index is 5 but the state is number 1", "states[1].#meta.index"),
        (_bad_state(0, "#meta", [1]), "'#meta' must be an object", "states[0].#meta"),
    ],
)
def test_loads_itf_malformed_says_what_and_where(data: Any, message: str, where: str) -> None:
    with pytest.raises(ITFFormatError) as info:
        loads_itf(json.dumps(data), source="bad.itf.json")
    assert message in info.value.message
    assert info.value.where == where
    assert str(info.value).startswith("bad.itf.json: ")


def test_loads_itf_missing_variable_value() -> None:
    data = _bad()
    del data["states"][1]["msgs"]
    with pytest.raises(ITFFormatError, match=r"variables \['msgs'\] have no value at states\[1\]"):
        loads_itf(json.dumps(data))


def test_loads_itf_not_json() -> None:
    with pytest.raises(ITFFormatError, match="not JSON.*line 1"):
        loads_itf("{'vars': }")


def test_loads_itf_duplicate_json_key() -> None:
    with pytest.raises(ITFFormatError, match="key 'x' twice"):
        loads_itf('{"vars": ["x"], "states": [{"x": true, "x": false}]}')


# ---------------------------------------------------------------------------
# Round trips over generated values and traces
# ---------------------------------------------------------------------------

identifiers = st.from_regex(r"[a-z][a-zA-Z0-9_]{0,6}", fullmatch=True).filter(is_identifier)
strings = st.text(max_size=8).filter(lambda s: "_OF_" not in s)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    strings,
    identifiers.map(ModelValue),
)


def _build(kind: str, entries: list[tuple[str, Any, Any]]) -> Any:
    if kind == "sequence":
        return tuple(e[1] for e in entries)
    if kind == "set":
        return frozenset(e[1] for e in entries)
    if kind == "record":
        return TLARecord({e[0]: e[1] for e in entries}) if entries else ()
    mapping = {e[1]: e[2] for e in entries}
    keys = list(mapping)
    if not keys or (all(type(k) is int for k in keys) and set(keys) == set(range(1, len(keys) + 1))):
        return tuple(mapping[i] for i in range(1, len(keys) + 1))
    return TLAFunction(mapping)


def _composites(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    entries = st.lists(st.tuples(identifiers, children, children), max_size=4)
    return st.builds(_build, st.sampled_from(["sequence", "set", "record", "function"]), entries)


values = st.recursive(scalars, _composites, max_leaves=16)


@settings(max_examples=60, deadline=None)
@given(values)
def test_encode_then_decode_roundtrip(value: Any) -> None:
    encoded = encode_value(value)
    decoded = decode_value(json.loads(json.dumps(encoded)))
    assert decoded == value
    assert encode_value(decoded) == encoded  # also catches TRUE/1 confusions


@st.composite
def traces(draw: st.DrawFn) -> ITFTrace:
    variables = draw(st.lists(identifiers, min_size=1, max_size=3, unique=True))
    states = draw(st.lists(st.fixed_dictionaries({v: values for v in variables}), min_size=1, max_size=3))
    loop = draw(st.none() | st.integers(min_value=0, max_value=len(states) - 1))
    actions = draw(st.lists(identifiers, min_size=len(states), max_size=len(states)))
    meta = draw(st.dictionaries(identifiers.filter(lambda k: k != "format"), st.text(max_size=5) | st.integers(), max_size=2))
    return ITFTrace.from_states(states, actions=actions, meta=meta, loop=loop)


@settings(max_examples=20, deadline=None)
@given(traces())
def test_dumps_then_loads_trace_roundtrip(trace: ITFTrace) -> None:
    read = loads_itf(dumps_itf(trace))
    assert read.meta.pop("format") == "ITF"
    read.meta.pop("format-description")
    assert read == trace
