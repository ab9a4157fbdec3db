from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipeline.core.engine import Engine
from pipeline.core.join_codec import decode_pages, page_requests
from pipeline.core.join_store import PAGE_ROWS
from pipeline.core.labels import NO_JOINS, JoinBuffer, error_of, request_hash
from pipeline.core.monitor import MonitorKey, Origin
from pipeline.core.processor import Processor
from pipeline.generate import DriftSpec, GeneratorConfig
from tests.pipeline.core.helpers import flat, label, prediction, records, run, settings

ERROR_MONITOR = {"signal": "error", "detector": "adwin", "params": {"delta": 0.01}}


def _engine(**labels: Any) -> Engine:
    return Engine(
        settings(models={"m": {"monitors": [ERROR_MONITOR], "labels": labels or {"ttl": "10s"}}})
    )


def _feed(engine: Engine, events: list[Any]) -> None:
    engine.process([(e, Origin("in", 0, i)) for i, e in enumerate(events)])


def _counters(engine: Engine) -> dict[str, int]:
    return engine.partitions[0].models["m"].counters


def _error_updates(engine: Engine) -> int:
    key = MonitorKey("m", "1", "production", "error", "adwin")
    state = engine.scopes[0].get(key)
    return 0 if state is None else state.window_events


class TestErrorOf:
    @pytest.mark.parametrize(
        ("prediction", "label", "classification", "error"),
        [
            ("approve", "approve", None, 0.0),
            ("approve", "decline", None, 1.0),
            (True, "true", None, 0.0),
            (1.0, 1, True, 0.0),
            (2.5, 1.0, None, 1.5),
            (2.5, 1.0, False, 1.5),
            (2.5, "x", False, None),
        ],
    )
    def test_errors(
        self, prediction: Any, label: Any, classification: bool | None, error: float | None
    ) -> None:
        assert error_of(prediction, label, classification) == error


class TestJoin:
    def test_label_after_its_prediction(self) -> None:
        engine = _engine()
        _feed(engine, [prediction(t=0, request_id="r1"), label("r1", "approve", 5)])
        assert _counters(engine)["joined"] == 1
        assert _error_updates(engine) == 1

    def test_label_before_its_prediction(self) -> None:
        engine = _engine()
        _feed(engine, [label("r1", "decline", 0), prediction(t=3, request_id="r1")])
        assert _counters(engine)["joined"] == 1
        assert _error_updates(engine) == 1

    def test_label_after_its_ttl_is_late(self) -> None:
        engine = _engine()
        _feed(engine, [prediction(t=0, request_id="r1"), label("r1", "approve", 15)])
        assert _counters(engine)["late"] == 1
        assert _counters(engine)["joined"] == 0
        assert _error_updates(engine) == 0

    def test_label_long_after_is_an_orphan(self) -> None:
        engine = _engine()
        _feed(
            engine,
            [
                prediction(t=0, request_id="r1"),
                label("r1", "approve", 25),  # the prediction left the buffer at 20 s
                prediction(t=60, request_id="r2"),  # time moves on: the label expires too
            ],
        )
        counters = _counters(engine)
        assert counters["unlabeled"] == 1
        assert counters["orphan"] == 1
        assert counters["joined"] == 0

    def test_duplicate_labels_count_once(self) -> None:
        engine = _engine()
        _feed(
            engine,
            [prediction(t=0, request_id="r1"), label("r1", "approve", 1), label("r1", "x", 2)],
        )
        assert _counters(engine)["joined"] == 1
        assert _counters(engine)["duplicate_labels"] == 1

    def test_the_buffer_is_bounded(self) -> None:
        engine = _engine(ttl="1h", max_pending=10)
        _feed(engine, [prediction(t=i, request_id=f"r{i}") for i in range(25)])
        assert len(engine.partitions[0].models["m"].joins) == 10
        assert _counters(engine)["evicted"] == 15

    def test_models_without_error_monitors_keep_no_buffer(self) -> None:
        engine = Engine(
            settings(models={"m": {"monitors": [{"signal": "confidence", "detector": "adwin"}]}})
        )
        _feed(engine, [prediction(t=0, request_id="r1"), label("r1", "approve", 1)])
        assert len(engine.partitions[0].models["m"].joins) == 0
        assert engine.stats["labels_unused"] == 1

    def test_buffer_order_survives_a_snapshot(self) -> None:
        buffer = JoinBuffer()
        counters = dict.fromkeys(("joined", "late", "orphan", "unlabeled", "evicted"), 0)
        for i in range(5):
            buffer.add_prediction(
                f"r{i}", "production", "1", "a", i, None,
                batch=i, ttl=10, max_pending=3, classification=True, counters=counters,
            )  # fmt: skip
        assert _hashes(buffer) == [request_hash(f"r{i}") for i in (2, 3, 4)]
        assert counters["evicted"] == 2 and counters["unlabeled"] == 2
        pages = [(page, buffer.page_state(page)) for page in buffer.pages]
        restored = JoinBuffer(decode_pages(pages, None))  # type: ignore[arg-type]
        assert _hashes(restored) == _hashes(buffer)


