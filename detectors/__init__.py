"""driftline detectors: pure, deterministic online drift detectors.

No I/O and no import of ``pipeline``. Every detector follows the protocol of
``detectors.base.DriftDetector`` and is registered by name in ``REGISTRY``.
"""

from __future__ import annotations

# Detector modules register themselves on import (one import line each).
from detectors.adwin import ADWIN
from detectors.base import REGISTRY, DetectorState, DriftDetector, StateError, create, get
from detectors.calibrate import Calibration, CalibrationError, calibrate, estimate_arl0
from detectors.categorical_drift import CategoricalDrift
from detectors.categorical_sr import CategoricalSR
from detectors.cusum import CUSUM
from detectors.ddm import DDM
from detectors.embedding_drift import EmbeddingDrift
from detectors.entropy import EntropyTracker
from detectors.ewma import EWMA
from detectors.hddm_a import HDDM_A
from detectors.ks_window import KSWindow
from detectors.output_diversity import OutputDiversity
from detectors.page_hinkley import PageHinkley
from detectors.rolling_threshold import RollingThreshold
from detectors.token_entropy import TokenEntropy

__all__ = [
    "REGISTRY",
    "DetectorState",
    "DriftDetector",
    "StateError",
    "create",
    "get",
    "ADWIN",
    "CUSUM",
    "DDM",
    "EWMA",
    "HDDM_A",
    "KSWindow",
    "PageHinkley",
    "Calibration",
    "CalibrationError",
    "CategoricalDrift",
    "CategoricalSR",
    "EmbeddingDrift",
    "EntropyTracker",
    "OutputDiversity",
    "RollingThreshold",
    "TokenEntropy",
    "calibrate",
    "estimate_arl0",
]
