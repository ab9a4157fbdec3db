"""Incidents: one firing alert per lasting change, a resolved alert when it is over."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.config import PolicySettings
from pipeline.core.policy import AlertPolicy, PolicyState, to_alert
from pipeline.core.processor import Processor
from pipeline.events import AlertEvent
from pipeline.generate import DriftSpec, GeneratorConfig
from tests.pipeline.core.helpers import flat, records, run, settings
from tests.pipeline.core.test_policy import S, finding


def decide(policy: AlertPolicy, state: PolicyState, **fields: Any) -> Any:
    return policy.decide(finding(**fields), state, 3600 * S)


class TestPolicy:
    def test_repeats_of_an_open_incident_are_held_back(self) -> None:
        policy, state = AlertPolicy(PolicySettings()), PolicyState()
        first = decide(policy, state, t=0)
        assert first is not None and first.incident_id == first.alert_id
        # long after any cooldown: still the same incident, nothing sent
        assert decide(policy, state, t=5000) is None
        assert decide(policy, state, t=90_000) is None
        assert policy.stats["suppressed:incident_open"] == 2
        assert state.incidents[first.finding.cooldown_key]["held"] == 2

    def test_a_higher_severity_notifies_the_same_incident(self) -> None:
        policy, state = AlertPolicy(PolicySettings()), PolicyState()
        first = decide(policy, state, t=0)
        worse = decide(policy, state, t=60, severity="critical")
        assert worse is not None and worse.incident_id == first.alert_id
        assert worse.evidence["incident"]["reason"] == "severity_rose"
        assert decide(policy, state, t=120, severity="critical") is None

    def test_renotify(self) -> None:
        policy = AlertPolicy(PolicySettings(incidents={"renotify": "1h"}))
        state = PolicyState()
        first = decide(policy, state, t=0)
        assert decide(policy, state, t=1800) is None
        again = decide(policy, state, t=3600)
        assert again is not None and again.incident_id == first.alert_id
        assert again.evidence["incident"] == {
            "opened_at": "2026-01-01T00:00:00+00:00",
            "held": 1,
            "reason": "renotify",
        }
        assert decide(policy, state, t=3700) is None

    def test_resolved_closes_the_incident_and_a_new_change_opens_another(self) -> None:
        policy, state = AlertPolicy(PolicySettings()), PolicyState()
        first = decide(policy, state, t=0, severity="critical")
        resolved = decide(policy, state, t=100, level="resolved", window_events=2000)
        assert resolved is not None
        alert = to_alert(resolved)
        assert (alert.status, alert.incident_id, alert.severity) == (
            "resolved",
            first.alert_id,
            "critical",
        )
        assert alert.alert_id != first.alert_id
        assert state.incidents == {}
        again = decide(policy, state, t=200)
        assert again is not None and again.incident_id == again.alert_id != first.alert_id

    def test_resolved_without_an_open_incident_is_dropped(self) -> None:
        policy = AlertPolicy(
            PolicySettings(
                maintenance=[{"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}]
            )
        )
        state = PolicyState()
        assert decide(policy, state, t=0) is None  # maintenance: no incident opened
        assert decide(policy, state, t=10, level="resolved") is None
        assert policy.stats["resolved:no_incident"] == 1

    def test_disabled_falls_back_to_the_cooldown(self) -> None:
        policy = AlertPolicy(PolicySettings(incidents={"enabled": False}, cooldown="60s"))
        state = PolicyState()
        assert decide(policy, state, t=0) is not None
        assert decide(policy, state, t=30) is None
        assert decide(policy, state, t=90) is not None
        assert decide(policy, state, t=100, level="resolved") is None

    def test_state_round_trip_keeps_open_incidents(self) -> None:
        policy, state = AlertPolicy(PolicySettings()), PolicyState()
        decide(policy, state, t=0)
        restored = PolicyState.from_state(state.to_state())
        assert restored.incidents == state.incidents
        assert decide(policy, restored, t=10) is None
        # snapshots written before incidents existed still restore
        old = state.to_state()
        del old["incidents"]
        assert PolicyState.from_state(old).incidents == {}


def stream(seed: int = 3, **drift: Any) -> GeneratorConfig:
    return GeneratorConfig(
        events=6000,
        models=1,
        numeric_features=1,
        categorical_features=0,
        seed=seed,
        drifts=(DriftSpec("feature:amount", **drift),) if drift else (),
    )


# A shift of one feature that comes and goes, watched by a KS window against a fixed
# baseline: a detector that keeps its reference, so it fires again and again while
# the shift lasts (held back: one incident) and is quiet once it is over (resolved).
_BASELINE = [orjson.loads(r.value)["features"]["amount"] for r in records(stream(seed=99))[:300]]
LASTING = {
    "models": {
        "model-0": {
            "monitors": [
                {
                    "signal": "feature:amount",
                    "detector": "ks_window",
                    "params": {"alpha": 1e-4, "window_size": 100, "baseline": _BASELINE},
                    "resolve_after": 600,
                }
            ]
        }
    }
}


class TestEndToEnd:
    def test_one_firing_alert_then_resolved_when_the_change_is_over(self) -> None:
        config = stream(kind="recurring", at=1500, width=1500, magnitude=3.0)
        alerts = flat(run(Processor(settings(**LASTING)), records(config)), "alert")
        statuses = [a["status"] for a in alerts]
        assert statuses[:2] == ["firing", "resolved"], statuses
        assert alerts[1]["incident_id"] == alerts[0]["incident_id"] == alerts[0]["alert_id"]
        assert alerts[1]["window"]["events"] == 600
        for a in alerts:
            AlertEvent.model_validate(a, strict=False)

    def test_batches_and_single_records_agree(self) -> None:
        config = stream(kind="recurring", at=1500, width=1500, magnitude=3.0)
        recs = records(config)
        one = flat(run(Processor(settings(**LASTING)), recs, batch=1), "alert")
        many = flat(run(Processor(settings(**LASTING)), recs, batch=700), "alert")
        assert one == many and len(one) >= 2

    def test_version_1_readers_get_firing_alerts_only(self) -> None:
        config = stream(kind="recurring", at=1500, width=1500, magnitude=3.0)
        v1 = Processor(settings(**LASTING, policy={"alert_schema": 1}))
        outputs = run(v1, records(config))
        alerts = flat(outputs, "alert")
        assert alerts and all(a["schema"] == "driftline.alert.v1" for a in alerts)
        assert all("status" not in a and "incident_id" not in a for a in alerts)
        assert alerts[0]["evidence"]["incident_id"] == alerts[0]["alert_id"]
        assert v1.stats["alerts:resolved_not_published_v1"] >= 1
