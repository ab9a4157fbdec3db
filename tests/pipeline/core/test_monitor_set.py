from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import detectors
from pipeline.config import load_settings, parse_settings
from pipeline.core.monitor_set import check_monitors, derived_monitors, monitor_set
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def _model(**spec: object) -> dict[str, object]:
    return {"models": {"fraud": spec}}


class TestMonitorSet:
    def test_features_alone_give_a_reasonable_monitor_set(self) -> None:
        settings = parse_settings(
            _model(
                features={"amount": "numeric", "age": "numeric", "country": "categorical"},
                classes=["approve", "decline"],
                text=True,
            ),
            environ={},
        )
        monitors = {(m.signal, m.detector) for m in monitor_set(settings.models["fraud"])}
        assert {
            ("feature:amount", "ks_window"),
            ("feature:age", "ks_window"),
            ("feature:country", "categorical_drift"),
            ("prediction", "categorical_sr"),
            ("prediction", "entropy"),
            ("confidence", "rolling_threshold"),
            ("output_text", "output_diversity"),
            ("token_logprobs", "token_entropy"),
            ("error", "adwin"),
            ("training.divergence", "cusum"),
            ("training.legacy_val_loss", "cusum"),
            ("grad_norm:*", "cusum"),
        } <= monitors

    def test_every_derived_monitor_runs(self) -> None:
        settings = parse_settings(
            _model(features={"a": "numeric", "b": "categorical"}, classes=["x"], text=True,
                   embedding=True),
            environ={},
        )  # fmt: skip
        derived = derived_monitors(settings.models["fraud"])
        assert len(derived) == 12
        for monitor in monitor_set(settings.models["fraud"]):
            monitor.build()  # the tuned parameters are accepted

    def test_keys_start_as_fresh_detectors_of_their_own(self) -> None:
        """``build`` copies the monitor's prototype (``fresh_copy``): each key gets a
        detector equal to one ``__init__`` builds, never the same object twice; a
        monitor made by ``dataclasses.replace`` builds from its own parameters."""
        settings = parse_settings(
            _model(features={"a": "numeric", "b": "categorical"}, classes=["x"], text=True),
            environ={},
        )
        for monitor in monitor_set(settings.models["fraud"]):
            first, second = monitor.build(), monitor.build()
            assert first is not second
            built = detectors.create(monitor.detector, **monitor.params)
            assert first.to_state() == second.to_state() == built.to_state()
        ks = next(m for m in monitor_set(settings.models["fraud"]) if m.detector == "ks_window")
        ks.build()
        smaller = dataclasses.replace(ks, params={**ks.params, "window_size": 50})
        assert smaller.build().to_state()["params"]["window_size"] == 50
        assert ks.build().to_state()["params"]["window_size"] == ks.params["window_size"]

    def test_explicit_monitors_replace_their_default(self) -> None:
        settings = parse_settings(
            _model(
                features=["amount"],
                default_monitors=True,
                monitors=[
                    {"signal": "feature:amount", "detector": "ks_window", "params": {"alpha": 0.01}}
                ],
            ),
            environ={},
        )
        (amount,) = [
            m for m in monitor_set(settings.models["fraud"]) if m.signal == "feature:amount"
        ]
        assert amount.params == {"alpha": 0.01}

    def test_explicit_monitors_alone_turn_defaults_off(self) -> None:
        settings = parse_settings(
            _model(features=["amount"], monitors=[{"signal": "confidence", "detector": "adwin"}]),
            environ={},
        )
        assert [m.signal for m in monitor_set(settings.models["fraud"])] == ["confidence"]

    def test_a_parameter_value_the_detector_refuses_names_the_key(self) -> None:
        monitor = {"signal": "confidence", "detector": "page_hinkley", "params": {"threshold": -1}}
        settings = parse_settings(_model(monitors=[monitor]), environ={})  # names are fine
        with pytest.raises(ConfigError, match=r"^models\.fraud\.monitors\[0\]\.params\.threshold"):
            check_monitors(settings)

    def test_check_config_resolves_the_monitor_set(self, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
        from pipeline.cli import main

        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "default_model:\n  monitors:\n"
            "    - {signal: confidence, detector: page_hinkley, params: {threshold: -1}}\n"
        )
        assert main(["check-config", str(bad)]) == 2
        assert "default_model.monitors[0].params.threshold" in capsys.readouterr().err

    def test_check_config_lists_the_effective_monitors_per_model(
        self, tmp_path: Path, capsys
    ) -> None:  # type: ignore[no-untyped-def]
        from pipeline.cli import main

        config = tmp_path / "derived.yaml"
        config.write_text(
            "models:\n  fraud:\n    features: {amount: numeric}\n    classes: [0, 1]\n"
            "    monitors:\n      - {signal: confidence, detector: page_hinkley}\n"
            "    default_monitors: true\n"
        )
        assert main(["check-config", str(config)]) == 0
        out = capsys.readouterr().out
        assert "models.fraud: 8 monitors" in out  # 7 derived, confidence explicit
        assert "derived  feature:amount: ks_window(alpha=0.0002" in out
        assert "derived  prediction: categorical_sr(arl0=100000.0" in out
        assert "explicit confidence: page_hinkley()" in out
        assert "rolling_threshold" not in out  # the explicit monitor replaces it

    def test_classes_may_be_ints_and_bools(self) -> None:
        ints = parse_settings({"models": {"m": {"classes": [0, 1, 2.0]}}}, environ={})
        assert ints.models["m"].classes == ["0", "1", "2"]
        bools = parse_settings({"models": {"m": {"classes": [True, False]}}}, environ={})
        assert bools.models["m"].classes == ["true", "false"]
        assert bools.models["m"].classification is True


