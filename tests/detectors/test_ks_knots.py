"""A fixed KS reference kept as knots (``KSWindow(reference_knots=q)``): counts within
the bound, the statistic within 1/q of the exact one, compact memory, snapshots."""

from __future__ import annotations

import json
import math
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import KSWindow, StateError
from detectors._ks_knots import KnotReference, get_packed_counts, pack_counts

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True)


@st.composite
def samples(draw: st.DrawFn, min_size: int = 1) -> np.ndarray:
    """Ties (whole numbers, a few values), plain floats, far-apart magnitudes."""
    kind = draw(st.sampled_from(["ties", "floats", "mixed", "extreme"]))
    size = draw(st.integers(min_size, 400), label="size")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    if kind == "ties":
        return rng.integers(-3, 4, size).astype(float)
    if kind == "floats":
        return rng.normal(0, 1, size)
    if kind == "mixed":
        return np.where(rng.random(size) < 0.5, rng.integers(0, 3, size), rng.normal(1, 1, size))
    return rng.choice([-1e308, -1.0, 0.0, 5e-324, 1.0, 1e308], size) * rng.random(size)


def exact_counts(ref: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ref.searchsorted(x, "left"), ref.searchsorted(x, "right")


class TestKnotReference:
    @PROPERTY
    @given(ref=samples(), probe=samples(), knots=st.integers(1, 64))
    def test_counts_are_within_the_gap_and_exact_at_knots(
        self, ref: np.ndarray, probe: np.ndarray, knots: int
    ) -> None:
        ref = np.sort(ref)
        summary = KnotReference.of_sorted(ref, knots)
        m = len(ref)
        assert len(summary.values) <= knots + 1
        x = np.concatenate((probe, ref, summary.values))
        lo, hi = summary.counts_of(x)
        below, upto = exact_counts(ref, x)
        gap = max(0, -(-(m - 1) // knots) - 1)  # ceil((m-1)/q) - 1: values between knots
        assert (np.abs(lo - below) <= gap).all() and (np.abs(hi - upto) <= gap).all()
        assert gap < m / knots or m == 1
        at_knot = np.isin(x, summary.values)
        assert (lo[at_knot] == below[at_knot]).all() and (hi[at_knot] == upto[at_knot]).all()
        # monotone in x, so a window's counts sort together with its values
        order = np.argsort(x, kind="stable")
        assert (np.diff(lo[order]) >= 0).all() and (np.diff(hi[order]) >= 0).all()

    @PROPERTY
    @given(ref=samples(), probe=samples(), knots=st.integers(1, 64))
    def test_one_value_counts_as_the_vectorised_path(
        self, ref: np.ndarray, probe: np.ndarray, knots: int
    ) -> None:
        summary = KnotReference.of_sorted(np.sort(ref), knots)
        lo, hi = summary.counts_of(probe)
        assert [summary.count(x) for x in probe.tolist()] == list(
            zip(lo.tolist(), hi.tolist(), strict=True)
        )

    def test_every_rank_a_knot_is_the_exact_reference(self) -> None:
        ref = np.sort(np.random.default_rng(3).normal(0, 1, 50).round(1))
        summary = KnotReference.of_sorted(ref, 49)
        probe = np.linspace(-4, 4, 1001)
        lo, hi = summary.counts_of(probe)
        below, upto = exact_counts(ref, np.concatenate((probe, ref)))
        assert (lo == below[:1001]).all() and (hi == upto[:1001]).all()

    @pytest.mark.parametrize("counts", [np.array([0, 7, 65535]), np.array([0, 70000])])
    def test_counts_pack_exactly(self, counts: np.ndarray) -> None:
        packed = pack_counts(counts)
        assert packed.startswith("w:") == (counts.max() > 65535)
        assert get_packed_counts({"c": packed}, "c", limit=3).tolist() == counts.tolist()


@st.composite
def ks_case(draw: st.DrawFn) -> tuple[dict[str, Any], list[float]]:
    n, m = draw(st.integers(1, 60), label="n"), draw(st.integers(2, 300), label="m")
    knots = draw(st.integers(1, 64), label="knots")
    params = {"alpha": 1e-300, "window_size": n, "reference_size": m, "reference_knots": knots}
    ref, win = draw(samples(min_size=m)), draw(samples(min_size=n))
    shift = draw(st.sampled_from([0.0, 0.0, 0.5, 3.0]))
    return params, ref[:m].tolist() + (win[:n] + shift).tolist()


class TestStatistic:
    @PROPERTY
    @given(case=ks_case(), by=st.sampled_from(["update", "update_many"]))
    def test_within_one_over_q_of_the_exact_statistic(
        self, case: tuple[dict[str, Any], list[float]], by: str
    ) -> None:
        """|D_knots - D_exact| < 1/q, whatever the ties: never detecting (alpha
        1e-300), both detectors hold the same samples at the end."""
        params, stream = case
        knotted = KSWindow(**params)
        exact = KSWindow(**{k: v for k, v in params.items() if k != "reference_knots"})
        if by == "update":
            for x in stream:
                knotted.update(x)
        else:
            knotted.update_many(stream)
        exact.update_many(stream)
        assert not knotted.drift_detected and not exact.drift_detected
        assert abs(knotted.statistic - exact.statistic) < 1 / params["reference_knots"] + 1e-12

    def test_a_discrete_feature_is_exact(self) -> None:
        """Fewer distinct values than knots: every value a knot, every count exact."""
        rng = np.random.default_rng(0)
        stream = rng.integers(0, 6, 3500).astype(float).tolist()
        params: dict[str, Any] = {"alpha": 1e-300, "window_size": 500, "reference_size": 3000}
        knotted, exact = KSWindow(**params, reference_knots=256), KSWindow(**params)
        knotted.update_many(stream)
        exact.update_many(stream)
        assert knotted.statistic == exact.statistic > 0

    def test_the_test_keeps_its_two_sample_calibration(self) -> None:
        """The critical value is the exact test's for m reference values."""
        params: dict[str, Any] = {"alpha": 2e-4, "window_size": 500, "reference_size": 3000}
        assert KSWindow(**params, reference_knots=256).threshold == KSWindow(**params).threshold


def default_window(knots: int | None = 256) -> KSWindow:
    params: dict[str, Any] = {"alpha": 2e-4, "window_size": 500, "reference_size": 3000}
    params["stride"] = 20
    return KSWindow(**params) if knots is None else KSWindow(**params, reference_knots=knots)


def warmed(ks: KSWindow, seed: int = 1, size: int = 3800) -> KSWindow:
    ks.update_many(np.random.default_rng(seed).normal(50, 10, size).round(6))
    return ks


class TestMemoryAndSnapshots:
    def test_a_restored_default_window_holds_its_knots_and_counts(self) -> None:
        """257 knots (8 + 4 bytes each) and 500 pairs of int16 counts, not 3,500 float64."""
        snapshot = json.loads(json.dumps(warmed(default_window()).to_state()))
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            ks = KSWindow.from_state(snapshot)
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert ks._ring.size == 0 and len(ks._ref) == 0  # no float sample at all
        assert held < 257 * 12 + 500 * 4 + 4096  # and under 4 KiB besides (exact: 28.6 KiB)
        assert len(json.dumps(snapshot)) < 8000  # the exact window's: ~29,000

    @pytest.mark.parametrize("version", [2, 3])
    def test_a_full_exact_reference_is_summarised_at_restore(self, version: int) -> None:
        """An exact snapshot (version 2, or 3 before knots were configured) restored
        into a detector with knots holds what that detector's own run holds."""
        stream = np.random.default_rng(4).normal(0, 1, 4200).round(3)
        exact = default_window(None)
        exact.update_many(stream[:3300])
        snapshot = exact.to_state() | {"version": version}
        snapshot["params"] = snapshot["params"] | {"reference_knots": 256}
        restored = KSWindow.from_state(snapshot)
        uninterrupted = default_window()
        uninterrupted.update_many(stream[:3300])
        assert restored.to_state() == uninterrupted.to_state()
        rest = stream[3300:].tolist()
        assert restored.update_many(rest) == [
            i for i, x in enumerate(rest) if uninterrupted.update(x).drift_detected
        ]
        assert restored.to_state() == uninterrupted.to_state()

    def test_a_baseline_writes_no_knots(self) -> None:
        base = np.random.default_rng(5).normal(0, 1, 300).tolist()
        ks = KSWindow(window_size=50, baseline=base, reference_knots=16)
        ks.update_many(np.random.default_rng(6).normal(0, 1, 70))
        state = ks.to_state()["state"]
        assert state["knots"] is None and state["knot_counts"] is None
        assert KSWindow.from_state(ks.to_state()).to_state() == ks.to_state()

    @pytest.mark.parametrize(
        "change",
        [
            {"knots": "AAAA"},  # not whole float64 values
            {"knot_counts": pack_counts(np.array([0, 1]))},  # not two per knot
            {"window_counts": pack_counts(np.array([[5], [4]]))},  # below > upto
            {"window_counts": pack_counts(np.array([[0], [3001]]))},  # past m
            {"window_counts": pack_counts(np.zeros((2, 501), dtype=int))},  # past n
            {"window_counts": pack_counts(np.zeros(3, dtype=int))},  # not pairs
            {"since_test": 20},
        ],
    )
    def test_a_malformed_knotted_state_is_refused(self, change: dict[str, Any]) -> None:
        snapshot = warmed(default_window()).to_state()
        snapshot["state"] = snapshot["state"] | change
        with pytest.raises(StateError):
            KSWindow.from_state(snapshot)

    def test_knots_that_are_not_a_reference_are_refused(self) -> None:
        ks = warmed(default_window())
        snapshot = ks.to_state()
        assert ks._knots is not None
        decreasing = ks._knots.values[::-1].copy()
        for bad in (
            {"knots": KnotReference(3000, decreasing, ks._knots.counts).pack()[0]},
            {"knot_counts": pack_counts(ks._knots.counts[::-1])},
        ):
            with pytest.raises(StateError):
                KSWindow.from_state(snapshot | {"state": snapshot["state"] | bad})

    def test_knots_need_a_detector_configured_for_them(self) -> None:
        snapshot = warmed(default_window()).to_state()
        snapshot["params"] = {k: v for k, v in snapshot["params"].items() if k != "reference_knots"}
        with pytest.raises(StateError, match="reference_knots"):
            KSWindow.from_state(snapshot)

    def test_statistic_and_p_value_read_the_counts(self) -> None:
        ks = warmed(default_window(), size=3499)
        assert math.isnan(ks.statistic) and ks.p_value is None
        ks.update(50.0)
        assert 0 < ks.statistic < 0.1 and ks.p_value is not None and ks.p_value > 0.01
