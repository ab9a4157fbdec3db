"""TokenEntropy: mean token surprisal per response, two-sided standardised CUSUM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.token_entropy import TokenEntropy, mean_surprisal
from tests.detectors._distribution_checks import (
    calibrated_quiet,
    check_contract,
    first_detection_after,
)


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
