"""Phase A of a batch: which detector instance each value goes to.

For every value an event carries for a monitor, the :class:`Router` finds the key
(model, version, variant, signal, monitor, segment) it feeds, creating it within
the caps (segments and wildcard signals per :func:`~pipeline.core.partition.fanout_groups`,
detector instances per partition), records the touch (least-recently-used order,
last seen) and queues the value for phase B. Nothing here depends on what a
detector says.

Events of one shape (same model, version, variant, segments and present values)
reach the same keys, so the second one of a batch takes the :class:`Route` the
first one resolved: its values are appended as one row, and the touches are
applied later, in bulk, by :meth:`Router.settle`, with exactly the values
one-at-a-time processing would have left.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, overload

from pipeline.config import LimitSettings
from pipeline.core.monitor import (
    OTHER_SEGMENT,
    Finding,
    KeyState,
    ModelPlan,
    MonitorKey,
    Origin,
    Slots,
    Watch,
    segment_label,
)
from pipeline.core.partition import ModelState, Partition, fanout_groups
from pipeline.core.training import Checkpoint
from pipeline.events import FeatureEvent, PredictionEvent

__all__ = ["SLOT_BITS", "DetectorQueue", "EventContext", "Route", "Router", "Scope", "ShiftedRefs"]

SLOT_BITS: Final = 20
"""A queued value's reference is ``event index << SLOT_BITS | slot``."""
_NEVER: Final = -(2**62)
_EMPTY: Final[dict[str, Any]] = {}

Scope = tuple[str, str, "dict[str, Any] | None"]
"""(model version or training run, variant, features) of the values an event carries."""


@dataclass(slots=True)
class EventContext:
    """One event in phase A: where it belongs, and what phase C does for it — its
    findings and checkpoints, each at its slot (the order in which the event
    produced them, detector findings included)."""

    index: int
    """The event's position in the batch."""
    origin: Origin
    at: int
    """Event time, µs."""
    partition: Partition
    model: ModelState
    plan: ModelPlan
    from_version: str
    """The production version a rollback command started by this event rolls back."""
    seen: int
    """When the keys it touches were last seen: ``at``, but never past the partition's
    watermark (an event stamped far ahead must not keep its keys from expiring)."""
    slots: int = 0
    entries: list[tuple[int, Finding | Checkpoint]] = field(default_factory=list)

    def next_ref(self) -> int:
        """The reference of the event's next queued value (it takes a slot)."""
        self.slots += 1
        return (self.index << SLOT_BITS) + self.slots - 1

    def add(self, entry: Finding | Checkpoint) -> None:
        """A finding or checkpoint of the event itself (shadow, golden, training)."""
        self.slots += 1
        self.entries.append((self.slots - 1, entry))


class ShiftedRefs(Sequence[int]):
    """The references of column ``j`` of a route: its rows' references plus ``j``,
    computed only for the positions asked about (a finding, a window's start)."""

    __slots__ = ("j", "refs")

    def __init__(self, refs: list[int], j: int) -> None:
        self.refs, self.j = refs, j

    def __len__(self) -> int:
        return len(self.refs)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [r + self.j for r in self.refs[index]]
        return self.refs[index] + self.j


@dataclass(slots=True)
class DetectorQueue:
    """The values routed to one detector during a batch: those queued one by one
    here, and column ``j`` of each route it is in."""

    state: KeyState
    values: list[Any] = field(default_factory=list)
    refs: list[int] = field(default_factory=list)
    contexts: dict[int, dict[str, Any]] | None = None
    """Reference -> extra evidence (label join, training run) of that value."""
    routes: list[tuple[Route, int]] = field(default_factory=list)

    def column(self) -> tuple[Sequence[Any], Sequence[int]]:
        """All the values, in event order, and their references."""
        parts: list[tuple[Sequence[Any], Sequence[int]]] = []
        if self.values:
            parts.append((self.values, self.refs))
        for route, j in self.routes:
            if route.refs:
                parts.append((route.columns()[j], ShiftedRefs(route.refs, j)))
        if len(parts) == 1:
            return parts[0]
        merged = sorted(
            (
                (ref, value)
                for values, refs in parts
                for value, ref in zip(values, refs, strict=True)
            ),
            key=lambda item: item[0],
        )
        return [value for _, value in merged], [ref for ref, _ in merged]

    def push(self, value: Any, ref: int, context: dict[str, Any] | None) -> None:
        self.values.append(value)
        self.refs.append(ref)
        if context is not None:
            if self.contexts is None:
                self.contexts = {}
            self.contexts[ref] = context

    def locate(
        self, position: int, refs: Sequence[int], ats: list[int], origins: list[Origin]
    ) -> tuple[int, Origin, dict[str, Any] | None]:
        """Event time, origin and extra evidence of the value at ``position``."""
        ref = refs[position]
        i = ref >> SLOT_BITS
        context = None if self.contexts is None else self.contexts.get(ref)
        return ats[i], origins[i], context


