"""Event contracts: every record driftline reads or writes (version 1; alerts version 2).

The models are strict on purpose: an inference service that sends a string where a
number belongs, NaN, an unknown schema version or a 10 MB embedding gets a
validation error that names the field, and the runtime routes the record to the
dead-letter path instead of feeding garbage to a detector.

These models are the contract: ``pipeline.core.decode`` validates bytes through them
(``validate_json``), after a msgspec fast path (``pipeline.core.fast_decode``) that
vouches only for events these models accept with the same values and hands back these
models' instances; every refusal and its message comes from here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "AlertEvent",
    "AlertEventV1",
    "AlertStatus",
    "DeadLetterEvent",
    "DetectorInfo",
    "EVENT_MODELS",
    "FeatureEvent",
    "FeatureValue",
    "InputEvent",
    "LabelEvent",
    "PredictionEvent",
    "RollbackCommand",
    "Severity",
    "SourcePosition",
    "TrainingEvent",
    "WindowBounds",
    "schema_id",
    "schema_version",
]

SCHEMA_VERSION: Final = 1
"""The contract version of every kind not listed in ``KIND_VERSIONS``."""
KIND_VERSIONS: Final[dict[str, int]] = {"alert": 2}
"""Kinds whose contract moved on: alerts gained incidents (status, incident_id) in v2."""

# Bounds that keep one event from exhausting the sidecar. The byte limit on the
# whole payload is applied before parsing (see pipeline.core.decode).
MAX_FEATURES: Final = 1024
MAX_VECTOR: Final = 8192
MAX_TEXT: Final = 65536
MAX_NAME: Final = 256

MAX_CATEGORY: Final = 1024
MAX_MAGNITUDE: Final = 1e100
"""Numbers beyond it are refused: squares and sums of them overflow a float inside the
detectors (``1e200 ** 2``), while every detector is tested up to this magnitude."""
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2100, 1, 1, tzinfo=UTC)
"""Event time is kept as integer microseconds since the epoch; a timestamp outside
[EARLIEST, LATEST) is dead-lettered as ``timestamp_out_of_range``."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
Category = Annotated[str, StringConstraints(max_length=MAX_CATEGORY)]


def _bounded(value: float) -> float:
    if not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
        raise PydanticCustomError(
            "value_out_of_range", "magnitude must be at most {limit}", {"limit": "1e+100"}
        )
    return value


