"""Event time as integer microseconds since the Unix epoch (UTC).

State stores instants as integers so a snapshot round-trips exactly, and every
datetime that reaches an output is rebuilt from the integer in UTC, so a restored
processor renders the same bytes as an uninterrupted one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["EPOCH", "from_micros", "micros", "seconds_to_micros"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)


def micros(at: datetime) -> int:
    """``at`` (timezone-aware) as microseconds since the epoch."""
    return (at - EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    """The UTC datetime of ``value`` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=value)


def seconds_to_micros(seconds: float) -> int:
    return round(seconds * 1_000_000)
