"""A paired request and response -> one driftline prediction event per row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError

from pipeline.core.decode import describe_validation_error
from pipeline.errors import DecodeError
from pipeline.events import PredictionEvent

__all__ = ["prediction_events"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _at(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def prediction_events(
    request: dict[str, Any],
    response: dict[str, Any],
    *,
    key: str,
    model_id: str,
    model_version: str,
    variant: str,
) -> list[PredictionEvent]:
    """Row ``i`` of the request with row ``i`` of the response. The event id and
    request id are the pair key (``<key>/<i>`` when the request held several rows),
    the timestamp is the request's."""
    features, answers = request["rows"], response["rows"]
    if len(features) != len(answers):
        raise DecodeError(
            "schema_violation",
            f"request {key!r} has {len(features)} rows, its response {len(answers)}",
        )
    timestamp = _at(int(request["at"]))
    events = []
    for i, (row, answer) in enumerate(zip(features, answers, strict=True)):
        ident = key if len(features) == 1 else f"{key}/{i}"
        body = {
            "event_id": ident,
            "model_id": model_id,
            "model_version": model_version,
            "variant": variant,
            "timestamp": timestamp,
            "request_id": ident,
            "prediction": answer["prediction"],
        }
        if row:
            body["features"] = row
        if answer.get("probabilities") is not None:
            body["probabilities"] = answer["probabilities"]
        if answer.get("confidence") is not None:
            body["confidence"] = answer["confidence"]
        try:
            events.append(PredictionEvent.model_validate(body))
        except ValidationError as exc:
            raise DecodeError(*describe_validation_error(exc)) from None
    return events
