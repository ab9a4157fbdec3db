"""KSWindow: exact statistic, Kolmogorov p-values, test schedule, references."""

from __future__ import annotations

import base64
import gc
import json
import math
import tracemalloc
import zlib
from collections import deque
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from detectors import KSWindow, StateError
from detectors._parse import get_packed_floats
from detectors.ks_window import kolmogorov_sf

FIXTURES = Path(__file__).parent / "fixtures"

small_values = st.lists(
    st.one_of(st.integers(-3, 3).map(float), st.floats(-5, 5)), min_size=1, max_size=40
)


def brute_force(values: list[float], alpha: float, n: int, m: int, mode: str) -> list[int]:
    """Recompute the KS test from scratch with scipy at every observation."""
    ref: deque[float] = deque()
    win: deque[float] = deque()
    out = []
    for i, x in enumerate(values):
        if mode == "fixed":
            if len(ref) < m:
                ref.append(x)
                continue
            win.append(x)
            if len(win) > n:
                win.popleft()
        else:
            win.append(x)
            if len(win) > n:
                ref.append(win.popleft())
                if len(ref) > m:
                    ref.popleft()
        if len(win) == n and len(ref) == m:
            d = stats.ks_2samp(list(ref), list(win)).statistic
            if special.kolmogorov(math.sqrt(m * n / (m + n)) * d) <= alpha:
                out.append(i)
                win.clear()
                ref.clear()
    return out


