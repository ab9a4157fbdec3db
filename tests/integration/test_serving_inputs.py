"""KServe and Seldon Core 2 streams on the real broker, read by a real sidecar.

One sidecar reads three inputs at once: the reference predictions as driftline JSON,
the same predictions as KServe logger CloudEvents (produced by the CloudEvents SDK in
binary mode, as a Knative Kafka Broker stores them, and in structured mode), and as
Seldon Core 2 Open Inference Protocol protobuf on a model's inputs/outputs topics.
Each source names its models differently; once the prefix is stripped, each gives
the detections of the same predictions as driftline events in the order the sidecar
completes their pairs: on KServe's one topic the order of the second halves; across
Seldon's two topics the order both topics share (requests and responses are written
in one order here, so any interleaving of the two completes the pairs in it). Then a backtest of the recorded KServe topic gives the
sidecar's KServe alerts byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cloudevents.core.bindings.kafka import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from pipeline.cli import main
from pipeline.events import PredictionEvent
from pipeline.formats.samples import seldon_records
from pipeline.generate import CLASSES
from tests.integration.sidecars import SidecarProcess, deploy, read_topic
from tests.pipeline.formats.streams import (
    FEATURES,
    NAMING,
    completion_order,
    driftline_values,
    predictions,
    seldon_topic,
    serving_halves,
)

EVENTS = 1500


def _renamed(events: list[PredictionEvent], prefix: str) -> list[PredictionEvent]:
    return [e.model_copy(update={"model_id": f"{prefix}{e.model_id}"}) for e in events]


def _cloudevent(headers: list[tuple[str, bytes]], value: bytes) -> CloudEvent:
    """The SDK's own event for a sample's attributes (so the SDK writes the bytes)."""
    attributes: dict[str, Any] = {k[3:]: v.decode() for k, v in headers if k.startswith("ce_")}
    attributes["datacontenttype"] = "application/json"
    from datetime import datetime

    attributes["time"] = datetime.fromisoformat(attributes["time"].replace("Z", "+00:00"))
    return CloudEvent(attributes, value)


def _produce(
    bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes, list[Any], int]]
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    try:
        for topic, key, value, headers, timestamp_ms in records:
            producer.send(topic, key=key, value=value, headers=headers, timestamp_ms=timestamp_ms)
        producer.flush()
    finally:
        producer.close()


def _caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """The group committed every input record (inputs are written without transactions,
    so a topic's end offset is one past its last record)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        committed = admin.list_group_offsets({group: None}).get(group, {})
        ends = consumer.end_offsets([TopicPartition(t, 0) for t in topics])
        return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items())
    except KafkaError:
        return False
    finally:
        admin.close()
        consumer.close()


