"""What a detector is given, checked in one place: hyperparameters (``check_*``),
observations (``as_float_array``, ``binary_value``, ``category_key``) and snapshot
fields (``get_*``; their errors become a ``StateError`` in ``from_state``)."""

from __future__ import annotations

import base64
import binascii
import math
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from detectors.base import require

__all__ = [
    "Direction",
    "FloatArray",
    "as_binary_array",
    "as_float_array",
    "binary_value",
    "category_key",
    "check_direction",
    "check_fraction",
    "check_positive_float",
    "check_positive_int",
    "exceedance",
    "get_bool",
    "get_float",
    "get_float_list",
    "get_float_or_nan",
    "get_int",
    "get_packed_array",
    "get_packed_floats",
    "is_finite_number",
    "json_float",
    "pack_floats",
]

FloatArray = npt.NDArray[np.float64]
Direction = Literal["lower", "upper", "both"]
_DIRECTIONS = ("lower", "upper", "both")


# ------------------------------------------------------------- hyperparameters
def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= minimum,
        name,
        f"must be an integer >= {minimum}, got {value!r}",
    )
    return int(value)


def check_positive_float(value: Any, name: str, *, allow_zero: bool = False) -> float:
    ok = is_finite_number(value) and (value >= 0 if allow_zero else value > 0)
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


# ----------------------------------------------------------------- observations
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


# -------------------------------------------------------------------- snapshots
def get_float(state: Mapping[str, Any], key: str, *, finite: bool = True) -> float:
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{key} must be a number, got {type(value).__name__}")
    out = float(value)
    if finite and not math.isfinite(out):
        raise ValueError(f"{key} must be finite, got {value!r}")
    return out


def get_float_or_nan(state: Mapping[str, Any], key: str) -> float:
    """A float that may be undefined (``None`` stands for NaN, which JSON lacks)."""
    if state[key] is None:
        return math.nan
    return get_float(state, key, finite=False)


def json_float(value: float) -> float | None:
    """A float for a snapshot: NaN becomes ``None`` (read back by ``get_float_or_nan``)."""
    return None if math.isnan(value) else value


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


def pack_floats(values: Iterable[float] | FloatArray, *, compress: bool = False) -> str:
    """Numbers for a snapshot, packed: base64 of little-endian IEEE-754 float64.

    Exact (every float64 comes back bit for bit, as ``get_packed_floats`` reads it)
    and encoded without formatting decimals (what dominates writing a list of floats
    as JSON): 10.7 characters a value whatever its digits. ``compress`` deflates the
    bytes first, grouped by significance (all first bytes, then all second bytes...,
    where neighbouring values agree): ~8.2 characters a value for 1,000 normal values
    of any precision, ~0.2 for whole numbers; worth its CPU for what is packed once.
    Such a value starts with ``z:`` (not a base64 character).
    """
    if isinstance(values, np.ndarray):
        arr = values.astype("<f8", copy=False)
    else:
        arr = np.fromiter(values, dtype="<f8")
    if not compress:
        return base64.b64encode(arr.tobytes()).decode("ascii")
    planes = arr.view(np.uint8).reshape(-1, 8).T.tobytes()
    return DEFLATED + base64.b64encode(zlib.compress(planes, 6)).decode("ascii")


DEFLATED = "z:"


def get_packed_floats(state: Mapping[str, Any], key: str, *, limit: int) -> list[float]:
    """What ``pack_floats`` wrote under ``key`` (at most ``limit`` values, checked
    before anything larger is inflated), refusing anything but finite numbers."""
    out: list[float] = get_packed_array(state, key, limit=limit).tolist()
    return out


def get_packed_array(state: Mapping[str, Any], key: str, *, limit: int) -> FloatArray:
    """``get_packed_floats`` as a float64 array of its own (writable, native order):
    no Python float per value when the values go on as an array."""
    value = state[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a base64 string, got {type(value).__name__}")
    compressed = value.startswith(DEFLATED)
    if compressed:
        value = value[len(DEFLATED) :]
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{key} is not valid base64") from None
    if compressed:
        inflate = zlib.decompressobj()
        try:
            raw = inflate.decompress(raw, 8 * limit + 1)
        except zlib.error:
            raise ValueError(f"{key} is not deflated data") from None
        if not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
            raise ValueError(f"{key} is truncated, too long or followed by other data")
    if len(raw) % 8:
        raise ValueError(f"{key} must hold whole float64 values, got {len(raw)} bytes")
    if len(raw) > 8 * limit:
        raise ValueError(f"{key} holds more than {limit} values")
    arr = np.frombuffer(raw, dtype=np.uint8)
    if compressed:
        arr = arr.reshape(8, -1).T.copy()
    floats = arr.view("<f8").reshape(-1)
    if floats.size and not np.isfinite(floats).all():
        raise ValueError(f"{key} must hold finite numbers")
    return floats.astype(np.float64)  # a copy: not a view of ``raw``
