from __future__ import annotations

import pytest

from pipeline.core.decode import Decoder
from pipeline.errors import DecodeError
from pipeline.generate import DriftSpec, GeneratorConfig, generate, parse_drift, truth


def _values(config: GeneratorConfig) -> list[bytes]:
    return [value for _model, value in generate(config)]


class TestGenerator:
    def test_deterministic(self) -> None:
        config = GeneratorConfig(events=500, models=3, text=True, seed=3)
        assert _values(config) == _values(config)
        assert _values(config) != _values(GeneratorConfig(events=500, models=3, text=True, seed=4))

    def test_every_event_decodes(self) -> None:
        decoder = Decoder(1 << 20)
        for value in _values(
            GeneratorConfig(
                events=300, models=2, numeric_features=16, categorical_features=3, text=True
            )
        ):
            decoder.decode(value)

    def test_drift_moves_the_feature_and_only_it(self) -> None:
        import orjson

        drift = DriftSpec(signal="feature:amount", at=1000, magnitude=5.0)
        config = GeneratorConfig(events=2000, seed=1, drifts=(drift,))
        events = [orjson.loads(v) for v in _values(config)]
        before = [e["features"]["amount"] for e in events[:1000]]
        after = [e["features"]["amount"] for e in events[1000:]]
        age_before = [e["features"]["age"] for e in events[:1000]]
        age_after = [e["features"]["age"] for e in events[1000:]]
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        assert mean(after) > mean(before) * 1.3
        assert abs(mean(age_after) - mean(age_before)) < 0.1 * mean(age_before)

    def test_bad_records_are_bad_and_in_the_truth(self) -> None:
        config = GeneratorConfig(events=30, bad_every=10)
        values = _values(config)
        reasons = []
        for position in (9, 19, 29):
            with pytest.raises(DecodeError) as info:
                Decoder(1 << 20).decode(values[position])
            reasons.append(info.value.reason)
        assert reasons == [b["reason"] for b in truth(config)["bad_records"]]

    def test_truth_lists_change_points(self) -> None:
        config = GeneratorConfig(
            events=5000, models=2,
            drifts=(DriftSpec(signal="confidence", kind="recurring", at=1000, width=1500, model="model-1"),),
        )  # fmt: skip
        changes = truth(config)["changes"]
        assert [c["position"] for c in changes] == [1000, 2500, 4000]
        assert {c["model_id"] for c in changes} == {"model-1"}


class TestParseDrift:
    def test_parses(self) -> None:
        spec = parse_drift("signal=feature:amount,kind=gradual,at=10,width=5,magnitude=2.5,model=m")
        assert spec == DriftSpec("feature:amount", "gradual", 10, 5, 2.5, "m")

    @pytest.mark.parametrize(
        "text", ["kind=abrupt", "signal=x,kind=wobbly", "signal=x,oops", "signal=x,color=red"]
    )
    def test_rejects(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_drift(text)


class TestCompanions:
    def test_existing_arguments_give_the_same_bytes_as_before(self) -> None:
        import hashlib

        # Digests of the stream before labels/shadow/training/golden were added.
        config = GeneratorConfig(
            events=2000, bad_every=7, categorical_features=3, numeric_features=16
        )
        digest = hashlib.sha256()
        for model, value in generate(config):
            digest.update(model.encode())
            digest.update(value)
        assert digest.hexdigest() == (
            "7ea909cfcdd6d3e6435854e2d606f7ffa6538a95a1c0e2622f4c24879f96bd97"
        )

    def test_companions_leave_the_predictions_untouched(self) -> None:
        plain = _values(GeneratorConfig(events=300, seed=2))
        rich = _values(
            GeneratorConfig(
                events=300, seed=2, labels=True, shadow=0.5, training_every=10, golden_every=20
            )
        )
        production = [v for v in rich if b'"variant":"production"' in v and b"golden" not in v]
        assert production == plain

    def test_every_companion_decodes(self) -> None:
        from collections import Counter

        config = GeneratorConfig(
            events=400, models=2, labels=True, shadow=0.5, training_every=10, golden_every=25
        )
        kinds = Counter(type(Decoder(1 << 20).decode(v)).__name__ for v in _values(config))
        assert kinds["LabelEvent"] == 400
        assert kinds["TrainingEvent"] == 40
        assert 400 + 16 < kinds["PredictionEvent"] < 400 + 16 + 300

    def test_labels_can_come_before_their_prediction(self) -> None:
        import orjson

        events = [
            orjson.loads(v)
            for v in _values(GeneratorConfig(events=50, labels=True, label_delay=-5))
        ]
        position = {e["request_id"]: k for k, e in enumerate(events) if "label" not in e}
        early = [k < position[e["request_id"]] for k, e in enumerate(events) if "label" in e]
        assert sum(early) >= 40

    def test_error_drift_raises_the_error_rate(self) -> None:
        import orjson

        config = GeneratorConfig(
            events=4000, labels=True, drifts=(DriftSpec("error", at=2000, magnitude=0.3),)
        )
        events = [orjson.loads(v) for v in _values(config)]
        predicted = {e["request_id"]: e["prediction"] for e in events if "prediction" in e}
        wrong = [
            (int(e["request_id"].rsplit("-", 1)[1]), predicted[e["request_id"]] != e["label"])
            for e in events
            if "label" in e
        ]
        before = sum(w for i, w in wrong if i < 2000) / 2000
        after = sum(w for i, w in wrong if i >= 2000) / 2000
        assert 0.07 < before < 0.13 and 0.35 < after < 0.45

    def test_training_checkpoints_are_stable_only_without_drift(self) -> None:
        import orjson

        config = GeneratorConfig(
            events=400,
            training_every=4,
            stable_every=2,
            drifts=(DriftSpec("training.legacy_val_loss", at=200, magnitude=5.0),),
        )
        runs = [orjson.loads(v) for v in _values(config) if b"training.v1" in v]
        stable = [int(e["event_id"].rsplit("-", 1)[1]) for e in runs if e["checkpoint_stable"]]
        assert stable and max(stable) < 200
