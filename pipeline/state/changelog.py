"""The state changelog record format (pure: no Kafka here).

One compacted topic holds every detector snapshot. Changelog partition ``p``
belongs to source partition ``p`` (all input topics are co-partitioned by
``model_id``), so restoring a partition reads exactly one changelog partition.

* key ``b"<state key>"`` -> ``{"schema": "driftline.state.v1", "key": ...,
  "partition": p, "positions": {topic: next offset}, "state": {...}}``; a
  tombstone (value None) deletes the key;
* key ``b"__position__"`` -> the same envelope without ``state``: the source
  positions the partition's state reflects, written with every checkpoint.

* key ``b"__journal__:<n>"`` -> ``b"DLJ1"`` + zlib of the JSON envelope
  ``{"schema": "driftline.journal.v1", "partition": p, "journal": n, "positions":
  ..., "entries": {small entries}, "ids": {...}, "deltas": [...]}``: one
  checkpoint's deltas (:mod:`pipeline.core.journal`). A detector record written in
  full carries ``"id"`` (in the journal's ``ids`` when its snapshot is small enough
  to be one of its entries); a delta names it by that id: ``[id, values,
  seq - previous delta's seq, last_seen - previous delta's last_seen,
  window_events(, window_start,
  window_first, open)]`` (deltas sorted by seq; values a JSON list, or base64 of
  little-endian float64 when that is shorter). A journal nothing depends on any
  more is deleted (tombstone).

Any record longer than ``chunks.RECORD_LIMIT`` is split (:mod:`pipeline.state.chunks`).
Reading folds the records in log order: a full record of a key replaces its base
and drops its earlier deltas; a journal adds deltas and small entries.

Snapshots are JSON, never pickle: anyone who can write to the topic can only make
``from_state`` raise, not run code.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson
from isal import isal_zlib

from pipeline.core.deferred import Deferred
from pipeline.core.journal import JournalTail, KeyDelta, Report
from pipeline.core.state_keys import DETECTOR_PREFIX
from pipeline.state.chunks import Assembler

__all__ = [
    "JOURNAL_PREFIX",
    "POSITION_KEY",
    "PartitionSnapshot",
    "decode_changelog",
    "encode_entry",
    "encode_journal",
    "encode_position",
    "journal_key",
]

SCHEMA = "driftline.state.v1"
JOURNAL_SCHEMA = "driftline.journal.v1"
JOURNAL_MAGIC = b"DLJ1"
POSITION_KEY = "__position__"
JOURNAL_PREFIX = "__journal__:"


def journal_key(number: int) -> str:
    return f"{JOURNAL_PREFIX}{number}"


def encode_entry(
    partition: int,
    key: str,
    state: Mapping[str, Any] | None,
    positions: Mapping[str, int],
    key_id: int | None = None,
) -> tuple[bytes, bytes | None]:
    """A changelog (key, value) for one state entry; value None deletes it."""
    if state is None:
        return key.encode(), None
    envelope: dict[str, Any] = {
        "schema": SCHEMA,
        "key": key,
        "partition": partition,
        "positions": dict(positions),
        "state": state,
    }
    if key_id is not None:
        envelope["id"] = key_id
    return key.encode(), orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)


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


_FLOATS: Final = frozenset({float})


def _pack_values(values: list[Any]) -> str | list[Any]:
    """A JSON list, or base64 of float64 when every value is a float and that is
    shorter (both exact)."""
    if values and type(values[0]) is float and set(map(type, values)) == _FLOATS:
        listed = len(orjson.dumps(values))
        if listed > 4 * ((8 * len(values) + 2) // 3):
            return base64.b64encode(np.asarray(values, dtype="<f8").tobytes()).decode()
    return values


def _unpack_values(raw: Any) -> list[Any]:
    if isinstance(raw, list):
        return raw
    if isinstance(raw, str):
        data = base64.b64decode(raw, validate=True)
        if len(data) % 8:
            raise ValueError("packed values are not whole float64s")
        out: list[Any] = np.frombuffer(data, dtype="<f8").tolist()
        return out
    raise ValueError("values must be a list or packed floats")


def _encode_deltas(deltas: list[KeyDelta]) -> list[list[Any]]:
    out: list[list[Any]] = []
    seq = last = 0
    for delta in sorted(deltas, key=lambda d: int(d.fields["seq"])):
        f = delta.fields
        row = [
            delta.key_id,
            _pack_values(delta.values),
            f["seq"] - seq,
            f["last_seen"] - last,
            f["window_events"],
        ]
        if "open" in f:
            row += [f["window_start"], f["window_first"], f["open"]]
        seq, last = f["seq"], f["last_seen"]
        out.append(row)
    return out


def _decode_deltas(rows: Any) -> list[tuple[int, list[Any], dict[str, Any]]]:
    out: list[tuple[int, list[Any], dict[str, Any]]] = []
    seq = last = 0
    for row in rows:
        seq += int(row[2])
        last += int(row[3])
        fields: dict[str, Any] = {"seq": seq, "last_seen": last, "window_events": int(row[4])}
        if len(row) == 8:
            fields.update(window_start=row[5], window_first=row[6], open=bool(row[7]))
        out.append((int(row[0]), _unpack_values(row[1]), fields))
    return out


JOURNAL_ZLIB_LEVEL: Final = 1
"""ISA-L's level 1, written in zlib's format (any zlib reads it). On the e2e workload's
journals (~190 B of JSON per event, much of it base64 floats that hardly compress) it
keeps the bytes of zlib's level 1 (99 against 100 per event) at a quarter of the CPU
(0.51 against 2.16 µs per event; zlib's level 6 cost ~10 µs for 6 % fewer bytes)."""


def encode_journal(partition: int, report: Report, positions: Mapping[str, int]) -> bytes:
    """The journal record's value (see the module notes)."""
    envelope = {
        "schema": JOURNAL_SCHEMA,
        "partition": partition,
        "journal": report.journal,
        "positions": dict(positions),
        "entries": report.entries,
        "ids": {name: report.ids[name] for name in report.entries if name in report.ids},
        "deltas": _encode_deltas(report.deltas),
    }
    return JOURNAL_MAGIC + isal_zlib.compress(orjson.dumps(envelope), JOURNAL_ZLIB_LEVEL)


DEFERRED_ZLIB_LEVEL: Final = 1
"""A detector record waiting for its restore is held compressed (ISA-L, as the
journals): on the scale benchmark's warmed models level 1 keeps ~0.66 of the bytes (base64 floats and
decimal windows), and a partition's records are what a restore holds at its peak."""


def _state_of(packed: bytes) -> dict[str, Any]:
    """The state of a record the fold has already checked (a schema envelope, held
    compressed)."""
    state: dict[str, Any] = orjson.loads(zlib.decompress(packed))["state"]
    return state


@dataclass
class PartitionSnapshot:
    """What the changelog says about one partition: its entries, the deltas and
    journals beyond them (``tail``), and the source positions they reflect."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    tail: JournalTail = field(default_factory=JournalTail)
    parts: dict[str, int] = field(default_factory=dict)
    """Key -> parts its latest value was split into (``pipeline.state.chunks``)."""
    read_entries: int = 0
    """How many entries the loop restored (it empties ``entries`` as it restores)."""


class _Fold:
    """Records folded oldest first into a ``PartitionSnapshot``."""

    def __init__(self, *, defer_detectors: bool = False) -> None:
        self.snapshot = PartitionSnapshot()
        self.chunks = Assembler()
        self.by_id: dict[int, str] = {}
        self.defer_detectors = defer_detectors

    def record(self, raw_key: bytes | None, raw_value: bytes | None) -> None:
        snapshot, tail = self.snapshot, self.snapshot.tail
        if raw_key is None:
            snapshot.skipped += 1
            return
        key = raw_key.decode("utf-8", "replace")
        if self.chunks.take_part(key, raw_value):
            return
        value, whole = self.chunks.value(key, raw_value)
        if not whole:
            snapshot.skipped += 1
            return
        if key.startswith(JOURNAL_PREFIX):
            self.journal(key, value)
            return
        if value is None:
            snapshot.entries.pop(key, None)
            self.forget(key)
            return
        try:
            envelope = orjson.loads(value)
        except orjson.JSONDecodeError:
            snapshot.skipped += 1
            return
        if not isinstance(envelope, dict) or envelope.get("schema") != SCHEMA:
            snapshot.skipped += 1
            return
        self.positions(envelope)
        if key == POSITION_KEY:
            return
        state = envelope.get("state")
        if not isinstance(state, dict):
            snapshot.skipped += 1
            return
        if self.defer_detectors and key.startswith(DETECTOR_PREFIX):
            packed = isal_zlib.compress(value, DEFERRED_ZLIB_LEVEL)
            snapshot.entries[key] = Deferred(packed, _state_of)  # type: ignore[assignment]
        else:
            snapshot.entries[key] = state
        self.forget(key)
        key_id = envelope.get("id")
        if isinstance(key_id, int):
            tail.ids[key] = key_id
            self.by_id[key_id] = key

    def forget(self, key: str) -> None:
        tail = self.snapshot.tail
        tail.ids.pop(key, None)
        tail.deltas.pop(key, None)
        tail.journaled.pop(key, None)

    def positions(self, envelope: dict[str, Any]) -> None:
        positions = envelope.get("positions")
        if isinstance(positions, dict):
            self.snapshot.positions = {str(t): int(o) for t, o in positions.items()}

    def journal(self, key: str, value: bytes | None) -> None:
        snapshot, tail = self.snapshot, self.snapshot.tail
        number = key.removeprefix(JOURNAL_PREFIX)
        if not number.isdigit():
            snapshot.skipped += 1
            return
        if value is None:  # everything in it was written again since
            tail.journals.pop(int(number), None)
            return
        try:
            if not value.startswith(JOURNAL_MAGIC):
                raise ValueError("not a journal")
            envelope = orjson.loads(zlib.decompress(value[len(JOURNAL_MAGIC) :]))
            if envelope.get("schema") != JOURNAL_SCHEMA:
                raise ValueError("unknown journal schema")
            entries = envelope["entries"]
            ids = envelope.get("ids", {})
            deltas = _decode_deltas(envelope["deltas"])
        except (ValueError, TypeError, KeyError, IndexError, zlib.error):
            snapshot.skipped += 1
            return
        journal = int(number)
        self.positions(envelope)
        for name, state in entries.items():
            snapshot.entries[name] = state
            self.forget(name)
            tail.journaled[name] = journal
            key_id = ids.get(name)
            if isinstance(key_id, int):  # a detector's full snapshot, small enough
                tail.ids[name] = key_id
                self.by_id[key_id] = name
        for key_id, values, fields in deltas:
            name = self.by_id.get(key_id)
            if name is None or tail.ids.get(name) != key_id:
                continue  # its key was written in full (or deleted) since: superseded
            tail.deltas.setdefault(name, []).append((journal, values, fields))
        tail.journals[journal] = len(entries) + sum(len(v) + 1 for _i, v, _f in deltas)


def decode_changelog(
    records: Iterable[tuple[bytes | None, bytes | None]], *, defer_detectors: bool = False
) -> PartitionSnapshot:
    """Fold changelog records (oldest first) into the latest state per key, and
    the deltas beyond it.

    Malformed records are skipped and counted rather than trusted.
    ``defer_detectors``: a detector entry stays its record (validated, then kept
    compressed as a :class:`~pipeline.core.deferred.Deferred`) until the restore
    rebuilds its detector: what a sidecar's restore holds at its peak. Records are
    read as ``records`` yields them: a reader that streams them (a sidecar's
    changelog) is never held whole.
    """
    fold = _Fold(defer_detectors=defer_detectors)
    for raw_key, raw_value in records:
        fold.record(raw_key, raw_value)
    snapshot = fold.snapshot
    for name in [n for n in snapshot.tail.deltas if n not in snapshot.entries]:
        del snapshot.tail.deltas[name]  # deltas without their base: not trusted
        snapshot.skipped += 1
    snapshot.parts = {k: n for k, n in fold.chunks.counts.items() if n}
    return snapshot
