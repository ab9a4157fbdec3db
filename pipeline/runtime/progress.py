"""Committed progress per input partition: what a wedged partition looks like.

A partition whose checkpoint fails and is retried keeps the loop busy (it polls,
aborts, recovers, polls again), so "the loop is alive" says nothing about it. This
keeps, per partition the loop owns, what it last committed, since when it has held
records it has not committed, and how many checkpoints in a row failed at the same
committed offset. The sidecar turns it into ``driftline_committed_lag``,
``driftline_offset_retries_total``/``driftline_offset_attempts`` and a failing
``/healthz``; the loop uses the attempt count to give up on an output the broker
keeps rejecting (``pipeline.runtime.rejections``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pipeline.core.records import Record
from pipeline.io.base import TopicPartition

__all__ = ["PartitionProgress", "Progress"]


@dataclass
class PartitionProgress:
    committed: int | None = None
    """The next offset to read that is committed (None until known)."""
    pending_since: float | None = None
    """Monotonic time the loop first held records past ``committed`` (None: nothing held)."""
    attempts: int = 0
    """Checkpoints in a row that failed with this partition's records at ``committed``."""


class Progress:
    """Updated by the loop on its own thread; read by the sidecar's gauges and /healthz
    (plain dict reads of small values: a torn read costs one stale sample)."""

    def __init__(self) -> None:
        self.partitions: dict[TopicPartition, PartitionProgress] = {}
        self.retries: dict[TopicPartition, int] = {}
        """Cumulative count of failed checkpoints per partition (each one is re-read)."""

    def _of(self, tp: TopicPartition) -> PartitionProgress:
        return self.partitions.setdefault(tp, PartitionProgress())

    def polled(self, records: Sequence[Record], now: float) -> None:
        """The loop holds ``records`` (a batch about to be processed)."""
        for tp in {(record.topic, record.partition) for record in records}:
            state = self._of(tp)
            if state.pending_since is None:
                state.pending_since = now

    def committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A checkpoint committed ``offsets`` (next offset per partition)."""
        for tp, offset in offsets.items():
            state = self._of(tp)
            state.committed, state.pending_since, state.attempts = offset, None, 0

    def rewound(self, offsets: Mapping[TopicPartition, int]) -> None:
        """The source went back to its committed ``offsets``."""
        for tp, offset in offsets.items():
            state = self._of(tp)
            if state.committed is not None and state.committed != offset:
                state.attempts = 0  # committed past meanwhile (another member)
            state.committed = offset

    def failed(self, records: Sequence[Record]) -> None:
        """A checkpoint of ``records`` failed: each of their partitions will be
        re-read from its committed offset."""
        for tp in {(r.topic, r.partition) for r in records}:
            self._of(tp).attempts += 1
            self.retries[tp] = self.retries.get(tp, 0) + 1

    def released(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked or lost: no longer this loop's to track."""
        for tp in partitions:
            self.partitions.pop(tp, None)

    def stalled(self, now: float, limit_s: float) -> list[TopicPartition]:
        """Partitions holding records that were not committed for ``limit_s``."""
        return sorted(
            tp
            for tp, state in self.partitions.items()
            if state.pending_since is not None and now - state.pending_since >= limit_s
        )

    def attempts(self, records: Sequence[Record]) -> int:
        """The most failed attempts in a row among the partitions of ``records``."""
        tps = {(r.topic, r.partition) for r in records}
        return max((self.partitions[tp].attempts for tp in tps if tp in self.partitions), default=0)
