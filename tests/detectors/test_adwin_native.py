"""The compiled ADWIN engine against the pure-Python reference.

``ADWIN`` runs on ``detectors._adwin_core`` (C) when it is built, ``PythonADWIN``
always on ``detectors._adwin_reference``. They must agree bit for bit: detection
indices, window statistics and snapshots (compared as JSON text, so -0.0 and the
last bit of every float count), and a snapshot of either must restore in the other.
"""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import ADWIN, StateError
from detectors.adwin import NATIVE, PythonADWIN
from tests.detectors.strategies import stream_strategy
from tests.detectors.test_river_conformance import ADWIN_PARAMS, NUMERIC

Factory = Callable[..., Any]

needs_native = pytest.mark.skipif(not NATIVE, reason="detectors._adwin_core is not built")

PARAMS = st.fixed_dictionaries(
    {
        "delta": st.sampled_from([0.5, 0.1, 0.002, 1e-5]),
        "clock": st.sampled_from([1, 2, 3, 32]),
        "max_buckets": st.integers(1, 6),
        "min_window_length": st.integers(1, 6),
        "grace_period": st.integers(0, 20),
    }
)
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def text(state: Any) -> str:
    return json.dumps(state, allow_nan=False)


def window(detector: Any) -> tuple[int, str, str, str]:
    """Window statistics, floats as hex (bit-exact, -0.0 included)."""
    return (
        detector.width,
        float(detector.total).hex(),
        float(detector.variance).hex(),
        float(detector.estimation).hex(),
    )


def trace(detector: Any, values: Sequence[float], every: int = 1) -> list[Any]:
    """What ``update`` shows: detections, and the window every ``every`` values."""
    out: list[Any] = []
    for i, x in enumerate(values):
        assert detector.update(x) is detector
        if detector.drift_detected:
            out.append(("drift", i))
        if i % every == 0 or detector.drift_detected:
            out.append(window(detector))
    return out


def assert_same(values: Sequence[float], params: dict[str, Any], every: int = 1) -> None:
    native, python = ADWIN(**params), PythonADWIN(**params)
    assert trace(native, values, every) == trace(python, values, every), params
    assert text(native.to_state()) == text(python.to_state())
    batch_n, batch_p = ADWIN(**params), PythonADWIN(**params)
    assert batch_n.update_many(values) == batch_p.update_many(values)
    assert text(batch_n.to_state()) == text(batch_p.to_state()) == text(native.to_state())
    assert batch_n.drift_detected == batch_p.drift_detected


