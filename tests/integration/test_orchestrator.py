"""The loop closed on the real broker: a stable checkpoint and a degradation go into the
sidecar, its rollback command is acted on once by deploy/examples/orchestrator.py,
which reports the restored checkpoint back as a training event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from pipeline.events import RollbackCommand, TrainingEvent
from pipeline.generate import DriftSpec, GeneratorConfig, generate
from tests.integration.sidecars import (
    REPO,
    SidecarProcess,
    deploy,
    produce,
    read_topic,
    wait_caught_up,
)

ORCHESTRATOR = REPO / "deploy" / "examples" / "orchestrator.py"
CHECKPOINT = "model-0-finetune-3-step40"

# Drift on model-0's amount; rollback as soon as it alerts at drift or above.
ROLLBACK_MODEL = {
    "monitors": [
        {
            "signal": "feature:amount",
            "detector": "page_hinkley",
            "params": {"threshold": 300.0, "delta": 5.0, "min_instances": 100},
        }
    ],
    "rollback": {"rules": [{"signals": ["feature:amount"], "min_severity": "drift"}]},
}
STREAM = GeneratorConfig(
    events=3000,
    models=2,
    seed=5,
    drifts=(DriftSpec(signal="feature:amount", at=1600, magnitude=3.0, model="model-0"),),
)


def stable_checkpoint(model: str = "model-0") -> tuple[str, bytes]:
    event = TrainingEvent(
        event_id="trn-stable-1",
        model_id=model,
        run_id="model-0-finetune-3",
        checkpoint_id=CHECKPOINT,
        step=40,
        timestamp=datetime(2025, 12, 31, 23, tzinfo=UTC),
        metrics={"train_loss": 0.3, "val_loss": 0.35},
        checkpoint_stable=True,
    )
    return model, event.model_dump_json(by_alias=True, exclude_none=True).encode()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class Orchestrator:
    def __init__(self, config: Path, tmp: Path, name: str, group: str, acks: str) -> None:
        self.log_path = tmp / f"orchestrator-{name}.log"
        self.actions = tmp / f"actions-{name}.jsonl"
        self.argv = [
            sys.executable,
            str(ORCHESTRATOR),
            "--config",
            str(config),
            "--group-id",
            group,
            "--acks-topic",
            acks,
            "--transactional-id",
            f"{group}-{name}",
            "--actions-log",
            str(self.actions),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Orchestrator:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        return self

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def logged(self, event: str) -> int:
        assert self.proc is not None
        assert self.proc.poll() is None, f"orchestrator died:\n{self.log_path.read_text()}"
        return sum(1 for e in self.events() if e["event"] == event)

    def actions_taken(self) -> list[dict[str, Any]]:
        if not self.actions.exists():
            return []
        return [json.loads(line) for line in self.actions.read_text().splitlines()]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def group_offset(bootstrap: str, group: str, topic: str, partition: int = 0) -> int:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    committed = offsets.get(TopicPartition(topic, partition))
    return -1 if committed is None else int(committed.offset)


def end_offset(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed"
    )
    try:
        tp = TopicPartition(topic, 0)
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()


class TestOrchestratorContract:
    def test_rollback_command_is_acted_on_exactly_once_and_reported(
        self, kafka_bootstrap: str, tmp_path: Path
    ) -> None:
        deployment = deploy(
            kafka_bootstrap, tmp_path, partitions=2, extra={"default_model": ROLLBACK_MODEL}
        )
        topics = deployment.topics
        sidecar = SidecarProcess(deployment, "a", tmp_path).start()
        orchestrators: list[Orchestrator] = []
        try:
            # 1. A stable checkpoint is known before the degradation starts.
            produce(kafka_bootstrap, topics.training, [stable_checkpoint()])
            wait_caught_up(deployment, [sidecar], timeout=60)
            produce(kafka_bootstrap, topics.predictions, generate(STREAM))
            wait_caught_up(deployment, [sidecar], timeout=60)

            commands = read_topic(kafka_bootstrap, topics.rollback_commands)
            assert len(commands) == 1, [c.value for c in commands]
            command = RollbackCommand.model_validate_json(commands[0].value)
            assert (command.model_id, command.to_checkpoint) == ("model-0", CHECKPOINT)
            assert not command.dry_run
            headers = {k: v.decode() for k, v in commands[0].headers}
            assert headers["ce_id"] == command.command_id
            assert headers["ce_type"] == "dev.driftline.rollback-command.v1"
            assert headers["ce_source"] == "driftline/model-0"
            assert headers["ce_specversion"] == "1.0"
            assert headers["ce_time"] == command.issued_at.isoformat().replace("+00:00", "Z")

            # 2. The orchestrator acts on it once, reports and acknowledges it.
            group, acks = f"{deployment.prefix}-orch", f"{deployment.prefix}.rollback-acks"
            first = Orchestrator(deployment.config_path, tmp_path, "1", group, acks).start()
            orchestrators.append(first)
            wait_for("the rollback", lambda: first.logged("rollback_restored") == 1)
            assert [a["command_id"] for a in first.actions_taken()] == [command.command_id]
            assert [a["checkpoint"] for a in first.actions_taken()] == [CHECKPOINT]

            acked = read_topic(kafka_bootstrap, acks)
            assert [r.key.decode() for r in acked] == [command.command_id]
            ack = orjson.loads(acked[0].value)
            assert ack["status"] == "restored" and ack["to_checkpoint"] == CHECKPOINT

            reports = [
                TrainingEvent.model_validate_json(r.value)
                for r in read_topic(kafka_bootstrap, topics.training)
                if r.value and b"rollback-" in r.value
            ]
            assert len(reports) == 1
            report = reports[0]
            assert report.event_id == f"rollback-{command.command_id}"
            assert report.checkpoint_id == CHECKPOINT and report.checkpoint_stable is True
            assert (report.run_id, report.step) == ("model-0-finetune-3", 40)

            # 3. A redelivered command (same id) is a no-op.
            produce(kafka_bootstrap, topics.rollback_commands, [("model-0", commands[0].value)])
            wait_for("the duplicate", lambda: first.logged("duplicate_command") == 1)
            end = end_offset(kafka_bootstrap, topics.rollback_commands)
            wait_for(
                "the orchestrator's offsets",
                lambda: group_offset(kafka_bootstrap, group, topics.rollback_commands) >= end,
            )
            assert first.stop() == 0

            # 4. A fresh instance in a new group (reads every command again) learns from
            #    the acks topic that the command was handled: it acts on nothing.
            second = Orchestrator(deployment.config_path, tmp_path, "2", f"{group}-b", acks).start()
            orchestrators.append(second)
            wait_for("the second instance", lambda: second.logged("duplicate_command") == 2)
            assert second.logged("rollback_restored") == 0
            assert second.actions_taken() == []
            assert second.stop() == 0

            assert len(first.actions_taken()) == 1
            assert len(read_topic(kafka_bootstrap, acks)) == 1

            # 5. The loop closes: the sidecar consumed the report without complaint.
            #    (A transactional producer's commit marker follows the report, so the
            #    group's offset stops one short of the partition's end: wait for the
            #    report itself.)
            (report_record,) = [
                r
                for r in read_topic(kafka_bootstrap, topics.training)
                if r.value and b"rollback-" in r.value
            ]
            wait_for(
                "the sidecar to consume the report",
                lambda: (
                    group_offset(
                        kafka_bootstrap, deployment.prefix, topics.training, report_record.partition
                    )
                    > report_record.offset
                ),
            )
            assert read_topic(kafka_bootstrap, topics.dlq) == []
            assert len(read_topic(kafka_bootstrap, topics.rollback_commands)) == 2  # + replay
        finally:
            for o in orchestrators:
                if o.proc is not None and o.proc.poll() is None:
                    o.stop(signal.SIGKILL)
            code = sidecar.terminate()
        assert code == 0, sidecar.log_tail()
