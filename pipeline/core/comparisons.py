"""Findings of the comparisons that are not detectors: the shadow test deciding
that a candidate is worse or better than production, and a golden input that
answered differently. They go through the alert policy like a detector's findings,
without warning-before-drift (a decision is not repeated)."""

from __future__ import annotations

from pipeline.config import GoldenSpec, ShadowSpec
from pipeline.core.golden import GoldenCheck
from pipeline.core.monitor import Finding, Origin
from pipeline.core.shadow import Decision, ShadowTest
from pipeline.events import PredictionEvent

__all__ = ["golden_finding", "shadow_finding"]


def shadow_finding(
    model_id: str, spec: ShadowSpec, test: ShadowTest, decision: Decision, at: int, origin: Origin
) -> Finding:
    """The shadow test of ``model_id`` decided (at the pair of event time ``at``)."""
    diff = test.candidate_rate - test.production_rate
    return Finding(
        model_id=model_id,
        model_version=test.candidate,
        variant=spec.variant,
        signal="shadow.error_rate",
        monitor="shadow_test",
        segment=None,
        detector="sequential_sign_test",
        params={"alpha": spec.alpha, "min_pairs": spec.min_pairs},
        level="drift",
        severity=spec.worse_severity if decision == "worse" else spec.better_severity,
        statistic=diff,
        threshold=spec.alpha,
        p_value=test.p_value,
        window_start=test.started,
        window_events=test.pairs,
        at=at,
        origin=origin,
        evidence={
            "outcome": f"candidate_{decision}",
            "production_version": test.production,
            "candidate_version": test.candidate,
            "pairs": test.pairs,
            "candidate_worse": test.worse,
            "candidate_better": test.better,
            "production_error": test.production_rate,
            "candidate_error": test.candidate_rate,
            "difference": diff,
        },
        summary=(
            f"{model_id}: candidate {spec.variant} v{test.candidate} {decision} than "
            f"production v{test.production} by {abs(diff):.4g} (error "
            f"{test.candidate_rate:.4g} vs {test.production_rate:.4g} over "
            f"{test.pairs} labelled pairs), p={test.p_value:.3g}"
        ),
        hysteresis=False,
    )


def golden_finding(
    model_id: str,
    event: PredictionEvent,
    spec: GoldenSpec,
    check: GoldenCheck,
    at: int,
    origin: Origin,
) -> Finding:
    """The golden probe ``event`` of ``model_id`` answered differently."""
    expected, got = check.expected["prediction"], check.got["prediction"]
    statistic = None
    numeric = isinstance(expected, int | float) and isinstance(got, int | float)
    if numeric and not isinstance(expected, bool) and not isinstance(got, bool):
        statistic = abs(float(got) - float(expected))
    what = "the configured output" if check.configured else "its first output"
    return Finding(
        model_id=model_id,
        model_version=event.model_version,
        variant=event.variant,
        signal="golden",
        monitor="golden_set",
        segment={"input": check.input},
        detector="golden_set",
        params={"match": spec.match, "tolerance": spec.tolerance},
        level="drift",
        severity=spec.severity,
        statistic=statistic,
        threshold=spec.tolerance if statistic is not None else None,
        p_value=None,
        window_start=None,
        window_events=1,
        at=at,
        origin=origin,
        evidence={
            "input": check.input,
            "expected": check.expected,
            "got": check.got,
            "configured": check.configured,
            "baseline_version": check.baseline_version,
            "request_id": event.request_id,
        },
        summary=(
            f"{model_id} v{event.model_version}: golden input {check.input!r} "
            f"answered {got!r}, not {what} {expected!r}"
        ),
        hysteresis=False,
    )
