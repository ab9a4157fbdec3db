"""ADWIN beyond the shared contract and the river conformance suite."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift as river_drift

from detectors import ADWIN, StateError


def hits(detector: ADWIN, values: list[float]) -> list[int]:
    return [i for i, x in enumerate(values) if detector.update(x).drift_detected]


class TestADWIN:
    def test_tiny_windows_match_river(self) -> None:
        params = {"grace_period": 0, "clock": 1, "min_window_length": 1, "delta": 0.5}
        for seed in range(10):
            rng = np.random.default_rng(seed)
            values = (rng.normal(size=120) + np.repeat([0.0, 4.0, 0.0], 40)).tolist()
            theirs = river_drift.ADWIN(**params)
            expected = []
            for i, x in enumerate(values):
                theirs.update(x)
                if theirs.drift_detected:
                    expected.append(i)
            assert hits(ADWIN(**params), values) == expected
            assert ADWIN(**params).update_many(values) == expected

    @settings(max_examples=25, deadline=None, derandomize=True)
    @given(
        seed=st.integers(0, 2**32 - 1),
        plan=st.lists(st.tuples(st.booleans(), st.integers(1, 700)), min_size=1, max_size=8),
        clock=st.sampled_from([1, 3, 32]),
    )
    def test_mixing_update_and_update_many(
        self, seed: int, plan: list[tuple[bool, int]], clock: int
    ) -> None:
        rng = np.random.default_rng(seed)
        total = sum(n for _, n in plan)
        values = (rng.normal(size=total) + 2.0 * (np.arange(total) // 300 % 2)).tolist()
        expected_detector = ADWIN(clock=clock, delta=0.05)
        expected = hits(expected_detector, values)
        mixed = ADWIN(clock=clock, delta=0.05)
        got: list[int] = []
        start = 0
        for batch, n in plan:
            part = values[start : start + n]
            if batch:
                got += [start + i for i in mixed.update_many(np.asarray(part))]
            else:
                got += [start + i for i in hits(mixed, part)]
            start += n
        assert got == expected
        assert mixed.to_state() == expected_detector.to_state()

    def test_bounded_memory(self) -> None:
        adwin = ADWIN(max_buckets=5)
        values = np.random.default_rng(0).uniform(size=50_000)
        for x in values[:20_000].tolist():
            adwin.update(x)
        adwin.update_many(values[20_000:])
        state = adwin.to_state()["state"]
        assert state["width"] == 50_000  # no change, no cut
        levels = state["bucket_totals"]
        assert len(levels) <= math.log2(50_000) + 1
        assert all(len(level) <= 5 for level in levels)
        # the Python engine defers up to ``clock`` values; the compiled one inserts at once
        assert len(getattr(adwin, "_pending", ())) <= adwin.clock

    def test_window_statistics(self) -> None:
        adwin = ADWIN()
        assert math.isnan(adwin.statistic)
        assert adwin.estimation == 0.0
        for x in [1.0, 2.0, 3.0, 4.0, 5.0]:
            adwin.update(x)
        assert adwin.width == 5
        assert adwin.total == 15.0
        assert adwin.variance == pytest.approx(10.0)
        assert adwin.estimation == adwin.statistic == 3.0
        assert adwin.threshold == adwin.delta

    def test_restarts_after_detection(self) -> None:
        adwin = ADWIN()
        for x in [0.0] * 200 + [10.0] * 64:
            if adwin.update(x).drift_detected:
                break
        else:
            pytest.fail("no detection")
        assert 0 < adwin.width < 264  # the cut dropped the oldest buckets
        adwin.update(10.0)
        assert adwin.width == 1 and not adwin.drift_detected

    def test_rejects_tampered_snapshots(self) -> None:
        adwin = ADWIN()
        adwin.update_many(np.arange(100.0))
        snapshot = adwin.to_state()
        bad_width = {**snapshot, "state": {**snapshot["state"], "width": 99}}
        with pytest.raises(StateError):
            ADWIN.from_state(bad_width)
        levels = [list(level) for level in snapshot["state"]["bucket_totals"]]
        levels[0].append(1.0)
        bad_levels = {**snapshot, "state": {**snapshot["state"], "bucket_totals": levels}}
        with pytest.raises(StateError):
            ADWIN.from_state(bad_levels)
        bad_value = {**snapshot, "state": {**snapshot["state"], "total": "1"}}
        with pytest.raises(StateError):
            ADWIN.from_state(bad_value)

    def test_rejects_non_numbers(self) -> None:
        with pytest.raises(ValueError):
            ADWIN().update(float("nan"))
        with pytest.raises(ValueError):
            ADWIN().update_many([1.0, float("inf")])
        adwin = ADWIN()
        with pytest.raises(ValueError):
            adwin.update_many([1.0, 2.0, float("nan")])
        assert adwin.width == 0  # a rejected batch consumes nothing


def test_batch_matches_river_on_random_settings() -> None:
    """update_many against river over random parameters and awkward streams
    (heavy tails, large integers, binary), where cuts are frequent."""
    rng = np.random.default_rng(123)
    for trial in range(40):
        params = {
            "delta": float(rng.choice([0.5, 0.1, 0.01, 0.002])),
            "clock": int(rng.choice([1, 2, 5, 32])),
            "max_buckets": int(rng.integers(2, 8)),
            "min_window_length": int(rng.integers(1, 12)),
            "grace_period": int(rng.integers(0, 50)),
        }
        n = int(rng.integers(100, 2500))
        kind = trial % 4
        if kind == 0:
            period = int(rng.integers(50, 1000))
            values = rng.normal(size=n) + rng.choice([0, 1, 3]) * (np.arange(n) // period % 2)
        elif kind == 1:
            values = (rng.random(n) < np.where(np.arange(n) % 700 < 350, 0.2, 0.6)).astype(float)
        elif kind == 2:
            values = np.round(rng.normal(size=n) * 3) * 1e6
        else:
            values = rng.standard_cauchy(n)
        theirs = river_drift.ADWIN(**params)
        expected = []
        for i, x in enumerate(values.tolist()):
            theirs.update(x)
            if theirs.drift_detected:
                expected.append(i)
        assert ADWIN(**params).update_many(values) == expected, params
