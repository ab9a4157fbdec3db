"""Junk model ids cannot lock a partition out for the idle expiry, nor flood the log.

1,500 distinct junk model ids arrive first (the cap is 1,000: 500 are refused). A new,
legitimate but unconfigured model is refused while the junk is fresh, and accepted
once the junk has been idle for ``limits.unknown_model_idle`` (1 hour of event time),
not after the 7-day idle expiry. The refusals are dead letters with their reason; the
log has a handful of ``dead_letter`` lines for them, not one each; the committed
offset passes every refused record.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from pipeline.generate import BASE_TIME, GeneratorConfig, generate
from tests.integration.sidecars import (
    MONITORS,
    SidecarProcess,
    check_semantics,
    deploy,
    produce,
    read_topic,
    wait_caught_up,
)

JUNK = 1500


def _as(template: dict[str, Any], model: str, at: Any, n: int) -> tuple[str, bytes]:
    event = {**template, "model_id": model, "event_id": f"{model}-{n}", "timestamp": at}
    return model, orjson.dumps(event)


def test_junk_ids_hold_the_cap_for_an_hour_not_a_week(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = deploy(
        kafka_bootstrap,
        tmp_path,
        partitions=1,
        extra={
            "models": {"model-0": {"monitors": MONITORS}},
            "limits": {"max_unknown_models": 1000},
        },
    )
    # model-0: one event every 2 s for 100 minutes of event time
    stream = list(generate(GeneratorConfig(events=3000, models=1, seed=5, interval_ms=2000)))
    template = orjson.loads(stream[0][1])
    items = [
        _as(template, f"junk-{i}", (BASE_TIME + timedelta(milliseconds=i)).isoformat(), i)
        for i in range(JUNK)
    ]
    for i, (key, value) in enumerate(stream):
        items.append((key, value))
        at = orjson.loads(value)["timestamp"]
        if i == 300:  # 10 minutes in: the junk is fresh, the cap full
            items.append(_as(template, "newcomer", at, 0))
        if i >= 1900 and i % 100 == 0:  # 63+ minutes in: the junk has been idle an hour
            items.append(_as(template, "newcomer", at, i))
    produce(kafka_bootstrap, deployment.topics.predictions, items)

    sidecar = SidecarProcess(deployment, "a", tmp_path).start()
    try:
        wait_caught_up(deployment, [sidecar])  # the committed offset passed every refusal
        assert sidecar.running
    finally:
        assert sidecar.terminate() == 0, sidecar.log_tail()
    check_semantics(deployment)

    letters = read_topic(kafka_bootstrap, deployment.topics.dlq)
    refused = [orjson.loads(r.value)["model_id"] for r in letters]
    assert all(dict(r.headers)["dl_reason"] == b"model_cap" for r in letters)
    assert sorted(refused) == sorted([f"junk-{i}" for i in range(1000, JUNK)] + ["newcomer"])
    lines = [
        e
        for e in sidecar.log_events()
        if e.get("event") == "dead_letter" and e.get("reason") == "model_cap"
    ]
    assert 1 <= len(lines) <= 10, len(lines)  # rate-limited, not one per refusal
