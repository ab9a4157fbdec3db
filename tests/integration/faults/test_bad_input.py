"""A corpus of bad records mixed into the stream: each lands in the dead-letter
topic with its reason, and the stream goes on."""

from __future__ import annotations

from pathlib import Path

import orjson

from pipeline.generate import GeneratorConfig, generate
from tests.integration.sidecars import (
    MONITORS,
    SidecarProcess,
    check_semantics,
    deploy,
    produce,
    read_topic,
    wait_caught_up,
)

VALID = orjson.loads(next(iter(generate(GeneratorConfig(events=1))))[1])


def _variant(**changes: object) -> bytes:
    return orjson.dumps({**VALID, **changes})


CORPUS: list[tuple[str, bytes, str]] = [
    ("model-0", b'{"event_id": "x", "model_id": ', "malformed_json"),
    ("model-0", b"\xff\xfe not utf-8", "malformed_json"),
    ("model-0", b"", "malformed_json"),
    ("model-0", _variant(confidence="high"), "schema_violation"),
    ("model-0", _variant(schema="driftline.prediction.v7"), "unknown_schema"),
    ("model-0", _variant(features={"amount": 1.0}, model_id=None), "schema_violation"),
    (
        "model-0",
        orjson.dumps(VALID).replace(b'"confidence":', b'"confidence":NaN,"x":'),
        "non_finite",
    ),
    (
        "model-0",
        orjson.dumps(VALID).replace(b'"confidence":', b'"confidence":Infinity,"x":'),
        "non_finite",
    ),
    ("model-0", b'{"pad":"' + b"x" * 1_000_000 + b'"}', "oversized"),
    ("intruder", _variant(model_id="intruder"), "unknown_model"),
]


def test_bad_records_are_dead_lettered_with_reasons(
    kafka_bootstrap: str, tmp_path: Path, workload: GeneratorConfig
) -> None:
    models = {f"model-{k}": {"monitors": MONITORS} for k in range(workload.models)}
    deployment = deploy(
        kafka_bootstrap,
        tmp_path,
        partitions=2,
        runtime={"max_event_bytes": 262_144},
        extra={"models": models, "unknown_models": "reject"},
    )
    events = list(generate(workload))[:12000]
    # Duplicates and out-of-order timestamps are valid input: processed, not refused.
    duplicated = events[:200]
    shuffled = list(reversed(events[200:400]))
    stream: list[tuple[str, bytes]] = []
    for i, item in enumerate(events[400:]):
        stream.append(item)
        if i % 500 == 0:
            stream.extend((key, value) for key, value, _ in CORPUS)
    produce(
        kafka_bootstrap,
        deployment.topics.predictions,
        [*duplicated, *duplicated, *shuffled, *stream],
    )
    sidecar = SidecarProcess(deployment, "a", tmp_path).start()
    try:
        wait_caught_up(deployment, [sidecar])
        assert sidecar.running
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()
    check_semantics(deployment)
    letters = read_topic(kafka_bootstrap, deployment.topics.dlq)
    by_payload = {r.value: dict(r.headers)["dl_reason"].decode() for r in letters}
    for _key, value, reason in CORPUS:
        assert by_payload.get(value) == reason, (value[:60], by_payload.get(value))
    rounds = (len(events) - 400 + 499) // 500
    assert len(letters) >= rounds * len(CORPUS)
