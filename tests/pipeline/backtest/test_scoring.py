from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.backtest.scoring import (
    AlertRef,
    Margin,
    checkpoints_for,
    parse_margin,
    score_key,
    score_run,
)
from pipeline.backtest.trace import Series, Tracer, micros
from pipeline.backtest.truth import ChangePoint, TruthError
from pipeline.core.monitor import Origin

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = ("m", "feature:x", "det", "")


def t(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


def change(i: int) -> ChangePoint:
    return ChangePoint("m", "feature:x", t(i), i)


def build(n: int, fire_at: list[int], changes: list[ChangePoint], margin: Margin):  # type: ignore[no-untyped-def]
    """A series of n observations (one per second, offset = index) that fired at
    ``fire_at``, and the alerts the sidecar emitted for those firings."""
    times, offsets = checkpoints_for(changes, margin)
    series = Series(
        KEY, time_checkpoints=times.get(KEY[:2], []), offset_checkpoints=offsets.get(KEY[:2], [])
    )
    alerts = []
    for i in range(n):
        origin = Origin("file:x", 0, i)
        series.observe(float(i), 0.0, 1.0, micros(t(i)), origin)
        if i in fire_at:
            series.fired(i, micros(t(i)), origin, True, 2.0)
            alerts.append(AlertRef(f"a{i}", "m", "feature:x", "det", t(i), "file:x", 0, i))
    return series, alerts


class TestScoreKey:
    def test_hits_repeats_false_alarms_and_misses(self) -> None:
        margin = Margin(events=100)
        changes = [change(1000), change(2000), change(3000)]
        # 500: false alarm; 1040: detects 1000; 1060: repeat; 1500: false alarm
        # (outside the margin); 2000 missed; 3099: detects 3000 at the window's edge.
        series, alerts = build(4000, [500, 1040, 1060, 1500, 3099], changes, margin)
        s = score_key(series, alerts, changes, margin)
        assert s.hits == 2 and s.missed == 1
        assert [d.alert.alert_id for d in s.false_alarms] == ["a500", "a1500"]
        assert [d.alert.alert_id for d in s.repeats] == ["a1060"]
        assert [c.delay_events for c in s.changes] == [40, None, 99]
        assert [c.delay_seconds for c in s.changes] == [40.0, None, 99.0]
        # precision: detections over incidents opened (the repeat is shown, not counted)
        assert s.precision == pytest.approx(2 / 4)
        assert s.recall == pytest.approx(2 / 3)
        assert s.f1 == pytest.approx(2 * (0.5 * 2 / 3) / (0.5 + 2 / 3))
        assert s.stable_events == 4000 - 300
        assert s.events_between_false_alarms == pytest.approx(3700 / 2)
        assert s.median_delay_events == 69.5

    def test_window_is_cut_by_the_next_change(self) -> None:
        margin = Margin(events=1000)
        changes = [change(100), change(150)]
        series, alerts = build(400, [160], changes, margin)
        s = score_key(series, alerts, changes, margin)
        assert [c.detection is not None for c in s.changes] == [False, True]
        assert s.changes[0].window_end == 150

    def test_margin_in_event_time(self) -> None:
        margin = parse_margin("30s")
        changes = [change(100)]
        series, alerts = build(300, [125, 135], changes, margin)
        s = score_key(series, alerts, changes, margin)
        assert s.hits == 1 and [d.alert.alert_id for d in s.false_alarms] == ["a135"]
        assert s.changes[0].window_end == 130

    def test_changes_after_the_end_are_not_scored(self) -> None:
        margin = Margin(events=10)
        changes = [change(50), change(5000)]
        series, alerts = build(100, [55], changes, margin)
        s = score_key(series, alerts, changes, margin)
        assert [c.reached for c in s.changes] == [True, False]
        assert s.recall == 1.0 and s.missed == 0

    def test_an_incident_detects_once_and_its_reminders_are_repeats(self) -> None:
        margin = Margin(events=100)
        changes = [change(1000)]
        series, alerts = build(4000, [1040, 1500, 1800, 2500], changes, margin)
        incident = alerts[0].alert_id
        # 1500: a renotify of the incident (outside the margin: still not a false
        # alarm); 1800: its resolution (listed, not scored); 2500: a new incident.
        alerts[1] = replace(alerts[1], incident_id=incident)
        alerts[2] = replace(alerts[2], incident_id=incident, status="resolved")
        alerts[0] = replace(alerts[0], incident_id=incident)
        s = score_key(series, alerts, changes, margin)
        assert s.hits == 1
        assert [d.alert.alert_id for d in s.repeats] == ["a1500"]
        assert [d.alert.alert_id for d in s.resolutions] == ["a1800"]
        assert [d.alert.alert_id for d in s.false_alarms] == ["a2500"]
        assert s.precision == pytest.approx(1 / 2)

    def test_stable_series_without_alerts(self) -> None:
        series, alerts = build(100, [], [], Margin(events=10))
        s = score_key(series, alerts, [], Margin(events=10))
        assert s.precision is None and s.recall is None and s.f1 is None
        assert s.events_between_false_alarms is None and s.stable_events == 100


class TestScoreRun:
    def test_totals_and_unmonitored_changes(self) -> None:
        margin = Margin(events=50)
        changes = [change(100), ChangePoint("m", "feature:y", t(10), 10)]
        series, alerts = build(200, [120, 180], changes[:1], margin)
        tracer = Tracer()
        tracer.series[KEY] = series
        scores, totals = score_run(tracer, alerts, changes, margin)
        assert len(scores) == 1
        assert (totals.changes, totals.hits, totals.false_alarms) == (1, 1, 1)
        assert [c.signal for c in totals.unmonitored] == ["feature:y"]

    def test_a_change_counts_once_per_signal_in_the_totals(self) -> None:
        # Two detectors on one signal, both detect the change: one change detected.
        margin = Margin(events=50)
        changes = [change(100)]
        tracer = Tracer()
        alerts = []
        for detector, fire in (("det", 120), ("other", 140)):
            series, found = build(200, [fire], changes, margin)
            key = ("m", "feature:x", detector, "")
            series.key = key
            tracer.series[key] = series
            alerts += [replace(a, detector=detector) for a in found]
        scores, totals = score_run(tracer, alerts, changes, margin)
        assert len(scores) == 2 and all(s.hits == 1 for s in scores)
        assert (totals.changes, totals.hits, totals.detections) == (1, 1, 2)

    def test_no_truth_means_nothing_is_scored(self) -> None:
        series, alerts = build(200, [120], [], Margin(events=50))
        tracer = Tracer()
        tracer.series[KEY] = series
        scores, totals = score_run(tracer, alerts, None, Margin(events=50))
        assert scores[0].precision is None and len(scores[0].detections) == 1
        assert totals.detections == 0


class TestMargin:
    @pytest.mark.parametrize(
        ("text", "events", "seconds"),
        [("500", 500, None), ("90s", None, 90.0), ("10m", None, 600.0), ("1.5h", None, 5400.0)],
    )
    def test_parse(self, text: str, events: int | None, seconds: float | None) -> None:
        assert parse_margin(text) == Margin(events=events, seconds=seconds)

    @pytest.mark.parametrize("text", ["0", "-3", "5 weeks", ""])
    def test_bad(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_margin(text)

    def test_time_margin_needs_timestamps(self) -> None:
        with pytest.raises(TruthError, match="margin in events"):
            checkpoints_for([ChangePoint("m", "s", None, 5)], Margin(seconds=10))
