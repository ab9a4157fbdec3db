"""Generate ``detectors/arl_table.json``: thresholds for a target ARL0 found offline.

Run: ``python -m benchmarks.arl_table [--n-runs N] [--targets 1e3,1e4,1e5]``.

Some derived monitors have no usable analytic false-alarm rate. ADWIN's cut test
(Bifet & Gavaldà 2007) bounds the probability of a false cut per check by ``delta``,
but the bound is loose by orders of magnitude (``delta`` 0.02, checked every 32
observations, gave one false alarm per ~700,000 observations), so a ``delta``
chosen from it would give away most of the detector's sensitivity. Its threshold
is therefore found by simulation, once, here: :func:`detectors.calibrate` (the
project's ARL0 calibration: run lengths on resampled stable data, bisection on the
threshold) on Bernoulli streams of several base rates — the derived ADWIN watches
an error indicator. The derived monitor uses the smallest ``delta`` over the base
rates (so the target holds at every rate in the table); ``detectors.arl`` reads the
table and interpolates between targets (log-log).

Deterministic (seeded); takes a few minutes of CPU per target of 1e5.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.calibrate import CalibrationError, calibrate

TABLE = Path(__file__).resolve().parent.parent / "detectors" / "arl_table.json"
CLOCK = 32
"""ADWIN's default check interval, the one the derived monitor runs with."""
RATES = (0.02, 0.1, 0.3, 0.5)


def bernoulli_reference(rate: float, size: int = 10_000) -> np.ndarray:
    """A sample with exactly ``round(rate * size)`` ones: bootstrap resamples of it are
    i.i.d. Bernoulli(``rate``)."""
    ones = round(rate * size)
    return np.array([1.0] * ones + [0.0] * (size - ones))


def adwin_entries(targets: Sequence[float], n_runs: int, seed: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for target in targets:
        for rate in RATES:
            started = time.process_time()
            try:
                result = calibrate(
                    "adwin",
                    bernoulli_reference(rate),
                    target,
                    params={"delta": 0.02, "clock": CLOCK},
                    n_runs=n_runs,
                    seed=seed,
                    rtol=0.02,
                    tol=0.1,
                )
            except CalibrationError as exc:
                # ADWIN is quieter than the target at every delta < 1 at this rate:
                # the rate sets no bound, the entry is left out.
                print(f"adwin target {target:g} rate {rate}: {exc}", flush=True)
                continue
            low, high = result.estimate.interval()
            rows.append(
                {
                    "target_arl0": target,
                    "rate": rate,
                    "delta": float(f"{result.threshold:.4g}"),
                    "estimated_arl0": round(result.arl0),
                    "interval": [round(low), round(high)],
                    "alarms": result.estimate.n_alarms,
                    "runs": result.estimate.n_runs,
                }
            )
            print(
                f"adwin target {target:g} rate {rate}: delta {result.threshold:.4g}, "
                f"ARL0 {result.arl0:.0f} ({result.estimate.n_alarms} alarms in "
                f"{result.estimate.n_runs} runs), {time.process_time() - started:.0f}s CPU",
                flush=True,
            )
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="1e4,1e5")
    parser.add_argument("--n-runs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=TABLE)
    args = parser.parse_args(argv)
    targets = [float(t) for t in args.targets.split(",")]
    table = {
        "generated_by": "python -m benchmarks.arl_table "
        f"--targets {args.targets} --n-runs {args.n_runs} --seed {args.seed}",
        "adwin": {"clock": CLOCK, "entries": adwin_entries(targets, args.n_runs, args.seed)},
    }
    args.output.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
