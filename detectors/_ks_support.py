"""What every ``KSWindow`` shares and holds nothing of its own: the process-wide
cache of packed references, the terms of the count statistic, input conversion, the
batch path's search for the first detection."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from detectors._parse import FloatArray, pack_floats
from detectors.base import require

__all__ = [
    "PACKED",
    "PackCache",
    "check_int",
    "count_pair",
    "count_terms",
    "count_windows",
    "exact_counts",
    "float_array",
    "packed_reference",
    "scan_for_detection",
]

IntArray = npt.NDArray[np.signedinteger[Any]]
T = TypeVar("T")


class PackCache(Generic[T]):
    """Texts packed from objects that never change, found by identity, the ``size``
    most recently used kept for the whole process: the engine takes a snapshot of a
    detector before every batch it feeds it (to put it back if the batch fires), and
    packing an unchanged reference again each time was most of that snapshot's cost.
    An entry holds its object, so its id cannot be reused while the entry is kept."""

    __slots__ = ("_entries", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[object, T]] = OrderedDict()

    def get(self, source: object, pack: Callable[[], T]) -> T:
        """The text of ``source``: the kept one, else ``pack()``'s, kept from now on."""
        key = id(source)
        hit = self._entries.get(key)
        if hit is not None and hit[0] is source:
            self._entries.move_to_end(key)
            return hit[1]
        text = pack()
        self._entries[key] = (source, text)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return text

    def clear(self) -> None:
        self._entries.clear()


PACKED: PackCache[str] = PackCache(256)
"""Packed full fixed references kept (with their arrays): a few MiB at most, shared by
the whole process instead of a text per detector next to its array."""


def packed_reference(ref: FloatArray) -> str:
    """``ref`` packed and deflated (deflating 3,000 floats costs ~0.4 ms), from
    :data:`PACKED`."""
    return PACKED.get(ref, lambda: pack_floats(ref, compress=True))


@functools.lru_cache(maxsize=256)
def count_terms(m: int, n: int, kind: type[np.signedinteger[Any]]) -> tuple[IntArray, IntArray]:
    """The scales and offsets of m*n*D's terms (``count_pair``), read only and shared
    by every detector of these sizes: restoring thousands of them builds them once."""
    k = np.arange(n, dtype=kind)
    scales: IntArray = np.array([[n], [-n]], dtype=kind)
    offsets: IntArray = np.stack((-m * k, m * (k + 1)))
    scales.flags.writeable = False
    offsets.flags.writeable = False
    return scales, offsets


def count_pair(pair: IntArray, scales: IntArray, offsets: IntArray) -> int:
    """m*n*D from row 0 = c_R(< w_k) and row 1 = c_R(<= w_k), k = 0..n-1, of the
    sorted window w_0 <= ... <= w_(n-1): the largest of n*c_R(< w_k) - m*k (the
    reference's CDF above the window's just below w_k) and m*(k+1) - n*c_R(<= w_k)
    (the window's above the reference's at w_k). ``pair`` is overwritten."""
    pair *= scales
    pair += offsets
    return int(pair.max())


def count_windows(
    windows: IntArray, start: int, js: list[int], scales: IntArray, offsets: IntArray
) -> list[int]:
    """m*n*D of the windows ``windows[start + j]`` (a sliding view of the rank
    buffer) for each j in ``js``, in one vectorised computation (as ``count_pair``)."""
    if not js:
        return []
    pairs = windows[[start + j for j in js]]  # (len(js), 2, n), a copy
    pairs.sort(axis=2)
    pairs *= scales
    pairs += offsets
    counts: list[int] = pairs.reshape(len(js), -1).max(axis=1).tolist()
    return counts


def exact_counts(ref: FloatArray, values: FloatArray) -> tuple[IntArray, IntArray]:
    """c_R(< v) and c_R(<= v) of ``values`` in the sorted, non-empty ``ref`` (the
    second search only for the values ``ref`` holds)."""
    below = ref.searchsorted(values, "left")
    upto = below.copy()
    held = ref[np.minimum(below, len(ref) - 1)] == values
    if held.any():
        upto[held] = ref.searchsorted(values[held], "right")
    return below, upto


def float_array(values: Sequence[Any] | npt.NDArray[Any]) -> FloatArray | None:
    """``values`` as float64, or None unless they are plainly numbers (bool, int,
    float), whose conversion by numpy is exactly ``float``'s."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        return None
    return arr.astype(np.float64, copy=False)


def check_int(value: Any, name: str) -> None:
    require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and bool(value >= 1),
        name,
        f"must be an integer >= 1, got {value!r}",
    )


def scan_for_detection(
    k: int,
    first: int,
    counts: Callable[[list[int]], list[int]],
    *,
    stride: int,
    critical: int,
    step: int,
    since: int,
    budget: int,
    g_end: int | None,
) -> tuple[int, int, int, int | None]:
    """The first detection among ``k`` observations of ``KSWindow``'s batch path,
    both samples full from the ``first``: its index or -1, and the detector's test
    schedule after it (``since`` observations since a test, the ``budget`` of
    observations that cannot reach the critical count, m*n*D after the last one if
    known: ``g_end``).

    ``counts(js)`` gives m*n*D after each observation j in ``js`` (a batch, one
    vectorised computation). m*n*D moves by at most ``step`` per observation,
    so exact values at a few grid points bound it everywhere between them;
    observations where the bound reaches the critical count are computed
    exactly. Only due observations (every ``stride``) can detect, as in
    ``update``; its budget is honoured and left sound.
    """
    if k <= first:
        return -1, since, budget, g_end
    start = max(first, budget)  # before it nothing can detect
    if start >= k:
        return -1, (since + k - first) % stride, budget - k, None

    def detected(j: int) -> tuple[int, int, int, int | None]:
        return j, (since + j - first + 1) % stride, 0, None

    anchor = g_end if first == 0 else None  # m*n*D before the first
    if anchor is None:
        left, slack = start, critical - 1  # left is a grid point
        points = [start]
    else:
        left, slack = -1, critical - 1 - anchor
        points = []
    span = k - 1 - left
    if span > 0:
        parts = min(span, -(-span * 2 * step // max(3 * slack, step)))  # ~1.5 slack/step
        points += [left + (span * i) // parts for i in range(1, parts + 1)]
    values = counts(points)
    if anchor is None:
        left_g, values = values[0], values[1:]
        points = points[1:]
        if (start - first + since) % stride == 0 and left_g >= critical:
            return detected(start)
    else:
        left_g = anchor
    for point, g in zip(points, values, strict=True):
        # between left and point, only where neither end's bound clears it
        lo = max(start, left + max(1, -((left_g - critical) // step)))
        hi = point - max(1, -((g - critical) // step))
        lo += (first - since - lo) % stride  # due
        while lo <= hi:
            batch = list(range(lo, min(hi + 1, lo + 16 * stride), stride))
            for j, gj in zip(batch, counts(batch), strict=True):
                if gj >= critical:
                    return detected(j)
            lo = batch[-1] + stride
        if g >= critical and point >= start and (point - first + since) % stride == 0:
            return detected(point)
        left, left_g = point, g
    return -1, (since + k - first) % stride, max(0, (critical - 1 - left_g) // step), left_g
