"""A partition's state as entries (see :mod:`pipeline.core.state_keys`) and back.

:func:`changed_entries` reports what changed since the last call (``None``: delete
the entry), :func:`all_entries` everything (what a full changelog replay holds),
and :func:`restore_partition` rebuilds the exact in-memory state from the entries,
including the least-recently-used order that idle expiry and the caps follow, and
the label join's older layouts (:mod:`pipeline.core.join_codec`).

Neither direction raises for one entry: a detector whose snapshot fails (or holds
NaN/inf) is reset and its fresh snapshot written; an entry that cannot be read back
is quarantined — a detector restored fresh, any other entry dropped (a model's
policy, join page, ...), the partition's ``meta`` started anew — and reported
(:mod:`pipeline.core.quarantine`). What was reset is marked changed, so the next
checkpoint overwrites the bad entry instead of restoring it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

import detectors
from pipeline.core.deferred import loaded
from pipeline.core.golden import GoldenState
from pipeline.core.join_budget import trimmed_sizes
from pipeline.core.join_codec import decode_pages, is_legacy, legacy_requests, legacy_store
from pipeline.core.journal import (
    DETECTOR_ENTRY_BYTES,
    SMALL_ENTRY_BYTES,
    JournalTail,
    KeyDelta,
    Report,
    due_values,
    json_exact,
    replay_values,
)
from pipeline.core.labels import JoinBuffer
from pipeline.core.monitor import KeyState, ModelPlan, MonitorKey
from pipeline.core.partition import ModelState, Partition, fanout_groups
from pipeline.core.policy import PolicyState
from pipeline.core.quarantine import Quarantine, finite_json
from pipeline.core.shadow import ShadowState
from pipeline.core.state_keys import (
    COMPONENTS,
    DETECTOR_PREFIX,
    META,
    READABLE_VERSIONS,
    join_page_key,
    parse,
)
from pipeline.core.training import CheckpointRegistry

__all__ = [
    "all_entries",
    "changed_entries",
    "report_changes",
    "restore_partition",
    "snapshot_of",
]

PlanFor = Callable[[str], "ModelPlan | None"]
"""Model id -> its plan (None: no longer monitored)."""


@dataclass
class _Joins:
    """The label-join entries read, per model, until every entry has been seen."""

    pages: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    legacy: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    """Model -> (key, request) of the version 1 layouts."""
    next: dict[str, int] = field(default_factory=dict)
    """Model -> the creation number of its next request (its model entry's)."""


def snapshot_of(part: Partition, state_key: str) -> dict[str, Any] | None:
    """The entry ``state_key`` (not a detector's) as it is now; None: deleted."""
    if state_key == META:
        return part.meta()
    try:
        kind, parts = parse(state_key)
    except ValueError:  # a key this version cannot read (quarantined on restore): delete
        return None
    model = part.models.get(str(parts[0]))
    if model is None:
        return None
    if kind == "model":
        return model.to_state()
    if kind == "join":
        page = parts[1]
        if type(page) is not int:
            return None  # a single request's entry of the older layout: deleted
        return model.joins.page_state(page)
    if kind in COMPONENTS:
        return model.component(kind)
    return None  # not an entry of this layout (quarantined on restore): delete


def _checked_entry(state: KeyState) -> dict[str, Any]:
    entry = state.to_state()
    # orjson writes NaN and infinities as null: a snapshot whose JSON (``to_state``
    # just made it) has no null from its first "state" key on — the detector's state
    # is its last member; parameters come from the config, not the data — is finite.
    # Otherwise (rare: a category "null", say) walk the state.
    saved = state.saved
    start = -1 if saved is None else saved.find(b'"state":')
    if saved is None or start < 0 or saved.find(b"null", start) >= 0:
        numbers = entry["detector"]["state"]
        if not finite_json(numbers):
            raise ValueError("the detector's state holds NaN or infinity")
    return entry


def key_entry(
    part: Partition, state: KeyState, quarantine: Quarantine | None = None
) -> dict[str, Any] | None:
    """``state``'s entry. With a ``quarantine``, a snapshot that raises or holds
    NaN/inf resets the key, and a key whose fresh detector cannot be snapshotted
    either is dropped (None: deleted); without one it raises."""
    try:
        return _checked_entry(state)
    except Exception as exc:
        if quarantine is None:
            raise
        quarantine.record("snapshot", str(state.key), exc)
    state.reset()
    try:
        return _checked_entry(state)
    except Exception:
        part.drop_key(state)
        return None


def entry_of(
    part: Partition, state_key: str, quarantine: Quarantine | None = None
) -> dict[str, Any] | None:
    """:func:`snapshot_of`; with a ``quarantine``, an entry whose snapshot raises is
    deleted (a policy, shadow, golden or checkpoints component is reset with it)."""
    try:
        return snapshot_of(part, state_key)
    except Exception as exc:
        if quarantine is None:
            raise
        quarantine.record("snapshot", state_key, exc)
    kind, _, rest = state_key.partition(":")
    if kind in COMPONENTS:  # keys the engine made (model_key): valid JSON
        model = part.models.get(str(orjson.loads(rest)[0]))
        if model is not None:
            setattr(model, kind, None)
    return None


def changed_entries(
    part: Partition, quarantine: Quarantine | None = None
) -> dict[str, dict[str, Any] | None]:
    """The entries changed since the last call, sorted by key."""
    out: dict[str, dict[str, Any] | None] = {}
    for key in list(part.changed_keys()):
        state = part.key_state(key)
        out[key.state_key()] = None if state is None else key_entry(part, state, quarantine)
        if state is not None:
            state.saved = None  # a copy of the entry, kept would double the state in memory
    for name in part.changed_names():
        out[name] = entry_of(part, name, quarantine)
    part.dirty_keys.clear()
    part.dirty.clear()
    return dict(sorted(out.items()))


def report_changes(part: Partition, quarantine: Quarantine | None = None) -> Report:
    """What changed since the last report, as a journal (:mod:`pipeline.core.journal`):
    deltas for detectors with a full record logged, full records for the others and
    for keys due for compaction, small entries in the journal."""
    number = part.journal = max(part.journal, 1)
    part.journal += 1
    book = part.book
    report = Report(number)
    full: set[MonitorKey] = set()
    for name in book.overdue(number):
        if name.startswith(DETECTOR_PREFIX):
            key = MonitorKey.from_state_key(name)
            part.dirty_keys.add(key)
            full.add(key)
        else:
            part.dirty.add(name)
    size = 0
    for key in sorted(part.changed_keys()):
        name = key.state_key()
        state = part.key_state(key)
        if state is None:
            report.records[name] = None
            book.settle(name)
            continue
        fed = state.fed
        if (
            state.key_id is not None
            and fed is not None
            and key not in full
            and state.pending + len(fed) < due_values(state.base_bytes)
            and json_exact(fed)
        ):
            report.deltas.append(KeyDelta(state.key_id, fed, state.delta_fields()))
            state.fed = []
            state.pending += len(fed)
            size += len(fed) + 1
            book.depend(name, number, latest=False)
            continue
        entry = key_entry(part, state, quarantine)
        if entry is None:  # quarantined and dropped
            report.records[name] = None
            book.settle(name)
            continue
        if state.key_id is None:
            state.key_id = part.key_ids
            part.key_ids += 1
        base = len(state.saved or b"")
        state.saved = None  # a copy of the entry, kept would double the state in memory
        state.mark_logged(state.key_id, base)
        report.ids[name] = state.key_id
        if base <= DETECTOR_ENTRY_BYTES:  # a new key's, mostly: one record for them all
            report.entries[name] = entry
            size += 1
            book.depend(name, number, latest=True)
        else:
            report.records[name] = entry
            book.settle(name)
    part.dirty.add(META)  # the journal and key counters
    for name in sorted(part.changed_names()):
        snapshot = snapshot_of(part, name)
        if snapshot is None:
            report.records[name] = None
            book.settle(name)
        elif name != META and len(orjson.dumps(snapshot)) > SMALL_ENTRY_BYTES:
            report.records[name] = snapshot
            book.settle(name)
        else:
            report.entries[name] = snapshot
            size += 1
            book.depend(name, number, latest=True)
    part.dirty_keys.clear()
    part.dirty.clear()
    book.open(number, size)
    report.dropped = book.drop_settled(number)
    return report


def all_entries(part: Partition, quarantine: Quarantine | None = None) -> dict[str, dict[str, Any]]:
    """Every entry of the partition, sorted by key."""
    out: dict[str, dict[str, Any]] = {}
    for lru in part.keys.values():
        for key, state in list(lru.items()):
            entry = key_entry(part, state, quarantine)
            if entry is not None:
                out[key.state_key()] = entry
    for name in part.state_keys():
        snapshot = entry_of(part, name, quarantine)
        if snapshot is not None:
            out[name] = snapshot
    return dict(sorted(out.items()))


def restore_partition(
    number: int,
    entries: dict[str, dict[str, Any]],
    plan_for: PlanFor,
    quarantine: Quarantine | None = None,
    tail: JournalTail | None = None,
    *,
    release: bool = False,
    join_budget: int | None = None,
) -> Partition:
    """The partition the entries describe, with the deltas of ``tail`` replayed
    into their detectors. Keys whose monitor is no longer configured are reported
    deleted; join entries of the older layouts are reported deleted and rewritten
    as version 2 pages. With a ``quarantine``, an entry that cannot be read back is
    reset (see the module's docstring) instead of raising. ``release``: each entry
    is removed from ``entries`` once its component is rebuilt, so that a large
    partition's decoded snapshots are not all held beside the state built from
    them (``entries`` is empty at the end). ``join_budget``: ``limits.max_pending_labels``;
    pages holding more pending requests are trimmed to it as they are decoded
    (:func:`~pipeline.core.join_budget.trimmed_sizes`)."""
    tail = tail or JournalTail()
    part = Partition(number)

    def failed(text: str, exc: Exception) -> None:
        if quarantine is None:
            raise exc
        quarantine.record("restore", text, exc)
        part.dirty.add(text)  # rewritten from what is held now, or deleted

    meta = entries.get(META)
    if meta is not None:
        try:
            _restore_meta(part, meta)
        except Exception as exc:
            part = Partition(number)  # a fresh partition's meta
            failed(META, exc)

    def model_of(model_id: str) -> ModelState:
        model = part.models.get(model_id)
        if model is None:
            plan = plan_for(model_id)
            known = plan.known if plan is not None else False
            model = part.models[model_id] = ModelState(model_id, known)
        return model

    joins = _Joins()
    detector_entries: list[tuple[str, MonitorKey, dict[str, Any]]] = []
    for text, state in entries.items():
        if text == META:
            continue
        try:
            kind, parts = parse(text)
            if kind == "detector":
                detector_entries.append((text, MonitorKey.from_state_key(text), state))
                continue
            _restore_entry(part, text, kind, parts, state, model_of(str(parts[0])), joins)
        except Exception as exc:
            failed(text, exc)
    for journal, size in tail.journals.items():
        part.book.open(journal, size)
        part.journal = max(part.journal, journal + 1)
    for name, journal in tail.journaled.items():  # before the deltas (they add to it)
        if name in entries:
            part.book.depend(name, journal, latest=True)
    joined_models = sorted({*joins.pages, *joins.legacy, *joins.next})
    keep = _within_budget(joins, joined_models, join_budget)
    for model_id in joined_models:
        model = part.models[model_id]
        pages = joins.pages.get(model_id, [])
        legacy = joins.legacy.get(model_id, [])
        try:
            if legacy:  # rewritten as version 2 pages (any newer page of it with them)
                for page, _state in pages:
                    part.dirty.add(join_page_key(model_id, page))
                model.joins = JoinBuffer(legacy_store(request for _key, request in legacy))
                for page in model.joins.pages:
                    part.dirty.add(join_page_key(model_id, page))
                part.mark_model("model", model_id)
            else:
                model.joins = JoinBuffer(decode_pages(pages, joins.next.get(model_id)))
        except Exception as exc:  # the model's join starts empty; its entries are deleted
            read = {*(join_page_key(model_id, p) for p, _ in pages), *(k for k, _ in legacy)}
            for entry_key in sorted(read):
                failed(entry_key, exc)
        if release:
            for page, _state in joins.pages.pop(model_id, []):
                entries.pop(join_page_key(model_id, page), None)
        if keep is not None and isinstance(model.joins, JoinBuffer):
            _trim_join(part, model, keep.get(model_id, 0))
    part.count_pending()
    for model in sorted(part.models.values(), key=lambda m: m.seq):
        if not model.known:
            part.unknown[model.model_id] = model
    restored: list[KeyState] = []
    detector_entries.reverse()
    while detector_entries:  # in entry order, each let go of once taken
        text, key, state = detector_entries.pop()
        if release:
            del entries[text]
        plan = plan_for(key.model_id)
        monitor = None if plan is None else plan.resolve(key.signal, key.monitor_id)
        if plan is None or monitor is None:
            part.dirty_keys.add(key)  # no longer configured: delete it
            continue
        groups = fanout_groups(key, monitor)
        try:
            state = loaded(state)  # kept encoded until now (a sidecar's changelog)
            state = _adopted(state, monitor.detector, monitor.params)
            key_state = KeyState.from_state(key, monitor, state, known=plan.known, groups=groups)
            _replay_deltas(part, key_state, state, tail)
        except Exception as exc:
            if quarantine is None:
                raise
            quarantine.record("restore", str(key), exc)
            key_state = KeyState(key, monitor, monitor.start(), plan.known, groups)
            key_state.last_seen = _int_or(state, "last_seen", part.watermark or 0)
            key_state.seq = _int_or(state, "seq", 0)
            part.dirty_keys.add(key)  # the fresh detector replaces the bad snapshot
        restored.append(key_state)
    if release:
        entries.clear()  # meta, models, policies...: read into the partition above
    for key_state in sorted(restored, key=lambda s: s.seq):
        part.add_key(key_state, model_of(key_state.key.model_id))
    return part


def _int_or(state: Any, name: str, default: int) -> int:
    try:
        return int(state[name])
    except Exception:
        return default


def _within_budget(
    joins: _Joins, model_ids: list[str], budget: int | None
) -> dict[str, int] | None:
    """What each model's join keeps under the partition's budget, from the pages' row
    counts before any is decoded; None when they are within it (the usual case)."""
    if budget is None:
        return None
    sizes: dict[str, int] = {}
    for model_id in model_ids:
        legacy = joins.legacy.get(model_id)
        if legacy:  # rebuilt from these alone
            sizes[model_id] = len(legacy)
            continue
        pages = joins.pages.get(model_id, [])
        rows = (state.get("rows") if isinstance(state, dict) else 0 for _page, state in pages)
        sizes[model_id] = sum(n for n in rows if type(n) is int and n > 0)
    if sum(sizes.values()) <= budget:
        return None
    return trimmed_sizes(sizes, budget)


def _trim_join(part: Partition, model: ModelState, keep: int) -> None:
    """Push the oldest requests of a restored join out until ``keep`` are left."""
    joins = model.joins
    assert isinstance(joins, JoinBuffer)
    excess = len(joins) - keep
    if excess <= 0:
        return
    counters = model.counters
    part.mark_join_pages(model.model_id, joins.evict_oldest(excess, counters))
    counters["evicted_budget"] = counters.get("evicted_budget", 0) + excess


def _restore_entry(
    part: Partition,
    text: str,
    kind: str,
    parts: list[Any],
    state: dict[str, Any],
    model: ModelState,
    joins: _Joins,
) -> None:
    """One entry other than ``meta`` and a detector's into ``part``; raises when it
    cannot be read (the component is then left as a fresh model has it)."""
    if kind == "model":
        try:
            model.last_seen = int(state["last_seen"])
            model.seq = int(state["seq"])
            model.version = None if state["version"] is None else str(state["version"])
            model.counters = {str(k): int(v) for k, v in state["counters"].items()}
            if "join_next" in state:
                joins.next[model.model_id] = int(state["join_next"])
        except Exception:
            fresh = ModelState(model.model_id, model.known, last_seen=part.watermark or 0)
            model.seq, model.version, model.counters = fresh.seq, fresh.version, fresh.counters
            model.last_seen = fresh.last_seen
            raise
    elif kind == "join" and type(parts[1]) is int and not is_legacy(state):
        joins.pages.setdefault(model.model_id, []).append((parts[1], state))
    elif kind == "join":  # a version 1 page, or one request's entry before pages
        requests = legacy_requests(state)
        joins.legacy.setdefault(model.model_id, []).extend((text, r) for r in requests)
        part.dirty.add(text)  # deleted (or overwritten by a new page of that number)
    elif kind == "policy":
        model.policy = PolicyState.from_state(state)
    elif kind == "shadow":
        model.shadow = ShadowState.from_state(state)
    elif kind == "golden":
        model.golden = GoldenState.from_state(state)
    elif kind == "checkpoints":
        model.checkpoints = CheckpointRegistry.from_state(state)
    else:
        raise ValueError(f"unknown state key {text!r}")


def _adopted(state: dict[str, Any], detector: str, params: dict[str, Any]) -> dict[str, Any]:
    """A key's entry whose detector snapshot takes what the monitor's parameters now
    allow it to (``DriftDetector.adopt``: an exact KS reference restored as knots),
    for the restore and the replay of its deltas alike."""
    snapshot = state.get("detector")
    if not isinstance(snapshot, dict):
        return state  # malformed: ``from_state`` says so
    adopted = detectors.get(detector).adopt(snapshot, params)
    return state if adopted is snapshot else {**state, "detector": dict(adopted)}


def _replay_deltas(
    part: Partition, key_state: KeyState, base: dict[str, Any], tail: JournalTail
) -> None:
    """Bring a key restored from its full record up to its deltas."""
    name = key_state.key.state_key()
    key_id = tail.ids.get(name)
    if key_id is None:
        return  # an entry of a changelog without journals: written in full next time
    deltas = tail.deltas.get(name, [])
    values = [v for _journal, vs, _fields in deltas for v in vs]
    key_state.detector = replay_values(
        key_state.detector, key_state.monitor.detector, base["detector"], values
    )
    saved = orjson.dumps(base["detector"])
    key_state.saved = None  # not kept: a copy per restored key doubled the state in memory
    for _journal, _values, fields in deltas:
        key_state.apply_fields(fields)
    key_state.mark_logged(key_id, len(saved))
    key_state.pending = len(values)
    part.key_ids = max(part.key_ids, key_id + 1)
    for journal, _values, _fields in deltas:
        part.book.depend(name, journal, latest=False)


def _restore_meta(part: Partition, meta: dict[str, Any]) -> None:
    if meta.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"partition state version {meta.get('version')!r} unsupported")
    watermark = meta["watermark"]
    part.watermark = None if watermark is None else int(watermark)
    part.next_sweep = int(meta["next_sweep"])
    part.join_marks = {str(k): int(v) for k, v in meta["join_marks"].items()}
    part.join_kinds = [str(k) for k in meta["join_kinds"]]
    part.seq = int(meta["seq"])
    part.journal = int(meta.get("journal", 0))
    part.key_ids = int(meta.get("key_ids", 0))
