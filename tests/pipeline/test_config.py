from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_settings, parse_settings
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


class TestLoadSettings:
    def test_example_config_is_valid(self) -> None:
        settings = load_settings(REPO / "deploy" / "examples" / "driftline.yaml", environ={})
        assert settings.default_model is not None
        assert {m.signal for m in settings.default_model.monitors} >= {
            "confidence",
            "feature:amount",
        }

    def test_environment_overrides(self) -> None:
        settings = parse_settings(
            {"kafka": {"bootstrap_servers": "a:1"}},
            environ={
                "DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS": "b:2",
                "DRIFTLINE_RUNTIME__FAIL_FAST": "true",
                "DRIFTLINE_RUNTIME__MAX_BATCH_EVENTS": "42",
                "UNRELATED": "x",
            },
        )
        assert settings.kafka.bootstrap_servers == "b:2"
        assert settings.runtime.fail_fast is True
        assert settings.runtime.max_batch_events == 42

    @pytest.mark.parametrize(
        ("data", "names"),
        [
            ({"kafka": {"bootstrap_server": "x"}}, "kafka.bootstrap_server"),
            ({"runtime": {"max_batch_events": 0}}, "runtime.max_batch_events"),
            ({"limits": {"max_pending_labels": 0}}, "limits.max_pending_labels"),
            ({"limits": {"max_pending_labels": "many"}}, "limits.max_pending_labels"),
            (
                {"models": {"fraud": {"monitors": [{"signal": "confidence", "detector": "nope"}]}}},
                "models.fraud.monitors[0].detector",
            ),
            (
                {
                    "models": {
                        "fraud": {"monitors": [{"signal": "colour", "detector": "page_hinkley"}]}
                    }
                },
                "models.fraud.monitors[0].signal",
            ),
            (
                {
                    "models": {
                        "fraud": {
                            "monitors": [
                                {
                                    "signal": "confidence",
                                    "detector": "page_hinkley",
                                    "params": {"colour": 1},
                                }
                            ]
                        }
                    }
                },
                "models.fraud.monitors[0]: params.colour: not a parameter of page_hinkley",
            ),
        ],
    )
    def test_errors_name_the_key(self, data: dict[str, object], names: str) -> None:
        with pytest.raises(ConfigError) as info:
            parse_settings(data, environ={})
        assert names in str(info.value)

    def test_env_error_names_the_key(self) -> None:
        with pytest.raises(ConfigError, match=r"runtime\.max_batch_events"):
            parse_settings({}, environ={"DRIFTLINE_RUNTIME__MAX_BATCH_EVENTS": "many"})

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read"):
            load_settings(tmp_path / "nope.yaml", environ={})

    def test_bad_yaml(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text("kafka: [unclosed")
        with pytest.raises(ConfigError, match="not valid YAML"):
            load_settings(path, environ={})


def _model(**spec: object) -> dict[str, object]:
    return {"models": {"fraud": spec}}


class TestMonitorConfig:
    def test_full_example_config_is_valid(self) -> None:
        settings = load_settings(REPO / "deploy" / "examples" / "full.yaml", environ={})
        assert settings.models
        assert settings.policy.maintenance
        assert any(s.rollback is not None for s in settings.models.values())
        (calibrated,) = [
            m for s in settings.models.values() for m in s.monitors if m.calibrate is not None
        ]
        reference = calibrated.calibrate.reference if calibrated.calibrate else None
        assert reference == str(
            REPO / "deploy" / "examples" / "reference" / "confidence-stable.json"
        )

    def test_a_feature_list_means_numeric_features(self) -> None:
        settings = parse_settings(_model(features=["amount"]), environ={})
        assert settings.models["fraud"].features == {"amount": "numeric"}

    def test_severity_shorthand_and_mapping(self) -> None:
        settings = parse_settings(
            _model(
                monitors=[
                    {"signal": "confidence", "detector": "adwin", "severity": "critical"},
                    {
                        "signal": "error",
                        "detector": "ddm",
                        "severity": {"drift": "critical", "warning": "warning"},
                    },
                ]
            ),
            environ={},
        )
        first, second = settings.models["fraud"].monitors
        assert (first.severity.drift, first.severity.warning) == ("critical", None)
        assert (second.severity.drift, second.severity.warning) == ("critical", "warning")

    def test_loading_reads_no_calibration_reference(self, tmp_path: Path) -> None:
        monitor = {
            "signal": "confidence",
            "detector": "page_hinkley",
            "calibrate": {"target_arl0": 500, "reference": "missing.json"},
        }
        settings = parse_settings(_model(monitors=[monitor]), environ={}, base_dir=tmp_path)
        (spec,) = settings.models["fraud"].monitors
        assert spec.calibrate is not None
        assert spec.calibrate.reference == str(tmp_path / "missing.json")

    def test_a_second_monitor_of_a_signal_needs_a_name_with_derived_monitors_on(self) -> None:
        twice = [{"signal": "confidence", "detector": "adwin"}] * 2
        with pytest.raises(ConfigError, match=r"monitors\[1\]: a second adwin on confidence"):
            parse_settings(
                _model(features=["amount"], default_monitors=True, monitors=twice), environ={}
            )

    def test_durations(self) -> None:
        settings = parse_settings(
            {
                "policy": {"cooldown": "90s", "escalation": {"within": "2h"}},
                "limits": {"idle_expiry": 60},
            },
            environ={},
        )
        assert settings.policy.cooldown == 90.0
        assert settings.policy.escalation.within == 7200.0
        assert settings.limits.idle_expiry == 60.0

    def test_rollback_rule_shorthands(self) -> None:
        settings = parse_settings(
            _model(
                rollback={
                    "rules": [
                        {"when": "critical"},
                        {"when": "forgetting"},
                        {"signals": ["feature:*", "error"], "k": 2, "within": "30m"},
                    ]
                }
            ),
            environ={},
        )
        rollback = settings.models["fraud"].rollback
        assert rollback is not None
        critical, forgetting, k_of_n = rollback.rules
        assert (critical.signals, critical.min_severity) == (["*"], "critical")
        assert forgetting.signals == ["training.legacy_val_loss"]
        assert (k_of_n.k, k_of_n.within, k_of_n.min_severity) == (2, 1800.0, "drift")

    @pytest.mark.parametrize(
        ("data", "names"),
        [
            (_model(monitors=[{"signal": "feature:am*nt", "detector": "adwin"}]), "models.fraud.monitors[0].signal"),
            (_model(monitors=[{"signal": "confidence", "detector": "adwin", "severity": "loud"}]), "models.fraud.monitors[0].severity.drift"),
            (_model(monitors=[{"signal": "confidence", "detector": "adwin", "max_segments": 0}]), "models.fraud.monitors[0].max_segments"),
            (_model(monitors=[{"signal": "confidence", "detector": "adwin", "calibrate": {"target_arl0": 100}}]), "models.fraud.monitors[0].calibrate"),
            (_model(monitors=[{"signal": "confidence", "detector": "adwin"}, {"signal": "confidence", "detector": "adwin"}]), "models.fraud: Value error, monitors[1]"),
            (_model(features={"amount": "numberish"}), "models.fraud.features.amount"),
            (_model(labels={"ttl": "soon"}), "models.fraud.labels.ttl"),
            (_model(shadow={"alpha": 2}), "models.fraud.shadow.alpha"),
            (_model(golden={"match": "input"}), "models.fraud.golden.match"),
            (_model(rollback={"rules": []}), "models.fraud.rollback.rules"),
            (_model(rollback={"rules": [{"signals": ["error"], "k": 2}]}), "models.fraud.rollback.rules[0]"),
            (_model(rollback={"rules": [{"when": "sometimes"}]}), "models.fraud.rollback.rules[0].when"),
            ({"policy": {"maintenance": [{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}]}}, "policy.maintenance[0]"),
            ({"policy": {"hysteresis": {"confirm_within": -1}}}, "policy.hysteresis.confirm_within"),
            ({"limits": {"max_keys": 0}}, "limits.max_keys"),
        ],
    )  # fmt: skip
    def test_errors_name_the_key(self, data: dict[str, object], names: str) -> None:
        with pytest.raises(ConfigError) as info:
            parse_settings(data, environ={})
        assert names.split(": ")[0] in str(info.value)


def test_prefixed_topics_follow_the_default_names() -> None:
    from pipeline.config import TopicSettings

    topics = TopicSettings.prefixed("run-1")
    assert topics == {
        name: default.replace("driftline.", "run-1.", 1)
        for name, default in TopicSettings().model_dump().items()
    }
    assert topics["rollback_commands"] == "run-1.rollback-commands"
    assert TopicSettings(**topics).inputs()["run-1.predictions"] == "prediction"
