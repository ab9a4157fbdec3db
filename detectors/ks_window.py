"""KSWindow: two-sample Kolmogorov-Smirnov test between a reference and a sliding window."""

from __future__ import annotations

import bisect
import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from detectors._numeric import get_bool, get_float_list, get_int
from detectors.base import DriftDetector, register, require

__all__ = ["KSWindow", "kolmogorov_sf"]

Mode = Literal["fixed", "sliding"]
_MODES = ("fixed", "sliding")
IntArray = npt.NDArray[np.int64]


def kolmogorov_sf(x: float) -> float:
    r"""Survival function of the Kolmogorov distribution,
    :math:`P(K > x) = 2\sum_{k\ge1}(-1)^{k-1}e^{-2k^2x^2}`."""
    if x <= 0.0:
        return 1.0
    if x < 1.0:
        # CDF by the Jacobi theta form, which converges fast for small x
        w = math.sqrt(2.0 * math.pi) / x
        s = 0.0
        for k in range(1, 200):
            term = math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8.0 * x * x))
            s += term
            if term < 1e-17 * s:
                break
        return min(1.0, max(0.0, 1.0 - w * s))
    total = 0.0
    sign = 1.0
    for k in range(1, 200):
        term = math.exp(-2.0 * k * k * x * x)
        total += sign * term
        if term < 1e-17 * abs(total) or term == 0.0:
            break
        sign = -sign
    return min(1.0, max(0.0, 2.0 * total))


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
    Memory: O(``reference_size`` + ``window_size``) floats. Both samples are kept
    sorted, updated by insertion and removal; a test evaluates
    :math:`mn\,D = \max_r \max(n\,c_R(\le r) - m\,c_W(\le r),\ m\,c_W(< r) - n\,c_R(< r))`
    over the reference values r with a few vectorised binary searches. Between
    tests :math:`mn\,D` moves by at most m (fixed) or m + n (sliding) per
    observation, so after a test far below the critical value the next tests that
    cannot reach it are skipped; ``statistic`` and ``p_value`` are computed on
    demand for the current samples (NaN / None until both are full).

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
    input_kind = "numeric"
    state_version: ClassVar[int] = 1
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
        self.reset()

    def _critical_count(self) -> int:
        """Smallest integer G = mn*D whose p-value is <= alpha (mn+1 if none)."""
        mn = self._m * self.window_size
        lo, hi = 1, mn + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._p_of(mid) <= self.alpha:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _p_of(self, g: int) -> float:
        return kolmogorov_sf(self._scale * g / (self._m * self.window_size))

    # -- state -------------------------------------------------------------
    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._ref: deque[float] = deque()
        self._ref_sorted: list[float] = []
        self._win: deque[float] = deque()
        self._win_sorted: list[float] = []
        self._since_test = 0
        self._budget = 0
        self._steady = False
        self._ref_cache: tuple[npt.NDArray[np.float64], IntArray, IntArray] | None = None
        if self.baseline is not None:
            self._ref.extend(self.baseline)
            self._ref_sorted = sorted(self.baseline)

    def _restart(self) -> None:
        cache = self._ref_cache if self.baseline is not None else None
        self.reset()
        self._ref_cache = cache

    # -- per-event path ----------------------------------------------------
    def update(self, x: float) -> KSWindow:
        x = float(x)
        if x - x != 0.0:
            raise ValueError(f"x must be a finite number, got {x!r}")
        if self.drift_detected:
            self._restart()
        elif self._steady:
            # fixed reference and full window: the common case, inlined
            win = self._win
            ws = self._win_sorted
            win.append(x)
            insort(ws, x)
            del ws[bisect_left(ws, win.popleft())]
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
            and len(self._ref) == self._m
            and len(self._win) == self.window_size
            and not self.drift_detected
        )
        return self

    def _update_slow(self, x: float) -> None:
        ref = self._ref
        m = self._m
        if self.mode == "fixed":
            if len(ref) < m:
                ref.append(x)
                bisect.insort(self._ref_sorted, x)
                return
            self._push(x)
        else:
            old = self._push(x)
            if old is not None:
                ref.append(old)
                bisect.insort(self._ref_sorted, old)
                if len(ref) > m:
                    gone = ref.popleft()
                    rs = self._ref_sorted
                    del rs[bisect.bisect_left(rs, gone)]
                self._ref_cache = None
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
        win.append(x)
        bisect.insort(self._win_sorted, x)
        if len(win) > self.window_size:
            old = win.popleft()
            ws = self._win_sorted
            del ws[bisect.bisect_left(ws, old)]
            if self._budget > 0:
                self._budget -= 1
            return old
        return None

    def _reference_arrays(self) -> tuple[npt.NDArray[np.float64], IntArray, IntArray]:
        cache = self._ref_cache
        if cache is None:
            r = np.array(self._ref_sorted, dtype=np.float64)
            n = self.window_size
            le = n * np.searchsorted(r, r, side="right").astype(np.int64)
            lt = n * np.searchsorted(r, r, side="left").astype(np.int64)
            cache = self._ref_cache = (r, le, lt)
        return cache

    def _count_statistic(self) -> int:
        """m*n*D for the current samples (both full)."""
        r, n_le, n_lt = self._reference_arrays()
        w = np.array(self._win_sorted, dtype=np.float64)
        m = self._m
        up = int((n_le - m * np.searchsorted(w, r, side="right")).max())
        down = int((m * np.searchsorted(w, r, side="left") - n_lt).max())
        return max(up, down, 0)

    def _full(self) -> bool:
        return len(self._ref) == self._m and len(self._win) == self.window_size

    @property
    def statistic(self) -> float:
        if not self._full():
            return math.nan
        return self._count_statistic() / (self._m * self.window_size)

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
        return {
            "reference": None if self.baseline is not None else list(self._ref),
            "window": list(self._win),
            "since_test": self._since_test,
            "drift_detected": self.drift_detected,
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        window = get_float_list(state, "window")
        since = get_int(state, "since_test")
        drift = get_bool(state, "drift_detected")
        if self.baseline is None:
            ref = get_float_list(state, "reference")
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
        self._ref = deque(ref)
        self._ref_sorted = sorted(ref)
        self._win = deque(window)
        self._win_sorted = sorted(window)
        self._since_test = since
        self.drift_detected = drift
        self._steady = (
            self.mode == "fixed" and len(ref) == self._m and len(window) == self.window_size
        ) and not drift


def _check_int(value: Any, name: str) -> None:
    require(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool) and bool(value >= 1),
        name,
        f"must be an integer >= 1, got {value!r}",
    )
