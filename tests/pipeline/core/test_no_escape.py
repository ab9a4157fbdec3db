"""No record, however odd, makes the processor raise; its state stays restorable.

The rule of the processing loop: a record is either processed or dead-lettered, and
the state it leaves is finite JSON that a fresh processor restores. Hypothesis feeds
arbitrary bytes, arbitrary JSON values and schema-valid events with extreme values
(numbers at and beyond ±1e100, subnormal, zero; timestamps at the ends of the valid
range and beyond; strings at and over each bound) through a processor whose config
exercises every part of the engine (derived monitors, explicit ones, the label join,
shadow, golden, training, rollback rules, caps).
"""

from __future__ import annotations

import contextlib
import functools
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import detectors
from pipeline.core.processor import Processor
from pipeline.core.quarantine import finite_json
from pipeline.core.records import Record
from tests.detectors.test_contract import CASES
from tests.pipeline.core.helpers import FULL_CONFIG, full_records, settings

CONFIG: dict[str, Any] = {
    **FULL_CONFIG,
    "models": {
        **FULL_CONFIG["models"],
        "derived": {
            "features": {"amount": "numeric", "country": "categorical"},
            "classes": ["a", "b"],
            "text": True,
        },
    },
}
SETTINGS = settings(**CONFIG)
TOPIC_KINDS = {"preds": "prediction", "labels": "label", "training": "training"}

EDGE_NUMBERS = [0.0, -0.0, 5e-324, -5e-324, 1e100, -1e100, 1e101, -1e308, 1e308, 1.0, 0.5]
START = datetime(1970, 1, 1, tzinfo=UTC)
END = datetime(2100, 1, 1, tzinfo=UTC)
EDGE_TIMES = [
    "1970-01-01T00:00:00Z",
    "2099-12-31T23:59:59.999999Z",
    "2100-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:01Z",
]
MODELS = ["model-0", "model-1", "derived", "unknown-a", "unknown-b", "m" * 256, "m" * 257]

numbers = st.one_of(st.sampled_from(EDGE_NUMBERS), st.floats(allow_nan=False, allow_infinity=False))
times = st.one_of(
    st.sampled_from(EDGE_TIMES),
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ).map(lambda t: t.isoformat()),
)
short_text = st.text(max_size=8)
names = st.one_of(st.sampled_from(["amount", "country", "x", "a" * 256, "a" * 257]), short_text)
categories = st.one_of(st.sampled_from(["US", "", "c" * 1024, "c" * 1025]), short_text)
values = st.one_of(numbers, categories, st.booleans(), st.none())


@st.composite
def predictions(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema": "driftline.prediction.v1",
        "event_id": draw(st.sampled_from(["e", "e" * 257])),
        "model_id": draw(st.sampled_from(MODELS)),
        "model_version": "1",
        "variant": draw(st.sampled_from(["production", "shadow", "golden"])),
        "timestamp": draw(times),
        "prediction": draw(
            st.one_of(numbers, st.sampled_from(["a", "b", "approve"]), st.booleans())
        ),
    }
    if draw(st.booleans()):
        event["request_id"] = draw(st.sampled_from(["r1", "r2", "golden-0"]))
    if draw(st.booleans()):
        event["features"] = draw(st.dictionaries(names, values, max_size=4))
    if draw(st.booleans()):
        event["confidence"] = draw(st.sampled_from([0.0, 1.0, 5e-324, 0.5, 1.5]))
    if draw(st.booleans()):
        event["probabilities"] = draw(
            st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from([0.0, 1.0, 0.3]))
        )
    if draw(st.booleans()):
        event["output_text"] = draw(st.sampled_from(["", "same answer", "x " * 5000]))
    if draw(st.booleans()):
        event["token_logprobs"] = draw(
            st.lists(st.sampled_from([0.0, -1e100, -1e101, -5e-324]), max_size=5)
        )
    if draw(st.booleans()):
        event["embedding"] = draw(st.lists(numbers, max_size=6))
    return event


@st.composite
def labels(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "schema": "driftline.label.v1",
        "event_id": "l",
        "model_id": draw(st.sampled_from(MODELS)),
        "request_id": draw(st.sampled_from(["r1", "r2", "zz"])),
        "label": draw(st.one_of(numbers, st.sampled_from(["a", "approve"]), st.booleans())),
        "timestamp": draw(times),
    }


