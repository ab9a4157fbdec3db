"""KSWindow: exact statistic, Kolmogorov p-values, test schedule, references."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from detectors import KSWindow
from detectors.ks_window import kolmogorov_sf

small_values = st.lists(
    st.one_of(st.integers(-3, 3).map(float), st.floats(-5, 5)), min_size=1, max_size=40
)


def brute_force(values: list[float], alpha: float, n: int, m: int, mode: str) -> list[int]:
    """Recompute the KS test from scratch with scipy at every observation."""
    ref: deque[float] = deque()
    win: deque[float] = deque()
    out = []
    for i, x in enumerate(values):
        if mode == "fixed":
            if len(ref) < m:
                ref.append(x)
                continue
            win.append(x)
            if len(win) > n:
                win.popleft()
        else:
            win.append(x)
            if len(win) > n:
                ref.append(win.popleft())
                if len(ref) > m:
                    ref.popleft()
        if len(win) == n and len(ref) == m:
            d = stats.ks_2samp(list(ref), list(win)).statistic
            if special.kolmogorov(math.sqrt(m * n / (m + n)) * d) <= alpha:
                out.append(i)
                win.clear()
                ref.clear()
    return out


class TestKSWindow:
    @pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")
    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(reference=small_values, window=small_values)
    def test_statistic_is_exact(self, reference: list[float], window: list[float]) -> None:
        ks = KSWindow(window_size=len(window), baseline=reference)
        for x in window:
            ks.update(x)
        expected = stats.ks_2samp(reference, window).statistic
        assert ks.statistic == pytest.approx(expected, abs=1e-12)
        en = len(reference) * len(window) / (len(reference) + len(window))
        assert ks.p_value == pytest.approx(special.kolmogorov(math.sqrt(en) * expected), abs=1e-12)

    @pytest.mark.parametrize("x", [0.0, 0.05, 0.3, 0.7, 0.99, 1.0, 1.01, 1.5, 2.5, 4.0, 8.0])
    def test_kolmogorov_sf(self, x: float) -> None:
        assert kolmogorov_sf(x) == pytest.approx(special.kolmogorov(x), abs=1e-14)

    @pytest.mark.parametrize("mode", ["fixed", "sliding"])
    @pytest.mark.parametrize("seed", [0, 1])
    def test_detections_equal_a_from_scratch_scipy_test(self, mode: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        values = np.round(
            np.concatenate([rng.normal(0, 1, 700), rng.normal(0, 2.5, 700), rng.normal(1, 1, 600)]),
            1,  # ties
        ).tolist()
        n, m, alpha = 40, 60, 0.01
        expected = brute_force(values, alpha, n, m, mode)
        assert expected
        ks = KSWindow(alpha=alpha, window_size=n, reference_size=m, mode=mode)  # type: ignore[arg-type]
        assert [i for i, x in enumerate(values) if ks.update(x).drift_detected] == expected

    def test_stride(self) -> None:
        values = [0.0] * 30 + [5.0] * 30
        every = KSWindow(alpha=0.01, window_size=10, reference_size=30)
        fifth = KSWindow(alpha=0.01, window_size=10, reference_size=30, stride=5)
        first_every = every.update_many(values)[0]
        first_fifth = fifth.update_many(values)[0]
        assert first_every <= first_fifth < first_every + 5
        assert (first_fifth - 39) % 5 == 0  # tests at 39, 44, ... (both full at 39)

    def test_baseline_is_kept_after_a_detection(self) -> None:
        ks = KSWindow(alpha=0.01, window_size=20, baseline=[0.0, 1.0, 2.0, 3.0] * 10)
        shifted = [10.0] * 100
        hits = ks.update_many(shifted)
        assert hits == [19, 39, 59, 79, 99]  # the window refills, the baseline stays

    def test_first_n_reference_is_retaken_after_a_detection(self) -> None:
        ks = KSWindow(alpha=0.01, window_size=20, reference_size=40)
        values = [float(i % 4) for i in range(40)] + [10.0] * 200
        assert ks.update_many(values) == [59]  # then the new regime is the reference

    def test_bounded_memory(self) -> None:
        ks = KSWindow(window_size=50, reference_size=70, mode="sliding")
        ks.update_many(np.random.default_rng(0).normal(size=5000))
        state = ks.to_state()["state"]
        assert len(state["window"]) <= 50 and len(state["reference"]) <= 70

    def test_not_ready(self) -> None:
        ks = KSWindow()
        assert math.isnan(ks.statistic) and ks.p_value is None
        assert ks.threshold == ks.alpha
        assert KSWindow.threshold_increases_run_length is False