def _hashes(buffer: JoinBuffer) -> list[int]:
    store = buffer.store
    return [int(store.hashes[store.slot(row)]) for row in range(store.size)]


class TestErrorStream:
    def test_a_rising_error_rate_is_detected_by_ddm(self) -> None:
        processor = Processor(
            settings(
                models={
                    "model-0": {
                        "classes": ["approve", "review", "decline"],
                        "default_monitors": False,
                        "monitors": [{"signal": "error", "detector": "ddm"}],
                    }
                }
            )
        )
        stream = GeneratorConfig(
            events=6000,
            labels=True,
            label_delay=20,
            label_jitter=40,
            drifts=(DriftSpec("error", at=3000, magnitude=0.25),),
        )
        alerts = flat(run(processor, records(stream)), "alert")
        assert alerts, "the error-rate rise was not detected"
        first = alerts[0]
        assert first["signal"] == "error"
        assert first["detector"]["name"] == "ddm"
        assert first["evidence"]["labels"]["joined"] > 3000
        # detected after the change (labels of position >= 3000 arrive from ~3020 on)
        assert first["detected_at"] > "2026-01-01T00:05:00"


class TestGeneratedLabels:
    def _counters(self, **stream: Any) -> dict[str, int]:
        processor = Processor(
            settings(
                models={
                    "model-0": {
                        "default_monitors": False,
                        "monitors": [ERROR_MONITOR],
                        "labels": {"ttl": "5s"},
                    }
                }
            )
        )
        run(processor, records(GeneratorConfig(events=500, labels=True, **stream)))
        return {k.removeprefix("labels:"): v for k, v in processor.stats.items() if "labels:" in k}

    def test_labels_before_their_predictions_join(self) -> None:
        counters = self._counters(label_delay=-20)  # 2 s early
        assert counters["joined"] == 500
        assert counters["late"] == 0

    def test_labels_after_their_ttl_are_counted_late(self) -> None:
        counters = self._counters(label_delay=80)  # 8 s: beyond the 5 s ttl
        assert counters["joined"] == 0
        assert counters["late"] == 500


class TestTopicSkew:
    def test_a_label_topic_consumed_late_still_joins(self) -> None:
        engine = _engine(ttl="5s")
        predictions = [prediction(t=i, request_id=f"r{i}") for i in range(100)]
        labels = [label(f"r{i}", "approve", i + 1) for i in range(100)]
        # The consumer reads the whole prediction topic before the label topic.
        engine.process([(e, Origin("predictions", 0, i)) for i, e in enumerate(predictions)])
        engine.process([(e, Origin("labels", 0, i)) for i, e in enumerate(labels)])
        assert _counters(engine)["joined"] == 100

    def test_within_one_topic_time_expires_the_buffer(self) -> None:
        engine = _engine(ttl="5s")
        events: list[Any] = [prediction(t=i, request_id=f"r{i}") for i in range(100)]
        events.append(label("r0", "approve", 100))
        _feed(engine, events)
        assert _counters(engine)["joined"] == 0
        assert len(engine.partitions[0].models["m"].joins) <= 12


