"""One generated prediction stream, as driftline records and as KServe / Seldon records.

Shared by the unit tests (through the Processor) and the integration tests (through
the real broker): the reference is the same predictions as driftline events, with
the request id as event id (KServe and Seldon carry one id per request).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, Literal

import orjson

from pipeline.core.records import Record
from pipeline.events import PredictionEvent
from pipeline.formats.samples import SampleRecord, kserve_records, seldon_records
from pipeline.generate import CLASSES, DriftSpec, GeneratorConfig, generate

FEATURES = ["amount", "age", "tenure_days", "sessions", "country", "device"]
NAMING = {"features": FEATURES, "classes": list(CLASSES)}
Format = Literal["kserve-v1", "kserve-v2", "seldon"]


def predictions(events: int = 3000, models: int = 2, seed: int = 3) -> list[PredictionEvent]:
    """Generated predictions with a jump in ``amount`` and a confidence decay."""
    config = GeneratorConfig(
        events=events,
        models=models,
        seed=seed,
        drifts=(
            DriftSpec("feature:amount", "abrupt", at=events // 3, magnitude=3.0, model="model-0"),
            DriftSpec(
                "confidence", "gradual", at=events // 2, width=max(1, events // 4), magnitude=2.0
            ),
        ),
    )
    out = []
    for _, value in generate(config):
        body = orjson.loads(value)
        if body.get("schema") == "driftline.prediction.v1":
            body["event_id"] = body["request_id"]
            out.append(PredictionEvent.model_validate_json(orjson.dumps(body)))
    return out


def driftline_values(events: list[PredictionEvent]) -> list[tuple[bytes, bytes]]:
    """(key, value) of each event as driftline's own JSON."""
    return [(e.model_id.encode(), e.model_dump_json(by_alias=True).encode()) for e in events]


Half = tuple[Literal["request", "response"], SampleRecord, PredictionEvent]


def serving_halves(events: list[PredictionEvent], fmt: Format, seed: int = 0) -> Iterator[Half]:
    """Each event's request and response; a response sometimes arrives before its
    request, and halves of neighbouring requests interleave (as with a worker pool)."""
    rng = random.Random(seed)
    pending: list[Half] = []
    for event in events:
        if fmt == "seldon":
            request, response = seldon_records(event, features=FEATURES, classes=CLASSES)
        else:
            protocol: Any = "v1" if fmt == "kserve-v1" else "v2"
            request, response = kserve_records(
                event, features=FEATURES, classes=CLASSES, protocol=protocol
            )
        halves: list[Half] = [("request", request, event), ("response", response, event)]
        if rng.random() < 0.2:
            halves.reverse()
        pending.extend(halves)
        while len(pending) > 3:
            yield pending.pop(rng.randrange(2) if len(pending) > 1 else 0)
    yield from pending


def completion_order(
    events: list[PredictionEvent], fmt: Format, seed: int = 0
) -> list[PredictionEvent]:
    """The events in the order their second half arrives: the order in which the
    adapter hands them to the core."""
    seen: set[str] = set()
    out = []
    for _, _, event in serving_halves(events, fmt, seed):
        assert event.request_id is not None
        if event.request_id in seen:
            out.append(event)
        seen.add(event.request_id)
    return out


def input_specs(fmt: Format, topic: str, models: int = 2, **extra: Any) -> list[dict[str, Any]]:
    """The config's ``inputs``: one KServe topic, or each Seldon model's two topics."""
    if fmt == "seldon":
        return [
            {"format": "seldon-oip", "model": f"model-{m}", **NAMING, **extra}
            for m in range(models)
        ]
    return [{"format": "kserve-cloudevents", "topic": topic, **NAMING, **extra}]


def seldon_topic(model: str, side: str) -> str:
    return f"seldon.default.model.{model}.{'inputs' if side == 'request' else 'outputs'}"


def as_records(
    events: list[PredictionEvent], fmt: Format, topic: str, seed: int = 0
) -> list[Record]:
    """The serving stream as records of partition 0 (one offset counter per topic);
    Seldon's records go to their model's topics."""
    offsets: dict[str, int] = {}
    out = []
    for side, sample, event in serving_halves(events, fmt, seed):
        name = seldon_topic(event.model_id, side) if fmt == "seldon" else topic
        offset = offsets.get(name, 0)
        offsets[name] = offset + 1
        out.append(
            Record(
                name,
                0,
                offset,
                sample.value,
                key=sample.key,
                timestamp_ms=sample.timestamp_ms,
                headers=tuple(sample.headers),
            )
        )
    return out
