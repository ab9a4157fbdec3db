"""The driver of a column path over a detector's own window loop.

``categorical_drift``, ``entropy`` and ``rolling_threshold`` run a column through a
``_consume`` loop that holds their window in local variables; their references are
learned value by value. What is around that loop is the same for the three (and the
admitting part for ``categorical_sr``): admit the column up to the first value
``update`` would refuse, alternate learning and consuming, and refuse that value
after the ones before it were taken, as one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

__all__ = ["admitted", "consume_column"]


class _Windowed(Protocol):
    drift_detected: bool

    def update(self, x: Any) -> Any: ...

    def _learning(self) -> bool: ...

    def _learn(self, value: Any) -> None: ...

    def _consume(self, values: list[Any], i: int) -> int: ...


def admitted(values: Iterable[Any], admit: Callable[[Any], Any]) -> tuple[Sequence[Any], list[Any]]:
    """``values`` as a sequence, and each as ``admit`` gives it up to the first one it
    refuses (``update`` is to raise for that one once the ones before it are taken)."""
    seq = values if isinstance(values, list | tuple) else list(values)
    taken: list[Any] = []
    try:
        for x in seq:
            taken.append(admit(x))
    except Exception:  # taken up to here
        pass
    return seq, taken


def consume_column(
    detector: _Windowed, values: Iterable[Any], admit: Callable[[Any], Any]
) -> list[int]:
    """``update_many`` of a windowed detector: equal to ``update`` on each value in
    turn, its reference learned value by value, its window fed by ``_consume`` (which
    stops after a detection); the indices of the detections."""
    seq, taken = admitted(values, admit)
    hits: list[int] = []
    i, n = 0, len(taken)
    while i < n:
        detector.drift_detected = False
        if detector._learning():
            detector._learn(taken[i])
            i += 1
            continue
        i = detector._consume(taken, i)
        if detector.drift_detected:
            hits.append(i - 1)
    if n < len(seq):
        detector.update(seq[n])  # raises, as one by one
    return hits
