"""The partition-wide budget of the label join's pending requests
(``limits.max_pending_labels``): who gives up a request, what is counted, and that a
restore takes the decisions the uninterrupted run took."""

from __future__ import annotations

import copy
import functools
from typing import Any

import orjson
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.core.engine import Engine
from pipeline.core.join_budget import PendingCounts, trimmed_sizes
from pipeline.core.labels import JoinBuffer
from pipeline.core.monitor import Origin
from pipeline.core.processor import Processor
from pipeline.core.records import Message
from tests.pipeline.core.helpers import (
    FULL_CONFIG,
    batches,
    full_stream,
    label,
    prediction,
    settings,
)

ERROR_MONITOR = {"signal": "error", "detector": "adwin", "params": {"delta": 0.01}}


def _engine(budget: int, models: tuple[str, ...] = ("a", "b", "c")) -> Engine:
    spec = {"monitors": [ERROR_MONITOR], "labels": {"ttl": "1h", "max_pending": 1000}}
    return Engine(
        settings(
            models={m: spec for m in models},
            limits={"max_pending_labels": budget},
        )
    )


def _feed(engine: Engine, events: list[Any]) -> None:
    engine.process([(e, Origin("in", 0, i)) for i, e in enumerate(events)])


def _sizes(engine: Engine) -> dict[str, int]:
    return {m: len(s.joins) for m, s in engine.partitions[0].models.items()}


def _oldest_one_at_a_time(sizes: dict[str, int], budget: int) -> dict[str, int]:
    """The rule spelled out: the model holding the most (ties: smallest id) gives one up."""
    out = dict(sizes)
    while sum(out.values()) > budget:
        victim = min(out, key=lambda m: (-out[m], m))
        out[victim] -= 1
    return out


class TestTrimmedSizes:
    @hsettings(max_examples=200, deadline=None)
    @given(
        sizes=st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.integers(0, 60)),
        budget=st.integers(1, 200),
    )
    def test_equals_giving_up_one_request_at_a_time(
        self, sizes: dict[str, int], budget: int
    ) -> None:
        assert trimmed_sizes(sizes, budget) == _oldest_one_at_a_time(sizes, budget)


class TestPendingCounts:
    @hsettings(max_examples=100, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 20)), max_size=300))
    def test_largest_and_total_follow_the_notes(self, notes: list[tuple[str, int]]) -> None:
        counts = PendingCounts()
        sizes: dict[str, int] = {}
        for model_id, size in notes:
            counts.note(model_id, size)
            sizes[model_id] = size
            live = {m: n for m, n in sizes.items() if n}
            assert counts.total == sum(live.values())
            assert counts.sizes == live
            if live:
                assert counts.largest() == min(live, key=lambda m: (-live[m], m))