def awkward_streams(seed: int) -> list[np.ndarray]:
    """Heavy tails, large integers, binary errors: frequent cuts and big magnitudes."""
    rng = np.random.default_rng(seed)
    n = 3000
    return [
        rng.standard_cauchy(n),
        np.round(rng.normal(size=n) * 3) * 1e6,
        (rng.random(n) < np.where(np.arange(n) % 700 < 350, 0.2, 0.6)).astype(float),
        rng.normal(size=n) * 1e-200 + np.repeat([0.0, 1e-199], n // 2),
    ]


def test_native_core_is_built() -> None:
    """CI proves that the compiled engine is what ships (override for a machine
    without a compiler: DRIFTLINE_ALLOW_PURE_PYTHON=1)."""
    if os.environ.get("DRIFTLINE_ALLOW_PURE_PYTHON") == "1":
        pytest.skip("DRIFTLINE_ALLOW_PURE_PYTHON=1: the pure-Python engine is accepted")
    try:
        import detectors._adwin_core  # noqa: F401
    except ImportError as exc:
        pytest.fail(
            f"detectors._adwin_core is not built ({exc}); reinstall with a C compiler "
            '(pip install -e ".[dev]") or set DRIFTLINE_ALLOW_PURE_PYTHON=1'
        )
    assert NATIVE
    assert type(ADWIN.update).__name__ == "method_descriptor"  # one C call per update


@needs_native
class TestSameAsReference:
    @pytest.mark.parametrize("params", ADWIN_PARAMS)
    @pytest.mark.parametrize("make", NUMERIC, ids=lambda f: f.__name__)
    def test_conformance_streams(
        self, make: Callable[[np.random.Generator], np.ndarray], params: dict[str, Any]
    ) -> None:
        for seed in (0, 1, 2):
            assert_same(make(np.random.default_rng(seed)).tolist(), params, every=7)

    @pytest.mark.parametrize("seed", [0, 1])
    def test_awkward_streams_and_settings(self, seed: int) -> None:
        rng = np.random.default_rng(100 + seed)
        for values in awkward_streams(seed):
            for _ in range(3):
                params = {
                    "delta": float(rng.choice([0.5, 0.1, 0.01, 0.002])),
                    "clock": int(rng.choice([1, 2, 5, 32])),
                    "max_buckets": int(rng.integers(1, 8)),
                    "min_window_length": int(rng.integers(1, 12)),
                    "grace_period": int(rng.integers(0, 50)),
                }
                assert_same(values.tolist(), params, every=13)

    def test_max_buckets_1_after_cuts(self) -> None:
        """The deliberate difference from river (empty levels after a cut)."""
        rng = np.random.default_rng(4)
        values = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0.8, 1, 3000)]).tolist()
        params = {"clock": 7, "max_buckets": 1, "min_window_length": 1, "grace_period": 0}
        assert_same(values, params, every=5)

    def test_long_stream_many_levels(self) -> None:
        values = np.random.default_rng(5).normal(size=300_000)
        native, python = ADWIN(), PythonADWIN()
        assert native.update_many(values) == python.update_many(values) == []
        assert text(native.to_state()) == text(python.to_state())
        assert native.width == 300_000

    @PROPERTY
    @given(stream=stream_strategy("numeric"), params=PARAMS)
    def test_random_streams(self, stream: list[float], params: dict[str, Any]) -> None:
        assert_same(stream, params)

    @PROPERTY
    @given(
        seed=st.integers(0, 2**32 - 1),
        n=st.integers(0, 2000),
        shift=st.sampled_from([0.5, 2.0, 10.0]),
        params=PARAMS,
    )
    def test_random_drifting_streams(
        self, seed: int, n: int, shift: float, params: dict[str, Any]
    ) -> None:
        rng = np.random.default_rng(seed)
        values = rng.normal(size=n) + shift * (np.arange(n) // max(1, n // 4) % 2)
        assert_same(values.tolist(), params, every=11)


@needs_native
class TestCrossRestore:
    @PROPERTY
    @given(
        seed=st.integers(0, 2**32 - 1),
        cuts=st.lists(st.integers(0, 1500), min_size=1, max_size=4),
        batch=st.booleans(),
        params=PARAMS,
    )
    def test_alternating_engines(
        self, seed: int, cuts: list[int], batch: bool, params: dict[str, Any]
    ) -> None:
        """Snapshot, restore in the other engine (through JSON), continue: the same
        detections and final snapshot as either engine uninterrupted."""
        rng = np.random.default_rng(seed)
        values = (rng.normal(size=1500) + 3.0 * (np.arange(1500) // 400 % 2)).tolist()
        whole = ADWIN(**params)
        expected = [i for i, x in enumerate(values) if whole.update(x).drift_detected]
        engines: list[Factory] = [ADWIN, PythonADWIN]
        detector: Any = engines[0](**params)
        hits: list[int] = []
        start = 0
        for k, cut in enumerate([*sorted(cuts), len(values)]):
            part = values[start:cut]
            if batch:
                hits += [start + i for i in detector.update_many(part)]
            else:
                hits += [start + i for i, x in enumerate(part) if detector.update(x).drift_detected]
            snapshot = json.loads(json.dumps(detector.to_state()))
            other = engines[(k + 1) % 2]
            restored = other.from_state(snapshot)
            assert text(restored.to_state()) == text(detector.to_state())
            assert window(restored) == window(detector)
            assert restored.drift_detected == detector.drift_detected
            detector, start = restored, max(start, cut)
        assert hits == expected
        assert text(detector.to_state()) == text(whole.to_state())

    @pytest.mark.parametrize(("first", "second"), [(ADWIN, PythonADWIN), (PythonADWIN, ADWIN)])
    def test_restore_right_after_a_detection(self, first: Factory, second: Factory) -> None:
        values = [0.0] * 300 + [5.0] * 300
        detector = first(clock=1, grace_period=0)
        i = next(i for i, x in enumerate(values) if detector.update(x).drift_detected)
        restored = second.from_state(json.loads(json.dumps(detector.to_state())))
        assert restored.drift_detected and restored.width == detector.width
        rest = values[i + 1 :]
        assert restored.update_many(rest) == detector.update_many(rest)
        assert text(restored.to_state()) == text(detector.to_state())


@needs_native
class TestNativeInterface:
    @pytest.mark.parametrize(
        "x",
        [1, True, np.float32(0.1), np.float64(2.5), np.int64(3), "1.5", 2**80],
        ids=repr,
    )
    def test_accepts_what_float_accepts(self, x: Any) -> None:
        native, python = ADWIN(clock=1), PythonADWIN(clock=1)
        native.update(x)
        python.update(x)
        assert text(native.to_state()) == text(python.to_state())

    @pytest.mark.parametrize(
        "x", [math.nan, -math.inf, "nan", "abc", None, [1.0], 10**400], ids=repr
    )
    def test_refuses_what_the_reference_refuses(self, x: Any) -> None:
        errors = []
        for make in (ADWIN, PythonADWIN):
            detector = make()
            detector.update(1.0)
            with pytest.raises((TypeError, ValueError, OverflowError)) as info:
                detector.update(x)
            errors.append((type(info.value), str(info.value)))
            assert detector.width == 1
        assert errors[0] == errors[1]
        if isinstance(x, float):
            assert errors[0][1].startswith("x must be a finite number")

    def test_update_array_needs_float64(self) -> None:
        adwin = ADWIN()
        with pytest.raises(TypeError):
            adwin._update_array(np.arange(5))  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            adwin._update_array(b"12345678")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="finite"):
            adwin._update_array(np.array([1.0, math.nan]))
        assert adwin.width == 0
        assert adwin.update_many(np.arange(10.0)[::2]) == []  # strided input is copied
        assert adwin.update_many(range(5)) == []
        assert adwin.width == 10

    def test_hyperparameters_are_read_only(self) -> None:
        for make in (ADWIN, PythonADWIN):
            adwin = make(clock=3)
            with pytest.raises(AttributeError):
                adwin.clock = 1
            assert adwin.clock == 3 and adwin.to_state()["params"]["clock"] == 3

    def test_huge_integer_hyperparameters(self) -> None:
        """Beyond 64 bits the engine clamps (no window gets that long); the
        parameters keep their values."""
        params = {"clock": 10**30, "max_buckets": 10**30, "grace_period": 10**30}
        values = np.random.default_rng(1).normal(size=500).tolist()
        native, python = ADWIN(**params), PythonADWIN(**params)
        assert trace(native, values, 50) == trace(python, values, 50)
        assert text(native.to_state()) == text(python.to_state())
        assert native.to_state()["params"]["clock"] == 10**30

    @pytest.mark.parametrize("make", [ADWIN, PythonADWIN])
    def test_copy_and_pickle_carry_the_window(self, make: Factory) -> None:
        values = np.random.default_rng(2).normal(size=700)
        adwin = make(delta=0.1)
        adwin.update_many(values)
        for clone in (
            copy.copy(adwin),
            copy.deepcopy(adwin),
            pickle.loads(pickle.dumps(adwin)),
        ):
            assert type(clone) is make
            assert text(clone.to_state()) == text(adwin.to_state())
            assert clone.update_many(values) == make.from_state(adwin.to_state()).update_many(
                values
            )

    def test_tampered_snapshots_change_nothing(self) -> None:
        adwin = ADWIN()
        adwin.update_many(np.arange(100.0))
        good = adwin.to_state()
        before = text(good)
        state = good["state"]
        bad_states: list[dict[str, Any]] = [
            {**state, "bucket_totals": [[1.0]] * 65, "bucket_variances": [[0.0]] * 65},
            {**state, "bucket_totals": "x"},
            {**state, "bucket_variances": [[0.0]] * len(state["bucket_totals"])},
            {**state, "tick": 2**70},
            {**state, "width": -1},
            {**state, "drift_detected": 1},
            {k: v for k, v in state.items() if k != "variance"},
        ]
        for bad in bad_states:
            with pytest.raises(StateError):
                ADWIN.from_state({**good, "state": bad})
            with pytest.raises((KeyError, TypeError, ValueError)):
                adwin._import_state(bad)
            assert text(adwin.to_state()) == before

    @PROPERTY
    @given(data=st.data())
    def test_fuzzed_snapshots_restore_alike(self, data: Any) -> None:
        """Random edits of a snapshot: both engines refuse it, or both restore it
        and then behave the same."""
        adwin = PythonADWIN(clock=2, max_buckets=2, min_window_length=1, grace_period=0)
        n = data.draw(st.integers(0, 300))
        adwin.update_many(np.random.default_rng(n).normal(size=n) + np.repeat([0, 4], n)[:n])
        state = adwin.to_state()["state"]
        number = st.one_of(st.integers(-3, 400), st.floats(-1e6, 1e6), st.booleans())
        level = st.lists(st.floats(-1e6, 1e6), max_size=4)
        key = data.draw(st.sampled_from(sorted(state)))
        value = data.draw(
            st.one_of(number, st.lists(level, max_size=10), st.none(), st.just(state[key]))
        )
        snapshot = {**adwin.to_state(), "state": {**state, key: value}}
        outcomes = []
        for make in (ADWIN, PythonADWIN):
            try:
                restored = make.from_state(snapshot)
            except StateError:
                outcomes.append("refused")
                continue
            hits = restored.update_many(np.linspace(-5, 5, 50))
            outcomes.append(text([hits, restored.to_state()]))
        assert outcomes[0] == outcomes[1]
