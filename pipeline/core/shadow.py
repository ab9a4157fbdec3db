"""Shadow testing: a candidate variant against production, on the same requests.

Once a request's label has joined both predictions, the pair of errors is one
observation. Pairs where both are equally right (or wrong) say nothing about which
is better; of the others ("discordant"), under the null hypothesis the candidate is
the worse one half of the time. The test is a mixture sequential probability ratio
test of that sign test (uniform prior on the probability ``theta`` that the
candidate is the worse one):

    BF_n = B(w + 1, b + 1) / 0.5^n        (w worse, b better, n = w + b)

whose reciprocal of the running maximum is an *always-valid* p-value: it may be
looked at after every pair without inflating the false-alarm rate (Ville's
inequality). When it drops below ``alpha`` (and ``min_pairs`` pairs are in), the
candidate is declared worse (``w > b``) or better, once per candidate version. The
effect size reported is the difference of the mean errors (error rates for
classification, mean absolute errors for regression).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.config import ShadowSpec

__all__ = ["ShadowState", "ShadowTest"]

MAX_CANDIDATES = 8
Decision = Literal["worse", "better"]


@dataclass(slots=True)
class ShadowTest:
    candidate: str
    production: str
    pairs: int = 0
    worse: int = 0
    better: int = 0
    sum_production: float = 0.0
    sum_candidate: float = 0.0
    max_log_bf: float = 0.0
    decided: Decision | None = None
    started: int | None = None
    """Event time (µs) of the first pair."""

    def observe(
        self, production_error: float, candidate_error: float, at: int | None = None
    ) -> None:
        if self.started is None:
            self.started = at
        self.pairs += 1
        self.sum_production += production_error
        self.sum_candidate += candidate_error
        if candidate_error > production_error:
            self.worse += 1
        elif candidate_error < production_error:
            self.better += 1
        else:
            return
        n = self.worse + self.better
        log_bf = (
            math.lgamma(self.worse + 1)
            + math.lgamma(self.better + 1)
            - math.lgamma(n + 2)
            + n * math.log(2.0)
        )
        self.max_log_bf = max(self.max_log_bf, log_bf)

    @property
    def p_value(self) -> float:
        return min(1.0, math.exp(-self.max_log_bf))

    @property
    def production_rate(self) -> float:
        return self.sum_production / self.pairs if self.pairs else 0.0

    @property
    def candidate_rate(self) -> float:
        return self.sum_candidate / self.pairs if self.pairs else 0.0

    def decide(self, spec: ShadowSpec) -> Decision | None:
        """A new decision, when this pair made one."""
        if self.decided is not None or self.pairs < spec.min_pairs:
            return None
        if self.p_value > spec.alpha or self.worse == self.better:
            return None
        self.decided = "worse" if self.worse > self.better else "better"
        return self.decided

    def to_state(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "production": self.production,
            "pairs": self.pairs,
            "worse": self.worse,
            "better": self.better,
            "sum_production": self.sum_production,
            "sum_candidate": self.sum_candidate,
            "max_log_bf": self.max_log_bf,
            "decided": self.decided,
            "started": self.started,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ShadowTest:
        decided = state["decided"]
        if decided not in (None, "worse", "better"):
            raise ValueError(f"shadow test decision {decided!r}")
        return cls(
            candidate=str(state["candidate"]),
            production=str(state["production"]),
            pairs=int(state["pairs"]),
            worse=int(state["worse"]),
            better=int(state["better"]),
            sum_production=float(state["sum_production"]),
            sum_candidate=float(state["sum_candidate"]),
            max_log_bf=float(state["max_log_bf"]),
            decided=decided,
            started=None if state["started"] is None else int(state["started"]),
        )


class ShadowState:
    """The tests of one model, one per candidate version (the newest few)."""

    def __init__(self, tests: list[ShadowTest] | None = None) -> None:
        self.tests: dict[str, ShadowTest] = {t.candidate: t for t in tests or []}

    def test_for(self, candidate: str, production: str) -> ShadowTest:
        test = self.tests.get(candidate)
        if test is None:
            while len(self.tests) >= MAX_CANDIDATES:
                del self.tests[next(iter(self.tests))]
            test = self.tests[candidate] = ShadowTest(candidate, production)
        test.production = production
        return test

    def to_state(self) -> dict[str, Any]:
        return {"tests": [t.to_state() for t in self.tests.values()]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ShadowState:
        return cls([ShadowTest.from_state(t) for t in state["tests"]])
