"""Detector instances keyed per (model, version, variant, signal, monitor, segment).

:class:`ModelPlan` compiles a model's monitor set once: which monitors look at
which event kind, and how a key maps back to its monitor. :class:`KeyState` is one
live detector with the bookkeeping an alert needs about its current window.
:func:`finding_for` is what a key reports when its detector fires (feeding it is
:mod:`pipeline.core.feeding`'s job).
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple

import orjson

import detectors
from detectors import DriftDetector
from detectors.learning import Learning
from pipeline.config import ModelSpec
from pipeline.core.eventtime import from_micros, seconds_to_micros
from pipeline.core.monitor_set import DEFAULT_TARGET_ARL0, Monitor, monitor_set
from pipeline.core.signals import extractor_for
from pipeline.core.state_keys import DETECTOR_PREFIX
from pipeline.events import Severity

__all__ = [
    "Finding",
    "KeyState",
    "ModelPlan",
    "MonitorKey",
    "Observer",
    "Origin",
    "Slots",
    "Update",
    "Watch",
    "finding_for",
    "segment_label",
]

OTHER_SEGMENT: Final = "__other__"
MISSING_SEGMENT: Final = "__missing__"
Level = Literal["warning", "drift", "resolved"]
"""What a finding reports: the detector's warning zone, a detection, or a key that
fired being back to normal (``MonitorSpec.resolve_after`` quiet observations)."""


class MonitorKey(NamedTuple):
    """Identity of one detector instance (a tuple: cheap to hash, ordered)."""

    model_id: str
    model_version: str
    variant: str
    signal: str
    monitor_id: str
    """The monitor's id: its name, else its detector's name."""
    segment: str = ""

    def __str__(self) -> str:
        variant = "" if self.variant == "production" else f"@{self.variant}"
        tail = f"[{self.segment}]" if self.segment else ""
        return (
            f"{self.model_id}/{self.model_version}{variant}/{self.signal}/{self.monitor_id}{tail}"
        )

    def state_key(self) -> str:
        """Unambiguous text form, used as the changelog key."""
        return DETECTOR_PREFIX + orjson.dumps(list(self)).decode()

    @classmethod
    def from_state_key(cls, text: str) -> MonitorKey:
        parts = orjson.loads(text.removeprefix(DETECTOR_PREFIX))
        if not (isinstance(parts, list) and len(parts) == 6):
            raise ValueError(f"not a monitor key: {text!r}")
        return cls(*(str(p) for p in parts))


class Origin(NamedTuple):
    """Where an event was read: the basis of deterministic output ids."""

    topic: str
    partition: int
    offset: int


Observer = Callable[[MonitorKey, Any, DriftDetector[Any], datetime, Origin], None]
"""``(key, value, detector, event_time, origin)`` after each detector update (backtest
traces). It must not mutate anything it is given. While one is installed every value
is fed one by one (the observer sees the detector after each). Calls for one key come
in event order; within a batch, the calls of different keys are grouped by key."""


def segment_label(name: str, value: object) -> str:
    """``country=DE``; booleans and whole floats spelled as in JSON."""
    if value is None:
        return f"{name}={MISSING_SEGMENT}"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    return f"{name}={text[:64]}"


class Watch:
    """A monitor compiled for the hot path."""

    __slots__ = (
        "extract",
        "id",
        "max_segments",
        "max_signals",
        "monitor",
        "segment_by",
        "signal",
        "wildcard",
    )

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.signal = monitor.signal
        self.id = monitor.id
        self.wildcard = monitor.wildcard
        self.segment_by = monitor.segment_by
        self.max_signals = monitor.max_signals
        self.max_segments = monitor.max_segments
        self.extract = extractor_for(monitor.signal)


_ATTRIBUTE_SIGNALS: Final = frozenset(
    {"embedding", "prediction", "confidence", "probabilities", "output_text", "token_logprobs"}
)


class Slots:
    """A watch list compiled for the engine's routes: each watch reads one value
    straight off an event (a feature by name, anything else by attribute), so an
    event's values are one list and the detectors they reach are known from the
    route (model, version, variant, segments, which values are present) alone."""

    __slots__ = ("_attributes", "_features", "_present", "reads", "segment_names")

    def __init__(self, watches: Sequence[Watch]) -> None:
        self.reads = tuple(
            (True, w.signal.removeprefix("feature:"))
            if w.signal.startswith("feature:")
            else (False, w.signal)
            for w in watches
        )
        self.segment_names = tuple(sorted({w.segment_by for w in watches if w.segment_by}))
        # The usual order (features, then attributes) is read in two C-level passes.
        features = [name for by_name, name in self.reads if by_name]
        attributes = [name for by_name, name in self.reads if not by_name]
        ordered = [(True, n) for n in features] + [(False, n) for n in attributes]
        self._features: tuple[str, ...] | None = None
        self._attributes: tuple[str, ...] = ()
        self._present: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None
        """Every feature read at once when the event has them all (a tuple)."""
        if list(self.reads) == ordered:
            self._features, self._attributes = tuple(features), tuple(attributes)
            if len(features) >= 2:  # itemgetter of one name returns the value itself
                self._present = operator.itemgetter(*features)

    def values(self, event: object, features: dict[str, Any]) -> list[Any]:
        """The value of every read, in order (None where a feature is absent)."""
        if self._features is None:
            return [
                features.get(name) if by_name else getattr(event, name)
                for by_name, name in self.reads
            ]
        present = self._present
        try:
            # the usual event carries every feature watched: one C-level read of
            # them all, half the cost of a ``get`` per name
            out = list(present(features)) if present is not None else None
        except KeyError:
            out = None
        if out is None:
            out = list(map(features.get, self._features))
        for name in self._attributes:
            out.append(getattr(event, name))
        return out

    @staticmethod
    def compile(watches: Sequence[Watch]) -> Slots | None:
        """None when a watch yields a variable number of values (``feature:*``)."""
        for w in watches:
            if w.wildcard or not (
                w.signal.startswith("feature:") or w.signal in _ATTRIBUTE_SIGNALS
            ):
                return None
        return Slots(watches)


class ModelPlan:
    """A model's monitor set (resolved once, see :mod:`pipeline.core.monitor_set`),
    grouped by the event kind that carries their signal. ``where`` is the model's
    place in the config, for the errors of monitors that cannot run."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        known: bool,
        where: str = "model",
        target_arl0: float = DEFAULT_TARGET_ARL0,
    ) -> None:
        self.spec = spec
        self.known = known
        self.monitors = monitor_set(spec, where, target_arl0)
        self.feature: list[Watch] = []
        self.prediction: list[Watch] = []
        self.training: list[Watch] = []
        self.error: list[Watch] = []
        self.exact: dict[tuple[str, str], Monitor] = {}
        self._wild: dict[tuple[str, str], Monitor] = {}
        for m in self.monitors:
            s = m.signal
            watch = Watch(m)
            if s.startswith("feature:") or s == "embedding":
                self.feature.append(watch)
                self.prediction.append(watch)
            elif s.startswith(("training.", "grad_norm:")):
                self.training.append(watch)
            elif s == "error":
                self.error.append(watch)
            else:
                self.prediction.append(watch)
            if m.wildcard:
                self._wild[(s.removesuffix("*"), m.id)] = m
            else:
                self.exact[(s, m.id)] = m
        self.needs_join = bool(self.error) or spec.shadow is not None
        self.label_ttl = seconds_to_micros(spec.labels.ttl)
        """``labels.ttl`` in microseconds (read with every prediction and label)."""
        self.error_segment_features = sorted(
            {m.segment_by for m in self.monitors if m.signal == "error" and m.segment_by}
        )
        self.prediction_slots = Slots.compile(self.prediction)
        self.feature_slots = Slots.compile(self.feature)

    def resolve(self, signal: str, monitor_id: str) -> Monitor | None:
        """The monitor a key of ``signal`` / ``monitor_id`` was created from."""
        exact = self.exact.get((signal, monitor_id))
        if exact is not None:
            return exact
        prefix = signal[: signal.index(":") + 1] if ":" in signal else signal
        return self._wild.get((prefix, monitor_id))


