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
* **A CUSUM on a stream whose warm-up is not normal** (``token_entropy``: per-response
  surprisal is a mixture with a heavy lower tail from stock replies): the in-control
  ARL of the chart under the warm-up's own *empirical* distribution of standardised
  values, by the Markov-chain method of Brook & Evans (1972) — the sum's range
  ``[0, h]`` cut into ``MARKOV_STATES`` states, transitions from the empirical CDF,
  ``ARL = ((I - Q)^-1 1)_0`` — solved for ``h`` by bisection
  (:func:`empirical_cusum_h`); the two sides combine as ``1/ARL = 1/ARL+ + 1/ARL-``.
  The warm-up's mean, scale and tail are estimates, and one warm-up's ``h`` can be
  far too small for its stream; a bootstrap of the whole rule adds what it falls
  short by in 95 % of resamples, so the target holds for ~95 % of warm-ups, not only
  on average over them.
* **A window centroid's cosine distance to a learned baseline** (``embedding_drift``):
  the centroid's error has covariance ``Sigma (1/n + 1/m)`` (a window of ``n``, a
  baseline of ``m``), and the distance is ``1 - |mu| / sqrt(|mu|^2 + |e|^2)`` for the
  error's part ``e`` across the mean direction. ``|e|^2`` is matched to a scaled
  chi-square by its first two moments (Satterthwaite: ``tr Sigma`` and
  ``tr Sigma^2``, estimated from the warm-up by differences of consecutive vectors),
  and its quantile at the Bonferroni level of the check schedule gives
  ``max_distance`` (:func:`centroid_distance_bound`). Using the whole ``tr Sigma``
  for the part across the mean direction errs on the quiet side.
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
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from detectors._stats import chi2_isf, gammainc
from detectors.base import get

