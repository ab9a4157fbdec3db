"""The processor's two contracts with the runtime:

* ``process_batch`` gives, record for record, what ``process`` gives one at a time;
* processing records 0..k, taking the changed state, restoring it into a fresh
  processor and going on gives byte-identical outputs to an uninterrupted run (the
  basis of exactly-once recovery).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.core.join_codec import page_requests
from pipeline.core.processor import (
    DEAD_LETTER_HEADROOM,
    MAX_DEAD_LETTER_KEY,
    Processor,
    dead_letter,
)
from pipeline.core.records import Message, Record
from tests.pipeline.core.helpers import (
    FULL_CONFIG,
    batches,
    flat,
    full_reference,
    full_stream,
    settings,
)


def _snapshot(processor: Processor, into: dict[int, dict[str, Any]]) -> None:
    """Fold the changed state of every partition into ``into`` (None deletes)."""
    for partition in (0, 1):
        entries = into.setdefault(partition, {})
        for key, value in processor.changed_state(partition).items():
            if value is None:
                entries.pop(key, None)
            else:
                entries[key] = value


# FULL_CONFIG expires idle keys after 5 s of event time and so sweeps at almost every
# event, which resets the engine's routes; with a long expiry routes live across batches.
LONG_EXPIRY = {**FULL_CONFIG, "limits": {**FULL_CONFIG["limits"], "idle_expiry": "1h"}}
CONFIGS = {"full": FULL_CONFIG, "long_expiry": LONG_EXPIRY}


class TestReferenceStream:
    def test_the_stream_exercises_every_output_kind(self) -> None:
        outputs = full_reference()
        kinds = {m.kind for messages in outputs for m in messages}
        assert kinds == {"alert", "rollback", "dead_letter"}  # dead letters: model cap
        signals = {a["signal"] for a in flat(outputs, "alert")}
        assert {"feature:amount", "error", "shadow.error_rate", "golden"} <= signals
        assert {"training.legacy_val_loss"} <= signals
        processor = Processor(settings(**FULL_CONFIG))
        for r in full_stream():
            processor.process(r)
        stats = processor.stats
        assert stats["expired_keys"] > 0 and stats["refused:signal_cap"] > 0


class TestBatchEqualsPerRecord:
    @hsettings(max_examples=6, deadline=None)
    @given(cuts=st.lists(st.integers(0, 2700), max_size=12))
    def test_any_batching_gives_the_per_record_outputs(self, cuts: list[int]) -> None:
        processor = Processor(settings(**FULL_CONFIG))
        got: list[tuple[Message, ...]] = []
        for batch in batches(full_stream(), cuts):
            got.extend(tuple(m) for m in processor.process_batch(list(batch)))
        assert tuple(got) == full_reference()

    @hsettings(max_examples=6, deadline=None)
    @given(cuts=st.lists(st.integers(0, 2700), max_size=12))
    def test_routes_give_the_per_record_outputs(self, cuts: list[int]) -> None:
        """With a long idle expiry the engine's routes serve most of a batch."""
        reference = Processor(settings(**LONG_EXPIRY))
        expected = [tuple(reference.process(r)) for r in full_stream()]
        processor = Processor(settings(**LONG_EXPIRY))
        got: list[tuple[Message, ...]] = []
        for batch in batches(full_stream(), cuts):
            got.extend(tuple(m) for m in processor.process_batch(list(batch)))
        assert got == expected
        assert sum(1 for m in got if m) > 20


@functools.cache
def _reference_state(config: str) -> tuple[dict[int, dict[str, Any]], dict[int, list[Any]]]:
    """The per-record run's state entries and LRU orders, per partition."""
    processor = Processor(settings(**CONFIGS[config]))
    for r in full_stream():
        processor.process(r)
    return _state_of(processor)


def _by_request(entries: dict[str, Any]) -> dict[str, Any]:
    """Join pages group the requests first seen in one batch, so their grouping
    depends on the batching: compare the requests, not the pages."""
    out = {k: v for k, v in entries.items() if not k.startswith("join:")}
    for key, page in entries.items():
        if key.startswith("join:"):
            model, number = orjson.loads(key.removeprefix("join:"))
            for request in page_requests(number, page):
                out[f"join:{model}/{request['number']}"] = request
    return out


def _state_of(processor: Processor) -> tuple[dict[int, dict[str, Any]], dict[int, list[Any]]]:
    engine = processor.engine
    entries = {p: _by_request(engine.state_entries(p)) for p in (0, 1)}
    orders = {p: [list(lru) for lru in part.keys.values()] for p, part in engine.partitions.items()}
    return entries, orders


