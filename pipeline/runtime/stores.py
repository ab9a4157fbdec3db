"""Where the loop keeps detector state between checkpoints: a changelog or a snapshot.

The loop restores a partition's state from its store when the partition is
assigned (and after a failed checkpoint), and the checkpoint saves the entries a
batch changed, tagged with the source positions they reflect:

* ``ChangelogStore``: the compacted changelog topic (or a memory sink's
  changelog). Saving *sends* the records through the checkpoint's sink, so with
  exactly-once delivery they are part of the batch's transaction;
* ``SnapshotStore``: a ``Snapshot`` in memory (replay and backtests: saved to a
  file at the end, if at all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pipeline.core.records import Message
from pipeline.io.base import Sink
from pipeline.state.changelog import (
    PartitionSnapshot,
    decode_changelog,
    encode_entry,
    encode_position,
)
from pipeline.state.file_store import Snapshot

__all__ = ["ChangelogReader", "ChangelogStore", "SnapshotStore", "StateStore"]

Changes = Mapping[str, Mapping[str, Any] | None]
ChangelogReader = Callable[[int], list[tuple[bytes | None, bytes | None]]]
"""Every committed (key, value) of one changelog partition, oldest first."""


class StateStore(Protocol):
    def load(self, partition: int) -> PartitionSnapshot:
        """The saved state of source partition ``partition`` and the positions it
        reflects (records below them are already in the state)."""
        ...

    def save(
        self, sink: Sink, partition: int, changes: Changes, positions: Mapping[str, int]
    ) -> int:
        """Save ``changes`` (None deletes an entry) as reflecting ``positions``; the
        number of records sent to ``sink``."""
        ...


class ChangelogStore:
    """State in the compacted changelog: changelog partition ``p`` holds source
    partition ``p``'s entries and a position record (``pipeline.state.changelog``)."""

    def __init__(self, read: ChangelogReader) -> None:
        self.read = read

    def load(self, partition: int) -> PartitionSnapshot:
        return decode_changelog(self.read(partition))

    def save(
        self, sink: Sink, partition: int, changes: Changes, positions: Mapping[str, int]
    ) -> int:
        for key, state in changes.items():
            k, v = encode_entry(partition, key, state, positions)
            sink.send(Message("state", k, v, partition=partition))
        k, v = encode_position(partition, positions)
        sink.send(Message("state", k, v, partition=partition))
        return len(changes) + 1


class SnapshotStore:
    """State in a ``Snapshot`` (replay). ``load`` gives no positions: a replay reads
    each input from where it is told (a file from its first line, a Kafka range
    from ``--from`` or from the snapshot's positions), never skipping records
    because an earlier run's state had seen their offsets."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def load(self, partition: int) -> PartitionSnapshot:
        return PartitionSnapshot(entries=dict(self.snapshot.partitions.get(partition, {})))

    def save(
        self, sink: Sink, partition: int, changes: Changes, positions: Mapping[str, int]
    ) -> int:
        self.snapshot.apply(partition, changes, positions)
        return 0
