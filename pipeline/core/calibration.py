"""Thresholds chosen for a target false-alarm rate, found once at start-up.

A monitor with ``calibrate`` names a stable reference (inline values, a JSON list
or a JSONL file of recorded input events); :func:`calibrated_params` reads the
monitor's signal from it and runs :func:`detectors.calibrate` (deterministic: a
seed). The result is cached per (detector, params, reference, settings), so every
engine built from one config in a process pays for the Monte-Carlo search once.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pipeline.config import CalibrationSpec, MonitorSpec
from pipeline.core.decode import Decoder
from pipeline.core.signals import values_of
from pipeline.errors import DecodeError

__all__ = ["calibrated_params", "reference_values"]


def reference_values(spec: MonitorSpec, calib: CalibrationSpec) -> list[Any]:
    """The values of ``spec``'s signal in the reference (at most ``max_events``).

    A ``reference`` path is the one config resolved against the config file's folder.
    Raises ``ValueError`` (naming ``calibrate.reference``) when it cannot be read.
    """
    if calib.values is not None:
        return list(calib.values)[: calib.max_events]
    assert calib.reference is not None
    path = Path(calib.reference)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"calibrate.reference: cannot read {path}: {exc.strerror}") from None
    if path.suffix == ".json":  # a plain list of values of the signal
        try:
            listed = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"calibrate.reference: {path} is not JSON: {exc}") from None
        if not isinstance(listed, list):
            raise ValueError(f"calibrate.reference: {path} must hold a JSON list")
        return listed[: calib.max_events]
    decoder = Decoder(1 << 24)
    values: list[Any] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            event = decoder.decode(line)
        except DecodeError:
            continue
        if calib.model is not None and event.model_id != calib.model:
            continue
        values.extend(value for _signal, value in values_of(spec.signal, event))
        if len(values) >= calib.max_events:
            break
    return values[: calib.max_events]


@functools.lru_cache(maxsize=256)
def _calibrate_cached(detector: str, params_json: str, values_json: str, calib_json: str) -> str:
    from detectors.calibrate import calibrate

    calib = json.loads(calib_json)
    result = calibrate(
        detector,
        json.loads(values_json),
        calib["target_arl0"],
        params=json.loads(params_json),
        n_runs=calib["n_runs"],
        seed=calib["seed"],
        block_size=calib["block_size"],
    )
    return json.dumps(
        {
            "params": result.params,
            "threshold_param": result.threshold_param,
            "threshold": result.threshold,
            "target_arl0": result.target_arl0,
            "estimated_arl0": result.arl0,
            "reference_events": len(json.loads(values_json)),
            "seed": result.seed,
        }
    )


def calibrated_params(spec: MonitorSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """``spec``'s parameters with the calibrated threshold, and what calibration
    found (threshold, estimated ARL0...: the evidence of every alert of the monitor).

    Raises ``ValueError`` whose message starts with the failing key
    (``calibrate: ...`` or ``calibrate.reference: ...``).
    """
    calib = spec.calibrate
    assert calib is not None
    values = reference_values(spec, calib)
    if len(values) < 2:
        raise ValueError("calibrate: the reference holds fewer than 2 values of the signal")
    try:
        text = _calibrate_cached(
            spec.detector,
            json.dumps(spec.params, sort_keys=True),
            json.dumps(values),
            calib.model_dump_json(exclude={"values", "reference", "model", "max_events"}),
        )
    except ValueError as exc:  # CalibrationError is a ValueError
        raise ValueError(f"calibrate: {exc}") from None
    result: dict[str, Any] = json.loads(text)
    return result.pop("params"), result
