from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.events import (
    EVENT_MODELS,
    FeatureEvent,
    PredictionEvent,
    TrainingEvent,
    schema_id,
)

GOOD = (
    b'{"schema":"driftline.prediction.v1","event_id":"e1","model_id":"m","model_version":"3",'
    b'"timestamp":"2026-01-01T00:00:00Z","prediction":"approve","confidence":0.9,'
    b'"features":{"amount":12.5,"country":"DE","vip":true,"missing":null}}'
)


class TestPredictionEvent:
    def test_decodes_a_valid_event(self) -> None:
        event = PredictionEvent.model_validate_json(GOOD)
        assert event.model_id == "m"
        assert event.features == {"amount": 12.5, "country": "DE", "vip": True, "missing": None}
        assert event.variant == "production"

    def test_schema_tag_defaults_and_round_trips(self) -> None:
        event = PredictionEvent.model_validate_json(GOOD)
        dumped = event.model_dump_json(by_alias=True)
        assert '"schema":"driftline.prediction.v1"' in dumped
        assert PredictionEvent.model_validate_json(dumped) == event

    @pytest.mark.parametrize(
        ("patch", "field"),
        [
            ((b'"confidence":0.9', b'"confidence":NaN'), "confidence"),
            ((b'"confidence":0.9', b'"confidence":Infinity'), "confidence"),
            ((b'"confidence":0.9', b'"confidence":"high"'), "confidence"),
            ((b'"confidence":0.9', b'"confidence":1.5'), "confidence"),
            ((b'"amount":12.5', b'"amount":NaN'), "features"),
            ((b'"model_id":"m",', b""), "model_id"),
            (
                (b'"timestamp":"2026-01-01T00:00:00Z"', b'"timestamp":"2026-01-01T00:00:00"'),
                "timestamp",
            ),
            (
                (b'"schema":"driftline.prediction.v1"', b'"schema":"driftline.prediction.v9"'),
                "schema",
            ),
            ((b'"prediction":"approve"', b'"prediction":"approve","surprise":1'), "surprise"),
        ],
    )
    def test_rejects_with_the_field_named(self, patch: tuple[bytes, bytes], field: str) -> None:
        raw = GOOD.replace(*patch)
        assert raw != GOOD
        with pytest.raises(ValidationError) as info:
            PredictionEvent.model_validate_json(raw)
        assert field in str(info.value)

    def test_oversized_vectors_are_rejected(self) -> None:
        raw = GOOD.replace(
            b'"prediction"', b'"embedding":[' + b",".join([b"0.1"] * 9000) + b'],"prediction"'
        )
        with pytest.raises(ValidationError, match="embedding"):
            PredictionEvent.model_validate_json(raw)


class TestOtherKinds:
    def test_feature_event(self) -> None:
        raw = (
            b'{"event_id":"e","model_id":"m","model_version":"1","timestamp":"2026-01-01T00:00:00+01:00",'
            b'"features":{"x":1}}'
        )
        assert FeatureEvent.model_validate_json(raw).features == {"x": 1.0}

    def test_training_event_requires_integral_step(self) -> None:
        raw = (
            b'{"event_id":"e","model_id":"m","run_id":"r","checkpoint_id":"c","step":1.5,'
            b'"timestamp":"2026-01-01T00:00:00Z","metrics":{"val_loss":0.3}}'
        )
        with pytest.raises(ValidationError, match="step"):
            TrainingEvent.model_validate_json(raw)

    def test_every_kind_has_a_schema_tag(self) -> None:
        for kind, model in EVENT_MODELS.items():
            assert model.model_fields["schema_"].default == schema_id(kind)
            assert schema_id(kind).endswith(".v2" if kind == "alert" else ".v1")
