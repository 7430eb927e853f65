"""The TLC value parser and printer."""

from __future__ import annotations

import copy
import pickle
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ownership.tla.values import (
    ModelValue,
    TLAFunction,
    TLARecord,
    TLAValueSyntaxError,
    format_state,
    format_value,
    is_identifier,
    parse_state,
    parse_value,
)

# A state as TLC 2.15 printed it (copied from a real run on a fixture spec
# exercising every value form, including the forms that only TLC produces:
# ``<< >>``, intervals, string-domain functions printed as records).
TLC_STATE = r"""/\ a = "tab\there\nnl \"q\" back\\slash"
/\ b = -5
/\ c = {}
/\ d = << >>
/\ e = 1..3
/\ f = (0 :> 1 @@ 1 :> 2)
/\ g = [a |-> 1, b |-> 2]
/\ h = ({} :> m2 @@ {1} :> m1)
/\ i = {<<TRUE, TRUE>>}
/\ j = {{}, {1}, {2}, {1, 2}}
/\ k = <<1, <<>>, {<<>>}, [q |-> {}]>>
/\ l = (m1 :> <<"x">>)
/\ n = <<2, 4>>
/\ o = (2 :> "x" @@ 3 :> "y")
/\ p = (FALSE :> 0 @@ TRUE :> 1)
/\ q = {m1, m2}
/\ r = -3..-1
/\ y = ( 3 :> 3 @@
  4 :> 4 @@
  40 :> 40 )
"""


def test_parse_state_every_tlc_form() -> None:
    m1, m2 = ModelValue("m1"), ModelValue("m2")
    assert parse_state(TLC_STATE) == {
        "a": 'tab\there\nnl "q" back\\slash',
        "b": -5,
        "c": frozenset(),
        "d": (),
        "e": frozenset({1, 2, 3}),
        "f": TLAFunction({0: 1, 1: 2}),
        "g": TLARecord(a=1, b=2),
        "h": TLAFunction({frozenset(): m2, frozenset({1}): m1}),
        "i": frozenset({(True, True)}),
        "j": frozenset({frozenset(), frozenset({1}), frozenset({2}), frozenset({1, 2})}),
        "k": (1, (), frozenset({()}), TLARecord(q=frozenset())),
        "l": TLAFunction({m1: ("x",)}),
        "n": (2, 4),
        "o": TLAFunction({2: "x", 3: "y"}),
        "p": TLAFunction({False: 0, True: 1}),
        "q": frozenset({m1, m2}),
        "r": frozenset({-3, -2, -1}),
        "y": TLAFunction({3: 3, 4: 4, 40: 40}),
    }


def test_parse_state_types_are_exact() -> None:
    state = parse_state(TLC_STATE)
    assert type(state["g"]) is TLARecord
    assert type(state["f"]) is TLAFunction
    assert type(state["d"]) is tuple
    first = next(iter(state["i"]))
    assert first == (True, True) and all(type(x) is bool for x in first)
    assert all(type(k) is bool for k in state["p"])


def test_parse_state_single_variable_without_conjunction() -> None:
    assert parse_state("hour = 2\n") == {"hour": 2}


def test_parse_state_empty_text_is_empty_state() -> None:
    assert parse_state("  \n") == {}


def test_parse_value_function_on_one_to_n_is_a_sequence() -> None:
    assert parse_value('(2 :> "b" @@ 1 :> "a")') == ("a", "b")


def test_parse_value_string_domain_function_is_a_record() -> None:
    value = parse_value('("a b" :> 1 @@ "c" :> 2)')
    assert type(value) is TLARecord and value == {"a b": 1, "c": 2}


def test_parse_value_empty_function_constructor() -> None:
    assert parse_value(r"[x \in {} |-> 0]") == ()


def test_parse_value_interval_empty_when_reversed() -> None:
    assert parse_value("3..1") == frozenset()


def test_record_equals_function_with_same_items() -> None:
    record = TLARecord(a=1)
    function = TLAFunction({"a": 1})
    assert record == function == {"a": 1}
    assert hash(record) == hash(function)
    assert len({record, function}) == 1


def test_record_mutation_rejected() -> None:
    record = TLARecord(a=1)
    with pytest.raises(TypeError, match="immutable"):
        record["a"] = 2  # type: ignore[index]
    with pytest.raises(TypeError, match="immutable"):
        record.update(b=2)
    assert record == {"a": 1}


def test_record_pickle_and_copy_roundtrip() -> None:
    value = TLARecord(a=TLAFunction({ModelValue("p"): frozenset({1})}))
    assert pickle.loads(pickle.dumps(value)) == value
    assert type(pickle.loads(pickle.dumps(value))) is TLARecord
    assert copy.deepcopy(value) == value


