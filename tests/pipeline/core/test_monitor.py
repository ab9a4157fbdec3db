from __future__ import annotations

from collections.abc import Callable

from pipeline.config import Settings
from pipeline.core.decode import Decoder
from pipeline.core.monitor import Monitor, Origin
from pipeline.core.records import Record
from pipeline.generate import DriftSpec


def _feed(monitor: Monitor, records: list[Record]) -> list:
    decoder = Decoder(1 << 20)
    detections = []
    for r in records:
        detections += monitor.process(
            decoder.decode(r.value), Origin(r.topic, r.partition, r.offset)
        )
    return detections


class TestMonitor:
    def test_keys_are_per_model_version_signal(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        monitor = Monitor(make_settings())
        _feed(monitor, make_records(events=300, models=3))
        keys = sorted(str(k) for k in monitor.scopes[0])
        assert keys == sorted(
            f"model-{m}/1/{s}/page_hinkley"
            for m in range(3)
            for s in ("confidence", "feature:amount")
        )

    def test_detects_the_injected_drift_only(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        drift = DriftSpec(signal="feature:amount", at=2000, magnitude=2.0, model="model-0")
        detections = _feed(
            Monitor(make_settings()), make_records(events=4000, models=2, drifts=[drift])
        )
        drifts = [d for d in detections if d.drift]
        assert drifts, "the injected drift was not detected"
        assert {(d.key.model_id, d.key.signal) for d in drifts} == {("model-0", "feature:amount")}
        assert all(d.origin.offset >= 2000 for d in drifts)

    def test_unknown_models_are_not_monitored_when_rejected(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        monitor = Monitor(make_settings(unknown_models="reject"))
        assert _feed(monitor, make_records(events=50)) == []
        assert monitor.live_keys() == 0
        assert monitor.stats["unmonitored_model"] == 50

    def test_values_unfit_for_the_detector_are_skipped_and_counted(
        self, make_settings: Callable[..., Settings], make_records: Callable[..., list[Record]]
    ) -> None:
        settings = make_settings(
            default_model={"monitors": [{"signal": "feature:country", "detector": "page_hinkley"}]}
        )
        monitor = Monitor(settings)
        _feed(monitor, make_records(events=20))
        assert monitor.stats["signal_type_mismatch:feature:country"] == 20
