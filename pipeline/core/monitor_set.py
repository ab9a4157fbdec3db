"""The monitors a model runs, made concrete once at start-up.

:mod:`pipeline.config` only checks what the file says. Here a model's description
becomes its monitor set: the monitors derived from its features, classes and
outputs (:func:`derived_monitors`, with their tuned parameters), the explicit ones
(an explicit monitor of a signal replaces the derived ones of that signal), each
detector built once so that a parameter value it refuses fails start-up naming the
key, and calibrated thresholds found (:mod:`pipeline.core.calibration`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Final

import detectors
from detectors.arl import RULES as ARL_RULES
from detectors.arl import threshold_params
from detectors.learning import Learning, LearningPlan
from pipeline.config import ModelSpec, MonitorSpec, PolicySettings, Settings, SeverityMap
from pipeline.core.calibration import calibrated_params
from pipeline.errors import ConfigError

__all__ = [
    "Monitor",
    "check_monitors",
    "derived_monitors",
    "describe_monitors",
    "monitor_set",
    "quiet_length",
    "resolve",
]


LEARNING_MIN: Final = 64
"""Shortest quiet period held as values (none in the default set is shorter than
1,000): a key with a shorter one ripens within a few batches, so holding its values
would only add a hand-over."""


@dataclass(frozen=True, slots=True)
class Monitor:
    """One monitor of a model as the engine runs it: a signal, a detector with its
    final parameters (calibrated ones included) and what its alerts are."""

    signal: str
    detector: str
    """The detector's registered name."""
    params: dict[str, Any]
    severity: SeverityMap
    segment_by: str | None
    max_segments: int
    max_signals: int
    id: str
    """The monitor's identity within its model (part of every state key): its name,
    else its detector's name."""
    calibration: dict[str, Any] | None = None
    """What calibration found (threshold, estimated ARL0), when it was used."""
    resolve_after: int = 2000
    """Quiet observations after which an open incident of a key resolves
    (:func:`quiet_length` unless the monitor sets it)."""

    @property
    def wildcard(self) -> bool:
        return self.signal.endswith("*")

    prototype: list[detectors.DriftDetector[Any]] = field(
        default_factory=list, init=False, compare=False, repr=False
    )
    """The detector every key of this monitor starts as (built on first use, never
    fed; not an init field, so that ``dataclasses.replace`` starts a new one): keys
    are made by ``fresh_copy``, not ``__init__``."""

    learning: list[LearningPlan | None] = field(
        default_factory=list, init=False, compare=False, repr=False
    )
    """The prototype's :class:`~detectors.learning.LearningPlan` (None: its detector
    promises no quiet period), made on first use like the prototype."""

    def build(self) -> detectors.DriftDetector[Any]:
        """A fresh detector instance."""
        return self._prototype().fresh_copy()

    def _prototype(self) -> detectors.DriftDetector[Any]:
        if not self.prototype:
            self.prototype.append(detectors.create(self.detector, **self.params))
        return self.prototype[0]

    def start(self) -> detectors.DriftDetector[Any]:
        """What a new key's detector starts as: while its detector's quiet period
        lasts, a :class:`~detectors.learning.Learning` holding the values (no copy of
        the prototype, an append per value; docs/architecture.md, "A detector's
        quiet period is held as values"); else a fresh detector."""
        if not self.learning:
            prototype = self._prototype()
            quiet = prototype.quiet_period >= LEARNING_MIN
            self.learning.append(LearningPlan(prototype) if quiet else None)
        plan = self.learning[0]
        return self.build() if plan is None else Learning(plan)


def resolve(spec: MonitorSpec, where: str) -> Monitor:
    """``spec`` made concrete; a ``ConfigError`` naming ``where`` and the key when
    its detector refuses a parameter value or calibration fails."""
    try:
        detectors.create(spec.detector, **spec.params)
    except ValueError as exc:  # detectors.require: "name: message"
        raise ConfigError(f"{where}.params.{exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}.params: {exc}") from None
    params, calibration = dict(spec.params), None
    if spec.calibrate is not None:
        try:
            params, calibration = calibrated_params(spec)
        except ValueError as exc:
            raise ConfigError(f"{where}.{exc}") from None
    return Monitor(
        signal=spec.signal,
        detector=spec.detector,
        params=params,
        severity=spec.severity,
        segment_by=spec.segment_by,
        max_segments=spec.max_segments,
        max_signals=spec.max_signals,
        id=spec.id,
        calibration=calibration,
        resolve_after=spec.resolve_after or quiet_length(detectors.create(spec.detector, **params)),
    )


MIN_QUIET: Final = 2000
"""Fewest quiet observations that resolve an incident by default."""


