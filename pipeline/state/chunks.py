"""A state record never exceeds the broker's message limit: larger values are split.

A value longer than ``RECORD_LIMIT`` (key included) is written as parts
``__part__:<i>:<key>`` (raw slices of the value), followed by a head record under
the key itself: ``{"schema": "driftline.chunked.v1", "parts": P, "sha256": ...}``.
A reader assembles the parts it has seen when it meets the head and checks the
digest, so a head whose parts were replaced (or not all written) is refused, never
misread. Parts a key no longer needs are deleted when the key is next written.

The limit is under Kafka's default ``max.message.bytes`` (1,048,588 bytes with the
record's overhead), so the changelog works on a broker or topic left at defaults,
whatever a detector's configured sizes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

__all__ = ["PART_PREFIX", "RECORD_LIMIT", "Assembler", "split_record"]

RECORD_LIMIT: Final = 1_000_000
"""Most bytes (key + value) of one changelog record."""
SCHEMA: Final = "driftline.chunked.v1"
PART_PREFIX: Final = "__part__:"


def _part_key(index: int, key: str) -> bytes:
    return f"{PART_PREFIX}{index}:{key}".encode()


def split_record(
    key: str, value: bytes | None, old_parts: int, limit: int = RECORD_LIMIT
) -> tuple[list[tuple[bytes, bytes | None]], int]:
    """The records that write ``value`` under ``key`` (parts first, then the head;
    or the record itself when it fits), with deletions of the parts the previous
    value had beyond the new ones; and the new number of parts."""
    raw_key = key.encode()
    if value is None or len(raw_key) + len(value) <= limit:
        records: list[tuple[bytes, bytes | None]] = [(raw_key, value)]
        parts = 0
    else:
        size = limit - len(_part_key(999_999, key))
        pieces = [value[i : i + size] for i in range(0, len(value), size)]
        records = [(_part_key(i, key), piece) for i, piece in enumerate(pieces)]
        head = {
            "schema": SCHEMA,
            "key": key,
            "parts": len(pieces),
            "bytes": len(value),
            "sha256": hashlib.sha256(value).hexdigest(),
        }
        records.append((raw_key, orjson.dumps(head)))
        parts = len(pieces)
    records.extend((_part_key(i, key), None) for i in range(parts, old_parts))
    return records, parts


@dataclass
class Assembler:
    """Reads records oldest first: keeps parts, and turns a head back into its value."""

    parts: dict[str, dict[int, bytes]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    """Key -> parts of its latest value (0: not split)."""

    def take_part(self, raw_key: str, value: bytes | None) -> bool:
        """Keep ``raw_key``'s value if it is a part; False if it is not one."""
        if not raw_key.startswith(PART_PREFIX):
            return False
        index, _, key = raw_key.removeprefix(PART_PREFIX).partition(":")
        if not index.isdigit():
            return True  # malformed: ignored
        held = self.parts.setdefault(key, {})
        if value is None:
            held.pop(int(index), None)
        else:
            held[int(index)] = value
        return True

    def value(self, key: str, value: bytes | None) -> tuple[bytes | None, bool]:
        """The value a record of ``key`` stands for, and whether it is whole (a head
        whose parts are missing or altered is not)."""
        head = _head(value)
        if head is None:
            self.counts[key] = 0
            return value, True
        parts = int(head["parts"])
        self.counts[key] = parts
        held = self.parts.get(key, {})
        try:
            joined = b"".join(held[i] for i in range(parts))
        except KeyError:
            return None, False
        if hashlib.sha256(joined).hexdigest() != head.get("sha256"):
            return None, False
        return joined, True


def _head(value: bytes | None) -> Mapping[str, Any] | None:
    if value is None or not value.startswith(b'{"schema":"' + SCHEMA.encode()):
        return None
    try:
        head = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(head, dict) or not isinstance(head.get("parts"), int):
        return None
    return head
