"""Builders shared by the core tests: generated records, pre-decoded events, runs."""

from __future__ import annotations

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
from pipeline.generate import GeneratorConfig, generate

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
