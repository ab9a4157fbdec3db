"""The shared detector contract, run over every detector in ``detectors.REGISTRY``.

Each registered detector needs a ``ContractCase`` in ``tests/detectors/cases_*.py``
(numeric detectors: ``cases_numeric``; distribution detectors:
``cases_distribution``, loaded only if present). A detector without one fails here.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import detectors
from detectors import REGISTRY, DriftDetector, StateError
from tests.detectors.contract import ContractCase
from tests.detectors.strategies import stream_strategy


def _load_cases() -> dict[str, ContractCase]:
    cases: dict[str, ContractCase] = {}
    for module_name in ("tests.detectors.cases_numeric", "tests.detectors.cases_distribution"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for name, case in module.CASES.items():
            assert name not in cases, f"two ContractCases for {name!r}"
            cases[name] = case
    return cases


CASES = _load_cases()
NAMES = sorted(REGISTRY)
STREAM_LEN = 400
PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)


def case_for(name: str) -> ContractCase:
    if name not in CASES:
        pytest.fail(f"registered detector {name!r} has no ContractCase in tests/detectors/cases_*")
    return CASES[name]


def run(detector: DriftDetector[Any], stream: Sequence[Any]) -> list[int]:
    hits = []
    for i, x in enumerate(stream):
        assert detector.update(x) is detector
        if detector.drift_detected:
            hits.append(i)
    return hits


def case_stream(name: str, seed: int, n: int = STREAM_LEN) -> Sequence[Any]:
    return case_for(name).stream(np.random.default_rng(seed), n)


def roundtrip(detector: DriftDetector[Any]) -> DriftDetector[Any]:
    snapshot = json.loads(json.dumps(detector.to_state(), allow_nan=False))
    return type(detector).from_state(snapshot)


def same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_plain_json(value: Any, path: str = "state") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path} has a non-string key {key!r}"
            assert_plain_json(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_plain_json(item, f"{path}[{i}]")
    elif isinstance(value, float):
        assert type(value) is float, f"{path} is a {type(value).__name__}, not a float"
        assert math.isfinite(value), f"{path} is not finite: {value!r}"
    else:
        assert value is None or type(value) in (str, int, bool), (
            f"{path} has a non-JSON value of type {type(value).__name__}"
        )


def test_registry_is_exported() -> None:
    for name in ("ADWIN", "PageHinkley", "KSWindow", "CUSUM", "EWMA", "DDM", "HDDM_A"):
        cls = getattr(detectors, name)
        assert REGISTRY[cls.name] is cls
        assert name in detectors.__all__


@pytest.mark.parametrize("name", NAMES)
class TestContract:
    def test_has_case(self, name: str) -> None:
        case_for(name)

    def test_class_attributes(self, name: str) -> None:
        cls = REGISTRY[name]
        assert cls.name == name
        assert cls.input_kind in ("numeric", "binary", "categorical", "text", "vector", "logprobs")
        if cls.threshold_param is not None:
            detector = case_for(name).factory()
            assert cls.threshold_param in detector.to_state()["params"]
            assert isinstance(detector.threshold, float)
        assert isinstance(cls.column_path, bool)
        assert isinstance(cls.column_min, int) and cls.column_min >= 0
        if cls.update_many is not DriftDetector.update_many:  # a batch path of its own
            assert cls.column_path, f"{name} has a batch path the engine never uses"

    def test_case_stream_fires(self, name: str) -> None:
        case = case_for(name)
        assert run(case.factory(), case_stream(name, 0)), "the case stream must cause a detection"

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_snapshot_roundtrip_mid_stream(self, name: str, seed: int) -> None:
        case = case_for(name)
        stream = case_stream(name, seed)
        whole = case.factory()
        expected = run(whole, stream)
        for cut in (1, len(stream) // 3, len(stream) // 2, len(stream) - 1):
            first = case.factory()
            hits = run(first, stream[:cut])
            restored = roundtrip(first)
            assert restored.to_state() == first.to_state()
            hits += [cut + i for i in run(restored, stream[cut:])]
            assert hits == expected, f"snapshot at {cut} changed the detections"
            assert restored.to_state() == whole.to_state()

    @pytest.mark.parametrize("seed", [0, 1])
    def test_snapshot_is_plain_json(self, name: str, seed: int) -> None:
        case = case_for(name)
        stream = case_stream(name, seed)
        detector = case.factory()
        points = {0, 1, len(stream) // 2, len(stream)}
        for i, x in enumerate([None, *stream]):
            if x is not None:
                detector.update(x)
            if i in points or detector.drift_detected:
                state = detector.to_state()
                assert_plain_json(state)
                text = json.dumps(state, allow_nan=False)
                assert json.loads(text) == state
                assert state["detector"] == name
                assert isinstance(state["version"], int)

    def test_reset_equals_fresh(self, name: str) -> None:
        case = case_for(name)
        stream = case_stream(name, 3)
        used = case.factory()
        run(used, stream)
        used.reset()
        assert not used.drift_detected
        fresh = case.factory()
        assert used.to_state() == fresh.to_state()
        assert run(used, stream) == run(fresh, stream)
        assert used.to_state() == fresh.to_state()

    def test_deterministic(self, name: str) -> None:
        case = case_for(name)
        stream = case_stream(name, 4)
        a, b = case.factory(), case.factory()
        assert run(a, stream) == run(b, stream)
        assert a.to_state() == b.to_state()
        c = case.factory()
        assert c.update_many(iter(stream)) == run(case.factory(), stream)

    def test_clone_and_params(self, name: str) -> None:
        detector = case_for(name).factory()
        params = detector.to_state()["params"]
        assert detector.clone().to_state()["params"] == params
        assert type(detector)(**params).to_state() == detector.clone().to_state()

    def test_fresh_copies_of_a_prototype_are_independent_fresh_detectors(self, name: str) -> None:
        """``fresh_copy`` (the engine builds keys from one prototype per monitor): each
        copy behaves and snapshots as a detector built by ``__init__``, whatever its
        sibling copies were fed, and the prototype stays fresh."""
        case = case_for(name)
        prototype = case.factory()
        fresh_state = prototype.to_state()
        copies = [prototype.fresh_copy() for _ in range(3)]
        assert all(type(c) is type(prototype) for c in copies)
        assert [c.to_state() for c in copies] == [fresh_state] * 3
        streams = [case_stream(name, 10 + k) for k in range(len(copies))]
        hits: list[list[int]] = [[] for _ in copies]
        for lo, hi in ((0, STREAM_LEN // 2), (STREAM_LEN // 2, STREAM_LEN)):
            for k, copy in enumerate(copies):  # in turns: state shared between copies shows
                hits[k] += [lo + i for i in run(copy, streams[k][lo:hi])]
        for k, copy in enumerate(copies):
            built = case.factory()
            assert hits[k] == run(built, streams[k])
            assert copy.to_state() == built.to_state()
        assert prototype.to_state() == fresh_state
        assert run(prototype.fresh_copy(), case_stream(name, 0)) == run(
            case.factory(), case_stream(name, 0)
        )

    def test_invalid_hyperparameters(self, name: str) -> None:
        case = case_for(name)
        cls = type(case.factory())
        assert case.invalid, "list at least one invalid hyperparameter setting"
        for kwargs, param in case.invalid:
            with pytest.raises(ValueError, match=param):
                cls(**kwargs)

    def test_non_finite_input(self, name: str) -> None:
        case = case_for(name)
        kind = REGISTRY[name].input_kind
        sample = case_stream(name, 5, 8)
        bad: list[Any]
        if kind in ("numeric", "binary"):
            bad = [math.nan, math.inf, -math.inf]
        elif kind == "vector":
            dim = len(sample[0])
            bad = [[math.nan] * dim, [math.inf] + [0.0] * (dim - 1)]
        elif kind == "logprobs":
            bad = [[-0.5, math.nan], [math.nan]]
        else:
            pytest.skip(f"{kind} input has no non-finite values")
        for value in bad:
            detector = case.factory()
            run(detector, sample)
            with pytest.raises(ValueError):
                detector.update(value)
            with pytest.raises(ValueError):
                case.factory().update_many([*sample, value])

    def test_from_state_validates(self, name: str) -> None:
        case = case_for(name)
        detector = case.factory()
        run(detector, case_stream(name, 6, 50))
        snapshot = detector.to_state()
        with pytest.raises(StateError):
            type(detector).from_state({**snapshot, "detector": "not-" + name})
        with pytest.raises(StateError):
            type(detector).from_state({**snapshot, "version": snapshot["version"] + 100})
        with pytest.raises(StateError):
            type(detector).from_state({**snapshot, "state": {}})
        with pytest.raises(StateError):
            type(detector).from_state({**snapshot, "params": None})

    @PROPERTY
    @given(data=st.data())
    def test_update_many_equals_update_on_random_streams(self, name: str, data: Any) -> None:
        case = case_for(name)
        stream = data.draw(stream_strategy(REGISTRY[name].input_kind), label="stream")
        self._check_batch(case, stream, data)

    @PROPERTY
    @given(data=st.data())
    def test_update_many_equals_update_on_drifting_streams(self, name: str, data: Any) -> None:
        case = case_for(name)
        seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
        n = data.draw(st.integers(0, STREAM_LEN), label="n")
        self._check_batch(case, case.stream(np.random.default_rng(seed), n), data)

    @staticmethod
    def _check_batch(case: ContractCase, stream: Sequence[Any], data: Any) -> None:
        sequential = case.factory()
        expected = run(sequential, stream)
        batch = case.factory()
        assert batch.update_many(stream) == expected
        assert batch.to_state() == sequential.to_state()
        assert batch.drift_detected == sequential.drift_detected
        # in pieces, with a snapshot between them
        cut = data.draw(st.integers(0, len(stream)), label="cut")
        pieces = case.factory()
        hits = pieces.update_many(stream[:cut])
        pieces = roundtrip(pieces)
        hits += [cut + i for i in pieces.update_many(stream[cut:])]
        assert hits == expected
        assert pieces.to_state() == sequential.to_state()

    @PROPERTY
    @given(data=st.data())
    def test_quiet_period_reports_nothing(self, name: str, data: Any) -> None:
        """Over a promised ``quiet_period`` neither flag is set, the statistic is NaN,
        the p-value None and the threshold a fresh detector's, whatever the values
        (what lets ``detectors.learning.Learning`` hold them)."""
        case = case_for(name)
        detector = case.factory()
        quiet = detector.quiet_period
        if quiet == 0:
            return
        fresh_threshold = detector.threshold
        seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
        drawn = data.draw(stream_strategy(REGISTRY[name].input_kind), label="stream")
        stream = [*drawn, *case.stream(np.random.default_rng(seed), quiet)][:quiet]
        for x in stream:
            detector.update(x)
            assert not detector.drift_detected and not detector.warning_detected
            assert math.isnan(detector.statistic)
            assert detector.p_value is None
            assert same_float(detector.threshold, fresh_threshold)

    def test_admit_refuses_what_update_refuses(self, name: str) -> None:
        """``admit`` raises the error ``update`` raises, and feeding what it admits
        changes the detector as feeding the value does."""
        case = case_for(name)
        if case.factory().quiet_period == 0:
            return
        sample = list(case_stream(name, 7, 20))
        odd: list[Any] = [math.nan, math.inf, -math.inf, None, "x", "1.5", "", b"a", [1.0], {}]
        odd += [True, False, 3, 2.0, 1.5, -0.0, 10**400, np.float64(1.0), np.int64(2)]
        for value in [*sample, *odd]:
            fed, admitted = case.factory(), case.factory()
            try:
                fed.update(value)
            except Exception as exc:  # OverflowError too (float(10**400))
                with pytest.raises(type(exc)):
                    admitted.admit(value)
                continue
            admitted.update(admitted.admit(value))
            assert admitted.to_state() == fed.to_state(), value
