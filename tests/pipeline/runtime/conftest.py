"""Factories for driving the loop in memory: partitioned records, loops, faults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from pipeline.config import Settings
from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from pipeline.generate import DriftSpec
from pipeline.io.base import Sink, Source
from pipeline.io.memory import MemorySink, MemorySource, MemoryTransactionalSink
from pipeline.runtime.checkpoint import Delivery
from pipeline.runtime.loop import Loop, LoopHooks
from pipeline.runtime.stores import ChangelogStore

DRIFTS = (
    DriftSpec(signal="feature:amount", at=1500, magnitude=2.0),
    DriftSpec(signal="confidence", kind="gradual", at=3000, width=800, magnitude=2.0),
)


@pytest.fixture
def partitioned_records(
    make_records: Callable[..., list[Record]],
) -> Callable[..., list[Record]]:
    """Generated events of four models over ``partitions`` partitions (by model, as
    Kafka keys them), each partition's offsets counting from 0."""

    def factory(events: int = 5000, partitions: int = 2, **config: Any) -> list[Record]:
        config.setdefault("drifts", DRIFTS)
        out: list[Record] = []
        next_offset = [0] * partitions
        for r in make_records(events=events, models=4, **config):
            assert r.key is not None
            p = int(r.key.decode().rsplit("-", 1)[1]) % partitions
            out.append(Record(r.topic, p, next_offset[p], r.value, key=r.key))
            next_offset[p] += 1
        return out

    return factory


@pytest.fixture
def records(partitioned_records: Callable[..., list[Record]]) -> list[Record]:
    """5,000 events over two partitions, with drifts."""
    return partitioned_records(events=5000)


@pytest.fixture
def expected(records: list[Record], make_loop: Callable[..., Loop]) -> list[str]:
    """The alert ids of ``records`` in an uninterrupted exactly-once run, in order."""
    sink = MemoryTransactionalSink()
    make_loop(MemorySource(records), sink).run()
    ids = alert_ids(sink.committed)
    assert len(ids) >= 4 and len(set(ids)) == len(ids)
    return ids


@pytest.fixture
def make_loop(make_settings: Callable[..., Settings]) -> Callable[..., Loop]:
    """A loop over ``source`` into ``sink`` (exactly-once when the sink is a
    ``MemoryTransactionalSink``, or wraps one), its state in the sink's changelog."""

    def factory(
        source: Source,
        sink: MemorySink | MemoryTransactionalSink | Faults,
        *,
        settings: Settings | None = None,
        processor: Processor | None = None,
        hooks: LoopHooks | None = None,
        **runtime: Any,
    ) -> Loop:
        settings = settings or make_settings(runtime={"max_batch_events": 500, **runtime})
        transactional = hasattr(sink, "begin")
        delivery = Delivery.exactly_once(sink) if transactional else Delivery.at_least_once(sink)
        return Loop(
            processor or Processor(settings),
            source,
            delivery,
            ChangelogStore(sink.changelog),
            settings.runtime,
            hooks=hooks,
        )

    return factory


def alert_ids(messages: list[Message]) -> list[str]:
    """The alert ids of ``messages``, in order (repeats kept)."""
    return [orjson.loads(m.value or b"")["alert_id"] for m in messages if m.kind == "alert"]


class Faults:
    """Wraps a sink or a source: the ``nth`` call of ``method`` raises ``error``
    (once), every other call goes through."""

    def __init__(self, inner: Sink | Source, method: str, nth: int, error: Exception) -> None:
        self.inner = inner
        self.method = method
        self.nth = nth
        self.error = error
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != self.method:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.nth:
                raise self.error
            return attr(*args, **kwargs)

        return call
