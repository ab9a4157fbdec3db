"""TokenEntropy: mean token surprisal per response, two-sided standardised CUSUM."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.arl import cusum_h
from detectors.base import StateError
from detectors.token_entropy import TokenEntropy, mean_surprisal
from tests.detectors._distribution_checks import (
    calibrated_quiet,
    check_contract,
    first_detection_after,
)
from tests.detectors.strategies import stream_strategy


def responses(rng: np.random.Generator, n: int, scale: float) -> list[list[float]]:
    """Responses of 20-60 tokens with Exp(scale) surprisal per token."""
    return [(-rng.exponential(scale, size=int(rng.integers(20, 60)))).tolist() for _ in range(n)]


class TestMeanSurprisal:
    def test_definition(self) -> None:
        assert mean_surprisal([-0.5, -1.5, 0.0]) == pytest.approx(2 / 3)
        assert mean_surprisal((-2.0,)) == 2.0
        assert mean_surprisal(np.array([-1.0, -3.0])) == 2.0
        assert mean_surprisal([1e-7, -1.0]) == pytest.approx(0.5, abs=1e-6)

    @pytest.mark.parametrize(
        "bad", [[], [math.nan], [-math.inf], [-1.0, math.inf], [0.5], [-1.0, 1e-3]]
    )
    def test_rejects(self, bad: list[float]) -> None:
        with pytest.raises(ValueError):
            mean_surprisal(bad)

    def test_rejects_text_and_scalars(self) -> None:
        with pytest.raises(TypeError):
            mean_surprisal("-1.0")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            mean_surprisal(-1.0)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            TokenEntropy().update(math.nan)  # type: ignore[arg-type]


class TestTokenEntropy:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_contract(self, seed: int) -> None:
        check_contract("token_entropy", seed)

    @pytest.mark.parametrize("seed", range(5))
    def test_detects_one_sigma_drop_within_60(self, seed: int) -> None:
        # Mean surprisal 1.2 -> 1.0 nats/token: about one reference sigma.
        rng = np.random.default_rng(seed)
        stream = responses(rng, 1000, 1.2) + responses(rng, 500, 1.0)
        det = TokenEntropy(direction="lower")
        delay = first_detection_after(det, stream, 1000)
        assert delay is not None and delay <= 60
        assert det.reference_mean == pytest.approx(1.2, abs=0.05)

    def test_detects_rise_with_upper(self) -> None:
        rng = np.random.default_rng(7)
        stream = responses(rng, 1000, 1.2) + responses(rng, 500, 1.5)
        assert first_detection_after(TokenEntropy(direction="upper"), stream, 1000) is not None
        rng = np.random.default_rng(7)
        stream = responses(rng, 1000, 1.2) + responses(rng, 500, 1.5)
        assert TokenEntropy(direction="lower").update_many(stream) == []

    def test_stable_quiet_at_default_for_10000(self) -> None:
        rng = np.random.default_rng(11)
        assert TokenEntropy().update_many(responses(rng, 10200, 1.2)) == []

    def test_stable_quiet_at_calibrated_threshold(self) -> None:
        # Calibrated for ARL0 = 2000 responses; 200 fresh responses after the reference.
        reference = responses(np.random.default_rng(20), 3000, 1.2)
        fresh = responses(np.random.default_rng(21), 200 + 200, 1.2)
        h = calibrated_quiet(TokenEntropy(), reference, fresh)
        assert 3.0 < h < 12.0

    def test_sums_restart_after_detection(self) -> None:
        det = TokenEntropy(reference_size=10, h=2.0)
        det.update_many(responses(np.random.default_rng(0), 10, 1.0))
        det.update([-0.01] * 5)
        assert det.drift_detected and det.statistic > 2.0
        assert det.cusum_lower == det.cusum_upper == 0.0

    def test_min_std_floor(self) -> None:
        det = TokenEntropy(reference_size=5, min_std=0.1)
        det.update_many([[-1.0]] * 5)
        assert det.reference_std == 0.1
        det.update([-1.05])
        assert not det.drift_detected


def mixture(rng: np.random.Generator, n: int) -> list[list[float]]:
    """Like a chat model's answers: 5 % short stock replies with near-certain tokens
    (a heavy lower tail of per-response surprisal), the rest 8-40 tokens."""
    out = []
    for _ in range(n):
        if rng.random() < 0.05:
            out.append((-rng.exponential(0.3, size=3)).tolist())
        else:
            out.append((-rng.gamma(1.2, 1.6, size=int(rng.integers(8, 40)))).tolist())
    return out


class TestLearnedH:
    """``target_arl0``: h from the reference's empirical surprisals."""

    @staticmethod
    def factory() -> TokenEntropy:
        return TokenEntropy(reference_size=20, target_arl0=200)

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_contract(self, seed: int) -> None:
        check_contract("token_entropy", seed, factory=self.factory)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(stream=stream_strategy("logprobs"), cut=st.integers(0, 200))
    def test_update_many_equals_update(self, stream: list[list[float]], cut: int) -> None:
        one = self.factory()
        expected = [i for i, x in enumerate(stream) if one.update(x).drift_detected]
        batch = self.factory()
        assert batch.update_many(stream) == expected
        assert batch.to_state() == one.to_state()
        cut = min(cut, len(stream))
        head = self.factory()
        hits = head.update_many(stream[:cut])
        restored = TokenEntropy.from_state(json.loads(json.dumps(head.to_state())))
        assert hits + [cut + i for i in restored.update_many(stream[cut:])] == expected
        assert restored.to_state() == one.to_state()

    def test_heavy_lower_tail_raises_h_above_the_normal_theory(self) -> None:
        det = TokenEntropy(reference_size=1000, target_arl0=1e5)
        assert math.isnan(det.threshold)
        det.update_many(mixture(np.random.default_rng(4), 1000))
        normal = cusum_h(1e5, 0.5, two_sided=True, reference=1000)
        assert det.threshold > normal + 1.0
        assert det.to_state()["state"]["values"] is None  # dropped once learned
        # only the side the chart watches counts: the upper side has no heavy tail
        upper = TokenEntropy(reference_size=1000, target_arl0=1e5, direction="upper")
        upper.update_many(mixture(np.random.default_rng(4), 1000))
        assert upper.threshold < det.threshold

    def test_alarms_use_the_learned_h(self) -> None:
        det = TokenEntropy(reference_size=200, target_arl0=1e4, h=0.1)
        stream = responses(np.random.default_rng(5), 1200, 1.2)
        assert det.update_many(stream) == []  # h = 0.1 would alarm at once
        assert det.threshold > 5.0

    def test_a_version_1_snapshot_restores_with_its_h(self) -> None:
        stream = responses(np.random.default_rng(6), 300, 1.2)
        det = TokenEntropy(reference_size=100, h=5.0)
        det.update_many(stream[:150])
        old = det.to_state()
        old["version"] = 1
        del old["state"]["h"], old["state"]["values"]
        del old["params"]["target_arl0"]
        restored = TokenEntropy.from_state(old)
        assert restored.threshold == 5.0
        assert restored.update_many(stream[150:]) == det.update_many(stream[150:])
        assert restored.to_state() == det.to_state()

    def test_snapshot_validation(self) -> None:
        det = self.factory()
        det.update_many(responses(np.random.default_rng(7), 10, 1.0))
        snap = det.to_state()
        with pytest.raises(StateError):
            TokenEntropy.from_state({**snap, "state": {**snap["state"], "values": [1.0]}})
        fixed = TokenEntropy(reference_size=20).to_state()
        with pytest.raises(StateError):
            TokenEntropy.from_state({**fixed, "state": {**fixed["state"], "h": 3.0}})

    def test_invalid_target(self) -> None:
        for bad in (0.0, 1.5, math.nan):
            with pytest.raises(ValueError, match="target_arl0"):
                TokenEntropy(target_arl0=bad)


