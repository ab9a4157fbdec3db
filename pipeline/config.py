"""Typed settings: one YAML file plus ``DRIFTLINE_*`` environment overrides.

Everything is validated when the process starts, and an error names the exact key
(``models.fraud.monitors[1].params.threshold: ...``) so a bad deploy fails in the
first second instead of after the first event. Detector parameters are checked by
building the detector once.

Environment overrides use ``__`` between levels and YAML syntax for values::

    DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS=broker:9092
    DRIFTLINE_RUNTIME__FAIL_FAST=true

What is watched (per model, or ``default_model`` for every other model):

* ``features`` / ``classes`` / ``text`` / ``embedding`` describe the model; from them
  :func:`default_monitors` derives a reasonable monitor set (drift on every numeric
  and categorical feature, class-mix drift and entropy collapse of predictions,
  confidence decay, output diversity and token entropy for text, the error stream
  of joined labels, and the training-side signals). ``monitors`` adds to (or, with
  ``default_monitors: false``, replaces) them.
* ``labels`` (join of delayed ground truth), ``shadow`` (candidate vs production),
  ``golden`` (known inputs, known outputs) and ``rollback`` (when to ask the training
  orchestrator for the last stable checkpoint).

``policy`` (top level) is the alert chain: cooldown, hysteresis, escalation and
maintenance windows. ``limits`` bound the state a partition can hold.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math
import os
import pkgutil
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

import detectors
from pipeline.errors import ConfigError
from pipeline.events import Severity

__all__ = [
    "CalibrationSpec",
    "Duration",
    "EscalationSettings",
    "GoldenSpec",
    "HysteresisSettings",
    "KafkaSettings",
    "LabelSpec",
    "LimitSettings",
    "MaintenanceWindow",
    "ModelSpec",
    "MonitorSpec",
    "PolicySettings",
    "RollbackRule",
    "RollbackSpec",
    "RuntimeSettings",
    "SeverityMap",
    "Settings",
    "ShadowSpec",
    "TopicSettings",
    "default_monitors",
    "load_detectors",
    "load_settings",
    "parse_duration",
    "parse_settings",
]

ENV_PREFIX = "DRIFTLINE_"

SIGNAL_PATTERN = re.compile(
    r"^(feature:.+|prediction|confidence|probabilities|output_text|token_logprobs"
    r"|embedding|error|training\..+|grad_norm:.+)$"
)
SEVERITY_RANK: dict[str, int] = {"warning": 1, "drift": 2, "critical": 3}


@functools.cache
def load_detectors() -> tuple[str, ...]:
    """Import every detector module so that each registers itself; the names."""
    for info in pkgutil.iter_modules(detectors.__path__):
        if not info.name.startswith("_") and info.name not in ("base", "calibrate"):
            importlib.import_module(f"detectors.{info.name}")
    return tuple(sorted(detectors.REGISTRY))


# ------------------------------------------------------------------- durations
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"500ms"``, ``"30s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90, '30s', '15m', '2h', '7d')")
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a duration must be positive, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A positive duration in seconds; YAML may say ``30s``, ``15m``, ``2h``, ``7d``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------- kafka
def _default_transactional_id() -> str:
    # Stable per instance: on Kubernetes the pod name (set POD_NAME from the
    # downward API, or rely on HOSTNAME), so a restarted pod fences its zombie.
    instance = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or "local"
    return f"driftline-{instance}"


class KafkaSecurity(_Strict):
    """TLS and SASL for the Kafka clients; secrets usually come from the
    environment (``DRIFTLINE_KAFKA__SECURITY__SASL_PASSWORD``, from a Secret)."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSecurity:
        if self.protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError("sasl_mechanism: required when protocol is SASL_*")
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                "sasl_username and sasl_password: required by " + str(self.sasl_mechanism)
            )
        return self

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_username is not None:
                options["sasl_plain_username"] = self.sasl_username
                options["sasl_plain_password"] = self.sasl_password
        if self.protocol.endswith("SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, name) is not None:
                    options[name] = getattr(self, name)
        return options

    def __repr_args__(self) -> Any:  # never print the password
        for name, value in super().__repr_args__():
            yield name, ("***" if name == "sasl_password" and value else value)


# NOTE: KafkaSettings and RuntimeSettings are read by pipeline/runtime (the
# sidecar); edit them in place, do not rewrite this file from an older copy.
class KafkaSettings(_Strict):
    bootstrap_servers: str = "127.0.0.1:39092"
    group_id: str = "driftline"
    client_id: str = "driftline"
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    transactional_id: str = Field(default_factory=_default_transactional_id)
    """Exactly-once mode: stable per sidecar instance, unique within the group."""
    security: KafkaSecurity = Field(default_factory=lambda: KafkaSecurity())
    extra: dict[str, Any] = Field(default_factory=dict)
    """Passed as-is to kafka-python clients (any other client setting)."""

    def client_options(self) -> dict[str, Any]:
        """Security settings and ``extra``, as kafka-python keyword arguments."""
        return {**self.security.client_options(), **self.extra}


class TopicSettings(_Strict):
    features: str = "driftline.features"
    predictions: str = "driftline.predictions"
    labels: str = "driftline.labels"
    training: str = "driftline.training"
    alerts: str = "driftline.alerts"
    rollback_commands: str = "driftline.rollback-commands"
    dlq: str = "driftline.dlq"
    state: str = "driftline.state"

    @classmethod
    def prefixed(cls, prefix: str) -> dict[str, str]:
        """Every topic under its default name with ``prefix`` for ``driftline``: the
        per-run topics of tests, benchmarks and measurements."""
        return {
            name: f"{prefix}.{default.removeprefix('driftline.')}"
            for name, default in cls().model_dump().items()
        }

    def inputs(self) -> dict[str, str]:
        """Input topic -> event kind."""
        return {
            self.features: "feature",
            self.predictions: "prediction",
            self.labels: "label",
            self.training: "training",
        }


class RuntimeSettings(_Strict):
    mode: Literal["exactly_once", "at_least_once"] = "exactly_once"
    """exactly_once: outputs, state and offsets in one Kafka transaction per batch.
    at_least_once: flush outputs, then state, then commit offsets (duplicates
    after a crash carry the same ids)."""
    max_batch_events: int = Field(2000, ge=1, le=100_000)
    """Events per batch (= per transaction). Each batch costs a few broker round trips
    and rewrites the snapshots of the detectors it touched, whatever its size: larger
    batches raise throughput under backlog (benchmarks/e2e.py: 500 -> 2000 gave ~20 %)
    at the price of alert latency while catching up."""
    max_batch_ms: int = Field(100, ge=0, le=60_000)
    """Milliseconds a batch may wait to fill up before it is processed and committed
    (a batch at least half full goes as soon as nothing more is fetched)."""
    poll_timeout_ms: int = Field(200, ge=1, le=60_000)
    max_event_bytes: int = Field(1_048_576, ge=256)
    fail_fast: bool = False
    http_host: str = "0.0.0.0"
    http_port: int | None = Field(8080, ge=0, le=65535)
    """/metrics, /healthz, /readyz; None disables the endpoint."""
    create_state_topic: bool = True
    """Create the compacted state topic (as many partitions as the inputs) if missing."""
    liveness_timeout_s: float = Field(60.0, gt=0)
    """/healthz fails when the poll loop made no progress for this long."""
    transaction_timeout_ms: int = Field(60_000, ge=1_000, le=900_000)
    """A transaction left open longer (the broker was unreachable) is aborted by the
    broker, which fences this instance: it then exits (code 2) to be restarted."""


# -------------------------------------------------------------------- monitors
class SeverityMap(_Strict):
    """What a detector's own outcomes become: ``drift`` -> this severity, and
    ``warning`` (detectors with a warning zone, e.g. DDM) -> this one or nothing."""

    drift: Severity = "drift"
    warning: Severity | None = None


class CalibrationSpec(_Strict):
    """Choose the detector's threshold for a target false-alarm rate instead of
    giving it (``detectors.calibrate``): mean events between false alarms
    ``target_arl0`` on resamples of a stable reference — inline ``values``, or a file
    (``reference``, relative to the config file): a JSON list of values, or JSONL of
    recorded input events from which the monitor's signal is read. Calibration runs
    once, when the config is loaded (deterministic: ``seed``)."""

    target_arl0: float = Field(ge=2)
    values: list[Any] | None = None
    reference: str | None = None
    model: str | None = None
    """Only events of this model count from ``reference`` (default: all)."""
    max_events: int = Field(5000, ge=2, le=1_000_000)
    n_runs: int = Field(200, ge=10, le=10_000)
    seed: int = 0
    block_size: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> CalibrationSpec:
        if (self.values is None) == (self.reference is None):
            raise ValueError("give exactly one of values (inline) or reference (a JSONL file)")
        return self


class MonitorSpec(_Strict):
    """One watched signal of a model and the detector that watches it.

    ``signal`` may end in ``*`` (``feature:*``, ``grad_norm:*``): one detector per
    concrete name seen, at most ``max_signals``. ``segment_by`` names a categorical
    feature: one detector per value (``country=DE``), at most ``max_segments``;
    further values share the segment ``__other__``.
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
    _calibration: dict[str, Any] | None = PrivateAttr(None)

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
        load_detectors()
        detectors.get(value)  # raises ValueError listing the known names
        return value

    @model_validator(mode="after")
    def _params_build_a_detector(self, info: ValidationInfo) -> MonitorSpec:
        try:
            detectors.create(self.detector, **self.params)
        except TypeError as exc:
            raise ValueError(f"params: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"params.{exc}") from None
        if self.calibrate is not None and self._calibration is None:
            context = info.context if isinstance(info.context, Mapping) else {}
            result = _calibrate(self, Path(context.get("base_dir", ".")))
            object.__setattr__(self, "params", result.pop("params"))
            self._calibration = result
        return self

    @property
    def calibration(self) -> dict[str, Any] | None:
        """What ``calibrate`` found (threshold, estimated ARL0), when it was used."""
        return self._calibration

    @property
    def id(self) -> str:
        """The monitor's identity within its model (part of every state key)."""
        return self.name or self.detector

    @property
    def wildcard(self) -> bool:
        return self.signal.endswith("*")

    def build(self) -> detectors.DriftDetector[Any]:
        return detectors.create(self.detector, **self.params)


def _reference_values(spec: MonitorSpec, calib: CalibrationSpec, base_dir: Path) -> list[Any]:
    if calib.values is not None:
        return list(calib.values)[: calib.max_events]
    from pipeline.core.decode import Decoder
    from pipeline.core.signals import values_of
    from pipeline.errors import DecodeError

    assert calib.reference is not None
    path = Path(calib.reference)
    path = path if path.is_absolute() else base_dir / path
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"calibrate.reference: cannot read {path}: {exc.strerror}") from None
    if path.suffix == ".json":  # a plain list of values of the signal
        try:
            listed = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"calibrate.reference: {path} is not JSON: {exc}") from None
        if not isinstance(listed, list):
            raise ValueError(f"calibrate.reference: {path} must hold a JSON list")
        return listed[: calib.max_events]
    lines = raw.splitlines()
    decoder = Decoder(1 << 24)
    values: list[Any] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            event = decoder.decode(line)
        except DecodeError:
            continue
        if calib.model is not None and event.model_id != calib.model:
            continue
        values.extend(value for _signal, value in values_of(spec.signal, event))
        if len(values) >= calib.max_events:
            break
    return values[: calib.max_events]


