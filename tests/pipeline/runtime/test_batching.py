"""How the loop assembles a batch from polls (a scripted source)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from pipeline.config import Settings
from pipeline.core.processor import Processor
from pipeline.core.records import Record
from pipeline.io.base import Standalone, TopicPartition
from pipeline.io.memory import MemorySink
from pipeline.runtime import loop as loop_module
from pipeline.runtime.checkpoint import Delivery
from pipeline.runtime.loop import Loop
from pipeline.runtime.stores import ChangelogStore

TOPIC = "predictions"


class ScriptedSource(Standalone):
    """Answers each poll with the next scripted number of records; notes the timeouts."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.timeouts: list[int] = []
        self.offset = 0
        self._assign_all([(TOPIC, 0)])

    exhausted = False

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        self.timeouts.append(timeout_ms)
        n = min(self.script.pop(0), max_records) if self.script else 0
        out = [Record(TOPIC, 0, self.offset + k, b"{}") for k in range(n)]
        self.offset += n
        return out

    def commit(self, offsets: object) -> None: ...

    def rewind_to_committed(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return {}

    def close(self) -> None: ...


def _loop(make_settings: Callable[..., Settings], script: list[int]) -> tuple[Loop, ScriptedSource]:
    settings = make_settings(
        topics={"predictions": TOPIC},
        runtime={"max_batch_events": 100, "max_batch_ms": 5_000, "poll_timeout_ms": 200},
    )
    source, sink = ScriptedSource(script), MemorySink()
    loop = Loop(
        Processor(settings),
        source,
        Delivery.at_least_once(sink),
        ChangelogStore(sink.changelog),
        settings.runtime,
    )
    return loop, source


def test_a_half_full_batch_goes_when_nothing_more_is_fetched(
    make_settings: Callable[..., Settings],
) -> None:
    loop, source = _loop(make_settings, [60, 0])
    batch = loop.poll_batch()
    assert len(batch) == 60
    assert source.timeouts == [200, 0]  # no wait once half full


def test_a_small_batch_waits_to_fill_up(make_settings: Callable[..., Settings]) -> None:
    loop, source = _loop(make_settings, [10, 45, 70])
    batch = loop.poll_batch()
    first, second, third = source.timeouts
    assert first == 200 and second > 0  # under half full: waits (up to max_batch_ms)
    assert third == 0  # 55 of 100: half full, so only what is already fetched
    assert len(batch) == 100  # and never more than max_batch_events
    assert [r.offset for r in batch] == list(range(100))


class _Clock:
    """``time`` for the loop module, moved by hand (no sleeping, nothing timed)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


def test_the_window_opens_when_the_previous_batch_was_assembled(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records that arrived while the previous batch was processed have waited that
    long already: once the window is over, only what is fetched is taken."""
    clock = _Clock()
    monkeypatch.setattr(loop_module, "time", clock)
    loop, source = _loop(make_settings, [10, 0, 10, 5, 0])
    assert len(loop.poll_batch()) == 10
    assert source.timeouts == [200, 200]  # window open: waits (bounded by poll_timeout_ms)
    clock.now += 6.0  # the batch took longer than max_batch_ms (5 s) to process
    source.timeouts.clear()
    assert len(loop.poll_batch()) == 15
    assert source.timeouts == [200, 0, 0]  # window over: what is fetched, no waiting


def test_a_new_window_waits_for_what_is_left_of_it(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr(loop_module, "time", clock)
    loop, source = _loop(make_settings, [10, 0, 10, 0])
    loop.poll_batch()
    clock.now += 4.9  # 100 ms of the 5 s window left
    source.timeouts.clear()
    loop.poll_batch()
    assert source.timeouts == [200, 100]
