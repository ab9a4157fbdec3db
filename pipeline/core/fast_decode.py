"""A fast path for the common valid event: msgspec checks it, pydantic's model holds it.

The v1 contract is the pydantic models of :mod:`pipeline.events`. Validating an event
through them costs ~20 µs, most of it in Python callbacks (the value union's
discriminator and the magnitude bound run once per feature). msgspec checks the same
constraints in C in a few µs. So :func:`decode_fast` tries msgspec first, against
``msgspec.Struct`` mirrors of the models declared below, and returns the *pydantic*
event, built as ``model_copy(update=...)`` of a template builds it: the same class, field order,
values, defaults and ``model_fields_set`` as ``validate_json`` would give.

Anything the mirror refuses (or that it cannot vouch for, e.g. a timestamp in a form
other than ``YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)``) returns None, and the caller
decodes it through pydantic, so every error message and dead-letter reason is the
contract's own. The mirrors must therefore accept *less* than pydantic, never more:
``tests/pipeline/core/test_fast_decode.py`` checks them against the models field by
field and holds the two paths equal on generated valid and near-valid events.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType, field
from pydantic import BaseModel
from pydantic_core import TzInfo

from pipeline.events import (
    EARLIEST,
    LATEST,
    MAX_CATEGORY,
    MAX_FEATURES,
    MAX_MAGNITUDE,
    MAX_NAME,
    MAX_TEXT,
    MAX_VECTOR,
    FeatureEvent,
    InputEvent,
    LabelEvent,
    PredictionEvent,
    TrainingEvent,
)

__all__ = ["MIRRORS", "decode_fast"]

_Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
_Category = Annotated[str, Meta(max_length=MAX_CATEGORY)]
_Number = Annotated[float, Meta(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
_NonNegative = Annotated[float, Meta(ge=0.0, le=MAX_MAGNITUDE)]
_LogProb = Annotated[float, Meta(ge=-MAX_MAGNITUDE, le=0.0)]
_Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
# msgspec tries a union's members by the JSON type, so no member can take another's
# values: a number is never a flag, a string never a number.
_Value = _Number | _Category | bool | None
_Outcome = _Number | _Category | bool
_Features = Annotated[dict[_Name, _Value], Meta(max_length=MAX_FEATURES)]
_Vector = Annotated[list[_Number], Meta(max_length=MAX_VECTOR)]


class _Mirror(Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields in the model's order; a field with a default in the model defaults to
    UNSET here, so that only the fields the event carried are passed on."""


class _Feature(_Mirror, kw_only=True):
    schema_: Literal["driftline.feature.v1"] | UnsetType = field(default=UNSET, name="schema")
    event_id: _Name
    model_id: _Name
    model_version: _Name
    timestamp: str
    request_id: _Name | UnsetType | None = UNSET
    features: _Features
    embedding: _Vector | UnsetType | None = UNSET


class _Prediction(_Mirror, kw_only=True):
    schema_: Literal["driftline.prediction.v1"] | UnsetType = field(default=UNSET, name="schema")
    event_id: _Name
    model_id: _Name
    model_version: _Name
    variant: _Name | UnsetType = UNSET
    timestamp: str
    request_id: _Name | UnsetType | None = UNSET
    prediction: _Outcome
    probabilities: (
        Annotated[dict[_Name, _Probability], Meta(max_length=MAX_FEATURES)] | UnsetType | None
    ) = UNSET
    confidence: _Probability | UnsetType | None = UNSET
    features: _Features | UnsetType | None = UNSET
    embedding: _Vector | UnsetType | None = UNSET
    output_text: Annotated[str, Meta(max_length=MAX_TEXT)] | UnsetType | None = UNSET
    token_logprobs: Annotated[list[_LogProb], Meta(max_length=MAX_VECTOR)] | UnsetType | None = (
        UNSET
    )
    golden: bool | UnsetType = UNSET


class _Label(_Mirror, kw_only=True):
    schema_: Literal["driftline.label.v1"] | UnsetType = field(default=UNSET, name="schema")
    event_id: _Name
    model_id: _Name
    request_id: _Name
    label: _Outcome
    timestamp: str


class _Training(_Mirror, kw_only=True):
    schema_: Literal["driftline.training.v1"] | UnsetType = field(default=UNSET, name="schema")
    event_id: _Name
    model_id: _Name
    run_id: _Name
    checkpoint_id: _Name
    step: Annotated[int, Meta(ge=0)]
    timestamp: str
    metrics: Annotated[dict[_Name, _Number], Meta(max_length=MAX_FEATURES)]
    grad_norms: (
        Annotated[dict[_Name, _NonNegative], Meta(max_length=MAX_FEATURES)] | UnsetType | None
    ) = UNSET
    checkpoint_stable: bool | UnsetType | None = UNSET


class _Tag(Struct):
    """Only the ``schema`` tag (other fields skipped), for topics of mixed kinds."""

    schema_: str | UnsetType = field(default=UNSET, name="schema")


