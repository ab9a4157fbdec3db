"""A partition's state as entries (see :mod:`pipeline.core.state_keys`) and back.

:func:`changed_entries` reports what changed since the last call (``None``: delete
the entry), :func:`all_entries` everything (what a full changelog replay holds),
and :func:`restore_partition` rebuilds the exact in-memory state from the entries,
including the least-recently-used order that idle expiry and the caps follow, and
the older one-request-per-entry layout of the label join.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.core.golden import GoldenState
from pipeline.core.labels import JoinEntry
from pipeline.core.monitor import KeyState, ModelPlan, MonitorKey
from pipeline.core.partition import ModelState, Partition, fanout_groups
from pipeline.core.policy import PolicyState
from pipeline.core.shadow import ShadowState
from pipeline.core.state_keys import COMPONENTS, META, STATE_VERSION, join_page_key, parse
from pipeline.core.training import CheckpointRegistry

__all__ = ["all_entries", "changed_entries", "restore_partition", "snapshot_of"]

PlanFor = Callable[[str], "ModelPlan | None"]
"""Model id -> its plan (None: no longer monitored)."""


def snapshot_of(part: Partition, state_key: str) -> dict[str, Any] | None:
    """The entry ``state_key`` (not a detector's) as it is now; None: deleted."""
    if state_key == META:
        return part.meta()
    kind, parts = parse(state_key)
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
    raise ValueError(f"unknown state key {state_key!r}")


def changed_entries(part: Partition) -> dict[str, dict[str, Any] | None]:
    """The entries changed since the last call, sorted by key."""
    out: dict[str, dict[str, Any] | None] = {}
    for key in part.dirty_keys:
        state = part.key_state(key)
        out[key.state_key()] = None if state is None else state.to_state()
    for name in part.dirty:
        out[name] = snapshot_of(part, name)
    part.dirty_keys.clear()
    part.dirty.clear()
    return dict(sorted(out.items()))


def all_entries(part: Partition) -> dict[str, dict[str, Any]]:
    """Every entry of the partition, sorted by key."""
    out: dict[str, dict[str, Any]] = {}
    for lru in part.keys.values():
        for key, state in lru.items():
            out[key.state_key()] = state.to_state()
    for name in part.state_keys():
        snapshot = snapshot_of(part, name)
        if snapshot is not None:
            out[name] = snapshot
    return dict(sorted(out.items()))


def restore_partition(
    number: int, entries: dict[str, dict[str, Any]], plan_for: PlanFor
) -> Partition:
    """The partition the entries describe. Keys whose monitor is no longer
    configured are reported deleted; join entries of the older layout are reported
    deleted and rewritten as pages."""
    part = Partition(number)
    meta = entries.get(META)
    if meta is not None:
        _restore_meta(part, meta)

    def model_of(model_id: str) -> ModelState:
        model = part.models.get(model_id)
        if model is None:
            plan = plan_for(model_id)
            known = plan.known if plan is not None else False
            model = part.models[model_id] = ModelState(model_id, known)
        return model

    joins: dict[str, list[JoinEntry]] = {}
    detector_entries: list[tuple[MonitorKey, dict[str, Any]]] = []
    for text, state in entries.items():
        if text == META:
            continue
        kind, parts = parse(text)
        if kind == "detector":
            detector_entries.append((MonitorKey.from_state_key(text), state))
            continue
        model = model_of(str(parts[0]))
        if kind == "model":
            model.last_seen = int(state["last_seen"])
            model.seq = int(state["seq"])
            model.version = None if state["version"] is None else str(state["version"])
            model.counters = {str(k): int(v) for k, v in state["counters"].items()}
        elif kind == "join" and type(parts[1]) is int:
            joins.setdefault(model.model_id, []).extend(
                JoinEntry.from_state(e, page=parts[1]) for e in state["entries"]
            )
        elif kind == "join":  # one request's entry (the layout before pages)
            entry = JoinEntry.from_state(state, page=int(state["seq"]))
            joins.setdefault(model.model_id, []).append(entry)
            part.dirty.add(text)  # deleted,
            part.dirty.add(join_page_key(model.model_id, entry.page))  # rewritten
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
    for model_id, items in joins.items():
        buffer = part.models[model_id].joins
        for item in sorted(items, key=lambda e: e.seq):
            buffer.add(item)
    for model in sorted(part.models.values(), key=lambda m: m.seq):
        if not model.known:
            part.unknown[model.model_id] = model
    restored: list[KeyState] = []
    for key, state in detector_entries:
        plan = plan_for(key.model_id)
        monitor = None if plan is None else plan.resolve(key.signal, key.monitor_id)
        if plan is None or monitor is None:
            part.dirty_keys.add(key)  # no longer configured: delete it
            continue
        groups = fanout_groups(key, monitor)
        restored.append(KeyState.from_state(key, monitor, state, known=plan.known, groups=groups))
    for key_state in sorted(restored, key=lambda s: s.seq):
        part.add_key(key_state, model_of(key_state.key.model_id))
    return part


def _restore_meta(part: Partition, meta: dict[str, Any]) -> None:
    if meta.get("version") != STATE_VERSION:
        raise ValueError(f"partition state version {meta.get('version')!r} unsupported")
    watermark = meta["watermark"]
    part.watermark = None if watermark is None else int(watermark)
    part.next_sweep = int(meta["next_sweep"])
    part.join_marks = {str(k): int(v) for k, v in meta["join_marks"].items()}
    part.join_kinds = [str(k) for k in meta["join_kinds"]]
    part.seq = int(meta["seq"])
