"""The fast decode path against the contract: the same events, the same refusals.

``Decoder(fast=False)`` is the v1 contract alone (pydantic's ``validate_json``); the
default decoder tries :mod:`pipeline.core.fast_decode` first. On every input generated
here (valid events, events at and just past every bound, wrong types, unknown and
duplicated fields, timestamps in and out of the one form the fast path vouches for,
byte-level damage) the two must give the same event, value for value and type for
type, or the same (reason, detail).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import BaseModel

from pipeline.core.decode import Decoder
from pipeline.core.fast_decode import MIRRORS, decode_fast
from pipeline.errors import DecodeError
from pipeline.generate import GeneratorConfig, generate

CONTRACT = Decoder(1 << 20, fast=False)
FAST = Decoder(1 << 20)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (-0.0 is not 0.0, an int is
    not a float, a tzinfo's class counts, a model's fields set and order count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, BaseModel):
        return (
            list(a.__dict__) == list(b.__dict__)
            and a.model_fields_set == b.model_fields_set
            and type(a.model_fields_set) is type(b.model_fields_set)
            and a.__pydantic_extra__ == b.__pydantic_extra__
            and a.__pydantic_private__ == b.__pydantic_private__
            and a == b
            and all(_same(a.__dict__[k], b.__dict__[k]) for k in a.__dict__)
            and a.model_dump_json(by_alias=True) == b.model_dump_json(by_alias=True)
        )
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, datetime):
        return (
            a == b
            and a.isoformat() == b.isoformat()
            and type(a.tzinfo) is type(b.tzinfo)
            and a.utcoffset() == b.utcoffset()
        )
    return bool(a == b)


def _outcome(decoder: Decoder, raw: bytes, kind: str | None) -> Any:
    try:
        return decoder.decode(raw, kind)
    except DecodeError as exc:
        return ("refused", exc.reason, exc.detail)


def _check(raw: bytes, kind: str | None) -> str:
    """Asserts the two paths agree; which path the event took (for the statistics)."""
    expected = _outcome(CONTRACT, raw, kind)
    got = _outcome(FAST, raw, kind)
    assert _same(got, expected), (raw, got, expected)
    if decode_fast(raw, kind) is not None:
        return f"kind={kind}: fast path"
    return f"kind={kind}: contract only, " + (
        expected[1] if isinstance(expected, tuple) else "valid"
    )


# -- a JSON writer that can write what json.dumps will not: raw number text, duplicated
# keys, lone surrogate escapes, either string escaping
class Raw(str):
    """Written as is (a number token, an escape)."""


def _dump(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs):
        return (
            "{" + ",".join(f"{_dump(k, ascii_only)}:{_dump(v, ascii_only)}" for k, v in value) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


class Pairs(list[tuple[str, Any]]):
    """A JSON object as written (keys may repeat)."""


# -- values: each field has a strategy of valid values (at and near the bounds) and a
# wild one (anything, mostly wrong); an event takes a few fields from the wild ones
BOUND = 1e100
_inside = [BOUND, -BOUND, 0.0, -0.0, 1.0, 5e-324, 0.5, -1.0]
_outside = [
    math.nextafter(BOUND, math.inf),
    math.nextafter(-BOUND, -math.inf),
    1.7976931348623157e308,
]
number = st.one_of(
    st.floats(min_value=-BOUND, max_value=BOUND),
    st.sampled_from(_inside),
    st.integers(-(10**3), 10**3),
    st.integers(-(10**99), 10**99),
    st.from_regex(
        r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,2})?", fullmatch=True
    ).map(Raw),
)
wild_number = st.one_of(
    number,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(_outside),
    st.integers(-(2**70), 2**70),
    st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,3})?", fullmatch=True).map(Raw),
    st.sampled_from(
        ["1e400", "-1e400", "NaN", "Infinity", "-0", "1E100", "1e-400", "01", "1."]
    ).map(Raw),
)
short_text = st.text(max_size=4)


def _long(lo: int, hi: int) -> st.SearchStrategy[str]:
    """Text of lo..hi characters (one repeated: long drawn text overruns hypothesis)."""
    return st.tuples(st.integers(lo, hi), st.sampled_from("a\u00e9\U0001f600")).map(
        lambda t: t[1] * t[0]
    )


name = st.one_of(
    st.text(min_size=1, max_size=4),
    _long(255, 256),
    st.sampled_from(["amount", "f0", "\u00e9", "\x00", "a\u2028b", "\U0001f600"]),
    st.sampled_from(['"\\u00e9"', '"\\/"', '"a\\"b"', '"\\ud83d\\ude00"']).map(Raw),
)
wild_name = st.one_of(
    name, st.just(""), _long(257, 258), st.sampled_from(['"\\ud800"', '"a\\udfff"']).map(Raw)
)
category = st.one_of(st.text(max_size=4), _long(1023, 1024), name)
wild_category = st.one_of(category, wild_name, _long(1025, 1026))
json_any = st.recursive(
    st.none() | st.booleans() | wild_number | short_text,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(short_text, inner, max_size=3).map(lambda d: Pairs(d.items()))
    ),
    max_leaves=6,
)
value = st.one_of(number, category, st.booleans(), st.none())
wild_value = st.one_of(value, wild_number, wild_category, json_any)
outcome = st.one_of(number, category, st.booleans())
wild_outcome = st.one_of(wild_value, st.none())
probability = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1, -0.0, 0.5]))
wild_probability = st.one_of(probability, wild_number, st.just(math.nextafter(1.0, 2.0)), json_any)


def _digits(n: int, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map(lambda v: str(v).zfill(n))


def _stamp(
    years: st.SearchStrategy[str],
    days: st.SearchStrategy[str],
    seps: st.SearchStrategy[str],
    clock: tuple[int, int, int],
    fractions: st.SearchStrategy[str],
    zones: st.SearchStrategy[str],
) -> st.SearchStrategy[str]:
    hour, minute, second = clock
    parts = (years, _digits(2, 1, 12) if clock[0] == 23 else _digits(2, 0, 13), days, seps)
    return st.tuples(
        *parts, _digits(2, 0, hour), _digits(2, 0, minute), _digits(2, 0, second), fractions, zones
    ).map(lambda p: "{}-{}-{}{}{}:{}:{}{}{}".format(*p))


_zone = st.from_regex(r"[+-](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9]", fullmatch=True)
stamp = _stamp(
    _digits(4, 1970, 2099) | st.sampled_from(["1970", "2099"]),
    _digits(2, 1, 31),
    st.just("T"),
    (23, 59, 59),
    st.sampled_from(["", ""]) | st.from_regex(r"\.[0-9]{1,6}", fullmatch=True),
    st.sampled_from(["Z", "Z", "+00:00", "-00:00"]) | _zone,
)
wild_stamp = st.one_of(
    stamp,
    _stamp(
        _digits(4, 1965, 2105) | _digits(4, 0, 9999),
        _digits(2, 0, 32),
        st.sampled_from(["T", "t", " ", "_"]),
        (24, 60, 61),
        st.sampled_from(["", "."]) | st.from_regex(r"\.[0-9]{0,8}", fullmatch=True),
        st.sampled_from(["Z", "z", "", "+00:00", "-00:00"])
        | st.from_regex(r"[+-](0[0-9]|1[0-9]|2[0-5]):[0-6][0-9]", fullmatch=True)
        | st.from_regex(r"[+-][0-9]{4}", fullmatch=True),
    ),
    st.sampled_from(["2026-01-01", "2026-01-01T00:00", "1767225600", "nonsense"]),
    st.integers(0, 2**33),
    json_any,
)


def _optional(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that may be absent (the marker ``...``), null or a value."""
    return st.one_of(st.just(...), st.none(), valid)