class Route:
    """The detectors that one shape of event reaches in a partition (same model,
    version, variant, segments and present values), resolved once per batch.

    Touching a route appends the event's values as one row (a detector's values
    are a column of the rows, see ``DetectorQueue.column``); the bookkeeping a touch
    implies (each key's touch counter, last-seen time, place in the LRU order) is
    deferred and applied by ``Router.settle`` before anything reads it.
    """

    __slots__ = ("_columns", "base", "last_at", "part", "queues", "refs", "rows")

    def __init__(self, part: Partition, queues: list[DetectorQueue]) -> None:
        self.part = part
        self.queues = queues
        self.rows: list[list[Any]] = []
        self.refs: list[int] = []
        """Per row: ``event index << SLOT_BITS | slot`` of its first value."""
        self.base = -1
        """The partition's touch counter before the latest deferred touch (-1: none)."""
        self.last_at = _NEVER
        self._columns: list[tuple[Any, ...]] | None = None
        for j, queue in enumerate(queues):
            queue.routes.append((self, j))

    def columns(self) -> list[tuple[Any, ...]]:
        """The rows transposed, once (phase B: no row is added any more)."""
        if self._columns is None or len(self._columns[0]) != len(self.rows):
            self._columns = list(zip(*self.rows, strict=True))
        return self._columns


