"""EntropyTracker: window entropy in O(1) per event against a learned band."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.entropy import EntropyTracker
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
    roundtrip,
)


def uniform(rng: np.random.Generator, n: int, k: int = 8) -> list[str]:
    return [f"c{c}" for c in rng.integers(0, k, size=n)]


def collapsed(rng: np.random.Generator, n: int) -> list[str]:
    return [f"c{c}" for c in rng.choice(8, size=n, p=[0.45, 0.45] + [0.1 / 6] * 6)]


class TestEntropyTracker:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_contract(self, seed: int) -> None:
        check_contract("entropy", seed)

    def test_entropy_is_exact(self) -> None:
        rng = np.random.default_rng(3)
        stream = uniform(rng, 1300, k=5)
        det = EntropyTracker(window_size=300, reference_size=1000, k=50.0)
        det.update_many(stream)
        _, counts = np.unique(stream[-300:], return_counts=True)
        p = counts / 300
        assert det.entropy == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-12)

    @pytest.mark.parametrize("seed", range(5))
    def test_detects_collapse_within_100(self, seed: int) -> None:
        # 8 equally likely classes, then 90 % of the mass on two of them.
        rng = np.random.default_rng(seed)
        stream = uniform(rng, 3000) + collapsed(rng, 1000)
        delay = first_detection_after(EntropyTracker(direction="lower"), stream, 3000)
        assert delay is not None and delay <= 100

    @pytest.mark.parametrize("seed", range(5))
    def test_detects_confusion_within_20(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        stream = uniform(rng, 3000, k=4) + uniform(rng, 500, k=16)
        delay = first_detection_after(EntropyTracker(direction="upper"), stream, 3000)
        assert delay is not None and delay <= 20

    def test_direction_filters(self) -> None:
        rng = np.random.default_rng(0)
        stream = uniform(rng, 3000, k=4) + uniform(rng, 500, k=16)
        assert EntropyTracker(direction="lower").update_many(stream) == []

    def test_stable_quiet_at_default_for_20000(self) -> None:
        rng = np.random.default_rng(10)
        assert EntropyTracker().update_many(uniform(rng, 21000)) == []

    def test_stable_quiet_at_calibrated_threshold(self) -> None:
        # Calibrated for ARL0 = 2000 events; 200 fresh events after the reference.
        reference = uniform(np.random.default_rng(20), 5000)
        fresh = uniform(np.random.default_rng(21), 1000 + 200)
        k = calibrated_quiet(EntropyTracker(), reference, fresh)
        assert 1.0 < k < 5.0

    def test_refires_every_window_while_collapsed(self) -> None:
        rng = np.random.default_rng(4)
        stream = uniform(rng, 1500) + ["c0"] * 1000
        hits = EntropyTracker().update_many(stream)
        assert len(hits) >= 4
        assert set(np.diff(hits[1:]).tolist()) == {200}

    def test_evidence(self) -> None:
        det = EntropyTracker(window_size=50, reference_size=100)
        assert math.isnan(det.statistic) and det.is_learning
        det.update_many(uniform(np.random.default_rng(0), 100))
        assert not det.is_learning
        assert det.reference_entropy == pytest.approx(math.log(8), abs=0.1)
        assert det.lower < det.center < det.upper
        hits = det.update_many(["c1"] * 50)
        assert hits == [49]
        assert det.entropy == 0.0 and det.statistic > det.threshold == det.k
        assert det.z_score < 0

    def test_single_category_reference(self) -> None:
        det = EntropyTracker(window_size=20, reference_size=20)
        assert det.update_many(["x"] * 60) == []
        assert det.scale == pytest.approx(1 / 20)
        assert det.update_many(["x"] * 10 + ["y"] * 10) != []

    def test_categories_keyed_by_value(self) -> None:
        det = EntropyTracker(window_size=4, reference_size=4)
        det.update_many([1, "1", 1.0, True])
        assert det.to_state()["state"]["window"] == []
        det.update_many([1, "1", 1.0, True])
        assert det.to_state()["state"]["window"] == ["1", "1", "1", "true"]

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_rejects_non_finite(self, bad: float) -> None:
        with pytest.raises(ValueError):
            EntropyTracker().update(bad)

    def test_rejects_other_types(self) -> None:
        with pytest.raises(TypeError):
            EntropyTracker().update(1.5)
        with pytest.raises(TypeError):
            EntropyTracker().update(None)

    def test_state_is_plain_json_and_validated(self) -> None:
        det = EntropyTracker(window_size=10, reference_size=10)
        det.update_many(uniform(np.random.default_rng(0), 15))
        again = roundtrip(det)
        assert again.to_state() == det.to_state()
        bad = det.to_state()
        bad["state"]["window"] = ["a"] * 11
        from detectors.base import StateError

        with pytest.raises(StateError):
            EntropyTracker.from_state(bad)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 1500),
    st.lists(st.integers(1, 300), min_size=1, max_size=20),
    st.sampled_from(["lower", "upper", "both"]),
    st.sampled_from([1.0, 3.0]),
)
def test_the_column_path_is_the_per_event_path(
    seed: int, size: int, chunks: list[int], direction: str, k: float
) -> None:
    """Columns of any length leave the tracker in the state ``update`` one by one
    leaves, with the same detections: through the reference, full windows, codes
    freed and reused as categories leave and come back, and detections."""
    rng = random.Random(seed)
    shift = rng.randrange(size)
    values = [
        f"c{rng.choice([0, 0, 0, 1, 1, 2, 3]) if j < shift else rng.choice([0, 4, 5, 6, 7])}"
        for j in range(size)
    ]
    params = {"window_size": 25, "reference_size": 40, "k": k, "direction": direction}
    one, column = EntropyTracker(**params), EntropyTracker(**params)
    assert in_columns(column, values, chunks) == one_by_one(one, values)
    assert same_state(column, one)


def test_a_refused_value_stops_the_column_where_one_by_one_stops() -> None:
    params = {"window_size": 10, "reference_size": 10}
    values: list[object] = ["a", "b", "b"] * 20 + [float("inf"), "a"]
    assert_refused_where_one_by_one_stops(lambda: EntropyTracker(**params), values, 60, ValueError)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 400))
def test_a_full_window_reports_its_own_entropy(seed: int, extra: int) -> None:
    """After any column, a full window's ``entropy`` is the plug-in entropy of its
    last ``window_size`` values and ``statistic`` its distance from the band."""
    rng = random.Random(seed)
    tracker = EntropyTracker(window_size=25, reference_size=40, k=50.0)
    values = [f"c{rng.choice([0, 0, 1, 2, 3, rng.randrange(40)])}" for _ in range(65 + extra)]
    tracker.update_many(values)
    window = values[-25:]
    counts = [window.count(c) for c in set(window)]
    expected = -sum(n / 25 * math.log(n / 25) for n in counts)
    assert tracker.entropy == pytest.approx(expected, abs=1e-9)
    z = (tracker.entropy - tracker._center) / tracker._scale
    assert tracker.statistic == abs(z)


def test_categories_that_leave_the_window_free_their_codes() -> None:
    """Memory follows the window, not the categories ever seen."""
    tracker = EntropyTracker(window_size=25, reference_size=40, k=1e9)
    tracker.update_many([f"c{j % 3}" for j in range(40)])
    tracker.update_many([f"new{j}" for j in range(5000)])
    assert len(tracker._keys) <= 26 and len(tracker._code) == 25
