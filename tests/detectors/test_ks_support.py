from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from detectors._ks_support import exact_counts

# Few distinct values, so that ties between the reference and the values are common.
_values = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=40)


class TestExactCounts:
    @given(ref=_values, values=st.lists(st.integers(-6, 6).map(float), max_size=40))
    def test_counts_below_and_at_or_below_each_value(
        self, ref: list[float], values: list[float]
    ) -> None:
        below, upto = exact_counts(np.sort(np.array(ref)), np.array(values))
        assert below.tolist() == [sum(r < v for r in ref) for v in values]
        assert upto.tolist() == [sum(r <= v for r in ref) for v in values]
