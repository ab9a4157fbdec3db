"""detectors.arl: thresholds for a target ARL0 without simulation, checked by simulation.

The rules are meant for ARL0s of 1e5 and more, where a simulation costs ~1e7 updates;
here each is checked at a cheap target (a few hundred to 10,000 observations) with
:func:`detectors.estimate_arl0` on fresh i.i.d. streams: the Bonferroni rules must
not alarm more often than the target (they are bounds), Siegmund's approximation must
land near it, and an entry of the committed ADWIN table must reproduce.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from detectors import create, estimate_arl0
from detectors.arl import (
    RULES,
    TABLE,
    adwin_delta,
    band_width,
    bonferroni_level,
    centroid_distance_bound,
    cusum_h,
    empirical_cusum_h,
    markov_arl,
    siegmund_arl0,
    threshold_params,
)
from detectors.base import REGISTRY


def normal(rng: np.random.Generator, n: int) -> list[float]:
    return rng.normal(0.0, 1.0, size=n).tolist()


def skewed(rng: np.random.Generator, n: int) -> list[float]:
    # a confidence-like value: bounded, skewed towards its lower tail
    return rng.beta(23.0, 2.0, size=n).tolist()


def surprisal_mixture(rng: np.random.Generator, n: int) -> list[list[float]]:
    """Token log-probabilities of answers, 5 % of them short near-certain stock replies."""
    out = []
    for _ in range(n):
        if rng.random() < 0.05:
            out.append((-rng.exponential(0.3, size=3)).tolist())
        else:
            out.append((-rng.gamma(1.2, 1.6, size=int(rng.integers(8, 40)))).tolist())
    return out


def classes(rng: np.random.Generator, n: int) -> list[str]:
    return [f"c{c}" for c in rng.choice(5, size=n, p=[0.45, 0.25, 0.15, 0.10, 0.05])]


class TestRules:
    def test_every_rule_names_a_registered_detector_and_its_threshold(self) -> None:
        for name in RULES:
            cls = REGISTRY[name]
            params = threshold_params(name, {}, 1e5)
            # learned from the warm-up when the detector takes the target itself
            learned = params.get("target_arl0") == 1e5
            assert cls.threshold_param in params or learned or name == "output_diversity"
            cls(**params)  # a value the detector accepts

    def test_bonferroni_spreads_the_budget_over_the_schedule(self) -> None:
        assert bonferroni_level(1e5) == pytest.approx(1e-5)
        assert bonferroni_level(1e5, 1 / 20) == pytest.approx(2e-4)
        assert bonferroni_level(3) == 1 / 3
        assert bonferroni_level(2, 1 / 20) == 0.5  # capped: a level, not a certainty

    def test_band_is_the_normal_quantile_widened_for_the_estimated_centre(self) -> None:
        assert band_width(1e5, 200, 1000) == pytest.approx(4.2649 * math.sqrt(1.2), rel=1e-4)
        assert band_width(1e5, 200, 1000, two_sided=True) > band_width(1e5, 200, 1000)
        assert band_width(1e5, 200, 1000, checks_every=10) < band_width(1e5, 200, 1000)

    def test_siegmund_matches_the_textbook_values(self) -> None:
        # Montgomery, Introduction to SQC, table 9.3 (one-sided ARL0 of k = 0.5):
        # h = 4 -> ~336, h = 5 -> ~930 (the approximation is within 1 %)
        assert siegmund_arl0(0.5, 4.0) == pytest.approx(336, rel=0.01)
        assert siegmund_arl0(0.5, 5.0) == pytest.approx(930, rel=0.01)
        h = cusum_h(930, 0.5, two_sided=False)
        assert h == pytest.approx(5.0, abs=0.01)
        assert cusum_h(930, 0.5, two_sided=True) > h
        # an estimated reference widens it; the longer the warm-up, the less
        assert (
            cusum_h(930, 0.5, two_sided=False, reference=50)
            > cusum_h(930, 0.5, two_sided=False, reference=5000)
            > h
        )

    def test_a_bad_target_names_the_setting(self) -> None:
        for bad in (1.0, math.inf, math.nan):
            with pytest.raises(ValueError, match="target_arl0"):
                threshold_params("ks_window", {}, bad)

    def test_explicit_parameters_other_than_the_threshold_are_kept(self) -> None:
        params = threshold_params("ks_window", {"window_size": 50, "stride": 5}, 1000)
        assert params == {"window_size": 50, "stride": 5, "alpha": 0.005}


class TestBySimulation:
    """Each rule at a cheap target on fresh i.i.d. streams (200 runs each)."""

    @pytest.mark.parametrize(
        ("name", "params", "sampler"),
        [
            ("ks_window", {"window_size": 50, "reference_size": 200, "stride": 5}, normal),
            (  # the reference as knots (D within 1/64): the same rule holds
                "ks_window",
                {"window_size": 50, "reference_size": 200, "stride": 5, "reference_knots": 64},
                normal,
            ),
            ("categorical_drift", {"window_size": 100, "reference_size": 400}, classes),
            (
                "rolling_threshold",
                {"window_size": 50, "reference_size": 400, "direction": "lower", "patience": 1},
                skewed,
            ),
            ("entropy", {"window_size": 100, "reference_size": 400, "direction": "lower"}, classes),
        ],
    )
    def test_bonferroni_rules_keep_false_alarms_under_the_target(
        self, name: str, params: dict[str, object], sampler: object
    ) -> None:
        target = 500.0
        detector = create(name, **threshold_params(name, params, target))
        estimate = estimate_arl0(
            detector, sampler, n_runs=200, max_run_length=20 * int(target), seed=3
        )  # type: ignore[arg-type]
        # a bound: the lower end of the estimate's 95 % interval is above the target
        assert estimate.interval()[0] >= target, estimate

    def test_siegmund_lands_near_the_target(self) -> None:
        target = 2000.0
        h = cusum_h(target, 0.5, two_sided=True)
        detector = create("cusum", k=0.5, h=h, target=0.0, scale=1.0)
        estimate = estimate_arl0(detector, normal, n_runs=200, max_run_length=40_000, seed=5)
        low, high = estimate.interval()
        assert low <= target * 1.15 and high >= target / 1.15, estimate

    def test_an_adwin_table_entry_reproduces(self) -> None:
        table = json.loads(TABLE.read_text(encoding="utf-8"))
        row = next(
            r for r in table["adwin"]["entries"] if r["target_arl0"] == 1e4 and r["rate"] == 0.3
        )
        detector = create("adwin", delta=row["delta"], clock=table["adwin"]["clock"])

        def bernoulli(rng: np.random.Generator, n: int) -> list[float]:
            return (rng.random(n) < row["rate"]).astype(float).tolist()

        estimate = estimate_arl0(detector, bernoulli, n_runs=200, max_run_length=100_000, seed=7)
        low, high = estimate.interval()
        assert low <= 1e4 <= high, estimate

    def test_the_empirical_cusum_rule_keeps_a_heavy_tailed_stream_near_the_target(
        self,
    ) -> None:
        # Per-response surprisal with 5 % stock replies: the normal theory's h
        # (Siegmund) alarms more often than the target; the h learned from each
        # run's own warm-up does not.
        target = 2000.0
        learned = create("token_entropy", reference_size=1000, target_arl0=target)
        estimate = estimate_arl0(
            learned, surprisal_mixture, n_runs=60, max_run_length=40_000, seed=11
        )
        assert estimate.interval()[1] >= target, estimate
        h = cusum_h(target, 0.5, two_sided=True, reference=1000)
        normal = create("token_entropy", reference_size=1000, h=h)
        estimate = estimate_arl0(
            normal, surprisal_mixture, n_runs=60, max_run_length=40_000, seed=11
        )
        assert estimate.interval()[1] < target, estimate

    @pytest.mark.parametrize(("dim", "spread"), [(4, 0.3), (32, 0.3)])
    def test_the_centroid_bound_keeps_embeddings_under_the_target(
        self, dim: int, spread: float
    ) -> None:
        target = 1000.0
        mean = np.zeros(dim)
        mean[0] = 1.0

        def vectors(rng: np.random.Generator, n: int) -> list[list[float]]:
            return rng.normal(mean, spread, size=(n, dim)).tolist()  # type: ignore[no-any-return]

        detector = create(
            "embedding_drift", window_size=64, n_blocks=4, reference_size=256, target_arl0=target
        )
        estimate = estimate_arl0(detector, vectors, n_runs=100, max_run_length=20_000, seed=13)
        assert estimate.interval()[1] >= target, estimate

    def test_the_adwin_delta_is_the_smallest_over_rates_and_falls_with_the_target(self) -> None:
        table = json.loads(TABLE.read_text(encoding="utf-8"))
        at_1e5 = [r["delta"] for r in table["adwin"]["entries"] if r["target_arl0"] == 1e5]
        assert adwin_delta(1e5) == min(at_1e5)
        assert adwin_delta(1e4) > adwin_delta(3e4) > adwin_delta(1e5) > adwin_delta(1e7)


class TestGuaranteedOverWarmUps:
    """The learned thresholds hold for most warm-ups, not only on average over them:
    each warm-up's own ARL0 (its chart run on the true distribution) is checked."""

    @staticmethod
    def mean_surprisals(rng: np.random.Generator, n: int) -> np.ndarray:
        # per-response mean surprisal of surprisal_mixture's answers, drawn directly
        stock = rng.random(n) < 0.05
        length = rng.integers(8, 40, size=n)
        return np.where(stock, rng.gamma(3.0, 0.1, size=n), rng.gamma(1.2 * length, 1.6) / length)

    def test_the_bootstrap_keeps_most_warm_ups_at_the_target(self) -> None:
        target, runs = 2000.0, 16
        truth = self.mean_surprisals(np.random.default_rng(1), 200_000)
        below = {"point": 0, "bootstrap": 0}
        for i in range(runs):
            warm_up = self.mean_surprisals(np.random.default_rng([2, i]), 300)
            mu, sd = warm_up.mean(), warm_up.std(ddof=1)
            z = (truth - mu) / sd
            for name, confidence in (("point", 0.0), ("bootstrap", 0.95)):
                h = empirical_cusum_h((warm_up - mu) / sd, 0.5, target, confidence=confidence)
                rate = 1 / markov_arl(np.sort(z - 0.5), h) + 1 / markov_arl(np.sort(-z - 0.5), h)
                below[name] += 1 / rate < target
        # the point estimate is a coin flip per warm-up; the bootstrap's is not
        assert below["point"] >= 4, below
        assert below["bootstrap"] <= 2, below

    def test_a_clipped_chart_keeps_most_warm_ups_at_the_target(self) -> None:
        target, runs, clip = 2000.0, 16, 2.5
        truth = self.mean_surprisals(np.random.default_rng(1), 200_000)
        below = 0
        for i in range(runs):
            warm_up = self.mean_surprisals(np.random.default_rng([2, i]), 300)
            mu, sd = warm_up.mean(), warm_up.std(ddof=1)
            z = np.clip((truth - mu) / sd, -clip, clip)
            h = empirical_cusum_h((warm_up - mu) / sd, 0.5, target, clip=clip)
            rate = 1 / markov_arl(np.sort(z - 0.5), h) + 1 / markov_arl(np.sort(-z - 0.5), h)
            below += 1 / rate < target
        assert below <= 1, below

    @pytest.mark.parametrize("clip", [0.75, 1.5, 2.5, 4.0])
    def test_a_clipped_chart_is_the_chart_of_clipped_values(self, clip: float) -> None:
        # the chain clips each step ([-clip - k, clip - k]) instead of the values
        z = TestGuaranteedOverWarmUps.mean_surprisals(np.random.default_rng(4), 500)
        z = (z - z.mean()) / z.std(ddof=1)
        clipped = np.clip(z, -clip, clip)
        for upper, lower in ((True, True), (True, False), (False, True)):
            via_chain = empirical_cusum_h(
                z.tolist(), 0.5, 5000.0, upper=upper, lower=lower, confidence=0.0, clip=clip
            )
            of_values = empirical_cusum_h(
                clipped.tolist(), 0.5, 5000.0, upper=upper, lower=lower, confidence=0.0
            )
            assert via_chain == of_values
        with pytest.raises(ValueError, match="clip"):
            empirical_cusum_h(z, 0.5, 5000.0, clip=0.0)

    def test_the_bootstrap_is_deterministic_and_only_raises_h(self) -> None:
        z = np.random.default_rng(3).standard_normal(500)
        point = empirical_cusum_h(z, 0.5, 5000.0, confidence=0)
        assert empirical_cusum_h(z, 0.5, 5000.0) == empirical_cusum_h(z.tolist(), 0.5, 5000.0)
        assert empirical_cusum_h(z, 0.5, 5000.0) >= point
        with pytest.raises(ValueError, match="confidence"):
            empirical_cusum_h(z, 0.5, 5000.0, confidence=1.0)

    def test_the_centroid_bound_is_conditional_on_the_baseline(self) -> None:
        args = (32 * 0.01, 32 * 1e-4, 1.0)
        schedule = {"window": 256, "checks_every": 64, "target_arl0": 1e5}
        marginal = centroid_distance_bound(*args, reference=512, **schedule, confidence=0)
        short = centroid_distance_bound(*args, reference=512, **schedule)
        long = centroid_distance_bound(*args, reference=4096, **schedule)
        # a far-off baseline must not make its series alarm: the bound widens, and a
        # longer baseline (a smaller persistent error) narrows it again
        assert short > marginal
        assert long < short
