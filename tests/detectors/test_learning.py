"""``detectors.learning``: a quiet period held as values is the detector it stands for."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import detectors
from detectors import REGISTRY, CategoricalSR, DriftDetector, KSWindow, StateError
from detectors.learning import Learning, LearningPlan
from tests.detectors.test_contract import CASES, same_float

QUIET = sorted(name for name, case in CASES.items() if case.factory().quiet_period > 0)
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def test_the_default_sets_detectors_promise_a_quiet_period() -> None:
    assert {"ks_window", "rolling_threshold", "categorical_drift", "categorical_sr", "entropy"} <= (
        set(QUIET)
    )


class Holder:
    """What a key is to a ``Learning``: something with a ``detector``."""

    def __init__(self, detector: DriftDetector[Any]) -> None:
        self.detector = detector


def _feed(detector: DriftDetector[Any], chunk: list[Any], as_column: bool) -> list[int] | None:
    """``chunk`` as the engine feeds it: a column through ``update_many`` (None if a
    value was refused: the caller goes one by one from a copy), else one by one,
    skipping refused values."""
    if as_column:
        try:
            return detector.update_many(chunk)
        except (TypeError, ValueError):
            return None
    hits = []
    for i, x in enumerate(chunk):
        try:
            detector.update(x)
        except (TypeError, ValueError):
            continue
        if detector.drift_detected:
            hits.append(i)
    return hits


@pytest.mark.parametrize("name", QUIET)
class TestLearningIsTheDetector:
    @PROPERTY
    @given(data=st.data())
    def test_same_findings_state_and_evidence_in_any_chunks(self, name: str, data: Any) -> None:
        case = CASES[name]
        prototype = case.factory()
        seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
        n = data.draw(st.integers(0, 3 * prototype.quiet_period + 50), label="n")
        stream = list(case.stream(np.random.default_rng(seed), n))
        bad = data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=3), label="refused at")
        for i in bad:  # values update refuses, mid-stream
            if i < len(stream):
                stream[i] = math.nan if prototype.input_kind == "numeric" else None
        holder = Holder(Learning(LearningPlan(prototype)))
        holder.detector.holder = holder  # type: ignore[attr-defined]
        eager = prototype.fresh_copy()
        at = 0
        while at < len(stream):
            size = data.draw(st.sampled_from([1, 2, 7, 64, 500]), label="chunk")
            chunk, at = stream[at : at + size], at + size
            as_column = data.draw(st.booleans(), label="column")
            saved = holder.detector.to_state()
            hits = _feed(holder.detector, chunk, as_column)
            if hits is None:  # what feed_column does: put back, then one by one
                learning = holder.detector
                if not (type(learning) is Learning and learning.real is None):
                    holder.detector = detectors.get(name).from_state(saved)
                hits = _feed(holder.detector, chunk, False)
            assert hits == _feed(eager, chunk, False)
            got = holder.detector
            assert got.to_state() == eager.to_state()
            assert (got.drift_detected, got.warning_detected) == (
                eager.drift_detected,
                eager.warning_detected,
            )
            assert same_float(got.statistic, eager.statistic)
            assert same_float(got.threshold, eager.threshold)
            assert got.p_value == eager.p_value or same_float(got.p_value, eager.p_value)  # type: ignore[arg-type]
        if len(stream) - len([i for i in set(bad) if i < len(stream)]) >= prototype.quiet_period:
            assert type(holder.detector) is type(prototype), "ripe: the key holds the detector"

    def test_snapshot_restores_as_the_detector_and_does_not_ripen(self, name: str) -> None:
        case = CASES[name]
        prototype = case.factory()
        learning = Learning(LearningPlan(prototype))
        stream = list(case.stream(np.random.default_rng(3), prototype.quiet_period - 1))
        assert learning.update_many(stream) == []
        snapshot = learning.to_state()
        assert learning.real is None and learning.room == 1
        restored = REGISTRY[name].from_state(snapshot)
        eager = prototype.fresh_copy()
        eager.update_many(stream)
        assert restored.to_state() == eager.to_state() == snapshot
        assert learning.name == name
        with pytest.raises(StateError):
            learning._set_state(snapshot["state"])

    def test_a_refused_value_in_a_column_takes_none(self, name: str) -> None:
        case = CASES[name]
        prototype = case.factory()
        learning = Learning(LearningPlan(prototype))
        good = list(case.stream(np.random.default_rng(4), 5))
        bad = math.nan if prototype.input_kind == "numeric" else None
        with pytest.raises((TypeError, ValueError)):
            learning.update_many([*good, bad])
        assert learning.room == prototype.quiet_period
        with pytest.raises((TypeError, ValueError)):
            learning.update(bad)
        assert learning.room == prototype.quiet_period

    def test_reset_and_copies_start_quiet_again(self, name: str) -> None:
        case = CASES[name]
        prototype = case.factory()
        learning = Learning(LearningPlan(prototype))
        learning.update_many(
            list(case.stream(np.random.default_rng(5), 3 * prototype.quiet_period))
        )
        assert learning.real is not None
        learning.reset()
        assert learning.real is None and learning.to_state() == prototype.to_state()
        assert learning.fresh_copy().to_state() == learning.clone().to_state()


def test_a_plan_needs_a_quiet_period() -> None:
    with pytest.raises(ValueError, match="quiet period"):
        LearningPlan(KSWindow(window_size=20, baseline=[0.0] * 50))


def test_categories_beyond_the_plans_table_ripen_the_key(monkeypatch: Any) -> None:
    """A key whose next category the shared table cannot number is made real at once
    (always exact), so high-cardinality values cannot grow the table for ever."""
    import detectors.learning as learning_module

    monkeypatch.setattr(learning_module, "MAX_CODES", 3)
    prototype = CategoricalSR(reference_size=100)
    plan = LearningPlan(prototype)
    first, second = Learning(plan), Learning(plan)
    first.update_many(["a", "b", "c", "a"])
    assert first.real is None and len(plan.names) == 3
    hits = second.update_many(["a", "d", "b"])  # "d" needs a fourth code
    assert hits == [] and second.real is not None and len(plan.names) == 3
    eager = prototype.fresh_copy()
    eager.update_many(["a", "d", "b"])
    assert second.to_state() == eager.to_state()
    first.update("e")
    assert first.real is not None
    eager = prototype.fresh_copy()
    eager.update_many(["a", "b", "c", "a", "e"])
    assert first.to_state() == eager.to_state()


@pytest.mark.parametrize("name", [n for n in QUIET if REGISTRY[n].input_kind == "numeric"])
def test_numeric_columns_are_taken_as_update_takes_each_value(name: str) -> None:
    """Plain numbers go in bulk (numpy converts them as ``float`` does); a column
    with anything else is admitted value by value: the same values either way."""
    prototype = CASES[name].factory()
    columns: list[list[Any]] = [
        [0.5, 1, True, np.float64(2.5), np.int64(-3), 2**63],
        ["1.5", 0.25, b"2"],
        [False, 7, 1e300, -1e-300],
    ]
    learning, eager = Learning(LearningPlan(prototype)), prototype.fresh_copy()
    for column in columns:
        assert learning.update_many(column) == []
        for x in column:
            eager.update(x)
        assert learning.to_state() == eager.to_state()
