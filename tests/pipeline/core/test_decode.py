from __future__ import annotations

import pytest

from pipeline.core.decode import Decoder
from pipeline.errors import DecodeError
from pipeline.events import LabelEvent, PredictionEvent

PRED = (
    b'{"schema":"driftline.prediction.v1","event_id":"e1","model_id":"m","model_version":"1",'
    b'"timestamp":"2026-01-01T00:00:00Z","prediction":1.0}'
)


class TestDecoder:
    def test_by_schema_tag(self) -> None:
        assert isinstance(Decoder(10_000).decode(PRED), PredictionEvent)

    def test_by_topic_kind_without_tag(self) -> None:
        raw = b'{"event_id":"l","model_id":"m","request_id":"r","label":1,"timestamp":"2026-01-01T00:00:00Z"}'
        assert isinstance(Decoder(10_000).decode(raw, "label"), LabelEvent)

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            (b"{not json", "malformed_json"),
            (b"", "malformed_json"),
            (b'{"schema":"driftline.prediction.v2"}', "unknown_schema"),
            (b'{"no":"tag"}', "unknown_schema"),
            (PRED.replace(b"1.0}", b"NaN}"), "non_finite"),
            (PRED.replace(b"1.0}", b"[1]}"), "schema_violation"),
            (PRED.replace(b'"model_id":"m",', b""), "schema_violation"),
        ],
    )
    def test_reasons(self, raw: bytes, reason: str) -> None:
        with pytest.raises(DecodeError) as info:
            Decoder(10_000).decode(raw)
        assert info.value.reason == reason

    def test_oversized_is_refused_before_parsing(self) -> None:
        with pytest.raises(DecodeError) as info:
            Decoder(100).decode(b"x" * 101)
        assert info.value.reason == "oversized"

    def test_schema_violation_names_the_field(self) -> None:
        with pytest.raises(DecodeError) as info:
            Decoder(10_000).decode(PRED.replace(b'"model_id":"m",', b""))
        assert "model_id" in info.value.detail


TRAINING = (
    b'{"schema":"driftline.training.v1","event_id":"t","model_id":"m","run_id":"r",'
    b'"checkpoint_id":"c","step":1,"timestamp":"2026-01-01T00:00:00Z",'
    b'"metrics":{"val_loss":0.5},"grad_norms":{"l0":1.0}}'
)


class TestValueRanges:
    """Schema-valid JSON that the core cannot hold is refused here, with a reason,
    instead of overflowing later in a detector or in event-time arithmetic."""

    @pytest.mark.parametrize(
        "timestamp",
        [
            b"0001-01-01T00:00:00+01:00",  # before year 1 in UTC: datetime overflows
            b"0001-01-01T00:00:00Z",
            b"1969-12-31T23:59:59.999999Z",
            b"2100-01-01T00:00:00Z",
            b"9999-12-31T23:59:59Z",
            b"9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
        ],
    )
    def test_timestamps_outside_the_range(self, timestamp: bytes) -> None:
        raw = PRED.replace(b"2026-01-01T00:00:00Z", timestamp)
        with pytest.raises(DecodeError) as info:
            Decoder(10_000).decode(raw)
        assert info.value.reason == "timestamp_out_of_range"
        assert info.value.detail.startswith("timestamp: event time must be from 1970-01-01")

    @pytest.mark.parametrize(
        "timestamp",
        [b"1970-01-01T00:00:00Z", b"2099-12-31T23:59:59.999999Z", b"2099-12-31T23:00:00-00:59"],
    )
    def test_timestamps_at_the_ends_of_the_range(self, timestamp: bytes) -> None:
        Decoder(10_000).decode(PRED.replace(b"2026-01-01T00:00:00Z", timestamp))

    @pytest.mark.parametrize(
        ("raw", "field"),
        [
            (PRED.replace(b'"prediction":1.0', b'"prediction":1e200'), "prediction"),
            (PRED.replace(b"}", b',"features":{"a":-1e101}}'), "features.a"),
            (PRED.replace(b"}", b',"embedding":[0,1e300]}'), "embedding.1"),
            (PRED.replace(b"}", b',"token_logprobs":[-1e200]}'), "token_logprobs.0"),
            (TRAINING.replace(b'"l0":1.0', b'"l0":1e200'), "grad_norms.l0"),
            (TRAINING.replace(b'"val_loss":0.5', b'"val_loss":-1e200'), "metrics.val_loss"),
            (PRED.replace(b"}", b',"features":{"c":"' + b"x" * 1025 + b'"}}'), "features.c"),
        ],
    )
    def test_values_beyond_the_bounds_name_the_field(self, raw: bytes, field: str) -> None:
        with pytest.raises(DecodeError) as info:
            Decoder(100_000).decode(raw)
        assert info.value.reason == "schema_violation"
        assert info.value.detail.startswith(field + ":")

    def test_values_at_the_bounds_pass(self) -> None:
        raw = PRED.replace(b"}", b',"features":{"a":-1e100,"b":1e100,"c":"' + b"x" * 1024 + b'"}}')
        event = Decoder(100_000).decode(raw)
        assert isinstance(event, PredictionEvent) and event.features is not None
        assert event.features["b"] == 1e100

    @pytest.mark.parametrize(
        ("extra", "detail"),
        [
            (b'"features":{"a":[1]}', "features.a: Input should be a number, a string, a boolean or null"),
            (b'"features":{"number":1e200}', "features.number: magnitude must be at most 1e+100"),
            (b'"features":{"number":{}}', "features.number: Input should be a number, a string"),
            (b'"label_like":1', "label_like: Extra inputs are not permitted"),
        ],
    )  # fmt: skip
    def test_messages_name_the_field_once(self, extra: bytes, detail: str) -> None:
        with pytest.raises(DecodeError) as info:
            Decoder(10_000).decode(PRED.replace(b"}", b"," + extra + b"}"))
        assert info.value.detail.startswith(detail)

    def test_a_missing_prediction_is_not_a_feature_value(self) -> None:
        raw = PRED.replace(b'"prediction":1.0', b'"prediction":null')
        with pytest.raises(DecodeError) as info:
            Decoder(10_000).decode(raw)
        assert info.value.detail == "prediction: Input should be a number, a string or a boolean"
