from __future__ import annotations

from typing import Any

import pytest

from pipeline.core.processor import Processor
from pipeline.core.signals import values_of
from pipeline.core.training import Checkpoint, CheckpointRegistry
from pipeline.generate import DriftSpec, GeneratorConfig
from tests.pipeline.core.helpers import flat, records, run, settings, training

# A config that names only the model and its features: the training-side monitors
# come from the defaults.
ONLY_FEATURES = {"models": {"model-0": {"features": ["amount"]}}}


def _alerts(*drifts: DriftSpec) -> list[dict[str, Any]]:
    processor = Processor(settings(**ONLY_FEATURES))
    stream = GeneratorConfig(
        events=1400, numeric_features=1, categorical_features=0, training_every=2, drifts=drifts
    )
    return flat(run(processor, records(stream)), "alert")


class TestTrainingSignals:
    def test_divergence_is_validation_minus_training_loss(self) -> None:
        event = training(metrics={"train_loss": 0.3, "val_loss": 0.45})
        assert values_of("training.divergence", event) == [
            ("training.divergence", 0.15000000000000002)
        ]
        assert values_of("training.divergence", training(metrics={"val_loss": 0.4})) == []

    def test_validation_loss_rising_while_training_loss_is_flat(self) -> None:
        alerts = _alerts(DriftSpec("training.val_loss", at=800, magnitude=6.0))
        assert [a["signal"] for a in alerts][:1] == ["training.divergence"]
        first = alerts[0]
        assert first["variant"] == "training"
        assert first["model_version"] == "model-0-finetune-1"  # the run
        assert first["detected_at"] >= "2026-01-01T00:01:20"
        assert first["evidence"]["checkpoint_id"].startswith("model-0-finetune-1-step")

    def test_both_losses_rising_together_is_not_a_divergence(self) -> None:
        alerts = _alerts(
            DriftSpec("training.val_loss", at=800, magnitude=6.0),
            DriftSpec("training.train_loss", at=800, magnitude=6.0),
        )
        assert "training.divergence" not in {a["signal"] for a in alerts}

    def test_forgetting_on_legacy_data(self) -> None:
        alerts = _alerts(DriftSpec("training.legacy_val_loss", at=800, magnitude=6.0))
        assert {a["signal"] for a in alerts} == {"training.legacy_val_loss"}
        assert alerts[0]["detected_at"] >= "2026-01-01T00:01:20"

    def test_gradient_norm_spike_in_a_stable_layer(self) -> None:
        spike = DriftSpec("grad_norm:layer2", kind="recurring", at=900, width=2, magnitude=20.0)
        alerts = _alerts(spike)
        assert alerts and {a["signal"] for a in alerts} == {"grad_norm:layer2"}

    def test_a_quiet_run_raises_nothing(self) -> None:
        assert _alerts() == []


class TestCheckpointRegistry:
    def test_newest_stable_checkpoint_wins_and_history_is_bounded(self) -> None:
        registry = CheckpointRegistry()
        for step in range(15):
            registry.register(Checkpoint(f"c{step}", "run", step, step, "t", step))
        assert registry.last_stable is not None
        assert registry.last_stable.checkpoint_id == "c14"
        assert len(registry.stable) == 10
        assert not registry.register(Checkpoint("c14", "run", 14, 99, "t", 99))
        assert CheckpointRegistry.from_state(registry.to_state()) == registry

    @pytest.mark.parametrize("drifting", [False, True])
    def test_stable_checkpoints_are_recorded_in_the_state(self, drifting: bool) -> None:
        processor = Processor(settings(**ONLY_FEATURES))
        drifts = (DriftSpec("training.val_loss", at=0, magnitude=5.0),) if drifting else ()
        stream = GeneratorConfig(
            events=100, categorical_features=0, training_every=5, stable_every=2, drifts=drifts
        )
        run(processor, records(stream))
        entry = processor.changed_state(0).get('checkpoints:["model-0"]')
        if drifting:  # the generator never calls a drifting checkpoint stable
            assert entry is None
        else:
            assert entry is not None
            assert entry["stable"][-1]["checkpoint_id"] == "model-0-finetune-1-step20"