@st.composite
def trainings(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "schema": "driftline.training.v1",
        "event_id": "t",
        "model_id": draw(st.sampled_from(MODELS)),
        "run_id": "run",
        "checkpoint_id": draw(st.sampled_from(["c1", "c2"])),
        "step": draw(st.integers(0, 2**63)),
        "timestamp": draw(times),
        "metrics": draw(
            st.dictionaries(st.sampled_from(["val_loss", "train_loss", "legacy_val_loss"]), numbers)
        ),
        "grad_norms": draw(st.dictionaries(st.sampled_from(["l0", "l1"]), numbers, max_size=2)),
        "checkpoint_stable": draw(st.booleans()),
    }


json_values = st.recursive(
    st.none() | st.booleans() | numbers | short_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=20,
)
any_bytes = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: orjson.dumps(v)),
    st.one_of(predictions(), labels(), trainings()).map(lambda e: orjson.dumps(e)),
)


def _records(draw: st.DrawFn, payloads: list[bytes]) -> list[Record]:
    out = []
    for offset, value in enumerate(payloads):
        topic = draw(st.sampled_from([*TOPIC_KINDS, "mixed"]))
        key = draw(st.sampled_from([None, b"model-0", b"k" * 5000]))
        out.append(Record(topic, offset % 2, offset, value, key=key))
    return out


def _check(records: list[Record], batch: int) -> None:
    processor = Processor(SETTINGS, TOPIC_KINDS)
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        outputs = processor.process_batch(chunk)  # must not raise
        assert len(outputs) == len(chunk)
    for partition in (0, 1):
        state = processor.changed_state(partition)
        # finite JSON only (NaN/inf would be written as null and fail on restore)
        text = json.dumps(state, allow_nan=False)
        fresh = Processor(SETTINGS, TOPIC_KINDS)
        fresh.restore(partition, {k: v for k, v in json.loads(text).items() if v is not None})


class TestNothingEscapes:
    @given(st.data(), st.lists(any_bytes, min_size=1, max_size=40), st.sampled_from([1, 7, 500]))
    @hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def test_arbitrary_records(
        self, data: st.DataObject, payloads: list[bytes], batch: int
    ) -> None:
        _check(_records(data.draw, payloads), batch)

    @given(
        st.data(),
        st.lists(st.one_of(predictions(), labels(), trainings()), min_size=20, max_size=80),
    )
    @hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def test_schema_valid_streams_with_extreme_values(
        self, data: st.DataObject, events: list[dict[str, Any]]
    ) -> None:
        _check(_records(data.draw, [orjson.dumps(e) for e in events]), 500)

    @given(st.data())
    @hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def test_extremes_injected_into_a_warmed_stream(self, data: st.DataObject) -> None:
        """Every detector warmed up (the full stream), then copies of its events with a
        number or the timestamp at an edge injected at random places."""
        base = full_records()
        positions = data.draw(st.lists(st.integers(0, len(base)), min_size=1, max_size=12))
        out = list(base)
        for at in sorted(positions, reverse=True):
            source = base[min(at, len(base) - 1)]
            event = orjson.loads(source.value)
            if not isinstance(event, dict):
                continue
            out.insert(
                at,
                Record(source.topic, source.partition, 0, orjson.dumps(data.draw(_mutated(event)))),
            )
        records = [Record(r.topic, r.partition, i, r.value, r.key) for i, r in enumerate(out)]
        _check(records, data.draw(st.sampled_from([1, 64, 500])))


@st.composite
def _mutated(draw: st.DrawFn, event: dict[str, Any]) -> dict[str, Any]:
    event = json.loads(json.dumps(event))
    if draw(st.booleans()):
        event["timestamp"] = draw(st.sampled_from(EDGE_TIMES))
    numeric = [
        (container, key)
        for container in (event, *(v for v in event.values() if isinstance(v, dict)))
        for key, value in container.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and key != "step"
    ]
    for container, key in draw(st.lists(st.sampled_from(numeric), max_size=3)) if numeric else []:
        container[key] = draw(st.sampled_from(EDGE_NUMBERS))
    return event


