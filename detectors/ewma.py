"""EWMA control chart with exact (time-varying) control limits."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from detectors._control import CLIP, Baseline
from detectors._parse import (
    FloatArray,
    as_float_array,
    get_bool,
    get_float,
    get_int,
    is_finite_number,
)
from detectors.base import DriftDetector, register, require
from detectors.page_hinkley import anchor_period

__all__ = ["EWMA"]


@functools.lru_cache(maxsize=32)
def _tables(decay: float, period: int) -> tuple[FloatArray, FloatArray, list[float], list[float]]:
    pw = np.multiply.accumulate(np.concatenate(([1.0], np.full(period, decay))))
    qw = np.multiply.accumulate(np.concatenate(([1.0], np.full(period, 1.0 / decay))))
    pw.flags.writeable = False
    qw.flags.writeable = False
    return pw, qw, pw.tolist(), qw.tolist()


@register
class EWMA(DriftDetector[float]):
    r"""Exponentially weighted moving average control chart.

    With standardised values :math:`u_n = (x_n - \mu_0)/\sigma_0` it tracks
    :math:`z_n = \lambda u_n + (1-\lambda) z_{n-1}`, :math:`z_0 = 0`, and fires when
    :math:`|z_n| > L\,\sqrt{\lambda/(2-\lambda)\,(1-(1-\lambda)^{2n})}` (the exact
    limits, narrower during the first observations). The reference
    :math:`\mu_0, \sigma_0` is ``target`` / ``scale`` when given, otherwise
    estimated from the first ``warmup`` observations. The update after a detection
    starts afresh (re-estimating the reference unless both were given).

    Parameters
    ----------
    lam
        Smoothing weight :math:`\lambda` in (0, 1); small values detect small shifts.
    L
        Control-limit width in standard deviations of :math:`z` (> 0). Larger means
        fewer alarms.
    target, scale
        In-control mean and standard deviation; None = estimate them.
    warmup
        Observations used for the estimate (>= 2).

    Notes
    -----
    Memory: O(``warmup``) floats during the warm-up, O(1) afterwards (plus
    power tables shared by all instances with the same ``lam``). :math:`z_n` is
    evaluated as :math:`(1-\lambda)^j (A + \sum_{i\le j} \lambda u_i (1-\lambda)^{-i})`
    with the anchor :math:`A` refreshed periodically, and :math:`(1-\lambda)^{2n}` as a
    running product, so that ``update_many`` computes them with numpy accumulations
    bit-for-bit like ``update``. ``statistic`` is :math:`|z_n|` divided by its
    standard deviation, comparable with ``L``.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import EWMA
    >>> rng = np.random.default_rng(7)
    >>> stream = np.concatenate([rng.normal(0.0, 1.0, 500), rng.normal(1.0, 1.0, 500)])
    >>> ewma = EWMA(lam=0.2, L=4.0, warmup=100)
    >>> for i, x in enumerate(stream):
    ...     _ = ewma.update(x)
    ...     if ewma.drift_detected:
    ...         print(f"drift at index {i}")
    drift at index 516
    >>> EWMA(lam=0.2, L=4.0, warmup=100).update_many(stream)
    [516]
    """

    name: ClassVar[str] = "ewma"
    copies_by_reset: ClassVar[bool] = True
    column_path: ClassVar[bool] = True
    input_kind = "numeric"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "L"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self,
        lam: float = 0.2,
        L: float = 3.0,
        target: float | None = None,
        scale: float | None = None,
        warmup: int = 30,
    ) -> None:
        super().__init__()
        require(
            is_finite_number(lam) and 0 < lam < 1, "lam", f"must be a number in (0, 1), got {lam!r}"
        )
        require(is_finite_number(L) and L > 0, "L", f"must be a finite number > 0, got {L!r}")
        self._baseline = Baseline(target, scale, warmup)
        self.lam = float(lam)
        self.L = float(L)
        self.target = target
        self.scale = scale
        self.warmup = warmup
        self._decay = 1.0 - self.lam
        self._decay2 = self._decay * self._decay
        self._var_factor = self.lam / (2.0 - self.lam)
        self._period = anchor_period(self._decay, growth_bits=600.0)
        _, _, pw, qw = _tables(self._decay, self._period)
        self._cfg = (pw, qw, self.lam, self._decay2, self._period, self._var_factor, self.L)
        self.reset()

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._baseline = self._baseline.fresh()
        self._restart()

    def _restart(self) -> None:
        # steps since anchoring, anchor, accumulated sum, z, (1-lam)^(2n)
        self._st: list[Any] = [0, 0.0, 0.0, 0.0, 1.0]

    def _after_detection(self) -> None:
        self.drift_detected = False
        if self._baseline.estimates:
            self._baseline.reset()
        self._restart()

    @property
    def statistic(self) -> float:
        _, _, _, z, r = self._st
        if r == 1.0:
            return math.nan
        return float(abs(z) / math.sqrt(self._var_factor * (1.0 - r)))

    def update(self, x: float) -> EWMA:
        x = float(x)
        if x - x != 0.0:
            raise ValueError(f"x must be a finite number, got {x!r}")
        if self.drift_detected:
            self._after_detection()
        base = self._baseline
        if not base.ready:
            base.add(x)
            return self
        u = (x - base.target) / base.scale
        if u > CLIP:
            u = CLIP
        elif u < -CLIP:
            u = -CLIP
        k, anchor, acc, _, r = self._st
        pw, qw, lam, decay2, period, var_factor, width = self._cfg
        k += 1
        acc += lam * u * qw[k]
        z = (anchor + acc) * pw[k]
        r *= decay2
        if k == period:
            self._st = [0, z, 0.0, z, r]
        else:
            self._st = [k, anchor, acc, z, r]
        self.drift_detected = abs(z) > width * math.sqrt(var_factor * (1.0 - r))
        return self

    def update_many(self, values: Iterable[float]) -> list[int]:
        xs = as_float_array(values)
        out: list[int] = []
        i = 0
        size = 256
        while i < len(xs):
            if self.drift_detected:
                self._after_detection()
                size = 256
            base = self._baseline
            if not base.ready:
                take = xs[i : i + base.warmup - len(base.buffer)].tolist()
                base.buffer.extend(take[:-1])
                base.add(take[-1])
                i += len(take)
                continue
            seg = xs[i : i + min(size, self._period - self._st[0])]
            hit = self._segment(seg)
            if hit is None:
                i += len(seg)
                size *= 4
            else:
                out.append(i + hit)
                i += hit + 1
        return out

    def _segment(self, xs: FloatArray) -> int | None:
        with np.errstate(over="ignore", invalid="ignore"):  # clipped just below
            return self._segment_inner(xs)

    def _segment_inner(self, xs: FloatArray) -> int | None:
        k0, anchor, acc0, _, r0 = self._st
        m = len(xs)
        base = self._baseline
        pw, qw, _, _ = _tables(self._decay, self._period)
        u = xs - base.target
        u /= base.scale
        np.minimum(u, CLIP, out=u)
        np.maximum(u, -CLIP, out=u)
        acc = self.lam * u
        acc *= qw[k0 + 1 : k0 + m + 1]
        acc[0] += acc0
        np.add.accumulate(acc, out=acc)
        z = anchor + acc
        z *= pw[k0 + 1 : k0 + m + 1]
        r = np.full(m, self._decay2)
        r[0] *= r0
        np.multiply.accumulate(r, out=r)
        limit = 1.0 - r
        limit *= self._var_factor
        np.sqrt(limit, out=limit)
        limit *= self.L
        fire = np.abs(z) > limit
        hit = int(np.argmax(fire)) if fire.any() else None
        e = m - 1 if hit is None else hit
        k = k0 + e + 1
        ze = float(z[e])
        if k == self._period:
            self._st = [0, ze, 0.0, ze, float(r[e])]
        else:
            self._st = [k, anchor, float(acc[e]), ze, float(r[e])]
        self.drift_detected = hit is not None
        return hit

    def _get_params(self) -> dict[str, Any]:
        return {"lam": self.lam, "L": self.L, "target": self.target, "scale": self.scale,
                "warmup": self.warmup}  # fmt: skip

    def _get_state(self) -> dict[str, Any]:
        k, anchor, acc, z, r = self._st
        return {"baseline": self._baseline.get_state(), "steps": k, "anchor": anchor,
                "acc": acc, "z": z, "decay_pow": r,
                "drift_detected": self.drift_detected}  # fmt: skip

    def _set_state(self, state: Mapping[str, Any]) -> None:
        baseline = state["baseline"]
        if not isinstance(baseline, Mapping):
            raise TypeError("baseline must be a mapping")
        k = get_int(state, "steps")
        if k >= self._period:
            raise ValueError("steps out of range")
        st = [k] + [get_float(state, key) for key in ("anchor", "acc", "z", "decay_pow")]
        if not 0.0 <= st[4] <= 1.0:
            raise ValueError("decay_pow must be in [0, 1]")
        drift = get_bool(state, "drift_detected")
        self.reset()
        self._baseline.set_state(baseline)
        self._st = st
        self.drift_detected = drift
