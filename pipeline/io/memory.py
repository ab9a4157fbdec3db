"""In-memory source and sink, for unit tests of the pure core and the loop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pipeline.core.records import Message, Record
from pipeline.io.base import TopicPartition

__all__ = ["MemorySink", "MemorySource"]


class MemorySource:
    """Serves a fixed list of records in order."""

    def __init__(self, records: Iterable[Record]) -> None:
        self._records = list(records)
        self._position = 0
        self.committed: dict[TopicPartition, int] = {}

    @property
    def exhausted(self) -> bool:
        return self._position >= len(self._records)

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        batch = self._records[self._position : self._position + max_records]
        self._position += len(batch)
        return batch

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def close(self) -> None:
        pass


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
