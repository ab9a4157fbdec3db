"""Fault-injection scenarios share one workload shape, scaled for CI time."""

from __future__ import annotations

import os

import pytest

from pipeline.generate import DriftSpec, GeneratorConfig

# Not DRIFTLINE_*: the sidecars inherit the environment, and every DRIFTLINE_ variable
# is a config override there (an unknown one is refused at start).
EVENTS = int(os.environ.get("FAULT_EVENTS", "30000"))


@pytest.fixture
def workload() -> GeneratorConfig:
    return GeneratorConfig(
        events=EVENTS,
        models=6,
        seed=31,
        bad_every=997,
        drifts=(
            DriftSpec(signal="feature:amount", at=EVENTS // 3, magnitude=2.0, model="model-0"),
            DriftSpec(signal="confidence", at=2 * EVENTS // 3, magnitude=2.0, model="model-3"),
            DriftSpec(
                signal="feature:amount",
                kind="gradual",
                at=EVENTS // 2,
                width=2000,
                magnitude=3.0,
                model="model-4",
            ),
        ),
    )
