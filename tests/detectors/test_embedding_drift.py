"""EmbeddingDrift: cosine of the window centroid to a baseline; baseline files."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.base import StateError
from detectors.embedding_drift import EmbeddingDrift, load_baseline, save_baseline
from tests.detectors._distribution_checks import (
    calibrated_quiet,
    check_contract,
    first_detection_after,
    roundtrip,
)
from tests.detectors.strategies import stream_strategy

DIM = 64


def unit(*coords: float) -> np.ndarray:
    v = np.zeros(DIM)
    v[: len(coords)] = coords
    return v


def embeddings(rng: np.random.Generator, n: int, mean: np.ndarray) -> list[list[float]]:
    return rng.normal(mean, 0.2, size=(n, DIM)).tolist()


class TestEmbeddingDrift:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_contract(self, seed: int) -> None:
        check_contract("embedding_drift", seed)

    @pytest.mark.parametrize("seed", range(3))
    def test_detects_rotation_within_one_window(self, seed: int) -> None:
        # The mean direction turns by 25.8 degrees (cosine 0.9).
        rng = np.random.default_rng(seed)
        stream = embeddings(rng, 3000, unit(1.0)) + embeddings(rng, 1000, unit(0.9, 0.43589))
        det = EmbeddingDrift()
        delay = first_detection_after(det, stream, 3000)
        assert delay is not None and delay <= 256
        assert det.centroid_cosine < 0.95
        assert det.mean_cosine < det.centroid_cosine

    def test_stable_quiet_at_default_for_20000(self) -> None:
        rng = np.random.default_rng(14)
        assert EmbeddingDrift().update_many(embeddings(rng, 20500, unit(1.0))) == []

    def test_stable_quiet_at_calibrated_threshold(self) -> None:
        # Calibrated for ARL0 = 1000 vectors (8 dimensions, window 64 in 4 blocks);
        # 100 fresh vectors after the baseline period.
        rng = np.random.default_rng(20)
        mean = np.eye(8)[0]
        reference = rng.normal(mean, 0.3, size=(3000, 8))
        fresh = np.random.default_rng(21).normal(mean, 0.3, size=(128 + 100, 8)).tolist()
        proto = EmbeddingDrift(window_size=64, reference_size=128)
        distance = calibrated_quiet(proto, reference, fresh, target_arl0=1000)
        assert 0.0 < distance < 0.1

    def test_centroid_and_mean_cosine(self) -> None:
        det = EmbeddingDrift(window_size=2, n_blocks=1, baseline=[1.0, 0.0], max_distance=1.5)
        det.update_many([[1.0, 1.0], [1.0, -1.0]])
        assert det.centroid_cosine == pytest.approx(1.0)
        assert det.mean_cosine == pytest.approx(math.sqrt(0.5))
        assert det.statistic == pytest.approx(0.0, abs=1e-12)

    def test_normalize_false_weights_by_length(self) -> None:
        det = EmbeddingDrift(
            window_size=2, n_blocks=1, baseline=[1.0, 0.0], normalize=False, max_distance=1.5
        )
        det.update_many([[10.0, 0.0], [0.0, 1.0]])
        assert det.centroid_cosine == pytest.approx(10 / math.sqrt(101))

    def test_zero_vector_has_cosine_zero(self) -> None:
        det = EmbeddingDrift(window_size=1, n_blocks=1, baseline=[1.0, 0.0], max_distance=2.0)
        det.update([0.0, 0.0])
        assert det.mean_cosine == 0.0 and not det.drift_detected

    def test_dimension_is_fixed(self) -> None:
        det = EmbeddingDrift()
        det.update([1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match="dimensions"):
            det.update([1.0, 2.0])
        assert roundtrip(det).to_state() == det.to_state()

    @pytest.mark.parametrize("bad", [[1.0, math.nan], [math.inf, 0.0], [], [[1.0], [2.0]], "ab"])
    def test_rejects_bad_vectors(self, bad: object) -> None:
        with pytest.raises(ValueError):
            EmbeddingDrift().update(bad)  # type: ignore[arg-type]

    @pytest.mark.parametrize("suffix", [".npy", ".json"])
    def test_baseline_export_and_import(self, tmp_path: Path, suffix: str) -> None:
        rng = np.random.default_rng(3)
        det = EmbeddingDrift(reference_size=100)
        with pytest.raises(ValueError):
            det.export_baseline(tmp_path / f"early{suffix}")
        det.update_many(embeddings(rng, 100, unit(1.0)))
        path = tmp_path / f"baseline{suffix}"
        det.export_baseline(path)
        loaded = load_baseline(path)
        assert loaded == det.baseline_centroid  # exact, also through JSON
        again = EmbeddingDrift.from_baseline_file(path, window_size=64)
        assert again.baseline == loaded and again.learning_period == 0
        if suffix == ".json":
            doc = json.loads(path.read_text())
            assert doc["format"] == "driftline.embedding-baseline" and doc["dim"] == DIM

    def test_baseline_file_object_and_plain_json_list(self, tmp_path: Path) -> None:
        buf = io.BytesIO()
        save_baseline(buf, [0.5, 0.25])
        buf.seek(0)
        assert load_baseline(buf) == [0.5, 0.25]
        path = tmp_path / "plain.json"
        path.write_text("[1, 2, 3]")
        assert load_baseline(path) == [1.0, 2.0, 3.0]
        path.write_text('{"format": "other"}')
        with pytest.raises(ValueError):
            load_baseline(path)

    def test_pickled_npy_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "evil.npy"
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        with pytest.raises(ValueError):
            load_baseline(path)


class TestLearnedMaxDistance:
    """``target_arl0``: max_distance from the spread of the baseline's warm-up."""

    @staticmethod
    def factory() -> EmbeddingDrift:
        return EmbeddingDrift(window_size=8, n_blocks=2, reference_size=16, target_arl0=500)

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_contract(self, seed: int) -> None:
        check_contract("embedding_drift", seed, factory=self.factory)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(stream=stream_strategy("vector"), cut=st.integers(0, 150))
    def test_update_many_equals_update(self, stream: list[list[float]], cut: int) -> None:
        one = self.factory()
        expected = [i for i, x in enumerate(stream) if one.update(x).drift_detected]
        batch = self.factory()
        assert batch.update_many(stream) == expected
        assert batch.to_state() == one.to_state()
        cut = min(cut, len(stream))
        head = self.factory()
        hits = head.update_many(stream[:cut])
        restored = EmbeddingDrift.from_state(json.loads(json.dumps(head.to_state())))
        assert hits + [cut + i for i in restored.update_many(stream[cut:])] == expected
        assert restored.to_state() == one.to_state()

    def test_the_bound_follows_the_spread_and_the_target(self) -> None:
        def learned(spread: float, target: float) -> float:
            rng = np.random.default_rng(3)
            mean = np.zeros(16)
            mean[0] = 1.0
            det = EmbeddingDrift(window_size=64, n_blocks=4, reference_size=256,
                                 target_arl0=target)  # fmt: skip
            assert math.isnan(det.threshold)
            det.update_many(rng.normal(mean, spread, size=(256, 16)).tolist())
            assert det.to_state()["state"]["last_diff"] is None  # dropped once learned
            return det.threshold

        assert learned(0.1, 1e5) < learned(0.3, 1e5)
        assert learned(0.3, 1e3) < learned(0.3, 1e5) < learned(0.3, 1e7)

    def test_centred_vectors_never_alarm(self) -> None:
        # No shared direction: the cosine to the baseline is noise, the bound is 2.
        det = EmbeddingDrift(window_size=8, n_blocks=2, reference_size=64, target_arl0=1e5)
        rng = np.random.default_rng(4)
        assert det.update_many(rng.normal(0.0, 1.0, size=(400, 4)).tolist()) == []
        assert det.threshold == 2.0

    def test_a_given_baseline_keeps_max_distance(self) -> None:
        with pytest.raises(ValueError, match="target_arl0"):
            EmbeddingDrift(baseline=[1.0, 0.0], target_arl0=1e5)

    def test_a_version_1_snapshot_restores_with_its_max_distance(self) -> None:
        stream = self.vectors(5, 120)
        det = EmbeddingDrift(window_size=8, n_blocks=2, reference_size=16, max_distance=0.01)
        det.update_many(stream[:50])
        old = det.to_state()
        old["version"] = 1
        for key in ("max_distance", "pair_first", "last_diff", "moments"):
            del old["state"][key]
        del old["params"]["target_arl0"]
        restored = EmbeddingDrift.from_state(old)
        assert restored.threshold == 0.01
        assert restored.update_many(stream[50:]) == det.update_many(stream[50:])
        assert restored.to_state() == det.to_state()

    def test_snapshot_validation(self) -> None:
        det = self.factory()
        det.update_many(self.vectors(6, 5))
        snap = det.to_state()
        with pytest.raises(StateError):  # an odd count keeps the open pair's first vector
            EmbeddingDrift.from_state({**snap, "state": {**snap["state"], "pair_first": None}})
        fixed = EmbeddingDrift(window_size=8, n_blocks=2, reference_size=16).to_state()
        with pytest.raises(StateError):
            EmbeddingDrift.from_state({**fixed, "state": {**fixed["state"], "max_distance": 0.2}})

    @staticmethod
    def vectors(seed: int, n: int) -> list[list[float]]:
        rng = np.random.default_rng(seed)
        return rng.normal([1.0, 0.0, 0.0], 0.2, size=(n, 3)).tolist()  # type: ignore[no-any-return]