# --------------------------------------------------------------- corrupt snapshots
@functools.cache
def _warm_state() -> dict[int, dict[str, Any]]:
    """Every entry of a processor that ran the full stream, per partition (plain JSON)."""
    processor = Processor(SETTINGS, TOPIC_KINDS)
    records = full_records()
    for start in range(0, len(records), 500):
        processor.process_batch(records[start : start + 500])
    return {p: json.loads(json.dumps(processor.engine.state_entries(p))) for p in (0, 1)}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON value (a dict key or list index path)."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value[:8]):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = dict(value)
        if new is _DELETE and not rest:
            out.pop(head, None)
        else:
            out[head] = _replace(value[head], rest, new)
        return out
    out_list = list(value)
    out_list[head] = _replace(value[head], rest, None if new is _DELETE else new)
    return out_list


_DELETE = object()
corrupt_values = st.one_of(
    st.just(_DELETE), json_values, st.sampled_from([1e308, -1e308, 2**70, "", "z:!!", [], {}])
)


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[int, dict[str, Any]]:
    partition = draw(st.sampled_from([0, 1]))
    entries = dict(_warm_state()[partition])
    for key in draw(st.lists(st.sampled_from(sorted(entries)), min_size=1, max_size=6)):
        path = draw(st.sampled_from(_paths(entries[key])))
        new = draw(corrupt_values)
        entries[key] = _replace(entries[key], path, {} if new is _DELETE and not path else new)
    return partition, entries


class TestCorruptSnapshots:
    @given(corrupted(), st.data())
    @hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    def test_restore_never_raises_and_a_bad_entry_is_not_restored_twice(
        self, case: tuple[int, dict[str, Any]], data: st.DataObject
    ) -> None:
        partition, entries = case
        processor = Processor(SETTINGS, TOPIC_KINDS)
        processor.restore(partition, entries)  # must not raise
        tail = [r for r in full_records()[:300] if r.partition == partition]
        processor.process_batch(tail)  # and it goes on
        changed = processor.changed_state(partition)
        text = json.dumps(changed, allow_nan=False)
        # what the next checkpoint leaves in the changelog restores without a failure
        after = {**entries, **json.loads(text)}
        fresh = Processor(SETTINGS, TOPIC_KINDS)
        fresh.restore(partition, {k: v for k, v in after.items() if v is not None})
        assert fresh.stats["quarantined:restore"] == 0


# ------------------------------------------------------------ extremes per detector
EXTREME = [0.0, -0.0, 5e-324, -5e-324, 1e100, -1e100, 1e-300, 7.5e99, -2.5e99, 1.0, -1.0]
extreme = st.sampled_from(EXTREME)


def _inputs(kind: str) -> st.SearchStrategy[list[Any]]:
    """Values of ``kind`` at the decoder's bounds (numbers within ±1e100)."""
    if kind in ("numeric",):
        return st.lists(st.one_of(extreme, st.floats(-1e100, 1e100)), max_size=400)
    if kind == "binary":
        return st.lists(st.sampled_from([0, 1, 0.0, 1.0, True, False]), max_size=400)
    if kind == "vector":
        return st.integers(1, 6).flatmap(
            lambda d: st.lists(st.lists(extreme, min_size=d, max_size=d), max_size=200)
        )
    if kind == "logprobs":
        return st.lists(
            st.lists(st.sampled_from([0.0, -5e-324, -1e-300, -1.0, -7.5e99, -1e100]), max_size=8),
            max_size=200,
        )
    if kind == "categorical":
        return st.lists(st.sampled_from(["a", "b", "c" * 1024, 1, 1e100, True]), max_size=400)
    return st.lists(st.sampled_from(["", "a b", "x " * 3000, "日本"]), max_size=200)


@pytest.mark.parametrize("name", sorted(detectors.REGISTRY))
@given(data=st.data())
@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_extreme_values_keep_every_detector_finite_and_restorable(
    name: str, data: st.DataObject
) -> None:
    """Within the decoder's bounds no detector raises anything but the ``TypeError`` /
    ``ValueError`` of a value it refuses, and its snapshot stays finite and restores
    (the per-value and the batch path alike)."""
    cls = detectors.REGISTRY[name]
    values = data.draw(_inputs(cls.input_kind))
    for factory in (cls, CASES[name].factory):
        one, many = factory(), factory()
        for value in values:
            with contextlib.suppress(TypeError, ValueError):
                one.update(value)
        with contextlib.suppress(TypeError, ValueError):
            many.update_many(values)
        for detector in (one, many):
            snapshot = json.loads(json.dumps(detector.to_state(), allow_nan=False))
            assert finite_json(snapshot)
            cls.from_state(snapshot)
