"""HDDM_A: drift detection with Hoeffding bounds on moving averages, river-exact."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from detectors._parse import binary_value, get_bool, get_float, get_int
from detectors.base import DriftDetector, register, require

__all__ = ["HDDM_A"]


@register
class HDDM_A(DriftDetector[float]):
    r"""HDDM with the A-test (Frías-Blanco et al., 2014) for a binary error stream.

    It keeps the global mean :math:`\bar z` of the stream and the cut point where
    :math:`\bar x + \epsilon_x` was smallest; it fires (warns) when the mean since
    then has risen by more than the Hoeffding bound at confidence
    ``drift_confidence`` (``warning_confidence``). With ``two_sided_test`` decreases
    are monitored too. The update after a detection starts afresh.

    The arithmetic is river's ``drift.binary.HDDM_A`` operation for operation, so
    detections and warnings coincide with river's (tested).

    Parameters
    ----------
    drift_confidence
        Confidence level of the drift test, in (0, 1); smaller means fewer alarms.
    warning_confidence
        Confidence level of the warning test, in (0, 1).
    two_sided_test
        Also monitor decreases of the error rate.

    Notes
    -----
    Memory: O(1). Inputs must be 0 or 1 (1 = the model was wrong); anything else
    raises ``ValueError``. ``statistic`` is the increase of the mean since the cut
    point; ``threshold`` is ``drift_confidence``.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import HDDM_A
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.4]).astype(int)
    >>> hddm = HDDM_A()
    >>> for i, x in enumerate(errors):
    ...     _ = hddm.update(x)
    ...     if hddm.drift_detected:
    ...         print(f"drift at index {i}")
    drift at index 1040
    >>> HDDM_A().update_many(errors)
    [1040]
    """

    name: ClassVar[str] = "hddm_a"
    input_kind = "binary"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "drift_confidence"
    threshold_increases_run_length: ClassVar[bool] = False

    def __init__(
        self,
        drift_confidence: float = 0.001,
        warning_confidence: float = 0.005,
        two_sided_test: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (
            ("drift_confidence", drift_confidence),
            ("warning_confidence", warning_confidence),
        ):
            require(
                isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1,
                name,
                f"must be a number in (0, 1), got {value!r}",
            )
        require(
            isinstance(two_sided_test, bool),
            "two_sided_test",
            f"must be a bool, got {two_sided_test!r}",
        )
        self.drift_confidence = float(drift_confidence)
        self.warning_confidence = float(warning_confidence)
        self.two_sided_test = two_sided_test
        self.reset()

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        # (n, mean) of: the whole stream, the cut for increases, the cut for decreases
        self._z_n, self._z = 0.0, 0.0
        self._min_n, self._min = 0.0, 0.0
        self._max_n, self._max = 0.0, 0.0

    @property
    def statistic(self) -> float:
        if self._z_n == 0:
            return math.nan
        return self._z - self._min

    def _bound(self, n: float) -> float:
        return math.sqrt(1.0 / (2 * n) * math.log(1.0 / self.drift_confidence))

    def update(self, x: float) -> HDDM_A:
        x = binary_value(x)
        if self.drift_detected:
            self.reset()
        self._z_n = zn = self._z_n + 1.0
        self._z = z = self._z + (1.0 / zn) * (x - self._z)
        if self._min_n == 0:
            self._min_n, self._min = zn, z
        if self._max_n == 0:
            self._max_n, self._max = zn, z
        eps_z = self._bound(zn)
        eps_x = self._bound(self._min_n)
        if self._min + eps_x >= z + eps_z:
            self._min_n, self._min = zn, z
        eps_x = self._bound(self._max_n)
        if self._max - eps_x <= z - eps_z:
            self._max_n, self._max = zn, z
        if self._mean_incr(self.drift_confidence):
            self.warning_detected = False
            self.drift_detected = True
        elif self._mean_incr(self.warning_confidence):
            self.warning_detected = True
            self.drift_detected = False
        else:
            self.warning_detected = False
            self.drift_detected = False
        if self.two_sided_test:
            if self._mean_decr(self.drift_confidence):
                self.drift_detected = True
            elif self._mean_decr(self.warning_confidence):
                self.warning_detected = True
        return self

    def _mean_incr(self, confidence: float) -> bool:
        if self._min_n == self._z_n:
            return False
        m = (self._z_n - self._min_n) / self._min_n * (1.0 / self._z_n)
        eps = math.sqrt(m / 2 * math.log(2.0 / confidence))
        return self._z - self._min >= eps

    def _mean_decr(self, confidence: float) -> bool:
        if self._max_n == self._z_n:
            return False
        m = (self._z_n - self._max_n) / self._max_n * (1.0 / self._z_n)
        eps = math.sqrt(m / 2 * math.log(2.0 / confidence))
        return self._max - self._z >= eps

    def _get_params(self) -> dict[str, Any]:
        return {"drift_confidence": self.drift_confidence,
                "warning_confidence": self.warning_confidence,
                "two_sided_test": self.two_sided_test}  # fmt: skip

    def _get_state(self) -> dict[str, Any]:
        return {"n": int(self._z_n), "mean": self._z,
                "min_n": int(self._min_n), "min_mean": self._min,
                "max_n": int(self._max_n), "max_mean": self._max,
                "drift_detected": self.drift_detected,
                "warning_detected": self.warning_detected}  # fmt: skip

    def _set_state(self, state: Mapping[str, Any]) -> None:
        n = get_int(state, "n")
        min_n = get_int(state, "min_n")
        max_n = get_int(state, "max_n")
        if min_n > n or max_n > n or (n > 0 and (min_n == 0 or max_n == 0)):
            raise ValueError("cut point counts out of range")
        means = [get_float(state, key) for key in ("mean", "min_mean", "max_mean")]
        if not all(0.0 <= v <= 1.0 for v in means):
            raise ValueError("means must be in [0, 1]")
        drift = get_bool(state, "drift_detected")
        warning = get_bool(state, "warning_detected")
        self.reset()
        self._z_n, self._z = float(n), means[0]
        self._min_n, self._min = float(min_n), means[1]
        self._max_n, self._max = float(max_n), means[2]
        self.drift_detected = drift
        self.warning_detected = warning
