"""Predictions of new requests, held back over a batch's routing and stored at once.

Storing one prediction in a model's label join costs ~4 µs one event at a time (the
request's hash, an index probe and insert, a dozen numpy item writes, the calls
around them). In a batch, most predictions are of requests the join has not seen:
they join nothing, and while the join stays under its bounds they push nothing out.
Those are held here, per partition and model, and written as columns
(:meth:`~pipeline.core.labels.JoinBuffer.add_new_predictions`) when routing ends, or
earlier, as soon as anything else is about to read or change a join of the partition.

Holding is exact — the join, its pages and counters, the partition's pending counts
and every output are what adding one by one gives — because a prediction is held
only when its add could not interact with anything that happens before the release:

* the request is new: neither pending in the join nor held (a redelivery, another
  variant of the same request, or a request whose label came first is added in place);
* its variant already has its columns (no column set is created or dropped), and all
  of a model's held predictions are of one variant;
* the model stays under ``labels.max_pending`` and the partition under
  ``limits.max_pending_labels`` counting what is held, so no add evicts anything;

and the engine releases a partition's held predictions before any other add of a
prediction or a label there, before models are dropped (idle expiry, the cap on
unknown models), and a model's before an expiry that would reach past its oldest
pending request. The partition's pending counts (:mod:`pipeline.core.join_budget`)
leave the held predictions out until they are released; the budget check adds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.core.join_store import request_hash
from pipeline.core.labels import JoinBuffer, NewPrediction, Segment
from pipeline.core.monitor import ModelPlan
from pipeline.core.partition import ModelState, Partition
from pipeline.events import PredictionEvent

__all__ = ["HeldJoins"]


@dataclass(slots=True)
class _Held:
    model: ModelState
    variant: int
    max_pending: int
    rows: list[NewPrediction] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)


class HeldJoins:
    """What is held, per partition and model (see the module docstring)."""

    __slots__ = ("_counts", "_parts")

    def __init__(self) -> None:
        self._parts: dict[Partition, dict[str, _Held]] = {}
        self._counts: dict[Partition, int] = {}

    def __bool__(self) -> bool:
        return bool(self._parts)

    def holds(self, part: Partition, model_id: str) -> bool:
        models = self._parts.get(part)
        return models is not None and model_id in models

    def hold(
        self,
        part: Partition,
        model: ModelState,
        plan: ModelPlan,
        event: PredictionEvent,
        segment: Segment | None,
        at: int,
        budget: int,
    ) -> bool:
        """Hold the prediction when its add can wait (False: add it now, after
        :meth:`release` of the partition)."""
        joins = model.joins
        if type(joins) is not JoinBuffer:
            return False
        store = joins.store
        k = store.variant_index.get(event.variant)
        if k is None or (segment is not None and store.variants[k].segment is None):
            return False
        models = self._parts.get(part)
        held_here = 0 if models is None else self._counts[part]
        if part.pending.total + held_here >= budget:
            return False
        held = None if models is None else models.get(model.model_id)
        if held is None:
            if store.size >= plan.spec.labels.max_pending:
                return False
        elif held.variant != k or store.size + len(held.rows) >= held.max_pending:
            return False
        assert event.request_id is not None
        h = request_hash(event.request_id)
        if (held is not None and h in held.seen) or store.find(h) >= 0:
            return False
        if held is None:
            if models is None:
                models = self._parts[part] = {}
            held = models[model.model_id] = _Held(model, k, plan.spec.labels.max_pending)
        held.seen.add(h)
        held.rows.append((h, event.prediction, event.model_version, at, segment))
        self._counts[part] = held_here + 1
        return True

    def release_model(self, part: Partition, model_id: str, batch: int) -> None:
        """Store ``model_id``'s held predictions (of ``part``) now."""
        models = self._parts.get(part)
        held = None if models is None else models.pop(model_id, None)
        if held is None:
            return
        assert models is not None
        self._counts[part] -= len(held.rows)
        if not models:
            del self._parts[part], self._counts[part]
        _store(part, held, batch)

    def release(self, part: Partition, batch: int) -> None:
        """Store every held prediction of ``part`` now, model by model."""
        models = self._parts.pop(part, None)
        if models is None:
            return
        del self._counts[part]
        for held in models.values():
            _store(part, held, batch)

    def release_all(self, batch: int) -> None:
        for part in list(self._parts):
            self.release(part, batch)


def _store(part: Partition, held: _Held, batch: int) -> None:
    model = held.model
    joins = model.joins
    assert isinstance(joins, JoinBuffer)
    pages = joins.add_new_predictions(
        held.variant, held.rows, batch=batch, max_pending=held.max_pending
    )
    part.pending.note(model.model_id, len(joins))
    part.mark_join_pages(model.model_id, pages)
