"""Snapshots written by earlier code restore to the run that never stopped.

Each ``fixtures/<case>_v<version>.json`` holds a stream, the snapshot a detector
wrote after its first ``cut`` values, the detections and the final snapshot of the
uninterrupted run, all written by the code of the commit before the detectors'
in-memory state became compact (arrays and rings instead of lists and deques, same
snapshot versions); ``ks_window_knots_v3.json`` by the code that introduced
``reference_knots`` (a reference kept as its knots, ties spanning several of them).
Restored now, a snapshot must give itself back (in the detector's current version
when it upgrades an older one whose layout it kept), and the rest of the stream — by
``update`` and by ``update_many`` — the same detections and the same final snapshot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import detectors

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(
    path
    for path in FIXTURES.glob("*_v*.json")
    if "stream" in json.loads(path.read_text())  # ks_window_v1.json is of its own test
)


def test_there_are_fixtures() -> None:
    names = {json.loads(p.read_text())["snapshot"]["detector"] for p in CASES}
    assert names >= {"ks_window", "categorical_drift", "entropy", "rolling_threshold"}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
@pytest.mark.parametrize("how", ["update", "update_many"])
def test_restores_to_the_uninterrupted_run(path: Path, how: str) -> None:
    doc: dict[str, Any] = json.loads(path.read_text())
    snapshot, stream, cut = doc["snapshot"], doc["stream"], doc["cut"]
    cls = detectors.get(snapshot["detector"])
    detector = cls.from_state(snapshot)
    current = {"version": cls.state_version}
    assert json.loads(json.dumps(detector.to_state())) == snapshot | current
    rest = stream[cut:]
    if how == "update":
        found = [i for i, x in enumerate(rest) if detector.update(x).drift_detected]
    else:
        found = detector.update_many(rest)
    assert [cut + i for i in found] == [i for i in doc["detections"] if i >= cut]
    assert json.loads(json.dumps(detector.to_state())) == doc["final"] | current