class TestKSWindow:
    @pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")
    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(reference=small_values, window=small_values)
    def test_statistic_is_exact(self, reference: list[float], window: list[float]) -> None:
        ks = KSWindow(window_size=len(window), baseline=reference)
        for x in window:
            ks.update(x)
        expected = stats.ks_2samp(reference, window).statistic
        assert ks.statistic == pytest.approx(expected, abs=1e-12)
        en = len(reference) * len(window) / (len(reference) + len(window))
        assert ks.p_value == pytest.approx(special.kolmogorov(math.sqrt(en) * expected), abs=1e-12)

    @pytest.mark.parametrize("x", [0.0, 0.05, 0.3, 0.7, 0.99, 1.0, 1.01, 1.5, 2.5, 4.0, 8.0])
    def test_kolmogorov_sf(self, x: float) -> None:
        assert kolmogorov_sf(x) == pytest.approx(special.kolmogorov(x), abs=1e-14)

    @pytest.mark.parametrize("mode", ["fixed", "sliding"])
    @pytest.mark.parametrize("seed", [0, 1])
    def test_detections_equal_a_from_scratch_scipy_test(self, mode: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        values = np.round(
            np.concatenate([rng.normal(0, 1, 700), rng.normal(0, 2.5, 700), rng.normal(1, 1, 600)]),
            1,  # ties
        ).tolist()
        n, m, alpha = 40, 60, 0.01
        expected = brute_force(values, alpha, n, m, mode)
        assert expected
        ks = KSWindow(alpha=alpha, window_size=n, reference_size=m, mode=mode)  # type: ignore[arg-type]
        assert [i for i, x in enumerate(values) if ks.update(x).drift_detected] == expected

    def test_stride(self) -> None:
        values = [0.0] * 30 + [5.0] * 30
        every = KSWindow(alpha=0.01, window_size=10, reference_size=30)
        fifth = KSWindow(alpha=0.01, window_size=10, reference_size=30, stride=5)
        first_every = every.update_many(values)[0]
        first_fifth = fifth.update_many(values)[0]
        assert first_every <= first_fifth < first_every + 5
        assert (first_fifth - 39) % 5 == 0  # tests at 39, 44, ... (both full at 39)

    def test_baseline_is_kept_after_a_detection(self) -> None:
        ks = KSWindow(alpha=0.01, window_size=20, baseline=[0.0, 1.0, 2.0, 3.0] * 10)
        shifted = [10.0] * 100
        hits = ks.update_many(shifted)
        assert hits == [19, 39, 59, 79, 99]  # the window refills, the baseline stays

    def test_first_n_reference_is_retaken_after_a_detection(self) -> None:
        ks = KSWindow(alpha=0.01, window_size=20, reference_size=40)
        values = [float(i % 4) for i in range(40)] + [10.0] * 200
        assert ks.update_many(values) == [59]  # then the new regime is the reference

    def test_bounded_memory(self) -> None:
        ks = KSWindow(window_size=50, reference_size=70, mode="sliding")
        ks.update_many(np.random.default_rng(0).normal(size=5000))
        state = ks.to_state()["state"]
        assert len(unpacked(state, "window")) <= 50 and len(unpacked(state, "reference")) <= 70

    def test_not_ready(self) -> None:
        ks = KSWindow()
        assert math.isnan(ks.statistic) and ks.p_value is None
        # the threshold is the critical distance for alpha, on the statistic's scale
        assert 0 < ks.threshold < 1 and ks.threshold != ks.alpha
        assert ks._p_of(ks._critical) <= ks.alpha < ks._p_of(ks._critical - 1)
        assert KSWindow.threshold_increases_run_length is False


# -- the batch path: update_many in pieces == update one by one ----------------


@st.composite
def ks_params(draw: st.DrawFn) -> dict[str, Any]:
    """Small windows, every reference mode (a fixed one exact or as a few knots),
    strides up to 4."""
    n, m = draw(st.integers(1, 20), label="n"), draw(st.integers(1, 25), label="m")
    params: dict[str, Any] = {
        "alpha": draw(st.sampled_from([0.3, 0.05, 0.01, 1e-3])),
        "window_size": n,
        "stride": draw(st.integers(1, 4)),
    }
    reference = draw(st.sampled_from(["first", "baseline", "sliding"]))
    if reference == "baseline":
        params["baseline"] = draw(st.lists(st.integers(-3, 3).map(float), min_size=m, max_size=m))
    else:
        params["reference_size"] = m
        params["mode"] = "sliding" if reference == "sliding" else "fixed"
    knots = draw(st.sampled_from([None, None, 1, 2, 5]), label="knots")
    if knots is not None and reference != "sliding":
        params["reference_knots"] = knots
    return params


@st.composite
def ks_stream(draw: st.DrawFn) -> list[float]:
    """Ties, constant runs, a shift at a drawn point, plain floats, or a slow creep
    that keeps the statistic near the critical value for long stretches."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    length = draw(st.integers(0, 300), label="length")
    kind = draw(st.sampled_from(["ties", "constant", "shift", "floats", "creep"]))
    if kind == "ties":
        values = rng.integers(-2, 3, length).astype(float)
    elif kind == "constant":
        values = np.full(length, draw(st.sampled_from([0.0, -1.5, 1e300])))
    elif kind == "shift":  # by 2 sd, or far out (the statistic then climbs at its fastest)
        cut = draw(st.integers(0, length), label="cut")
        to = draw(st.sampled_from([2.0, 50.0]))
        values = np.concatenate([rng.normal(0, 1, cut), rng.normal(to, 1, length - cut)]).round(1)
    elif kind == "floats":
        values = rng.normal(0, 1, length)
    else:
        values = rng.normal(0, 1, length) + np.cumsum(rng.normal(0, 0.05, length))
    return values.tolist()  # type: ignore[no-any-return]


def sequential(params: dict[str, Any], values: list[float]) -> tuple[list[int], KSWindow]:
    ks = KSWindow(**params)
    return [i for i, x in enumerate(values) if ks.update(x).drift_detected], ks


def unpacked(state: dict[str, Any], key: str) -> list[float]:
    return get_packed_floats(state, key, limit=10**6)


def restored(ks: KSWindow) -> KSWindow:
    return KSWindow.from_state(json.loads(json.dumps(ks.to_state())))


class TestBatchPath:
    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(params=ks_params(), values=ks_stream(), data=st.data())
    def test_pieces_equal_one_by_one(
        self, params: dict[str, Any], values: list[float], data: st.DataObject
    ) -> None:
        expected, whole = sequential(params, values)
        ks, hits, i = KSWindow(**params), [], 0
        while i < len(values):
            size = data.draw(st.one_of(st.integers(0, 6), st.integers(0, 80)), label="piece")
            piece = values[i : i + size]
            how = data.draw(st.sampled_from(["many", "many", "array", "events", "snapshot"]))
            if how == "events":  # the per-event path between batches
                found = [j for j, x in enumerate(piece) if ks.update(x).drift_detected]
            else:
                if how == "snapshot":
                    ks = restored(ks)
                found = ks.update_many(np.array(piece) if how == "array" else piece)
            hits += [i + j for j in found]
            i += len(piece)
            part = sequential(params, values[:i])[1]
            assert ks.to_state() == part.to_state()
            assert ks.drift_detected == part.drift_detected
            if data.draw(st.booleans(), label="look"):
                assert ks.statistic == part.statistic or math.isnan(part.statistic)
                assert ks.p_value == part.p_value
        assert hits == expected
        assert ks.to_state() == whole.to_state()

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(params=ks_params(), values=ks_stream())
    def test_one_call_equals_one_by_one(self, params: dict[str, Any], values: list[float]) -> None:
        expected, whole = sequential(params, values)
        ks = KSWindow(**params)
        assert ks.update_many(values) == expected
        assert ks.to_state() == whole.to_state()
        # and the per-event path picks up where the batch path left off
        more = values[::-1]
        assert [i for i, x in enumerate(more) if ks.update(x).drift_detected] == [
            i for i, x in enumerate(more) if whole.update(x).drift_detected
        ]
        assert ks.to_state() == whole.to_state()

    @pytest.mark.parametrize("block", range(4))
    def test_seeded_random_pieces(self, block: int) -> None:
        """Many short seeded runs: jumps far out (the statistic climbs by its bound,
        1/n, at every observation), creeps and ties, pieces mostly shorter than the
        observations a test can skip, per-event updates and snapshots between them."""
        for seed in range(block * 500, (block + 1) * 500):
            rng = np.random.default_rng(seed)
            n, m = int(rng.integers(1, 16)), int(rng.integers(1, 20))
            params: dict[str, Any] = {
                "alpha": float(rng.choice([0.3, 0.05, 0.01, 1e-3])),
                "window_size": n,
                "stride": int(rng.choice([1, 1, 2, 3])),
                "mode": "sliding" if rng.random() < 0.25 else "fixed",
            }
            if params["mode"] == "fixed" and rng.random() < 0.25:
                params["baseline"] = rng.normal(0, 1, m).round(1).tolist()
            else:
                params["reference_size"] = m
            if params["mode"] == "fixed" and rng.random() < 0.3:
                params["reference_knots"] = int(rng.integers(1, 6))
            length, cut = int(rng.integers(20, 200)), int(rng.integers(0, 200))
            kind = rng.integers(3)
            if kind == 0:
                values = np.where(np.arange(length) < cut, 0.0, 50.0) + rng.normal(0, 1, length)
            elif kind == 1:
                values = rng.normal(0, 1, length) + np.linspace(0, rng.uniform(0, 4), length)
            else:
                values = (rng.integers(0, 3, length) + (np.arange(length) >= cut)).astype(float)
            stream = values.round(1).tolist()
            expected, whole = sequential(params, stream)
            ks, hits, i = KSWindow(**params), [], 0
            while i < length:
                size = int(rng.integers(0, 7) if rng.random() < 0.7 else rng.integers(0, 60))
                piece = stream[i : i + size]
                if rng.random() < 0.05:
                    found = [j for j, x in enumerate(piece) if ks.update(x).drift_detected]
                else:
                    found = ks.update_many(piece)
                hits += [i + j for j in found]
                if rng.random() < 0.05:
                    ks = restored(ks)
                if rng.random() < 0.1:
                    part = sequential(params, stream[: i + len(piece)])[1]
                    assert ks.statistic == part.statistic or math.isnan(part.statistic)
                i += len(piece)
            assert hits == expected, (seed, params)
            assert ks.to_state() == whole.to_state(), (seed, params)

    @pytest.mark.parametrize("mode", ["fixed", "sliding"])
    def test_long_epochs(self, mode: str) -> None:
        """Thousands of observations between detections, in short pieces: the batch
        buffers wrap with the window straddling the wrap."""
        rng = np.random.default_rng(5)
        values = np.concatenate([rng.normal(0, 1, 9000), rng.normal(3, 1, 500)]).round(2)
        params: dict[str, Any] = {"alpha": 1e-4, "window_size": 20, "reference_size": 30}
        params["mode"] = mode
        expected, whole = sequential(params, values.tolist())
        assert expected and expected[0] > 9000
        ks, lockstep, hits, i = KSWindow(**params), KSWindow(**params), [], 0
        while i < len(values):
            size = int(rng.integers(0, 25))
            hits += [i + j for j in ks.update_many(values[i : i + size])]
            sequential_hits = [x for x in values[i : i + size] if lockstep.update(x).drift_detected]
            assert ks.statistic == lockstep.statistic or sequential_hits or not lockstep._full()
            i += size
        assert hits == expected
        assert ks.to_state() == whole.to_state()

    @pytest.mark.parametrize("knots", [None, 64])
    @pytest.mark.parametrize("seed", [0, 1, 2])
    @pytest.mark.parametrize("piece", [1, 7, 40, 125, 170, 5000])
    def test_sidecar_setting(self, seed: int, piece: int, knots: int | None) -> None:
        """The default monitor set's KSWindow on slowly drifting data, whose statistic
        creeps up to the critical value, and on abrupt changes (exact, and with the
        reference as knots)."""
        rng = np.random.default_rng(seed)
        creep = rng.normal(0, 1, 6000) + np.linspace(0, 1.5, 6000)
        jumps = np.repeat(rng.normal(0, 2, 6), 1500) + rng.normal(0, 1, 9000)
        values = np.concatenate([creep, jumps]).round(2).tolist()  # some ties
        params: dict[str, Any] = {"window_size": 200, "reference_size": 1000, "alpha": 1e-6}
        if knots is not None:
            params["reference_knots"] = knots
        expected, whole = sequential(params, values)
        assert len(expected) >= 3
        ks, hits = KSWindow(**params), []
        for i in range(0, len(values), piece):
            hits += [i + j for j in ks.update_many(values[i : i + piece])]
        assert hits == expected
        assert ks.to_state() == whole.to_state()
        assert ks.statistic == whole.statistic

    @pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")
    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(reference=small_values, window=small_values)
    def test_statistic_after_a_batch_is_exact(
        self, reference: list[float], window: list[float]
    ) -> None:
        ks = KSWindow(alpha=1e-9, window_size=len(window), reference_size=len(reference))
        ks.update_many(reference + window)
        assert ks.statistic == pytest.approx(stats.ks_2samp(reference, window).statistic, abs=1e-12)

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    @pytest.mark.parametrize("mode", ["fixed", "sliding"])
    def test_non_finite_value_mid_batch(self, bad: float, mode: str) -> None:
        """What precedes it is consumed, as one by one; then ValueError."""
        values = np.random.default_rng(0).normal(0, 1, 60).tolist()
        params: dict[str, Any] = {"alpha": 0.05, "window_size": 5, "reference_size": 8}
        params["mode"] = mode
        ks = KSWindow(**params)
        with pytest.raises(ValueError, match="finite"):
            ks.update_many([*values[:40], bad, *values[40:]])
        assert ks.to_state() == sequential(params, values[:40])[1].to_state()

    def test_sum_overflow_is_not_a_non_finite_value(self) -> None:
        values = [1e308, 1e308, -1e308, 5.0] * 10
        params: dict[str, Any] = {"alpha": 0.05, "window_size": 4, "reference_size": 6}
        expected, whole = sequential(params, values)
        ks = KSWindow(**params)
        assert ks.update_many(values) == expected
        assert ks.to_state() == whole.to_state()

    @pytest.mark.parametrize(
        "values",
        [
            [1, 2, 3, True, 2**63, -(2**62)] * 6,  # ints and bools: float() of each
            np.arange(30, dtype=np.float32) / 7,
            [Decimal("0.1"), "2.5", 3] * 10,  # not plainly numeric: one by one
            (x / 3 for x in range(30)),  # an iterator
        ],
    )
    def test_other_inputs_as_update_takes_them(self, values: Any) -> None:
        values = list(values)
        params: dict[str, Any] = {"alpha": 0.2, "window_size": 4, "reference_size": 5}
        expected, whole = sequential(params, values)
        ks = KSWindow(**params)
        assert ks.update_many(iter(values)) == expected
        state = ks.to_state()
        assert state == whole.to_state()
        assert isinstance(state["state"]["window"], str)

    def test_refuses_what_update_refuses(self) -> None:
        ks = KSWindow(window_size=3, reference_size=3)
        with pytest.raises((TypeError, ValueError)):
            ks.update_many([1.0, 2.0, None])  # type: ignore[list-item]
        assert ks.to_state() == sequential(ks._get_params(), [1.0, 2.0])[1].to_state()


class TestMemory:
    """What a detector holds (docs/architecture.md, "State": samples as float64 arrays,
    one copy each, allocated with their first value)."""

    def test_a_fresh_detector_holds_no_sample_buffer(self) -> None:
        ks = KSWindow(window_size=500, reference_size=3000, stride=20)
        assert ks._ring.size == 0 and ks._ref.size == 0 and ks._learn is None
        assert ks._rank_ring is None

    def test_each_sample_is_one_float64_array(self) -> None:
        ks = KSWindow(window_size=50, reference_size=300, stride=5)
        ks.update_many(np.random.default_rng(0).normal(size=400))
        assert ks._ref.dtype == np.float64 and ks._ref.size == 300
        assert not ks._ref.flags.writeable  # shared by the packed-reference cache
        assert ks._ring.dtype == np.float64 and ks._ring.size == 50 and ks._learn is None
        assert ks._rank_ring is not None and ks._rank_ring.nbytes == 2 * 50 * 2  # int16

    def test_a_restored_default_window_holds_its_samples_and_little_else(self) -> None:
        ks = KSWindow(window_size=500, reference_size=3000, stride=20)
        ks.update_many(np.random.default_rng(1).normal(50.0, 10.0, 3600).round(6))
        snapshot = json.loads(json.dumps(ks.to_state()))
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            again = KSWindow.from_state(snapshot)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert again.to_state() == ks.to_state()
        assert held < 8 * 3500 + 4096  # the 3,500 float64 values, and under 4 KiB besides


class TestSnapshots:
    def test_the_fixed_reference_is_packed_once_and_sorted(self) -> None:
        ks = KSWindow(window_size=4, reference_size=6)
        ks.update_many([5.0, 3.0, 4.0, 0.0, 1.0, 2.0, 7.0, 8.0])
        first = ks.to_state()["state"]
        assert unpacked(first, "reference") == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
        assert unpacked(first, "window") == [7.0, 8.0]  # arrival order
        ks.update(9.0)
        assert ks.to_state()["state"]["reference"] is first["reference"]

    def test_a_sliding_reference_keeps_its_arrival_order(self) -> None:
        ks = KSWindow(window_size=2, reference_size=3, mode="sliding")
        ks.update_many([5.0, 3.0, 4.0, 0.0, 1.0])
        state = ks.to_state()["state"]
        assert unpacked(state, "reference") == [5.0, 3.0, 4.0]
        assert unpacked(state, "window") == [0.0, 1.0]

    def test_packing_is_exact(self) -> None:
        values = [0.1, 1 / 3, 5e-324, -1.7976931348623157e308, 2.0**-1074 * 3, 123.456789]
        ks = KSWindow(window_size=6, reference_size=6, mode="sliding")
        ks.update_many(values)
        again = restored(ks)
        assert again._ordered().tolist() == values  # bit for bit
        assert again.to_state() == ks.to_state()

    def test_reference_follows_a_detection(self) -> None:
        ks = KSWindow(alpha=0.01, window_size=5, reference_size=6)
        values = [0.0] * 6 + [9.0] * 5 + [float(i) for i in range(6)]
        assert ks.update_many(values) == [10]
        assert unpacked(ks.to_state()["state"], "reference") == [float(i) for i in range(6)]

    @pytest.mark.parametrize(
        "bad",
        ["not base64!", "AAAA", "AAAAAAAA+P8=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 3, [1.0]],
        ids=["not-base64", "partial-value", "nan", "too-many", "number", "list"],
    )
    def test_a_malformed_packed_sample_is_refused(self, bad: object) -> None:
        snapshot: Any = KSWindow(window_size=2, reference_size=2).to_state()
        snapshot["state"]["window"] = bad
        with pytest.raises(StateError):
            KSWindow.from_state(snapshot)

    @pytest.mark.parametrize(
        "bad",
        [
            "z:" + base64.b64encode(b"not deflated").decode(),
            "z:" + base64.b64encode(zlib.compress(bytes(8 * 10**6))).decode(),  # a bomb
            "z:" + base64.b64encode(zlib.compress(bytes(16))[:-3]).decode(),  # truncated
            "z:" + base64.b64encode(zlib.compress(bytes(16)) + b"x").decode(),  # trailing
        ],
        ids=["garbage", "too-large", "truncated", "trailing"],
    )
    def test_a_malformed_deflated_reference_is_refused(self, bad: str) -> None:
        ks = KSWindow(window_size=2, reference_size=3)
        ks.update_many([1.0, 2.0, 3.0, 4.0])
        snapshot: Any = ks.to_state()
        assert snapshot["state"]["reference"].startswith("z:")
        snapshot["state"]["reference"] = bad
        with pytest.raises(StateError):
            KSWindow.from_state(snapshot)

    def test_whole_numbers_deflate_well(self) -> None:
        ks = KSWindow(window_size=200, reference_size=1000)
        ks.update_many(np.random.default_rng(3).poisson(12.0, 1200).astype(float))
        assert len(ks.to_state()["state"]["reference"]) < 1000  # v1 listed ~5,000 chars

    def test_a_version_1_snapshot_restores_to_the_uninterrupted_run(self) -> None:
        """The committed fixture was written by version 1 (JSON lists) after the first
        1,500 values of this stream (``KSWindow(alpha=1e-6, window_size=200,
        reference_size=1000).update_many(fixture_stream()[:1500]).to_state()`` at the
        commit before version 2); restored, it continues exactly as the run that never
        stopped."""
        fixture = json.loads((FIXTURES / "ks_window_v1.json").read_text())
        assert fixture["version"] == 1
        values = fixture_stream()
        whole = KSWindow(**fixture["params"])
        whole.update_many(values[:1500])
        ks = KSWindow.from_state(fixture)
        assert ks.to_state() == whole.to_state()
        assert ks.update_many(values[1500:]) == whole.update_many(values[1500:]) == [598]
        assert ks.to_state() == whole.to_state()

    def test_a_snapshot_of_the_earlier_code_restores(self) -> None:
        """Written (version 1) by the per-event implementation before update_many had
        its own path."""
        snapshot = {
            "detector": "ks_window",
            "version": 1,
            "params": {
                "alpha": 0.05,
                "window_size": 3,
                "reference_size": 4,
                "mode": "fixed",
                "baseline": None,
                "stride": 2,
            },
            "state": {
                "reference": [0.5, -1.0, 2.0, 0.0],
                "window": [1.0, 0.25, -0.5],
                "since_test": 1,
                "drift_detected": False,
            },
        }
        ks = KSWindow.from_state(snapshot)
        assert ks.to_state()["version"] == KSWindow.state_version
        assert unpacked(ks.to_state()["state"], "window") == [1.0, 0.25, -0.5]
        again = KSWindow.from_state(snapshot)
        values = [0.1, 5.0, 6.0, 7.0, 0.3, -0.2, 8.0, 9.0, 9.5, 10.0]
        assert ks.update_many(values) == [
            i for i, x in enumerate(values) if again.update(x).drift_detected
        ]
        assert ks.to_state() == again.to_state()


def fixture_stream() -> list[float]:
    """2,600 values with a shift at 2,000 (the fixture's stream)."""
    rng = np.random.default_rng(2026)
    values = np.concatenate([rng.normal(50.0, 10.0, 2000), rng.normal(58.0, 10.0, 600)])
    return [round(float(x), 6) for x in values]
