"""detectors.calibrate: thresholds for a target ARL0, checked on fresh stable streams.

For each calibratable detector: draw a reference sample of 20000 stable events, let
``calibrate`` choose the threshold for the target ARL0 on bootstrap resamples of it,
then simulate run lengths of the calibrated detector on *fresh* streams from the
generating process (other seeds) and require the achieved false-alarm rate to be
within 25 % of the target's (``0.75 <= target / achieved ARL0 <= 1.25``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from detectors import (
    CUSUM,
    EWMA,
    CategoricalDrift,
    EntropyTracker,
    KSWindow,
    PageHinkley,
    RollingThreshold,
    TokenEntropy,
)
from detectors.base import DriftDetector
from detectors.calibrate import (
    CalibrationError,
    bootstrap_sampler,
    calibrate,
    estimate_arl0,
)

Sampler = Callable[[np.random.Generator, int], Sequence[Any]]


def normal(rng: np.random.Generator, n: int) -> list[float]:
    return rng.normal(0.0, 1.0, size=n).tolist()


def confidence(rng: np.random.Generator, n: int) -> list[float]:
    return rng.beta(23.0, 2.0, size=n).tolist()


def classes(rng: np.random.Generator, n: int) -> list[str]:
    return [f"c{c}" for c in rng.choice(5, size=n, p=[0.4, 0.25, 0.15, 0.12, 0.08])]


def logprobs(rng: np.random.Generator, n: int) -> list[list[float]]:
    sizes = rng.integers(5, 20, size=n)
    return [(-rng.exponential(1.0, size=int(s))).tolist() for s in sizes]


@dataclass(frozen=True)
class Case:
    prototype: Callable[[], DriftDetector[Any]]
    sampler: Sampler


def BASELINE_RNG() -> np.random.Generator:
    return np.random.default_rng(5)


# Starting thresholds are rough guesses (within a factor of ~2 of the answer), as a
# user would give; learned references are short to keep the simulation cheap.
CASES: dict[str, Case] = {
    "page_hinkley": Case(lambda: PageHinkley(delta=0.1, threshold=10.0), normal),
    "cusum": Case(lambda: CUSUM(k=0.5, h=4.0, target=0.0, scale=1.0), normal),
    "ewma": Case(lambda: EWMA(lam=0.1, L=2.5, target=0.0, scale=1.0), normal),
    "ks_window": Case(
        lambda: KSWindow(
            alpha=1e-2, window_size=50, baseline=normal(BASELINE_RNG(), 200), stride=10
        ),
        normal,
    ),
    "entropy": Case(lambda: EntropyTracker(window_size=100, reference_size=200, k=3.0), classes),
    "rolling_threshold": Case(
        lambda: RollingThreshold(window_size=50, reference_size=200, patience=2, k=3.0),
        confidence,
    ),
    "categorical_drift": Case(
        lambda: CategoricalDrift(
            reference={"c0": 0.4, "c1": 0.25, "c2": 0.15, "c3": 0.12, "c4": 0.08},
            window_size=200,
            alpha=0.01,
        ),
        classes,
    ),
    "token_entropy": Case(lambda: TokenEntropy(reference_size=200, h=4.0), logprobs),
}
TARGET = 500
RUNS = 300


@pytest.mark.parametrize("name", sorted(CASES))
def test_achieved_false_alarm_rate_within_25_percent(name: str) -> None:
    case = CASES[name]
    reference = case.sampler(np.random.default_rng(100), 20_000)
    result = calibrate(case.prototype(), reference, TARGET, n_runs=RUNS, seed=0)
    assert result.estimate.n_runs == RUNS
    assert abs(math.log(result.arl0 / TARGET)) < 0.1  # on the resamples
    fresh = estimate_arl0(
        result.build(), case.sampler, n_runs=RUNS, max_run_length=10 * TARGET, seed=7
    )
    ratio = TARGET / fresh.arl0  # achieved false-alarm rate / target rate
    assert 0.75 <= ratio <= 1.25, (name, result.threshold, fresh)


class TestCalibrate:
    """Behaviour of the search itself, on cheap settings."""

    def test_deterministic_and_named(self) -> None:
        reference = normal(np.random.default_rng(1), 2000)
        a = calibrate(CUSUM(h=3.0, target=0.0, scale=1.0), reference, 200, n_runs=40, seed=3)
        b = calibrate(
            "cusum",
            reference,
            200,
            params={"h": 3.0, "target": 0.0, "scale": 1.0},
            n_runs=40,
            seed=3,
        )
        assert a == b
        assert a.detector == "cusum" and a.threshold_param == "h"
        assert a.params["h"] == a.threshold and a.params["k"] == 0.5
        built = a.build()
        assert isinstance(built, CUSUM) and built.h == a.threshold
        lo, hi = a.estimate.interval()
        assert lo < a.arl0 < hi
        assert a.estimate.false_alarm_rate == pytest.approx(1 / a.arl0)

    def test_decreasing_threshold_direction(self) -> None:
        # alpha: a larger value means more alarms; the search goes the other way.
        reference = classes(np.random.default_rng(2), 3000)
        proto = CategoricalDrift(window_size=50, reference_size=200, alpha=1e-6)
        result = calibrate(proto, reference, 300, n_runs=40, seed=0)
        assert 1e-6 < result.threshold < 0.5
        assert abs(math.log(result.arl0 / 300)) < 0.15

    def test_warmup_defaults_to_learning_period(self) -> None:
        reference = confidence(np.random.default_rng(3), 2000)
        proto = RollingThreshold(window_size=20, reference_size=150)
        result = calibrate(proto, reference, 200, n_runs=20, seed=0)
        assert result.warmup == 150
        given = CASES["categorical_drift"].prototype()
        assert calibrate(given, classes(np.random.default_rng(0), 500), 800, n_runs=10).warmup == 0

    @pytest.mark.parametrize(
        "method,block", [("bootstrap", 1), ("bootstrap", 7), ("permutation", 1)]
    )
    def test_resampling(self, method: str, block: int) -> None:
        reference = list(range(20))
        make = bootstrap_sampler(reference, method=method, block_size=block)  # type: ignore[arg-type]
        draw = make(np.random.default_rng(0))
        first = list(draw(15)) + list(draw(30))
        again = make(np.random.default_rng(0))
        assert list(again(15)) + list(again(30)) == first
        assert set(first) <= set(reference)
        if method == "permutation":
            assert sorted(first[:20]) == reference
        if block == 7:
            assert first[1] == first[0] + 1

    def test_array_references(self) -> None:
        vectors = np.random.default_rng(0).normal(size=(50, 3))
        draw = bootstrap_sampler(vectors)(np.random.default_rng(1))
        rows = draw(4)
        assert len(rows) == 4 and all(len(r) == 3 for r in rows)

    def test_errors(self) -> None:
        reference = normal(np.random.default_rng(0), 100)
        with pytest.raises(CalibrationError, match="target_arl0"):
            calibrate(CUSUM(), reference, 1)
        with pytest.raises(CalibrationError, match="n_runs"):
            calibrate(CUSUM(), reference, 100, n_runs=2)
        with pytest.raises(CalibrationError, match="params"):
            calibrate(CUSUM(), reference, 100, params={"h": 1.0})
        with pytest.raises(CalibrationError, match="block_size"):
            calibrate(CUSUM(), reference, 100, block_size=1000)
        with pytest.raises(CalibrationError, match="reference"):
            calibrate(CUSUM(), reference[:1], 100)
        from detectors import OutputDiversity

        class NoThreshold(OutputDiversity):
            threshold_param = None

        with pytest.raises(CalibrationError, match="threshold_param"):
            calibrate(NoThreshold(), ["a", "b"], 100)

    def test_unreachable_target(self) -> None:
        # Alarms need a full window of 50: an ARL0 of 10 is impossible for alpha < 1.
        reference = classes(np.random.default_rng(0), 1000)
        proto = CategoricalDrift(window_size=50, reference_size=100, alpha=0.01)
        with pytest.raises(CalibrationError):
            calibrate(proto, reference, 10, n_runs=10, max_iter=25)
