"""Chi-square test of a sliding window's category mix against a reference distribution."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from detectors._columns import consume_column
from detectors._parse import (
    category_key,
    check_fraction,
    check_positive_float,
    check_positive_int,
    get_int,
)
from detectors._stats import chi2_isf, chi2_sf
from detectors.base import DriftDetector, InputKind, register, require

__all__ = ["CategoricalDrift"]

_SCALE = 1 << 40
"""Fixed-point scale of ``1 / p``: the running chi-square sum is an exact integer."""
_MAX_UNSEEN_EXAMPLES = 10


@register
class CategoricalDrift(DriftDetector[Any]):
    r"""Pearson chi-square test of the last ``window_size`` categories against a reference.

    The reference distribution is given (``reference``: category -> weight, e.g.
    training-set class counts) or learned from the first ``reference_size``
    observations. Its ``max_categories`` most frequent categories (ties broken by
    key) get a cell each; one more cell, ``other``, collects the rest of the reference
    and every category the reference never saw. Reference cell probabilities are
    floored at ``min_expected / window_size`` (at most half a uniform share) and
    renormalised, so every cell expects about ``min_expected`` observations per window: a single unseen category then
    adds little to the statistic while a recurring one is found quickly.

    With window counts ``O_i`` and ``n = window_size``, the statistic is
    ``X^2 = sum_i O_i^2 / (n p_i) - n``, maintained exactly in O(1) per observation
    (integer fixed-point running sum). Once the window is full every observation is
    a check: drift is detected when ``X^2`` exceeds the critical value
    ``chi2_isf(alpha, cells - 1)``, i.e. when the test's p-value is below ``alpha``.
    ``alpha`` is a per-check level; the checks are sequential and overlapping, so
    choose it with :func:`detectors.calibrate` for a stated false-alarm rate. After a
    detection the window is emptied (the reference is kept).

    Evidence (all about the last full window checked): ``statistic`` (``X^2``),
    ``threshold`` (the critical value), ``p_value``, ``psi`` (population stability
    index with add-half smoothed window proportions), ``js_distance`` (Jensen-Shannon
    distance, base 2, in [0, 1]), ``unseen_count`` (window observations whose category
    the reference never saw), ``unseen_total`` and ``unseen_categories`` (the last
    distinct unseen keys, at most 10).

    Categories are ``str``, ``int`` or ``bool`` (and whole floats), counted by the
    key of :func:`detectors._parse.category_key`.

    Memory: O(window_size + R), R the number of distinct reference categories (at
    most ``reference_size`` when learned; the top ``max_categories`` get counters, the
    others are only remembered as known). The window is a ring of cell codes, one
    byte each (two past 254 cells), allocated with its first value.

    Parameters
    ----------
    window_size
        Observations per test window (>= 2).
    reference
        Category -> non-negative weight (counts or probabilities); ``None`` learns it.
    reference_size
        Observations that make the learned reference (ignored when ``reference`` is given).
    max_categories
        Number of reference categories with a cell of their own (>= 1).
    alpha
        Per-check significance level, in (0, 1); the alarm threshold.
    min_expected
        Floor of every cell's expected count per window (> 0).

    Examples
    --------
    Three classes in proportions 60/30/10, then the third class takes over:

    >>> import numpy as np
    >>> from detectors.categorical_drift import CategoricalDrift
    >>> rng = np.random.default_rng(11)
    >>> before = rng.choice(["cat", "dog", "bird"], size=4000, p=[0.6, 0.3, 0.1])
    >>> after = rng.choice(["cat", "dog", "bird"], size=1000, p=[0.45, 0.3, 0.25])
    >>> detector = CategoricalDrift(reference={"cat": 6, "dog": 3, "bird": 1},
    ...                             window_size=300, alpha=1e-6)
    >>> for i, label in enumerate([*before, *after]):
    ...     _ = detector.update(str(label))
    ...     if detector.drift_detected:
    ...         print(f"drift at {i}: chi2 {detector.statistic:.1f} > "
    ...               f"{detector.threshold:.1f}, p {detector.p_value:.1e}, "
    ...               f"psi {detector.psi:.3f}")
    ...         break
    drift at 4116: chi2 32.4 > 30.7, p 4.4e-07, psi 0.079
    """

    name: ClassVar[str] = "categorical_drift"
    copies_by_reset: ClassVar[bool] = True
    column_path: ClassVar[bool] = True
    input_kind: ClassVar[InputKind] = "categorical"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "alpha"
    threshold_increases_run_length: ClassVar[bool] = False

    def __init__(
        self,
        window_size: int = 500,
        reference: Mapping[str, float] | None = None,
        reference_size: int = 2000,
        max_categories: int = 50,
        alpha: float = 1e-5,
        min_expected: float = 1.0,
    ) -> None:
        super().__init__()
        self.window_size = check_positive_int(window_size, "window_size", minimum=2)
        self.reference_size = check_positive_int(reference_size, "reference_size")
        self.max_categories = check_positive_int(max_categories, "max_categories")
        self.alpha = check_fraction(alpha, "alpha")
        self.min_expected = check_positive_float(min_expected, "min_expected")
        self.reference: dict[str, float] | None = None
        if reference is not None:
            require(isinstance(reference, Mapping), "reference", "must be a mapping or None")
            ref: dict[str, float] = {}
            for key, weight in reference.items():
                require(isinstance(key, str), "reference", f"keys must be str, got {key!r}")
                ok = isinstance(weight, (int, float)) and not isinstance(weight, bool)
                ok = ok and math.isfinite(weight) and weight >= 0
                require(ok, "reference", f"weight of {key!r} must be finite and >= 0")
                ref[key] = float(weight)
            require(sum(ref.values()) > 0, "reference", "weights must not all be zero")
            self.reference = ref
        self.reset()

    # -- setting up the cells --------------------------------------------------
    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._ref_counts: dict[str, int] = {}
        self._ref_n = 0
        self._cells: dict[str, int] = {}
        self._known: set[str] = set()
        self._probs: list[float] = []
        self._inv: list[int] = []
        self._set_critical(math.nan)
        self._clear_window()
        self._checked: list[int] | None = None
        self._checked_unseen = 0
        self._unseen_total = 0
        self._unseen_recent: list[str] = []
        if self.reference is not None:
            self._build(self.reference)

    def _clear_window(self) -> None:
        self._ring: array[int] | None = None  # cell codes, allocated with the first
        self._held = 0
        self._pos = 0
        """The ring's next write (its oldest code once it is full)."""
        self._counts = [0] * (len(self._probs) + 1)  # last slot: unseen within "other"
        self._q = 0

    def _new_ring(self) -> array[int]:
        return array("B" if len(self._probs) < 255 else "H", bytes(0))

    def _window(self) -> list[int]:
        """The window's cell codes, oldest first."""
        ring = self._ring
        if ring is None:
            return []
        pos = self._pos if self._held == self.window_size else 0
        return ring[pos:].tolist() + ring[:pos].tolist()

    def _build(self, weights: Mapping[str, float]) -> None:
        order = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
        order = [kv for kv in order if kv[1] > 0]
        top = order[: self.max_categories]
        total = math.fsum(w for _, w in order)
        probs = [w / total for _, w in top]
        probs.append(max(0.0, 1.0 - math.fsum(probs)))  # "other"
        floor = min(self.min_expected / self.window_size, 0.5 / len(probs))
        probs = [max(p, floor) for p in probs]
        norm = math.fsum(probs)
        self._set_cells([k for k, _ in top], [p / norm for p in probs], [k for k, _ in order])

    def _set_cells(self, top: list[str], probs: list[float], known: Iterable[str]) -> None:
        self._cells = {key: i for i, key in enumerate(top)}
        self._known = set(known)
        self._probs = probs
        self._inv = [round(_SCALE / p) for p in probs]
        self._set_critical(chi2_isf(self.alpha, len(probs) - 1))
        self._clear_window()

    # -- the per-event and column paths ------------------------------------------
    def update(self, x: Any) -> CategoricalDrift:
        """One value (the per-event path, kept apart from :meth:`_consume`'s column
        loop: a call per value pays no loop set-up; the column path is tested equal)."""
        key = category_key(x)
        self.drift_detected = False
        if not self._probs:
            self._learn(key)
            return self
        other = len(self._probs) - 1
        code = self._cells.get(key)
        if code is None:
            if key in self._known:
                code = other
            else:
                code = other + 1
                self._unseen(key)
        counts = self._counts
        inv = self._inv
        cell = other if code > other else code
        o = counts[cell]
        self._q += (2 * o + 1) * inv[cell]
        counts[cell] = o + 1
        if code > other:
            counts[-1] += 1
        ring = self._ring
        if ring is None:
            ring = self._ring = self._new_ring()
        pos = self._pos
        if self._held < self.window_size:
            ring.append(code)
            self._held += 1
        else:
            old = ring[pos]
            ring[pos] = code
            cell = other if old > other else old
            o = counts[cell]
            self._q += (1 - 2 * o) * inv[cell]
            counts[cell] = o - 1
            if old > other:
                counts[-1] -= 1
        self._pos = 0 if pos + 1 == self.window_size else pos + 1
        if self._held == self.window_size and self._q > self._critical_q:
            self.drift_detected = True
            self._checked = counts
            self._checked_unseen = counts[-1]
            self._clear_window()
        return self

    def update_many(self, values: Iterable[Any]) -> list[int]:
        """Equal to ``update`` on each value in turn, with the window's counts held in
        local variables over the column (:meth:`_consume`; driven by
        :func:`detectors._columns.consume_column`)."""
        return consume_column(self, values, category_key)

    def _learning(self) -> bool:
        return not self._probs

    def _learn(self, key: str) -> None:
        self._ref_counts[key] = self._ref_counts.get(key, 0) + 1
        self._ref_n += 1
        if self._ref_n == self.reference_size:
            weights = {k: float(c) for k, c in self._ref_counts.items()}
            self._ref_counts = {}
            self._build(weights)

    def _consume(self, keys: list[str], i: int) -> int:
        """Count ``keys[i:]`` into the window until one completes a drifting window
        (then set the flag and clear the window); the index after the last taken."""
        other = len(self._probs) - 1
        cells, known, counts, inv = self._cells, self._known, self._counts, self._inv
        w, critical = self.window_size, self._critical_q
        ring = self._ring
        if ring is None:
            ring = self._ring = self._new_ring()
        q, pos, held = self._q, self._pos, self._held
        n = len(keys)
        while i < n:
            key = keys[i]
            i += 1
            code = cells.get(key)
            if code is None:
                if key in known:
                    code = other
                else:
                    code = other + 1
                    self._unseen(key)
            cell = other if code > other else code
            o = counts[cell]
            q += (2 * o + 1) * inv[cell]
            counts[cell] = o + 1
            if code > other:
                counts[-1] += 1
            if held < w:
                ring.append(code)
                held += 1
            else:
                old = ring[pos]
                ring[pos] = code
                cell = other if old > other else old
                o = counts[cell]
                q += (1 - 2 * o) * inv[cell]
                counts[cell] = o - 1
                if old > other:
                    counts[-1] -= 1
            pos = 0 if pos + 1 == w else pos + 1
            if held == w and q > critical:
                self.drift_detected = True
                self._checked = counts
                self._checked_unseen = counts[-1]
                self._clear_window()
                return i
        self._q, self._pos, self._held = q, pos, held
        return i

    def _unseen(self, key: str) -> None:
        """A category the reference never saw: counted, and kept as an example."""
        self._unseen_total += 1
        recent = self._unseen_recent
        if key in recent:
            recent.remove(key)
        elif len(recent) >= _MAX_UNSEEN_EXAMPLES:
            del recent[0]
        recent.append(key)

    def _set_critical(self, critical: float) -> None:
        self._critical = critical
        # X^2 > c  <=>  Q / (S n) - n > c  <=>  Q > (c + n) n S: compared every update
        n = self.window_size
        self._critical_q = (critical + n) * n * _SCALE

    # -- evidence -------------------------------------------------------------
    def _evidence_counts(self) -> list[int] | None:
        if self._held == self.window_size:
            return self._counts
        return self._checked

    @property
    def statistic(self) -> float:
        """Chi-square statistic of the last full window checked (NaN before one)."""
        counts = self._evidence_counts()
        if counts is None:
            return math.nan
        n = self.window_size
        q = sum(o * o * inv for o, inv in zip(counts, self._inv, strict=False))
        return q / (_SCALE * n) - n

    @property
    def threshold(self) -> float:
        """Critical value ``chi2_isf(alpha, cells - 1)`` (NaN while learning)."""
        return self._critical

    @property
    def p_value(self) -> float | None:
        stat = self.statistic
        if math.isnan(stat):
            return None
        return chi2_sf(max(stat, 0.0), len(self._probs) - 1)

    @property
    def degrees_of_freedom(self) -> int:
        return max(len(self._probs) - 1, 0)

    def _window_probs(self, smoothing: float) -> list[float] | None:
        counts = self._evidence_counts()
        if counts is None:
            return None
        cells = len(self._probs)
        total = self.window_size + smoothing * cells
        return [(o + smoothing) / total for o in counts[:cells]]

    @property
    def psi(self) -> float:
        """Population stability index ``sum (q - p) ln(q / p)``, ``q`` add-half smoothed."""
        q = self._window_probs(0.5)
        if q is None:
            return math.nan
        return math.fsum(
            (qi - pi) * math.log(qi / pi) for qi, pi in zip(q, self._probs, strict=True)
        )

    @property
    def js_distance(self) -> float:
        """Jensen-Shannon distance (base 2) between window and reference cells."""
        q = self._window_probs(0.0)
        if q is None:
            return math.nan
        div = 0.0
        for qi, pi in zip(q, self._probs, strict=True):
            m = 0.5 * (qi + pi)
            if qi > 0:
                div += 0.5 * qi * math.log2(qi / m)
            div += 0.5 * pi * math.log2(pi / m)
        return math.sqrt(max(div, 0.0))

    @property
    def unseen_count(self) -> int:
        """Observations of never-seen categories in the last full window checked."""
        if self._held == self.window_size:
            return self._counts[-1]
        return self._checked_unseen

    @property
    def unseen_total(self) -> int:
        """Observations of never-seen categories since the reference was set."""
        return self._unseen_total

    @property
    def unseen_categories(self) -> list[str]:
        """The most recent distinct never-seen categories (at most 10, oldest first)."""
        return list(self._unseen_recent)

    @property
    def categories(self) -> list[str]:
        """Categories with a cell of their own, in cell order (``other`` comes last)."""
        return list(self._cells)

    @property
    def reference_probabilities(self) -> dict[str, float]:
        """Floored, renormalised reference probability per cell (``"<other>"`` last)."""
        out = dict(zip(self._cells, self._probs, strict=False))
        if self._probs:
            out["<other>"] = self._probs[-1]
        return out

    @property
    def learning_period(self) -> int:
        """Observations a fresh detector spends learning its reference (0 if given)."""
        return 0 if self.reference is not None else self.reference_size

    @property
    def quiet_period(self) -> int:
        """The reference being counted (none when it was given), but its last
        observation, which sets the threshold."""
        return max(self.learning_period - 1, 0)

    admit = staticmethod(category_key)

    # -- snapshots -------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "window_size": self.window_size,
            "reference": None if self.reference is None else dict(self.reference),
            "reference_size": self.reference_size,
            "max_categories": self.max_categories,
            "alpha": self.alpha,
            "min_expected": self.min_expected,
        }

    def _get_state(self) -> dict[str, Any]:
        learned = self.reference is None
        return {
            "ref_n": self._ref_n,
            "ref_counts": [[k, c] for k, c in self._ref_counts.items()],
            # A given reference is rebuilt from the params; a learned one is stored.
            "cells": list(self._cells) if learned else None,
            "probs": list(self._probs) if learned else None,
            "known": sorted(self._known) if learned else None,
            "window": self._window(),
            "checked": self._checked,
            "checked_unseen": self._checked_unseen,
            "unseen_total": self._unseen_total,
            "unseen_recent": list(self._unseen_recent),
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        ref_n = get_int(state, "ref_n")
        ref_counts: dict[str, int] = {}
        for key, c in state["ref_counts"]:
            if not isinstance(key, str) or isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError("ref_counts must be [str, positive int] pairs")
            ref_counts[key] = c
        if self.reference is None:
            require(ref_n <= self.reference_size, "ref_n", "exceeds reference_size")
            learning = ref_n < self.reference_size
            if sum(ref_counts.values()) != (ref_n if learning else 0):
                raise ValueError("ref_counts do not add up to ref_n")
            if not learning:
                cells, probs, known = state["cells"], state["probs"], state["known"]
                if not (isinstance(cells, list) and all(isinstance(k, str) for k in cells)):
                    raise ValueError("cells must be a list of str")
                if not (isinstance(known, list) and all(isinstance(k, str) for k in known)):
                    raise ValueError("known must be a list of str")
                if not isinstance(probs, list) or len(probs) != len(cells) + 1:
                    raise ValueError("probs must have one entry per cell plus 'other'")
                floats = [float(p) for p in probs]
                if not all(math.isfinite(p) and p > 0 for p in floats):
                    raise ValueError("probs must be finite and > 0")
                if len(cells) > self.max_categories or len(set(cells)) != len(cells):
                    raise ValueError("cells must be distinct and at most max_categories")
                self._set_cells(cells, floats, known)
            else:
                self._cells, self._known, self._probs, self._inv = {}, set(), [], []
                self._set_critical(math.nan)
                self._clear_window()
        elif ref_n or ref_counts:
            raise ValueError("a detector with a given reference has no learning state")
        self._ref_n = ref_n
        self._ref_counts = ref_counts
        window = state["window"]
        codes = len(self._probs) + 1
        if not isinstance(window, list) or len(window) > self.window_size:
            raise ValueError("window must be a list of at most window_size cell codes")
        if window and not self._probs:
            raise ValueError("no window while the reference is learned")
        other = len(self._probs) - 1
        self._clear_window()
        ring = self._new_ring()
        for code in window:
            if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code < codes:
                raise ValueError(f"bad cell code {code!r}")
            cell = other if code > other else code
            o = self._counts[cell]
            self._q += (2 * o + 1) * self._inv[cell]
            self._counts[cell] = o + 1
            if code > other:
                self._counts[-1] += 1
            ring.append(code)
        self._ring = ring if window else None
        self._held = len(window)
        self._pos = self._held % self.window_size
        checked = state["checked"]
        if checked is not None:
            ok = isinstance(checked, list) and len(checked) == codes
            ok = ok and all(isinstance(c, int) and not isinstance(c, bool) for c in checked)
            if not ok or sum(checked[:-1]) != self.window_size:
                raise ValueError("checked must be the counts of one full window")
        self._checked = None if checked is None else list(checked)
        self._checked_unseen = get_int(state, "checked_unseen")
        self._unseen_total = get_int(state, "unseen_total")
        recent = state["unseen_recent"]
        if not isinstance(recent, list) or not all(isinstance(k, str) for k in recent):
            raise ValueError("unseen_recent must be a list of str")
        self._unseen_recent = list(recent[-_MAX_UNSEEN_EXAMPLES:])
