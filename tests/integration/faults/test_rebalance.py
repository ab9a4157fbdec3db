"""Two and three sidecars in one group; members join, leave and are killed (both
delivery modes)."""

from __future__ import annotations

import time
from pathlib import Path

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
def test_members_join_leave_and_die(
    kafka_bootstrap: str, tmp_path: Path, workload: GeneratorConfig, mode: str
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=6, runtime={"mode": mode})
    events = list(generate(workload))
    quarter = len(events) // 4
    a = SidecarProcess(deployment, "a", tmp_path).start()
    b = SidecarProcess(deployment, "b", tmp_path).start()
    c = SidecarProcess(deployment, "c", tmp_path)
    try:
        produce(kafka_bootstrap, deployment.topics.predictions, events[:quarter])
        wait_for_progress(deployment, 500, [a, b])
        c.start()  # a third member joins mid-stream
        produce(kafka_bootstrap, deployment.topics.predictions, events[quarter : 2 * quarter])
        wait_for_progress(deployment, quarter + 500, [a, b, c])
        b.kill9()  # a member dies without leaving; the group notices after the session timeout
        produce(kafka_bootstrap, deployment.topics.predictions, events[2 * quarter : 3 * quarter])
        time.sleep(2)
        b.start()  # it comes back under the same transactional id (fences its zombie)
        assert a.terminate() == 0, a.log_tail()  # a member leaves cleanly
        produce(kafka_bootstrap, deployment.topics.predictions, events[3 * quarter :])
        wait_caught_up(deployment, [b, c], timeout=240)
    finally:
        for s in (a, b, c):
            if s.running:
                assert s.terminate() == 0, s.log_tail()
    check_semantics(deployment, at_least_once=mode == "at_least_once")
