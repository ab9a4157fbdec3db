"""Drive real sidecar processes against the real broker, and check what they wrote.

The semantics checker compares the committed output topics with an *oracle*: the
same input records (read back from Kafka, so offsets match) processed by one
uninterrupted in-memory Processor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from pipeline.config import Settings, TopicSettings, load_settings
from pipeline.core.processor import Processor
from pipeline.core.records import Record
from pipeline.io.kafka_topics import produce_all
from pipeline.runtime.exit_codes import STALL_EXIT_CODE

REPO = Path(__file__).resolve().parents[2]

MONITORS = [
    {
        "signal": "feature:amount",
        "detector": "page_hinkley",
        "params": {"threshold": 300.0, "delta": 5.0, "min_instances": 100, "alpha": 1.0},
    },
    {
        "signal": "confidence",
        "detector": "page_hinkley",
        "params": {"threshold": 1.5, "delta": 0.02, "min_instances": 100, "alpha": 1.0},
    },
]


@dataclass
class Deployment:
    """Topics and config of one test's sidecar group."""

    bootstrap: str
    prefix: str
    partitions: int
    config_path: Path
    settings: Settings

    @property
    def topics(self) -> Any:
        return self.settings.topics


def deploy(
    bootstrap: str,
    tmp_path: Path,
    *,
    partitions: int = 3,
    runtime: dict[str, Any] | None = None,
    monitors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Deployment:
    """Create uniquely named topics and write a sidecar config for them."""
    prefix = f"it-{uuid.uuid4().hex[:10]}"
    topics = TopicSettings.prefixed(prefix)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    name,
                    partitions if key in ("predictions", "features", "labels", "training") else 1,
                    1,
                )
                for key, name in topics.items()
                if key != "state"
            ]
        )
    finally:
        admin.close()
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": prefix, "client_id": prefix},
        "topics": topics,
        "runtime": {
            "http_port": None,
            # A sidecar whose poll loop stalls exits (code 3) after 1.5x this and
            # `supervise` restarts it, as Kubernetes would.
            "liveness_timeout_s": 30,
            "max_batch_events": 500,
            "max_batch_ms": 50,
            **(runtime or {}),
        },
        "default_model": {"monitors": monitors or MONITORS},
        **(extra or {}),
    }
    path = tmp_path / f"{prefix}.yaml"
    path.write_text(yaml.safe_dump(data))
    return Deployment(bootstrap, prefix, partitions, path, load_settings(path, environ={}))


class SidecarProcess:
    """``driftline run`` as a child process, killable with SIGKILL."""

    def __init__(self, deployment: Deployment, instance: str, log_dir: Path, **env: str) -> None:
        self.deployment = deployment
        self.instance = instance
        self.log_path = log_dir / f"{deployment.prefix}-{instance}.log"
        self.env = {
            **os.environ,
            "DRIFTLINE_KAFKA__TRANSACTIONAL_ID": f"{deployment.prefix}-{instance}",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> SidecarProcess:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n==== start {self.starts}\n".encode())
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "--log-json",
                "run",
                "--config",
                str(self.deployment.config_path),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
        )
        log.close()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines skipped)."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def set_topic_config(bootstrap: str, topic: str, **configs: str) -> None:
    """Alter ``topic``'s configuration (dots in names as underscores: ``max_message_bytes``)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    topic,
                    configs={k.replace("_", "."): v for k, v in configs.items()},
                )
            ]
        )
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, items: Iterable[tuple[str, bytes]]) -> int:
    """Produce keyed values (key = model_id, so a model stays on one partition); the
    bad-input corpus holds 1 MB messages."""
    return produce_all(bootstrap, topic, items, linger_ms=10, max_request_size=4 << 20)


def read_topic(bootstrap: str, topic: str, *, committed_only: bool = True) -> list[Any]:
    """Every record of ``topic`` up to its current end (read_committed by default)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        max_partition_fetch_bytes=4 << 20,
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"timed out reading {topic}"
            for records in consumer.poll(timeout_ms=300).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def input_records(deployment: Deployment) -> list[Record]:
    """The input topics' records as the sidecar saw them (topic, partition, offset)."""
    records = []
    for topic in deployment.topics.inputs():
        for r in read_topic(deployment.bootstrap, topic):
            records.append(Record(r.topic, r.partition, r.offset, r.value, r.key, r.timestamp))
    return records


def oracle(deployment: Deployment, records: Sequence[Record]) -> tuple[list[bytes], list[bytes]]:
    """Alerts and dead-letter payloads of one uninterrupted in-memory run."""
    processor = Processor(deployment.settings, deployment.topics.inputs())
    ordered = sorted(records, key=lambda r: (r.partition, r.topic, r.offset))
    alerts, dead = [], []
    for record in ordered:
        for message in processor.process(record):
            if message.kind in ("alert", "rollback"):
                alerts.append(message.value or b"")
            elif message.kind == "dead_letter":
                dead.append(message.value or b"")
    return sorted(alerts), sorted(dead)


def committed_total(deployment: Deployment) -> int:
    """Sum of the group's committed offsets over the input topics (0 if unknown)."""
    admin = KafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    try:
        committed = admin.list_group_offsets({deployment.prefix: None}).get(deployment.prefix, {})
    except KafkaError:
        return 0
    finally:
        admin.close()
    inputs = set(deployment.topics.inputs())
    return sum(max(0, om.offset) for tp, om in committed.items() if tp.topic in inputs)


