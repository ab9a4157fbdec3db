"""The adapter seam through the Processor: a KServe or Seldon stream gives the
detections the same predictions give as driftline events; a broken record goes to
the dead letters with a reason; batches and restores change nothing."""

from __future__ import annotations

import functools
from typing import Any

import orjson
import pytest

from pipeline.config import Settings, parse_settings
from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from tests.pipeline.conftest import PH_AMOUNT, PH_CONFIDENCE
from tests.pipeline.formats.streams import (
    Format,
    as_records,
    completion_order,
    driftline_values,
    input_specs,
    predictions,
)

TOPIC = "serving"
FORMATS: list[Format] = ["kserve-v1", "kserve-v2", "seldon"]


def _settings(fmt: Format, **extra: Any) -> Settings:
    return parse_settings(
        {
            "default_model": {"monitors": [PH_AMOUNT, PH_CONFIDENCE]},
            "inputs": input_specs(fmt, TOPIC, **extra),
        },
        environ={},
    )


def _run(processor: Processor, records: list[Record], batch: int = 400) -> list[list[Message]]:
    out: list[list[Message]] = []
    for k in range(0, len(records), batch):
        out.extend(processor.process_batch(records[k : k + batch]))
    return out


def _detections(outputs: list[list[Message]]) -> list[dict[str, Any]]:
    """Alerts without what depends on where they were read (ids, offsets)."""
    found = []
    for messages in outputs:
        for m in messages:
            if m.kind == "alert":
                body = orjson.loads(m.value or b"")
                for name in ("alert_id", "incident_id", "source", "summary"):
                    body.pop(name, None)
                body["window"] = {"events": body["window"]["events"]}
                body["evidence"].pop("offsets", None)
                found.append(body)
    return found


@functools.cache
def _reference(fmt: Format) -> tuple[str, ...]:
    """The same predictions as driftline events, in the order the pairs complete."""
    events = completion_order(predictions(), fmt)
    records = [
        Record("driftline.predictions", 0, i, value, key=key)
        for i, (key, value) in enumerate(driftline_values(events))
    ]
    found = _detections(_run(Processor(_settings("kserve-v1")), records))
    return tuple(orjson.dumps(d, option=orjson.OPT_SORT_KEYS).decode() for d in found)


@pytest.mark.parametrize("fmt", FORMATS)
class TestSameDetections:
    def test_as_the_driftline_stream(self, fmt: Format) -> None:
        processor = Processor(_settings(fmt))
        outputs = _run(processor, as_records(predictions(), fmt, TOPIC))
        found = _detections(outputs)
        assert len(_reference(fmt)) >= 3  # the jump and both models' confidence decay
        assert [orjson.dumps(d, option=orjson.OPT_SORT_KEYS).decode() for d in found] == list(
            _reference(fmt)
        )
        assert not [m for ms in outputs for m in ms if m.kind == "dead_letter"]
        counters = processor.stats
        assert sum(v for k, v in counters.items() if k.endswith(":paired")) == len(predictions())

    def test_per_record_equals_batches_and_a_restore_changes_nothing(self, fmt: Format) -> None:
        records = as_records(predictions(events=900), fmt, TOPIC)
        batched = _run(Processor(_settings(fmt)), records)
        one_by_one = Processor(_settings(fmt))
        assert [one_by_one.process(r) for r in records] == batched
        first = Processor(_settings(fmt))
        cut = 701  # odd: a request is waiting for its response
        head = _run(first, records[:cut])
        state = first.changed_state(0)
        assert any(k.startswith("pairs:") for k in state)
        second = Processor(_settings(fmt))
        second.restore(0, {k: v for k, v in orjson.loads(orjson.dumps(state)).items() if v})
        assert head + _run(second, records[cut:]) == batched


