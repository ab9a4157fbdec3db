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

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.core.processor import Processor
from pipeline.core.records import Record
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
