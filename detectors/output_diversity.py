"""Duplicate-answer rate and distinct-n of generated text over a sliding window."""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import unicodedata
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors._parse import (
    check_fraction,
    check_positive_float,
    check_positive_int,
    get_float_or_nan,
    json_float,
)
from detectors.arl import duplicate_rate_bound
from detectors.base import DriftDetector, InputKind, register, require

__all__ = ["OutputDiversity", "normalize_text"]

_MASK53 = (1 << 53) - 1
_MASK64 = (1 << 64) - 1
_PRIME = 4294967291  # largest prime below 2**32: MinHash permutations (a * h + b) mod p
_BASE = 1_114_111  # shingle polynomial base (above every code point)
U64Array = npt.NDArray[np.uint64]


def normalize_text(text: str) -> str:
    """Unicode NFKC, case-folded, runs of whitespace collapsed to one space, stripped.

    Two answers are exact duplicates when their normalised texts are equal.

    >>> normalize_text("  The answer\\n is   42. ")
    'the answer is 42.'
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _hash53(data: str) -> int:
    """Deterministic 53-bit hash (blake2b): the same in every process, exact in JSON."""
    digest = hashlib.blake2b(data.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK53


@functools.lru_cache(maxsize=1 << 16)
def _word_hash(word: str) -> int:
    """:func:`_hash53` of a word, cached (words are Zipf-distributed; pure function)."""
    return _hash53(word)


def _pair_hash(h1: int, h2: int) -> int:
    """Deterministic 53-bit hash of an ordered pair of 53-bit hashes (a word bigram)."""
    x = (h1 * 0x9E3779B97F4A7C15 + h2 * 0xC2B2AE3D27D4EB4F + 0x165667B19E3779F9) & _MASK64
    x ^= x >> 29
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x ^= x >> 32
    return x & _MASK53


def _shingle_hashes(text: str, k: int) -> U64Array:
    """Polynomial hashes mod ``_PRIME`` of every ``k``-character substring of ``text``
    (the whole text when it is at most ``k`` characters), vectorised."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if codes.size <= k:
        k = max(int(codes.size), 1)
        if codes.size == 0:
            codes = np.zeros(1, dtype=np.uint64)
    n = codes.size - k + 1
    prime = np.uint64(_PRIME)
    h = np.zeros(n, dtype=np.uint64)
    for j in range(k):
        h = (h * np.uint64(_BASE) + codes[j : j + n]) % prime
    return h


def _permutations(num_perm: int) -> tuple[U64Array, U64Array]:
    """Fixed (a, b) of the MinHash permutations, derived with blake2b from their index."""
    a, b = [], []
    for i in range(num_perm):
        digest = hashlib.blake2b(f"driftline-minhash-{i}".encode(), digest_size=8).digest()
        a.append(1 + int.from_bytes(digest[:4], "little") % (_PRIME - 1))
        b.append(int.from_bytes(digest[4:], "little") % _PRIME)
    return np.array(a, dtype=np.uint64)[:, None], np.array(b, dtype=np.uint64)[:, None]


@dataclass
class _Slot:
    """What the window keeps of one response: hashes, never the text."""

    exact: int
    exact_dup: bool
    near_dup: bool
    signature: tuple[int, ...]
    unigrams: list[int]
    bigrams: list[int]
    band_keys: list[tuple[int, tuple[int, ...]]]


