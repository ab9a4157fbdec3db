"""A changelog snapshot that does not restore no longer crash-loops the sidecar.

Anyone who can write to the state topic (or a bug) can leave a detector snapshot that
``from_state`` refuses. Before, every restart died restoring it. Now the key is
quarantined: restored as a fresh detector, logged once, and overwritten by the next
checkpoint; the partition's committed offset moves on.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.generate import GeneratorConfig, generate
from pipeline.io.kafka_topics import produce_records
from pipeline.state.changelog import decode_changelog, encode_entry
from tests.integration.sidecars import (
    SidecarProcess,
    deploy,
    group_caught_up,
    produce,
    read_topic,
    wait_caught_up,
)


def _changelog(bootstrap: str, topic: str) -> dict[int, list[tuple[bytes | None, bytes | None]]]:
    out: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
    for r in sorted(read_topic(bootstrap, topic), key=lambda r: (r.partition, r.offset)):
        out.setdefault(r.partition, []).append((r.key, r.value))
    return out


def test_a_corrupt_snapshot_is_quarantined_and_overwritten(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=1)
    topics = deployment.topics
    events = list(generate(GeneratorConfig(events=4000, models=2, seed=11)))
    produce(kafka_bootstrap, topics.predictions, events[:2000])
    sidecar = SidecarProcess(deployment, "a", tmp_path).start()
    try:
        wait_caught_up(deployment, [sidecar])
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()

    snapshot = decode_changelog(_changelog(kafka_bootstrap, topics.state)[0])
    key = sorted(k for k in snapshot.entries if k.startswith("detector:"))[0]
    state = dict(snapshot.entries[key])
    state["detector"] = {**state["detector"], "state": {"not": "a snapshot"}}
    k, v = encode_entry(0, key, state, snapshot.positions)
    assert v is not None
    produce_records(kafka_bootstrap, [(topics.state, k, v, (), None)])

    produce(kafka_bootstrap, topics.predictions, events[2000:])
    sidecar.start()
    try:
        wait_caught_up(deployment, [sidecar])  # the committed offset reached the end
        assert sidecar.running
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()
    assert group_caught_up(deployment)

    quarantined = [e for e in sidecar.log_events() if e.get("event") == "key_quarantined"]
    assert len(quarantined) == 1, quarantined
    assert quarantined[0]["stage"] == "restore"
    latest = decode_changelog(_changelog(kafka_bootstrap, topics.state)[0]).entries[key]
    assert "not" not in latest["detector"]["state"]  # a fresh detector's snapshot since
