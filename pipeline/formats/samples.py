"""Driftline prediction events re-encoded as the records a serving stack writes.

What KServe's logger sends through a Knative Kafka Broker (binary-mode CloudEvents,
V1 or V2 JSON bodies) and what Seldon Core 2 writes to a model's topics (Open
Inference Protocol protobuf, keyed ``<model>.<request id>``), for one prediction
event. ``make demo`` streams these, and the tests use them (next to records made
by the CloudEvents SDK) to check that the adapters give back the same events.

Features are sent positionally in ``features`` order (V1) or as one tensor each
(V2 and OIP), probabilities as one ``[1, len(classes)]`` tensor in ``classes``
order; the request id (the CloudEvent id, Seldon's ``x-request-id``) is the
event's ``request_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from pipeline.events import FeatureValue, PredictionEvent
from pipeline.formats.kserve import REQUEST_TYPE, RESPONSE_TYPE
from pipeline.formats.oip.v2_dataplane_pb2 import (
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from pipeline.formats.seldon import REQUEST_ID_HEADER

__all__ = ["SampleRecord", "kserve_records", "seldon_records"]

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class SampleRecord:
    value: bytes
    headers: Headers
    key: bytes | None
    timestamp_ms: int


def _stamp(event: PredictionEvent) -> str:
    return event.timestamp.isoformat().replace("+00:00", "Z")


def _ms(event: PredictionEvent) -> int:
    return int(event.timestamp.timestamp() * 1000)


def _probabilities(event: PredictionEvent, classes: Sequence[str]) -> list[float]:
    probs = event.probabilities or {}
    return [float(probs.get(c, 0.0)) for c in classes]


def _v2_input(name: str, value: FeatureValue) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": name, "shape": [1], "datatype": "BYTES", "data": [value]}
    if isinstance(value, bool):
        return {"name": name, "shape": [1], "datatype": "BOOL", "data": [value]}
    return {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}


def kserve_records(
    event: PredictionEvent,
    *,
    features: Sequence[str],
    classes: Sequence[str],
    protocol: Literal["v1", "v2"] = "v1",
    namespace: str = "default",
) -> tuple[SampleRecord, SampleRecord]:
    """(request, response) as a Knative Kafka Broker stores KServe's logger events."""
    assert event.request_id is not None and event.features is not None
    row = [event.features[name] for name in features]
    probabilities = _probabilities(event, classes)
    if protocol == "v1":
        request: dict[str, Any] = {"instances": [row]}
        response: dict[str, Any] = {"predictions": [probabilities]}
    else:
        request = {"inputs": [_v2_input(n, v) for n, v in zip(features, row, strict=True)]}
        response = {
            "model_name": event.model_id,
            "model_version": event.model_version,
            "id": event.request_id,
            "outputs": [
                {
                    "name": "predict_proba",
                    "shape": [1, len(classes)],
                    "datatype": "FP64",
                    "data": probabilities,
                }
            ],
        }

    def record(ce_type: str, body: dict[str, Any]) -> SampleRecord:
        headers: Headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", event.request_id.encode()),  # type: ignore[union-attr]
            ("ce_source", b"http://localhost:9081/"),
            ("ce_type", ce_type.encode()),
            ("ce_time", _stamp(event).encode()),
            ("content-type", b"application/json"),
            ("ce_inferenceservicename", event.model_id.encode()),
            ("ce_namespace", namespace.encode()),
            ("ce_component", b"predictor"),
            ("ce_endpoint", b""),
            ("ce_metadata", b"{}"),
        ]
        return SampleRecord(orjson.dumps(body), headers, None, _ms(event))

    return record(REQUEST_TYPE, request), record(RESPONSE_TYPE, response)


def _contents(value: FeatureValue) -> tuple[str, InferTensorContents]:
    if isinstance(value, str):
        return "BYTES", InferTensorContents(bytes_contents=[value.encode()])
    if isinstance(value, bool):
        return "BOOL", InferTensorContents(bool_contents=[value])
    return "FP64", InferTensorContents(fp64_contents=[float(value or 0.0)])


def seldon_records(
    event: PredictionEvent, *, features: Sequence[str], classes: Sequence[str]
) -> tuple[SampleRecord, SampleRecord]:
    """(inputs record, outputs record) as Seldon Core 2's gateways write them."""
    assert event.request_id is not None and event.features is not None
    request = ModelInferRequest(model_name=event.model_id)
    for name in features:
        datatype, contents = _contents(event.features[name])
        request.inputs.add(name=name, datatype=datatype, shape=[1], contents=contents)
    response = ModelInferResponse(
        model_name=event.model_id, model_version=event.model_version, id=event.request_id
    )
    response.outputs.add(
        name="predict_proba",
        datatype="FP64",
        shape=[1, len(classes)],
        contents=InferTensorContents(fp64_contents=_probabilities(event, classes)),
    )
    key = f"{event.model_id}.{event.request_id}".encode()
    headers: Headers = [(REQUEST_ID_HEADER, event.request_id.encode())]
    return (
        SampleRecord(request.SerializeToString(), headers, key, _ms(event)),
        SampleRecord(response.SerializeToString(), headers, key, _ms(event)),
    )
