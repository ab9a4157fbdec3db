"""What is watched per model: its description, monitors, label join, shadow test,
golden set and rollback rules (the ``models`` and ``default_model`` sections of
the config, see :mod:`pipeline.config`).

Data only: validation checks names, ranges and combinations. The monitor set a
model's description implies, the detector parameter values and calibration are
the core's business at start-up (:mod:`pipeline.core.monitor_set`).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

import detectors
from pipeline.config_types import Duration, Strict
from pipeline.events import Severity

__all__ = [
    "SIGNAL_PATTERN",
    "CalibrationSpec",
    "FeatureKind",
    "GoldenSpec",
    "LabelSpec",
    "ModelSpec",
    "MonitorSpec",
    "RollbackRule",
    "RollbackSpec",
    "SeverityMap",
    "ShadowSpec",
    "detector_parameters",
]

SIGNAL_PATTERN = re.compile(
    r"^(feature:.+|prediction|confidence|probabilities|output_text|token_logprobs"
    r"|embedding|error|training\..+|grad_norm:.+)$"
)


class SeverityMap(Strict):
    """What a detector's own outcomes become: ``drift`` -> this severity, and
    ``warning`` (detectors with a warning zone, e.g. DDM) -> this one or nothing."""

    drift: Severity = "drift"
    warning: Severity | None = None


class CalibrationSpec(Strict):
    """Choose the detector's threshold for a target false-alarm rate instead of
    giving it (``detectors.calibrate``): mean events between false alarms
    ``target_arl0`` on resamples of a stable reference — inline ``values``, or a file
    (``reference``, relative to the config file): a JSON list of values, or JSONL of
    recorded input events from which the monitor's signal is read. Calibration runs
    once, when the engine starts (``pipeline.core.calibration``; deterministic:
    ``seed``)."""

    target_arl0: float = Field(ge=2)
    values: list[Any] | None = None
    reference: str | None = None
    """Resolved against the folder of the config file when the config is loaded."""
    model: str | None = None
    """Only events of this model count from ``reference`` (default: all)."""
    max_events: int = Field(5000, ge=2, le=1_000_000)
    n_runs: int = Field(200, ge=10, le=10_000)
    seed: int = 0
    block_size: int = Field(1, ge=1)

    @field_validator("reference")
    @classmethod
    def _relative_to_config(cls, value: str | None, info: ValidationInfo) -> str | None:
        base_dir = info.context.get("base_dir") if isinstance(info.context, Mapping) else None
        if value is None or base_dir is None or Path(value).is_absolute():
            return value
        return str(Path(base_dir) / value)

    @model_validator(mode="after")
    def _one_source(self) -> CalibrationSpec:
        if (self.values is None) == (self.reference is None):
            raise ValueError("give exactly one of values (inline) or reference (a JSONL file)")
        return self


def detector_parameters(name: str) -> tuple[str, ...]:
    """The hyperparameters the detector registered as ``name`` accepts (the keyword
    arguments of its ``__init__``)."""
    signature = inspect.signature(detectors.get(name).__init__)
    return tuple(p for p in signature.parameters if p != "self")


class MonitorSpec(Strict):
    """One watched signal of a model and the detector that watches it.

    ``signal`` may end in ``*`` (``feature:*``, ``grad_norm:*``): one detector per
    concrete name seen, at most ``max_signals``. ``segment_by`` names a categorical
    feature: one detector per value (``country=DE``), at most ``max_segments``;
    further values share the segment ``__other__``. Parameter *names* are checked
    here; their values by the detector when the engine starts
    (``pipeline.core.monitor_set``).
    """

    signal: str
    detector: str
    params: dict[str, Any] = Field(default_factory=dict)
    calibrate: CalibrationSpec | None = None
    severity: SeverityMap = Field(default_factory=SeverityMap)
    segment_by: str | None = Field(None, min_length=1)
    max_segments: int = Field(32, ge=1, le=10_000)
    max_signals: int = Field(64, ge=1, le=10_000)
    name: str | None = Field(None, min_length=1, max_length=128)
    """Distinguishes two monitors of one signal with the same detector."""
    resolve_after: int | None = Field(None, ge=1, le=10_000_000)
    """An open incident of this monitor resolves after this many observations of its
    key without a detection (default: 2,000, or the detector's reference plus two
    windows when that is longer): detectors that keep their reference fire again
    within a window or two while the change lasts, and those that restart after a
    detection have by then re-learned and tested the new regime (see
    docs/architecture.md)."""

    @field_validator("severity", mode="before")
    @classmethod
    def _severity_shorthand(cls, value: Any) -> Any:
        return {"drift": value} if isinstance(value, str) else value

    @field_validator("signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        if not SIGNAL_PATTERN.match(value):
            raise ValueError(
                f"unknown signal {value!r}; expected feature:NAME, prediction, confidence, "
                "probabilities, output_text, token_logprobs, embedding, error, "
                "training.METRIC or grad_norm:LAYER (NAME and LAYER may be *)"
            )
        if "*" in value and not value.endswith(":*"):
            raise ValueError(f"signal {value!r}: only feature:* and grad_norm:* are wildcards")
        return value

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        detectors.get(value)  # raises ValueError listing the known names
        return value

    @model_validator(mode="after")
    def _known_params(self) -> MonitorSpec:
        accepted = detector_parameters(self.detector)
        for key in self.params:
            if key not in accepted:
                raise ValueError(
                    f"params.{key}: not a parameter of {self.detector} "
                    f"(it takes: {', '.join(accepted)})"
                )
        return self

    @property
    def id(self) -> str:
        """The monitor's identity within its model (part of every state key)."""
        return self.name or self.detector

    @property
    def wildcard(self) -> bool:
        return self.signal.endswith("*")


