"""A record the broker took on an input topic with a higher size limit, too large to be
dead-lettered whole: it is cut to fit, and its partition goes on."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.generate import GeneratorConfig, generate
from tests.integration.sidecars import (
    SidecarProcess,
    check_semantics,
    deploy,
    produce,
    read_topic,
    set_topic_config,
    wait_caught_up,
)

HUGE = b'{"pad":"' + b"x" * (2_621_440 - 10) + b'"}'  # 2.5 MiB, not JSON an event could be


def test_a_record_over_the_dead_letter_limit_is_cut_and_the_partition_moves_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    deployment = deploy(kafka_bootstrap, tmp_path, partitions=1)
    # the input topic takes records the dead-letter topic (1 MiB default) cannot
    set_topic_config(kafka_bootstrap, deployment.topics.predictions, max_message_bytes=str(4 << 20))
    events = list(generate(GeneratorConfig(events=600, models=1, seed=3)))
    produce(
        kafka_bootstrap,
        deployment.topics.predictions,
        [*events[:300], ("model-0", HUGE), *events[300:]],
    )
    sidecar = SidecarProcess(deployment, "a", tmp_path).start()
    try:
        wait_caught_up(deployment, [sidecar])  # the committed offset passed the record
        assert sidecar.running
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()
    check_semantics(deployment)  # the same alerts and dead letters as the oracle
    (letter,) = read_topic(kafka_bootstrap, deployment.topics.dlq)
    headers = dict(letter.headers)
    assert headers["dl_reason"] == b"oversized"
    assert headers["dl_truncated"] == f"value={len(HUGE)}".encode()
    assert headers["dl_sha256"] == hashlib.sha256(HUGE).hexdigest().encode()
    assert HUGE.startswith(letter.value) and len(letter.value) < 1 << 20
