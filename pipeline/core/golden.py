"""Golden-set check: known inputs must keep producing their known outputs.

A prediction event tagged ``golden: true`` is a probe. Its input is identified by
``request_id`` or by a configured input feature (``match: feature:NAME``). When the
config lists the expected output of that input, the prediction must equal it
(numbers within ``tolerance``); otherwise the first output seen becomes the
baseline and any later different output is a change. Either way a mismatch is a
finding of the configured severity. Baselines are state (bounded by
``max_inputs``), so a restart does not forget them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config import GoldenSpec
from pipeline.events import PredictionEvent

__all__ = ["GoldenCheck", "GoldenState", "golden_input"]


def golden_input(spec: GoldenSpec, event: PredictionEvent) -> str | None:
    """The identity of the golden input ``event`` probes, if it has one."""
    if spec.match == "request_id":
        return event.request_id
    value = (event.features or {}).get(spec.match.removeprefix("feature:"))
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _same(a: object, b: object, tolerance: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) <= tolerance
    return a == b


@dataclass(frozen=True, slots=True)
class GoldenCheck:
    """A golden input answered differently."""

    input: str
    expected: dict[str, Any]
    got: dict[str, Any]
    configured: bool
    baseline_version: str | None


class GoldenState:
    """Baselines learned per golden input of one model."""

    def __init__(self, baselines: dict[str, dict[str, Any]] | None = None) -> None:
        self.baselines: dict[str, dict[str, Any]] = dict(baselines or {})
        self.refused = 0

    def check(
        self, spec: GoldenSpec, event: PredictionEvent, at: int
    ) -> tuple[GoldenCheck | None, bool]:
        """Compare ``event`` with the expectation of its input: the mismatch (None
        when it matches or just became the baseline) and whether the state changed."""
        key = golden_input(spec, event)
        if key is None:
            return None, False
        got = {"prediction": event.prediction, "output_text": event.output_text}
        if key in spec.expected:
            expected = {"prediction": spec.expected[key], "output_text": None}
            if _same(event.prediction, spec.expected[key], spec.tolerance):
                return None, False
            return GoldenCheck(key, expected, got, True, None), False
        baseline = self.baselines.get(key)
        if baseline is None:
            if len(self.baselines) >= spec.max_inputs:
                self.refused += 1
                return None, False
            self.baselines[key] = {**got, "version": event.model_version, "at": at}
            return None, True
        same = _same(event.prediction, baseline["prediction"], spec.tolerance) and (
            event.output_text == baseline["output_text"]
        )
        if same:
            return None, False
        expected = {"prediction": baseline["prediction"], "output_text": baseline["output_text"]}
        return GoldenCheck(key, expected, got, False, str(baseline["version"])), False

    def to_state(self) -> dict[str, Any]:
        return {"baselines": self.baselines}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GoldenState:
        return cls({str(k): dict(v) for k, v in state["baselines"].items()})