# ------------------------------------------------------------- model features
class LabelSpec(Strict):
    """Join of delayed labels to earlier predictions by ``request_id``."""

    ttl: Duration = 3600.0
    """A label joins a prediction at most this much event time apart (either order).
    Labels arriving up to 2 x ``ttl`` after their prediction are counted as late;
    later ones, and labels whose prediction never comes, as orphans."""
    max_pending: int = Field(10_000, ge=1, le=10_000_000)
    """Requests waiting for their label (or label for its prediction), per model;
    beyond it the oldest is dropped and counted. All models of a partition together
    are bounded by ``limits.max_pending_labels``."""


class ShadowSpec(Strict):
    """Candidate (``variant``) against production on the same requests, by their errors.

    A sequential sign test on the pairs where exactly one of the two is worse (always
    valid: its p-value may be read after every pair): when the p-value drops below
    ``alpha``, the candidate is declared worse (alert of ``worse_severity``) or better
    (alert of ``better_severity``), once per candidate version.
    """

    variant: str = "shadow"
    alpha: float = Field(0.01, gt=0, lt=1)
    min_pairs: int = Field(50, ge=1)
    """Labelled pairs needed before a decision."""
    worse_severity: Severity = "critical"
    better_severity: Severity = "warning"


class GoldenSpec(Strict):
    """Known inputs with known outputs: prediction events tagged ``golden: true``.

    Matched by ``request_id`` (``match: request_id``) or by an input feature
    (``match: feature:NAME``). Inputs listed in ``expected`` must produce that output;
    others must keep producing the first output seen. Any change alerts.
    """

    match: str = "request_id"
    expected: dict[str, float | str | bool] = Field(default_factory=dict)
    tolerance: float = Field(0.0, ge=0)
    """Numeric outputs equal within this absolute difference."""
    max_inputs: int = Field(1000, ge=1, le=100_000)
    severity: Severity = "critical"

    @field_validator("match")
    @classmethod
    def _match(cls, value: str) -> str:
        if value != "request_id" and not (value.startswith("feature:") and len(value) > 8):
            raise ValueError("must be request_id or feature:NAME")
        return value


