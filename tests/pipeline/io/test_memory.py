"""The in-memory source and sinks behave as the loop expects a broker to."""

from __future__ import annotations

import pytest

from pipeline.core.records import Message, Record
from pipeline.errors import SinkError
from pipeline.io.memory import MemoryGroup, MemorySink, MemorySource, MemoryTransactionalSink


def _records() -> list[Record]:
    """Two partitions, interleaved: a0 b0 a1 b1 a2 b2."""
    return [Record("t", p, o, f"{p}:{o}".encode()) for o in range(3) for p in (0, 1)]


def _values(records: list[Record]) -> list[bytes]:
    return [r.value for r in records]


class TestMemorySource:
    def test_serves_the_records_in_order_and_reports_the_assignment_once(self) -> None:
        source = MemorySource(_records())
        events = source.rebalance_events()
        assert events.assigned == {("t", 0), ("t", 1)} and not source.rebalance_events()
        assert _values(source.poll(4, 0)) == [b"0:0", b"1:0", b"0:1", b"1:1"]
        assert _values(source.poll(4, 0)) == [b"0:2", b"1:2"]
        assert source.exhausted and source.poll(4, 0) == []

    def test_rewinds_to_the_committed_offsets(self) -> None:
        source = MemorySource(_records())
        source.poll(6, 0)
        source.commit({("t", 0): 2})
        assert source.rewind_to_committed([("t", 0), ("t", 1)]) == {("t", 0): 2, ("t", 1): 0}
        assert _values(source.poll(6, 0)) == [b"1:0", b"1:1", b"0:2", b"1:2"]

    def test_a_new_member_of_the_group_starts_at_the_committed_offsets(self) -> None:
        group = MemoryGroup()
        MemorySource(_records(), group=group).commit({("t", 1): 3})
        assert _values(MemorySource(_records(), group=group).poll(6, 0)) == [
            b"0:0",
            b"0:1",
            b"0:2",
        ]

    def test_revoked_and_lost_partitions_are_not_served(self) -> None:
        source = MemorySource(_records())
        source.rebalance_events()
        source.revoke([("t", 0)])
        source.lose([("t", 1)])
        events = source.rebalance_events()
        assert events.revoked == {("t", 0)} and events.lost == {("t", 1)}
        assert source.poll(6, 0) == [] and source.assignment() == set()
        source.assign([("t", 1)])
        assert _values(source.poll(6, 0)) == [b"1:0", b"1:1", b"1:2"]


class TestMemoryTransactionalSink:
    def test_commit_publishes_the_messages_and_the_offsets_together(self) -> None:
        group, sink = MemoryGroup(), MemoryTransactionalSink()
        sink.begin()
        sink.send(Message("alert", b"k", b"a"))
        sink.add_offsets({("t", 0): 5}, group)
        assert sink.committed == [] and group.committed == {}
        sink.commit()
        assert [m.value for m in sink.committed] == [b"a"] and group.committed == {("t", 0): 5}

    def test_abort_discards_the_messages_and_the_offsets(self) -> None:
        group, sink = MemoryGroup(), MemoryTransactionalSink()
        sink.begin()
        sink.send(Message("alert", b"k", b"a"))
        sink.send(Message("state", b"s", b"{}", partition=0))
        sink.add_offsets({("t", 0): 5}, group)
        sink.abort()
        assert sink.committed == [] and sink.changelog(0) == [] and group.committed == {}
        assert not sink.in_transaction

    def test_sends_outside_a_transaction_are_refused(self) -> None:
        with pytest.raises(SinkError, match="outside a transaction"):
            MemoryTransactionalSink().send(Message("alert", b"k", b"a"))

    def test_the_changelog_holds_committed_state_of_one_partition(self) -> None:
        sink = MemoryTransactionalSink()
        sink.begin()
        sink.send(Message("state", b"x", b"1", partition=0))
        sink.send(Message("state", b"y", b"2", partition=1))
        sink.send(Message("alert", b"k", b"a"))
        sink.commit()
        assert sink.changelog(0) == [(b"x", b"1")]


def test_the_at_least_once_changelog_holds_flushed_state_only() -> None:
    sink = MemorySink()
    sink.send(Message("state", b"x", b"1", partition=0))
    assert sink.changelog(0) == []
    sink.flush()
    assert sink.changelog(0) == [(b"x", b"1")]
