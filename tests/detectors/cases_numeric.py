"""Contract cases of the numeric stream detectors (ADWIN, Page-Hinkley, KSWindow,
CUSUM, EWMA, DDM, HDDM_A)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors import ADWIN, CUSUM, DDM, EWMA, HDDM_A, KSWindow, PageHinkley
from tests.detectors.contract import ContractCase

__all__ = ["CASES"]

NAN = float("nan")


def mean_shifts(rng: np.random.Generator, n: int) -> Sequence[Any]:
    """Unit-variance noise whose mean jumps by 3 every quarter of the stream."""
    levels = np.repeat([0.0, 3.0, 0.0, 3.0], -(-n // 4))[:n]
    return (levels + rng.normal(0.0, 1.0, n)).tolist()


def spread_change(rng: np.random.Generator, n: int) -> Sequence[Any]:
    """Same mean, standard deviation 1 then 4 (for distribution tests)."""
    half = n // 2
    return np.concatenate([rng.normal(0, 1, half), rng.normal(0, 4, n - half)]).tolist()


def error_bursts(rng: np.random.Generator, n: int) -> Sequence[Any]:
    """Binary errors at a rate of 0.1, then 0.6, then 0.1, then 0.6."""
    rates = np.repeat([0.1, 0.6, 0.1, 0.6], -(-n // 4))[:n]
    return (rng.random(n) < rates).astype(int).tolist()


CASES: dict[str, ContractCase] = {
    "adwin": ContractCase(
        factory=lambda: ADWIN(delta=0.05, clock=4, min_window_length=3, grace_period=5),
        stream=mean_shifts,
        invalid=[
            ({"delta": 0.0}, "delta"),
            ({"delta": 1.5}, "delta"),
            ({"delta": NAN}, "delta"),
            ({"clock": 0}, "clock"),
            ({"clock": 2.5}, "clock"),
            ({"max_buckets": 0}, "max_buckets"),
            ({"min_window_length": 0}, "min_window_length"),
            ({"grace_period": -1}, "grace_period"),
        ],
    ),
    "page_hinkley": ContractCase(
        factory=lambda: PageHinkley(min_instances=10, delta=0.01, threshold=15.0),
        stream=mean_shifts,
        invalid=[
            ({"min_instances": 0}, "min_instances"),
            ({"delta": -0.1}, "delta"),
            ({"threshold": 0.0}, "threshold"),
            ({"threshold": float("inf")}, "threshold"),
            ({"alpha": 0.0}, "alpha"),
            ({"alpha": 1.01}, "alpha"),
            ({"mode": "sideways"}, "mode"),
        ],
    ),
    "ks_window": ContractCase(
        factory=lambda: KSWindow(alpha=0.01, window_size=20, reference_size=30),
        stream=spread_change,
        invalid=[
            ({"alpha": 0.0}, "alpha"),
            ({"alpha": 1.0}, "alpha"),
            ({"window_size": 0}, "window_size"),
            ({"reference_size": 0}, "reference_size"),
            ({"mode": "rolling"}, "mode"),
            ({"stride": 0}, "stride"),
            ({"baseline": []}, "baseline"),
            ({"baseline": [1.0, NAN]}, "baseline"),
            ({"baseline": [1.0, 2.0], "mode": "sliding"}, "baseline"),
            ({"baseline": [1.0, 2.0], "reference_size": 3}, "reference_size"),
            ({"reference_knots": 0}, "reference_knots"),
            ({"reference_knots": 8, "mode": "sliding"}, "reference_knots"),
        ],
    ),
    "cusum": ContractCase(
        factory=lambda: CUSUM(k=0.5, h=4.0, warmup=10),
        stream=mean_shifts,
        invalid=[
            ({"k": -0.5}, "k"),
            ({"h": 0.0}, "h"),
            ({"h": NAN}, "h"),
            ({"warmup": 1}, "warmup"),
            ({"scale": 0.0}, "scale"),
            ({"target": float("inf")}, "target"),
        ],
    ),
    "ewma": ContractCase(
        factory=lambda: EWMA(lam=0.3, L=3.0, warmup=10),
        stream=mean_shifts,
        invalid=[
            ({"lam": 0.0}, "lam"),
            ({"lam": 1.0}, "lam"),
            ({"L": 0.0}, "L"),
            ({"warmup": 0}, "warmup"),
            ({"scale": -1.0}, "scale"),
        ],
    ),
    "ddm": ContractCase(
        factory=lambda: DDM(warm_start=10),
        stream=error_bursts,
        invalid=[
            ({"warm_start": -1}, "warm_start"),
            ({"warning_threshold": 0.0}, "warning_threshold"),
            ({"drift_threshold": 1.0}, "drift_threshold"),
        ],
    ),
    "hddm_a": ContractCase(
        factory=lambda: HDDM_A(drift_confidence=0.01, warning_confidence=0.05),
        stream=error_bursts,
        invalid=[
            ({"drift_confidence": 0.0}, "drift_confidence"),
            ({"warning_confidence": 1.0}, "warning_confidence"),
            ({"two_sided_test": "yes"}, "two_sided_test"),
        ],
    ),
}
