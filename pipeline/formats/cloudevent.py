"""A CloudEvent read from a Kafka record, in either content mode of the Kafka binding.

*Binary* mode (what Knative's Kafka Broker always writes, and KafkaSink by default):
the record value is the event data as-is, its media type is the ``content-type``
header, and every other attribute is a header named ``ce_<attribute>`` (extensions
too: KServe's ``inferenceservicename`` arrives as ``ce_inferenceservicename``).
*Structured* mode (KafkaSink with ``contentMode: structured``): the ``content-type``
header starts with ``application/cloudevents`` and the value is the JSON event
format, attributes and ``data`` (or ``data_base64``) in one object.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from pipeline.core.records import Record
from pipeline.errors import DecodeError

__all__ = ["CloudEvent", "read_cloudevent"]

_REQUIRED: Final = ("specversion", "id", "source", "type")
_STRUCTURED: Final = "application/cloudevents"


@dataclass(frozen=True, slots=True)
class CloudEvent:
    attributes: dict[str, str]
    """Context attributes and extensions, by name (``id``, ``type``, ``time``, ...)."""
    data: bytes | Any
    """Binary mode: the raw bytes. Structured mode: ``data`` as parsed JSON, or the
    decoded bytes of ``data_base64``."""

    @property
    def id(self) -> str:
        return self.attributes["id"]

    @property
    def type(self) -> str:
        return self.attributes["type"]

    def time_micros(self) -> int | None:
        """``time`` in microseconds since the epoch (None when absent or unreadable)."""
        text = self.attributes.get("time")
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return int(moment.timestamp() * 1_000_000)

    def json_data(self) -> Any:
        """The data as JSON, whichever mode carried it."""
        if not isinstance(self.data, bytes):
            return self.data
        try:
            return orjson.loads(self.data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError("malformed_json", f"CloudEvent data: {exc}") from None


def _text(value: bytes, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("malformed_cloudevent", f"header {name} is not UTF-8") from None


def _structured(record: Record) -> CloudEvent:
    try:
        body = orjson.loads(record.value or b"")  # tombstones never get here
    except orjson.JSONDecodeError as exc:
        raise DecodeError("malformed_json", f"structured CloudEvent: {exc}") from None
    if not isinstance(body, dict):
        raise DecodeError("malformed_cloudevent", "structured CloudEvent is not a JSON object")
    data: Any = body.pop("data", None)
    encoded = body.pop("data_base64", None)
    if encoded is not None:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, TypeError):
            raise DecodeError("malformed_cloudevent", "data_base64 is not base64") from None
    attributes = {str(k): v if isinstance(v, str) else str(v) for k, v in body.items()}
    return CloudEvent(attributes, data)


def read_cloudevent(record: Record) -> CloudEvent:
    """The CloudEvent a record carries; ``DecodeError`` naming what is missing."""
    attributes: dict[str, str] = {}
    content_type: str | None = None
    for name, value in record.headers:
        key = name.lower()
        if key == "content-type":
            content_type = _text(value, name)
        elif key.startswith("ce_"):
            attributes[key[3:]] = _text(value, name)
    if content_type is not None and content_type.lower().startswith(_STRUCTURED):
        event = _structured(record)
    else:
        if content_type is not None:
            attributes.setdefault("datacontenttype", content_type)
        event = CloudEvent(attributes, record.value or b"")
    missing = [a for a in _REQUIRED if not event.attributes.get(a)]
    if missing:
        raise DecodeError(
            "malformed_cloudevent",
            f"not a CloudEvent: missing {', '.join(missing)} "
            "(binary mode needs ce_specversion, ce_id, ce_source, ce_type headers)",
        )
    return event
