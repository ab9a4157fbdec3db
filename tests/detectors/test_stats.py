"""The chi-square survival function and incomplete gamma, against scipy (dev only)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from detectors._stats import chi2_isf, chi2_sf, gammainc, gammaincc


class TestGammaincc:
    @pytest.mark.parametrize("a", [0.05, 0.5, 1.0, 2.5, 10.0, 50.0, 500.0, 5000.0])
    def test_matches_scipy(self, a: float) -> None:
        xs = np.concatenate([np.linspace(0.0, 3 * a + 30, 120), [1e-9, a - 1, a, a + 1, 1e4]])
        for x in xs[xs >= 0]:
            want = float(special.gammaincc(a, x))
            got = gammaincc(a, float(x))
            if want > 1e-280:
                assert got == pytest.approx(want, rel=1e-10, abs=1e-300)
            else:
                assert got < 1e-270
            assert gammainc(a, float(x)) == pytest.approx(
                float(special.gammainc(a, x)), rel=1e-10, abs=1e-12
            )

    def test_edges(self) -> None:
        assert gammaincc(2.0, 0.0) == 1.0
        assert gammaincc(2.0, math.inf) == 0.0
        with pytest.raises(ValueError):
            gammaincc(0.0, 1.0)
        with pytest.raises(ValueError):
            gammaincc(1.0, -1.0)


class TestChi2:
    @pytest.mark.parametrize("df", [1, 2, 3, 7, 49, 200])
    def test_sf_matches_scipy(self, df: int) -> None:
        for x in np.linspace(0.0, 4 * df + 60, 80):
            want = float(stats.chi2.sf(x, df))
            assert chi2_sf(float(x), df) == pytest.approx(want, rel=1e-10, abs=1e-300)

    @pytest.mark.parametrize("df", [1, 2, 5, 49, 200])
    @pytest.mark.parametrize("p", [0.5, 0.05, 1e-3, 1e-6, 1e-10])
    def test_isf_matches_scipy(self, df: int, p: float) -> None:
        assert chi2_isf(p, df) == pytest.approx(float(stats.chi2.isf(p, df)), rel=1e-10)

    def test_rejects_bad_input(self) -> None:
        with pytest.raises(ValueError):
            chi2_sf(math.nan, 2)
        with pytest.raises(ValueError):
            chi2_isf(1.0, 2)
        with pytest.raises(ValueError):
            chi2_sf(1.0, 0)
        assert chi2_sf(-1.0, 3) == 1.0
