"""Choose a detector's threshold for a target false-alarm rate (ARL0) by simulation.

Every detector with a ``threshold_param`` (Page-Hinkley, CUSUM, EWMA, KSWindow,
EntropyTracker, TokenEntropy, RollingThreshold, CategoricalDrift, ...) can be
calibrated: :func:`calibrate` resamples a reference sample of *stable* data
(bootstrap, moving-block bootstrap or permutation), simulates run lengths -- events
until the first (false) alarm -- for candidate thresholds, and bisects for the
threshold whose average run length ``ARL0`` meets the target.

Definitions
-----------
Run length
    The number of events from the end of the detector's warm-up (the
    ``learning_period`` during which it learns its reference; 0 for detectors
    without one) up to and including the first detection. Every driftline detector
    restarts its evidence after a detection (CUSUM sums, windows) and keeps its
    reference, so the expected run length from that point is also the expected number
    of events *between* false alarms in steady operation.
ARL0 estimate
    Runs are cut at ``max_run_length`` (default ten times the target); the estimate is
    total observed events over number of alarms (the maximum-likelihood estimate for
    geometric run lengths with censoring; with the default cut it is the plain mean).
Determinism
    Run ``i`` draws its events from ``numpy.random.default_rng([seed, i])`` in fixed
    chunks, so each candidate threshold sees the same streams (common random
    numbers), and the same call gives the same threshold on every machine.
Learned references
    A detector that learns its reference (band, mean, baseline) from its first
    events learns a different one in every run; the estimate averages over them.
    A single deployed detector's ARL0 depends on the reference it happened to learn
    (noticeably so for short reference periods): prefer long ``reference_size``.

Worked example
--------------
Calibrate confidence monitoring with
:class:`~detectors.rolling_threshold.RollingThreshold` on 5000 confidence values
from a stable day, for one false alarm per 1000 predictions on average:

>>> import numpy as np
>>> from detectors import calibrate, estimate_arl0
>>> from detectors.rolling_threshold import RollingThreshold
>>> stable_day = np.random.default_rng(0).beta(23, 2, size=5000)
>>> prototype = RollingThreshold(window_size=50, reference_size=1000, patience=1)
>>> result = calibrate(prototype, stable_day, target_arl0=1000, n_runs=200, seed=1)
>>> print(f"k = {result.threshold:.3f}, estimated ARL0 {result.arl0:.0f} "
...       f"({result.estimate.n_alarms} alarms in {result.estimate.n_runs} runs)")
k = 2.668, estimated ARL0 1012 (200 alarms in 200 runs)
>>> detector = result.build()          # a fresh RollingThreshold(k=2.668..., ...)
>>> detector.k == result.threshold
True

Checking it on fresh stable data (``estimate_arl0`` simulates run lengths from any
generator of stable events):

>>> fresh = estimate_arl0(detector, lambda rng, n: rng.beta(23, 2, size=n).tolist(),
...                       n_runs=200, max_run_length=10_000, seed=2)
>>> print(f"achieved ARL0 {fresh.arl0:.0f}")
achieved ARL0 1026
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from detectors.base import DriftDetector, get

__all__ = [
    "Calibration",
    "CalibrationError",
    "RunLengthEstimate",
    "Sampler",
    "bootstrap_sampler",
    "calibrate",
    "estimate_arl0",
]

Sampler = Callable[[np.random.Generator, int], Sequence[Any]]
"""``sampler(rng, n)`` returns ``n`` stable events drawn with ``rng``."""

Method = Literal["bootstrap", "permutation"]


class CalibrationError(ValueError):
    """The target cannot be met (threshold out of the valid range) or inputs are bad."""


@dataclass(frozen=True)
class RunLengthEstimate:
    """Simulated run lengths of one detector configuration."""

    n_runs: int
    n_alarms: int
    exposure: int
    """Events observed after warm-up, over all runs (censored runs included)."""
    max_run_length: int

    @property
    def arl0(self) -> float:
        """Estimated mean events to a false alarm (``inf`` when none was seen)."""
        return self.exposure / self.n_alarms if self.n_alarms else math.inf

    @property
    def false_alarm_rate(self) -> float:
        """Estimated false alarms per event, ``1 / arl0``."""
        return self.n_alarms / self.exposure if self.exposure else math.nan

    @property
    def censored(self) -> int:
        """Runs that reached ``max_run_length`` without an alarm."""
        return self.n_runs - self.n_alarms

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Approximate confidence interval of ``arl0`` (log-normal, ``1/sqrt(alarms)``)."""
        if not self.n_alarms:
            return (self.exposure / 3.0, math.inf)
        half = z / math.sqrt(self.n_alarms)
        return (self.arl0 * math.exp(-half), self.arl0 * math.exp(half))


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate`."""

    detector: str
    threshold_param: str
    threshold: float
    params: dict[str, Any]
    """All hyperparameters, the calibrated threshold included."""
    target_arl0: float
    estimate: RunLengthEstimate
    """Run lengths simulated at ``threshold`` on the resampled reference (all runs)."""
    warmup: int
    seed: int
    method: str
    block_size: int
    evaluations: tuple[tuple[float, float], ...] = field(default=())
    """``(threshold, ARL0 estimate)`` of every candidate tried, in order (estimates of
    candidates decided early are rough)."""

    @property
    def arl0(self) -> float:
        return self.estimate.arl0

    def build(self) -> DriftDetector[Any]:
        """A fresh detector with the calibrated parameters."""
        return get(self.detector)(**self.params)


# -- streams -------------------------------------------------------------------


def _take(reference: Any, idx: np.ndarray[Any, Any]) -> Sequence[Any]:
    if isinstance(reference, np.ndarray):
        picked = reference[idx]
        return picked.tolist() if picked.ndim == 1 else list(picked)
    return [reference[i] for i in idx.tolist()]


def bootstrap_sampler(
    reference: Sequence[Any] | np.ndarray[Any, Any],
    *,
    method: Method = "bootstrap",
    block_size: int = 1,
) -> Callable[[np.random.Generator], Callable[[int], Sequence[Any]]]:
    """Resampling of ``reference``: ``make(rng)`` gives ``draw(n)`` for one run.

    ``"bootstrap"`` draws blocks of ``block_size`` consecutive reference events with
    replacement (``block_size=1``: i.i.d. bootstrap; larger blocks keep short-range
    autocorrelation). ``"permutation"`` walks through random permutations of the
    reference (a new one whenever one is used up), so every event is used equally.
    """
    n = len(reference)
    if n < 2:
        raise CalibrationError("reference: needs at least 2 events")
    if not 1 <= block_size <= n:
        raise CalibrationError(f"block_size: must be in [1, {n}], got {block_size!r}")
    if method not in ("bootstrap", "permutation"):
        raise CalibrationError(f"method: must be 'bootstrap' or 'permutation', got {method!r}")

    def make(rng: np.random.Generator) -> Callable[[int], Sequence[Any]]:
        if method == "bootstrap":

            def draw(k: int) -> Sequence[Any]:
                n_blocks = -(-k // block_size)
                starts = rng.integers(0, n - block_size + 1, size=n_blocks)
                idx = (starts[:, None] + np.arange(block_size)[None, :]).ravel()[:k]
                return _take(reference, idx)

            return draw

        perm = rng.permutation(n)
        pos = 0

        def draw_perm(k: int) -> Sequence[Any]:
            nonlocal perm, pos
            parts = []
            while k > 0:
                if pos == n:
                    perm, pos = rng.permutation(n), 0
                step = min(k, n - pos)
                parts.append(perm[pos : pos + step])
                pos += step
                k -= step
            return _take(reference, np.concatenate(parts))

        return draw_perm

    return make


def _warmup_of(detector: DriftDetector[Any], warmup: int | None) -> int:
    if warmup is not None:
        if warmup < 0:
            raise CalibrationError(f"warmup: must be >= 0, got {warmup!r}")
        return warmup
    value = getattr(detector, "learning_period", 0)
    return int(value) if isinstance(value, int) else 0


def _run_length(
    factory: Callable[[], DriftDetector[Any]],
    draw: Callable[[int], Sequence[Any]],
    warmup: int,
    max_run_length: int,
    chunk: int,
) -> tuple[int, bool]:
    detector = factory()
    if warmup:
        detector.update_many(draw(warmup))
    t = 0
    while t < max_run_length:
        size = min(chunk, max_run_length - t)
        hits = detector.update_many(draw(size))
        if hits:
            return t + hits[0] + 1, True
        t += size
    return max_run_length, False


def _simulate(
    factory: Callable[[], DriftDetector[Any]],
    make_draw: Callable[[np.random.Generator], Callable[[int], Sequence[Any]]],
    *,
    n_runs: int,
    warmup: int,
    max_run_length: int,
    seed: int,
    chunk: int,
    decide_against: float | None = None,
) -> RunLengthEstimate:
    """Simulate up to ``n_runs`` runs; with ``decide_against`` stop as soon as the ARL0
    is clearly (3.5 standard errors, after at least 10 runs or a tenth of them; or
    no alarm at all in 6 times that many events) above or below that value."""
    exposure = alarms = runs = 0
    for i in range(n_runs):
        draw = make_draw(np.random.default_rng([seed, i]))
        length, alarmed = _run_length(factory, draw, warmup, max_run_length, chunk)
        exposure += length
        alarms += alarmed
        runs += 1
        if decide_against is None:
            continue
        if alarms == 0:
            # No alarm in 6 target lengths: P < 0.25 % if the ARL0 were the target.
            if exposure > 6.0 * decide_against:
                break
        elif runs >= min(n_runs, max(10, n_runs // 10)) and (
            abs(math.log(exposure / alarms / decide_against)) * math.sqrt(alarms) > 3.5
        ):
            break
    return RunLengthEstimate(runs, alarms, exposure, max_run_length)


def _chunk_for(target: float) -> int:
    return int(min(1024, max(16, target // 16)))


def estimate_arl0(
    detector: DriftDetector[Any],
    sampler: Sampler,
    *,
    n_runs: int = 300,
    max_run_length: int = 100_000,
    warmup: int | None = None,
    seed: int = 0,
) -> RunLengthEstimate:
    """Simulate run lengths of fresh copies of ``detector`` on streams from ``sampler``.

    ``sampler(rng, n)`` returns ``n`` stable events; run ``i`` uses
    ``default_rng([seed, i])``. ``warmup`` defaults to the detector's
    ``learning_period`` (0 when it has none).
    """
    if n_runs < 1 or max_run_length < 1:
        raise CalibrationError("n_runs and max_run_length must be >= 1")

    def make_draw(rng: np.random.Generator) -> Callable[[int], Sequence[Any]]:
        return lambda k: sampler(rng, k)

    return _simulate(
        detector.clone,
        make_draw,
        n_runs=n_runs,
        warmup=_warmup_of(detector, warmup),
        max_run_length=max_run_length,
        seed=seed,
        chunk=_chunk_for(max_run_length / 10),
    )


def calibrate(
    detector: DriftDetector[Any] | str,
    reference: Sequence[Any] | np.ndarray[Any, Any],
    target_arl0: float,
    *,
    params: dict[str, Any] | None = None,
    n_runs: int = 400,
    max_run_length: int | None = None,
    method: Method = "bootstrap",
    block_size: int = 1,
    warmup: int | None = None,
    seed: int = 0,
    rtol: float = 1e-3,
    tol: float = 0.05,
    max_iter: int = 40,
) -> Calibration:
    """Find the threshold giving ``detector`` an average run length ``target_arl0``.

    Parameters
    ----------
    detector
        A detector instance used as the prototype (its hyperparameters other than
        the threshold are kept; its current threshold is the starting point), or a
        registered name together with ``params``.
    reference
        Stable events of the detector's input kind (a list, or a numpy array: 1-D for
        numbers, 2-D with one vector per row). They are resampled, so they should
        cover the variety of a healthy period; a few thousand events is typical.
    target_arl0
        Wanted mean number of events between false alarms (e.g. 1000).
    n_runs
        Simulated runs per full evaluation; the ARL0 estimate's relative standard
        error is about ``1 / sqrt(n_runs)``.
    max_run_length
        Runs are cut here (default ``10 * target_arl0``).
    method, block_size
        Resampling, see :func:`bootstrap_sampler`. Use ``block_size > 1`` for
        autocorrelated data (about the autocorrelation length).
    warmup
        Events fed before a run starts counting; default the detector's
        ``learning_period`` (its reference learning), else 0.
    seed
        Seed of the resampling; the result is a deterministic function of the inputs.
    rtol
        Relative precision of the threshold at which the search stops.
    tol
        The search stops early at a candidate whose ARL0 estimate (all ``n_runs``
        runs) is within this relative distance (in log) of the target.
    max_iter
        Maximum number of candidate thresholds evaluated.

    Returns
    -------
    Calibration
        ``threshold``, full ``params``, the ARL0 ``estimate`` at that threshold and
        ``build()`` for a ready detector.

    The search assumes the run length grows monotonically with the threshold in the
    direction given by the detector class's ``threshold_increases_run_length``. It
    works on the logarithm of the threshold (thresholds must be positive): doubling or
    halving from the starting value (with growing steps: x2, x4, x16, ...) until the
    target is bracketed, then bisection,
    switching to regula falsi on log ARL0 once both ends of the bracket are fully
    simulated. Candidates far from the target are decided after a few runs (a
    sequential test at 3.5 standard errors); the chosen one is evaluated on all
    ``n_runs`` runs. When the target falls in a jump of a step-shaped ARL0 curve
    (discrete statistics such as the KS distance), the side nearer to the target
    (in ratio) is returned; ``estimate`` says what it achieves.
    """
    if isinstance(detector, str):
        prototype = get(detector)(**(params or {}))
    else:
        if params:
            raise CalibrationError("params: only with a detector name")
        prototype = detector
    cls = type(prototype)
    name = cls.threshold_param
    if name is None:
        raise CalibrationError(f"{cls.name} has no threshold_param to calibrate")
    if not (math.isfinite(target_arl0) and target_arl0 >= 2):
        raise CalibrationError(f"target_arl0: must be a finite number >= 2, got {target_arl0!r}")
    if n_runs < 10:
        raise CalibrationError(f"n_runs: must be >= 10, got {n_runs!r}")
    cap = int(max_run_length if max_run_length is not None else 10 * target_arl0)
    if cap < target_arl0:
        raise CalibrationError("max_run_length: must be at least target_arl0")
    base_params = prototype._get_params()
    start = float(base_params[name])
    if not (math.isfinite(start) and start > 0):
        raise CalibrationError(f"{name}: the starting threshold must be positive")
    increasing = cls.threshold_increases_run_length
    make_draw = bootstrap_sampler(reference, method=method, block_size=block_size)
    warm = _warmup_of(prototype, warmup)
    chunk = _chunk_for(target_arl0)
    evaluations: list[tuple[float, float]] = []

    def theta(u: float) -> float:
        return math.exp(u if increasing else -u)

    def factory_for(value: float) -> Callable[[], DriftDetector[Any]]:
        p = dict(base_params)
        p[name] = value
        cls(**p)  # validate now: ValueError for thresholds out of range

        def factory() -> DriftDetector[Any]:
            return cls(**p)

        return factory

    def evaluate(u: float, decide: bool = True) -> RunLengthEstimate:
        value = theta(u)
        try:
            factory = factory_for(value)
        except ValueError as exc:
            raise CalibrationError(
                f"cannot reach target_arl0={target_arl0} within valid values of {name} "
                f"({value!r}: {exc})"
            ) from exc
        est = _simulate(
            factory,
            make_draw,
            n_runs=n_runs,
            warmup=warm,
            max_run_length=cap,
            seed=seed,
            chunk=chunk,
            decide_against=target_arl0 if decide else None,
        )
        evaluations.append((value, est.arl0))
        return est

    def valid(u: float) -> bool:
        try:
            factory_for(theta(u))
        except ValueError:
            return False
        return True

    def expand(u_from: float, up: bool) -> tuple[float, float]:
        """Step away from ``u_from`` (growing steps, shrunk where the threshold would be
        invalid) until the target is crossed; returns the bracket (lo, hi)."""
        last, step = u_from, math.log(2.0)
        while True:
            if len(evaluations) >= max_iter:
                raise CalibrationError(f"no {name} brackets target_arl0={target_arl0}")
            cand = last + step if up else last - step
            if not valid(cand):
                step /= 4.0
                if step < 1e-9:
                    evaluate(cand)  # raises CalibrationError naming the bound
                continue
            est = points[cand] = evaluate(cand)
            if (est.arl0 >= target_arl0) == up:
                return (last, cand) if up else (cand, last)
            last, step = cand, step * 2.0

    # Work in u, where the run length increases with u.
    u0 = math.log(start) if increasing else -math.log(start)
    points: dict[float, RunLengthEstimate] = {u0: evaluate(u0)}
    lo, hi = expand(u0, up=points[u0].arl0 < target_arl0)
    log_target = math.log(target_arl0)
    chosen: float | None = None
    plateau = 0
    while hi - lo > math.log1p(rtol) and len(evaluations) < max_iter:
        a, b = points[lo], points[hi]
        if a.n_runs == b.n_runs == n_runs and a.n_alarms and b.n_alarms:
            # Both ends fully simulated: interpolate log ARL0 linearly (regula falsi),
            # kept away from the ends so the bracket always shrinks.
            la, lb = math.log(a.arl0), math.log(b.arl0)
            frac = (log_target - la) / (lb - la) if lb > la else 0.5
            mid = lo + min(max(frac, 0.1), 0.9) * (hi - lo)
        else:
            mid = 0.5 * (lo + hi)
        est = evaluate(mid)
        points[mid] = est
        if est.n_runs == n_runs and abs(math.log(est.arl0 / target_arl0)) <= tol:
            chosen = mid
            break
        # A discrete statistic makes the simulated ARL0 a step function of the
        # threshold: the same runs give the same alarms on a whole interval.
        same = (est.n_runs, est.n_alarms, est.exposure)
        ends = {(p.n_runs, p.n_alarms, p.exposure) for p in (points[lo], points[hi])}
        plateau = plateau + 1 if est.n_runs == n_runs and same in ends else 0
        if est.arl0 < target_arl0:
            lo = mid
        else:
            hi = mid
        if plateau >= 3:
            # The target falls in a jump: take the side whose ARL0 is nearer to it.
            for u_end in (lo, hi):
                if points[u_end].n_runs < n_runs:
                    points[u_end] = evaluate(u_end, decide=False)
            chosen = min((lo, hi), key=lambda u: abs(math.log(points[u].arl0 / target_arl0)))
            break
    if chosen is None:
        chosen = 0.5 * (lo + hi)
        points[chosen] = evaluate(chosen, decide=False)
    u = chosen
    final = points[u]
    value = theta(u)
    result_params = dict(base_params)
    result_params[name] = value
    return Calibration(
        detector=cls.name,
        threshold_param=name,
        threshold=value,
        params=result_params,
        target_arl0=float(target_arl0),
        estimate=final,
        warmup=warm,
        seed=seed,
        method=method,
        block_size=block_size,
        evaluations=tuple(evaluations),
    )
