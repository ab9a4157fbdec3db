"""The broker stops for 20 s mid-stream (in both delivery modes), and is down when a
sidecar starts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pipeline.generate import GeneratorConfig, generate
from tests.integration.sidecars import (
    SidecarProcess,
    check_semantics,
    deploy,
    produce,
    wait_caught_up,
    wait_for_progress,
)


@pytest.mark.parametrize("mode", ["exactly_once", "at_least_once"])
def test_broker_restarted_mid_stream(
    kafka_broker: Any, kafka_bootstrap: str, tmp_path: Path, workload: GeneratorConfig, mode: str
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=3, runtime={"mode": mode})
    events = list(generate(workload))
    half = len(events) // 2
    produce(kafka_bootstrap, deployment.topics.predictions, events[:half])
    sidecar = SidecarProcess(deployment, "a", tmp_path).start()
    try:
        # Mid-stream, not during start-up: some of the backlog is committed, not all.
        committed_before_outage = wait_for_progress(deployment, 500, [sidecar])
        kafka_broker.stop()
        time.sleep(20)
        assert sidecar.running, sidecar.log_tail()
        kafka_broker.start()
        produce(kafka_bootstrap, deployment.topics.predictions, events[half:])
        wait_caught_up(deployment, [sidecar], timeout=240)
    finally:
        kafka_broker.start()
        assert sidecar.terminate() == 0, sidecar.log_tail()
    check_semantics(deployment, at_least_once=mode == "at_least_once")
    # The outage hit while the backlog was being worked through (the sidecar then
    # either blocks in a Kafka call and resumes, or aborts and recovers).
    assert committed_before_outage < half


def test_broker_down_at_sidecar_start(
    kafka_broker: Any, kafka_bootstrap: str, tmp_path: Path, workload: GeneratorConfig
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=2)
    produce(kafka_bootstrap, deployment.topics.predictions, list(generate(workload))[:8000])
    kafka_broker.stop()
    sidecar = SidecarProcess(deployment, "a", tmp_path).start()
    try:
        time.sleep(8)
        assert sidecar.running, "the sidecar must wait for the broker, not crash"
        kafka_broker.start()
        wait_caught_up(deployment, [sidecar], timeout=240)
    finally:
        kafka_broker.start()
        assert sidecar.terminate() == 0, sidecar.log_tail()
    # (Whether a `kafka_unavailable` line was logged depends on timing: the client's
    # own bootstrap may simply wait out the outage.)
    check_semantics(deployment)
