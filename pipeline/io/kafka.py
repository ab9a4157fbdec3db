"""Kafka source and sink (kafka-python). The only module that imports a Kafka client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KafkaTopicPartition
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
