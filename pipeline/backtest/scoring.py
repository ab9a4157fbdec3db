"""Score the alerts of a replay against ground truth.

Per (model, signal, detector) series, in observation indices (the updates of that
series, see ``trace``):

* every true change point ``c`` opens a *detection window* ``[c, c + margin)``,
  cut short by the next change point; the margin is stated in events (of the
  series) or in event time;
* the first alert inside a change's window *detects* it: the delay is the number
  of observations from the change to the alert, and the event time between them;
  further alerts inside the window are *repeats* (the same incident again), and so
  is any alert of an incident already counted (a ``renotify`` reminder or a rise in
  severity carries the incident id of the alert that opened it), wherever it falls;
* an alert outside every window that opens an incident is a *false alarm*; a change
  without an alert in its window is *missed*; ``resolved`` alerts close incidents
  and are listed, never scored;
* precision = detected changes / incidents opened (detections + false alarms;
  repeats are shown, not counted against it), recall = detected changes / changes,
  F1 their harmonic mean;
* the *stable stretches* are all observations outside the detection windows; the
  mean number of events between false alarms is their length divided by the
  false alarms.

Changes the replay never reached (after the end of the input) are listed but not
scored. The totals count each change once per (model, signal): detected when any of
the signal's series (detectors, scopes) detected it.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pipeline.backtest.trace import Series, TraceKey, Tracer
from pipeline.backtest.truth import ChangePoint, TruthError, group_changes

__all__ = [
    "AlertRef",
    "ChangeOutcome",
    "Detection",
    "KeyScore",
    "Margin",
    "Totals",
    "checkpoints_for",
    "parse_margin",
    "score_key",
    "score_run",
]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Margin:
    """How long after a change an alert still counts as detecting it."""

    events: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.events is None) == (self.seconds is None):
            raise ValueError("a margin is either in events or in seconds")
        if (self.events is not None and self.events < 1) or (
            self.seconds is not None and self.seconds <= 0
        ):
            raise ValueError("the margin must be positive")

    def describe(self) -> str:
        if self.events is not None:
            return f"{self.events} events"
        assert self.seconds is not None
        return str(timedelta(seconds=self.seconds)) + " of event time"


def parse_margin(text: str) -> Margin:
    """``"1000"`` (events of the series) or ``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``."""
    text = text.strip()
    if text.isdigit():
        return Margin(events=int(text))
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", text)
    if not match:
        raise ValueError(f"margin {text!r}: expected a number of events or e.g. 90s, 10m, 2h")
    return Margin(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class AlertRef:
    """What scoring needs of one alert the replay emitted."""

    alert_id: str
    model_id: str
    signal: str
    detector: str
    detected_at: datetime
    topic: str
    partition: int
    offset: int
    statistic: float | None = None
    threshold: float | None = None
    scope: str = ""
    """Non-production variant and/or segment, as in ``trace.scope_of``."""
    status: str = "firing"
    incident_id: str | None = None
    """The alert that opened the incident (None for version-1 alerts)."""

    @property
    def key(self) -> TraceKey:
        return (self.model_id, self.signal, self.detector, self.scope)


@dataclass(frozen=True)
class Detection:
    """An alert placed on its series; ``index`` None when no update explains it."""

    alert: AlertRef
    index: int | None


@dataclass(frozen=True)
class ChangeOutcome:
    change: ChangePoint
    index: int
    """Observation index of the change (== observations when never reached)."""
    window_end: int
    reached: bool
    detection: Detection | None = None

    @property
    def delay_events(self) -> int | None:
        if self.detection is None or self.detection.index is None:
            return None
        return self.detection.index - self.index

    @property
    def delay_seconds(self) -> float | None:
        if self.detection is None or self.change.timestamp is None:
            return None
        return (self.detection.alert.detected_at - self.change.timestamp).total_seconds()


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None:
        return None
    return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class KeyScore:
    key: TraceKey
    observations: int
    detections: list[Detection]
    changes: list[ChangeOutcome]
    false_alarms: list[Detection]
    """Alerts outside every detection window."""
    repeats: list[Detection]
    """Alerts inside a window that an earlier alert already detected, and further
    alerts of an incident already counted."""
    stable_events: int
    has_truth: bool
    resolutions: list[Detection] = field(default_factory=list)
    """``resolved`` alerts (incidents closed); not scored."""

    @property
    def scored_changes(self) -> list[ChangeOutcome]:
        return [c for c in self.changes if c.reached]

    @property
    def hits(self) -> int:
        return sum(1 for c in self.scored_changes if c.detection is not None)

    @property
    def missed(self) -> int:
        return len(self.scored_changes) - self.hits

    @property
    def precision(self) -> float | None:
        opened = self.hits + len(self.false_alarms)
        return _ratio(self.hits, opened) if self.has_truth else None

    @property
    def recall(self) -> float | None:
        return _ratio(self.hits, len(self.scored_changes))

    @property
    def f1(self) -> float | None:
        return _f1(self.precision, self.recall)

    @property
    def delays_events(self) -> list[int]:
        return [d for c in self.scored_changes if (d := c.delay_events) is not None]

    @property
    def delays_seconds(self) -> list[float]:
        return [d for c in self.scored_changes if (d := c.delay_seconds) is not None]

    @property
    def median_delay_events(self) -> float | None:
        d = self.delays_events
        return float(statistics.median(d)) if d else None

    @property
    def mean_delay_events(self) -> float | None:
        d = self.delays_events
        return sum(d) / len(d) if d else None

    @property
    def median_delay_seconds(self) -> float | None:
        d = self.delays_seconds
        return float(statistics.median(d)) if d else None

    @property
    def events_between_false_alarms(self) -> float | None:
        """Mean stable events per false alarm; None when there was none."""
        return _ratio(self.stable_events, len(self.false_alarms))


@dataclass
class Totals:
    """Over every series with ground truth: each change counted once per (model,
    signal), alerts, false alarms and repeats summed over the series."""

    changes: int = 0
    hits: int = 0
    detections: int = 0
    false_alarms: int = 0
    repeats: int = 0
    stable_events: int = 0
    unmonitored: list[ChangePoint] = field(default_factory=list)

    @property
    def missed(self) -> int:
        return self.changes - self.hits

    @property
    def precision(self) -> float | None:
        return _ratio(self.hits, self.hits + self.false_alarms)

    @property
    def recall(self) -> float | None:
        return _ratio(self.hits, self.changes)

    @property
    def f1(self) -> float | None:
        return _f1(self.precision, self.recall)

    @property
    def events_between_false_alarms(self) -> float | None:
        return _ratio(self.stable_events, self.false_alarms)


def checkpoints_for(
    changes: Iterable[ChangePoint], margin: Margin
) -> tuple[dict[tuple[str, str], list[datetime]], dict[tuple[str, str], list[int]]]:
    """What the tracer must resolve to indices: change times (and, for a margin in
    event time, change + margin), and the offsets of position-only changes."""
    times: dict[tuple[str, str], list[datetime]] = {}
    offsets: dict[tuple[str, str], list[int]] = {}
    for c in changes:
        k = (c.model_id, c.signal)
        if c.timestamp is not None:
            times.setdefault(k, []).append(c.timestamp)
            if margin.seconds is not None:
                times[k].append(c.timestamp + timedelta(seconds=margin.seconds))
        else:
            if margin.seconds is not None:
                raise TruthError(
                    f"change of {c.model_id}/{c.signal} at {c.label()} has no timestamp: "
                    "use a margin in events"
                )
            assert c.position is not None
            offsets.setdefault(k, []).append(c.position)
    return times, offsets


def _change_index(series: Series, change: ChangePoint) -> int:
    if change.timestamp is not None:
        return series.index_at_time(change.timestamp)
    assert change.position is not None
    return series.index_at_offset(change.position)


def score_key(
    series: Series,
    alerts: Sequence[AlertRef],
    changes: Sequence[ChangePoint],
    margin: Margin,
    *,
    has_truth: bool = True,
) -> KeyScore:
    """Score one series: its alerts against its (model, signal)'s change points."""
    n = series.n
    detections: list[Detection] = []
    resolutions: list[Detection] = []
    for alert in alerts:
        firing = series.firings.get((alert.topic, alert.partition, alert.offset))
        placed = Detection(alert, None if firing is None else firing.index)
        (resolutions if alert.status == "resolved" else detections).append(placed)
    detections.sort(key=lambda d: (d.index if d.index is not None else n, d.alert.alert_id))

    located = sorted(((_change_index(series, c), c) for c in changes), key=lambda x: x[0])
    starts = [i for i, _ in located]
    windows: list[tuple[int, int, ChangePoint]] = []
    for k, (start, change) in enumerate(located):
        end = n
        for later in starts[k + 1 :]:
            if later > start:
                end = later
                break
        if margin.events is not None:
            end = min(end, start + margin.events)
        elif change.timestamp is not None:
            assert margin.seconds is not None
            end = min(
                end, series.index_at_time(change.timestamp + timedelta(seconds=margin.seconds))
            )
        windows.append((start, max(start, end), change))

    matched: dict[int, Detection] = {}
    false_alarms: list[Detection] = []
    repeats: list[Detection] = []
    counted: set[str] = set()
    for det in detections:
        incident = det.alert.incident_id
        if incident is not None and incident in counted:
            repeats.append(det)
            continue
        if incident is not None:
            counted.add(incident)
        slot = None
        inside_any = False
        if det.index is not None:
            for k, (start, end, _c) in enumerate(windows):
                if start <= det.index < end:
                    inside_any = True
                    if k not in matched:
                        slot = k
                        break
        if slot is None:
            (repeats if inside_any else false_alarms).append(det)
        else:
            matched[slot] = det

    covered = 0
    last_end = 0
    for start, end, _c in sorted(windows, key=lambda w: w[0]):
        lo = max(start, last_end)
        if end > lo:
            covered += end - lo
            last_end = end
    outcomes = [
        ChangeOutcome(
            change=c, index=start, window_end=end, reached=start < n, detection=matched.get(k)
        )
        for k, (start, end, c) in enumerate(windows)
    ]
    return KeyScore(
        key=series.key,
        observations=n,
        detections=detections,
        changes=outcomes,
        false_alarms=false_alarms,
        repeats=repeats,
        stable_events=n - covered,
        has_truth=has_truth,
        resolutions=resolutions,
    )


