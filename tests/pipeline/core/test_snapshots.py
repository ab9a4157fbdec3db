"""Restoring a partition: detector snapshots written under older parameters."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.core.processor import Processor
from pipeline.generate import GeneratorConfig
from tests.pipeline.core.helpers import records, run, settings

KS = {"alpha": 1e-3, "window_size": 40, "reference_size": 200, "stride": 5}


def config(**ks: Any) -> dict[str, Any]:
    monitor = {"signal": "feature:amount", "detector": "ks_window", "params": KS | ks}
    model = {"features": {"amount": "numeric"}, "default_monitors": False, "monitors": [monitor]}
    return {"models": {"model-0": model}, "topics": {"labels": None}}


def ks_entry(processor: Processor) -> tuple[str, dict[str, Any]]:
    entries = processor.engine.state_entries(0)
    (key,) = [k for k in entries if k.startswith("detector:") and "ks_window" in k]
    return key, entries[key]


class TestAdoptedParameters:
    def test_an_exact_ks_reference_restores_as_the_configured_knots(self) -> None:
        """A KS window written exact (before ``reference_knots`` was configured) is
        restored as the knots the configured detector's own run holds, and goes on
        exactly as that run does."""
        recs = records(GeneratorConfig(events=700, seed=3))
        exact, knotted = (
            Processor(settings(**config())),
            Processor(settings(**config(reference_knots=16))),
        )
        run(exact, recs[:400])
        run(knotted, recs[:400])
        entries = orjson.loads(orjson.dumps(exact.engine.state_entries(0)))
        _key, written = ks_entry(exact)
        assert "reference_knots" not in written["detector"]["params"]
        restored = Processor(settings(**config(reference_knots=16)))
        restored.restore(0, entries)
        assert ks_entry(restored) == ks_entry(knotted)
        run(restored, recs[400:])
        run(knotted, recs[400:])
        assert ks_entry(restored) == ks_entry(knotted)
        assert ks_entry(knotted)[1]["detector"]["params"]["reference_knots"] == 16

    def test_knots_stay_knots_when_the_configuration_drops_them(self) -> None:
        recs = records(GeneratorConfig(events=400, seed=3))
        knotted = Processor(settings(**config(reference_knots=16)))
        run(knotted, recs)
        restored = Processor(settings(**config()))
        restored.restore(0, orjson.loads(orjson.dumps(knotted.engine.state_entries(0))))
        assert ks_entry(restored) == ks_entry(knotted)
