"""The replay's lazy snapshot store against the eager one it replaced."""

from __future__ import annotations

import pytest

from pipeline.config import parse_settings
from pipeline.core.processor import Processor
from pipeline.core.records import Record
from pipeline.generate import DriftSpec, GeneratorConfig, generate
from pipeline.io.memory import MemorySink, MemorySource
from pipeline.replay import ReplaySink
from pipeline.runtime.checkpoint import Delivery
from pipeline.runtime.loop import Loop
from pipeline.runtime.stores import ChangelogStore, SnapshotStore
from pipeline.state.file_store import Snapshot

FEATURES = {"amount": "numeric", "age": "numeric", "country": "categorical"}


def _records() -> list[Record]:
    config = GeneratorConfig(
        events=3000, models=12, seed=9, categorical_features=1, numeric_features=2,
        drifts=(DriftSpec(signal="feature:amount", at=1500, magnitude=3.0, model="model-1"),),
    )  # fmt: skip
    return [
        Record("preds", k % 2, k, value, key=model.encode())
        for k, (model, value) in enumerate(generate(config))
    ]


def _settings() -> object:
    model = {
        "features": FEATURES,
        "classes": ["approve", "review", "decline"],
        "default_monitors": True,  # the derived set, and a detector that fires early:
        "monitors": [
            {"signal": "feature:amount", "detector": "page_hinkley",
             "params": {"threshold": 300.0, "delta": 5.0, "min_instances": 100}},
        ],
    }  # fmt: skip
    return parse_settings(
        {
            "runtime": {"http_port": None, "max_batch_events": 97},
            "models": {f"model-{k}": model for k in range(12)},
            "limits": {"idle_expiry": 600},
        },
        environ={},
    )


def _run(lazy: bool) -> tuple[Snapshot, list[bytes]]:
    settings = _settings()
    processor = Processor(settings, {"preds": "prediction"})  # type: ignore[arg-type]
    snapshot = Snapshot()
    store = SnapshotStore(snapshot, processor if lazy else None)
    sink = MemorySink()
    delivery = Delivery.at_least_once(ReplaySink(sink))
    loop = Loop(processor, MemorySource(_records()), delivery, store, settings.runtime)  # type: ignore[attr-defined]
    loop.run()
    store.settle()
    return snapshot, [m.value or b"" for m in sink.of_kind("alert")]


def test_a_lazy_snapshot_equals_the_one_saved_at_every_checkpoint() -> None:
    eager, eager_out = _run(lazy=False)
    lazy, lazy_out = _run(lazy=True)
    assert lazy_out == eager_out
    assert len(lazy_out) >= 1
    assert lazy.positions == eager.positions == {0: {"preds": 2999}, 1: {"preds": 3000}}
    assert lazy.partitions == eager.partitions
    assert len(lazy.partitions[0]) > 12


def test_a_lazy_store_settles_before_it_is_read() -> None:
    settings = _settings()
    processor = Processor(settings, {"preds": "prediction"})  # type: ignore[arg-type]
    snapshot = Snapshot()
    store = SnapshotStore(snapshot, processor)
    processor.process_batch(_records()[:200])
    store.save_positions(0, {"preds": 200})
    assert snapshot.partitions[0] == {}  # nothing taken yet
    entries = store.load(0).entries
    assert entries == snapshot.partitions[0]
    assert any(key.startswith("detector:") for key in entries)


def test_only_a_lazy_store_takes_positions_alone() -> None:
    with pytest.raises(TypeError):
        SnapshotStore(Snapshot()).save_positions(0, {})
    with pytest.raises(TypeError):
        ChangelogStore(lambda _p: []).save_positions(0, {})
