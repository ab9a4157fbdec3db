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
                                    "params": {"threshold": -1},
                                }
                            ]
                        }
                    }
                },
                "threshold",
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
                "colour",
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
