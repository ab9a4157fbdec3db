"""EWMA chart beyond the shared contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import EWMA


class TestEWMA:
    @pytest.mark.parametrize("lam", [0.05, 0.2, 0.5, 0.9])
    def test_matches_the_recursion(self, lam: float) -> None:
        rng = np.random.default_rng(3)
        values = rng.normal(size=5000) + 0.8 * (np.arange(5000) // 1250 % 2)
        chart = EWMA(lam=lam, L=3.0, target=0.0, scale=1.0)
        z = 0.0
        n = 0
        for x in values.tolist():
            z = lam * x + (1 - lam) * z
            n += 1
            limit = 3.0 * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * n)))
            chart.update(x)
            assert chart.to_state()["state"]["z"] == pytest.approx(z, rel=1e-9, abs=1e-12)
            assert chart.drift_detected == (abs(z) > limit)
            if chart.drift_detected:
                assert chart.statistic == pytest.approx(abs(z) / (limit / 3.0))
                z, n = 0.0, 0

    @pytest.mark.parametrize("lam", [0.3, 0.99])
    def test_batch_equals_events_across_reanchoring(self, lam: float) -> None:
        values = np.random.default_rng(4).normal(size=6000)
        values[3000:] += 0.5
        sequential = EWMA(lam=lam, L=3.5)
        expected = [i for i, x in enumerate(values) if sequential.update(x).drift_detected]
        batch = EWMA(lam=lam, L=3.5)
        assert batch.update_many(values) == expected
        assert batch.to_state() == sequential.to_state()

    def test_threshold_param(self) -> None:
        chart = EWMA(L=2.5)
        assert chart.threshold == 2.5
        assert math.isnan(chart.statistic)
