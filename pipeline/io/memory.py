"""In-memory sources and sinks: the loop, its checkpoints, rebalances and recovery,
tested without a broker.

* ``MemoryGroup``: a consumer group's committed offsets, shared by the sources that
  play its members and by the transactional sinks that commit into it;
* ``MemorySource``: a group member over a fixed list of records. It is assigned all
  of their partitions at the start; a test moves partitions with ``assign``,
  ``revoke`` and ``lose``, and a new ``MemorySource`` on the same group plays a
  restarted member (it starts from the committed offsets);
* ``MemorySink``: keeps every message; ``flush`` makes the pending ones durable;
* ``MemoryTransactionalSink``: sends and offsets commit together or not at all;
  ``abort`` really discards.

Both sinks serve their durable state-changelog messages back per partition
(``changelog``), as the compacted topic does for the sidecar.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Mapping

from pipeline.core.records import Message, Record
from pipeline.errors import SinkError
from pipeline.io.base import RebalanceEvents, TopicPartition

__all__ = ["MemoryGroup", "MemorySink", "MemorySource", "MemoryTransactionalSink"]


class MemoryGroup:
    """The committed offsets of one consumer group (next offset to read)."""

    def __init__(self) -> None:
        self.committed: dict[TopicPartition, int] = {}


class MemorySource:
    """Serves ``records`` in their order, per assigned partition from its position.

    Records are grouped by (topic, partition); offsets must increase within one.
    """

    def __init__(self, records: Iterable[Record], *, group: MemoryGroup | None = None) -> None:
        self.group = group or MemoryGroup()
        self._records: dict[TopicPartition, list[Record]] = {}
        self._order: dict[TopicPartition, list[int]] = {}
        for index, record in enumerate(records):
            tp = (record.topic, record.partition)
            self._records.setdefault(tp, []).append(record)
            self._order.setdefault(tp, []).append(index)
        self._offsets = {tp: [r.offset for r in rs] for tp, rs in self._records.items()}
        self._next: dict[TopicPartition, int] = {}
        self._events = RebalanceEvents()
        self.assign(self._records)

    # -- what a test scripts --------------------------------------------------
    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """The group gives us ``partitions``: read each from its committed offset."""
        for tp in partitions:
            self._events.assigned.add(tp)
            self._events.revoked.discard(tp)
            self._events.lost.discard(tp)
            self._seek(tp, self.group.committed.get(tp))

    def revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """The group takes ``partitions`` back in an orderly rebalance."""
        for tp in partitions:
            self._next.pop(tp, None)
            self._events.assigned.discard(tp)
            self._events.revoked.add(tp)

    def lose(self, partitions: Iterable[TopicPartition]) -> None:
        """The group took ``partitions`` away (e.g. a missed session timeout)."""
        for tp in partitions:
            self._next.pop(tp, None)
            self._events.assigned.discard(tp)
            self._events.lost.add(tp)

    def assignment(self) -> set[TopicPartition]:
        return set(self._next)

    @property
    def committed(self) -> dict[TopicPartition, int]:
        return self.group.committed

    # -- the Source protocol --------------------------------------------------
    @property
    def exhausted(self) -> bool:
        return all(i >= len(self._records[tp]) for tp, i in self._next.items())

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        heap = [
            (self._order[tp][i], tp)
            for tp, i in self._next.items()
            if i < len(self._records.get(tp, ()))
        ]
        heapq.heapify(heap)
        batch: list[Record] = []
        while heap and len(batch) < max_records:
            _, tp = heapq.heappop(heap)
            i = self._next[tp]
            batch.append(self._records[tp][i])
            self._next[tp] = i + 1
            if i + 1 < len(self._records[tp]):
                heapq.heappush(heap, (self._order[tp][i + 1], tp))
        return batch

    def rebalance_events(self) -> RebalanceEvents:
        events, self._events = self._events, RebalanceEvents()
        return events

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.group.committed.update(offsets)

    def rewind_to_committed(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        sought: dict[TopicPartition, int] = {}
        for tp in partitions:
            sought[tp] = self._seek(tp, self.group.committed.get(tp))
        return sought

    def group_metadata(self) -> MemoryGroup:
        return self.group

    def close(self) -> None:
        pass

    def _seek(self, tp: TopicPartition, offset: int | None) -> int:
        offsets = self._offsets.get(tp, [])
        self._next[tp] = 0 if offset is None else bisect.bisect_left(offsets, offset)
        if offset is not None:
            return offset
        return offsets[0] if offsets else 0


def _changelog(
    messages: Iterable[Message], partition: int
) -> list[tuple[bytes | None, bytes | None]]:
    return [(m.key, m.value) for m in messages if m.kind == "state" and m.partition == partition]


class MemorySink:
    """Keeps every message; ``flushed`` holds the ones a flush made durable."""

    def __init__(self) -> None:
        self.pending: list[Message] = []
        self.flushed: list[Message] = []
        self.closed = False

    def send(self, message: Message) -> None:
        self.pending.append(message)

    def flush(self) -> None:
        self.flushed.extend(self.pending)
        self.pending.clear()

    def close(self) -> None:
        self.closed = True

    def of_kind(self, kind: str) -> list[Message]:
        return [m for m in self.flushed if m.kind == kind]

    def changelog(self, partition: int) -> list[tuple[bytes | None, bytes | None]]:
        """The durable state-changelog (key, value) pairs of ``partition``, oldest first."""
        return _changelog(self.flushed, partition)


class MemoryTransactionalSink:
    """Transactions in memory: ``committed`` holds what a ``read_committed`` reader
    would see; an aborted transaction leaves no trace, its offsets included."""

    def __init__(self) -> None:
        self.committed: list[Message] = []
        self.transactions = 0
        self.aborts = 0
        self.closed = False
        self._open: list[Message] | None = None
        self._offsets: list[tuple[MemoryGroup, dict[TopicPartition, int]]] = []

    @property
    def in_transaction(self) -> bool:
        return self._open is not None

    def begin(self) -> None:
        if self._open is not None:
            raise SinkError("a transaction is already open")
        self._open = []

    def send(self, message: Message) -> None:
        if self._open is None:
            raise SinkError("send outside a transaction")
        self._open.append(message)

    def add_offsets(self, offsets: Mapping[TopicPartition, int], group_metadata: object) -> None:
        if self._open is None:
            raise SinkError("offsets outside a transaction")
        if not isinstance(group_metadata, MemoryGroup):
            raise SinkError(f"not a memory group: {group_metadata!r}")
        self._offsets.append((group_metadata, dict(offsets)))

    def flush(self) -> None:
        pass

    def commit(self) -> None:
        if self._open is None:
            raise SinkError("commit outside a transaction")
        self.committed.extend(self._open)
        for group, offsets in self._offsets:
            group.committed.update(offsets)
        self._open, self._offsets = None, []
        self.transactions += 1

    def abort(self) -> None:
        if self._open is not None:
            self.aborts += 1
        self._open, self._offsets = None, []

    def close(self) -> None:
        self.abort()
        self.closed = True

    def of_kind(self, kind: str) -> list[Message]:
        return [m for m in self.committed if m.kind == kind]

    def changelog(self, partition: int) -> list[tuple[bytes | None, bytes | None]]:
        """The committed state-changelog (key, value) pairs of ``partition``, oldest first."""
        return _changelog(self.committed, partition)
