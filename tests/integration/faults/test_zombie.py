"""A second instance starts under the same transactional id: the first one is a
zombie now and must be fenced, not allowed to commit."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.generate import GeneratorConfig, generate
from tests.integration.sidecars import (
    SidecarProcess,
    check_semantics,
    deploy,
    produce,
    wait_caught_up,
    wait_for_progress,
)


def test_the_old_instance_is_fenced(
    kafka_bootstrap: str, tmp_path: Path, workload: GeneratorConfig
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=2)
    events = list(generate(workload))[:16000]
    produce(kafka_bootstrap, deployment.topics.predictions, events[:8000])
    zombie = SidecarProcess(deployment, "a", tmp_path).start()
    successor = SidecarProcess(
        deployment,
        "a-successor",
        tmp_path,
        DRIFTLINE_KAFKA__TRANSACTIONAL_ID=zombie.env["DRIFTLINE_KAFKA__TRANSACTIONAL_ID"],
    )
    try:
        wait_for_progress(deployment, 500, [zombie])
        successor.start()
        deadline = time.monotonic() + 60  # its init_transactions has fenced the zombie
        while '"sidecar_started"' not in successor.log_path.read_text():
            assert time.monotonic() < deadline, successor.log_tail()
            time.sleep(0.2)
        # More input for both partitions: the zombie's next transaction is refused.
        produce(kafka_bootstrap, deployment.topics.predictions, events[8000:])
        assert zombie.proc is not None
        assert zombie.proc.wait(timeout=120) == 2, zombie.log_tail()
        assert "producer_fenced" in zombie.log_path.read_text()
        wait_caught_up(deployment, [successor])
    finally:
        for s in (zombie, successor):
            if s.running:
                s.terminate()
    check_semantics(deployment)
