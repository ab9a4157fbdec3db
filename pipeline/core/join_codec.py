"""Label-join pages as changelog entries (version 2), and back; older layouts read.

A page (``join:["m",page]``) is a run of consecutive requests of one model, written as
packed columns (base64 of little-endian arrays) with its own small tables of the
classes, versions and segment values it uses::

    {"version": 2, "first": 4096, "rows": 3,
     "hash": "<u64 x rows>", "flags": "<u8 x rows>",
     "values": ["approve"], "versions": ["1"],
     "variants": [{"name": "production", "flags": "<u8>", "value": "<f64>",
                   "version": "<u16>", "at": "<i64>"}],
     "label": {"value": "<f64>", "at": "<i64>"}}

``label`` is left out when no request of the page has one, ``segments`` (and a
variant's ``segment``) when no error monitor is segmented. A pending prediction is
28 packed bytes, 37 in base64. Codes are numbered by first appearance in the page
(variants in name order, then labels), so a page's text depends only on its
requests, not on the history of the model's own tables: a restored run writes the
same pages as the run that never stopped.

Older layouts restore and are rewritten as version 2 pages: version 1 pages
(``{"entries": [request, ...]}``) and the per-request entries before them
(``join:["m","request"]``), both one JSON object per request.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pipeline.core.join_store import (
    CODE,
    JOINED,
    LABEL,
    LABEL_CODE,
    LABEL_FIRST,
    PAIRED,
    PRESENT,
    RANK_SHIFT,
    Interned,
    JoinStore,
    request_hash,
)

__all__ = [
    "PAGE_VERSION",
    "decode_pages",
    "encode_page",
    "is_legacy",
    "legacy_requests",
    "legacy_store",
]

PAGE_VERSION = 2


# ----------------------------------------------------------------------- writing
def _pack(column: np.ndarray, dtype: str) -> str:
    return base64.b64encode(column.astype(dtype).tobytes()).decode("ascii")


def _local(
    store_table: Interned, pieces: Sequence[np.ndarray]
) -> tuple[list[Any], list[np.ndarray]]:
    """Model codes of several columns -> (page table, page codes), numbered by first
    appearance across ``pieces`` in order."""
    sizes = [len(p) for p in pieces]
    total = sum(sizes)
    if total <= _SMALL:
        # A page of a few requests (one model's in a batch, the usual case with many
        # models): a dict in first-appearance order, without numpy's per-call cost.
        seen: dict[int, int] = {}
        flat = [seen.setdefault(c, len(seen)) for p in pieces for c in p.astype(np.int64).tolist()]
        table = [store_table.values[c] for c in seen]
        local = np.array(flat, np.int64)
    else:
        codes = np.concatenate([p.astype(np.int64) for p in pieces])
        unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty(len(unique), np.int64)
        rank[order] = np.arange(len(unique))
        local = rank[inverse.reshape(-1)]
        table = [store_table.values[int(unique[i])] for i in order]
    out, start = [], 0
    for n in sizes:
        out.append(local[start : start + n])
        start += n
    return table, out


_SMALL = 64
"""Codes up to which :func:`_local` numbers them in Python (same result)."""


def _code_dtype(table: list[Any]) -> str:
    return "<u2" if len(table) <= 0xFFFF else "<u4"


def encode_page(store: JoinStore, page: int) -> dict[str, Any] | None:
    """The state entry of ``page``; None when none of its requests is left."""
    rows = store.page_rows(page)
    if rows is None:
        return None
    slots = store.slots(*rows)
    n = len(slots)
    flags = store.flags[slots]
    variants = sorted(
        (v for v in store.variants if (v.flags[slots] & PRESENT).any()), key=lambda v: v.name
    )
    vflags = [v.flags[slots] for v in variants]
    present = [(f & PRESENT) != 0 for f in vflags]
    coded = [(f & (PRESENT | CODE)) == (PRESENT | CODE) for f in vflags]
    labelled = (flags & LABEL) != 0
    label_coded = (flags & (LABEL | LABEL_CODE)) == (LABEL | LABEL_CODE)
    has_labels = bool(labelled.any())
    assert not has_labels or (store.label_value is not None and store.label_at is not None)

    value_pieces = [v.value[slots][c] for v, c in zip(variants, coded, strict=True)]
    if has_labels:
        assert store.label_value is not None
        value_pieces.append(store.label_value[slots][label_coded])
    values, value_codes = _local(store.values, value_pieces)
    versions, version_codes = _local(
        store.versions, [v.version[slots][p] for v, p in zip(variants, present, strict=True)]
    )
    segmented = [v for v in variants if v.segment is not None]
    segments: list[Any] = []
    segment_codes: list[np.ndarray] = []
    if segmented:
        segments, segment_codes = _local(
            store.segments,
            [
                v.segment[slots][p]
                for v, p in zip(variants, present, strict=True)
                if v.segment is not None
            ],
        )

    out: dict[str, Any] = {
        "version": PAGE_VERSION,
        "first": store.base + rows[0],
        "rows": n,
        "hash": _pack(store.hashes[slots], "<u8"),
        "flags": _pack(flags, "u1"),
        "values": values,
        "versions": versions,
    }
    if segmented:
        out["segments"] = [[list(pair) for pair in segment] for segment in segments]
    written = []
    segment_iter = iter(segment_codes)
    for i, v in enumerate(variants):
        value = np.where(present[i], v.value[slots], 0.0)
        value[coded[i]] = value_codes[i]
        version = np.zeros(n, np.int64)
        version[present[i]] = version_codes[i]
        item = {
            "name": v.name,
            "flags": _pack(vflags[i], "u1"),
            "value": _pack(value, "<f8"),
            "version": _pack(version, _code_dtype(versions)),
            "at": _pack(np.where(present[i], v.at[slots], 0), "<i8"),
        }
        if v.segment is not None:
            segment = np.zeros(n, np.int64)
            segment[present[i]] = next(segment_iter)
            item["segment"] = _pack(segment, _code_dtype(segments))
        written.append(item)
    out["variants"] = written
    if has_labels:
        assert store.label_value is not None and store.label_at is not None
        label_value = np.where(labelled, store.label_value[slots], 0.0)
        label_value[label_coded] = value_codes[-1]
        out["label"] = {
            "value": _pack(label_value, "<f8"),
            "at": _pack(np.where(labelled, store.label_at[slots], 0), "<i8"),
        }
    return out


# ----------------------------------------------------------------------- reading
def _unbase64(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"join page: {where} is not a string")
    try:
        # what base64.b64decode(validate=True) does, without its Python layers
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or a str that is not ASCII
        raise ValueError(f"join page: {where} is not base64") from exc


def _raw(text: object, itemsize: int, n: int, where: str) -> bytes:
    """The bytes of a packed column of ``n`` values of ``itemsize`` bytes."""
    raw = _unbase64(text, where)
    if len(raw) != itemsize * n:
        raise ValueError(f"join page: {where} holds {len(raw)} bytes, not {n} values")
    return raw


def _outcome(value: Any, where: str) -> Any:
    if isinstance(value, str | bool):
        return value
    raise ValueError(f"join page: {where} holds {value!r}, not a class or flag")


class _Pages:
    """A model's pages read as one run of rows: each column is decoded from every
    page's text and joined into one array, and page-local codes are turned into the
    model's codes through one table per kind, pages side by side (a restore of
    thousands of models reads tens of thousands of pages: per-page numpy calls on a
    few rows each were most of its time)."""

    def __init__(self, ordered: list[tuple[int, dict[str, Any]]], store: JoinStore) -> None:
        self.pages = [page for page, _ in ordered]
        self.states = [state for _, state in ordered]
        self.rows = [int(state["rows"]) for state in self.states]
        self.total = sum(self.rows)
        self.items: list[dict[str, dict[str, Any]]] = []
        self.luts: dict[str, list[list[int]]] = {"values": [], "versions": [], "segments": []}
        self.sizes: dict[str, list[int]] = {"values": [], "versions": [], "segments": []}
        for page, state in ordered:
            if state.get("version") != 2:
                raise ValueError(f"join page {page}: version {state.get('version')!r} unsupported")
            where = f"page {page}"
            tables = {
                "values": [_outcome(v, f"{where} values") for v in state["values"]],
                "versions": [str(v) for v in state["versions"]],
                "segments": [tuple((str(k), v) for k, v in s) for s in state.get("segments", [])],
            }
            items = {str(item["name"]): item for item in state["variants"]}
            self.items.append(items)
            # The model's tables number values in the order pages first use them
            # (classes by a variant or a label, versions and segments by a variant).
            used = {
                "values": bool(items) or "label" in state,
                "versions": bool(items),
                "segments": any("segment" in item for item in items.values()),
            }
            for kind, table in (
                ("values", store.values),
                ("versions", store.versions),
                ("segments", store.segments),
            ):
                local = tables[kind]
                lut = [table.code(v) for v in local] if used[kind] else []
                self.luts[kind].append(lut or [0])
                self.sizes[kind].append(len(local))

    def page_of(self, row: int) -> int:
        ends = np.cumsum(self.rows)
        return self.pages[int(np.searchsorted(ends, row, side="right"))]

    def column(self, texts: list[object], dtype: str, names: list[str]) -> np.ndarray:
        """Packed columns of each page (None: zeros) as one array."""
        itemsize = np.dtype(dtype).itemsize
        chunks = [
            bytes(itemsize * n) if text is None else _raw(text, itemsize, n, name)
            for text, n, name in zip(texts, self.rows, names, strict=True)
        ]
        return np.frombuffer(b"".join(chunks), dtype=dtype)

    def codes(self, texts: list[object], kind: str, names: list[str]) -> np.ndarray:
        """Code columns of each page (2 or 4 bytes a code; None: code 0) in the
        model's codes of ``kind``."""
        local: list[np.ndarray] = []
        for text, n, name, size in zip(texts, self.rows, names, self.sizes[kind], strict=True):
            if text is None:
                local.append(np.zeros(n, np.int64))
                continue
            raw = _unbase64(text, name)
            dtype = "<u2" if len(raw) == 2 * n else "<u4"
            if len(raw) != np.dtype(dtype).itemsize * n:
                raise ValueError(f"join page: {name} holds {len(raw)} bytes, not {n} values")
            codes = np.frombuffer(raw, dtype=dtype)
            if n and int(codes.max()) >= max(size, 1):
                raise ValueError(f"join page: {name} names a value its table does not have")
            local.append(codes)
        joined = np.concatenate(local).astype(np.int64) if local else np.zeros(0, np.int64)
        luts = [
            lut if text is not None else [0]
            for lut, text in zip(self.luts[kind], texts, strict=True)
        ]
        return self._mapped(joined, luts, np.ones(len(joined), bool))

    def _mapped(self, local: np.ndarray, luts: list[list[int]], rows: np.ndarray) -> np.ndarray:
        """``local[rows]`` (each a code of its page's table) as the model's codes."""
        starts = np.cumsum([0] + [len(lut) for lut in luts[:-1]], dtype=np.int64)
        offsets = np.repeat(starts, self.rows)[rows]
        table = np.fromiter((c for lut in luts for c in lut), np.int64)
        out: np.ndarray = table[local + offsets] if len(local) else local
        return out

    def classes(self, value: np.ndarray, coded: np.ndarray, what: str, code: str) -> None:
        """Turn the class codes of ``value`` (rows ``coded``) into the model's codes."""
        local = value[coded].astype(np.int64)
        if not len(local):
            return
        sizes = np.repeat(np.array(self.sizes["values"], np.int64), self.rows)[coded]
        bad = (local >= sizes) | (local < 0)
        if bad.any():
            row = int(np.flatnonzero(coded)[int(np.argmax(bad))])
            raise ValueError(
                f"join page {self.page_of(row)}{what}: a {code} code its table does not have"
            )
        value[coded] = self._mapped(local, self.luts["values"], coded)


