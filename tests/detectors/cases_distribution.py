"""Contract cases of the distribution detectors (entropy, text, categories, vectors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.categorical_drift import CategoricalDrift
from detectors.categorical_sr import CategoricalSR
from detectors.embedding_drift import EmbeddingDrift
from detectors.entropy import EntropyTracker
from detectors.output_diversity import OutputDiversity
from detectors.rolling_threshold import RollingThreshold
from detectors.token_entropy import TokenEntropy
from tests.detectors.contract import ContractCase

__all__ = ["CASES"]


def _categorical_stream(rng: np.random.Generator, n: int) -> Sequence[Any]:
    """Six classes (mixed str/int/bool) evenly, then a collapse onto one class with
    a few never-seen classes."""
    half = n // 2
    before = rng.integers(0, 6, size=half).tolist()
    classes: list[Any] = ["a", "b", "c", 3, True, "d"]
    out: list[Any] = [classes[i] for i in before]
    for _ in range(n - half):
        u = rng.random()
        out.append("a" if u < 0.8 else f"new-{int(rng.integers(0, 3))}" if u < 0.9 else "b")
    return out


def _logprob_stream(rng: np.random.Generator, n: int) -> Sequence[Any]:
    half = n // 2
    return [
        (-rng.exponential(1.0 if i < half else 0.3, size=int(rng.integers(1, 12)))).tolist()
        for i in range(n)
    ]


def _numeric_stream(rng: np.random.Generator, n: int) -> Sequence[Any]:
    half = n // 2
    return np.concatenate([rng.beta(20, 2, size=half), rng.beta(8, 4, size=n - half)]).tolist()


def _vector_stream(rng: np.random.Generator, n: int) -> Sequence[Any]:
    half = n // 2
    a = rng.normal([1.0, 0.0, 0.0, 0.0], 0.2, size=(half, 4))
    b = rng.normal([0.0, 1.0, 0.0, 0.0], 0.2, size=(n - half, 4))
    return [row.tolist() for row in np.concatenate([a, b])]


_WORDS = [f"w{i}" for i in range(200)]


def _text_stream(rng: np.random.Generator, n: int) -> Sequence[Any]:
    half = n // 2
    out = []
    for i in range(n):
        if i >= half and rng.random() < 0.7:
            out.append(
                ["I can't answer that.", "I CAN'T answer that.", "I can't answer that!"][i % 3]
            )
        else:
            out.append(" ".join(rng.choice(_WORDS, size=int(rng.integers(1, 10)))))
    return out


CASES: dict[str, ContractCase] = {
    "entropy": ContractCase(
        factory=lambda: EntropyTracker(window_size=20, reference_size=40, k=3.0),
        stream=_categorical_stream,
        invalid=[
            ({"window_size": 1}, "window_size"),
            ({"reference_size": 0}, "reference_size"),
            ({"k": 0.0}, "k"),
            ({"k": float("nan")}, "k"),
            ({"direction": "sideways"}, "direction"),
        ],
    ),
    "token_entropy": ContractCase(
        factory=lambda: TokenEntropy(reference_size=20, h=4.0),
        stream=_logprob_stream,
        invalid=[
            ({"reference_size": 1}, "reference_size"),
            ({"h": -1.0}, "h"),
            ({"allowance": -0.1}, "allowance"),
            ({"direction": "down"}, "direction"),
            ({"min_std": 0.0}, "min_std"),
        ],
    ),
    "categorical_drift": ContractCase(
        factory=lambda: CategoricalDrift(
            window_size=20, reference_size=40, max_categories=3, alpha=1e-3
        ),
        stream=_categorical_stream,
        invalid=[
            ({"window_size": 1}, "window_size"),
            ({"alpha": 1.0}, "alpha"),
            ({"alpha": 0.0}, "alpha"),
            ({"max_categories": 0}, "max_categories"),
            ({"reference": {"a": -1.0}}, "reference"),
            ({"reference": {"a": 0.0}}, "reference"),
            ({"min_expected": 0.0}, "min_expected"),
        ],
    ),
    "categorical_sr": ContractCase(
        factory=lambda: CategoricalSR(
            reference_size=40,
            arl0=200.0,
            concentration=20.0,
            stride=3,
            max_starts=6,
            max_categories=3,
        ),
        stream=_categorical_stream,
        invalid=[
            ({"reference_size": 0}, "reference_size"),
            ({"arl0": 1.0}, "arl0"),
            ({"arl0": -5.0}, "arl0"),
            ({"concentration": 0.0}, "concentration"),
            ({"stride": 0}, "stride"),
            ({"max_starts": 0}, "max_starts"),
            ({"max_categories": 0}, "max_categories"),
        ],
    ),
    "rolling_threshold": ContractCase(
        factory=lambda: RollingThreshold(window_size=10, reference_size=30, k=3.0, patience=2),
        stream=_numeric_stream,
        invalid=[
            ({"window_size": 1}, "window_size"),
            ({"k": 0}, "k"),
            ({"aggregate": "median"}, "aggregate"),
            ({"quantile": 1.0}, "quantile"),
            ({"patience": 0}, "patience"),
            ({"check_every": 0}, "check_every"),
            ({"tolerance": -1.0}, "tolerance"),
            ({"direction": "up"}, "direction"),
        ],
    ),
    "embedding_drift": ContractCase(
        factory=lambda: EmbeddingDrift(
            window_size=8, n_blocks=2, reference_size=16, max_distance=0.05
        ),
        stream=_vector_stream,
        invalid=[
            ({"window_size": 10, "n_blocks": 3}, "window_size"),
            ({"n_blocks": 0}, "n_blocks"),
            ({"max_distance": 0.0}, "max_distance"),
            ({"max_distance": 3.0}, "max_distance"),
            ({"dim": 0}, "dim"),
            ({"baseline": [1.0, float("nan")]}, "baseline"),
            ({"baseline": [1.0, 0.0], "dim": 3}, "baseline"),
            ({"normalize": "yes"}, "normalize"),
        ],
    ),
    "output_diversity": ContractCase(
        factory=lambda: OutputDiversity(window_size=10, max_duplicate_rate=0.3),
        stream=_text_stream,
        invalid=[
            ({"window_size": 1}, "window_size"),
            ({"max_duplicate_rate": 1.5}, "max_duplicate_rate"),
            ({"similarity": 0.0}, "similarity"),
            ({"shingle_size": 0}, "shingle_size"),
            ({"num_perm": 60, "bands": 16}, "num_perm"),
            ({"bands": 0}, "bands"),
            ({"max_tokens": 0}, "max_tokens"),
            ({"min_z": -1.0}, "min_z"),
            ({"dispersion": 1}, "dispersion"),
        ],
    ),
}