def _mapping(
    keys: st.SearchStrategy[Any], values: st.SearchStrategy[Any]
) -> st.SearchStrategy[Pairs]:
    return st.lists(st.tuples(keys, values), max_size=6).map(Pairs)


def _vector(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(values, max_size=5)


def _field(valid: st.SearchStrategy[Any], wild: st.SearchStrategy[Any]) -> tuple[Any, Any]:
    return valid, st.one_of(wild, json_any)


_names = _field(name, wild_name)
_stamps = _field(stamp, wild_stamp)
_vectors = _field(_optional(_vector(number)), _optional(_vector(wild_number)))


def _schema(tag: str) -> tuple[Any, Any]:
    wrong = [tag.replace("v1", "v2"), "driftline.label.v1", "driftline.feature.v1"]
    return st.sampled_from([tag, ...]), st.sampled_from(wrong)


FIELDS: dict[str, dict[str, tuple[Any, Any]]] = {
    "prediction": {
        "schema": _schema("driftline.prediction.v1"),
        "event_id": _names,
        "model_id": _names,
        "model_version": _names,
        "variant": _field(st.one_of(st.just(...), name), wild_name),
        "timestamp": _stamps,
        "request_id": _field(_optional(name), wild_name),
        "prediction": _field(outcome, wild_outcome),
        "probabilities": _field(
            _optional(_mapping(name, probability)), _mapping(wild_name, wild_probability)
        ),
        "confidence": _field(_optional(probability), wild_probability),
        "features": _field(_optional(_mapping(name, value)), _mapping(wild_name, wild_value)),
        "embedding": _vectors,
        "output_text": _field(
            _optional(st.one_of(short_text, _long(65535, 65536))), _long(65537, 65537)
        ),
        "token_logprobs": _field(
            _optional(_vector(st.one_of(st.floats(-BOUND, 0.0), st.just(-BOUND)))),
            _vector(wild_number),
        ),
        "golden": _field(st.one_of(st.just(...), st.booleans()), json_any),
    },
    "feature": {
        "schema": _schema("driftline.feature.v1"),
        "event_id": _names,
        "model_id": _names,
        "model_version": _names,
        "timestamp": _stamps,
        "request_id": _field(_optional(name), wild_name),
        "features": _field(_mapping(name, value), _mapping(wild_name, wild_value)),
        "embedding": _vectors,
    },
    "label": {
        "schema": _schema("driftline.label.v1"),
        "event_id": _names,
        "model_id": _names,
        "request_id": _names,
        "label": _field(outcome, wild_outcome),
        "timestamp": _stamps,
    },
    "training": {
        "schema": _schema("driftline.training.v1"),
        "event_id": _names,
        "model_id": _names,
        "run_id": _names,
        "checkpoint_id": _names,
        "step": _field(st.integers(0, 2**63), st.one_of(st.integers(-2, 2**70), wild_number)),
        "timestamp": _stamps,
        "metrics": _field(_mapping(name, number), _mapping(wild_name, wild_number)),
        "grad_norms": _field(
            _optional(_mapping(name, st.one_of(st.floats(0.0, BOUND), st.just(BOUND)))),
            _mapping(wild_name, wild_number),
        ),
        "checkpoint_stable": _field(_optional(st.booleans()), json_any),
    },
}


@st.composite
def events(draw: st.DrawFn, kind: str) -> bytes:
    """An event of ``kind`` as bytes: every field valid, or up to two of them wild;
    sometimes a field dropped, an unknown one added, a key written twice, the fields
    reordered, or the framing damaged."""
    fields = FIELDS[kind]
    wild = set(draw(st.lists(st.sampled_from(list(fields)), max_size=2)))
    pairs = Pairs()
    for field, (valid, anything) in fields.items():
        drawn = draw(anything if field in wild else valid)
        if drawn is not ...:
            pairs.append((field, drawn))
    mutation = draw(st.sampled_from(["none"] * 6 + ["drop", "extra", "repeat", "shuffle"]))
    if mutation == "drop" and pairs:
        del pairs[draw(st.integers(0, len(pairs) - 1))]
    elif mutation == "extra":
        pairs.append(
            (draw(st.sampled_from(["label_like", "schema_", "Event_id", ""])), draw(json_any))
        )
    elif mutation == "repeat" and pairs:
        field = pairs[draw(st.integers(0, len(pairs) - 1))][0]
        drawn = draw(st.one_of(*fields[field]))
        if drawn is not ...:
            pairs.append((field, drawn))
    elif mutation == "shuffle":
        pairs = Pairs(draw(st.permutations(pairs)))
    text = _dump(pairs, draw(st.booleans()))
    before, after = draw(
        st.sampled_from([("", "")] * 8 + [(" \n", " "), ("\ufeff", ""), ("", "x")])
    )
    return (before + text + after).encode("utf-8", "surrogatepass")


@st.composite
def damaged(draw: st.DrawFn, kind: str) -> bytes:
    """A valid generated event with a byte deleted, replaced or inserted."""
    raw = bytearray(draw(st.sampled_from(SAMPLES[kind])))
    at = draw(st.integers(0, len(raw) - 1))
    byte = draw(st.integers(0, 255))
    match draw(st.sampled_from(["delete", "replace", "insert"])):
        case "delete":
            del raw[at]
        case "replace":
            raw[at] = byte
        case _:
            raw.insert(at, byte)
    return bytes(raw)


KINDS = ["prediction", "feature", "label", "training"]
SAMPLES: dict[str, list[bytes]] = {
    "prediction": [
        v for _, v in generate(GeneratorConfig(events=50, numeric_features=4, text=True, seed=3))
    ],
    "feature": [
        b'{"schema":"driftline.feature.v1","event_id":"e","model_id":"m","model_version":"1",'
        b'"timestamp":"2026-03-01T12:30:00.25+02:00","request_id":"r","features":{"a":1,"b":"x",'
        b'"c":true,"d":null},"embedding":[0.5,-2]}'
    ],
    "label": [
        b'{"schema":"driftline.label.v1","event_id":"l","model_id":"m","request_id":"r",'
        b'"label":"approve","timestamp":"2026-01-01T00:00:00Z"}'
    ],
    "training": [
        b'{"schema":"driftline.training.v1","event_id":"t","model_id":"m","run_id":"r",'
        b'"checkpoint_id":"c","step":7,"timestamp":"2026-01-01T00:00:00Z",'
        b'"metrics":{"val_loss":0.5},"grad_norms":{"l0":1.0},"checkpoint_stable":false}'
    ],
}
PROPERTY = hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestSameAsTheContract:
    @pytest.mark.parametrize("kind", KINDS)
    @PROPERTY
    @given(data=st.data())
    def test_generated_events(self, kind: str, data: st.DataObject) -> None:
        raw = data.draw(events(kind))
        event(_check(raw, kind))
        event(_check(raw, None))

    @pytest.mark.parametrize("kind", KINDS)
    @PROPERTY
    @given(data=st.data())
    def test_damaged_events(self, kind: str, data: st.DataObject) -> None:
        raw = data.draw(damaged(kind))
        event(_check(raw, kind))
        event(_check(raw, None))

    @pytest.mark.parametrize(
        "edit",
        [
            lambda r: r.replace(b'"event_id":', b'"event_id":"dup","event_id":'),
            lambda r: r.replace(b'"features":{', b'"features":{"amount":1,'),
            lambda r: r.replace(b'"features":{', b'"features":{"x":1,"x":"y",'),
            lambda r: r.replace(b'"confidence":', b'"confidence":2,"confidence":'),
            lambda r: r.replace(b"Z", b"+23:59"),
            lambda r: r.replace(b"Z", b".1234567Z"),
            lambda r: r.replace(b"2026-01-01T", b"2099-12-31T").replace(b"Z", b"-00:01"),
            lambda r: r.replace(b"2026-01-01T", b"1970-01-01T").replace(b"Z", b"+00:01"),
        ],
    )
    def test_edges(self, edit: Callable[[bytes], bytes]) -> None:
        for raw in SAMPLES["prediction"]:
            _check(edit(raw), "prediction")


class TestFastPathTakesTheCommonEvent:
    """The speed is only there if the fast path accepts what producers send."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_valid_samples(self, kind: str) -> None:
        for raw in SAMPLES[kind]:
            fast = decode_fast(raw, kind)
            assert fast is not None
            assert _same(fast, CONTRACT.decode(raw, kind))
            assert _same(decode_fast(raw, None), fast)

    def test_the_benchmark_workload(self) -> None:
        config = GeneratorConfig(events=200, numeric_features=16, categorical_features=2)
        for _, raw in generate(config):
            assert decode_fast(raw, "prediction") is not None


class TestMirrorsFollowTheModels:
    """The mirrors are written by hand; these hold them to the models' shape (the
    property tests above hold them to the models' constraints)."""

    @pytest.mark.parametrize("kind", KINDS)
    def test_fields_names_order_and_defaults(self, kind: str) -> None:
        model, mirror = MIRRORS[kind]
        fields = msgspec.structs.fields(mirror)
        assert [f.name for f in fields] == list(model.model_fields)
        for f in fields:
            info = model.model_fields[f.name]
            assert f.encode_name == (info.alias or f.name)
            assert f.required == info.is_required(), f.name
            if not f.required:
                assert f.default is msgspec.UNSET, f.name
