"""A pure observer of every detector update: what the report plots and scores.

``Tracer`` is installed as the engine's ``observer`` (``Processor.monitor.observer``);
it reads the watched value, the detector's statistic and threshold after each update
and never changes anything.
Memory is bounded per series whatever the length of the replay:

* the plot series is downsampled as it arrives: at most ``2 * max_points``
  buckets of equal width (in observations); when they are full, neighbours are
  merged and the width doubles. Each bucket keeps the min / max / mean of the
  value and the min / max / last of the statistic, so spikes survive;
* checkpoints (the true change points, and their margins) are resolved on the fly
  to the index of the first observation that reaches them;
* only the observations at which the detector fired are remembered one by one.

An observation's *index* counts the updates of that series from 0: a detection
delay "in events" is a difference of indices. A series is one detector instance
as the sidecar keys it, less the model version: (model, signal, detector, scope),
the scope naming a non-production variant and/or a segment (``shadow``,
``country=DE``). Event times are integer microseconds since the epoch.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from detectors import DriftDetector
from pipeline.core.monitor import Origin

__all__ = ["Bucket", "Firing", "Series", "TraceKey", "Tracer", "from_micros", "micros", "scope_of"]

TraceKey = tuple[str, str, str, str]
"""(model_id, signal, detector, scope)."""

NAN = math.nan
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def micros(at: datetime) -> int:
    return (at - EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def scope_of(variant: str, segment: str) -> str:
    """The scope part of a trace key: a non-production variant and/or a segment."""
    return segment if variant == "production" else f"{variant} {segment}".rstrip()


@dataclass(frozen=True, slots=True)
class Firing:
    """An observation at which the detector reported drift or a warning."""

    index: int
    at: datetime
    drift: bool
    statistic: float


@dataclass(frozen=True, slots=True)
class Bucket:
    start: int
    count: int
    first_at: datetime
    value_min: float
    value_max: float
    value_mean: float
    stat_min: float
    stat_max: float
    stat_last: float
    threshold: float


def _finite(x: Any) -> float:
    """``x`` as a float when it is a finite real number (not a bool), else NaN."""
    if type(x) is float or type(x) is int:
        v = float(x)
        return v if v - v == 0.0 else NAN
    return NAN


def _nanmin(a: float, b: float) -> float:
    return b if a != a or b < a else a


def _nanmax(a: float, b: float) -> float:
    return b if a != a or b > a else a


@dataclass
class _Checkpoints:
    """Sorted thresholds; ``reached[i]`` is the index of the first observation at or
    beyond ``points[i]`` (in arrival order)."""

    points: list[Any]
    reached: list[int] = field(default_factory=list)

    def pending(self) -> Any:
        return self.points[len(self.reached)] if len(self.reached) < len(self.points) else None


class Series:
    """Everything kept about one series (see the module docstring)."""

    def __init__(
        self,
        key: TraceKey,
        *,
        max_points: int = 512,
        time_checkpoints: Iterable[datetime] = (),
        offset_checkpoints: Iterable[int] = (),
    ) -> None:
        if max_points < 2:
            raise ValueError("max_points must be >= 2")
        self.key = key
        self.max_points = max_points
        self.n = 0
        self.first_us: int | None = None
        self.last_us: int | None = None
        self.numeric_values = 0
        self.firings: dict[tuple[str, int, int], Firing] = {}
        self._times = _Checkpoints(sorted({micros(t) for t in time_checkpoints}))
        self._offsets = _Checkpoints(sorted(set(offset_checkpoints)))
        self._next_time: int | None = self._times.pending()
        self._next_offset: int | None = self._offsets.pending()
        self._buckets: list[list[Any]] = []
        self._width = 1
        self._cur: list[Any] | None = None

    @property
    def first_at(self) -> datetime | None:
        return None if self.first_us is None else from_micros(self.first_us)

    @property
    def last_at(self) -> datetime | None:
        return None if self.last_us is None else from_micros(self.last_us)

    # -- the hot path ----------------------------------------------------------------
    def observe(self, value: Any, statistic: Any, threshold: Any, at: int, origin: Origin) -> int:
        """Record one update at event time ``at`` (microseconds); its index."""
        i = self.n
        self.n = i + 1
        if self.first_us is None:
            self.first_us = at
        self.last_us = at
        if self._next_time is not None and at >= self._next_time:
            self._reach(self._times, at, i)
            self._next_time = self._times.pending()
        if self._next_offset is not None and origin.offset >= self._next_offset:
            self._reach(self._offsets, origin.offset, i)
            self._next_offset = self._offsets.pending()
        # inline _finite (the hot path): finite real numbers, not bools; else NaN
        kind = type(value)
        v = float(value) if kind is float or kind is int else NAN
        if v - v != 0.0:
            v = NAN
        kind = type(statistic)
        s = float(statistic) if kind is float or kind is int else NAN
        if s - s != 0.0:
            s = NAN
        cur = self._cur
        if cur is None or i - cur[0] >= self._width:
            if cur is not None:
                self._close(cur)
            cur = self._cur = [i, 0, at, NAN, NAN, 0.0, 0, NAN, NAN, NAN, NAN]
        cur[1] += 1
        if v == v:
            self.numeric_values += 1
            if not v >= cur[3]:  # NaN-aware min
                cur[3] = v
            if not v <= cur[4]:
                cur[4] = v
            cur[5] += v
            cur[6] += 1
        if s == s:
            if not s >= cur[7]:
                cur[7] = s
            if not s <= cur[8]:
                cur[8] = s
            cur[9] = s
        if type(threshold) is float and threshold - threshold == 0.0:
            cur[10] = threshold
        return i

    def fired(self, index: int, at: int, origin: Origin, drift: bool, statistic: Any) -> None:
        self.firings[(origin.topic, origin.partition, origin.offset)] = Firing(
            index, from_micros(at), drift, _finite(statistic)
        )

    @staticmethod
    def _reach(cps: _Checkpoints, point: int, i: int) -> None:
        while (pending := cps.pending()) is not None and point >= pending:
            cps.reached.append(i)

    def _close(self, cur: list[Any]) -> None:
        self._buckets.append(cur)
        if len(self._buckets) >= 2 * self.max_points:
            self._buckets = [
                _merge(a, b) for a, b in zip(self._buckets[::2], self._buckets[1::2], strict=True)
            ]
            self._width *= 2

    # -- read-out --------------------------------------------------------------------
    def buckets(self) -> list[Bucket]:
        raw = [*self._buckets, *([self._cur] if self._cur is not None else [])]
        return [
            Bucket(
                start=b[0],
                count=b[1],
                first_at=from_micros(b[2]),
                value_min=b[3],
                value_max=b[4],
                value_mean=b[5] / b[6] if b[6] else NAN,
                stat_min=b[7],
                stat_max=b[8],
                stat_last=b[9],
                threshold=b[10],
            )
            for b in raw
        ]

    def index_at_time(self, at: datetime) -> int:
        """Index of the first observation at or after ``at`` (a registered
        checkpoint); ``n`` when the replay never got there."""
        return self._resolve(self._times, micros(at))

    def index_at_offset(self, offset: int) -> int:
        return self._resolve(self._offsets, offset)

    def _resolve(self, cps: _Checkpoints, point: int) -> int:
        k = bisect.bisect_left(cps.points, point)
        if k >= len(cps.points) or cps.points[k] != point:
            raise KeyError(f"{point!r} is not a checkpoint of {self.key}")
        return cps.reached[k] if k < len(cps.reached) else self.n


def _merge(a: list[Any], b: list[Any]) -> list[Any]:
    return [
        a[0],
        a[1] + b[1],
        a[2],
        _nanmin(a[3], b[3]),
        _nanmax(a[4], b[4]),
        a[5] + b[5],
        a[6] + b[6],
        _nanmin(a[7], b[7]),
        _nanmax(a[8], b[8]),
        b[9] if b[9] == b[9] else a[9],
        b[10] if b[10] == b[10] else a[10],
    ]


class Tracer:
    """The observer: one ``Series`` per detector instance (less the version).

    Called as ``tracer(key, value, detector, at, origin)`` after each update, with
    ``key`` the core's monitor key (``model_id``, ``signal``, ``segment`` and, where
    the core has it, ``variant``), ``at`` the event time (microseconds or an aware
    datetime). ``time_checkpoints`` / ``offset_checkpoints`` map (model, signal) to
    the event times / source offsets whose observation index scoring needs.
    """

    def __init__(
        self,
        *,
        time_checkpoints: Mapping[tuple[str, str], Iterable[datetime]] | None = None,
        offset_checkpoints: Mapping[tuple[str, str], Iterable[int]] | None = None,
        max_points: int = 512,
    ) -> None:
        self.series: dict[TraceKey, Series] = {}
        self.max_points = max_points
        self._time_cps = {k: list(v) for k, v in (time_checkpoints or {}).items()}
        self._offset_cps = {k: list(v) for k, v in (offset_checkpoints or {}).items()}
        self._by_key: dict[Any, Series] = {}

    def __call__(
        self, key: Any, value: Any, detector: DriftDetector[Any], at: Any, origin: Origin
    ) -> None:
        series = self._by_key.get(key)
        if series is None:
            series = self._by_key[key] = self._series_for(key, detector)
        if type(at) is not int:
            at = micros(at)
        i = series.observe(value, detector.statistic, detector.threshold, at, origin)
        if detector.drift_detected or detector.warning_detected:
            series.fired(i, at, origin, detector.drift_detected, detector.statistic)

    def _series_for(self, key: Any, detector: DriftDetector[Any]) -> Series:
        variant = getattr(key, "variant", "production")
        k = (key.model_id, key.signal, detector.name, scope_of(variant, key.segment))
        series = self.series.get(k)
        if series is None:
            series = self.series[k] = Series(
                k,
                max_points=self.max_points,
                time_checkpoints=self._time_cps.get(k[:2], ()),
                offset_checkpoints=self._offset_cps.get(k[:2], ()),
            )
        return series

    def keys(self) -> list[TraceKey]:
        return sorted(self.series)
