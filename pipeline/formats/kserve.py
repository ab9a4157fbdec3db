"""KServe's inference logger, read from the Kafka topic a Knative broker or sink fills.

The logger (KServe's agent, ``pkg/logger``) sends one CloudEvent per request and one
per response, both with the request's id (the caller's ``Ce-Id`` header, else a
generated UUID) and these attributes:

- ``type``: ``org.kubeflow.serving.inference.request`` or ``...inference.response``;
- ``source``: the logger's source URI; ``time``: when the logger sent it;
- extensions ``inferenceservicename``, ``namespace``, ``component`` (``predictor``,
  ``transformer``...), ``endpoint`` (empty or ``default``, ``canary`` for a canary
  rollout), ``metadata`` (the logged request headers, JSON);
- data: the request or response body, V1 (``instances`` / ``predictions``) or V2
  (``inputs`` / ``outputs`` tensors) JSON. Only responses with HTTP status 200 are
  logged: a failed request's half expires unpaired.

With ``logger_mode: response`` (the InferenceService logs responses only) each response
becomes prediction events at once, without features. A pair becomes prediction events: ``model_id`` from the ``model_id`` template, the
version from the V2 response's ``model_version`` (else the configured one), the
variant ``canary`` for the canary endpoint (else ``production``). Records of other
CloudEvent types, components or inference services are skipped, not dead-lettered:
a broker's topic carries every event of its namespace.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from pipeline.core.records import Record
from pipeline.errors import DecodeError
from pipeline.events import InputEvent
from pipeline.formats.cloudevent import read_cloudevent
from pipeline.formats.pairing import PairBuffer, Side
from pipeline.formats.predictions import prediction_events
from pipeline.formats.specs import KServeInput
from pipeline.formats.tensors import (
    Naming,
    feature_rows,
    prediction_rows,
    v1_feature_rows,
    v1_prediction_rows,
    v2_tensors,
)

__all__ = ["REQUEST_TYPE", "RESPONSE_TYPE", "KServeAdapter", "naming_of"]

REQUEST_TYPE: Final = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE: Final = "org.kubeflow.serving.inference.response"
_SIDES: Final[dict[str, Side]] = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}


def naming_of(spec: Any) -> Naming:
    return Naming(
        features=None if spec.features is None else tuple(spec.features),
        classes=None if spec.classes is None else tuple(spec.classes),
        prediction_output=spec.prediction_output,
        probabilities_output=spec.probabilities_output,
    )


class KServeAdapter:
    """One ``kserve-cloudevents`` input: records in, prediction events out once paired."""

    def __init__(self, spec: KServeInput) -> None:
        self.spec = spec
        self.naming = naming_of(spec)
        self.pairs = PairBuffer(int(spec.pair_ttl * 1_000_000), spec.max_pending)
        self.counters: Counter[str] = Counter()
        self._services = None if spec.inference_services is None else set(spec.inference_services)
        self._components = set(spec.components)

    def decode(self, record: Record) -> list[InputEvent]:
        event = read_cloudevent(record)
        side = _SIDES.get(event.type)
        attrs = event.attributes
        service = attrs.get("inferenceservicename", "")
        if side is None:
            self.counters["skipped_type"] += 1
            return []
        if not service:
            raise DecodeError("malformed_cloudevent", "no inferenceservicename extension")
        if self._services is not None and service not in self._services:
            self.counters["skipped_service"] += 1
            return []
        if attrs.get("component", "") not in self._components:
            self.counters["skipped_component"] += 1
            return []
        body = event.json_data()
        if not isinstance(body, dict):
            raise DecodeError("schema_violation", "the logged body is not a JSON object")
        at = event.time_micros()
        if at is None:
            at = (record.timestamp_ms or 0) * 1000
        half: dict[str, Any] = {"rows": self._rows(side, body)}
        if side == "response":
            version = body.get("model_version")
            half["version"] = version if isinstance(version, str) and version else None
        key = f"{service}/{event.id}"
        if self.spec.logger_mode == "response":
            if side == "request":
                self.counters["skipped_request"] += 1
                return []
            request: dict[str, Any] = {"rows": [{}] * len(half["rows"]), "at": at}
            response = half
        else:
            pair = self.pairs.offer(record.partition, key, side, at, half)
            if pair is None:
                return []
            request, response = pair
        context = {
            "inferenceservicename": service,
            "namespace": attrs.get("namespace", ""),
            "component": attrs.get("component", ""),
            "endpoint": attrs.get("endpoint", ""),
        }
        return list(
            prediction_events(
                request,
                response,
                key=event.id,
                model_id=self.spec.model_id.format(**context),
                model_version=response.get("version") or self.spec.model_version,
                variant="canary" if context["endpoint"] == "canary" else "production",
            )
        )

    def _rows(self, side: Side, body: dict[str, Any]) -> list[dict[str, Any]]:
        if side == "request":
            if "instances" in body:
                return v1_feature_rows(body["instances"], self.naming)
            if "inputs" in body:
                return feature_rows(v2_tensors(body["inputs"], "inputs"), self.naming)
            raise DecodeError(
                "schema_violation", "request has neither instances (V1) nor inputs (V2)"
            )
        if "predictions" in body:
            return v1_prediction_rows(body["predictions"], self.naming)
        if "outputs" in body:
            return prediction_rows(v2_tensors(body["outputs"], "outputs"), self.naming)
        raise DecodeError(
            "schema_violation", "response has neither predictions (V1) nor outputs (V2)"
        )
