"""Replay and backtest speed on a generated stream (one core, one process).

Run: ``python -m benchmarks.replay [--events N] [--quick] [--keep DIR]``. Generates
``N`` prediction events (2 models, 4 numeric + 2 categorical features, two drifts
with ground truth), then times on the same file:

* ``replay``   — ``driftline replay``'s path: runtime + core, alerts to a JSONL file;
* ``backtest`` — the same path with the trace observer (every detector update is
  observed, so the core feeds detectors one by one), scoring against the truth,
  the HTML report and the PNG plots.

Prints a markdown table of wall time and events/s. Never asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.harness import machine_info, markdown_table
from pipeline.backtest.report import write_pngs, write_report
from pipeline.backtest.run import Backtest, ConfigSource, run_backtest
from pipeline.backtest.scoring import Margin
from pipeline.backtest.sources import parse_input
from pipeline.backtest.truth import load_truth
from pipeline.config import parse_settings
from pipeline.generate import DriftSpec, GeneratorConfig, generate, truth
from pipeline.replay import replay

CONFIG = {
    "default_model": {
        "monitors": [
            {"signal": "confidence", "detector": "page_hinkley",
             "params": {"threshold": 1.5, "delta": 0.02, "min_instances": 100}},
            {"signal": "feature:amount", "detector": "page_hinkley",
             "params": {"threshold": 300.0, "delta": 5.0, "min_instances": 100}},
        ]
    }
}  # fmt: skip


def _generate(directory: Path, events: int) -> tuple[Path, Path]:
    config = GeneratorConfig(
        events=events,
        models=2,
        seed=7,
        drifts=(
            DriftSpec(signal="feature:amount", at=events // 3, magnitude=2.0, model="model-1"),
            DriftSpec(signal="confidence", kind="gradual", at=2 * events // 3,
                      width=max(1, events // 50), magnitude=1.0),
        ),
    )  # fmt: skip
    path = directory / f"events-{events}.jsonl"
    truth_path = directory / f"truth-{events}.json"
    if not (path.exists() and truth_path.exists()):
        partial = path.with_suffix(".partial")
        with partial.open("wb") as out:
            for _model, value in generate(config):
                out.write(value + b"\n")
        truth_path.write_text(json.dumps(truth(config)))
        partial.replace(path)
    return path, truth_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k events")
    parser.add_argument("--keep", help="directory for the generated stream (reused if present)")
    args = parser.parse_args()
    events = 100_000 if args.quick else args.events
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(args.keep) if args.keep else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        path, truth_path = _generate(directory, events)
        gen_s = time.perf_counter() - started
        settings = parse_settings(CONFIG, environ={})
        size_mb = path.stat().st_size / 1e6

        started, cpu = time.perf_counter(), time.process_time()
        stats = replay(settings, inputs=[path], output=directory / "alerts.jsonl")
        replay_s, replay_cpu = time.perf_counter() - started, time.process_time() - cpu
        assert stats.events == events

        started, cpu = time.perf_counter(), time.process_time()
        changes = load_truth(truth_path)
        bt = Backtest(inputs=[parse_input(str(path))], margin=Margin(events=1000),
                      truth=changes, truth_label=truth_path.name)  # fmt: skip
        run = run_backtest(ConfigSource("bench.yaml", settings), bt.inputs, truth=changes,
                           margin=bt.margin, progress=False)  # fmt: skip
        bt.runs.append(run)
        replayed_s, replayed_cpu = time.perf_counter() - started, time.process_time() - cpu
        write_report(bt, directory / "report.html")
        write_pngs(bt, directory / "png")
        backtest_s, backtest_cpu = time.perf_counter() - started, time.process_time() - cpu

    info = machine_info()
    print(f"replay benchmark: {events:,} events ({size_mb:.0f} MB JSONL), one process")
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"(generating the stream took {gen_s:.1f} s, not counted; with other load on the")
    print("machine, CPU time is the steadier number)\n")
    rows = [
        [name, f"{wall:.1f} s", f"{cpu_s:.1f} s", f"{events / wall:,.0f}", f"{events / cpu_s:,.0f}"]
        for name, wall, cpu_s in (
            ("replay (runtime + core, alerts to JSONL)", replay_s, replay_cpu),
            ("backtest: traced replay", replayed_s, replayed_cpu),
            ("backtest: + scoring, HTML report, PNGs", backtest_s, backtest_cpu),
        )
    ]
    print(markdown_table(["path", "wall", "CPU", "events/s (wall)", "events/s (CPU)"], rows))
    totals = run.totals
    print(f"\nscores: {totals.hits}/{totals.changes} changes detected, "
          f"{totals.false_alarms} false alarms, {len(run.alerts)} alerts")  # fmt: skip


if __name__ == "__main__":
    main()
