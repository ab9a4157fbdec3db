"""Synthetic workload: prediction events with drifts injected at known positions.

Seeded and deterministic: the same arguments give byte-identical output and
ground truth. The demo, the tests and the benchmarks all use it.

A drift is described by a short spec string::

    signal=feature:amount,kind=abrupt,at=4000,magnitude=3,model=model-0

``kind`` is ``abrupt`` (a step at ``at``), ``gradual`` (a linear ramp over
``width`` events) or ``recurring`` (on for ``width`` events, off for ``width``,
repeated). ``at`` and ``width`` count events of the whole stream. ``magnitude``
is in standard deviations for numeric features, tenths of confidence for
``confidence``, and the share of probability moved for ``prediction`` and
categorical features; for ``output_text`` it is the share of answers that
collapse into one repeated text.

Optional companions of the prediction stream (all off by default; with them off the
output is exactly the plain prediction stream) are interleaved with it. Stream
positions (``at``, ``width``) keep counting prediction events only:

* ``labels``: a label event per prediction, ``label_delay`` positions later (negative:
  *before* the prediction), plus up to ``label_jitter`` more; the production model is
  wrong with probability ``base_error`` (drift signal ``error``: magnitude added to it);
* ``shadow``: the share of requests also answered by the ``shadow`` variant, version
  ``2``, wrong with probability ``base_error`` (drift signal ``shadow.error``);
* ``training_every``: a training event of a fine-tuning run every N positions (models
  take turns): flat ``train_loss``, ``val_loss``, ``legacy_val_loss`` and gradient norms
  of ``layer0..layer3`` (drift signals ``training.val_loss``,
  ``training.legacy_val_loss``, ``training.train_loss``, ``grad_norm:layerK``, in units
  of their noise); every ``stable_every``-th one reports a stable checkpoint, unless a
  training drift is in effect;
* ``golden_every``: a golden-set probe every N positions, cycling over
  ``golden_inputs`` known inputs (drift signal ``golden``: the share of probes that
  answer differently).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import orjson

__all__ = ["DriftSpec", "GeneratorConfig", "generate", "parse_drift"]

DriftKind = Literal["abrupt", "gradual", "recurring"]

NUMERIC_NAMES = (
    "amount", "age", "tenure_days", "sessions", "basket_size", "latency_ms",
    "pages_viewed", "discount", "distance_km", "items", "rating", "returns",
    "credit_score", "balance", "clicks", "dwell_s",
)  # fmt: skip
FEATURE_MEANS = dict(zip(NUMERIC_NAMES, (
    50.0, 40.0, 700.0, 12.0, 3.0, 120.0, 8.0, 10.0, 25.0, 4.0, 4.0, 1.0, 650.0, 2500.0, 30.0, 90.0,
), strict=True))  # fmt: skip
CATEGORICAL = {
    "country": (("DE", "FR", "US", "GB", "IN", "BR"), (0.25, 0.15, 0.3, 0.1, 0.12, 0.08)),
    "device": (("mobile", "desktop", "tablet"), (0.6, 0.32, 0.08)),
    "channel": (("web", "app", "partner"), (0.5, 0.4, 0.1)),
}
CLASSES = ("approve", "review", "decline")
CLASS_MIX = (0.7, 0.2, 0.1)
WORDS = [
    "the",
    "order",
    "ships",
    "tomorrow",
    "your",
    "refund",
    "was",
    "approved",
    "we",
    "need",
    "one",
    "more",
    "document",
    "please",
    "verify",
    "the",
    "address",
    "the",
    "card",
    "was",
    "declined",
    "a",
    "courier",
    "will",
    "call",
    "the",
    "parcel",
    "is",
    "delayed",
    "thank",
    "you",
    "for",
    "waiting",
    "our",
    "agent",
    "will",
    "reply",
    "the",
    "account",
    "is",
    "active",
]
COLLAPSED_TEXT = "I am sorry, I cannot help with that request."
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DriftSpec:
    signal: str
    kind: DriftKind = "abrupt"
    at: int = 0
    width: int = 1000
    magnitude: float = 3.0
    model: str | None = None
    """None: every model drifts."""

    def intensity(self, i: int) -> float:
        """How much of the drift is in effect at stream position ``i`` (0..1)."""
        if i < self.at:
            return 0.0
        if self.kind == "abrupt":
            return 1.0
        if self.kind == "gradual":
            return min(1.0, (i - self.at + 1) / self.width)
        return 1.0 if ((i - self.at) // self.width) % 2 == 0 else 0.0

    def change_points(self, events: int) -> list[int]:
        """Stream positions where the distribution changes."""
        if self.kind != "recurring":
            return [self.at] if self.at < events else []
        return list(range(self.at, events, self.width))


def parse_drift(text: str) -> DriftSpec:
    """Parse ``signal=...,kind=...,at=...,width=...,magnitude=...,model=...``."""
    fields: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"drift spec part {part!r} is not name=value")
        if name in ("at", "width"):
            fields[name] = int(value)
        elif name == "magnitude":
            fields[name] = float(value)
        elif name in ("signal", "kind", "model"):
            fields[name] = value
        else:
            raise ValueError(f"unknown drift spec field {name!r}")
    if "signal" not in fields:
        raise ValueError("drift spec needs signal=")
    if fields.get("kind", "abrupt") not in ("abrupt", "gradual", "recurring"):
        raise ValueError(f"drift kind must be abrupt, gradual or recurring: {fields['kind']!r}")
    if fields.get("width", 1) < 1:
        raise ValueError("drift width must be >= 1")
    return DriftSpec(**fields)


@dataclass(frozen=True)
class GeneratorConfig:
    events: int = 10_000
    models: int = 1
    numeric_features: int = 4
    categorical_features: int = 2
    text: bool = False
    seed: int = 7
    interval_ms: int = 100
    drifts: Sequence[DriftSpec] = field(default_factory=tuple)
    bad_every: int = 0
    """Every Nth event is replaced by a bad record (malformed, NaN, schema violation)."""
    labels: bool = False
    label_delay: int = 50
    label_jitter: int = 0
    base_error: float = 0.1
    shadow: float = 0.0
    training_every: int = 0
    stable_every: int = 5
    golden_every: int = 0
    golden_inputs: int = 5

    @property
    def companions(self) -> bool:
        """Whether anything besides prediction events is generated."""
        return bool(self.labels or self.shadow or self.training_every or self.golden_every)

    def __post_init__(self) -> None:
        if not 1 <= self.numeric_features <= len(NUMERIC_NAMES):
            raise ValueError(f"numeric_features must be 1..{len(NUMERIC_NAMES)}")
        if not 0 <= self.categorical_features <= len(CATEGORICAL):
            raise ValueError(f"categorical_features must be 0..{len(CATEGORICAL)}")
        if self.events < 0 or self.models < 1:
            raise ValueError("events must be >= 0 and models >= 1")
        if not 0.0 <= self.base_error < 1.0 or not 0.0 <= self.shadow <= 1.0:
            raise ValueError("base_error must be in [0, 1) and shadow in [0, 1]")
        if min(self.label_jitter, self.training_every, self.golden_every) < 0:
            raise ValueError("label_jitter, training_every and golden_every must be >= 0")
        if self.stable_every < 1 or self.golden_inputs < 1:
            raise ValueError("stable_every and golden_inputs must be >= 1")


def _model_ids(n: int) -> list[str]:
    return [f"model-{k}" for k in range(n)]


BAD_KINDS = ("malformed_json", "non_finite", "schema_violation")


def _bad_record(kind: str, i: int) -> bytes:
    if kind == "malformed_json":
        return b'{"event_id": "bad-%d", "model_id": ' % i
    if kind == "non_finite":
        return (
            b'{"schema":"driftline.prediction.v1","event_id":"bad-%d","model_id":"model-0",'
            b'"model_version":"1","timestamp":"2026-01-01T00:00:00Z","prediction":"approve",'
            b'"confidence":NaN}' % i
        )
    return (
        b'{"schema":"driftline.prediction.v1","event_id":"bad-%d","model_id":"model-0",'
        b'"model_version":"1","timestamp":"2026-01-01T00:00:00Z","prediction":"approve",'
        b'"confidence":"high"}' % i
    )


def generate(config: GeneratorConfig) -> Iterator[tuple[str, bytes]]:
    """Yield ``(model_id, event_json_bytes)`` for each event of the stream."""
    if not config.companions:
        for _i, model, payload in _predictions(config):
            yield model, payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return
    yield from _with_companions(config)


def _shift_function(config: GeneratorConfig) -> Any:
    drifts_by_signal: dict[str, list[DriftSpec]] = {}
    for d in config.drifts:
        drifts_by_signal.setdefault(d.signal, []).append(d)

    def shift(signal: str, model: str, i: int) -> float:
        total = 0.0
        for d in drifts_by_signal.get(signal, ()):
            if d.model is None or d.model == model:
                total += d.magnitude * d.intensity(i)
        return total

    return shift


def _predictions(config: GeneratorConfig) -> Iterator[tuple[int, str, bytes | dict[str, Any]]]:
    """The prediction stream: ``(position, model, bad record bytes or event dict)``."""
    rng = np.random.default_rng(config.seed)
    models = _model_ids(config.models)
    names = NUMERIC_NAMES[: config.numeric_features]
    cat_names = list(CATEGORICAL)[: config.categorical_features]
    # Per-model, per-feature baseline: mean and standard deviation.
    # A feature means the same thing for every model of the fleet: its scale is
    # fixed by name (mean FEATURE_MEANS, sd 20 % of it); models differ by a few %.
    base = np.array([FEATURE_MEANS[name] for name in names])
    means = base * (1 + 0.03 * rng.standard_normal(size=(config.models, len(names))))
    stds = 0.2 * base * (1 + 0.05 * rng.standard_normal(size=(config.models, len(names))))
    drifts_by_signal: dict[str, list[DriftSpec]] = {}
    for d in config.drifts:
        drifts_by_signal.setdefault(d.signal, []).append(d)

    def shift(signal: str, model: str, i: int) -> float:
        total = 0.0
        for d in drifts_by_signal.get(signal, ()):
            if d.model is None or d.model == model:
                total += d.magnitude * d.intensity(i)
        return total

    model_of = rng.integers(0, config.models, size=config.events)
    noise = rng.standard_normal(size=(config.events, len(names)))
    uniforms = rng.random(size=(config.events, 4 + len(cat_names)))
    conf_noise = rng.standard_normal(size=config.events)
    bad_index = 0
    for i in range(config.events):
        m = int(model_of[i])
        model = models[m]
        ts = BASE_TIME + timedelta(milliseconds=i * config.interval_ms)
        if config.bad_every and (i + 1) % config.bad_every == 0:
            yield i, model, _bad_record(BAD_KINDS[bad_index % len(BAD_KINDS)], i)
            bad_index += 1
            continue
        features: dict[str, Any] = {}
        for j, name in enumerate(names):
            sigma = float(stds[m, j])
            value = float(means[m, j]) + sigma * (
                float(noise[i, j]) + shift(f"feature:{name}", model, i)
            )
            features[name] = round(value, 6)
        for j, name in enumerate(cat_names):
            values, probs = CATEGORICAL[name]
            moved = min(1.0, shift(f"feature:{name}", model, i))
            mix = np.asarray(probs) * (1 - moved)
            mix[-1] += moved  # drift moves mass to the rarest category
            features[name] = values[_pick(mix, float(uniforms[i, 4 + j]))]
        moved = min(1.0, shift("prediction", model, i))
        class_mix = np.asarray(CLASS_MIX) * (1 - moved)
        class_mix[-1] += moved
        predicted = CLASSES[_pick(class_mix, float(uniforms[i, 0]))]
        confidence = 0.9 + 0.03 * float(conf_noise[i]) - 0.1 * shift("confidence", model, i)
        confidence = min(0.999, max(0.34, confidence))
        rest = (1 - confidence) / (len(CLASSES) - 1)
        probabilities = {c: round(confidence if c == predicted else rest, 6) for c in CLASSES}
        event: dict[str, Any] = {
            "schema": "driftline.prediction.v1",
            "event_id": f"evt-{config.seed}-{i}",
            "model_id": model,
            "model_version": "1",
            "variant": "production",
            "timestamp": ts.isoformat().replace("+00:00", "Z"),
            "request_id": f"req-{config.seed}-{i}",
            "prediction": predicted,
            "probabilities": probabilities,
            "confidence": round(confidence, 6),
            "features": features,
        }
        if config.text:
            collapsed = float(uniforms[i, 1]) < min(1.0, shift("output_text", model, i))
            if collapsed:
                event["output_text"] = COLLAPSED_TEXT
            else:
                k = 6 + int(uniforms[i, 2] * 10)
                start = int(uniforms[i, 3] * (len(WORDS) - k))
                event["output_text"] = " ".join(WORDS[start : start + k]) + f" #{i % 997}"
        yield i, model, event


_TRAINING_SIGNALS = (
    "training.val_loss",
    "training.legacy_val_loss",
    "training.train_loss",
    *(f"grad_norm:layer{k}" for k in range(4)),
)


def _with_companions(config: GeneratorConfig) -> Iterator[tuple[str, bytes]]:
    """The prediction stream with labels, shadow predictions, training events and
    golden probes interleaved (drawn from their own random stream)."""
    rng = np.random.default_rng([config.seed, 1])
    shift = _shift_function(config)
    models = _model_ids(config.models)
    # (position, order within the position, tie-break, model, event)
    out: list[tuple[int, int, int, str, bytes | dict[str, Any]]] = []
    n = 0

    def put(position: int, order: int, model: str, event: bytes | dict[str, Any]) -> None:
        nonlocal n
        out.append((position, order, n, model, event))
        n += 1

    def stamp(position: int) -> str:
        return event_time(position, config.interval_ms).isoformat().replace("+00:00", "Z")

    def wrong_class(label: str) -> str:
        others = [c for c in CLASSES if c != label]
        return others[int(rng.integers(0, len(others)))]

    for i, model, payload in _predictions(config):
        put(i, 1, model, payload)
        if isinstance(payload, bytes):
            continue
        predicted = str(payload["prediction"])
        error = min(1.0, max(0.0, config.base_error + shift("error", model, i)))
        label = predicted if rng.random() >= error else wrong_class(predicted)
        if config.shadow and rng.random() < config.shadow:
            shadow_error = min(1.0, max(0.0, config.base_error + shift("shadow.error", model, i)))
            answer = label if rng.random() >= shadow_error else wrong_class(label)
            shadow = dict(payload)
            shadow.update(
                event_id=f"evt-{config.seed}-{i}-shadow",
                model_version="2",
                variant="shadow",
                prediction=answer,
            )
            shadow.pop("probabilities", None)
            put(i, 2, model, shadow)
        if config.labels:
            jitter = int(rng.integers(0, config.label_jitter + 1)) if config.label_jitter else 0
            at = max(0, i + config.label_delay + jitter)
            put(
                at,
                0 if config.label_delay < 0 else 3,
                model,
                {
                    "schema": "driftline.label.v1",
                    "event_id": f"lbl-{config.seed}-{i}",
                    "model_id": model,
                    "request_id": payload["request_id"],
                    "label": label,
                    "timestamp": stamp(at),
                },
            )
    steps: dict[str, int] = {}
    if config.training_every:
        for k, p in enumerate(
            range(config.training_every - 1, config.events, config.training_every)
        ):
            model = models[k % len(models)]
            step = steps[model] = steps.get(model, 0) + 1
            noise = rng.standard_normal(7).tolist()
            drifting = any(shift(s, model, p) for s in _TRAINING_SIGNALS)
            put(
                p,
                4,
                model,
                {
                    "schema": "driftline.training.v1",
                    "event_id": f"trn-{config.seed}-{p}",
                    "model_id": model,
                    "run_id": f"{model}-finetune-1",
                    "checkpoint_id": f"{model}-finetune-1-step{step}",
                    "step": step,
                    "timestamp": stamp(p),
                    "metrics": {
                        "train_loss": round(
                            0.30 + 0.01 * (noise[0] + shift("training.train_loss", model, p)), 6
                        ),
                        "val_loss": round(
                            0.35 + 0.01 * (noise[1] + shift("training.val_loss", model, p)), 6
                        ),
                        "legacy_val_loss": round(
                            0.40 + 0.01 * (noise[2] + shift("training.legacy_val_loss", model, p)),
                            6,
                        ),
                    },
                    "grad_norms": {
                        f"layer{j}": round(
                            max(
                                0.0,
                                1.0
                                + 0.05 * (noise[3 + j] + shift(f"grad_norm:layer{j}", model, p)),
                            ),
                            6,
                        )
                        for j in range(4)
                    },
                    "checkpoint_stable": step % config.stable_every == 0 and not drifting,
                },
            )
    if config.golden_every:
        for k, p in enumerate(range(config.golden_every - 1, config.events, config.golden_every)):
            model = models[k % len(models)]
            which = k % config.golden_inputs
            expected = CLASSES[which % len(CLASSES)]
            changed = rng.random() < min(1.0, shift("golden", model, p))
            put(
                p,
                5,
                model,
                {
                    "schema": "driftline.prediction.v1",
                    "event_id": f"gld-{config.seed}-{p}",
                    "model_id": model,
                    "model_version": "1",
                    "variant": "production",
                    "timestamp": stamp(p),
                    "request_id": f"golden-{which}",
                    "prediction": wrong_class(expected) if changed else expected,
                    "features": {"golden_input": f"g{which}"},
                    "golden": True,
                },
            )
    out.sort(key=lambda e: (e[0], e[1], e[2]))
    for _p, _o, _n, model, event in out:
        yield model, event if isinstance(event, bytes) else orjson.dumps(event)


def _pick(mix: np.ndarray, u: float) -> int:
    cumulative = 0.0
    for k, p in enumerate(mix):
        cumulative += float(p)
        if u < cumulative:
            return k
    return len(mix) - 1


def truth(config: GeneratorConfig) -> dict[str, Any]:
    """The ground truth of a generated stream: every change point, per model and signal."""
    changes = []
    for d in config.drifts:
        for model in [d.model] if d.model else _model_ids(config.models):
            for position in d.change_points(config.events):
                at = BASE_TIME + timedelta(milliseconds=position * config.interval_ms)
                changes.append(
                    {
                        "model_id": model,
                        "signal": d.signal,
                        "kind": d.kind,
                        "position": position,
                        "timestamp": at.isoformat().replace("+00:00", "Z"),
                        "magnitude": d.magnitude,
                    }
                )
    bad = []
    if config.bad_every:
        positions = range(config.bad_every - 1, config.events, config.bad_every)
        bad = [
            {"position": p, "reason": BAD_KINDS[k % len(BAD_KINDS)]}
            for k, p in enumerate(positions)
        ]
    return {
        "generator": {k: v for k, v in asdict(config).items() if k != "drifts"},
        "drifts": [asdict(d) for d in config.drifts],
        "changes": sorted(changes, key=lambda c: (c["position"], c["model_id"], c["signal"])),
        "bad_records": bad,
        "interval_ms": config.interval_ms,
        "stable_signals_note": "signals without an entry in changes never drift",
    }


def event_time(position: int, interval_ms: int) -> datetime:
    return BASE_TIME + timedelta(milliseconds=position * interval_ms)
