"""A finite Kafka source for backtests: one topic between two offsets or two times.

A throw-away consumer: no consumer group (``group_id=None``), so nothing is ever
committed and no live group is disturbed; partitions are assigned, not
subscribed. ``read_committed``, like the sidecar.

Bounds are per topic: an offset (the same for every partition), an aware
``datetime`` (resolved with ``offsets_for_times``: the first offset whose record
timestamp is at or after it), a ``{partition: offset}`` mapping (e.g. the
positions a saved snapshot reached), or None (start: the earliest offset; end:
the end offsets at construction, so the range is fixed even while producers go
on writing). The end is exclusive.

Partitions are merged into one deterministic order — by record timestamp, then
partition, then offset — and a record is only released once every unfinished
partition has one buffered, so two backtests of the same range see the records
in the same order whatever the fetch timing.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError

from pipeline.core.records import Record
from pipeline.errors import SourceError
from pipeline.io.base import Standalone, TopicPartition
from pipeline.io.client_options import client_options, connect_error, preflight
from pipeline.io.consumer_records import to_record

__all__ = ["Bound", "KafkaRangeSource"]

Bound = int | datetime | Mapping[int, int] | None

_BUFFER_CAP = 5000
"""Records buffered per partition before it is paused."""


class KafkaRangeSource(Standalone):
    """Records of ``topic`` from ``start`` (inclusive) to ``end`` (exclusive)."""

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str,
        start: Bound = None,
        end: Bound = None,
        client_id: str = "driftline-backtest",
        metadata_timeout_s: float = 30.0,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        options = client_options(extra)
        if (problem := preflight(bootstrap_servers, options)) is not None:
            raise SourceError(problem)
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap_servers,
                group_id=None,
                client_id=client_id,
                enable_auto_commit=False,
                isolation_level="read_committed",
                auto_offset_reset="earliest",
                **options,
            )
        except KafkaError as exc:
            raise SourceError(connect_error(bootstrap_servers, extra or {}, exc)) from exc
        try:
            self._setup(start, end, metadata_timeout_s)
        except KafkaError as exc:
            self._consumer.close(autocommit=False)
            raise SourceError(f"cannot read the offsets of topic {topic!r}: {exc}") from exc
        except SourceError:
            self._consumer.close(autocommit=False)
            raise
        self.committed: dict[TopicPartition, int] = {}
        self._assign_all((topic, p) for p in self.bounds)

    def _setup(self, start: Bound, end: Bound, metadata_timeout_s: float) -> None:
        deadline = time.monotonic() + metadata_timeout_s
        partitions = self._consumer.partitions_for_topic(self.topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise SourceError(f"topic {self.topic!r} does not exist (or has no partitions)")
        tps = [KafkaTopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        first = self._consumer.beginning_offsets(tps)
        last = self._consumer.end_offsets(tps)
        starts = self._resolve(start, tps, first, last, default=first)
        ends = self._resolve(end, tps, first, last, default=last)
        self.bounds: dict[int, tuple[int, int]] = {}
        self._end: dict[KafkaTopicPartition, int] = {}
        self._buffers: dict[KafkaTopicPartition, deque[Record]] = {}
        self._unfinished: set[KafkaTopicPartition] = set()
        for tp in tps:
            lo, hi = starts[tp], max(starts[tp], ends[tp])
            self.bounds[tp.partition] = (lo, hi)
            self._end[tp] = hi
            self._buffers[tp] = deque()
            if lo < hi:
                self._consumer.seek(tp, lo)
                self._unfinished.add(tp)
        idle = [tp for tp in tps if tp not in self._unfinished]
        if idle:
            self._consumer.pause(*idle)

    def _resolve(
        self,
        bound: Bound,
        tps: list[KafkaTopicPartition],
        first: Mapping[KafkaTopicPartition, int],
        last: Mapping[KafkaTopicPartition, int],
        *,
        default: Mapping[KafkaTopicPartition, int],
    ) -> dict[KafkaTopicPartition, int]:
        def clamp(tp: KafkaTopicPartition, offset: int) -> int:
            return min(max(offset, first[tp]), last[tp])

        if bound is None:
            return {tp: default[tp] for tp in tps}
        if isinstance(bound, datetime):
            if bound.tzinfo is None:
                raise SourceError(f"time bound {bound.isoformat()} needs a time zone")
            ms = int(bound.timestamp() * 1000)
            found = self._consumer.offsets_for_times({tp: ms for tp in tps})
            return {
                tp: clamp(tp, found[tp].offset) if found.get(tp) is not None else last[tp]
                for tp in tps
            }
        if isinstance(bound, int):
            return {tp: clamp(tp, bound) for tp in tps}
        return {tp: clamp(tp, int(bound.get(tp.partition, default[tp]))) for tp in tps}

    @property
    def total(self) -> int:
        """Offsets in the range (an upper bound on records: transaction markers and
        aborted records take offsets too)."""
        return sum(hi - lo for lo, hi in self.bounds.values())

    @property
    def exhausted(self) -> bool:
        return not self._unfinished and not any(self._buffers.values())

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        self._fill(timeout_ms)
        return self._merge(max_records)

    def _fill(self, timeout_ms: int) -> None:
        deadline = time.monotonic() + timeout_ms / 1000
        while any(not self._buffers[tp] for tp in self._unfinished):
            active = [tp for tp in self._unfinished if len(self._buffers[tp]) < _BUFFER_CAP]
            full = [tp for tp in self._unfinished if len(self._buffers[tp]) >= _BUFFER_CAP]
            if full:
                self._consumer.pause(*full)
            if active:
                self._consumer.resume(*active)
            remaining = max(0, int((deadline - time.monotonic()) * 1000))
            polled = self._consumer.poll(timeout_ms=remaining, max_records=_BUFFER_CAP)
            for tp, batch in polled.items():
                self._take(tp, batch)
            for tp in list(self._unfinished):
                if not self._buffers[tp] and self._consumer.position(tp) >= self._end[tp]:
                    self._finish(tp)
            if not polled and time.monotonic() >= deadline:
                return

    def _take(self, tp: KafkaTopicPartition, batch: list[Any]) -> None:
        if tp not in self._unfinished:
            return
        end = self._end[tp]
        buffer = self._buffers[tp]
        for r in batch:
            if r.offset >= end:
                self._finish(tp)
                return
            buffer.append(to_record(r))
            if r.offset + 1 >= end:
                self._finish(tp)
                return

    def _finish(self, tp: KafkaTopicPartition) -> None:
        self._unfinished.discard(tp)
        self._consumer.pause(tp)

    def _merge(self, max_records: int) -> list[Record]:
        heap: list[tuple[int, int, int, KafkaTopicPartition]] = []
        for tp, buffer in self._buffers.items():
            if buffer:
                r = buffer[0]
                heap.append((r.timestamp_ms or 0, r.partition, r.offset, tp))
        heapq.heapify(heap)
        out: list[Record] = []
        while heap and len(out) < max_records:
            _, _, _, tp = heapq.heappop(heap)
            buffer = self._buffers[tp]
            out.append(buffer.popleft())
            if buffer:
                r = buffer[0]
                heapq.heappush(heap, (r.timestamp_ms or 0, r.partition, r.offset, tp))
            elif tp in self._unfinished:
                break  # a record of this partition may still sort before the others
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Remember how far the replay got; nothing is committed to Kafka."""
        self.committed.update(offsets)

    def rewind_to_committed(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Seek back to the committed offsets (the range's start where none is)."""
        sought: dict[TopicPartition, int] = {}
        for topic, partition in partitions:
            if topic != self.topic or partition not in self.bounds:
                continue
            tp = KafkaTopicPartition(topic, partition)
            offset = self.committed.get((topic, partition), self.bounds[partition][0])
            self._buffers[tp].clear()
            if offset < self._end[tp]:
                try:
                    self._consumer.seek(tp, offset)
                except KafkaError as exc:
                    raise SourceError(f"cannot seek {topic}[{partition}]: {exc}") from exc
                self._unfinished.add(tp)
                self._consumer.resume(tp)
            else:
                self._finish(tp)
            sought[(topic, partition)] = offset
        return sought

    def close(self) -> None:
        self._consumer.close(autocommit=False)