def wait_for_progress(
    deployment: Deployment, beyond: int, sidecars: Sequence[SidecarProcess], timeout: float = 120
) -> int:
    """Wait until the group committed more than ``beyond`` input records in total, so
    that a fault injected next lands mid-stream, not during start-up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = committed_total(deployment)
        if total > beyond:
            return total
        supervise(sidecars)
        time.sleep(0.2)
    raise AssertionError(f"no progress past {beyond} committed records within {timeout}s")


def _data_ends(consumer: KafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Offset after the last *data* record of each partition: a transactional
    producer leaves a commit marker at the end that no consumer ever commits past."""
    ends = consumer.end_offsets(tps)
    out: dict[TopicPartition, int] = {}
    for tp in tps:
        if ends[tp] == 0:
            out[tp] = 0
            continue
        consumer.assign([tp])
        consumer.seek(tp, max(0, ends[tp] - 8))
        last = -1
        deadline = time.monotonic() + 10
        while consumer.position(tp) < ends[tp] and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                last = max([last, *(r.offset for r in records)])
        out[tp] = last + 1 if last >= 0 else ends[tp]
    return out


def group_caught_up(deployment: Deployment) -> bool:
    """True when the group's committed offsets reached the last record of every input
    partition."""
    admin = KafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    consumer = KafkaConsumer(
        bootstrap_servers=deployment.bootstrap, group_id=None, isolation_level="read_committed"
    )
    try:
        try:
            committed = admin.list_group_offsets({deployment.prefix: None}).get(
                deployment.prefix, {}
            )
        except KafkaError:  # e.g. offsets still pending in an open transaction
            return False
        tps = [
            TopicPartition(t, p)
            for t in deployment.topics.inputs()
            for p in range(deployment.partitions)
        ]
        ends = _data_ends(consumer, tps)
        return all(
            ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp]) for tp in tps
        )
    finally:
        admin.close()
        consumer.close()


def supervise(sidecars: Sequence[SidecarProcess]) -> None:
    """Restart a sidecar that exited on its stall watchdog (code 3), as its
    supervisor would; any other exit is a failure."""
    for s in sidecars:
        if s.proc is not None and s.proc.poll() == STALL_EXIT_CODE:
            s.start()
        assert s.running, f"sidecar {s.instance} died:\n{s.log_tail()}"


def wait_caught_up(
    deployment: Deployment, sidecars: Sequence[SidecarProcess], timeout: float = 180
) -> None:
    timeout = max(timeout, 150.0)  # room for one stall-watchdog restart
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if group_caught_up(deployment):
            return
        supervise(sidecars)
        time.sleep(1)
    for s in sidecars:  # dump their stacks into their logs: where are they stuck?
        if s.running and s.proc is not None:
            s.proc.send_signal(signal.SIGUSR1)
    time.sleep(1)
    tails = "\n".join(f"--- {s.instance}\n{s.log_tail(120)}" for s in sidecars)
    raise AssertionError(f"the group did not catch up within {timeout}s\n{tails}")


def check_semantics(deployment: Deployment, *, at_least_once: bool = False) -> dict[str, int]:
    """No alert lost, same detections as the oracle; every bad record in the
    dead-letter topic with a reason. Exactly-once: nothing duplicated.
    At-least-once: repeats allowed, but only as byte-identical copies (same alert
    or command id, same payload), compared after dropping them by id."""
    expected_alerts, expected_dead = oracle(deployment, input_records(deployment))
    got_alerts = sorted(
        r.value
        for topic in (deployment.topics.alerts, deployment.topics.rollback_commands)
        for r in read_topic(deployment.bootstrap, topic)
    )
    dlq = read_topic(deployment.bootstrap, deployment.topics.dlq)
    repeats = 0
    if at_least_once:
        by_id: dict[str, bytes] = {}
        for value in got_alerts:
            body = orjson.loads(value)
            ident = body.get("alert_id") or body["command_id"]
            assert by_id.setdefault(ident, value) == value, f"{ident} repeated with other content"
        repeats = len(got_alerts) - len(by_id)
        got_alerts = sorted(by_id.values())
        letters: dict[tuple[bytes, bytes, bytes], Any] = {}
        for r in dlq:
            h = dict(r.headers)
            letters.setdefault((h["dl_topic"], h["dl_partition"], h["dl_offset"]), r)
        repeats += len(dlq) - len(letters)
        dlq = list(letters.values())
    duplicates = [v for v, n in Counter(got_alerts).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} duplicated alerts, e.g. {duplicates[0][:200]!r}"
    missing = sorted(set(expected_alerts) - set(got_alerts))
    extra = sorted(set(got_alerts) - set(expected_alerts))
    assert not missing and not extra, (
        f"{len(missing)} alerts missing and {len(extra)} unexpected "
        f"(expected {len(expected_alerts)}, got {len(got_alerts)}); "
        f"first missing: {missing[:1]!r}; first unexpected: {extra[:1]!r}"
    )
    got_dead = sorted(r.value or b"" for r in dlq)  # a tombstone's letter is null too
    assert got_dead == expected_dead, "dead letters differ from the oracle's"
    assert len(dlq) == len(
        {(dict(r.headers)["dl_topic"], dict(r.headers)["dl_offset"]) for r in dlq}
    )
    for r in dlq:
        headers = dict(r.headers)
        assert headers["dl_reason"], "a dead letter without a reason"
    return {"alerts": len(got_alerts), "dead_letters": len(dlq), "repeats": repeats}
