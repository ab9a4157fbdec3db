"""OutputDiversity: exact / near duplicate rate and distinct-n of generated text."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from detectors import estimate_arl0
from detectors.arl import duplicate_rate_bound
from detectors.output_diversity import OutputDiversity, normalize_text
from tests.detectors._distribution_checks import (
    check_contract,
    dumps,
    first_detection_after,
    roundtrip,
)

WORDS = [f"w{i}" for i in range(2000)]


def answers(rng: np.random.Generator, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 30)))) for _ in range(n)]


class TestOutputDiversity:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_contract(self, seed: int) -> None:
        check_contract("output_diversity", seed)

    def test_normalisation(self) -> None:
        assert normalize_text("  Hello\tWORLD \n") == "hello world"
        assert normalize_text("ﬁne") == "fine"  # NFKC ligature

    @pytest.mark.parametrize("seed", range(3))
    def test_detects_canned_answer_within_120(self, seed: int) -> None:
        # 60 % of answers become one canned refusal.
        rng = np.random.default_rng(seed)
        stream = answers(rng, 1000)
        stream += [
            "Sorry, I cannot help with that." if rng.random() < 0.6 else a
            for a in answers(rng, 500)
        ]
        det = OutputDiversity()
        delay = first_detection_after(det, stream, 1000)
        assert delay is not None and delay <= 120
        assert det.duplicate_rate > 0.4 and det.distinct_2 < 0.9

    def test_near_duplicates_counted(self) -> None:
        det = OutputDiversity(window_size=3, max_duplicate_rate=0.9)
        det.update_many(
            [
                "The capital of France is Paris, a city on the Seine.",
                "The capital of France is Paris, a city on the Seine!",
                "Completely different text about something else.",
            ]
        )
        assert det.duplicate_rate == 0.0
        assert det.near_duplicate_rate == pytest.approx(1 / 3)

    def test_exact_after_normalisation(self) -> None:
        det = OutputDiversity(window_size=2, max_duplicate_rate=0.9)
        det.update_many(["Yes.", "  YES. "])
        assert det.duplicate_rate == 0.5 and det.near_duplicate_rate == 0.5

    def test_distinct_n(self) -> None:
        det = OutputDiversity(window_size=2, max_duplicate_rate=0.9)
        det.update_many(["a b a b", "a b c"])
        assert det.distinct_1 == pytest.approx(3 / 7)
        assert det.distinct_2 == pytest.approx(3 / 5)  # ab, ba, bc of ab ba ab ab bc

    def test_stable_quiet_at_default_for_3000(self) -> None:
        rng = np.random.default_rng(15)
        assert OutputDiversity().update_many(answers(rng, 3000)) == []

    def test_legit_repeats_below_threshold_are_quiet(self) -> None:
        # 20 % of requests are the same FAQ with the same answer: below 0.5.
        rng = np.random.default_rng(16)
        stream = [
            "Our opening hours are 9 to 5." if rng.random() < 0.2 else a for a in answers(rng, 3000)
        ]
        assert OutputDiversity().update_many(stream) == []

    def test_memory_is_bounded(self) -> None:
        det = OutputDiversity(window_size=10, max_tokens=5)
        det.update_many(answers(np.random.default_rng(0), 100))
        state = det.to_state()["state"]
        assert len(state["window"]) == 10
        assert all(len(entry[4]) <= 5 for entry in state["window"])

    def test_rejects_non_text(self) -> None:
        with pytest.raises(TypeError):
            OutputDiversity().update(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            OutputDiversity().update(float("nan"))  # type: ignore[arg-type]

    def test_hashes_are_the_same_in_another_process(self) -> None:
        det = OutputDiversity(window_size=5)
        det.update_many(["one answer", "another answer here"])
        code = (
            "import json; from detectors.output_diversity import OutputDiversity as O;"
            "d = O(window_size=5); d.update_many(['one answer', 'another answer here']);"
            "print(json.dumps(d.to_state()))"
        )
        env = {"PYTHONHASHSEED": "12345"}
        import json
        import os

        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **env},
        ).stdout
        assert json.loads(out) == json.loads(json.dumps(det.to_state()))


class TestLearnedBound:
    """``reference_size`` > 0: the bound is the healthy near-duplicate fraction plus
    ``z`` binomial standard errors of a window, capped at ``max_duplicate_rate``."""

    @staticmethod
    def stream(
        seed: int, healthy: float, canned: float, n: int = 3000, at: int = 2000
    ) -> list[str]:
        rng = np.random.default_rng(seed)
        out = []
        for i, a in enumerate(answers(rng, n)):
            u = rng.random()
            if i >= at and u < canned:
                out.append("I'm sorry, but I can't help with that request.")
            elif u > 1 - healthy:  # stock answers a healthy model repeats
                out.append(["Yes.", "No.", "Thanks!"][int(rng.integers(0, 3))])
            else:
                out.append(a)
        return out

    def test_a_quarter_canned_is_found_sooner_than_by_the_fixed_bound(self) -> None:
        # 5 % stock answers + 25 % canned sit around the fixed 0.3 bound
        stream = self.stream(0, healthy=0.05, canned=0.25)
        fixed = OutputDiversity(window_size=200, max_duplicate_rate=0.3)
        slow = first_detection_after(fixed, stream, 2000)
        learned = OutputDiversity(window_size=200, max_duplicate_rate=0.5, reference_size=1000)
        delay = first_detection_after(learned, stream, 2000)
        assert delay is not None and delay < 100
        assert slow is None or slow > 2 * delay
        assert 0.05 < learned.threshold < 0.2

    def test_a_healthy_rate_above_a_fixed_bound_is_learned(self) -> None:
        stream = self.stream(1, healthy=0.4, canned=0.0)
        assert OutputDiversity(window_size=200, max_duplicate_rate=0.3).update_many(stream)
        learned = OutputDiversity(window_size=200, max_duplicate_rate=0.9, reference_size=1000)
        assert learned.update_many(stream) == []

    def test_no_alarm_while_learning_and_state_round_trips(self) -> None:
        stream = self.stream(2, healthy=0.05, canned=0.6, at=300, n=1500)
        assert math.isnan(OutputDiversity(window_size=100, reference_size=500).threshold)
        self.check_round_trips(stream, {}, first_at=500, cuts=(0, 250, 500, 777))

    @staticmethod
    def check_round_trips(
        stream: list[str], extra: dict[str, Any], first_at: int, cuts: tuple[int, ...]
    ) -> None:
        """Per-event alarms start at ``first_at``; a snapshot at every cut restores
        exactly and the batch path after it gives the same alarms and state."""
        det = OutputDiversity(window_size=100, reference_size=500, **extra)
        per_event = []
        for i, text in enumerate(stream):
            det.update(text)
            if det.drift_detected:
                per_event.append(i)
        assert per_event and per_event[0] >= first_at
        for cut in cuts:
            head = OutputDiversity(window_size=100, reference_size=500, **extra)
            first = head.update_many(stream[:cut])
            restored = roundtrip(head)
            assert dumps(restored) == dumps(head)
            assert first + [cut + i for i in restored.update_many(stream[cut:])] == per_event
            assert dumps(restored) == dumps(det)

    def test_dispersion_widens_the_bound_by_the_reference_s_own_spread(self) -> None:
        # Stock answers in bursts: their duplicate flags cluster, blocks vary more
        # than binomially, and the learned bound widens by sqrt(phi).
        rng = np.random.default_rng(3)
        stream = []
        for block in range(40):
            burst = block % 4 == 0
            for a in answers(rng, 50):
                stock = rng.random() < (0.3 if burst else 0.02)
                stream.append("Yes." if stock else a)
        params: dict[str, Any] = {"window_size": 200, "reference_size": 1000, "z": 4.0}
        plain = OutputDiversity(**params)
        wide = OutputDiversity(**params, dispersion=True)
        floored = OutputDiversity(**params, dispersion=True, min_z=50.0)
        for det in (plain, wide, floored):
            det.update_many(stream[:1000])
        assert wide.overdispersion > 2.0 and plain.overdispersion == wide.overdispersion
        p0 = plain._ref_near / 1000
        se = math.sqrt(p0 * (1 - p0) / 200)
        assert plain.threshold == pytest.approx(p0 + 4.0 * se)
        assert wide.threshold == pytest.approx(p0 + 4.0 * math.sqrt(wide.overdispersion) * se)
        assert floored.threshold == 0.5  # min_z, capped at max_duplicate_rate
        # Stock answers at a steady 5 %: less spread than the bursts (never below 1).
        calm = OutputDiversity(**params, dispersion=True)
        calm.update_many(self.stream(4, healthy=0.05, canned=0.0, n=1000))
        assert 1.0 <= calm.overdispersion < wide.overdispersion / 2

    def test_dispersion_state_round_trips_and_matches_the_per_event_path(self) -> None:
        stream = self.stream(5, healthy=0.08, canned=0.5, at=700, n=1200)
        self.check_round_trips(
            stream, {"dispersion": True}, first_at=700, cuts=(0, 130, 499, 500, 901)
        )

    def test_a_version_1_snapshot_keeps_the_binomial_bound(self) -> None:
        stream = self.stream(6, healthy=0.05, canned=0.0, n=800)
        det = OutputDiversity(window_size=100, reference_size=500, dispersion=True)
        det.update_many(stream)
        old = det.to_state()
        old["version"] = 1
        del old["state"]["reference_blocks"]
        old["params"] = {k: v for k, v in old["params"].items() if k not in ("dispersion", "min_z")}
        restored = OutputDiversity.from_state(old)
        assert restored.overdispersion == 1.0
        p0 = max(det._ref_near / 500, 1 / 100)
        assert restored.threshold == pytest.approx(p0 + restored.z * math.sqrt(p0 * (1 - p0) / 100))

    @pytest.mark.parametrize(("params", "name"), [({"reference_size": -1}, "reference_size"),
                                                    ({"z": 0.0}, "z")])  # fmt: skip
    def test_invalid(self, params: dict[str, float], name: str) -> None:
        with pytest.raises(ValueError, match=name):
            OutputDiversity(**params)  # type: ignore[arg-type]


class TestBoundForTarget:
    """``target_arl0``: the bound is :func:`detectors.arl.duplicate_rate_bound` of the
    reference's counts and over-dispersion."""

    stream = staticmethod(TestLearnedBound.stream)

    def test_the_bound_is_the_count_tail_at_the_reference_s_upper_rate(self) -> None:
        det = OutputDiversity(window_size=200, reference_size=1000, target_arl0=1e5)
        assert math.isnan(det.threshold)
        det.update_many(self.stream(7, healthy=0.05, canned=0.0, n=1000))
        expected = duplicate_rate_bound(
            det._ref_near, 1000, det.overdispersion, window=200, target_arl0=1e5
        )
        assert det.threshold == expected
        # wider than the plain z band at the same target (its right skew, the
        # reference's own error), and a higher target widens it further
        band = OutputDiversity(window_size=200, reference_size=1000, z=4.67)
        band.update_many(self.stream(7, healthy=0.05, canned=0.0, n=1000))
        assert det.threshold > band.threshold
        wider = OutputDiversity(window_size=200, reference_size=1000, target_arl0=1e7)
        wider.update_many(self.stream(7, healthy=0.05, canned=0.0, n=1000))
        assert wider.threshold > det.threshold

    def test_a_quarter_canned_is_found_within_100(self) -> None:
        stream = self.stream(0, healthy=0.05, canned=0.25)
        det = OutputDiversity(window_size=200, reference_size=1000, target_arl0=1e5)
        delay = first_detection_after(det, stream, 2000)
        assert delay is not None and delay < 100

    def test_state_round_trips_and_matches_the_per_event_path(self) -> None:
        stream = self.stream(8, healthy=0.05, canned=0.5, at=700, n=1200)
        TestLearnedBound.check_round_trips(
            stream, {"target_arl0": 1e4}, first_at=700, cuts=(0, 130, 499, 500, 901)
        )

    def test_a_snapshot_from_before_target_arl0_restores(self) -> None:
        det = OutputDiversity(window_size=100, reference_size=500, dispersion=True)
        det.update_many(self.stream(9, healthy=0.05, canned=0.0, n=800))
        old = det.to_state()
        del old["params"]["target_arl0"]
        restored = OutputDiversity.from_state(old)
        assert restored.target_arl0 is None and restored.threshold == det.threshold

    def test_keeps_false_alarms_under_the_target(self) -> None:
        # 5 % stock replies (3 of them) among varied answers, checked at every response
        def texts(rng: np.random.Generator, n: int) -> list[str]:
            out = answers(rng, n)
            stock = rng.random(n) < 0.05
            picks = rng.integers(0, 3, size=n)
            return [["Yes.", "No.", "Thanks!"][p] if s else a
                    for a, s, p in zip(out, stock, picks, strict=True)]  # fmt: skip

        target = 300.0
        det = OutputDiversity(window_size=40, reference_size=200, target_arl0=target)
        estimate = estimate_arl0(det, texts, n_runs=30, max_run_length=3000, seed=5)
        assert estimate.interval()[1] >= target, estimate

    @pytest.mark.parametrize(
        ("params", "name"),
        [({"target_arl0": 1.0}, "target_arl0"), ({"target_arl0": 1e5}, "target_arl0")],
    )
    def test_invalid(self, params: dict[str, float], name: str) -> None:
        with pytest.raises(ValueError, match=name):
            OutputDiversity(**params)  # type: ignore[arg-type]