@register
class OutputDiversity(DriftDetector[str]):
    r"""Duplicate-answer rate and distinct-n of the last ``window_size`` generated texts.

    A generative model that collapses returns the same answer to different requests.
    For every response the detector keeps only hashes of its normalised text
    (:func:`normalize_text`; all hashes are blake2b or fixed-seed permutations, so
    they are the same in every process):

    * **exact duplicate**: the response's normalised text equals that of one of the
      ``window_size - 1`` responses before it;
    * **near duplicate**: an exact duplicate, or the estimated Jaccard similarity of
      its character ``shingle_size``-gram sets with one of those responses is at least
      ``similarity``. Similarity is estimated with a ``num_perm``-value MinHash
      signature; candidates are found by LSH banding (``bands`` bands of
      ``num_perm / bands`` values) and then checked against ``similarity`` on the
      full signature (standard error of the estimate ``sqrt(J (1 - J) / num_perm)``,
      about 0.05 at ``J = 0.8`` with 64 values);
    * **distinct-n** (n = 1, 2): distinct word n-grams over all n-grams in the window
      (words: whitespace-separated tokens of the normalised text, the first
      ``max_tokens`` of each response).

    ``duplicate_rate`` and ``near_duplicate_rate`` are the fractions of the window's
    responses flagged as such on arrival. ``statistic`` is ``near_duplicate_rate``;
    once the window is full, drift is detected when it exceeds the bound (``threshold``)
    and the window is then emptied. The bound is ``max_duplicate_rate``, or, with
    ``reference_size`` > 0, learned from the first ``reference_size`` responses (no
    alarm before): their near-duplicate fraction :math:`p_0` plus ``z`` binomial
    standard errors of a window, :math:`p_0 + z\sqrt{p_0(1-p_0)/n}` (:math:`p_0` at
    least :math:`1/n`), capped at ``max_duplicate_rate``. Flags are not independent
    (one stock reply makes all its repeats duplicates), so with ``dispersion`` the
    standard error is widened by the reference's own over-dispersion: the variance of
    the flag counts of its consecutive blocks of ``window_size // 4`` responses over
    the binomial variance, :math:`\phi` (at least 1), giving
    :math:`p_0 + \max(z\sqrt{\phi}, z_{min})\sqrt{p_0(1-p_0)/n}`. With ``target_arl0`` the
    bound is :func:`detectors.arl.duplicate_rate_bound` instead: the window count's
    Poisson tail (scaled for :math:`\phi`) at the reference rate's upper 95 %
    confidence bound, so that the target holds for 95 % of references (``z`` and
    ``min_z`` are then unused). Legitimately repeated requests
    (the same prompt from many users) raise the healthy rate: a learned bound follows
    it; a fixed one must be set above it (or chosen with :func:`detectors.calibrate`).

    Memory: O(window_size * (num_perm + 2 * max_tokens)) integers, plus the n-gram and
    LSH bucket counters over the same entries; no text is kept.

    Parameters
    ----------
    window_size
        Responses per window (>= 2).
    max_duplicate_rate
        Alarm threshold on the near-duplicate rate, in (0, 1).
    similarity
        Jaccard similarity of shingle sets from which two responses are near
        duplicates, in (0, 1).
    shingle_size
        Characters per shingle (>= 1); shorter texts are one shingle.
    num_perm
        MinHash signature length; a multiple of ``bands``.
    bands
        LSH bands (>= 1).
    max_tokens
        Words per response counted for distinct-n (>= 1).
    reference_size
        Responses whose near-duplicate fraction sets the bound (0: the fixed
        ``max_duplicate_rate``).
    z
        Standard errors above the learned fraction (> 0).
    dispersion
        Widen the standard error by the reference's block over-dispersion.
    min_z
        Floor on the (widened) multiple of the binomial standard error (>= 0).
    target_arl0
        Learn the bound from the reference for this mean number of responses between
        false alarms (``None``: the ``z`` band; needs ``reference_size`` > 0).

    Examples
    --------
    Varied answers, then a model that keeps answering the same few things:

    >>> import numpy as np
    >>> from detectors.output_diversity import OutputDiversity
    >>> rng = np.random.default_rng(1)
    >>> words = [f"w{i}" for i in range(500)]
    >>> def answer():
    ...     return " ".join(rng.choice(words, size=int(rng.integers(5, 15))))
    >>> canned = ["Sorry, I cannot help with that request.",
    ...           "Sorry, I cannot help with that request!",
    ...           "sorry,  I cannot help with that request."]
    >>> stream = [answer() for _ in range(300)]
    >>> stream += [canned[i % 3] if i % 2 else answer() for i in range(200)]
    >>> detector = OutputDiversity(window_size=50, max_duplicate_rate=0.3)
    >>> for i, text in enumerate(stream):
    ...     _ = detector.update(text)
    ...     if detector.drift_detected:
    ...         print(f"drift at {i}: near-duplicates {detector.near_duplicate_rate:.2f}, "
    ...               f"exact {detector.duplicate_rate:.2f}, "
    ...               f"distinct-2 {detector.distinct_2:.2f}")
    ...         break
    drift at 333: near-duplicates 0.32, exact 0.30, distinct-2 0.75

    The bound learned from the first 200 answers for one false alarm per 10,000:

    >>> learned = OutputDiversity(window_size=50, reference_size=200, target_arl0=10_000)
    >>> hits = learned.update_many(stream)
    >>> round(learned.threshold, 2), hits[0]
    (0.19, 321)
    """

    name: ClassVar[str] = "output_diversity"
    column_path: ClassVar[bool] = True
    input_kind: ClassVar[InputKind] = "text"
    state_version: ClassVar[int] = 2
    upgradable_versions: ClassVar[frozenset[int]] = frozenset({1})
    threshold_param: ClassVar[str | None] = "max_duplicate_rate"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self,
        window_size: int = 100,
        max_duplicate_rate: float = 0.5,
        similarity: float = 0.8,
        shingle_size: int = 5,
        num_perm: int = 64,
        bands: int = 16,
        max_tokens: int = 256,
        reference_size: int = 0,
        z: float = 6.0,
        dispersion: bool = False,
        min_z: float = 0.0,
        target_arl0: float | None = None,
    ) -> None:
        super().__init__()
        self.window_size = check_positive_int(window_size, "window_size", minimum=2)
        self.max_duplicate_rate = check_fraction(max_duplicate_rate, "max_duplicate_rate")
        self.similarity = check_fraction(similarity, "similarity")
        self.shingle_size = check_positive_int(shingle_size, "shingle_size")
        self.num_perm = check_positive_int(num_perm, "num_perm")
        self.bands = check_positive_int(bands, "bands")
        require(
            self.num_perm % self.bands == 0,
            "num_perm",
            f"must be a multiple of bands ({self.bands}), got {num_perm!r}",
        )
        self.max_tokens = check_positive_int(max_tokens, "max_tokens")
        self.reference_size = check_positive_int(reference_size, "reference_size", minimum=0)
        self.z = check_positive_float(z, "z")
        require(isinstance(dispersion, bool), "dispersion", f"must be a bool, got {dispersion!r}")
        self.dispersion = dispersion
        require(
            isinstance(min_z, (int, float)) and math.isfinite(min_z) and min_z >= 0,
            "min_z",
            f"must be a finite number >= 0, got {min_z!r}",
        )
        self.min_z = float(min_z)
        if target_arl0 is not None:
            target_arl0 = check_positive_float(target_arl0, "target_arl0")
            require(target_arl0 >= 2, "target_arl0", f"must be >= 2, got {target_arl0!r}")
            require(
                self.reference_size > 0,
                "target_arl0",
                "learns the bound from the reference: set reference_size",
            )
        self.target_arl0 = target_arl0
        self._block = max(self.window_size // 4, 1)
        self._a, self._b = _permutations(self.num_perm)
        self._rows = self.num_perm // self.bands
        self._min_agree = math.ceil(self.similarity * self.num_perm - 1e-9)
        self.reset()

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._clear_window()
        self._checked: tuple[float, float, float, float] | None = None
        self._ref_seen = 0
        self._ref_near = 0
        # Near-duplicate counts of the reference's completed blocks (None: restored
        # from a version 1 snapshot, which kept none: phi = 1).
        self._ref_blocks: list[int] | None = []
        self._bound: float | None = None  # the target_arl0 bound, once computed

    def _clear_window(self) -> None:
        self._window: deque[_Slot] = deque()
        self._exact: dict[int, int] = {}
        self._buckets: dict[tuple[int, tuple[int, ...]], deque[_Slot]] = {}
        self._unigrams: dict[int, int] = {}
        self._bigrams: dict[int, int] = {}
        self._n_unigrams = 0
        self._n_bigrams = 0
        self._n_exact = 0
        self._n_near = 0

    # -- hashing ----------------------------------------------------------------
    def _signature(self, text: str) -> tuple[int, ...]:
        hashes = _shingle_hashes(text, self.shingle_size)
        values = (self._a * hashes[None, :] + self._b) % np.uint64(_PRIME)
        return tuple(values.min(axis=1).tolist())

    def _band_keys(self, signature: tuple[int, ...]) -> list[tuple[int, tuple[int, ...]]]:
        r = self._rows
        return [(i, signature[i * r : (i + 1) * r]) for i in range(self.bands)]

    def _slot(self, text: str) -> _Slot:
        norm = normalize_text(text)
        words = norm.split(" ")[: self.max_tokens] if norm else []
        unigrams = [_word_hash(w) for w in words]
        bigrams = [_pair_hash(a, b) for a, b in itertools.pairwise(unigrams)]
        signature = self._signature(norm)
        return _Slot(
            _hash53(norm), False, False, signature, unigrams, bigrams, self._band_keys(signature)
        )

    # -- the per-event path ---------------------------------------------------
    def update(self, x: str) -> OutputDiversity:
        if not isinstance(x, str):
            if isinstance(x, float) and not math.isfinite(x):
                raise ValueError(f"output_diversity consumes str, got the non-finite {x!r}")
            raise TypeError(f"output_diversity consumes str, got {type(x).__name__}")
        self._push(self._slot(x))
        return self

    def _push(self, slot: _Slot) -> None:
        self.drift_detected = False
        slot.exact_dup = self._exact.get(slot.exact, 0) > 0
        slot.near_dup = slot.exact_dup or self._has_near_duplicate(slot)
        self._add(slot)
        if len(self._window) > self.window_size:
            self._remove(self._window[0])
        if self._ref_seen < self.reference_size:
            self._ref_seen += 1
            self._ref_near += slot.near_dup
            if self._ref_blocks is not None and self._ref_seen % self._block == 0:
                self._ref_blocks.append(self._ref_near - sum(self._ref_blocks))
            return
        if len(self._window) == self.window_size:
            self._checked = (
                self.near_duplicate_rate,
                self.duplicate_rate,
                self.distinct_1,
                self.distinct_2,
            )
            if self._checked[0] > self.threshold:
                self.drift_detected = True
                self._clear_window()

    def _has_near_duplicate(self, slot: _Slot) -> bool:
        sig = slot.signature
        need = self._min_agree
        seen: set[int] = set()
        for key in slot.band_keys:
            for other in self._buckets.get(key, ()):
                if id(other) in seen:
                    continue
                seen.add(id(other))
                agree = sum(1 for u, v in zip(sig, other.signature, strict=True) if u == v)
                if agree >= need:
                    return True
        return False

    def _add(self, slot: _Slot) -> None:
        self._window.append(slot)
        self._exact[slot.exact] = self._exact.get(slot.exact, 0) + 1
        for key in slot.band_keys:
            bucket = self._buckets.get(key)
            if bucket is None:
                self._buckets[key] = bucket = deque()
            bucket.append(slot)
        for counter, grams in ((self._unigrams, slot.unigrams), (self._bigrams, slot.bigrams)):
            for g in grams:
                counter[g] = counter.get(g, 0) + 1
        self._n_unigrams += len(slot.unigrams)
        self._n_bigrams += len(slot.bigrams)
        self._n_exact += slot.exact_dup
        self._n_near += slot.near_dup

    def _remove(self, slot: _Slot) -> None:
        # The oldest slot: first in the window and in each of its buckets.
        self._window.popleft()
        c = self._exact[slot.exact]
        if c == 1:
            del self._exact[slot.exact]
        else:
            self._exact[slot.exact] = c - 1
        for key in slot.band_keys:
            bucket = self._buckets[key]
            bucket.popleft()
            if not bucket:
                del self._buckets[key]
        for counter, grams in ((self._unigrams, slot.unigrams), (self._bigrams, slot.bigrams)):
            for g in grams:
                c = counter[g]
                if c == 1:
                    del counter[g]
                else:
                    counter[g] = c - 1
        self._n_unigrams -= len(slot.unigrams)
        self._n_bigrams -= len(slot.bigrams)
        self._n_exact -= slot.exact_dup
        self._n_near -= slot.near_dup

    # -- evidence -------------------------------------------------------------
    def _live(self) -> bool:
        return len(self._window) == self.window_size or self._checked is None

    @property
    def near_duplicate_rate(self) -> float:
        """Near-duplicate fraction of the window (of the last full window checked, once
        there was one and the window is refilling); NaN while empty."""
        if not self._live():
            return self._checked[0]  # type: ignore[index]
        return self._n_near / len(self._window) if self._window else math.nan

    @property
    def duplicate_rate(self) -> float:
        """Exact-duplicate fraction of the window (same convention)."""
        if not self._live():
            return self._checked[1]  # type: ignore[index]
        return self._n_exact / len(self._window) if self._window else math.nan

    @property
    def distinct_1(self) -> float:
        """Distinct words / words in the window (same convention; NaN without words)."""
        if not self._live():
            return self._checked[2]  # type: ignore[index]
        return len(self._unigrams) / self._n_unigrams if self._n_unigrams else math.nan

    @property
    def distinct_2(self) -> float:
        """Distinct word bigrams / bigrams in the window (same convention)."""
        if not self._live():
            return self._checked[3]  # type: ignore[index]
        return len(self._bigrams) / self._n_bigrams if self._n_bigrams else math.nan

    @property
    def statistic(self) -> float:
        """``near_duplicate_rate``."""
        return self.near_duplicate_rate

    @property
    def threshold(self) -> float:
        """The bound on the near-duplicate rate: ``max_duplicate_rate``, or the learned
        one once the reference is complete (NaN while it is learned)."""
        if self.reference_size == 0:
            return self.max_duplicate_rate
        if self._ref_seen < self.reference_size:
            return math.nan
        if self.target_arl0 is not None:
            if self._bound is None:
                learned = duplicate_rate_bound(
                    self._ref_near,
                    self._ref_seen,
                    self.overdispersion,
                    window=self.window_size,
                    target_arl0=self.target_arl0,
                )
                self._bound = min(self.max_duplicate_rate, learned)
            return self._bound
        n = self.window_size
        p0 = max(self._ref_near / self._ref_seen, 1.0 / n)
        z = self.z * math.sqrt(self.overdispersion) if self.dispersion else self.z
        z = max(z, self.min_z)
        return min(self.max_duplicate_rate, p0 + z * math.sqrt(p0 * (1.0 - p0) / n))

    @property
    def overdispersion(self) -> float:
        """The reference's :math:`\\phi`: sample variance of its blocks' near-duplicate
        counts over the binomial variance at their mean rate, at least 1 (1 with fewer
        than two blocks, no duplicates, or after a version 1 snapshot).

        Stock replies that come in bursts (10 in every 80 responses) widen the
        learned bound:

        >>> from detectors.output_diversity import OutputDiversity
        >>> def text(i):
        ...     return " ".join(f"w{(i * 7919 + j * 104729) % 5003}" for j in range(8))
        >>> burst = ["Yes." if i % 80 < 10 else text(i) for i in range(400)]
        >>> params = {"window_size": 40, "reference_size": 400, "z": 2.0}
        >>> plain = OutputDiversity(**params)
        >>> wide = OutputDiversity(**params, dispersion=True)
        >>> _ = plain.update_many(burst), wide.update_many(burst)
        >>> round(wide.overdispersion, 1), round(plain.threshold, 3), round(wide.threshold, 3)
        (9.1, 0.212, 0.414)
        """
        blocks = self._ref_blocks
        if not blocks or len(blocks) < 2:
            return 1.0
        b = self._block
        mean = sum(blocks) / len(blocks)
        p = mean / b
        if p <= 0.0 or p >= 1.0:
            return 1.0
        var = sum((c - mean) ** 2 for c in blocks) / (len(blocks) - 1)
        return max(1.0, var / (b * p * (1.0 - p)))

    # -- snapshots -------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "window_size": self.window_size,
            "max_duplicate_rate": self.max_duplicate_rate,
            "similarity": self.similarity,
            "shingle_size": self.shingle_size,
            "num_perm": self.num_perm,
            "bands": self.bands,
            "max_tokens": self.max_tokens,
            "reference_size": self.reference_size,
            "z": self.z,
            "dispersion": self.dispersion,
            "min_z": self.min_z,
            "target_arl0": self.target_arl0,
        }

    def _get_state(self) -> dict[str, Any]:
        return {
            "window": [
                [
                    s.exact,
                    int(s.exact_dup),
                    int(s.near_dup),
                    list(s.signature),
                    s.unigrams,
                    s.bigrams,
                ]
                for s in self._window
            ],
            "checked": None if self._checked is None else [json_float(v) for v in self._checked],
            "reference": [self._ref_seen, self._ref_near],
            "reference_blocks": self._ref_blocks,
        }

    def _upgrade_state(self, version: int, state: Mapping[str, Any]) -> Mapping[str, Any]:
        # Version 1 kept no block counts: its bound stays the plain binomial one.
        return {**state, "reference_blocks": None}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        window = state["window"]
        if not isinstance(window, list) or len(window) > self.window_size:
            raise ValueError("window must be a list of at most window_size entries")

        def ints(value: Any, what: str, bits: int) -> list[int]:
            ok = isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < (1 << bits)
                for v in value
            )
            if not ok:
                raise ValueError(f"{what} must be a list of {bits}-bit non-negative ints")
            return list(value)

        self._clear_window()
        for entry in window:
            exact, exact_dup, near_dup, sig, uni, bi = entry
            signature = tuple(ints(sig, "signature", 32))
            if len(signature) != self.num_perm:
                raise ValueError("signature length does not match num_perm")
            unigrams = ints(uni, "unigrams", 53)
            bigrams = ints(bi, "bigrams", 53)
            if len(unigrams) > self.max_tokens or len(bigrams) != max(len(unigrams) - 1, 0):
                raise ValueError("n-gram lists are inconsistent")
            (exact,) = ints([exact], "exact", 53)
            if exact_dup not in (0, 1) or near_dup not in (0, 1) or exact_dup > near_dup:
                raise ValueError("duplicate flags must be 0/1 and exact implies near")
            keys = self._band_keys(signature)
            self._add(
                _Slot(exact, bool(exact_dup), bool(near_dup), signature, unigrams, bigrams, keys)
            )
        reference = state.get("reference", [0, 0])
        ref_seen, ref_near = ints(list(reference), "reference", 53)
        if len(reference) != 2 or ref_near > ref_seen or ref_seen > self.reference_size:
            raise ValueError("reference must be [seen, near duplicates] within reference_size")
        self._ref_seen, self._ref_near = ref_seen, ref_near
        self._bound = None
        blocks = state["reference_blocks"]
        if blocks is None:
            self._ref_blocks = None
        else:
            counts = ints(blocks, "reference_blocks", 53)
            if (
                len(counts) != ref_seen // self._block
                or any(c > self._block for c in counts)
                or sum(counts) > ref_near
            ):
                raise ValueError("reference_blocks must be the completed blocks' counts")
            self._ref_blocks = counts
        checked = state["checked"]
        if checked is None:
            self._checked = None
        else:
            if not isinstance(checked, list) or len(checked) != 4:
                raise ValueError("checked must be four numbers")
            values = [get_float_or_nan({"v": v}, "v") for v in checked]
            self._checked = (values[0], values[1], values[2], values[3])
