"""`driftline alerts tail` and the subscriber API on the real broker: committed data
only, deduplicated, filtered, following until stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer

from pipeline.cli import main
from pipeline.config import load_settings
from pipeline.core.processor import alert_message, rollback_message
from pipeline.events import (
    AlertEvent,
    DetectorInfo,
    RollbackCommand,
    Severity,
    SourcePosition,
    WindowBounds,
)
from pipeline.subscribe import subscribe
from tests.integration.sidecars import REPO

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def aid(n: int) -> str:
    return (f"a{n}-" * 16)[:32]


def alert(n: int, model: str, severity: Severity) -> AlertEvent:
    return AlertEvent(
        alert_id=aid(n),
        model_id=model,
        model_version="7",
        signal="feature:amount",
        detector=DetectorInfo(name="page_hinkley", params={"threshold": 300.0}),
        severity=severity,
        statistic=312.5 + n,
        threshold=300.0,
        window=WindowBounds(start=None, end=AT, events=1800),
        detected_at=AT,
        source=SourcePosition(topic="driftline.predictions", partition=0, offset=1000 + n),
    )


def command(n: int, model: str) -> RollbackCommand:
    return RollbackCommand(
        command_id=(f"c{n}-" * 16)[:32],
        model_id=model,
        from_version="7",
        to_checkpoint="ckpt-6",
        reason="rule 'critical' held",
        alert_ids=[aid(n)],
        issued_at=AT,
        dry_run=False,
    )


@pytest.fixture
def topics(kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path) -> Path:
    """An alerts and a rollback topic holding: alerts 1 (fraud, drift), 2 (churn,
    critical), a rollback command for churn, a duplicate of alert 1 (committed);
    alert 3 in an aborted transaction; alert 4 (fraud, warning) not transactional."""
    alerts, rollbacks = make_topic(partitions=2), make_topic()
    config = tmp_path / "tail.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {"bootstrap_servers": kafka_bootstrap},
                "topics": {"alerts": alerts, "rollback_commands": rollbacks},
            }
        )
    )
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=alerts)
    try:
        producer.init_transactions()

        def send(topic: str, message: object) -> None:
            producer.send(topic, key=message.key, value=message.value)  # type: ignore[attr-defined]

        producer.begin_transaction()
        send(alerts, alert_message(alert(1, "fraud", "drift")))
        send(alerts, alert_message(alert(2, "churn", "critical")))
        send(rollbacks, rollback_message(command(2, "churn")))
        producer.commit_transaction()
        producer.begin_transaction()
        send(alerts, alert_message(alert(3, "fraud", "critical")))
        producer.flush()
        producer.abort_transaction()
        producer.begin_transaction()
        send(alerts, alert_message(alert(1, "fraud", "drift")))
        send(alerts, alert_message(alert(4, "fraud", "warning")))
        producer.commit_transaction()
    finally:
        producer.close()
    return config


@pytest.fixture
def tail(capsys: pytest.CaptureFixture[str]) -> Callable[..., list[str]]:
    """``driftline alerts tail --config CONFIG ARGS...`` in-process: its stdout lines."""

    def run(config: Path, *args: str) -> list[str]:
        capsys.readouterr()
        assert main(["alerts", "tail", "--config", str(config), *args]) == 0
        return capsys.readouterr().out.splitlines()

    return run


class TestAlertsTail:
    def test_committed_deduplicated_readable_and_json(
        self, topics: Path, tail: Callable[..., list[str]]
    ) -> None:
        lines = tail(topics, "--from-beginning")
        assert len(lines) == 4, lines
        assert sum("ROLLBACK" in line for line in lines) == 1
        assert not any(f"id={aid(3)[:12]}" in line for line in lines), "aborted alert shown"
        churn = next(line for line in lines if "churn" in line and "CRITICAL" in line)
        assert "feature:amount  page_hinkley statistic=314.5 threshold=300" in churn

        events = [json.loads(line) for line in tail(topics, "--from-beginning", "--json")]
        ids = sorted(e.get("alert_id") or e["command_id"] for e in events)
        assert ids == sorted([aid(1), aid(2), aid(4), ("c2-" * 16)[:32]])

    def test_filters(self, topics: Path, tail: Callable[..., list[str]]) -> None:
        events = [
            json.loads(line)
            for line in tail(topics, "--from-beginning", "--json", "--model", "fraud")
        ]
        assert sorted(e["alert_id"] for e in events) == [aid(1), aid(4)]
        lines = tail(topics, "--from-beginning", "--severity", "critical")
        assert len(lines) == 2 and all("churn" in line for line in lines)
        assert len(tail(topics, "--from-beginning", "--kind", "rollback")) == 1

    def test_without_from_beginning_starts_near_the_end(
        self, topics: Path, tail: Callable[..., list[str]]
    ) -> None:
        assert tail(topics, "-n", "0") == []
        assert len(tail(topics, "-n", "1")) >= 1

    def test_follow_prints_new_alerts_until_sigterm(
        self, topics: Path, kafka_bootstrap: str
    ) -> None:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "alerts",
                "tail",
                "--config",
                str(topics),
                "--follow",
                "-n",
                "0",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
        reader.start()
        settings = load_settings(topics, environ={})
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        try:
            deadline = time.monotonic() + 45
            while not lines and time.monotonic() < deadline:
                # Until the tail has joined, sends may land before its start: repeat
                # the same alert (same id), the tail shows it once.
                message = alert_message(alert(9, "fraud", "critical"))
                producer.send(settings.topics.alerts, key=message.key, value=message.value)
                producer.flush()
                time.sleep(1.0)
            time.sleep(1.0)
        finally:
            producer.close()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            reader.join(5)
        assert code == 0, proc.stderr.read() if proc.stderr else ""
        assert [json.loads(line)["alert_id"] for line in lines] == [aid(9)]


class TestSubscribeApi:
    def test_typed_events_and_group_commits(self, topics: Path) -> None:
        settings = load_settings(topics, environ={})
        group = f"{settings.topics.alerts}-sub"
        with subscribe(settings, group_id=group, min_severity="drift") as sub:
            got = list(sub)
            sub.commit()
        assert [type(e).__name__ for e in got].count("RollbackCommand") == 1
        assert sorted(e.model_id for e in got if isinstance(e, AlertEvent)) == ["churn", "fraud"]
        assert sub.stats["duplicates"] == 1 and sub.stats["filtered"] == 1
        # The group resumes after what it committed: nothing new.
        with subscribe(settings, group_id=group) as again:
            assert list(again) == []


def test_a_reader_says_where_an_open_transaction_holds_it(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """``OutputTopicReader.positions`` (what the demo prints when alerts do not come):
    the reader's position and the end a ``read_committed`` reader sees, which an open
    transaction holds at its first record while the log goes on past it."""
    from pipeline.io.subscriber import OutputTopicReader

    topic = make_topic()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=topic)
    reader = OutputTopicReader([topic], bootstrap_servers=kafka_bootstrap)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(topic, key=b"fraud", value=alert_message(alert(1, "fraud", "drift")).value)
        producer.commit_transaction()
        producer.begin_transaction()  # left open
        producer.send(topic, key=b"fraud", value=alert_message(alert(2, "fraud", "drift")).value)
        producer.flush()
        deadline = time.monotonic() + 30
        read = []
        while not read and time.monotonic() < deadline:
            read = reader.poll(timeout_ms=500)
        assert len(read) == 1
        reader.poll(timeout_ms=500)
        # offset 0: the committed alert, 1: its commit marker, 2: the open transaction's
        assert reader.positions() == {f"{topic}[0]": (2, 2)}
    finally:
        reader.close()
        producer.close()
