"""Cosine drift of embedding / hidden-state vectors away from a baseline centroid."""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Mapping, Sequence
from typing import IO, Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors._parse import (
    check_positive_float,
    check_positive_int,
    get_float_or_nan,
    get_int,
    json_float,
)
from detectors.arl import centroid_distance_bound
from detectors.base import DriftDetector, InputKind, register, require

__all__ = ["EmbeddingDrift", "load_baseline", "save_baseline"]

FloatArray = npt.NDArray[np.float64]
BASELINE_FORMAT = "driftline.embedding-baseline"


def _as_vector(x: Any, name: str = "x") -> FloatArray:
    try:
        v = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers: {exc}") from exc
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must contain only finite numbers")
    return v


def _to_list(v: FloatArray) -> list[float]:
    return [float(x) for x in v]


def _cosine(a: FloatArray, b: FloatArray) -> float:
    na = math.sqrt(float(a @ a))
    nb = math.sqrt(float(b @ b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return max(-1.0, min(1.0, float(a @ b) / (na * nb)))


def save_baseline(
    path: str | os.PathLike[str] | IO[bytes], centroid: Sequence[float], count: int = 0
) -> None:
    """Write a baseline centroid: ``.npy`` (1-D float64 array) or JSON otherwise.

    The JSON form is ``{"format": "driftline.embedding-baseline", "version": 1,
    "dim": d, "count": n, "centroid": [...]}`` (floats exact through JSON).
    ``path`` may be a binary file object (written as ``.npy``).
    """
    vector = _as_vector(centroid, "centroid")
    if not isinstance(path, (str, os.PathLike)):
        np.save(path, vector, allow_pickle=False)
        return
    if os.fspath(path).endswith(".npy"):
        np.save(path, vector, allow_pickle=False)
        return
    doc = {
        "format": BASELINE_FORMAT,
        "version": 1,
        "dim": int(vector.size),
        "count": int(count),
        "centroid": vector.tolist(),
    }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)


def load_baseline(path: str | os.PathLike[str] | IO[bytes]) -> list[float]:
    """Read a baseline centroid written by :func:`save_baseline` (or any 1-D ``.npy``,
    or a JSON list of numbers). Never unpickles."""
    if not isinstance(path, (str, os.PathLike)) or os.fspath(path).endswith(".npy"):
        return _to_list(_as_vector(np.load(path, allow_pickle=False), "baseline"))
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if isinstance(doc, dict):
        if doc.get("format") != BASELINE_FORMAT or doc.get("version") != 1:
            raise ValueError(f"{os.fspath(path)!r} is not a version-1 {BASELINE_FORMAT} file")
        doc = doc.get("centroid")
    return _to_list(_as_vector(doc, "baseline"))


@register
class EmbeddingDrift(DriftDetector[Sequence[float]]):
    r"""Cosine similarity of the recent centroid of vectors to a baseline centroid.

    Each observation is a vector of ``dim`` floats (an embedding, a hidden state);
    with ``normalize=True`` it is scaled to unit length first, so only directions
    count. The baseline centroid ``b`` is given (``baseline``, e.g. from
    :func:`load_baseline`) or the mean of the first ``reference_size`` vectors.

    The window is ``n_blocks`` blocks of ``window_size / n_blocks`` vectors. Every
    vector costs O(dim): it is added to the open block's sum, and its cosine to ``b``
    to the block's cosine sum. Each time a block closes and ``n_blocks`` blocks are
    complete (a check every ``window_size / n_blocks`` vectors), the window centroid
    ``c`` is the sum of the block sums and

    * ``centroid_cosine = cos(c, b)``; ``statistic = 1 - centroid_cosine`` (the cosine
      distance), compared with ``max_distance``;
    * ``mean_cosine``: the mean per-vector cosine to ``b`` over the window -- it also
      falls when vectors spread out around an unchanged centroid.

    Drift is detected when the cosine distance exceeds ``max_distance``; the blocks
    are then emptied (the baseline is kept; ``reset()`` forgets a learned one). Zero
    vectors have cosine 0 to everything. Block sums restart at every block, so
    rounding does not accumulate.

    With ``target_arl0`` (and a learned baseline) ``max_distance`` is learned too:
    while the baseline is learned, the differences of consecutive pairs of vectors
    estimate the spread of the vectors (``tr Sigma`` and ``tr Sigma^2``), and at its
    end :func:`detectors.arl.centroid_distance_bound` turns them into the distance a
    window's centroid exceeds by chance at most once per ``target_arl0`` vectors for
    95 % of baselines (the baseline's own error stays for the whole series, so the
    bound is conditional on it; a longer ``reference_size`` makes it tighter). The
    ``max_distance`` parameter is then unused; ``threshold`` is the learned one.

    The centroid cosine assumes the vectors share a mean direction, as embeddings and
    hidden states usually do. For centred data (mean near 0, e.g. whitened features)
    the baseline centroid is mostly noise and so is its cosine: monitor such data per
    coordinate, or with ``mean_cosine`` against a given baseline.

    Memory: O(n_blocks * dim) -- the block sums, the open block and the baseline
    (and, while learning with ``target_arl0``, one vector and one difference); no
    vector is stored. (A per-vector sliding window would need O(window_size *
    dim) and as large a snapshot.)

    Parameters
    ----------
    window_size
        Vectors per window; a multiple of ``n_blocks``.
    n_blocks
        Blocks per window (>= 1); a check runs whenever a block closes.
    reference_size
        First vectors whose mean is the baseline (ignored when ``baseline`` is given).
    max_distance
        Alarm threshold on ``1 - cos(window centroid, baseline)``, in (0, 2].
    baseline
        Baseline centroid (``dim`` floats), or ``None`` to learn it.
    dim
        Vector dimension; ``None`` takes it from the baseline or the first vector.
    normalize
        Scale every vector to unit length before use.
    target_arl0
        Learn ``max_distance`` from the reference for this mean number of vectors
        between false alarms (``None``: use ``max_distance``; needs a learned baseline).

    Examples
    --------
    32-dimensional embeddings whose mean direction rotates after vector 1500:

    >>> import numpy as np
    >>> from detectors.embedding_drift import EmbeddingDrift
    >>> rng = np.random.default_rng(2)
    >>> mean = np.zeros(32); mean[0] = 1.0
    >>> moved = np.zeros(32); moved[0], moved[1] = 0.8, 0.6
    >>> vectors = np.concatenate([rng.normal(mean, 0.3, size=(1500, 32)),
    ...                           rng.normal(moved, 0.3, size=(500, 32))])
    >>> detector = EmbeddingDrift(window_size=200, n_blocks=4, reference_size=500,
    ...                           max_distance=0.05)
    >>> for i, v in enumerate(vectors):
    ...     _ = detector.update(v)
    ...     if detector.drift_detected:
    ...         print(f"drift at {i}: centroid cosine {detector.centroid_cosine:.3f}, "
    ...               f"mean cosine {detector.mean_cosine:.3f}")
    drift at 1599: centroid cosine 0.940, mean cosine 0.452
    drift at 1799: centroid cosine 0.790, mean cosine 0.400
    drift at 1999: centroid cosine 0.793, mean cosine 0.401

    The bound learned for one false alarm per 100,000 vectors instead:

    >>> learned = EmbeddingDrift(window_size=200, n_blocks=4, reference_size=500,
    ...                          target_arl0=100_000)
    >>> hits = learned.update_many(vectors)
    >>> round(learned.threshold, 4), hits
    (0.0223, [1549, 1749, 1949])
    """

    name: ClassVar[str] = "embedding_drift"
    column_path: ClassVar[bool] = True
    input_kind: ClassVar[InputKind] = "vector"
    state_version: ClassVar[int] = 2
    upgradable_versions: ClassVar[frozenset[int]] = frozenset({1})
    threshold_param: ClassVar[str | None] = "max_distance"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self,
        window_size: int = 256,
        n_blocks: int = 4,
        reference_size: int = 512,
        max_distance: float = 0.05,
        baseline: Sequence[float] | None = None,
        dim: int | None = None,
        normalize: bool = True,
        target_arl0: float | None = None,
    ) -> None:
        super().__init__()
        self.window_size = check_positive_int(window_size, "window_size")
        self.n_blocks = check_positive_int(n_blocks, "n_blocks")
        require(
            self.window_size % self.n_blocks == 0,
            "window_size",
            f"must be a multiple of n_blocks ({self.n_blocks}), got {window_size!r}",
        )
        self.reference_size = check_positive_int(reference_size, "reference_size")
        self.max_distance = check_positive_float(max_distance, "max_distance")
        require(self.max_distance <= 2.0, "max_distance", "must be at most 2")
        self.dim = None if dim is None else check_positive_int(dim, "dim")
        require(isinstance(normalize, bool), "normalize", "must be a bool")
        self.normalize = normalize
        self.baseline: list[float] | None = None
        if baseline is not None:
            try:
                vector = _as_vector(baseline, "baseline")
            except ValueError as exc:
                raise ValueError(f"baseline: {exc}") from None
            require(
                self.dim is None or vector.size == self.dim,
                "baseline",
                f"has {vector.size} dimensions, dim is {self.dim}",
            )
            self.baseline = vector.tolist()
        if target_arl0 is not None:
            target_arl0 = check_positive_float(target_arl0, "target_arl0")
            require(target_arl0 >= 2, "target_arl0", f"must be >= 2, got {target_arl0!r}")
            require(
                self.baseline is None,
                "target_arl0",
                "learns max_distance with the baseline: give max_distance with a baseline",
            )
        self.target_arl0 = target_arl0
        self.reset()

    @classmethod
    def from_baseline_file(
        cls, path: str | os.PathLike[str] | IO[bytes], **params: Any
    ) -> EmbeddingDrift:
        """A detector whose baseline is read from ``path`` (see :func:`load_baseline`)."""
        return cls(baseline=load_baseline(path), **params)

    def export_baseline(self, path: str | os.PathLike[str] | IO[bytes]) -> None:
        """Write the current baseline (given or learned) with :func:`save_baseline`."""
        if self._baseline is None:
            raise ValueError("the baseline is not learned yet")
        save_baseline(path, self._baseline.tolist(), count=self._ref_n)

    # -- state ----------------------------------------------------------------
    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._dim = self.dim if self.baseline is None else len(self.baseline)
        self._baseline: FloatArray | None = None
        self._set_baseline(
            None if self.baseline is None else np.array(self.baseline, dtype=np.float64)
        )
        self._ref_sum: FloatArray | None = None
        self._ref_n = 0
        self._clear_blocks()
        self._centroid_cos = math.nan
        self._mean_cos = math.nan
        self._max_distance = self.max_distance
        # Spread of the reference (target_arl0): the first vector of an open pair, the
        # last pair's difference, and sums of |d|^2 / 2 and (d . d_prev)^2 / 4 with
        # their counts, which estimate tr Sigma and tr Sigma^2.
        self._pair_first: FloatArray | None = None
        self._last_diff: FloatArray | None = None
        self._moments = [0.0, 0, 0.0, 0]

    def _clear_blocks(self) -> None:
        self._blocks: deque[tuple[FloatArray, float]] = deque()
        self._open: FloatArray | None = None
        self._open_cos = 0.0
        self._open_n = 0

    def _vector(self, x: Any) -> tuple[FloatArray, float]:
        """The observation as float64 (unit length if ``normalize``) and its raw norm."""
        try:
            v = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"x must be a sequence of numbers: {exc}") from exc
        if v.ndim != 1 or v.size == 0:
            raise ValueError("x must be a non-empty 1-D sequence of numbers")
        if self._dim is None:
            self._dim = int(v.size)
        elif v.size != self._dim:
            raise ValueError(f"x has {v.size} dimensions, expected {self._dim}")
        sq = float(v @ v)
        if not math.isfinite(sq):  # NaN/inf anywhere (or an overflowing norm)
            _as_vector(v)
            raise ValueError("x is too large: its squared norm overflows")
        norm = math.sqrt(sq)
        if self.normalize and norm > 0.0:
            v = v / norm
        return v, norm

    # -- the per-event path ---------------------------------------------------
    def update(self, x: Sequence[float]) -> EmbeddingDrift:
        v, norm = self._vector(x)
        self.drift_detected = False
        baseline = self._baseline
        if baseline is None:
            if self._ref_sum is None:
                self._ref_sum = v.copy()
            else:
                self._ref_sum += v
            self._ref_n += 1
            if self.target_arl0 is not None:
                self._learn_spread(v)
            if self._ref_n == self.reference_size:
                self._set_baseline(self._ref_sum / self._ref_n)
                self._ref_sum = None
                self._learn_max_distance()
            return self
        if self._open is None:
            self._open = v.copy()
        else:
            self._open += v
        # cos(v, b): v is already unit length when normalize=True.
        scale = (1.0 if self.normalize else norm) * self._baseline_norm
        if scale > 0.0:
            self._open_cos += max(-1.0, min(1.0, float(v @ baseline) / scale))
        self._open_n += 1
        if self._open_n < self.window_size // self.n_blocks:
            return self
        self._blocks.append((self._open, self._open_cos))
        self._open, self._open_cos, self._open_n = None, 0.0, 0
        if len(self._blocks) > self.n_blocks:
            self._blocks.popleft()
        if len(self._blocks) == self.n_blocks:
            centroid = self._blocks[0][0].copy()
            cos_sum = self._blocks[0][1]
            for block, block_cos in list(self._blocks)[1:]:
                centroid += block
                cos_sum += block_cos
            self._centroid_cos = _cosine(centroid, baseline)
            self._mean_cos = cos_sum / self.window_size
            if 1.0 - self._centroid_cos > self._max_distance:
                self.drift_detected = True
                self._clear_blocks()
        return self

    def _learn_spread(self, v: FloatArray) -> None:
        if self._pair_first is None:
            self._pair_first = v.copy()
            return
        d = v - self._pair_first
        self._pair_first = None
        m = self._moments
        m[0] += float(d @ d) / 2.0
        m[1] += 1
        if self._last_diff is not None:
            m[2] += float(d @ self._last_diff) ** 2 / 4.0
            m[3] += 1
        self._last_diff = d

    def _learn_max_distance(self) -> None:
        if self.target_arl0 is None or self._baseline is None:
            return
        s1, n1, s2, n2 = self._moments
        trace = s1 / n1 if n1 else 0.0
        trace_sq = s2 / n2 if n2 else trace * trace
        # E|b|^2 = |mu|^2 + tr(Sigma) / m for the mean b of m vectors.
        mean_sq = self._baseline_norm**2 - trace / self._ref_n
        self._max_distance = centroid_distance_bound(
            trace,
            trace_sq,
            mean_sq,
            window=self.window_size,
            reference=self.reference_size,
            checks_every=self.window_size // self.n_blocks,
            target_arl0=self.target_arl0,
        )
        self._pair_first = self._last_diff = None

    def _set_baseline(self, baseline: FloatArray | None) -> None:
        self._baseline = baseline
        self._baseline_norm = 0.0 if baseline is None else math.sqrt(float(baseline @ baseline))

    # -- evidence -------------------------------------------------------------
    @property
    def statistic(self) -> float:
        """Cosine distance ``1 - centroid_cosine`` at the last check (NaN before one)."""
        return 1.0 - self._centroid_cos

    @property
    def threshold(self) -> float:
        """The cosine distance alarmed above: ``max_distance``, or the learned one with
        ``target_arl0`` (NaN until the baseline is learned)."""
        if self.target_arl0 is not None and self._baseline is None:
            return math.nan
        return self._max_distance

    @property
    def centroid_cosine(self) -> float:
        """Cosine between the window centroid and the baseline at the last check."""
        return self._centroid_cos

    @property
    def mean_cosine(self) -> float:
        """Mean cosine of the window's vectors to the baseline at the last check."""
        return self._mean_cos

    @property
    def baseline_centroid(self) -> list[float] | None:
        """The baseline in use (given or learned), or ``None`` while learning."""
        return None if self._baseline is None else self._baseline.tolist()

    @property
    def learning_period(self) -> int:
        """Vectors a fresh detector spends learning its baseline (0 if given)."""
        return 0 if self.baseline is not None else self.reference_size

    # -- snapshots -------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "window_size": self.window_size,
            "n_blocks": self.n_blocks,
            "reference_size": self.reference_size,
            "max_distance": self.max_distance,
            "baseline": None if self.baseline is None else list(self.baseline),
            "dim": self.dim,
            "normalize": self.normalize,
            "target_arl0": self.target_arl0,
        }

    def _get_state(self) -> dict[str, Any]:
        learned = self.baseline is None and self._baseline is not None
        return {
            "dim": self._dim,
            "ref_n": self._ref_n,
            "ref_sum": None if self._ref_sum is None else self._ref_sum.tolist(),
            "learned_baseline": self._baseline.tolist() if learned else None,  # type: ignore[union-attr]
            "blocks": [[b.tolist(), c] for b, c in self._blocks],
            "open": None if self._open is None else self._open.tolist(),
            "open_cos": self._open_cos,
            "open_n": self._open_n,
            "centroid_cos": json_float(self._centroid_cos),
            "mean_cos": json_float(self._mean_cos),
            "max_distance": self._max_distance,
            "pair_first": None if self._pair_first is None else self._pair_first.tolist(),
            "last_diff": None if self._last_diff is None else self._last_diff.tolist(),
            "moments": list(self._moments),
        }

    def _upgrade_state(self, version: int, state: Mapping[str, Any]) -> Mapping[str, Any]:
        # Version 1 had no learned max_distance and kept no spread.
        return {
            **state,
            "max_distance": self.max_distance,
            "pair_first": None,
            "last_diff": None,
            "moments": [0.0, 0, 0.0, 0],
        }

    def _set_state(self, state: Mapping[str, Any]) -> None:
        dim = state["dim"]
        if dim is not None:
            dim = get_int(state, "dim", minimum=1)
        if self._dim is not None and dim != self._dim:
            raise ValueError(f"dim {dim!r} does not match {self._dim}")

        def vec(value: Any, what: str) -> FloatArray:
            v = _as_vector(value, what)
            if v.size != dim:
                raise ValueError(f"{what} has {v.size} dimensions, expected {dim}")
            return v

        ref_n = get_int(state, "ref_n")
        ref_sum = None if state["ref_sum"] is None else vec(state["ref_sum"], "ref_sum")
        learned = state["learned_baseline"]
        baseline = self._baseline
        if self.baseline is None:
            require(ref_n <= self.reference_size, "ref_n", "exceeds reference_size")
            if (learned is not None) != (ref_n == self.reference_size):
                raise ValueError("learned_baseline must be set exactly after reference_size")
            if (ref_sum is not None) != (0 < ref_n < self.reference_size):
                raise ValueError("ref_sum must be set exactly while learning")
            baseline = None if learned is None else vec(learned, "learned_baseline")
        elif ref_n or ref_sum is not None or learned is not None:
            raise ValueError("a detector with a given baseline has no learning state")
        blocks = state["blocks"]
        if not isinstance(blocks, list) or len(blocks) > self.n_blocks:
            raise ValueError("too many blocks")
        block_size = self.window_size // self.n_blocks
        open_n = get_int(state, "open_n")
        if open_n >= block_size or (open_n > 0) != (state["open"] is not None):
            raise ValueError("open block is inconsistent")
        if (blocks or open_n) and baseline is None:
            raise ValueError("blocks present before the baseline is known")
        self._dim = dim
        self._ref_n = ref_n
        self._ref_sum = ref_sum
        self._set_baseline(baseline)
        self._clear_blocks()
        for item in blocks:
            b, c = item
            self._blocks.append((vec(b, "block"), float(c)))
        self._open = None if state["open"] is None else vec(state["open"], "open")
        self._open_cos = get_float_or_nan(state, "open_cos")
        self._open_n = open_n
        self._centroid_cos = get_float_or_nan(state, "centroid_cos")
        self._mean_cos = get_float_or_nan(state, "mean_cos")
        max_distance = get_float_or_nan(state, "max_distance")
        if not 0.0 < max_distance <= 2.0:
            raise ValueError("max_distance must be in (0, 2]")
        if self.target_arl0 is None and max_distance != self.max_distance:
            raise ValueError("max_distance differs from the parameter without target_arl0")
        self._max_distance = max_distance
        learning = self.target_arl0 is not None and baseline is None
        pair_first, last_diff = state["pair_first"], state["last_diff"]
        if not learning and (pair_first is not None or last_diff is not None):
            raise ValueError("pair_first/last_diff are kept only while learning")
        if learning and (pair_first is not None) != (ref_n % 2 == 1):
            raise ValueError("pair_first must be set exactly after an odd count")
        self._pair_first = None if pair_first is None else vec(pair_first, "pair_first")
        self._last_diff = None if last_diff is None else vec(last_diff, "last_diff")
        moments = state["moments"]
        if not (isinstance(moments, list) and len(moments) == 4):
            raise ValueError("moments must be four numbers")
        s1 = get_float_or_nan({"v": moments[0]}, "v")
        s2 = get_float_or_nan({"v": moments[2]}, "v")
        n1 = get_int({"v": moments[1]}, "v")
        n2 = get_int({"v": moments[3]}, "v")
        if not (s1 >= 0 and s2 >= 0 and math.isfinite(s1) and math.isfinite(s2)):
            raise ValueError("moments must be finite and >= 0")
        self._moments = [s1, n1, s2, n2]