# --------------------------------------------------------------------- rollback
_RULE_SUGAR: dict[str, tuple[list[str], Severity]] = {
    "critical": (["*"], "critical"),
    "shadow_worse": (["shadow.error_rate"], "drift"),
    "forgetting": (["training.legacy_val_loss"], "drift"),
}


class RollbackRule(Strict):
    """When a rollback is due: ``k`` of the listed ``signals`` (``*`` patterns) alerted
    at ``min_severity`` or above within ``within``. ``when`` is shorthand: ``critical``
    (any critical alert), ``shadow_worse`` (the shadow test found the candidate worse),
    ``forgetting`` (legacy-data loss rising during fine-tuning)."""

    when: Literal["critical", "shadow_worse", "forgetting"] | None = None
    signals: list[str] = Field(default_factory=list)
    k: int = Field(1, ge=1)
    within: Duration = 3600.0
    min_severity: Severity = "drift"
    name: str | None = None

    @model_validator(mode="after")
    def _normalise(self) -> RollbackRule:
        if self.when is not None:
            if self.signals:
                raise ValueError("give either when or signals, not both")
            signals, severity = _RULE_SUGAR[self.when]
            object.__setattr__(self, "signals", list(signals))
            if "min_severity" not in self.model_fields_set:
                object.__setattr__(self, "min_severity", severity)
        if not self.signals:
            raise ValueError("a rule needs when or signals")
        if self.k > len(self.signals) and not any("*" in s for s in self.signals):
            raise ValueError(f"k={self.k} exceeds the {len(self.signals)} listed signals")
        if self.name is None:
            label = self.when or f"{self.k} of {self.signals}"
            object.__setattr__(self, "name", label)
        return self


class RollbackSpec(Strict):
    """Issue a rollback command to the last stable checkpoint when a rule holds."""

    rules: list[RollbackRule] = Field(min_length=1)
    cooldown: Duration = 6 * 3600.0
    """One incident: no second command (or notice) for the model within this time."""
    dry_run: bool = False


# ------------------------------------------------------------------------ model
FeatureKind = Literal["numeric", "categorical"]


def _class_name(value: Any) -> Any:
    """A class as the category text a prediction of it becomes (``segment_label`` and
    the label join spell booleans and whole numbers the same way)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


class ModelSpec(Strict):
    features: dict[str, FeatureKind] = Field(default_factory=dict)
    """Feature name -> kind; a list means all numeric."""
    classes: list[str] | None = None
    """Class names; ints and bools are accepted and read as the category text the
    detectors see (``1`` -> ``"1"``, ``true`` -> ``"true"``)."""
    task: Literal["auto", "classification", "regression"] = "auto"
    """How errors are computed from labels (auto: by the type of prediction)."""
    text: bool = False
    """A generative model: output_text and token_logprobs are watched."""
    embedding: bool = False
    default_monitors: bool | None = None
    """Derive monitors from the description above (default: when ``monitors`` is empty)."""
    monitors: list[MonitorSpec] = Field(default_factory=list)
    labels: LabelSpec = Field(default_factory=LabelSpec)
    shadow: ShadowSpec | None = None
    golden: GoldenSpec | None = None
    rollback: RollbackSpec | None = None

    @field_validator("classes", mode="before")
    @classmethod
    def _class_names(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_class_name(v) for v in value]

    @field_validator("features", mode="before")
    @classmethod
    def _feature_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return dict.fromkeys(value, "numeric")
        return value

    @model_validator(mode="after")
    def _unique_monitors(self) -> ModelSpec:
        seen: set[tuple[str, str]] = set()
        for i, monitor in enumerate(self.monitors):
            key = (monitor.signal, monitor.id)
            if key in seen:
                raise ValueError(
                    f"monitors[{i}]: a second {monitor.id} on {monitor.signal}; give it a name"
                )
            seen.add(key)
        return self

    @property
    def classification(self) -> bool | None:
        """True/False when known from the config; None: decided per prediction."""
        if self.task != "auto":
            return self.task == "classification"
        return True if self.classes else None
