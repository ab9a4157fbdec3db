"""Reference training orchestrator: acts on driftline's rollback commands, exactly once.

    python deploy/examples/orchestrator.py --config deploy/examples/driftline.yaml \\
        --actions-log restored.jsonl

The contract (docs/orchestrator.md; JSON Schemas in schemas/):

1. **Input**: ``RollbackCommand`` records (schema ``driftline.rollback-command.v1``) on
   ``topics.rollback_commands``, read with ``isolation_level=read_committed`` by the
   consumer group ``--group-id``. Key = ``model_id``. CloudEvents binary-mode headers
   (``ce_id`` = ``command_id``, ``ce_type`` = ``dev.driftline.rollback-command.v1``).
2. **Idempotency**: a ``command_id`` that was acknowledged before is a no-op. Handled
   command ids are kept in a compacted *acks* topic (``--acks-topic``, key =
   ``command_id``), read back in full at start-up; the consumer group's offsets say
   where reading resumes.
3. **Action**: the checkpoint ``to_checkpoint`` is restored (here: a line appended to
   ``--actions-log``; replace :class:`FileRestorer` with a call to your training
   platform, passing ``command_id`` as its idempotency key). ``dry_run`` commands are
   acknowledged without acting.
4. **Report**: a ``TrainingEvent`` (schema ``driftline.training.v1``) on
   ``topics.training``: ``event_id`` = ``rollback-<command_id>``, ``checkpoint_id`` =
   ``to_checkpoint``, ``run_id``/``step`` of that checkpoint, ``checkpoint_stable:
   true``, ``metrics: {}``. The sidecar registers the restored checkpoint as the
   model's last stable one: the loop is closed.
5. **Atomicity**: the training event, the ack and the consumer offset of the command
   are committed in one Kafka transaction (``--transactional-id``, stable per
   instance). A crash before the commit re-delivers the command; the action is then
   repeated, which is why it must be idempotent by ``command_id`` (FileRestorer is).

Only kafka-python and driftline's event models (pipeline.events) are used, so the file
can be copied into an orchestrator's own code base.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, ProducerFencedError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from pipeline.config import load_settings
from pipeline.events import RollbackCommand, TrainingEvent
from pipeline.io.client_options import client_options as checked_options

ACK_SCHEMA = "driftline.rollback-ack.v1"


def log(event: str, **fields: Any) -> None:
    """One JSON line per event on stderr."""
    record = {"at": datetime.now(UTC).isoformat(), "event": event, **fields}
    print(json.dumps(record, default=str), file=sys.stderr, flush=True)


# --------------------------------------------------------------------- action
class Restorer(Protocol):
    def restore(self, command: RollbackCommand) -> None:
        """Restore ``command.to_checkpoint`` for ``command.model_id``; idempotent by
        ``command.command_id`` (it may be called again after a crash)."""


class FileRestorer:
    """Stands in for a training platform: appends what it restored to a JSONL file,
    once per command id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    self.done.add(json.loads(line)["command_id"])

    def restore(self, command: RollbackCommand) -> None:
        if command.command_id in self.done:
            return
        line = json.dumps(
            {
                "command_id": command.command_id,
                "model_id": command.model_id,
                "from_version": command.from_version,
                "checkpoint": command.to_checkpoint,
                "restored_at": datetime.now(UTC).isoformat(),
            }
        )
        with self.path.open("a") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.done.add(command.command_id)


# --------------------------------------------------------------- the contract
def training_report(command: RollbackCommand, now: datetime) -> TrainingEvent:
    """The training event that tells driftline which checkpoint is live again."""
    return TrainingEvent(
        event_id=f"rollback-{command.command_id}",
        model_id=command.model_id,
        run_id=command.checkpoint_run_id or f"rollback-{command.command_id[:16]}",
        checkpoint_id=command.to_checkpoint,
        step=command.checkpoint_step or 0,
        timestamp=now,
        metrics={},
        checkpoint_stable=True,
    )


def ack(command: RollbackCommand, status: str, now: datetime, by: str) -> dict[str, Any]:
    """The record kept (compacted, key = command_id) for every handled command."""
    return {
        "schema": ACK_SCHEMA,
        "command_id": command.command_id,
        "model_id": command.model_id,
        "to_checkpoint": command.to_checkpoint,
        "status": status,
        "training_event_id": f"rollback-{command.command_id}" if status == "restored" else None,
        "acked_at": now.isoformat(),
        "orchestrator": by,
    }


