"""``driftline backtest`` end to end on a generated stream with known drifts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.pipeline.backtest.conftest import (
    CONFIG_A,
    CONFIG_B,
    Baseline,
    Stream,
    backtest,
    write_stream,
)


class TestBacktestCommand:
    def test_report_shows_the_drifts_found_with_their_delays(self, baseline: Baseline) -> None:
        run = json.loads((baseline.out / "scores.json").read_text())["runs"][0]
        assert run["events"] == 6000
        assert run["dead_letters"] == {"malformed_json": 2, "non_finite": 2, "schema_violation": 2}
        assert run["totals"]["changes"] == 2
        assert run["totals"]["detected"] == 2
        series = {(s["model_id"], s["signal"]): s for s in run["series"]}
        amount = series[("model-1", "feature:amount")]
        assert amount["detected"] == 1 and amount["false_alarms"] == 0
        point = amount["change_points"][0]
        assert point["at"] == "2026-01-01T00:05:00Z" and point["detected"]
        assert 0 <= point["delay_events"] < 200 and point["delay_seconds"] > 0
        assert series[("model-0", "confidence")]["detected"] == 1
        # the stable series: no change, no alert
        assert series[("model-0", "feature:amount")]["alerts"] == 0

        html = (baseline.out / "report.html").read_text()
        assert html.count('<figure class="timeline"') == 4
        assert "<h3>True change points</h3>" in html
        assert html.count('<span class="yes">detected</span>') == 2
        assert f"<td>{point['delay_events']}</td>" in html
        assert "detection margin: 1000 events" in html
        assert "page_hinkley" in html and "Config used" in html
        assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in html  # self-contained: nothing to fetch
        assert len(list((baseline.out / "png").glob("*.png"))) == 4

    def test_two_runs_give_identical_output(self, baseline: Baseline, tmp_path: Path) -> None:
        again = tmp_path / "again"
        assert backtest(*baseline.args(again)) == 0

        def files(root: Path) -> dict[Path, bytes]:
            return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.*"))}

        first, second = files(baseline.out), files(again)
        assert first.keys() == second.keys()
        assert len(first) == 4 + 5  # PNGs, report, scores, alerts, dead letters, state
        for name in first:
            assert first[name] == second[name], name

    def test_compare_two_configs_side_by_side(
        self, stream: Stream, write_config: Callable[[str, str], Path], tmp_path: Path
    ) -> None:
        a, b = write_config(CONFIG_A, "a.yaml"), write_config(CONFIG_B, "b.yaml")
        report, scores = tmp_path / "cmp.html", tmp_path / "cmp.json"
        assert backtest("--config", str(a), "--config", str(b), "--input", str(stream.events),
                        "--truth", str(stream.truth), "--report", str(report),
                        "--json", str(scores)) == 0  # fmt: skip
        runs = json.loads(scores.read_text())["runs"]
        assert [Path(r["config"]).name for r in runs] == ["a.yaml", "b.yaml"]
        assert runs[0]["events"] == runs[1]["events"]
        # the low thresholds of B raise false alarms on the stable stretches
        assert runs[1]["totals"]["false_alarms"] > runs[0]["totals"]["false_alarms"]
        assert runs[0]["totals"]["f1"] > runs[1]["totals"]["f1"]
        html = report.read_text()
        assert "<h2>Comparison</h2>" in html and 'class="best"' in html
        assert html.count('<section class="run"') == 2
        assert "threshold=40.0" in html and "threshold=300.0" in html

    def test_without_truth_alerts_are_listed_not_scored(
        self, stream: Stream, write_config: Callable[[str], Path], tmp_path: Path
    ) -> None:
        report, scores = tmp_path / "r.html", tmp_path / "s.json"
        assert backtest("--config", str(write_config(CONFIG_A)), "--input", str(stream.events),
                        "--report", str(report), "--json", str(scores)) == 0  # fmt: skip
        run = json.loads(scores.read_text())["runs"][0]
        assert run["totals"] is None and run["alerts"] >= 2
        assert "none given: alerts are listed but not scored" in report.read_text()

    def test_state_carries_a_backtest_over_to_the_next_input(
        self, write_config: Callable[[str], Path], tmp_path: Path
    ) -> None:
        full = write_stream(tmp_path)
        lines = full.events.read_bytes().splitlines(keepends=True)
        first, second = tmp_path / "week1.jsonl", tmp_path / "week2.jsonl"
        first.write_bytes(b"".join(lines[:2900]))
        second.write_bytes(b"".join(lines[2900:]))
        config = str(write_config(CONFIG_A))

        def alerts_of(*args: str) -> list[tuple[str, str, str, int]]:
            out = tmp_path / "alerts.jsonl"
            assert backtest("--config", config, "--alerts", str(out), *args) == 0
            return [
                (a["model_id"], a["signal"], a["detected_at"], a["window"]["events"])
                for a in map(json.loads, out.read_text().splitlines())
            ]

        whole = alerts_of("--input", str(full.events))
        state = tmp_path / "state.json"
        part1 = alerts_of("--input", str(first), "--state-out", str(state))
        part2 = alerts_of("--input", str(second), "--state-in", str(state))
        assert len(whole) >= 2
        assert part1 + part2 == whole
        positions = json.loads(state.read_text())["positions"]
        assert positions == {"0": {"file:week1.jsonl": 2900}}

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ([], "nothing to write"),
            (["--report", "r.html", "--margin", "soon"], "--margin"),
            (["--report", "r.html", "--from", "5"], "--from/--to"),
        ],
    )
    def test_usage_errors(
        self, args: list[str], message: str, stream: Stream,
        write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str],
    ) -> None:  # fmt: skip
        code = backtest(
            "--config", str(write_config(CONFIG_A)), "--input", str(stream.events), *args
        )
        assert code == 2
        assert message in capsys.readouterr().err
