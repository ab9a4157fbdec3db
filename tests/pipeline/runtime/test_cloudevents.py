"""CloudEvents binary-mode headers of output messages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.processor import (
    alert_message,
    alert_message_v1,
    dead_letter,
    rollback_message,
)
from pipeline.core.records import Message, Record
from pipeline.events import AlertEvent, DetectorInfo, RollbackCommand, SourcePosition, WindowBounds
from pipeline.runtime.cloudevents import (
    CE_TYPES,
    cloudevent_headers,
    with_cloudevent_headers,
)

AT = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def _alert(model_id: str = "fraud") -> AlertEvent:
    return AlertEvent(
        alert_id="a" * 32,
        model_id=model_id,
        model_version="3",
        signal="feature:amount",
        detector=DetectorInfo(name="page_hinkley", params={"threshold": 50.0}),
        severity="drift",
        statistic=61.0,
        threshold=50.0,
        window=WindowBounds(start=None, end=AT, events=400),
        detected_at=AT,
        source=SourcePosition(topic="driftline.predictions", partition=2, offset=1234),
    )


def _command() -> RollbackCommand:
    return RollbackCommand(
        command_id="c" * 32,
        model_id="fraud",
        from_version="3",
        to_checkpoint="ckpt-41",
        reason="rule 'critical' held",
        alert_ids=["a" * 32],
        issued_at=AT,
        dry_run=False,
    )


def _dead_letter(key: bytes | None = b"fraud") -> Message:
    record = Record("driftline.predictions", 1, 77, b"{not json", key)
    message = dead_letter(record, "malformed_json", "expected value")
    return Message(
        message.kind,
        message.key,
        message.value,
        (*message.headers, ("dl_failed_at", b"2024-05-01T12:31:00+00:00")),
    )


def _as_dict(headers: tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    names = [n for n, _ in headers]
    assert len(names) == len(set(names)), f"repeated header in {names}"
    return {n: v.decode() for n, v in headers}


class TestAlert:
    def test_required_attributes_come_from_the_payload(self) -> None:
        h = _as_dict(cloudevent_headers(alert_message(_alert())))
        assert h == {
            "ce_specversion": "1.0",
            "ce_id": "a" * 32,
            "ce_type": "dev.driftline.alert.v2",
            "ce_source": "driftline/fraud",
            "ce_time": "2024-05-01T12:30:00Z",
            "ce_subject": "feature:amount",
            "content-type": "application/json",
        }

    def test_a_version_1_alert_keeps_its_v1_type(self) -> None:
        message = alert_message_v1(_alert())
        assert message is not None
        assert _as_dict(cloudevent_headers(message))["ce_type"] == "dev.driftline.alert.v1"

    def test_time_is_rfc3339_and_parses_back_to_detected_at(self) -> None:
        h = _as_dict(cloudevent_headers(alert_message(_alert())))
        assert datetime.fromisoformat(h["ce_time"]) == AT

    def test_deterministic(self) -> None:
        assert cloudevent_headers(alert_message(_alert())) == cloudevent_headers(
            alert_message(_alert())
        )

    def test_model_id_is_percent_encoded_in_the_source(self) -> None:
        h = _as_dict(cloudevent_headers(alert_message(_alert("team a/fraud"))))
        assert h["ce_source"] == "driftline/team%20a%2Ffraud"

    def test_source_template_is_configurable(self) -> None:
        message = alert_message(_alert())
        h = _as_dict(cloudevent_headers(message, source="https://ml.example/{model_id}"))
        assert h["ce_source"] == "https://ml.example/fraud"
        h = _as_dict(cloudevent_headers(message, source="urn:driftline:prod"))
        assert h["ce_source"] == "urn:driftline:prod"


class TestRollbackCommand:
    def test_attributes(self) -> None:
        h = _as_dict(cloudevent_headers(rollback_message(_command())))
        assert h["ce_id"] == "c" * 32
        assert h["ce_type"] == "dev.driftline.rollback-command.v1"
        assert h["ce_source"] == "driftline/fraud"
        assert h["ce_time"] == "2024-05-01T12:30:00Z"
        assert h["ce_subject"] == "ckpt-41"


class TestDeadLetter:
    def test_id_is_stable_per_source_position(self) -> None:
        first = _as_dict(cloudevent_headers(_dead_letter()))
        assert first["ce_type"] == "dev.driftline.dead-letter.v1"
        assert first["ce_time"] == "2024-05-01T12:31:00+00:00"
        assert first["ce_subject"] == "malformed_json"
        assert first["ce_source"] == "driftline/fraud"
        assert first["content-type"] == "application/octet-stream"  # never parsed as JSON
        assert first == _as_dict(cloudevent_headers(_dead_letter()))
        other = dead_letter(Record("driftline.predictions", 1, 78, b"x", b"fraud"), "r", "d")
        assert _as_dict(cloudevent_headers(other))["ce_id"] != first["ce_id"]

    @pytest.mark.parametrize("key", [None, b"", b"\xff\xfe", b"a\nb", b"m" * 257])
    def test_unreadable_key_gives_a_generic_source(self, key: bytes | None) -> None:
        assert _as_dict(cloudevent_headers(_dead_letter(key)))["ce_source"] == "driftline/unknown"

    def test_without_failed_at_there_is_no_time(self) -> None:
        message = dead_letter(Record("t", 0, 1, b"x"), "oversized", "too big")
        assert "ce_time" not in _as_dict(cloudevent_headers(message))


class TestOtherKinds:
    def test_state_records_get_no_headers(self) -> None:
        assert cloudevent_headers(Message("state", b"k", b"{}", partition=0)) == ()

    def test_every_published_kind_has_a_type(self) -> None:
        assert set(CE_TYPES) == {"alert", "rollback", "dead_letter"}

    def test_garbage_payload_still_gets_an_id(self) -> None:
        h = _as_dict(cloudevent_headers(Message("alert", b"m", b"\x00garbage")))
        assert len(h["ce_id"]) == 32
        assert h["ce_source"] == "driftline/m"
        assert "ce_time" not in h


class TestWithCloudeventHeaders:
    def test_keeps_existing_headers_and_replaces_ce_ones(self) -> None:
        message = alert_message(_alert())
        once = with_cloudevent_headers(message)
        twice = with_cloudevent_headers(once)
        assert once == twice
        assert once.headers[0] == ("schema", b"driftline.alert.v2")
        assert len(once.headers) == 1 + len(cloudevent_headers(message))

    def test_state_message_unchanged(self) -> None:
        message = Message("state", b"k", b"{}", partition=3)
        assert with_cloudevent_headers(message) is message
