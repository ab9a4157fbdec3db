from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

from pipeline.config import PolicySettings, RollbackSpec
from pipeline.core.eventtime import micros
from pipeline.core.monitor import Finding, Origin
from pipeline.core.policy import (
    AlertPolicy,
    Draft,
    PolicyContext,
    PolicyState,
    alert_id_for,
    apply_cooldown,
    apply_hysteresis,
    deduplicate,
    escalate,
    evaluate_rollback,
    suppress_maintenance,
    to_alert,
)
from pipeline.core.processor import Processor
from pipeline.core.training import Checkpoint, CheckpointRegistry
from pipeline.generate import DriftSpec, GeneratorConfig
from tests.pipeline.core.helpers import at, flat, records, run, settings

S = 1_000_000  # microseconds


def finding(signal: str = "feature:amount", t: float = 0.0, **fields: Any) -> Finding:
    base = Finding(
        model_id="m",
        model_version="1",
        variant="production",
        signal=signal,
        monitor="cusum",
        segment=None,
        detector="cusum",
        params={"h": 5.0},
        level="drift",
        severity="drift",
        statistic=6.0,
        threshold=5.0,
        p_value=None,
        window_start=micros(at(0)),
        window_events=10,
        at=micros(at(t)),
        origin=Origin("events", 0, int(t * 10)),
    )
    return replace(base, **fields)


def ctx(**policy: Any) -> PolicyContext:
    return PolicyContext(PolicySettings(**policy), PolicyState(), Counter(), 3600 * S)


def draft(f: Finding) -> Draft:
    return Draft(f, f.severity, alert_id_for(f), dict(f.evidence))


class TestSteps:
    def test_maintenance_window_suppresses(self) -> None:
        c = ctx(
            maintenance=[{"start": at(10), "end": at(20), "models": ["m"], "reason": "retraining"}]
        )
        assert suppress_maintenance(c, draft(finding(t=15))) is None
        assert suppress_maintenance(c, draft(finding(t=20))) is not None
        assert suppress_maintenance(c, draft(finding(t=15, model_id="other"))) is not None
        assert c.stats["suppressed:maintenance"] == 1

    def test_hysteresis_warns_first_then_confirms(self) -> None:
        c = ctx(hysteresis={"enabled": True, "confirm_within": "60s", "clear_after": "300s"})
        first = apply_hysteresis(c, draft(finding(t=0)))
        assert first is not None and first.severity == "warning"
        second = apply_hysteresis(c, draft(finding(t=30)))
        assert second is not None and second.severity == "drift"
        # quiet for longer than clear_after: back to warning first
        third = apply_hysteresis(c, draft(finding(t=400)))
        assert third is not None and third.severity == "warning"

    def test_hysteresis_drops_warnings_of_a_key_in_drift(self) -> None:
        c = ctx(hysteresis={"enabled": True})
        apply_hysteresis(c, draft(finding(t=0)))
        apply_hysteresis(c, draft(finding(t=1)))
        assert apply_hysteresis(c, draft(finding(t=2, level="warning", severity="warning"))) is None

    def test_hysteresis_skips_decisions(self) -> None:
        c = ctx(hysteresis={"enabled": True})
        d = apply_hysteresis(c, draft(finding(severity="critical", hysteresis=False)))
        assert d is not None and d.severity == "critical"

    def test_escalation_when_several_signals_fire(self) -> None:
        c = ctx(escalation={"signals": 3, "within": "60s"})
        c.state.recent = [
            {"signal": "feature:a", "rank": 2, "at": micros(at(0)), "alert_id": "x"},
            {"signal": "confidence", "rank": 2, "at": micros(at(50)), "alert_id": "y"},
        ]
        late = escalate(c, draft(finding("error", t=70)))  # feature:a is out of the window
        assert late is not None and late.severity == "drift"
        c.state.recent[0]["at"] = micros(at(20))
        d = escalate(c, draft(finding("error", t=70)))
        assert d is not None and d.severity == "critical"
        assert d.evidence["escalation"]["signals"] == ["confidence", "error", "feature:a"]

    def test_cooldown_per_key_lets_higher_severities_through(self) -> None:
        c = ctx(cooldown="60s")
        assert apply_cooldown(c, draft(finding(t=0))) is not None
        assert apply_cooldown(c, draft(finding(t=30))) is None
        other_key = finding(t=30, segment={"country": "DE"})
        assert apply_cooldown(c, draft(other_key)) is not None
        assert apply_cooldown(c, draft(finding(t=40, severity="critical"))) is not None
        assert apply_cooldown(c, draft(finding(t=100))) is not None

    def test_deduplication_by_alert_id(self) -> None:
        c = ctx(dedup_memory=2)
        f = finding(t=1)
        assert deduplicate(c, draft(f)) is not None
        assert deduplicate(c, draft(f)) is None
        assert deduplicate(c, draft(finding(t=2))) is not None
        assert deduplicate(c, draft(finding(t=3))) is not None
        assert deduplicate(c, draft(f)) is not None  # forgotten (bounded memory)


