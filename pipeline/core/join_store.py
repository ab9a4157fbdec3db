"""Columnar storage of one model's pending label-join requests.

A request is one row of numpy columns in a ring (oldest first; rows only ever leave
at the oldest end: expiry and eviction both take the oldest), found by the 64-bit
hash of its request id through a :class:`~pipeline.core.join_index.HashIndex`. A row
with one prediction holds 28 bytes: the hash (8), request flags (1), and per variant
the prediction's flags (1), value (8: the number, or the code of a class or flag),
version code (2) and event time (8), plus its share of the index (5-11). A label adds its value and time (16) once the
model has seen one. What is not a number — classes, flags, versions, the segment
values of error monitors — is interned per model and stored as a code; the tables
are compacted when they outgrow the live rows, so unique class names cannot pile up.

Variants (production, shadow...) get a column set each, at most :data:`MAX_VARIANTS`
per model. The request's first-seen time is not stored: it is the time of whichever
half created it: the label, or the prediction of arrival rank 0 (the rank, kept in
the prediction's flags, also orders a label's joins the way the predictions came).

Rows are numbered in creation order (``base`` is the number of the oldest live row);
pages (the changelog entries) are runs of consecutive rows, named by the number of
their first row, listed in ``pages``.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from hashlib import blake2b
from typing import Any, Final

import numpy as np

from pipeline.core.join_index import HashIndex

__all__ = [
    "CODE",
    "JOINED",
    "LABEL",
    "LABEL_CODE",
    "LABEL_FIRST",
    "MAX_VARIANTS",
    "PAGE_ROWS",
    "PAIRED",
    "PRESENT",
    "RANK_SHIFT",
    "Interned",
    "JoinStore",
    "Variant",
    "request_hash",
]

# per-variant flags; bits 3-6 hold the prediction's arrival rank within its request
PRESENT, CODE, JOINED = 1, 2, 4
RANK_SHIFT = 3
RANK_MASK = 0b1111 << RANK_SHIFT
# request flags
LABEL, LABEL_CODE, PAIRED, LABEL_FIRST = 1, 2, 4, 8

MAX_VARIANTS = 16
"""Variant column sets per model; predictions of further variants are not joined
(counted as ``variants_dropped``)."""
PAGE_ROWS = 4096
"""Rows per changelog page at most (~150 KB packed): a page stays far below the
broker's message limit whatever the batch size."""
_MIN_CAPACITY = 16
_UINT16_MAX: Final = 0xFFFF
"""The version codes' first column type holds this many (``np.iinfo`` costs ~1 µs a
call, more than the rest of ``set_version``)."""


_BLAKE2B_8: Final = blake2b(digest_size=8)
"""An empty hash of the parameters ``request_hash`` uses: a copy of it costs less than
a new one (the constructor parses its keyword arguments at every call)."""


def request_hash(request_id: str) -> int:
    """The 64-bit key of a request id (BLAKE2b, stable across processes and runs)."""
    h = _BLAKE2B_8.copy()
    h.update(request_id.encode())
    return int.from_bytes(h.digest(), "little")


class Interned:
    """Values as small integer codes (per model), first come first numbered."""

    __slots__ = ("codes", "values")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.codes: dict[Any, int] = {}

    def __len__(self) -> int:
        return len(self.values)

    def code(self, value: Any) -> int:
        # a string (versions, class names) is its own key: no key of another type
        # (a (type, value) pair, a segment's tuple of them) equals it
        key = value if value.__class__ is str else _key(value)
        code = self.codes.get(key)
        if code is None:
            code = self.codes[key] = len(self.values)
            self.values.append(value)
        return code


def _key(value: Any) -> Any:
    """Interning key: ``True``, ``1`` and ``1.0`` are equal in Python, not here."""
    if isinstance(value, tuple):
        return tuple((k, v.__class__, v) for k, v in value)
    return (value.__class__, value)


class Variant:
    """The columns of one variant's predictions."""

    __slots__ = ("at", "flags", "name", "segment", "value", "version")

    def __init__(self, name: str, capacity: int, segments: bool) -> None:
        self.name = name
        self.flags = np.zeros(capacity, np.uint8)
        self.value = np.zeros(capacity, np.float64)
        self.version = np.zeros(capacity, np.uint16)
        self.at = np.zeros(capacity, np.int64)
        self.segment: np.ndarray | None = np.zeros(capacity, np.uint32) if segments else None

    def columns(self) -> list[str]:
        return ["flags", "value", "version", "at"] + (
            ["segment"] if self.segment is not None else []
        )


