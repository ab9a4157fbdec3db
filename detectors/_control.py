"""The in-control reference (target mean and scale) shared by CUSUM and EWMA."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from detectors._parse import get_float, get_float_list, is_finite_number
from detectors.base import require

__all__ = ["Baseline", "CLIP"]

CLIP = 1e100
"""Standardised values are clipped to +-CLIP so that sums stay finite."""


def _optional_number(value: Any, name: str, positive: bool) -> float | None:
    if value is None:
        return None
    require(is_finite_number(value), name, f"must be a finite number or None, got {value!r}")
    require(not positive or value > 0, name, f"must be > 0, got {value!r}")
    return float(value)


class Baseline:
    """Target mean and scale: given, or estimated from the first ``warmup`` values.

    The estimate is the mean and the sample standard deviation (``math.fsum``
    based, so independent of how the values arrived); a zero standard deviation
    becomes ``1e-9 * max(1, |mean|)``.
    """

    def __init__(self, target: Any, scale: Any, warmup: Any) -> None:
        self.given_target = _optional_number(target, "target", positive=False)
        self.given_scale = _optional_number(scale, "scale", positive=True)
        require(
            isinstance(warmup, int) and not isinstance(warmup, bool) and warmup >= 2,
            "warmup",
            f"must be an integer >= 2, got {warmup!r}",
        )
        self.warmup = warmup
        self.reset()

    def fresh(self) -> Baseline:
        """A baseline of the same settings as ``reset`` leaves one, not shared with
        this one (a detector's ``reset`` takes one, so that ``fresh_copy`` may copy)."""
        copy = object.__new__(Baseline)
        copy.given_target, copy.given_scale = self.given_target, self.given_scale
        copy.warmup = self.warmup
        copy.reset()
        return copy

    @property
    def estimates(self) -> bool:
        return self.given_target is None or self.given_scale is None

    def reset(self) -> None:
        self.buffer: list[float] = []
        self.target = self.given_target if self.given_target is not None else 0.0
        self.scale = self.given_scale if self.given_scale is not None else 1.0
        self.ready = not self.estimates

    def add(self, x: float) -> None:
        """Feed one warm-up value (only while not ``ready``)."""
        self.buffer.append(x)
        if len(self.buffer) == self.warmup:
            self._estimate()

    def _estimate(self) -> None:
        buf = self.buffer
        mean = math.fsum(buf) / len(buf)
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in buf) / (len(buf) - 1))
        if self.given_target is None:
            self.target = mean
        if self.given_scale is None:
            self.scale = std if std > 0 else 1e-9 * max(1.0, abs(mean))
        self.buffer = []
        self.ready = True

    def get_state(self) -> dict[str, Any]:
        return {"buffer": list(self.buffer), "target": self.target, "scale": self.scale,
                "ready": self.ready}  # fmt: skip

    def set_state(self, state: Mapping[str, Any]) -> None:
        buffer = get_float_list(state, "buffer")
        target = get_float(state, "target")
        scale = get_float(state, "scale")
        ready = state["ready"]
        if not isinstance(ready, bool):
            raise TypeError("ready must be a boolean")
        if scale <= 0:
            raise ValueError("scale must be > 0")
        if ready and buffer:
            raise ValueError("a ready baseline has an empty buffer")
        if not ready and (not self.estimates or len(buffer) >= self.warmup):
            raise ValueError("baseline buffer does not match the warm-up state")
        if not self.estimates and (target != self.given_target or scale != self.given_scale):
            raise ValueError("target and scale must equal the given ones")
        self.buffer, self.target, self.scale, self.ready = buffer, target, scale, ready