MIRRORS: Final[dict[str, tuple[type[BaseModel], type[Struct]]]] = {
    "feature": (FeatureEvent, _Feature),
    "prediction": (PredictionEvent, _Prediction),
    "label": (LabelEvent, _Label),
    "training": (TrainingEvent, _Training),
}
"""Event kind -> (the contract's model, its msgspec mirror)."""

_KIND_OF_TAG: Final = {
    str(model.model_fields["schema_"].default): kind for kind, (model, _) in MIRRORS.items()
}


def _template(model: type[BaseModel]) -> BaseModel:
    """An instance whose ``__dict__`` has every field in the model's order (defaults,
    and None standing in for required fields) and whose fields set are the required
    ones: ``model_copy(update=carried)`` then equals what ``validate_json`` builds."""
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    return model.model_construct(_fields_set=required, **dict.fromkeys(required))


class _Kind:
    __slots__ = ("decode", "defaults", "fields", "model", "required")

    def __init__(self, model: type[BaseModel], mirror: type[Struct]) -> None:
        self.decode = msgspec.json.Decoder(mirror).decode
        self.fields: tuple[str, ...] = mirror.__struct_fields__
        """The mirror's fields: the model's, in its order."""
        template = _template(model)
        self.model = model
        self.defaults: dict[str, Any] = dict(template.__dict__)
        self.required: set[str] = set(template.model_fields_set)

    def event(self, mirrored: Struct) -> InputEvent | None:
        """What ``template.model_copy(update=carried)`` gives for the fields the
        mirror carried, built directly: the template's fields with the carried ones
        replaced (the same order), its fields set with the carried ones added, no
        extra and no private values (``model_copy`` spent ~3 µs per event on
        generic copies of each of those). None when the timestamp is not vouched for."""
        values = dict(self.defaults)
        carried = set(self.required)
        for name, value in zip(self.fields, _astuple(mirrored), strict=True):
            if value is not UNSET:
                values[name] = value
                carried.add(name)
        at = _event_time(values["timestamp"])
        if at is None:
            return None
        values["timestamp"] = at
        event: InputEvent = _new(self.model)  # type: ignore[assignment]  # a contract model
        _setattr(event, "__dict__", values)
        _setattr(event, "__pydantic_extra__", None)
        _setattr(event, "__pydantic_fields_set__", carried)
        _setattr(event, "__pydantic_private__", None)
        return event


_KINDS: Final = {kind: _Kind(model, mirror) for kind, (model, mirror) in MIRRORS.items()}
_decode_tag = msgspec.json.Decoder(_Tag).decode
_astuple = msgspec.structs.astuple
_new = object.__new__
_setattr = object.__setattr__

# The one timestamp form vouched for here (what clients write); any other form, valid
# or not, is left to pydantic. ``datetime.fromisoformat`` refuses impossible dates.
_STAMP: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\Z"
)
_ZONES: dict[str, TzInfo] = {}
_SAFE_YEARS: Final = (EARLIEST.year + 1, LATEST.year - 2)


def _zone(suffix: str) -> TzInfo:
    """pydantic-core's tzinfo for an offset suffix, as ``validate_json`` gives it."""
    zone = _ZONES.get(suffix)
    if zone is None:
        seconds = 0
        if suffix != "Z":
            seconds = int(suffix[1:3]) * 3600 + int(suffix[4:6]) * 60
            seconds = -seconds if suffix[0] == "-" else seconds
        zone = _ZONES[suffix] = TzInfo(seconds)
    return zone


def _event_time(text: str) -> datetime | None:
    match = _STAMP.match(text)
    if match is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
        # the constructor, not ``replace(tzinfo=...)``: half the cost, the same value
        at = datetime(
            parsed.year,
            parsed.month,
            parsed.day,
            parsed.hour,
            parsed.minute,
            parsed.second,
            parsed.microsecond,
            _zone(match.group(1)),
        )
        # an offset moves the instant by less than a day, so only the first and the
        # last year of the range need the exact comparison
        if _SAFE_YEARS[0] <= at.year <= _SAFE_YEARS[1] or EARLIEST <= at < LATEST:
            return at
    except (ValueError, OverflowError):
        pass
    return None


def decode_fast(value: bytes, kind: str | None) -> InputEvent | None:
    """The event in ``value`` if the fast path vouches for it, else None (decode it
    through pydantic then: it may be valid all the same, or refused with a reason)."""
    if kind is None:
        try:
            tag = _decode_tag(value).schema_
        except ValueError:  # msgspec.DecodeError, UnicodeDecodeError (a bad key)
            return None
        kind = _KIND_OF_TAG.get(tag) if isinstance(tag, str) else None
        if kind is None:
            return None
    path = _KINDS.get(kind)
    if path is None:
        return None
    try:
        mirrored = path.decode(value)
    except ValueError:
        return None
    return path.event(mirrored)
