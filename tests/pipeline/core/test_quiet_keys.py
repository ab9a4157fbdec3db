"""A new key's detector holds its quiet period as values (``Monitor.start``,
:mod:`detectors.learning`): the engine must emit, report and restore exactly what it
does with eager detectors, at every batch size, with refused values and drifts."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from detectors.learning import Learning
from pipeline.core.monitor_set import Monitor
from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from tests.pipeline.core.helpers import as_records, prediction, settings

MONITORS: list[dict[str, Any]] = [
    {
        "signal": "feature:amount",
        "detector": "ks_window",
        "params": {"window_size": 30, "reference_size": 100, "stride": 5, "alpha": 1e-3},
    },
    {
        "signal": "feature:amount",
        "detector": "rolling_threshold",
        "params": {"window_size": 20, "reference_size": 80, "k": 3.0},
    },
    {
        "signal": "feature:country",
        "detector": "categorical_drift",
        "params": {"window_size": 30, "reference_size": 100, "alpha": 1e-3},
    },
    {"signal": "prediction", "detector": "categorical_sr", "params": {"reference_size": 100}},
    {
        "signal": "prediction",
        "detector": "entropy",
        "params": {"window_size": 30, "reference_size": 100, "k": 3.0},
    },
]
SETTINGS = settings(
    models={
        f"m{i}": {
            "features": {"amount": "numeric", "country": "categorical"},
            "classes": ["approve", "review", "deny"],
            "monitors": [{**m, "resolve_after": 60} for m in MONITORS],
        }
        for i in range(3)
    },
    limits={"max_keys": 1000},
)


def _stream(n: int = 1500, seed: int = 11) -> list[Record]:
    """Three models; each shifts its amount, country mix and class mix half-way; a
    few amounts are strings the numeric detectors refuse."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        model = f"m{i % 3}"
        late = i > n // 2
        amount: Any = rng.gauss(3.0 if late else 0.0, 1.0)
        if rng.random() < 0.01:
            amount = "n/a"
        country = rng.choice("ab" if late else "abcd")
        label = rng.choice(["deny"] * 3 + ["review"] if late else ["approve", "review", "deny"])
        events.append(
            prediction(
                model,
                t=i * 0.5,
                event_id=f"e{i}",
                request_id=f"r{i}",
                prediction=label,
                features={"amount": amount, "country": country},
            )
        )
    return as_records(events)


def _eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Monitor, "start", Monitor.build)


def _run(records: list[Record], batch: int) -> tuple[list[Any], Processor]:
    """Outputs and every batch's state report, and the processor."""
    processor = Processor(SETTINGS)
    seen: list[Any] = []
    for k in range(0, len(records), batch):
        outputs: list[list[Message]] = processor.process_batch(records[k : k + batch])
        seen.append([(m.kind, m.value) for messages in outputs for m in messages])
        report = processor.report_state(0)
        seen.append(orjson.loads(orjson.dumps(report.records, default=repr)))
    return seen, processor


@pytest.mark.parametrize("batch", [1, 7, 64, 500])
def test_outputs_reports_and_state_equal_the_eager_engines(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = _stream()
    lazy, processor = _run(records, batch)
    with monkeypatch.context() as patched:
        _eager(patched)
        eager, reference = _run(records, batch)
    assert lazy == eager
    assert processor.engine.state_entries(0) == reference.engine.state_entries(0)
    assert processor.stats == reference.stats
    assert processor.stats["signal_type_mismatch:feature:amount"] > 0
    alerts = [kind for batch_out in lazy[::2] for kind, _ in batch_out if kind == "alert"]
    assert alerts, "the stream must drift"


def test_keys_start_quiet_and_hold_the_real_detector_once_ripe() -> None:
    records = _stream(60)
    processor = Processor(SETTINGS)
    processor.process_batch(records)
    states = [s for scope in processor.engine.scopes.values() for s in scope.values()]
    assert states and all(type(s.detector) is Learning for s in states)
    processor.process_batch(_stream(600, seed=12)[60:])
    kinds = {
        type(s.detector).__name__
        for scope in processor.engine.scopes.values()
        for s in scope.values()
    }
    assert "Learning" not in kinds


def test_a_restore_mid_period_continues_as_the_uninterrupted_run() -> None:
    records = _stream()
    whole, _ = _run(records, 64)
    first = Processor(SETTINGS)
    cut = 64 * 2  # every key still quiet (each model has seen ~43 events)
    outputs = [first.process_batch(records[k : k + 64]) for k in range(0, cut, 64)]
    entries = orjson.loads(orjson.dumps(first.engine.state_entries(0)))
    restored = Processor(SETTINGS)
    restored.restore(0, entries)
    for k in range(cut, len(records), 64):
        outputs.append(restored.process_batch(records[k : k + 64]))
    got = [[(m.kind, m.value) for messages in out for m in messages] for out in outputs]
    assert got == whole[::2]
