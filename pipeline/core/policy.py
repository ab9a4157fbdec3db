"""Alert policy: detections -> alert events.

A chain of small steps (DESIGN.md, after structlog's processors). The first slice
emits one alert per drift detection; deduplication relies on the deterministic
``alert_id``.
"""

from __future__ import annotations

import math

from pipeline.core.ids import stable_id
from pipeline.core.monitor import Detection
from pipeline.events import AlertEvent, DetectorInfo, SourcePosition, WindowBounds

__all__ = ["AlertPolicy", "alert_id_for"]


def alert_id_for(detection: Detection) -> str:
    key, origin = detection.key, detection.origin
    return stable_id(
        "alert",
        key.model_id,
        key.model_version,
        key.signal,
        key.segment,
        key.detector,
        origin.topic,
        origin.partition,
        origin.offset,
    )


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _summary(d: Detection) -> str:
    stat = _finite_or_none(d.statistic)
    thr = _finite_or_none(d.threshold)
    comparison = ""
    if stat is not None and thr is not None:
        comparison = f" (statistic {stat:.4g}, threshold {thr:.4g})"
    return (
        f"{d.key.model_id} v{d.key.model_version}: {d.key.signal} "
        f"{'drift' if d.drift else 'warning'} by {d.key.detector}{comparison} "
        f"after {d.window_events} events"
    )


class AlertPolicy:
    """Turns detections into alerts (drifts only; warnings are counted)."""

    def __init__(self) -> None:
        self.warnings_seen = 0

    def alerts(self, detections: list[Detection]) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        for d in detections:
            if not d.drift:
                self.warnings_seen += 1
                continue
            out.append(self.to_alert(d))
        return out

    @staticmethod
    def to_alert(d: Detection) -> AlertEvent:
        return AlertEvent(
            alert_id=alert_id_for(d),
            model_id=d.key.model_id,
            model_version=d.key.model_version,
            signal=d.key.signal,
            detector=DetectorInfo(name=d.key.detector, params=d.spec.params),
            severity=d.spec.severity,
            statistic=_finite_or_none(d.statistic),
            threshold=_finite_or_none(d.threshold),
            p_value=_finite_or_none(d.p_value),
            window=WindowBounds(start=d.window_start, end=d.detected_at, events=d.window_events),
            detected_at=d.detected_at,
            source=SourcePosition(
                topic=d.origin.topic, partition=d.origin.partition, offset=d.origin.offset
            ),
            evidence={"value": d.value} if isinstance(d.value, int | float | str) else {},
            summary=_summary(d),
        )
