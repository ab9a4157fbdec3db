"""Event time as integer microseconds since the Unix epoch (UTC).

State stores instants as integers so a snapshot round-trips exactly, and every
datetime that reaches an output is rebuilt from the integer in UTC, so a restored
processor renders the same bytes as an uninterrupted one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Final

from pydantic_core import TzInfo

__all__ = ["EPOCH", "from_micros", "micros", "seconds_to_micros"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
_FIXED: Final = frozenset({timezone, TzInfo})
"""tzinfo classes of a fixed offset (pydantic's, the standard library's)."""
_EPOCHS: dict[tzinfo, datetime] = {}


def micros(at: datetime) -> int:
    """``at`` (timezone-aware) as microseconds since the epoch."""
    zone = at.tzinfo
    if zone is not None and type(zone) in _FIXED:
        # The epoch in ``at``'s own fixed-offset zone: the difference of two datetimes
        # with the same tzinfo skips both ``utcoffset`` calls (~0.35 µs of 0.57).
        epoch = _EPOCHS.get(zone)
        if epoch is None:
            if len(_EPOCHS) >= 256:
                _EPOCHS.clear()
            epoch = _EPOCHS[zone] = EPOCH.astimezone(zone)
        return (at - epoch) // _MICRO
    return (at - EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    """The UTC datetime of ``value`` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=value)


def seconds_to_micros(seconds: float) -> int:
    return round(seconds * 1_000_000)
