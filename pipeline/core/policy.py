"""Alert policy and rollback policy: findings -> alerts -> rollback commands.

The alert policy is a chain of small steps (DESIGN.md, after structlog's
processors), each ``step(ctx, draft) -> draft | None`` (None: suppressed):

1. :func:`suppress_maintenance` — nothing is raised while event time is in a
   declared maintenance window of the model;
2. :func:`apply_hysteresis` — warning before drift: a key's first drift detection is
   raised as a warning, a second one within ``confirm_within`` is raised at the
   mapped severity; warnings of a key already in drift are noise;
3. :func:`escalate` — when ``signals`` distinct signals of one model alert at drift
   or above within ``within``, the alert completing the set becomes critical;
4. :func:`track_incident` — the first alert of a key opens an incident (its id is
   the alert's); while the incident is open further detections of the key are held
   back unless the severity rises or ``incidents.renotify`` has passed since the
   last notice (with ``incidents.enabled: false``, :func:`apply_cooldown` instead
   drops repeats of the same or a lower severity for ``cooldown``);
5. :func:`deduplicate` — an alert id already emitted is never emitted again.

A ``resolved`` finding (the key's detector is back to normal, see
``pipeline.core.monitor``) closes the key's open incident with a ``resolved`` alert
carrying the incident's id and severity; without an open incident it is dropped.
Escalation and rollback rules count the signals with an open incident at the
required severity as well as the alerts of their window: a change that lasts keeps
counting although it is alerted once.

Alert ids are derived from (model, version, variant, signal, segment, monitor,
source topic/partition/offset, and ``resolved`` for a resolution): no clock is read,
a replay yields the same ids.

The rollback policy then looks at each emitted alert: when one of the model's
rules holds (and the alert takes part in it), a :class:`RollbackCommand` targets the
model's last stable checkpoint — at most once per incident (``cooldown``), with an
id derived from the model, the checkpoint and the triggering record. Without a
known stable checkpoint there is no command, and the alert says so.

All state is per model (:class:`PolicyState`, plain JSON).
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from pipeline.config import (
    SEVERITY_RANK,
    PolicySettings,
    RollbackRule,
    RollbackSpec,
)
from pipeline.core.eventtime import from_micros, seconds_to_micros
from pipeline.core.ids import stable_id
from pipeline.core.monitor import Finding
from pipeline.core.training import CheckpointRegistry
from pipeline.events import (
    AlertEvent,
    DetectorInfo,
    RollbackCommand,
    Severity,
    SourcePosition,
    WindowBounds,
)

__all__ = [
    "CHAIN",
    "AlertPolicy",
    "Draft",
    "PolicyContext",
    "PolicyState",
    "alert_id_for",
    "apply_cooldown",
    "apply_hysteresis",
    "deduplicate",
    "resolve_incident",
    "track_incident",
    "escalate",
    "evaluate_rollback",
    "suppress_maintenance",
]


_SEVERITY_OF_RANK: Final[dict[int, Severity]] = {1: "warning", 2: "drift", 3: "critical"}
MAX_OPEN_INCIDENTS: Final = 4096
"""Open incidents remembered per model; beyond it the oldest is forgotten (counted)."""


def alert_id_for(f: Finding) -> str:
    parts: list[object] = [
        "alert",
        f.model_id,
        f.model_version,
        f.signal,
        "" if f.segment is None else sorted(f.segment.items()),
        f.monitor,
        f.origin.topic,
        f.origin.partition,
        f.origin.offset,
    ]
    if f.variant != "production":
        parts.insert(3, f.variant)
    if f.level == "resolved":
        parts.append("resolved")
    return stable_id(*parts)


# ---------------------------------------------------------------------- state
@dataclass(slots=True)
class PolicyState:
    """What the policy remembers about one model."""

    levels: dict[str, dict[str, Any]] = field(default_factory=dict)
    """cooldown key -> {"level", "since", "last"} (hysteresis)"""
    cooldowns: dict[str, dict[str, Any]] = field(default_factory=dict)
    """cooldown key -> {"rank", "at"} of the last emitted alert"""
    recent: list[dict[str, Any]] = field(default_factory=list)
    """emitted alerts at drift or above: {"signal", "rank", "at", "alert_id"}"""
    ids: list[str] = field(default_factory=list)
    """the last emitted alert ids (deduplication)"""
    incident: dict[str, Any] | None = None
    """the last rollback: {"at", "command_id", "rule", "checkpoint"}"""
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    """cooldown key -> the open incident {"id", "signal", "opened", "notified", "rank",
    "held"} (held: detections not sent while it was open)"""

    def to_state(self) -> dict[str, Any]:
        return {
            "levels": self.levels,
            "cooldowns": self.cooldowns,
            "recent": self.recent,
            "ids": self.ids,
            "incident": self.incident,
            "incidents": self.incidents,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PolicyState:
        return cls(
            levels={str(k): dict(v) for k, v in state["levels"].items()},
            cooldowns={str(k): dict(v) for k, v in state["cooldowns"].items()},
            recent=[dict(r) for r in state["recent"]],
            ids=[str(i) for i in state["ids"]],
            incident=None if state["incident"] is None else dict(state["incident"]),
            incidents={str(k): dict(v) for k, v in state.get("incidents", {}).items()},
        )


@dataclass(slots=True)
class Draft:
    """An alert being decided on."""

    finding: Finding
    severity: Severity
    alert_id: str
    evidence: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    incident_id: str | None = None

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]


@dataclass(slots=True)
class PolicyContext:
    settings: PolicySettings
    state: PolicyState
    stats: Counter[str]
    keep_recent: int
    """How long emitted alerts are remembered (escalation and rollback windows), µs."""


Step = Callable[[PolicyContext, Draft], Draft | None]


# ---------------------------------------------------------------------- steps
def suppress_maintenance(ctx: PolicyContext, draft: Draft) -> Draft | None:
    f = draft.finding
    at = from_micros(f.at)
    for window in ctx.settings.maintenance:
        if window.covers(f.model_id, at):
            ctx.stats["suppressed:maintenance"] += 1
            return None
    return draft


def apply_hysteresis(ctx: PolicyContext, draft: Draft) -> Draft | None:
    settings = ctx.settings.hysteresis
    f = draft.finding
    if not (settings.enabled and f.hysteresis):
        return draft
    now = f.at
    key = f.cooldown_key
    levels = ctx.state.levels
    current = levels.get(key)
    if current is not None and now - int(current["last"]) > seconds_to_micros(settings.clear_after):
        current = None
    if f.level == "warning":
        if current is None:
            levels[key] = {"level": "warning", "since": now, "last": now}
            return draft
        current["last"] = now
        if current["level"] == "drift":
            ctx.stats["suppressed:hysteresis"] += 1
            return None
        return draft
    confirm = seconds_to_micros(settings.confirm_within)
    if current is not None and (
        current["level"] == "drift" or now - int(current["last"]) <= confirm
    ):
        if current["level"] != "drift":
            draft.notes.append("confirmed after an earlier detection")
            draft.evidence["hysteresis"] = {"confirmed": True, "first_at": current["since"]}
        levels[key] = {"level": "drift", "since": int(current["since"]), "last": now}
        return draft
    levels[key] = {"level": "warning", "since": now, "last": now}
    if draft.rank > SEVERITY_RANK["warning"]:
        draft.evidence["hysteresis"] = {"confirmed": False, "would_be": draft.severity}
        draft.notes.append(
            f"first detection: raised as warning, {draft.severity} if confirmed within "
            f"{settings.confirm_within:g}s"
        )
        draft.severity = "warning"
    return draft


def _prune_recent(ctx: PolicyContext, now: int) -> None:
    horizon = now - ctx.keep_recent
    recent = ctx.state.recent
    if recent and int(recent[0]["at"]) < horizon:
        ctx.state.recent = [r for r in recent if int(r["at"]) >= horizon]


def _active(state: PolicyState, horizon: int, floor: int) -> dict[str, str]:
    """Signal -> an alert id, for the alerts since ``horizon`` and the open incidents
    at ``floor`` severity or above (a lasting change is alerted once but still counts)."""
    out = {
        str(i["signal"]): str(i["id"]) for i in state.incidents.values() if int(i["rank"]) >= floor
    }
    for r in state.recent:
        if int(r["at"]) >= horizon and int(r["rank"]) >= floor:
            out[str(r["signal"])] = str(r["alert_id"])
    return out


def escalate(ctx: PolicyContext, draft: Draft) -> Draft | None:
    settings = ctx.settings.escalation
    if not settings.enabled or draft.rank < SEVERITY_RANK["drift"] or draft.severity == "critical":
        return draft
    f = draft.finding
    _prune_recent(ctx, f.at)
    horizon = f.at - seconds_to_micros(settings.within)
    signals = sorted(set(_active(ctx.state, horizon, SEVERITY_RANK["drift"])) | {f.signal})
    if len(signals) >= settings.signals:
        draft.severity = "critical"
        draft.evidence["escalation"] = {"signals": signals, "within_s": settings.within}
        draft.notes.append(f"escalated: {len(signals)} signals within {settings.within:g}s")
        ctx.stats["escalated"] += 1
    return draft


def apply_cooldown(ctx: PolicyContext, draft: Draft) -> Draft | None:
    f = draft.finding
    key = f.cooldown_key
    now = f.at
    window = seconds_to_micros(ctx.settings.cooldown)
    cooldowns = ctx.state.cooldowns
    last = cooldowns.get(key)
    if last is not None and now - int(last["at"]) < window and draft.rank <= int(last["rank"]):
        ctx.stats["suppressed:cooldown"] += 1
        return None
    # Expired entries of other keys go when this one is written (bounded state).
    for other in [k for k, v in cooldowns.items() if now - int(v["at"]) >= window]:
        del cooldowns[other]
    cooldowns[key] = {"rank": draft.rank, "at": now}
    return draft


def track_incident(ctx: PolicyContext, draft: Draft) -> Draft | None:
    """Open an incident, or hold a repeat of an open one back (see the module doc)."""
    if not ctx.settings.incidents.enabled:
        return apply_cooldown(ctx, draft)
    f = draft.finding
    key = f.cooldown_key
    now = f.at
    incidents = ctx.state.incidents
    incident = incidents.get(key)
    if incident is None:
        if len(incidents) >= MAX_OPEN_INCIDENTS:
            oldest = min(incidents, key=lambda k: int(incidents[k]["opened"]))
            del incidents[oldest]
            ctx.stats["incidents:forgotten"] += 1
        incidents[key] = {
            "id": draft.alert_id,
            "signal": f.signal,
            "opened": now,
            "notified": now,
            "rank": draft.rank,
            "held": 0,
        }
        draft.incident_id = draft.alert_id
        ctx.stats["incidents:opened"] += 1
        return draft
    draft.incident_id = str(incident["id"])
    info = {"opened_at": from_micros(int(incident["opened"])).isoformat(), "held": incident["held"]}
    if draft.rank > int(incident["rank"]):
        incident.update(rank=draft.rank, notified=now)
        draft.notes.append("incident still open, severity rose")
        draft.evidence["incident"] = {**info, "reason": "severity_rose"}
        return draft
    renotify = ctx.settings.incidents.renotify
    if renotify is not None and now - int(incident["notified"]) >= seconds_to_micros(renotify):
        incident["notified"] = now
        draft.notes.append(f"incident still open (renotify every {renotify:g}s)")
        draft.evidence["incident"] = {**info, "reason": "renotify"}
        return draft
    incident["held"] = int(incident["held"]) + 1
    ctx.stats["suppressed:incident_open"] += 1
    return None


def resolve_incident(ctx: PolicyContext, draft: Draft) -> Draft | None:
    """Close the key's open incident: the resolved alert, or None without one."""
    f = draft.finding
    incident = ctx.state.incidents.pop(f.cooldown_key, None)
    if incident is None or not ctx.settings.incidents.enabled:
        ctx.stats["resolved:no_incident"] += 1
        return None
    rank = int(incident["rank"])
    draft.severity = _SEVERITY_OF_RANK[rank]
    draft.incident_id = str(incident["id"])
    draft.evidence["incident"] = {
        "opened_at": from_micros(int(incident["opened"])).isoformat(),
        "held": incident["held"],
        "quiet_observations": f.window_events,
    }
    ctx.stats["incidents:resolved"] += 1
    return draft


