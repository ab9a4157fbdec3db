"""Fixtures for backtest tests: a generated stream with known drifts and configs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.generate import DriftSpec, GeneratorConfig, generate, truth

CONFIG_A = """\
default_model:
  monitors:
    - signal: confidence
      detector: page_hinkley
      params: {threshold: 1.5, delta: 0.02, min_instances: 100}
    - signal: feature:amount
      detector: page_hinkley
      params: {threshold: 300.0, delta: 5.0, min_instances: 100}
"""

# Thresholds too low on purpose: more alerts, false alarms on the stable stretches.
CONFIG_B = CONFIG_A.replace("threshold: 300.0", "threshold: 40.0").replace(
    "threshold: 1.5", "threshold: 0.5"
)

DRIFTS = (
    DriftSpec(signal="feature:amount", kind="abrupt", at=3000, magnitude=2.0, model="model-1"),
    DriftSpec(signal="confidence", kind="abrupt", at=5000, magnitude=1.0, model="model-0"),
)


@dataclass(frozen=True)
class Stream:
    events: Path
    truth: Path
    config: GeneratorConfig


def write_stream(directory: Path, *, events: int = 6000, bad_every: int = 0) -> Stream:
    config = GeneratorConfig(events=events, models=2, seed=11, bad_every=bad_every, drifts=DRIFTS)
    path = directory / "events.jsonl"
    path.write_bytes(b"".join(v + b"\n" for _m, v in generate(config)))
    truth_path = directory / "truth.json"
    truth_path.write_text(json.dumps(truth(config)))
    return Stream(path, truth_path, config)


@pytest.fixture(scope="session")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    """6000 events of two models; model-1's amount shifts at 3000, model-0's
    confidence drops at 5000; every 997th record is bad."""
    return write_stream(tmp_path_factory.mktemp("stream"), bad_every=997)


def backtest(*args: str) -> int:
    """``driftline backtest`` quietly, as a user would run it."""
    from pipeline.cli import main

    return main(["--log-level", "error", "backtest", "--no-progress", *args])


@dataclass(frozen=True)
class Baseline:
    """One backtest of ``stream`` with CONFIG_A and every output, in ``out``."""

    config: Path
    stream: Stream
    out: Path

    def args(self, out: Path) -> list[str]:
        return [
            "--config", str(self.config), "--input", str(self.stream.events),
            "--truth", str(self.stream.truth), "--report", str(out / "report.html"),
            "--json", str(out / "scores.json"), "--png-dir", str(out / "png"),
            "--alerts", str(out / "alerts.jsonl"), "--state-out", str(out / "state.json"),
        ]  # fmt: skip


@pytest.fixture(scope="session")
def baseline(stream: Stream, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    root = tmp_path_factory.mktemp("baseline")
    config = root / "driftline.yaml"
    config.write_text(CONFIG_A)
    base = Baseline(config, stream, root / "out")
    assert backtest(*base.args(base.out)) == 0
    return base


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str, str], Path]:
    def factory(text: str, name: str = "driftline.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return factory
