"""Rolling mean or quantile of a bounded value (e.g. confidence) against a reference band."""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from detectors._columns import consume_column
from detectors._parse import (
    Direction,
    check_direction,
    check_fraction,
    check_positive_float,
    check_positive_int,
    exceedance,
    get_float_or_nan,
    get_int,
    json_float,
)
from detectors.base import DriftDetector, InputKind, check_finite, register, require

__all__ = ["RollingThreshold"]

Aggregate = Literal["mean", "quantile"]


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


@register
class RollingThreshold(DriftDetector[float]):
    r"""Rolling mean (or quantile) of the last ``window_size`` values against a learned band.

    For values such as a classifier's confidence: "92 % sure yesterday, 65 % today".
    The first ``reference_size`` values are the reference. From them:

    * ``aggregate="mean"``: centre ``mu`` and band ``mu +- max(k * sigma / sqrt(w),
      tolerance)``, ``sigma`` the reference standard deviation and ``w = window_size``
      (the standard error of a window mean of i.i.d. values).
    * ``aggregate="quantile"``: centre ``Q(q)``, the reference ``quantile`` ``q``, and
      band ``[Q(q - d), Q(q + d)]`` with ``d = k * sqrt(q (1 - q) / w)`` (the standard
      error of a window's sample quantile, in probability, mapped through the
      reference quantile function ``Q`` -- distribution-free), widened to at least
      ``tolerance`` either side of the centre.

    Afterwards, once the window is full, every ``check_every``-th value is a check:
    is the window's mean (or quantile, linear interpolation) outside the band on the
    side ``direction`` watches? Drift is detected when ``patience`` consecutive checks
    are (hysteresis: a brief excursion is not an alarm). The window is then emptied
    and the count restarts; the reference is kept (``reset()`` forgets it).

    ``statistic`` is the window value's distance from the centre scaled so that the
    band edge on that side is at ``k`` (signed towards the watched side; ``threshold``
    is ``k``); ``value``, ``lower``, ``upper``, ``center`` and ``consecutive`` give
    the raw numbers. The running sum is recomputed exactly (``math.fsum``) every
    ``window_size`` values so rounding cannot accumulate.

    Memory: O(window_size) (the window, and a sorted copy for quantiles); while the
    reference is learned, O(1) for the mean and O(reference_size) for quantiles. All
    of them are ``array('d')`` (8 bytes a value), the window a ring allocated with
    its first value.

    Parameters
    ----------
    window_size
        Values per rolling window (>= 2).
    reference_size
        First values that define the band (>= 2).
    k
        Band half-width in standard errors; the alarm threshold.
    aggregate
        ``"mean"`` or ``"quantile"``.
    quantile
        The quantile tracked when ``aggregate="quantile"``, in (0, 1).
    direction
        ``"lower"`` (e.g. confidence decay), ``"upper"`` or ``"both"``.
    patience
        Consecutive out-of-band checks needed for a detection (>= 1).
    check_every
        Values between checks once the window is full (>= 1).
    tolerance
        Minimum half-width of the band, in the values' units (>= 0).

    Examples
    --------
    Confidence around 0.92 that decays to around 0.65 after value 2000:

    >>> import numpy as np
    >>> from detectors.rolling_threshold import RollingThreshold
    >>> rng = np.random.default_rng(5)
    >>> confidence = np.concatenate([rng.beta(23, 2, size=2000), rng.beta(13, 7, size=500)])
    >>> detector = RollingThreshold(window_size=100, reference_size=500, k=5.0,
    ...                             direction="lower", patience=3)
    >>> for i, c in enumerate(confidence.tolist()):
    ...     _ = detector.update(c)
    ...     if detector.drift_detected:
    ...         print(f"drift at {i}: mean {detector.value:.3f} below {detector.lower:.3f}")
    ...         break
    drift at 2014: mean 0.890 below 0.894
    """

    name: ClassVar[str] = "rolling_threshold"
    copies_by_reset: ClassVar[bool] = True
    column_path: ClassVar[bool] = True
    input_kind: ClassVar[InputKind] = "numeric"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "k"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self,
        window_size: int = 100,
        reference_size: int = 500,
        k: float = 5.0,
        aggregate: Aggregate = "mean",
        quantile: float = 0.5,
        direction: Direction = "both",
        patience: int = 3,
        check_every: int = 1,
        tolerance: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = check_positive_int(window_size, "window_size", minimum=2)
        self.reference_size = check_positive_int(reference_size, "reference_size", minimum=2)
        self.k = check_positive_float(k, "k")
        require(aggregate in ("mean", "quantile"), "aggregate", "must be 'mean' or 'quantile'")
        self.aggregate: Aggregate = aggregate
        self.quantile = check_fraction(quantile, "quantile")
        self.direction: Direction = check_direction(direction)
        self.patience = check_positive_int(patience, "patience")
        self.check_every = check_positive_int(check_every, "check_every")
        self.tolerance = check_positive_float(tolerance, "tolerance", allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._ref_n = 0
        self._ref_mean = 0.0
        self._ref_m2 = 0.0
        self._ref_values = array("d")
        self._center = math.nan
        self._lower = math.nan
        self._upper = math.nan
        self._value = math.nan
        self._clear_window()

    def _clear_window(self) -> None:
        self._ring = array("d")  # grows to window_size, then a ring
        self._pos = 0
        """The ring's next write (its oldest value once it is full)."""
        self._sorted = array("d")
        self._sum = 0.0
        self._since_fsum = 0
        self._since_check = 0
        self._consecutive = 0

    def _finish_reference(self) -> None:
        w = self.window_size
        if self.aggregate == "mean":
            sigma = math.sqrt(self._ref_m2 / (self._ref_n - 1))
            half = max(self.k * sigma / math.sqrt(w), self.tolerance)
            self._center = self._ref_mean
            self._lower, self._upper = self._center - half, self._center + half
        else:
            values = sorted(self._ref_values)
            q = self.quantile
            d = self.k * math.sqrt(q * (1.0 - q) / w)
            self._center = _quantile(values, q)
            lower = _quantile(values, max(q - d, 0.0))
            upper = _quantile(values, min(q + d, 1.0))
            self._lower = min(lower, self._center - self.tolerance)
            self._upper = max(upper, self._center + self.tolerance)
            self._ref_values = array("d")

    # -- the per-event and column paths ------------------------------------------
    def update(self, x: float) -> RollingThreshold:
        """One value (the per-event path, kept apart from :meth:`_consume`'s column
        loop: a call per value pays no loop set-up; the column path is tested equal)."""
        value = check_finite(x)
        self.drift_detected = False
        if self._ref_n < self.reference_size:
            self._learn(value)
            return self
        w = self.window_size
        ring = self._ring
        self._sum += value
        quantiles = self.aggregate == "quantile"
        if quantiles:
            bisect.insort(self._sorted, value)
        pos = self._pos
        if len(ring) < w:
            ring.append(value)
        else:
            old = ring[pos]
            ring[pos] = value
            self._sum -= old
            if quantiles:
                del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._pos = 0 if pos + 1 == w else pos + 1
        self._since_fsum += 1
        if self._since_fsum >= w:
            self._sum = math.fsum(ring)
            self._since_fsum = 0
        if len(ring) < w:
            return self
        self._since_check += 1
        if self._since_check < self.check_every:
            return self
        self._since_check = 0
        current = _quantile(self._sorted, self.quantile) if quantiles else self._sum / w
        self._value = current
        below, above = current < self._lower, current > self._upper
        outside = (
            below
            if self.direction == "lower"
            else above
            if self.direction == "upper"
            else below or above
        )
        if outside:
            self._consecutive += 1
            if self._consecutive >= self.patience:
                self.drift_detected = True
                self._clear_window()
        else:
            self._consecutive = 0
        return self

    def update_many(self, values: Iterable[float]) -> list[int]:
        """Equal to ``update`` on each value in turn, with the window held in local
        variables over the column (:meth:`_consume`; driven by
        :func:`detectors._columns.consume_column`)."""
        return consume_column(self, values, check_finite)

    def _learning(self) -> bool:
        return self._ref_n < self.reference_size

    def _learn(self, value: float) -> None:
        self._ref_n += 1
        delta = value - self._ref_mean
        self._ref_mean += delta / self._ref_n
        self._ref_m2 += delta * (value - self._ref_mean)
        if self.aggregate == "quantile":
            self._ref_values.append(value)
        if self._ref_n == self.reference_size:
            self._finish_reference()

    def _consume(self, values: list[float], i: int) -> int:
        """Window ``values[i:]`` until ``patience`` checks in a row fall outside the
        band (then set the flag and clear the window); the index after the last taken."""
        w, check_every, patience = self.window_size, self.check_every, self.patience
        lower, upper, direction = self._lower, self._upper, self.direction
        quantiles = self.aggregate == "quantile"
        ring, ordered = self._ring, self._sorted
        total, pos = self._sum, self._pos
        since_fsum, since_check = self._since_fsum, self._since_check
        consecutive, current = self._consecutive, self._value
        n = len(values)
        while i < n:
            value = values[i]
            i += 1
            total += value
            if quantiles:
                bisect.insort(ordered, value)
            if len(ring) < w:
                ring.append(value)
            else:
                old = ring[pos]
                ring[pos] = value
                total -= old
                if quantiles:
                    del ordered[bisect.bisect_left(ordered, old)]
            pos = 0 if pos + 1 == w else pos + 1
            since_fsum += 1
            if since_fsum >= w:
                total = math.fsum(ring)
                since_fsum = 0
            if len(ring) < w:
                continue
            since_check += 1
            if since_check < check_every:
                continue
            since_check = 0
            current = _quantile(ordered, self.quantile) if quantiles else total / w
            below, above = current < lower, current > upper
            outside = (
                below if direction == "lower" else above if direction == "upper" else below or above
            )
            if outside:
                consecutive += 1
                if consecutive >= patience:
                    self._value = current
                    self.drift_detected = True
                    self._clear_window()
                    return i
            else:
                consecutive = 0
        self._sum, self._pos = total, pos
        self._since_fsum, self._since_check = since_fsum, since_check
        self._consecutive, self._value = consecutive, current
        return i

    def _window(self) -> list[float]:
        """The window's values, oldest first."""
        ring, pos = self._ring, self._pos if len(self._ring) == self.window_size else 0
        return ring[pos:].tolist() + ring[:pos].tolist()

    # -- evidence -------------------------------------------------------------
    @property
    def z_score(self) -> float:
        """Signed distance of ``value`` from ``center``, the band edge on its side at +-k."""
        value, center = self._value, self._center
        if math.isnan(value) or math.isnan(center):
            return math.nan
        if value == center:
            return 0.0
        edge = self._upper if value > center else self._lower
        width = abs(edge - center)
        if width == 0.0:
            return math.copysign(math.inf, value - center)
        return self.k * (value - center) / width

    @property
    def statistic(self) -> float:
        """``z_score`` signed towards the watched side; above ``k`` means outside the band."""
        z = self.z_score
        return z if math.isnan(z) else exceedance(z, self.direction)

    @property
    def value(self) -> float:
        """Window mean (or quantile) at the last check; NaN before the first."""
        return self._value

    @property
    def center(self) -> float:
        return self._center

    @property
    def lower(self) -> float:
        return self._lower

    @property
    def upper(self) -> float:
        return self._upper

    @property
    def consecutive(self) -> int:
        """Consecutive out-of-band checks so far (0 right after a detection)."""
        return self._consecutive

    @property
    def learning_period(self) -> int:
        """Values a fresh detector spends learning its reference."""
        return self.reference_size

    @property
    def quiet_period(self) -> int:
        """The reference being learned: no check before it is full."""
        return self.reference_size

    admit = staticmethod(check_finite)

    # -- snapshots -------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "window_size": self.window_size,
            "reference_size": self.reference_size,
            "k": self.k,
            "aggregate": self.aggregate,
            "quantile": self.quantile,
            "direction": self.direction,
            "patience": self.patience,
            "check_every": self.check_every,
            "tolerance": self.tolerance,
        }

    def _get_state(self) -> dict[str, Any]:
        return {
            "ref_n": self._ref_n,
            "ref_mean": self._ref_mean,
            "ref_m2": self._ref_m2,
            "ref_values": self._ref_values.tolist(),
            "center": json_float(self._center),
            "lower": json_float(self._lower),
            "upper": json_float(self._upper),
            "value": json_float(self._value),
            "window": self._window(),
            "sum": self._sum,
            "since_fsum": self._since_fsum,
            "since_check": self._since_check,
            "consecutive": self._consecutive,
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        ref_n = get_int(state, "ref_n")
        require(ref_n <= self.reference_size, "ref_n", "exceeds reference_size")
        learning = ref_n < self.reference_size
        ref_values = [check_finite(v, "ref_values") for v in state["ref_values"]]
        expected = ref_n if learning and self.aggregate == "quantile" else 0
        if len(ref_values) != expected:
            raise ValueError("ref_values do not match ref_n")
        band = [get_float_or_nan(state, key) for key in ("center", "lower", "upper")]
        if learning == all(math.isfinite(b) for b in band):
            raise ValueError("the band must be set exactly when the reference is learned")
        window = [check_finite(v, "window") for v in state["window"]]
        if len(window) > self.window_size or (window and learning):
            raise ValueError("window is too long or present while learning")
        since_fsum = get_int(state, "since_fsum")
        since_check = get_int(state, "since_check")
        consecutive = get_int(state, "consecutive")
        if since_fsum >= self.window_size or since_check >= self.check_every:
            raise ValueError("counters out of range")
        self._ref_n = ref_n
        self._ref_mean = get_float_or_nan(state, "ref_mean")
        self._ref_m2 = get_float_or_nan(state, "ref_m2")
        self._ref_values = array("d", ref_values)
        self._center, self._lower, self._upper = band
        self._value = get_float_or_nan(state, "value")
        self._clear_window()
        self._ring = array("d", window)
        self._pos = len(window) % self.window_size
        if self.aggregate == "quantile":
            self._sorted = array("d", sorted(window))
        self._sum = get_float_or_nan(state, "sum")
        self._since_fsum = since_fsum
        self._since_check = since_check
        self._consecutive = consecutive
