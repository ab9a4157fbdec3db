"""The loop: poll -> decode -> monitor -> policy -> publish -> checkpoint, one owner of
commits, driven by ``driftline run`` (``sidecar``), ``replay`` and ``backtest``."""

from __future__ import annotations

from pipeline.runtime.checkpoint import Checkpoint, Delivery
from pipeline.runtime.loop import FailFastError, Loop, LoopHooks, RunStats

__all__ = ["Checkpoint", "Delivery", "FailFastError", "Loop", "LoopHooks", "RunStats"]
