"""driftline detectors: pure, deterministic online drift detectors.

No I/O and no import of ``pipeline``. Every detector follows the protocol of
``detectors.base.DriftDetector`` and is registered by name in ``REGISTRY``.
"""

from __future__ import annotations

from detectors.base import REGISTRY, DetectorState, DriftDetector, StateError, create, get

# Detector modules register themselves on import (one import line each).

__all__ = [
    "REGISTRY",
    "DetectorState",
    "DriftDetector",
    "StateError",
    "create",
    "get",
]