def score_run(
    tracer: Tracer,
    alerts: Iterable[AlertRef],
    changes: Sequence[ChangePoint] | None,
    margin: Margin,
) -> tuple[list[KeyScore], Totals]:
    """Score every traced series; ``changes`` None means no ground truth was given."""
    by_key: dict[TraceKey, list[AlertRef]] = {}
    for alert in alerts:
        by_key.setdefault(alert.key, []).append(alert)
    grouped = group_changes(changes or [])
    scores: list[KeyScore] = []
    totals = Totals()
    watched = set()
    changes_seen: dict[tuple[str, str, str], bool] = {}
    """(model, signal, change) -> detected by any series of the signal."""
    for key in sorted(set(tracer.series) | set(by_key)):
        series = tracer.series.get(key) or Series(key)
        key_changes = grouped.get(key[:2], [])
        watched.add(key[:2])
        s = score_key(
            series, by_key.get(key, []), key_changes, margin, has_truth=changes is not None
        )
        scores.append(s)
        if changes is not None:
            for c in s.scored_changes:
                change = (key[0], key[1], c.change.label())
                changes_seen[change] = changes_seen.get(change, False) or c.detection is not None
            totals.detections += len(s.detections)
            totals.false_alarms += len(s.false_alarms)
            totals.stable_events += s.stable_events
            totals.repeats += len(s.repeats)
    totals.changes = len(changes_seen)
    totals.hits = sum(changes_seen.values())
    totals.unmonitored = [c for k, cs in sorted(grouped.items()) if k not in watched for c in cs]
    return scores, totals