def _normalised(alerts: Iterable[bytes], prefix: str) -> list[str]:
    out = []
    for value in alerts:
        body = orjson.loads(value)
        if not body.get("model_id", "").startswith(prefix) or "alert_id" not in body:
            continue
        body["model_id"] = body["model_id"][len(prefix) :]
        for name in ("alert_id", "incident_id", "source", "summary"):
            body.pop(name, None)
        body["window"] = {"events": body["window"]["events"]}
        body["evidence"].pop("offsets", None)
        out.append(orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode())
    return sorted(out)


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("serving")
    kserve_topic = f"kserve-{time.time_ns()}"
    seldon_prefix = f"seldon{time.time_ns()}"
    models = ["model-0", "model-1"]
    inputs = [
        {
            "format": "kserve-cloudevents",
            "topic": kserve_topic,
            "model_id": "kserve-{inferenceservicename}",
            **NAMING,
        },
        *(
            {
                "format": "seldon-oip",
                "model": m,
                "topic_prefix": seldon_prefix,
                "model_id": f"seldon-{m}",
                **NAMING,
            }
            for m in models
        ),
    ]
    deployment = deploy(kafka_bootstrap, tmp, partitions=1, extra={"inputs": inputs})
    seldon_topics = [
        f"{seldon_prefix}.default.model.{m}.{s}" for m in models for s in ("inputs", "outputs")
    ]
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(t, 1, 1) for t in [kserve_topic, *seldon_topics]])
    finally:
        admin.close()

    events = predictions(events=EVENTS)
    references = [
        *_renamed(completion_order(events, "kserve-v1"), "refk-"),
        *_renamed(events, "refs-"),
    ]
    records: list[tuple[str, bytes | None, bytes, list[Any], int]] = [
        (deployment.topics.predictions, key, value, [], 0)
        for key, value in driftline_values(references)
    ]
    for i, (_, sample, _) in enumerate(serving_halves(events, "kserve-v1")):
        event = _cloudevent(sample.headers, sample.value)
        message = to_binary(event, JSONFormat()) if i % 4 else to_structured(event, JSONFormat())
        records.append(
            (kserve_topic, None, message.value, list(message.headers.items()), sample.timestamp_ms)
        )
    bad = to_binary(_cloudevent(sample.headers, b"{not json"), JSONFormat())
    records.append((kserve_topic, None, bad.value, list(bad.headers.items()), sample.timestamp_ms))
    for event in events:
        for side, sample in zip(
            ("request", "response"),
            seldon_records(event, features=FEATURES, classes=CLASSES),
            strict=True,
        ):
            topic = seldon_topic(event.model_id, side).replace("seldon.", f"{seldon_prefix}.", 1)
            records.append((topic, sample.key, sample.value, sample.headers, sample.timestamp_ms))
    _produce(kafka_bootstrap, records)

    sidecar = SidecarProcess(deployment, "a", tmp).start()
    topics = [deployment.topics.predictions, kserve_topic, *seldon_topics]
    deadline = time.monotonic() + 240
    try:
        while not _caught_up(kafka_bootstrap, deployment.prefix, topics):
            assert time.monotonic() < deadline, f"not caught up\n{sidecar.log_tail(60)}"
            assert sidecar.running, sidecar.log_tail()
            time.sleep(1)
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()
    alerts = [r.value for r in read_topic(kafka_bootstrap, deployment.topics.alerts)]
    dead = read_topic(kafka_bootstrap, deployment.topics.dlq)
    return {
        "deployment": deployment,
        "alerts": alerts,
        "dead": dead,
        "kserve_topic": kserve_topic,
        "tmp": tmp,
    }


class TestServingInputs:
    def test_kserve_and_seldon_give_the_driftline_detections(self, run: dict[str, Any]) -> None:
        assert len(_normalised(run["alerts"], "refk-")) >= 3
        assert _normalised(run["alerts"], "kserve-") == _normalised(run["alerts"], "refk-")
        assert _normalised(run["alerts"], "seldon-") == _normalised(run["alerts"], "refs-")

    def test_a_broken_body_is_a_dead_letter_with_its_reason(self, run: dict[str, Any]) -> None:
        (record,) = run["dead"]
        headers = dict(record.headers)
        assert record.value == b"{not json"
        assert headers["dl_reason"] == b"malformed_json"
        assert headers["dl_topic"] == run["kserve_topic"].encode()

    def test_a_backtest_of_the_recorded_topic_gives_the_same_alerts(
        self, run: dict[str, Any]
    ) -> None:
        out = Path(run["tmp"]) / "backtest-alerts.jsonl"
        code = main(
            [
                "--log-level",
                "error",
                "backtest",
                "--config",
                str(run["deployment"].config_path),
                "--input",
                f"kafka:{run['kserve_topic']}",
                "--alerts",
                str(out),
                "--no-progress",
            ]
        )
        assert code == 0
        replayed = sorted(orjson.loads(line)["alert_id"] for line in out.read_text().splitlines())
        live = sorted(
            b["alert_id"]
            for b in map(orjson.loads, run["alerts"])
            if b.get("model_id", "").startswith("kserve-")
        )
        assert replayed == live and live


def test_a_serving_topic_with_several_partitions_is_warned_about(
    kafka_bootstrap: str, tmp_path: Path, make_topic: Any
) -> None:
    topic = make_topic(partitions=2)
    inputs = [{"format": "kserve-cloudevents", "topic": topic, **NAMING}]
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=1, extra={"inputs": inputs})
    sidecar = SidecarProcess(deployment, "w", tmp_path).start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "serving_topic_partitions" not in sidecar.log_tail(
            200
        ):
            assert sidecar.running, sidecar.log_tail()
            time.sleep(0.5)
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()
    line = next(x for x in sidecar.log_tail(200).splitlines() if "serving_topic_partitions" in x)
    assert orjson.loads(line)["topic"] == topic and orjson.loads(line)["partitions"] == 2