# ------------------------------------------------------------------- findings
@dataclass(frozen=True, slots=True)
class Finding:
    """Something that may become an alert: a detector fired, the shadow test
    decided, a golden input changed its answer."""

    model_id: str
    model_version: str
    variant: str
    signal: str
    monitor: str
    segment: dict[str, str] | None
    detector: str
    params: dict[str, Any]
    level: Level
    severity: Severity
    statistic: float | None
    threshold: float | None
    p_value: float | None
    window_start: int | None
    window_events: int
    at: int
    origin: Origin
    evidence: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    hysteresis: bool = True
    """Subject to warning-before-drift (detector findings are; decisions are not)."""

    @property
    def cooldown_key(self) -> str:
        segment = "" if self.segment is None else json.dumps(self.segment, sort_keys=True)
        return json.dumps(
            [self.model_version, self.variant, self.signal, self.monitor, segment],
            separators=(",", ":"),
        )


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


_REFERENCE_ATTRS: Final = (
    "center",
    "lower",
    "upper",
    "reference_mean",
    "reference_std",
    "reference_entropy",
    "learning_period",
)


def reference_of(detector: DriftDetector[Any]) -> dict[str, Any]:
    """What the detector compares against, from the attributes it exposes."""
    out: dict[str, Any] = {}
    for name in _REFERENCE_ATTRS:
        try:
            value = getattr(detector, name, None)
        except (ArithmeticError, ValueError):
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            out[name] = value
    probs = getattr(detector, "reference_probabilities", None)
    if isinstance(probs, dict) and len(probs) <= 32:
        out["probabilities"] = {str(k): float(v) for k, v in probs.items()}
    return out


