"""Which partition a model's events land in depends on the producing client.

driftline joins labels to predictions and restores state per partition number, so a
model's events must land in the same partition number on every input topic. Java's
producer and kafka-python hash keys with murmur2; librdkafka clients (confluent-kafka,
kcat, Go/.NET/Node clients built on it) default to ``consistent_random`` (CRC32) and
place many keys elsewhere. ``partitioner=murmur2_random`` makes them agree. This test
produces the same keys with each client to the real broker and reads where they went.
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Producer
from kafka import KafkaProducer

KEYS = [f"model-{i}".encode() for i in range(64)]
PARTITIONS = 12


def _kafka_python(bootstrap: str, topic: str) -> dict[bytes, int]:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        futures = {key: producer.send(topic, key=key, value=b"{}") for key in KEYS}
        return {key: f.get(timeout=30).partition for key, f in futures.items()}
    finally:
        producer.close(timeout=10)


def _librdkafka(bootstrap: str, topic: str, partitioner: str | None) -> dict[bytes, int]:
    config = {"bootstrap.servers": bootstrap}
    if partitioner is not None:
        config["partitioner"] = partitioner
    producer = Producer(config)
    placed: dict[bytes, int] = {}

    def delivered(err: object, msg: object) -> None:
        assert err is None, err
        placed[msg.key()] = msg.partition()  # type: ignore[attr-defined]

    for key in KEYS:
        producer.produce(topic, key=key, value=b"{}", on_delivery=delivered)
    assert producer.flush(30) == 0
    return placed


def test_librdkafka_agrees_with_java_and_kafka_python_only_with_murmur2(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=PARTITIONS)
    reference = _kafka_python(kafka_bootstrap, topic)
    assert len(set(reference.values())) > 1  # the keys really spread
    assert _librdkafka(kafka_bootstrap, topic, "murmur2_random") == reference
    default = _librdkafka(kafka_bootstrap, topic, None)
    moved = sorted(k.decode() for k in KEYS if default[k] != reference[k])
    # librdkafka's default (CRC32) puts most of these keys in another partition
    assert len(moved) > len(KEYS) // 2, moved
