"""Replay and backtest write alerts and rollback commands to one file, whole and in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from pipeline.cli import main
from pipeline.generate import DriftSpec, GeneratorConfig, generate

# A fine-tune that forgets: legacy-data loss climbs from step 800 on, and the model's
# rollback rule turns the forgetting alert into a rollback command.
CONFIG = {
    "models": {
        "model-0": {
            "features": ["amount"],
            "rollback": {"rules": [{"when": "forgetting"}], "dry_run": True},
        }
    }
}
STREAM = GeneratorConfig(
    events=1400,
    numeric_features=1,
    categorical_features=0,
    training_every=2,
    stable_every=4,
    drifts=(DriftSpec("training.legacy_val_loss", at=800, magnitude=6.0),),
)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(v + b"\n" for _m, v in generate(STREAM)))
    return config, events


def _lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [orjson.loads(line) for line in raw.splitlines()]  # every line is whole JSON


def _check_order(events: list[dict[str, Any]]) -> None:
    kinds = [e["schema"] for e in events]
    assert "driftline.rollback-command.v1" in kinds, kinds
    assert "driftline.alert.v2" in kinds
    seen_alerts: set[str] = set()
    for event in events:
        if event["schema"] == "driftline.alert.v2":
            seen_alerts.add(event["alert_id"])
        else:  # a command comes after every alert it names
            assert set(event["alert_ids"]) <= seen_alerts
            assert event["dry_run"] is True


def test_replay_output_holds_alerts_and_rollback_commands(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    config, events = files
    out = tmp_path / "out.jsonl"
    argv = ["replay", "--config", str(config), "--input", str(events), "--output", str(out)]
    assert main(argv) == 0
    lines = _lines(out)
    _check_order(lines)
    forgetting = [e for e in lines if e.get("signal") == "training.legacy_val_loss"]
    assert forgetting


def test_backtest_alerts_hold_alerts_and_rollback_commands(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    config, events = files
    out = tmp_path / "bt.jsonl"
    argv = ["backtest", "--config", str(config), "--input", str(events), "--alerts", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    _check_order(_lines(out))
    # the same events as replay writes, in the same order
    replayed = tmp_path / "replayed.jsonl"
    argv = ["replay", "--config", str(config), "--input", str(events), "--output", str(replayed)]
    assert main(argv) == 0
    assert out.read_bytes() == replayed.read_bytes()
