"""False alarms of ``token_entropy``'s learned ``h`` at ``target_arl0``, averaged over warm-ups.

Run: ``python -m benchmarks.surprisal_arl [--target 1e5] [--series 100] [--reference 1000]``
``[--allowance K] [--clip C] [--detector N --length L]``.

The derived ``token_entropy`` monitor learns its CUSUM's ``h`` from its first 1,000
responses (:func:`detectors.arl.empirical_cusum_h`). Checking that at an ARL0 of 1e5
through the detector costs ~1e7 updates per estimate, so this runs the same chart
vectorised over ``--series`` independent series: each draws its own warm-up of
answer surprisals from the quality benchmark's generator (``benchmarks.quality``:
5 % stock replies of 3 near-certain tokens, the rest 8-39 tokens of Gamma(1.2, 1.6)
surprisal; drawn here directly as per-response means), learns its mean, standard
deviation and ``h`` exactly as the detector does, then runs a two-sided CUSUM
(the derived monitor's allowance 0.25 and standardised values clipped to ``[-clip,
clip]``, 2.5, by default; ``--allowance 0.5 --clip 0`` is the rule before them; sums
restarted after an alarm) over ``4 x target`` fresh responses.

Printed: the learned ``h`` (mean, range), the alarms, and the ARL0 averaged over the
series (all responses / all alarms: the false-alarm rate a fleet of series sees),
with its 95 % interval; the spread between warm-ups (each series' own ARL0 by
the Markov chain on a 400,000-response sample of the true distribution); and what
that costs in delay: each series' mean responses to an alarm after the surprisal of
``benchmarks.quality``'s ``collapse`` answers falls by 0.5 and 0.25 stable standard
deviations (the Markov chain from empty sums, on 400,000 changed responses). With
``--detector N``, also ``N`` series of ``L`` responses of token log-probabilities drawn
as ``benchmarks.quality`` draws them (rounded to 4 decimals) through the real
``TokenEntropy`` (reference 1,000, ``target_arl0``): its alarms after the warm-ups. Never
asserts anything.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from benchmarks.harness import machine_info
from benchmarks.quality import collapse_shrink
from detectors.arl import empirical_cusum_h, markov_arl
from detectors.token_entropy import TokenEntropy

FloatArray = npt.NDArray[np.float64]
ALLOWANCE = 0.25
CLIP = 2.5
"""The derived ``token_entropy`` monitor's allowance and clip (``pipeline.core.monitor_set``)."""


