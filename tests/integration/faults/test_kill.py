"""kill -9 of the sidecar at random points, several times, mid-stream."""

from __future__ import annotations

import random
import time
from pathlib import Path

from pipeline.generate import GeneratorConfig, generate
from tests.integration.sidecars import (
    SidecarProcess,
    check_semantics,
    deploy,
    produce,
    wait_caught_up,
)


def test_kill9_at_random_points(
    kafka_bootstrap: str, tmp_path: Path, workload: GeneratorConfig
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=3)
    events = list(generate(workload))
    chunks = [events[k * len(events) // 4 : (k + 1) * len(events) // 4] for k in range(4)]
    rng = random.Random(20261125)
    sidecar = SidecarProcess(deployment, "a", tmp_path)
    for chunk in chunks[:3]:
        produce(kafka_bootstrap, deployment.topics.predictions, chunk)
        sidecar.start()
        time.sleep(rng.uniform(2.0, 5.0))
        assert sidecar.running, sidecar.log_tail()
        sidecar.kill9()
    produce(kafka_bootstrap, deployment.topics.predictions, chunks[3])
    sidecar.start()
    try:
        wait_caught_up(deployment, [sidecar])
        assert sidecar.running
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()
    counts = check_semantics(deployment)
    assert counts["alerts"] >= 3
