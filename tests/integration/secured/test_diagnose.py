"""The connection probe against the real secured broker (and the plain one): each wrong
setting is named, and a right one passes."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.io.diagnose import diagnose
from tests.integration.secured.conftest import SecuredBroker, _free_port


def variant(broker: SecuredBroker, change: dict[str, Any]) -> dict[str, Any]:
    options = broker.options("reader") | change
    return {k: v for k, v in options.items() if v is not None}


@pytest.mark.parametrize(
    ("change", "cause", "setting", "says"),
    [
        ({"sasl_plain_password": "wrong"}, "authentication", "sasl_password", "refused user 'reader'"),
        ({"sasl_plain_username": "ghost"}, "authentication", "sasl_password", "refused user 'ghost'"),
        ({"sasl_mechanism": "SCRAM-SHA-256"}, "sasl_mechanism", "sasl_mechanism", "offers SCRAM-SHA-512"),
        ({"security_protocol": "SASL_PLAINTEXT"}, "protocol", "protocol", "speaks TLS: use SASL_SSL"),
        (
            {"security_protocol": "PLAINTEXT", "sasl_mechanism": None, "ssl_cafile": None},
            "protocol",
            "protocol",
            "speaks TLS",
        ),
        (
            {"security_protocol": "SSL", "sasl_mechanism": None},
            "protocol",
            "protocol",
            "requires SASL authentication",
        ),
        ({"ssl_cafile": "/etc/ssl/certs/ca-certificates.crt"}, "tls", "ssl_cafile", "does not verify"),
    ],
)  # fmt: skip
def test_each_wrong_setting_is_named(
    secured_broker: SecuredBroker, change: dict[str, Any], cause: str, setting: str, says: str
) -> None:
    found = diagnose(secured_broker.bootstrap, variant(secured_broker, change))
    assert found is not None
    assert (found.cause, setting in found.setting, says in found.message) == (cause, True, True)
    assert secured_broker.password("reader") not in str(found)


def test_right_settings_pass(secured_broker: SecuredBroker, kafka_bootstrap: str) -> None:
    assert diagnose(secured_broker.bootstrap, secured_broker.options("reader")) is None
    assert diagnose(kafka_bootstrap, {}) is None


def test_tls_client_at_a_plaintext_listener(
    secured_broker: SecuredBroker, kafka_bootstrap: str
) -> None:
    found = diagnose(kafka_bootstrap, secured_broker.options("reader"))
    assert found is not None and found.cause == "protocol"
    assert "does not speak TLS" in found.message


def test_unreachable_is_not_a_config_problem() -> None:
    found = diagnose(f"127.0.0.1:{_free_port()}", {})
    assert found is not None and found.cause == "unreachable" and not found.is_config
