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
