"""What the label join costs per pending prediction (issue 13), for ``benchmarks.scale``.

* memory: tracemalloc's traced bytes of a model's join holding ``PENDING`` predictions
  (generated classes, one production version, request ids as a serving stack writes
  them), fed through the join the engine uses, divided by ``PENDING``; and the join's
  own account of its arrays (``nbytes``) after the generated stream went through a
  processor;
* snapshot: the encoded join pages (key + JSON value, what the changelog holds) per
  pending prediction, after the generated stream went through a processor in the
  runtime's default batches (2,000 events), and processed one event at a time (every
  request a page of its own: the worst case of a paced stream);
* no join state: the same stream with ``topics.labels: null``, and a model whose
  monitors take no labels — join entries and join memory must both be zero.

Run through ``python -m benchmarks.scale`` (its ``join`` child), or alone:
``python -m benchmarks.join_state``.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from typing import Any

import orjson

from pipeline.config import parse_settings
from pipeline.core.labels import COUNTERS, JoinBuffer, NoJoins
from pipeline.core.processor import Processor
from pipeline.core.records import Record
from pipeline.generate import CLASSES, GeneratorConfig, generate

PENDING = 10_000
"""Pending predictions measured (the default ``labels.max_pending`` of a model)."""
TARGET_PENDING_BYTES = 48
STREAM_EVENTS = 4_000


def _settings(labels_topic: bool, monitors: list[dict[str, Any]] | None = None) -> Any:
    model: dict[str, Any] = {"features": {"amount": "numeric"}, "classes": list(CLASSES)}
    if monitors is not None:
        model = {"default_monitors": False, "monitors": monitors}
    config: dict[str, Any] = {"runtime": {"http_port": None}, "models": {"model-0": model}}
    if not labels_topic:
        config["topics"] = {"labels": None}
    return parse_settings(config, environ={})


def _stream(events: int) -> list[Record]:
    config = GeneratorConfig(events=events, models=1, numeric_features=1, categorical_features=0)
    return [
        Record("events", 0, offset, value, key=model.encode())
        for offset, (model, value) in enumerate(generate(config))
    ]


def _join_bytes(processor: Processor) -> tuple[int, int, int]:
    """Encoded join pages (bytes, pages) and the joins' arrays (bytes), partition 0."""
    entries = processor.engine.state_entries(0)
    pages = {k: v for k, v in entries.items() if k.startswith("join:")}
    encoded = sum(len(k.encode()) + len(orjson.dumps(v)) for k, v in pages.items())
    held = sum(m.joins.nbytes() for m in processor.engine.partitions[0].models.values())
    return encoded, len(pages), held


def _pending(processor: Processor) -> int:
    return sum(len(m.joins) for m in processor.engine.partitions[0].models.values())


def traced_per_pending() -> float:
    """tracemalloc: bytes of a join holding PENDING predictions, per prediction."""
    counters = dict.fromkeys(COUNTERS, 0)
    ids = [f"3f2c9a6e-{i:08x}-4b1d-9c3e-{i * 7919:012x}" for i in range(PENDING)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    buffer = JoinBuffer()
    for i, request_id in enumerate(ids):
        buffer.add_prediction(
            request_id,
            "production",
            "1",
            CLASSES[i % len(CLASSES)],
            1_767_225_600_000_000 + i * 100_000,
            None,
            batch=i // 2000,
            ttl=3_600_000_000,
            max_pending=PENDING,
            classification=None,
            counters=counters,
        )
    gc.collect()
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(buffer) == PENDING
    return size / PENDING


def measure() -> dict[str, Any]:
    stream = _stream(STREAM_EVENTS)
    backlog = Processor(_settings(labels_topic=True))
    for k in range(0, len(stream), 2000):
        backlog.process_batch(stream[k : k + 2000])
    encoded, pages, held = _join_bytes(backlog)
    pending = _pending(backlog)
    one_by_one = Processor(_settings(labels_topic=True))
    for record in stream:
        one_by_one.process_batch([record])
    single_encoded, single_pages, _ = _join_bytes(one_by_one)
    without: dict[str, Any] = {}
    for name, settings in (
        ("no labels topic", _settings(labels_topic=False)),
        (
            "no label-fed monitor",
            _settings(True, [{"signal": "confidence", "detector": "rolling_threshold"}]),
        ),
    ):
        processor = Processor(settings)
        for k in range(0, len(stream), 2000):
            processor.process_batch(stream[k : k + 2000])
        encoded_none, pages_none, held_none = _join_bytes(processor)
        models = processor.engine.partitions[0].models.values()
        without[name] = {
            "join_entries": pages_none,
            "join_bytes": encoded_none,
            "join_memory": held_none,
            "no_join_object": all(isinstance(m.joins, NoJoins) for m in models),
        }
    return {
        "traced_per_pending": traced_per_pending(),
        "held_per_pending": held / pending,
        "snapshot_per_pending": encoded / pending,
        "pages": pages,
        "pending": pending,
        "single_snapshot_per_pending": single_encoded / _pending(one_by_one),
        "single_pages": single_pages,
        "without": without,
    }


def report(result: dict[str, Any], verdict: Any) -> list[str]:
    """The lines ``benchmarks.scale`` prints (targets of issue 13)."""
    traced, snapshot = result["traced_per_pending"], result["snapshot_per_pending"]
    lines = [
        f"- a pending prediction in the label join: {traced:.1f} B of memory (tracemalloc, "
        f"{PENDING:,} pending; the join's arrays after the stream: "
        f"{result['held_per_pending']:.1f} B), {snapshot:.1f} B in the snapshot "
        f"({result['pending']:,} pending in {result['pages']} pages, 2,000-event batches) "
        f"(target <= {TARGET_PENDING_BYTES} B): "
        f"{verdict(max(traced, snapshot) <= TARGET_PENDING_BYTES)}",
        f"  (events one at a time, a page per request: "
        f"{result['single_snapshot_per_pending']:.1f} B per pending prediction in "
        f"{result['single_pages']:,} pages)",
    ]
    for name, found in result["without"].items():
        none = found["join_entries"] == 0 and found["join_memory"] == 0 and found["no_join_object"]
        lines.append(
            f"- no join state with {name}: {found['join_entries']} join entries, "
            f"{found['join_bytes']} B encoded, {found['join_memory']} B of join arrays: "
            f"{verdict(none)}"
        )
    return lines


if __name__ == "__main__":
    outcome = measure()
    print(json.dumps(outcome))
    print("\n".join(report(outcome, lambda ok: "met" if ok else "MISSED")))
