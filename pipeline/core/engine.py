"""The monitor engine: decoded events in, alerts and rollback commands out.

A batch is processed in three phases that together give exactly what processing
its events one at a time gives (the property tests check it):

A. **Routing**, event by event, in order: advance the partition's event-time
   watermark (and expire what went idle), find or create the model's state and the
   detector instance of every (model, version, variant, signal, monitor, segment)
   the event feeds, join labels, run the shadow test and the golden-set check. The
   values are queued per detector; nothing here depends on what a detector says.
B. **Detection**, detector by detector: each one consumes its queued values in
   order — column-wise through ``update_many`` when that is provably equivalent
   (see :func:`pipeline.core.monitor.feed_column`).
C. **Policy**, event by event, in order: findings go through the alert chain, then
   the rollback rules; stable checkpoints enter the registry at their place in the
   stream, so a rollback sees the registry as of its own event.

State is scoped by source partition (a model's events share a partition number,
since every input topic is keyed by ``model_id`` and co-partitioned). Every entry
is plain JSON, reported through ``changed_state`` when it changed, and
``restore`` rebuilds the exact in-memory state from the entries (including the
least-recently-used order that idle expiry and the caps follow).

State entries of a partition:

=============================  ==============================================
``meta``                       watermark, touch counter
``model:["m"]``                known?, last seen, version, label counters
``detector:[m,v,var,s,mon,seg]``  one detector + its alert-window bookkeeping
``join:["m","request"]``       one request waiting in the label join
``policy:["m"]``               hysteresis, cooldowns, recent alerts, incident
``shadow:["m"]``               shadow tests per candidate version
``golden:["m"]``               golden-set baselines
``checkpoints:["m"]``          the checkpoint registry
=============================  ==============================================

Bounds: at most ``limits.max_keys`` detector instances per partition (a configured
model's new key evicts an unknown model's least recently used one; otherwise the
key is refused and counted), at most ``limits.max_unknown_models`` unknown models
(events of further ones are refused with reason ``model_cap``), and everything
idle for ``limits.idle_expiry`` of event time is dropped.
"""

from __future__ import annotations

import functools
import json
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson

from pipeline.config import ModelSpec, Settings
from pipeline.core.eventtime import micros, seconds_to_micros
from pipeline.core.golden import GoldenState
from pipeline.core.labels import COUNTERS, JoinBuffer, Joined, JoinEntry, page_state_key
from pipeline.core.monitor import (
    OTHER_SEGMENT,
    Finding,
    KeyState,
    ModelPlan,
    MonitorKey,
    Observer,
    Origin,
    Slots,
    Watch,
    feed_column,
    segment_label,
)
from pipeline.core.policy import AlertPolicy, PolicyState, evaluate_rollback, to_alert
from pipeline.core.shadow import ShadowState
from pipeline.core.training import Checkpoint, CheckpointRegistry
from pipeline.events import (
    AlertEvent,
    FeatureEvent,
    InputEvent,
    LabelEvent,
    PredictionEvent,
    RollbackCommand,
    TrainingEvent,
)

__all__ = ["Engine", "ModelState", "Partition", "Refused"]

STATE_VERSION: Final = 1
_COMPONENTS: Final = ("policy", "shadow", "golden", "checkpoints")


@dataclass(slots=True)
class Refused:
    """The event is not processed: it goes to the dead-letter path."""

    reason: str
    detail: str


Output = AlertEvent | RollbackCommand | Refused


@functools.lru_cache(maxsize=65536)
def _model_key(prefix: str, model_id: str) -> str:
    return f"{prefix}:" + orjson.dumps([model_id]).decode()


