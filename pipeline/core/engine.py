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
   (see :func:`pipeline.core.monitor.apply_updates`).
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson

from pipeline.config import ModelSpec, Settings
from pipeline.core.eventtime import micros, seconds_to_micros
from pipeline.core.golden import GoldenState
from pipeline.core.labels import COUNTERS, JoinBuffer, Joined, JoinEntry, join_state_key
from pipeline.core.monitor import (
    OTHER_SEGMENT,
    Finding,
    KeyState,
    ModelPlan,
    MonitorKey,
    Observer,
    Origin,
    Update,
    Watch,
    apply_updates,
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
        for request_id in model.joins.entries:
            self.dirty.add(join_state_key(model.model_id, request_id))
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
            entry = model.joins.entries.get(str(parts[1]))
            return None if entry is None else entry.to_state()
        if prefix in _COMPONENTS:
            return model.component(prefix)
        raise ValueError(f"unknown state key {state_key!r}")


@dataclass(slots=True)
class _Work:
    """What phase C does for one event."""

    partition: Partition
    model: ModelState
    plan: ModelPlan
    from_version: str
    entries: list[Update | Finding | Checkpoint] = field(default_factory=list)


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
            model_id: ModelPlan(spec, known=True) for model_id, spec in settings.models.items()
        }
        self._default: ModelPlan | None = None
        if settings.default_model is not None and settings.unknown_models == "monitor":
            self._default = ModelPlan(settings.default_model, known=False)
        elif settings.unknown_models == "monitor":
            self._default = ModelPlan(ModelSpec(default_monitors=False), known=False)
        self._keep_recent: dict[int, int] = {}
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
        queues: dict[int, tuple[KeyState, list[Update]]] = {}
        route = self._route
        for i, (event, origin) in enumerate(items):
            result = route(event, origin, queues)
            if type(result) is Refused:
                outputs[i].append(result)
                work.append(None)
            else:
                work.append(result)  # type: ignore[arg-type]
        mismatches: dict[str, int] = {}
        for state, updates in queues.values():
            apply_updates(state, updates, mismatches, self.observer)
        self.stats.update(mismatches)
        for i, w in enumerate(work):
            if w is not None and w.entries:
                outputs[i].extend(self._decide(w))
        return outputs

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

    def _route(
        self,
        event: InputEvent,
        origin: Origin,
        queues: dict[int, tuple[KeyState, list[Update]]],
    ) -> _Work | Refused:
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
            for request_id in model.joins.expire(horizon, model.counters):
                part.dirty.add(join_state_key(model.model_id, request_id))
                part.dirty.add(_model_key("model", model.model_id))
        work = _Work(part, model, plan, model.version or "")
        if isinstance(event, PredictionEvent):
            self._prediction(event, origin, at, plan, part, model, work, queues)
        elif isinstance(event, FeatureEvent):
            for watch in plan.feature:
                for signal, value in watch.extract(event):
                    self._enqueue(
                        part, model, plan, watch, signal, value,
                        (event.model_version, "production", event.features),
                        at, origin, None, work, queues,
                    )  # fmt: skip
        elif isinstance(event, LabelEvent):
            self._label(event, origin, at, plan, part, model, work, queues)
        else:
            self._training(event, origin, at, plan, part, model, work, queues)
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
        queues: dict[int, tuple[KeyState, list[Update]]],
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
        for watch in plan.prediction:
            for signal, value in watch.extract(event):
                self._enqueue(
                    part, model, plan, watch, signal, value, scope, at, origin, None, work, queues
                )
        if plan.needs_join and event.request_id is not None:
            features = event.features or {}
            record = {
                "version": event.model_version,
                "prediction": event.prediction,
                "at": at,
                "features": {k: features.get(k) for k in plan.error_segment_features},
                "origin": [origin.topic, origin.offset],
            }
            entry, joined, evicted = model.joins.add_prediction(
                event.request_id,
                event.variant,
                record,
                seq=part.next_seq(),
                ttl=seconds_to_micros(plan.spec.labels.ttl),
                max_pending=plan.spec.labels.max_pending,
                classification=plan.spec.classification,
                counters=model.counters,
            )
            self._joined(entry, joined, evicted, origin, at, plan, part, model, work, queues)

    def _label(
        self,
        event: LabelEvent,
        origin: Origin,
        at: int,
        plan: ModelPlan,
        part: Partition,
        model: ModelState,
        work: _Work,
        queues: dict[int, tuple[KeyState, list[Update]]],
    ) -> None:
        if not plan.needs_join:
            self.stats["labels_unused"] += 1
            return
        entry, joined, evicted = model.joins.add_label(
            event.request_id,
            event.label,
            at,
            seq=part.next_seq(),
            ttl=seconds_to_micros(plan.spec.labels.ttl),
            max_pending=plan.spec.labels.max_pending,
            classification=plan.spec.classification,
            counters=model.counters,
        )
        self._joined(entry, joined, evicted, origin, at, plan, part, model, work, queues)

    def _joined(
        self,
        entry: JoinEntry,
        joined: list[Joined],
        evicted: list[str],
        origin: Origin,
        at: int,
        plan: ModelPlan,
        part: Partition,
        model: ModelState,
        work: _Work,
        queues: dict[int, tuple[KeyState, list[Update]]],
    ) -> None:
        model_id = model.model_id
        part.dirty.add(join_state_key(model_id, entry.request_id))
        part.dirty.add(_model_key("model", model_id))
        for request_id in evicted:
            part.dirty.add(join_state_key(model_id, request_id))
        for j in joined:
            context = {
                "request_id": entry.request_id,
                "label_delay_s": j.delay / 1_000_000,
                "labels": dict(model.counters),
            }
            for watch in plan.error:
                self._enqueue(
                    part, model, plan, watch, "error", j.error,
                    (j.version, j.variant, j.features), at, origin, context, work, queues,
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
        work.entries.append(
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
        work.entries.append(
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
        queues: dict[int, tuple[KeyState, list[Update]]],
    ) -> None:
        context = {
            "run_id": event.run_id,
            "checkpoint_id": event.checkpoint_id,
            "step": event.step,
        }
        scope = (event.run_id, "training", None)
        for watch in plan.training:
            for signal, value in watch.extract(event):
                self._enqueue(
                    part,
                    model,
                    plan,
                    watch,
                    signal,
                    value,
                    scope,
                    at,
                    origin,
                    context,
                    work,
                    queues,
                )
        if event.checkpoint_stable:
            work.entries.append(
                Checkpoint(
                    checkpoint_id=event.checkpoint_id,
                    run_id=event.run_id,
                    step=event.step,
                    at=at,
                    topic=origin.topic,
                    offset=origin.offset,
                )
            )

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
        origin: Origin,
        context: dict[str, Any] | None,
        work: _Work,
        queues: dict[int, tuple[KeyState, list[Update]]],
    ) -> None:
        if watch.wildcard and (signal, watch.id) in plan.exact:
            return  # an explicit monitor of the same id covers this signal
        version, variant, features = scope
        segment = ""
        if watch.segment_by is not None:
            segment = segment_label(watch.segment_by, (features or {}).get(watch.segment_by))
        key = MonitorKey(model.model_id, version, variant, signal, watch.id, segment)
        lru = part.keys[plan.known]
        state = lru.get(key)
        if state is None:
            state = self._create(part, model, plan, watch, key)
            if state is None:
                return
            key = state.key
        if at > state.last_seen:
            state.last_seen = at
        part.seq += 1
        state.seq = part.seq
        lru.move_to_end(key)
        part.dirty_keys.add(key)
        update = Update(value, at, origin, context)
        queued = queues.get(id(state))
        if queued is None:
            queues[id(state)] = (state, [update])
        else:
            queued[1].append(update)
        work.entries.append(update)

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
    def _decide(self, work: _Work) -> list[Output]:
        out: list[Output] = []
        model, part = work.model, work.partition
        for entry in work.entries:
            if isinstance(entry, Checkpoint):
                if model.checkpoints is None:
                    model.checkpoints = CheckpointRegistry()
                if model.checkpoints.register(entry):
                    part.dirty.add(_model_key("checkpoints", model.model_id))
                continue
            finding = entry if isinstance(entry, Finding) else entry.finding
            if finding is None:
                continue
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
            names.extend(join_state_key(model.model_id, r) for r in model.joins.entries)
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
            elif prefix == "join":
                joins.setdefault(model.model_id, []).append(JoinEntry.from_state(state))
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
                buffer.entries[item.request_id] = item
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
