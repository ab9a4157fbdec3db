"""The monitor engine: decoded events in, alerts and rollback commands out.

A batch is processed in three phases that together give exactly what processing
its events one at a time gives (the property tests check it):

A. **Routing**, event by event, in order: advance the partition's event-time
   watermark (and expire what went idle), find or create the model's state and the
   detector instance of every (model, version, variant, signal, monitor, segment)
   the event feeds (:mod:`pipeline.core.routing`), join labels, run the shadow test
   and the golden-set check (:mod:`pipeline.core.comparisons`). The values are
   queued for their detectors (mostly as rows of a route, a detector's values being
   a column); nothing here depends on what a detector says.
B. **Detection**, detector by detector: each one consumes its queued values in
   order — column-wise through ``update_many`` when that is provably equivalent
   (see :func:`pipeline.core.feeding.feed_column`).
C. **Policy**, event by event, in order: findings go through the alert chain, then
   the rollback rules; stable checkpoints enter the registry at their place in the
   stream, so a rollback sees the registry as of its own event.

State is scoped by source partition (:mod:`pipeline.core.partition`, which also
states the bounds). Every entry is plain JSON under a key of
:mod:`pipeline.core.state_keys`, reported through ``changed_state`` when it
changed, and ``restore`` rebuilds the exact in-memory state from the entries
(:mod:`pipeline.core.snapshots`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.config import ModelSpec, Settings
from pipeline.core.comparisons import golden_finding, shadow_finding
from pipeline.core.eventtime import micros, seconds_to_micros
from pipeline.core.feeding import feed_column, feed_rows, quarantine_key
from pipeline.core.golden import GoldenState
from pipeline.core.held_joins import HeldJoins
from pipeline.core.journal import JournalTail, Report
from pipeline.core.labels import NO_JOINS, JoinBuffer, MakeRoom, Touched
from pipeline.core.monitor import (
    Finding,
    KeyState,
    ModelPlan,
    MonitorKey,
    Observer,
    Origin,
)
from pipeline.core.partition import ModelState, Partition
from pipeline.core.policy import AlertPolicy, PolicyState, evaluate_rollback, to_alert
from pipeline.core.quarantine import Notice, Quarantine
from pipeline.core.routing import SLOT_BITS, Column, EventContext, Router, Rows
from pipeline.core.shadow import ShadowState
from pipeline.core.snapshots import (
    all_entries,
    changed_entries,
    report_changes,
    restore_partition,
)
from pipeline.core.state_keys import model_key
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

__all__ = ["Engine", "ModelState", "Output", "Partition", "Refused"]


@dataclass(slots=True)
class Refused:
    """The event is not processed: it goes to the dead-letter path."""

    reason: str
    detail: str


Output = AlertEvent | RollbackCommand | Refused
Found = dict[int, list[tuple[int, Finding | Checkpoint]]]
"""Event index -> [(slot, finding)] of phase B."""


class Engine:
    """Routes decoded events to detectors, joins labels, applies the policies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.idle = seconds_to_micros(settings.limits.idle_expiry)
        self.step = max(1, min(seconds_to_micros(settings.limits.max_future_skew), self.idle // 2))
        """The most one event moves a partition's watermark (see ``_advance``)."""
        self.unknown_idle = seconds_to_micros(settings.limits.unknown_model_idle)
        self.partitions: dict[int, Partition] = {}
        self.policy = AlertPolicy(settings.policy)
        self.stats: Counter[str] = Counter()
        self.quarantine = Quarantine(self.stats)
        """Keys reset after a failure (:mod:`pipeline.core.quarantine`)."""
        self.observer: Observer | None = None
        """Optional, pure: called after every detector update (backtest traces)."""
        target = settings.policy.target_arl0
        # Models described alike share one plan: its monitor set is resolved (each
        # detector built, thresholds calibrated) once, not once per model.
        shared: dict[str, ModelPlan] = {}
        self._plans: dict[str, ModelPlan] = {}
        for model_id, spec in settings.models.items():
            text = spec.model_dump_json()
            plan = shared.get(text)
            if plan is None:
                plan = shared[text] = ModelPlan(
                    spec, known=True, where=f"models.{model_id}", target_arl0=target
                )
            self._plans[model_id] = plan
        self._default: ModelPlan | None = None
        if settings.default_model is not None and settings.unknown_models == "monitor":
            self._default = ModelPlan(
                settings.default_model, known=False, where="default_model", target_arl0=target
            )
        elif settings.unknown_models == "monitor":
            self._default = ModelPlan(ModelSpec(default_monitors=False), known=False)
        self.labels_consumed = settings.topics.labels is not None
        """No labels topic (``topics.labels: null``): no label can arrive, so no
        model keeps a label join (label events that come anyway are counted unused)."""
        if not self.labels_consumed:
            for plan in [*self._plans.values(), self._default]:
                if plan is not None:
                    plan.needs_join = False
        self._keep_recent: dict[int, int] = {}
        self._batch = 0
        self._held = HeldJoins()
        self.hold_joins = True
        """Hold new requests' predictions over routing (:mod:`pipeline.core.held_joins`);
        False adds each in place (the tests compare the two)."""
        self._router = Router(settings.limits, self.stats)
        self._last_stamp: datetime | None = None
        self._last_micros = 0
        self._model_cap = Refused(
            "model_cap",
            f"limits.max_unknown_models={settings.limits.max_unknown_models} unknown models "
            "are already tracked in this partition, none of them idle for "
            f"limits.unknown_model_idle ({settings.limits.unknown_model_idle:g} s)",
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
    def process(
        self,
        items: Sequence[tuple[InputEvent, Origin]],
        times: Sequence[int | None] | None = None,
    ) -> list[list[Output]]:
        """One list of outputs per event, as if each were processed alone, in order.
        ``times``: each event's time in µs where the caller already computed it
        (``micros`` of its timestamp), else None."""
        outputs: list[list[Output]] = [[] for _ in items]
        contexts: list[EventContext | None] = []
        ats: list[int] = []
        self._batch += 1
        router = self._router
        router.start_batch()
        route = self._route
        try:
            for i, (event, origin) in enumerate(items):
                try:
                    result = route(event, origin, i, None if times is None else times[i])
                except Exception as exc:  # the event, not the batch: dead-lettered
                    self.quarantine.record("route", model_key("model", event.model_id), exc)
                    router.restructure()  # routes may point at half-made keys
                    result = Refused("processing_error", f"routing: {type(exc).__name__}: {exc}")
                ats.append(self._last_micros)
                if type(result) is Refused:
                    outputs[i].append(result)
                    contexts.append(None)
                else:
                    contexts.append(result)  # type: ignore[arg-type]
        finally:
            self._held.release_all(self._batch)
        router.settle()
        found = self._detect(*router.work(ats, [origin for _, origin in items]))
        router.start_batch()
        for i, ctx in enumerate(contexts):
            if ctx is not None and (ctx.entries or i in found):
                outputs[i].extend(self._decide(ctx, found.get(i, [])))
        return outputs

    def drain_notices(self) -> list[Notice]:
        """Keys quarantined since the last call, each once (for the runtime's log)."""
        return self.quarantine.drain()

    # -- phase A -------------------------------------------------------------------
    def _route(
        self, event: InputEvent, origin: Origin, i: int, given: int | None
    ) -> EventContext | Refused:
        """Phase A for event ``i``; ``given``: its time in µs when already computed."""
        model_id = event.model_id
        plan = self._plans.get(model_id, self._default)
        if plan is None:
            self.stats["refused:unknown_model"] += 1
            return Refused("unknown_model", f"model_id {model_id!r}")
        part = self.partitions.get(origin.partition) or self.partition(origin.partition)
        part.dirty.add("meta")  # the touch counter moves with (almost) every event
        stamp = event.timestamp
        if given is not None:
            at = self._last_micros = given
            self._last_stamp = stamp
        elif stamp is self._last_stamp:
            at = self._last_micros
        else:
            at = self._last_micros = micros(stamp)
            self._last_stamp = stamp
        seen = at
        if part.watermark is None or at > part.watermark:
            seen = min(at, self._advance(part, at))
        found = part.models.get(model_id)
        if found is None or not plan.known:
            tracked = self._model(part, model_id, plan, seen)
            if isinstance(tracked, Refused):
                return tracked
            found = tracked
        model = found
        ctx = EventContext(i, origin, at, part, model, plan, model.version or "", seen)
        if plan.needs_join and isinstance(event, PredictionEvent | LabelEvent):
            self._expire_joins(ctx, event)
        if isinstance(event, PredictionEvent):
            self._prediction(ctx, event)
        elif isinstance(event, FeatureEvent):
            scope = (event.model_version, "production", event.features)
            self._router.watch(ctx, plan.feature, plan.feature_slots, "f", event, scope)
        elif isinstance(event, LabelEvent):
            self._label(ctx, event)
        else:
            self._training(ctx, event)
        return ctx

    def _advance(self, part: Partition, at: int) -> int:
        """Move the watermark to ``at``, but by at most ``limits.max_future_skew``
        and half of ``idle_expiry`` (one event stamped far ahead can neither expire
        what was seen recently nor park the watermark where nothing expires again;
        after a real gap it catches up over a few events); expire what went idle
        when a sweep is due. The watermark it leaves."""
        if part.watermark is not None:
            if at <= part.watermark:
                return part.watermark
            at = min(at, part.watermark + self.step)
        part.watermark = at
        if at < part.next_sweep:
            return at
        # Idle expiry sweeps at most every 1/64 of the idle time (a key lives at
        # most that much longer); the sweep times follow from the watermark alone.
        part.next_sweep = at + max(1, self.idle // 64)
        self._router.restructure()
        self._held.release(part, self._batch)  # models may be dropped
        part.expire(at - self.idle, self.stats)
        return at

    def _model(
        self, part: Partition, model_id: str, plan: ModelPlan, at: int
    ) -> ModelState | Refused:
        """The model's state, created (within the cap on unknown models) or, for an
        unknown model, touched."""
        model = part.models.get(model_id)
        if model is None:
            if (
                not plan.known
                and len(part.unknown) >= self.limits.max_unknown_models
                and not self._make_room(part)
            ):
                self.stats["refused:model_cap"] += 1
                return self._model_cap
            model = part.models[model_id] = ModelState(model_id, plan.known)
            if not plan.known:
                part.unknown[model_id] = model
            model.last_seen = at
            model.seq = part.next_seq()
            part.mark_model("model", model_id)
        elif not plan.known:
            model.last_seen = max(model.last_seen, at)
            model.seq = part.next_seq()
            part.unknown.move_to_end(model_id)
            part.mark_model("model", model_id)
        return model

    def _make_room(self, part: Partition) -> bool:
        """At the cap on unknown models: drop the least recently seen one if it has
        been idle for ``limits.unknown_model_idle`` (so junk ids hold the cap for
        that long after they stop, not for ``idle_expiry``); whether room was made."""
        oldest = next(iter(part.unknown.values()), None)
        if oldest is None or part.watermark is None:
            return False
        if part.watermark - oldest.last_seen < self.unknown_idle:
            return False
        self._router.restructure()  # routes may hold the dropped model's keys
        self._held.release(part, self._batch)
        part.drop_model(oldest)
        self.stats["evicted_models"] += 1
        return True

    def _prediction(self, ctx: EventContext, event: PredictionEvent) -> None:
        plan, model = ctx.plan, ctx.model
        if event.golden:
            if plan.spec.golden is not None:
                self._golden(ctx, event)
            else:
                self.stats["golden_unconfigured"] += 1
            return  # probes never feed the drift monitors or the label join
        if event.variant == "production" and model.version != event.model_version:
            model.version = event.model_version
            ctx.from_version = event.model_version
            ctx.partition.mark_model("model", model.model_id)
        scope = (event.model_version, event.variant, event.features)
        self._router.watch(ctx, plan.prediction, plan.prediction_slots, "p", event, scope)
        if plan.needs_join and event.request_id is not None:
            segment = None
            if plan.error_segment_features:
                features = event.features or {}
                segment = tuple((k, features.get(k)) for k in plan.error_segment_features)
            part = ctx.partition
            part.next_seq()
            if self.hold_joins and self._held.hold(
                part, model, plan, event, segment, ctx.at, self.limits.max_pending_labels
            ):
                return
            self._held.release(part, self._batch)
            joins = self._joins(model)
            touched = joins.add_prediction(
                event.request_id,
                event.variant,
                event.model_version,
                event.prediction,
                ctx.at,
                segment,
                batch=self._batch,
                ttl=plan.label_ttl,
                max_pending=plan.spec.labels.max_pending,
                classification=plan.spec.classification,
                counters=model.counters,
                make_room=self._room_maker(part, model),
            )
            part.pending.note(model.model_id, len(joins))
            if touched is not None:
                self._joined(ctx, touched, event.request_id)

    def _golden(self, ctx: EventContext, event: PredictionEvent) -> None:
        spec = ctx.plan.spec.golden
        assert spec is not None
        model = ctx.model
        created = model.golden is None
        if model.golden is None:
            model.golden = GoldenState()
        check, changed = model.golden.check(spec, event, ctx.at)
        if changed or created:  # an empty state is state too: restore must hold it
            ctx.partition.mark_model("golden", model.model_id)
        if check is not None:
            ctx.add(golden_finding(model.model_id, event, spec, check, ctx.at, ctx.origin))

    def _training(self, ctx: EventContext, event: TrainingEvent) -> None:
        context = {
            "run_id": event.run_id,
            "checkpoint_id": event.checkpoint_id,
            "step": event.step,
        }
        scope = (event.run_id, "training", None)
        for watch in ctx.plan.training:
            for signal, value in watch.extract(event):
                self._router.enqueue(ctx, watch, signal, value, scope, context)
        if event.checkpoint_stable:
            ctx.add(
                Checkpoint(
                    checkpoint_id=event.checkpoint_id,
                    run_id=event.run_id,
                    step=event.step,
                    at=ctx.at,
                    topic=ctx.origin.topic,
                    offset=ctx.origin.offset,
                )
            )

    # -- phase A: the label join -------------------------------------------------------
    def _expire_joins(self, ctx: EventContext, event: PredictionEvent | LabelEvent) -> None:
        # The join expires by the slowest of the topics that carry predictions and
        # labels (and only once both kinds were seen): a label topic consumed
        # behind the prediction topic does not make its labels late.
        part, model, plan, at = ctx.partition, ctx.model, ctx.plan, ctx.at
        marks = part.join_marks
        origin = ctx.origin
        if at > marks.get(origin.topic, at - 1):
            marks[origin.topic] = at
        kind = "label" if isinstance(event, LabelEvent) else "prediction"
        if kind not in part.join_kinds:
            part.join_kinds = sorted({*part.join_kinds, kind})
        joins = model.joins
        if not isinstance(joins, JoinBuffer):
            return
        if len(part.join_kinds) == 2:  # else nothing expires yet
            horizon = min(marks.values()) - 2 * plan.label_ttl
            store = joins.store
            if self._held.holds(part, model.model_id) and (
                not store.size or store.created_at(store.head) < horizon
            ):  # the expiry may reach the held requests
                self._held.release_model(part, model.model_id, self._batch)
            expired = joins.expire(horizon, model.counters)
            if expired:
                part.mark_join_pages(model.model_id, expired)
        part.pending.note(model.model_id, len(joins))

    def _label(self, ctx: EventContext, event: LabelEvent) -> None:
        plan, model = ctx.plan, ctx.model
        if not plan.needs_join:
            self.stats["labels_unused"] += 1
            return
        part = ctx.partition
        part.next_seq()
        self._held.release(part, self._batch)
        joins = self._joins(model)
        touched = joins.add_label(
            event.request_id,
            event.label,
            ctx.at,
            batch=self._batch,
            ttl=plan.label_ttl,
            max_pending=plan.spec.labels.max_pending,
            classification=plan.spec.classification,
            counters=model.counters,
            make_room=self._room_maker(part, model),
        )
        part.pending.note(model.model_id, len(joins))
        self._joined(ctx, touched, event.request_id)

    def _room_maker(self, part: Partition, model: ModelState) -> MakeRoom | None:
        """The partition-wide budget's evictions before ``model`` stores a new
        request (None while the partition is below it: nothing to make room for)."""
        budget = self.limits.max_pending_labels
        if part.pending.total < budget:
            return None

        def make_room() -> list[int]:
            own: list[int] = []
            pending = part.pending
            while pending.total >= budget:
                victim = part.models[pending.largest()]
                joins = victim.joins
                assert isinstance(joins, JoinBuffer)
                counters = victim.counters
                pages = joins.evict_oldest(1, counters)
                counters["evicted_budget"] = counters.get("evicted_budget", 0) + 1
                pending.note(victim.model_id, len(joins))
                if victim is model:
                    own.extend(pages)
                else:
                    part.mark_join_pages(victim.model_id, pages)
            return own

        return make_room

    @staticmethod
    def _joins(model: ModelState) -> JoinBuffer:
        """The model's join, created with its first prediction or label."""
        joins = model.joins
        if joins is NO_JOINS:
            joins = model.joins = JoinBuffer()
        assert isinstance(joins, JoinBuffer)
        return joins

    def _joined(self, ctx: EventContext, touched: Touched, request_id: str) -> None:
        """After a prediction or label entered the join: the errors of the requests
        it completed go to the error monitors, and a request with both the
        production and the shadow variant's errors is one pair of the shadow test."""
        part, model, plan = ctx.partition, ctx.model, ctx.plan
        model_id = model.model_id
        part.mark_join_pages(model_id, [touched.page, *touched.evicted])
        for j in touched.joined:
            context = {
                "request_id": request_id,
                "label_delay_s": j.delay / 1_000_000,
                "labels": dict(model.counters),
            }
            for watch in plan.error:
                scope = (j.version, j.variant, j.features)
                self._router.enqueue(ctx, watch, "error", j.error, scope, context)
        shadow = plan.spec.shadow
        if shadow is None:
            return
        joins = model.joins
        assert isinstance(joins, JoinBuffer)
        pair = joins.pair(touched.slot, shadow.variant, plan.spec.classification)
        if pair is None:
            return
        production, candidate, candidate_version, production_version = pair
        if model.shadow is None:
            model.shadow = ShadowState()
        test = model.shadow.test_for(candidate_version, production_version)
        test.observe(production, candidate, ctx.at)
        part.mark_model("shadow", model_id)
        decision = test.decide(shadow)
        if decision is not None:
            ctx.add(shadow_finding(model_id, shadow, test, decision, ctx.at, ctx.origin))

    # -- phase B -------------------------------------------------------------------
    def _detect(self, rows: list[Rows], columns: Iterable[Column]) -> Found:
        """Feed every key its values, by rows or by column: event index -> [(slot, finding)]."""
        found: Found = {}
        mismatches: dict[str, int] = {}
        observer, quarantine = self.observer, self.quarantine
        for states, events, firsts, where in rows:
            for r, j, finding in feed_rows(states, events, where, mismatches, observer, quarantine):
                ref = firsts[r] + j
                found.setdefault(ref >> SLOT_BITS, []).append(
                    (ref & ((1 << SLOT_BITS) - 1), finding)
                )
        for state, values, refs, where in columns:
            try:
                column = feed_column(
                    state, values, where, mismatches, self.observer, self.quarantine
                )
            except Exception as exc:  # e.g. the detector not put back from its snapshot
                quarantine_key(state, exc, self.quarantine)
                continue
            for position, finding in column:
                ref = refs[position]
                found.setdefault(ref >> SLOT_BITS, []).append(
                    (ref & ((1 << SLOT_BITS) - 1), finding)
                )
        self.stats.update(mismatches)
        return found

    # -- phase C -------------------------------------------------------------------
    def _decide(
        self, ctx: EventContext, found: list[tuple[int, Finding | Checkpoint]]
    ) -> list[Output]:
        out: list[Output] = []
        model, part = ctx.model, ctx.partition
        entries = ctx.entries
        if found:
            entries = sorted([*found, *entries], key=lambda e: e[0])
        for _, entry in entries:
            try:
                out.extend(self._apply(ctx, entry))
            except Exception as exc:  # the model's policy state resets; the finding is lost
                kind = "checkpoints" if isinstance(entry, Checkpoint) else "policy"
                self.quarantine.record("policy", model_key(kind, model.model_id), exc)
                if kind == "checkpoints":
                    model.checkpoints = None
                else:
                    model.policy = PolicyState()
                part.mark_model(kind, model.model_id)
        return out

    def _apply(self, ctx: EventContext, entry: Finding | Checkpoint) -> list[Output]:
        """A checkpoint into the registry, or a finding through the alert chain and
        the rollback rules."""
        model, part = ctx.model, ctx.partition
        if isinstance(entry, Checkpoint):
            if model.checkpoints is None:
                model.checkpoints = CheckpointRegistry()
            if model.checkpoints.register(entry):
                part.mark_model("checkpoints", model.model_id)
            return []
        finding = entry
        if model.policy is None:
            model.policy = PolicyState()
        part.mark_model("policy", model.model_id)
        draft = self.policy.decide(finding, model.policy, self._keep_recent_for(ctx.plan))
        if draft is None:
            return []
        command = None
        rollback = ctx.plan.spec.rollback
        if rollback is not None:
            command = evaluate_rollback(
                rollback,
                draft,
                model.policy,
                model.checkpoints,
                ctx.from_version or finding.model_version,
                force_dry_run=self.settings.policy.dry_run,
            )
        alert = to_alert(draft)
        return [alert] if command is None else [alert, command]

    # -- state ownership ---------------------------------------------------------------
    def changed_state(self, number: int) -> dict[str, dict[str, Any] | None]:
        """The state entries of partition ``number`` changed since the last call
        (``None``: deleted), sorted by key."""
        part = self.partitions.get(number)
        return {} if part is None else changed_entries(part, self.quarantine)

    def report_state(self, number: int) -> Report | None:
        """Partition ``number``'s changes since the last report as a journal (deltas
        for detectors already logged in full, see :mod:`pipeline.core.journal`)."""
        part = self.partitions.get(number)
        return None if part is None else report_changes(part, self.quarantine)

    def state_entries(self, number: int) -> dict[str, dict[str, Any]]:
        """Every state entry of a partition (what a full changelog replay holds)."""
        part = self.partitions.get(number)
        return {} if part is None else all_entries(part, self.quarantine)

    def restore(
        self,
        number: int,
        entries: dict[str, dict[str, Any]],
        tail: JournalTail | None = None,
        *,
        release: bool = False,
    ) -> None:
        """Replace partition ``number`` by the one ``entries`` (and the deltas of
        ``tail``) describe; ``release``: ``entries`` is emptied as it is read
        (``restore_partition``)."""
        self._router.forget()
        self.partitions[number] = restore_partition(
            number,
            entries,
            self.plan_for,
            self.quarantine,
            tail,
            release=release,
            join_budget=self.limits.max_pending_labels,
        )

    def drop(self, number: int) -> None:
        self._router.forget()
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