class TestAlerts:
    def test_alert_ids_are_deterministic_and_positional(self) -> None:
        assert alert_id_for(finding(t=1)) == alert_id_for(finding(t=1))
        assert alert_id_for(finding(t=1)) != alert_id_for(finding(t=2))
        assert alert_id_for(finding(t=1)) != alert_id_for(finding(t=1, variant="shadow"))

    def test_alerts_carry_their_evidence(self) -> None:
        f = finding(t=5, evidence={"offsets": {"first": {"topic": "events", "offset": 3}}})
        policy = AlertPolicy(PolicySettings())
        d = policy.decide(f, PolicyState(), 3600 * S)
        assert d is not None
        alert = to_alert(d)
        assert alert.statistic == 6.0 and alert.threshold == 5.0
        assert alert.window.start == at(0) and alert.window.end == at(5)
        assert alert.window.events == 10
        assert alert.source.offset == 50
        assert alert.evidence["offsets"]["first"]["offset"] == 3


def registry(*ids: str) -> CheckpointRegistry:
    return CheckpointRegistry(
        [Checkpoint(c, "run-1", k, k, "training", k) for k, c in enumerate(ids)]
    )


def emitted(f: Finding, state: PolicyState) -> Draft:
    d = AlertPolicy(PolicySettings()).decide(f, state, 3600 * S)
    assert d is not None
    return d


class TestRollbackRules:
    def test_critical_alert_rolls_back_to_the_last_stable_checkpoint(self) -> None:
        spec = RollbackSpec(rules=[{"when": "critical"}])
        state = PolicyState()
        d = emitted(finding(t=1, severity="critical"), state)
        command = evaluate_rollback(spec, d, state, registry("c1", "c2"), "7")
        assert command is not None
        assert command.to_checkpoint == "c2"
        assert command.from_version == "7"
        assert command.alert_ids == [d.alert_id]
        assert d.evidence["rollback"]["command_id"] == command.command_id

    def test_k_of_n_signals_within_a_window(self) -> None:
        spec = RollbackSpec(rules=[{"signals": ["feature:*", "error"], "k": 2, "within": "60s"}])
        state = PolicyState()
        first = emitted(finding("feature:amount", t=0), state)
        assert evaluate_rollback(spec, first, state, registry("c1"), "1") is None
        unrelated = emitted(finding("confidence", t=10), state)
        assert evaluate_rollback(spec, unrelated, state, registry("c1"), "1") is None
        second = emitted(finding("error", t=20), state)
        command = evaluate_rollback(spec, second, state, registry("c1"), "1")
        assert command is not None
        assert sorted(command.alert_ids) == sorted([first.alert_id, second.alert_id])

    def test_outside_the_window_the_rule_does_not_hold(self) -> None:
        spec = RollbackSpec(rules=[{"signals": ["feature:*", "error"], "k": 2, "within": "60s"}])
        state = PolicyState()
        emitted(finding("feature:amount", t=0), state)
        emitted(finding("feature:amount", t=30, level="resolved"), state)
        late = emitted(finding("error", t=120), state)
        assert evaluate_rollback(spec, late, state, registry("c1"), "1") is None

    def test_an_open_incident_counts_after_the_window(self) -> None:
        # Intended with incidents: a lasting change is alerted once, and still counts.
        spec = RollbackSpec(rules=[{"signals": ["feature:*", "error"], "k": 2, "within": "60s"}])
        state = PolicyState()
        first = emitted(finding("feature:amount", t=0), state)
        late = emitted(finding("error", t=120), state)
        command = evaluate_rollback(spec, late, state, registry("c1"), "1")
        assert command is not None
        assert sorted(command.alert_ids) == sorted([first.alert_id, late.alert_id])

    def test_never_twice_for_one_incident(self) -> None:
        spec = RollbackSpec(rules=[{"when": "critical"}], cooldown="1h")
        state = PolicyState()
        d1 = emitted(finding(t=0, severity="critical"), state)
        assert evaluate_rollback(spec, d1, state, registry("c1"), "1") is not None
        d2 = emitted(finding("error", t=600, severity="critical"), state)
        assert evaluate_rollback(spec, d2, state, registry("c1"), "1") is None
        assert d2.evidence["rollback"]["status"] == "incident_open"
        # (another signal: "error" is still an open incident, its repeats are held back)
        d3 = emitted(finding("confidence", t=4000, severity="critical"), state)
        assert evaluate_rollback(spec, d3, state, registry("c1"), "1") is not None

    def test_no_rollback_without_a_stable_checkpoint_and_the_alert_says_so(self) -> None:
        spec = RollbackSpec(rules=[{"when": "critical"}])
        state = PolicyState()
        d = emitted(finding(t=0, severity="critical"), state)
        assert evaluate_rollback(spec, d, state, None, "1") is None
        assert evaluate_rollback(spec, d, state, CheckpointRegistry(), "1") is None
        assert d.evidence["rollback"]["status"] == "no_stable_checkpoint"
        assert "no stable checkpoint is known for m" in to_alert(d).summary
        assert state.incident is None  # a later checkpoint may still allow one

    def test_dry_run(self) -> None:
        spec = RollbackSpec(rules=[{"when": "critical"}], dry_run=True)
        state = PolicyState()
        d = emitted(finding(t=0, severity="critical"), state)
        command = evaluate_rollback(spec, d, state, registry("c1"), "1")
        assert command is not None and command.dry_run
        forced = RollbackSpec(rules=[{"when": "critical"}])
        d = emitted(finding(t=1, severity="critical", signal="error"), PolicyState())
        command = evaluate_rollback(
            forced, d, PolicyState(), registry("c1"), "1", force_dry_run=True
        )
        assert command is not None and command.dry_run


