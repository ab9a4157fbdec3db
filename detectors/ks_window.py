"""KSWindow: two-sample Kolmogorov-Smirnov test between a reference and a sliding window."""

from __future__ import annotations

import functools
import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain, islice
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from detectors._parse import (
    FloatArray,
    get_bool,
    get_float_list,
    get_int,
    get_packed_floats,
    pack_floats,
)
from detectors._stats import kolmogorov_sf, ks_critical_count
from detectors.base import DriftDetector, register, require

__all__ = ["KSWindow", "kolmogorov_sf"]

Mode = Literal["fixed", "sliding"]
_MODES = ("fixed", "sliding")
IntArray = npt.NDArray[np.signedinteger[Any]]
_PIECE = 1024
"""Most observations ``update_many`` takes into its buffers at once."""


@register
class KSWindow(DriftDetector[float]):
    r"""Two-sample Kolmogorov-Smirnov drift detector on a sliding window.

    The ``window_size`` most recent observations are compared with a reference
    sample of ``reference_size`` values by the exact two-sample KS statistic
    :math:`D = \sup_x |F_{ref}(x) - F_{win}(x)|`; the p-value is that of the
    Kolmogorov distribution, :math:`P(K > \sqrt{mn/(m+n)}\,D)`, and drift is
    reported when it is at most ``alpha``. The test runs as soon as both samples
    are full and then every ``stride`` observations.

    The reference is, with ``mode="fixed"``, the ``baseline`` given at construction
    or else the first ``reference_size`` observations; with ``mode="sliding"``, the
    ``reference_size`` observations preceding the window. The update after a
    detection clears the window (and the reference, unless it is a given
    ``baseline``), so the detector restarts on post-change data.

    Parameters
    ----------
    alpha
        Significance level in (0, 1); larger means more alarms.
    window_size
        Observations in the recent window (n).
    reference_size
        Observations in the reference (m); None means ``len(baseline)`` or 100.
    mode
        ``"fixed"`` or ``"sliding"`` reference.
    baseline
        A fixed reference sample (finite numbers), only with ``mode="fixed"``.
    stride
        Test every ``stride`` observations.

    Notes
    -----
    Memory: O(``reference_size`` + ``window_size``) floats, plus ``update_many``'s
    buffer of at most 1,024 observations (ranks or values) beyond them.

    Snapshots (version 2) pack both samples as base64 of little-endian float64
    (``detectors._parse.pack_floats``): exact, since every test compares values (a
    rounded value, float32 say, could tie or swap with another and change D), and
    written without formatting decimals. A fixed reference is a multiset, stored
    sorted; once full it is packed once, deflated, and the same text serves every
    snapshot until the next detection. Version 1 snapshots (JSON lists) still restore.

    With the window sorted, :math:`w_0 \le \dots \le w_{n-1}`, a test evaluates
    :math:`mn\,D = \max_k \max(n\,c_R(< w_k) - m\,k,\ m\,(k+1) - n\,c_R(\le w_k))`,
    c_R counting reference values, with two vectorised binary searches of the window
    in the sorted reference. Between tests :math:`mn\,D` moves by at most m (fixed)
    or m + n (sliding) per observation, so after a test far below the critical
    value the next tests that cannot reach it are skipped.

    ``update`` keeps both samples sorted, by insertion and removal. ``update_many``
    (same detections, same state) appends whole pieces instead: against a fixed
    reference each value's two counts are found once, when it arrives, and the
    statistic of any window is then a sort of its 2n counts; it evaluates the
    statistic exactly at a few observations of a piece at once (one vectorised
    sort), the bound above clears every observation whose distance to them leaves
    the critical value out of reach from both sides, and only the due observations
    where it could be reached are tested exactly, so the first detection is the one
    ``update`` finds. ``statistic`` and ``p_value`` are computed on demand for the
    current samples (NaN / None until both are full).

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import KSWindow
    >>> rng = np.random.default_rng(7)
    >>> stream = np.concatenate([rng.normal(0.0, 1.0, 1000), rng.normal(0.0, 2.5, 1000)])
    >>> ks = KSWindow(alpha=0.001)
    >>> for i, x in enumerate(stream):
    ...     _ = ks.update(x)
    ...     if ks.drift_detected:
    ...         print(f"drift at index {i}, D={ks.statistic:.2f}, p={ks.p_value:.1e}")
    drift at index 1092, D=0.28, p=7.9e-04
    """

    name: ClassVar[str] = "ks_window"
    column_path: ClassVar[bool] = True
    input_kind = "numeric"
    state_version: ClassVar[int] = 2
    upgradable_versions: ClassVar[frozenset[int]] = frozenset({1})
    threshold_param: ClassVar[str | None] = "alpha"
    threshold_increases_run_length: ClassVar[bool] = False

    def __init__(
        self,
        alpha: float = 0.005,
        window_size: int = 100,
        reference_size: int | None = None,
        mode: Mode = "fixed",
        baseline: Sequence[float] | None = None,
        stride: int = 1,
    ) -> None:
        super().__init__()
        require(
            isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 < alpha < 1,
            "alpha",
            f"must be a number in (0, 1), got {alpha!r}",
        )
        _check_int(window_size, "window_size")
        _check_int(stride, "stride")
        require(mode in _MODES, "mode", f"must be one of {_MODES}, got {mode!r}")
        if reference_size is not None:
            _check_int(reference_size, "reference_size")
        base: list[float] | None = None
        if baseline is not None:
            require(mode == "fixed", "baseline", "is only allowed with mode='fixed'")
            require(
                not isinstance(baseline, (str, bytes)) and len(baseline) > 0,
                "baseline",
                "must be a non-empty sequence of numbers",
            )
            try:
                base = get_float_list({"baseline": list(baseline)}, "baseline")
            except (TypeError, ValueError) as exc:
                raise ValueError(f"baseline: {exc}") from None
            require(
                reference_size is None or reference_size == len(base),
                "reference_size",
                f"must be None or len(baseline)={len(base)}, got {reference_size!r}",
            )
        self.alpha = float(alpha)
        self.window_size = int(window_size)
        self.reference_size = reference_size
        self.mode: Mode = mode
        self.baseline = base
        self.stride = int(stride)
        m = len(base) if base is not None else (reference_size or 100)
        self._m = m
        self._scale = math.sqrt(m * self.window_size / (m + self.window_size))
        self._critical = self._critical_count()
        self._step = m if mode == "fixed" else m + self.window_size
        # counts reach +-2*m*n: 32 bits sort faster where they suffice
        self._int = np.int32 if 2 * m * self.window_size < 2**31 else np.int64
        self._scales, self._offsets = _count_terms(m, self.window_size, self._int)
        # update_many's buffers (allocated on first use, kept across resets)
        self._ranks: IntArray | None = None
        self._windows: IntArray | None = None  # view of _ranks: [c] = _ranks[:, c : c + n]
        self._values: FloatArray | None = None
        self._hi = 0
        self.reset()

    def _critical_count(self) -> int:
        """Smallest integer G = mn*D whose p-value is <= alpha (mn+1 if none)."""
        return ks_critical_count(self.alpha, self._m, self.window_size)

    def _p_of(self, g: int) -> float:
        return kolmogorov_sf(self._scale * g / (self._m * self.window_size))

    # -- state -------------------------------------------------------------
    def reset(self) -> None:
        self._reset(keep_reference=False)

    def _reset(self, *, keep_reference: bool) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._win: deque[float] = deque(maxlen=self.window_size)
        self._win_sorted: list[float] = []
        self._since_test = 0
        self._budget = 0
        self._steady = False
        self._lazy = False
        self._g_end: int | None = None
        if keep_reference:
            return
        # sliding mode: arrival order; the maxlen drops the oldest value on append
        self._ref: deque[float] = deque(maxlen=self._m)
        self._ref_sorted: list[float] = []
        self._ref_n = 0
        """Values in a fixed reference (sliding mode: ``len(_ref)``)."""
        self._ref_arr: FloatArray | None = None
        self._ref_ends: tuple[FloatArray, IntArray] | None = None
        self._ref_packed: str | None = None
        if self.baseline is not None:
            self._ref_sorted = sorted(self.baseline)
            self._ref_n = len(self.baseline)
            self._seal()

    def _seal(self) -> None:
        """A full fixed reference is a sorted array from now to the next restart: the
        only form its tests read (a multiset; the per-event list and its floats go)."""
        padded = np.empty(self._m + 1, dtype=np.float64)  # +inf after it: _write_ranks
        padded[:-1] = self._ref_sorted
        padded[-1] = math.inf
        self._ref_arr = padded[:-1]
        self._ref_sorted = []

    def _ref_count(self) -> int:
        return self._ref_n if self.mode == "fixed" else len(self._ref)

    def _restart(self) -> None:
        # a given baseline stays, with what was derived from it
        self._reset(keep_reference=self.baseline is not None)

    # -- per-event path ----------------------------------------------------
    def update(self, x: float) -> KSWindow:
        x = float(x)
        if x - x != 0.0:
            raise ValueError(f"x must be a finite number, got {x!r}")
        if self._lazy:
            self._unlazy()
        if self.drift_detected:
            self._restart()
        elif self._steady:
            # fixed reference and full window: the common case, inlined
            win = self._win
            ws = self._win_sorted
            old = win[0]
            win.append(x)  # drops ``old``
            insort(ws, x)
            del ws[bisect_left(ws, old)]
            budget = self._budget
            if budget > 0:
                self._budget = budget = budget - 1
            if self.stride > 1:
                due = self._since_test == 0
                self._since_test = (self._since_test + 1) % self.stride
                if not due:
                    return self
            if budget > 0:
                return self
            g = self._count_statistic()
            self.drift_detected = g >= self._critical
            self._budget = max(0, (self._critical - 1 - g) // self._step)
            return self
        self._update_slow(x)
        self._steady = (
            self.mode == "fixed"
            and self._ref_n == self._m
            and len(self._win) == self.window_size
            and not self.drift_detected
        )
        return self

    def _update_slow(self, x: float) -> None:
        ref = self._ref
        m = self._m
        if self.mode == "fixed":
            if self._ref_n < m:
                insort(self._ref_sorted, x)
                self._ref_n += 1
                if self._ref_n == m:
                    self._seal()
                return
            self._push(x)
        else:
            old = self._push(x)
            if old is not None:
                rs = self._ref_sorted
                if len(ref) == m:
                    del rs[bisect_left(rs, ref[0])]
                ref.append(old)  # drops ref[0] when full
                insort(rs, old)
                self._ref_arr = None
            if len(ref) < m:
                return
        if len(self._win) < self.window_size:
            return
        due = self._since_test == 0
        self._since_test = (self._since_test + 1) % self.stride
        if not due or self._budget > 0:
            return
        g = self._count_statistic()
        self.drift_detected = g >= self._critical
        self._budget = max(0, (self._critical - 1 - g) // self._step)

    def _push(self, x: float) -> float | None:
        """Add ``x`` to the window; return the value that left it, if any."""
        win = self._win
        ws = self._win_sorted
        old = win[0] if len(win) == self.window_size else None
        win.append(x)  # drops ``old``
        insort(ws, x)
        if old is not None:
            del ws[bisect_left(ws, old)]
            if self._budget > 0:
                self._budget -= 1
        return old

    # -- batch path --------------------------------------------------------
    def update_many(self, values: Iterable[float]) -> list[int]:
        """Consume ``values`` in order; return the indices of the detections.

        Equal to ``update`` on each value in turn (same detections, same state),
        in pieces (see the class notes): values are appended in bulk, and only the
        due observations where the statistic could reach the critical value are
        tested exactly.
        """
        seq = values if isinstance(values, (list, tuple, np.ndarray)) else list(values)
        arr = _float_array(seq)
        if arr is None:  # not plainly numeric: one by one, as ``update`` takes them
            return super().update_many(seq)
        floats: list[float] = arr.tolist()
        bad = len(floats)
        total = sum(floats)
        if total - total != 0.0:  # a NaN or an infinity, or a sum that overflowed
            finite = np.isfinite(arr)
            if not finite.all():
                bad = int(np.argmin(finite))
        hits = self._run(arr[:bad], floats[:bad]) if bad else []
        if bad < len(arr):  # consume what precedes it, then refuse it as ``update`` does
            hits += [bad + i for i in super().update_many(seq[bad:])]
        return hits

    def _run(self, arr: FloatArray, floats: list[float]) -> list[int]:
        hits: list[int] = []
        i, total, m = 0, len(floats), self._m
        while i < total:
            if self.drift_detected:
                self._restart()
            if self._ref_n < m and self.mode == "fixed":
                # the first observations of an epoch become the reference
                take = floats[i : i + m - self._ref_n]
                self._ref_sorted.extend(take)
                self._ref_sorted.sort()
                self._ref_n += len(take)
                if self._ref_n == m:
                    self._seal()
                i += len(take)
                continue
            k = min(_PIECE, total - i)
            j = self._chunk(arr[i : i + k], floats[i : i + k])
            if j < 0:
                i += k
            else:
                hits.append(i + j)
                i += j + 1
        return hits

    def _chunk(self, arr: FloatArray, floats: list[float]) -> int:
        """Feed ``floats`` (``arr``), the reference of a fixed mode being full; stop
        after a detection and return its index, else return -1."""
        if not self._lazy:
            self._enter_lazy()
        n, m, k = self.window_size, self._m, len(floats)
        win, hi = self._win, self._hi
        counts: Callable[[int, list[int]], list[int]]
        if self.mode == "fixed":
            assert self._ranks is not None
            held, need = len(win), n
            if hi + k > self._ranks.shape[1]:
                self._ranks[:, :held] = self._ranks[:, hi - held : hi]
                hi = held
            self._write_ranks(arr, hi)
            counts = self._counts_ranks
        else:
            assert self._values is not None
            held, need = len(self._ref) + len(win), m + n
            if hi + k > len(self._values):
                self._values[:held] = self._values[hi - held : hi]
                hi = held
            self._values[hi : hi + k] = arr
            counts = self._counts_values
        j = self._scan(k, max(0, need - held - 1), lambda js: counts(hi + 1, js))
        used = k if j < 0 else j + 1
        self._hi = hi + used
        new = floats if j < 0 else floats[:used]
        if self.mode == "sliding":
            leaving = len(win) + used - n
            if leaving > 0:  # what leaves the window enters the reference
                self._ref.extend(islice(chain(win, new), leaving))
        win.extend(new)
        self._steady = self.mode == "fixed" and len(win) == n and not self.drift_detected
        return j

    def _scan(self, k: int, first: int, counts: Callable[[list[int]], list[int]]) -> int:
        """Find the first detection among ``k`` observations, both samples full
        from the ``first``; return its index, or -1.

        ``counts(js)`` gives m*n*D after each observation j in ``js`` (a batch, one
        vectorised computation). m*n*D moves by at most ``step`` per observation,
        so exact values at a few grid points bound it everywhere between them;
        observations where the bound reaches the critical count are computed
        exactly. Only due observations (every ``stride``) can detect, as in
        ``update``; its budget (observations that cannot reach the critical
        count) is honoured and left sound.
        """
        if k <= first:
            return -1
        stride, critical, step = self.stride, self._critical, self._step
        since = self._since_test
        start = max(first, self._budget)  # before it nothing can detect
        if start >= k:
            self._since_test = (since + k - first) % stride
            self._budget -= k
            self._g_end = None
            return -1
        anchor = self._g_end if first == 0 else None  # m*n*D before the first
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
                return self._detected(start, first, since)
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
                        return self._detected(j, first, since)
                lo = batch[-1] + stride
            if g >= critical and point >= start and (point - first + since) % stride == 0:
                return self._detected(point, first, since)
            left, left_g = point, g
        self._since_test = (since + k - first) % stride
        self._budget = max(0, (critical - 1 - left_g) // step)
        self._g_end = left_g
        return -1

    def _detected(self, j: int, first: int, since: int) -> int:
        self.drift_detected = True
        self._since_test = (since + j - first + 1) % self.stride
        self._budget = 0
        self._g_end = None
        return j

    def _enter_lazy(self) -> None:
        """Put the held samples in the batch path's buffer; the sorted lists of the
        per-event path go stale until ``_unlazy``."""
        n, m = self.window_size, self._m
        if self.mode == "fixed":
            if self._ranks is None:
                self._ranks = np.empty((2, n + _PIECE), dtype=self._int)
                self._windows = sliding_window_view(self._ranks, n, axis=1).transpose(1, 0, 2)
            held = len(self._win)
            self._write_ranks(np.fromiter(self._win, dtype=np.float64, count=held), 0)
        else:
            if self._values is None:
                self._values = np.empty(m + n + _PIECE, dtype=np.float64)
            held = len(self._ref) + len(self._win)
            self._values[:held] = np.fromiter(
                chain(self._ref, self._win), dtype=np.float64, count=held
            )
            self._ref_sorted = []
        self._win_sorted = []
        self._hi = held
        self._g_end = None
        self._lazy = True

    def _unlazy(self) -> None:
        self._win_sorted = sorted(self._win)
        if self.mode == "sliding":
            self._ref_sorted = sorted(self._ref)
            self._ref_arr = None
        self._lazy = False
        self._g_end = None

    def _write_ranks(self, values: FloatArray, start: int) -> None:
        """Columns ``start...`` of the rank buffer: c_R(< v) and c_R(<= v)."""
        if not len(values):
            return
        assert self._ranks is not None
        r, stop = self._ref_array(), start + len(values)
        if self._ref_ends is None:
            # padded with +inf; ends[i] = c_R(<= r[i]): c_R(<= v) without a second search
            ends: IntArray = np.append(r.searchsorted(r, "right"), len(r)).astype(self._int)
            base = r.base  # _seal's padded array, when it made r
            if isinstance(base, np.ndarray) and len(base) == len(r) + 1:
                self._ref_ends = base, ends
            else:
                self._ref_ends = np.append(r, math.inf), ends
        padded, ends = self._ref_ends
        below = r.searchsorted(values, "left")
        self._ranks[0, start:stop] = below
        self._ranks[1, start:stop] = np.where(padded[below] == values, ends[below], below)

    # -- the statistic -----------------------------------------------------
    def _ref_array(self) -> FloatArray:
        r = self._ref_arr
        if r is None:
            r = self._ref_arr = np.array(self._ref_sorted, dtype=np.float64)
        return r

    def _count_statistic(self) -> int:
        """m*n*D for the current samples (both full)."""
        if self._lazy:
            if self.mode == "fixed":
                return self._counts_ranks(self._hi, [0])[0]
            return self._count_values(self._hi)
        return self._count_sorted(self._ref_array(), np.array(self._win_sorted, dtype=np.float64))

    def _count_sorted(self, ref: FloatArray, win: FloatArray) -> int:
        """m*n*D of a sorted reference and a sorted window."""
        pair = np.empty((2, self.window_size), dtype=self._int)
        pair[0] = ref.searchsorted(win, "left")
        pair[1] = ref.searchsorted(win, "right")
        return self._count_pair(pair)

    def _count_values(self, end: int) -> int:
        """m*n*D of the sliding samples that end before ``end`` in the value buffer."""
        assert self._values is not None
        n, m = self.window_size, self._m
        ref, win = self._values[end - n - m : end - n], self._values[end - n : end]
        return self._count_sorted(np.sort(ref), np.sort(win))

    def _counts_ranks(self, offset: int, js: list[int]) -> list[int]:
        """m*n*D of the windows that end before columns ``offset + j`` of the rank
        buffer, for each j in ``js``, in one vectorised computation (as ``_count_pair``)."""
        if not js:
            return []
        assert self._windows is not None
        start = offset - self.window_size
        pairs = self._windows[[start + j for j in js]]  # (len(js), 2, n)
        pairs.sort(axis=2)
        pairs *= self._scales
        pairs += self._offsets
        counts: list[int] = pairs.reshape(len(js), -1).max(axis=1).tolist()
        return counts

    def _counts_values(self, offset: int, js: list[int]) -> list[int]:
        return [self._count_values(offset + j) for j in js]

    def _count_pair(self, pair: IntArray) -> int:
        """m*n*D from row 0 = c_R(< w_k) and row 1 = c_R(<= w_k), k = 0..n-1, of the
        sorted window w_0 <= ... <= w_(n-1): the largest of n*c_R(< w_k) - m*k (the
        reference's CDF above the window's just below w_k) and m*(k+1) - n*c_R(<= w_k)
        (the window's above the reference's at w_k)."""
        pair *= self._scales
        pair += self._offsets
        return int(pair.max())

    def _full(self) -> bool:
        return self._ref_count() == self._m and len(self._win) == self.window_size

    @property
    def statistic(self) -> float:
        if not self._full():
            return math.nan
        return self._count_statistic() / (self._m * self.window_size)

    @property
    def threshold(self) -> float:
        """The critical distance: the smallest D whose p-value is at most ``alpha``
        for these sample sizes (the statistic's own scale; ``alpha`` is the level)."""
        return self._critical / (self._m * self.window_size)

    @property
    def p_value(self) -> float | None:
        if not self._full():
            return None
        return self._p_of(self._count_statistic())

    # -- snapshots ---------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "window_size": self.window_size,
            "reference_size": self.reference_size,
            "mode": self.mode,
            "baseline": None if self.baseline is None else list(self.baseline),
            "stride": self.stride,
        }

    def _get_state(self) -> dict[str, Any]:
        reference: str | None = None
        if self.baseline is not None:
            pass
        elif self.mode == "fixed" and self._ref_n == self._m:
            # fixed until the next detection: packed once, the same text every snapshot
            if self._ref_packed is None:
                self._ref_packed = pack_floats(self._ref_array(), compress=True)
            reference = self._ref_packed
        elif self.mode == "fixed":
            reference = pack_floats(self._ref_sorted)  # a multiset: sorted is canonical
        else:
            reference = pack_floats(self._ref)  # arrival order: the oldest leaves first
        return {
            "reference": reference,
            "window": pack_floats(self._win),
            "since_test": self._since_test,
            "drift_detected": self.drift_detected,
        }

    def _upgrade_state(self, version: int, state: Mapping[str, Any]) -> Mapping[str, Any]:
        """Version 1 listed the samples as JSON numbers (in arrival order)."""
        if version != 1:
            return super()._upgrade_state(version, state)
        upgraded = dict(state)
        upgraded["window"] = pack_floats(get_float_list(state, "window"))
        if state["reference"] is not None:
            upgraded["reference"] = pack_floats(get_float_list(state, "reference"))
        return upgraded

    def _set_state(self, state: Mapping[str, Any]) -> None:
        window = get_packed_floats(state, "window", limit=self.window_size)
        since = get_int(state, "since_test")
        drift = get_bool(state, "drift_detected")
        if self.baseline is None:
            ref = get_packed_floats(state, "reference", limit=self._m)
        elif state["reference"] is not None:
            raise ValueError("reference must be null when a baseline is given")
        else:
            ref = list(self.baseline)
        if len(ref) > self._m or len(window) > self.window_size or since >= self.stride:
            raise ValueError("reference, window or since_test out of range")
        if self.mode == "fixed" and window and len(ref) < self._m:
            raise ValueError("the window fills only after the reference")
        if self.mode == "sliding" and ref and len(window) < self.window_size:
            raise ValueError("the reference fills only after the window")
        self.reset()
        if self.mode == "sliding":
            self._ref.extend(ref)
            self._ref_sorted = sorted(ref)
        elif self.baseline is None:
            self._ref_sorted = sorted(ref)
            self._ref_n = len(ref)
            if self._ref_n == self._m:
                self._seal()
        self._win.extend(window)
        self._win_sorted = sorted(window)
        self._since_test = since
        self.drift_detected = drift
        self._steady = (
            self.mode == "fixed" and len(ref) == self._m and len(window) == self.window_size
        ) and not drift


@functools.lru_cache(maxsize=256)
def _count_terms(m: int, n: int, kind: type[np.signedinteger[Any]]) -> tuple[IntArray, IntArray]:
    """The scales and offsets of m*n*D's terms (``_count_pair``), read only and shared
    by every detector of these sizes: restoring thousands of them builds them once."""
    k = np.arange(n, dtype=kind)
    scales: IntArray = np.array([[n], [-n]], dtype=kind)
    offsets: IntArray = np.stack((-m * k, m * (k + 1)))
    scales.flags.writeable = False
    offsets.flags.writeable = False
    return scales, offsets


def _float_array(values: Sequence[Any] | npt.NDArray[Any]) -> FloatArray | None:
    """``values`` as float64, or None unless they are plainly numbers (bool, int,
    float), whose conversion by numpy is exactly ``float``'s."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError, OverflowError):
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "biuf":
        return None
    return arr.astype(np.float64, copy=False)


def _check_int(value: Any, name: str) -> None:
    require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and bool(value >= 1),
        name,
        f"must be an integer >= 1, got {value!r}",
    )
