"""CUSUM beyond the shared contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import CUSUM


def naive(values: np.ndarray, target: float, scale: float, k: float, h: float) -> list[int]:
    """Textbook tabular CUSUM with a restart after each alarm."""
    up = down = 0.0
    out = []
    for i, x in enumerate(values.tolist()):
        z = (x - target) / scale
        up = max(0.0, up + z - k)
        down = max(0.0, down - z - k)
        if up > h or down > h:
            out.append(i)
            up = down = 0.0
    return out


class TestCUSUM:
    @pytest.mark.parametrize("seed", range(5))
    def test_matches_textbook_recursion(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        values = rng.normal(size=10_000) + 0.7 * (np.arange(10_000) // 2500 % 2)
        expected = naive(values, 0.0, 1.0, 0.5, 6.0)
        assert expected
        assert CUSUM(target=0.0, scale=1.0, k=0.5, h=6.0).update_many(values) == expected
        detector = CUSUM(target=0.0, scale=1.0, k=0.5, h=6.0)
        assert [i for i, x in enumerate(values) if detector.update(x).drift_detected] == expected

    def test_estimates_the_reference_and_re_estimates_after_an_alarm(self) -> None:
        cusum = CUSUM(warmup=10, h=4.0)
        for x in [10.0, 11.0] * 5:
            cusum.update(x)
        state = cusum.to_state()["state"]["baseline"]
        assert state["ready"] and state["target"] == 10.5
        assert state["scale"] == pytest.approx(np.std([10.0, 11.0] * 5, ddof=1))
        hits = cusum.update_many([20.0] * 5)
        assert hits == [0]
        cusum.update(20.0)
        assert not cusum.to_state()["state"]["baseline"]["ready"]  # warming up again

    def test_given_reference_has_no_warmup(self) -> None:
        assert CUSUM(target=0.0, scale=1.0, h=3.0).update_many([5.0]) == [0]

    def test_huge_values_stay_finite(self) -> None:
        cusum = CUSUM(target=0.0, scale=1e-300, h=3.0)
        cusum.update_many([1e300, -1e300, 0.0])
        assert all(
            math.isfinite(v) for v in cusum.to_state()["state"].values() if isinstance(v, float)
        )

    def test_constant_warmup(self) -> None:
        cusum = CUSUM(warmup=5, h=3.0)
        assert cusum.update_many([2.0] * 20) == []
        assert cusum.update_many([2.1]) == [0]

    def test_statistic_and_threshold(self) -> None:
        cusum = CUSUM(target=0.0, scale=1.0, k=0.5, h=5.0)
        cusum.update(2.0)
        assert cusum.statistic == 1.5
        assert cusum.threshold == 5.0