class JoinStore:
    """One model's pending requests as columns (see the module docstring)."""

    def __init__(self) -> None:
        self.capacity = _MIN_CAPACITY
        self.head = 0
        self.size = 0
        self.base = 0
        """Creation number of the oldest live row."""
        self.hashes = np.zeros(self.capacity, np.uint64)
        self.flags = np.zeros(self.capacity, np.uint8)
        self.label_value: np.ndarray | None = None
        self.label_at: np.ndarray | None = None
        self.variants: list[Variant] = []
        self.variant_index: dict[str, int] = {}
        self.values = Interned()
        """Classes and flags (predictions and labels)."""
        self.versions = Interned()
        self.segments = _segments()
        """Segment values of error monitors, as ``((feature, value), ...)``; code 0 is
        ``()``, what a row without segment values (or without the variant) holds."""
        self._intern_limit = 256
        self.index = HashIndex(_MIN_CAPACITY * 2)  # the first rows at a load of 3/4 at most
        self.pages: array[int] = array("q")
        """Creation number of each live page's first row (maybe expired), ascending."""
        self.page_batch = -1
        """The batch the last page was opened in (new rows of that batch join it)."""

    # -- reading ------------------------------------------------------------------
    @property
    def next(self) -> int:
        """Creation number of the next row."""
        return self.base + self.size

    def nbytes(self) -> int:
        """Bytes of the columns and the index (the interned values aside)."""
        total = self.hashes.nbytes + self.flags.nbytes + self.index.nbytes()
        for extra in (self.label_value, self.label_at):
            total += 0 if extra is None else extra.nbytes
        for v in self.variants:
            total += sum(getattr(v, c).nbytes for c in v.columns())
        return total + self.pages.itemsize * len(self.pages)

    def slot(self, row: int) -> int:
        """The array position of row ``row`` (0 = oldest)."""
        return (self.head + row) % self.capacity

    def slots(self, start: int, end: int) -> np.ndarray:
        """Array positions of rows ``start .. end - 1``."""
        return (self.head + np.arange(start, end, dtype=np.int64)) % self.capacity

    def find(self, h: int) -> int:
        """The slot of the request hashing to ``h``; -1 when none is pending."""
        return self.index.find(h, self.hashes)

    def created_at(self, slot: int) -> int:
        """When the request was first seen (event time, microseconds)."""
        if self.flags.item(slot) & LABEL_FIRST:
            assert self.label_at is not None
            return int(self.label_at.item(slot))
        for v in self.variants:  # the prediction that came first (rank 0)
            if v.flags.item(slot) & (PRESENT | RANK_MASK) == PRESENT:
                return int(v.at.item(slot))
        raise AssertionError("a pending request without its first half")

    def page_of(self, number: int) -> int:
        """The page holding the row created as ``number``."""
        pages = self.pages
        return pages[bisect.bisect_right(pages, number) - 1]

    def page_rows(self, page: int) -> tuple[int, int] | None:
        """Live rows (oldest = 0) of ``page`` as [start, end); None when it has none."""
        pages = self.pages
        i = bisect.bisect_left(pages, page)
        if i == len(pages) or pages[i] != page:
            return None
        start = max(page, self.base) - self.base
        end = (pages[i + 1] if i + 1 < len(pages) else self.next) - self.base
        return (start, end) if end > start else None

    # -- columns ------------------------------------------------------------------
    def variant(self, name: str, segments: bool) -> int:
        """The index of ``name``'s column set, created on first use; -1 past the cap."""
        k = self.variant_index.get(name)
        if k is not None:
            if segments and self.variants[k].segment is None:
                self.variants[k].segment = np.zeros(self.capacity, np.uint32)
            return k
        if len(self.variants) >= MAX_VARIANTS:
            self._drop_idle_variants()
            if len(self.variants) >= MAX_VARIANTS:
                return -1
        k = self.variant_index[name] = len(self.variants)
        self.variants.append(Variant(name, self.capacity, segments))
        return k

    def ensure_labels(self) -> None:
        if self.label_value is None:
            self.label_value = np.zeros(self.capacity, np.float64)
            self.label_at = np.zeros(self.capacity, np.int64)

    def set_version(self, k: int, slot: int, version: str) -> None:
        column = self.variants[k].version
        code = self.versions.code(version)
        if code > _UINT16_MAX and column.dtype == np.uint16:
            column = self.variants[k].version = column.astype(np.uint32)
        column[slot] = code

    def set_versions(self, k: int, slots: np.ndarray, versions: Sequence[str]) -> None:
        """:meth:`set_version` of each row in turn."""
        code = self.versions.code
        codes = [code(version) for version in versions]
        column = self.variants[k].version
        if max(codes) > _UINT16_MAX and column.dtype == np.uint16:
            column = self.variants[k].version = column.astype(np.uint32)
        column[slots] = codes

    def encode(self, value: float | str | bool) -> tuple[float, bool]:
        """A prediction or label as (column value, interned?): numbers as themselves."""
        if type(value) is float:
            return value, False
        return float(self.values.code(value)), True

    def decode(self, stored: float, coded: bool) -> float | str | bool:
        return self.values.values[int(stored)] if coded else float(stored)

    # -- adding and removing rows ----------------------------------------------------
    def append(self, h: int, batch: int, most: int) -> int:
        """A new row (newest) for hash ``h``; its slot. Opens a page when the batch
        changed or the last page is full. ``most``: the rows there can be (the
        arrays grow by half, but never past it)."""
        if self.size == self.capacity:
            self._grow(most)
        slot = (self.head + self.size) % self.capacity
        self.hashes[slot] = h
        self._clear(slot)
        number = self.next
        pages = self.pages
        if not pages or self.page_batch != batch or number - pages[-1] >= PAGE_ROWS:
            pages.append(number)
            self.page_batch = batch
        self.size += 1
        if not self.index.insert(h, slot, self.hashes):
            self._reindex(2 * (self.index.mask + 1))
        return slot

    def append_many(
        self, hashes: Sequence[int], batch: int, most: int
    ) -> tuple[np.ndarray, list[int]]:
        """:meth:`append` of each hash in turn (the same rows, pages, growth and index),
        the columns written in slices: the new rows' slots, and the pages they joined."""
        n = len(hashes)
        touched: list[int] = []
        pages = self.pages
        done = 0
        while done < n:
            if self.size == self.capacity:
                self._grow(most)
            room = min(n - done, self.capacity - self.size)
            start = self.size
            slots = (self.head + start + np.arange(room, dtype=np.int64)) % self.capacity
            chunk = hashes[done : done + room]
            self.hashes[slots] = chunk
            self._clear(slots)
            number = self.next
            end = number + room
            while number < end:
                if not pages or self.page_batch != batch or number - pages[-1] >= PAGE_ROWS:
                    pages.append(number)
                    self.page_batch = batch
                if not touched or touched[-1] != pages[-1]:
                    touched.append(pages[-1])
                number = min(end, pages[-1] + PAGE_ROWS)
            self._index_many(chunk, slots.tolist(), start)
            done += room
        # the new rows are the newest n, wherever a growth moved the earlier ones to
        return self.slots(self.size - n, self.size), touched

    def _grow(self, most: int) -> None:
        """Room for one more row at least: the arrays grow by half, never past ``most``."""
        grown = self.capacity + max(self.capacity // 2, _MIN_CAPACITY)
        self._relayout(max(self.size + 1, min(grown, most)))

    def _clear(self, slots: int | np.ndarray) -> None:
        """New rows hold nothing yet: no label, no prediction of any variant (their
        slots may hold a removed row's)."""
        self.flags[slots] = 0
        if self.label_value is not None:
            assert self.label_at is not None
            self.label_value[slots] = 0.0
            self.label_at[slots] = 0
        for v in self.variants:
            v.flags[slots] = 0

    def _index_many(self, chunk: Sequence[int], slots: list[int], start: int) -> None:
        """Index new rows ``start ..`` (their hashes written) as ``append`` does, one
        after another: a row the index cannot take rebuilds it with the rows so far."""
        j = 0
        while j < len(chunk):
            j += self.index.insert_many(chunk[j:], slots[j:])
            self.size = start + j
            if j < len(chunk):
                self.size += 1
                self._reindex(2 * (self.index.mask + 1))
                j += 1

    def pop_oldest(self) -> tuple[int, int]:
        """Remove the oldest row: (its slot, now free but still readable; its page)."""
        slot = self.head
        number = self.base
        pages = self.pages
        # the oldest row is on the first page unless the second one starts at it
        first = pages[0]
        if first <= number and (len(pages) == 1 or pages[1] > number):
            page = first
        else:
            page = self.page_of(number)
        self.index.delete(self.hashes.item(slot), slot, self.hashes)
        self.head = (self.head + 1) % self.capacity
        self.size -= 1
        self.base += 1
        if not self.size or (len(pages) > 1 and pages[1] <= self.base):
            del pages[0]  # its last row left
        return slot, page

    def drop_oldest(self, count: int) -> list[int]:
        """Remove the ``count`` oldest rows (at most all); the pages they were on.
        Many at once (a restore trimmed to the partition's budget) move the rest to
        arrays of their size instead of deleting row by row."""
        count = min(count, self.size)
        if count <= 0:
            return []
        pages = self.pages
        first = bisect.bisect_right(pages, self.base) - 1
        last = bisect.bisect_right(pages, self.base + count - 1) - 1
        touched = list(pages[first : last + 1])
        if count * 8 <= self.size:
            for _ in range(count):
                self.pop_oldest()
            self.shrink()
            return touched
        self.head = (self.head + count) % self.capacity
        self.size -= count
        self.base += count
        if not self.size:
            del pages[:]
        else:
            del pages[: bisect.bisect_right(pages, self.base) - 1]
        # room for an eighth more: a model at the budget goes one up, one down
        self._relayout(max(_MIN_CAPACITY, self.size + self.size // 8))
        return touched

    def shrink(self) -> None:
        """Give memory back after a burst (a quarter full at most)."""
        if self.capacity > 4 * _MIN_CAPACITY and self.size * 4 < self.capacity:
            self._relayout(max(_MIN_CAPACITY, self.size * 2))

    def _relayout(self, capacity: int) -> None:
        """Move the live rows to new arrays of ``capacity``, oldest first at 0."""
        order = self.slots(0, self.size)
        # Growing from head 0 (a model's join while it fills) moves no row: the
        # index stays right. Otherwise it is rebuilt (and sized down with the rows).
        same_slots = self.head == 0 and capacity >= self.capacity

        def moved(column: np.ndarray) -> np.ndarray:
            out = np.zeros(capacity, column.dtype)
            out[: self.size] = column[order]
            return out

        self.hashes = moved(self.hashes)
        self.flags = moved(self.flags)
        if self.label_value is not None:
            assert self.label_at is not None
            self.label_value = moved(self.label_value)
            self.label_at = moved(self.label_at)
        for v in self.variants:
            for name in v.columns():
                setattr(v, name, moved(getattr(v, name)))
        self.capacity = capacity
        if not same_slots:
            self.head = 0
            self._reindex(0)

    def _reindex(self, size: int) -> None:
        """Rebuild the index with at least ``size`` cells (and a load of at most 3/4)."""
        slots = self.slots(0, self.size)
        self.index.build(self.hashes[slots], slots, size)

    def _drop_idle_variants(self) -> None:
        """Forget the column sets of variants no live row has a prediction of (so the
        cap counts the same variants whether or not the state was restored)."""
        slots = self.slots(0, self.size)
        kept = [v for v in self.variants if (v.flags[slots] & PRESENT).any()]
        self.variants = kept
        self.variant_index = {v.name: k for k, v in enumerate(kept)}

    # -- interned tables ------------------------------------------------------------
    def maybe_compact_interned(self) -> None:
        """Renumber the interned values from the live rows once a table grew past
        twice what is needed (so a stream of unique classes cannot grow it for ever)."""
        limit = self._intern_limit  # the tables' lists read directly: run per eviction
        if (
            len(self.values.values) < limit
            and len(self.versions.values) < limit
            and len(self.segments.values) < limit
        ):
            return
        slots = self.slots(0, self.size)
        values, versions, segments = Interned(), Interned(), _segments()
        for v in self.variants:
            flags = v.flags[slots]
            present = slots[(flags & PRESENT) != 0]
            coded = slots[(flags & (PRESENT | CODE)) == (PRESENT | CODE)]
            v.value[coded] = _recode(v.value[coded], self.values, values)
            v.version[present] = _recode(v.version[present], self.versions, versions)
            if v.segment is not None:
                v.segment[present] = _recode(v.segment[present], self.segments, segments)
        if self.label_value is not None:
            coded = slots[(self.flags[slots] & (LABEL | LABEL_CODE)) == (LABEL | LABEL_CODE)]
            self.label_value[coded] = _recode(self.label_value[coded], self.values, values)
        self.values, self.versions, self.segments = values, versions, segments
        after = max(len(values), len(versions), len(segments))
        self._intern_limit = max(256, 2 * after)


def _segments() -> Interned:
    table = Interned()
    table.code(())
    return table


def _recode(codes: np.ndarray, old: Interned, new: Interned) -> np.ndarray:
    out = np.array([new.code(old.values[int(c)]) for c in codes], dtype=np.float64)
    return out.astype(codes.dtype)
