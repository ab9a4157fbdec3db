from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from pipeline.config import Settings, parse_settings
from pipeline.core.records import Record
from pipeline.generate import DriftSpec, GeneratorConfig, generate

PH_AMOUNT = {
    "signal": "feature:amount",
    "detector": "page_hinkley",
    "params": {"threshold": 300.0, "delta": 5.0, "min_instances": 100, "alpha": 1.0},
}
PH_CONFIDENCE = {
    "signal": "confidence",
    "detector": "page_hinkley",
    "params": {"threshold": 1.5, "delta": 0.02, "min_instances": 100, "alpha": 1.0},
}


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings with the slice's default monitors, overridable per test."""

    def factory(**overrides: Any) -> Settings:
        data: dict[str, Any] = {"default_model": {"monitors": [PH_AMOUNT, PH_CONFIDENCE]}}
        data.update(overrides)
        return parse_settings(data, environ={})

    return factory


@pytest.fixture
def make_records() -> Callable[..., list[Record]]:
    """Generated prediction events as records of one topic partition."""

    def factory(
        events: int = 4000,
        drifts: Sequence[DriftSpec] = (),
        topic: str = "preds",
        **config: Any,
    ) -> list[Record]:
        gen = GeneratorConfig(events=events, drifts=tuple(drifts), **config)
        return [
            Record(topic, 0, offset, value, key=model.encode())
            for offset, (model, value) in enumerate(generate(gen))
        ]

    return factory
