"""Bytes -> typed event, or a DecodeError with a reason the dead-letter path keeps."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field, TypeAdapter, ValidationError

from pipeline.core.fast_decode import decode_fast
from pipeline.errors import DecodeError
from pipeline.events import (
    VALUE_TAGS,
    FeatureEvent,
    InputEvent,
    LabelEvent,
    PredictionEvent,
    TrainingEvent,
)

__all__ = ["Decoder", "describe_validation_error"]

_BY_KIND: Final[dict[str, TypeAdapter[Any]]] = {
    "feature": TypeAdapter(FeatureEvent),
    "prediction": TypeAdapter(PredictionEvent),
    "label": TypeAdapter(LabelEvent),
    "training": TypeAdapter(TrainingEvent),
}
# Files and mixed topics: the ``schema`` tag says which kind an event is.
_ANY: Final[TypeAdapter[Any]] = TypeAdapter(
    Annotated[
        FeatureEvent | PredictionEvent | LabelEvent | TrainingEvent,
        Field(discriminator="schema_"),
    ]
)


def _location(loc: tuple[int | str, ...], kind: str) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("driftline.")]
    # an error inside a tagged member: features.a.number -> features.a (a value of the
    # wrong type never reached a member, so its last part is the field's own name)
    if kind != "value_type" and len(parts) > 1 and parts[-1] in VALUE_TAGS:
        parts.pop()
    return ".".join(parts) or "(event)"


def describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """A (reason, detail) pair naming the first offending field."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return "malformed_json", first["msg"]
    if (kind in ("union_tag_invalid", "union_tag_not_found") and not first["loc"]) or (
        kind == "literal_error" and first["loc"] and first["loc"][-1] == "schema"
    ):
        return "unknown_schema", first["msg"]
    detail = "; ".join(f"{_location(e['loc'], e['type'])}: {e['msg']}" for e in errors[:5])
    if kind == "finite_number":
        return "non_finite", detail
    if kind == "timestamp_out_of_range":
        return "timestamp_out_of_range", detail
    return "schema_violation", detail


class Decoder:
    """Turns raw record bytes into events.

    ``kind=None`` decodes any input kind by its ``schema`` tag (files, mixed topics).
    An event the fast path vouches for (:mod:`pipeline.core.fast_decode`) skips
    pydantic's validation; every other one, and every refusal, goes through the
    contract's models (``fast=False``: always, for comparisons).
    """

    def __init__(self, max_event_bytes: int, *, fast: bool = True) -> None:
        self.max_event_bytes = max_event_bytes
        self.fast = fast

    def decode(self, value: bytes, kind: str | None = None) -> InputEvent:
        if len(value) > self.max_event_bytes:
            raise DecodeError(
                "oversized",
                f"payload is {len(value)} bytes, the limit is {self.max_event_bytes}",
            )
        if self.fast:
            fast = decode_fast(value, kind)
            if fast is not None:
                return fast
        adapter = _ANY if kind is None else _BY_KIND[kind]
        try:
            event: InputEvent = adapter.validate_json(value)
        except ValidationError as exc:
            raise DecodeError(*describe_validation_error(exc)) from None
        return event
