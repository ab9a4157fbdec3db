"""DDM beyond the shared contract and the river conformance suite."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import DDM


class TestDDM:
    @pytest.mark.parametrize("bad", [2, 0.5, -1, float("nan"), float("inf")])
    def test_rejects_non_binary(self, bad: float) -> None:
        with pytest.raises(ValueError, match="0 or 1"):
            DDM().update(bad)
        with pytest.raises(ValueError, match="0 or 1"):
            DDM().update_many([0, 1, bad])

    def test_accepts_bools_ints_floats(self) -> None:
        a, b, c = DDM(), DDM(), DDM()
        stream = [True, False] * 40
        a.update_many(stream)
        b.update_many([int(x) for x in stream])
        c.update_many(np.asarray(stream, dtype=float))
        assert a.to_state() == b.to_state() == c.to_state()

    def test_warning_then_drift(self) -> None:
        rng = np.random.default_rng(0)
        errors = np.concatenate([rng.random(2000) < 0.1, rng.random(2000) < 0.5]).astype(int)
        ddm = DDM()
        first_warning = first_drift = None
        for i, x in enumerate(errors):
            ddm.update(x)
            if ddm.warning_detected and first_warning is None and i >= 2000:
                first_warning = i
            if ddm.drift_detected:
                first_drift = i
                assert ddm.statistic > ddm.drift_threshold
                break
        assert first_warning is not None and first_drift is not None
        assert 2000 <= first_warning <= first_drift

    def test_statistic_before_warm_start(self) -> None:
        ddm = DDM(warm_start=10)
        ddm.update(1)
        assert math.isnan(ddm.statistic)
