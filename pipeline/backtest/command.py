"""``driftline backtest``: arguments and the command (registered by pipeline.cli)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.backtest.sources import InputSpec
    from pipeline.io.paths import FilePlan

__all__ = ["add_parser", "run_command"]

EPILOG = """\
examples:
  driftline backtest --config driftline.yaml --input events.jsonl.gz \\
      --truth truth.json --report backtest.html
  driftline backtest --config a.yaml --config b.yaml --input events.parquet \\
      --truth truth.json --report compare.html --png-dir plots/
  driftline backtest --config driftline.yaml --input kafka:driftline.predictions \\
      --from 2026-01-01T00:00:00Z --to 2026-01-08T00:00:00Z --report week.html
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backtest",
        help="replay history through the sidecar's code path, score it, write a report",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, action="append",
                   help="config file; give two or more to compare them side by side")  # fmt: skip
    p.add_argument("--input", required=True, action="append",
                   help="events: FILE.jsonl[.gz], FILE.parquet or kafka:TOPIC (repeatable)")  # fmt: skip
    p.add_argument("--from", dest="start", help="kafka: first offset or ISO-8601 time")
    p.add_argument("--to", dest="end", help="kafka: end offset or time (exclusive)")
    p.add_argument("--truth", help="ground truth: the generator's truth file or change points")
    p.add_argument("--margin", default="1000",
                   help="detection window after a change: events (1000) or time (90s, 10m, 2h)")  # fmt: skip
    p.add_argument("--report", help="write the HTML report here")
    p.add_argument("--png-dir", help="also write each plot as a PNG into this directory")
    p.add_argument("--json", dest="json_out", help="write the scores as JSON here")
    p.add_argument("--alerts", help="write the alerts (and dry-run rollbacks) as JSONL here")
    p.add_argument("--state-in", help="start from this snapshot (driftline state file)")
    p.add_argument("--state-out", help="save the detector state reached here")
    p.add_argument("--bootstrap-servers", help="kafka inputs: override kafka.bootstrap_servers")
    progress = p.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="always show the progress bar")  # fmt: skip
    progress.add_argument("--no-progress", dest="progress", action="store_false",
                          help="never show it (default: only on a terminal)")  # fmt: skip
    p.set_defaults(func=run_command)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _alerts_path(base: Path, index: int, count: int) -> Path:
    return base if count == 1 else base.with_name(f"{base.stem}.{index}{base.suffix}")


def _file_plan(args: argparse.Namespace, inputs: list[InputSpec], configs: int) -> FilePlan:
    """Every file this run reads or writes, derived names included."""
    from pipeline.io.paths import FilePlan
    from pipeline.replay import default_dead_letter_path

    plan = FilePlan().inputs("--config", args.config)
    plan.inputs("--input", [spec.path for spec in inputs])
    plan.inputs("--truth", [args.truth]).inputs("--state-in", [args.state_in])
    plan.output("--report", args.report).output("--json", args.json_out)
    plan.output("--state-out", args.state_out).directory("--png-dir", args.png_dir)
    # --state-out may replace --state-in: it is read at start and replaced atomically
    plan.allow("--state-in", "--state-out")
    if args.alerts:
        for i in range(configs):
            alerts = _alerts_path(Path(args.alerts), i, configs)
            which = "--alerts" if configs == 1 else f"--alerts (config {i + 1}: {alerts.name})"
            plan.output(which, alerts)
            plan.output(f"{which} dead letters", default_dead_letter_path(alerts))
    return plan


def run_command(args: argparse.Namespace) -> int:
    from pipeline.backtest.report import summary_json, write_pngs, write_report
    from pipeline.backtest.run import Backtest, ConfigSource, run_backtest
    from pipeline.backtest.scoring import parse_margin
    from pipeline.backtest.sources import parse_input
    from pipeline.backtest.truth import load_truth
    from pipeline.config import load_settings
    from pipeline.errors import ConfigError
    from pipeline.state.file_store import FileStateStore

    if not (args.report or args.json_out or args.png_dir or args.alerts or args.state_out):
        raise ConfigError(
            "nothing to write: give --report, --json, --png-dir, --alerts or --state-out"
        )
    if args.state_out and len(args.config) > 1:
        raise ConfigError("--state-out needs exactly one --config")
    try:
        margin = parse_margin(args.margin)
    except ValueError as exc:
        raise ConfigError(f"--margin: {exc}") from None
    inputs = [
        parse_input(text, start=args.start, end=args.end)
        if text.startswith("kafka:")
        else parse_input(text)
        for text in args.input
    ]
    if (args.start or args.end) and not any(i.kind == "kafka" for i in inputs):
        raise ConfigError("--from/--to apply to kafka:TOPIC inputs only")
    _file_plan(args, inputs, len(args.config)).check()
    truth = load_truth(args.truth) if args.truth else None
    initial = FileStateStore(args.state_in).load() if args.state_in else None
    configs = []
    for path in args.config:
        settings = load_settings(path)
        if args.bootstrap_servers:
            settings = settings.model_copy(
                update={
                    "kafka": settings.kafka.model_copy(
                        update={"bootstrap_servers": args.bootstrap_servers}
                    )
                }
            )
        configs.append(ConfigSource(path, settings))

    bt = Backtest(inputs=inputs, margin=margin, truth=truth, truth_label=args.truth)
    for i, config in enumerate(configs):
        run = run_backtest(
            config,
            inputs,
            truth=truth,
            margin=margin,
            initial=initial,
            alerts_path=_alerts_path(Path(args.alerts), i, len(configs)) if args.alerts else None,
            progress=args.progress,
            keep_state=bool(args.state_out) and i == 0,  # only --state-out reads it
        )
        bt.runs.append(run)
        events = run.outcome.stats.events
        rate = events / run.elapsed_s if run.elapsed_s > 0 else 0.0
        found = (
            f", {run.totals.hits}/{run.totals.changes} changes detected, "
            f"{_plural(run.totals.false_alarms, 'false alarm')}"
            if truth is not None
            else ""
        )
        print(
            f"{config.label}: {events:,} events in {run.elapsed_s:.1f}s ({rate:,.0f} ev/s): "
            f"{_plural(len(run.alerts), 'alert')}{found}, "
            f"{_plural(run.outcome.stats.dead_letters, 'dead letter')}",
            file=sys.stderr,
        )
    if args.state_out:
        FileStateStore(args.state_out).save(bt.runs[0].outcome.snapshot)
        print(f"state saved to {args.state_out}", file=sys.stderr)
    if args.report:
        write_report(bt, Path(args.report))
        print(f"report: {args.report}", file=sys.stderr)
    if args.png_dir:
        written = write_pngs(bt, Path(args.png_dir))
        print(f"{len(written)} PNG plot(s) in {args.png_dir}", file=sys.stderr)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_bytes(summary_json(bt))
    return 0
