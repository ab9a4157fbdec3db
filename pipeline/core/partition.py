"""The in-memory state of one source partition, and its bounds.

State is scoped by source partition (a model's events share a partition number,
since every input topic is keyed by ``model_id`` and co-partitioned). A
:class:`Partition` holds the live detector instances (known models' and unknown
models' apart, so that a configured model's new key can evict an unknown model's
least recently used one), the fan-out counts that cap segments and wildcard
signals (:func:`fanout_groups`), the models, and which state entries changed.

Bounds: at most ``limits.max_keys`` detector instances per partition (a configured
model's new key evicts an unknown model's least recently used one; otherwise the
key is refused and counted), at most ``limits.max_unknown_models`` unknown models
(a further one replaces the least recently seen if that one has been idle for
``limits.unknown_model_idle``, else its events are refused with reason
``model_cap``), and everything idle for ``limits.idle_expiry`` of event time is
dropped (:meth:`Partition.expire`).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from pipeline.core.golden import GoldenState
from pipeline.core.join_budget import PendingCounts
from pipeline.core.journal import JournalBook
from pipeline.core.labels import COUNTERS, NO_JOINS, JoinBuffer, NoJoins
from pipeline.core.monitor import KeyState, MonitorKey
from pipeline.core.monitor_set import Monitor
from pipeline.core.policy import PolicyState
from pipeline.core.shadow import ShadowState
from pipeline.core.state_keys import COMPONENTS, META, STATE_VERSION, join_page_key, model_key
from pipeline.core.training import CheckpointRegistry

__all__ = ["FanoutGroup", "ModelState", "Partition", "fanout_groups"]

_NEVER: Final = -(2**62)
GROUPS_HELD: Final = 4096
"""Changed key groups held before they are folded into the changed keys."""

FanoutGroup = tuple[str, ...]
"""Keys counted together against a cap: ``("w", model, version, variant, "feature:*",
monitor_id)`` (the signals of a wildcard monitor) or ``("s", model, version, variant,
signal, monitor_id)`` (the segments of a segmented monitor)."""


def fanout_groups(key: MonitorKey, monitor: Monitor) -> tuple[FanoutGroup, ...]:
    """The groups ``key`` of ``monitor`` counts against: the one definition used
    when a key is created and when it is restored, so the counts always agree."""
    if monitor.segment_by is None and not monitor.wildcard:
        return ()  # most monitors: nothing to count (a key is made per model and signal)
    groups: list[FanoutGroup] = []
    if monitor.wildcard:
        groups.append(
            ("w", key.model_id, key.model_version, key.variant, monitor.signal, monitor.id)
        )
    if monitor.segment_by is not None:
        groups.append(("s", key.model_id, key.model_version, key.variant, key.signal, monitor.id))
    return tuple(groups)


@dataclass(slots=True)
class ModelState:
    """Everything a partition knows about one model besides its detectors."""

    model_id: str
    known: bool
    last_seen: int = 0
    seq: int = 0
    version: str | None = None
    """The last production version seen (a rollback command's ``from_version``)."""
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    joins: JoinBuffer | NoJoins = NO_JOINS
    """The label join: the shared empty one until the model keeps pending requests."""
    policy: PolicyState | None = None
    shadow: ShadowState | None = None
    golden: GoldenState | None = None
    checkpoints: CheckpointRegistry | None = None
    keys: set[MonitorKey] = field(default_factory=set)

    def to_state(self) -> dict[str, Any]:
        state = {
            "known": self.known,
            "last_seen": self.last_seen,
            "seq": self.seq,
            "version": self.version,
            "counters": self.counters,
        }
        if isinstance(self.joins, JoinBuffer):  # rows go on being numbered from here
            state["join_next"] = self.joins.store.next
        return state

    def component(self, name: str) -> dict[str, Any] | None:
        value = getattr(self, name)
        return None if value is None else dict(value.to_state())


def _seq(state: KeyState) -> int:
    return state.seq


class Partition:
    """The state of one source partition."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.watermark: int | None = None
        self.next_sweep = 0
        self.join_marks: dict[str, int] = {}
        """Topic -> latest event time of the predictions and labels read from it."""
        self.join_kinds: list[str] = []
        """Which of prediction / label were seen (no expiry by time before both)."""
        self.pending = PendingCounts()
        """The label join's pending requests per model (``limits.max_pending_labels``):
        not state of its own, recounted from the joins on restore."""
        self.seq = 0
        """The touch counter: orders keys and models by their last use."""
        self.epoch = 0
        """How many keys were dropped: the router's routes are valid within one."""
        self.keys: dict[bool, OrderedDict[MonitorKey, KeyState]] = {
            True: OrderedDict(),
            False: OrderedDict(),
        }
        """Known model? -> live detector instances. Unknown models' keys are kept
        least recently used first (eviction takes the head); known models' keys
        stay in the order they were added, since only expiry asks for their LRU
        order, which is their ``seq`` order (:meth:`expire`): a touch moves nothing."""
        self.known_seen_floor = _NEVER
        """At most the least ``last_seen`` of the known models' keys (an expiry sweep
        that cannot drop any of them skips the scan)."""
        self.fanout: Counter[FanoutGroup] = Counter()
        self.models: dict[str, ModelState] = {}
        self.unknown: OrderedDict[str, ModelState] = OrderedDict()
        """Unknown models, least recently seen first."""
        self.dirty_keys: set[MonitorKey] = set()
        """Detector keys changed since the last report; read through
        :meth:`changed_keys`, which adds the keys of :attr:`dirty_groups`."""
        self.dirty_groups: list[list[KeyState]] = []
        """Groups of keys changed since the last report, each added once (a router's
        route, :meth:`pipeline.core.routing.Router.join`): hashing every key of a
        route in each batch it is used cost more than its detector updates."""
        self.reports = 0
        """How many times :meth:`changed_keys` was read (a group added since is new)."""
        self.dirty: set[str] = set()
        """State keys (other than detectors') changed since the last report; read
        through :meth:`changed_names`, which adds the pages of :attr:`dirty_pages`."""
        self.dirty_pages: set[tuple[str, int]] = set()
        """(model, page) of the label join pages changed since the last report, named
        when read: each prediction marks its page, and with thousands of models
        nearly every one opens a page of its own, whose key was formatted, hashed and
        cached for that one mark."""
        self.journal = 0
        """The next journal's number (:mod:`pipeline.core.journal`; 0: none yet)."""
        self.key_ids = 0
        """The next key id a full detector record gets."""
        self.book = JournalBook()

    def live_keys(self) -> int:
        return len(self.keys[True]) + len(self.keys[False])

    def key_state(self, key: MonitorKey) -> KeyState | None:
        return self.keys[True].get(key) or self.keys[False].get(key)

    def count_pending(self) -> None:
        """Recount :attr:`pending` from the models' joins (after a restore)."""
        self.pending = PendingCounts()
        for model_id in sorted(self.models):
            self.pending.note(model_id, len(self.models[model_id].joins))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def mark_model(self, kind: str, model_id: str) -> None:
        """The per-model entry ``kind`` of ``model_id`` changed."""
        self.dirty.add(model_key(kind, model_id))

    def mark_join_pages(self, model_id: str, pages: Iterable[int]) -> None:
        """Pages of ``model_id``'s label join changed, and with them its counters (in
        the model entry); nothing when no page did."""
        marked = False
        for page in pages:
            self.dirty_pages.add((model_id, page))
            marked = True
        if marked:
            self.mark_model("model", model_id)

    def changed_names(self) -> set[str]:
        """The state keys other than detectors' changed since the last report (the
        report clears the set it is given)."""
        if self.dirty_pages:
            self.dirty.update([join_page_key(m, page) for m, page in self.dirty_pages])
            self.dirty_pages.clear()
        return self.dirty

    def mark_group(self, group: list[KeyState]) -> None:
        """The keys of ``group`` changed (added to :attr:`dirty_keys` when read, or
        once :data:`GROUPS_HELD` groups wait: a replay that never reports would
        otherwise hold every route it ever made)."""
        self.dirty_groups.append(group)
        if len(self.dirty_groups) >= GROUPS_HELD:
            self._fold_groups()

    def changed_keys(self) -> set[MonitorKey]:
        """The detector keys changed since the last report (the report clears the
        set it is given)."""
        self._fold_groups()
        self.reports += 1
        return self.dirty_keys

    def _fold_groups(self) -> None:
        for group in self.dirty_groups:
            self.dirty_keys.update([state.key for state in group])
        self.dirty_groups = []

    # -- adding --------------------------------------------------------------------
    def add_key(self, state: KeyState, model: ModelState) -> None:
        """A new (or restored) key, at the most recently used end (its ``seq`` and
        ``last_seen`` set: a new key is seen when it is made)."""
        self.keys[state.known][state.key] = state
        if state.known and state.last_seen < self.known_seen_floor:
            self.known_seen_floor = state.last_seen
        for group in state.groups:
            self.fanout[group] += 1
        model.keys.add(state.key)

    # -- removal -------------------------------------------------------------------
    def drop_key(self, state: KeyState) -> None:
        del self.keys[state.known][state.key]
        self.epoch += 1
        for group in state.groups:
            self.fanout[group] -= 1
            if self.fanout[group] <= 0:
                del self.fanout[group]
        model = self.models.get(state.key.model_id)
        if model is not None:
            model.keys.discard(state.key)
        self.dirty_keys.add(state.key)

    def drop_model(self, model: ModelState) -> None:
        for key in sorted(model.keys):
            state = self.key_state(key)
            if state is not None:
                self.drop_key(state)
        for page in model.joins.pages:
            self.dirty.add(join_page_key(model.model_id, page))
        self.pending.note(model.model_id, 0)
        del self.models[model.model_id]
        self.unknown.pop(model.model_id, None)
        self.mark_model("model", model.model_id)
        for name in COMPONENTS:
            if getattr(model, name) is not None:  # absent ones were never written
                self.mark_model(name, model.model_id)

    def expire(self, horizon: int, stats: Counter[str]) -> None:
        """Drop the keys and unknown models last seen before ``horizon`` (event time),
        from the least recently used end up to the first one seen since."""
        self._expire_known(horizon, stats)
        lru = self.keys[False]
        while lru:
            state = next(iter(lru.values()))
            if state.last_seen >= horizon:
                break
            self.drop_key(state)
            stats["expired_keys"] += 1
        while self.unknown:
            model = next(iter(self.unknown.values()))
            if model.last_seen >= horizon:
                break
            self.drop_model(model)
            stats["expired_models"] += 1

    def _expire_known(self, horizon: int, stats: Counter[str]) -> None:
        """The known models' keys :meth:`expire` drops, as an LRU walk would: every
        key touched (``seq``) before the least recently touched key seen since
        ``horizon``. One scan, and none while the floor says no key is that old."""
        if horizon <= self.known_seen_floor:
            return
        keys = self.keys[True]
        cut = min((s.seq for s in keys.values() if s.last_seen >= horizon), default=None)
        old = [s for s in keys.values() if cut is None or s.seq < cut]
        for state in sorted(old, key=_seq):
            self.drop_key(state)
            stats["expired_keys"] += 1
        self.known_seen_floor = min((s.last_seen for s in keys.values()), default=_NEVER)

    # -- reading -------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "version": STATE_VERSION,
            "watermark": self.watermark,
            "next_sweep": self.next_sweep,
            "join_marks": self.join_marks,
            "join_kinds": self.join_kinds,
            "seq": self.seq,
        }
        if self.journal:  # only a journaled changelog has them
            meta["journal"] = self.journal
            meta["key_ids"] = self.key_ids
        return meta

    def state_keys(self) -> list[str]:
        """Every non-detector state key the partition holds."""
        names = [META]
        for model in self.models.values():
            names.append(model_key("model", model.model_id))
            names.extend(join_page_key(model.model_id, page) for page in model.joins.pages)
            names.extend(
                model_key(c, model.model_id) for c in COMPONENTS if getattr(model, c) is not None
            )
        return names
