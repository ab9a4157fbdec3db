"""The monitor engine: route each event to its per-(model, version, signal) detectors.

Detector instances are created lazily the first time a key is seen, from the
model's monitor specs in the config. State is grouped by *scope* — the source
partition number — because that is the unit the runtime restores after a crash or
a rebalance: every input topic is keyed by ``model_id`` and co-partitioned, so a
model's features, predictions and labels share a partition number.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import detectors
from detectors import DriftDetector
from pipeline.config import MonitorSpec, Settings
from pipeline.core.signals import extractor_for
from pipeline.events import InputEvent, LabelEvent, TrainingEvent

__all__ = ["Detection", "KeyState", "Monitor", "MonitorKey", "Observer", "Origin"]


@dataclass(frozen=True, slots=True, order=True)
class MonitorKey:
    """Identity of one detector instance."""

    model_id: str
    model_version: str
    signal: str
    detector: str
    segment: str = ""

    def __str__(self) -> str:
        tail = f"[{self.segment}]" if self.segment else ""
        return f"{self.model_id}/{self.model_version}/{self.signal}/{self.detector}{tail}"

    def state_key(self) -> str:
        """Unambiguous text form, used as the changelog key."""
        return "detector:" + json.dumps(
            [self.model_id, self.model_version, self.signal, self.detector, self.segment],
            separators=(",", ":"),
        )

    @classmethod
    def from_state_key(cls, text: str) -> MonitorKey:
        fields = json.loads(text.removeprefix("detector:"))
        if not (isinstance(fields, list) and len(fields) == 5):
            raise ValueError(f"not a monitor key: {text!r}")
        return cls(*(str(f) for f in fields))


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event was read: the basis of deterministic output ids."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class KeyState:
    """A detector plus the bookkeeping an alert needs about its current window."""

    spec: MonitorSpec
    detector: DriftDetector[Any]
    window_start: datetime | None = None
    window_events: int = 0

    def to_state(self) -> dict[str, Any]:
        return {
            "spec": self.spec.model_dump(mode="json"),
            "detector": dict(self.detector.to_state()),
            "window_start": None if self.window_start is None else self.window_start.isoformat(),
            "window_events": self.window_events,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> KeyState:
        spec = MonitorSpec.model_validate(state["spec"])
        detector = detectors.get(spec.detector).from_state(state["detector"])
        start = state["window_start"]
        return cls(
            spec=spec,
            detector=detector,
            window_start=None if start is None else datetime.fromisoformat(start),
            window_events=int(state["window_events"]),
        )


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector fired (drift, or only a warning) on one event."""

    key: MonitorKey
    spec: MonitorSpec
    drift: bool
    statistic: float
    threshold: float
    p_value: float | None
    window_start: datetime | None
    window_events: int
    detected_at: datetime
    origin: Origin
    value: Any
    evidence: dict[str, Any] = field(default_factory=dict)


Observer = Callable[[MonitorKey, Any, DriftDetector[Any], datetime, Origin], None]
"""``(key, value, detector, event_time, origin)`` after each update; must not mutate."""


def _version_of(event: InputEvent) -> str:
    if isinstance(event, TrainingEvent):
        return event.run_id
    if isinstance(event, LabelEvent):
        return "*"
    return event.model_version


class Monitor:
    """Feeds events to detectors and reports what they detect.

    Every key whose state changed is remembered per scope until the runtime
    collects it with ``changed_state`` (to write the changelog).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scopes: dict[int, dict[MonitorKey, KeyState]] = {}
        self.dirty: dict[int, set[MonitorKey]] = {}
        self.stats: Counter[str] = Counter()
        self.observer: Observer | None = None
        """Optional, pure: called after every detector update (backtest traces)."""

    def is_known_model(self, model_id: str) -> bool:
        return self.settings.spec_for(model_id) is not None

    def process(self, event: InputEvent, origin: Origin) -> list[Detection]:
        """Update every detector that watches a signal ``event`` carries."""
        spec = self.settings.spec_for(event.model_id)
        if spec is None:
            self.stats["unmonitored_model"] += 1
            return []
        scope = self.scopes.setdefault(origin.partition, {})
        version = _version_of(event)
        detections: list[Detection] = []
        for monitor in spec.monitors:
            value = extractor_for(monitor.signal)(event)
            if value is None:
                continue
            key = MonitorKey(event.model_id, version, monitor.signal, monitor.detector)
            state = scope.get(key)
            if state is None:
                state = scope[key] = KeyState(spec=monitor, detector=monitor.build())
                self.stats["keys_created"] += 1
            self.dirty.setdefault(origin.partition, set()).add(key)
            detection = self._update(key, state, value, event.timestamp, origin)
            if detection is not None:
                detections.append(detection)
        return detections

    def _update(
        self, key: MonitorKey, state: KeyState, value: Any, at: datetime, origin: Origin
    ) -> Detection | None:
        detector = state.detector
        try:
            detector.update(value)
        except (TypeError, ValueError):
            # The event is valid but this signal's value does not suit the
            # detector (a category fed to a numeric detector): skip, count.
            self.stats[f"signal_type_mismatch:{key.signal}"] += 1
            return None
        if state.window_start is None:
            state.window_start = at
        state.window_events += 1
        self.stats["updates"] += 1
        if self.observer is not None:
            self.observer(key, value, detector, at, origin)
        if not (detector.drift_detected or detector.warning_detected):
            return None
        detection = Detection(
            key=key,
            spec=state.spec,
            drift=detector.drift_detected,
            statistic=detector.statistic,
            threshold=detector.threshold,
            p_value=detector.p_value,
            window_start=state.window_start,
            window_events=state.window_events,
            detected_at=at,
            origin=origin,
            value=value,
        )
        if detector.drift_detected:
            # The detector starts learning a new regime: so does the alert window.
            state.window_start = None
            state.window_events = 0
        return detection

    # -- state ownership (the runtime calls these around rebalances) -----------
    def changed_state(self, partition: int) -> dict[str, dict[str, Any] | None]:
        """State key -> snapshot (None: deleted) of every key changed since the last
        call, for one scope; clears the record of changes."""
        changed = self.dirty.pop(partition, set())
        scope = self.scopes.get(partition, {})
        return {
            key.state_key(): (scope[key].to_state() if key in scope else None)
            for key in sorted(changed)
        }

    def restore(self, partition: int, entries: dict[str, dict[str, Any]]) -> None:
        """Replace a scope's state with snapshots read back from the changelog."""
        scope: dict[MonitorKey, KeyState] = {}
        for text, state in entries.items():
            if text.startswith("detector:"):
                scope[MonitorKey.from_state_key(text)] = KeyState.from_state(state)
        self.scopes[partition] = scope
        self.dirty.pop(partition, None)

    def drop_scope(self, partition: int) -> None:
        self.scopes.pop(partition, None)
        self.dirty.pop(partition, None)

    def live_keys(self) -> int:
        return sum(len(scope) for scope in self.scopes.values())