class TestBatchStateEqualsPerRecord:
    """Batching defers per-key bookkeeping (touch counters, last seen, LRU order):
    the state it leaves must be the per-record run's, entry for entry and in order,
    and the changed-state stream must add up to it."""

    @pytest.mark.parametrize("config", sorted(CONFIGS))
    @hsettings(max_examples=8, deadline=None)
    @given(cuts=st.lists(st.integers(0, 2700), max_size=12))
    def test_any_batching_leaves_the_per_record_state(self, config: str, cuts: list[int]) -> None:
        processor = Processor(settings(**CONFIGS[config]))
        folded: dict[int, dict[str, Any]] = {}
        for batch in batches(full_stream(), cuts):
            processor.process_batch(list(batch))
            _snapshot(processor, folded)
        entries, orders = _state_of(processor)
        expected_entries, expected_orders = _reference_state(config)
        assert orders == expected_orders
        assert entries == expected_entries
        assert {p: _by_request(e) for p, e in folded.items()} == expected_entries


class TestRestore:
    @hsettings(max_examples=6, deadline=None)
    @given(
        cut=st.integers(1, 2600),
        before=st.lists(st.integers(0, 2700), max_size=5),
        after=st.lists(st.integers(0, 2700), max_size=5),
    )
    def test_restored_processor_continues_byte_identically(
        self, cut: int, before: list[int], after: list[int]
    ) -> None:
        recs = full_stream()
        first = Processor(settings(**FULL_CONFIG))
        snapshot: dict[int, dict[str, Any]] = {}
        for batch in batches(recs[:cut], before):
            first.process_batch(list(batch))
            _snapshot(first, snapshot)  # the runtime collects after every batch
        # What the changelog holds, read back: plain JSON.
        stored = orjson.loads(orjson.dumps({str(p): e for p, e in snapshot.items()}))
        second = Processor(settings(**FULL_CONFIG))
        for partition, entries in stored.items():
            second.restore(int(partition), entries)
        got: list[tuple[Message, ...]] = []
        for batch in batches(recs[cut:], [c - cut for c in after]):
            got.extend(tuple(m) for m in second.process_batch(list(batch)))
        assert tuple(got) == full_reference()[cut:]

    def test_restore_then_snapshot_reproduces_the_entries(self) -> None:
        recs = full_stream()
        first = Processor(settings(**FULL_CONFIG))
        snapshot: dict[int, dict[str, Any]] = {}
        first.process_batch(list(recs[:1500]))
        _snapshot(first, snapshot)
        second = Processor(settings(**FULL_CONFIG))
        for partition, entries in snapshot.items():
            second.restore(partition, orjson.loads(orjson.dumps(entries)))
            assert second.engine.state_entries(partition) == entries

    def test_drop_forgets_a_partition(self) -> None:
        processor = Processor(settings(**FULL_CONFIG))
        processor.process_batch(list(full_stream()[:300]))
        processor.drop(0)
        assert processor.changed_state(0) == {}
        assert 0 not in processor.engine.scopes


class TestChangedState:
    def test_entries_are_plain_json(self) -> None:
        processor = Processor(settings(**FULL_CONFIG))
        processor.process_batch(list(full_stream()[:2000]))
        for partition in (0, 1):
            changed = processor.changed_state(partition)
            assert changed
            assert orjson.loads(orjson.dumps(changed)) == changed

    def test_a_batch_reports_only_what_it_touched(self) -> None:
        processor = Processor(settings(**FULL_CONFIG))
        recs = full_stream()
        processor.process_batch(list(recs[:1500]))
        processor.changed_state(0)
        processor.changed_state(1)
        # One more event of the unknown model tracked in partition 1: its model's
        # entries and meta only.
        (tracked,) = processor.engine.partitions[1].models
        nxt = next(
            r for r in recs[1500:] if r.key == tracked.encode() and b"prediction.v1" in r.value
        )
        processor.process_batch([nxt])
        assert processor.changed_state(0) == {}
        changed = processor.changed_state(1)
        assert set(changed) == {
            "meta",
            f'model:["{tracked}"]',
            *(k for k in changed if k.startswith(f'detector:["{tracked}"')),
        }
        assert 3 <= len(changed) <= 4

    def test_a_second_call_reports_nothing_new(self) -> None:
        processor = Processor(settings(**FULL_CONFIG))
        processor.process_batch(list(full_stream()[:500]))
        processor.changed_state(0)
        assert processor.changed_state(0) == {}


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_outputs_do_not_depend_on_the_batch_size(batch: int) -> None:
    processor = Processor(settings(**FULL_CONFIG))
    recs = list(full_stream())
    got = []
    for k in range(0, len(recs), batch):
        got.extend(tuple(m) for m in processor.process_batch(recs[k : k + batch]))
    assert tuple(got) == full_reference()


