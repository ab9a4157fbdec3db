"""KSWindow: two-sample Kolmogorov-Smirnov test between a reference and a sliding window."""

from __future__ import annotations

import functools
import math
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from detectors._parse import (
    FloatArray,
    get_bool,
    get_float_list,
    get_int,
    get_packed_array,
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
_BATCH_MIN = 32
"""Fewer observations go through ``update`` one by one."""
_EMPTY: FloatArray = np.empty(0, dtype=np.float64)
_EMPTY.flags.writeable = False


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
    Memory: the samples as float64 arrays and nothing else, ~8 bytes a value
    (24.0 KiB + 3.9 KiB with the default set's m = 3,000, n = 500): a full fixed
    reference is one sorted read-only array, a reference being learned a growing
    ``array('d')``, the window (sliding mode: the last m + n values) one ring
    allocated with its first value, so a detector that has seen nothing holds no
    sample buffer. ``update_many``'s rank buffers live only during its call.

    Snapshots (version 2) pack both samples as base64 of little-endian float64
    (``detectors._parse.pack_floats``): exact, since every test compares values (a
    rounded value, float32 say, could tie or swap with another and change D), and
    written without formatting decimals. That exactness is also why the samples stay
    float64 in memory. A fixed reference is a multiset, stored sorted; once full it
    is packed deflated, and a small process-wide cache (256 references) gives the
    same text back until the next detection. Version 1 snapshots (JSON lists) still
    restore.

    ``update`` writes each value into the ring and, when a test is due, sorts the
    window (n values) and searches it in the reference. ``update_many`` (same
    detections, same state) takes whole pieces instead: against a fixed reference
    each value's two counts are found once per call, and the statistic of any
    window is then a sort of its 2n counts; it evaluates the statistic exactly at a
    few observations of a piece at once (one vectorised
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
        self._ring = _EMPTY
        """Fixed: the window; sliding: the last m + n values (reference, then window).
        Allocated with the first value that goes into it."""
        self._rank_ring: IntArray | None = None
        """Fixed: c_R(< v) and c_R(<= v) of the window's values, where the ring holds
        them, as ``update_many`` left them (``_ranks_ok``; ``update`` does not keep
        them). 2n small integers, allocated by the first ``update_many``."""
        self._rank_int = np.int16 if m < 2**15 else self._int
        self.reset()

    def _critical_count(self) -> int:
        """Smallest integer G = mn*D whose p-value is <= alpha (mn+1 if none)."""
        return ks_critical_count(self.alpha, self._m, self.window_size)

    def _p_of(self, g: int) -> float:
        return kolmogorov_sf(self._scale * g / (self._m * self.window_size))

    # -- state -------------------------------------------------------------
    def reset(self) -> None:
        self._ring = _EMPTY
        self._reset(keep_reference=False)

    def _reset(self, *, keep_reference: bool) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._held = 0
        """Values in the ring (fixed: the window; sliding: reference and window)."""
        self._pos = 0
        """The ring's next write (its oldest value once it is full)."""
        self._since_test = 0
        self._budget = 0
        self._steady = False
        self._g_end: int | None = None
        self._ranks_ok = False
        if keep_reference:
            return
        self._learn: array[float] | None = None
        """A fixed reference being learned: its values in arrival order."""
        self._ref = _EMPTY
        """A full fixed reference: sorted, read only (a multiset: all a test reads)."""
        if self.baseline is not None:
            self._seal(np.array(self.baseline, dtype=np.float64))

    def _seal(self, values: FloatArray) -> None:
        """The full fixed reference, sorted (stable: equal values keep their arrival
        order, so that the snapshot of every path is the same), until the next restart."""
        ref = np.sort(values, kind="stable")
        ref.flags.writeable = False
        self._ref = ref
        self._learn = None

    def _learned(self) -> int:
        return 0 if self._learn is None else len(self._learn)

    def _ref_count(self) -> int:
        if self.mode == "sliding":
            return max(0, self._held - self.window_size)
        return len(self._ref) or self._learned()

    def _win_count(self) -> int:
        return min(self._held, self.window_size)

    def _restart(self) -> None:
        # a given baseline stays sealed
        self._reset(keep_reference=self.baseline is not None)

    def _ordered(self) -> FloatArray:
        """The ring's values in arrival order (a view unless it wrapped)."""
        ring, held, pos = self._ring, self._held, self._pos
        if held < len(ring) or pos == 0:
            return ring[:held]
        return np.concatenate((ring[pos:], ring[:pos]))

    def _extend(self, values: FloatArray) -> None:
        """Append ``values`` to the ring (allocated now if it is not yet)."""
        ring = self._ring
        if ring is _EMPTY:
            size = self.window_size + (self._m if self.mode == "sliding" else 0)
            ring = self._ring = np.empty(size, dtype=np.float64)
        cap, k = len(ring), len(values)
        if k >= cap:
            ring[:] = values[k - cap :]
            self._pos, self._held = 0, cap
            return
        pos = self._pos
        head = min(k, cap - pos)
        ring[pos : pos + head] = values[:head]
        ring[: k - head] = values[head:]
        self._pos = (pos + k) % cap
        self._held = min(cap, self._held + k)

    # -- per-event path ----------------------------------------------------
    def update(self, x: float) -> KSWindow:
        x = float(x)
        if x - x != 0.0:
            raise ValueError(f"x must be a finite number, got {x!r}")
        self._g_end = None
        self._ranks_ok = False
        if self.drift_detected:
            self._restart()
        elif self._steady:
            # fixed reference and full window: the common case, inlined
            pos = self._pos
            self._ring[pos] = x  # replaces the oldest
            pos += 1
            self._pos = 0 if pos == self.window_size else pos
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
            self._test()
            return self
        self._update_slow(x)
        self._steady = (
            self.mode == "fixed"
            and len(self._ref) == self._m
            and self._held == self.window_size
            and not self.drift_detected
        )
        return self

    def _update_slow(self, x: float) -> None:
        n = self.window_size
        if self.mode == "fixed" and not len(self._ref):
            learn = self._learn
            if learn is None:
                learn = self._learn = array("d")
            learn.append(x)
            if len(learn) == self._m:
                self._seal(np.frombuffer(learn, dtype=np.float64))
            return
        if self._held >= n and self._budget > 0:  # a value leaves the window
            self._budget -= 1
        self._extend(np.array((x,)))
        if self._held < (n if self.mode == "fixed" else n + self._m):
            return
        due = self._since_test == 0
        self._since_test = (self._since_test + 1) % self.stride
        if due and self._budget == 0:
            self._test()

    def _test(self) -> None:
        g = self._count_statistic()
        self.drift_detected = g >= self._critical
        self._budget = max(0, (self._critical - 1 - g) // self._step)

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
        finite = np.isfinite(arr)
        bad = len(arr) if finite.all() else int(np.argmin(finite))
        hits = self._run(arr[:bad]) if bad else []
        if bad < len(arr):  # consume what precedes it, then refuse it as ``update`` does
            hits += [bad + i for i in super().update_many(seq[bad:])]
        return hits

    def _run(self, arr: FloatArray) -> list[int]:
        total, m = len(arr), self._m
        if total < _BATCH_MIN:  # the batch path's set-up would cost more
            return [i for i, x in enumerate(arr.tolist()) if self.update(x).drift_detected]
        hits: list[int] = []
        i = 0
        while i < total:
            if self.drift_detected:
                self._restart()
            if self.mode == "fixed" and not len(self._ref):
                # the first observations of an epoch become the reference
                take = arr[i : i + m - self._learned()]
                if self._learn is None:
                    self._learn = array("d")
                self._learn.frombytes(take.tobytes())
                if len(self._learn) == m:
                    self._seal(np.frombuffer(self._learn, dtype=np.float64))
                i += len(take)
                continue
            k = min(_PIECE, total - i)
            j = self._chunk(arr[i : i + k])
            if j < 0:
                i += k
            else:
                hits.append(i + j)
                i += j + 1
        return hits

    def _chunk(self, arr: FloatArray) -> int:
        """Feed ``arr``, the reference of a fixed mode being full; stop after a
        detection and return its index, else return -1. The counts of the held
        samples and ``arr`` live in buffers of this call only."""
        n, m, k, held = self.window_size, self._m, len(arr), self._held
        counts: Callable[[list[int]], list[int]]
        if self.mode == "fixed":
            need = n
            ranks = np.empty((2, held + k), dtype=self._int)
            if self._ranks_ok:
                self._copy_ranks(ranks)
            else:
                self._write_ranks(ranks, self._ordered(), 0)
            self._write_ranks(ranks, arr, held)
            # windows[c] = ranks[:, c : c + n], a view (nothing copied)
            row, col = ranks.strides
            windows: IntArray = np.ndarray(
                (held + k - n + 1, 2, n) if held + k >= n else (0, 2, n),
                dtype=ranks.dtype,
                buffer=ranks,
                strides=(col, row, col),
            )

            def counts(js: list[int]) -> list[int]:
                return self._counts_ranks(windows, held + 1 - n, js)

        else:
            need = m + n
            values = np.concatenate((self._ordered(), arr))

            def counts(js: list[int]) -> list[int]:
                return [self._count_values(values, held + 1 + j) for j in js]

        j = self._scan(k, max(0, need - held - 1), counts)
        used = k if j < 0 else j + 1
        self._extend(arr[:used])
        if self.mode == "fixed":
            self._keep_ranks(ranks[:, held + used - self._held : held + used])
        self._steady = self.mode == "fixed" and self._held == n and not self.drift_detected
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

    def _write_ranks(self, ranks: IntArray, values: FloatArray, start: int) -> None:
        """Columns ``start...`` of ``ranks``: c_R(< v) and c_R(<= v) of ``values``
        (the second search only for values the reference holds)."""
        ref, stop = self._ref, start + len(values)
        below = ref.searchsorted(values, "left")
        ranks[0, start:stop] = below
        ranks[1, start:stop] = below
        held = ref[np.minimum(below, len(ref) - 1)] == values
        if held.any():
            ranks[1, start:stop][held] = ref.searchsorted(values[held], "right")

    def _copy_ranks(self, ranks: IntArray) -> None:
        """The rank ring into the first columns of ``ranks``, in the order of ``_ordered``."""
        ring, held, pos = self._rank_ring, self._held, self._pos
        assert ring is not None
        if held < self.window_size or pos == 0:
            ranks[:, :held] = ring[:, :held]
        else:
            ranks[:, : held - pos] = ring[:, pos:]
            ranks[:, held - pos : held] = ring[:, :pos]

    def _keep_ranks(self, ranks: IntArray) -> None:
        """Put the window's ``ranks`` (in arrival order) where the ring holds its values."""
        if self._rank_ring is None:
            self._rank_ring = np.empty((2, self.window_size), dtype=self._rank_int)
        ring, held, pos = self._rank_ring, self._held, self._pos
        if held < self.window_size or pos == 0:
            ring[:, :held] = ranks
        else:
            ring[:, pos:] = ranks[:, : held - pos]
            ring[:, :pos] = ranks[:, held - pos :]
        self._ranks_ok = True

    # -- the statistic -----------------------------------------------------
    def _count_statistic(self) -> int:
        """m*n*D for the current samples (both full)."""
        if self.mode == "fixed":
            return self._count_sorted(self._ref, np.sort(self._ring))
        values = self._ordered()
        return self._count_values(values, len(values))

    def _count_sorted(self, ref: FloatArray, win: FloatArray) -> int:
        """m*n*D of a sorted reference and a sorted window."""
        pair = np.empty((2, self.window_size), dtype=self._int)
        pair[0] = ref.searchsorted(win, "left")
        pair[1] = ref.searchsorted(win, "right")
        return self._count_pair(pair)

    def _count_values(self, values: FloatArray, end: int) -> int:
        """m*n*D of the sliding samples that end before ``end`` in ``values``."""
        n, m = self.window_size, self._m
        ref, win = values[end - n - m : end - n], values[end - n : end]
        return self._count_sorted(np.sort(ref), np.sort(win))

    def _counts_ranks(self, windows: IntArray, start: int, js: list[int]) -> list[int]:
        """m*n*D of the windows ``windows[start + j]`` (a sliding view of the rank
        buffer) for each j in ``js``, in one vectorised computation (as ``_count_pair``)."""
        if not js:
            return []
        pairs = windows[[start + j for j in js]]  # (len(js), 2, n), a copy
        pairs.sort(axis=2)
        pairs *= self._scales
        pairs += self._offsets
        counts: list[int] = pairs.reshape(len(js), -1).max(axis=1).tolist()
        return counts

    def _count_pair(self, pair: IntArray) -> int:
        """m*n*D from row 0 = c_R(< w_k) and row 1 = c_R(<= w_k), k = 0..n-1, of the
        sorted window w_0 <= ... <= w_(n-1): the largest of n*c_R(< w_k) - m*k (the
        reference's CDF above the window's just below w_k) and m*(k+1) - n*c_R(<= w_k)
        (the window's above the reference's at w_k)."""
        pair *= self._scales
        pair += self._offsets
        return int(pair.max())

    def _full(self) -> bool:
        return self._ref_count() == self._m and self._win_count() == self.window_size

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
        ordered = self._ordered()
        window = ordered[len(ordered) - self._win_count() :]
        if self.baseline is not None:
            pass
        elif self.mode == "sliding":
            reference = pack_floats(ordered[: len(ordered) - len(window)])  # arrival order
        elif len(self._ref):
            reference = _packed_reference(self._ref)  # the same text until the next detection
        else:  # a multiset: sorted is canonical
            learned = np.frombuffer(self._learn or b"", dtype=np.float64)
            reference = pack_floats(np.sort(learned, kind="stable"))
        return {
            "reference": reference,
            "window": pack_floats(window),
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
        n, m = self.window_size, self._m
        window = get_packed_array(state, "window", limit=n)
        since = get_int(state, "since_test")
        drift = get_bool(state, "drift_detected")
        if self.baseline is None:
            ref = get_packed_array(state, "reference", limit=m)
        elif state["reference"] is not None:
            raise ValueError("reference must be null when a baseline is given")
        else:
            ref = np.empty(m)  # only its length is read
        if len(ref) > m or len(window) > n or since >= self.stride:
            raise ValueError("reference, window or since_test out of range")
        if self.mode == "fixed" and len(window) and len(ref) < m:
            raise ValueError("the window fills only after the reference")
        if self.mode == "sliding" and len(ref) and len(window) < n:
            raise ValueError("the reference fills only after the window")
        self.reset()
        if self.mode == "sliding":
            self._extend(np.concatenate((ref, window)))
        else:
            if self.baseline is None and len(ref) == m:
                self._seal(ref)
            elif self.baseline is None and len(ref):
                self._learn = array("d", np.sort(ref, kind="stable").tobytes())
            if len(window):
                self._extend(window)
        self._since_test = since
        self.drift_detected = drift
        self._steady = (self.mode == "fixed" and len(ref) == m and len(window) == n) and not drift


_PACKED: OrderedDict[int, tuple[FloatArray, str]] = OrderedDict()
_PACKED_MAX = 256
"""Packed full fixed references kept (with their arrays): a few MiB at most, shared by
the whole process instead of a text per detector next to its array."""


def _packed_reference(ref: FloatArray) -> str:
    """``ref`` packed and deflated, from a small process-wide cache: the engine takes a
    snapshot of a detector before every batch it feeds it (to put it back if the batch
    fires), and deflating 3,000 floats again each time costs ~0.4 ms."""
    hit = _PACKED.get(id(ref))
    if hit is not None and hit[0] is ref:
        _PACKED.move_to_end(id(ref))
        return hit[1]
    text = pack_floats(ref, compress=True)
    _PACKED[id(ref)] = (ref, text)
    if len(_PACKED) > _PACKED_MAX:
        _PACKED.popitem(last=False)
    return text


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
