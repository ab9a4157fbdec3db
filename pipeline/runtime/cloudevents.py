"""CloudEvents 1.0 binary-mode Kafka headers for the sidecar's output records.

In the Kafka protocol binding's *binary* content mode the record value stays the
event data (the driftline JSON payload, or a dead letter's original bytes) and the
CloudEvents attributes travel as headers named ``ce_<attribute>``; the data's
media type is the ``content-type`` header. A generic CloudEvents consumer (Knative
Eventing, Argo Events, a CloudEvents SDK) can then route driftline's records
without knowing its schemas.

Every attribute is derived from the message alone, so a replayed input produces
byte-identical headers:

==================  =====================================================================
``ce_specversion``  ``1.0``
``ce_id``           ``alert_id`` / ``command_id``; for a dead letter a stable id of the
                    source topic, partition and offset
``ce_type``         ``dev.driftline.alert.v2`` (``.v1`` for a version-1 alert),
                    ``dev.driftline.rollback-command.v1``, ``dev.driftline.dead-letter.v1``
``ce_source``       ``driftline/<model_id>`` (``source`` template; ``{model_id}`` is
                    percent-encoded; a dead letter's model is its Kafka key, if readable
                    and no longer than a model id may be, else ``unknown``)
``ce_time``         the event time of the payload (``detected_at`` / ``issued_at``); for a
                    dead letter its ``dl_failed_at`` header
``ce_subject``      the alert's ``signal``, the command's ``to_checkpoint``, the dead
                    letter's ``dl_reason``
``content-type``    ``application/json`` (alerts, rollback commands),
                    ``application/octet-stream`` (dead letters: the original bytes)
==================  =====================================================================

State changelog records are internal and get no CloudEvents headers.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

import orjson

from pipeline.core.ids import stable_id
from pipeline.core.records import Headers, Message
from pipeline.events import MAX_NAME

__all__ = [
    "CE_TYPES",
    "DEFAULT_SOURCE",
    "SPEC_VERSION",
    "cloudevent_headers",
    "with_cloudevent_headers",
]

SPEC_VERSION: Final = "1.0"
DEFAULT_SOURCE: Final = "driftline/{model_id}"
"""``ce_source`` template; ``{model_id}`` is replaced by the percent-encoded model id."""

CE_TYPES: Final[dict[str, str]] = {
    "alert": "dev.driftline.alert.v2",
    "rollback": "dev.driftline.rollback-command.v1",
    "dead_letter": "dev.driftline.dead-letter.v1",
}
"""Message kind -> ``ce_type``."""

_PAYLOAD_FIELDS: Final[dict[str, tuple[str, str, str]]] = {
    # kind -> (id field, time field, subject field)
    "alert": ("alert_id", "detected_at", "signal"),
    "rollback": ("command_id", "issued_at", "to_checkpoint"),
}


def _source(template: str, model_id: str | None) -> str:
    # a model id is at most MAX_NAME characters; a longer key is not one
    known = model_id is not None and 0 < len(model_id) <= MAX_NAME
    model = quote(model_id, safe="-._~") if known and model_id else "unknown"
    return template.replace("{model_id}", model)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _decoded_key(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def cloudevent_headers(message: Message, *, source: str = DEFAULT_SOURCE) -> Headers:
    """The CloudEvents binary-mode headers of one output ``message`` (empty for kinds
    that are not published to subscribers, i.e. state changelog records).

    Pure and deterministic: the same message always gives the same headers.

    >>> from pipeline.core.records import Message
    >>> value = b'{"command_id": "c1", "model_id": "fraud", "issued_at": "2024-05-01T12:00:00Z",'
    >>> value += b' "to_checkpoint": "ckpt-7"}'
    >>> for name, v in cloudevent_headers(Message("rollback", b"fraud", value)):
    ...     print(name, v.decode())
    ce_specversion 1.0
    ce_id c1
    ce_type dev.driftline.rollback-command.v1
    ce_source driftline/fraud
    ce_time 2024-05-01T12:00:00Z
    ce_subject ckpt-7
    content-type application/json
    """
    ce_type = CE_TYPES.get(message.kind)
    if ce_type is None:
        return ()
    if (message.kind == "alert") and ("schema", b"driftline.alert.v1") in message.headers:
        ce_type = "dev.driftline.alert.v1"
    attributes: dict[str, str | None]
    if message.kind == "dead_letter":
        headers = dict(message.headers)

        def header(name: str) -> str | None:
            raw = headers.get(name)
            return raw.decode("utf-8", "replace") if raw else None

        topic, partition, offset = header("dl_topic"), header("dl_partition"), header("dl_offset")
        attributes = {
            "id": stable_id("dead_letter", topic, partition, offset),
            "source": _source(source, _decoded_key(message.key)),
            "time": header("dl_failed_at"),
            "subject": header("dl_reason"),
        }
        # the original bytes, whatever they are: a CloudEvents SDK must not parse them
        content_type = "application/octet-stream"
    else:
        id_field, time_field, subject_field = _PAYLOAD_FIELDS[message.kind]
        try:
            body = orjson.loads(message.value or b"")
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            body = {}
        event_id = _text(body.get(id_field)) or stable_id(message.kind, message.value)
        model_id = _text(body.get("model_id")) or _decoded_key(message.key)
        attributes = {
            "id": event_id,
            "source": _source(source, model_id),
            "time": _text(body.get(time_field)),
            "subject": _text(body.get(subject_field)),
        }
        content_type = "application/json"
    out: list[tuple[str, bytes]] = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", str(attributes["id"]).encode()),
        ("ce_type", ce_type.encode()),
        ("ce_source", str(attributes["source"]).encode()),
    ]
    for name in ("time", "subject"):
        value = attributes[name]
        if value is not None:
            out.append((f"ce_{name}", value.encode()))
    if content_type is not None:
        out.append(("content-type", content_type.encode()))
    return tuple(out)


def with_cloudevent_headers(message: Message, *, source: str = DEFAULT_SOURCE) -> Message:
    """``message`` with its CloudEvents headers added (replacing any it had)."""
    added = cloudevent_headers(message, source=source)
    if not added:
        return message
    names = {name for name, _ in added}
    kept = tuple((n, v) for n, v in message.headers if n not in names)
    return Message(message.kind, message.key, message.value, (*kept, *added), message.partition)
