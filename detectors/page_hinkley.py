"""Page-Hinkley test, one- or two-sided, river-compatible."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from detectors._parse import FloatArray, as_float_array, get_bool, get_float, get_int
from detectors.base import DriftDetector, register, require

__all__ = ["PageHinkley"]

Mode = Literal["both", "up", "down"]
_MODES = ("both", "up", "down")


def anchor_period(factor: float, cap: int = 4096, growth_bits: float = 20.0) -> int:
    """Steps between re-anchorings of ``s_n = factor**k * (anchor + sum_j e_j /
    factor**j)`` so that ``1 / factor**k`` stays below ``2**growth_bits``."""
    if factor >= 1.0:
        return cap
    return int(max(1, min(cap, math.floor(growth_bits * math.log(2.0) / -math.log(factor)))))


@register
class PageHinkley(DriftDetector[float]):
    r"""Page-Hinkley change detector with river's parameters and detections.

    The running mean :math:`\bar x_n` of the stream is tracked; with
    :math:`d_n = x_n - \bar x_n` the detector accumulates the faded sums
    :math:`U_n = \alpha U_{n-1} + d_n - \delta` (increases) and
    :math:`L_n = \alpha L_{n-1} + d_n + \delta` (decreases) and, from
    ``min_instances`` observations on, fires when :math:`U_n - \min_k U_k` (mode
    ``"up"``), :math:`\max_k L_k - L_n` (mode ``"down"``) or either (``"both"``,
    the default) exceeds ``threshold``. The update after a detection starts afresh,
    as in river.

    Parameters
    ----------
    min_instances
        Observations (since the last detection) before a detection is possible.
    delta
        Magnitude of changes that are tolerated (>= 0).
    threshold
        The alarm threshold :math:`\lambda` (> 0); larger means fewer alarms.
    alpha
        Fading factor in (0, 1] of the cumulative sums.
    mode
        ``"up"``, ``"down"`` or ``"both"``.

    Notes
    -----
    Memory: O(1) (a dozen floats). The sums are evaluated in a re-anchored form,
    :math:`U_n = \alpha^k (A + \sum_{j\le k} (d_j-\delta)\alpha^{-j})` with the anchor
    :math:`A` refreshed every few thousand steps (the powers of :math:`\alpha` come
    from a table shared by all instances with the same ``alpha``), and the mean as a running sum over
    the count, so that ``update_many`` can compute them with numpy accumulations
    bit-for-bit equal to ``update``. The values equal river's up to rounding (about
    1e-15 relative), so detections coincide with river's, as tested by
    ``tests/detectors/test_river_conformance.py``; only a statistic within rounding
    of the threshold could differ. ``statistic`` is the largest monitored test value
    after the last update (NaN before ``min_instances``).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import PageHinkley
    >>> rng = np.random.default_rng(7)
    >>> stream = np.concatenate([rng.normal(0.0, 1.0, 1000), rng.normal(1.5, 1.0, 1000)])
    >>> ph = PageHinkley(threshold=100.0)
    >>> for i, x in enumerate(stream):
    ...     _ = ph.update(x)
    ...     if ph.drift_detected:
    ...         print(f"drift at index {i}")
    drift at index 1030
    >>> PageHinkley(threshold=100.0, mode="down").update_many(-stream)
    [1030]
    """

    name: ClassVar[str] = "page_hinkley"
    column_path: ClassVar[bool] = True
    input_kind = "numeric"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "threshold"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: Mode = "both",
    ) -> None:
        super().__init__()
        require(
            isinstance(min_instances, (int, np.integer))
            and not isinstance(min_instances, bool)
            and min_instances >= 1,
            "min_instances",
            f"must be an integer >= 1, got {min_instances!r}",
        )
        require(_finite(delta) and delta >= 0, "delta", f"must be a number >= 0, got {delta!r}")
        require(
            _finite(threshold) and threshold > 0,
            "threshold",
            f"must be a number > 0, got {threshold!r}",
        )
        require(
            _finite(alpha) and 0 < alpha <= 1, "alpha", f"must be a number in (0, 1], got {alpha!r}"
        )
        require(mode in _MODES, "mode", f"must be one of {_MODES}, got {mode!r}")
        self.min_instances = int(min_instances)
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.mode: Mode = mode
        self._inv_alpha = 1.0 / self.alpha
        self._period = anchor_period(self.alpha)
        self._up = mode != "down"
        self._down = mode != "up"
        pw, qw = _power_lists(self.alpha, self._period)
        self._cfg = (
            pw, qw, self.delta, self._period, self.threshold,
            self._up, self._down, self.min_instances,
        )  # fmt: skip
        self.reset()

    @property
    def threshold(self) -> float:
        """The alarm threshold (the ``threshold`` hyperparameter)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = value

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        # n, sum, k, anchor_inc, anchor_dec, acc_inc, acc_dec, sum_inc, sum_dec,
        # min_inc, max_dec -- one list, so that ``update`` touches few attributes
        self._st: list[Any] = [0, 0.0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, math.inf, -1.0]

    @property
    def statistic(self) -> float:
        st = self._st
        if st[0] < self.min_instances:
            return math.nan
        up = st[7] - st[9]
        down = st[10] - st[8]
        if self.mode == "up":
            return float(up)
        if self.mode == "down":
            return float(down)
        return float(max(up, down))

    def update(self, x: float) -> PageHinkley:
        x = float(x)
        if x - x != 0.0:
            raise ValueError(f"x must be a finite number, got {x!r}")
        if self.drift_detected:
            self.reset()
        n, total, k, a_inc, a_dec, t_inc, t_dec, _, _, min_inc, max_dec = self._st
        pw, qw, delta, period, thr, up, down, min_n = self._cfg
        n += 1
        total += x
        dev = x - total / n
        k += 1
        p = pw[k]
        q = qw[k]
        t_inc += (dev - delta) * q
        t_dec += (dev + delta) * q
        s_inc = p * (a_inc + t_inc)
        s_dec = p * (a_dec + t_dec)
        if k == period:
            a_inc, a_dec, t_inc, t_dec, k = s_inc, s_dec, 0.0, 0.0, 0
        if s_inc < min_inc:
            min_inc = s_inc
        if s_dec > max_dec:
            max_dec = s_dec
        self._st = [n, total, k, a_inc, a_dec, t_inc, t_dec, s_inc, s_dec, min_inc, max_dec]
        if n >= min_n:
            self.drift_detected = (up and s_inc - min_inc > thr) or (down and max_dec - s_dec > thr)
        return self

    def update_many(self, values: Iterable[float]) -> list[int]:
        xs = as_float_array(values)
        out: list[int] = []
        i = 0
        size = 512
        while i < len(xs):
            if self.drift_detected:
                self.reset()
                size = 512
            seg = xs[i : i + min(size, self._period - self._st[2])]
            hit = self._segment(seg)
            if hit is None:
                i += len(seg)
                size *= 4
            else:
                out.append(i + hit)
                i += hit + 1
        return out

    def _segment(self, xs: FloatArray) -> int | None:
        """Vectorised ``update`` over ``xs`` (no anchoring inside); stops after the
        first detection and returns its index."""
        n0, total0, k0, a_inc, a_dec, t_inc0, t_dec0, _, _, min0, max0 = self._st
        m = len(xs)
        pw, qw = _powers(self.alpha, self._period)
        p = pw[k0 + 1 : k0 + m + 1]
        q = qw[k0 + 1 : k0 + m + 1]
        n = np.arange(n0 + 1, n0 + m + 1, dtype=np.float64)
        total = xs.copy()
        total[0] += total0
        np.add.accumulate(total, out=total)
        dev = total / n
        np.subtract(xs, dev, out=dev)
        thr = self.threshold
        fire = n >= self.min_instances if n0 < self.min_instances else np.ones(m, dtype=bool)
        s_inc = dev - self.delta
        s_inc *= q
        s_inc[0] += t_inc0
        np.add.accumulate(s_inc, out=s_inc)
        t_inc_e = s_inc  # cumulative sums, turned into s_inc below after saving
        s_dec = dev + self.delta
        s_dec *= q
        s_dec[0] += t_dec0
        np.add.accumulate(s_dec, out=s_dec)
        t_dec_e = s_dec
        s_inc = (a_inc + t_inc_e) * p
        s_dec = (a_dec + t_dec_e) * p
        min_inc = np.minimum.accumulate(s_inc)
        min_inc[0] = min(min0, min_inc[0])
        np.minimum.accumulate(min_inc, out=min_inc)
        max_dec = np.maximum.accumulate(s_dec)
        max_dec[0] = max(max0, max_dec[0])
        np.maximum.accumulate(max_dec, out=max_dec)
        test = np.zeros(m, dtype=bool)
        if self._up:
            test |= s_inc - min_inc > thr
        if self._down:
            test |= max_dec - s_dec > thr
        fire &= test
        hit = int(np.argmax(fire)) if fire.any() else None
        e = m - 1 if hit is None else hit
        st = [
            n0 + e + 1, float(total[e]), k0 + e + 1, a_inc, a_dec,
            float(t_inc_e[e]), float(t_dec_e[e]), float(s_inc[e]), float(s_dec[e]),
            float(min_inc[e]), float(max_dec[e]),
        ]  # fmt: skip
        if st[2] == self._period:
            st[2:7] = [0, st[7], st[8], 0.0, 0.0]
        self._st = st
        self.drift_detected = hit is not None
        return hit

    def _get_params(self) -> dict[str, Any]:
        return {
            "min_instances": self.min_instances,
            "delta": self.delta,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "mode": self.mode,
        }

    _KEYS = (
        "n", "sum", "k", "anchor_inc", "anchor_dec", "acc_inc", "acc_dec",
        "sum_inc", "sum_dec", "min_inc", "max_dec",
    )  # fmt: skip

    def _get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(zip(self._KEYS, self._st, strict=True))
        if state["n"] == 0:
            state["min_inc"] = None
        state["drift_detected"] = self.drift_detected
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        n = get_int(state, "n")
        k = get_int(state, "k")
        if k >= self._period or k > n:
            raise ValueError(f"k={k} is out of range")
        floats = [get_float(state, key) for key in self._KEYS[3:9]]
        min_inc = math.inf if n == 0 else get_float(state, "min_inc")
        drift = get_bool(state, "drift_detected")
        self.reset()
        self._st = [n, get_float(state, "sum"), k, *floats, min_inc, get_float(state, "max_dec")]
        self.drift_detected = drift


@functools.lru_cache(maxsize=32)
def _powers(alpha: float, period: int) -> tuple[FloatArray, FloatArray]:
    """``alpha**k`` and ``alpha**-k`` for k = 0..period, each by repeated
    multiplication (the exact values ``update`` would compute step by step)."""
    pw = np.multiply.accumulate(np.concatenate(([1.0], np.full(period, alpha))))
    qw = np.multiply.accumulate(np.concatenate(([1.0], np.full(period, 1.0 / alpha))))
    pw.flags.writeable = False
    qw.flags.writeable = False
    return pw, qw


@functools.lru_cache(maxsize=32)
def _power_lists(alpha: float, period: int) -> tuple[list[float], list[float]]:
    """``_powers`` as lists (shared by every instance with the same ``alpha``)."""
    pw, qw = _powers(alpha, period)
    return pw.tolist(), qw.tolist()


def _finite(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
