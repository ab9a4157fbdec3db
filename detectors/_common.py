"""Input coercion and hyperparameter checks shared by the distribution detectors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from detectors.base import require

__all__ = [
    "Direction",
    "category_key",
    "check_direction",
    "check_fraction",
    "check_positive_float",
    "check_positive_int",
    "exceedance",
    "json_float",
    "state_float",
    "state_int",
]

Direction = Literal["lower", "upper", "both"]
_DIRECTIONS = ("lower", "upper", "both")


def category_key(x: object) -> str:
    """The key under which a categorical observation is counted.

    ``str`` values are used as they are; ``bool`` becomes ``"true"`` / ``"false"``
    (their JSON spelling); ``int`` becomes its decimal string; a float that is a
    whole number (``3.0``, as JSON decoders often produce) becomes the int's string.
    So ``1``, ``1.0`` and ``"1"`` are the same category. NaN and infinities raise
    ``ValueError``; other floats and other types raise ``TypeError``.
    """
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"categorical value must be finite, got {x!r}")
        if x.is_integer():
            return str(int(x))
        raise TypeError(f"categorical value must be str, int, bool or a whole float, got {x!r}")
    # numpy scalars and friends
    item = getattr(x, "item", None)
    if callable(item):
        value = item()
        if isinstance(value, (str, bool, int, float)):
            return category_key(value)
    raise TypeError(f"categorical value must be str, int or bool, got {type(x).__name__}")


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        name,
        f"must be an integer >= {minimum}, got {value!r}",
    )
    return int(value)


def check_positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    bound = ">= 0" if allow_zero else "> 0"
    require(ok, name, f"must be a finite number {bound}, got {value!r}")
    return float(value)


def check_fraction(value: Any, name: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    require(ok and 0.0 < value < 1.0, name, f"must be in (0, 1), got {value!r}")
    return float(value)


def check_direction(value: Any, name: str = "direction") -> Direction:
    require(value in _DIRECTIONS, name, f"must be one of {_DIRECTIONS}, got {value!r}")
    direction: Direction = value
    return direction


def exceedance(z: float, direction: Direction) -> float:
    """A signed deviation turned into 'how far towards an alarm': larger is worse."""
    if direction == "lower":
        return -z
    if direction == "upper":
        return z
    return abs(z)


def state_float(state: Mapping[str, Any], key: str) -> float:
    """A float read from a snapshot (``None`` stands for NaN, which JSON lacks)."""
    value = state[key]
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{key} must be a number")
    return float(value)


def state_int(state: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}")
    return value


def json_float(value: float) -> float | None:
    """A float for a snapshot: NaN becomes ``None``."""
    return None if math.isnan(value) else value
