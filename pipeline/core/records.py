"""The two shapes that cross the I/O seam: a record read, a message to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Headers", "Message", "OutputKind", "Record"]

Headers = tuple[tuple[str, bytes], ...]
OutputKind = Literal["alert", "rollback", "dead_letter", "state"]


@dataclass(frozen=True, slots=True)
class Record:
    """One input record, as any source delivers it."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    """None: a Kafka tombstone (dead-lettered as ``tombstone``, never decoded)."""
    key: bytes | None = None
    timestamp_ms: int | None = None
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class Message:
    """One output record; the runtime maps ``kind`` to a topic or file."""

    kind: OutputKind
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default=())
    partition: int | None = None
    """Explicit target partition (state changelog); None lets the producer choose."""