@functools.lru_cache(maxsize=256)
def _calibrate_cached(detector: str, params_json: str, values_json: str, calib_json: str) -> str:
    from detectors.calibrate import calibrate

    calib = json.loads(calib_json)
    result = calibrate(
        detector,
        json.loads(values_json),
        calib["target_arl0"],
        params=json.loads(params_json),
        n_runs=calib["n_runs"],
        seed=calib["seed"],
        block_size=calib["block_size"],
    )
    return json.dumps(
        {
            "params": result.params,
            "threshold_param": result.threshold_param,
            "threshold": result.threshold,
            "target_arl0": result.target_arl0,
            "estimated_arl0": result.arl0,
            "reference_events": len(json.loads(values_json)),
            "seed": result.seed,
        }
    )


def _calibrate(spec: MonitorSpec, base_dir: Path) -> dict[str, Any]:
    calib = spec.calibrate
    assert calib is not None
    values = _reference_values(spec, calib, base_dir)
    if len(values) < 2:
        raise ValueError("calibrate: the reference holds fewer than 2 values of the signal")
    try:
        text = _calibrate_cached(
            spec.detector,
            json.dumps(spec.params, sort_keys=True),
            json.dumps(values),
            calib.model_dump_json(exclude={"values", "reference", "model", "max_events"}),
        )
    except ValueError as exc:  # CalibrationError is a ValueError
        raise ValueError(f"calibrate: {exc}") from None
    result: dict[str, Any] = json.loads(text)
    return result


