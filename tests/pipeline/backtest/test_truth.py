from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.backtest.truth import TruthError, group_changes, load_truth, parse_truth
from pipeline.generate import DriftSpec, GeneratorConfig, truth


class TestTruth:
    def test_reads_the_generators_truth_file(self, tmp_path: Path) -> None:
        config = GeneratorConfig(
            events=5000,
            models=2,
            interval_ms=1000,
            drifts=(DriftSpec(signal="confidence", kind="recurring", at=1000, width=1500),),
        )
        path = tmp_path / "truth.json"
        path.write_text(json.dumps(truth(config)))
        changes = load_truth(path)
        # recurring: 1000, 2500, 4000 for each of the two models
        assert len(changes) == 6
        first = changes[0]
        assert (first.model_id, first.signal, first.position) == ("model-0", "confidence", 1000)
        assert first.timestamp == datetime(2026, 1, 1, 0, 16, 40, tzinfo=UTC)
        grouped = group_changes(changes)
        assert [c.position for c in grouped[("model-1", "confidence")]] == [1000, 2500, 4000]

    def test_reads_an_annotated_list(self) -> None:
        changes = parse_truth(
            [
                {"model_id": "m", "signal": "feature:x", "timestamp": "2026-02-01T10:00:00Z",
                 "note": "deploy of v7"},
                {"model": "m", "signal": "feature:x", "position": 120},
            ]
        )  # fmt: skip
        assert [c.label() for c in changes] == ["offset 120", "2026-02-01T10:00:00Z"]
        assert changes[1].note == "deploy of v7"

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"nope": 1}, "expected a list"),
            ([{"signal": "x", "position": 1}], "model_id"),
            ([{"model_id": "m", "signal": "x"}], "timestamp' or 'position"),
            ([{"model_id": "m", "signal": "x", "timestamp": "2026-01-01T00:00:00"}], "time zone"),
            ([{"model_id": "m", "signal": "x", "position": -1}], "non-negative"),
        ],
    )
    def test_errors_name_the_entry(self, data: object, message: str) -> None:
        with pytest.raises(TruthError, match=message):
            parse_truth(data)
