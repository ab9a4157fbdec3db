"""How the sidecar assembles a batch from polls (no broker: a scripted source)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pipeline.config import Settings
from pipeline.core.records import Record
from pipeline.io.kafka import RebalanceEvents
from pipeline.runtime.sidecar import Sidecar

TOPIC = "predictions"


class ScriptedSource:
    """Answers each poll with the next scripted list of records; notes the timeouts."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.timeouts: list[int] = []
        self.offset = 0

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        self.timeouts.append(timeout_ms)
        n = min(self.script.pop(0), max_records) if self.script else 0
        out = [Record(TOPIC, 0, self.offset + k, b"{}") for k in range(n)]
        self.offset += n
        return out

    def rebalance_events(self) -> RebalanceEvents:
        return RebalanceEvents()


def _sidecar(make_settings: Callable[..., Settings], script: list[int]) -> Any:
    settings = make_settings(
        topics={"predictions": TOPIC},
        runtime={"max_batch_events": 100, "max_batch_ms": 5_000, "poll_timeout_ms": 200},
    )
    sidecar = Sidecar(settings, threading.Event())
    sidecar.source = ScriptedSource(script)  # type: ignore[assignment]
    sidecar.owned = {(TOPIC, 0)}
    return sidecar


def test_a_half_full_batch_goes_when_nothing_more_is_fetched(
    make_settings: Callable[..., Settings],
) -> None:
    sidecar = _sidecar(make_settings, [60, 0])
    batch = sidecar._poll_batch()
    assert len(batch) == 60
    assert sidecar.source.timeouts == [200, 0]  # no wait once half full


def test_a_small_batch_waits_to_fill_up(make_settings: Callable[..., Settings]) -> None:
    sidecar = _sidecar(make_settings, [10, 45, 70])
    batch = sidecar._poll_batch()
    first, second, third = sidecar.source.timeouts
    assert first == 200 and second > 0  # under half full: waits (up to max_batch_ms)
    assert third == 0  # 55 of 100: half full, so only what is already fetched
    assert len(batch) == 100  # and never more than max_batch_events
    assert [r.offset for r in batch] == list(range(100))
