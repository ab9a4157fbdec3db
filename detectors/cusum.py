"""Two-sided tabular CUSUM control chart."""

from __future__ import annotations

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

__all__ = ["CUSUM"]

_PERIOD = 4096


@register
class CUSUM(DriftDetector[float]):
    r"""Two-sided CUSUM chart on standardised values.

    With :math:`z_n = (x_n - \mu_0) / \sigma_0` it tracks
    :math:`S^+_n = \max(0, S^+_{n-1} + z_n - k)` and
    :math:`S^-_n = \max(0, S^-_{n-1} - z_n - k)` and fires when either exceeds
    ``h``. The reference :math:`\mu_0, \sigma_0` is ``target`` / ``scale`` when
    given, otherwise estimated from the first ``warmup`` observations (no alarm
    during the warm-up). The update after a detection starts afresh (re-estimating
    the reference unless both were given).

    Parameters
    ----------
    k
        Drift allowance (slack), in units of ``scale``; >= 0. Typically half the
        shift to detect.
    h
        Decision threshold, in units of ``scale``; > 0. Larger means fewer alarms.
    target, scale
        In-control mean and standard deviation; None = estimate them.
    warmup
        Observations used for the estimate (>= 2).

    Notes
    -----
    Memory: O(``warmup``) floats during the warm-up, O(1) afterwards.
    :math:`S^\pm` are computed as a running sum minus its running minimum
    (:math:`S_n = C_n - \min(0, \min_{j\le n} C_j)`, equal to the recursion in exact
    arithmetic), re-anchored every 4096 steps, so that ``update_many`` evaluates them
    with numpy accumulations bit-for-bit like ``update``. Standardised values are
    clipped to :math:`\pm 10^{100}`. ``statistic`` is :math:`\max(S^+, S^-)`.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import CUSUM
    >>> rng = np.random.default_rng(7)
    >>> stream = np.concatenate([rng.normal(0.0, 1.0, 500), rng.normal(1.0, 1.0, 500)])
    >>> cusum = CUSUM(k=0.5, h=12.0, warmup=100)
    >>> for i, x in enumerate(stream):
    ...     _ = cusum.update(x)
    ...     if cusum.drift_detected:
    ...         print(f"drift at index {i}")
    drift at index 516
    >>> CUSUM(k=0.5, h=12.0, warmup=100).update_many(stream)
    [516]
    """

    name: ClassVar[str] = "cusum"
    copies_by_reset: ClassVar[bool] = True
    column_path: ClassVar[bool] = True
    input_kind = "numeric"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "h"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self,
        k: float = 0.5,
        h: float = 5.0,
        target: float | None = None,
        scale: float | None = None,
        warmup: int = 30,
    ) -> None:
        super().__init__()
        require(is_finite_number(k) and k >= 0, "k", f"must be a finite number >= 0, got {k!r}")
        require(is_finite_number(h) and h > 0, "h", f"must be a finite number > 0, got {h!r}")
        self._baseline = Baseline(target, scale, warmup)
        self.k = float(k)
        self.h = float(h)
        self.target = target
        self.scale = scale
        self.warmup = warmup
        self.reset()

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._baseline = self._baseline.fresh()
        self._restart()

    def _restart(self) -> None:
        # steps since anchoring, C+, min C+, C-, min C-
        self._st: list[Any] = [0, 0.0, 0.0, 0.0, 0.0]

    def _after_detection(self) -> None:
        self.drift_detected = False
        if self._baseline.estimates:
            self._baseline.reset()
        self._restart()

    @property
    def statistic(self) -> float:
        _, cp, mp, cm, mm = self._st
        return float(max(cp - mp, cm - mm))

    def update(self, x: float) -> CUSUM:
        x = float(x)
        if x - x != 0.0:
            raise ValueError(f"x must be a finite number, got {x!r}")
        if self.drift_detected:
            self._after_detection()
        base = self._baseline
        if not base.ready:
            base.add(x)
            return self
        z = (x - base.target) / base.scale
        if z > CLIP:
            z = CLIP
        elif z < -CLIP:
            z = -CLIP
        steps, cp, mp, cm, mm = self._st
        k = self.k
        cp += z - k
        cm += -z - k
        if cp < mp:
            mp = cp
        if cm < mm:
            mm = cm
        sp = cp - mp
        sm = cm - mm
        steps += 1
        if steps == _PERIOD:
            self._st = [0, sp, 0.0, sm, 0.0]
        else:
            self._st = [steps, cp, mp, cm, mm]
        self.drift_detected = sp > self.h or sm > self.h
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
            seg = xs[i : i + min(size, _PERIOD - self._st[0])]
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
        steps, cp0, mp0, cm0, mm0 = self._st
        base = self._baseline
        z = xs - base.target
        z /= base.scale
        np.minimum(z, CLIP, out=z)
        np.maximum(z, -CLIP, out=z)
        cp = z - self.k
        cp[0] += cp0
        np.add.accumulate(cp, out=cp)
        cm = -z
        cm -= self.k
        cm[0] += cm0
        np.add.accumulate(cm, out=cm)
        mp = np.minimum.accumulate(cp)
        mp[0] = min(mp0, mp[0])
        np.minimum.accumulate(mp, out=mp)
        mm = np.minimum.accumulate(cm)
        mm[0] = min(mm0, mm[0])
        np.minimum.accumulate(mm, out=mm)
        sp = cp - mp
        sm = cm - mm
        fire = (sp > self.h) | (sm > self.h)
        hit = int(np.argmax(fire)) if fire.any() else None
        e = len(xs) - 1 if hit is None else hit
        steps += e + 1
        if steps == _PERIOD:
            self._st = [0, float(sp[e]), 0.0, float(sm[e]), 0.0]
        else:
            self._st = [steps, float(cp[e]), float(mp[e]), float(cm[e]), float(mm[e])]
        self.drift_detected = hit is not None
        return hit

    def _get_params(self) -> dict[str, Any]:
        return {"k": self.k, "h": self.h, "target": self.target, "scale": self.scale,
                "warmup": self.warmup}  # fmt: skip

    def _get_state(self) -> dict[str, Any]:
        steps, cp, mp, cm, mm = self._st
        return {"baseline": self._baseline.get_state(), "steps": steps, "c_up": cp,
                "min_up": mp, "c_down": cm, "min_down": mm,
                "drift_detected": self.drift_detected}  # fmt: skip

    def _set_state(self, state: Mapping[str, Any]) -> None:
        baseline = state["baseline"]
        if not isinstance(baseline, Mapping):
            raise TypeError("baseline must be a mapping")
        steps = get_int(state, "steps")
        if steps >= _PERIOD:
            raise ValueError("steps out of range")
        st = [steps] + [get_float(state, key) for key in ("c_up", "min_up", "c_down", "min_down")]
        if st[2] > 0 or st[4] > 0:
            raise ValueError("running minima must be <= 0")
        drift = get_bool(state, "drift_detected")
        self.reset()
        self._baseline.set_state(baseline)
        self._st = st
        self.drift_detected = drift