def quiet_length(detector: detectors.DriftDetector[Any]) -> int:
    """Default ``resolve_after``: 2,000 observations, or what the detector needs to
    re-learn its reference (``reference_size``, else ``warmup``) and then test two
    windows (``window_size``), when that is longer — so that for a detector that
    restarts after a detection, "resolved" follows a full test of the new regime."""

    def size(name: str) -> int:
        value = getattr(detector, name, None)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    learn = size("reference_size") or size("warmup")
    return max(MIN_QUIET, learn + 2 * size("window_size"))


DEFAULT_TARGET_ARL0: Final = PolicySettings().target_arl0


def monitor_set(
    model: ModelSpec, where: str = "model", target_arl0: float = DEFAULT_TARGET_ARL0
) -> list[Monitor]:
    """The monitors ``model`` runs: ``monitors``, plus the derived ones of every
    signal no explicit monitor watches (when ``default_monitors`` is on, which it
    is by default only for a model without explicit monitors), their thresholds set
    for ``target_arl0`` (``policy.target_arl0``). ``where`` is the model's place in
    the config (``models.fraud``), for error messages."""
    return [monitor for _derived, monitor in _marked_monitor_set(model, where, target_arl0)]


def _marked_monitor_set(
    model: ModelSpec, where: str, target_arl0: float
) -> list[tuple[bool, Monitor]]:
    """``monitor_set``, each monitor marked True when it is derived."""
    use_derived = (
        model.default_monitors if model.default_monitors is not None else not model.monitors
    )
    out: list[tuple[bool, Monitor]] = []
    if use_derived:
        explicit = {m.signal for m in model.monitors}
        out.extend(
            (True, resolve(m, f"{where}.derived[{m.signal}]"))
            for m in derived_monitors(model, target_arl0)
            if m.signal not in explicit
        )
    out.extend((False, resolve(m, f"{where}.monitors[{i}]")) for i, m in enumerate(model.monitors))
    return out


def describe_monitors(settings: Settings) -> list[str]:
    """One line per monitor of every configured model and of ``default_model``: the
    effective set (derived and explicit) with the parameters it runs with."""
    lines: list[str] = []
    models = [(f"models.{name}", spec) for name, spec in sorted(settings.models.items())]
    if settings.default_model is not None:
        models.append(("default_model", settings.default_model))
    for where, spec in models:
        marked = _marked_monitor_set(spec, where, settings.policy.target_arl0)
        lines.append(f"{where}: {len(marked)} monitors")
        for derived, m in marked:
            params = ", ".join(f"{k}={v!r}" for k, v in sorted(m.params.items()))
            origin = "derived " if derived else "explicit"
            segment = f" per {m.segment_by}" if m.segment_by else ""
            named = f" [{m.id}]" if m.id != m.detector else ""
            lines.append(f"  {origin} {m.signal}{segment}: {m.detector}({params}){named}")
    return lines


def check_monitors(settings: Settings) -> int:
    """Resolve the monitor set of every configured model and of ``default_model``
    (what an engine does when it starts); the number of monitors. Raises
    ``ConfigError`` naming the key of the first monitor that cannot run."""
    target = settings.policy.target_arl0
    count = sum(
        len(monitor_set(m, f"models.{name}", target)) for name, m in settings.models.items()
    )
    if settings.default_model is not None:
        count += len(monitor_set(settings.default_model, "default_model", target))
    return count


# -------------------------------------------------------------- derived monitors
_WINDOWED_CATEGORIES: dict[str, Any] = {"window_size": 500, "reference_size": 2000}


def derived_monitors(
    model: ModelSpec, target_arl0: float = DEFAULT_TARGET_ARL0
) -> list[MonitorSpec]:
    """The monitor set derived from a model's description (features, classes, text,
    embedding), with the parameters chosen for it (see the notes in the source) and
    each threshold set for ``target_arl0`` by :func:`detectors.arl.threshold_params`."""
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
    return list(_derived_cached(description, float(target_arl0)))


