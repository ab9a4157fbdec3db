"""Shiryaev-Roberts procedure on category counts: a sequential test of a mix shift."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from detectors._columns import admitted
from detectors._parse import category_key, check_positive_float, check_positive_int, get_int
from detectors._sr_columns import Starts, advance, log_sum
from detectors.base import DriftDetector, InputKind, register, require

__all__ = ["CategoricalSR"]

_PRIOR = 0.5
"""Jeffreys pseudo-count per cell of the reference's own Dirichlet posterior."""
_COLUMN_MIN = 32
"""Shorter runs go one by one: the column path's set-up costs more than it saves."""
_COLUMN_MAX = 1024
"""Values offered to the column path at once: its arrays are (starts alive over the
run) x (run length), and a start opens every ``stride`` values."""
_MAX_LOG = 700.0
"""``statistic`` is ``exp`` of at most this (finite in a float)."""


@register
class CategoricalSR(DriftDetector[Any]):
    r"""Sequential test of a category mix against a reference: Shiryaev-Roberts on a
    Dirichlet-mixture likelihood ratio.

    The first ``reference_size`` observations are the reference: its
    ``max_categories`` most frequent categories (ties by key) get a cell each, one
    more cell collects the rest and every unseen category, with reference counts
    :math:`r_j` (:math:`M` in all, :math:`K` cells). Afterwards a new *start* opens
    every ``stride`` observations (the newest ``max_starts`` are kept, so a start's life
    is bounded). With :math:`c_j` the cell counts a start has seen (:math:`C` in all)
    and :math:`d_j` those of every observation since the detector (re)started
    (:math:`D`), the next observation in cell :math:`x` multiplies the start's
    likelihood ratio by

    .. math::

        \frac{(b_x + c_x) / (\kappa + C)}{(r_x + d_x + 1/2) / (M + D + K/2)}, \qquad
        b_j = \kappa \frac{r_j + 1/2}{M + K/2}:

    the predictive probability of a mix that may have moved since the start (a
    Dirichlet of concentration :math:`\kappa` = ``concentration`` around the reference
    mix) over the predictive probability of one unchanged mix given the reference and
    everything seen since (its Dirichlet posterior, which keeps learning, so the
    reference's own sampling error does not read as a shift for ever).
    Each start's product is a mixture sequential probability ratio (mSPRT, Robbins
    1970; Johari et al. 2017). The statistic is their sum
    :math:`R = \sum_k \Lambda_k`, the Shiryaev-Roberts statistic over the starts
    kept, and drift is detected when :math:`R \ge A = ` ``arl0 / stride + 1``. Why
    that level: under no change every :math:`\Lambda_k` is a martingale of mean 1
    (under the reference's posterior), so with a start every ``stride``
    observations :math:`R` minus the number of starts opened is a martingale, and
    stopping at :math:`A` takes at least ``stride * (A - 1)`` = ``arl0`` observations
    on average (optional stopping, as in Pollak 1987); dropping starts
    only makes :math:`R` smaller. So ``arl0`` is a lower bound of the mean
    observations between false alarms, not a tuning knob — exactly so on average over
    mixes drawn from the reference's posterior, approximately for one fixed mix (on
    5-class streams, a reference of 2,000, ``concentration`` 100: ARL0 3,057 at
    ``arl0`` 1,000, 13,370 at 10,000). After a detection the
    starts are dropped (the reference is kept).

    ``concentration`` sets which shifts are found fastest: about those whose
    chi-square distance from the reference mix is ``1 / concentration`` or more.

    Memory: O((``max_starts`` + 1) x K) counts, plus the reference's distinct categories
    while it is learned (at most ``reference_size``).

    Parameters
    ----------
    reference_size
        Observations that make the reference mix (>= 1).
    arl0
        The least mean number of observations between false alarms (> 1); the
        alarm level of :math:`R` is ``arl0 / stride + 1``.
    concentration
        Dirichlet concentration of the alternative mixes (> 0).
    stride
        Observations between starts (>= 1).
    max_starts
        Starts kept (>= 1).
    max_categories
        Reference categories with a cell of their own (>= 1).

    Examples
    --------
    Five classes; 10 % of the mass moves from the most frequent class to the two
    rarest after observation 3,000 (a total-variation distance of 0.10):

    >>> import numpy as np
    >>> from detectors.categorical_sr import CategoricalSR
    >>> rng = np.random.default_rng(4)
    >>> before = rng.choice(5, size=3000, p=[0.45, 0.25, 0.15, 0.10, 0.05])
    >>> after = rng.choice(5, size=1000, p=[0.35, 0.25, 0.15, 0.15, 0.10])
    >>> detector = CategoricalSR(reference_size=2000, arl0=1e5)
    >>> for i, label in enumerate([*before.tolist(), *after.tolist()]):
    ...     _ = detector.update(label)
    ...     if detector.drift_detected:
    ...         print(f"drift at {i}: R = {detector.statistic:.3g}")
    ...         break
    drift at 3186: R = 2.27e+03
    """

    name: ClassVar[str] = "categorical_sr"
    copies_by_reset: ClassVar[bool] = True
    column_path: ClassVar[bool] = True
    input_kind: ClassVar[InputKind] = "categorical"
    state_version: ClassVar[int] = 1
    threshold_param: ClassVar[str | None] = "arl0"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self,
        reference_size: int = 2000,
        arl0: float = 1e5,
        concentration: float = 50.0,
        stride: int = 50,
        max_starts: int = 20,
        max_categories: int = 20,
    ) -> None:
        super().__init__()
        self.reference_size = check_positive_int(reference_size, "reference_size")
        self.arl0 = check_positive_float(arl0, "arl0")
        require(self.arl0 > 1, "arl0", f"must be > 1, got {arl0!r}")
        self.concentration = check_positive_float(concentration, "concentration")
        self.stride = check_positive_int(stride, "stride")
        self.max_starts = check_positive_int(max_starts, "max_starts")
        self.max_categories = check_positive_int(max_categories, "max_categories")
        self._log_threshold = math.log(self.arl0 / self.stride + 1.0)
        self.reset()

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._ref_counts: dict[str, int] = {}
        self._ref_n = 0
        self._cells: dict[str, int] = {}
        self._reference: list[int] = []
        self._null: list[float] = []
        self._null_base = 0.0
        self._alt: list[float] = []
        self._restart()

    def _restart(self) -> None:
        self._since = 0
        self._seen = [0] * len(self._reference)
        """Cell counts of every observation since the (re)start: the null learns them."""
        # the starts, oldest first, as three parallel lists (no tuple per start and event)
        self._opened: list[int] = []
        """Observation each start opened at."""
        self._rows: list[list[int]] = []
        """Cell counts each start has seen."""
        self._logs: list[float] = []
        """Log likelihood ratio of each start."""
        self._log_r = -math.inf
        self._log_r_due = False
        """``_log_r`` is to be summed from ``_logs`` when read (:meth:`_evidence`)."""

    def _build(self, counts: Mapping[str, int]) -> None:
        order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        top = order[: self.max_categories]
        reference = [c for _, c in top]
        reference.append(sum(c for _, c in order[self.max_categories :]))
        self._set_cells([k for k, _ in top], reference)

    def _set_cells(self, keys: list[str], reference: list[int]) -> None:
        self._cells = {key: i for i, key in enumerate(keys)}
        self._reference = reference
        cells = len(reference)
        total = sum(reference) + _PRIOR * cells
        self._null_base = total  # predictive (r_x + 1/2 + d_x) / (M + K/2 + D)
        self._null = [r + _PRIOR for r in reference]
        self._alt = [self.concentration * (r + _PRIOR) / total for r in reference]
        self._restart()

    # -- the per-event path ---------------------------------------------------
    def update(self, x: Any) -> CategoricalSR:
        key = category_key(x)
        self.drift_detected = False
        if not self._reference:
            self._ref_counts[key] = self._ref_counts.get(key, 0) + 1
            self._ref_n += 1
            if self._ref_n == self.reference_size:
                learned, self._ref_counts = self._ref_counts, {}
                self._build(learned)
            return self
        cell = self._cells.get(key, len(self._reference) - 1)
        opened, rows, logs = self._opened, self._rows, self._logs
        since = self._since
        if since % self.stride == 0:
            opened.append(since)
            rows.append([0] * len(self._reference))
            logs.append(0.0)
            if len(opened) > self.max_starts:  # the oldest: R only gets smaller
                del opened[0], rows[0], logs[0]
        self._since = since + 1
        alt_x, kappa = self._alt[cell], self.concentration
        # the null's predictive: the reference and everything since the (re)start
        log = math.log
        log_null = log((self._null[cell] + self._seen[cell]) / (self._null_base + since))
        self._seen[cell] += 1
        for i, row in enumerate(rows):
            c = row[cell]
            logs[i] += log((alt_x + c) / (kappa + since - opened[i])) - log_null
            row[cell] = c + 1
        top = max(logs)
        if top + log(len(logs)) < self._log_threshold:
            # with n starts log R is at most the largest start's plus log n: R cannot
            # reach the threshold, and its exact sum waits until it is read (most
            # observations; summing is ~40 % of an update)
            self._log_r_due = True
            return self
        self._log_r_due = False
        self._log_r = log_sum(logs, top)
        if self._log_r >= self._log_threshold:
            self.drift_detected = True
            log_r = self._log_r
            self._restart()  # the evidence restarts; statistic keeps the detection's value
            self._log_r = log_r
        return self

    # -- the column path -------------------------------------------------------
    def update_many(self, values: Iterable[Any]) -> list[int]:
        """Equal to ``update`` on each value in turn: runs of steps that cannot reach
        the level go through :func:`detectors._sr_columns.advance` (exact), the
        others one by one. A value ``update`` refuses is refused after the values
        before it were taken, as one by one."""
        seq, keys = admitted(values, category_key)
        hits: list[int] = []
        i, n = 0, len(keys)
        reach = _COLUMN_MAX  # values offered at once: less after a detection cut a run short
        while i < n:
            if self._reference and n - i >= _COLUMN_MIN:
                offered = keys[i : i + reach]
                taken = self._advance(offered)
                i += taken
                if taken == len(offered):
                    reach = min(_COLUMN_MAX, 2 * reach)
                    continue
                reach = max(_COLUMN_MIN, 2 * taken)
            if self.update(keys[i]).drift_detected:  # one that needs the exact sum
                hits.append(i)
            i += 1
        if n < len(seq):
            self.update(seq[n])
        return hits

    def _advance(self, keys: list[str]) -> int:
        cells, other = self._cells, len(self._reference) - 1
        state = Starts(
            self._since,
            self._seen,
            self._opened,
            self._rows,
            self._logs,
            self._log_r,
            self._log_r_due,
        )
        taken = advance(
            state,
            [cells.get(key, other) for key in keys],
            alt=self._alt,
            null=self._null,
            null_base=self._null_base,
            kappa=self.concentration,
            stride=self.stride,
            max_starts=self.max_starts,
            log_threshold=self._log_threshold,
        )
        if taken:
            self.drift_detected = False
            self._since, self._seen = state.since, state.seen
            self._opened, self._rows, self._logs = state.opened, state.rows, state.logs
            self._log_r, self._log_r_due = state.log_r, state.log_r_due
        return taken

    # -- evidence -------------------------------------------------------------
    @property
    def statistic(self) -> float:
        """:math:`R` after the last observation (at a detection, the value that
        crossed ``arl0``; NaN while the reference is learned)."""
        log_r = self._evidence()
        if log_r == -math.inf:
            return math.nan
        return math.exp(min(log_r, _MAX_LOG))

    def _evidence(self) -> float:
        r""":math:`\log R` of the last observation (summed now if ``update`` left it)."""
        if self._log_r_due:
            logs = self._logs
            self._log_r = log_sum(logs, max(logs))
            self._log_r_due = False
        return self._log_r

    @property
    def threshold(self) -> float:
        """The level :math:`R` is compared with, ``arl0 / stride + 1``."""
        return self.arl0 / self.stride + 1.0

    @property
    def reference_probabilities(self) -> dict[str, float]:
        """The reference mix per cell (``other``: the rest); empty while learning."""
        total = sum(self._reference)
        if not total:
            return {}
        names = [*self._cells, "other"]
        return {name: r / total for name, r in zip(names, self._reference, strict=True)}

    def learning_period(self) -> int:
        """Observations a fresh detector spends learning its reference."""
        return self.reference_size

    @property
    def quiet_period(self) -> int:
        """The reference being counted: no start opens before it is full."""
        return self.reference_size

    admit = staticmethod(category_key)

    # -- snapshots -------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "reference_size": self.reference_size,
            "arl0": self.arl0,
            "concentration": self.concentration,
            "stride": self.stride,
            "max_starts": self.max_starts,
            "max_categories": self.max_categories,
        }

    def _get_state(self) -> dict[str, Any]:
        return {
            "ref_n": self._ref_n,
            "ref_counts": [[k, c] for k, c in self._ref_counts.items()],
            "cells": list(self._cells),
            "reference": list(self._reference),
            "since": self._since,
            "seen": list(self._seen),
            "starts": [
                [opened, list(row), log_l]
                for opened, row, log_l in zip(self._opened, self._rows, self._logs, strict=True)
            ],
            "log_r": None if (log_r := self._evidence()) == -math.inf else log_r,
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        ref_n = get_int(state, "ref_n")
        require(ref_n <= self.reference_size, "ref_n", "exceeds reference_size")
        ref_counts: dict[str, int] = {}
        for key, c in state["ref_counts"]:
            if not isinstance(key, str) or isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError("ref_counts must be [str, positive int] pairs")
            ref_counts[key] = c
        cells, reference = state["cells"], state["reference"]
        if not (isinstance(cells, list) and all(isinstance(k, str) for k in cells)):
            raise ValueError("cells must be a list of str")
        if len(cells) > self.max_categories or len(set(cells)) != len(cells):
            raise ValueError("cells must be distinct and at most max_categories")
        if not isinstance(reference, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in reference
        ):
            raise ValueError("reference must be a list of counts")
        learning = ref_n < self.reference_size
        if learning:
            if sum(ref_counts.values()) != ref_n or cells or reference or state["starts"]:
                raise ValueError("a detector learning its reference has only ref_counts")
            self.reset()
            self._ref_counts, self._ref_n = ref_counts, ref_n
            return
        if ref_counts or len(reference) != len(cells) + 1 or sum(reference) != ref_n:
            raise ValueError("reference must count ref_n observations, one per cell + other")
        self._ref_n = ref_n
        self._ref_counts = {}
        self._set_cells(cells, reference)
        since = get_int(state, "since")
        starts = state["starts"]
        if not isinstance(starts, list) or len(starts) > self.max_starts:
            raise ValueError("starts must be a list of at most max_starts entries")
        self._since = since
        seen = state["seen"]
        if not isinstance(seen, list) or len(seen) != len(reference):
            raise ValueError("seen needs one count per cell")
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in seen):
            raise ValueError("seen counts must be non-negative ints")
        if sum(seen) != since:
            raise ValueError("seen counts must add up to since")
        self._seen = list(seen)
        previous = -1
        for entry in starts:
            opened, counts, log_l = entry
            ok = isinstance(opened, int) and not isinstance(opened, bool)
            if not (ok and previous < opened < max(since, 1) and opened % self.stride == 0):
                raise ValueError("starts must open at increasing multiples of stride before since")
            previous = opened
            if not isinstance(counts, list) or len(counts) != len(reference):
                raise ValueError("each start needs one count per cell")
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                raise ValueError("start counts must be non-negative ints")
            if sum(counts) != since - opened:
                raise ValueError("start counts do not match the observations since it opened")
            if isinstance(log_l, bool) or not isinstance(log_l, (int, float)):
                raise ValueError("start log-likelihood ratios must be numbers")
            if not math.isfinite(log_l):
                raise ValueError("start log-likelihood ratios must be finite")
            self._opened.append(opened)
            self._rows.append(list(counts))
            self._logs.append(float(log_l))
        log_r = state["log_r"]
        if log_r is None and self._opened:
            raise ValueError("log_r must be given when there are starts")
        if log_r is not None:
            if isinstance(log_r, bool) or not isinstance(log_r, (int, float)):
                raise ValueError("log_r must be a number")
            self._log_r = float(log_r)