def as_mapping(score: KeyScore, margin: Margin) -> Mapping[str, object]:
    """A JSON-ready summary of one series' score (for ``--json``)."""
    model, signal, detector, scope = score.key
    return {
        "model_id": model,
        "signal": signal,
        "detector": detector,
        "scope": scope,
        "observations": score.observations,
        "alerts": len(score.detections),
        "changes": len(score.scored_changes),
        "detected": score.hits,
        "missed": score.missed,
        "false_alarms": len(score.false_alarms),
        "repeats": len(score.repeats),
        "resolved": len(score.resolutions),
        "precision": score.precision,
        "recall": score.recall,
        "f1": score.f1,
        "margin": margin.describe(),
        "median_delay_events": score.median_delay_events,
        "median_delay_seconds": score.median_delay_seconds,
        "stable_events": score.stable_events,
        "events_between_false_alarms": score.events_between_false_alarms,
        "change_points": [
            {
                "at": c.change.label(),
                "kind": c.change.kind,
                "reached": c.reached,
                "index": c.index if c.reached else None,
                "detected": c.detection is not None,
                "alert_id": c.detection.alert.alert_id if c.detection else None,
                "delay_events": c.delay_events,
                "delay_seconds": c.delay_seconds,
            }
            for c in score.changes
        ],
    }
