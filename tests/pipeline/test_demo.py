"""The demo supervises its sidecar as Kubernetes would: exit code 3 ("restart me")
starts it again, a bounded number of times; any other exit is final."""

from __future__ import annotations

import os
import sys
import time

import pytest

from pipeline import demo
from pipeline.runtime.exit_codes import STALL_EXIT_CODE


def _wait(sidecar: demo._Supervised) -> int | None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code = sidecar.exited()
        if code is not None:
            return code
        time.sleep(0.05)
    return None


def test_a_stalled_sidecar_is_restarted_at_most_max_restarts_times(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sidecar = demo._Supervised([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    assert _wait(sidecar) == STALL_EXIT_CODE
    assert sidecar.restarts == demo.MAX_RESTARTS
    assert capsys.readouterr().out.count("restarting it") == demo.MAX_RESTARTS


def test_any_other_exit_is_final() -> None:
    sidecar = demo._Supervised([sys.executable, "-c", "raise SystemExit(1)"], dict(os.environ))
    assert _wait(sidecar) == 1
    assert sidecar.restarts == 0
