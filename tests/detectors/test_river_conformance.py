"""Detectors named after river's fire at the same indices as river's, on the same
streams and settings (river 0.26: ADWIN in Rust, the others in Python).

Deliberate differences are documented in the detectors and tested at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from river import drift as river_drift

from detectors import ADWIN, DDM, HDDM_A, PageHinkley

SEEDS = [0, 1, 2]
N = 4000


def abrupt(rng: np.random.Generator) -> np.ndarray:
    q = N // 4
    return np.concatenate(
        [rng.normal(0, 1, q), rng.normal(1.0, 1, q), rng.normal(-0.5, 2, q), rng.normal(0, 1, q)]
    )


def gradual(rng: np.random.Generator) -> np.ndarray:
    ramp = np.concatenate([np.zeros(N // 2), np.linspace(0.0, 2.0, N // 2)])
    return ramp + rng.normal(0, 1, N)


def no_drift(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 1, N)


def binary_abrupt(rng: np.random.Generator) -> np.ndarray:
    rates = np.repeat([0.1, 0.35, 0.05, 0.5], N // 4)
    return (rng.random(N) < rates).astype(int)


def binary_gradual(rng: np.random.Generator) -> np.ndarray:
    rates = np.concatenate([np.full(N // 2, 0.1), np.linspace(0.1, 0.5, N // 2)])
    return (rng.random(N) < rates).astype(int)


def binary_no_drift(rng: np.random.Generator) -> np.ndarray:
    return (rng.random(N) < 0.2).astype(int)


NUMERIC = [abrupt, gradual, no_drift]
BINARY = [binary_abrupt, binary_gradual, binary_no_drift]


def trace(detector: Any, stream: list[Any]) -> tuple[list[int], list[int]]:
    """Indices of detections and of warnings."""
    drifts, warnings = [], []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            drifts.append(i)
        if getattr(detector, "warning_detected", False):
            warnings.append(i)
    return drifts, warnings


def check(
    ours: Callable[[], Any], theirs: Callable[[], Any], stream: np.ndarray, warnings: bool
) -> list[int]:
    values = stream.tolist()
    expected, expected_warnings = trace(theirs(), values)
    got, got_warnings = trace(ours(), values)
    assert got == expected
    if warnings:
        assert got_warnings == expected_warnings
    assert ours().update_many(stream) == expected
    return expected


ADWIN_PARAMS: list[dict[str, Any]] = [
    {},
    {"delta": 0.05, "clock": 1, "max_buckets": 2, "min_window_length": 2, "grace_period": 3},
    {"delta": 0.3, "clock": 7, "max_buckets": 3, "min_window_length": 1, "grace_period": 0},
    {"delta": 1e-5, "clock": 64, "max_buckets": 9, "min_window_length": 20, "grace_period": 200},
]
PH_PARAMS: list[dict[str, Any]] = [
    {},
    {"mode": "up"},
    {"mode": "down"},
    {"min_instances": 5, "delta": 0.1, "threshold": 10.0, "alpha": 0.99},
    {"threshold": 25.0, "alpha": 1.0, "delta": 0.0},
]
DDM_PARAMS: list[dict[str, Any]] = [
    {},
    {"warm_start": 5, "warning_threshold": 1.5, "drift_threshold": 2.0},
    {"warm_start": 100, "warning_threshold": 2.5, "drift_threshold": 4.0},
]
HDDM_PARAMS: list[dict[str, Any]] = [
    {},
    {"two_sided_test": True},
    {"drift_confidence": 0.05, "warning_confidence": 0.1, "two_sided_test": True},
    {"drift_confidence": 1e-5, "warning_confidence": 1e-3},
]


@pytest.mark.parametrize("params", ADWIN_PARAMS)
@pytest.mark.parametrize("make", NUMERIC, ids=lambda f: f.__name__)
def test_adwin(make: Callable[[np.random.Generator], np.ndarray], params: dict[str, Any]) -> None:
    fired = 0
    for seed in SEEDS:
        stream = make(np.random.default_rng(seed))
        fired += len(
            check(lambda: ADWIN(**params), lambda: river_drift.ADWIN(**params), stream, False)
        )
    if make is abrupt:
        assert fired, "the abrupt streams must be detected"


@pytest.mark.parametrize("params", PH_PARAMS)
@pytest.mark.parametrize("make", NUMERIC, ids=lambda f: f.__name__)
def test_page_hinkley(
    make: Callable[[np.random.Generator], np.ndarray], params: dict[str, Any]
) -> None:
    for seed in SEEDS:
        stream = make(np.random.default_rng(seed))
        if make is no_drift:
            stream = stream * 3.0  # give the no-drift stream some room
        check(
            lambda: PageHinkley(**params), lambda: river_drift.PageHinkley(**params), stream, False
        )


@pytest.mark.parametrize("params", DDM_PARAMS)
@pytest.mark.parametrize("make", BINARY, ids=lambda f: f.__name__)
def test_ddm(make: Callable[[np.random.Generator], np.ndarray], params: dict[str, Any]) -> None:
    for seed in SEEDS:
        stream = make(np.random.default_rng(seed))
        check(lambda: DDM(**params), lambda: river_drift.binary.DDM(**params), stream, True)


@pytest.mark.parametrize("params", HDDM_PARAMS)
@pytest.mark.parametrize("make", BINARY, ids=lambda f: f.__name__)
def test_hddm_a(make: Callable[[np.random.Generator], np.ndarray], params: dict[str, Any]) -> None:
    for seed in SEEDS:
        stream = make(np.random.default_rng(seed))
        check(lambda: HDDM_A(**params), lambda: river_drift.binary.HDDMA(**params), stream, True)


def test_adwin_window_statistics_match_river() -> None:
    stream = abrupt(np.random.default_rng(9)).tolist()
    ours, theirs = ADWIN(clock=5), river_drift.ADWIN(clock=5)
    for i, x in enumerate(stream):
        ours.update(x)
        theirs.update(x)
        if i % 97 == 0 or theirs.drift_detected:
            assert ours.width == theirs.width
            assert ours.total == theirs.total
            assert ours.variance == theirs.variance
            assert ours.estimation == theirs.estimation


def test_page_hinkley_sums_match_river_to_rounding() -> None:
    """Documented: the fading sums are evaluated in a re-anchored (vectorisable) form,
    equal to river's up to rounding."""
    stream = gradual(np.random.default_rng(4)).tolist()
    ours, theirs = PageHinkley(threshold=1e9), river_drift.PageHinkley(threshold=1e9)
    for x in stream:
        ours.update(x)
        theirs.update(x)
    up = theirs._sum_increase - theirs._min_increase
    down = theirs._max_decrease - theirs._sum_decrease
    assert ours.statistic == pytest.approx(max(up, down), rel=1e-10, abs=1e-9)


# -- deliberate differences -----------------------------------------------------------


def test_adwin_max_buckets_1_river_panics_ours_continues() -> None:
    """river 0.26's Rust ADWIN reads an empty top bucket level after a cut when
    max_buckets=1 and panics; ours skips empty levels (documented in ADWIN)."""
    rng = np.random.default_rng(4)
    stream = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0.8, 1, 3000)])
    params = {"clock": 7, "max_buckets": 1, "min_window_length": 1, "grace_period": 0}
    ours = ADWIN(**params)
    expected, _ = trace(ours, stream.tolist())
    theirs = river_drift.ADWIN(**params)
    river_hits = []
    with pytest.raises(BaseException, match="slice index") as info:
        for i, x in enumerate(stream.tolist()):
            theirs.update(x)
            if theirs.drift_detected:
                river_hits.append(i)
    assert type(info.value).__name__ == "PanicException"
    assert river_hits == [h for h in expected if h < i]  # equal up to the panic
    assert ADWIN(**params).update_many(stream) == expected
    assert i in expected  # ours reports the cut river panicked on