class TestBadRecords:
    def test_a_broken_body_is_a_dead_letter_with_a_reason(self) -> None:
        records = as_records(predictions(events=10), "kserve-v1", TOPIC)
        broken = Record(TOPIC, 0, 99, b"{oops", headers=records[0].headers)
        (message,) = Processor(_settings("kserve-v1")).process(broken)
        headers = dict(message.headers)
        assert message.kind == "dead_letter" and message.value == b"{oops"
        assert headers["dl_reason"] == b"malformed_json"

    def test_a_record_without_cloudevent_headers(self) -> None:
        (message,) = Processor(_settings("kserve-v1")).process(Record(TOPIC, 0, 0, b"{}"))
        assert dict(message.headers)["dl_reason"] == b"malformed_cloudevent"

    def test_other_event_types_and_components_are_skipped(self) -> None:
        (request, _), *_ = [
            (r, None) for r in as_records(predictions(events=4), "kserve-v1", TOPIC)
        ]
        other = tuple(
            (k, b"dev.knative.other" if k == "ce_type" else v) for k, v in request.headers
        )
        transformer = tuple(
            (k, b"transformer" if k == "ce_component" else v) for k, v in request.headers
        )
        processor = Processor(_settings("kserve-v1"))
        assert processor.process(Record(TOPIC, 0, 0, request.value, headers=other)) == []
        assert processor.process(Record(TOPIC, 0, 1, request.value, headers=transformer)) == []
        assert processor.stats[f"inputs:{TOPIC}:skipped_type"] == 1
        assert processor.stats[f"inputs:{TOPIC}:skipped_component"] == 1

    def test_a_row_count_mismatch_dead_letters_the_second_half(self) -> None:
        request, response = sorted(
            as_records(predictions(events=1), "kserve-v1", TOPIC), key=lambda r: r.headers[3][1]
        )
        doubled = orjson.dumps({"predictions": [[0.1, 0.8, 0.1], [0.2, 0.7, 0.1]]})
        processor = Processor(_settings("kserve-v1"))
        assert processor.process(request) == []
        (message,) = processor.process(
            Record(TOPIC, 0, 1, doubled, headers=response.headers, timestamp_ms=0)
        )
        assert b"has 1 rows, its response 2" in dict(message.headers)["dl_detail"]


class TestConfig:
    def test_a_topic_read_twice_is_refused(self) -> None:
        from pipeline.errors import ConfigError

        with pytest.raises(ConfigError, match="read twice"):
            parse_settings(
                {"inputs": [{"format": "kserve-cloudevents", "topic": "driftline.predictions"}]},
                environ={},
            )

    def test_an_unknown_placeholder_is_named(self) -> None:
        from pipeline.errors import ConfigError

        with pytest.raises(
            ConfigError, match=r"inputs\[0\].*model_id.*unknown placeholder \{name\}"
        ):
            parse_settings(
                {"inputs": [{"format": "kserve-cloudevents", "topic": "t", "model_id": "{name}"}]},
                environ={},
            )

    def test_seldon_topics_follow_prefix_and_namespace(self) -> None:
        settings = parse_settings(
            {
                "inputs": [
                    {
                        "format": "seldon-oip",
                        "model": "iris",
                        "namespace": "prod",
                        "topic_prefix": "acme",
                    }
                ]
            },
            environ={},
        )
        assert settings.input_topics()[-2:] == [
            "acme.prod.model.iris.inputs",
            "acme.prod.model.iris.outputs",
        ]


class TestResponseOnly:
    def test_each_response_is_a_prediction_without_features(self) -> None:
        records = as_records(predictions(events=20), "kserve-v1", TOPIC)
        processor = Processor(_settings("kserve-v1", logger_mode="response"))
        assert _run(processor, records) == [[] for _ in records]  # no alert, no dead letter
        stats = processor.stats
        assert stats[f"inputs:{TOPIC}:skipped_request"] == 20
        assert processor.decoder.pending() == {TOPIC: 0}
        (event,) = processor.decoder.decode(
            next(r for r in records if b"response" in dict(r.headers)["ce_type"])
        )
        assert event.features is None and event.prediction in ("approve", "review", "decline")
