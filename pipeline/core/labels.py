"""Delayed ground truth: labels joined to earlier (or later) predictions by request id.

Per model, a bounded buffer of requests keyed by ``request_id`` holds what is known
of each: the prediction of every variant (production, shadow...) and the label. A
prediction and a label join when their event times are at most ``ttl`` apart, in
either order, and the join yields an error per variant — ``0.0``/``1.0`` (wrong) for
classification, the absolute error for regression — which feeds the model's
``error`` monitors (DDM, HDDM, ADWIN) and the shadow test.

A request stays in the buffer until event time passes ``2 x ttl`` after it was
first seen (so a second variant's prediction or a duplicate label still finds it),
or until ``max_pending`` newer requests push it out. "Event time" is that of the
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
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JoinBuffer", "JoinEntry", "Joined", "error_of"]

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


@dataclass(slots=True)
class JoinEntry:
    request_id: str
    at: int
    seq: int
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """variant -> {"version", "prediction", "at", "features", "origin": [topic, offset]}"""
    label: dict[str, Any] | None = None
    """{"label", "at"}"""
    errors: dict[str, float] = field(default_factory=dict)
    paired: bool = False
    page: int = -1
    """The state entry (page) this request is written in."""

    def to_state(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "at": self.at,
            "seq": self.seq,
            "predictions": self.predictions,
            "label": self.label,
            "errors": self.errors,
            "paired": self.paired,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], page: int) -> JoinEntry:
        return cls(
            page=page,
            request_id=str(state["request_id"]),
            at=int(state["at"]),
            seq=int(state["seq"]),
            predictions={str(k): dict(v) for k, v in state["predictions"].items()},
            label=None if state["label"] is None else dict(state["label"]),
            errors={str(k): float(v) for k, v in state["errors"].items()},
            paired=bool(state["paired"]),
        )


@dataclass(frozen=True, slots=True)
class Joined:
    """A prediction met its label: the error of that variant."""

    variant: str
    version: str
    error: float
    features: dict[str, Any]
    delay: int
    """Label time minus prediction time, microseconds (negative: label came first)."""


class JoinBuffer:
    """The pending requests of one model, oldest first."""

    def __init__(self) -> None:
        self.entries: OrderedDict[str, JoinEntry] = OrderedDict()
        self.pages: dict[int, dict[str, None]] = {}
        """Page -> its request ids, in order."""

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entry: JoinEntry) -> None:
        """Append ``entry`` (newest) to the buffer and to its page."""
        self.entries[entry.request_id] = entry
        self.pages.setdefault(entry.page, {})[entry.request_id] = None

    def _remove(self, entry: JoinEntry) -> None:
        del self.entries[entry.request_id]
        page = self.pages[entry.page]
        del page[entry.request_id]
        if not page:
            del self.pages[entry.page]

    def page_state(self, page: int) -> dict[str, Any] | None:
        """A page's state entry; None once all its requests are gone."""
        ids = self.pages.get(page)
        if ids is None:
            return None
        return {"entries": [self.entries[r].to_state() for r in ids]}

    def expire(self, horizon: int, counters: dict[str, int]) -> list[int]:
        """Drop requests first seen before ``horizon``; the pages that changed."""
        pages = []
        entries = self.entries
        while entries:
            entry = next(iter(entries.values()))
            if entry.at >= horizon:
                break
            self._remove(entry)
            self._count_unjoined(entry, counters)
            pages.append(entry.page)
        return pages

    @staticmethod
    def _count_unjoined(entry: JoinEntry, counters: dict[str, int]) -> None:
        if entry.label is not None and not entry.predictions:
            counters["orphan"] += 1
        elif entry.label is None and entry.predictions:
            counters["unlabeled"] += 1

    def _entry(
        self,
        request_id: str,
        at: int,
        seq: int,
        page: int | None,
        max_pending: int,
        counters: dict[str, int],
    ) -> tuple[JoinEntry, list[int]]:
        entry = self.entries.get(request_id)
        evicted: list[int] = []
        if entry is None:
            while len(self.entries) >= max_pending:
                old = next(iter(self.entries.values()))
                self._remove(old)
                counters["evicted"] += 1
                self._count_unjoined(old, counters)
                evicted.append(old.page)
            entry = JoinEntry(request_id, at, seq, page=seq if page is None else page)
            self.add(entry)
        return entry, evicted

    def add_prediction(
        self,
        request_id: str,
        variant: str,
        record: dict[str, Any],
        *,
        seq: int,
        ttl: int,
        max_pending: int,
        classification: bool | None,
        counters: dict[str, int],
        page: int | None = None,
    ) -> tuple[JoinEntry, list[Joined], list[int]]:
        """Remember a prediction; join it when its label is already here. Returns the
        request's entry, the joins, the pages of requests pushed out; a new request
        goes to ``page`` (default: a page of its own, numbered ``seq``)."""
        entry, evicted = self._entry(request_id, record["at"], seq, page, max_pending, counters)
        joined: list[Joined] = []
        if variant in entry.predictions:
            return entry, joined, evicted  # a redelivered prediction: the first one counts
        entry.predictions[variant] = record
        if entry.label is not None:
            result = self._join(entry, variant, ttl, classification, counters)
            if result is not None:
                joined.append(result)
        return entry, joined, evicted

    def add_label(
        self,
        request_id: str,
        label: float | str | bool,
        at: int,
        *,
        seq: int,
        ttl: int,
        max_pending: int,
        classification: bool | None,
        counters: dict[str, int],
        page: int | None = None,
    ) -> tuple[JoinEntry, list[Joined], list[int]]:
        """Remember a label; join it to every prediction of the request seen so far
        (returns as :meth:`add_prediction`)."""
        entry, evicted = self._entry(request_id, at, seq, page, max_pending, counters)
        joined: list[Joined] = []
        if entry.label is not None:
            counters["duplicate_labels"] += 1
            return entry, joined, evicted
        entry.label = {"label": label, "at": at}
        for variant in entry.predictions:
            result = self._join(entry, variant, ttl, classification, counters)
            if result is not None:
                joined.append(result)
        return entry, joined, evicted

    @staticmethod
    def _join(
        entry: JoinEntry,
        variant: str,
        ttl: int,
        classification: bool | None,
        counters: dict[str, int],
    ) -> Joined | None:
        assert entry.label is not None
        record = entry.predictions[variant]
        delay = int(entry.label["at"]) - int(record["at"])
        if abs(delay) > ttl:
            counters["late"] += 1
            return None
        error = error_of(record["prediction"], entry.label["label"], classification)
        if error is None:
            counters["incomparable"] = counters.get("incomparable", 0) + 1
            return None
        entry.errors[variant] = error
        counters["joined"] += 1
        return Joined(
            variant=variant,
            version=str(record["version"]),
            error=error,
            features=dict(record.get("features") or {}),
            delay=delay,
        )
