"""Shannon entropy of a categorical stream over a sliding window, against a learned band."""

from __future__ import annotations

import functools
import math
from array import array
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from detectors._columns import consume_column
from detectors._parse import (
    Direction,
    category_key,
    check_direction,
    check_positive_float,
    check_positive_int,
    exceedance,
    get_float_or_nan,
    get_int,
    json_float,
)
from detectors.base import DriftDetector, InputKind, register, require

__all__ = ["EntropyTracker"]

_SCALE = 1 << 32
"""Fixed-point scale of the ``c log c`` table: integer sums are exact and order-free."""


@functools.lru_cache(maxsize=64)
def _clog_table(n: int) -> tuple[int, ...]:
    """``c log c`` (fixed point) for c = 0..n; shared by every detector of one window
    size (read only), so restoring thousands of them does not rebuild it each time."""
    table = [0, 0]
    table.extend(round(c * math.log(c) * _SCALE) for c in range(2, n + 1))
    return tuple(table[: n + 1])


@register
class EntropyTracker(DriftDetector[Any]):
    r"""Entropy of the last ``window_size`` categories, against a band from a reference period.

    The first ``reference_size`` observations are the reference: from their
    frequencies ``p`` (``K`` categories seen, entropy ``H_ref``) the detector derives
    what the plug-in entropy of a window of ``w = window_size`` i.i.d. draws should
    look like,

    .. math::

        c = H_{ref} + \frac{K - 1}{2N} - \frac{K - 1}{2w}, \qquad
        s^2 = \frac{\sum_i p_i \ln^2 p_i - H_{ref}^2}{w} + \frac{K - 1}{2 w^2},

    (Miller-Madow bias correction and the delta method with its second-order term,
    which dominates for near-uniform ``p``), with ``s`` floored at ``1 / w``. After
    that, every observation updates the window entropy ``H = ln w - (1/w) sum_j n_j
    ln n_j`` in O(1) (window counts ``n_j`` and an exact fixed-point running sum of
    ``n ln n`` terms) and, once the window is full, computes ``z = (H - c) / s``.

    ``statistic`` is ``-z`` for ``direction="lower"`` (entropy collapse: the model's
    answers stop varying), ``z`` for ``"upper"`` (confusion: answers spread out) and
    ``|z|`` for ``"both"``; drift is detected when it exceeds ``k``. The band is an
    i.i.d. approximation: real streams are autocorrelated and checked at every event,
    so choose ``k`` with :func:`detectors.calibrate` for a stated false-alarm rate.

    After a detection the window is emptied (the reference is kept), so a lasting
    change is reported again every ``window_size`` observations. ``reset()`` forgets
    the reference too.

    Categories are ``str``, ``int`` or ``bool`` (and whole floats); they are counted
    by the key of :func:`detectors._parse.category_key`, so ``1`` and ``"1"`` are one
    category. Entropies are in nats.

    Memory: the window is a ring of small integer codes (2 bytes each), one per
    distinct category it holds (each category's text is kept once, with its count);
    the ``n ln n`` table is shared by every detector of one window size; plus
    O(distinct categories in the reference period) while the reference is learned.

    Parameters
    ----------
    window_size
        Number of most recent observations whose entropy is tracked (>= 2).
    reference_size
        Number of first observations that define the band (>= 2).
    k
        Half-width of the band in standard errors ``s``; the alarm threshold.
    direction
        ``"lower"``, ``"upper"`` or ``"both"``: which side of the band alarms.

    Examples
    --------
    A model answering with one of 8 classes, then collapsing onto two of them:

    >>> import numpy as np
    >>> from detectors.entropy import EntropyTracker
    >>> rng = np.random.default_rng(7)
    >>> stable = rng.integers(0, 8, size=3000)
    >>> collapsed = rng.choice(8, size=1000, p=[0.45, 0.45] + [0.1 / 6] * 6)
    >>> stream = [f"class-{c}" for c in np.concatenate([stable, collapsed])]
    >>> detector = EntropyTracker(window_size=200, reference_size=1000, k=6.0)
    >>> for i, label in enumerate(stream):
    ...     _ = detector.update(label)
    ...     if detector.drift_detected:
    ...         print(f"drift at {i}: entropy {detector.entropy:.3f} "
    ...               f"(reference {detector.reference_entropy:.3f})")
    drift at 3049: entropy 1.991 (reference 2.075)
    drift at 3249: entropy 0.948 (reference 2.075)
    drift at 3449: entropy 1.210 (reference 2.075)
    drift at 3649: entropy 1.008 (reference 2.075)
    drift at 3849: entropy 1.231 (reference 2.075)
    """

    name: ClassVar[str] = "entropy"
    copies_by_reset: ClassVar[bool] = True
    column_path: ClassVar[bool] = True
    input_kind: ClassVar[InputKind] = "categorical"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "k"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self,
        window_size: int = 200,
        reference_size: int = 1000,
        k: float = 6.0,
        direction: Direction = "both",
    ) -> None:
        super().__init__()
        self.window_size = check_positive_int(window_size, "window_size", minimum=2)
        self.reference_size = check_positive_int(reference_size, "reference_size", minimum=2)
        self.k = check_positive_float(k, "k")
        self.direction: Direction = check_direction(direction)
        self._table = _clog_table(self.window_size + 1)  # a count briefly reaches w + 1
        self.reset()

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._ref_counts: dict[str, int] = {}
        self._ref_n = 0
        self._center = math.nan
        self._scale = math.nan
        self._ref_entropy = math.nan
        self._clear_window()
        self._entropy = math.nan
        self._z = math.nan

    def _clear_window(self) -> None:
        self._ring: array[int] | None = None  # allocated with the window's first value
        self._held = 0
        self._pos = 0
        """The ring's next write (its oldest code once it is full)."""
        self._code: dict[str, int] = {}
        """Category -> its code, for the categories in the window."""
        self._keys: list[str] = []
        """Code -> category ("" once free)."""
        self._counts: list[int] = []
        """Code -> observations in the window."""
        self._free: list[int] = []
        self._sum = 0

    # -- learning -------------------------------------------------------------
    def _finish_reference(self) -> None:
        n = self._ref_n
        probs = [c / n for c in self._ref_counts.values()]
        logs = [math.log(p) for p in probs]
        h = -math.fsum(p * lp for p, lp in zip(probs, logs, strict=True))
        second = math.fsum(p * lp * lp for p, lp in zip(probs, logs, strict=True))
        kk = len(probs)
        w = self.window_size
        self._ref_entropy = h
        self._center = h + (kk - 1) / (2.0 * n) - (kk - 1) / (2.0 * w)
        var = max(second - h * h, 0.0) / w + (kk - 1) / (2.0 * w * w)
        self._scale = max(math.sqrt(var), 1.0 / w)
        self._ref_counts = {}

    # -- the per-event and column paths ------------------------------------------
    def update(self, x: Any) -> EntropyTracker:
        """One value (the per-event path, kept apart from :meth:`_consume`'s column
        loop: a call per value pays no loop set-up; the column path is tested equal)."""
        key = category_key(x)
        self.drift_detected = False
        if self._ref_n < self.reference_size:
            self._learn(key)
            return self
        table = self._table
        counts = self._counts
        code = self._code.get(key)
        if code is None:
            code = self._new_code(key)
        c = counts[code]
        counts[code] = c + 1
        self._sum += table[c + 1] - table[c]
        ring = self._ring
        if ring is None:
            ring = self._ring = array("H" if self.window_size < 2**16 else "L", bytes(0))
        pos = self._pos
        if self._held < self.window_size:
            ring.append(code)
            self._held += 1
        else:
            old = ring[pos]
            ring[pos] = code
            c = counts[old]
            self._sum += table[c - 1] - table[c]
            counts[old] = c - 1
            if c == 1:
                self._free_code(old)
        self._pos = 0 if pos + 1 == self.window_size else pos + 1
        if self._held == self.window_size:
            w = self.window_size
            # H = ln w - (1/w) sum n ln n, with ln w taken from the same fixed-point
            # table, so a single-category window has an entropy of exactly 0.
            self._entropy = (table[w] - self._sum) / (_SCALE * w)
            self._z = (self._entropy - self._center) / self._scale
            if exceedance(self._z, self.direction) > self.k:
                self.drift_detected = True
                self._clear_window()
        return self

    def update_many(self, values: Iterable[Any]) -> list[int]:
        """Equal to ``update`` on each value in turn, with the window held in local
        variables over the column (:meth:`_consume`; driven by
        :func:`detectors._columns.consume_column`)."""
        return consume_column(self, values, category_key)

    def _learning(self) -> bool:
        return self._ref_n < self.reference_size

    def _learn(self, key: str) -> None:
        self._ref_counts[key] = self._ref_counts.get(key, 0) + 1
        self._ref_n += 1
        if self._ref_n == self.reference_size:
            self._finish_reference()

    def _consume(self, keys: list[str], i: int) -> int:
        """Count ``keys[i:]`` into the window until a full window's entropy is out of
        the band (then set the flag and clear the window); the index after the last
        taken."""
        table, counts, codes = self._table, self._counts, self._code
        w, k, direction = self.window_size, self.k, self.direction
        full_scale = _SCALE * w
        center, scale = self._center, self._scale
        ring = self._ring
        if ring is None:
            ring = self._ring = array("H" if w < 2**16 else "L", bytes(0))
        total, pos, held = self._sum, self._pos, self._held
        entropy, z = self._entropy, self._z
        n = len(keys)
        while i < n:
            key = keys[i]
            i += 1
            code = codes.get(key)
            if code is None:
                code = self._new_code(key)
            c = counts[code]
            counts[code] = c + 1
            total += table[c + 1] - table[c]
            if held < w:
                ring.append(code)
                held += 1
            else:
                old = ring[pos]
                ring[pos] = code
                c = counts[old]
                total += table[c - 1] - table[c]
                counts[old] = c - 1
                if c == 1:
                    self._free_code(old)
            pos = 0 if pos + 1 == w else pos + 1
            if held == w:
                # H = ln w - (1/w) sum n ln n, with ln w taken from the same fixed-point
                # table, so a single-category window has an entropy of exactly 0.
                entropy = (table[w] - total) / full_scale
                z = (entropy - center) / scale
                if (-z if direction == "lower" else z if direction == "upper" else abs(z)) > k:
                    self._entropy, self._z = entropy, z
                    self.drift_detected = True
                    self._clear_window()
                    return i
        self._sum, self._pos, self._held = total, pos, held
        self._entropy, self._z = entropy, z
        return i

    def _new_code(self, key: str) -> int:
        if self._free:
            code = self._free.pop()
            self._keys[code] = key
        else:
            code = len(self._keys)
            self._keys.append(key)
            self._counts.append(0)
        self._code[key] = code
        return code

    def _free_code(self, code: int) -> None:
        del self._code[self._keys[code]]
        self._keys[code] = ""
        self._free.append(code)

    def _window(self) -> list[str]:
        """The window's categories, oldest first."""
        ring, keys = self._ring, self._keys
        if ring is None:
            return []
        pos = self._pos if self._held == self.window_size else 0
        return [keys[c] for c in ring[pos:]] + [keys[c] for c in ring[:pos]]

    # -- evidence -------------------------------------------------------------
    @property
    def statistic(self) -> float:
        """Standardised distance of the window entropy from the band centre, signed so
        that larger means further towards an alarm (see ``direction``); NaN before the
        first full window."""
        if math.isnan(self._z):
            return math.nan
        return exceedance(self._z, self.direction)

    @property
    def entropy(self) -> float:
        """Entropy (nats) of the window at the last check; NaN before the first."""
        return self._entropy

    @property
    def z_score(self) -> float:
        """Signed ``(entropy - center) / scale`` at the last check."""
        return self._z

    @property
    def reference_entropy(self) -> float:
        """Plug-in entropy (nats) of the reference period; NaN while learning."""
        return self._ref_entropy

    @property
    def center(self) -> float:
        """Expected window entropy under the reference (NaN while learning)."""
        return self._center

    @property
    def scale(self) -> float:
        """Standard error ``s`` of the window entropy under the reference."""
        return self._scale

    @property
    def lower(self) -> float:
        """Lower edge of the band, ``center - k * scale``."""
        return self._center - self.k * self._scale

    @property
    def upper(self) -> float:
        """Upper edge of the band, ``center + k * scale``."""
        return self._center + self.k * self._scale

    @property
    def learning_period(self) -> int:
        """Observations a fresh detector spends learning its reference."""
        return self.reference_size

    @property
    def is_learning(self) -> bool:
        return self._ref_n < self.reference_size

    @property
    def quiet_period(self) -> int:
        """The reference being counted: no window before it is full."""
        return self.reference_size

    admit = staticmethod(category_key)

    # -- snapshots -------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "window_size": self.window_size,
            "reference_size": self.reference_size,
            "k": self.k,
            "direction": self.direction,
        }

    def _get_state(self) -> dict[str, Any]:
        return {
            "ref_n": self._ref_n,
            "ref_counts": [[key, c] for key, c in self._ref_counts.items()],
            "ref_entropy": json_float(self._ref_entropy),
            "center": json_float(self._center),
            "scale": json_float(self._scale),
            "window": self._window(),
            "entropy": json_float(self._entropy),
            "z": json_float(self._z),
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        ref_n = get_int(state, "ref_n")
        require(ref_n <= self.reference_size, "ref_n", "exceeds reference_size")
        ref_counts: dict[str, int] = {}
        for key, c in state["ref_counts"]:
            if not isinstance(key, str) or isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError("ref_counts must be [str, positive int] pairs")
            ref_counts[key] = c
        if sum(ref_counts.values()) != (ref_n if ref_n < self.reference_size else 0):
            raise ValueError("ref_counts do not add up to ref_n")
        window = state["window"]
        if not isinstance(window, list) or not all(isinstance(k, str) for k in window):
            raise ValueError("window must be a list of str")
        if len(window) > self.window_size or (window and ref_n < self.reference_size):
            raise ValueError("window is too long or present while learning")
        center, scale = get_float_or_nan(state, "center"), get_float_or_nan(state, "scale")
        learned = ref_n == self.reference_size
        if learned != (math.isfinite(center) and math.isfinite(scale) and scale > 0):
            raise ValueError("center/scale must be set exactly when the reference is learned")
        self._ref_n = ref_n
        self._ref_counts = ref_counts
        self._ref_entropy = get_float_or_nan(state, "ref_entropy")
        self._center = center
        self._scale = scale
        self._clear_window()
        table = self._table
        ring = array("H" if self.window_size < 2**16 else "L", bytes(0))
        for key in window:
            code = self._code.get(key)
            if code is None:
                code = self._new_code(key)
            c = self._counts[code]
            self._counts[code] = c + 1
            self._sum += table[c + 1] - table[c]
            ring.append(code)
        self._ring = ring if window else None
        self._held = len(window)
        self._pos = self._held % self.window_size
        self._entropy = get_float_or_nan(state, "entropy")
        self._z = get_float_or_nan(state, "z")
