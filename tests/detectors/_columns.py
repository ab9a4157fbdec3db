"""Columns against one by one: the shared checks of the detectors' column paths."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from detectors.base import DriftDetector


def one_by_one(detector: DriftDetector[Any], values: Sequence[Any]) -> list[int]:
    """The detections of ``update`` on each value in turn."""
    return [k for k, x in enumerate(values) if detector.update(x).drift_detected]


def in_columns(
    detector: DriftDetector[Any], values: Sequence[Any], sizes: Sequence[int]
) -> list[int]:
    """The detections of ``update_many`` over ``values`` cut into columns of ``sizes``
    (cycled)."""
    hits: list[int] = []
    start, cut = 0, 0
    while start < len(values):
        size = sizes[cut % len(sizes)]
        hits += [start + k for k in detector.update_many(values[start : start + size])]
        start, cut = start + size, cut + 1
    return hits


def same_state(a: DriftDetector[Any], b: DriftDetector[Any]) -> bool:
    """Every attribute equal, floats bit for bit (NaN and -inf included)."""
    return repr(vars(a)) == repr(vars(b))


def assert_refused_where_one_by_one_stops(
    make: Callable[[], DriftDetector[Any]],
    values: Sequence[Any],
    bad: int,
    error: type[Exception],
) -> None:
    """A column holding a refused value at ``bad`` raises what ``update`` raises for
    it, after taking the values before it, as one by one does."""
    one, column = make(), make()
    for x in values[:bad]:
        one.update(x)
    with pytest.raises(error):
        one.update(values[bad])
    with pytest.raises(error):
        column.update_many(values)
    assert same_state(column, one)
