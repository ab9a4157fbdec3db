"""A tiny shared benchmark harness: median-of-repeats timing, machine facts, and
markdown tables. Timing never happens inside tests."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["machine_info", "markdown_table", "median_seconds"]


def median_seconds(
    run: Callable[[Any], object], setup: Callable[[], Any] | None = None, repeats: int = 5
) -> float:
    """Median CPU time of ``run(setup())`` over ``repeats`` runs (setup untimed).

    CPU time of this process (``time.process_time``), not wall time, so that other
    load on a shared machine disturbs the ratios less."""
    samples = []
    for _ in range(repeats):
        arg = setup() if setup is not None else None
        started = time.process_time()
        run(arg)
        samples.append(time.process_time() - started)
    return statistics.median(samples)


def machine_info() -> dict[str, str]:
    """CPU model, core count and interpreter, for the header of a result table."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numpy

    return {
        "cpu": model,
        "nproc": str(
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        ),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "load (1 min)": f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a",
    }


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as a GitHub markdown table (cells converted with ``str``)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |"]
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)
