from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ShadowSpec
from pipeline.core.processor import Processor
from pipeline.core.shadow import ShadowTest
from pipeline.generate import DriftSpec, GeneratorConfig
from tests.pipeline.core.helpers import flat, records, run, settings


class TestShadowTest:
    def test_the_p_value_is_always_valid_under_the_null(self) -> None:
        spec = ShadowSpec(alpha=0.05, min_pairs=1)
        rng = np.random.default_rng(0)
        decided = 0
        runs = 200
        for _ in range(runs):
            test = ShadowTest("2", "1")
            errors = rng.random((600, 2)) < 0.2  # same error rate, independent
            for production, candidate in errors.tolist():
                test.observe(float(production), float(candidate))
                if test.decide(spec) is not None:
                    decided += 1
                    break
        assert decided / runs <= 0.05 + 0.03  # peeking after every pair is allowed

    @pytest.mark.parametrize(("candidate_error", "outcome"), [(0.35, "worse"), (0.02, "better")])
    def test_a_real_difference_is_decided(self, candidate_error: float, outcome: str) -> None:
        rng = np.random.default_rng(1)
        test = ShadowTest("2", "1")
        spec = ShadowSpec(alpha=0.01, min_pairs=20)
        decision = None
        for _ in range(2000):
            test.observe(float(rng.random() < 0.15), float(rng.random() < candidate_error))
            decision = decision or test.decide(spec)
        assert decision == outcome
        assert test.decided == outcome
        assert test.decide(spec) is None  # once per candidate version

    def test_state_round_trips(self) -> None:
        test = ShadowTest("2", "1")
        for a, b in [(0.0, 1.0), (1.0, 1.0), (0.0, 1.0)]:
            test.observe(a, b)
        assert ShadowTest.from_state(test.to_state()) == test


def _shadow_run(drift: float, events: int = 2500) -> list[dict[str, object]]:
    processor = Processor(
        settings(
            models={
                "model-0": {
                    "default_monitors": False,
                    "shadow": {"min_pairs": 50, "alpha": 0.01},
                    "labels": {"ttl": "1m"},
                }
            }
        )
    )
    stream = GeneratorConfig(
        events=events,
        labels=True,
        label_delay=30,
        shadow=0.5,
        base_error=0.15,
        drifts=(DriftSpec("shadow.error", at=0, magnitude=drift),) if drift else (),
    )
    return flat(run(processor, records(stream)), "alert")


class TestShadowAlerts:
    def test_a_worse_candidate_raises_a_critical_alert(self) -> None:
        alerts = _shadow_run(0.15)
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert["signal"] == "shadow.error_rate"
        assert alert["severity"] == "critical"
        assert alert["variant"] == "shadow" and alert["model_version"] == "2"
        assert alert["evidence"]["outcome"] == "candidate_worse"
        assert alert["p_value"] <= 0.01
        assert alert["statistic"] > 0.05  # error-rate difference
        assert "worse than production v1 by" in alert["summary"]

    def test_a_better_candidate_is_reported_too(self) -> None:
        alerts = _shadow_run(-0.12)
        assert [a["evidence"]["outcome"] for a in alerts] == ["candidate_better"]
        assert alerts[0]["severity"] == "warning"

    def test_an_equal_candidate_raises_nothing(self) -> None:
        assert _shadow_run(0.0) == []
