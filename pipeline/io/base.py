"""The source and sink protocols."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pipeline.core.records import Message, Record

__all__ = ["Sink", "Source", "TopicPartition"]

TopicPartition = tuple[str, int]


class Source(Protocol):
    """Delivers records in batches; remembers how far processing got."""

    @property
    def exhausted(self) -> bool:
        """True once a finite source (file, memory) has nothing more to give."""
        ...

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]: ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Mark ``offsets`` (the next offset to read, per partition) as processed."""
        ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Takes output messages; ``flush`` returns once all of them are durable."""

    def send(self, message: Message) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...
