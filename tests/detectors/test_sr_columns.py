"""The class-mix column path's logarithms (``detectors._sr_columns._logs_of``):
libm's ``log`` over a whole array in one C call (``detectors._libm_log``) gives what
``math.log`` gives value by value, bit for bit, and refuses what it refuses."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from detectors import _sr_columns
from detectors._sr_columns import NATIVE_LOG, _logs_of


def _by_math_log(values: list[float]) -> np.ndarray:
    return np.array([math.log(v) for v in values], dtype=np.float64)


@hsettings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.floats(min_value=0.0, exclude_min=True, allow_infinity=True, allow_nan=False),
        max_size=300,
    )
)
def test_equals_math_log_bit_for_bit(values: list[float]) -> None:
    got = _logs_of(np.array(values, dtype=np.float64))
    assert got.view(np.int64).tolist() == _by_math_log(values).view(np.int64).tolist()


def test_ratios_where_numpys_log_differs() -> None:
    """The ratios of a column, where numpy's own ``log`` is off by one bit in some."""
    ratios = np.random.default_rng(7).random(50_000) * 3 + 1e-3
    exact = _by_math_log(ratios.tolist())
    assert (np.log(ratios) != exact).any()  # why numpy's log is not used
    assert (_logs_of(ratios).view(np.int64) == exact.view(np.int64)).all()


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_a_value_math_log_refuses_raises_as_it(bad: float) -> None:
    with pytest.raises(ValueError, match="math domain error"):
        _logs_of(np.array([2.0, bad, 3.0]))


def test_nan_passes_through_as_math_log_gives_it() -> None:
    got = _logs_of(np.array([2.0, math.nan, 0.5]))
    assert got[0] == math.log(2.0) and math.isnan(got[1]) and got[2] == math.log(0.5)


def test_without_the_extension_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(3).random(1000) + 0.1
    native = _logs_of(values)
    monkeypatch.setattr(_sr_columns, "_log_into", None)
    assert (_logs_of(values).view(np.int64) == native.view(np.int64)).all()


def test_the_extension_is_built() -> None:
    """As ADWIN's engine (``test_adwin_native``): installed with a compiler, the
    fallback must not pass unnoticed (without one: DRIFTLINE_ALLOW_PURE_PYTHON=1)."""
    if os.environ.get("DRIFTLINE_ALLOW_PURE_PYTHON") == "1":
        pytest.skip("DRIFTLINE_ALLOW_PURE_PYTHON=1: math.log per value is accepted")
    assert NATIVE_LOG, "detectors._libm_log is not built: reinstall with a C compiler"