# ------------------------------------------------------------- model features
class LabelSpec(_Strict):
    """Join of delayed labels to earlier predictions by ``request_id``."""

    ttl: Duration = 3600.0
    """A label joins a prediction at most this much event time apart (either order).
    Labels arriving up to 2 x ``ttl`` after their prediction are counted as late;
    later ones, and labels whose prediction never comes, as orphans."""
    max_pending: int = Field(10_000, ge=1, le=10_000_000)
    """Requests waiting for their label (or label for its prediction), per model;
    beyond it the oldest is dropped and counted."""


class ShadowSpec(_Strict):
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


class GoldenSpec(_Strict):
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


class RollbackRule(_Strict):
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


class RollbackSpec(_Strict):
    """Issue a rollback command to the last stable checkpoint when a rule holds."""

    rules: list[RollbackRule] = Field(min_length=1)
    cooldown: Duration = 6 * 3600.0
    """One incident: no second command (or notice) for the model within this time."""
    dry_run: bool = False


# ------------------------------------------------------------------------ model
FeatureKind = Literal["numeric", "categorical"]


class ModelSpec(_Strict):
    features: dict[str, FeatureKind] = Field(default_factory=dict)
    """Feature name -> kind; a list means all numeric."""
    classes: list[str] | None = None
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

    @field_validator("features", mode="before")
    @classmethod
    def _feature_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return dict.fromkeys(value, "numeric")
        return value

    @model_validator(mode="after")
    def _unique_monitors(self) -> ModelSpec:
        seen: set[tuple[str, str]] = set()
        for i, monitor in enumerate(self.effective_monitors()):
            key = (monitor.signal, monitor.id)
            if key in seen and i < len(self.monitors):
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

    def effective_monitors(self) -> list[MonitorSpec]:
        """``monitors``, plus the derived defaults of every signal no explicit monitor
        watches (an explicit monitor of a signal replaces its derived ones)."""
        use_defaults = (
            self.default_monitors if self.default_monitors is not None else not self.monitors
        )
        if not use_defaults:
            return list(self.monitors)
        explicit = {m.signal for m in self.monitors}
        derived = [m for m in default_monitors(self) if m.signal not in explicit]
        return derived + list(self.monitors)


