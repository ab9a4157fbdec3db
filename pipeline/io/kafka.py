"""Kafka source and sink (kafka-python). The only module that imports a Kafka client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipeline.core.records import Message, Record
from pipeline.errors import SinkError, SourceError
from pipeline.io.base import TopicPartition

__all__ = ["KafkaSink", "KafkaSource"]


class KafkaSource:
    """A consumer-group member over the input topics; offsets are committed only
    when the runtime says so (never automatically)."""

    def __init__(
        self,
        topics: Iterable[str],
        *,
        bootstrap_servers: str,
        group_id: str,
        client_id: str = "driftline",
        auto_offset_reset: str = "earliest",
        max_partition_fetch_bytes: int = 2 * 1024 * 1024,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap_servers,
                group_id=group_id,
                client_id=client_id,
                enable_auto_commit=False,
                auto_offset_reset=auto_offset_reset,
                isolation_level="read_committed",
                max_partition_fetch_bytes=max_partition_fetch_bytes,
                fetch_max_bytes=max(max_partition_fetch_bytes, 50 * 1024 * 1024),
                **dict(extra or {}),
            )
        except KafkaError as exc:
            raise SourceError(f"cannot connect to Kafka at {bootstrap_servers}: {exc}") from exc
        self._consumer.subscribe(list(topics))

    @property
    def exhausted(self) -> bool:
        return False

    @property
    def consumer(self) -> KafkaConsumer:
        return self._consumer

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        records: list[Record] = []
        for batch in polled.values():
            for r in batch:
                records.append(
                    Record(
                        topic=r.topic,
                        partition=r.partition,
                        offset=r.offset,
                        value=r.value if r.value is not None else b"",
                        key=r.key,
                        timestamp_ms=r.timestamp,
                        headers=tuple((k, v or b"") for k, v in (r.headers or ())),
                    )
                )
        return records

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        self._consumer.commit(
            {
                KafkaTopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                for (topic, partition), offset in offsets.items()
            }
        )

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaSink:
    """Produces each message kind to its topic; ``flush`` waits for every ack and
    raises if any send failed, so offsets are never committed past a lost alert."""

    def __init__(
        self,
        topics: Mapping[str, str],
        *,
        bootstrap_servers: str,
        client_id: str = "driftline",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._topics = dict(topics)
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap_servers,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_request_size=4 * 1024 * 1024,
                **dict(extra or {}),
            )
        except KafkaError as exc:
            raise SinkError(f"cannot connect to Kafka at {bootstrap_servers}: {exc}") from exc
        self._pending: list[Any] = []

    def send(self, message: Message) -> None:
        topic = self._topics.get(message.kind)
        if topic is None:
            raise SinkError(f"no topic configured for {message.kind} messages")
        self._pending.append(
            self._producer.send(
                topic, value=message.value, key=message.key, headers=list(message.headers)
            )
        )

    def flush(self) -> None:
        self._producer.flush()
        pending, self._pending = self._pending, []
        for future in pending:
            if future.failed():
                raise SinkError(f"producing failed: {future.exception}")

    def close(self) -> None:
        self._producer.close()


def produce_all(bootstrap_servers: str, topic: str, records: Iterable[tuple[str, bytes]]) -> int:
    """Produce ``(key, value)`` pairs to ``topic``, wait for every ack, return the count."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", linger_ms=20, batch_size=256 * 1024
    )
    count = 0
    try:
        for key, value in records:
            producer.send(topic, key=key.encode(), value=value)
            count += 1
        producer.flush()
    finally:
        producer.close()
    return count


def ensure_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    *,
    compacted: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the missing ones of ``topics`` (name -> partitions); return those created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    compacted = set(compacted)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **dict(extra or {}))
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(
                name,
                partitions,
                1,
                topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
            )
            for name, partitions in topics.items()
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        return [t.name for t in new]
    finally:
        admin.close()
