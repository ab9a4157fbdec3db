"""Whole-topic operations outside the sidecar's consume/produce loop: create topics,
count their partitions, read one partition from its start (a changelog restore), produce a
stream (the demo, ``driftline generate``, tests and benchmarks).

The client settings and error translation are ``pipeline.io.kafka``'s: one gate for
security options, typed errors out (``SourceError``, ``SinkError``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError

from pipeline.io.client_options import client_options
from pipeline.io.errors import SinkError, SourceError
from pipeline.io.kafka import BROKER_WAIT_MS, REQUEST_TIMEOUT_MS, _client_settings, _reading

__all__ = [
    "COMPACTED_TOPIC_CONFIG",
    "ensure_topics",
    "partitions_of",
    "produce_all",
    "produce_records",
    "read_partition",
]


def read_partition(
    bootstrap_servers: str,
    topic: str,
    partition: int,
    *,
    extra: Mapping[str, Any] | None = None,
    timeout_s: float = 60.0,
    alive: Callable[[], None] = lambda: None,
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Every committed (key, value) of one partition, oldest first, yielded as
    fetched: a restore folds a changelog as it arrives instead of holding it whole
    (a partition of thousands of warmed models is hundreds of MB of records).

    Every client call is bounded (kafka-python's default is to wait forever), each by
    ``BROKER_WAIT_MS`` and all by ``timeout_s``, so a partition that cannot be read
    raises SourceError instead of hanging the caller; ``alive`` is called before each
    call (the sidecar's stall watchdog: a long read of a large changelog is progress).
    The consumer is closed when the records run out or the caller lets go of them.
    """
    with _reading(f"cannot read {topic}[{partition}]"):
        yield from _read_partition(bootstrap_servers, topic, partition, extra, timeout_s, alive)


def _read_partition(
    bootstrap_servers: str,
    topic: str,
    partition: int,
    extra: Mapping[str, Any] | None,
    timeout_s: float,
    alive: Callable[[], None],
) -> Iterator[tuple[bytes | None, bytes | None]]:
    deadline = time.monotonic() + timeout_s

    def remaining_ms() -> int:
        alive()
        left = int((deadline - time.monotonic()) * 1000)
        if left <= 0:
            raise SourceError(f"timed out reading {topic}[{partition}]")
        return min(left, BROKER_WAIT_MS)

    alive()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **{"bootstrap_timeout_ms": BROKER_WAIT_MS, **_client_settings(extra)},
    )
    try:
        tp = KafkaTopicPartition(topic, partition)
        consumer.assign([tp])
        start = consumer.beginning_offsets([tp], timeout_ms=remaining_ms())[tp]
        end = consumer.end_offsets([tp], timeout_ms=remaining_ms())[tp]
        if end <= start:
            return
        consumer.seek(tp, start)
        position = start
        while position < end:
            for records in consumer.poll(timeout_ms=min(500, remaining_ms())).values():
                for record in records:
                    yield record.key, record.value
            position = consumer.position(tp, timeout_ms=remaining_ms())
    finally:
        consumer.close(autocommit=False)


def partitions_of(
    bootstrap_servers: str, topics: Iterable[str], extra: Mapping[str, Any] | None = None
) -> dict[str, int]:
    """Partition count per existing topic (missing topics are left out)."""
    with _reading("cannot read the topics' metadata"):
        return _partitions_of(bootstrap_servers, topics, extra)


def _partitions_of(
    bootstrap_servers: str, topics: Iterable[str], extra: Mapping[str, Any] | None
) -> dict[str, int]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **_client_settings(extra)
    )
    try:
        counts = {}
        for topic in topics:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                counts[topic] = len(parts)
        return counts
    finally:
        consumer.close()


def produce_all(
    bootstrap_servers: str, topic: str, records: Iterable[tuple[str, bytes]], **options: Any
) -> int:
    """Produce ``(key, value)`` pairs to ``topic``, wait for every ack, return the count.
    ``options`` override the producer's settings (e.g. ``max_request_size``)."""
    return produce_records(
        bootstrap_servers,
        ((topic, key.encode(), value, (), None) for key, value in records),
        **options,
    )


def produce_records(
    bootstrap_servers: str,
    records: Iterable[tuple[str, bytes | None, bytes, Sequence[tuple[str, bytes]], int | None]],
    **options: Any,
) -> int:
    """Produce ``(topic, key, value, headers, timestamp_ms)`` records in order, wait for
    every ack, return the count (records as another system wrote them: headers, times)."""
    settings: dict[str, Any] = {"acks": "all", "linger_ms": 20, "batch_size": 256 * 1024}
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers, **(settings | client_options(options))
    )
    count = 0
    try:
        for topic, key, value, headers, timestamp_ms in records:
            producer.send(
                topic, key=key, value=value, headers=list(headers), timestamp_ms=timestamp_ms
            )
            count += 1
        producer.flush()
    finally:
        producer.close()
    return count


COMPACTED_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    # Small segments that roll often, so the log cleaner keeps the changelog close to
    # one record per key and a restore reads little more than the live state.
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.2",
}


def ensure_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    *,
    compacted: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the missing ones of ``topics`` (name -> partitions); return those created
    (a client error raises ``SinkError``)."""
    try:
        return _ensure_topics(bootstrap_servers, topics, compacted, extra)
    except KafkaError as exc:
        raise SinkError(f"cannot create topics {sorted(topics)}: {exc}") from exc


def _ensure_topics(
    bootstrap_servers: str,
    topics: Mapping[str, int],
    compacted: Iterable[str],
    extra: Mapping[str, Any] | None,
) -> list[str]:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    compacted = set(compacted)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **_client_settings(extra))
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(
                name,
                partitions,
                1,
                topic_configs=COMPACTED_TOPIC_CONFIG if name in compacted else {},
            )
            for name, partitions in topics.items()
            if name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
            # Accepted is not ready: wait until every partition has a leader.
            admin.wait_for_topics([t.name for t in new], timeout_ms=REQUEST_TIMEOUT_MS)
        return [t.name for t in new]
    finally:
        admin.close()