# --------------------------------------------------------------------- keys
@dataclass(slots=True)
class KeyState:
    """A detector plus the bookkeeping an alert needs about its current window."""

    key: MonitorKey
    monitor: Monitor
    detector: DriftDetector[Any]
    known: bool
    groups: tuple[tuple[str, ...], ...]
    """Fan-out groups (segments / wildcard signals) this key counts against."""
    last_seen: int = 0
    seq: int = 0
    window_start: int | None = None
    window_first: list[Any] | None = None
    """[topic, offset] of the window's first event."""
    window_events: int = 0
    open: bool = False
    """The detector fired and its key has not been quiet for ``resolve_after``
    observations since: an incident may be open on it."""
    saved: bytes | None = None
    """The detector's snapshot as JSON bytes, set by ``to_state`` for its caller (the
    snapshot code reads it and drops it: kept until the next batch, a copy per key
    doubled the state in memory, and orjson's output holds its whole growth buffer);
    :func:`~pipeline.core.feeding.feed_column` puts the detector back from it, or
    from its own copy, when a batch fires."""
    fed: list[Any] | None = None
    """Values fed since the last state report, the next delta
    (:mod:`pipeline.core.journal`); None while no full record of the key is logged
    (nothing to add a delta to, e.g. in a replay)."""
    key_id: int | None = None
    """The id of the key's full record in the changelog (None: none written yet);
    deltas refer to it."""
    pending: int = 0
    """Values in the deltas logged since that full record."""
    base_bytes: int = 0
    """Size of that full record's detector snapshot (JSON)."""
    logged: tuple[Any, ...] | None = None
    """(window_start, window_first, open) as last logged."""
    queued: int = -1
    """The router's batch that last queued a value for it (see
    :meth:`pipeline.core.routing.Router.join`): not state, never written."""

    def __post_init__(self) -> None:
        detector = self.detector
        if type(detector) is Learning:
            detector.holder = self  # it hands this key the real detector when ripe

    def delta_fields(self) -> dict[str, Any]:
        """The bookkeeping a delta carries: what changes with every value, and the
        rest when it changed since it was last logged."""
        fields: dict[str, Any] = {
            "last_seen": self.last_seen,
            "seq": self.seq,
            "window_events": self.window_events,
        }
        now = (self.window_start, self.window_first, self.open)
        if now != self.logged:
            fields.update(window_start=now[0], window_first=now[1], open=now[2])
            self.logged = (now[0], None if now[1] is None else list(now[1]), now[2])
        return fields

    def apply_fields(self, fields: dict[str, Any]) -> None:
        """Set the bookkeeping a delta carries (see ``delta_fields``)."""
        self.last_seen = int(fields["last_seen"])
        self.seq = int(fields["seq"])
        self.window_events = int(fields["window_events"])
        if "open" in fields:
            start, first = fields["window_start"], fields["window_first"]
            self.window_start = None if start is None else int(start)
            self.window_first = None if first is None else [str(first[0]), int(first[1])]
            self.open = bool(fields["open"])

    def mark_logged(self, key_id: int, base_bytes: int) -> None:
        """A full record of the key (``base_bytes`` of detector snapshot) is logged
        under ``key_id``; deltas follow it."""
        self.key_id = key_id
        self.fed = []
        self.pending = 0
        self.base_bytes = base_bytes
        first = self.window_first
        self.logged = (self.window_start, None if first is None else list(first), self.open)

    def reset(self) -> None:
        """A fresh detector and alert window (a quarantined key, see
        :mod:`pipeline.core.quarantine`); when it was last seen is kept."""
        self.detector = self.monitor.start()
        self.__post_init__()
        self.window_start = None
        self.window_first = None
        self.window_events = 0
        self.open = False
        self.saved = None
        self.fed = None  # not what the logged record + deltas give: written in full next

    def to_state(self) -> dict[str, Any]:
        detector = dict(self.detector.to_state())
        self.saved = orjson.dumps(detector)
        return {
            "detector": detector,
            "last_seen": self.last_seen,
            "seq": self.seq,
            "window_start": self.window_start,
            "window_first": self.window_first,
            "window_events": self.window_events,
            "open": self.open,
        }

    @classmethod
    def from_state(
        cls,
        key: MonitorKey,
        monitor: Monitor,
        state: dict[str, Any],
        *,
        known: bool,
        groups: tuple[tuple[str, ...], ...],
    ) -> KeyState:
        detector = detectors.get(monitor.detector).from_state(state["detector"])
        start = state["window_start"]
        first = state["window_first"]
        return cls(
            key=key,
            monitor=monitor,
            detector=detector,
            known=known,
            groups=groups,
            last_seen=int(state["last_seen"]),
            seq=int(state["seq"]),
            window_start=None if start is None else int(start),
            window_first=None if first is None else [str(first[0]), int(first[1])],
            window_events=int(state["window_events"]),
            open=bool(state.get("open", False)),
        )


