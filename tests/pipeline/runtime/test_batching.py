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
from pipeline.runtime.loop import Loop, catch_up_ms
from pipeline.runtime.stores import ChangelogStore

TOPIC = "predictions"


class ScriptedSource(Standalone):
    """Answers each poll with the next scripted number of records; notes the timeouts
    and, per poll, how long the broker may hold the fetch it sends (``hold_fetches``)."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.timeouts: list[int] = []
        self.holds: list[int] = []
        self.hold = -1
        self.offset = 0
        self._assign_all([(TOPIC, 0)])

    exhausted = False

    def hold_fetches(self, wait_ms: int) -> None:
        self.hold = wait_ms

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        self.timeouts.append(timeout_ms)
        self.holds.append(self.hold)
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


def _loop(
    make_settings: Callable[..., Settings], script: list[int], max_batch_ms: int = 5_000
) -> tuple[Loop, ScriptedSource]:
    settings = make_settings(
        topics={"predictions": TOPIC},
        runtime={"max_batch_events": 100, "max_batch_ms": max_batch_ms, "poll_timeout_ms": 200},
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
    long already: once the window is over, the batch takes what is fetched and what
    one immediate fetch brings, and goes."""
    clock = _Clock()
    monkeypatch.setattr(loop_module, "time", clock)
    loop, source = _loop(make_settings, [10, 0, 10, 5, 0])
    assert len(loop.poll_batch()) == 10
    assert source.timeouts == [200, 200]  # window open: waits (bounded by poll_timeout_ms)
    assert source.holds == [5000, 5000]  # every fetch held for a window
    clock.now += 6.0  # the batch took longer than max_batch_ms (5 s) to process
    source.timeouts.clear()
    source.holds.clear()
    assert len(loop.poll_batch()) == 15
    # late: the first poll's fetch is answered at once and waited for (a quarter of
    # the window, bounded by poll_timeout_ms); the fetch after it is held again
    assert source.holds == [0, 5000, 5000]
    assert source.timeouts == [200, 200, 0]
    assert source.hold == 5000  # the next batch's fetch: held for its window


def test_a_late_batch_takes_the_records_of_the_overrun(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fetch the client held was answered at the window's end; what arrived while
    the previous batch ran over comes with one more (immediate) fetch, in this batch."""
    clock = _Clock()
    monkeypatch.setattr(loop_module, "time", clock)
    loop, source = _loop(make_settings, [10, 0, 3, 4, 0, 6, 0])
    loop.poll_batch()
    clock.now += 5.0 + 0.001  # just late
    source.timeouts.clear()
    source.holds.clear()
    batch = loop.poll_batch()
    assert [r.offset for r in batch] == list(range(10, 17))  # buffered 3 + overrun 4
    assert source.timeouts == [200, 200, 0]
    clock.now += 1.0  # on time: the window (5 s from the last batch) is still open
    source.timeouts.clear()
    source.holds.clear()
    assert len(loop.poll_batch()) == 6
    assert source.holds == [5000, 5000]  # not late: never an immediate fetch


@pytest.mark.parametrize(("script", "expected"), [([0, 0], []), ([0, 8, 0], [8])])
def test_a_late_poll_that_finds_nothing_yet_is_followed_by_a_held_one(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    script: list[int],
    expected: list[int],
) -> None:
    """The held fetch may not be back yet when a late batch starts (or the stream
    stopped): the immediate ask waits ``catch_up_ms`` at most, then the loop polls as
    an on-time batch does (a held fetch, ``poll_timeout_ms``), without a second wait."""
    clock = _Clock()
    monkeypatch.setattr(loop_module, "time", clock)
    loop, source = _loop(make_settings, [5, 0, *script], max_batch_ms=100)
    assert len(loop.poll_batch()) == 5
    clock.now += 0.5
    source.timeouts.clear()
    source.holds.clear()
    assert [len(loop.poll_batch())] == (expected or [0])
    if expected:
        assert source.timeouts == [25, 200, 0] and source.holds == [0, 100, 100]
    else:
        assert source.timeouts == [25, 200] and source.holds == [0, 100]
    assert source.hold == 100


@pytest.mark.parametrize(("window", "expected"), [(100, 25), (2, 1), (1, 1), (0, 0)])
def test_catch_up_is_a_quarter_of_the_window(window: int, expected: int) -> None:
    assert catch_up_ms(window) == expected


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
