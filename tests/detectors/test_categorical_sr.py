"""CategoricalSR: the alarm level bounds the ARL0; it finds a class-mix shift."""

from __future__ import annotations

import math
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import CategoricalSR, estimate_arl0
from tests.detectors._columns import (
    assert_refused_where_one_by_one_stops,
    in_columns,
    one_by_one,
    same_state,
)

MIX = [0.45, 0.25, 0.15, 0.10, 0.05]
SHIFTED = [0.35, 0.25, 0.15, 0.15, 0.10]  # total-variation distance 0.10


def classes(rng: np.random.Generator, n: int) -> list[str]:
    return [f"c{c}" for c in rng.choice(5, size=n, p=MIX)]


class TestCategoricalSR:
    def test_the_level_is_arl0_over_stride_plus_one(self) -> None:
        detector = CategoricalSR(arl0=1e5, stride=50)
        assert detector.threshold == 2001.0

    def test_arl0_is_a_lower_bound_of_the_mean_run_length(self) -> None:
        detector = CategoricalSR(reference_size=500, arl0=300.0, stride=10, max_starts=10)
        estimate = estimate_arl0(detector, classes, n_runs=100, max_run_length=30_000, seed=4)
        assert estimate.interval()[0] >= 300, estimate

    def test_a_shift_of_tv_0_10_is_found_within_1000_observations(self) -> None:
        delays = []
        for seed in range(10):
            rng = np.random.default_rng([15, seed])
            stream = classes(rng, 3000) + [f"c{c}" for c in rng.choice(5, size=1500, p=SHIFTED)]
            detector = CategoricalSR(reference_size=2000, arl0=1e5, concentration=100.0)
            after = [i - 3000 for i in detector.update_many(stream) if i >= 3000]
            delays.append(after[0] if after else None)
        assert all(d is not None and d < 1000 for d in delays), delays

    def test_starts_are_kept_up_to_max_starts_and_the_statistic_stays_after_a_detection(
        self,
    ) -> None:
        detector = CategoricalSR(
            reference_size=20, arl0=50.0, concentration=5.0, stride=2, max_starts=3
        )
        for label in ["a", "b"] * 10 + ["a"] * 7:
            detector.update(label)
        state = detector.to_state()["state"]
        assert len(state["starts"]) == 3
        assert [s[0] for s in state["starts"]] == [2, 4, 6]
        hits = detector.update_many(["c"] * 20)  # never seen: "other"
        assert hits
        assert CategoricalSR.from_state(detector.to_state()).to_state() == detector.to_state()
        fresh = CategoricalSR(
            reference_size=20, arl0=50.0, concentration=5.0, stride=2, max_starts=3
        )
        fresh.update_many(["a", "b"] * 10 + ["a"] * 7 + ["c"] * (hits[0] + 1))
        assert fresh.drift_detected
        assert fresh.statistic >= fresh.threshold


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=700),
    st.sampled_from([1e2, 1e3, 1e5]),
    st.sampled_from([0, 1, 5, 17]),
)
def test_the_evidence_summed_when_read_is_the_evidence_summed_every_time(
    stream: list[int], arl0: float, every: int
) -> None:
    """``update`` leaves the sum over starts for later while R cannot reach the level:
    reading it at any point (or never) changes neither the detections nor the state,
    and it is the log-sum of the starts' ratios the snapshot holds."""
    params = {"reference_size": 60, "arl0": arl0, "stride": 5, "max_starts": 6}
    read, unread = CategoricalSR(**params), CategoricalSR(**params)
    for k, cell in enumerate(stream):
        x = "abcd"[cell]
        read.update(x)
        unread.update(x)
        assert read.drift_detected == unread.drift_detected
        if every and k % every == 0:
            read.statistic  # noqa: B018 (the read is the point)
    state = unread.to_state()
    assert state == read.to_state()
    starts = state["state"]["starts"]
    if starts and not read.drift_detected:
        logs = [log_l for _opened, _row, log_l in starts]
        top = max(logs)
        summed = top + math.log(math.fsum(math.exp(v - top) for v in logs))
        assert state["state"]["log_r"] == summed


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(40, 1500),
    st.lists(st.integers(1, 400), min_size=1, max_size=20),
    st.sampled_from([1e1, 1e2, 1e4]),
    st.sampled_from([(1, 1), (3, 4), (7, 20)]),
    st.sampled_from([1, 2, 20]),
)
def test_the_column_path_is_the_per_event_path(
    seed: int,
    size: int,
    chunks: list[int],
    arl0: float,
    stride_starts: tuple[int, int],
    max_categories: int,
) -> None:
    """Columns of any length, cut anywhere (through detections, bound checks that
    need the exact sum, starts opened and dropped mid-column), leave the detector in
    the state ``update`` one by one leaves, with the same detections. From a random
    point on, the mix moves to categories the reference saw rarely or never."""
    stride, max_starts = stride_starts
    params = {
        "reference_size": 40,
        "arl0": arl0,
        "concentration": 20.0,
        "stride": stride,
        "max_starts": max_starts,
        "max_categories": max_categories,
    }
    rng = random.Random(seed)
    shift = rng.randrange(size)
    values = [
        f"c{rng.choice([0, 0, 0, 1, 1, 2]) if k < shift else rng.randrange(5)}" for k in range(size)
    ]
    one, column = CategoricalSR(**params), CategoricalSR(**params)
    assert in_columns(column, values, chunks) == one_by_one(one, values)
    assert same_state(column, one)
    assert column.to_state() == one.to_state()


def test_a_refused_value_stops_the_column_where_one_by_one_stops() -> None:
    params = {"reference_size": 10, "stride": 2, "max_starts": 3}
    values: list[object] = ["a", "b"] * 40 + [float("nan"), "a"]
    assert_refused_where_one_by_one_stops(lambda: CategoricalSR(**params), values, 80, ValueError)


def test_a_long_column_goes_in_runs_and_equals_one_by_one() -> None:
    """A column longer than one run of the column path (its arrays are bounded)."""
    rng = random.Random(5)
    values = [f"c{rng.choice([0, 0, 1, 2]) if k < 4000 else rng.randrange(4)}" for k in range(6000)]
    params = {"reference_size": 300, "arl0": 1e3, "stride": 10, "max_starts": 8}
    one, column = CategoricalSR(**params), CategoricalSR(**params)
    hits_one = one_by_one(one, values)
    assert column.update_many(values) == hits_one
    assert hits_one
    assert same_state(column, one)
