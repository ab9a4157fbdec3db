"""A dead letter the broker refuses on every attempt (its topic takes smaller records than
the input topic did): after REJECTED_ATTEMPTS identical refusals the sidecar logs an
error, counts it, and commits past the record; everything else arrives as usual."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from pipeline.generate import GeneratorConfig, generate
from pipeline.runtime.rejections import REJECTED_ATTEMPTS
from tests.integration.sidecars import (
    SidecarProcess,
    deploy,
    input_records,
    oracle,
    produce,
    read_topic,
    set_topic_config,
    wait_caught_up,
)
from tests.integration.test_dashboard_metrics import exported, free_port

BIG = b'{"pad":"' + b"x" * (300_000 - 10) + b'"}'  # a 300 KB bad record
DLQ_LIMIT = 64 * 1024


def _metric(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.mark.parametrize("mode", ["exactly_once", "at_least_once"])
def test_a_refused_dead_letter_is_given_up_and_the_partition_moves_on(
    kafka_bootstrap: str, tmp_path: Path, mode: str
) -> None:
    port = free_port()
    deployment = deploy(
        kafka_bootstrap,
        tmp_path,
        partitions=1,
        runtime={"mode": mode, "http_port": port, "http_host": "127.0.0.1"},
    )
    # the dead-letter topic refuses what the input topic took
    set_topic_config(kafka_bootstrap, deployment.topics.dlq, max_message_bytes=str(DLQ_LIMIT))
    events = list(generate(GeneratorConfig(events=900, models=1, seed=5, bad_every=400)))
    produce(
        kafka_bootstrap,
        deployment.topics.predictions,
        [*events[:450], ("model-0", BIG), *events[450:]],
    )
    sidecar = SidecarProcess(deployment, "a", tmp_path).start()
    try:
        wait_caught_up(deployment, [sidecar], timeout=120)  # committed past the record
        time.sleep(1.5)  # the gauges are refreshed once a second
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            scraped = r.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        assert sidecar.running and sidecar.starts == 1
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()

    records = input_records(deployment)
    (big,) = [r for r in records if r.value == BIG]
    expected_alerts, expected_dead = oracle(deployment, records)
    got_alerts = sorted(
        r.value
        for topic in (deployment.topics.alerts, deployment.topics.rollback_commands)
        for r in read_topic(kafka_bootstrap, topic)
    )
    assert sorted(set(got_alerts)) == sorted(set(expected_alerts))
    letters = read_topic(kafka_bootstrap, deployment.topics.dlq)
    offsets = {int(dict(r.headers)["dl_offset"]) for r in letters}
    assert big.offset not in offsets
    assert sorted({r.value for r in letters}) == sorted(set(expected_dead) - {BIG})
    assert len(offsets) == len(expected_dead) - 1 >= 2  # the small ones all arrived

    given_up = [
        orjson.loads(line)
        for line in sidecar.log_path.read_text().splitlines()
        if '"output_given_up"' in line
    ]
    (error,) = given_up
    assert error["level"] == "error" and error["offset"] == big.offset
    assert error["kind"] == "dead_letter" and error["attempts"] == REJECTED_ATTEMPTS
    assert "MessageSizeTooLarge" in error["reason"], error
    assert _metric(scraped, "driftline_rejected_outputs_total", kind="dead_letter") == 1
    assert _metric(scraped, "driftline_offset_retries_total") >= REJECTED_ATTEMPTS
    assert _metric(scraped, "driftline_committed_lag") == 0
    assert "driftline_partition_mismatches_total" in exported(scraped)
