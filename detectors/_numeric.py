"""Helpers shared by the numeric stream detectors (ADWIN, Page-Hinkley, KSWindow,
CUSUM, EWMA, DDM, HDDM_A): input validation and snapshot field readers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FloatArray",
    "as_binary_array",
    "as_float_array",
    "binary_value",
    "get_bool",
    "get_float",
    "get_float_list",
    "get_int",
]

FloatArray = npt.NDArray[np.float64]


def as_float_array(values: Iterable[Any]) -> FloatArray:
    """``values`` as a 1-d float64 array, refusing NaN and infinities (ValueError).

    The batch paths validate everything before consuming anything, so an invalid
    batch leaves the detector untouched.
    """
    if isinstance(values, np.ndarray):
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
    else:
        arr = np.asarray(list(values), dtype=np.float64).reshape(-1)
    if arr.size and not np.isfinite(arr).all():
        bad = arr[~np.isfinite(arr)][0]
        raise ValueError(f"x must be a finite number, got {bad!r}")
    return arr


def binary_value(x: Any) -> float:
    """0/1 (bool, int or float) as a float; anything else raises ValueError."""
    if x == 1:
        return 1.0
    if x == 0:
        return 0.0
    raise ValueError(f"x must be 0 or 1 (1 = the model was wrong), got {x!r}")


def as_binary_array(values: Iterable[Any]) -> FloatArray:
    arr = as_float_array(values)
    if arr.size and not np.isin(arr, (0.0, 1.0)).all():
        bad = arr[~np.isin(arr, (0.0, 1.0))][0]
        raise ValueError(f"x must be 0 or 1 (1 = the model was wrong), got {bad!r}")
    return arr


def get_float(state: Mapping[str, Any], key: str, *, finite: bool = True) -> float:
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{key} must be a number, got {type(value).__name__}")
    out = float(value)
    if finite and not math.isfinite(out):
        raise ValueError(f"{key} must be finite, got {value!r}")
    return out


def get_int(state: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {value}")
    return value


def get_bool(state: Mapping[str, Any], key: str) -> bool:
    value = state[key]
    if not isinstance(value, bool):
        raise TypeError(f"{key} must be a boolean, got {type(value).__name__}")
    return value


def get_float_list(state: Mapping[str, Any], key: str) -> list[float]:
    value = state[key]
    if not isinstance(value, list):
        raise TypeError(f"{key} must be a list, got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{key} must hold numbers, got {type(v).__name__}")
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"{key} must hold finite numbers, got {v!r}")
        out.append(f)
    return out