def deduplicate(ctx: PolicyContext, draft: Draft) -> Draft | None:
    if draft.alert_id in ctx.state.ids:
        ctx.stats["suppressed:duplicate"] += 1
        return None
    ctx.state.ids.append(draft.alert_id)
    del ctx.state.ids[: -ctx.settings.dedup_memory]
    return draft


CHAIN: Final[tuple[Step, ...]] = (
    suppress_maintenance,
    apply_hysteresis,
    escalate,
    track_incident,
    deduplicate,
)


def _prune_levels(ctx: PolicyContext, now: int) -> None:
    clear = seconds_to_micros(ctx.settings.hysteresis.clear_after)
    levels = ctx.state.levels
    for key in [k for k, v in levels.items() if now - int(v["last"]) > clear]:
        del levels[key]


class AlertPolicy:
    """Runs findings through the chain; remembers emitted alerts for escalation
    and rollback rules."""

    def __init__(self, settings: PolicySettings, chain: tuple[Step, ...] = CHAIN) -> None:
        self.settings = settings
        self.chain = chain
        self.stats: Counter[str] = Counter()

    def decide(self, finding: Finding, state: PolicyState, keep_recent: int) -> Draft | None:
        ctx = PolicyContext(self.settings, state, self.stats, keep_recent)
        draft: Draft | None = Draft(
            finding=finding,
            severity=finding.severity,
            alert_id=alert_id_for(finding),
            evidence=dict(finding.evidence),
        )
        if finding.level == "resolved":
            assert draft is not None
            return deduplicate(ctx, draft) if resolve_incident(ctx, draft) else None
        for step in self.chain:
            assert draft is not None
            draft = step(ctx, draft)
            if draft is None:
                return None
        assert draft is not None
        _prune_levels(ctx, finding.at)
        _prune_recent(ctx, finding.at)
        if draft.rank >= SEVERITY_RANK["drift"]:
            state.recent.append(
                {
                    "signal": finding.signal,
                    "rank": draft.rank,
                    "at": finding.at,
                    "alert_id": draft.alert_id,
                }
            )
        return draft