@dataclass(slots=True)
class Update:
    """One value routed to a detector, and where its finding goes."""

    value: Any
    at: int
    origin: Origin
    context: dict[str, Any] | None = None
    """Extra evidence of the event (training run, label join)."""
    finding: Finding | None = None


def _evidence_text(
    detector: DriftDetector[Any], statistic: float | None, threshold: float | None
) -> str:
    """The statistic against its own critical value, the p-value against alpha where
    the detector runs a test, and the window the test covered."""
    parts = []
    if statistic is not None and threshold is not None:
        parts.append(f"statistic {statistic:.4g} vs critical value {threshold:.4g}")
    p_value = _finite(detector.p_value)
    alpha = getattr(detector, "alpha", None)
    if p_value is not None and isinstance(alpha, float):
        parts.append(f"p-value {p_value:.3g} vs alpha {alpha:.3g}")
    window = getattr(detector, "window_size", None)
    reference = getattr(detector, "reference_size", None)
    if isinstance(window, int) and not isinstance(window, bool):
        text = f"window of {window} observations"
        if isinstance(reference, int) and not isinstance(reference, bool):
            text += f" against a reference of {reference}"
        parts.append(text)
    return "; ".join(parts)


def _summary(state: KeyState, level: Level, evidence: str) -> str:
    key = state.key
    if key.variant == "training":
        where = f"{key.model_id} run {key.model_version}"
    elif key.variant == "production":
        where = f"{key.model_id} v{key.model_version}"
    else:
        where = f"{key.model_id} v{key.model_version} [{key.variant}]"
    segment = f" [{key.segment}]" if key.segment else ""
    if level == "resolved":
        return (
            f"{where}: {key.signal}{segment} back to normal: no detection by "
            f"{state.monitor.detector} in {state.window_events} observations"
        )
    since = f"{state.window_events} observations since the detector (re)started"
    return (
        f"{where}: {key.signal}{segment} {level} by {state.monitor.detector} "
        f"({'; '.join(p for p in (evidence, since) if p)})"
    )


def finding_for(state: KeyState, update: Update, level: Level) -> Finding:
    """What ``state``'s detector says about ``update``, the value it was just fed."""
    detector = state.detector
    monitor = state.monitor
    statistic = _finite(detector.statistic)
    threshold = _finite(detector.threshold)
    severity = monitor.severity.warning if level == "warning" else monitor.severity.drift
    assert severity is not None
    evidence: dict[str, Any] = {}
    if isinstance(update.value, int | float | str) and not isinstance(update.value, bool):
        value = update.value
        if not (isinstance(value, float) and not math.isfinite(value)):
            evidence["value"] = value if not isinstance(value, str) else value[:200]
    elif isinstance(update.value, bool):
        evidence["value"] = update.value
    first = state.window_first
    evidence["offsets"] = {
        "first": None if first is None else {"topic": first[0], "offset": first[1]},
        "last": {"topic": update.origin.topic, "offset": update.origin.offset},
    }
    evidence["reference"] = reference_of(detector)
    if monitor.calibration is not None:
        evidence["calibration"] = monitor.calibration
    if update.context:
        evidence.update(update.context)
    key = state.key
    segment = None
    if key.segment:
        name, _, value = key.segment.partition("=")
        segment = {name: value}
    return Finding(
        model_id=key.model_id,
        model_version=key.model_version,
        variant=key.variant,
        signal=key.signal,
        monitor=key.monitor_id,
        segment=segment,
        detector=monitor.detector,
        params=dict(monitor.params),
        level=level,
        severity=severity,
        statistic=statistic,
        threshold=threshold,
        p_value=_finite(detector.p_value),
        window_start=state.window_start,
        window_events=state.window_events,
        at=update.at,
        origin=update.origin,
        evidence=evidence,
        summary=_summary(state, level, _evidence_text(detector, statistic, threshold)),
    )


def window_bounds(finding: Finding) -> tuple[Any, Any]:
    start = None if finding.window_start is None else from_micros(finding.window_start)
    return start, from_micros(finding.at)
