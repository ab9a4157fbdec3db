"""KSWindow: two-sample Kolmogorov-Smirnov test between a reference and a sliding window."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from detectors._ks_knots import KnotReference, get_window_counts, pack_counts
from detectors._ks_support import (
    check_int,
    count_pair,
    count_terms,
    count_windows,
    exact_counts,
    float_array,
    packed_reference,
    scan_for_detection,
)
from detectors._parse import (
    FloatArray,
    get_bool,
    get_float_list,
    get_int,
    get_packed_array,
    pack_floats,
)
from detectors._stats import kolmogorov_sf, ks_critical_count
from detectors.base import DriftDetector, check_finite, register, require

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
_EMPTY_COUNTS = np.empty((2, 0), dtype=np.int64)


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
    reference_knots
        None (exact) or q: once a fixed reference is full, keep only q + 1 of its
        order statistics with their exact counts (``detectors._ks_knots``); its CDF
        is then interpolated between them, within 1/q of the sample's, and so is D.

    Notes
    -----
    Memory, exact: the samples as float64 arrays and nothing else, ~8 bytes a value
    (24.0 KiB + 3.9 KiB with m = 3,000, n = 500): a full fixed reference is one
    sorted read-only array, a reference being learned a growing ``array('d')``, the
    window (sliding mode: the last m + n values) one ring allocated with its first
    value, so a detector that has seen nothing holds no sample buffer.
    ``update_many``'s rank buffers live only during its call. With
    ``reference_knots`` (the default set's q = 256): the knots (12 bytes each) and
    the window as each value's two counts in the reference (2n int16), ~5 KiB; the
    test reads nothing else. The critical value stays the two-sample test's for m
    reference values (the reference is still a sample of that size).

    Snapshots (version 3) pack samples as base64 of little-endian float64
    (``detectors._parse.pack_floats``): exact, since every test compares values (a
    rounded value, float32 say, could tie or swap with another and change D), and
    written without formatting decimals. A fixed reference is a multiset, stored
    sorted; once full it is packed deflated, and a small process-wide cache (256
    references) gives the same text back until the next detection. With knots,
    the knots and the window's counts (uint16) are written instead. Version 2 is
    version 3 without knots; version 1 snapshots (JSON lists) still restore; a full
    reference restored into a detector with ``reference_knots`` is summarised as its
    own run would have.

    ``update`` writes each value into the ring and, when a test is due, sorts the
    window (n values) and searches it in the reference. ``update_many`` (same
    detections, same state) takes whole pieces instead: against a fixed reference
    each value's two counts are found once per call, and the statistic of any window
    is then a sort of its 2n counts; it evaluates the statistic exactly at a few
    observations of a piece at once (one vectorised sort), the bound above clears
    every observation whose distance to them leaves the critical value out of reach
    from both sides, and only the due observations where it could be reached are
    tested exactly, so the first detection is the one ``update`` finds.
    ``statistic`` and ``p_value`` are computed on demand (NaN / None until both
    samples are full).

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

    The reference as 65 knots finds the same change, from 65 + 100 numbers:

    >>> ks = KSWindow(alpha=0.001, reference_knots=64)
    >>> [int(i) for i in ks.update_many(stream)]
    [1092]
    """

    name: ClassVar[str] = "ks_window"
    copies_by_reset: ClassVar[bool] = True
    column_path: ClassVar[bool] = True
    column_min: ClassVar[int] = _BATCH_MIN  # shorter columns: ``update`` per value
    input_kind = "numeric"
    state_version: ClassVar[int] = 3
    upgradable_versions: ClassVar[frozenset[int]] = frozenset({1, 2})
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
        reference_knots: int | None = None,
    ) -> None:
        super().__init__()
        require(
            isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 < alpha < 1,
            "alpha",
            f"must be a number in (0, 1), got {alpha!r}",
        )
        check_int(window_size, "window_size")
        check_int(stride, "stride")
        require(mode in _MODES, "mode", f"must be one of {_MODES}, got {mode!r}")
        if reference_size is not None:
            check_int(reference_size, "reference_size")
        if reference_knots is not None:
            check_int(reference_knots, "reference_knots")
            require(mode == "fixed", "reference_knots", "is only allowed with mode='fixed'")
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
        self.reference_knots = None if reference_knots is None else int(reference_knots)
        m = len(base) if base is not None else (reference_size or 100)
        self._m = m
        self._scale = math.sqrt(m * self.window_size / (m + self.window_size))
        self._critical = self._critical_count()
        self._step = m if mode == "fixed" else m + self.window_size
        # counts reach +-2*m*n: 32 bits sort faster where they suffice
        self._int = np.int32 if 2 * m * self.window_size < 2**31 else np.int64
        self._scales, self._offsets = count_terms(m, self.window_size, self._int)
        self._ring = _EMPTY
        """Fixed: the window; sliding: the last m + n values (reference, then window).
        Allocated with the first value that goes into it."""
        self._rank_ring: IntArray | None = None
        """Fixed: c_R(< v) and c_R(<= v) of the window's values, where the ring holds
        them, as ``update_many`` left them (``_ranks_ok``; ``update`` does not keep
        them). 2n small integers, allocated by the first ``update_many``."""
        self._rank_int = np.int16 if m < 2**15 else self._int
        self._knots: KnotReference | None = None
        """A full fixed reference as its knots (``reference_knots``); the window is
        then its counts alone, in ``_rank_ring``."""
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
        self._knots = None
        if self.baseline is not None:
            self._seal(np.array(self.baseline, dtype=np.float64))

    def _seal(self, values: FloatArray) -> None:
        """The full fixed reference, sorted (stable: equal values keep their arrival
        order, so that the snapshot of every path is the same), until the next restart."""
        ref = np.sort(values, kind="stable")
        self._learn = None
        if self.reference_knots is not None:
            self._knots = KnotReference.of_sorted(ref, self.reference_knots)
            return
        ref.flags.writeable = False
        self._ref = ref

    def _sealed(self) -> bool:
        return self._knots is not None or len(self._ref) > 0

    def _learned(self) -> int:
        return 0 if self._learn is None else len(self._learn)

    def _ref_count(self) -> int:
        if self.mode == "sliding":
            return max(0, self._held - self.window_size)
        return self._m if self._sealed() else self._learned()

    def _win_count(self) -> int:
        return min(self._held, self.window_size)

    def _restart(self) -> None:
        # a given baseline stays sealed
        self._reset(keep_reference=self.baseline is not None)

    def _ordered(self) -> FloatArray:
        """The ring's values in arrival order (a view unless it wrapped)."""
        return self._in_order(self._ring)

    def _in_order(self, ring: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """The held columns of ``ring`` (the float ring or the rank ring) in arrival
        order (a view unless it wrapped)."""
        held, pos = self._held, self._pos
        if held < ring.shape[-1] or pos == 0:
            return ring[..., :held]
        return np.concatenate((ring[..., pos:], ring[..., :pos]), axis=-1)

    def _extend(self, values: FloatArray, ranks: IntArray | None = None) -> None:
        """Append ``values`` to the ring (allocated now if it is not yet); with knots,
        their counts (``ranks`` if given) to the rank ring instead."""
        ring: npt.NDArray[Any]
        data: npt.NDArray[Any]
        if self._knots is not None:
            if ranks is None:
                ranks = np.stack(self._knots.counts_of(values))
            if self._rank_ring is None:
                self._rank_ring = np.empty((2, self.window_size), dtype=self._rank_int)
            ring, data = self._rank_ring, ranks
        else:
            if self._ring is _EMPTY:
                size = self.window_size + (self._m if self.mode == "sliding" else 0)
                self._ring = np.empty(size, dtype=np.float64)
            ring, data = self._ring, values
        cap, k = ring.shape[-1], data.shape[-1]
        if k >= cap:
            ring[...] = data[..., k - cap :]
            self._pos, self._held = 0, cap
            return
        pos = self._pos
        head = min(k, cap - pos)
        ring[..., pos : pos + head] = data[..., :head]
        ring[..., : k - head] = data[..., head:]
        self._pos = (pos + k) % cap
        self._held = min(cap, self._held + k)

    # -- per-event path ----------------------------------------------------
    def update(self, x: float) -> KSWindow:
        x = float(x)
        if x - x != 0.0:
            raise ValueError(f"x must be a finite number, got {x!r}")
        if self.drift_detected:
            self._restart()
        elif self._steady:
            # fixed reference and full window: the common case, inlined
            self._g_end = None
            self._ranks_ok = False
            pos = self._pos
            knots = self._knots
            if knots is None:
                self._ring[pos] = x  # replaces the oldest
            else:
                ring = self._rank_ring
                assert ring is not None
                ring[0, pos], ring[1, pos] = knots.count(x)
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
        elif (learn := self._learn) is not None and len(learn) < self._m - 1:
            learn.append(x)  # a reference being learned: nothing tested since the reset
            return self
        self._g_end = None
        self._ranks_ok = False
        self._update_slow(x)
        self._steady = (
            self.mode == "fixed"
            and self._sealed()
            and self._held == self.window_size
            and not self.drift_detected
        )
        return self

    def _update_slow(self, x: float) -> None:
        n = self.window_size
        if self.mode == "fixed" and not self._sealed():
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
        arr = float_array(seq)
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
            if self.mode == "fixed" and not self._sealed():
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
            if self._ranks_ok or self._knots is not None:
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
                return count_windows(windows, held + 1 - n, js, self._scales, self._offsets)

        else:
            need = m + n
            values = np.concatenate((self._ordered(), arr))

            def counts(js: list[int]) -> list[int]:
                return [self._count_values(values, held + 1 + j) for j in js]

        j = self._scan(k, max(0, need - held - 1), counts)
        used = k if j < 0 else j + 1
        if self._knots is not None:  # the window is its counts
            self._extend(arr[:used], ranks[:, held : held + used])
        else:
            self._extend(arr[:used])
            if self.mode == "fixed":
                self._keep_ranks(ranks[:, held + used - self._held : held + used])
        self._steady = self.mode == "fixed" and self._held == n and not self.drift_detected
        return j

    def _scan(self, k: int, first: int, counts: Callable[[list[int]], list[int]]) -> int:
        """The first detection among ``k`` observations, both samples full from the
        ``first`` (``scan_for_detection``); its index, or -1."""
        j, self._since_test, self._budget, self._g_end = scan_for_detection(
            k,
            first,
            counts,
            stride=self.stride,
            critical=self._critical,
            step=self._step,
            since=self._since_test,
            budget=self._budget,
            g_end=self._g_end,
        )
        if j >= 0:
            self.drift_detected = True
        return j

    def _write_ranks(self, ranks: IntArray, values: FloatArray, start: int) -> None:
        """Columns ``start...`` of ``ranks``: c_R(< v) and c_R(<= v) of ``values``
        (the second search only for values the reference holds)."""
        knots, stop = self._knots, start + len(values)
        counts = exact_counts(self._ref, values) if knots is None else knots.counts_of(values)
        ranks[0, start:stop], ranks[1, start:stop] = counts

    def _copy_ranks(self, ranks: IntArray) -> None:
        """The rank ring into the first columns of ``ranks``, in the order of ``_ordered``."""
        if self._held:
            assert self._rank_ring is not None
            ranks[:, : self._held] = self._in_order(self._rank_ring)

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
        if self._knots is not None:
            assert self._rank_ring is not None
            pair: IntArray = self._rank_ring[:, : self._held].astype(self._int)
            pair.sort(axis=1)  # both rows are monotone in the value: sorted together
            return count_pair(pair, self._scales, self._offsets)
        if self.mode == "fixed":
            return self._count_sorted(self._ref, np.sort(self._ring))
        values = self._ordered()
        return self._count_values(values, len(values))

    def _count_sorted(self, ref: FloatArray, win: FloatArray) -> int:
        """m*n*D of a sorted reference and a sorted window."""
        pair = np.empty((2, self.window_size), dtype=self._int)
        pair[0] = ref.searchsorted(win, "left")
        pair[1] = ref.searchsorted(win, "right")
        return count_pair(pair, self._scales, self._offsets)

    def _count_values(self, values: FloatArray, end: int) -> int:
        """m*n*D of the sliding samples that end before ``end`` in ``values``."""
        n, m = self.window_size, self._m
        ref, win = values[end - n - m : end - n], values[end - n : end]
        return self._count_sorted(np.sort(ref), np.sort(win))

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

    @property
    def quiet_period(self) -> int:
        """A reference being learned (fixed mode, no ``baseline``): nothing is
        tested before it is full."""
        return self._m if self.mode == "fixed" and self.baseline is None else 0

    admit = staticmethod(check_finite)

    # -- snapshots ---------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "window_size": self.window_size,
            "reference_size": self.reference_size,
            "mode": self.mode,
            "baseline": None if self.baseline is None else list(self.baseline),
            "stride": self.stride,
        } | ({} if self.reference_knots is None else {"reference_knots": self.reference_knots})

    @classmethod
    def adopt(cls, snapshot: Mapping[str, Any], params: Mapping[str, Any]) -> Mapping[str, Any]:
        """A fixed reference written exact restores as knots when ``params`` has
        ``reference_knots`` (it is summarised at restore, as that detector's own run
        would have); knots never become an exact reference again."""
        knots, written = params.get("reference_knots"), snapshot.get("params")
        if knots is None or not isinstance(written, Mapping):
            return snapshot
        if written.get("reference_knots") is not None or written.get("mode") != "fixed":
            return snapshot
        return {**snapshot, "params": {**written, "reference_knots": knots}}

    def _get_state(self) -> dict[str, Any]:
        if self._knots is not None:
            return self._knotted_state(self._knots)
        reference: str | None = None
        ordered = self._ordered()
        window = ordered[len(ordered) - self._win_count() :]
        if self.baseline is not None:
            pass
        elif self.mode == "sliding":
            reference = pack_floats(ordered[: len(ordered) - len(window)])  # arrival order
        elif len(self._ref):
            reference = packed_reference(self._ref)  # the same text until the next detection
        else:  # a multiset: sorted is canonical
            learned = np.frombuffer(self._learn or b"", dtype=np.float64)
            reference = pack_floats(np.sort(learned, kind="stable"))
        return {
            "reference": reference,
            "window": pack_floats(window),
            "since_test": self._since_test,
            "drift_detected": self.drift_detected,
        }

    def _knotted_state(self, knots: KnotReference) -> dict[str, Any]:
        """Version 3's layout of a full reference kept as knots: the knots (none with a
        ``baseline``, which gives them back), the window's counts in arrival order."""
        values, counts = (None, None) if self.baseline is not None else knots.pack()
        ring = self._rank_ring
        window = _EMPTY_COUNTS if ring is None or not self._held else self._in_order(ring)
        return {
            "knots": values,
            "knot_counts": counts,
            "window_counts": pack_counts(window),
            "since_test": self._since_test,
            "drift_detected": self.drift_detected,
        }

    def _upgrade_state(self, version: int, state: Mapping[str, Any]) -> Mapping[str, Any]:
        """Version 1 listed the samples as JSON numbers (in arrival order); version 2
        is version 3 without knots (restored into a detector with ``reference_knots``,
        its full reference is summarised as that detector's own run would have)."""
        if version == 2:
            return state
        if version != 1:
            return super()._upgrade_state(version, state)
        upgraded = dict(state)
        upgraded["window"] = pack_floats(get_float_list(state, "window"))
        if state["reference"] is not None:
            upgraded["reference"] = pack_floats(get_float_list(state, "reference"))
        return upgraded

    def _set_state(self, state: Mapping[str, Any]) -> None:
        if "window_counts" in state:
            self._set_knotted_state(state)
            return
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

    def _set_knotted_state(self, state: Mapping[str, Any]) -> None:
        n, m, q = self.window_size, self._m, self.reference_knots
        if q is None:
            raise ValueError("knots need reference_knots")
        window = get_window_counts(state, "window_counts", n=n, m=m)
        since = get_int(state, "since_test")
        drift = get_bool(state, "drift_detected")
        if since >= self.stride:
            raise ValueError("since_test out of range")
        self.reset()
        if self.baseline is None:
            self._knots = KnotReference.unpack(state, "knots", "knot_counts", m=m, knots=q)
        elif state["knots"] is not None or state["knot_counts"] is not None:
            raise ValueError("knots must be null when a baseline is given")
        if len(window[0]):
            self._extend(_EMPTY, window)
        self._since_test = since
        self.drift_detected = drift
        self._steady = self._held == n and not drift
