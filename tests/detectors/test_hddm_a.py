"""HDDM_A beyond the shared contract and the river conformance suite."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import HDDM_A


class TestHDDMA:
    @pytest.mark.parametrize("bad", [3, 0.25, float("nan")])
    def test_rejects_non_binary(self, bad: float) -> None:
        with pytest.raises(ValueError, match="0 or 1"):
            HDDM_A().update(bad)

    def test_two_sided_detects_decreases(self) -> None:
        rng = np.random.default_rng(1)
        errors = np.concatenate([rng.random(1500) < 0.5, rng.random(1500) < 0.05]).astype(int)
        assert not HDDM_A().update_many(errors)
        assert HDDM_A(two_sided_test=True).update_many(errors)

    def test_threshold_param(self) -> None:
        detector = HDDM_A(drift_confidence=0.01)
        assert detector.threshold == 0.01
        assert HDDM_A.threshold_increases_run_length is False