def _first(*names: str) -> str | None:
    registered = set(load_detectors())
    return next((n for n in names if n in registered), None)


def _monitor(signal: str, names: Sequence[str], **params: Any) -> MonitorSpec | None:
    name = _first(*names)
    if name is None:
        return None
    accepted = set(inspect.signature(detectors.get(name).__init__).parameters)
    usable = {k: v for k, v in params.get(name, {}).items() if k in accepted}
    return MonitorSpec(signal=signal, detector=name, params=usable)


@functools.lru_cache(maxsize=1024)
def _defaults_cached(description: str) -> tuple[MonitorSpec, ...]:
    spec = json.loads(description)
    out: list[MonitorSpec | None] = []
    for feature, kind in spec["features"].items():
        if kind == "numeric":
            out.append(
                _monitor(
                    f"feature:{feature}",
                    ("ks_window", "page_hinkley", "adwin"),
                    ks_window={"window_size": 200, "reference_size": 1000, "alpha": 1e-6},
                )
            )
        else:
            out.append(
                _monitor(
                    f"feature:{feature}",
                    ("categorical_drift",),
                    categorical_drift={"window_size": 500, "reference_size": 2000},
                )
            )
    if spec["classes"] is not None or spec["classification"]:
        out.append(
            _monitor(
                "prediction",
                ("categorical_drift",),
                categorical_drift={"window_size": 500, "reference_size": 2000},
            )
        )
        entropy = _monitor(
            "prediction",
            ("entropy",),
            entropy={"window_size": 300, "reference_size": 2000, "k": 8.0, "direction": "lower"},
        )
        out.append(entropy)
    out.append(
        _monitor(
            "confidence",
            ("rolling_threshold",),
            rolling_threshold={
                "window_size": 200,
                "reference_size": 1000,
                "k": 6.0,
                "direction": "lower",
                "patience": 3,
                "tolerance": 0.01,
            },
        )
    )
    if spec["text"]:
        out.append(
            _monitor(
                "output_text",
                ("output_diversity", "entropy"),
                output_diversity={"window_size": 200, "max_duplicate_rate": 0.3},
                entropy={"direction": "lower"},
            )
        )
        out.append(_monitor("token_logprobs", ("token_entropy",), token_entropy={}))
    if spec["embedding"]:
        out.append(_monitor("embedding", ("embedding_drift",), embedding_drift={}))
    # ADWIN (delta 0.002): no false alarm in 200 runs of 5000 Bernoulli(0.1 or 0.2)
    # errors nor in 20 runs of 20000; with their default settings HDDM_A raised 17 of
    # 200 at an error rate of 0.2, and DDM 6-8 of 20 (its p_min + s_min keeps falling).
    out.append(_monitor("error", ("adwin",)))
    # Training side: every model may be fine-tuned; these only see training events.
    # Scale-free (standardised on a warm-up) CUSUM charts: loss scales differ by model.
    # k = 1, h = 8 after a 50-step warm-up: no false alarm in 200 simulated runs of
    # 700 i.i.d. steps, a 6-sigma step found at the next step.
    out.append(
        _monitor("training.divergence", ("cusum",), cusum={"k": 1.0, "h": 8.0, "warmup": 50})
    )
    out.append(
        _monitor("training.legacy_val_loss", ("cusum",), cusum={"k": 1.0, "h": 8.0, "warmup": 50})
    )
    out.append(_monitor("grad_norm:*", ("cusum",), cusum={"k": 1.0, "h": 12.0, "warmup": 50}))
    return tuple(m for m in out if m is not None)