def surprisals(rng: np.random.Generator, shape: tuple[int, ...], shrink: float = 1.0) -> FloatArray:
    """Per-response mean surprisal of ``benchmarks.quality``'s stable answers (with
    ``shrink``, of its ``collapse`` answers after the change: token surprisals scaled)."""
    stock = rng.random(shape) < 0.05
    length = rng.integers(8, 40, size=shape)
    answer = rng.gamma(1.2 * length, 1.6 * shrink) / length  # mean of `length` Gamma(1.2, 1.6)
    reply = rng.gamma(3.0, 0.3, size=shape) / 3.0  # mean of 3 Exp(0.3)
    return np.where(stock, reply, answer)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=1e5)
    parser.add_argument("--series", type=int, default=100)
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allowance", type=float, default=ALLOWANCE)
    parser.add_argument("--clip", type=float, default=CLIP, help="0: no clipping")
    parser.add_argument("--detector", type=int, default=0, help="series through the detector")
    parser.add_argument("--length", type=int, default=41_000, help="responses per such series")
    args = parser.parse_args(argv)
    clip, k = args.clip or None, args.allowance
    rng = np.random.default_rng(args.seed)
    n, m, steps = args.series, args.reference, int(4 * args.target)
    reference = surprisals(rng, (n, m))
    mu = reference.mean(axis=1)
    sd = reference.std(axis=1, ddof=1)
    started = time.process_time()
    h = np.array([empirical_cusum_h((reference[i] - mu[i]) / sd[i], k, args.target,
                                    clip=clip)
                  for i in range(n)])  # fmt: skip
    learn_seconds = (time.process_time() - started) / n
    upper = np.zeros(n)
    lower = np.zeros(n)
    alarms = np.zeros(n, dtype=np.int64)
    chunk = 5000
    for _ in range(math.ceil(steps / chunk)):
        for z in _clipped((surprisals(rng, (chunk, n)) - mu) / sd, clip):
            upper = np.maximum(0.0, upper + z - k)
            lower = np.maximum(0.0, lower - z - k)
            hit = (upper > h) | (lower > h)
            if hit.any():
                alarms += hit
                upper[hit] = 0.0
                lower[hit] = 0.0
    exposure = n * math.ceil(steps / chunk) * chunk
    total = int(alarms.sum())
    # each series' own ARL0 under the true distribution (a large sample of it)
    truth = surprisals(np.random.default_rng([args.seed, 1]), (400_000,))
    changed = {
        effect: surprisals(
            np.random.default_rng([args.seed, 2]), (400_000,), collapse_shrink(effect)
        )
        for effect in EFFECTS
    }
    own = []
    delays: dict[float, list[float]] = {effect: [] for effect in EFFECTS}
    for i in range(n):
        z = _clipped((truth - mu[i]) / sd[i], clip)
        rate = 1.0 / markov_arl(np.sort(z - k), float(h[i]))
        rate += 1.0 / markov_arl(np.sort(-z - k), float(h[i]))
        own.append(1.0 / rate)
        for effect, values in changed.items():
            drop = _clipped((values - mu[i]) / sd[i], clip)
            delays[effect].append(markov_arl(np.sort(-drop - k), float(h[i])))
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['nproc']} cores, load {info['load (1 min)']}")
    print(
        f"target_arl0 {args.target:g}: {n} series, warm-up {m} responses each, "
        f"{exposure:,} responses after it; allowance {k:g}, clip {clip or 'none'}; "
        f"seed {args.seed}"
    )
    print(
        f"learned h: mean {h.mean():.2f}, range {h.min():.2f}-{h.max():.2f} "
        f"({learn_seconds:.2f} CPU-s per series to learn)"
    )
    low, high = _poisson_interval(total)
    arl = exposure / total if total else math.inf
    print(
        f"alarms: {total}; ARL0 over all series {arl:,.0f} "
        f"(95 % {exposure / high:,.0f}-{exposure / low if low else math.inf:,.0f})"
    )
    q = np.quantile(own, [0.05, 0.5, 0.95])
    print(f"each series' own ARL0 (Markov chain): 5 % {q[0]:,.0f}, median {q[1]:,.0f}, "
          f"95 % {q[2]:,.0f}")  # fmt: skip
    for effect, found in delays.items():
        d = np.quantile(found, [0.5, 0.95])
        print(f"responses to an alarm after a drop of {effect:g} sd: median over series "
              f"{d[0]:,.0f}, 95 % {d[1]:,.0f}")  # fmt: skip
    if args.detector:
        through_detector(
            args.detector, args.length, args.reference, args.target, args.seed, k, clip
        )


EFFECTS = (0.5, 0.25)
"""Drops of the mean surprisal, in stable standard deviations (``benchmarks.quality``)."""


def _clipped(z: FloatArray, clip: float | None) -> FloatArray:
    return z if clip is None else np.clip(z, -clip, clip)


def _logprobs(rng: np.random.Generator, n: int) -> list[list[float]]:
    """Token log-probabilities of ``n`` stable answers, as ``benchmarks.quality`` draws them."""
    out = []
    for _ in range(n):
        if rng.random() < 0.05:
            values = np.round(-rng.exponential(0.3, size=3), 4)
        else:
            values = np.round(-rng.gamma(1.2, 1.6, size=int(rng.integers(8, 40))), 4)
        out.append([min(0.0, float(x)) for x in values])
    return out


def through_detector(
    series: int,
    length: int,
    reference: int,
    target: float,
    seed: int,
    allowance: float,
    clip: float | None,
) -> None:
    alarms = 0
    learned = []
    for i in range(series):
        detector = TokenEntropy(
            reference_size=reference, allowance=allowance, target_arl0=target, clip=clip
        )
        alarms += len(detector.update_many(_logprobs(np.random.default_rng([seed, 2, i]), length)))
        learned.append(detector.threshold)
    exposure = series * (length - reference)
    low, high = _poisson_interval(alarms)
    print(
        f"through TokenEntropy: {series} series of {length:,} responses, h "
        f"{min(learned):.2f}-{max(learned):.2f}; alarms {alarms} in {exposure:,} after the "
        f"warm-ups: ARL0 {exposure / max(alarms, 1):,.0f} "
        f"(95 % {exposure / high:,.0f}-{exposure / low if low else math.inf:,.0f})"
    )


def _poisson_interval(count: int) -> tuple[float, float]:
    """Approximate 95 % interval of a Poisson mean from ``count`` events (Byar)."""
    if count == 0:
        return 0.0, 3.69
    low = count * (1 - 1 / (9 * count) - 1.96 / (3 * math.sqrt(count))) ** 3
    c = count + 1
    high = c * (1 - 1 / (9 * c) + 1.96 / (3 * math.sqrt(c))) ** 3
    return low, high


if __name__ == "__main__":
    main()
