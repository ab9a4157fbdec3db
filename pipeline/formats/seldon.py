"""Seldon Core 2: a model's inputs and outputs topics.

Seldon creates ``<topicPrefix>.<namespace>.model.<model>.inputs`` and ``.outputs``
for every model. Its pipeline gateway writes each request to the inputs topic with
the Kafka key ``<model>.<request id>`` and an ``x-request-id`` header; the model
gateway answers on the outputs topic with the same key and the request's headers
(``scheduler/pkg/kafka/pipeline/kafkamanager.go``, ``.../gateway/worker.go``).
The pair key is the ``x-request-id`` header, else the record key.

Values are Open Inference Protocol protobuf (``ModelInferRequest`` /
``ModelInferResponse``), or V2 JSON when the request came in as JSON (the
``seldon-infer-type`` header says ``json/...``; without it a value starting with
``{`` is JSON, which no valid ``ModelInferRequest`` can start with). An inputs
record carrying a ``ModelInferResponse`` (a pipeline chaining one model into the
next: ``proto/InferModelResponse``) gives its outputs as the features.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import orjson

from pipeline.core.records import Record
from pipeline.errors import DecodeError
from pipeline.events import InputEvent
from pipeline.formats import oip
from pipeline.formats.kserve import naming_of
from pipeline.formats.pairing import PairBuffer, Side
from pipeline.formats.predictions import prediction_events
from pipeline.formats.specs import SeldonInput
from pipeline.formats.tensors import Tensor, feature_rows, prediction_rows, v2_tensors

__all__ = ["INFER_TYPE_HEADER", "REQUEST_ID_HEADER", "SeldonAdapter"]

REQUEST_ID_HEADER: Final = "x-request-id"
INFER_TYPE_HEADER: Final = "seldon-infer-type"


class SeldonAdapter:
    """One ``seldon-oip`` input: both topics of one model."""

    def __init__(self, spec: SeldonInput) -> None:
        self.spec = spec
        self.naming = naming_of(spec)
        self.pairs = PairBuffer(int(spec.pair_ttl * 1_000_000), spec.max_pending)
        self.counters: Counter[str] = Counter()
        self.model_id = spec.model_id or spec.model

    def decode(self, record: Record) -> list[InputEvent]:
        side: Side = "request" if record.topic == self.spec.inputs_topic else "response"
        headers = {name.lower(): value for name, value in record.headers}
        key_bytes = headers.get(REQUEST_ID_HEADER) or record.key
        if not key_bytes:
            raise DecodeError("schema_violation", "no x-request-id header and no record key")
        key = key_bytes.decode("utf-8", "replace")
        infer_type = headers.get(INFER_TYPE_HEADER, b"").decode("ascii", "replace")
        tensors, version = self._tensors(side, record.value or b"", infer_type)
        half: dict[str, Any] = {
            "rows": feature_rows(tensors, self.naming)
            if side == "request"
            else prediction_rows(tensors, self.naming)
        }
        if side == "response":
            half["version"] = version or None
        at = (record.timestamp_ms or 0) * 1000
        pair = self.pairs.offer(record.partition, key, side, at, half)
        if pair is None:
            return []
        request, response = pair
        return list(
            prediction_events(
                request,
                response,
                key=key,
                model_id=self.model_id,
                model_version=response.get("version") or self.spec.model_version,
                variant="production",
            )
        )

    def _tensors(self, side: Side, value: bytes, infer_type: str) -> tuple[list[Tensor], str]:
        if infer_type.startswith("json/") or (not infer_type and value[:1] == b"{"):
            try:
                body = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise DecodeError("malformed_json", str(exc)) from None
            if not isinstance(body, dict):
                raise DecodeError("schema_violation", "the V2 body is not a JSON object")
            field = "inputs" if side == "request" and "inputs" in body else "outputs"
            version = body.get("model_version")
            return v2_tensors(body.get(field), field), version if isinstance(version, str) else ""
        if side == "request" and infer_type != "proto/InferModelResponse":
            request = oip.parse_request(value)
            return oip.request_tensors(request), request.model_version
        response = oip.parse_response(value)
        return oip.response_tensors(response), response.model_version
