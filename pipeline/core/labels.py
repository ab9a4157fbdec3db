"""Delayed ground truth: labels joined to earlier (or later) predictions by request id.

Per model, a bounded buffer of requests keyed by ``request_id`` holds what is known
of each: the prediction of every variant (production, shadow...) and the label. A
prediction and a label join when their event times are at most ``ttl`` apart, in
either order, and the join yields an error per variant — ``0.0``/``1.0`` (wrong) for
classification, the absolute error for regression — which feeds the model's
``error`` monitors (DDM, HDDM, ADWIN) and the shadow test.

A request stays in the buffer until event time passes ``2 x ttl`` after it was
first seen (so a second variant's prediction or a duplicate label still finds it),
or until ``max_pending`` newer requests push it out, or the partition's budget over
all models (``limits.max_pending_labels``, :mod:`pipeline.core.join_budget`) takes it. "Event time" is that of the
slowest topic carrying predictions or labels in the partition, and nothing expires by
time before both a prediction and a label were seen: a label topic consumed behind the
prediction topic does not turn its labels into late ones. What could not join is counted
per model: ``late`` (the label came more than ``ttl`` after its prediction, but
within ``2 x ttl``), ``orphan`` (a label whose prediction was never seen while it
waited), ``unlabeled`` (a prediction whose label never came), ``evicted`` (pushed out
by the size bound), ``duplicate_labels``.

State entries are pages of requests (``join:["model",page]``): the requests a model
first saw in one batch share a page, so a batch of n predictions writes one changelog
record per model instead of n, and a page is written again only when one of its
requests changes (a label joins, a request expires). Processed one record at a time,
every request is a page of its own. (Older per-request entries,
``join:["model","request"]``, still restore: see ``Engine.restore``.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from pipeline.core.join_codec import encode_page
from pipeline.core.join_store import (
    CODE,
    JOINED,
    LABEL,
    LABEL_CODE,
    LABEL_FIRST,
    PAIRED,
    PRESENT,
    RANK_SHIFT,
    JoinStore,
    request_hash,
)

MakeRoom = Callable[[], list[int]]
"""Called before a new request is stored (after ``max_pending``'s evictions): the
partition-wide budget's evictions (:mod:`pipeline.core.join_budget`); returns the
pages of this model's own requests it pushed out."""

__all__ = [
    "NO_JOINS",
    "JoinBuffer",
    "Joined",
    "MakeRoom",
    "NewPrediction",
    "NoJoins",
    "Touched",
    "error_of",
    "request_hash",
]

_ROWS_MIN = 8
"""Fewer held predictions of a model are stored row by row (``JoinBuffer._add_rows``)."""

COUNTERS = ("joined", "late", "orphan", "unlabeled", "evicted", "duplicate_labels")


def _category(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def error_of(prediction: object, label: object, classification: bool | None) -> float | None:
    """0/1 (wrong) for classification, absolute error for regression; None when
    the two cannot be compared. ``classification=None`` decides by the types:
    string or boolean predictions are classes."""
    if classification is None:
        classification = isinstance(prediction, str | bool) or isinstance(label, str | bool)
    if classification:
        return 0.0 if _category(prediction) == _category(label) else 1.0
    if isinstance(prediction, bool) or isinstance(label, bool):
        return None
    if not (isinstance(prediction, int | float) and isinstance(label, int | float)):
        return None
    error = abs(float(prediction) - float(label))
    return error if math.isfinite(error) else None


@dataclass(frozen=True, slots=True)
class Joined:
    """A prediction met its label: the error of that variant."""

    variant: str
    version: str
    error: float
    features: dict[str, Any]
    delay: int
    """Label time minus prediction time, microseconds (negative: label came first)."""


Segment = tuple[tuple[str, Any], ...]
"""The segment values of a prediction's error monitors, ``((feature, value), ...)``."""


@dataclass(slots=True)
class Touched:
    """What adding a prediction or a label did: the request's slot and page, the
    joins it completed, the pages of requests pushed out by the size bound."""

    slot: int
    page: int
    joined: list[Joined]
    evicted: list[int]


NewPrediction = tuple[int, float | str | bool, str, int, Segment | None]
"""A prediction of a new request: (request hash, prediction, version, time, segment)."""


class NoJoins:
    """The join of a model that keeps none (no label-fed monitor, or no labels
    consumed): one shared, empty, immutable object — no state at all."""

    __slots__ = ()
    pages: tuple[int, ...] = ()

    def __len__(self) -> int:
        return 0

    def page_state(self, page: int) -> None:
        return None

    def nbytes(self) -> int:
        return 0


NO_JOINS: Final = NoJoins()


class JoinBuffer:
    """The pending requests of one model, oldest first (columns: :mod:`join_store`)."""

    __slots__ = ("store",)

    def __init__(self, store: JoinStore | None = None) -> None:
        self.store = store if store is not None else JoinStore()

    def __len__(self) -> int:
        return self.store.size

    @property
    def pages(self) -> list[int]:
        return list(self.store.pages)

    def nbytes(self) -> int:
        return self.store.nbytes()

    def page_state(self, page: int) -> dict[str, Any] | None:
        """A page's state entry; None once all its requests are gone."""
        return encode_page(self.store, page)

    # -- removal ------------------------------------------------------------------
    def expire(self, horizon: int, counters: dict[str, int]) -> list[int]:
        """Drop requests first seen before ``horizon``; the pages that changed."""
        store = self.store
        pages: list[int] = []
        while store.size and store.created_at(store.head) < horizon:
            self._count_unjoined(store.head, counters)
            _slot, page = store.pop_oldest()
            if not pages or pages[-1] != page:
                pages.append(page)
        if pages:
            store.shrink()
            store.maybe_compact_interned()
        return pages

    def _count_unjoined(self, slot: int, counters: dict[str, int]) -> None:
        store = self.store
        labelled = bool(store.flags.item(slot) & LABEL)
        predicted = any(v.flags.item(slot) & PRESENT for v in store.variants)
        if labelled and not predicted:
            counters["orphan"] += 1
        elif predicted and not labelled:
            counters["unlabeled"] += 1

    def evict_oldest(self, count: int, counters: dict[str, int]) -> list[int]:
        """Push the ``count`` oldest requests out (counted ``evicted``, and
        ``orphan`` / ``unlabeled`` as the size bound's are); the pages that changed."""
        store = self.store
        count = min(count, store.size)
        if count <= 0:
            return []
        counters["evicted"] += count
        if count == 1:  # the budget's usual case: one request per new one
            self._count_unjoined(store.head, counters)
            _slot, page = store.pop_oldest()
            store.shrink()
            return [page]
        slots = store.slots(0, count)
        labelled = (store.flags[slots] & LABEL) != 0
        predicted = np.zeros(count, dtype=bool)
        for v in store.variants:
            predicted |= (v.flags[slots] & PRESENT) != 0
        counters["orphan"] += int((labelled & ~predicted).sum())
        counters["unlabeled"] += int((predicted & ~labelled).sum())
        pages = store.drop_oldest(count)
        store.maybe_compact_interned()
        return pages

    def _entry(
        self,
        h: int,
        batch: int,
        max_pending: int,
        counters: dict[str, int],
        make_room: MakeRoom | None,
    ) -> tuple[int, bool, list[int]]:
        """The slot of request ``h`` (created, pushing the oldest out when the buffer
        is full), whether it was created, the pages of the requests pushed out."""
        store = self.store
        slot = store.find(h)
        if slot >= 0:
            return slot, False, []
        evicted: list[int] = []
        while store.size >= max_pending:
            counters["evicted"] += 1
            self._count_unjoined(store.head, counters)
            _old, page = store.pop_oldest()
            if not evicted or evicted[-1] != page:
                evicted.append(page)
        if evicted:
            store.maybe_compact_interned()
        if make_room is not None:
            for page in make_room():
                if not evicted or evicted[-1] != page:
                    evicted.append(page)
        return store.append(h, batch, max_pending), True, evicted

    def _touched(
        self, slot: int, joined: list[Joined], evicted: list[int], created: bool = False
    ) -> Touched:
        store = self.store
        if created:  # the newest row: on the newest page
            return Touched(slot, store.pages[-1], joined, evicted)
        row = (slot - store.head) % store.capacity
        return Touched(slot, store.page_of(store.base + row), joined, evicted)

    # -- adding -------------------------------------------------------------------
    def add_prediction(
        self,
        request_id: str,
        variant: str,
        version: str,
        prediction: float | str | bool,
        at: int,
        segment: Segment | None,
        *,
        batch: int,
        ttl: int,
        max_pending: int,
        classification: bool | None,
        counters: dict[str, int],
        make_room: MakeRoom | None = None,
    ) -> Touched | None:
        """Remember a prediction; join it when its label is already here. A new
        request joins the page ``batch`` opened. None: one variant too many for
        this model (counted as ``variants_dropped``, nothing changed)."""
        store = self.store
        k = store.variant(variant, segment is not None)
        if k < 0:
            counters["variants_dropped"] = counters.get("variants_dropped", 0) + 1
            return None
        slot, created, evicted = self._entry(
            request_hash(request_id), batch, max_pending, counters, make_room
        )
        columns = store.variants[k]
        joined: list[Joined] = []
        if columns.flags.item(slot) & PRESENT:
            return self._touched(slot, joined, evicted)  # redelivered: the first one counts
        # a new row has no prediction yet: the first of its request
        rank = 0 if created else sum(1 for v in store.variants if v.flags.item(slot) & PRESENT)
        self._write(k, slot, prediction, version, at, segment, rank)
        if not created and store.flags.item(slot) & LABEL:
            result = self._join(slot, k, ttl, classification, counters)
            if result is not None:
                joined.append(result)
        return self._touched(slot, joined, evicted, created)

    def add_new_predictions(
        self, k: int, new: list[NewPrediction], *, batch: int, max_pending: int
    ) -> list[int]:
        """``add_prediction`` of each of ``new`` in turn, for requests that are not
        pending and will push none out (the caller checked both: nothing joins,
        nothing is evicted), rows and columns written at once; the pages they joined."""
        store = self.store
        if len(new) < _ROWS_MIN:
            return self._add_rows(k, new, batch, max_pending)
        hashes, predictions, versions, ats, segments = zip(*new, strict=True)
        slots, pages = store.append_many(hashes, batch, max_pending)
        columns = store.variants[k]
        encode = store.encode
        values: list[float] = []
        coded: list[int] = []
        for prediction in predictions:
            stored, is_code = encode(prediction)
            values.append(stored)
            coded.append(PRESENT | CODE if is_code else PRESENT)
        columns.value[slots] = values
        columns.at[slots] = ats
        columns.flags[slots] = coded
        store.set_versions(k, slots, versions)
        if columns.segment is not None:
            segment = store.segments.code
            columns.segment[slots] = [segment(s or ()) for s in segments]
        return pages

    def _add_rows(
        self, k: int, new: list[NewPrediction], batch: int, max_pending: int
    ) -> list[int]:
        """``add_new_predictions`` row by row, as ``add_prediction`` writes a new
        request: for a few rows, cheaper than setting up the columns' slices (a
        batch over thousands of models holds one or two predictions of each)."""
        store = self.store
        pages: list[int] = []
        for h, prediction, version, at, segment in new:
            self._write(k, store.append(h, batch, max_pending), prediction, version, at, segment)
            page = store.pages[-1]
            if not pages or pages[-1] != page:
                pages.append(page)
        return pages

    def _write(
        self,
        k: int,
        slot: int,
        prediction: float | str | bool,
        version: str,
        at: int,
        segment: Segment | None,
        rank: int = 0,
    ) -> None:
        """Variant ``k``'s prediction into row ``slot``, the ``rank``-th of its request."""
        store = self.store
        columns = store.variants[k]
        stored, coded = store.encode(prediction)
        columns.value[slot] = stored
        columns.at[slot] = at
        columns.flags[slot] = PRESENT | (CODE if coded else 0) | (rank << RANK_SHIFT)
        store.set_version(k, slot, version)
        if columns.segment is not None:
            columns.segment[slot] = store.segments.code(segment or ())

    def add_label(
        self,
        request_id: str,
        label: float | str | bool,
        at: int,
        *,
        batch: int,
        ttl: int,
        max_pending: int,
        classification: bool | None,
        counters: dict[str, int],
        make_room: MakeRoom | None = None,
    ) -> Touched:
        """Remember a label; join it to every prediction of the request seen so far,
        in the order they came (returns as :meth:`add_prediction`)."""
        store = self.store
        store.ensure_labels()
        assert store.label_value is not None and store.label_at is not None
        slot, created, evicted = self._entry(
            request_hash(request_id), batch, max_pending, counters, make_room
        )
        joined: list[Joined] = []
        flags = int(store.flags[slot])
        if flags & LABEL:
            counters["duplicate_labels"] += 1
            return self._touched(slot, joined, evicted)
        stored, coded = store.encode(label)
        store.label_value[slot] = stored
        store.label_at[slot] = at
        flags |= LABEL | (LABEL_CODE if coded else 0) | (LABEL_FIRST if created else 0)
        store.flags[slot] = flags
        present = [
            (int(v.flags[slot]) >> RANK_SHIFT, k)
            for k, v in enumerate(store.variants)
            if v.flags[slot] & PRESENT
        ]
        for _rank, k in sorted(present):
            result = self._join(slot, k, ttl, classification, counters)
            if result is not None:
                joined.append(result)
        return self._touched(slot, joined, evicted, created)

    def _join(
        self,
        slot: int,
        k: int,
        ttl: int,
        classification: bool | None,
        counters: dict[str, int],
    ) -> Joined | None:
        store = self.store
        assert store.label_value is not None and store.label_at is not None
        columns = store.variants[k]
        delay = int(store.label_at[slot]) - int(columns.at[slot])
        if abs(delay) > ttl:
            counters["late"] += 1
            return None
        error = self._error(slot, k, classification)
        if error is None:
            counters["incomparable"] = counters.get("incomparable", 0) + 1
            return None
        columns.flags[slot] |= JOINED
        counters["joined"] += 1
        features: dict[str, Any] = {}
        if columns.segment is not None:
            features = dict(store.segments.values[int(columns.segment[slot])])
        return Joined(
            variant=columns.name,
            version=store.versions.values[int(columns.version[slot])],
            error=error,
            features=features,
            delay=delay,
        )

    def _error(self, slot: int, k: int, classification: bool | None) -> float | None:
        store = self.store
        assert store.label_value is not None
        columns = store.variants[k]
        prediction = store.decode(float(columns.value[slot]), bool(columns.flags[slot] & CODE))
        label = store.decode(float(store.label_value[slot]), bool(store.flags[slot] & LABEL_CODE))
        return error_of(prediction, label, classification)

    def pair(
        self, slot: int, candidate: str, classification: bool | None
    ) -> tuple[float, float, str, str] | None:
        """The shadow test's pair of the request at ``slot`` — production error,
        candidate error, candidate version, production version — once both variants
        joined its label; each request pairs once."""
        store = self.store
        if store.flags[slot] & PAIRED:
            return None
        kp = store.variant_index.get("production")
        kc = store.variant_index.get(candidate)
        if kp is None or kc is None:
            return None
        production, shadow = store.variants[kp], store.variants[kc]
        if not (production.flags[slot] & JOINED and shadow.flags[slot] & JOINED):
            return None
        store.flags[slot] |= PAIRED
        errors = (self._error(slot, kp, classification), self._error(slot, kc, classification))
        assert errors[0] is not None and errors[1] is not None
        return (
            errors[0],
            errors[1],
            store.versions.values[int(shadow.version[slot])],
            store.versions.values[int(production.version[slot])],
        )
