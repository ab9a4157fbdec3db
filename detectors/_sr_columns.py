"""The column path of :class:`detectors.categorical_sr.CategoricalSR`.

A class-mix update walks every start (20 by default): ~4.8 µs an observation, the
largest detector cost of the default set. Over a column the same arithmetic is
whole arrays: the counts each start has seen are prefix counts of the column, the
starts' ratios one matrix, their log ratios running sums. It stays *exact* — the
same floats as the per-event path, operation for operation: sums, differences and
quotients are IEEE in numpy as in Python, ``np.cumsum`` adds left to right as the
per-event ``+=`` does, and every logarithm is ``math.log`` of the same double (numpy's
``log`` may round differently, so it is not used): libm's ``log``, which ``math.log``
calls, over the whole array in one call of the C extension ``detectors._libm_log``
when it was built, else ``math.log`` value by value.

:func:`advance` runs the steps whose bound check leaves the sum for later (most of
them) and stops before the first step that would need it; the detector takes that
one step by its per-event path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

_log_into: Callable[[Any, Any], int] | None
try:
    from detectors._libm_log import log_into as _log_into
except ImportError:  # built without a compiler: math.log value by value
    _log_into = None

__all__ = ["NATIVE_LOG", "Starts", "advance", "log_sum"]

NATIVE_LOG = _log_into is not None
"""Whether the logarithms are taken by the C extension (else ``math.log`` per value)."""


@dataclass(slots=True)
class Starts:
    """A detector's evolving state, as :func:`advance` reads and leaves it."""

    since: int
    seen: list[int]
    opened: list[int]
    rows: list[list[int]]
    logs: list[float]
    log_r: float
    """The sum of the last step whose bound check needed it."""
    log_r_due: bool
    """Whether the last step left its sum for later."""


def log_sum(logs: list[float], top: float) -> float:
    r""":math:`\log \sum_k e^{l_k}` of the starts' log ratios (``top``: their largest)."""
    return top + math.log(math.fsum(math.exp(v - top) for v in logs))


def _logs_of(values: np.ndarray) -> np.ndarray:
    """``math.log`` of every value (the per-event path's logarithm, bit for bit)."""
    if _log_into is None:
        return np.fromiter(map(math.log, values.tolist()), np.float64, len(values))
    src = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty_like(src)
    done = 0
    while done < len(src):  # libm's log up to a value math.log must see (it may raise)
        done += _log_into(src[done:], out[done:])
        if done < len(src):
            out[done] = math.log(float(src[done]))
            done += 1
    return out


def advance(
    state: Starts,
    codes: list[int],
    *,
    alt: list[float],
    null: list[float],
    null_base: float,
    kappa: float,
    stride: int,
    max_starts: int,
    log_threshold: float,
) -> int:
    """Feed the cells ``codes`` while each step's bound keeps the sum below the level;
    update ``state`` to after the steps taken and return how many (``len(codes)`` at
    most; 0 when the first step needs the exact sum)."""
    n = len(codes)
    since0, cells = state.since, len(null)
    x = np.array(codes, dtype=np.intp)
    steps = np.arange(n)
    # prefix[k, t]: observations of cell k among the column's first t
    prefix = np.zeros((cells, n + 1), dtype=np.int64)
    np.cumsum(np.eye(cells, dtype=np.int64)[:, x], axis=1, out=prefix[:, 1:])
    before = prefix[x, steps]  # observations of x_t earlier in the column

    # The starts of the column: those held, then one every ``stride`` observations;
    # each opening beyond ``max_starts`` drops the oldest before its step's update.
    opened = list(state.opened)
    first = [0] * len(opened)  # the step each start's life in this column begins
    rows0 = [list(r) for r in state.rows]
    init = list(state.logs)
    end = [n] * len(opened)
    oldest = 0
    for t in range(-since0 % stride, n, stride):
        opened.append(since0 + t)
        first.append(t)
        rows0.append([0] * cells)
        init.append(0.0)
        end.append(n)
        if len(opened) - oldest > max_starts:
            end[oldest] = t
            oldest += 1
    starts = len(opened)
    a = np.array(first)
    b = np.array(end)
    alive = (steps[None, :] >= a[:, None]) & (steps[None, :] < b[:, None])

    since = (since0 + steps).astype(np.float64)
    null_arr = np.array(null)
    seen0 = np.array(state.seen, dtype=np.int64)
    log_null = _logs_of((null_arr[x] + (seen0[x] + before)) / (null_base + since))

    # each start's ratio at each step it lives: (alt_x + c) / (kappa + since - opened)
    jj, tt = np.nonzero(alive)
    xt = x[tt]
    rows = np.array(rows0, dtype=np.int64).reshape(starts, cells)
    counts = rows[jj, xt] + (before[tt] - prefix[xt, a[jj]])
    ratio = (np.array(alt)[xt] + counts) / ((kappa + since[tt]) - np.array(opened, float)[jj])
    # logs[i] += log(ratio) - log_null, as running sums from each start's first value
    steps_of = np.zeros((starts, n + 1))
    steps_of[np.arange(starts), a] = init
    steps_of[jj, tt + 1] = _logs_of(ratio) - log_null[tt]
    running = np.cumsum(steps_of, axis=1)[:, 1:]  # each start's log ratio after step t

    # the bound check of every step: top + log(starts alive) < level, else the exact
    # sum (as ``update`` computes it) decides; a detection is left to ``update``
    top = np.where(alive, running, -np.inf).max(axis=0)
    log_alive = np.array([math.log(k) if k else -math.inf for k in range(starts + 1)])
    below = top + log_alive[alive.sum(axis=0)] < log_threshold
    taken, log_r, last = n, state.log_r, -1
    for t in np.flatnonzero(~below).tolist():
        logs_t = running[alive[:, t], t].tolist()
        summed = log_sum(logs_t, max(logs_t))
        if summed >= log_threshold:
            taken = t
            break
        log_r, last = summed, t
    if taken == 0:
        return 0
    state.log_r, state.log_r_due = log_r, last != taken - 1

    keep = [j for j in range(starts) if first[j] < taken and end[j] > taken - 1]
    rows_after = rows + (prefix[:, taken][None, :] - prefix[:, a].T)
    state.since = since0 + taken
    state.seen = (seen0 + prefix[:, taken]).tolist()
    state.opened = [opened[j] for j in keep]
    state.rows = rows_after[keep].tolist()
    state.logs = running[keep, taken - 1].tolist()
    return taken