class TestClip:
    """``clip``: a winsorised CUSUM, so a few extreme responses cannot alarm alone."""

    @staticmethod
    def factory() -> TokenEntropy:
        return TokenEntropy(reference_size=20, target_arl0=200, clip=2.0)

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_contract(self, seed: int) -> None:
        check_contract("token_entropy", seed, factory=self.factory)

    def test_one_response_moves_a_sum_by_at_most_clip_minus_allowance(self) -> None:
        reference = responses(np.random.default_rng(8), 200, 1.2)
        clipped = TokenEntropy(reference_size=200, h=50.0, clip=2.5)
        plain = TokenEntropy(reference_size=200, h=50.0)
        clipped.update_many(reference)
        plain.update_many(reference)
        certain = [-1e-4] * 20  # a near-certain response, far below the reference
        clipped.update(certain)
        plain.update(certain)
        assert clipped.cusum_lower == pytest.approx(2.0)
        assert plain.cusum_lower > 4.0

    def test_stock_replies_alone_no_longer_alarm(self) -> None:
        # near-certain replies in a row in a stable stream: the third is an alarm
        # of the plain chart at h = 12; four move the clipped one by 4 x 2.0 at most
        stream = responses(np.random.default_rng(9), 300, 1.2)
        burst = stream[:250] + [[-1e-4] * 3] * 4 + stream[250:]
        assert TokenEntropy(reference_size=200, h=12.0).update_many(burst) == [252]
        clipped = TokenEntropy(reference_size=200, h=12.0, clip=2.5)
        clipped.update_many(burst[:250])
        before = clipped.cusum_lower
        assert clipped.update_many(burst[250:254]) == []
        assert clipped.cusum_lower == pytest.approx(before + 8.0)

    def test_a_drop_of_the_bulk_is_still_found(self) -> None:
        rng = np.random.default_rng(10)
        stream = responses(rng, 600, 1.2) + responses(rng, 300, 1.0)
        plain = first_detection_after(TokenEntropy(reference_size=300, h=8.0), stream, 600)
        clipped = first_detection_after(
            TokenEntropy(reference_size=300, h=8.0, clip=2.5), stream, 600
        )
        assert plain is not None and clipped is not None
        assert clipped <= plain + 30

    def test_the_learned_h_is_the_clipped_charts(self) -> None:
        reference = mixture(np.random.default_rng(4), 1000)
        plain = TokenEntropy(reference_size=1000, target_arl0=1e5)
        clipped = TokenEntropy(reference_size=1000, target_arl0=1e5, clip=2.5)
        plain.update_many(reference)
        clipped.update_many(reference)
        # the heavy tail no longer raises h above the normal theory's
        normal = cusum_h(1e5, 0.5, two_sided=True, reference=1000)
        assert clipped.threshold < plain.threshold
        assert clipped.threshold >= math.ceil(normal * 100) / 100

    def test_a_snapshot_from_before_clip_restores_unclipped(self) -> None:
        stream = responses(np.random.default_rng(11), 300, 1.2)
        det = TokenEntropy(reference_size=100, h=5.0)
        det.update_many(stream[:150])
        old = det.to_state()
        del old["params"]["clip"]
        restored = TokenEntropy.from_state(old)
        assert restored.clip is None
        assert restored.update_many(stream[150:]) == det.update_many(stream[150:])

    @pytest.mark.parametrize("bad", [0.5, 0.1, 0.0, -1.0, math.nan])
    def test_invalid_clip(self, bad: float) -> None:
        with pytest.raises(ValueError, match="clip"):
            TokenEntropy(clip=bad)
