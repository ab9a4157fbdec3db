"""Failures stay with their key: reset, counted, reported once — the loop goes on.

Each stage of :mod:`pipeline.core.quarantine` is made to fail on purpose (a detector
whose update or snapshot raises, a policy that raises, a routing or decoding bug,
corrupt changelog entries) and the processor must neither raise nor retry the
failure for ever.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest

from detectors import CUSUM, PageHinkley
from pipeline.core import feeding
from pipeline.core.engine import Engine
from pipeline.core.policy import AlertPolicy, PolicyState
from pipeline.core.processor import Processor
from pipeline.core.quarantine import MAX_PENDING, Quarantine, finite_json
from pipeline.core.records import Message, Record
from pipeline.formats import RecordDecoder
from tests.pipeline.core.helpers import (
    FULL_CONFIG,
    full_stream,
    run,
    settings,
)
from tests.pipeline.core.test_processor import _by_request

SETTINGS = settings(**FULL_CONFIG)
POISON = 1234.5678
"""A feature value the patched detectors fail on."""


def _poisoned(every: int = 23) -> list[Record]:
    """The full stream with ``amount`` set to POISON in some model-0 predictions."""
    out = []
    seen = 0
    for record in full_stream():
        event = orjson.loads(record.value or b"")
        features = event.get("features")
        if event.get("model_id") == "model-0" and isinstance(features, dict):
            seen += 1
        if seen % every == 1 and event.get("model_id") == "model-0" and features:
            features["amount"] = POISON
            record = Record(record.topic, record.partition, record.offset, orjson.dumps(event))
        out.append(record)
    return out


def _fail_on_poison(monkeypatch: pytest.MonkeyPatch) -> None:
    original, original_many = PageHinkley.update, PageHinkley.update_many

    def update(self: PageHinkley, x: float) -> PageHinkley:
        if x == POISON:
            raise OverflowError("math range error")
        return original(self, x)

    def update_many(self: PageHinkley, values: Any) -> list[int]:
        values = list(values)
        if POISON in values:
            raise OverflowError("math range error")
        return original_many(self, values)

    monkeypatch.setattr(PageHinkley, "update", update)
    monkeypatch.setattr(PageHinkley, "update_many", update_many)


def _kinds(outputs: list[list[Message]]) -> list[list[tuple[str, bytes | None]]]:
    return [[(m.kind, m.value) for m in messages] for messages in outputs]


def _per_record_and_batched(records: list[Record] | tuple[Record, ...], batch: int) -> Processor:
    """Run ``records`` one at a time and in batches of ``batch``; assert the same
    outputs and state entries; the batched processor (for its counters)."""
    one, many = Processor(SETTINGS), Processor(SETTINGS)
    assert _kinds(run(one, records, batch=1)) == _kinds(run(many, records, batch=batch))
    for partition in (0, 1):
        assert _by_request(one.engine.state_entries(partition)) == _by_request(
            many.engine.state_entries(partition)
        )
    assert one.stats["quarantined:update"] == many.stats["quarantined:update"]
    return many


class TestUpdate:
    def test_a_failing_update_resets_the_key_and_processing_goes_on(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _fail_on_poison(monkeypatch)
        records = _poisoned()
        poisoned = sum(
            1
            for r in records
            if POISON in orjson.loads(r.value or b"{}").get("features", {}).values()
        )
        processor = Processor(SETTINGS)
        outputs = run(processor, records, batch=1)
        assert len(outputs) == len(records)
        assert processor.stats["quarantined:update"] == poisoned > 1
        notices = processor.drain_notices()
        assert {(n.stage, n.error) for n in notices} == {
            ("update", "OverflowError: math range error")
        }
        assert all("feature:amount" in n.key for n in notices)
        assert len({n.key for n in notices}) == len(notices) < poisoned  # once per key
        assert processor.drain_notices() == []

    @pytest.mark.parametrize("batch", [7, 64, 500])
    def test_batches_give_the_per_record_outputs_and_state(
        self, monkeypatch: pytest.MonkeyPatch, batch: int
    ) -> None:
        _fail_on_poison(monkeypatch)
        _per_record_and_batched(_poisoned(), batch)

    def test_the_key_starts_again_from_a_fresh_detector(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _fail_on_poison(monkeypatch)
        records = full_stream()
        processor = Processor(SETTINGS)
        run(processor, records[:400])
        (state,) = [
            s
            for scope in processor.engine.scopes.values()
            for k, s in scope.items()
            if k.signal == "feature:amount"
            and k.model_id == "model-0"
            and k.variant == "production"
        ]
        assert state.window_events > 0
        state.detector.update(1.0)  # not fresh
        processor.engine.quarantine.record("update", str(state.key), OverflowError())
        state.reset()
        assert state.detector.to_state() == state.monitor.build().to_state()
        assert (state.window_events, state.window_start, state.open) == (0, None, False)


class TestFinding:
    @pytest.mark.parametrize("batch", [7, 64, 500])
    def test_a_finding_that_cannot_be_built_gives_the_per_record_outputs_and_state(
        self, monkeypatch: pytest.MonkeyPatch, batch: int
    ) -> None:
        """A key whose detector fired but whose finding fails to build is reset, and
        its values after that one go to the fresh detector, in a batch's column as
        from one record to the next."""
        original = feeding.finding_for

        def finding_for(state: Any, update: Any, kind: str) -> Any:
            if kind == "drift" and state.key.signal.startswith("feature:"):
                raise OverflowError("math range error")
            return original(state, update, kind)

        monkeypatch.setattr(feeding, "finding_for", finding_for)
        many = _per_record_and_batched(full_stream(), batch)
        assert many.stats["quarantined:update"] > 0


class TestSnapshot:
    @pytest.mark.parametrize("failure", ["raises", "infinite", "nan"])
    def test_a_bad_snapshot_is_replaced_by_a_fresh_detector(
        self, monkeypatch: pytest.MonkeyPatch, failure: str
    ) -> None:
        processor = Processor(SETTINGS)
        run(processor, full_stream()[:300])
        original = CUSUM._get_state
        # The fresh detectors that replace them snapshot fine. Held here, not only by id:
        # a freed detector's id can be reused by its fresh replacement, which then
        # "failed" too (seen once in a full run).
        doomed_detectors = [
            state.detector
            for scope in processor.engine.scopes.values()
            for state in scope.values()
            if isinstance(state.detector, CUSUM)
        ]
        doomed = {id(detector) for detector in doomed_detectors}
        cusum_keys = {
            key.state_key()
            for scope in processor.engine.scopes.values()
            for key, state in scope.items()
            if isinstance(state.detector, CUSUM)
        }
        assert doomed

        def get_state(self: CUSUM) -> dict[str, Any]:
            if id(self) not in doomed:
                return original(self)
            if failure == "raises":
                raise RecursionError("deep")
            state = original(self)
            state["s_pos"] = math.inf if failure == "infinite" else math.nan
            return state

        monkeypatch.setattr(CUSUM, "_get_state", get_state)
        for partition in (0, 1):
            entries = processor.engine.state_entries(partition)
            json.dumps(entries, allow_nan=False)  # finite: what a restore reads back
        assert processor.stats["quarantined:snapshot"] == len(doomed)
        monkeypatch.setattr(CUSUM, "_get_state", original)
        seen = set()
        for partition in (0, 1):
            for key, entry in processor.engine.state_entries(partition).items():
                if key in cusum_keys:
                    seen.add(key)
                    detector = entry["detector"]
                    assert detector == CUSUM(**detector["params"]).to_state()
        assert seen == cusum_keys

    def test_a_component_whose_snapshot_raises_is_reset_and_deleted(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def to_state(self: PolicyState) -> dict[str, Any]:
            raise TypeError("not serialisable")

        processor = Processor(SETTINGS)
        run(processor, full_stream()[:1500])
        monkeypatch.setattr(PolicyState, "to_state", to_state)
        entries = {p: processor.engine.state_entries(p) for p in (0, 1)}
        assert not any(k.startswith("policy:") for e in entries.values() for k in e)
        assert processor.stats["quarantined:snapshot"] > 0
        models = [m for part in processor.engine.partitions.values() for m in part.models.values()]
        assert all(m.policy is None for m in models)

    def test_finite_json(self) -> None:
        assert finite_json({"a": [1.0, {"b": (2.0, "x", None, True)}], "c": 3})
        assert not finite_json({"a": [1.0, {"b": [math.inf]}]})
        assert not finite_json([math.nan])
        assert finite_json("nan") and finite_json(10**400)


class TestPolicy:
    def test_a_failing_policy_resets_the_models_policy_state(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls = {"n": 0}
        original = AlertPolicy.decide

        def decide(self: AlertPolicy, *args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] % 5 == 0:
                raise ZeroDivisionError("division by zero")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(AlertPolicy, "decide", decide)
        processor = Processor(SETTINGS)
        outputs = run(processor, full_stream())
        assert len(outputs) == len(full_stream())
        assert processor.stats["quarantined:policy"] == calls["n"] // 5 > 0
        assert {n.stage for n in processor.drain_notices()} == {"policy"}
        assert processor.stats["alerts"] > 0  # the other findings still alert


class TestRecordLevel:
    def test_a_routing_failure_dead_letters_the_event_only(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        original = Engine._training

        def training(self: Engine, ctx: Any, event: Any) -> None:
            if event.step % 3 == 0:
                raise KeyError("boom")
            original(self, ctx, event)

        monkeypatch.setattr(Engine, "_training", training)
        processor = Processor(SETTINGS)
        outputs = run(processor, full_stream())
        reasons = [
            dict(m.headers)["dl_reason"]
            for messages in outputs
            for m in messages
            if m.kind == "dead_letter"
        ]
        assert b"processing_error" in reasons
        assert processor.stats["dead_letter:processing_error"] == reasons.count(b"processing_error")
        assert processor.stats["quarantined:route"] == reasons.count(b"processing_error")
        assert processor.stats["alerts"] > 0

    def test_a_decoder_failure_dead_letters_the_record(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def decode(self: RecordDecoder, record: Record) -> Any:
            raise RecursionError("maximum recursion depth exceeded")

        monkeypatch.setattr(RecordDecoder, "decode", decode)
        (message,) = Processor(SETTINGS).process(Record("t", 0, 4, b"[[[[", None))
        headers = dict(message.headers)
        assert headers["dl_reason"] == b"processing_error"
        assert b"RecursionError" in headers["dl_detail"]


def _warm_entries() -> dict[int, dict[str, Any]]:
    processor = Processor(SETTINGS)
    run(processor, full_stream())
    return {p: json.loads(json.dumps(processor.engine.state_entries(p))) for p in (0, 1)}


CORRUPTIONS: dict[str, Any] = {
    "detector state": lambda e: {**e, "detector": {**e["detector"], "state": {"s": "x"}}},
    "detector params": lambda e: {**e, "detector": {**e["detector"], "params": {"h": -1}}},
    "detector kind": lambda e: {**e, "detector": {**e["detector"], "detector": "adwin"}},
    "bookkeeping": lambda e: {**e, "seq": "nope", "window_events": None},
    "not a snapshot": lambda e: {"detector": [1, 2, 3]},
}


class TestRestore:
    @pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
    def test_a_corrupt_detector_snapshot_restores_fresh_and_is_rewritten(
        self, corruption: str
    ) -> None:
        entries = _warm_entries()[0]
        bad = sorted(k for k in entries if k.startswith("detector:"))[:3]
        for key in bad:
            entries[key] = CORRUPTIONS[corruption](entries[key])
        processor = Processor(SETTINGS)
        processor.restore(0, entries)  # must not raise
        assert processor.stats["quarantined:restore"] == len(bad)
        assert len(processor.drain_notices()) == len(bad)
        rewritten = processor.changed_state(0)
        for key in bad:
            entry = rewritten[key]
            assert entry is not None
            detector = entry["detector"]
            assert (
                detector
                == processor.engine.partitions[0]
                .key_state(
                    next(
                        k for k in processor.engine.partitions[0].keys[True] if k.state_key() == key
                    )
                )
                .detector.to_state()
            )  # type: ignore[union-attr]
        run(processor, [r for r in full_stream()[:700] if r.partition == 0])  # goes on  # goes on

    def test_corrupt_other_entries_are_dropped_and_deleted(self) -> None:
        entries = _warm_entries()[0]
        keys = sorted(entries)
        policy = next(k for k in keys if k.startswith("policy:"))
        model = next(k for k in keys if k.startswith("model:"))
        join = next((k for k in keys if k.startswith("join:")), None)
        entries[policy] = {"incidents": "x"}
        entries[model] = {"last_seen": "yesterday"}
        if join is not None:
            entries[join] = {"entries": [{"nonsense": 1}]}
        entries["meta"] = {"version": 1, "watermark": "soon"}
        entries['detector:["only two",1]'] = {}
        entries["weird:[[["] = {}
        processor = Processor(SETTINGS)
        processor.restore(0, entries)
        failed = {n.key for n in processor.drain_notices()}
        assert {policy, model, "meta", "weird:[[[", 'detector:["only two",1]'} <= failed
        changed = processor.changed_state(0)
        assert changed[policy] is None  # deleted: the model starts a fresh policy
        assert changed["weird:[[["] is None and changed['detector:["only two",1]'] is None
        assert changed["meta"] is not None and changed[model] is not None
        if join is not None:
            assert join in failed and changed[join] is None
        run(processor, [r for r in full_stream()[:700] if r.partition == 0])  # goes on

    def test_a_corrupt_pairing_entry_is_dropped(self) -> None:
        inputs = [{"topic": "kserve", "format": "kserve-cloudevents", "model_id": "m"}]
        processor = Processor(settings(inputs=inputs))
        processor.restore(0, {"pairs:kserve": {"halves": "garbage"}})
        assert processor.stats["quarantined:restore"] == 1
        assert processor.changed_state(0) == {"pairs:kserve": None}


class TestQuarantine:
    def test_each_key_and_stage_is_reported_once_and_pending_notices_are_bounded(
        self,
    ) -> None:
        from collections import Counter

        stats: Counter[str] = Counter()
        quarantine = Quarantine(stats)
        for _ in range(3):
            quarantine.record("update", "k", ValueError("x"))
        quarantine.record("snapshot", "k", ValueError("y"))
        assert [(n.stage, n.key) for n in quarantine.drain()] == [
            ("update", "k"),
            ("snapshot", "k"),
        ]
        assert stats["quarantined:update"] == 3
        for i in range(MAX_PENDING + 10):
            quarantine.record("restore", f"key-{i}", ValueError("z"))
        assert len(quarantine.drain()) == MAX_PENDING
        assert stats["quarantined:notices_dropped"] == 10
