"""The subscriber API over an in-memory reader (the Kafka reader is covered by
tests/integration/test_alerts_tail.py)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson
import pytest

from pipeline.core.processor import alert_message, rollback_message
from pipeline.core.records import Record
from pipeline.errors import DecodeError
from pipeline.events import (
    AlertEvent,
    DetectorInfo,
    RollbackCommand,
    Severity,
    SourcePosition,
    WindowBounds,
)
from pipeline.io.base import TopicPartition
from pipeline.subscribe import Filters, Subscription, decode_output

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALERTS, ROLLBACKS = "driftline.alerts", "driftline.rollback-commands"


def alert(n: int, *, model: str = "fraud", severity: Severity = "drift") -> AlertEvent:
    return AlertEvent(
        alert_id=f"alert-{n}",
        model_id=model,
        model_version="1",
        signal="feature:amount",
        detector=DetectorInfo(name="page_hinkley", params={}),
        severity=severity,
        statistic=1.0,
        threshold=0.5,
        window=WindowBounds(start=None, end=AT, events=10),
        detected_at=AT,
        source=SourcePosition(topic="p", partition=0, offset=n),
    )


def command(n: int, *, model: str = "fraud") -> RollbackCommand:
    return RollbackCommand(
        command_id=f"cmd-{n}",
        model_id=model,
        from_version="1",
        to_checkpoint="ckpt-1",
        reason="test",
        alert_ids=[f"alert-{n}"],
        issued_at=AT,
        dry_run=False,
    )


class ListReader:
    """Delivers pre-made records, ``per_poll`` at a time."""

    def __init__(self, values: list[tuple[str, bytes]], per_poll: int = 2) -> None:
        self.records = [Record(topic, 0, i, value) for i, (topic, value) in enumerate(values)]
        self.per_poll = per_poll
        self.polls = 0
        self.committed: dict[TopicPartition, int] = {}
        self.closed = False

    def poll(self, timeout_ms: int, max_records: int = 500) -> list[Record]:
        self.polls += 1
        batch, self.records = self.records[: self.per_poll], self.records[self.per_poll :]
        return batch

    def caught_up(self) -> bool:
        return not self.records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def close(self) -> None:
        self.closed = True


def wire(event: AlertEvent | RollbackCommand) -> tuple[str, bytes]:
    if isinstance(event, AlertEvent):
        return ALERTS, alert_message(event).value or b""
    return ROLLBACKS, rollback_message(event).value or b""


def subscription(events: list[tuple[str, bytes]], **kwargs: object) -> Subscription:
    return Subscription(
        ListReader(events),
        topic_kinds={ALERTS: "alert", ROLLBACKS: "rollback"},
        poll_timeout_ms=1,
        **kwargs,  # type: ignore[arg-type]
    )


class TestIteration:
    def test_typed_events_in_order(self) -> None:
        events: list[AlertEvent | RollbackCommand] = [alert(1), command(1), alert(2)]
        got = list(subscription([wire(e) for e in events]))
        assert got == events
        assert isinstance(got[1], RollbackCommand)

    def test_deduplicates_by_alert_and_command_id(self) -> None:
        values = [wire(alert(1)), wire(alert(1)), wire(command(1)), wire(command(1))]
        sub = subscription(values)
        assert [type(e).__name__ for e in sub] == ["AlertEvent", "RollbackCommand"]
        assert sub.stats["duplicates"] == 2

    def test_dedup_memory_is_bounded(self) -> None:
        values = [wire(alert(1)), wire(alert(2)), wire(alert(1))]
        assert len(list(subscription(values, dedup_memory=1))) == 3
        assert len(list(subscription(values, dedup_memory=2))) == 2

    def test_invalid_records_are_skipped_and_counted(self) -> None:
        values = [
            (ALERTS, b"{not json"),
            (ALERTS, b'{"schema": "driftline.alert.v1"}'),
            wire(alert(1)),
        ]
        sub = subscription(values)
        assert [e.alert_id for e in sub if isinstance(e, AlertEvent)] == ["alert-1"]
        assert sub.stats["invalid"] == 2

    def test_errors_raise(self) -> None:
        with pytest.raises(DecodeError):
            list(subscription([(ALERTS, b"[]")], errors="raise"))

    def test_deliveries_carry_positions(self) -> None:
        deliveries = list(subscription([wire(alert(1)), wire(command(1))]).deliveries())
        assert [(d.kind, d.topic, d.offset, d.event_id) for d in deliveries] == [
            ("alert", ALERTS, 0, "alert-1"),
            ("rollback", ROLLBACKS, 1, "cmd-1"),
        ]

    def test_commit_records_positions_of_everything_handled(self) -> None:
        sub = subscription([wire(alert(1)), wire(alert(1)), wire(command(2))])
        list(sub)
        sub.commit()
        assert isinstance(sub.reader, ListReader)
        assert sub.reader.committed == {(ALERTS, 0): 2, (ROLLBACKS, 0): 3}

    def test_context_manager_closes_the_reader(self) -> None:
        reader = ListReader([])
        with Subscription(reader) as sub:
            assert list(sub) == []
        assert reader.closed


class TestFilters:
    def test_models(self) -> None:
        values = [wire(alert(1, model="a")), wire(alert(2, model="b")), wire(command(3, model="b"))]
        got = list(subscription(values, filters=Filters(models=frozenset({"b"}))))
        assert [e.model_id for e in got] == ["b", "b"]

    def test_min_severity_applies_to_alerts_only(self) -> None:
        values = [
            wire(alert(1, severity="warning")),
            wire(alert(2, severity="drift")),
            wire(alert(3, severity="critical")),
            wire(command(4)),
        ]
        sub = subscription(values, filters=Filters(min_severity="drift"))
        got = list(sub)
        assert [getattr(e, "severity", "rollback") for e in got] == [
            "drift",
            "critical",
            "rollback",
        ]
        assert sub.stats["filtered"] == 1

    def test_kinds(self) -> None:
        values = [wire(alert(1)), wire(command(1))]
        only = Filters(kinds=frozenset({"rollback"}))
        assert [type(e) for e in subscription(values, filters=only)] == [RollbackCommand]


class TestFollow:
    def test_without_follow_stops_when_caught_up(self) -> None:
        sub = subscription([wire(alert(n)) for n in range(5)])
        assert len(list(sub)) == 5

    def test_follow_waits_until_stopped(self) -> None:
        sub = subscription([wire(alert(1))], follow=True)
        got: list[object] = []

        def consume() -> None:
            got.extend(sub)

        thread = threading.Thread(target=consume)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive(), "a following subscription must not stop when caught up"
        sub.stop()
        thread.join(5)
        assert not thread.is_alive()
        assert len(got) == 1 and sub.stopped

    def test_stop_from_the_loop_body(self) -> None:
        sub = subscription([wire(alert(n)) for n in range(6)], follow=True)
        got = []
        for event in sub:
            got.append(event)
            if len(got) == 3:
                sub.stop()
        assert len(got) == 3


class TestDecodeOutput:
    def test_kind_from_schema_tag_wins_over_topic(self) -> None:
        event = decode_output(wire(command(1))[1], "alert")
        assert isinstance(event, RollbackCommand)

    def test_kind_from_topic_when_the_tag_is_missing(self) -> None:
        body = alert(1).model_dump(by_alias=True, mode="json")
        del body["schema"]
        assert isinstance(decode_output(orjson.dumps(body), "alert"), AlertEvent)
        with pytest.raises(DecodeError):
            decode_output(orjson.dumps(body))

    def test_unknown_schema(self) -> None:
        with pytest.raises(DecodeError, match="unknown schema"):
            decode_output(b'{"schema": "driftline.alert.v9"}')


class TestIncidents:
    def _incident(self) -> list[AlertEvent]:
        opened = alert(1).model_copy(update={"incident_id": "alert-1"})
        worse = alert(2, severity="critical").model_copy(update={"incident_id": "alert-1"})
        closed = alert(3).model_copy(update={"incident_id": "alert-1", "status": "resolved"})
        other = alert(4, model="churn").model_copy(update={"incident_id": "alert-4"})
        return [opened, worse, closed, other]

    def test_open_incidents_follow_firing_and_resolved(self) -> None:
        opened, worse, closed, other = self._incident()
        sub = subscription([wire(opened), wire(worse)])
        assert list(sub) == [opened, worse]
        assert dict(sub.open_incidents) == {"alert-1": worse}
        sub = subscription([wire(e) for e in (opened, worse, closed, other)])
        list(sub)
        assert dict(sub.open_incidents) == {"alert-4": other}

    def test_status_filter(self) -> None:
        events = self._incident()
        sub = subscription(
            [wire(e) for e in events], filters=Filters(statuses=frozenset({"resolved"}))
        )
        assert [e.alert_id for e in sub if isinstance(e, AlertEvent)] == ["alert-3"]
        assert sub.stats["filtered"] == 3

    def test_a_version_1_alert_reads_as_firing(self) -> None:
        v1 = alert(1).as_v1().model_dump_json(by_alias=True).encode()
        (event,) = list(subscription([(ALERTS, v1)]))
        assert isinstance(event, AlertEvent)
        assert (event.schema_, event.status, event.incident_id) == (
            "driftline.alert.v1",
            "firing",
            None,
        )