class TestDeadLetterBounds:
    """A dead letter always fits the producer's and broker's limits, whatever it holds."""

    def _size(self, message: Message) -> int:
        headers = sum(len(n) + len(v) for n, v in message.headers)
        return len(message.key or b"") + len(message.value or b"") + headers

    def test_small_records_keep_their_bytes(self) -> None:
        record = Record("t", 0, 5, b"{bad json", b"fraud")
        message = dead_letter(record, "malformed_json", "x")
        assert message.value == b"{bad json" and message.key == b"fraud"
        names = {n for n, _ in message.headers}
        assert "dl_truncated" not in names and "dl_sha256" not in names

    def test_a_value_over_the_limit_is_cut_with_its_length_and_hash(self) -> None:
        value = b"x" * 2_097_152
        message = dead_letter(Record("t", 0, 5, value, b"k"), "oversized", "big")
        headers = dict(message.headers)
        assert headers["dl_truncated"] == b"value=2097152"
        assert headers["dl_sha256"] == hashlib.sha256(value).hexdigest().encode()
        assert message.value == value[: len(message.value or b"")]
        assert self._size(message) <= 1_040_384 - DEAD_LETTER_HEADROOM

    def test_a_long_key_is_cut(self) -> None:
        message = dead_letter(Record("t", 0, 5, b"v", b"k" * 10_000), "unknown_model", "")
        assert message.key == b"k" * MAX_DEAD_LETTER_KEY
        assert dict(message.headers)["dl_truncated"] == b"key=10000"

    @given(
        st.integers(0, 3_000_000),
        st.integers(0, 20_000),
        st.text(max_size=3000),
        st.integers(16_384, 2_000_000),
    )
    @hsettings(max_examples=60, deadline=None)
    def test_never_over_the_limit(
        self, value_len: int, key_len: int, detail: str, limit: int
    ) -> None:
        record = Record("t" * 249, 2**31 - 1, 2**63 - 1, b"v" * value_len, b"k" * key_len)
        message = dead_letter(record, "schema_violation", detail, max_bytes=limit)
        assert self._size(message) <= limit - DEAD_LETTER_HEADROOM

    def test_the_processor_uses_the_configured_limit(self) -> None:
        processor = Processor(settings(runtime={"max_dead_letter_bytes": 20_000}))
        (message,) = processor.process(Record("t", 0, 0, b"{" * 50_000))
        assert self._size(message) <= 20_000 - DEAD_LETTER_HEADROOM
        assert dict(message.headers)["dl_truncated"] == b"value=50000"


class TestTombstones:
    """A Kafka tombstone (value None) is dead-lettered with its own reason, never
    decoded as an empty value, whatever format its topic carries."""

    @pytest.mark.parametrize(
        "inputs",
        [
            [],
            [{"topic": "kserve", "format": "kserve-cloudevents", "model_id": "m"}],
            [{"format": "seldon-oip", "model": "m"}],
        ],
    )
    def test_a_tombstone_is_dead_lettered_as_such(self, inputs: list[dict[str, Any]]) -> None:
        processor = Processor(settings(inputs=inputs), {"preds": "prediction"})
        topic = inputs[0].get("topic", "seldon.default.model.m.inputs") if inputs else "preds"
        (message,) = processor.process(Record(topic, 3, 17, None, b"model-0"))
        headers = dict(message.headers)
        assert message.kind == "dead_letter"
        assert headers["dl_reason"] == b"tombstone"
        assert headers["dl_offset"] == b"17" and headers["dl_partition"] == b"3"
        assert message.value is None and message.key == b"model-0"
        assert processor.stats["dead_letter:tombstone"] == 1

    def test_an_empty_value_is_not_a_tombstone(self) -> None:
        (message,) = Processor(settings(), {"preds": "prediction"}).process(
            Record("preds", 0, 0, b"")
        )
        assert dict(message.headers)["dl_reason"] == b"malformed_json"