# ------------------------------------------------------------------- state
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
    joins: JoinBuffer = field(default_factory=JoinBuffer)
    policy: PolicyState | None = None
    shadow: ShadowState | None = None
    golden: GoldenState | None = None
    checkpoints: CheckpointRegistry | None = None
    keys: set[MonitorKey] = field(default_factory=set)
    join_page: int = -1
    """The join page new requests go to during batch ``join_page_batch`` (not state:
    a restored model starts a new page)."""
    join_page_batch: int = -1

    def to_state(self) -> dict[str, Any]:
        return {
            "known": self.known,
            "last_seen": self.last_seen,
            "seq": self.seq,
            "version": self.version,
            "counters": self.counters,
        }

    def component(self, name: str) -> dict[str, Any] | None:
        value = getattr(self, name)
        return None if value is None else dict(value.to_state())


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
        self.seq = 0
        self.keys: dict[bool, OrderedDict[MonitorKey, KeyState]] = {
            True: OrderedDict(),
            False: OrderedDict(),
        }
        self.fanout: Counter[tuple[str, ...]] = Counter()
        self.models: dict[str, ModelState] = {}
        self.unknown: OrderedDict[str, ModelState] = OrderedDict()
        self.dirty_keys: set[MonitorKey] = set()
        self.dirty: set[str] = set()

    def live_keys(self) -> int:
        return len(self.keys[True]) + len(self.keys[False])

    def key_state(self, key: MonitorKey) -> KeyState | None:
        return self.keys[True].get(key) or self.keys[False].get(key)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # -- removal ---------------------------------------------------------------
    def drop_key(self, state: KeyState) -> None:
        del self.keys[state.known][state.key]
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
            self.dirty.add(page_state_key(model.model_id, page))
        del self.models[model.model_id]
        self.unknown.pop(model.model_id, None)
        self.dirty.add(_model_key("model", model.model_id))
        for name in _COMPONENTS:
            if getattr(model, name) is not None:  # absent ones were never written
                self.dirty.add(_model_key(name, model.model_id))

    # -- snapshots -------------------------------------------------------------
    def snapshot_of(self, state_key: str) -> dict[str, Any] | None:
        if state_key == "meta":
            return {
                "version": STATE_VERSION,
                "watermark": self.watermark,
                "next_sweep": self.next_sweep,
                "join_marks": self.join_marks,
                "join_kinds": self.join_kinds,
                "seq": self.seq,
            }
        prefix, _, rest = state_key.partition(":")
        parts = json.loads(rest)
        model = self.models.get(str(parts[0]))
        if model is None:
            return None
        if prefix == "model":
            return model.to_state()
        if prefix == "join":
            page = parts[1]
            if type(page) is not int:
                return None  # a single request's entry of the older layout: deleted
            return model.joins.page_state(page)
        if prefix in _COMPONENTS:
            return model.component(prefix)
        raise ValueError(f"unknown state key {state_key!r}")


@dataclass(slots=True)
class _Work:
    """What phase C does for one event: its findings and checkpoints, each at its
    slot (the order in which the event produced them)."""

    partition: Partition
    model: ModelState
    plan: ModelPlan
    from_version: str
    slots: int = 0
    entries: list[tuple[int, Finding | Checkpoint]] = field(default_factory=list)

    def next_slot(self) -> int:
        self.slots += 1
        return self.slots - 1

    def add(self, entry: Finding | Checkpoint) -> None:
        self.entries.append((self.next_slot(), entry))


_SLOT_BITS: Final = 20
"""A queued value's reference is ``event index << _SLOT_BITS | slot``."""
_NEVER: Final = -(2**62)
_EMPTY: Final[dict[str, Any]] = {}


@dataclass(slots=True)
class _Queue:
    """The values routed to one detector during a batch: those queued one by one
    here, and column ``j`` of each route it is in."""

    state: KeyState
    values: list[Any] = field(default_factory=list)
    refs: list[int] = field(default_factory=list)
    contexts: dict[int, dict[str, Any]] | None = None
    """Reference -> extra evidence (label join, training run) of that value."""
    routes: list[tuple[_Route, int]] = field(default_factory=list)

    def column(self) -> tuple[list[Any], list[int]]:
        """All the values, in event order, and their references."""
        parts = [(self.values, self.refs)] if self.values else []
        for route, j in self.routes:
            if route.refs:
                parts.append(([row[j] for row in route.rows], [r + j for r in route.refs]))
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
        self, position: int, refs: list[int], ats: list[int], origins: list[Origin]
    ) -> tuple[int, Origin, dict[str, Any] | None]:
        """Event time, origin and extra evidence of the value at ``position``."""
        ref = refs[position]
        i = ref >> _SLOT_BITS
        context = None if self.contexts is None else self.contexts.get(ref)
        return ats[i], origins[i], context


class _Route:
    """The detectors that one shape of event reaches in a partition (same model,
    version, variant, segments and present values), resolved once per batch.

    Touching a route appends the event's values as one row (a detector's values
    are a column of the rows, see ``_Queue.column``); the bookkeeping a touch
    implies (each key's touch counter, last-seen time, place in the LRU order) is
    deferred and applied by ``Engine._settle`` before anything reads it, with
    exactly the values one-at-a-time processing would have left.
    """

    __slots__ = ("base", "last_at", "part", "queues", "refs", "rows")

    def __init__(self, part: Partition, queues: list[_Queue]) -> None:
        self.part = part
        self.queues = queues
        self.rows: list[list[Any]] = []
        self.refs: list[int] = []
        """Per row: ``event index << _SLOT_BITS | slot`` of its first value."""
        self.base = -1
        """The partition's touch counter before the latest deferred touch (-1: none)."""
        self.last_at = _NEVER
        for j, queue in enumerate(queues):
            queue.routes.append((self, j))