Number = Annotated[
    float,
    AfterValidator(_bounded),
    Field(json_schema_extra={"minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE}),
]


def _value_kind(value: Any) -> str | None:
    """Which member of a number | string | flag | missing union a JSON value is
    (``bool`` first: it is an ``int`` in Python), so an error names only that member."""
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "category"
    if value is None:
        return "missing"
    return None


def _outcome_kind(value: Any) -> str | None:
    return None if value is None else _value_kind(value)


_FEATURE_KIND = Discriminator(
    _value_kind,
    custom_error_type="value_type",
    custom_error_message="Input should be a number, a string, a boolean or null",
)
_OUTCOME_KIND = Discriminator(
    _outcome_kind,
    custom_error_type="value_type",
    custom_error_message="Input should be a number, a string or a boolean",
)
FeatureValue = Annotated[
    Annotated[Number, Tag("number")]
    | Annotated[Category, Tag("category")]
    | Annotated[bool, Tag("flag")]
    | Annotated[None, Tag("missing")],
    _FEATURE_KIND,
]
"""A feature is a number, a category, a flag, or missing."""
Outcome = Annotated[
    Annotated[Number, Tag("number")]
    | Annotated[Category, Tag("category")]
    | Annotated[bool, Tag("flag")],
    _OUTCOME_KIND,
]
"""A prediction or a label: a number, a class, or a flag."""
VALUE_TAGS: Final = frozenset({"number", "category", "flag", "missing"})
"""The member tags above: an error inside a member ends its location with one, which
error messages leave out (``features.a.number`` -> ``features.a``)."""


def _in_time_range(value: datetime) -> datetime:
    try:
        ok = EARLIEST <= value < LATEST
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        ok = False
    if not ok:
        raise PydanticCustomError(
            "timestamp_out_of_range",
            "event time must be from {earliest} up to (not including) {latest}",
            {"earliest": EARLIEST.isoformat(), "latest": LATEST.isoformat()},
        )
    return value


EventTime = Annotated[AwareDatetime, AfterValidator(_in_time_range)]
Severity = Literal["warning", "drift", "critical"]


def schema_version(kind: str) -> int:
    """The current contract version of an event kind."""
    return KIND_VERSIONS.get(kind, SCHEMA_VERSION)


def schema_id(kind: str) -> str:
    """The ``schema`` tag of an event kind, e.g. ``driftline.prediction.v1``."""
    return f"driftline.{kind}.v{schema_version(kind)}"


class _Event(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        populate_by_name=True,
        ser_json_inf_nan="null",
    )


# --------------------------------------------------------------------------- inputs
class FeatureEvent(_Event):
    """The inputs a model saw for one request."""

    schema_: Literal["driftline.feature.v1"] = Field("driftline.feature.v1", alias="schema")
    event_id: Identifier
    model_id: Identifier
    model_version: Identifier
    timestamp: EventTime
    request_id: Identifier | None = None
    features: dict[Name, FeatureValue] = Field(max_length=MAX_FEATURES)
    embedding: list[Number] | None = Field(None, max_length=MAX_VECTOR)


class PredictionEvent(_Event):
    """What a model answered for one request (``variant`` tells production from shadow)."""

    schema_: Literal["driftline.prediction.v1"] = Field("driftline.prediction.v1", alias="schema")
    event_id: Identifier
    model_id: Identifier
    model_version: Identifier
    variant: Identifier = "production"
    timestamp: EventTime
    request_id: Identifier | None = None
    prediction: Outcome
    probabilities: dict[Name, Annotated[float, Field(ge=0.0, le=1.0)]] | None = Field(
        None, max_length=MAX_FEATURES
    )
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    features: dict[Name, FeatureValue] | None = Field(None, max_length=MAX_FEATURES)
    embedding: list[Number] | None = Field(None, max_length=MAX_VECTOR)
    output_text: str | None = Field(None, max_length=MAX_TEXT)
    token_logprobs: list[Annotated[Number, Field(le=0.0)]] | None = Field(
        None, max_length=MAX_VECTOR
    )
    golden: bool = False
    """Set by a golden-set probe: the request is one of the known inputs."""


class LabelEvent(_Event):
    """Delayed ground truth, joined to a prediction by ``request_id``."""

    schema_: Literal["driftline.label.v1"] = Field("driftline.label.v1", alias="schema")
    event_id: Identifier
    model_id: Identifier
    request_id: Identifier
    label: Outcome
    timestamp: EventTime


class TrainingEvent(_Event):
    """Metrics a training or fine-tuning run reports at a step or checkpoint."""

    schema_: Literal["driftline.training.v1"] = Field("driftline.training.v1", alias="schema")
    event_id: Identifier
    model_id: Identifier
    run_id: Identifier
    checkpoint_id: Identifier
    step: Annotated[int, Field(ge=0)]
    timestamp: EventTime
    metrics: dict[Name, Number] = Field(max_length=MAX_FEATURES)
    grad_norms: dict[Name, Annotated[Number, Field(ge=0.0)]] | None = Field(
        None, max_length=MAX_FEATURES
    )
    checkpoint_stable: bool | None = None


InputEvent = FeatureEvent | PredictionEvent | LabelEvent | TrainingEvent


# -------------------------------------------------------------------------- outputs
class SourcePosition(_Event):
    """Where the event that caused an output was read."""

    topic: str
    partition: int
    offset: int


class WindowBounds(_Event):
    """The stretch of the stream a detection covers, in event time and offsets."""

    start: AwareDatetime | None
    end: AwareDatetime
    events: int = Field(ge=0)


class DetectorInfo(_Event):
    name: str
    params: dict[str, Any]

    @field_validator("params")
    @classmethod
    def _canonical_order(cls, params: dict[str, Any]) -> dict[str, Any]:
        # Sorted, so the same detector serialises to the same bytes whichever
        # order its config (or a restored snapshot) listed the parameters in.
        return dict(sorted(params.items()))


class AlertEventV1(_Event):
    """A detector fired on a watched signal (contract version 1, before incidents).

    Still published when ``policy.alert_schema`` is 1, for readers that validate
    against ``schemas/alert.v1.json`` (it forbids unknown fields): one alert per
    incident, the incident id in ``evidence.incident_id``, no resolved alerts.
    """

    model_config = ConfigDict(title="AlertEvent")

    schema_: Literal["driftline.alert.v1"] = Field("driftline.alert.v1", alias="schema")
    alert_id: str
    model_id: str
    model_version: str
    variant: str = "production"
    """Which deployment variant of the model the signal came from (``shadow``,
    ``training`` for training runs, where ``model_version`` is the run id)."""
    signal: str
    segment: dict[str, str] | None = None
    detector: DetectorInfo
    severity: Severity
    statistic: float | None
    threshold: float | None
    p_value: float | None = None
    window: WindowBounds
    detected_at: AwareDatetime
    source: SourcePosition
    evidence: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""


AlertStatus = Literal["firing", "resolved"]


class AlertEvent(_Event):
    """A change on a watched signal opened (``firing``) or closed (``resolved``) an
    incident (contract version 2).

    An incident is one (model, version, variant, signal, monitor, segment) out of
    normal: its first alert is ``firing`` and names it (``incident_id`` = that
    alert's id); while it lasts no further alert is sent, except a higher severity
    or an optional ``policy.incidents.renotify`` reminder (same ``incident_id``);
    a ``resolved`` alert closes it. ``alert_id`` is derived from (model, version,
    signal, segment, detector, source partition and offset, and the status), so
    replaying the same input yields the same ids: subscribers deduplicate on it.
    Version-1 records (no status, no incident) read as ``firing`` alerts.
    """

    schema_: Literal["driftline.alert.v2", "driftline.alert.v1"] = Field(
        "driftline.alert.v2", alias="schema"
    )
    alert_id: str
    status: AlertStatus = "firing"
    incident_id: str | None = None
    """The id of the alert that opened the incident (None in version-1 records)."""
    model_id: str
    model_version: str
    variant: str = "production"
    """Which deployment variant of the model the signal came from (``shadow``,
    ``training`` for training runs, where ``model_version`` is the run id)."""
    signal: str
    segment: dict[str, str] | None = None
    detector: DetectorInfo
    severity: Severity
    """For a resolved alert: the severity the incident had reached."""
    statistic: float | None
    threshold: float | None
    p_value: float | None = None
    window: WindowBounds
    detected_at: AwareDatetime
    source: SourcePosition
    evidence: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""

    def as_v1(self) -> AlertEventV1:
        """The version-1 shape of a firing alert (the incident id moves to evidence)."""
        if self.status != "firing":
            raise ValueError("a resolved alert has no version-1 form")
        data = self.model_dump(exclude={"schema_", "status", "incident_id"})
        if self.incident_id is not None:
            data["evidence"] = {**data["evidence"], "incident_id": self.incident_id}
        return AlertEventV1.model_validate(data, strict=False)


class RollbackCommand(_Event):
    """An instruction to the training orchestrator to restore a known-good checkpoint."""

    schema_: Literal["driftline.rollback-command.v1"] = Field(
        "driftline.rollback-command.v1", alias="schema"
    )
    command_id: str
    model_id: str
    from_version: str
    to_checkpoint: str
    reason: str
    alert_ids: list[str]
    issued_at: AwareDatetime
    dry_run: bool
    rule: str | None = None
    """The rollback rule that held."""
    checkpoint_run_id: str | None = None
    checkpoint_step: int | None = None
    source: SourcePosition | None = None
    """The input record whose alert completed the rule."""


class DeadLetterEvent(_Event):
    """Why a record was refused, and where it came from.

    On Kafka the dead letter is the original bytes untouched, with these fields as
    headers; in files (replay, tests) it is this JSON object with the payload as
    latin-1-safe base64.
    """

    schema_: Literal["driftline.dead-letter.v1"] = Field("driftline.dead-letter.v1", alias="schema")
    reason: str
    detail: str
    source: SourcePosition
    failed_at: AwareDatetime | None
    payload_base64: str


EVENT_MODELS: Final[dict[str, type[_Event]]] = {
    "feature": FeatureEvent,
    "prediction": PredictionEvent,
    "label": LabelEvent,
    "training": TrainingEvent,
    "alert": AlertEvent,
    "rollback-command": RollbackCommand,
    "dead-letter": DeadLetterEvent,
}
"""Event kind -> model of its current version; the CLI exports one JSON Schema per entry."""

PREVIOUS_MODELS: Final[dict[str, dict[int, type[_Event]]]] = {"alert": {1: AlertEventV1}}
"""Earlier versions still published on request (and exported as schemas)."""
