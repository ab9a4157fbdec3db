"""The scale benchmark's report over the children's results of a real run (recorded in
``data/scale_run.json``): it must print every target's verdict, since a report that
raises after the measurements loses a run of several minutes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import scale

RUN = json.loads((Path(__file__).parent / "data" / "scale_run.json").read_text())


def test_report_prints_every_target(capsys: pytest.CaptureFixture[str]) -> None:
    scale.report(**RUN)
    out = capsys.readouterr().out
    verdicts = [line for line in out.splitlines() if line.endswith(("met", "MISSED"))]
    assert len(verdicts) == 10
    assert "events per CPU-s at 4,000 models / at 4 = 0.68x (target >= 0.7x): MISSED" in out
    assert "no join state with no labels topic: 0 join entries" in out


def test_the_labels_sidecar_is_extrapolated_as_the_no_labels_one_plus_its_join() -> None:
    process = float(RUN["cold"][0]["peak_rss"])
    labels, bare = RUN["sidecars"][0], RUN["sidecars"][1]
    held = bare["peak_rss"] - bare["started_rss"]
    join = labels["peak_rss"] - bare["peak_rss"]
    expected = process + held * scale.TARGET_MODELS / bare["models"] + join
    assert scale.extrapolated(process, held, bare["models"], join) == pytest.approx(expected)


def test_the_speed_ratio_pairs_the_sizes_within_a_round() -> None:
    """The load doubling mid-run moves the sizes' medians apart (4 models' median is a
    fast round, 4,000 models' a slow one), not a round's own ratio."""
    first = {"events": 100, "cpu_rounds": [1.0, 1.0, 2.0, 2.0, 1.0]}
    last = {"events": 100, "cpu_rounds": [1.25, 1.25, 2.5, 2.5, 2.5]}
    pairs = scale.paired_rounds(first, last)
    assert [round(r, 2) for r, _ in pairs] == [0.4, 0.8, 0.8, 0.8, 0.8]
    assert pairs[2][0] == pytest.approx(0.8)  # the median round: met, where the
    # sizes' medians (1.0 s and 2.5 s) would give 0.4x