def decode_pages(pages: Iterable[tuple[int, dict[str, Any]]], next_number: int | None) -> JoinStore:
    """A model's store from its version 2 pages ((page number, state) in any order).
    ``next_number``: the creation number of the next request (the model entry's
    ``join_next``), for a model whose pages are all gone."""
    ordered = sorted(pages, key=lambda p: p[0])
    store = JoinStore()
    expected: int | None = None
    for page, state in ordered:
        first, n = int(state["first"]), int(state["rows"])
        # Rows leave at the oldest end only: the oldest page may have lost its first
        # rows, every later one starts at its number, right after the page before.
        if n < 1 or first < page or (expected is not None and not first == page == expected):
            raise ValueError(f"join page {page}: rows {first}..{first + n - 1} do not follow on")
        expected = first + n
    run = _Pages(ordered, store)
    where = [f"page {page}" for page in run.pages]
    states = run.states
    total = run.total
    capacity = max(16, total)
    store.capacity = capacity
    store.size = total
    store.base = int(states[0]["first"]) if states else (next_number or 0)
    hashes = run.column([s["hash"] for s in states], "<u8", [f"{w} hash" for w in where])
    flags = run.column([s["flags"] for s in states], "u1", [f"{w} flags" for w in where])
    store.hashes = _filled(hashes, np.uint64, capacity)
    store.flags = _filled(flags, np.uint8, capacity)
    names: list[str] = []
    for items in run.items:
        names.extend(name for name in items if name not in names)
    for name in names:
        its = [items.get(name) for items in run.items]
        at = [f"{w} variant {name!r}" for w in where]
        segmented = any(item is not None and "segment" in item for item in its)
        k = store.variant(name, segmented)
        columns = store.variants[k]
        vflags = run.column(
            [None if i is None else i["flags"] for i in its], "u1", [f"{a} flags" for a in at]
        )
        value = run.column(
            [None if i is None else i["value"] for i in its], "<f8", [f"{a} value" for a in at]
        )
        value = value.astype(np.float64)
        coded = (vflags & (PRESENT | CODE)) == (PRESENT | CODE)
        run.classes(value, coded, f" variant {name!r}", "class")
        decoded = {
            "flags": vflags,
            "value": value,
            "version": run.codes(
                [None if i is None else i["version"] for i in its],
                "versions",
                [f"{a} version" for a in at],
            ),
            "at": run.column(
                [None if i is None else i["at"] for i in its], "<i8", [f"{a} at" for a in at]
            ),
        }
        if columns.segment is not None:
            decoded["segment"] = run.codes(
                [i.get("segment") if i else None for i in its],
                "segments",
                [f"{a} segment" for a in at],
            )
        for column in columns.columns():
            setattr(
                columns, column, _filled(decoded[column], getattr(columns, column).dtype, capacity)
            )
    labelled = [s.get("label") for s in states]
    if any(label is not None for label in labelled):
        label_value = run.column(
            [None if label is None else label["value"] for label in labelled],
            "<f8",
            [f"{w} label" for w in where],
        ).astype(np.float64)
        has_label = np.repeat(np.array([label is not None for label in labelled]), run.rows)
        coded = ((flags & (LABEL | LABEL_CODE)) == (LABEL | LABEL_CODE)) & has_label
        run.classes(label_value, coded, "", "label")
        store.label_value = _filled(label_value, np.float64, capacity)
        label_at = run.column(
            [None if label is None else label["at"] for label in labelled],
            "<i8",
            [f"{w} label at" for w in where],
        )
        store.label_at = _filled(label_at, np.int64, capacity)
    for page in run.pages:
        store.pages.append(page)
    store._reindex(0)
    store._intern_limit = max(256, 2 * max(len(store.values), len(store.versions)))
    return store


