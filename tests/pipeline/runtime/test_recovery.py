"""Failed checkpoints and crashes, in memory: exactly-once repeats nothing,
at-least-once repeats (same alert ids) and loses nothing; both detect what an
uninterrupted run detects."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from pipeline.core.records import Record
from pipeline.errors import SinkError, SourceError
from pipeline.io.memory import MemoryGroup, MemorySink, MemorySource, MemoryTransactionalSink
from pipeline.runtime.checkpoint import Checkpoint
from pipeline.runtime.loop import Loop, LoopHooks
from tests.pipeline.runtime.conftest import Faults, alert_ids


class Crash(BaseException):
    """A kill -9 in the middle of a checkpoint: nothing in the process runs after it."""


class AlertsPerBatch(LoopHooks):
    def __init__(self) -> None:
        self.batches: list[int] = []

    def committed(self, records: Sequence[Record], checkpoint: Checkpoint, seconds: float) -> None:
        self.batches.append(0)

    def published(self, message: object) -> None:
        self.batches[-1] += 1


@pytest.fixture
def first_alert_batch(records: list[Record], make_loop: Callable[..., Loop]) -> int:
    """The number (1-based) of the first batch that publishes an alert."""
    hooks = AlertsPerBatch()
    make_loop(MemorySource(records), MemorySink(), hooks=hooks).run()
    return next(i + 1 for i, n in enumerate(hooks.batches) if n)


def _ends(records: list[Record]) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for r in records:
        ends[(r.topic, r.partition)] = r.offset + 1
    return ends


class TestExactlyOnce:
    @pytest.mark.parametrize(("method", "nth"), [("commit", 3), ("send", 40), ("add_offsets", 2)])
    def test_a_failed_checkpoint_is_aborted_rewound_and_redone_once(
        self,
        records: list[Record],
        expected: list[str],
        make_loop: Callable[..., Loop],
        method: str,
        nth: int,
    ) -> None:
        inner = MemoryTransactionalSink()
        sink = Faults(inner, method, nth, SinkError("broker went away"))
        source = MemorySource(records)
        loop = make_loop(source, sink)
        loop.run(recover=True)
        assert sink.calls >= nth and inner.aborts == 1
        assert alert_ids(inner.committed) == expected  # no repeat, no loss, same order
        assert source.committed == _ends(records)

    def test_a_failed_rewind_is_retried(
        self, records: list[Record], expected: list[str], make_loop: Callable[..., Loop]
    ) -> None:
        inner = MemoryTransactionalSink()
        source = Faults(MemorySource(records), "rewind_to_committed", 1, SourceError("down"))
        loop = make_loop(source, Faults(inner, "commit", 2, SinkError("broker went away")))
        loop.stop.wait = lambda delay: False  # type: ignore[method-assign]  # no backoff sleep
        loop.run(recover=True)
        assert source.calls == 2  # failed once, then worked
        assert alert_ids(inner.committed) == expected

    def test_a_crash_before_the_commit_repeats_nothing_after_a_restart(
        self, records: list[Record], expected: list[str], make_loop: Callable[..., Loop]
    ) -> None:
        group, inner = MemoryGroup(), MemoryTransactionalSink()
        with pytest.raises(Crash):
            make_loop(MemorySource(records, group=group), Faults(inner, "commit", 4, Crash())).run()
        assert group.committed  # three batches made it
        inner.abort()  # the restarted producer fences the open transaction
        make_loop(MemorySource(records, group=group), inner).run()
        assert alert_ids(inner.committed) == expected
        assert group.committed == _ends(records)


class TestAtLeastOnce:
    def test_a_failed_changelog_flush_repeats_outputs_and_loses_none(
        self,
        records: list[Record],
        expected: list[str],
        first_alert_batch: int,
        make_loop: Callable[..., Loop],
    ) -> None:
        inner = MemorySink()
        # Two flushes per checkpoint: outputs, then changelog. Fail the changelog's
        # in the first batch with alerts: they are out, their offsets are not.
        sink = Faults(inner, "flush", 2 * first_alert_batch, SinkError("broker went away"))
        source = MemorySource(records)
        make_loop(source, sink).run(recover=True)
        ids = alert_ids(inner.flushed)
        assert len(ids) > len(expected)  # repeats...
        assert list(dict.fromkeys(ids)) == expected  # ...only: dropped by alert_id
        assert source.committed == _ends(records)

    def test_a_crash_after_the_outputs_repeats_them_after_a_restart(
        self,
        records: list[Record],
        expected: list[str],
        first_alert_batch: int,
        make_loop: Callable[..., Loop],
    ) -> None:
        group, sink = MemoryGroup(), MemorySink()
        crashing = Faults(sink, "flush", 2 * first_alert_batch, Crash())
        with pytest.raises(Crash):
            make_loop(MemorySource(records, group=group), crashing).run()
        sink.pending.clear()  # what was not flushed died with the process
        make_loop(MemorySource(records, group=group), sink).run()
        ids = alert_ids(sink.flushed)
        assert len(ids) > len(expected)
        assert list(dict.fromkeys(ids)) == expected
        assert group.committed == _ends(records)

    def test_state_ahead_of_the_offsets_is_not_applied_twice(
        self,
        records: list[Record],
        expected: list[str],
        first_alert_batch: int,
        make_loop: Callable[..., Loop],
    ) -> None:
        group, sink = MemoryGroup(), MemorySink()
        source = Faults(MemorySource(records, group=group), "commit", first_alert_batch, Crash())
        with pytest.raises(Crash):
            make_loop(source, sink).run()
        # Outputs and changelog of the batch are durable, its offsets are not: the
        # restarted loop skips the records its restored state already reflects.
        restarted = make_loop(MemorySource(records, group=group), sink)
        restarted.run()
        assert restarted.skip_below
        assert alert_ids(sink.flushed) == expected
        assert group.committed == _ends(records)
