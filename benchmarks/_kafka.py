"""Kafka plumbing of the end-to-end benchmark (``benchmarks/e2e.py``): the local broker,
topics, bulk and paced producing, committed-offset progress of a group, a read_committed
alert collector, and the memory / CPU of a process from ``/proc``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from pipeline.io.kafka_topics import produce_all

__all__ = [
    "AlertCollector",
    "GroupProgress",
    "cpu_seconds",
    "create_topics",
    "delete_topics",
    "end_offsets",
    "ensure_broker",
    "paced_produce",
    "produce",
    "stop_broker",
    "vm_hwm_kib",
]

REPO = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"


# ------------------------------------------------------------------------ broker
def _port(bootstrap: str) -> int:
    return int(bootstrap.rsplit(":", 1)[1])


def _reachable(bootstrap: str, timeout: float = 2.0) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _kafka_env(bootstrap: str) -> dict[str, str]:
    # The broker listens on the bootstrap's port (KAFKA_PORT, if set, must agree).
    return {**os.environ, "KAFKA_PORT": str(_port(bootstrap)), "PYTHON": sys.executable}


def ensure_broker(bootstrap: str) -> bool:
    """Start the local broker with deploy/kafka/kafka.sh unless ``bootstrap`` answers;
    True when it was started here (and should be stopped at the end)."""
    if _reachable(bootstrap):
        return False
    env_port = os.environ.get("KAFKA_PORT")
    if env_port is not None and env_port != str(_port(bootstrap)):
        raise SystemExit(f"--bootstrap {bootstrap} does not match KAFKA_PORT={env_port}")
    print(f"no broker at {bootstrap}: starting one with {KAFKA_SH.relative_to(REPO)}", flush=True)
    subprocess.run(["bash", str(KAFKA_SH), "start"], check=True, env=_kafka_env(bootstrap))
    return True


def stop_broker(bootstrap: str) -> None:
    subprocess.run(["bash", str(KAFKA_SH), "stop"], check=False, env=_kafka_env(bootstrap))


@contextlib.contextmanager
def local_broker(bootstrap: str) -> Iterator[bool]:
    """:func:`ensure_broker` for the block, and the broker it started stopped after it
    (a failure to stop does not hide the block's own error); yields whether it started one."""
    started = ensure_broker(bootstrap)
    try:
        yield started
    finally:
        if started:
            with contextlib.suppress(Exception):
                stop_broker(bootstrap)


# ------------------------------------------------------------------------ topics
def create_topics(bootstrap: str, topics: Mapping[str, int]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, n, 1) for name, n in topics.items()])
    finally:
        admin.close()


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name contains ``prefix`` (best effort): the run's own
    topics, and those a framework derived from its group id (quixstreams' changelog
    topics are ``changelog__<group>--<topic>--<store>``)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        names = [t for t in admin.list_topics() if prefix in t]
        if names:
            admin.delete_topics(names)
    except KafkaError:
        pass
    finally:
        admin.close()


def _partitions(consumer: KafkaConsumer, topic: str, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} has no partitions after {timeout}s")
        time.sleep(0.2)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in _partitions(consumer, topic)]
        ends = consumer.end_offsets(tps, timeout_ms=30_000)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        consumer.close()


# --------------------------------------------------------------------- producing
def produce(bootstrap: str, topic: str, items: Iterable[tuple[str, bytes]]) -> int:
    """Bulk-produce keyed values (key = model_id), wait for every ack."""
    return produce_all(bootstrap, topic, items)


def _stamp(stamps: dict[tuple[int, int], int], metadata: Any) -> None:
    stamps[(metadata.partition, metadata.offset)] = metadata.timestamp


def paced_produce(
    bootstrap: str, topic: str, items: Iterable[tuple[str, bytes]], rate: float
) -> tuple[dict[tuple[int, int], int], float]:
    """Produce at ``rate`` events/s; the Kafka (create) timestamp of every record by
    (partition, offset), and the achieved rate."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=1)
    stamps: dict[tuple[int, int], int] = {}
    started = time.monotonic()
    sent = 0
    try:
        for sent, (key, value) in enumerate(items, 1):
            delay = started + (sent - 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            producer.send(topic, key=key.encode(), value=value).add_callback(_stamp, stamps)
        producer.flush()
    finally:
        producer.close()
    return stamps, sent / max(1e-9, time.monotonic() - started)


# ---------------------------------------------------------------------- progress
class GroupProgress:
    """Committed offsets of a consumer group on one topic (one admin client, reused)."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)

    def committed(self, group: str, topic: str) -> int | None:
        """Sum of committed offsets over ``topic``; None if not answerable right now."""
        try:
            offsets = self.admin.list_group_offsets({group: None}).get(group, {})
        except KafkaError:  # e.g. offsets pending in an open transaction
            return None
        return sum(max(0, om.offset) for tp, om in offsets.items() if tp.topic == topic)

    def close(self) -> None:
        self.admin.close()


class AlertCollector(threading.Thread):
    """Reads an output topic with ``read_committed`` from its current end and notes
    the wall-clock time (ms) at which each record was consumed."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True, name=f"alerts-{topic}")
        self.received: list[tuple[float, bytes]] = []
        self._stop_event = threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=20,
        )
        tps = [TopicPartition(topic, p) for p in _partitions(self.consumer, topic)]
        self.consumer.assign(tps)
        self.consumer.seek_to_end(*tps)
        for tp in tps:
            # resolve the seek now, before anything is produced (bounded: kafka-python
            # would wait forever)
            self.consumer.position(tp, timeout_ms=30_000)

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                for records in self.consumer.poll(timeout_ms=100).values():
                    now_ms = time.time() * 1000
                    self.received.extend((now_ms, r.value or b"") for r in records)
        finally:
            self.consumer.close()

    def finish(self) -> list[tuple[float, bytes]]:
        self._stop_event.set()
        self.join(timeout=30)
        return self.received


# ------------------------------------------------------------------------- /proc
def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process, in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (all its threads)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS
