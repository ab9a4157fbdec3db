"""Typed settings: one YAML file plus ``DRIFTLINE_*`` environment overrides.

Everything is validated when the process starts, and an error names the exact key
(``models.fraud.monitors[1].params.threshold: ...``) so a bad deploy fails in the
first second instead of after the first event. Detector parameters are checked by
building the detector once.

Environment overrides use ``__`` between levels and YAML syntax for values::

    DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS=broker:9092
    DRIFTLINE_RUNTIME__FAIL_FAST=true
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import detectors
from pipeline.errors import ConfigError
from pipeline.events import Severity

__all__ = [
    "KafkaSettings",
    "ModelSpec",
    "MonitorSpec",
    "RuntimeSettings",
    "Settings",
    "TopicSettings",
    "load_settings",
    "parse_settings",
]

ENV_PREFIX = "DRIFTLINE_"

SIGNAL_PATTERN = re.compile(
    r"^(feature:.+|prediction|confidence|probabilities|output_text|token_logprobs"
    r"|embedding|error|training\..+|grad_norm:.+)$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Strict):
    bootstrap_servers: str = "127.0.0.1:39092"
    group_id: str = "driftline"
    client_id: str = "driftline"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    extra: dict[str, Any] = Field(default_factory=dict)
    """Passed as-is to kafka-python clients (e.g. security settings)."""


class TopicSettings(_Strict):
    features: str = "driftline.features"
    predictions: str = "driftline.predictions"
    labels: str = "driftline.labels"
    training: str = "driftline.training"
    alerts: str = "driftline.alerts"
    rollback_commands: str = "driftline.rollback-commands"
    dlq: str = "driftline.dlq"
    state: str = "driftline.state"

    def inputs(self) -> dict[str, str]:
        """Input topic -> event kind."""
        return {
            self.features: "feature",
            self.predictions: "prediction",
            self.labels: "label",
            self.training: "training",
        }


class RuntimeSettings(_Strict):
    mode: Literal["at_least_once"] = "at_least_once"
    max_batch_events: int = Field(500, ge=1, le=100_000)
    poll_timeout_ms: int = Field(200, ge=1, le=60_000)
    max_event_bytes: int = Field(1_048_576, ge=256)
    fail_fast: bool = False


class MonitorSpec(_Strict):
    """One watched signal of a model and the detector that watches it."""

    signal: str
    detector: str
    params: dict[str, Any] = Field(default_factory=dict)
    severity: Severity = "drift"

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        if not SIGNAL_PATTERN.match(value):
            raise ValueError(
                f"unknown signal {value!r}; expected feature:NAME, prediction, confidence, "
                "probabilities, output_text, token_logprobs, embedding, error, "
                "training.METRIC or grad_norm:LAYER"
            )
        return value

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        detectors.get(value)  # raises ValueError listing the known names
        return value

    @model_validator(mode="after")
    def _params_build_a_detector(self) -> MonitorSpec:
        try:
            detectors.create(self.detector, **self.params)
        except TypeError as exc:
            raise ValueError(f"params: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"params.{exc}") from None
        return self

    def build(self) -> detectors.DriftDetector[Any]:
        return detectors.create(self.detector, **self.params)


class ModelSpec(_Strict):
    monitors: list[MonitorSpec] = Field(default_factory=list)


class Settings(_Strict):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    default_model: ModelSpec | None = None
    """Monitors for models not listed in ``models``."""
    unknown_models: Literal["monitor", "reject"] = "monitor"

    def spec_for(self, model_id: str) -> ModelSpec | None:
        """The monitors of ``model_id``; None when the model is unknown and unmonitored."""
        spec = self.models.get(model_id)
        if spec is not None:
            return spec
        return self.default_model if self.unknown_models == "monitor" else None


def _error_location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {_error_location(err['loc'])}: {msg}")
    return "\n".join(lines)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another one")
        node[path[-1]] = yaml.safe_load(raw) if raw else raw
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_settings(
    data: Mapping[str, Any], *, source: str = "config", environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate a config mapping, with environment overrides applied on top."""
    merged = _merge(dict(data), _env_overrides(os.environ if environ is None else environ))
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_settings(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the YAML config at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return parse_settings(data, source=str(path), environ=environ)