class TestBudget:
    def test_the_model_holding_the_most_gives_up_its_oldest(self) -> None:
        engine = _engine(budget=10)
        events = [prediction("a", t=i, request_id=f"a{i}") for i in range(7)]
        events += [prediction("b", t=10 + i, request_id=f"b{i}") for i in range(3)]
        _feed(engine, events)
        assert _sizes(engine) == {"a": 7, "b": 3}
        # at the budget: "a" holds the most and gives up a0, a1, a2 to "c"
        _feed(engine, [prediction("c", t=20 + i, request_id=f"c{i}") for i in range(3)])
        assert _sizes(engine) == {"a": 4, "b": 3, "c": 3}
        a = engine.partitions[0].models["a"]
        assert a.counters["evicted"] == 3 and a.counters["evicted_budget"] == 3
        assert a.counters["unlabeled"] == 3  # predictions whose label never came
        # the ones left are the newest: a3's label still joins, a0's is an orphan
        _feed(engine, [label("a3", "approve", 30, model="a")])
        assert a.counters["joined"] == 1

    def test_ties_go_to_the_smallest_model_id_and_a_model_may_evict_its_own(self) -> None:
        engine = _engine(budget=6)
        _feed(engine, [prediction(m, t=i, request_id=f"{m}{i}") for m in "ab" for i in range(3)])
        steps = []
        for i in range(4):
            _feed(engine, [prediction("c", t=10 + i, request_id=f"c{i}")])
            steps.append(_sizes(engine))
        assert steps == [
            {"a": 2, "b": 3, "c": 1},  # a and b tie at 3: "a" gives up a0
            {"a": 2, "b": 2, "c": 2},  # "b" holds the most
            {"a": 1, "b": 2, "c": 3},  # a three-way tie: "a" again
            {"a": 1, "b": 2, "c": 3},  # "c" holds the most: its own oldest goes
        ]
        store = engine.partitions[0].models["c"].joins.store  # type: ignore[union-attr]
        assert store.base == 1  # c0 left

    def test_the_partition_never_holds_more_than_the_budget(self) -> None:
        engine = _engine(budget=25, models=("a", "b", "c", "d"))
        events = []
        for i in range(200):
            model = "abcd"[(i * 7) % 4 if i % 3 else 0]
            events.append(prediction(model, t=i, request_id=f"{model}{i}"))
        for event in events:
            _feed(engine, [event])
            part = engine.partitions[0]
            assert sum(_sizes(engine).values()) == part.pending.total <= 25
        counters = engine.label_counters()
        assert counters["evicted_budget"] == counters["evicted"] == 200 - 25

    def test_below_the_budget_nothing_changes(self) -> None:
        engine = _engine(budget=1000)
        _feed(engine, [prediction("a", t=i, request_id=f"a{i}") for i in range(50)])
        assert "evicted_budget" not in engine.partitions[0].models["a"].counters

    def test_a_restore_over_the_budget_leaves_what_the_rule_leaves(self) -> None:
        """State written under a larger budget, restored under a smaller one: every
        model keeps its newest requests, as many as one-at-a-time eviction leaves."""
        wide = _engine(budget=1000, models=("a", "b", "c", "d"))
        counts = {"a": 40, "b": 7, "c": 25, "d": 25}
        events = [
            prediction(m, t=i, request_id=f"{m}{i}") for m, n in counts.items() for i in range(n)
        ]
        _feed(wide, events)
        entries = orjson.loads(orjson.dumps(wide.state_entries(0)))
        narrow = _engine(budget=60, models=("a", "b", "c", "d"))
        narrow.restore(0, copy.deepcopy(entries))
        expected = _oldest_one_at_a_time(counts, 60)
        assert _sizes(narrow) == expected
        part = narrow.partitions[0]
        assert part.pending.total == 60
        for model_id, kept in expected.items():
            joins = part.models[model_id].joins
            assert isinstance(joins, JoinBuffer)
            store = joins.store
            assert store.base == counts[model_id] - kept  # the oldest went
            evicted = part.models[model_id].counters.get("evicted_budget", 0)
            assert evicted == counts[model_id] - kept
        # what changed is reported, and a second restore of it needs no trimming
        changed = narrow.changed_state(0)
        assert any(k.startswith("join:") for k in changed)
        for key, state in changed.items():
            if state is None:
                entries.pop(key, None)
            else:
                entries[key] = state
        again = _engine(budget=60, models=("a", "b", "c", "d"))
        again.restore(0, orjson.loads(orjson.dumps(entries)))
        assert _sizes(again) == expected
        assert again.changed_state(0) == {}


# The full engine stream (two partitions, labels, shadow, unknown models expiring)
# under a budget small enough to evict all along.
BUDGET = 12
BUDGET_CONFIG: dict[str, Any] = {
    **FULL_CONFIG,
    "limits": {**FULL_CONFIG["limits"], "max_pending_labels": BUDGET},
}


@functools.cache
def _budget_reference() -> tuple[tuple[Message, ...], ...]:
    processor = Processor(settings(**BUDGET_CONFIG))
    out = tuple(tuple(processor.process(r)) for r in full_stream())
    assert processor.stats["labels:evicted_budget"] > 100  # the budget is exercised
    return out


def _fold(processor: Processor, into: dict[int, dict[str, Any]]) -> None:
    for partition in (0, 1):
        for key, state in processor.changed_state(partition).items():
            entries = into.setdefault(partition, {})
            if state is None:
                entries.pop(key, None)
            else:
                entries[key] = state


class TestBudgetAcrossBatchesAndRestores:
    @hsettings(max_examples=4, deadline=None)
    @given(cuts=st.lists(st.integers(0, 2700), max_size=6))
    def test_batches_decide_as_one_record_at_a_time(self, cuts: list[int]) -> None:
        processor = Processor(settings(**BUDGET_CONFIG))
        got: list[tuple[Message, ...]] = []
        for batch in batches(full_stream(), cuts):
            got.extend(tuple(m) for m in processor.process_batch(list(batch)))
        assert tuple(got) == _budget_reference()

    @hsettings(max_examples=5, deadline=None)
    @given(cut=st.integers(1, 2600), before=st.lists(st.integers(0, 2700), max_size=4))
    def test_restored_processor_continues_byte_identically(
        self, cut: int, before: list[int]
    ) -> None:
        recs = full_stream()
        first = Processor(settings(**BUDGET_CONFIG))
        snapshot: dict[int, dict[str, Any]] = {}
        for batch in batches(recs[:cut], before):
            first.process_batch(list(batch))
            _fold(first, snapshot)
        stored = orjson.loads(orjson.dumps({str(p): e for p, e in snapshot.items()}))
        second = Processor(settings(**BUDGET_CONFIG))
        for partition, entries in stored.items():
            second.restore(int(partition), entries)
            assert second.changed_state(int(partition)) == {}  # within budget: no trim
        got = [tuple(second.process(r)) for r in recs[cut:]]
        assert tuple(got) == _budget_reference()[cut:]