__all__ = [
    "RULES",
    "adwin_delta",
    "band_width",
    "bonferroni_level",
    "centroid_distance_bound",
    "cusum_h",
    "duplicate_rate_bound",
    "empirical_cusum_h",
    "markov_arl",
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


MARKOV_STATES = 128
"""States of the Brook-Evans chain over ``[0, h]`` (ARLs within a few % of simulation)."""
BOOTSTRAP_STATES = 64
"""States of the chains of :func:`empirical_cusum_h`'s bootstrap (~7 % of the ARL at
128 states; the correction is a difference of two such solutions, whose
discretisation errors largely cancel)."""


def markov_arl(sorted_steps: np.ndarray, h: float) -> float:
    """In-control ARL of ``S_t = max(0, S_{t-1} + X_t)``, alarm at ``S > h``, from
    ``S_0 = 0``, with ``X`` drawn from the sorted sample ``sorted_steps``."""
    steps = np.asarray(sorted_steps, dtype=np.float64)
    cum = (np.arange(steps.size + 1) / steps.size)[None, :]
    one = np.ones(1)
    return float(_markov_arls(steps, cum, one, np.zeros(1), np.full(1, float(h)))[0])


def _markov_arls(
    base: np.ndarray,
    cum: np.ndarray,
    scales: np.ndarray,
    offsets: np.ndarray,
    h: np.ndarray,
    states: int = MARKOV_STATES,
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """:func:`markov_arl` of ``B`` charts at once: chart ``b`` has steps ``scales[b] *
    X + offsets[b]`` with ``X`` drawn from the sorted ``base`` with the cumulative
    weights ``cum[b]`` (``B x (n + 1)``, from 0 to 1), and decision interval ``h[b]``;
    with ``bounds``, each step is clipped to ``[bounds[0], bounds[1]]``."""
    m = states
    count = scales.size
    w = 2.0 * h / (2 * m - 1)  # state i covers [(i - 1/2) w, (i + 1/2) w); the last ends at h
    # below[b, d + m] = P(step < (d + 1/2) w) for d = -m .. m - 1
    edges = (np.arange(-m, m) + 0.5)[None, :] * w[:, None]
    where = (edges - offsets[:, None]) / scales[:, None]
    pos = np.searchsorted(base, where.ravel(), side="left").reshape(count, 2 * m)
    below = np.take_along_axis(cum, pos, axis=1)
    if bounds is not None:
        # P(clip(step) < e) is 0 up to the lower bound and 1 past the upper one
        below = np.where(edges <= bounds[0], 0.0, np.where(edges > bounds[1], 1.0, below))
    d = np.arange(m)[None, :] - np.arange(m)[:, None]  # offset from state i to state j
    q = below[:, d + m] - below[:, d - 1 + m]
    q[:, :, 0] = below[:, m - np.arange(m)]  # everything below w / 2 lands in state 0
    arl = _first_of_solutions(np.eye(m)[None, :, :] - q, np.ones((count, m)))
    # a chart none of whose steps can leave [0, h) never alarms
    arl[q.sum(axis=2).min(axis=1) >= 1.0 - 1e-12] = math.inf
    return arl


def _first_of_solutions(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x[:, 0]`` of the systems ``a[k] x = b[k]`` by Gaussian elimination without
    pivoting (``a = I - Q`` is diagonally dominant), in plain element-wise numpy:
    LAPACK's threaded solve ran 50x slower on a loaded machine, and element-wise
    arithmetic gives the same bits everywhere. ``inf`` where a system is singular
    (the chain cannot alarm)."""
    count, m = b.shape
    singular = np.zeros(count, dtype=bool)
    for k in range(m - 1):
        pivot = a[:, k, k].copy()
        singular |= pivot <= 1e-300
        pivot[pivot <= 1e-300] = 1.0
        f = a[:, k + 1 :, k] / pivot[:, None]
        a[:, k + 1 :, k:] -= f[:, :, None] * a[:, k, None, k:]
        b[:, k + 1 :] -= f * b[:, k, None]
    x = np.zeros((count, m))
    for k in range(m - 1, -1, -1):
        diagonal = a[:, k, k].copy()
        singular |= diagonal <= 1e-300
        diagonal[diagonal <= 1e-300] = 1.0
        x[:, k] = (b[:, k] - (a[:, k, k + 1 :] * x[:, k + 1 :]).sum(axis=1)) / diagonal
    first = x[:, 0]
    bad = singular | ~np.isfinite(first) | (first <= 0)
    return np.where(bad, math.inf, first)


def _cusum_h_batch(
    sorted_z: np.ndarray,
    cum: np.ndarray,
    scales: np.ndarray,
    offsets: np.ndarray,
    allowance: float,
    target_arl0: float,
    *,
    upper: bool,
    lower: bool,
    states: int,
    clip: float | None = None,
) -> np.ndarray:
    """Per chart ``b`` (values ``scales[b] * z + offsets[b]`` of ``z`` drawn from the
    sorted ``sorted_z`` with cumulative weights ``cum[b]``, clipped to ``[-clip, clip]``
    with ``clip``) the decision interval whose two-sided ARL (``1/ARL = sum
    1/ARL_side``) is ``target_arl0``, to 0.005 by bisection on a fixed schedule."""
    count = scales.size
    # a clipped value minus the allowance, on either side
    bounds = None if clip is None else (-clip - allowance, clip - allowance)
    negated = -sorted_z[::-1]
    negated_cum = cum[:, -1:] - cum[:, ::-1]

    def arl(h: np.ndarray) -> np.ndarray:
        rate = np.zeros(count)
        if upper:
            offset = offsets - allowance
            rate += 1.0 / _markov_arls(sorted_z, cum, scales, offset, h, states, bounds)
        if lower:
            offset = -offsets - allowance
            steps = _markov_arls(negated, negated_cum, scales, offset, h, states, bounds)
            rate += 1.0 / steps
        with np.errstate(divide="ignore"):
            return np.where(rate == 0.0, math.inf, 1.0 / rate)

    lo, hi = np.zeros(count), np.full(count, 4.0)
    while (short := arl(hi) < target_arl0).any():
        if hi.max() > 1e6:
            raise ValueError("values: no finite h reaches target_arl0")
        lo, hi = np.where(short, hi, lo), np.where(short, 2.0 * hi, hi)
    while (hi - lo).max() > 5e-3:
        mid = 0.5 * (lo + hi)
        short = arl(mid) < target_arl0
        lo, hi = np.where(short, mid, lo), np.where(short, hi, mid)
    return hi


ARL0_CONFIDENCE = 0.95
"""Share of warm-ups whose learned ``h`` gives an ARL0 of at least the target."""
BOOTSTRAP_RESAMPLES = 100


def empirical_cusum_h(
    values: Sequence[float],
    allowance: float,
    target_arl0: float,
    *,
    upper: bool = True,
    lower: bool = True,
    confidence: float = ARL0_CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    clip: float | None = None,
) -> float:
    """Decision interval ``h`` of a CUSUM with ``allowance`` whose in-control ARL is
    at least ``target_arl0`` with probability ``confidence`` over warm-ups, learned
    from the warm-up's ``values`` standardised as the chart standardises them (by the
    warm-up's mean and standard deviation).

    The ARL of a chart under an empirical distribution comes from the Markov-chain
    method (Brook & Evans 1972), its sides (``upper``, ``lower``) combined as
    ``1/ARL = sum 1/ARL_side``. The ``h`` at which the warm-up's own distribution
    gives ``target_arl0`` is only a point estimate: the mean, the scale and the
    tail the chart is run with are all estimated from the warm-up, and a warm-up with
    few extreme values (stock replies) is high in mean, low in spread and thin in tail
    at once, so its ``h`` is too small for the stream. The correction is the bootstrap
    of the whole rule (after Gandy & Kvaløy 2013, "guaranteed conditional
    performance"): with the warm-up as the truth, each of ``resamples`` resamples
    standardises the chart by its own mean and scale and learns its own ``h*``; the
    ``h`` the truth needs for that standardisation, minus ``h*``, is what the rule
    fell short by. Its ``confidence`` quantile (not below 0; by the normal
    approximation, mean plus ``z`` standard deviations, steadier than an order
    statistic of 100 resamples) is added to the point estimate; ~2 CPU-s. The resamples come from a fixed-seed generator: the result is a
    deterministic function of ``values``. ``confidence=0`` gives the point estimate.
    ``h`` is never below :func:`cusum_h`'s normal-theory value (a sample cannot show
    the tail beyond its extremes, and a constant one shows none). Rounded up to 0.01.
    With ``clip``, the chart's standardised values are clipped to ``[-clip, clip]``
    (a winsorised CUSUM, as ``TokenEntropy(clip=)`` runs it): the chains clip each
    step, in the point estimate and in every resample alike.

    >>> rng = np.random.default_rng(0)
    >>> normal = rng.standard_normal(2000)
    >>> round(cusum_h(1000.0, 0.5, two_sided=True, reference=2000), 2)
    6.16
    >>> mixture = np.where(rng.random(2000) < 0.05, -4.0, normal)  # 5 % stock replies
    >>> z = (mixture - mixture.mean()) / mixture.std(ddof=1)
    >>> empirical_cusum_h(z, 0.5, 1000.0, confidence=0), empirical_cusum_h(z, 0.5, 1000.0)
    (6.51, 7.14)
    >>> empirical_cusum_h(z, 0.5, 1000.0, lower=False)
    5.42
    """
    _check_target(target_arl0)
    if not (upper or lower):
        raise ValueError("at least one side")
    if not 0.0 <= confidence < 1.0:
        raise ValueError(f"confidence: must be in [0, 1), got {confidence!r}")
    z = np.sort(np.asarray(values, dtype=np.float64))
    n = z.size
    if n < 2 or not np.isfinite(z).all():
        raise ValueError("values: need at least two finite values")
    normal = cusum_h(target_arl0, allowance, two_sided=upper and lower, reference=n)
    floor = math.ceil(normal * 100.0) / 100.0
    sides = {"upper": upper, "lower": lower}
    plain = (np.arange(n + 1) / n)[None, :]
    one, zero = np.ones(1), np.zeros(1)
    if clip is not None and not clip > 0.0:
        raise ValueError(f"clip: must be > 0, got {clip!r}")
    point = _cusum_h_batch(
        z, plain, one, zero, allowance, target_arl0, **sides, states=MARKOV_STATES, clip=clip
    )[0]
    shortfall = 0.0
    if confidence > 0.0:
        counts = np.zeros((resamples, n))
        picks = np.random.default_rng(0).integers(0, n, size=(resamples, n))
        np.add.at(counts, (np.arange(resamples)[:, None], picks), 1.0)
        cum = np.concatenate([np.zeros((resamples, 1)), np.cumsum(counts, axis=1)], axis=1) / n
        spread = float(z.std(ddof=1))
        mean = counts @ z / n
        sd = np.sqrt(np.maximum(counts @ (z * z) - n * mean * mean, 0.0) / (n - 1))
        sd = np.maximum(sd / spread, 1e-9) if spread > 0 else np.ones(resamples)
        scales, offsets = 1.0 / sd, -mean / sd
        truth = np.repeat(plain, resamples, axis=0)
        args = (allowance, target_arl0)
        needed = _cusum_h_batch(
            z, truth, scales, offsets, *args, **sides, states=BOOTSTRAP_STATES, clip=clip
        )
        learned = _cusum_h_batch(
            z, cum, scales, offsets, *args, **sides, states=BOOTSTRAP_STATES, clip=clip
        )
        short = needed - learned
        quantile = NormalDist().inv_cdf(confidence) if confidence > 0.5 else 0.0
        shortfall = max(0.0, float(short.mean() + quantile * short.std(ddof=1)))
    return max(floor, math.ceil((float(point) + shortfall) * 100.0) / 100.0)


def centroid_distance_bound(
    trace: float,
    trace_sq: float,
    mean_sq: float,
    *,
    window: int,
    reference: int,
    checks_every: int,
    target_arl0: float,
    confidence: float = ARL0_CONFIDENCE,
) -> float:
    """``max_distance`` of a cosine-distance check of a ``window``-vector centroid
    against a baseline learned from ``reference`` vectors, run every
    ``checks_every`` vectors, for ``target_arl0`` with probability ``confidence``
    over baselines. ``trace`` and ``trace_sq`` are ``tr Sigma`` and ``tr Sigma^2`` of
    the vectors' covariance, ``mean_sq`` the squared norm of their mean. 2 (never)
    when the mean is not above its own noise (centred data: the cosine to the
    baseline is then noise); at least 1e-9.

    The baseline's error ``e_b`` is drawn once and stays for the whole series, while
    each window brings a fresh error ``e_w``: a bound on their sum's *marginal*
    distribution holds on average over baselines, but a baseline that is off by
    more than usual makes its series alarm far more often. So the bound is
    conditional: ``|e_b|^2`` is taken at its ``confidence`` quantile, and the window's
    ``|e_b + e_w|^2`` is then a noncentral chi-square (both errors as Satterthwaite's
    ``tr Sigma^2 / tr Sigma`` times a chi-square of ``(tr Sigma)^2 / tr Sigma^2``
    degrees of freedom, scaled by ``1/m`` and ``1/n``; Patnaik's central
    approximation of the noncentral one), whose quantile at the Bonferroni level of
    the check schedule is the bound. A longer reference shrinks the baseline's part
    and with it the bound. ``confidence=0`` bounds the marginal
    (the baseline's error counted as fresh at every check).

    >>> d = 64  # unit vectors around one direction, spread 0.3 per coordinate
    >>> args = (d * 0.09 / 1.09, d * (0.09 / 1.09) ** 2, 1 / 1.09)
    >>> schedule = {"window": 256, "reference": 512, "checks_every": 64, "target_arl0": 1e5}
    >>> round(centroid_distance_bound(*args, **schedule, confidence=0), 4)
    0.027
    >>> round(centroid_distance_bound(*args, **schedule), 4)
    0.0286
    """
    _check_target(target_arl0)
    if not (trace >= 0 and trace_sq >= 0 and math.isfinite(trace) and math.isfinite(trace_sq)):
        raise ValueError("trace and trace_sq must be finite and >= 0")
    if not 0.0 <= confidence < 1.0:
        raise ValueError(f"confidence: must be in [0, 1), got {confidence!r}")
    f = 1.0 / window + 1.0 / reference
    if not mean_sq > f * trace:
        return 2.0
    if trace == 0.0 or trace_sq == 0.0:
        return 1e-9
    per_dim = trace_sq / trace  # |e|^2 ~ per_dim * (1/n + 1/m) * chi2(df)
    df = trace * trace / trace_sq
    level = bonferroni_level(target_arl0, 1.0 / checks_every)
    if confidence == 0.0:
        q = per_dim * f * chi2_isf(level, df)
    else:
        # n |e_b + e_w|^2 / per_dim ~ noncentral chi2(df, lam), lam at its quantile
        lam = window / reference * chi2_isf(1.0 - confidence, df)
        scale = (df + 2.0 * lam) / (df + lam)
        q = per_dim / window * scale * chi2_isf(level, (df + lam) ** 2 / (df + 2.0 * lam))
    return min(2.0, max(1e-9, 1.0 - math.sqrt(mean_sq / (mean_sq + q))))


def duplicate_rate_bound(
    near: int,
    seen: int,
    dispersion: float,
    *,
    window: int,
    target_arl0: float,
    confidence: float = ARL0_CONFIDENCE,
) -> float:
    """Bound on a sliding ``window``'s near-duplicate rate, checked at every
    observation, for ``target_arl0`` with probability ``confidence`` over references:
    ``near`` of the reference's ``seen`` responses were near duplicates, and its
    block counts varied ``dispersion`` (>= 1) times as much as binomial ones.

    The reference's rate is taken at its upper ``confidence`` bound (normal, with the
    over-dispersed standard error ``sqrt(dispersion p (1 - p) / seen)``; at least
    ``1 / window``): a reference that saw few duplicates must not leave its series with
    too tight a bound. The window's count at that rate is bounded by the upper tail of
    a Poisson of its mean (a binomial's tail is lighter), scaled for over-dispersion
    (``count / dispersion`` as a Poisson of ``mean / dispersion``, quasi-Poisson),
    at the Bonferroni level ``1 / target_arl0`` per check (overlapping windows make
    it conservative). The normal band it replaces ignored the count's right skew at
    a mean of ~9 flags per window. Returned as a rate half a count below the
    critical count ``c``: a window alarms from ``c`` near duplicates on.

    >>> round(duplicate_rate_bound(43, 1000, 1.2, window=200, target_arl0=1e5), 4)
    0.1525
    """
    _check_target(target_arl0)
    if not 0 <= near <= seen or seen < 1:
        raise ValueError("need 0 <= near <= seen and seen >= 1")
    if not 0.0 <= confidence < 1.0:
        raise ValueError(f"confidence: must be in [0, 1), got {confidence!r}")
    phi = max(1.0, float(dispersion))
    p = max(near / seen, 1.0 / window)
    z = NormalDist().inv_cdf(confidence) if confidence > 0.0 else 0.0
    p = min(1.0, p + z * math.sqrt(phi * p * (1.0 - p) / seen))
    mean = window * p / phi
    level = bonferroni_level(target_arl0)
    count = math.floor(window * p) + 1
    while count <= window and gammainc(count / phi, mean) > level:
        count += 1
    return min(1.0, (count - 0.5) / window)


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
    # Only a learned bound follows the target (duplicate_rate_bound, at the end of
    # the reference); a fixed max_duplicate_rate is the user's.
    if not p["reference_size"]:
        return {}
    return {"target_arl0": float(target)}


def _cusum(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    learned = p["target"] is None or p["scale"] is None
    reference = p["warmup"] if learned else None
    return {"h": cusum_h(target, p["k"], two_sided=True, reference=reference)}


def _token_entropy(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    # h is learned at the end of the warm-up (empirical_cusum_h on its surprisals).
    return {"target_arl0": float(target)}


def _embedding_drift(p: Mapping[str, Any], target: float) -> dict[str, Any]:
    # max_distance is learned at the end of the warm-up (centroid_distance_bound);
    # a given baseline has no warm-up, and its max_distance is the user's.
    return {} if p["baseline"] is not None else {"target_arl0": float(target)}


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
    "embedding_drift": _embedding_drift,
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