class Engine:
    """Routes decoded events to detectors, joins labels, applies the policies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.idle = seconds_to_micros(settings.limits.idle_expiry)
        self.partitions: dict[int, Partition] = {}
        self.policy = AlertPolicy(settings.policy)
        self.stats: Counter[str] = Counter()
        self.observer: Observer | None = None
        """Optional, pure: called after every detector update (backtest traces)."""
        self._plans: dict[str, ModelPlan] = {
            model_id: ModelPlan(spec, known=True, where=f"models.{model_id}")
            for model_id, spec in settings.models.items()
        }
        self._default: ModelPlan | None = None
        if settings.default_model is not None and settings.unknown_models == "monitor":
            self._default = ModelPlan(settings.default_model, known=False, where="default_model")
        elif settings.unknown_models == "monitor":
            self._default = ModelPlan(ModelSpec(default_monitors=False), known=False)
        self._keep_recent: dict[int, int] = {}
        self._batch = 0
        # Per batch (see _Route): queues by id(KeyState), routes, deferred touches.
        self._queues: dict[int, _Queue] = {}
        self._routes: dict[tuple[Any, ...], _Route] = {}
        self._deferred: list[_Route] = []
        self._touched: list[tuple[Partition, KeyState]] = []
        self._last_stamp: datetime | None = None
        self._last_micros = 0
        self._model_cap = Refused(
            "model_cap",
            f"limits.max_unknown_models={settings.limits.max_unknown_models} unknown models "
            "are already tracked in this partition",
        )

    # -- plans -----------------------------------------------------------------
    def plan_for(self, model_id: str) -> ModelPlan | None:
        return self._plans.get(model_id, self._default)

    def _keep_recent_for(self, plan: ModelPlan) -> int:
        cached = self._keep_recent.get(id(plan))
        if cached is None:
            seconds = [self.settings.policy.escalation.within]
            if plan.spec.rollback is not None:
                seconds += [rule.within for rule in plan.spec.rollback.rules]
            cached = self._keep_recent[id(plan)] = seconds_to_micros(max(seconds))
        return cached

    def partition(self, number: int) -> Partition:
        part = self.partitions.get(number)
        if part is None:
            part = self.partitions[number] = Partition(number)
        return part

    # -- the batch ---------------------------------------------------------------
    def process(self, items: Sequence[tuple[InputEvent, Origin]]) -> list[list[Output]]:
        """One list of outputs per event, as if each were processed alone, in order."""
        outputs: list[list[Output]] = [[] for _ in items]
        work: list[_Work | None] = []
        ats: list[int] = []
        self._batch += 1
        self._queues = {}
        self._routes = {}
        route = self._route
        for i, (event, origin) in enumerate(items):
            result = route(event, origin, i)
            ats.append(self._last_micros)
            if type(result) is Refused:
                outputs[i].append(result)
                work.append(None)
            else:
                work.append(result)  # type: ignore[arg-type]
        self._settle()
        found = self._detect(self._queues.values(), ats, [origin for _, origin in items])
        self._queues, self._routes = {}, {}
        for i, w in enumerate(work):
            if w is not None and (w.entries or i in found):
                outputs[i].extend(self._decide(w, found.get(i, [])))
        return outputs

    # -- phase B -------------------------------------------------------------------
    def _detect(
        self, queues: Iterable[_Queue], ats: list[int], origins: list[Origin]
    ) -> dict[int, list[tuple[int, Finding | Checkpoint]]]:
        """Feed every queue to its detector: event index -> [(slot, finding)]."""
        found: dict[int, list[tuple[int, Finding | Checkpoint]]] = {}
        mismatches: dict[str, int] = {}
        for queue in queues:
            values, refs = queue.column()
            where = functools.partial(queue.locate, refs=refs, ats=ats, origins=origins)
            for position, finding in feed_column(
                queue.state, values, where, mismatches, self.observer
            ):
                ref = refs[position]
                found.setdefault(ref >> _SLOT_BITS, []).append(
                    (ref & ((1 << _SLOT_BITS) - 1), finding)
                )
        self.stats.update(mismatches)
        return found

    # -- deferred touches ------------------------------------------------------------
    def _settle(self) -> None:
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

    def _restructure(self) -> None:
        """Before keys are created or dropped: settle, and forget the routes."""
        self._settle()
        self._routes.clear()

    # -- phase A -------------------------------------------------------------------
    def _advance(self, part: Partition, at: int) -> None:
        if part.watermark is not None and at <= part.watermark:
            return
        part.watermark = at
        if at < part.next_sweep:
            return
        # Idle expiry sweeps at most every 1/64 of the idle time (a key lives at
        # most that much longer); the sweep times follow from the watermark alone.
        part.next_sweep = at + max(1, self.idle // 64)
        horizon = at - self.idle
        self._restructure()
        for lru in part.keys.values():
            while lru:
                state = next(iter(lru.values()))
                if state.last_seen >= horizon:
                    break
                part.drop_key(state)
                self.stats["expired_keys"] += 1
        while part.unknown:
            model = next(iter(part.unknown.values()))
            if model.last_seen >= horizon:
                break
            part.drop_model(model)
            self.stats["expired_models"] += 1

    def _model(
        self, part: Partition, model_id: str, plan: ModelPlan, at: int
    ) -> ModelState | Refused:
        model = part.models.get(model_id)
        if model is None:
            if not plan.known and len(part.unknown) >= self.limits.max_unknown_models:
                self.stats["refused:model_cap"] += 1
                return self._model_cap
            model = part.models[model_id] = ModelState(model_id, plan.known)
            if not plan.known:
                part.unknown[model_id] = model
            model.last_seen = at
            model.seq = part.next_seq()
            part.dirty.add(_model_key("model", model_id))
        elif not plan.known:
            model.last_seen = max(model.last_seen, at)
            model.seq = part.next_seq()
            part.unknown.move_to_end(model_id)
            part.dirty.add(_model_key("model", model_id))
        return model

    def _route(self, event: InputEvent, origin: Origin, i: int) -> _Work | Refused:
        model_id = event.model_id
        plan = self._plans.get(model_id, self._default)
        if plan is None:
            self.stats["refused:unknown_model"] += 1
            return Refused("unknown_model", f"model_id {model_id!r}")
        part = self.partitions.get(origin.partition) or self.partition(origin.partition)
        part.dirty.add("meta")  # the touch counter moves with (almost) every event
        stamp = event.timestamp
        if stamp is self._last_stamp:
            at = self._last_micros
        else:
            at = self._last_micros = micros(stamp)
            self._last_stamp = stamp
        if part.watermark is None or at > part.watermark:
            self._advance(part, at)
        found = part.models.get(model_id)
        if found is None or not plan.known:
            tracked = self._model(part, model_id, plan, at)
            if isinstance(tracked, Refused):
                return tracked
            found = tracked
        model = found
        if plan.needs_join and isinstance(event, PredictionEvent | LabelEvent):
            # The join expires by the slowest of the topics that carry predictions and
            # labels (and only once both kinds were seen): a label topic consumed
            # behind the prediction topic does not make its labels late.
            marks = part.join_marks
            if at > marks.get(origin.topic, at - 1):
                marks[origin.topic] = at
            kind = "label" if isinstance(event, LabelEvent) else "prediction"
            if kind not in part.join_kinds:
                part.join_kinds = sorted({*part.join_kinds, kind})
            if len(part.join_kinds) == 2:
                horizon = min(marks.values()) - 2 * seconds_to_micros(plan.spec.labels.ttl)
            else:
                horizon = -(2**62)
            for page in model.joins.expire(horizon, model.counters):
                part.dirty.add(page_state_key(model.model_id, page))
                part.dirty.add(_model_key("model", model.model_id))
        work = _Work(part, model, plan, model.version or "")
        if isinstance(event, PredictionEvent):
            self._prediction(event, origin, at, plan, part, model, work, i)
        elif isinstance(event, FeatureEvent):
            self._watch(
                plan.feature, plan.feature_slots, "f", event,
                (event.model_version, "production", event.features),
                part, model, plan, at, work, i,
            )  # fmt: skip
        elif isinstance(event, LabelEvent):
            self._label(event, origin, at, plan, part, model, work, i)
        else:
            self._training(event, origin, at, plan, part, model, work, i)
        return work

    def _prediction(
        self,
        event: PredictionEvent,
        origin: Origin,
        at: int,
        plan: ModelPlan,
        part: Partition,
        model: ModelState,
        work: _Work,
        i: int,
    ) -> None:
        if event.golden:
            if plan.spec.golden is not None:
                self._golden(event, origin, at, plan, part, model, work)
            else:
                self.stats["golden_unconfigured"] += 1
            return  # probes never feed the drift monitors or the label join
        if event.variant == "production" and model.version != event.model_version:
            model.version = event.model_version
            work.from_version = event.model_version
            part.dirty.add(_model_key("model", model.model_id))
        scope = (event.model_version, event.variant, event.features)
        self._watch(
            plan.prediction, plan.prediction_slots, "p", event, scope,
            part, model, plan, at, work, i,
        )  # fmt: skip
        if plan.needs_join and event.request_id is not None:
            features = event.features or {}
            record = {
                "version": event.model_version,
                "prediction": event.prediction,
                "at": at,
                "features": {k: features.get(k) for k in plan.error_segment_features},
                "origin": [origin.topic, origin.offset],
            }
            seq = part.next_seq()
            entry, joined, evicted = model.joins.add_prediction(
                event.request_id,
                event.variant,
                record,
                seq=seq,
                page=self._join_page(model, seq),
                ttl=seconds_to_micros(plan.spec.labels.ttl),
                max_pending=plan.spec.labels.max_pending,
                classification=plan.spec.classification,
                counters=model.counters,
            )
            self._joined(entry, joined, evicted, origin, at, plan, part, model, work, i)

    def _label(
        self,
        event: LabelEvent,
        origin: Origin,
        at: int,
        plan: ModelPlan,
        part: Partition,
        model: ModelState,
        work: _Work,
        i: int,
    ) -> None:
        if not plan.needs_join:
            self.stats["labels_unused"] += 1
            return
        seq = part.next_seq()
        entry, joined, evicted = model.joins.add_label(
            event.request_id,
            event.label,
            at,
            seq=seq,
            page=self._join_page(model, seq),
            ttl=seconds_to_micros(plan.spec.labels.ttl),
            max_pending=plan.spec.labels.max_pending,
            classification=plan.spec.classification,
            counters=model.counters,
        )
        self._joined(entry, joined, evicted, origin, at, plan, part, model, work, i)

    def _join_page(self, model: ModelState, seq: int) -> int:
        """The page this batch's new requests of ``model`` go to (numbered by the
        touch counter of the first one, so pages never collide)."""
        if model.join_page_batch != self._batch:
            model.join_page, model.join_page_batch = seq, self._batch
        return model.join_page

    def _joined(
        self,
        entry: JoinEntry,
        joined: list[Joined],
        evicted: list[int],
        origin: Origin,
        at: int,
        plan: ModelPlan,
        part: Partition,
        model: ModelState,
        work: _Work,
        i: int,
    ) -> None:
        model_id = model.model_id
        part.dirty.add(page_state_key(model_id, entry.page))
        part.dirty.add(_model_key("model", model_id))
        for page in evicted:
            part.dirty.add(page_state_key(model_id, page))
        for j in joined:
            context = {
                "request_id": entry.request_id,
                "label_delay_s": j.delay / 1_000_000,
                "labels": dict(model.counters),
            }
            for watch in plan.error:
                self._enqueue(
                    part, model, plan, watch, "error", j.error,
                    (j.version, j.variant, j.features), at, context, work, i,
                )  # fmt: skip
        shadow = plan.spec.shadow
        if shadow is None or entry.paired:
            return
        production = entry.errors.get("production")
        candidate = entry.errors.get(shadow.variant)
        if production is None or candidate is None:
            return
        entry.paired = True
        if model.shadow is None:
            model.shadow = ShadowState()
        versions = entry.predictions
        test = model.shadow.test_for(
            str(versions[shadow.variant]["version"]), str(versions["production"]["version"])
        )
        test.observe(production, candidate, at)
        part.dirty.add(_model_key("shadow", model_id))
        decision = test.decide(shadow)
        if decision is None:
            return
        diff = test.candidate_rate - test.production_rate
        work.add(
            Finding(
                model_id=model_id,
                model_version=test.candidate,
                variant=shadow.variant,
                signal="shadow.error_rate",
                monitor="shadow_test",
                segment=None,
                detector="sequential_sign_test",
                params={"alpha": shadow.alpha, "min_pairs": shadow.min_pairs},
                level="drift",
                severity=shadow.worse_severity if decision == "worse" else shadow.better_severity,
                statistic=diff,
                threshold=shadow.alpha,
                p_value=test.p_value,
                window_start=test.started,
                window_events=test.pairs,
                at=at,
                origin=origin,
                evidence={
                    "outcome": f"candidate_{decision}",
                    "production_version": test.production,
                    "candidate_version": test.candidate,
                    "pairs": test.pairs,
                    "candidate_worse": test.worse,
                    "candidate_better": test.better,
                    "production_error": test.production_rate,
                    "candidate_error": test.candidate_rate,
                    "difference": diff,
                },
                summary=(
                    f"{model_id}: candidate {shadow.variant} v{test.candidate} {decision} than "
                    f"production v{test.production} by {abs(diff):.4g} (error "
                    f"{test.candidate_rate:.4g} vs {test.production_rate:.4g} over "
                    f"{test.pairs} labelled pairs), p={test.p_value:.3g}"
                ),
                hysteresis=False,
            )
        )

    def _golden(
        self,
        event: PredictionEvent,
        origin: Origin,
        at: int,
        plan: ModelPlan,
        part: Partition,
        model: ModelState,
        work: _Work,
    ) -> None:
        spec = plan.spec.golden
        assert spec is not None
        if model.golden is None:
            model.golden = GoldenState()
        check, changed = model.golden.check(spec, event, at)
        if changed:
            part.dirty.add(_model_key("golden", model.model_id))
        if check is None:
            return
        expected, got = check.expected["prediction"], check.got["prediction"]
        statistic = None
        numeric = isinstance(expected, int | float) and isinstance(got, int | float)
        if numeric and not isinstance(expected, bool) and not isinstance(got, bool):
            statistic = abs(float(got) - float(expected))
        what = "the configured output" if check.configured else "its first output"
        work.add(
            Finding(
                model_id=model.model_id,
                model_version=event.model_version,
                variant=event.variant,
                signal="golden",
                monitor="golden_set",
                segment={"input": check.input},
                detector="golden_set",
                params={"match": spec.match, "tolerance": spec.tolerance},
                level="drift",
                severity=spec.severity,
                statistic=statistic,
                threshold=spec.tolerance if statistic is not None else None,
                p_value=None,
                window_start=None,
                window_events=1,
                at=at,
                origin=origin,
                evidence={
                    "input": check.input,
                    "expected": check.expected,
                    "got": check.got,
                    "configured": check.configured,
                    "baseline_version": check.baseline_version,
                    "request_id": event.request_id,
                },
                summary=(
                    f"{model.model_id} v{event.model_version}: golden input {check.input!r} "
                    f"answered {got!r}, not {what} {expected!r}"
                ),
                hysteresis=False,
            )
        )

    def _training(
        self,
        event: TrainingEvent,
        origin: Origin,
        at: int,
        plan: ModelPlan,
        part: Partition,
        model: ModelState,
        work: _Work,
        i: int,
    ) -> None:
        context = {
            "run_id": event.run_id,
            "checkpoint_id": event.checkpoint_id,
            "step": event.step,
        }
        scope = (event.run_id, "training", None)
        for watch in plan.training:
            for signal, value in watch.extract(event):
                self._enqueue(part, model, plan, watch, signal, value, scope, at, context, work, i)
        if event.checkpoint_stable:
            work.add(
                Checkpoint(
                    checkpoint_id=event.checkpoint_id,
                    run_id=event.run_id,
                    step=event.step,
                    at=at,
                    topic=origin.topic,
                    offset=origin.offset,
                )
            )

    def _watch(
        self,
        watches: list[Watch],
        slots: Slots | None,
        kind: str,
        event: PredictionEvent | FeatureEvent,
        scope: tuple[str, str, dict[str, Any] | None],
        part: Partition,
        model: ModelState,
        plan: ModelPlan,
        at: int,
        work: _Work,
        i: int,
    ) -> None:
        """Queue the values ``event`` carries for ``watches``: through a route when
        the event's shape was seen earlier in the batch, else watch by watch."""
        if slots is None:  # a wildcard watch: the keys depend on the event's fields
            for watch in watches:
                for signal, value in watch.extract(event):
                    self._enqueue(part, model, plan, watch, signal, value, scope, at, None, work, i)
            return
        features = scope[2] or _EMPTY
        values = [
            features.get(name) if by_name else getattr(event, name) for by_name, name in slots.reads
        ]
        absent = None
        if None in values:
            absent = tuple(v is None for v in values)
            values = [v for v in values if v is not None]
        segments: tuple[str, ...] = ()
        if slots.segment_names:
            segments = tuple(segment_label(n, features.get(n)) for n in slots.segment_names)
        shape = (part.number, model.model_id, kind, scope[0], scope[1], segments, absent)
        route = self._routes.get(shape)
        if route is None:  # first of its shape: watch by watch, then remember the route
            built: list[_Queue] = []
            taken: list[Any] = []
            present = iter(values)
            for n, watch in enumerate(watches):
                if absent is not None and absent[n]:
                    continue
                value = next(present)
                queue = self._touch(part, model, plan, watch, watch.signal, scope, at)
                if queue is not None:
                    built.append(queue)
                    taken.append(value)
            if len(built) < len(values):  # refused (caps): counted per event, never cached
                for queue, value in zip(built, taken, strict=True):
                    queue.push(value, (i << _SLOT_BITS) + work.next_slot(), None)
                return
            route = self._routes[shape] = _Route(part, built)
        else:
            if not route.queues:
                return
            if route.base < 0:
                self._deferred.append(route)
            route.base = part.seq
            part.seq += len(route.queues)
            if at > route.last_at:
                route.last_at = at
        route.rows.append(values)
        route.refs.append((i << _SLOT_BITS) + work.slots)
        work.slots += len(values)

    def _enqueue(
        self,
        part: Partition,
        model: ModelState,
        plan: ModelPlan,
        watch: Watch,
        signal: str,
        value: Any,
        scope: tuple[str, str, dict[str, Any] | None],
        at: int,
        context: dict[str, Any] | None,
        work: _Work,
        i: int,
    ) -> None:
        """Queue one value for its detector (unless no detector takes it)."""
        queue = self._touch(part, model, plan, watch, signal, scope, at)
        if queue is not None:
            queue.push(value, (i << _SLOT_BITS) + work.next_slot(), context)

    def _touch(
        self,
        part: Partition,
        model: ModelState,
        plan: ModelPlan,
        watch: Watch,
        signal: str,
        scope: tuple[str, str, dict[str, Any] | None],
        at: int,
    ) -> _Queue | None:
        """Find (or create) the key ``signal`` of ``watch`` reaches and record the
        touch now; its queue, or None when no detector takes the value (caps)."""
        if watch.wildcard and (signal, watch.id) in plan.exact:
            return None  # an explicit monitor of the same id covers this signal
        version, variant, features = scope
        segment = ""
        if watch.segment_by is not None:
            segment = segment_label(watch.segment_by, (features or _EMPTY).get(watch.segment_by))
        key = MonitorKey(model.model_id, version, variant, signal, watch.id, segment)
        lru = part.keys[plan.known]
        state = lru.get(key)
        if state is None:
            state = self._create(part, model, plan, watch, key)
            if state is None:
                return None
            key = state.key
        if at > state.last_seen:
            state.last_seen = at
        part.seq += 1
        state.seq = part.seq
        lru.move_to_end(key)
        self._touched.append((part, state))
        part.dirty_keys.add(key)
        queue = self._queues.get(id(state))
        if queue is None:
            queue = self._queues[id(state)] = _Queue(state)
        return queue

    def _create(
        self,
        part: Partition,
        model: ModelState,
        plan: ModelPlan,
        watch: Watch,
        key: MonitorKey,
    ) -> KeyState | None:
        groups: list[tuple[str, ...]] = []
        group: tuple[str, ...]
        if watch.wildcard:
            group = ("w", key.model_id, key.model_version, key.variant, watch.signal, watch.id)
            if part.fanout[group] >= watch.max_signals:
                self.stats["refused:signal_cap"] += 1
                return None
            groups.append(group)
        if watch.segment_by is not None:
            group = ("s", key.model_id, key.model_version, key.variant, key.signal, watch.id)
            other = f"{watch.segment_by}={OTHER_SEGMENT}"
            if part.fanout[group] >= watch.max_segments and key.segment != other:
                key = key._replace(segment=other)
                existing = part.keys[plan.known].get(key)
                if existing is not None:
                    return existing
            groups.append(group)
        self._restructure()  # eviction reads the LRU order; routes may lose keys
        if part.live_keys() >= self.limits.max_keys:
            unknown = part.keys[False]
            if plan.known and unknown:
                part.drop_key(next(iter(unknown.values())))
                self.stats["evicted_keys"] += 1
            else:
                self.stats["refused:key_cap"] += 1
                return None
        state = KeyState(key, watch.spec, watch.spec.build(), plan.known, tuple(groups))
        part.keys[plan.known][key] = state
        for g in groups:
            part.fanout[g] += 1
        model.keys.add(key)
        self.stats["keys_created"] += 1
        return state

    # -- phase C -------------------------------------------------------------------
    def _decide(self, work: _Work, found: list[tuple[int, Finding | Checkpoint]]) -> list[Output]:
        out: list[Output] = []
        model, part = work.model, work.partition
        entries = work.entries
        if found:
            entries = sorted([*found, *entries], key=lambda e: e[0])
        for _, entry in entries:
            if isinstance(entry, Checkpoint):
                if model.checkpoints is None:
                    model.checkpoints = CheckpointRegistry()
                if model.checkpoints.register(entry):
                    part.dirty.add(_model_key("checkpoints", model.model_id))
                continue
            finding = entry
            if model.policy is None:
                model.policy = PolicyState()
            part.dirty.add(_model_key("policy", model.model_id))
            draft = self.policy.decide(finding, model.policy, self._keep_recent_for(work.plan))
            if draft is None:
                continue
            command = None
            rollback = work.plan.spec.rollback
            if rollback is not None:
                command = evaluate_rollback(
                    rollback,
                    draft,
                    model.policy,
                    model.checkpoints,
                    work.from_version or finding.model_version,
                    force_dry_run=self.settings.policy.dry_run,
                )
            out.append(to_alert(draft))
            if command is not None:
                out.append(command)
        return out

    # -- state ownership ---------------------------------------------------------------
    def changed_state(self, number: int) -> dict[str, dict[str, Any] | None]:
        part = self.partitions.get(number)
        if part is None:
            return {}
        out: dict[str, dict[str, Any] | None] = {}
        for key in part.dirty_keys:
            state = part.key_state(key)
            out[key.state_key()] = None if state is None else state.to_state()
        for name in part.dirty:
            out[name] = part.snapshot_of(name)
        part.dirty_keys.clear()
        part.dirty.clear()
        return dict(sorted(out.items()))

    def state_entries(self, number: int) -> dict[str, dict[str, Any]]:
        """Every state entry of a partition (what a full changelog replay holds)."""
        part = self.partitions.get(number)
        if part is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for lru in part.keys.values():
            for key, state in lru.items():
                out[key.state_key()] = state.to_state()
        names = ["meta"]
        for model in part.models.values():
            names.append(_model_key("model", model.model_id))
            names.extend(page_state_key(model.model_id, page) for page in model.joins.pages)
            names.extend(
                _model_key(c, model.model_id) for c in _COMPONENTS if getattr(model, c) is not None
            )
        for name in names:
            snapshot = part.snapshot_of(name)
            if snapshot is not None:
                out[name] = snapshot
        return dict(sorted(out.items()))

    def restore(self, number: int, entries: dict[str, dict[str, Any]]) -> None:
        part = Partition(number)
        meta = entries.get("meta")
        if meta is not None:
            if meta.get("version") != STATE_VERSION:
                raise ValueError(f"partition state version {meta.get('version')!r} unsupported")
            watermark = meta["watermark"]
            part.watermark = None if watermark is None else int(watermark)
            part.next_sweep = int(meta["next_sweep"])
            part.join_marks = {str(k): int(v) for k, v in meta["join_marks"].items()}
            part.join_kinds = [str(k) for k in meta["join_kinds"]]
            part.seq = int(meta["seq"])

        def model_of(model_id: str) -> ModelState:
            model = part.models.get(model_id)
            if model is None:
                plan = self.plan_for(model_id)
                known = plan.known if plan is not None else False
                model = part.models[model_id] = ModelState(model_id, known)
            return model

        joins: dict[str, list[JoinEntry]] = {}
        detector_entries: list[tuple[MonitorKey, dict[str, Any]]] = []
        for text, state in entries.items():
            if text == "meta":
                continue
            prefix, _, rest = text.partition(":")
            if prefix == "detector":
                detector_entries.append((MonitorKey.from_state_key(text), state))
                continue
            parts = json.loads(rest)
            model = model_of(str(parts[0]))
            if prefix == "model":
                model.last_seen = int(state["last_seen"])
                model.seq = int(state["seq"])
                model.version = None if state["version"] is None else str(state["version"])
                model.counters = {str(k): int(v) for k, v in state["counters"].items()}
            elif prefix == "join" and type(parts[1]) is int:
                joins.setdefault(model.model_id, []).extend(
                    JoinEntry.from_state(e, page=parts[1]) for e in state["entries"]
                )
            elif prefix == "join":  # one request's entry (the layout before pages)
                entry = JoinEntry.from_state(state, page=int(state["seq"]))
                joins.setdefault(model.model_id, []).append(entry)
                part.dirty.add(text)  # deleted,
                part.dirty.add(page_state_key(model.model_id, entry.page))  # rewritten
            elif prefix == "policy":
                model.policy = PolicyState.from_state(state)
            elif prefix == "shadow":
                model.shadow = ShadowState.from_state(state)
            elif prefix == "golden":
                model.golden = GoldenState.from_state(state)
            elif prefix == "checkpoints":
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
            plan = self.plan_for(key.model_id)
            spec = None if plan is None else plan.resolve(key.signal, key.monitor)
            if plan is None or spec is None:
                part.dirty_keys.add(key)  # no longer configured: delete it
                continue
            groups: list[tuple[str, ...]] = []
            if spec.wildcard:
                groups.append(
                    ("w", key.model_id, key.model_version, key.variant, spec.signal, spec.id)
                )
            if spec.segment_by is not None:
                groups.append(
                    ("s", key.model_id, key.model_version, key.variant, key.signal, spec.id)
                )
            restored.append(
                KeyState.from_state(key, spec, state, known=plan.known, groups=tuple(groups))
            )
        for key_state in sorted(restored, key=lambda s: s.seq):
            part.keys[key_state.known][key_state.key] = key_state
            for group in key_state.groups:
                part.fanout[group] += 1
            model_of(key_state.key.model_id).keys.add(key_state.key)
        self.partitions[number] = part

    def drop(self, number: int) -> None:
        self.partitions.pop(number, None)

    def label_counters(self) -> Counter[str]:
        """The label join's counters (joined, late, orphan...), over all models."""
        total: Counter[str] = Counter()
        for part in self.partitions.values():
            for model in part.models.values():
                total.update(model.counters)
        return total

    def live_keys(self) -> int:
        """Detector instances held, over all partitions."""
        return sum(p.live_keys() for p in self.partitions.values())

    @property
    def scopes(self) -> dict[int, dict[MonitorKey, KeyState]]:
        """Partition -> its live detector instances (a read-only view for metrics)."""
        return {
            number: {**part.keys[True], **part.keys[False]}
            for number, part in self.partitions.items()
        }
