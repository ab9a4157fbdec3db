"""Builders shared by the core tests: generated records, pre-decoded events, runs."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline.config import Settings, parse_settings
from pipeline.core.decode import Decoder
from pipeline.core.engine import Engine
from pipeline.core.monitor import Origin
from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from pipeline.events import InputEvent, LabelEvent, PredictionEvent, TrainingEvent
from pipeline.generate import DriftSpec, GeneratorConfig, generate

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DECODER = Decoder(1 << 24)


def settings(**data: Any) -> Settings:
    return parse_settings(data, environ={})


def records(
    config: GeneratorConfig, *, topic: str = "events", partition: int = 0, start: int = 0
) -> list[Record]:
    """The generated stream as records of one topic partition (offsets from ``start``)."""
    return [
        Record(topic, partition, start + offset, value, key=model.encode())
        for offset, (model, value) in enumerate(generate(config))
    ]


def as_records(
    events: Iterable[InputEvent], *, topic: str = "events", partition: int = 0, start: int = 0
) -> list[Record]:
    return [
        Record(topic, partition, start + i, e.model_dump_json(by_alias=True).encode())
        for i, e in enumerate(events)
    ]


def run(processor: Processor, recs: Sequence[Record], batch: int = 500) -> list[list[Message]]:
    out: list[list[Message]] = []
    for k in range(0, len(recs), batch):
        out.extend(processor.process_batch(recs[k : k + batch]))
    return out


def flat(outputs: Iterable[list[Message]], kind: str | None = None) -> list[dict[str, Any]]:
    """The JSON bodies of the messages (of one kind), in order."""
    return [
        orjson.loads(m.value)
        for messages in outputs
        for m in messages
        if kind is None or m.kind == kind
    ]


def feed(engine: Engine, recs: Sequence[Record]) -> list[list[Any]]:
    items = [(DECODER.decode(r.value), Origin(r.topic, r.partition, r.offset)) for r in recs]
    return engine.process(items)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def prediction(model: str = "m", t: float = 0.0, **fields: Any) -> PredictionEvent:
    data: dict[str, Any] = {
        "event_id": f"p-{model}-{t}",
        "model_id": model,
        "model_version": "1",
        "timestamp": at(t),
        "prediction": "approve",
    }
    data.update(fields)
    return PredictionEvent(**data)


def label(request_id: str, value: Any, t: float, model: str = "m") -> LabelEvent:
    return LabelEvent(
        event_id=f"l-{request_id}-{t}",
        model_id=model,
        request_id=request_id,
        label=value,
        timestamp=at(t),
    )


def training(model: str = "m", step: int = 1, t: float = 0.0, **fields: Any) -> TrainingEvent:
    data: dict[str, Any] = {
        "event_id": f"t-{model}-{step}",
        "model_id": model,
        "run_id": "run-1",
        "checkpoint_id": f"ckpt-{step}",
        "step": step,
        "timestamp": at(t),
        "metrics": {},
    }
    data.update(fields)
    return TrainingEvent(**data)


# A configuration that exercises every part of the engine on a short stream.
FULL_CONFIG: dict[str, Any] = {
    "models": {
        "model-0": {
            "features": {"amount": "numeric", "country": "categorical"},
            "classes": ["approve", "review", "decline"],
            "default_monitors": False,
            "monitors": [
                {
                    "signal": "feature:amount",
                    "detector": "page_hinkley",
                    "params": {"threshold": 150.0, "delta": 5.0, "min_instances": 50},
                },
                {
                    "signal": "confidence",
                    "detector": "cusum",
                    "segment_by": "country",
                    "max_segments": 2,
                    "params": {"h": 6.0, "warmup": 20},
                },
                {
                    "signal": "error",
                    "detector": "ddm",
                    "params": {"warm_start": 30},
                    "severity": {"drift": "critical", "warning": "warning"},
                },
                {
                    "signal": "prediction",
                    "detector": "entropy",
                    "params": {"window_size": 50, "reference_size": 100, "k": 4.0},
                },
                {
                    "signal": "training.legacy_val_loss",
                    "detector": "cusum",
                    "params": {"h": 5.0, "warmup": 10},
                },
                {
                    "signal": "grad_norm:*",
                    "detector": "cusum",
                    "max_signals": 2,
                    "params": {"h": 8.0, "warmup": 10},
                },
            ],
            "labels": {"ttl": "5s", "max_pending": 200},
            "shadow": {"min_pairs": 30, "alpha": 0.05},
            "golden": {"expected": {"golden-0": "approve"}},
            "rollback": {
                "cooldown": "1m",
                "rules": [
                    {"when": "forgetting"},
                    {"when": "shadow_worse"},
                    {"signals": ["feature:*", "error", "confidence"], "k": 2, "within": "2m"},
                ],
            },
        }
    },
    "default_model": {
        "monitors": [
            {"signal": "feature:amount", "detector": "cusum", "params": {"h": 5.0, "warmup": 20}},
            {"signal": "confidence", "detector": "adwin", "params": {"delta": 0.05}},
        ],
        "labels": {"ttl": "5s"},
        "rollback": {"dry_run": True, "rules": [{"when": "critical"}]},
    },
    "policy": {
        "cooldown": "20s",
        "hysteresis": {"enabled": True, "confirm_within": "1m", "clear_after": "2m"},
        "escalation": {"signals": 3, "within": "1m"},
        "maintenance": [
            {"start": "2026-01-01T00:01:00Z", "end": "2026-01-01T00:01:10Z", "models": ["model-1"]}
        ],
    },
    "limits": {"max_keys": 30, "max_unknown_models": 1, "idle_expiry": "5s"},
}

FULL_STREAM = GeneratorConfig(
    events=1000,
    models=5,
    seed=4,
    labels=True,
    label_delay=-10,
    label_jitter=70,
    shadow=0.5,
    training_every=8,
    stable_every=4,
    golden_every=40,
    golden_inputs=3,
    drifts=(
        DriftSpec("feature:amount", at=300, magnitude=3.0, model="model-0"),
        DriftSpec("feature:amount", at=500, magnitude=3.0, model="model-2"),
        DriftSpec("error", at=750, magnitude=0.5, model="model-0"),
        DriftSpec("shadow.error", at=0, magnitude=0.3, model="model-0"),
        DriftSpec("training.legacy_val_loss", at=600, magnitude=8.0, model="model-0"),
        DriftSpec("golden", at=700, magnitude=1.0, model="model-0"),
    ),
)


def full_records() -> list[Record]:
    """FULL_STREAM over two partitions (a model's events share one), offsets per partition."""
    out: list[Record] = []
    offsets = [0, 0]
    for model, value in generate(FULL_STREAM):
        p = int(model.rsplit("-", 1)[1]) % 2
        out.append(Record("events", p, offsets[p], value, key=model.encode()))
        offsets[p] += 1
    return out


@functools.cache
def full_stream() -> tuple[Record, ...]:
    """``full_records()``, built once per test session (the tests only read it)."""
    return tuple(full_records())


@functools.cache
def full_reference() -> tuple[tuple[Message, ...], ...]:
    """What a processor emits for each record of ``full_stream()`` fed one at a time:
    the output every batching must reproduce."""
    processor = Processor(settings(**FULL_CONFIG))
    return tuple(tuple(processor.process(r)) for r in full_stream())


def batches(recs: tuple[Record, ...], cuts: list[int]) -> list[tuple[Record, ...]]:
    """``recs`` cut at ``cuts`` (out-of-range and repeated cuts ignored)."""
    bounds = sorted({0, len(recs), *(c for c in cuts if 0 < c < len(recs))})
    return [recs[a:b] for a, b in itertools.pairwise(bounds)]
