"""A full fixed KS reference kept as a few of its order statistics (``KSWindow``'s
``reference_knots``): the reference's CDF to within 1/q, in ~12 bytes a knot instead
of 8 bytes a value.

Of a sorted reference of m values, the q + 1 values at ranks round(i (m - 1) / q)
(i = 0..q; the smallest and the largest among them) are kept once each, with their
exact counts: how many reference values lie below the knot and how many at or below
it. Counts are read in units of reference values, as the exact test reads them:

- at a knot: its counts, exact (a tie of the reference, even one spanning several
  knots, is one knot with the tie's true bounds, so a discrete feature keeps its
  steps);
- below the first knot (the minimum) none, above the last (the maximum) all of them;
- strictly between two knots: the count at or below the left one and the count below
  the right one, interpolated linearly in x and rounded to a whole count, the same
  for ``<`` and ``<=``. The true count lies between those two, which are at most
  ceil((m - 1) / q) - 1 apart, so the estimate of either CDF is off by less than 1/q
  everywhere, and so is the KS distance computed from it.

The interpolation halves both values first (no overflow between -max and +max
float), and every operation is monotone in x, so the counts of a sorted window are
sorted: a window's statistic can be computed from its counts alone, and the window
needs no values. ``counts`` (vectorised) and ``count`` (one Python float) perform
the same operations in the same order and agree bit for bit.
"""

from __future__ import annotations

import base64
import binascii
from array import array
from bisect import bisect_right
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors._ks_support import PackCache
from detectors._parse import FloatArray, get_packed_array, pack_floats

__all__ = [
    "KnotReference",
    "count_dtype",
    "get_packed_counts",
    "get_window_counts",
    "pack_counts",
]

IntArray = npt.NDArray[np.signedinteger[Any]]


def count_dtype(m: int) -> type[np.signedinteger[Any]]:
    """The smallest integer type for counts 0..m (int16 at the default m = 3,000)."""
    return np.int16 if m < 2**15 else np.int32


_PACKED: PackCache[tuple[str, str]] = PackCache(256)
"""Packed knots kept: ~4 KiB of text each, ~1 MiB at most for the whole process."""


def _view(data: array[Any], dtype: Any) -> npt.NDArray[Any]:
    view: npt.NDArray[Any] = np.frombuffer(data, dtype=dtype)
    view.flags.writeable = False
    return view


