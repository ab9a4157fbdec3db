"""Rebalances in memory: revoked and lost partitions' state is dropped, assigned
ones are restored from the changelog before any of their records is processed;
two members handing partitions over detect what one member alone detects."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.core.records import Record
from pipeline.io.memory import MemoryGroup, MemorySource, MemoryTransactionalSink
from pipeline.runtime.loop import Loop
from tests.pipeline.runtime.conftest import alert_ids

P0, P1 = ("preds", 0), ("preds", 1)


def _run(loop: Loop, batches: int) -> None:
    for _ in range(batches):
        loop.run_once()


def _drain(*loops: Loop) -> None:
    while any([loop.run_once() for loop in loops]):
        pass


def test_a_revoked_partition_is_dropped_and_restored_when_assigned_again(
    records: list[Record], expected: list[str], make_loop: Callable[..., Loop]
) -> None:
    sink = MemoryTransactionalSink()
    source = MemorySource(records)
    loop = make_loop(source, sink)
    _run(loop, 3)
    assert loop.processor.engine.partitions.keys() == {0, 1}
    source.revoke([P1])
    _run(loop, 2)
    assert loop.owned == {P0}
    assert 1 not in loop.processor.engine.partitions  # its state is gone
    assert 1 not in loop.positions
    source.assign([P1])
    restored: list[int] = []
    original = loop.restore
    loop.restore = lambda p: (restored.append(p), original(p))[1]  # type: ignore[method-assign]
    loop.run()
    assert restored == [1]
    assert sorted(alert_ids(sink.committed)) == sorted(expected)


@pytest.mark.parametrize("how", ["revoke", "lose"])
def test_a_partition_handed_to_another_member_detects_the_same(
    records: list[Record], expected: list[str], make_loop: Callable[..., Loop], how: str
) -> None:
    group, sink = MemoryGroup(), MemoryTransactionalSink()  # one changelog, shared
    a_source = MemorySource(records, group=group)
    a = make_loop(a_source, sink)
    _run(a, 4)
    getattr(a_source, how)([P1])
    b_source = MemorySource(records, group=group)
    b_source.revoke([P0])  # the group gives B only partition 1
    b = make_loop(b_source, sink)
    _drain(a, b)
    assert a.owned == {P0} and b.owned == {P1}
    assert b.processor.engine.partitions.keys() == {1}
    assert sorted(alert_ids(sink.committed)) == sorted(expected)
    assert group.committed == {
        P0: sum(1 for r in records if r.partition == 0),
        P1: sum(1 for r in records if r.partition == 1),
    }


def test_records_of_a_partition_lost_during_the_polls_are_not_processed(
    records: list[Record], make_loop: Callable[..., Loop]
) -> None:
    class LosingSource(MemorySource):
        """Loses partition 1 during the second poll (the coordinator's callback runs
        inside poll), after that poll fetched records of it."""

        polls = 0

        def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
            batch = super().poll(max_records, timeout_ms)
            self.polls += 1
            if self.polls == 2:
                self.lose([P1])
            return batch

    source = LosingSource(records)
    loop = make_loop(source, MemoryTransactionalSink(), max_batch_events=1000)
    first = loop.poll_batch()  # one poll: a full batch over both partitions
    assert {r.partition for r in first} == {0, 1}
    second = loop.poll_batch()
    assert {r.partition for r in second} == {0}
    assert loop.owned == {P0}


@pytest.mark.parametrize("same_poll", [True, False])
def test_a_partition_assigned_back_while_a_batch_is_assembled_is_read_once(
    records: list[Record],
    expected: list[str],
    make_loop: Callable[..., Loop],
    same_poll: bool,
) -> None:
    """An eager rebalance that hands partition 1 back to the same member in the middle
    of a batch (revoked and assigned in one poll, or in two): its state is restored at
    the committed offset and its records are read from there, once; the records of it
    already in the batch are not processed twice, and none is skipped."""

    class Rebalancing(MemorySource):
        polls = 0

        def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
            # As a Kafka client does: the group's callbacks run inside the poll, before
            # it fetches (an assigned partition is fetched from its committed offset).
            self.polls += 1
            if self.polls == 7:
                self.revoke([P1])
                if same_poll:
                    self.assign([P1])
            elif self.polls == 8 and not same_poll:
                self.assign([P1])
            return super().poll(max_records, timeout_ms)

    sink = MemoryTransactionalSink()
    loop = make_loop(Rebalancing(records), sink, max_batch_events=1000)
    loop.source.poll = _small_polls(loop.source.poll)  # type: ignore[method-assign]
    loop.run()
    assert sorted(alert_ids(sink.committed)) == sorted(expected)
    assert loop.stats.events == len(records)


def _small_polls(poll: Callable[[int, int], list[Record]]) -> Callable[[int, int], list[Record]]:
    """Polls of at most 100 records, so that a batch takes several."""
    return lambda max_records, timeout_ms: poll(min(max_records, 100), timeout_ms)
