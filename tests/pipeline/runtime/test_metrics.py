"""Metrics of the serving-stack inputs: cumulative decoder counters become counter
increments, waiting halves a gauge."""

from __future__ import annotations

from prometheus_client import generate_latest

from pipeline.runtime.metrics import Metrics


class TestInputMetrics:
    def test_counters_are_exported_as_increments(self) -> None:
        metrics = Metrics()
        metrics.observe_inputs(
            {"kserve.iris:paired": 10, "kserve.iris:expired_request": 1}, {"kserve.iris": 3}
        )
        metrics.observe_inputs(
            {"kserve.iris:paired": 25, "kserve.iris:expired_request": 1}, {"kserve.iris": 0}
        )
        text = generate_latest(metrics.registry).decode()
        assert 'driftline_input_halves_total{input="kserve.iris",outcome="paired"} 25.0' in text
        assert (
            'driftline_input_halves_total{input="kserve.iris",outcome="expired_request"} 1.0'
            in text
        )
        assert 'driftline_input_pending_halves{input="kserve.iris"} 0.0' in text


class TestQuarantineMetric:
    def test_the_engines_counters_are_exported_by_stage(self) -> None:
        metrics = Metrics()
        text = generate_latest(metrics.registry).decode()
        assert 'driftline_quarantined_total{stage="restore"} 0.0' in text
        metrics.observe_quarantined({"quarantined:restore": 2, "keys_created": 9})
        metrics.observe_quarantined({"quarantined:restore": 3, "quarantined:update": 1})
        text = generate_latest(metrics.registry).decode()
        assert 'driftline_quarantined_total{stage="restore"} 3.0' in text
        assert 'driftline_quarantined_total{stage="update"} 1.0' in text
        assert 'driftline_quarantined_total{stage="policy"} 0.0' in text
