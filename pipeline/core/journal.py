"""Incremental state reports: what a checkpoint writes grows with the events it
processed, not with the size of the snapshots they touched.

A detector's full snapshot is written once (with a small per-partition id); after
that each checkpoint writes only a :class:`KeyDelta` — the values fed to the
detector since the last checkpoint and the alert-window bookkeeping that changed —
into one *journal* per partition and checkpoint, next to the small entries (meta,
model, policy...) that changed. Detectors are deterministic and their batch path
equals their per-event path, so restore rebuilds a detector exactly from its base
snapshot and the values of its deltas, in order (:func:`replay_values`).

Compaction: a key is written in full again once its deltas hold enough values to
be worth it (:func:`due_values`), and a journal is dropped (tombstoned) as soon as
nothing depends on it any more. :class:`JournalBook` keeps that account: a delta
key needs the journals of its deltas until its next full write; a small entry
the journal that last wrote it. When too many journals are live, the
oldest one's dependants are written again (:meth:`JournalBook.overdue`), so a
restore reads at most ``JOURNAL_SPAN`` journals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

import detectors
from detectors import DriftDetector

__all__ = [
    "DETECTOR_ENTRY_BYTES",
    "JOURNAL_SPAN",
    "JOURNAL_VALUES",
    "SMALL_ENTRY_BYTES",
    "JournalBook",
    "JournalTail",
    "KeyDelta",
    "Report",
    "due_values",
    "json_exact",
    "replay_values",
]

DELTA_MIN_VALUES: Final = 256
"""A key is never compacted for fewer values in its deltas (restore replays them)."""
BASE_BYTES_PER_VALUE: Final = 4
"""Compact once the deltas hold one value per this many bytes of the base snapshot:
a full write then costs about 4 bytes per value journaled since the last one."""
JOURNAL_SPAN: Final = 2048
"""Live journals per partition at most (a restore reads at most this many)."""
JOURNAL_VALUES: Final = 2_000_000
"""Values (and entries) in a partition's live journals at most."""
SMALL_ENTRY_BYTES: Final = 64 * 1024
"""Non-detector entries up to this size (JSON) go into the journal, larger ones are
records of their own: in the journal they share one record's envelope and its zlib
(a model's, policy's or label-join page's JSON keys repeat from entry to entry)."""
DETECTOR_ENTRY_BYTES: Final = 4096
"""Full detector snapshots up to this size (a new key's, mostly) go into the journal
too; larger ones (packed floats, which hardly compress) are records of their own."""


def due_values(base_bytes: int) -> int:
    """Values a key's deltas may hold before the key is written in full again."""
    return max(DELTA_MIN_VALUES, base_bytes // BASE_BYTES_PER_VALUE)


@dataclass(frozen=True, slots=True)
class KeyDelta:
    """One detector key's change in a checkpoint: ``values`` fed in order since the
    previous record of the key, and the bookkeeping fields after them
    (``last_seen``, ``seq``, ``window_events`` always; ``window_start``,
    ``window_first``, ``open`` when they changed)."""

    key_id: int
    values: list[Any]
    fields: dict[str, Any]


@dataclass
class Report:
    """What one checkpoint of a partition writes (see the module notes).

    ``records``: entries written as records of their own (full detector snapshots,
    large entries; None deletes); ``ids``: the key id of each detector snapshot in
    ``records``; ``entries`` and ``deltas``: the journal's content; ``dropped``:
    journals nothing depends on any more (to delete).
    """

    journal: int
    records: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    deltas: list[KeyDelta] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)


@dataclass
class JournalTail:
    """What a changelog holds beyond full entries (read back by the state layer):
    ``ids`` of the detector records, each key's ``deltas`` since its full record
    (journal, values, fields; in order), the journal that last wrote each small
    entry, and the live journals with their sizes."""

    ids: dict[str, int] = field(default_factory=dict)
    deltas: dict[str, list[tuple[int, list[Any], dict[str, Any]]]] = field(default_factory=dict)
    journaled: dict[str, int] = field(default_factory=dict)
    journals: dict[int, int] = field(default_factory=dict)


class JournalBook:
    """Which live journal each entry's logged state depends on (see module notes)."""

    def __init__(self) -> None:
        self.deps: dict[str, list[int]] = {}
        """Entry -> the live journals its logged state needs."""
        self.by_journal: dict[int, set[str]] = {}
        """Live journals and the entries that need each."""
        self.sizes: dict[int, int] = {}
        """Values and entries each live journal holds."""
        self.total = 0

    def open(self, journal: int, size: int = 0) -> None:
        """A journal written (or read back) with ``size`` values and entries."""
        self.by_journal.setdefault(journal, set())
        self.sizes[journal] = self.sizes.get(journal, 0) + size
        self.total += size

    def depend(self, name: str, journal: int, *, latest: bool) -> None:
        """``name`` needs ``journal``: as well as the journals of its earlier deltas
        (``latest=False``), or instead of any earlier write (``latest=True``)."""
        if latest:
            self.settle(name)
        journals = self.deps.setdefault(name, [])
        if journal not in journals:
            journals.append(journal)
            self.by_journal.setdefault(journal, set()).add(name)

    def settle(self, name: str) -> None:
        """``name`` was written in full (or deleted): it needs no journal."""
        for journal in self.deps.pop(name, ()):
            self.by_journal[journal].discard(name)

    def overdue(self, current: int) -> set[str]:
        """Entries to write again now so that the live journals, this checkpoint's
        included, stay within ``JOURNAL_SPAN`` and ``JOURNAL_VALUES``."""
        out: set[str] = set()
        live = sorted(j for j in self.by_journal if j != current)
        count, total = len(live) + 1, self.total
        for journal in live:
            if count <= JOURNAL_SPAN and total <= JOURNAL_VALUES:
                break
            out |= self.by_journal[journal]
            total -= self.sizes.get(journal, 0)
            count -= 1
        return out

    def drop_settled(self, current: int) -> list[int]:
        """Forget the journals (other than ``current``) nothing depends on; the
        numbers to delete."""
        dropped = [j for j, names in self.by_journal.items() if not names and j != current]
        for journal in dropped:
            del self.by_journal[journal]
            self.total -= self.sizes.pop(journal, 0)
        return dropped


_PLAIN = (str, int, bool, type(None))


def json_exact(values: Sequence[Any]) -> bool:
    """Whether ``values`` read back from JSON are the same values of the same types
    (a non-finite float would come back as null, a tuple as a list): only then can
    they be a delta; otherwise the key is written in full."""
    for value in values:
        kind = type(value)
        if kind is float:
            if value - value != 0.0:
                return False
        elif kind not in _PLAIN:
            try:
                back = orjson.loads(orjson.dumps(value))
            except (TypeError, orjson.JSONEncodeError):
                return False
            if back != value or type(back) is not kind:
                return False
    return True


def replay_values(
    detector: DriftDetector[Any], name: str, base: dict[str, Any], values: Sequence[Any]
) -> DriftDetector[Any]:
    """``detector`` (restored from ``base``) fed ``values`` as the live run fed them:
    the batch path when it takes them all; else, from ``base`` again, one by one,
    skipping the values the detector refuses (as
    :func:`pipeline.core.feeding.feed_column` does)."""
    if not values:
        return detector
    try:
        detector.update_many(values)
        return detector
    except (TypeError, ValueError):
        pass
    detector = detectors.get(name).from_state(orjson.loads(orjson.dumps(base)))
    for value in values:
        try:
            detector.update(value)
        except (TypeError, ValueError):
            continue
    return detector
