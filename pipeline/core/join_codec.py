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
def _unpack(text: object, dtype: str, n: int, where: str) -> np.ndarray:
    if not isinstance(text, str):
        raise ValueError(f"join page: {where} is not a string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"join page: {where} is not base64") from exc
    if len(raw) != np.dtype(dtype).itemsize * n:
        raise ValueError(f"join page: {where} holds {len(raw)} bytes, not {n} values")
    return np.frombuffer(raw, dtype=dtype)


def _unpack_codes(text: object, n: int, table: list[Any], where: str) -> np.ndarray:
    dtype = "<u2" if isinstance(text, str) and len(base64.b64decode(text)) == 2 * n else "<u4"
    codes = _unpack(text, dtype, n, where).astype(np.int64)
    if len(codes) and int(codes.max()) >= max(len(table), 1):
        raise ValueError(f"join page: {where} names a value its table does not have")
    return codes


def _model_codes(table: Interned, local: list[Any], codes: np.ndarray) -> np.ndarray:
    lut = np.array([table.code(value) for value in local] or [0], dtype=np.int64)
    out: np.ndarray = lut[codes]
    return out


def _outcome(value: Any, where: str) -> Any:
    if isinstance(value, str | bool):
        return value
    raise ValueError(f"join page: {where} holds {value!r}, not a class or flag")


def decode_pages(pages: Iterable[tuple[int, dict[str, Any]]], next_number: int | None) -> JoinStore:
    """A model's store from its version 2 pages ((page number, state) in any order).
    ``next_number``: the creation number of the next request (the model entry's
    ``join_next``), for a model whose pages are all gone."""
    ordered = sorted(pages, key=lambda p: p[0])
    store = JoinStore()
    total = 0
    expected: int | None = None
    parts: list[dict[str, Any]] = []
    for page, state in ordered:
        first, n = int(state["first"]), int(state["rows"])
        # Rows leave at the oldest end only: the oldest page may have lost its first
        # rows, every later one starts at its number, right after the page before.
        if n < 1 or first < page or (expected is not None and not first == page == expected):
            raise ValueError(f"join page {page}: rows {first}..{first + n - 1} do not follow on")
        expected = first + n
        parts.append(_read_page(store, page, state, n))
        total += n
    capacity = max(16, total)
    store.capacity = capacity
    store.size = total
    store.base = parts[0]["first"] if parts else (next_number or 0)
    store.hashes = _joined_column(parts, "hash", np.uint64, capacity)
    store.flags = _joined_column(parts, "flags", np.uint8, capacity)
    names: list[str] = []
    for part in parts:
        names.extend(name for name in part["variants"] if name not in names)
    for name in names:
        segmented = any(
            name in p["variants"] and p["variants"][name]["segment"] is not None for p in parts
        )
        k = store.variant(name, segmented)
        columns = store.variants[k]
        for column in columns.columns():
            dtype = getattr(columns, column).dtype
            pieces = [
                p["variants"][name][column]
                if name in p["variants"] and p["variants"][name][column] is not None
                else np.zeros(p["rows"], dtype)
                for p in parts
            ]
            setattr(columns, column, _concat(pieces, dtype, capacity))
    if any(p["label"] is not None for p in parts):
        store.label_value = _concat(
            [p["label"][0] if p["label"] else np.zeros(p["rows"]) for p in parts],
            np.float64,
            capacity,
        )
        store.label_at = _concat(
            [p["label"][1] if p["label"] else np.zeros(p["rows"], np.int64) for p in parts],
            np.int64,
            capacity,
        )
    for page, _state in ordered:
        store.pages.append(page)
    store._reindex(0)
    store._intern_limit = max(256, 2 * max(len(store.values), len(store.versions)))
    return store


def _read_page(store: JoinStore, page: int, state: dict[str, Any], n: int) -> dict[str, Any]:
    if state.get("version") != 2:
        raise ValueError(f"join page {page}: version {state.get('version')!r} unsupported")
    where = f"page {page}"
    values = [_outcome(v, f"{where} values") for v in state["values"]]
    versions = [str(v) for v in state["versions"]]
    segments = [tuple((str(k), v) for k, v in s) for s in state.get("segments", [])]
    flags = _unpack(state["flags"], "u1", n, f"{where} flags")
    variants: dict[str, dict[str, Any]] = {}
    for item in state["variants"]:
        name = str(item["name"])
        at = f"{where} variant {name!r}"
        vflags = _unpack(item["flags"], "u1", n, f"{at} flags")
        value = _unpack(item["value"], "<f8", n, f"{at} value").astype(np.float64)
        coded = (vflags & (PRESENT | CODE)) == (PRESENT | CODE)
        local = value[coded].astype(np.int64)
        if len(local) and (int(local.max()) >= len(values) or int(local.min()) < 0):
            raise ValueError(f"join {at}: a class code its table does not have")
        value[coded] = _model_codes(store.values, values, local)
        version = _model_codes(
            store.versions, versions, _unpack_codes(item["version"], n, versions, f"{at} version")
        )
        segment = None
        if "segment" in item:
            local_segments = _unpack_codes(item["segment"], n, segments, f"{at} segment")
            segment = _model_codes(store.segments, segments, local_segments)
        variants[name] = {
            "flags": vflags,
            "value": value,
            "version": version,
            "at": _unpack(item["at"], "<i8", n, f"{at} at"),
            "segment": segment,
        }
    label = None
    if "label" in state:
        label_value = _unpack(state["label"]["value"], "<f8", n, f"{where} label").astype(
            np.float64
        )
        coded = (flags & (LABEL | LABEL_CODE)) == (LABEL | LABEL_CODE)
        local = label_value[coded].astype(np.int64)
        if len(local) and (int(local.max()) >= len(values) or int(local.min()) < 0):
            raise ValueError(f"join {where}: a label code its table does not have")
        label_value[coded] = _model_codes(store.values, values, local)
        label = (label_value, _unpack(state["label"]["at"], "<i8", n, f"{where} label at"))
    return {
        "first": int(state["first"]),
        "rows": n,
        "hash": _unpack(state["hash"], "<u8", n, f"{where} hash"),
        "flags": flags,
        "variants": variants,
        "label": label,
    }


def _joined_column(parts: list[dict[str, Any]], name: str, dtype: Any, capacity: int) -> np.ndarray:
    return _concat([p[name] for p in parts], dtype, capacity)


def _concat(pieces: list[np.ndarray], dtype: Any, capacity: int) -> np.ndarray:
    out = np.zeros(capacity, dtype)
    if pieces:
        joined = np.concatenate(pieces).astype(dtype)
        out[: len(joined)] = joined
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