class TestTargetArl0:
    """``policy.target_arl0`` sets every derived threshold; explicit params win."""

    def test_derived_thresholds_follow_the_target(self) -> None:
        model = parse_settings(
            _model(
                features={"a": "numeric", "b": "categorical"},
                classes=["x", "y"],
                text=True,
                embedding=True,
            ),
            environ={},
        ).models["fraud"]
        by_target = {
            target: {(m.signal, m.detector): m.params for m in monitor_set(model, "m", target)}
            for target in (1e4, 1e5, 1e6)
        }
        for key, params in by_target[1e5].items():
            moved = {p for p in params if by_target[1e4][key][p] != by_target[1e6][key][p]}
            assert len(moved) == 1, (key, moved)  # exactly its threshold moves
        ks = ("feature:a", "ks_window")
        assert by_target[1e5][ks]["alpha"] == pytest.approx(2e-4)
        assert by_target[1e6][ks]["alpha"] == pytest.approx(2e-5)
        conf = ("confidence", "rolling_threshold")
        assert by_target[1e4][conf]["k"] < by_target[1e5][conf]["k"] < by_target[1e6][conf]["k"]
        # learned from the warm-up: the detector gets the target itself
        for learned in (("token_logprobs", "token_entropy"), ("embedding", "embedding_drift")):
            assert by_target[1e5][learned]["target_arl0"] == 1e5

    def test_explicit_params_win_over_the_target(self) -> None:
        monitor = {"signal": "confidence", "detector": "rolling_threshold",
                   "params": {"window_size": 50}}  # fmt: skip
        model = parse_settings(_model(monitors=[monitor]), environ={}).models["fraud"]
        for target in (1e3, 1e7):
            (resolved,) = monitor_set(model, "m", target)
            assert resolved.params == {"window_size": 50}  # the detector's default k

    def test_the_engine_and_check_config_use_the_policy_setting(
        self, tmp_path: Path, capsys
    ) -> None:  # type: ignore[no-untyped-def]
        from pipeline.cli import main
        from pipeline.core.engine import Engine

        raw = {"models": {"m": {"features": {"a": "numeric"}}}, "policy": {"target_arl0": 1e6}}
        engine = Engine(parse_settings(raw, environ={}))
        (ks,) = [m for m in engine._plans["m"].monitors if m.detector == "ks_window"]
        assert ks.params["alpha"] == pytest.approx(2e-5)
        config = tmp_path / "c.yaml"
        config.write_text(
            "policy: {target_arl0: 1000000}\nmodels:\n  m:\n    features: {a: numeric}\n"
        )
        assert main(["check-config", str(config)]) == 0
        assert "ks_window(alpha=2e-05" in capsys.readouterr().out

    def test_a_target_out_of_range_names_the_setting(self) -> None:
        with pytest.raises(ConfigError, match=r"policy\.target_arl0"):
            parse_settings({"policy": {"target_arl0": 10}}, environ={})


class TestCalibration:
    def test_calibration_target_sets_the_threshold(self) -> None:
        import numpy as np

        values = np.random.default_rng(0).beta(23, 2, size=1500).round(4).tolist()
        monitor = {
            "signal": "confidence",
            "detector": "rolling_threshold",
            "params": {"window_size": 50, "reference_size": 300, "patience": 1},
            "calibrate": {"target_arl0": 500, "values": values, "n_runs": 40},
        }
        settings = parse_settings(_model(monitors=[monitor]), environ={})
        (resolved,) = monitor_set(settings.models["fraud"])
        assert resolved.calibration is not None
        assert resolved.params["k"] == resolved.calibration["threshold"] != 5.0
        assert 250 < resolved.calibration["estimated_arl0"] < 1000
        assert settings.models["fraud"].monitors[0].params.get("k") is None  # config unchanged

    def test_the_full_example_calibrates_from_its_reference_file(self) -> None:
        settings = load_settings(REPO / "deploy" / "examples" / "full.yaml", environ={})
        assert any(
            m.calibration is not None
            for name, spec in settings.models.items()
            for m in monitor_set(spec, f"models.{name}")
        )

    def test_an_unreadable_reference_names_the_key(self, tmp_path: Path) -> None:
        monitor = {
            "signal": "confidence",
            "detector": "page_hinkley",
            "calibrate": {"target_arl0": 500, "reference": "missing.json"},
        }
        settings = parse_settings(_model(monitors=[monitor]), environ={}, base_dir=tmp_path)
        with pytest.raises(
            ConfigError, match=r"^models\.fraud\.monitors\[0\]\.calibrate\.reference"
        ):
            check_monitors(settings)


class TestSharedPlans:
    def test_models_described_alike_share_one_plan(self) -> None:
        from pipeline.core.engine import Engine

        alike = {"features": {"amount": "numeric"}, "classes": ["a", "b"]}
        settings = parse_settings(
            {"models": {"m1": alike, "m2": dict(alike), "m3": {"features": {"x": "numeric"}}}},
            environ={},
        )
        engine = Engine(settings)
        assert engine.plan_for("m1") is engine.plan_for("m2")
        assert engine.plan_for("m3") is not engine.plan_for("m1")
        signals = {w.signal for w in engine.plan_for("m3").feature}  # type: ignore[union-attr]
        assert signals == {"feature:x"}

    def test_a_refused_parameter_names_the_first_model_that_has_it(self) -> None:
        from pipeline.core.engine import Engine

        bad = {"monitors": [{"signal": "confidence", "detector": "ks_window",
                             "params": {"window_size": -1}}]}  # fmt: skip
        settings = parse_settings({"models": {"b": bad, "a": dict(bad)}}, environ={})
        with pytest.raises(ConfigError, match=r"models\.b\.monitors\[0\]\.params"):
            Engine(settings)