class KnotReference:
    """The knots of a full fixed reference of ``size`` values (see the module notes).

    Held as three ``array`` objects: ``count`` (once per event) indexes them as
    Python numbers, without a numpy scalar per step; ``counts_of`` views them."""

    __slots__ = ("_below", "_upto", "_values", "size")

    def __init__(self, size: int, values: FloatArray, counts: IntArray) -> None:
        code = "h" if count_dtype(size) is np.int16 else "i"
        self.size = size
        self._values = array("d", np.ascontiguousarray(values, dtype=np.float64).tobytes())
        self._below = array(code, np.ascontiguousarray(counts[0], dtype=code).tobytes())
        self._upto = array(code, np.ascontiguousarray(counts[1], dtype=code).tobytes())

    @property
    def values(self) -> FloatArray:
        """Distinct knot values, increasing (a read-only view)."""
        return _view(self._values, np.float64)

    @property
    def counts(self) -> IntArray:
        """Row 0: reference values below each knot; row 1: at or below it (a copy)."""
        return np.stack(
            (_view(self._below, self._below.typecode), _view(self._upto, self._upto.typecode))
        )

    @classmethod
    def of_sorted(cls, ref: FloatArray, knots: int) -> KnotReference:
        """The knots of ``ref`` (sorted): at most ``knots + 1`` of its values."""
        m = len(ref)
        i = np.arange(knots + 1, dtype=np.int64)
        ranks = (2 * i * (m - 1) + knots) // (2 * knots)  # round(i (m-1) / q), half up
        values = np.unique(ref[ranks])
        counts = np.stack((ref.searchsorted(values, "left"), ref.searchsorted(values, "right")))
        return cls(m, values, counts)

    # -- counts ----------------------------------------------------------------
    def counts_of(self, x: FloatArray) -> tuple[IntArray, IntArray]:
        """Reference values below and at or below each of ``x`` (estimated between knots)."""
        values = self.values
        below = _view(self._below, self._below.typecode)
        upto = _view(self._upto, self._upto.typecode)
        last = len(values) - 1
        i = values.searchsorted(x, "right")  # knots at or below x
        left = np.maximum(i - 1, 0)
        right = np.minimum(i, last)
        lv, rv = values[left], values[right]
        a = upto[left].astype(np.float64)
        b = below[right].astype(np.float64)
        den = rv * 0.5 - lv * 0.5
        frac = np.divide(x * 0.5 - lv * 0.5, den, out=np.zeros(len(x)), where=den > 0.0)
        np.clip(frac, 0.0, 1.0, out=frac)
        est = np.rint(a + (b - a) * frac)
        est[i == 0] = 0.0
        est[i > last] = self.size
        hit = (i > 0) & (lv == x)
        lo = np.where(hit, below[left], est).astype(np.int64)
        hi = np.where(hit, upto[left], est).astype(np.int64)
        return lo, hi

    def count(self, x: float) -> tuple[int, int]:
        """``counts_of`` for one value (the same operations, in Python floats)."""
        values = self._values
        i = bisect_right(values, x)
        if i == 0:
            return 0, 0
        lv = values[i - 1]
        if lv == x:
            return self._below[i - 1], self._upto[i - 1]
        if i == len(values):
            return self.size, self.size
        rv = values[i]
        a = float(self._upto[i - 1])
        b = float(self._below[i])
        den = rv * 0.5 - lv * 0.5
        frac = (x * 0.5 - lv * 0.5) / den if den > 0.0 else 0.0
        if frac < 0.0:  # as np.clip, without two builtin calls per event
            frac = 0.0
        elif frac > 1.0:
            frac = 1.0
        est = round(a + (b - a) * frac)
        return est, est

    # -- snapshots -------------------------------------------------------------
    def pack(self) -> tuple[str, str]:
        """The knots and their counts for a snapshot, from a small process-wide cache:
        they never change, and the engine snapshots a detector before every batch it
        feeds it (as the exact reference's packed text, ``detectors._ks_support``)."""
        return _PACKED.get(self, lambda: (pack_floats(self.values), pack_counts(self.counts)))

    @classmethod
    def unpack(
        cls, state: Mapping[str, Any], values_key: str, counts_key: str, *, m: int, knots: int
    ) -> KnotReference:
        """What ``pack`` wrote, checked: at most ``knots + 1`` increasing finite values
        whose counts are those of a reference of ``m`` values holding each of them."""
        values = get_packed_array(state, values_key, limit=knots + 1)
        counts = get_packed_counts(state, counts_key, limit=2 * (knots + 1)).reshape(2, -1)
        k = len(values)
        if k == 0 or counts.shape[1] != k:
            raise ValueError(f"{counts_key} must hold two counts per knot of {values_key}")
        below, upto = counts
        ok = (
            bool((np.diff(values) > 0).all())
            and below[0] == 0
            and upto[-1] == m
            and bool((below < upto).all())
            and bool((upto[:-1] <= below[1:]).all())
        )
        if not ok:
            raise ValueError(f"{values_key} and {counts_key} are not the knots of {m} values")
        return cls(m, values, counts)


WIDE = "w:"
"""Prefix of counts packed as uint32 (some count above 65,535)."""


def pack_counts(counts: IntArray) -> str:
    """Whole counts for a snapshot, row after row: base64 of little-endian uint16, or
    of uint32 after ``w:`` when one exceeds 65,535 (a reference that large)."""
    flat = np.ascontiguousarray(counts).reshape(-1)
    if flat.dtype.itemsize > 2 and flat.size and int(flat.max()) > 0xFFFF:
        return WIDE + base64.b64encode(flat.astype("<u4").tobytes()).decode("ascii")
    return base64.b64encode(flat.astype("<u2").tobytes()).decode("ascii")


def get_packed_counts(state: Mapping[str, Any], key: str, *, limit: int) -> IntArray:
    """What ``pack_counts`` wrote under ``key`` (at most ``limit`` counts), as int64."""
    value = state[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a base64 string, got {type(value).__name__}")
    wide = value.startswith(WIDE)
    width = 4 if wide else 2
    if wide:
        value = value[len(WIDE) :]
    if len(value) > 4 * (width * limit + 2) // 3 + 4:
        raise ValueError(f"{key} holds more than {limit} counts")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{key} is not valid base64") from None
    if len(raw) % width or len(raw) > width * limit:
        raise ValueError(f"{key} must hold at most {limit} whole counts")
    return np.frombuffer(raw, dtype="<u4" if wide else "<u2").astype(np.int64)


def get_window_counts(state: Mapping[str, Any], key: str, *, n: int, m: int) -> IntArray:
    """A window of at most ``n`` values as their counts (``pack_counts`` of a (2, h)
    array: each value's count below, then at or below, in a reference of ``m``)."""
    counts = get_packed_counts(state, key, limit=2 * n)
    if len(counts) % 2:
        raise ValueError(f"{key} must hold two counts per value")
    window = counts.reshape(2, -1)
    if len(counts) and not ((window[0] <= window[1]).all() and window[1].max() <= m):
        raise ValueError(f"{key} must be pairs of counts 0 <= below <= upto <= {m}")
    return window
