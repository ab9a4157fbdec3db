"""The report in a real browser: headless Chromium runs its script and renders
its plots (`make browser` installs Debian's chromium; CI fails without it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.backtest.plot import COLORS
from tests.pipeline.backtest.conftest import Baseline
from tests.pipeline.backtest.pngread import has_color, read_png

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: run `make browser` (CI installs it)")
        pytest.skip("chromium is not installed (make browser)")
    return found


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=True,
    )  # fmt: skip


class TestReportInChromium:
    def test_script_runs_and_every_plot_draws(
        self, chromium: str, baseline: Baseline, tmp_path: Path
    ) -> None:
        report = baseline.out / "report.html"
        dom = _run(chromium, tmp_path / "profile", "--dump-dom", report.as_uri()).stdout
        figures = re.findall(r"<figure [^>]*class=\"timeline\"[^>]*>", dom)
        assert len(figures) == 4
        assert 'data-plots="4"' in dom and 'data-plots-ready="4"' in dom
        for figure in figures:
            assert 'data-rendered="1"' in figure
            length = int(re.search(r'data-path-length="(\d+)"', figure).group(1))  # type: ignore[union-attr]
            assert length > 1000  # the value, statistic and threshold lines were laid out
        assert dom.count('class="crosshair"') == 4  # added by the script

    def test_screenshot_shows_the_plots(
        self, chromium: str, baseline: Baseline, tmp_path: Path
    ) -> None:
        report = baseline.out / "report.html"
        shot = tmp_path / "shot.png"
        _run(chromium, tmp_path / "profile", "--window-size=1100,1900",
             f"--screenshot={shot}", report.as_uri())  # fmt: skip
        pixels = read_png(shot.read_bytes())
        assert pixels.shape[:2] == (1900, 1100)
        assert (pixels.sum(axis=2) < 600).mean() > 0.01  # not a blank page
        for color in (COLORS["value"], COLORS["stat"], COLORS["threshold"], COLORS["window"]):
            assert has_color(pixels, color), color
