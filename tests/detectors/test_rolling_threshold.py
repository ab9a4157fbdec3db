"""RollingThreshold: rolling mean / quantile against a reference band, with hysteresis."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.rolling_threshold import RollingThreshold
from tests.detectors._columns import (
    assert_refused_where_one_by_one_stops,
    in_columns,
    one_by_one,
    same_state,
)
from tests.detectors._distribution_checks import (
    calibrated_quiet,
    check_contract,
    first_detection_after,
)


def confidence(rng: np.random.Generator, n: int, a: float = 23.0, b: float = 2.0) -> list[float]:
    return rng.beta(a, b, size=n).tolist()


class TestRollingThreshold:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_contract(self, seed: int) -> None:
        check_contract("rolling_threshold", seed)

    def test_contract_quantile(self) -> None:
        rng = np.random.default_rng(0)
        stream = confidence(rng, 300) + confidence(rng, 300, 8, 4)
        one = RollingThreshold(window_size=20, reference_size=50, aggregate="quantile", k=2.0)
        hits = [i for i, x in enumerate(stream) if one.update(x).drift_detected]
        assert hits
        batch = RollingThreshold(window_size=20, reference_size=50, aggregate="quantile", k=2.0)
        assert batch.update_many(stream) == hits
        assert batch.to_state() == one.to_state()

    @pytest.mark.parametrize("seed", range(5))
    def test_confidence_decay_092_to_065_within_20(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        stream = confidence(rng, 3000) + confidence(rng, 1000, 13, 7)
        delay = first_detection_after(RollingThreshold(direction="lower"), stream, 3000)
        assert delay is not None and delay <= 20

    @pytest.mark.parametrize("seed", range(5))
    def test_small_decay_092_to_0875_within_100(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        stream = confidence(rng, 3000) + confidence(rng, 1000, 21, 3)
        delay = first_detection_after(RollingThreshold(direction="lower"), stream, 3000)
        assert delay is not None and delay <= 100

    @pytest.mark.parametrize("seed", range(5))
    def test_small_decay_lower_quartile_within_150(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        stream = confidence(rng, 3000) + confidence(rng, 1000, 21, 3)
        det = RollingThreshold(direction="lower", aggregate="quantile", quantile=0.25, k=4.0)
        delay = first_detection_after(det, stream, 3000)
        assert delay is not None and delay <= 150

    def test_stable_quiet_at_default_for_50000(self) -> None:
        rng = np.random.default_rng(12)
        assert RollingThreshold().update_many(confidence(rng, 50500)) == []
        assert RollingThreshold(aggregate="quantile").update_many(confidence(rng, 20500)) == []

    def test_stable_quiet_at_calibrated_threshold(self) -> None:
        # Calibrated for ARL0 = 2000 values; 200 fresh values after the reference.
        reference = confidence(np.random.default_rng(20), 5000)
        fresh = confidence(np.random.default_rng(21), 500 + 200)
        k = calibrated_quiet(RollingThreshold(), reference, fresh)
        assert 1.5 < k < 4.0

    def test_hysteresis_needs_patience_checks(self) -> None:
        det = RollingThreshold(window_size=4, reference_size=4, k=1.0, patience=3, tolerance=0.1)
        det.update_many([0.9, 0.9, 0.9, 0.9])
        assert (det.lower, det.upper) == pytest.approx((0.8, 1.0))
        det.update_many([0.9, 0.9, 0.9, 0.9])
        # Window means 0.85 (in), 0.7, 0.55, 0.4: the third check below fires.
        hits = det.update_many([0.7, 0.3, 0.3, 0.3])
        assert hits == [3]
        assert det.consecutive == 0 and det.value < det.lower
        assert det.statistic > det.threshold == 1.0

    def test_brief_excursion_is_no_alarm(self) -> None:
        det = RollingThreshold(window_size=2, reference_size=4, k=1.0, patience=3, tolerance=0.1)
        det.update_many([0.9] * 6)
        # Means 0.55, 0.55, then back to 0.9: two checks out of band, not three.
        assert det.update_many([0.2, 0.9, 0.9, 0.2, 0.9, 0.9]) == []

    def test_check_every(self) -> None:
        det = RollingThreshold(
            window_size=4, reference_size=4, tolerance=0.1, patience=1, check_every=3
        )
        det.update_many([0.9] * 8)
        assert det.update_many([0.1, 0.1, 0.1, 0.1]) == [1]

    def test_quantile_band_from_reference(self) -> None:
        det = RollingThreshold(
            window_size=100, reference_size=1001, aggregate="quantile", quantile=0.5, k=2.0
        )
        det.update_many([i / 1000 for i in range(1001)])
        assert det.center == pytest.approx(0.5)
        assert (det.lower, det.upper) == pytest.approx((0.4, 0.6))

    def test_running_sum_does_not_drift(self) -> None:
        det = RollingThreshold(window_size=7, reference_size=2, k=1e6)
        det.update_many([0.1, 0.2])
        values = np.random.default_rng(0).random(10_003).tolist()
        det.update_many(values)
        assert det.value == pytest.approx(math.fsum(values[-7:]) / 7, abs=1e-15)

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_rejects_non_finite(self, bad: float) -> None:
        with pytest.raises(ValueError):
            RollingThreshold().update(bad)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 1500),
    st.lists(st.integers(1, 300), min_size=1, max_size=20),
    st.sampled_from(["lower", "upper", "both"]),
    st.sampled_from(["mean", "quantile"]),
    st.sampled_from([1, 3]),
)
def test_the_column_path_is_the_per_event_path(
    seed: int, size: int, chunks: list[int], direction: str, aggregate: str, every: int
) -> None:
    """Columns of any length leave the detector in the state ``update`` one by one
    leaves, with the same detections: through the reference, the window's periodic
    exact re-sum, checks every ``check_every`` values, patience and detections."""
    rng = random.Random(seed)
    shift = rng.randrange(size)
    values: list[float] = [
        rng.gauss(0.8, 0.05) if j < shift else rng.gauss(rng.choice([0.6, 0.8, 1.0]), 0.05)
        for j in range(size)
    ]
    params = {
        "window_size": 20,
        "reference_size": 40,
        "direction": direction,
        "aggregate": aggregate,
        "check_every": every,
        "patience": 2,
    }
    one, column = RollingThreshold(**params), RollingThreshold(**params)
    assert in_columns(column, values, chunks) == one_by_one(one, values)
    assert same_state(column, one)


def test_a_refused_value_stops_the_column_where_one_by_one_stops() -> None:
    params = {"window_size": 10, "reference_size": 10}
    values: list[object] = [0.5, 0.6, 0.7] * 20 + [float("nan"), 0.5]
    assert_refused_where_one_by_one_stops(
        lambda: RollingThreshold(**params), values, 60, ValueError
    )
