"""Per-response mean token surprisal from ``token_logprobs``, tracked by a two-sided CUSUM."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from detectors._parse import (
    Direction,
    check_direction,
    check_positive_float,
    check_positive_int,
    get_float_or_nan,
    get_int,
    json_float,
)
from detectors.arl import empirical_cusum_h
from detectors.base import DriftDetector, InputKind, register, require

__all__ = ["TokenEntropy", "mean_surprisal"]

_POSITIVE_SLACK = 1e-6
"""Log-probabilities up to this much above 0 are accepted (rounding in the serving stack)."""


def mean_surprisal(token_logprobs: Sequence[float]) -> float:
    """Mean surprisal ``-mean(token_logprobs)`` of one response, in nats per token.

    ``token_logprobs`` are the natural-log probabilities the model gave the tokens it
    generated. Since ``E_{t ~ p}[-ln p(t)] = H(p)``, this is the Monte-Carlo estimate
    (one sample per position) of the model's mean predictive entropy over the
    response. Values must be finite and <= 0 (up to 1e-6 above 0 is accepted as
    rounding in the serving stack); an empty response raises ``ValueError``.

    >>> mean_surprisal([-0.5, -1.5, 0.0])
    0.6666666666666666
    """
    if isinstance(token_logprobs, (str, bytes)):
        raise TypeError("token_logprobs must be a sequence of numbers")
    if isinstance(token_logprobs, (int, float)):
        if isinstance(token_logprobs, float) and not math.isfinite(token_logprobs):
            raise ValueError(f"token_logprobs must be finite, got {token_logprobs!r}")
        raise TypeError("token_logprobs must be a sequence of numbers, not one number")
    values = token_logprobs if isinstance(token_logprobs, list) else list(token_logprobs)
    n = len(values)
    if n == 0:
        raise ValueError("token_logprobs must contain at least one token")
    total = -sum(values)  # left to right: deterministic for a given response
    if not math.isfinite(total):
        raise ValueError("token log-probabilities must be finite")
    if max(values) > _POSITIVE_SLACK:
        raise ValueError(f"token log-probabilities must be <= 0, got {max(values)!r}")
    return total / n


@register
class TokenEntropy(DriftDetector[Sequence[float]]):
    r"""Mean token surprisal per response, tracked with a two-sided standardised CUSUM.

    Each observation is one generated response's ``token_logprobs``; the detector
    reduces it to ``s = -mean(token_logprobs)`` (nats per token, see
    :func:`mean_surprisal`). The first ``reference_size`` responses give the
    reference mean ``mu`` and standard deviation ``sigma`` of ``s`` (floored at
    ``min_std``). Afterwards, with ``z = (s - mu) / sigma``,

    .. math::

        S^+_t = \max(0, S^+_{t-1} + z_t - \text{allowance}), \qquad
        S^-_t = \max(0, S^-_{t-1} - z_t - \text{allowance}),

    (with ``clip``, ``z`` is first clipped to ``[-clip, clip]``), and drift is detected
    when the statistic -- ``S^-`` for ``direction="lower"``
    (surprisal falls: the model grows over-confident and repetitive, the early sign
    of generative collapse), ``S^+`` for ``"upper"`` (the model grows unsure), their
    maximum for ``"both"`` -- exceeds ``h``. Both sums restart at 0 after a
    detection; the reference is kept (``reset()`` forgets it).

    With ``target_arl0`` the decision interval is learned instead: when the reference
    is complete, ``h`` is the one whose in-control ARL under the reference's own
    *empirical* distribution of standardised surprisals is ``target_arl0``
    (:func:`detectors.arl.empirical_cusum_h`: the Brook-Evans Markov chain), raised by
    a bootstrap of that rule so that the ARL0 is at least ``target_arl0`` for 95 % of
    warm-ups (one warm-up's estimation error otherwise leaves some series far more
    sensitive than the target). Per-response surprisal is a mixture (short stock
    replies sit far below the rest) with a heavy lower tail, for which the normal
    theory (Siegmund) gives too small an ``h``. The ``h`` parameter is then unused;
    ``threshold`` is the learned one. Learning it costs ~2 CPU-s once per series.

    ``clip`` makes it a winsorised CUSUM (after Lucas & Crosier 1982): one response
    moves a sum by at most ``clip - allowance``, so a handful of extreme responses
    cannot raise an alarm by themselves, and the chart's false-alarm rate depends far
    less on how many of them its reference happened to hold -- which, with the heavy
    lower tail, is what left some series far more sensitive than the target. A
    shift of the bulk of the responses is found almost as fast. With ``target_arl0``
    the learned ``h`` is that of the clipped chart.

    Memory: O(1) -- a handful of floats; a response's log-probabilities are reduced
    as they are read. With ``target_arl0``, the reference's surprisals (one float per
    response) are kept until the reference is complete.

    Parameters
    ----------
    reference_size
        Number of first responses that define ``mu`` and ``sigma`` (>= 2).
    h
        CUSUM decision interval, in reference standard deviations; the alarm threshold.
    allowance
        CUSUM slack ``k`` per response, in reference standard deviations (about half
        the shift, in sigmas, that should be found fastest).
    direction
        ``"lower"``, ``"upper"`` or ``"both"``.
    min_std
        Floor of ``sigma`` (nats), so a near-constant reference cannot make every
        later response an alarm.
    target_arl0
        Learn ``h`` from the reference for this mean number of responses between
        false alarms (``None``: use ``h``).
    clip
        Clip standardised surprisals to ``[-clip, clip]`` before the sums (``None``:
        no clipping); must exceed ``allowance``.

    Examples
    --------
    Responses of 20-60 tokens whose mean surprisal falls from about 1.2 to 1.0 nats
    per token after response 600 (about one reference standard deviation):

    >>> import numpy as np
    >>> from detectors.token_entropy import TokenEntropy
    >>> rng = np.random.default_rng(3)
    >>> def response(scale):
    ...     return (-rng.exponential(scale, size=int(rng.integers(20, 60)))).tolist()
    >>> stream = [response(1.2) for _ in range(600)] + [response(1.0) for _ in range(200)]
    >>> detector = TokenEntropy(reference_size=300, h=8.0, direction="lower")
    >>> for i, logprobs in enumerate(stream):
    ...     _ = detector.update(logprobs)
    ...     if detector.drift_detected:
    ...         print(f"drift at {i}: surprisal {detector.surprisal:.2f} "
    ...               f"(reference {detector.reference_mean:.2f}), CUSUM {detector.statistic:.1f}")
    ...         break
    drift at 613: surprisal 0.85 (reference 1.20), CUSUM 8.7

    The same stream with ``h`` learned for one false alarm per 10,000 responses:

    >>> learned = TokenEntropy(reference_size=300, direction="lower", target_arl0=10_000)
    >>> hits = learned.update_many(stream)
    >>> round(learned.threshold, 2), hits[0]
    (8.9, 624)
    """

    name: ClassVar[str] = "token_entropy"
    column_path: ClassVar[bool] = True
    input_kind: ClassVar[InputKind] = "logprobs"
    state_version: ClassVar[int] = 2
    upgradable_versions: ClassVar[frozenset[int]] = frozenset({1})
    threshold_param: ClassVar[str | None] = "h"
    threshold_increases_run_length: ClassVar[bool] = True

    def __init__(
        self,
        reference_size: int = 200,
        h: float = 10.0,
        allowance: float = 0.5,
        direction: Direction = "both",
        min_std: float = 1e-3,
        target_arl0: float | None = None,
        clip: float | None = None,
    ) -> None:
        super().__init__()
        self.reference_size = check_positive_int(reference_size, "reference_size", minimum=2)
        self.h = check_positive_float(h, "h")
        self.allowance = check_positive_float(allowance, "allowance", allow_zero=True)
        self.direction: Direction = check_direction(direction)
        self.min_std = check_positive_float(min_std, "min_std")
        if target_arl0 is not None:
            target_arl0 = check_positive_float(target_arl0, "target_arl0")
            require(target_arl0 >= 2, "target_arl0", f"must be >= 2, got {target_arl0!r}")
        self.target_arl0 = target_arl0
        if clip is not None:
            clip = check_positive_float(clip, "clip")
            require(clip > self.allowance, "clip", f"must exceed allowance, got {clip!r}")
        self.clip = clip
        self.reset()

    def reset(self) -> None:
        self.drift_detected = False
        self.warning_detected = False
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._mu = math.nan
        self._sigma = math.nan
        self._upper = 0.0
        self._lower = 0.0
        self._last = math.nan
        self._stat = 0.0
        self._h = self.h
        # The reference's surprisals, kept only while learning h (target_arl0).
        self._values: list[float] | None = None if self.target_arl0 is None else []

    def update(self, x: Sequence[float]) -> TokenEntropy:
        s = mean_surprisal(x)
        self.drift_detected = False
        self._last = s
        if self._n < self.reference_size:
            # Welford's running mean and sum of squared deviations.
            self._n += 1
            delta = s - self._mean
            self._mean += delta / self._n
            self._m2 += delta * (s - self._mean)
            if self._values is not None:
                self._values.append(s)
            if self._n == self.reference_size:
                self._mu = self._mean
                self._sigma = max(math.sqrt(self._m2 / (self._n - 1)), self.min_std)
                self._learn_h()
            return self
        z = (s - self._mu) / self._sigma
        if self.clip is not None:
            z = min(self.clip, max(-self.clip, z))
        self._upper = max(0.0, self._upper + z - self.allowance)
        self._lower = max(0.0, self._lower - z - self.allowance)
        if self.direction == "lower":
            stat = self._lower
        elif self.direction == "upper":
            stat = self._upper
        else:
            stat = max(self._upper, self._lower)
        self._stat = stat
        if stat > self._h:
            self.drift_detected = True
            self._upper = 0.0
            self._lower = 0.0
        return self

    def _learn_h(self) -> None:
        values, self._values = self._values, None
        if values is None or self.target_arl0 is None:
            return
        # Standardised by the floored sigma, as the chart sees them.
        z = [(v - self._mu) / self._sigma for v in values]
        self._h = empirical_cusum_h(
            z,
            self.allowance,
            self.target_arl0,
            upper=self.direction != "lower",
            lower=self.direction != "upper",
            clip=self.clip,
        )

    # -- evidence -------------------------------------------------------------
    @property
    def statistic(self) -> float:
        """The CUSUM sum watched by ``direction`` after the last response (before the
        restart that follows a detection, so an alert carries the crossing value); 0
        while learning."""
        return self._stat

    @property
    def threshold(self) -> float:
        """The decision interval in use: ``h``, or the learned one with ``target_arl0``
        (NaN until the reference is complete)."""
        if self.target_arl0 is not None and self._n < self.reference_size:
            return math.nan
        return self._h

    @property
    def surprisal(self) -> float:
        """Mean surprisal (nats/token) of the last response."""
        return self._last

    @property
    def reference_mean(self) -> float:
        """Reference mean surprisal ``mu`` (NaN while learning)."""
        return self._mu

    @property
    def reference_std(self) -> float:
        """Reference standard deviation ``sigma`` (floored; NaN while learning)."""
        return self._sigma

    @property
    def cusum_upper(self) -> float:
        return self._upper

    @property
    def cusum_lower(self) -> float:
        return self._lower

    @property
    def learning_period(self) -> int:
        """Responses a fresh detector spends learning its reference."""
        return self.reference_size

    # -- snapshots -------------------------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {
            "reference_size": self.reference_size,
            "h": self.h,
            "allowance": self.allowance,
            "direction": self.direction,
            "min_std": self.min_std,
            "target_arl0": self.target_arl0,
            "clip": self.clip,
        }

    def _get_state(self) -> dict[str, Any]:
        return {
            "n": self._n,
            "mean": self._mean,
            "m2": self._m2,
            "mu": json_float(self._mu),
            "sigma": json_float(self._sigma),
            "upper": self._upper,
            "lower": self._lower,
            "last": json_float(self._last),
            "stat": self._stat,
            "h": self._h,
            "values": self._values,
        }

    def _upgrade_state(self, version: int, state: Mapping[str, Any]) -> Mapping[str, Any]:
        # Version 1 had no learned h (h was always the parameter) and kept no values.
        return {**state, "h": self.h, "values": None}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        n = get_int(state, "n")
        require(n <= self.reference_size, "n", "exceeds reference_size")
        mu, sigma = get_float_or_nan(state, "mu"), get_float_or_nan(state, "sigma")
        learned = n == self.reference_size
        if learned != (math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
            raise ValueError("mu/sigma must be set exactly when the reference is learned")
        upper, lower = get_float_or_nan(state, "upper"), get_float_or_nan(state, "lower")
        if not (upper >= 0 and lower >= 0 and math.isfinite(upper) and math.isfinite(lower)):
            raise ValueError("CUSUM sums must be finite and >= 0")
        self._n = n
        self._mean = get_float_or_nan(state, "mean")
        self._m2 = get_float_or_nan(state, "m2")
        self._mu, self._sigma = mu, sigma
        self._upper, self._lower = upper, lower
        self._last = get_float_or_nan(state, "last")
        self._stat = get_float_or_nan(state, "stat")
        h = get_float_or_nan(state, "h")
        if not (math.isfinite(h) and h > 0):
            raise ValueError("h must be a finite number > 0")
        values = state["values"]
        learning = self.target_arl0 is not None and n < self.reference_size
        if learning:
            ok = isinstance(values, list) and len(values) == n
            if not ok or not all(math.isfinite(get_float_or_nan({"v": v}, "v")) for v in values):
                raise ValueError("values must be the reference's n surprisals while learning")
            self._values = [float(v) for v in values]
        elif values is not None:
            raise ValueError("values are kept only while learning h")
        else:
            self._values = None
        if self.target_arl0 is None and h != self.h:
            raise ValueError("h differs from the parameter without target_arl0")
        self._h = h