FORGETTING = {
    "models": {
        "model-0": {
            "features": ["amount"],
            "rollback": {"rules": [{"when": "forgetting"}], "cooldown": "1h"},
        }
    },
    # renotify: the open incident is alerted again, so the rollback cooldown is what
    # keeps it to one command
    "policy": {"cooldown": "10s", "incidents": {"renotify": "10s"}},
}


class TestRollbackEndToEnd:
    def _run(self, stream: GeneratorConfig, config: dict[str, Any] = FORGETTING) -> list[Any]:
        return run(Processor(settings(**config)), records(stream))

    def test_forgetting_rolls_back_once_to_the_last_stable_checkpoint(self) -> None:
        stream = GeneratorConfig(
            events=3000,
            numeric_features=1,
            categorical_features=0,
            training_every=2,
            stable_every=10,
            # forgetting that comes back again and again: several alerts, one incident
            drifts=(
                DriftSpec("training.legacy_val_loss", kind="recurring", at=1000, width=200,
                          magnitude=8.0),
            ),
        )  # fmt: skip
        outputs = self._run(stream)
        alerts = flat(outputs, "alert")
        commands = flat(outputs, "rollback")
        assert len([a for a in alerts if a["signal"] == "training.legacy_val_loss"]) >= 2
        assert len(commands) == 1
        command = commands[0]
        # The last checkpoint reported stable before the drift: step 500 (position 999).
        assert command["to_checkpoint"] == "model-0-finetune-1-step500"
        assert command["from_version"] == "1"
        assert command["rule"] == "forgetting"
        assert not command["dry_run"]
        # A replay issues the same command id (idempotent downstream).
        assert flat(self._run(stream), "rollback") == commands

    def test_a_model_with_no_stable_checkpoint(self) -> None:
        stream = GeneratorConfig(
            events=2000,
            numeric_features=1,
            categorical_features=0,
            training_every=2,
            stable_every=10_000,  # never stable
            drifts=(DriftSpec("training.legacy_val_loss", at=1000, magnitude=8.0),),
        )
        outputs = self._run(stream)
        assert flat(outputs, "rollback") == []
        (alert,) = [a for a in flat(outputs, "alert") if a["signal"] == "training.legacy_val_loss"]
        assert alert["evidence"]["rollback"]["status"] == "no_stable_checkpoint"
        assert "no stable checkpoint" in alert["summary"]

    def test_dry_run_mode_publishes_the_command_marked(self) -> None:
        config: dict[str, Any] = {"models": {"model-0": {**FORGETTING["models"]["model-0"]}}}
        config["models"]["model-0"]["rollback"] = {
            "rules": [{"when": "forgetting"}],
            "dry_run": True,
        }
        stream = GeneratorConfig(
            events=2000,
            numeric_features=1,
            categorical_features=0,
            training_every=2,
            drifts=(DriftSpec("training.legacy_val_loss", at=1000, magnitude=8.0),),
        )
        processor = Processor(settings(**config))
        messages = [m for out in run(processor, records(stream)) for m in out]
        (command,) = [m for m in messages if m.kind == "rollback"]
        assert dict(command.headers)["dry_run"] == b"true"
        assert flat([[command]])[0]["dry_run"] is True