def to_alert(draft: Draft) -> AlertEvent:
    f = draft.finding
    summary = f.summary
    if draft.severity != f.severity or draft.notes:
        summary = (
            f"{summary} [{draft.severity}{'; ' if draft.notes else ''}{'; '.join(draft.notes)}]"
        )
    return AlertEvent(
        alert_id=draft.alert_id,
        status="resolved" if f.level == "resolved" else "firing",
        incident_id=draft.incident_id,
        model_id=f.model_id,
        model_version=f.model_version,
        variant=f.variant,
        signal=f.signal,
        segment=f.segment,
        detector=DetectorInfo(name=f.detector, params=f.params),
        severity=draft.severity,
        statistic=f.statistic,
        threshold=f.threshold,
        p_value=f.p_value,
        window=WindowBounds(
            start=None if f.window_start is None else from_micros(f.window_start),
            end=from_micros(f.at),
            events=f.window_events,
        ),
        detected_at=from_micros(f.at),
        source=SourcePosition(
            topic=f.origin.topic, partition=f.origin.partition, offset=f.origin.offset
        ),
        evidence=draft.evidence,
        summary=summary,
    )


# ------------------------------------------------------------------- rollback
def _matches(rule: RollbackRule, signal: str) -> bool:
    return any(fnmatch.fnmatchcase(signal, pattern) for pattern in rule.signals)


