"""Typed settings: one YAML file plus ``DRIFTLINE_*`` environment overrides.

This module holds the sections the runtime reads (``kafka``, ``topics``,
``runtime``), the alert ``policy``, the state ``limits`` and the loading; what is
watched per model lives in :mod:`pipeline.model_spec` (re-exported here).

Config is data: validation checks what the file says and does nothing else (it
builds no detector, reads no file, runs no calibration). Everything is validated
when the process starts, and an error names the exact key
(``models.fraud.monitors[1].params.threshold: ...``) so a bad deploy fails in the
first second instead of after the first event. Detector names and parameter names
are checked here; parameter values by the detector itself when the engine resolves
its monitor set at start-up (:mod:`pipeline.core.monitor_set`, which
``driftline check-config`` runs too).

Environment overrides use ``__`` between levels. A string setting takes the value
literally (a password may be ``*abc``, ``12345678`` or ``abc #x``); any other setting is
read as YAML (``true``, ``2000``, ``[a, b]``)::

    DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS=broker:9092
    DRIFTLINE_RUNTIME__FAIL_FAST=true

What is watched (per model, or ``default_model`` for every other model):

* ``features`` / ``classes`` / ``text`` / ``embedding`` describe the model; from them
  the core derives a reasonable monitor set (``pipeline.core.monitor_set``: drift on
  every numeric and categorical feature, class-mix drift and entropy collapse of
  predictions, confidence decay, output diversity and token entropy for text, the
  error stream of joined labels, and the training-side signals). ``monitors`` adds
  to (or, with ``default_monitors: false``, replaces) them.
* ``labels`` (join of delayed ground truth), ``shadow`` (candidate vs production),
  ``golden`` (known inputs, known outputs) and ``rollback`` (when to ask the training
  orchestrator for the last stable checkpoint).

``policy`` (top level) is the alert chain: cooldown, hysteresis, escalation and
maintenance windows. ``limits`` bound the state a partition can hold.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, Field, ValidationError, model_validator

from pipeline.config_types import SEVERITY_RANK, Duration, Strict, parse_duration
from pipeline.errors import ConfigError
from pipeline.formats.specs import InputSpec
from pipeline.model_spec import (
    SIGNAL_PATTERN,
    CalibrationSpec,
    GoldenSpec,
    LabelSpec,
    ModelSpec,
    MonitorSpec,
    RollbackRule,
    RollbackSpec,
    SeverityMap,
    ShadowSpec,
    detector_parameters,
)

__all__ = [
    "SEVERITY_RANK",
    "SIGNAL_PATTERN",
    "CalibrationSpec",
    "Duration",
    "EscalationSettings",
    "GoldenSpec",
    "HysteresisSettings",
    "IncidentSettings",
    "KafkaSecurity",
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
    "detector_parameters",
    "load_settings",
    "parse_duration",
    "parse_settings",
]

ENV_PREFIX = "DRIFTLINE_"


# ----------------------------------------------------------------------- kafka
def _default_transactional_id() -> str:
    # Stable per instance: on Kubernetes the pod name (set POD_NAME from the
    # downward API, or rely on HOSTNAME), so a restarted pod fences its zombie.
    instance = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or "local"
    return f"driftline-{instance}"


SECRET_FIELDS = ("sasl_password", "ssl_password")
"""Settings of :class:`KafkaSecurity` that are never printed, logged or put in an error."""
SSL_FILES = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")


class KafkaSecurity(Strict):
    """TLS and SASL for the Kafka clients; secrets usually come from the
    environment (``DRIFTLINE_KAFKA__SECURITY__SASL_PASSWORD``, from a Secret).

    Settings that the protocol would silently ignore are refused (credentials under
    ``PLAINTEXT``/``SSL``, certificates without TLS), and so are credentials sent
    unencrypted (``SASL_PLAINTEXT``) unless ``allow_plaintext_credentials`` says so."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None
    """Password of an encrypted ``ssl_keyfile``."""
    ssl_check_hostname: bool = True
    allow_plaintext_credentials: bool = False
    """Accept ``SASL_PLAINTEXT`` with credentials (they cross the network unencrypted)."""

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        sasl, tls = self.protocol.startswith("SASL"), self.protocol.endswith("SSL")
        if sasl and self.sasl_mechanism is None:
            raise ValueError("sasl_mechanism: required when protocol is SASL_*")
        if (
            sasl
            and self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
            and not (self.sasl_username and self.sasl_password)
        ):
            raise ValueError(
                "sasl_username and sasl_password: required by " + str(self.sasl_mechanism)
            )
        unused = [
            name
            for name, used in (
                ("sasl_mechanism", sasl),
                ("sasl_username", sasl),
                ("sasl_password", sasl),
                *((name, tls) for name in (*SSL_FILES, "ssl_password")),
            )
            if getattr(self, name) is not None and not used
        ]
        if unused:
            needs = "SASL_SSL" if sasl or not tls else "SSL or SASL_SSL"
            raise ValueError(
                f"{', '.join(unused)}: set, but protocol {self.protocol} never uses "
                f"{'it' if len(unused) == 1 else 'them'} (did you mean protocol {needs}?)"
            )
        if self.protocol == "SASL_PLAINTEXT" and not self.allow_plaintext_credentials:
            raise ValueError(
                "protocol: SASL_PLAINTEXT sends the credentials without encryption; use "
                "SASL_SSL, or set allow_plaintext_credentials: true to accept that"
            )
        return self

    def missing_files(self) -> list[str]:
        """``ssl_*file: path`` for each configured file that cannot be read."""
        return [
            f"kafka.security.{name}: cannot read {path}"
            for name in SSL_FILES
            if (path := getattr(self, name)) is not None and not os.access(path, os.R_OK)
        ]

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_username is not None:
                options["sasl_plain_username"] = self.sasl_username
                options["sasl_plain_password"] = self.sasl_password
        if self.protocol.endswith("SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
            for name in (*SSL_FILES, "ssl_password"):
                if getattr(self, name) is not None:
                    options[name] = getattr(self, name)
        return options

    def __repr_args__(self) -> Any:  # never print a secret
        for name, value in super().__repr_args__():
            yield name, ("***" if name in SECRET_FIELDS and value else value)


# NOTE: KafkaSettings and RuntimeSettings are read by pipeline/runtime (the
# sidecar); edit them in place, do not rewrite this file from an older copy.
class KafkaSettings(Strict):
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


class TopicSettings(Strict):
    features: str = "driftline.features"
    predictions: str = "driftline.predictions"
    labels: str | None = "driftline.labels"
    """None: no labels topic is read, and no model keeps a label join (a deployment
    without ground truth saves the join's memory and changelog: see README "Sizing")."""
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
        kinds = {self.features: "feature", self.predictions: "prediction"}
        if self.labels is not None:
            kinds[self.labels] = "label"
        kinds[self.training] = "training"
        return kinds


class RuntimeSettings(Strict):
    mode: Literal["exactly_once", "at_least_once"] = "exactly_once"
    """exactly_once: outputs, state and offsets in one Kafka transaction per batch.
    at_least_once: flush outputs, then state, then commit offsets (duplicates
    after a crash carry the same ids)."""
    max_batch_events: int = Field(2000, ge=1, le=100_000)
    """Events per batch (= per transaction). Each batch costs a few broker round trips
    and one changelog journal record per partition, whatever its size: larger
    batches raise throughput under backlog (benchmarks/e2e.py: 500 -> 2000 gave ~20 %)
    at the price of alert latency while catching up."""
    max_batch_ms: int = Field(100, ge=0, le=60_000)
    """Milliseconds a batch may wait to fill up before it is processed and committed,
    counted from when the previous batch was assembled (its records were arriving
    meanwhile); the Kafka source lets the broker hold each fetch that long (at most
    500 ms). A batch whose window is over, or that is at least half full, goes as soon
    as nothing more is fetched; one whose window was over before it began (the previous
    batch outlasted it) first fetches what arrived meanwhile, without a hold (waiting a
    quarter of the window at most). The bound on an alert's latency, with the batch's
    own processing and commit: 0 takes whatever is fetched, at a commit per poll."""
    poll_timeout_ms: int = Field(200, ge=1, le=60_000)
    max_event_bytes: int = Field(1_048_576, ge=256)
    max_dead_letter_bytes: int = Field(1_040_384, ge=16_384)
    """Largest dead letter written (key, value and headers): the value of a larger one
    is cut to fit, with ``dl_truncated`` (its original length) and ``dl_sha256`` (of the
    original value) headers, so one record the broker accepted on the input topic can
    never wedge the batch that dead-letters it. Keep it at or below the producer's
    ``max_request_size`` (1 MiB) and the dead-letter topic's ``max.message.bytes``."""
    fail_fast: bool = False
    http_host: str = "127.0.0.1"
    """Where /metrics, /healthz and /readyz listen: this host only by default; a pod's
    probes and Prometheus need ``0.0.0.0`` (the Helm chart's ``httpHost``)."""
    http_port: int | None = Field(8080, ge=0, le=65535)
    """/metrics, /healthz, /readyz; None disables the endpoint."""
    http_max_connections: int = Field(16, ge=1, le=1024)
    """Connections served at once; more wait in the listen backlog, then are refused."""
    http_timeout_s: float = Field(5.0, gt=0, le=300)
    """A client that sends nothing (or reads nothing) for this long is disconnected."""
    create_state_topic: bool = True
    """Create the compacted state topic (as many partitions as the inputs) if missing."""
    liveness_timeout_s: float = Field(60.0, gt=0)
    """/healthz fails when the poll loop made no progress for this long."""
    transaction_timeout_ms: int = Field(60_000, ge=1_000, le=900_000)
    """A transaction left open longer (the broker was unreachable) is aborted by the
    broker, which fences this instance: it then exits (code 2) to be restarted."""


# ----------------------------------------------------------------------- policy
class HysteresisSettings(Strict):
    """Warning before drift: a key's first drift detection is reported as a warning;
    another one within ``confirm_within`` confirms it at the mapped severity. A key
    with no detection for ``clear_after`` is back to normal. Off by default: detectors
    that restart after a detection (Page-Hinkley, CUSUM) may fire only once on a
    lasting shift, which would then stay a warning."""

    enabled: bool = False
    confirm_within: Duration = 3600.0
    clear_after: Duration = 6 * 3600.0


class EscalationSettings(Strict):
    """``signals`` distinct signals of one model at drift or above within ``within``
    -> the alert that completes the set is critical."""

    enabled: bool = True
    signals: int = Field(3, ge=2)
    within: Duration = 1800.0


class MaintenanceWindow(Strict):
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


class IncidentSettings(Strict):
    """One alert per incident. The first alert of a (model, version, variant, signal,
    monitor, segment) opens an incident (``status: firing``, ``incident_id``); while it
    is open, further detections of that key send nothing — unless the severity rises,
    or ``renotify`` has passed since the last notice — and a ``resolved`` alert closes
    it when the key's detector is back to normal: ``MonitorSpec.resolve_after``
    observations of the key without a detection (see ``pipeline.core.monitor``)."""

    enabled: bool = True
    """False: the pre-incident behaviour, repeats only held back by ``cooldown``."""
    renotify: Duration | None = None
    """Send the firing alert again (same incident id) when the incident is still
    open this long (event time) after the last notice; None: never."""


class PolicySettings(Strict):
    cooldown: Duration = 900.0
    """After an alert on a (model, version, signal, segment), repeats of the same or a
    lower severity are suppressed for this long (event time). With incidents (the
    default) it only applies to ``incidents.enabled: false``."""
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    alert_schema: Literal[1, 2] = 2
    """Contract version of published alerts. 1 serves readers of ``alert.v1.json``:
    firing alerts without ``status``/``incident_id`` (the id in ``evidence``) and no
    resolved alerts."""
    hysteresis: HysteresisSettings = Field(default_factory=HysteresisSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    dedup_memory: int = Field(256, ge=1, le=100_000)
    """Alert ids remembered per model to drop repeats."""
    dry_run: bool = False
    """Every rollback command is issued as a dry run, whatever the models say
    (replays and backtests force it)."""
    target_arl0: float = Field(100_000.0, ge=100, le=1e8)
    """Mean observations between false alarms that every derived monitor's threshold
    is set for, per watched series (``detectors.arl``); explicit monitors keep their
    ``params``."""


class LimitSettings(Strict):
    """Bounds on the state of one source partition (adversarial model ids included)."""

    max_keys: int = Field(20_000, ge=1)
    """Live detector instances; a configured model's new key may evict an unknown
    model's least recently used one, otherwise new keys are refused (counted). The
    default bounds a partition's detectors to ~0.6 GiB: the largest warmed detector of
    the default set, a KS window, holds 28 KiB as restored and 30 KiB once its batch path
    ran (``python -m benchmarks.scale``; README "Sizing"). The Helm chart derives it
    from the pod's memory limit instead."""
    max_unknown_models: int = Field(1000, ge=0)
    """Models not under ``models`` that are tracked at once. When they are all
    tracked, a new one takes the place of the least recently seen one if that one
    has been idle for ``unknown_model_idle``; otherwise its events go to the
    dead-letter path (reason ``model_cap``)."""
    unknown_model_idle: Duration = Field(3600.0, gt=0)
    """How long (event time) an unknown model must have been idle before a new
    unknown model may take its place at the cap: junk model ids lock a partition
    out for this long after they stop, not for ``idle_expiry``."""
    max_pending_labels: int = Field(500_000, ge=1, le=100_000_000)
    """Pending requests of the label join over all models of a partition (each
    model's own bound is ``labels.max_pending``). Beyond it the model holding the
    most gives up its oldest (ties: the smallest model id), counted ``evicted`` and
    ``evicted_budget``. The default bounds a partition's join to ~17 MiB at the
    measured ~35 bytes per pending prediction (README "Sizing"): an hour of label
    delay at ~140 predictions per second per partition."""
    idle_expiry: Duration = 7 * 86400.0
    """Keys and unknown models idle this long (event time) are dropped."""
    max_future_skew: Duration = Field(86400.0, gt=0)
    """How far ahead of its record's Kafka timestamp an event's own timestamp may be;
    beyond it the record is dead-lettered (``timestamp_out_of_range``). Without a
    Kafka timestamp (files), a partition's event-time watermark, which idle expiry
    follows, advances by at most this much per event."""


# --------------------------------------------------------------------- settings
class Settings(Strict):
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    default_model: ModelSpec | None = None
    """Monitors for models not listed in ``models``."""
    unknown_models: Literal["monitor", "reject"] = "monitor"
    policy: PolicySettings = Field(default_factory=PolicySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    inputs: list[InputSpec] = Field(default_factory=list)
    """More source topics, each with the format it carries (``driftline``,
    ``kserve-cloudevents``, ``seldon-oip``): see :mod:`pipeline.formats`."""

    @model_validator(mode="after")
    def _inputs_distinct(self) -> Settings:
        seen = set(self.topics.inputs())
        for i, spec in enumerate(self.inputs):
            for topic in spec.topics():
                if topic in seen:
                    raise ValueError(f"inputs[{i}]: topic {topic!r} is read twice")
                seen.add(topic)
        return self

    def serving_topics(self) -> list[str]:
        """The topics of ``inputs`` written by a serving stack (not keyed by model)."""
        return [t for spec in self.inputs if spec.format != "driftline" for t in spec.topics()]

    def input_topics(self) -> list[str]:
        """Every topic the sidecar reads: ``topics``' four and those of ``inputs``."""
        return [*self.topics.inputs(), *(t for spec in self.inputs for t in spec.topics())]

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


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``X | None`` and ``Annotated[X, ...]``; unions of several stay."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _is_text_setting(path: Sequence[str]) -> bool:
    """Whether the setting at ``path`` (``kafka.security.sasl_password``) holds text."""
    annotation: Any = Settings
    for part in path:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return False
            annotation = field.annotation
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return False
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) is Literal:
        return all(isinstance(v, str) for v in typing.get_args(annotation))
    return annotation is str


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``DRIFTLINE_A__B=v`` -> ``{"a": {"b": v}}``: text settings literally, others as YAML.
    No value ever appears in an error (it may be a secret)."""
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
        if not raw or _is_text_setting(path):
            node[path[-1]] = raw
            continue
        try:
            node[path[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(
                f"environment variable {name}: not a valid value for {'.'.join(path)}"
            ) from None
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
    Relative paths in it (calibration references) are resolved against ``base_dir``
    (nothing is read: the engine reads them when it starts)."""
    merged = _merge(dict(data), _env_overrides(os.environ if environ is None else environ))
    try:
        context = {} if base_dir is None else {"base_dir": str(base_dir)}
        return Settings.model_validate(merged, context=context)
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
        # Only where: the problem's own text may quote the line, and the line a secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"config {path} is not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    return parse_settings(data, source=str(path), environ=environ, base_dir=path.parent)
