"""The default set's KS test with its reference as knots against the exact test: how
far D moves, and whether the false-alarm rate and the power stay those of the exact
two-sample test (``KSWindow(reference_knots=q)``; docs/architecture.md, "State").

Each trial draws a reference of m = 3,000 and a window of n = 500 values from the same
distribution (null) or the window from one at KS distance 0.1 (a location shift), and
computes m*n*D from the exact counts and from the knots' counts, as ``KSWindow`` does.
Rejection rates are at the test's own critical values for m and n. Run:
``python -m benchmarks.ks_knots [--trials N] [--knots 256]``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import numpy as np

from detectors._ks_knots import KnotReference
from detectors._stats import ks_critical_count

M, N = 3000, 500
ALPHAS = (0.05, 0.01, 1e-3, 2e-4)
Sampler = Callable[[np.random.Generator, int, float], np.ndarray]


def normal(rng: np.random.Generator, size: int, shift: float) -> np.ndarray:
    return rng.normal(shift, 1.0, size)


def amounts(rng: np.random.Generator, size: int, shift: float) -> np.ndarray:
    """Log-normal amounts in cents (ties at the cent)."""
    return np.round(np.exp(rng.normal(3.0 + shift, 1.0, size)), 2)


def tenures(rng: np.random.Generator, size: int, shift: float) -> np.ndarray:
    """Whole days (heavy ties)."""
    return np.round(rng.gamma(2.0, 200.0 * (1.0 + shift), size))


# changes of KS distance ~0.1: location +0.25 sd; scale x1.2 for the gamma(2) days
SAMPLERS: dict[str, tuple[Sampler, float]] = {
    "normal": (normal, 0.2507),
    "log-normal cents": (amounts, 0.2507),
    "whole days": (tenures, 0.2),
}


def count_statistic(lo: np.ndarray, hi: np.ndarray) -> int:
    """m*n*D from a window's counts in the reference (each row sorted)."""
    k = np.arange(N)
    return int(max((N * np.sort(lo) - M * k).max(), (M * (k + 1) - N * np.sort(hi)).max()))


def trial(rng: np.random.Generator, sample: Sampler, shift: float, knots: int) -> tuple[int, int]:
    ref = np.sort(sample(rng, M, 0.0))
    win = sample(rng, N, shift)
    exact = count_statistic(ref.searchsorted(win, "left"), ref.searchsorted(win, "right"))
    lo, hi = KnotReference.of_sorted(ref, knots).counts_of(win)
    return exact, count_statistic(lo, hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    parser.add_argument("--knots", type=int, default=256)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    critical = {a: ks_critical_count(a, M, N) for a in ALPHAS}
    print(
        f"KS m={M}, n={N}, reference as {args.knots} + 1 knots vs exact; {args.trials} trials "
        f"per row, seed {args.seed}; load (1 min) {os.getloadavg()[0]:.2f}"
    )
    head = "| data | window | mean abs(D_knots - D) | max | "
    head += " | ".join(f"reject at {a:g}: exact / knots" for a in ALPHAS) + " |"
    print(head)
    print("|" + " --- |" * (4 + len(ALPHAS)))
    rng = np.random.default_rng(args.seed)
    for name, (sample, shift) in SAMPLERS.items():
        for label, s in (("same distribution", 0.0), ("KS distance ~0.1", shift)):
            pairs = np.array([trial(rng, sample, s, args.knots) for _ in range(args.trials)])
            diff = np.abs(pairs[:, 1] - pairs[:, 0]) / (M * N)
            rates = [
                f"{(pairs[:, 0] >= c).mean():.4f} / {(pairs[:, 1] >= c).mean():.4f}"
                for c in critical.values()
            ]
            print(
                f"| {name} | {label} | {diff.mean():.5f} | {diff.max():.5f} | "
                + " | ".join(rates)
                + " |"
            )
    print(f"bound: |D_knots - D| < 1/{args.knots} = {1 / args.knots:.5f}")


if __name__ == "__main__":
    main()