def _rule_holds(rule: RollbackRule, draft: Draft, state: PolicyState) -> list[str] | None:
    """The alert ids that make ``rule`` hold with ``draft`` among them, or None."""
    f = draft.finding
    floor = SEVERITY_RANK[rule.min_severity]
    if draft.rank < floor or not _matches(rule, f.signal):
        return None
    horizon = f.at - seconds_to_micros(rule.within)
    by_signal = {
        signal: alert_id
        for signal, alert_id in _active(state, horizon, floor).items()
        if _matches(rule, signal)
    }
    by_signal[f.signal] = draft.alert_id
    if len(by_signal) < rule.k:
        return None
    return sorted(by_signal.values())


def evaluate_rollback(
    spec: RollbackSpec,
    draft: Draft,
    state: PolicyState,
    registry: CheckpointRegistry | None,
    from_version: str,
    *,
    force_dry_run: bool = False,
) -> RollbackCommand | None:
    """The rollback command ``draft`` (just emitted) triggers, if any; the draft's
    evidence and notes record the decision either way."""
    f = draft.finding
    if f.level == "resolved":
        return None
    dry_run = spec.dry_run or force_dry_run
    for rule in spec.rules:
        alert_ids = _rule_holds(rule, draft, state)
        if alert_ids is None:
            continue
        incident = state.incident
        if incident is not None and f.at - int(incident["at"]) < seconds_to_micros(spec.cooldown):
            draft.evidence["rollback"] = {
                "rule": rule.name,
                "status": "incident_open",
                "command_id": incident["command_id"],
            }
            return None
        checkpoint = None if registry is None else registry.last_stable
        if checkpoint is None:
            draft.evidence["rollback"] = {"rule": rule.name, "status": "no_stable_checkpoint"}
            draft.notes.append(
                f"rollback rule '{rule.name}' holds, but no stable checkpoint is known for "
                f"{f.model_id}: no rollback issued"
            )
            return None
        command_id = stable_id(
            "rollback",
            f.model_id,
            checkpoint.checkpoint_id,
            f.origin.topic,
            f.origin.partition,
            f.origin.offset,
        )
        state.incident = {
            "at": f.at,
            "command_id": command_id,
            "rule": rule.name,
            "checkpoint": checkpoint.checkpoint_id,
        }
        draft.evidence["rollback"] = {
            "rule": rule.name,
            "status": "dry_run" if dry_run else "issued",
            "command_id": command_id,
            "to_checkpoint": checkpoint.checkpoint_id,
        }
        draft.notes.append(
            f"rollback{' (dry run)' if dry_run else ''} to {checkpoint.checkpoint_id}"
        )
        return RollbackCommand(
            command_id=command_id,
            model_id=f.model_id,
            from_version=from_version,
            to_checkpoint=checkpoint.checkpoint_id,
            reason=f"rule '{rule.name}' held: {f.summary}",
            alert_ids=alert_ids,
            issued_at=from_micros(f.at),
            dry_run=dry_run,
            rule=rule.name,
            checkpoint_run_id=checkpoint.run_id,
            checkpoint_step=checkpoint.step,
            source=SourcePosition(
                topic=f.origin.topic, partition=f.origin.partition, offset=f.origin.offset
            ),
        )
    return None
