"""kill -9 of the sidecar at random points, several times, mid-stream, in both
delivery modes: exactly-once repeats and loses nothing; at-least-once repeats
(byte-identical, dropped by alert id) and loses nothing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipeline.generate import GeneratorConfig, generate
from tests.integration.sidecars import (
    SidecarProcess,
    check_semantics,
    committed_total,
    deploy,
    produce,
    wait_caught_up,
    wait_for_progress,
)


@pytest.mark.parametrize("mode", ["exactly_once", "at_least_once"])
def test_kill9_at_random_points(
    kafka_bootstrap: str, tmp_path: Path, workload: GeneratorConfig, mode: str
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=3, runtime={"mode": mode})
    events = list(generate(workload))
    chunks = [events[k * len(events) // 4 : (k + 1) * len(events) // 4] for k in range(4)]
    rng = random.Random(20261125)
    sidecar = SidecarProcess(deployment, "a", tmp_path)
    produced = 0
    mid_stream_kills = 0
    for chunk in chunks[:3]:
        produce(kafka_bootstrap, deployment.topics.predictions, chunk)
        produced += len(chunk)
        before = committed_total(deployment)
        sidecar.start()
        # Kill while it works through the backlog: at a random point of this chunk.
        target = before + int(len(chunk) * rng.uniform(0.1, 0.5))
        wait_for_progress(deployment, target, [sidecar])
        sidecar.kill9()
        mid_stream_kills += committed_total(deployment) < produced
    assert mid_stream_kills >= 2, "the kills did not land mid-stream"
    produce(kafka_bootstrap, deployment.topics.predictions, chunks[3])
    sidecar.start()
    try:
        wait_caught_up(deployment, [sidecar])
        assert sidecar.running
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()
    counts = check_semantics(deployment, at_least_once=mode == "at_least_once")
    assert counts["alerts"] >= 3
    if mode == "exactly_once":
        assert counts["repeats"] == 0
