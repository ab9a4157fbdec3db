"""Records that used to reset or confuse a partition, against the real broker.

* Kafka tombstones (a null value, produced here by librdkafka through confluent-kafka,
  as kcat or a compacting producer would) are dead-lettered as ``tombstone``.
* An event stamped in 2099 — accepted by the decoder, but far ahead of its record's
  Kafka timestamp — is dead-lettered as ``timestamp_out_of_range`` instead of moving
  the partition's event time to 2099 (which expired every detector and stopped expiry).

The partition's committed offset moves past each of them, and the alerts and dead
letters equal an uninterrupted in-memory run's.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from confluent_kafka import Producer
from kafka.admin import KafkaAdminClient

from pipeline.generate import GeneratorConfig, generate
from tests.integration.sidecars import (
    Deployment,
    SidecarProcess,
    check_semantics,
    deploy,
    produce,
    read_topic,
    wait_caught_up,
)

TOMBSTONES = 3


def _tombstones(bootstrap: str, topic: str, keys: list[str]) -> list[tuple[int, int]]:
    """Produce null values with librdkafka (murmur2, as driftline's producers hash);
    their (partition, offset)."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    placed: list[tuple[int, int]] = []

    def delivered(err: object, msg: object) -> None:
        assert err is None, err
        placed.append((msg.partition(), msg.offset()))  # type: ignore[attr-defined]

    for key in keys:
        producer.produce(topic, key=key.encode(), value=None, on_delivery=delivered)
    assert producer.flush(30) == 0
    return placed


def _committed(deployment: Deployment, topic: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=deployment.bootstrap)
    try:
        offsets = admin.list_group_offsets({deployment.prefix: None})[deployment.prefix]
    finally:
        admin.close()
    return {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic}


def test_tombstones_and_far_future_events_are_dead_lettered_and_passed(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=2)
    topic = deployment.topics.predictions
    events = list(generate(GeneratorConfig(events=3000, models=4, seed=7)))
    key, value = events[1000]
    future = orjson.loads(value)
    future["event_id"] = "from-the-future"
    future["timestamp"] = "2099-12-31T23:59:59Z"
    far = orjson.dumps(future)

    produce(kafka_bootstrap, topic, events[:1000])
    bad = _tombstones(kafka_bootstrap, topic, [f"model-{i}" for i in range(TOMBSTONES)])
    produce(kafka_bootstrap, topic, [(key, far), *events[1000:]])
    sidecar = SidecarProcess(deployment, "a", tmp_path).start()
    try:
        wait_caught_up(deployment, [sidecar])
        assert sidecar.running
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()

    committed = _committed(deployment, topic)
    for partition, offset in bad:
        assert committed[partition] > offset  # the partition moved past the tombstone
    check_semantics(deployment)  # the oracle sees the same Kafka timestamps

    letters = read_topic(kafka_bootstrap, deployment.topics.dlq)
    reasons = [dict(r.headers)["dl_reason"] for r in letters]
    assert reasons.count(b"tombstone") == TOMBSTONES
    assert reasons.count(b"timestamp_out_of_range") == 1
    for letter in letters:
        headers = dict(letter.headers)
        if headers["dl_reason"] == b"tombstone":
            assert letter.value is None  # the original, null, value
            where = (int(headers["dl_partition"]), int(headers["dl_offset"]))
            assert where in bad
        else:
            assert letter.value == far
            assert b"limits.max_future_skew" in headers["dl_detail"]
            partition = int(headers["dl_partition"])
            assert committed[partition] > int(headers["dl_offset"])
