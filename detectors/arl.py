"""Thresholds for a target false-alarm rate (ARL0), from theory or a committed table.

:func:`detectors.calibrate` finds a threshold by simulating run lengths; at an ARL0
of 100,000 that costs some 10^7 updates per configuration, too much to do per key
when a stream starts. The rules here give the threshold of a detector
configuration for a target ``target_arl0`` (mean observations between false alarms)
in microseconds, deterministically, from what is known about its statistic:

* **A test with a known null distribution run on a schedule** (``ks_window``,
  ``categorical_drift``): Bonferroni over the schedule. A level ``alpha`` per test
  and one test every ``s`` observations give at most ``alpha / s`` expected false
  alarms per observation, whatever the dependence between overlapping windows, so
  ``alpha = s / target_arl0`` guarantees ``ARL0 >= target_arl0`` (conservative: the
  overlap makes consecutive tests agree).
* **A window statistic against a band learned from the stream's warm-up**
  (``rolling_threshold``, ``entropy``, ``output_diversity``): the band is in units
  of the warm-up's own standard error, so the stream's scale drops out; the width is
  the normal quantile of ``1 / target_arl0`` per check (Bonferroni again), widened by
  ``sqrt(1 + w/m)`` because the centre is itself estimated from ``m`` warm-up values
  while a window has ``w``.
* **A CUSUM on values standardised by the warm-up** (``cusum``, ``token_entropy``):
  Siegmund's approximation of the in-control ARL of a one-sided CUSUM with
  allowance ``k`` and decision interval ``h`` on N(0, 1) data,
  ``(exp(2 k b) - 2 k b - 1) / (2 k^2)``, ``b = h + 1.166``, solved for ``h``; a
  two-sided chart needs ``2 * target_arl0`` per side. The warm-up's mean and standard
  deviation are estimates: the rule takes the mean one standard error off and the
  standard deviation one standard error low, which lowers the effective allowance
  and raises ``h``.
* **ADWIN**: its cut test's bound on false cuts is loose by orders of magnitude, so
  its ``delta`` comes from ``detectors/arl_table.json``, found offline by
  :func:`detectors.calibrate` on Bernoulli streams (``python -m
  benchmarks.arl_table``; the smallest ``delta`` over the base rates, interpolated
  log-log between targets).

:func:`threshold_params` applies the rule of a detector to its parameters. The
rules assume independent observations; autocorrelated streams alarm more often.

>>> round(siegmund_arl0(0.5, 4.0))  # the textbook chart k = 0.5, h = 4: ARL0 ~336
338
>>> threshold_params("ks_window", {"window_size": 500, "reference_size": 3000,
...                                "stride": 20}, 100_000)["alpha"]
0.0002
>>> round(threshold_params("rolling_threshold", {"window_size": 200,
...       "reference_size": 1000, "direction": "lower"}, 100_000)["k"], 3)
4.672
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from statistics import NormalDist
from typing import Any

from detectors.base import get

__all__ = [
    "RULES",
    "adwin_delta",
    "band_width",
    "bonferroni_level",
    "cusum_h",
    "siegmund_arl0",
    "threshold_params",
]

TABLE = Path(__file__).with_name("arl_table.json")
_SIEGMUND_SHIFT = 1.166
"""Siegmund's correction for the overshoot of the boundary (2 * 0.583)."""


def bonferroni_level(target_arl0: float, tests_per_observation: float = 1.0) -> float:
    """Level per test that keeps expected false alarms at ``1 / target_arl0`` per
    observation when ``tests_per_observation`` tests run per observation."""
    _check_target(target_arl0)
    return min(0.5, 1.0 / (target_arl0 * tests_per_observation))


def band_width(
    target_arl0: float,
    window: int,
    reference: int,
    *,
    checks_every: int = 1,
    two_sided: bool = False,
) -> float:
    """Half-width, in standard errors of a window of ``window`` values, of a band
    around a centre learned from ``reference`` values, for ``target_arl0``."""
    level = bonferroni_level(target_arl0, 1.0 / checks_every)
    if two_sided:
        level /= 2.0
    z = NormalDist().inv_cdf(1.0 - level)
    return z * math.sqrt(1.0 + window / reference)


def siegmund_arl0(allowance: float, h: float) -> float:
    """Siegmund's approximation of a one-sided CUSUM's in-control ARL on N(0, 1)
    values: allowance ``allowance`` and decision interval ``h``, both in sigmas."""
    b = h + _SIEGMUND_SHIFT
    if allowance <= 0:
        return b * b
    x = 2.0 * allowance * b
    return (math.expm1(x) - x) / (2.0 * allowance * allowance)


