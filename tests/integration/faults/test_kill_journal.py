"""kill -9 of the sidecar while its changelog holds deltas not yet compacted: the
restart must rebuild every detector from its full record and the deltas after it
(``pipeline.core.journal``), and the alerts must equal the uninterrupted oracle's."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from pipeline.generate import GeneratorConfig, generate
from pipeline.state.changelog import PartitionSnapshot, decode_changelog
from tests.integration.sidecars import (
    Deployment,
    SidecarProcess,
    check_semantics,
    deploy,
    produce,
    read_topic,
    wait_caught_up,
    wait_for_progress,
)


def changelog(deployment: Deployment) -> dict[int, PartitionSnapshot]:
    """The committed changelog, folded per partition as a restore folds it."""
    records: dict[int, list[tuple[bytes | None, bytes | None]]] = defaultdict(list)
    for r in read_topic(deployment.bootstrap, deployment.topics.state):
        records[r.partition].append((r.key, r.value))
    return {p: decode_changelog(log) for p, log in records.items()}


def restored_deltas(sidecar: SidecarProcess) -> int:
    """Deltas the sidecar replayed when it restored its partitions."""
    total = 0
    for line in sidecar.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"state_restored"' in line:
            total += int(orjson.loads(line).get("deltas", 0))
    return total


@pytest.mark.parametrize("mode", ["exactly_once", "at_least_once"])
def test_kill9_between_a_delta_and_its_compaction(
    kafka_bootstrap: str, tmp_path: Path, workload: GeneratorConfig, mode: str
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=3, runtime={"mode": mode})
    events = list(generate(workload))
    half = len(events) // 2
    produce(kafka_bootstrap, deployment.topics.predictions, events[:half])
    sidecar = SidecarProcess(deployment, "a", tmp_path)
    sidecar.start()
    wait_for_progress(deployment, half // 3, [sidecar])
    sidecar.kill9()
    # The kill left detectors whose latest full record is followed by deltas that
    # no compaction has folded yet: the restart depends on replaying them.
    pending = {
        key
        for snapshot in changelog(deployment).values()
        for key, deltas in snapshot.tail.deltas.items()
        if deltas
    }
    assert pending, "no detector had deltas after its full record at the kill"
    produce(kafka_bootstrap, deployment.topics.predictions, events[half:])
    sidecar.start()
    try:
        wait_caught_up(deployment, [sidecar])
        assert sidecar.running
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()
    assert restored_deltas(sidecar) > 0
    # the run went on journaling and compacting after the restart
    after = changelog(deployment)
    assert all(s.skipped == 0 for s in after.values())
    counts = check_semantics(deployment, at_least_once=mode == "at_least_once")
    assert counts["alerts"] >= 3
    if mode == "exactly_once":
        assert counts["repeats"] == 0
