"""CategoricalDrift: chi-square of a window against a reference, PSI, JS, unseen."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from detectors.categorical_drift import CategoricalDrift
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

ANIMALS = ["cat", "dog", "bird"]
REFERENCE = {"cat": 6.0, "dog": 3.0, "bird": 1.0}


def animals(rng: np.random.Generator, n: int, p: list[float]) -> list[str]:
    return [str(x) for x in rng.choice(ANIMALS, size=n, p=p)]


class TestCategoricalDrift:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_contract(self, seed: int) -> None:
        check_contract("categorical_drift", seed)

    def test_statistic_and_evidence_match_scipy(self) -> None:
        rng = np.random.default_rng(0)
        det = CategoricalDrift(reference=REFERENCE, window_size=200, alpha=0.5)
        stream = animals(rng, 199, [0.5, 0.3, 0.2])
        det.update_many(stream)
        det.update("cat")
        if det.drift_detected:  # the window was the one checked
            pass
        window = [*stream, "cat"][-200:]
        observed = np.array([window.count(a) for a in ANIMALS] + [0])
        probs = np.array(list(det.reference_probabilities.values()))
        want = stats.chisquare(observed, probs * 200)
        assert det.statistic == pytest.approx(want.statistic, rel=1e-9)
        assert det.p_value == pytest.approx(want.pvalue, rel=1e-8)
        assert det.degrees_of_freedom == 3
        assert det.js_distance == pytest.approx(
            jensenshannon(observed / 200, probs, base=2), rel=1e-9
        )
        q = (observed + 0.5) / (200 + 0.5 * 4)
        assert det.psi == pytest.approx(float(((q - probs) * np.log(q / probs)).sum()))

    def test_threshold_is_critical_value(self) -> None:
        det = CategoricalDrift(reference=REFERENCE, alpha=1e-3)
        assert det.threshold == pytest.approx(stats.chi2.isf(1e-3, 3), rel=1e-10)

    @pytest.mark.parametrize("seed", range(5))
    def test_detects_mix_shift_within_400(self, seed: int) -> None:
        # 60/30/10 -> 45/30/25, window 500, default alpha.
        rng = np.random.default_rng(seed)
        stream = animals(rng, 4000, [0.6, 0.3, 0.1]) + animals(rng, 2000, [0.45, 0.3, 0.25])
        det = CategoricalDrift(reference=REFERENCE)
        delay = first_detection_after(det, stream, 4000)
        assert delay is not None and delay <= 400
        assert det.p_value is not None and det.p_value < det.alpha
        assert det.psi > 0.05 and det.js_distance > 0.05

    @pytest.mark.parametrize("seed", range(3))
    def test_detects_unseen_category_within_250(self, seed: int) -> None:
        # A class the learned reference never saw takes 5 % of the traffic.
        rng = np.random.default_rng(seed)
        stream = animals(rng, 4000, [0.6, 0.3, 0.1])
        for x in animals(rng, 2000, [0.6, 0.3, 0.1]):
            stream.append("fish" if rng.random() < 0.05 else x)
        det = CategoricalDrift()
        delay = first_detection_after(det, stream, 4000)
        assert delay is not None and delay <= 250
        assert det.unseen_count > 5 and det.unseen_categories == ["fish"]
        assert det.unseen_total >= det.unseen_count

    def test_single_unseen_event_is_no_alarm(self) -> None:
        rng = np.random.default_rng(1)
        det = CategoricalDrift(reference=REFERENCE)
        stream = animals(rng, 3000, [0.6, 0.3, 0.1])
        stream[1500] = "zebra"
        assert det.update_many(stream) == []
        assert det.unseen_total == 1 and det.unseen_categories == ["zebra"]

    def test_stable_quiet_at_default_for_50000(self) -> None:
        rng = np.random.default_rng(13)
        det = CategoricalDrift(reference=REFERENCE)
        assert det.update_many(animals(rng, 50000, [0.6, 0.3, 0.1])) == []

    def test_stable_quiet_at_calibrated_threshold(self) -> None:
        # Calibrated for ARL0 = 2000 events; 200 fresh events (learned reference first).
        reference = animals(np.random.default_rng(20), 5000, [0.6, 0.3, 0.1])
        fresh = animals(np.random.default_rng(21), 2000 + 200, [0.6, 0.3, 0.1])
        alpha = calibrated_quiet(CategoricalDrift(), reference, fresh)
        assert 1e-4 < alpha < 0.2

    def test_many_categories_top_k_and_other(self) -> None:
        rng = np.random.default_rng(2)
        zipf = np.minimum(rng.zipf(1.3, size=20000), 100000)
        det = CategoricalDrift(window_size=1000, reference_size=10000, max_categories=20)
        assert det.update_many(zipf.tolist()) == []
        assert len(det.categories) == 20
        assert det.degrees_of_freedom == 20
        assert sum(det.reference_probabilities.values()) == pytest.approx(1.0)
        assert len(roundtrip(det).to_state()["state"]["known"]) > 20

    def test_rare_reference_category_is_known_not_unseen(self) -> None:
        det = CategoricalDrift(reference={"a": 100, "b": 100, "rare": 1}, max_categories=2)
        det.update_many(["rare", "c"])
        assert det.unseen_total == 1 and det.unseen_categories == ["c"]

    @pytest.mark.parametrize("bad", [math.nan, math.inf])
    def test_rejects_non_finite(self, bad: float) -> None:
        with pytest.raises(ValueError):
            CategoricalDrift().update(bad)

    def test_given_reference_state_is_small(self) -> None:
        det = CategoricalDrift(reference=REFERENCE, window_size=50)
        det.update_many(["cat"] * 10)
        state = det.to_state()["state"]
        assert state["cells"] is None and state["probs"] is None
        assert state["window"] == [0] * 10


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 1500),
    st.lists(st.integers(1, 300), min_size=1, max_size=20),
    st.sampled_from([1e-2, 1e-4, 1e-12]),
    st.sampled_from([1, 3, 50]),
)
def test_the_column_path_is_the_per_event_path(
    seed: int, size: int, chunks: list[int], alpha: float, max_categories: int
) -> None:
    """Columns of any length leave the detector in the state ``update`` one by one
    leaves, with the same detections: through the reference, full windows, detections
    (which clear the window) and categories the reference never saw."""
    rng = random.Random(seed)
    shift = rng.randrange(size)
    rare = rng.choice([0.0, 0.05])  # unseen categories now and then, within a window
    values = [
        f"c{rng.choice([0, 0, 0, 1, 1, 2]) if k < shift else rng.randrange(12)}"
        if rng.random() >= rare or k < 40
        else f"new{rng.randrange(5)}"
        for k in range(size)
    ]
    params = {
        "window_size": 30,
        "reference_size": 40,
        "alpha": alpha,
        "max_categories": max_categories,
    }
    one, column = CategoricalDrift(**params), CategoricalDrift(**params)
    assert in_columns(column, values, chunks) == one_by_one(one, values)
    assert same_state(column, one)


def test_a_refused_value_stops_the_column_where_one_by_one_stops() -> None:
    params = {"window_size": 10, "reference_size": 10}
    values: list[object] = ["a", "b", "b"] * 20 + [["not", "a", "category"], "a"]
    assert_refused_where_one_by_one_stops(lambda: CategoricalDrift(**params), values, 60, TypeError)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "b"] * 6 + ["new1", "new2"]), min_size=1, max_size=200))
def test_unseen_count_is_the_unseen_values_in_the_window(tail: list[str]) -> None:
    """Once a window is full, ``unseen_count`` counts the window's values whose
    category the reference never saw (they leave with the window)."""
    detector = CategoricalDrift(window_size=20, reference_size=40, alpha=1e-12)
    detector.update_many(["a", "b"] * 20)
    window: list[str] = []
    for x in tail:
        detector.update(x)
        window = [*window, x][-20:]
        if detector.drift_detected:
            window = []
        elif len(window) == 20:
            assert detector.unseen_count == sum(v.startswith("new") for v in window)