def cusum_h(
    target_arl0: float, allowance: float, *, two_sided: bool, reference: int | None = None
) -> float:
    """Decision interval ``h`` for ``target_arl0`` (Siegmund), with the warm-up of
    ``reference`` values taken one standard error off in mean and scale."""
    _check_target(target_arl0)
    per_side = target_arl0 * (2.0 if two_sided else 1.0)
    shrink = 1.0
    k = allowance
    if reference is not None:
        shrink = 1.0 - 1.0 / math.sqrt(2.0 * reference)
        k = max(0.0, allowance * shrink - 1.0 / math.sqrt(reference))
    lo, hi = 0.0, 1.0
    while siegmund_arl0(k, hi) < per_side:
        hi *= 2.0
    for _ in range(60):  # bisection to double precision: deterministic
        mid = 0.5 * (lo + hi)
        if siegmund_arl0(k, mid) < per_side:
            lo = mid
        else:
            hi = mid
    return hi / shrink


@cache
def _adwin_entries() -> tuple[tuple[float, float], ...]:
    table = json.loads(TABLE.read_text(encoding="utf-8"))
    best: dict[float, float] = {}
    for row in table["adwin"]["entries"]:
        target = float(row["target_arl0"])
        best[target] = min(best.get(target, 1.0), float(row["delta"]))
    return tuple(sorted(best.items()))


def adwin_delta(target_arl0: float) -> float:
    """ADWIN's ``delta`` for ``target_arl0`` at every base rate of the table:
    log-log interpolation between its targets, extrapolation beyond them."""
    _check_target(target_arl0)
    points = _adwin_entries()
    exact = dict(points).get(float(target_arl0))
    if exact is not None or len(points) == 1:
        return exact if exact is not None else points[0][1]
    i = 1
    while i < len(points) - 1 and points[i][0] < target_arl0:
        i += 1
    (t0, d0), (t1, d1) = points[i - 1], points[i]
    slope = math.log(d1 / d0) / math.log(t1 / t0)
    delta = d0 * math.exp(slope * math.log(target_arl0 / t0))
    return min(0.5, delta)


def _check_target(target_arl0: float) -> None:
    if not (isinstance(target_arl0, (int, float)) and math.isfinite(target_arl0)):
        raise ValueError(f"target_arl0: must be a finite number, got {target_arl0!r}")
    if target_arl0 < 2:
        raise ValueError(f"target_arl0: must be >= 2, got {target_arl0!r}")


Rule = Callable[[Mapping[str, Any], float], dict[str, Any]]
"""(the detector's full parameters, target ARL0) -> its threshold parameters."""


def _ks_window(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    return {"alpha": bonferroni_level(target, 1.0 / p["stride"])}


def _categorical_drift(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    return {"alpha": bonferroni_level(target)}


def _categorical_sr(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    return {"arl0": float(target)}


def _rolling_threshold(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    width = band_width(
        target,
        p["window_size"],
        p["reference_size"],
        checks_every=p["check_every"],
        two_sided=p["direction"] == "both",
    )
    return {"k": width}


def _entropy(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    width = band_width(
        target, p["window_size"], p["reference_size"], two_sided=p["direction"] == "both"
    )
    return {"k": width}


def _output_diversity(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    # Only a learned bound has a width; a fixed max_duplicate_rate is the user's.
    if not p["reference_size"]:
        return {}
    return {"z": band_width(target, p["window_size"], p["reference_size"])}


def _cusum(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    learned = p["target"] is None or p["scale"] is None
    reference = p["warmup"] if learned else None
    return {"h": cusum_h(target, p["k"], two_sided=True, reference=reference)}


def _token_entropy(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    h = cusum_h(
        target,
        p["allowance"],
        two_sided=p["direction"] == "both",
        reference=p["reference_size"],
    )
    return {"h": h}


def _adwin(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    return {"delta": adwin_delta(target)}


RULES: dict[str, Rule] = {
    "ks_window": _ks_window,
    "categorical_drift": _categorical_drift,
    "categorical_sr": _categorical_sr,
    "rolling_threshold": _rolling_threshold,
    "entropy": _entropy,
    "output_diversity": _output_diversity,
    "cusum": _cusum,
    "token_entropy": _token_entropy,
    "adwin": _adwin,
}
"""Detector name -> the threshold parameters it needs for a target ARL0."""


def threshold_params(
    detector: str, params: Mapping[str, Any], target_arl0: float
) -> dict[str, Any]:
    """``params`` with ``detector``'s threshold set for ``target_arl0`` (``KeyError``
    when the detector has no rule); parameters ``params`` omits are the detector's
    defaults."""
    _check_target(target_arl0)
    full = get(detector)(**params)._get_params()
    return {**params, **RULES[detector](full, target_arl0)}