def default_monitors(model: ModelSpec) -> list[MonitorSpec]:
    """The monitor set derived from a model's description (features, classes, text)."""
    description = json.dumps(
        {
            "features": model.features,
            "classes": model.classes,
            "classification": model.classification,
            "text": model.text,
            "embedding": model.embedding,
        },
        sort_keys=True,
    )
    return list(_defaults_cached(description))


# ----------------------------------------------------------------------- policy
class HysteresisSettings(_Strict):
    """Warning before drift: a key's first drift detection is reported as a warning;
    another one within ``confirm_within`` confirms it at the mapped severity. A key
    with no detection for ``clear_after`` is back to normal. Off by default: detectors
    that restart after a detection (Page-Hinkley, CUSUM) may fire only once on a
    lasting shift, which would then stay a warning."""

    enabled: bool = False
    confirm_within: Duration = 3600.0
    clear_after: Duration = 6 * 3600.0


class EscalationSettings(_Strict):
    """``signals`` distinct signals of one model at drift or above within ``within``
    -> the alert that completes the set is critical."""

    enabled: bool = True
    signals: int = Field(3, ge=2)
    within: Duration = 1800.0


class MaintenanceWindow(_Strict):
    """Alerts (and rollbacks) are suppressed while event time is in [start, end)."""

    start: AwareDatetime
    end: AwareDatetime
    models: list[str] | None = None
    """None: every model."""
    reason: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def covers(self, model_id: str, at: datetime) -> bool:
        return (self.models is None or model_id in self.models) and self.start <= at < self.end


class PolicySettings(_Strict):
    cooldown: Duration = 900.0
    """After an alert on a (model, version, signal, segment), repeats of the same or a
    lower severity are suppressed for this long (event time)."""
    hysteresis: HysteresisSettings = Field(default_factory=HysteresisSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    dedup_memory: int = Field(256, ge=1, le=100_000)
    """Alert ids remembered per model to drop repeats."""
    dry_run: bool = False
    """Every rollback command is issued as a dry run, whatever the models say
    (replays and backtests force it)."""


class LimitSettings(_Strict):
    """Bounds on the state of one source partition (adversarial model ids included)."""

    max_keys: int = Field(100_000, ge=1)
    """Live detector instances; a configured model's new key may evict an unknown
    model's least recently used one, otherwise new keys are refused (counted)."""
    max_unknown_models: int = Field(1000, ge=0)
    """Models not under ``models`` that are tracked at once; events of further ones
    go to the dead-letter path (reason ``model_cap``) until idle ones expire."""
    idle_expiry: Duration = 7 * 86400.0
    """Keys and unknown models idle this long (event time) are dropped."""


# --------------------------------------------------------------------- settings
class Settings(_Strict):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    default_model: ModelSpec | None = None
    """Monitors for models not listed in ``models``."""
    unknown_models: Literal["monitor", "reject"] = "monitor"
    policy: PolicySettings = Field(default_factory=PolicySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    def spec_for(self, model_id: str) -> ModelSpec | None:
        """The monitors of ``model_id``; None when the model is unknown and unmonitored."""
        spec = self.models.get(model_id)
        if spec is not None:
            return spec
        return self.default_model if self.unknown_models == "monitor" else None

    def is_configured(self, model_id: str) -> bool:
        return model_id in self.models


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
    data: Mapping[str, Any],
    *,
    source: str = "config",
    environ: Mapping[str, str] | None = None,
    base_dir: str | Path | None = None,
) -> Settings:
    """Validate a config mapping, with environment overrides applied on top.
    Relative paths in it (calibration references) are taken from ``base_dir``."""
    merged = _merge(dict(data), _env_overrides(os.environ if environ is None else environ))
    load_detectors()
    try:
        return Settings.model_validate(merged, context={"base_dir": str(base_dir or ".")})
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
    return parse_settings(data, source=str(path), environ=environ, base_dir=path.parent)
