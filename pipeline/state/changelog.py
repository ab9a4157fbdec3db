"""The state changelog record format (pure: no Kafka here).

One compacted topic holds every detector snapshot. Changelog partition ``p``
belongs to source partition ``p`` (all input topics are co-partitioned by
``model_id``), so restoring a partition reads exactly one changelog partition.

* key ``b"<state key>"`` -> ``{"schema": "driftline.state.v1", "key": ...,
  "partition": p, "positions": {topic: next offset}, "state": {...}}``; a
  tombstone (value None) deletes the key;
* key ``b"__position__"`` -> the same envelope without ``state``: the source
  positions the partition's state reflects, written with every checkpoint.

Snapshots are JSON, never pickle: anyone who can write to the topic can only make
``from_state`` raise, not run code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "POSITION_KEY",
    "PartitionSnapshot",
    "decode_changelog",
    "encode_entry",
    "encode_position",
]

SCHEMA = "driftline.state.v1"
POSITION_KEY = "__position__"


def encode_entry(
    partition: int, key: str, state: Mapping[str, Any] | None, positions: Mapping[str, int]
) -> tuple[bytes, bytes | None]:
    """A changelog (key, value) for one state entry; value None deletes it."""
    if state is None:
        return key.encode(), None
    return key.encode(), orjson.dumps(
        {
            "schema": SCHEMA,
            "key": key,
            "partition": partition,
            "positions": dict(positions),
            "state": state,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def encode_position(partition: int, positions: Mapping[str, int]) -> tuple[bytes, bytes]:
    return POSITION_KEY.encode(), orjson.dumps(
        {
            "schema": SCHEMA,
            "key": POSITION_KEY,
            "partition": partition,
            "positions": dict(positions),
        },
        option=orjson.OPT_SORT_KEYS,
    )


@dataclass
class PartitionSnapshot:
    """What the changelog says about one partition: its entries and the source
    positions they reflect."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    skipped: int = 0


def decode_changelog(records: Iterable[tuple[bytes | None, bytes | None]]) -> PartitionSnapshot:
    """Fold changelog records (oldest first) into the latest state per key.

    Malformed records are skipped and counted rather than trusted.
    """
    snapshot = PartitionSnapshot()
    for raw_key, raw_value in records:
        if raw_key is None:
            snapshot.skipped += 1
            continue
        key = raw_key.decode("utf-8", "replace")
        if raw_value is None:
            snapshot.entries.pop(key, None)
            continue
        try:
            envelope = orjson.loads(raw_value)
        except orjson.JSONDecodeError:
            snapshot.skipped += 1
            continue
        if not isinstance(envelope, dict) or envelope.get("schema") != SCHEMA:
            snapshot.skipped += 1
            continue
        positions = envelope.get("positions")
        if isinstance(positions, dict):
            snapshot.positions = {str(t): int(o) for t, o in positions.items()}
        if key != POSITION_KEY:
            state = envelope.get("state")
            if isinstance(state, dict):
                snapshot.entries[key] = state
            else:
                snapshot.skipped += 1
    return snapshot