def test_model_value_is_frozen() -> None:
    mv = ModelValue("p1")
    with pytest.raises(AttributeError):
        mv.name = "p2"  # type: ignore[misc]
    assert str(mv) == "p1"


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        ("{1, 2", "expected '}' or ','", 1, 6),
        ("[a |-> ]", "expected a value, found ']'", 1, 8),
        ("(1 :> 2 @@ 1 :> 3)", "function argument 1 appears twice", 1, 12),
        ('"abc', "unterminated string", 1, 1),
        ("<<1 2>>", "expected '>>' or ','", 1, 5),
        ("[a |-> 1,\n b => 2]", "unexpected character '>'", 2, 5),
        ('"a\\qb"', "unknown escape", 1, 3),
        ("[a |-> 1, a |-> 2]", "field 'a' appears twice", 1, 11),
        ("{1} 2", "unexpected '2' after the value", 1, 5),
        ("", "expected a value, found end of input", 1, 1),
        ("1..x", "expected an integer after '..'", 1, 4),
        (r"[x \in {1} |-> 0]", "is a value only when S is {}", 1, 8),
    ],
)
def test_parse_value_bad_input_reports_position(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(TLAValueSyntaxError) as info:
        parse_value(text)
    assert message in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)


def test_parse_state_duplicate_variable_rejected() -> None:
    with pytest.raises(TLAValueSyntaxError, match="variable 'x' appears twice") as info:
        parse_state("/\\ x = 1\n/\\ x = 2")
    assert info.value.line == 2


def test_parse_state_missing_equals_rejected() -> None:
    with pytest.raises(TLAValueSyntaxError, match="expected '=' after variable 'x'"):
        parse_state("/\\ x 1")


def test_format_value_model_value_must_be_identifier() -> None:
    with pytest.raises(ValueError, match="not a TLA\\+ identifier"):
        format_value(ModelValue("not one"))


def test_format_value_unknown_type_rejected() -> None:
    with pytest.raises(TypeError, match="no TLA\\+ value for float"):
        format_value(1.5)


def test_format_value_sets_print_in_stable_order() -> None:
    assert format_value(frozenset({3, 1, 2})) == "{1, 2, 3}"
    assert format_value(frozenset({frozenset({1, 2}), frozenset(), frozenset({2})})) == "{{}, {2}, {1, 2}}"
    assert format_value(TLAFunction({ModelValue("b"): 1, ModelValue("a"): 2})) == "(a :> 2 @@ b :> 1)"


def test_format_state_reads_back() -> None:
    state = parse_state(TLC_STATE)
    assert parse_state(format_state(state)) == state


# ---------------------------------------------------------------------------
# Round trip over generated values
# ---------------------------------------------------------------------------

identifiers = st.from_regex(r"[a-z][a-zA-Z0-9_]{0,6}", fullmatch=True).filter(is_identifier)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=8),
    identifiers.map(ModelValue),
)


def _not_a_sequence(mapping: dict[Any, Any]) -> bool:
    # A function on 1..n (or the empty function) *is* a sequence in TLA+.
    keys = list(mapping)
    return bool(keys) and not (
        all(type(k) is int for k in keys) and set(keys) == set(range(1, len(keys) + 1))
    )


def _build(kind: str, entries: list[tuple[str, Any, Any]]) -> Any:
    if kind == "sequence":
        return tuple(e[1] for e in entries)
    if kind == "set":
        return frozenset(e[1] for e in entries)
    if kind == "record":
        return TLARecord({e[0]: e[1] for e in entries})
    return TLAFunction({e[1]: e[2] for e in entries})


def _valid(value: Any) -> bool:
    if type(value) is TLARecord:
        return bool(value)
    if type(value) is TLAFunction:
        return _not_a_sequence(value)
    return True


def _composites(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # Each child strategy appears in here once (twice in the tuple): a repr
    # that grows with every recursion level would trip Hypothesis' warning.
    entries = st.lists(st.tuples(identifiers, children, children), max_size=4)
    kinds = st.sampled_from(["sequence", "set", "record", "function"])
    return st.builds(_build, kinds, entries).filter(_valid)


values = st.recursive(scalars, _composites, max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(values)
def test_format_then_parse_roundtrip(value: Any) -> None:
    text = format_value(value)
    parsed = parse_value(text)
    assert parsed == value
    # Printing again catches type confusions that == forgives (TRUE vs 1).
    assert format_value(parsed) == text


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(identifiers, values, max_size=4))
def test_format_state_then_parse_roundtrip(state: dict[str, Any]) -> None:
    assert parse_state(format_state(state)) == state


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable, max_size=30))
def test_parse_value_garbage_raises_only_syntax_error(text: str) -> None:
    try:
        parse_value(text)
    except TLAValueSyntaxError as exc:
        assert 1 <= exc.column and 1 <= exc.line <= text.count("\n") + 1
