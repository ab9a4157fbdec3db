"""Hypothesis strategies of observation streams, one per ``input_kind``.

Every strategy produces plain Python lists (possibly empty) mixing a few shapes
that tend to break online detectors: i.i.d. noise, constant runs, step changes,
huge and tiny magnitudes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from detectors.base import InputKind

__all__ = ["MAX_LEN", "stream_strategy"]

MAX_LEN = 300

_moderate = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
_huge = st.one_of(
    st.floats(min_value=1e50, max_value=1e100), st.floats(min_value=-1e100, max_value=-1e50)
)
_tiny = st.floats(min_value=-1e-300, max_value=1e-300, allow_subnormal=True)
_unit = st.floats(min_value=-1.0, max_value=1.0)


@st.composite
def _segments(draw: st.DrawFn) -> list[float]:
    """Piecewise streams: a few segments, each a level plus bounded noise."""
    out: list[float] = []
    for _ in range(draw(st.integers(1, 4))):
        level = draw(st.floats(min_value=-100, max_value=100))
        spread = draw(st.sampled_from([0.0, 0.01, 1.0, 10.0]))
        noise = draw(st.lists(_unit, min_size=0, max_size=MAX_LEN // 3))
        out.extend(level + spread * u for u in noise)
    return out


def _constant(values: st.SearchStrategy[float]) -> st.SearchStrategy[list[float]]:
    return st.builds(lambda v, n: [v] * n, values, st.integers(0, MAX_LEN))


_numeric = st.one_of(
    st.lists(_moderate, max_size=MAX_LEN),
    _segments(),
    _constant(st.one_of(_moderate, _huge, _tiny)),
    st.lists(_huge, max_size=MAX_LEN),
    st.lists(_tiny, max_size=MAX_LEN),
    st.lists(st.integers(-1000, 1000).map(float), max_size=MAX_LEN),
)


@st.composite
def _rate_segments(draw: st.DrawFn) -> list[int]:
    out: list[int] = []
    for _ in range(draw(st.integers(1, 4))):
        rate = draw(st.sampled_from([0.0, 0.05, 0.3, 0.7, 1.0]))
        draws = draw(st.lists(st.floats(0.0, 1.0, exclude_max=True), max_size=MAX_LEN // 3))
        out.extend(int(u < rate) for u in draws)
    return out


_binary = st.one_of(
    st.lists(st.sampled_from([0, 1]), max_size=MAX_LEN),
    st.lists(st.booleans(), max_size=MAX_LEN),
    _rate_segments(),
    _constant(st.sampled_from([0.0, 1.0])),
)

_CATEGORIES = ["a", "b", "c", "d", "e", "x-long-category-name"]


@st.composite
def _category_segments(draw: st.DrawFn) -> list[Any]:
    out: list[Any] = []
    for _ in range(draw(st.integers(1, 3))):
        alphabet = draw(st.lists(st.sampled_from(_CATEGORIES), min_size=1, max_size=4))
        out.extend(draw(st.lists(st.sampled_from(alphabet), max_size=MAX_LEN // 3)))
    return out


_categorical = st.one_of(
    st.lists(st.sampled_from([*_CATEGORIES, 1, 2, True, False]), max_size=MAX_LEN),
    _category_segments(),
    _constant(st.sampled_from(_CATEGORIES)),  # type: ignore[arg-type]
)

_WORDS = ["the", "model", "answer", "cannot", "help", "sorry", "ok", "data", "é", "日本"]
_sentence = st.lists(st.sampled_from(_WORDS), min_size=0, max_size=12).map(" ".join)
_text = st.one_of(
    st.lists(_sentence, max_size=MAX_LEN // 2),
    st.lists(st.text(max_size=40), max_size=MAX_LEN // 2),
    st.builds(lambda s, n: [s] * n, _sentence, st.integers(0, MAX_LEN // 2)),
)


@st.composite
def _vectors(draw: st.DrawFn) -> list[list[float]]:
    dim = draw(st.integers(1, 6))
    coord = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
    vec = st.lists(coord, min_size=dim, max_size=dim)
    if draw(st.booleans()):
        return draw(st.lists(vec, max_size=MAX_LEN // 2))
    first = draw(vec)
    second = draw(vec)
    n1 = draw(st.integers(0, MAX_LEN // 4))
    n2 = draw(st.integers(0, MAX_LEN // 4))
    return [list(first)] * n1 + [list(second)] * n2


_logprob = st.floats(min_value=-50.0, max_value=0.0)
_logprobs = st.one_of(
    st.lists(st.lists(_logprob, min_size=1, max_size=16), max_size=MAX_LEN // 2),
    st.builds(
        lambda lp, n: [list(lp)] * n,
        st.lists(_logprob, min_size=1, max_size=16),
        st.integers(0, MAX_LEN // 2),
    ),
)

_BY_KIND: dict[str, st.SearchStrategy[Any]] = {
    "numeric": _numeric,
    "binary": _binary,
    "categorical": _categorical,
    "text": _text,
    "vector": _vectors(),
    "logprobs": _logprobs,
}


def stream_strategy(kind: InputKind) -> st.SearchStrategy[list[Any]]:
    """Streams of observations of ``kind`` (lists, possibly empty)."""
    strategy: st.SearchStrategy[list[Any]] = _BY_KIND[kind]
    return strategy