def _filled(joined: np.ndarray, dtype: Any, capacity: int) -> np.ndarray:
    out = np.zeros(capacity, dtype)
    out[: len(joined)] = joined.astype(dtype)
    return out


# ------------------------------------------------------------------ older layouts
def is_legacy(state: dict[str, Any]) -> bool:
    """A version 1 page or a per-request entry (not a version 2 page)."""
    return state.get("version") != PAGE_VERSION


def legacy_requests(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The requests of a version 1 page or of a per-request entry."""
    return list(state["entries"]) if "entries" in state else [state]


def _legacy_outcome(value: Any) -> float | str | bool:
    if isinstance(value, str | bool):
        return value
    return float(value)


def legacy_store(requests: Iterable[dict[str, Any]]) -> JoinStore:
    """A store holding the requests of the older layouts, in their order (``seq``),
    paged afresh."""
    store = JoinStore()
    ordered = sorted(requests, key=lambda r: int(r["seq"]))
    segmented = any(p.get("features") for r in ordered for p in r["predictions"].values())
    for request in ordered:
        slot = store.append(request_hash(str(request["request_id"])), -2, len(ordered))
        at = int(request["at"])
        created_by_prediction = False
        for rank, (name, record) in enumerate(request["predictions"].items()):
            k = store.variant(str(name), segmented)
            if k < 0:
                continue
            columns = store.variants[k]
            stored, coded = store.encode(_legacy_outcome(record["prediction"]))
            joined = JOINED if str(name) in request["errors"] else 0
            columns.value[slot] = stored
            columns.at[slot] = int(record["at"])
            columns.flags[slot] = PRESENT | (CODE if coded else 0) | joined | (rank << RANK_SHIFT)
            store.set_version(k, slot, str(record["version"]))
            if columns.segment is not None:
                columns.segment[slot] = store.segments.code(
                    tuple((record.get("features") or {}).items())
                )
            created_by_prediction = created_by_prediction or (rank == 0 and int(record["at"]) == at)
        label = request.get("label")
        flags = PAIRED if request.get("paired") else 0
        if label is not None:
            store.ensure_labels()
            assert store.label_value is not None and store.label_at is not None
            stored, coded = store.encode(_legacy_outcome(label["label"]))
            store.label_value[slot] = stored
            store.label_at[slot] = int(label["at"])
            flags |= LABEL | (LABEL_CODE if coded else 0)
            if not created_by_prediction:
                flags |= LABEL_FIRST
        store.flags[slot] = flags
    store.page_batch = -1
    return store


def page_requests(page: int, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The requests of a version 2 page as plain JSON, one object each (for tests and
    for reading a changelog by eye): number, hash, flags, predictions, label."""
    store = decode_pages([(page, state)], None)
    out = []
    for row in range(store.size):
        slot = store.slot(row)
        flags = int(store.flags[slot])
        predictions = {}
        for v in store.variants:
            vflags = int(v.flags[slot])
            if vflags & PRESENT:
                predictions[v.name] = {
                    "flags": vflags,
                    "prediction": store.decode(float(v.value[slot]), bool(vflags & CODE)),
                    "version": store.versions.values[int(v.version[slot])],
                    "at": int(v.at[slot]),
                    "segment": None
                    if v.segment is None
                    else [list(p) for p in store.segments.values[int(v.segment[slot])]],
                }
        label = None
        if flags & LABEL:
            assert store.label_value is not None and store.label_at is not None
            label = {
                "label": store.decode(float(store.label_value[slot]), bool(flags & LABEL_CODE)),
                "at": int(store.label_at[slot]),
            }
        out.append(
            {
                "number": store.base + row,
                "hash": int(store.hashes[slot]),
                "flags": flags,
                "predictions": dict(sorted(predictions.items())),
                "label": label,
            }
        )
    return out
