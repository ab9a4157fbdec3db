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
