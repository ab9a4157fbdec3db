"""Contract checks the per-detector tests of the distribution detectors share.

The shared suite (tests/detectors/test_contract.py) runs the same properties over
every registered detector; these run the cases of cases_distribution.py on a few
seeds directly, so each test_<name>.py is self-contained.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from detectors.base import DriftDetector
from tests.detectors.cases_distribution import CASES


def roundtrip(detector: DriftDetector[Any]) -> DriftDetector[Any]:
    """A detector restored from the plain-JSON text of ``detector.to_state()``."""
    return type(detector).from_state(json.loads(json.dumps(detector.to_state())))


def dumps(detector: DriftDetector[Any]) -> str:
    return json.dumps(detector.to_state(), sort_keys=True)


def check_contract(
    name: str, seed: int, n: int = 400, factory: Callable[[], DriftDetector[Any]] | None = None
) -> None:
    """The contract on ``name``'s case stream, with the case's detector or ``factory``'s."""
    case = CASES[name]
    if factory is not None:
        case = dataclasses.replace(case, factory=factory, invalid=())
    stream = case.stream(np.random.default_rng(seed), n)

    one = case.factory()
    per_event = []
    for i, x in enumerate(stream):
        one.update(x)
        if one.drift_detected:
            per_event.append(i)
    assert per_event, f"{name}: the contract stream must make the case fire"

    batch = case.factory()
    assert batch.update_many(stream) == per_event
    assert dumps(batch) == dumps(one)

    # Snapshot mid-stream, restore from JSON text, continue: same detections, same end.
    for cut in (0, 1, n // 3, n // 2 + 7, n - 1):
        head = case.factory()
        first = head.update_many(stream[:cut])
        restored = roundtrip(head)
        assert dumps(restored) == dumps(head)
        rest = [cut + i for i in restored.update_many(stream[cut:])]
        assert first + rest == per_event
        assert dumps(restored) == dumps(one)

    # reset() forgets everything but the hyperparameters.
    one.reset()
    assert dumps(one) == dumps(case.factory())

    for kwargs, param in case.invalid:
        with pytest.raises(ValueError, match=param):
            type(one)(**kwargs)


def first_detection_after(detector: DriftDetector[Any], stream: Any, start: int) -> int | None:
    """Delay (events after ``start``) of the first detection at or after ``start``;
    asserts there is none before it."""
    hits = detector.update_many(stream)
    assert [h for h in hits if h < start] == [], f"false alarm before the change: {hits}"
    after = [h for h in hits if h >= start]
    return after[0] - start if after else None


def calibrated_quiet(
    prototype: DriftDetector[Any],
    reference: Any,
    fresh: Any,
    *,
    target_arl0: int = 2000,
) -> float:
    """Calibrate ``prototype`` for ``target_arl0`` on ``reference`` (cheaply: 30 runs)
    and assert a fresh detector stays quiet over ``fresh`` (stable, warm-up included).

    With ``len(fresh) - warm-up = target_arl0 / 10`` the chance of a false alarm is
    about 10 %; the seeds of the callers are fixed. Returns the threshold.
    """
    from detectors.calibrate import calibrate

    result = calibrate(prototype, reference, target_arl0, n_runs=30, seed=0)
    detector = result.build()
    assert detector.update_many(fresh) == []
    return result.threshold
