"""The broker stops mid-stream (20 s in both delivery modes, 90 s with exactly-once), and
is down when a sidecar starts: the sidecar never exits, says so, and loses nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
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


def _logged(sidecar: SidecarProcess, event: str) -> list[dict[str, Any]]:
    lines = []
    for line in sidecar.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            lines.append(orjson.loads(line))
    return lines


@pytest.mark.parametrize(
    ("mode", "outage_s"),
    [("exactly_once", 20), ("at_least_once", 20), ("exactly_once", 90)],
)
def test_broker_stopped_mid_stream(
    kafka_broker: Any,
    kafka_bootstrap: str,
    tmp_path: Path,
    workload: GeneratorConfig,
    mode: str,
    outage_s: int,
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=3, runtime={"mode": mode})
    events = list(generate(workload))
    half = len(events) // 2
    produce(kafka_bootstrap, deployment.topics.predictions, events[:half])
    sidecar = SidecarProcess(deployment, "a", tmp_path).start()
    try:
        # Mid-stream, not during start-up: some of the backlog is committed, not all.
        committed_before_outage = wait_for_progress(deployment, 500, [sidecar])
        starts = sidecar.starts  # (a start-up that never got a partition is restarted)
        kafka_broker.stop()
        time.sleep(outage_s)
        # Survived without a restart: no exit, no stall watchdog (liveness_timeout_s
        # is 30 in these deployments, so the watchdog would fire after 45 s).
        assert sidecar.running and sidecar.starts == starts, sidecar.log_tail()
        kafka_broker.start()
        produce(kafka_bootstrap, deployment.topics.predictions, events[half:])
        wait_caught_up(deployment, [sidecar], timeout=240)
        assert sidecar.starts == starts, sidecar.log_tail()
    finally:
        kafka_broker.start()
        assert sidecar.terminate() == 0, sidecar.log_tail()
    check_semantics(deployment, at_least_once=mode == "at_least_once")
    # The outage hit while the backlog was being worked through.
    assert committed_before_outage < half
    # It was said, above info level, with the cause, and its end too.
    (first, *_) = _logged(sidecar, "kafka_unreachable")
    assert first["level"] == "warning" and first["cause"] == "unreachable", first
    assert "cannot connect" in first["detail"], first
    assert _logged(sidecar, "kafka_reachable"), sidecar.log_tail()
    if outage_s >= 60:  # repeated while it lasts
        assert len(_logged(sidecar, "kafka_unreachable")) >= 2, sidecar.log_tail()


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
