"""The pure-Python ADWIN engine: the reference for the compiled one
(``detectors/_adwin_core.c``, which must match it bit for bit) and the engine of
``detectors.ADWIN`` when the extension is not built.

``PyAdwinCore`` has the interface of ``detectors._adwin_core.AdwinCore`` (see
``_adwin_core.pyi``); ``detectors.adwin`` adds hyperparameter and snapshot
validation, ``update_many``'s input checks and the detector protocol on top.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from itertools import accumulate, chain, repeat
from operator import sub
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from detectors._parse import FloatArray

__all__ = ["PyAdwinCore", "canonical_counts"]

_C23 = 2.0 / 3.0
_MAX_ROWS_CELLS = 1 << 18  # cells of the (ticks x buckets) matrix per vectorised chunk
_FIRST_CHUNK = 2048
_MAX_CHUNK = 1 << 16
_BLOCK = 256  # checks evaluated together
IntArray = npt.NDArray[np.int64]


def canonical_counts(c: int, max_buckets: int) -> tuple[list[int], list[int]]:
    """Arrivals ``a_L`` and resident bucket counts ``k_L`` per level after ``c``
    insertions into an empty window (no deletion): the structure is a function of
    the count alone, because merging always pairs the two oldest buckets."""
    arrivals, counts = [], []
    a = c
    while True:
        if a <= max_buckets:
            arrivals.append(a)
            counts.append(a)
            break
        q = (a - max_buckets + 1) // 2
        arrivals.append(a)
        counts.append(a - 2 * q)
        a = q
    return arrivals, counts


@functools.lru_cache(maxsize=1024)
def _prefix_sizes(lengths: tuple[int, ...]) -> list[float]:
    """Window sizes left of each bucket boundary, oldest bucket first, for a bucket
    structure with ``lengths[L]`` buckets of size 2**L (shared, read-only)."""
    sizes = chain.from_iterable(
        repeat(float(1 << lv), lengths[lv]) for lv in range(len(lengths) - 1, -1, -1)
    )
    return list(accumulate(sizes))


class PyAdwinCore:
    """ADWIN's window and cut detection in Python (river's arithmetic, in river's order).

    Values are inserted lazily, at the next check or when the window is read; the
    bucket structure is the same as with immediate insertion.
    """

    drift_detected: bool
    warning_detected: bool
    _delta: float
    _clock: int
    _max_buckets: int
    _min_window_length: int
    _grace_period: int

    def _configure(
        self,
        delta: float,
        clock: int,
        max_buckets: int,
        min_window_length: int,
        grace_period: int,
    ) -> None:
        """Set the hyperparameters (validated by the caller) and restart."""
        self._delta = delta
        self._clock = clock
        self._max_buckets = max_buckets
        self._min_window_length = min_window_length
        self._grace_period = grace_period
        self._restart()

    def _restart(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._width = 0.0
        self._total = 0.0
        self._variance = 0.0
        self._tick = 0
        self._tots: list[list[float]] = [[]]
        self._vars: list[list[float]] = [[]]
        self._pending: list[float] = []

    def reset(self) -> None:
        self._restart()

    @property
    def width(self) -> int:
        """Number of values in the window."""
        self._flush()
        return int(self._width)

    @property
    def total(self) -> float:
        """Sum of the values in the window."""
        self._flush()
        return self._total

    @property
    def variance(self) -> float:
        """Sum of squared deviations from the mean in the window (river's ``variance``)."""
        self._flush()
        return self._variance

    # -- per-event path ----------------------------------------------------
    def update(self, x: float) -> Self:
        x = float(x)
        if x - x != 0.0:
            raise ValueError(f"x must be a finite number, got {x!r}")
        if self.drift_detected:
            self._restart()
        self._pending.append(x)
        self._tick = tick = self._tick + 1
        if tick % self._clock == 0:
            self._flush()
            if self._width > self._grace_period:
                self.drift_detected = self._detect()
        return self

    def _flush(self) -> None:
        """Insert the pending values (river's ``insert_element``, in bulk)."""
        pend = self._pending
        if not pend:
            return
        w = self._width
        total = self._total
        var = self._variance
        for x in pend:
            if w > 0.0:
                dv = x - total / w
                var += w * dv * dv / (w + 1.0)
            total += x
            w += 1.0
        self._width = w
        self._total = total
        self._variance = var
        tots, vars_ = self._tots, self._vars
        tots[0].extend(pend)
        vars_[0].extend([0.0] * len(pend))
        self._pending = []
        mb = self._max_buckets
        level = 0
        while True:
            tl = tots[level]
            excess = len(tl) - mb
            if excess <= 0:
                break
            q2 = (excess + 1) // 2 * 2
            vl = vars_[level]
            n1 = float(1 << level)
            h = n1 * 0.5
            new_t = []
            new_v = []
            for i in range(0, q2, 2):
                a = tl[i]
                b = tl[i + 1]
                d = a / n1 - b / n1
                new_t.append(a + b)
                new_v.append(vl[i] + vl[i + 1] + h * d * d)
            del tl[:q2]
            del vl[:q2]
            if level + 1 == len(tots):
                tots.append(new_t)
                vars_.append(new_v)
            else:
                tots[level + 1].extend(new_t)
                vars_[level + 1].extend(new_v)
            level += 1

    def _detect(self) -> bool:
        """river's ``detect_change`` body (the clock and grace tests are the caller's)."""
        change = False
        while self._cut_exists(self._tots, self._width, self._total, self._variance):
            change = True
            self._delete_oldest()
        return change

    def _cut_exists(
        self, tots: list[list[float]], width: float, total: float, variance: float
    ) -> bool:
        """One scan of river's cut search over the bucket totals ``tots`` (level 0
        first, oldest bucket first within a level): whether some cut passes."""
        mwl = float(self._min_window_length)
        if width < 2.0 * mwl:  # no cut leaves min_window_length on both sides
            return False
        vw = variance / width
        if not vw >= 0.0:  # sqrt of a negative (or NaN) bound: no cut can pass
            return False
        c = mwl - 1.0  # (n - mwl) + 1.0 == n - c exactly: all are small integers
        dp = math.log(2.0 * math.log(width) / self._delta)
        c23dp = _C23 * dp
        sqrt = math.sqrt
        # river's running sums over the buckets, oldest first, at C speed: the
        # same additions in the same order
        flat = list(chain.from_iterable(reversed(tots)))
        n0s = _prefix_sizes(tuple(map(len, tots)))
        u0s = list(accumulate(flat))
        u1s = list(accumulate(flat, sub, initial=total))[1:]
        # cuts leaving at least min_window_length on both sides (n0 increases)
        lo = bisect_left(n0s, mwl)
        hi = bisect_right(n0s, width - mwl)
        for n0, u0, u1 in zip(n0s[lo:hi], u0s[lo:hi], u1s[lo:hi], strict=True):
            n1 = width - n0
            m = 1.0 / (n0 - c) + 1.0 / (n1 - c)
            if abs(u0 / n0 - u1 / n1) > sqrt(2.0 * m * vw * dp) + c23dp * m:
                return True
        return False

    def _delete_oldest(self) -> None:
        tots, vars_ = self._tots, self._vars
        # With max_buckets=1 a level can be empty, so the oldest bucket may sit below
        # an empty top level; river reads past the end there (and panics).
        while len(tots) > 1 and not tots[-1]:
            tots.pop()
            vars_.pop()
        last = len(tots) - 1
        n = float(1 << last)
        u = tots[last][0]
        v = vars_[last][0]
        mu = u / n
        self._width -= n
        self._total -= u
        width = self._width
        mu_window = self._total / width
        d = mu - mu_window
        self._variance -= v + n * width * d * d / (n + width)
        del tots[last][0]
        del vars_[last][0]
        while len(tots) > 1 and not tots[-1]:
            tots.pop()
            vars_.pop()

    # -- batch path --------------------------------------------------------
    def _update_array(self, xs: FloatArray) -> list[int]:
        """Consume ``xs`` (finite, checked by the caller); return the detection indices."""
        out: list[int] = []
        i = 0
        n = len(xs)
        chunk = _FIRST_CHUNK
        while i < n:
            if self.drift_detected:
                self._restart()
                chunk = _FIRST_CHUNK
            self._flush()
            j = min(n, i + chunk)
            hit = self._bulk(xs[i:j])
            if hit is None:
                i = j
                chunk = min(2 * chunk, _MAX_CHUNK)
            else:
                out.append(i + hit)
                i += hit + 1
        return out

    def _bulk(self, xs: FloatArray) -> int | None:
        """Consume ``xs`` from a canonical (flushed, undetected) state, stopping after
        the first value whose check detects drift; return its index or None."""
        n = len(xs)
        mb = self._max_buckets
        clock = self._clock
        w0 = self._width
        c0 = int(w0)
        # rows of the check matrix are bounded: shorten the chunk if needed
        levels_est = max(1, (c0 + n).bit_length()) + 1
        max_rows = max(1, _MAX_ROWS_CELLS // (levels_est * mb))
        if n // clock > max_rows:
            n = max(1, max_rows * clock)
            xs = xs[:n]
        with np.errstate(all="ignore"):
            prev_tot = np.add.accumulate(np.concatenate(([self._total], xs)))
            wb = w0 + np.arange(n, dtype=np.float64)  # width before each insertion
            dv = xs - prev_tot[:-1] / wb
            inc = wb * dv * dv / (wb + 1.0)
            if c0 == 0:
                inc[0] = 0.0
            var_after = np.add.accumulate(np.concatenate(([self._variance], inc)))[1:]
        tot_after = prev_tot[1:]
        counts = c0 + np.arange(1, n + 1, dtype=np.int64)
        rows = np.flatnonzero((counts % clock == 0) & (counts > self._grace_period))

        # every bucket ever formed in this chunk, per level, in global order
        g_t: list[FloatArray] = [np.concatenate((np.asarray(self._tots[0], np.float64), xs))]
        g_v: list[FloatArray] = [
            np.concatenate((np.asarray(self._vars[0], np.float64), np.zeros(n)))
        ]
        level = 0
        with np.errstate(all="ignore"):
            while True:
                t = g_t[level]
                v = g_v[level]
                pairs = len(t) // 2
                has_next = level + 1 < len(self._tots)
                if pairs == 0 and not has_next:
                    break
                n1 = float(1 << level)
                a = t[0 : 2 * pairs : 2]
                b = t[1 : 2 * pairs : 2]
                new_t = a + b
                if level == 0:
                    # sizes 1 and variances 0: d = a/1 - b/1 = a - b, v = 0 + 0 + h d d
                    d = a - b
                    new_v = 0.5 * d
                    new_v *= d
                else:
                    d = a / n1 - b / n1
                    new_v = v[0 : 2 * pairs : 2] + v[1 : 2 * pairs : 2]
                    d2 = n1 * 0.5 * d
                    d2 *= d
                    new_v += d2
                if has_next:
                    new_t = np.concatenate((np.asarray(self._tots[level + 1], np.float64), new_t))
                    new_v = np.concatenate((np.asarray(self._vars[level + 1], np.float64), new_v))
                g_t.append(new_t)
                g_v.append(new_v)
                level += 1
        a0, k0 = canonical_counts(c0, mb)
        base = [a - k for a, k in zip(a0, k0, strict=True)]  # global index of g_t[L][0]
        base += [0] * (len(g_t) - len(base))

        hit: int | None = None
        if len(rows):
            hit = self._first_cut(rows, counts[rows], tot_after, var_after, prev_tot, g_t, base)
        end = n if hit is None else hit + 1
        c = c0 + end
        arrivals, resident = canonical_counts(c, mb)
        self._tots = []
        self._vars = []
        for lv, (a_l, k_l) in enumerate(zip(arrivals, resident, strict=True)):
            lo = a_l - k_l - base[lv]
            self._tots.append(g_t[lv][lo : lo + k_l].tolist())
            self._vars.append(g_v[lv][lo : lo + k_l].tolist())
        self._width = float(c)
        self._total = float(tot_after[end - 1])
        self._variance = float(var_after[end - 1])
        self._tick = c
        self._pending = []
        if hit is None:
            return None
        # replay the detecting check exactly (it also drops the oldest buckets)
        self.drift_detected = self._detect()
        if self.drift_detected:
            return hit
        rest = self._bulk(xs[end:]) if end < n else None  # pragma: no cover - safety net
        return None if rest is None else end + rest  # pragma: no cover

    def _first_cut(
        self,
        rows: IntArray,
        cs: IntArray,
        tot_after: FloatArray,
        var_after: FloatArray,
        prev_tot: FloatArray,
        g_t: list[FloatArray],
        base: list[int],
    ) -> int | None:
        """Index (into the chunk) of the first check where a cut passes, or None.

        Every check (a count ``c`` in ``cs``) sees the canonical bucket structure of
        ``c`` values: bucket ``s`` of level ``L`` is the global bucket
        ``arrivals_L - resident_L + s`` and ends after ``(index + 1) * 2**L`` values.
        A vectorised necessary condition is evaluated for all checks and buckets at
        once; the few checks it cannot clear are then scanned exactly, with river's
        arithmetic, by ``_cut_exists``.
        """
        mb = self._max_buckets
        mwl = float(self._min_window_length)
        n_levels = len(g_t)
        c0 = int(cs[0]) - int(rows[0]) - 1  # the count before this chunk
        arr = np.empty((n_levels, len(cs)), dtype=np.int64)
        a = cs
        for lv in range(n_levels):
            arr[lv] = a
            a = np.maximum((a - (mb - 1)) >> 1, 0)  # merges passed to the next level
        res = arr.copy()
        res[:-1] -= 2 * arr[1:]
        # running totals at every bucket boundary any check sees, per level: inside
        # the chunk from the running total of the values; before it, at the
        # boundaries of the chunk's first structure (which later ones only coarsen)
        old_levels = self._structure_at(c0, g_t, base)
        old_pos = np.asarray(_prefix_sizes(tuple(map(len, old_levels))), dtype=np.int64)
        old_pref: FloatArray = np.cumsum(np.concatenate([np.zeros(1), *reversed(old_levels)]))
        first_idx = arr - res  # global index of each level's oldest resident bucket
        g_lo = first_idx.min(axis=1)
        parts: list[FloatArray] = []
        offsets = np.zeros(n_levels, dtype=np.int64)
        used = 0
        for lv in range(n_levels):
            g = np.arange(g_lo[lv], max(int(arr[lv].max()), int(g_lo[lv])), dtype=np.int64)
            pos = (g + 1) << lv
            split = int(np.searchsorted(pos, c0, side="right"))  # pos <= c0: old buckets
            parts.append(
                np.concatenate(
                    (
                        old_pref[np.searchsorted(old_pos, pos[:split]) + 1],
                        prev_tot[np.minimum(pos[split:] - c0, len(prev_tot) - 1)],
                    )
                )
            )
            offsets[lv] = used - g_lo[lv]
            used += len(g)
        table = np.concatenate([*parts, np.zeros(1)])
        width = cs.astype(np.float64)
        with np.errstate(all="ignore"):  # width 1 gives log(0); no cut there anyway
            dp_low = np.log(2.0 * np.log(width) * (1.0 - 1e-12) / self._delta) * (1.0 - 1e-12)
        variance = var_after[rows]
        total = tot_after[rows]
        slots = np.arange(mb)[None, :, None]
        sizes = (1 << np.arange(n_levels, dtype=np.int64))[:, None, None]
        candidates = np.zeros(len(cs), dtype=bool)
        with np.errstate(all="ignore"):
            for lo in range(0, len(cs), _BLOCK):
                hi = min(len(cs), lo + _BLOCK)
                candidates[lo:hi] = self._may_cut(
                    first_idx[:, lo:hi], res[:, lo:hi], slots, sizes, offsets, table,
                    width[lo:hi], total[lo:hi], variance[lo:hi], dp_low[lo:hi], mwl,
                )  # fmt: skip
        if not np.isfinite(table).all():  # overflowing sums: check everything exactly
            candidates[:] = True
        for r in np.flatnonzero(candidates).tolist():
            c = int(cs[r])
            tots = [level.tolist() for level in self._structure_at(c, g_t, base)]
            if self._cut_exists(tots, float(c), float(total[r]), float(variance[r])):
                return int(rows[r])
        return None

    def _structure_at(self, c: int, g_t: list[FloatArray], base: list[int]) -> list[FloatArray]:
        """Bucket totals per level (level 0 first) of the canonical structure of
        ``c`` values, as slices of the chunk's level arrays."""
        arrivals, resident = canonical_counts(c, self._max_buckets)
        return [
            g_t[lv][arrivals[lv] - resident[lv] - base[lv] : arrivals[lv] - base[lv]]
            for lv in range(len(arrivals))
        ]

    @staticmethod
    def _may_cut(
        first_idx: IntArray,
        res: IntArray,
        slots: IntArray,
        sizes: IntArray,
        offsets: IntArray,
        table: FloatArray,
        width: FloatArray,
        total: FloatArray,
        variance: FloatArray,
        dp_low: FloatArray,
        mwl: float,
    ) -> npt.NDArray[np.bool_]:
        """Per check: False only if no cut can pass (a necessary condition).

        The running totals come from ``table`` (prefix sums of the values, or of
        the first structure's buckets) rather than from summing the buckets of each
        check; the bound is evaluated in another order from a lower bound of
        delta', shrunk by 1e-9 relative and loosened by ``slack`` times m, where
        ``slack`` bounds the difference of the running totals (about n * 2**-53 of
        the sum of the absolute values, which is at most |total| +
        sqrt(width * variance)). Empty slots get n0 = 0, hence NaN, hence no cut;
        cuts that leave fewer than ``min_window_length`` values on a side get a
        non-positive or infinite m, hence no cut, or at worst a needless exact scan.
        """
        g = first_idx[:, None, :] + slots  # (level, slot, check)
        valid = slots < res[:, None, :]
        n0 = np.where(valid, (g + 1) * sizes, 0).astype(np.float64)
        u0 = table[np.where(valid, g + offsets[:, None, None], -1)]
        n1 = width - n0
        u1 = total - u0
        dm = u0 / n0
        dm -= u1 / n1
        np.abs(dm, out=dm)
        shrink = 1.0 - 1e-9
        vw = variance / width
        slack = (1e-7 + 4e-16 * width) * (np.abs(total) + np.sqrt(width * np.abs(variance)))
        k1 = 2.0 * vw * dp_low * (shrink * shrink)
        k2 = _C23 * dp_low * shrink - slack
        m = 1.0 / (n0 - (mwl - 1.0))
        n1 -= mwl - 1.0
        m += 1.0 / n1
        eps = m * k1
        np.sqrt(eps, out=eps)
        m *= k2
        eps += m
        out = np.asarray((dm >= eps).any(axis=(0, 1)), dtype=bool)
        out |= ~np.isfinite(slack)  # checks whose magnitudes overflow: scan exactly
        return out

    # -- snapshots ---------------------------------------------------------
    def _export_state(self) -> dict[str, Any]:
        """The window as a plain-JSON dict (the layout of ADWIN's snapshot state)."""
        self._flush()
        return {
            "width": int(self._width),
            "total": self._total,
            "variance": self._variance,
            "tick": self._tick,
            "bucket_totals": [list(t) for t in self._tots],
            "bucket_variances": [list(v) for v in self._vars],
            "drift_detected": self.drift_detected,
        }

    def _import_state(self, state: Mapping[str, Any]) -> None:
        """Restore a dict of ``_export_state``'s layout (validated by the caller)."""
        self._restart()
        self._width = float(state["width"])
        self._total = float(state["total"])
        self._variance = float(state["variance"])
        self._tick = int(state["tick"])
        self._tots = [[float(x) for x in level] for level in state["bucket_totals"]]
        self._vars = [[float(x) for x in level] for level in state["bucket_variances"]]
        self.drift_detected = bool(state["drift_detected"])
