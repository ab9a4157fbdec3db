"""The local broker itself: round trips, large messages, transactions, restarts on the same data.

These prove what later work relies on: kafka-python talks to the Kafka 4 broker, 1 MiB messages
pass, transactions work (read_committed hides aborted records; offsets can be committed inside a
transaction), and a stop/start keeps topics and committed offsets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

if TYPE_CHECKING:
    from tests.integration.conftest import KafkaBroker

POLL_DEADLINE_S = 30


def _consume(
    consumer: KafkaConsumer, expected: int, deadline_s: float = POLL_DEADLINE_S
) -> list[Any]:
    """Poll until ``expected`` records arrived or the deadline passed."""
    records: list[Any] = []
    deadline = time.monotonic() + deadline_s
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    return records


def _read_all(
    bootstrap: str,
    topic: str,
    partitions: int,
    isolation_level: str,
    expected: int,
    settle_s: float = 0.0,
) -> list[Any]:
    """Everything in ``topic`` from the beginning, without a consumer group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        group_id=None,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records = _consume(consumer, expected)
        # Let anything unexpected (e.g. aborted records leaking through) show up too.
        records += _consume(consumer, 10**9, deadline_s=settle_s) if settle_s else []
        return records
    finally:
        consumer.close(autocommit=False)


def test_produce_and_consume_back(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    n = 1000
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    try:
        futures = [
            producer.send(topic, key=f"model-{i % 7}".encode(), value=f"{i}".encode())
            for i in range(n)
        ]
        producer.flush(timeout=30)
        metas = [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)
    assert {m.partition for m in metas} <= {0, 1, 2}

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        records = _consume(consumer, n)
        consumer.commit()
    finally:
        consumer.close(autocommit=False)

    assert sorted(int(r.value) for r in records) == list(range(n))
    # Same key -> same partition, in produce order.
    by_key: dict[bytes, list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(r.key, []).append(int(r.value))
    for key, values in by_key.items():
        assert values == sorted(values), key


def test_one_mebibyte_message(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    payload = bytes(range(256)) * 4096  # 1 MiB
    # kafka-python's default max_request_size (1 MiB) is below one 1 MiB record plus overhead.
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=2 * 1024 * 1024)
    try:
        producer.send(topic, value=payload).get(timeout=30)
    finally:
        producer.close(timeout=10)
    records = _read_all(kafka_bootstrap, topic, 1, "read_uncommitted", 1)
    assert len(records) == 1 and records[0].value == payload


def test_transactions_read_committed_hides_aborted(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"txn-test-{uuid.uuid4().hex[:8]}"
    )
    try:
        producer.init_transactions()

        producer.begin_transaction()
        for i in range(5):
            producer.send(topic, key=b"k", value=f"committed-{i}".encode())
        producer.commit_transaction()

        producer.begin_transaction()
        for i in range(5):
            producer.send(topic, key=b"k", value=f"aborted-{i}".encode())
        producer.flush()  # the aborted records really reach the log
        producer.abort_transaction()

        producer.begin_transaction()
        producer.send(topic, key=b"other", value=b"committed-5")
        producer.commit_transaction()
    finally:
        producer.close(timeout=10)

    committed = _read_all(kafka_bootstrap, topic, 2, "read_committed", 6, settle_s=1.0)
    assert sorted(r.value for r in committed) == [f"committed-{i}".encode() for i in range(6)]

    everything = _read_all(kafka_bootstrap, topic, 2, "read_uncommitted", 11, settle_s=1.0)
    assert sorted(r.value for r in everything) == sorted(
        [f"committed-{i}".encode() for i in range(6)] + [f"aborted-{i}".encode() for i in range(5)]
    )


def test_consume_transform_produce_commits_offsets_in_transaction(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    source, sink = make_topic(), make_topic()
    group = f"g-eos-{uuid.uuid4().hex[:8]}"
    plain = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        for i in range(10):
            plain.send(source, value=f"{i}".encode())
        plain.flush(timeout=30)
    finally:
        plain.close(timeout=10)

    consumer = KafkaConsumer(
        source,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=5,
    )
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"txn-eos-{uuid.uuid4().hex[:8]}"
    )
    tp = TopicPartition(source, 0)
    try:
        producer.init_transactions()
        first = _consume(consumer, 5)[:5]
        assert [int(r.value) for r in first] == list(range(5))

        # Transaction 1, committed: outputs for 0..4 and the input offset 5, atomically.
        producer.begin_transaction()
        for r in first:
            producer.send(sink, value=b"out-" + r.value)
        producer.send_offsets_to_transaction(
            {tp: OffsetAndMetadata(first[-1].offset + 1, "", -1)}, consumer.group_metadata()
        )
        producer.commit_transaction()

        # Transaction 2, aborted: neither its outputs nor its offsets may count.
        rest = _consume(consumer, 5)
        assert [int(r.value) for r in rest] == list(range(5, 10))
        producer.begin_transaction()
        for r in rest:
            producer.send(sink, value=b"out-" + r.value)
        producer.send_offsets_to_transaction(
            {tp: OffsetAndMetadata(rest[-1].offset + 1, "", -1)}, consumer.group_metadata()
        )
        producer.abort_transaction()
    finally:
        producer.close(timeout=10)
        consumer.close(autocommit=False)

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    assert offsets[tp].offset == 5

    out = _read_all(kafka_bootstrap, sink, 1, "read_committed", 5, settle_s=1.0)
    assert [r.value for r in out] == [f"out-{i}".encode() for i in range(5)]


def test_restart_keeps_topics_and_committed_offsets(
    kafka_broker: KafkaBroker, kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=2)
    group = f"g-restart-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        for i in range(20):
            producer.send(topic, key=f"{i % 2}".encode(), value=f"{i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        assert len(_consume(consumer, 20)) == 20
        consumer.commit()
    finally:
        consumer.close(autocommit=False)

    print(kafka_broker.restart())  # kafka.sh's timings, shown with -rP

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert topic in admin.list_topics()
        offsets = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    assert sum(o.offset for tp, o in offsets.items() if tp.topic == topic) == 20
    assert len(_read_all(kafka_bootstrap, topic, 2, "read_uncommitted", 20)) == 20
