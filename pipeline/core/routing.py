"""Phase A of a batch: which detector instance each value goes to.

For every value an event carries for a monitor, the :class:`Router` finds the key
(model, version, variant, signal, monitor, segment) it feeds, creating it within
the caps (segments and wildcard signals per :func:`~pipeline.core.partition.fanout_groups`,
detector instances per partition), records the touch (least-recently-used order,
last seen) and queues the value for phase B. Nothing here depends on what a
detector says.

Events of one shape (same model, version, variant, segments and present values)
reach the same keys, so every event after the first of its shape takes the
:class:`Route` the first one resolved: its values are appended as one row. Its
touches leave exactly the values one-at-a-time processing would have: the first in a
batch of a known model's route is applied as the route joins the batch (in the pass
over its keys that joining makes anyway), the others, and all of an unknown model's
(whose LRU order is settled at once), later and in bulk by :meth:`Router.settle`.

Routes outlive a batch: with thousands of models a batch holds about one event
per model, so a route that lived for one batch was resolved key by key for almost
every event. A route stays valid until a key of its partition is dropped (the
partition's ``epoch`` moves) or its partition is replaced; creating a key changes
no route (see :meth:`Router._create`).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, overload

from pipeline.config import LimitSettings
from pipeline.core.feeding import COLUMN_MIN, Where
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

__all__ = [
    "SLOT_BITS",
    "Column",
    "DetectorQueue",
    "EventContext",
    "Route",
    "Router",
    "Rows",
    "Scope",
    "ShiftedRefs",
]

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
    """The values routed to one detector during a batch when a single route does
    not hold them all: those queued one by one here, and column ``j`` of each route
    it is in (``Router.work`` feeds a key that one route holds alone straight
    from the route)."""

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
    """The keys that one shape of event reaches in a partition (same model,
    version, variant, segments and present values), resolved once and kept until
    the partition drops a key.

    In a batch, touching a route appends the event's values as one row (a
    detector's values are a column of the rows); the bookkeeping a touch implies
    (each key's touch counter, last-seen time, place in the LRU order) is applied by
    ``Router.join`` (a known model's first touch in the batch) or deferred and applied
    by ``Router.settle`` before anything reads it.
    """

    __slots__ = (
        "_columns",
        "base",
        "batch",
        "epoch",
        "last_at",
        "part",
        "refs",
        "reported",
        "rows",
        "states",
    )

    def __init__(self, part: Partition, states: list[KeyState]) -> None:
        self.part = part
        self.epoch = part.epoch
        self.states = states
        self.batch = -1
        """The batch it was last joined to (``Router.join``)."""
        self.reported = -1
        """``part.reports`` when its keys were last marked changed (``Router.join``)."""
        self.rows: list[list[Any]] = []
        self.refs: list[int] = []
        """Per row: ``event index << SLOT_BITS | slot`` of its first value."""
        self.base = -1
        """The partition's touch counter before the latest deferred touch (-1: none)."""
        self.last_at = _NEVER
        self._columns: list[tuple[Any, ...]] | None = None

    def columns(self) -> list[tuple[Any, ...]]:
        """The rows transposed, once (phase B: no row is added any more)."""
        if self._columns is None or len(self._columns[0]) != len(self.rows):
            self._columns = list(zip(*self.rows, strict=True))
        return self._columns

    def release(self) -> None:
        """Forget the batch's rows."""
        self.rows = []
        self.refs = []
        self._columns = None


Column = tuple[KeyState, Sequence[Any], Sequence[int], Where]
"""Phase B's work for one key: its values in event order, their references, and
where each one's event is."""
Rows = tuple[list[KeyState], list[list[Any]], list[int], Where]
"""Phase B's work for a route holding fewer than ``COLUMN_MIN`` events: its keys,
each event's value for each, the reference of each event's first value (key ``j``'s
is ``+ j``), and where an event is (by its row's position)."""


def _row_event(
    refs: list[int], ats: list[int], origins: list[Origin], position: int
) -> tuple[int, Origin, None]:
    i = refs[position] >> SLOT_BITS
    return ats[i], origins[i], None


def _first(item: tuple[int, Partition, KeyState | Route]) -> int:
    return item[0]


class Router:
    """Keys found or created, touches recorded and values queued, per batch."""

    def __init__(self, limits: LimitSettings, stats: Counter[str]) -> None:
        self.limits = limits
        self.stats = stats
        self.queues: dict[int, DetectorQueue] = {}
        """Per batch, by ``id(KeyState)``: the keys fed other than by one route."""
        self.routes: dict[tuple[Any, ...], Route] = {}
        """Shape -> route, across batches (at most ``limits.max_keys`` of them)."""
        self._batch = 0
        self._joined: list[Route] = []
        """The routes joined to this batch."""
        self._deferred: list[Route] = []
        self._touched: list[tuple[int, Partition, KeyState | Route]] = []
        """(touch counter, partition, key) of the touches applied at once, and at
        ``settle`` (touch counter of its first key, partition, route) of the
        deferred ones."""

    def start_batch(self) -> None:
        for route in self._joined:
            route.release()
        self._joined = []
        self.queues = {}
        self._batch += 1

    # -- deferred touches ------------------------------------------------------------
    def settle(self) -> None:
        """Apply the deferred route touches (touch counters, last seen, and the LRU
        order of unknown models' keys; known models' keys are not kept in it, see
        :attr:`Partition.keys`).

        Every key touched since the last call has a larger touch counter than any
        other key of its partition, so moving them to the LRU end in the order of
        their touches gives the order one-at-a-time processing keeps. A route's keys
        take consecutive counters from its latest touch, so a route sorts as one
        entry; a key touched more than once is moved once per entry, last at its
        latest touch."""
        touches = self._touched
        for route in self._deferred:
            touches.append((route.base + 1, route.part, route))
        self._deferred = []
        if not touches:
            return
        touches.sort(key=_first)
        # Every key touched since the last settle is live: whatever drops a key
        # (eviction, expiry, a model made room for) settles first (``restructure``).
        for _, part, touched in touches:
            if isinstance(touched, Route):
                base, last_at = touched.base, touched.last_at
                touched.base, touched.last_at = -1, _NEVER
                states = touched.states
            else:
                base, last_at = -1, _NEVER
                states = [touched]
            if not states:
                continue
            for j, state in enumerate(states, 1):
                if base + j > state.seq:
                    state.seq = base + j
                if last_at > state.last_seen:
                    state.last_seen = last_at
            if not states[0].known:  # one model's keys: all known, or none
                move = part.keys[False].move_to_end
                for state in states:
                    move(state.key)
        self._touched = []

    def restructure(self) -> None:
        """Before keys are dropped: settle, and forget the routes."""
        self.settle()
        self.routes.clear()

    def forget(self) -> None:
        """Forget the routes (a partition replaced or dropped between batches)."""
        self.routes.clear()

    def join(self, route: Route, ctx: EventContext | None = None) -> None:
        """``route``'s first use in this batch: its keys are queued (a key another
        route or a single value feeds too gets a queue that merges them) and are
        written at the next report (marked once per report, not per batch).

        ``ctx``: the event touching it, whose touch is applied here for a known
        model's keys (in the same pass; with thousands of models a route is touched
        about once per batch, and a deferred touch cost a second pass over its keys)
        and deferred for an unknown model's (their LRU order is settled at once)."""
        batch = route.batch = self._batch
        part = route.part
        # one model's keys: all known, or none
        now = ctx is not None and route.states[0].known
        seq, seen = part.seq, _NEVER if ctx is None else ctx.seen
        for state in route.states:
            if state.queued == batch:
                self.queue_for(state)
            state.queued = batch
            if now:
                seq += 1
                state.seq = seq  # the latest touch: a later one in the batch is deferred
                if seen > state.last_seen:
                    state.last_seen = seen
        if now:
            part.seq = seq
        elif ctx is not None:
            self._defer(route, ctx)
        if route.reported != part.reports:
            route.reported = part.reports
            part.mark_group(route.states)
        self._joined.append(route)

    def _defer(self, route: Route, ctx: EventContext) -> None:
        """A touch of ``route`` applied at ``settle``: its keys take consecutive
        touch counters from here, and the latest such touch is the one that counts."""
        part = route.part
        if route.base < 0:
            self._deferred.append(route)
        route.base = part.seq
        part.seq += len(route.states)
        if ctx.seen > route.last_at:
            route.last_at = ctx.seen

    def queue_for(self, state: KeyState) -> DetectorQueue:
        """The batch's queue of ``state`` (made on first use)."""
        queue = self.queues.get(id(state))
        if queue is None:
            queue = self.queues[id(state)] = DetectorQueue(state)
            state.queued = self._batch
        return queue

    # -- phase B ---------------------------------------------------------------------
    def work(self, ats: list[int], origins: list[Origin]) -> tuple[list[Rows], Iterator[Column]]:
        """Every key queued in this batch, once (``ats`` / ``origins``: per event): the
        routes that hold fewer than ``COLUMN_MIN`` events of the batch (whose columns
        would be fed one by one) and are the only source of their keys, as rows
        (with thousands of models, nearly all of them), and the other keys as
        columns, their values in event order."""
        rows: list[Rows] = []
        routes: list[Route] = []
        queues = self.queues
        for route in self._joined:
            if not route.rows:
                continue
            if len(route.rows) < COLUMN_MIN and not (
                queues and any(id(state) in queues for state in route.states)
            ):
                where = functools.partial(_row_event, route.refs, ats, origins)
                rows.append((route.states, route.rows, route.refs, where))
            else:
                routes.append(route)
        return rows, self._columns(routes, ats, origins)

    def _columns(
        self, routes: list[Route], ats: list[int], origins: list[Origin]
    ) -> Iterator[Column]:
        queues = self.queues
        for route in routes:
            rows, refs = route.rows, route.refs
            where: Where = functools.partial(_row_event, refs, ats, origins)
            single = len(rows) == 1
            row, first = rows[0], refs[0]
            columns = None if single else route.columns()
            for j, state in enumerate(route.states):
                if queues:
                    queue = queues.get(id(state))
                    if queue is not None:  # merged with its other sources below
                        queue.routes.append((route, j))
                        continue
                if columns is None:
                    yield state, (row[j],), (first + j,), where
                else:
                    yield state, columns[j], ShiftedRefs(refs, j), where
        for queue in queues.values():
            values, column_refs = queue.column()
            where = functools.partial(queue.locate, refs=column_refs, ats=ats, origins=origins)
            yield queue.state, values, column_refs, where

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
        if route is not None and (route.part is not part or route.epoch != part.epoch):
            route = None  # a key of the partition was dropped since (or it was replaced)
        if route is None:  # first of its shape: watch by watch, then remember the route
            states: list[KeyState] = []
            taken: list[Any] = []
            present = iter(values)
            for n, watch in enumerate(watches):
                if absent is not None and absent[n]:
                    continue
                value = next(present)
                state = self.touch(ctx, watch, watch.signal, scope)
                if state is not None:
                    states.append(state)
                    taken.append(value)
            if len(states) < len(values):  # refused (caps): counted per event, never cached
                for state, value in zip(states, taken, strict=True):
                    self.queue_for(state).push(value, ctx.next_ref(), None)
                return
            if len(self.routes) >= self.limits.max_keys:
                self.routes.clear()  # a bound on shapes; the batch's routes stay joined
            route = self.routes[shape] = Route(part, states)
            self.join(route)  # touched above, one by one: nothing is deferred
        else:
            if not route.states:
                return
            if route.batch != self._batch:
                self.join(route, ctx)
            else:
                self._defer(route, ctx)
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
        state = self.touch(ctx, watch, signal, scope)
        if state is not None:
            self.queue_for(state).push(value, ctx.next_ref(), context)

    def touch(self, ctx: EventContext, watch: Watch, signal: str, scope: Scope) -> KeyState | None:
        """Find (or create) the key ``signal`` of ``watch`` reaches and record the
        touch now; None when no detector takes the value (caps)."""
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
        if not plan.known:
            lru.move_to_end(key)
        self._touched.append((part.seq, part, state))
        part.dirty_keys.add(key)
        return state

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
        state = KeyState(key, monitor, monitor.start(), plan.known, groups, ctx.seen, part.seq + 1)
        part.add_key(state, ctx.model)
        self.stats["keys_created"] += 1
        return state
