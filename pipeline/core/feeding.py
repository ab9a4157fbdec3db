"""Feeding a key's detector the values a batch routed to it.

:func:`feed_column` feeds one key's column of a batch: column-wise through
``update_many`` when that is provably the same as feeding the values one by one,
else one by one. :func:`feed_rows` feeds a route's few events row after row, each value to its
key, without a column's set-up (with thousands of models a batch holds about one
value per key).
Both return the findings where the detector fired (:func:`~pipeline.core.monitor.finding_for`)
and keep the key's alert window (start, count, open incident).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

import detectors
from detectors.learning import Learning
from pipeline.core.eventtime import from_micros
from pipeline.core.monitor import Finding, KeyState, Observer, Origin, Update, finding_for
from pipeline.core.quarantine import Quarantine

__all__ = ["COLUMN_MIN", "Where", "feed_column", "feed_rows", "quarantine_key"]

COLUMN_MIN: Final = 8
"""Fewest values routed to one detector in a batch for the column-wise path."""

Where = Callable[[int], tuple[int, Origin, "dict[str, Any] | None"]]
"""Position of a value in a column -> (event time, origin, extra evidence) of its event."""


def feed_column(
    state: KeyState,
    values: Sequence[Any],
    where: Where,
    stats: dict[str, int],
    observer: Observer | None = None,
    quarantine: Quarantine | None = None,
) -> list[tuple[int, Finding]]:
    """Feed ``values`` to ``state``'s detector in order; the findings by position.

    Column-wise (``update_many``) when the detector asks for it (``column_path``),
    the column is long enough (``COLUMN_MIN``, and the detector's ``column_min``),
    detector warnings are not mapped to alerts and no open key reaches
    ``resolve_after`` quiet observations within the column: if no drift shows up, the window bookkeeping follows from the count alone and ``where`` is asked
    about the first value only. Otherwise — a drift (whose evidence is the
    detector's state *at* that event) or a value the detector refuses — the
    detector is put back as it was and the values are fed one by one, which is by
    definition what a per-record run does.

    With a ``quarantine``, a value whose update raises anything but the
    ``TypeError`` / ``ValueError`` of a value the detector refuses, or whose finding
    cannot be built, resets the key (a fresh detector, see :meth:`KeyState.reset`)
    and is recorded there; the values after it go to the fresh detector, as they
    would from one record to the next. Without one, it propagates.
    """
    if state.fed is not None:
        state.fed.extend(values)
    if (
        len(values) >= COLUMN_MIN
        and observer is None
        and len(values) >= state.detector.column_min
        and state.monitor.severity.warning is None
        and state.detector.column_path
        and not (state.open and state.window_events + len(values) >= state.monitor.resolve_after)
    ):
        detector = state.detector
        # A JSON copy (detector snapshots are plain JSON by contract); the
        # changelog's, when the detector has not changed since it was taken. A quiet
        # detector takes a column that fits in its quiet period whole or not at
        # all, and cannot fire on it: nothing to put back.
        saved = (
            None
            if type(detector) is Learning and len(values) < detector.room
            else state.saved or orjson.dumps(detector.to_state())
        )
        state.saved = None
        try:
            hits = detector.update_many(values)
        except Exception:  # a refused value or a failure: one by one finds which
            hits = [-1]
        if not hits:
            if state.window_start is None:
                at, origin, _ = where(0)
                state.window_start = at
                state.window_first = [origin.topic, origin.offset]
            state.window_events += len(values)
            return []
        if saved is not None:
            state.detector = detectors.get(state.monitor.detector).from_state(orjson.loads(saved))
    return _one_by_one(state, values, where, stats, observer, quarantine)


def feed_rows(
    states: Sequence[KeyState],
    rows: Sequence[Sequence[Any]],
    where: Where,
    stats: dict[str, int],
    observer: Observer | None,
    quarantine: Quarantine,
) -> list[tuple[int, int, Finding]]:
    """Value ``j`` of each row to key ``j`` of ``states``, row after row: a route
    holding fewer events of the batch than ``COLUMN_MIN`` (with thousands of models,
    one or two), whose columns would go one by one anyway, and for which a column's
    set-up, and a call per value to get here, cost more than the update. ``where``
    is asked about a row's position. The findings as (row, key position, finding).
    A key whose update fails (other than by refusing the value) is reset and
    recorded in ``quarantine``; the values after it go to the fresh detector."""
    found: list[tuple[int, int, Finding]] = []
    for r, row in enumerate(rows):
        for j, state in enumerate(states):
            value = row[j]
            if state.fed is not None:
                state.fed.append(value)
            state.saved = None
            detector = state.detector
            try:
                detector.update(value)
            except Exception as exc:
                _refused(state, exc, stats, quarantine)
                continue
            if (
                observer is None
                and state.window_start is not None
                and not detector.drift_detected
                and not state.open
                and not detector.warning_detected
            ):  # nothing to report: what ``_after`` would do, inlined
                state.window_events += 1
                continue
            try:
                finding = _after(state, detector, value, r, where, observer)
            except Exception as exc:  # e.g. a finding that cannot be built
                quarantine_key(state, exc, quarantine)
                continue
            if finding is not None:
                found.append((r, j, finding))
    return found


def _one_by_one(
    state: KeyState,
    values: Sequence[Any],
    where: Where,
    stats: dict[str, int],
    observer: Observer | None,
    quarantine: Quarantine | None,
) -> list[tuple[int, Finding]]:
    """``update`` per value (:func:`_step`); ``where`` is only asked where something
    happens."""
    state.saved = None
    found: list[tuple[int, Finding]] = []
    for position, value in enumerate(values):
        finding = _step(state, value, position, where, stats, observer, quarantine)
        if finding is not None:
            found.append((position, finding))
    return found


def _step(
    state: KeyState,
    value: Any,
    position: int,
    where: Where,
    stats: dict[str, int],
    observer: Observer | None,
    quarantine: Quarantine | None,
) -> Finding | None:
    """One ``update``, and the finding it makes, if any (:func:`_after`). With a
    ``quarantine``, a finding that cannot be built resets the key (the values after
    it go to the fresh detector, as from one record to the next); without one, it
    propagates."""
    detector = state.detector
    try:
        detector.update(value)
    except Exception as exc:
        _refused(state, exc, stats, quarantine)
        return None
    try:
        return _after(state, detector, value, position, where, observer)
    except Exception as exc:
        quarantine_key(state, exc, quarantine)
        return None


def _refused(
    state: KeyState, exc: Exception, stats: dict[str, int], quarantine: Quarantine | None
) -> None:
    """After ``update`` raised ``exc``: a value that does not suit the detector (a
    ``TypeError`` or ``ValueError``: a category fed to a numeric detector) is
    skipped and counted; any other failure resets the key and is recorded in
    ``quarantine`` (without one, it propagates)."""
    if isinstance(exc, (TypeError, ValueError)):
        name = f"signal_type_mismatch:{state.key.signal}"
        stats[name] = stats.get(name, 0) + 1
        return
    quarantine_key(state, exc, quarantine)


def quarantine_key(state: KeyState, exc: Exception, quarantine: Quarantine | None) -> None:
    """A key's update or finding failed with ``exc``: it is reset (a fresh detector,
    see :meth:`KeyState.reset`) and recorded in ``quarantine``; without one, ``exc``
    propagates."""
    if quarantine is None:
        raise exc
    quarantine.record("update", str(state.key), exc)
    state.reset()


def _after(
    state: KeyState,
    detector: detectors.DriftDetector[Any],
    value: Any,
    position: int,
    where: Where,
    observer: Observer | None,
) -> Finding | None:
    """The key's alert window after ``detector`` took ``value``, and the finding
    the update makes, if any.

    A key that fired is *open* until ``resolve_after`` observations pass without a
    detection; then a ``resolved`` finding says it is back to normal. Detectors that
    keep their reference fire again within a window or two while a change lasts, so
    quiet means back to the reference; detectors that restart after a detection
    (KS window, ADWIN, Page-Hinkley, CUSUM...) have by then learned the new regime and
    tested it, so quiet means stable again — in the old regime or a new one."""
    if state.window_start is None:
        at, origin, _ = where(position)
        state.window_start = at
        state.window_first = [origin.topic, origin.offset]
    state.window_events += 1
    if observer is not None:
        at, origin, _ = where(position)
        observer(state.key, value, detector, from_micros(at), origin)
    if detector.drift_detected:
        finding = finding_for(state, Update(value, *where(position)), "drift")
        # The detector starts learning a new regime: so does the alert window.
        state.window_start = None
        state.window_first = None
        state.window_events = 0
        state.open = True
        return finding
    if state.open and state.window_events >= state.monitor.resolve_after:
        finding = finding_for(state, Update(value, *where(position)), "resolved")
        state.open = False
        return finding
    if detector.warning_detected and state.monitor.severity.warning is not None:
        return finding_for(state, Update(value, *where(position)), "warning")
    return None
