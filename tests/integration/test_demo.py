"""`make demo-kserve`: the demo stream as KServe logger CloudEvents, through the real
sidecar, catches the injected drift and raises no false alarm."""

from __future__ import annotations

import pytest

from pipeline.demo import run_demo


def test_the_kserve_demo_catches_the_drift(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(offline=False, bootstrap_servers=kafka_bootstrap, fmt="kserve") == 0
    out = capsys.readouterr().out
    assert "KServe logger CloudEvents" in out
    assert "injected drifts: 1, caught: 1, alerts on signals without drift: 0" in out
