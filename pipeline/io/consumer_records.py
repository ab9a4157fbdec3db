"""kafka-python's ConsumerRecord -> driftline's Record, in one place."""

from __future__ import annotations

from typing import Any

from pipeline.core.records import Record

__all__ = ["to_record"]


def to_record(r: Any) -> Record:
    """A fetched record as the core sees it (a tombstone keeps its value None)."""
    return Record(
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        value=r.value,
        key=r.key,
        timestamp_ms=r.timestamp,
        headers=tuple((k, v or b"") for k, v in (r.headers or ())),
    )