class Router:
    """Keys found or created, touches recorded and values queued, per batch."""

    def __init__(self, limits: LimitSettings, stats: Counter[str]) -> None:
        self.limits = limits
        self.stats = stats
        self.queues: dict[int, DetectorQueue] = {}
        """Per batch: queues by ``id(KeyState)``."""
        self.routes: dict[tuple[Any, ...], Route] = {}
        self._deferred: list[Route] = []
        self._touched: list[tuple[Partition, KeyState]] = []

    def start_batch(self) -> None:
        # A route lists its queues and each queue its routes: a reference cycle per
        # route, which the collector tuned for throughput (``gc_tuning``) would only
        # free in a rare full pass, so a long batch stream piled them up (~40 MiB per
        # 20,000 events over 400 warmed models). Cut it: the batch's queues and
        # routes are freed here, by reference counting.
        for queue in self.queues.values():
            queue.routes.clear()
        self.queues = {}
        self.routes = {}

    # -- deferred touches ------------------------------------------------------------
    def settle(self) -> None:
        """Apply the deferred route touches (touch counters, last seen, LRU order).

        Every key touched since the last call has a larger touch counter than any
        other key of its partition, so moving them to the LRU end in counter order
        gives the order one-at-a-time processing keeps."""
        touched = self._touched
        for route in self._deferred:
            base, last_at = route.base, route.last_at
            for j, queue in enumerate(route.queues, 1):
                state = queue.state
                if base + j > state.seq:
                    state.seq = base + j
                if last_at > state.last_seen:
                    state.last_seen = last_at
                touched.append((route.part, state))
            route.base, route.last_at = -1, _NEVER
        self._deferred = []
        if not touched:
            return
        touched.sort(key=lambda item: item[1].seq)
        for part, state in touched:
            lru = part.keys[state.known]
            if lru.get(state.key) is state:
                lru.move_to_end(state.key)
        self._touched = []

    def restructure(self) -> None:
        """Before keys are created or dropped: settle, and forget the routes."""
        self.settle()
        self.routes.clear()

    # -- queueing --------------------------------------------------------------------
    def watch(
        self,
        ctx: EventContext,
        watches: list[Watch],
        slots: Slots | None,
        kind: str,
        event: PredictionEvent | FeatureEvent,
        scope: Scope,
    ) -> None:
        """Queue the values ``event`` carries for ``watches``: through a route when
        the event's shape was seen earlier in the batch, else watch by watch."""
        if slots is None:  # a wildcard watch: the keys depend on the event's fields
            for watch in watches:
                for signal, value in watch.extract(event):
                    self.enqueue(ctx, watch, signal, value, scope, None)
            return
        part = ctx.partition
        features = scope[2] or _EMPTY
        values = slots.values(event, features)
        absent = None
        if None in values:
            absent = tuple(v is None for v in values)
            values = [v for v in values if v is not None]
        segments: tuple[str, ...] = ()
        if slots.segment_names:
            segments = tuple(segment_label(n, features.get(n)) for n in slots.segment_names)
        shape = (part.number, ctx.model.model_id, kind, scope[0], scope[1], segments, absent)
        route = self.routes.get(shape)
        if route is None:  # first of its shape: watch by watch, then remember the route
            built: list[DetectorQueue] = []
            taken: list[Any] = []
            present = iter(values)
            for n, watch in enumerate(watches):
                if absent is not None and absent[n]:
                    continue
                value = next(present)
                queue = self.touch(ctx, watch, watch.signal, scope)
                if queue is not None:
                    built.append(queue)
                    taken.append(value)
            if len(built) < len(values):  # refused (caps): counted per event, never cached
                for queue, value in zip(built, taken, strict=True):
                    queue.push(value, ctx.next_ref(), None)
                return
            route = self.routes[shape] = Route(part, built)
        else:
            if not route.queues:
                return
            if route.base < 0:
                self._deferred.append(route)
            route.base = part.seq
            part.seq += len(route.queues)
            if ctx.seen > route.last_at:
                route.last_at = ctx.seen
        route.rows.append(values)
        route.refs.append((ctx.index << SLOT_BITS) + ctx.slots)
        ctx.slots += len(values)

    def enqueue(
        self,
        ctx: EventContext,
        watch: Watch,
        signal: str,
        value: Any,
        scope: Scope,
        context: dict[str, Any] | None,
    ) -> None:
        """Queue one value for its detector (unless no detector takes it)."""
        queue = self.touch(ctx, watch, signal, scope)
        if queue is not None:
            queue.push(value, ctx.next_ref(), context)

    def touch(
        self, ctx: EventContext, watch: Watch, signal: str, scope: Scope
    ) -> DetectorQueue | None:
        """Find (or create) the key ``signal`` of ``watch`` reaches and record the
        touch now; its queue, or None when no detector takes the value (caps)."""
        plan = ctx.plan
        if watch.wildcard and (signal, watch.id) in plan.exact:
            return None  # an explicit monitor of the same id covers this signal
        version, variant, features = scope
        segment = ""
        if watch.segment_by is not None:
            segment = segment_label(watch.segment_by, (features or _EMPTY).get(watch.segment_by))
        key = MonitorKey(ctx.model.model_id, version, variant, signal, watch.id, segment)
        part = ctx.partition
        lru = part.keys[plan.known]
        state = lru.get(key)
        if state is None:
            state = self._create(ctx, watch, key)
            if state is None:
                return None
            key = state.key
        if ctx.seen > state.last_seen:
            state.last_seen = ctx.seen
        part.seq += 1
        state.seq = part.seq
        lru.move_to_end(key)
        self._touched.append((part, state))
        part.dirty_keys.add(key)
        queue = self.queues.get(id(state))
        if queue is None:
            queue = self.queues[id(state)] = DetectorQueue(state)
        return queue

    def _create(self, ctx: EventContext, watch: Watch, key: MonitorKey) -> KeyState | None:
        """A new key within the caps: a wildcard monitor's signals (refused beyond
        ``max_signals``), a segmented monitor's segments (``__other__`` beyond
        ``max_segments``), and the partition's detector instances (a known model's
        key evicts an unknown model's least recently used one, else refused)."""
        part, plan, monitor = ctx.partition, ctx.plan, watch.monitor
        groups = fanout_groups(key, monitor)
        for group in groups:
            if group[0] == "w" and part.fanout[group] >= monitor.max_signals:
                self.stats["refused:signal_cap"] += 1
                return None
            if group[0] == "s":
                other = f"{monitor.segment_by}={OTHER_SEGMENT}"
                if part.fanout[group] >= monitor.max_segments and key.segment != other:
                    key = key._replace(segment=other)
                    existing = part.keys[plan.known].get(key)
                    if existing is not None:
                        return existing
        if part.live_keys() >= self.limits.max_keys:
            # Only eviction reads the LRU order and can take keys from the routes; a
            # new key alone changes no route (it is touched, and settled, like any).
            self.restructure()
            unknown = part.keys[False]
            if plan.known and unknown:
                part.drop_key(next(iter(unknown.values())))
                self.stats["evicted_keys"] += 1
            else:
                self.stats["refused:key_cap"] += 1
                return None
        state = KeyState(key, monitor, monitor.build(), plan.known, groups)
        part.add_key(state, ctx.model)
        self.stats["keys_created"] += 1
        return state
