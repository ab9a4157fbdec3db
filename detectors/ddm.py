"""DDM: the Drift Detection Method of Gama et al. (2004), river-exact."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from detectors._parse import binary_value, get_bool, get_float, get_int, is_finite_number
from detectors.base import DriftDetector, register, require

__all__ = ["DDM"]


@register
class DDM(DriftDetector[float]):
    r"""Drift Detection Method for a binary error stream (1 = the model was wrong).

    With :math:`p_i` the error rate so far and :math:`s_i = \sqrt{p_i(1-p_i)/i}`, it
    records :math:`p_{min}, s_{min}` where :math:`p_i + s_i` is smallest and, after
    ``warm_start`` observations, warns when
    :math:`p_i + s_i > p_{min} + w\,s_{min}` and fires when
    :math:`p_i + s_i > p_{min} + d\,s_{min}` (``w`` = ``warning_threshold``,
    ``d`` = ``drift_threshold``). The update after a detection starts afresh.

    The arithmetic is river's ``drift.binary.DDM``, operation for operation, so
    detections and warnings coincide with river's (tested).

    Parameters
    ----------
    warm_start
        Observations before warnings or detections are possible (>= 0).
    warning_threshold
        Width of the warning zone in :math:`s_{min}` (> 0).
    drift_threshold
        Width of the drift zone in :math:`s_{min}` (>= ``warning_threshold``);
        larger means fewer alarms.

    Notes
    -----
    Memory: O(1). Inputs must be 0 or 1 (bool, int or float); anything else raises
    ``ValueError``. ``statistic`` is :math:`(p_i + s_i - p_{min}) / s_{min}`, the
    value compared with the thresholds (NaN before the warm start).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import DDM
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.4]).astype(int)
    >>> ddm = DDM()
    >>> for i, x in enumerate(errors):
    ...     _ = ddm.update(x)
    ...     if ddm.drift_detected:
    ...         print(f"drift at index {i}")
    drift at index 1029
    >>> DDM().update_many(errors)
    [1029]
    """

    name: ClassVar[str] = "ddm"
    input_kind = "binary"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "drift_threshold"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        super().__init__()
        require(
            isinstance(warm_start, int) and not isinstance(warm_start, bool) and warm_start >= 0,
            "warm_start",
            f"must be an integer >= 0, got {warm_start!r}",
        )
        require(
            is_finite_number(warning_threshold) and warning_threshold > 0,
            "warning_threshold",
            f"must be a finite number > 0, got {warning_threshold!r}",
        )
        require(
            is_finite_number(drift_threshold) and drift_threshold >= warning_threshold,
            "drift_threshold",
            f"must be a finite number >= warning_threshold, got {drift_threshold!r}",
        )
        self.warm_start = warm_start
        self.warning_threshold = float(warning_threshold)
        self.drift_threshold = float(drift_threshold)
        self.reset()

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._n = 0.0
        self._p = 0.0
        self._p_min = math.nan
        self._s_min = math.nan
        self._ps_min = math.inf
        self._s_i = math.nan

    @property
    def statistic(self) -> float:
        if self._n <= self.warm_start or not self._s_min > 0:
            return math.nan
        return (self._p + self._s_i - self._p_min) / self._s_min

    def update(self, x: float) -> DDM:
        x = binary_value(x)
        if self.drift_detected:
            self.reset()
        # river's stats.Mean
        self._n = n = self._n + 1.0
        self._p = p_i = self._p + (1.0 / n) * (x - self._p)
        self._s_i = s_i = math.sqrt(p_i * (1 - p_i) / n)
        if n > self.warm_start:
            if p_i + s_i <= self._ps_min:
                self._p_min = p_i
                self._s_min = s_i
                self._ps_min = p_i + s_i
            self.warning_detected = p_i + s_i > self._p_min + self.warning_threshold * self._s_min
            if p_i + s_i > self._p_min + self.drift_threshold * self._s_min:
                self.drift_detected = True
                self.warning_detected = False
        return self

    def _get_params(self) -> dict[str, Any]:
        return {"warm_start": self.warm_start, "warning_threshold": self.warning_threshold,
                "drift_threshold": self.drift_threshold}  # fmt: skip

    def _get_state(self) -> dict[str, Any]:
        started = self._n > self.warm_start
        return {"n": int(self._n), "p": self._p,
                "p_min": self._p_min if started else None,
                "s_min": self._s_min if started else None,
                "drift_detected": self.drift_detected,
                "warning_detected": self.warning_detected}  # fmt: skip

    def _set_state(self, state: Mapping[str, Any]) -> None:
        n = get_int(state, "n")
        p = get_float(state, "p")
        drift = get_bool(state, "drift_detected")
        warning = get_bool(state, "warning_detected")
        if not 0.0 <= p <= 1.0:
            raise ValueError("p must be in [0, 1]")
        self.reset()
        if n > self.warm_start:
            self._p_min = get_float(state, "p_min")
            self._s_min = get_float(state, "s_min")
            self._ps_min = self._p_min + self._s_min
        self._n = float(n)
        self._p = p
        if n:
            self._s_i = math.sqrt(p * (1 - p) / n)
        self.drift_detected = drift
        self.warning_detected = warning
