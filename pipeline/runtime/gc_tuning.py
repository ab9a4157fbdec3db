"""Garbage-collector settings for the long-running processing loop.

CPython's cyclic collector runs a young-generation pass every 700 allocations and
a full pass every 100 of those. A sidecar allocates several objects per event
(decoded events, queued values, snapshots) and holds tens of thousands of
long-lived ones (detector windows, join buffers) that every full pass walks
again: on the end-to-end benchmark the collector took 15-25 % of the CPU time.
Almost none of the per-event garbage is cyclic (reference counting frees it), so
passes can be much rarer without holding memory longer in practice.
"""

from __future__ import annotations

import gc

__all__ = ["tune_for_throughput"]

YOUNG_THRESHOLD = 50_000
"""Allocations (net of deallocations) between two young-generation passes."""


def tune_for_throughput() -> None:
    """Move everything allocated so far (modules, settings, clients) out of the
    collector's sight, then collect less often. Call once, after start-up."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)
