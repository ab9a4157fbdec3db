"""The protocols at the I/O seam: what the loop asks of a source and of a sink.

A ``Source`` is a consumer-group member as far as the loop is concerned: it
reports which partitions it was given or lost (``rebalance_events``), goes back to
its committed offsets after a failed checkpoint (``rewind_to_committed``), and
names its group for a transaction (``group_metadata``). A finite source (a file,
a Kafka offset range, a list in memory) is the degenerate member that is assigned
all of its partitions at the start and never loses one.

A ``Sink`` takes output messages; a ``TransactionalSink`` groups them, together
with the source's offsets, into transactions that commit or abort as a whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.core.records import Message, Record

__all__ = [
    "RebalanceEvents",
    "Sink",
    "Source",
    "Standalone",
    "TopicPartition",
    "TransactionalSink",
]

TopicPartition = tuple[str, int]


@dataclass
class RebalanceEvents:
    """What the group changed since the loop last looked. ``revoked`` partitions were
    handed back in order (their committed offsets are the truth); ``lost`` ones were
    taken away without that chance (another member may already own them)."""

    assigned: set[TopicPartition] = field(default_factory=set)
    revoked: set[TopicPartition] = field(default_factory=set)
    lost: set[TopicPartition] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.assigned or self.revoked or self.lost)


class Standalone:
    """Mixin for a source outside any consumer group (a file, an offset range, a
    script): all of its partitions are assigned at the first look, nothing changes
    after, and there is no group to name in a transaction. Call ``_assign_all``."""

    _unreported: set[TopicPartition] | None = None

    def _assign_all(self, partitions: Iterable[TopicPartition]) -> None:
        self._unreported = set(partitions)

    def rebalance_events(self) -> RebalanceEvents:
        pending, self._unreported = self._unreported, None
        return RebalanceEvents(assigned=pending) if pending else RebalanceEvents()

    def group_metadata(self) -> None:
        return None


class Source(Protocol):
    """Delivers records in batches; remembers how far processing got."""

    @property
    def exhausted(self) -> bool:
        """True once a finite source (file, memory) has nothing more to give."""
        ...

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]: ...

    def rebalance_events(self) -> RebalanceEvents:
        """Assignment changes since the last call (they happen during ``poll``)."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Mark ``offsets`` (the next offset to read, per partition) as processed."""
        ...

    def rewind_to_committed(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Read ``partitions`` again from their committed offsets (or from where the
        source starts, when none is committed); the offsets sought, per partition."""
        ...

    def group_metadata(self) -> object:
        """What a ``TransactionalSink`` needs to commit this source's offsets inside
        its transaction (Kafka: the consumer's group metadata)."""
        ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Takes output messages; ``flush`` returns once all of them are durable."""

    def send(self, message: Message) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class TransactionalSink(Sink, Protocol):
    """A sink whose sends, and a source's offsets, commit or abort together.

    ``begin`` opens a transaction; ``send`` and ``add_offsets`` join it; ``commit``
    makes all of it visible at once; ``abort`` discards all of it (a reader never
    sees an aborted message; the offsets stay where they were). ``flush`` waits for
    the sends without committing anything.
    """

    def begin(self) -> None: ...

    def add_offsets(self, offsets: Mapping[TopicPartition, int], group_metadata: object) -> None:
        """Commit ``offsets`` of the group ``group_metadata`` names with the transaction."""
        ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...