class TestJoinPages:
    """Pending requests are written as pages: one per model and batch."""

    def test_a_batch_of_predictions_writes_one_page(self) -> None:
        engine = _engine()
        _feed(engine, [prediction(t=i * 0.01, request_id=f"r{i}") for i in range(200)])
        joins = {k: v for k, v in engine.changed_state(0).items() if k.startswith("join:")}
        ((key, page),) = joins.items()
        assert page["version"] == 2 and page["rows"] == 200
        requests = page_requests(orjson.loads(key.removeprefix("join:"))[1], page)
        assert [r["hash"] for r in requests] == [request_hash(f"r{i}") for i in range(200)]

    def test_a_page_holds_at_most_page_rows_requests(self) -> None:
        engine = _engine(ttl="1h", max_pending=10_000)
        _feed(engine, [prediction(t=i * 0.01, request_id=f"r{i}") for i in range(PAGE_ROWS + 10)])
        pages = [v for k, v in engine.changed_state(0).items() if k.startswith("join:")]
        assert sorted(p["rows"] for p in pages) == [10, PAGE_ROWS]

    def test_one_event_at_a_time_every_request_is_its_own_page(self) -> None:
        engine = _engine()
        for i in range(5):
            _feed(engine, [prediction(t=i * 0.01, request_id=f"r{i}")])
        joins = [k for k in engine.changed_state(0) if k.startswith("join:")]
        assert len(joins) == 5

    def test_a_label_rewrites_only_its_page_and_an_emptied_page_is_deleted(self) -> None:
        engine = _engine(ttl="1s", max_pending=1000)
        _feed(engine, [prediction(t=i * 0.01, request_id=f"a{i}") for i in range(50)])
        _feed(engine, [prediction(t=1 + i * 0.01, request_id=f"b{i}") for i in range(50)])
        pages = [k for k in engine.changed_state(0) if k.startswith("join:")]
        assert len(pages) == 2
        _feed(engine, [label("b3", "approve", 1.2)])
        changed = engine.changed_state(0)
        assert [k for k in changed if k.startswith("join:")] == [pages[1]]
        # 2 x ttl later every request of both pages has expired: both are deleted.
        _feed(engine, [prediction(t=10, request_id="c0"), label("c0", "approve", 10)])
        changed = engine.changed_state(0)
        assert changed[pages[0]] is None and changed[pages[1]] is None

    def test_a_pending_prediction_packs_into_at_most_48_bytes(self) -> None:
        engine = _engine(ttl="1h", max_pending=10_000)
        _feed(engine, [prediction(t=i * 0.01, request_id=f"r{i}") for i in range(2000)])
        (page,) = [v for k, v in engine.changed_state(0).items() if k.startswith("join:")]
        assert len(orjson.dumps(page)) / 2000 <= 48
        assert engine.partitions[0].models["m"].joins.nbytes() / 2000 <= 48


class TestNoJoinState:
    """No label-fed monitor, or no labels topic: the model keeps no join at all."""

    def test_a_model_without_a_label_fed_monitor(self) -> None:
        engine = Engine(
            settings(models={"m": {"monitors": [{"signal": "confidence", "detector": "adwin"}]}})
        )
        _feed(engine, [prediction(t=i, request_id=f"r{i}") for i in range(50)])
        assert engine.partitions[0].models["m"].joins is NO_JOINS
        state = engine.state_entries(0)
        assert not [k for k in state if k.startswith("join:")]
        assert "join_next" not in state['model:["m"]']

    def test_no_labels_topic_means_no_join_for_the_default_set(self) -> None:
        config = settings(topics={"labels": None}, models={"m": {"classes": ["a", "b"]}})
        assert config.topics.labels not in config.topics.inputs()
        processor = Processor(config)
        assert processor.engine.plan_for("m").error  # the default set has a label-fed monitor
        events = [prediction(t=i, request_id=f"r{i}") for i in range(50)]
        processor.engine.process([(e, Origin("in", 0, i)) for i, e in enumerate(events)])
        processor.engine.process([(label("r1", "a", 60), Origin("in", 0, 99))])
        assert processor.engine.partitions[0].models["m"].joins is NO_JOINS
        assert not [k for k in processor.engine.state_entries(0) if k.startswith("join:")]
        assert processor.engine.stats["labels_unused"] == 1


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_request_hash_is_blake2b_of_the_utf8_id(request_id: str) -> None:
    """The hash is stored in the changelog: it must never change (a copy of one
    BLAKE2b object, made once, is what computes it)."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    assert request_hash(request_id) == int.from_bytes(digest, "little")
