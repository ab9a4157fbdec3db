"""Where the loop keeps detector state between checkpoints: a changelog or a snapshot.

The loop restores a partition's state from its store when the partition is
assigned (and after a failed checkpoint), and the checkpoint saves the entries a
batch changed, tagged with the source positions they reflect:

* ``ChangelogStore``: the compacted changelog topic (or a memory sink's
  changelog). Saving *sends* the records through the checkpoint's sink, so with
  exactly-once delivery they are part of the batch's transaction;
* ``SnapshotStore``: a ``Snapshot`` in memory (replay and backtests: saved to a
  file at the end, if at all). Bound to the replay's processor it is *lazy*: a
  checkpoint records only the positions, and the entries that changed are taken
  from the processor when the snapshot is read (a restore, the end of the replay),
  so each key is snapshotted once rather than at every checkpoint that touched it.
  Nothing reads a replay's state between checkpoints: its sources assign all
  their partitions once and never revoke them, and an error ends the replay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from pipeline.core.journal import Report
from pipeline.core.processor import Processor
from pipeline.core.records import Message
from pipeline.io.base import Sink
from pipeline.state.changelog import (
    PartitionSnapshot,
    decode_changelog,
    encode_entry,
    encode_journal,
    encode_position,
    journal_key,
)
from pipeline.state.chunks import split_record
from pipeline.state.file_store import Snapshot

__all__ = ["ChangelogReader", "ChangelogStore", "SnapshotStore", "StateStore"]

Changes = Mapping[str, Mapping[str, Any] | None]
ChangelogReader = Callable[[int], Iterable[tuple[bytes | None, bytes | None]]]
"""Every committed (key, value) of one changelog partition, oldest first (a
sidecar's reader yields them as they are fetched)."""


class StateStore(Protocol):
    incremental: bool
    """True: the checkpoint saves journals (``save_report``, deltas of detectors);
    False: full snapshots of the changed entries (``save``)."""
    lazy: bool
    """True: the checkpoint only records positions (``save_positions``); the store
    takes the changed entries from the processor itself when it is read."""

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

    def save_report(
        self, sink: Sink, partition: int, report: Report, positions: Mapping[str, int]
    ) -> int:
        """Save a journal (``pipeline.core.journal``); the number of records sent."""
        ...

    def save_positions(self, partition: int, positions: Mapping[str, int]) -> None:
        """A lazy store: the processor's state of ``partition`` reflects ``positions``."""
        ...


def _released(
    records: Iterable[tuple[bytes | None, bytes | None]],
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """``records`` in order; a list's are each dropped from it once taken: a
    changelog read whole is not held beside the state decoded from it."""
    if not isinstance(records, list):
        yield from records
        return
    for i in range(len(records)):
        record = records[i]
        records[i] = (None, None)
        yield record


class ChangelogStore:
    """State in the compacted changelog: changelog partition ``p`` holds source
    partition ``p``'s entries and a position record (``pipeline.state.changelog``)."""

    incremental = True
    lazy = False

    def __init__(self, read: ChangelogReader) -> None:
        self.read = read
        self.parts: dict[int, dict[str, int]] = {}
        """Partition -> key -> parts its latest value was split into."""

    def load(self, partition: int) -> PartitionSnapshot:
        snapshot = decode_changelog(_released(self.read(partition)), defer_detectors=True)
        self.parts[partition] = dict(snapshot.parts)
        return snapshot

    def save(
        self, sink: Sink, partition: int, changes: Changes, positions: Mapping[str, int]
    ) -> int:
        records: dict[str, dict[str, Any] | None] = {
            k: None if v is None else dict(v) for k, v in changes.items()
        }
        return self.save_report(sink, partition, Report(0, records=records), positions)

    def save_report(
        self, sink: Sink, partition: int, report: Report, positions: Mapping[str, int]
    ) -> int:
        """Full records first, then the journal, then the deletions of the journals
        nothing depends on any more, then the position record; each record within
        the broker's message limit (``pipeline.state.chunks``)."""
        pairs: list[tuple[str, bytes | None]] = []
        for key, state in report.records.items():
            _, value = encode_entry(partition, key, state, positions, report.ids.get(key))
            pairs.append((key, value))
        if report.journal:
            pairs.append(
                (journal_key(report.journal), encode_journal(partition, report, positions))
            )
        pairs.extend((journal_key(n), None) for n in report.dropped)
        k, v = encode_position(partition, positions)
        pairs.append((k.decode(), v))
        parts = self.parts.setdefault(partition, {})
        sent = 0
        for key, value in pairs:
            records, count = split_record(key, value, parts.pop(key, 0))
            if count:
                parts[key] = count
            for raw_key, raw_value in records:
                sink.send(Message("state", raw_key, raw_value, partition=partition))
            sent += len(records)
        return sent

    def save_positions(self, partition: int, positions: Mapping[str, int]) -> None:
        raise TypeError("a changelog store saves what changed (lazy is False)")


class SnapshotStore:
    """State in a ``Snapshot`` (replay). ``load`` gives no positions: a replay reads
    each input from where it is told (a file from its first line, a Kafka range
    from ``--from`` or from the snapshot's positions), never skipping records
    because an earlier run's state had seen their offsets.

    With a ``processor`` the store is lazy (see the module's docstring): ``settle``
    folds what changed into the snapshot, and ``load`` settles first."""

    incremental = False

    def __init__(self, snapshot: Snapshot, processor: Processor | None = None) -> None:
        self.snapshot = snapshot
        self.processor = processor
        self.lazy = processor is not None
        self._unsettled: set[int] = set()

    def load(self, partition: int) -> PartitionSnapshot:
        self.settle()
        return PartitionSnapshot(entries=dict(self.snapshot.partitions.get(partition, {})))

    def save(
        self, sink: Sink, partition: int, changes: Changes, positions: Mapping[str, int]
    ) -> int:
        self.snapshot.apply(partition, changes, positions)
        return 0

    def save_report(
        self, sink: Sink, partition: int, report: Report, positions: Mapping[str, int]
    ) -> int:
        raise TypeError("a snapshot store saves full entries (incremental is False)")

    def save_positions(self, partition: int, positions: Mapping[str, int]) -> None:
        if self.processor is None:
            raise TypeError("a snapshot store without a processor is not lazy")
        self.snapshot.apply(partition, {}, positions)
        self._unsettled.add(partition)

    def settle(self) -> None:
        """Fold the entries the processor changed since the last checkpoints into the
        snapshot (a lazy store; between batches the processor's state is the last
        checkpoint's)."""
        if self.processor is None:
            return
        for partition in sorted(self._unsettled):
            self.snapshot.apply(partition, self.processor.changed_state(partition))
        self._unsettled.clear()
