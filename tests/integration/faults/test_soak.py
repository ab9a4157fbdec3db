"""The short fault soak (``soak.SHORT``): bad and oversized records, a kill -9, a broker
stop and a second sidecar joining and leaving, under a supervisor; the alerts and dead
letters equal the uninterrupted run's, and nothing exited but by kill -9. ``make soak``
runs the full schedule (broker stops of 30, 60 and 90 s)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import KafkaBroker
from tests.integration.faults.soak import SHORT, run_soak


def test_short_soak_loses_and_repeats_nothing(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    report = run_soak(kafka_broker, tmp_path, SHORT)
    print(report.render())
    assert report.alerts_expected > 0 and report.bad_records > 0
    assert report.lost == report.duplicated == report.unexpected == 0, report.render()
    assert report.dead_lost == report.dead_duplicated == 0, report.render()
    assert report.exits == {"kill -9": SHORT.kills}, report.render()
    assert report.exact
