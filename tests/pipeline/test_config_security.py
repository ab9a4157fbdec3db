"""Kafka security settings and environment overrides: values taken literally for text
settings, settings the protocol would ignore refused, secrets never in an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import KafkaSecurity, load_settings, parse_settings
from pipeline.errors import ConfigError

SCRAM = {
    "protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "driftline",
    "sasl_password": "pw-from-file",
}


class TestEnvironmentValues:
    @pytest.mark.parametrize(
        "password",
        ["*abc", "!abc", "[abc", "12345678", "abc #x", "yes", "null", "'abc'", "{a: b}", "~"],
    )
    def test_text_settings_are_taken_literally(self, password: str) -> None:
        settings = parse_settings(
            {"kafka": {"security": SCRAM}},
            environ={"DRIFTLINE_KAFKA__SECURITY__SASL_PASSWORD": password},
        )
        assert settings.kafka.security.sasl_password == password

    def test_literal_for_nested_and_optional_text(self) -> None:
        settings = parse_settings(
            {"models": {"m": {"features": ["a"]}}},
            environ={
                "DRIFTLINE_KAFKA__GROUP_ID": "007",
                "DRIFTLINE_TOPICS__ALERTS": "on",
                "DRIFTLINE_RUNTIME__MODE": "at_least_once",
                "DRIFTLINE_MODELS__M__FEATURES": "[a, b]",  # a list: still YAML
                "DRIFTLINE_KAFKA__EXTRA__LINGER_MS": "5",  # Any: YAML
            },
        )
        assert settings.kafka.group_id == "007"
        assert settings.topics.alerts == "on"
        assert settings.runtime.mode == "at_least_once"
        assert settings.kafka.extra == {"linger_ms": 5}

    def test_yaml_error_does_not_print_the_value(self) -> None:
        with pytest.raises(ConfigError) as info:
            parse_settings({}, environ={"DRIFTLINE_RUNTIME__FAIL_FAST": "[canary-3141"})
        assert "DRIFTLINE_RUNTIME__FAIL_FAST" in str(info.value)
        assert "canary" not in str(info.value)

    def test_config_file_yaml_error_does_not_print_the_line(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text("kafka:\n  security:\n    sasl_password: [canary-2718\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path, environ={})
        assert "not valid YAML (line" in str(info.value)
        assert "canary" not in str(info.value)


class TestKafkaSecurity:
    @pytest.mark.parametrize(
        ("settings", "named"),
        [
            (
                {"protocol": "PLAINTEXT", "sasl_username": "u", "sasl_password": "p"},
                "sasl_username",
            ),
            ({"protocol": "PLAINTEXT", "ssl_cafile": "/ca.pem"}, "ssl_cafile"),
            (
                {
                    "protocol": "SASL_PLAINTEXT",
                    **{k: v for k, v in SCRAM.items() if k != "protocol"},
                },
                "SASL_PLAINTEXT",
            ),
            ({"protocol": "SSL", "sasl_mechanism": "PLAIN"}, "sasl_mechanism"),
            ({"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"}, "sasl_password"),
        ],
    )
    def test_settings_the_protocol_would_ignore_are_refused(
        self, settings: dict[str, Any], named: str
    ) -> None:
        with pytest.raises(ConfigError) as info:
            parse_settings({"kafka": {"security": settings}}, environ={})
        assert named in str(info.value)
        assert "kafka.security" in str(info.value)

    def test_plaintext_credentials_when_allowed(self) -> None:
        security = KafkaSecurity(
            protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="u",
            sasl_password="p",
            allow_plaintext_credentials=True,
        )
        assert security.client_options()["security_protocol"] == "SASL_PLAINTEXT"

    def test_client_options_and_repr(self, tmp_path: Path) -> None:
        security = KafkaSecurity(
            **SCRAM, ssl_cafile=str(tmp_path / "ca.pem"), ssl_password="key-secret"
        )
        options = security.client_options()
        assert options["sasl_plain_password"] == "pw-from-file"
        assert options["ssl_password"] == "key-secret"
        assert "pw-from-file" not in repr(security) and "key-secret" not in repr(security)
        assert security.missing_files() == [
            f"kafka.security.ssl_cafile: cannot read {tmp_path / 'ca.pem'}"
        ]
        (tmp_path / "ca.pem").write_text("x")
        assert security.missing_files() == []
