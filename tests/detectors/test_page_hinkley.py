"""Page-Hinkley beyond the shared contract and the river conformance suite."""

from __future__ import annotations

import math

import numpy as np
import pytest
from river import drift as river_drift

from detectors import PageHinkley
from detectors.page_hinkley import anchor_period


def hits(detector: PageHinkley, values: list[float]) -> list[int]:
    return [i for i, x in enumerate(values) if detector.update(x).drift_detected]


class TestPageHinkley:
    @pytest.mark.parametrize("alpha", [0.5, 0.9, 1 - 1e-4, 1.0])
    def test_batch_equals_events_across_reanchoring(self, alpha: float) -> None:
        period = anchor_period(alpha)
        n = 3 * period + 17 if period < 4096 else 10_000
        rng = np.random.default_rng(1)
        values = rng.normal(size=n) + np.where(np.arange(n) % 2000 < 1000, 0.0, 2.0)
        params = {"alpha": alpha, "threshold": 30.0, "min_instances": 10}
        sequential = PageHinkley(**params)
        expected = hits(sequential, values.tolist())
        batch = PageHinkley(**params)
        assert batch.update_many(values) == expected
        assert batch.to_state() == sequential.to_state()

    def test_long_stream_matches_river(self) -> None:
        values = np.random.default_rng(2).normal(0.0, 0.3, 12_000)
        values[6000:] += 1.0
        theirs = river_drift.PageHinkley()
        expected = []
        for i, x in enumerate(values.tolist()):
            theirs.update(x)
            if theirs.drift_detected:
                expected.append(i)
        assert expected
        assert hits(PageHinkley(), values.tolist()) == expected

    def test_modes(self) -> None:
        up_shift = [0.0] * 100 + [5.0] * 100
        assert PageHinkley(mode="up", threshold=20.0).update_many(up_shift)
        assert not PageHinkley(mode="down", threshold=20.0).update_many(up_shift)
        assert PageHinkley(mode="down", threshold=20.0).update_many([-x for x in up_shift])

    def test_threshold_and_statistic(self) -> None:
        ph = PageHinkley(threshold=20.0, min_instances=5)
        assert ph.threshold == 20.0
        assert math.isnan(ph.statistic)
        values = [0.0] * 50 + [3.0] * 50
        for x in values:
            ph.update(x)
            if ph.drift_detected:
                assert ph.statistic > ph.threshold
                break
        else:
            pytest.fail("no detection")
        ph.update(3.0)
        assert math.isnan(ph.statistic)  # restarted
