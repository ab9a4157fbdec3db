"""The Kafka side of :mod:`pipeline.subscribe`: reading driftline's output topics.

``OutputTopicReader`` reads committed data only (``isolation_level=read_committed``):
a subscriber never sees an alert of an aborted sidecar transaction. Two modes:

* without ``group_id`` (``driftline alerts tail``): every partition of the topics is
  assigned directly and read from ``start`` — ``"beginning"``, ``"end"`` or an int N
  (about the last N records of each partition); nothing is committed;
* with ``group_id``: a consumer-group member that resumes from the group's committed
  offsets (``start`` only applies to partitions without one) and commits what the
  caller says it has handled (``commit``).

``caught_up()`` tells when everything that was committed to the topics when reading
started (or, for partitions assigned later, when they were assigned) has been read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from pipeline.core.records import Record
from pipeline.errors import SourceError
from pipeline.io.base import TopicPartition
from pipeline.io.client_options import client_options, connect_error, preflight
from pipeline.io.consumer_records import to_record
from pipeline.logs import get_logger

__all__ = ["OutputTopicReader", "Start"]

Start = Literal["beginning", "end"] | int
"""Where to start: the beginning, the end (only new records), or about the last N
records of each partition."""

log = get_logger("driftline.subscriber")


class OutputTopicReader:
    """Reads ``topics`` with ``read_committed``; see the module docstring."""

    def __init__(
        self,
        topics: Iterable[str],
        *,
        bootstrap_servers: str,
        start: Start = "beginning",
        group_id: str | None = None,
        client_id: str = "driftline-subscriber",
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(start, int) and (isinstance(start, bool) or start < 0):
            raise ValueError(f"start: a record count must be >= 0, got {start!r}")
        self.topics = list(dict.fromkeys(topics))
        self.group_id = group_id
        self._start = start
        self._ends: dict[KafkaTopicPartition, int] = {}
        options = client_options(extra)
        if (problem := preflight(bootstrap_servers, options)) is not None:
            raise SourceError(problem)
        try:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap_servers,
                group_id=group_id,
                client_id=client_id,
                enable_auto_commit=False,
                auto_offset_reset="latest" if start == "end" else "earliest",
                isolation_level="read_committed",
                max_partition_fetch_bytes=4 * 1024 * 1024,
                **options,
            )
        except KafkaError as exc:
            raise SourceError(connect_error(bootstrap_servers, extra or {}, exc)) from exc
        try:
            if group_id is None:
                self._assign_all()
            else:
                self._consumer.subscribe(self.topics)
        except KafkaError as exc:
            self.close()
            raise SourceError(f"cannot read {', '.join(self.topics)}: {exc}") from exc

    def _assign_all(self) -> None:
        tps: list[KafkaTopicPartition] = []
        for topic in self.topics:
            partitions = self._consumer.partitions_for_topic(topic)
            if not partitions:
                log.warning("topic_missing", topic=topic)
                continue
            tps.extend(KafkaTopicPartition(topic, p) for p in sorted(partitions))
        if not tps:
            raise SourceError(f"none of the topics exists: {', '.join(self.topics)}")
        self._consumer.assign(tps)
        self._position(tps)

    def _position(self, tps: list[KafkaTopicPartition]) -> None:
        """Seek the (newly owned) ``tps`` according to ``start``; remember their ends."""
        ends = self._consumer.end_offsets(tps)
        self._ends.update(ends)
        if self.group_id is not None:
            return  # committed offsets (or auto_offset_reset) decide
        if self._start == "beginning":
            self._consumer.seek_to_beginning(*tps)
        elif self._start == "end":
            self._consumer.seek_to_end(*tps)
        else:
            begins = self._consumer.beginning_offsets(tps)
            # Transaction markers take offsets too: look back twice as far.
            for tp in tps:
                self._consumer.seek(tp, max(begins[tp], ends[tp] - 2 * int(self._start)))

    def poll(self, timeout_ms: int, max_records: int = 500) -> list[Record]:
        """The next records (possibly none within ``timeout_ms``)."""
        try:
            polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
            if self.group_id is not None:
                new = [tp for tp in self._consumer.assignment() if tp not in self._ends]
                if new:
                    self._position(new)
        except KafkaError as exc:
            raise SourceError(f"reading {', '.join(self.topics)} failed: {exc}") from exc
        records: list[Record] = []
        for batch in polled.values():
            for r in batch:
                records.append(to_record(r))
        return records

    def caught_up(self) -> bool:
        """Every owned partition has been read up to its end as of when it was
        taken on (in group mode: False until the group assigned partitions)."""
        assignment = self._consumer.assignment()
        if not assignment:
            return False
        try:
            return all(self._consumer.position(tp) >= self._ends.get(tp, 0) for tp in assignment)
        except (KafkaError, AssertionError):
            return False

    def positions(self) -> dict[str, tuple[int, int] | str]:
        """``topic[partition]`` -> (position, end offset as ``read_committed`` sees
        it: the last stable offset), for a diagnosis; a failed lookup as its error."""
        out: dict[str, tuple[int, int] | str] = {}
        try:
            assignment = sorted(self._consumer.assignment())
            ends = self._consumer.end_offsets(assignment)
            for tp in assignment:
                out[f"{tp.topic}[{tp.partition}]"] = (self._consumer.position(tp), ends[tp])
        except (KafkaError, AssertionError) as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next offset to read) for the group."""
        if self.group_id is None or not offsets:
            return
        self._consumer.commit(
            {
                KafkaTopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                for (topic, partition), offset in offsets.items()
            }
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._consumer.close(autocommit=False)
