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