@functools.lru_cache(maxsize=1024)
def _derived_cached(description: str, target_arl0: float) -> tuple[MonitorSpec, ...]:
    spec = json.loads(description)
    out: list[MonitorSpec] = []

    def add(signal: str, detector: str, **params: Any) -> None:
        if detector in ARL_RULES:
            params = threshold_params(detector, params, target_arl0)
        out.append(MonitorSpec(signal=signal, detector=detector, params=params))

    # Every threshold below (alpha, k, z, h, delta) is set by ``add`` from
    # ``target_arl0`` (detectors.arl: Bonferroni over a test schedule, bands in the
    # warm-up's standard errors, Siegmund's CUSUM approximation, ADWIN's offline
    # table), or learned by the detector from its warm-up for ``target_arl0``
    # (token_entropy, embedding_drift); the notes say why the other parameters are
    # what they are.
    for feature, kind in spec["features"].items():
        if kind == "numeric":
            # Two-sample KS, 500 recent values against the first 3,000, tested every
            # 20 observations: the test is distribution-free for continuous values
            # (ties only make it conservative), so alpha = 20 / target_arl0 (2e-4 at
            # 1e5) bounds the false alarms of any feature; a shift of KS distance 0.10
            # is found within 1,000 observations (200 against 1,000 at 1e-6, the
            # earlier setting, needs a distance of ~0.21). Once learned, the reference is
            # kept as 257 of its order statistics (reference_knots): its CDF within
            # 1/256, ~5 KiB a window instead of ~28 (docs/architecture.md, "State").
            add(
                f"feature:{feature}",
                "ks_window",
                window_size=500,
                reference_size=3000,
                stride=20,
                reference_knots=256,
            )
        else:
            add(f"feature:{feature}", "categorical_drift", **_WINDOWED_CATEGORIES)
    if spec["classes"] is not None or spec["classification"]:
        # The class mix: a sequential test of the class counts (Shiryaev-Roberts on a
        # Dirichlet-mixture likelihood ratio, detectors.categorical_sr) whose alarm
        # level is itself a bound on the ARL0; it finds a total-variation shift of 0.10
        # in ~300 predictions where a chi-square of a 500-window against 2,000 needs
        # ~350, and keeps accumulating evidence of smaller shifts instead of forgetting
        # everything older than its window.
        add("prediction", "categorical_sr", reference_size=2000, concentration=100.0)
        add("prediction", "entropy", window_size=300, reference_size=2000, direction="lower")
    add(
        "confidence",
        "rolling_threshold",
        window_size=200,
        reference_size=1000,
        direction="lower",
        patience=3,
        tolerance=0.01,
    )
    if spec["text"]:
        # The duplicate-rate bound is learned from the first 1,000 responses
        # (detectors.arl.duplicate_rate_bound) instead of a fixed 0.3, which 25 %
        # canned answers on top of a few stock replies sit around, and which a model
        # with many legitimate repeats exceeds: the window count's Poisson tail at
        # the Bonferroni level of target_arl0, at the reference rate's upper 95 %
        # bound and scaled by the reference's own block over-dispersion (near
        # duplicate flags are not independent: one stock reply makes its repeats
        # duplicates). The normal band it replaces (z = 4.67, widened by the
        # over-dispersion, floored at the earlier fixed z = 6) ignored the count's
        # right skew and the reference's own error: 2-4 false alarms in 220,000
        # stable responses of benchmarks/quality.py.
        add(
            "output_text",
            "output_diversity",
            window_size=200,
            max_duplicate_rate=0.5,
            reference_size=1000,
        )
        # A 1,000-response reference, not 200: a noisy mean and spread made 1.3 false
        # alarms per 10,000 responses. h is learned from that reference's own
        # surprisals (detectors.arl.empirical_cusum_h): per-response surprisal is a
        # heavy-tailed mixture (stock replies), for which Siegmund's normal h (11.5)
        # alarms too often; a bootstrap of the rule raises it so that 95 % of
        # warm-ups give an ARL0 of at least the target (without it, 1 in 10 gave
        # less than half of it; python -m benchmarks.surprisal_arl). An allowance of
        # 0.25, half the drop of half a standard deviation it should find fastest
        # (0.5 found it in ~3x the responses), and standardised surprisals clipped at
        # 2.5 (a winsorised CUSUM): a reference with few stock replies otherwise left
        # its series at a fraction of the target ARL0 (docs/architecture.md).
        add("token_logprobs", "token_entropy", reference_size=1000, allowance=0.25, clip=2.5)
    if spec["embedding"]:
        # max_distance is learned from the baseline's warm-up (the vectors' spread,
        # detectors.arl.centroid_distance_bound), not the earlier fixed 0.05, for 95 %
        # of baselines: the baseline's error stays for the whole series. A baseline
        # of 2,048 vectors, not 512: its error is then a ninth of the check's instead
        # of a third, so the bound is tighter (a mean moving by half the noise is
        # found as fast) and no series is left with a far-off baseline (with 512 and
        # the bound on average over baselines: ~1 false alarm per 90,000 vectors).
        add("embedding", "embedding_drift", reference_size=2048)
    # ADWIN (Bifet & Gavalda 2007): its cut test is a distribution-free bound, so one
    # delta serves every base error rate (the table's smallest over rates 0.02-0.5).
    # With their default settings HDDM_A raised 17 of 200 at an error rate of 0.2,
    # and DDM 6-8 of 20 (its p_min + s_min keeps falling).
    add("error", "adwin")
    # Training side: every model may be fine-tuned; these only see training events.
    # Scale-free (standardised on a 50-step warm-up) CUSUM charts: loss scales differ
    # by model; k = 1 finds a 2-sigma step fastest.
    add("training.divergence", "cusum", k=1.0, warmup=50)
    add("training.legacy_val_loss", "cusum", k=1.0, warmup=50)
    add("grad_norm:*", "cusum", k=1.0, warmup=50)
    return tuple(out)
