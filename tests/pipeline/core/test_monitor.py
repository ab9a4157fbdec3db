from __future__ import annotations

from collections.abc import Callable

from pipeline.config import Settings
from pipeline.core.engine import Engine, Refused
from pipeline.core.monitor import (
    MonitorKey,
    Origin,
)
from pipeline.core.processor import Processor
from pipeline.core.records import Record
from pipeline.events import LabelEvent
from pipeline.generate import DriftSpec, GeneratorConfig
from tests.pipeline.core.helpers import T0, feed, prediction, records, run, settings


class TestRouting:
    def test_keys_are_per_model_version_signal(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        engine = Engine(make_settings())
        feed(engine, make_records(events=300, models=3))
        keys = sorted(str(k) for k in engine.scopes[0])
        assert keys == sorted(
            f"model-{m}/1/{s}/page_hinkley"
            for m in range(3)
            for s in ("confidence", "feature:amount")
        )

    def test_detects_the_injected_drift_only(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        drift = DriftSpec(signal="feature:amount", at=2000, magnitude=2.0, model="model-0")
        outputs = feed(Engine(make_settings()), make_records(events=4000, models=2, drifts=[drift]))
        alerts = [o for out in outputs for o in out]
        assert alerts, "the injected drift was not detected"
        assert {(a.model_id, a.signal) for a in alerts} == {("model-0", "feature:amount")}
        assert all(a.source.offset >= 2000 for a in alerts)

    def test_unknown_models_are_dead_lettered_when_rejected(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        processor = Processor(make_settings(unknown_models="reject"))
        outputs = run(processor, make_records(events=50))
        assert all(len(o) == 1 and o[0].kind == "dead_letter" for o in outputs)
        assert dict(outputs[0][0].headers)["dl_reason"] == b"unknown_model"
        assert processor.engine.live_keys() == 0

    def test_values_unfit_for_the_detector_are_skipped_and_counted(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        settings_ = make_settings(
            default_model={"monitors": [{"signal": "feature:country", "detector": "page_hinkley"}]}
        )
        engine = Engine(settings_)
        feed(engine, make_records(events=20))
        assert engine.stats["signal_type_mismatch:feature:country"] == 20

    def test_versions_and_variants_get_their_own_detectors(self) -> None:
        engine = Engine(
            settings(default_model={"monitors": [{"signal": "confidence", "detector": "adwin"}]})
        )
        events = [
            prediction(t=0, confidence=0.9),
            prediction(t=1, confidence=0.9, model_version="2"),
            prediction(t=2, confidence=0.9, model_version="2", variant="shadow"),
        ]
        engine.process([(e, Origin("p", 0, i)) for i, e in enumerate(events)])
        assert sorted(str(k) for k in engine.scopes[0]) == [
            "m/1/confidence/adwin",
            "m/2/confidence/adwin",
            "m/2@shadow/confidence/adwin",
        ]


class TestSegmentsAndWildcards:
    def test_segments_are_capped_with_an_other_bucket(self) -> None:
        engine = Engine(
            settings(
                default_model={
                    "monitors": [
                        {
                            "signal": "confidence",
                            "detector": "adwin",
                            "segment_by": "country",
                            "max_segments": 3,
                        }
                    ]
                }
            )
        )
        feed(engine, records(GeneratorConfig(events=400, seed=2)))
        segments = sorted(k.segment for k in engine.scopes[0])
        assert len(segments) == 4
        assert "country=__other__" in segments

    def test_wildcard_signals_are_capped(self) -> None:
        engine = Engine(
            settings(
                default_model={
                    "monitors": [{"signal": "feature:*", "detector": "adwin", "max_signals": 3}]
                }
            )
        )
        feed(engine, records(GeneratorConfig(events=50, numeric_features=6)))
        assert len(engine.scopes[0]) == 3
        assert engine.stats["refused:signal_cap"] > 0

    def test_an_explicit_monitor_wins_over_the_wildcard(self) -> None:
        engine = Engine(
            settings(
                default_model={
                    "monitors": [
                        {"signal": "feature:*", "detector": "adwin"},
                        {"signal": "feature:amount", "detector": "adwin", "params": {"delta": 0.1}},
                    ]
                }
            )
        )
        feed(
            engine, records(GeneratorConfig(events=30, numeric_features=2, categorical_features=0))
        )
        states = engine.scopes[0]
        amount = states[MonitorKey("model-0", "1", "production", "feature:amount", "adwin")]
        assert amount.monitor.params == {"delta": 0.1}
        assert len(states) == 2


class TestBounds:
    def test_idle_keys_expire_by_event_time_and_are_reported_deleted(self) -> None:
        engine = Engine(
            settings(
                limits={"idle_expiry": "1h"},
                default_model={"monitors": [{"signal": "confidence", "detector": "adwin"}]},
            )
        )
        engine.process([(prediction("a", 0, confidence=0.5), Origin("p", 0, 0))])
        engine.changed_state(0)
        # Another model keeps the partition's event time moving.
        engine.process(
            [
                (prediction("b", 3600 * k / 10, confidence=0.5), Origin("p", 0, k))
                for k in range(1, 13)
            ]
        )
        assert [k.model_id for k in engine.scopes[0]] == ["b"]
        changed = engine.changed_state(0)
        gone = MonitorKey("a", "1", "production", "confidence", "adwin").state_key()
        assert changed[gone] is None
        assert changed['model:["a"]'] is None

    def test_configured_models_evict_unknown_keys_at_the_cap(self) -> None:
        engine = Engine(
            settings(
                limits={"max_keys": 2},
                models={"vip": {"monitors": [{"signal": "confidence", "detector": "adwin"}]}},
                default_model={"monitors": [{"signal": "confidence", "detector": "adwin"}]},
            )
        )
        events = [prediction(m, i, confidence=0.5) for i, m in enumerate(["x", "y", "z", "vip"])]
        engine.process([(e, Origin("p", 0, i)) for i, e in enumerate(events)])
        assert sorted(k.model_id for k in engine.scopes[0]) == ["vip", "y"]
        assert engine.stats["refused:key_cap"] == 1
        assert engine.stats["evicted_keys"] == 1

    def test_a_million_adversarial_model_ids_stay_under_the_caps(self) -> None:
        limits = {"max_keys": 500, "max_unknown_models": 200, "idle_expiry": "1m"}
        engine = Engine(
            settings(
                limits=limits,
                default_model={"monitors": [{"signal": "confidence", "detector": "adwin"}]},
            )
        )
        # Pre-decoded events: a pool of validated ones whose model id and time are
        # rewritten in place for every batch (the engine keeps no reference to them).
        from datetime import timedelta

        pool = [
            LabelEvent(event_id="e", model_id="x", request_id="r", label=1.0, timestamp=T0)
            for _ in range(1000)
        ]
        n = 1_000_000
        refused = peak_models = peak_entries = 0
        for start in range(0, n, 1000):
            stamp = T0 + timedelta(seconds=start // 1000)
            for k, e in enumerate(pool):
                e.__dict__["model_id"] = f"adv-{start + k}"
                e.__dict__["timestamp"] = stamp
            outputs = engine.process(
                [(e, Origin("labels", 0, start + k)) for k, e in enumerate(pool)]
            )
            refused += sum(1 for out in outputs if out and isinstance(out[0], Refused))
            part = engine.partitions[0]
            peak_models = max(peak_models, len(part.models))
            peak_entries = max(peak_entries, len(engine.changed_state(0)))
            assert engine.live_keys() <= 500
        assert peak_models <= 200
        assert refused > 0.9 * n
        # Idle models expired: slots were reused over the run.
        assert engine.stats["expired_models"] > 200
        assert peak_entries <= 2 * 200 + 1