# ----------------------------------------------------------------- the loop
class Orchestrator:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        client_options: Mapping[str, Any],
        commands_topic: str,
        training_topic: str,
        acks_topic: str,
        group_id: str,
        transactional_id: str,
        restorer: Restorer,
    ) -> None:
        self.commands_topic = commands_topic
        self.training_topic = training_topic
        self.acks_topic = acks_topic
        self.transactional_id = transactional_id
        self.restorer = restorer
        # Through driftline's gate: unreadable TLS files named, secrets kept out of logs.
        self.kafka = {"bootstrap_servers": bootstrap_servers, **checked_options(client_options)}
        self.stats = {"restored": 0, "dry_run": 0, "duplicate": 0, "invalid": 0}
        self._ensure_acks_topic()
        self.acked = self._load_acks()
        log("acks_loaded", topic=acks_topic, command_ids=len(self.acked))
        self.producer = KafkaProducer(
            **self.kafka,
            transactional_id=transactional_id,
            acks="all",
            enable_idempotence=True,
        )
        self.producer.init_transactions()  # fences a zombie with the same id
        self.consumer = KafkaConsumer(
            **self.kafka,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self.consumer.subscribe([commands_topic])

    def _ensure_acks_topic(self) -> None:
        admin = KafkaAdminClient(**self.kafka)
        try:
            if self.acks_topic not in admin.list_topics():
                topic = NewTopic(self.acks_topic, 1, 1, topic_configs={"cleanup.policy": "compact"})
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics([topic])
        finally:
            admin.close()

    def _load_acks(self) -> set[str]:
        """Every command id acknowledged so far (committed acks only)."""
        consumer = KafkaConsumer(
            **self.kafka, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
        )
        try:
            deadline = time.monotonic() + 30
            while not (partitions := consumer.partitions_for_topic(self.acks_topic)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"acks topic {self.acks_topic} has no partitions")
                time.sleep(0.2)
            tps = [TopicPartition(self.acks_topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            acked: set[str] = set()
            deadline = time.monotonic() + 120
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out reading the acks topic {self.acks_topic}")
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        if record.key is not None and record.value is not None:
                            acked.add(record.key.decode())
            return acked
        finally:
            consumer.close()

    def run(self, stop: threading.Event, idle_exit_s: float | None = None) -> None:
        last_work = time.monotonic()
        while not stop.is_set():
            polled = self.consumer.poll(timeout_ms=500, max_records=100)
            records = [r for batch in polled.values() for r in batch]
            if not records:
                if idle_exit_s is not None and time.monotonic() - last_work > idle_exit_s:
                    return
                continue
            last_work = time.monotonic()
            try:
                self._handle(records)
            except ProducerFencedError:
                log("fenced", transactional_id=self.transactional_id)
                raise
            except KafkaError as exc:
                log("transaction_failed", error=str(exc) or type(exc).__name__)
                self._rewind()

    def _handle(self, records: list[Any]) -> None:
        """One transaction: the reports and acks of ``records`` and their offsets."""
        now = datetime.now(UTC)
        acked_now: set[str] = set()
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        counts = dict.fromkeys(self.stats, 0)
        handled: list[tuple[str, RollbackCommand]] = []
        self.producer.begin_transaction()
        try:
            for record in records:
                tp = TopicPartition(record.topic, record.partition)
                offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
                try:
                    command = RollbackCommand.model_validate_json(record.value or b"")
                except ValidationError as exc:
                    counts["invalid"] += 1
                    log("invalid_command", offset=record.offset, error=str(exc)[:500])
                    continue
                if command.command_id in self.acked or command.command_id in acked_now:
                    counts["duplicate"] += 1
                    log("duplicate_command", command_id=command.command_id, offset=record.offset)
                    continue
                if command.dry_run:
                    status = "dry_run"
                else:
                    self.restorer.restore(command)
                    report = training_report(command, now)
                    self.producer.send(
                        self.training_topic,
                        key=command.model_id.encode(),
                        value=report.model_dump_json(by_alias=True, exclude_none=True).encode(),
                        headers=[("schema", b"driftline.training.v1")],
                    )
                    status = "restored"
                self.producer.send(
                    self.acks_topic,
                    key=command.command_id.encode(),
                    value=json.dumps(ack(command, status, now, self.transactional_id)).encode(),
                )
                acked_now.add(command.command_id)
                counts[status] += 1
                handled.append((status, command))
            self.producer.flush()
            self.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
            self.producer.commit_transaction()
        except BaseException:
            with contextlib.suppress(KafkaError):
                self.producer.abort_transaction()
            raise
        self.acked |= acked_now
        for name, n in counts.items():
            self.stats[name] += n
        for status, command in handled:  # committed: now it is true
            log(
                "rollback_" + status,
                command_id=command.command_id,
                model_id=command.model_id,
                to_checkpoint=command.to_checkpoint,
            )

    def _rewind(self) -> None:
        """After an aborted transaction: back to the committed offsets."""
        for tp in self.consumer.assignment():
            committed = self.consumer.committed(tp)
            if committed is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, committed)

    def close(self) -> None:
        self.consumer.close(autocommit=False)
        self.producer.close(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", required=True, help="driftline config (Kafka, topics)")
    parser.add_argument("--group-id", default="driftline-orchestrator")
    parser.add_argument("--acks-topic", default="driftline.rollback-acks")
    instance = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or "local"
    parser.add_argument("--transactional-id", default=f"driftline-orchestrator-{instance}")
    parser.add_argument("--actions-log", default="restored-checkpoints.jsonl")
    parser.add_argument(
        "--exit-when-idle", type=float, help="exit after this many seconds without commands"
    )
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    orchestrator = Orchestrator(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        client_options=settings.kafka.client_options(),
        commands_topic=settings.topics.rollback_commands,
        training_topic=settings.topics.training,
        acks_topic=args.acks_topic,
        group_id=args.group_id,
        transactional_id=args.transactional_id,
        restorer=FileRestorer(Path(args.actions_log)),
    )
    log("orchestrator_started", topic=settings.topics.rollback_commands, group_id=args.group_id)
    try:
        orchestrator.run(stop, idle_exit_s=args.exit_when_idle)
    finally:
        orchestrator.close()
        log("orchestrator_stopped", **orchestrator.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
