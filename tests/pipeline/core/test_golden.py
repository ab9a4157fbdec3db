from __future__ import annotations

from pipeline.config import GoldenSpec
from pipeline.core.golden import GoldenState, golden_input
from pipeline.core.processor import Processor
from pipeline.generate import DriftSpec, GeneratorConfig
from tests.pipeline.core.helpers import flat, prediction, records, run, settings


class TestGoldenState:
    def test_first_answer_is_the_baseline_and_a_change_is_found(self) -> None:
        spec = GoldenSpec()
        state = GoldenState()
        first = prediction(request_id="g1", prediction="approve", golden=True)
        assert state.check(spec, first, 0) == (None, True)
        assert state.check(spec, first, 1) == (None, False)
        changed = prediction(request_id="g1", prediction="decline", golden=True, model_version="2")
        check, _ = state.check(spec, changed, 2)
        assert check is not None
        assert check.expected["prediction"] == "approve"
        assert check.got["prediction"] == "decline"
        assert check.baseline_version == "1"

    def test_configured_outputs_and_tolerance(self) -> None:
        spec = GoldenSpec(expected={"g1": 0.5}, tolerance=0.01)
        state = GoldenState()
        assert state.check(spec, prediction(request_id="g1", prediction=0.505), 0)[0] is None
        check, _ = state.check(spec, prediction(request_id="g1", prediction=0.6), 0)
        assert check is not None and check.configured

    def test_match_by_input_feature(self) -> None:
        spec = GoldenSpec(match="feature:probe")
        event = prediction(request_id="r", features={"probe": 3.0}, golden=True)
        assert golden_input(spec, event) == "3"

    def test_baselines_are_bounded(self) -> None:
        spec = GoldenSpec(max_inputs=2)
        state = GoldenState()
        for k in range(4):
            state.check(spec, prediction(request_id=f"g{k}"), k)
        assert len(state.baselines) == 2 and state.refused == 2


class TestGoldenAlerts:
    def test_any_change_of_a_golden_answer_alerts(self) -> None:
        processor = Processor(
            settings(
                models={
                    "model-0": {
                        "default_monitors": False,
                        "golden": {"expected": {"golden-0": "approve"}},
                    }
                },
                policy={"cooldown": "1s"},
            )
        )
        stream = GeneratorConfig(
            events=3000,
            golden_every=100,
            golden_inputs=3,
            drifts=(DriftSpec("golden", at=2000, magnitude=1.0),),
        )
        alerts = flat(run(processor, records(stream)), "alert")
        assert {a["segment"]["input"] for a in alerts} == {"golden-0", "golden-1", "golden-2"}
        assert all(a["signal"] == "golden" and a["severity"] == "critical" for a in alerts)
        assert all(a["detected_at"] >= "2026-01-01T00:03:20" for a in alerts)
        configured = [a for a in alerts if a["segment"]["input"] == "golden-0"]
        assert configured[0]["evidence"]["configured"] is True

    def test_golden_probes_do_not_feed_drift_monitors(self) -> None:
        processor = Processor(
            settings(
                models={
                    "model-0": {
                        "monitors": [{"signal": "prediction", "detector": "categorical_drift"}],
                        "golden": {},
                    }
                }
            )
        )
        run(processor, records(GeneratorConfig(events=200, golden_every=10)))
        (state,) = processor.engine.scopes[0].values()
        assert state.window_events == 200
