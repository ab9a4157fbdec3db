from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.backtest.trace import Series, Tracer, micros
from pipeline.core.monitor import Origin

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(i: int) -> int:
    return micros(T0 + timedelta(seconds=i))


class TestSeries:
    def test_downsampling_is_bounded_and_keeps_extremes(self) -> None:
        series = Series(("m", "s", "d", ""), max_points=16)
        values = [math.sin(i / 50) * 10 + (100 if i == 7777 else 0) for i in range(20_000)]
        for i, v in enumerate(values):
            series.observe(v, -v, 5.0, at(i), Origin("t", 0, i))
        buckets = series.buckets()
        assert len(buckets) <= 32
        assert sum(b.count for b in buckets) == 20_000
        assert [b.start for b in buckets] == sorted(b.start for b in buckets)
        assert max(b.value_max for b in buckets) == max(values)  # the spike survives
        assert min(b.stat_min for b in buckets) == -max(values)
        mean = sum(b.value_mean * b.count for b in buckets) / 20_000
        assert mean == pytest.approx(sum(values) / 20_000)
        assert all(b.threshold == 5.0 for b in buckets)

    def test_non_numeric_values_and_nan_statistics_leave_gaps(self) -> None:
        series = Series(("m", "s", "d", ""), max_points=4)
        for i in range(8):
            series.observe("DE", math.nan if i < 4 else 1.0, math.nan, at(i), Origin("t", 0, i))
        assert series.numeric_values == 0
        buckets = series.buckets()
        assert all(math.isnan(b.value_mean) for b in buckets)
        assert math.isnan(buckets[0].stat_last) and buckets[-1].stat_last == 1.0

    def test_checkpoints_resolve_to_the_first_observation_reaching_them(self) -> None:
        series = Series(
            ("m", "s", "d", ""),
            time_checkpoints=[T0 + timedelta(seconds=10.5), T0 + timedelta(days=9)],
            offset_checkpoints=[40],
        )
        for i in range(30):  # offsets 0, 2, 4, ... and one second apart
            series.observe(1.0, 0.0, 1.0, at(i), Origin("t", 0, 2 * i))
        assert series.index_at_time(T0 + timedelta(seconds=10.5)) == 11
        assert series.index_at_offset(40) == 20
        assert series.index_at_time(T0 + timedelta(days=9)) == 30  # never reached: n
        with pytest.raises(KeyError):
            series.index_at_time(T0)


@dataclass(frozen=True)
class _Key:
    model_id: str
    signal: str
    segment: str = ""
    variant: str = "production"


class _Detector:
    name = "fake"

    def __init__(self) -> None:
        self.statistic = 0.0
        self.threshold = 3.0
        self.drift_detected = False
        self.warning_detected = False


class TestTracer:
    def test_one_series_per_instance_less_the_version(self) -> None:
        tracer = Tracer()
        det = _Detector()
        for i in range(10):
            det.statistic = float(i)
            det.drift_detected = i == 6
            tracer(_Key("m", "confidence"), 0.9, det, T0 + timedelta(seconds=i), Origin("t", 0, i))  # type: ignore[arg-type]
        tracer(
            _Key("m", "confidence", "country=DE", "shadow"), 0.5, det, at(20), Origin("t", 0, 20)
        )  # type: ignore[arg-type]
        assert tracer.keys() == [
            ("m", "confidence", "fake", ""),
            ("m", "confidence", "fake", "shadow country=DE"),
        ]
        main = tracer.series[("m", "confidence", "fake", "")]
        assert main.n == 10
        assert [(f.index, f.drift) for f in main.firings.values()] == [(6, True)]
        assert main.firings[("t", 0, 6)].at == T0 + timedelta(seconds=6)
