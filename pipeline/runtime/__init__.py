"""The loop: poll -> decode -> monitor -> policy -> publish -> commit."""

from __future__ import annotations

from pipeline.runtime.loop import FailFastError, RunStats, Runtime

__all__ = ["FailFastError", "RunStats", "Runtime"]
