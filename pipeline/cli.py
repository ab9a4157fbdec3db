"""The ``driftline`` command."""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import load_settings
from pipeline.errors import DriftlineError
from pipeline.logs import configure_logging, get_logger, scrub

__all__ = ["main"]

log = get_logger("driftline.cli")


def _cmd_check_config(args: argparse.Namespace) -> int:
    from pipeline.core.monitor_set import check_monitors, describe_monitors

    settings = load_settings(args.config)
    monitors = check_monitors(settings)  # what the engine resolves when it starts
    if missing := settings.kafka.security.missing_files():
        print(f"{args.config}: " + "; ".join(missing), file=sys.stderr)
        return 2
    if args.connect:
        from pipeline.io.diagnose import diagnose

        found = diagnose(settings.kafka.bootstrap_servers, settings.kafka.client_options())
        if found is not None:
            print(f"{args.config}: Kafka refuses this config: {found}", file=sys.stderr)
            return 2
    models = ", ".join(sorted(settings.models)) or "(none)"
    reached = f"; Kafka at {settings.kafka.bootstrap_servers} accepts it" if args.connect else ""
    print(f"{args.config}: OK — models: {models}; {monitors} monitors{reached}")
    for line in describe_monitors(settings):
        print("  " + line)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from pipeline.schemas import write_schemas

    changed = write_schemas(Path(args.out), check=args.check)
    if args.check and changed:
        print("stale JSON Schemas (run `driftline schema --out schemas/`): " + ", ".join(changed))
        return 1
    if not args.check:
        print(f"wrote {len(changed)} changed schema file(s) to {args.out}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from pipeline.replay import replay
    from pipeline.runtime.gc_tuning import tune_for_throughput

    settings = load_settings(args.config)
    tune_for_throughput()
    stats = replay(
        settings,
        inputs=[Path(p) for p in args.input],
        output=Path(args.output),
        dead_letters=Path(args.dead_letters) if args.dead_letters else None,
        config_files=[Path(args.config)],
    )
    print(
        f"replayed {stats.events} events: {stats.alerts} alerts, "
        f"{stats.dead_letters} dead letters -> {args.output}",
        file=sys.stderr,
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.runtime.gc_tuning import tune_for_throughput
    from pipeline.runtime.sidecar import run_sidecar

    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # `kill -USR1 <pid>` prints every thread's stack to stderr: what a stuck sidecar waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    settings = load_settings(args.config)
    tune_for_throughput()
    run_sidecar(settings, stop)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from pipeline.generate import GeneratorConfig, generate, parse_drift, truth

    config = GeneratorConfig(
        events=args.events,
        models=args.models,
        numeric_features=args.numeric_features,
        categorical_features=args.categorical_features,
        text=args.text,
        seed=args.seed,
        interval_ms=args.interval_ms,
        drifts=tuple(parse_drift(d) for d in args.drift),
        bad_every=args.bad_every,
    )
    from pipeline.io.paths import FilePlan

    plan = FilePlan().inputs("--config", [args.config]).output("--truth", args.truth)
    if not args.topic:
        plan.output("--output", args.output)
    plan.check()
    started = time.perf_counter()
    if args.topic:
        from pipeline.config import parse_settings
        from pipeline.io.kafka_topics import produce_all

        kafka = (load_settings(args.config) if args.config else parse_settings({})).kafka
        bootstrap = args.bootstrap_servers or kafka.bootstrap_servers
        count = produce_all(bootstrap, args.topic, generate(config), **kafka.client_options())
        where = f"topic {args.topic}"
    else:
        out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
        count = 0
        with out:
            for _model, value in generate(config):
                out.write(value + b"\n")
                count += 1
        where = args.output
    if args.truth:
        Path(args.truth).write_text(json.dumps(truth(config), indent=2) + "\n")
    elapsed = time.perf_counter() - started
    print(f"generated {count} events to {where} in {elapsed:.2f}s", file=sys.stderr)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(offline=args.offline, bootstrap_servers=args.bootstrap_servers, fmt=args.format)


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {value}")
    return value


def _cmd_alerts_tail(args: argparse.Namespace) -> int:
    from pipeline.config import parse_settings
    from pipeline.events import AlertEvent
    from pipeline.render import render_alert, render_rollback
    from pipeline.subscribe import subscribe

    settings = load_settings(args.config) if args.config else parse_settings({}, source="env")
    sub = subscribe(
        settings,
        models=args.model or None,
        min_severity=args.severity,
        kinds=("alert", "rollback") if args.kind == "all" else (args.kind,),
        statuses=None if args.status is None else (args.status,),
        follow=args.follow,
        start="beginning" if args.from_beginning else args.lines,
        bootstrap_servers=args.bootstrap_servers,
    )
    previous = {s: signal.signal(s, lambda *_: sub.stop()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with sub:
            for event in sub:
                if args.json:
                    line = event.model_dump_json(by_alias=True)
                elif isinstance(event, AlertEvent):
                    line = render_alert(event)
                else:
                    line = render_rollback(event)
                print(line, flush=True)
            if args.open:
                print(f"{len(sub.open_incidents)} open incident(s)", flush=True)
                for alert in sub.open_incidents.values():
                    print("  " + render_alert(alert), flush=True)
    except BrokenPipeError:  # `| head`
        sys.stderr.close()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="driftline", description="Streaming drift detection for ML models in production."
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument("--log-json", action="store_true", default=None, help="JSON logs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the sidecar: consume events, publish alerts")
    p.add_argument("--config", required=True)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("replay", help="replay JSONL events through the sidecar's code path")
    p.add_argument("--config", required=True)
    p.add_argument("--input", required=True, action="append", help="JSONL file (.gz ok)")
    p.add_argument("--output", required=True, help="alerts JSONL file")
    p.add_argument("--dead-letters", help="dead-letter JSONL (default: OUTPUT.dead-letters.jsonl)")
    p.set_defaults(func=_cmd_replay)

    from pipeline.backtest.command import add_parser as add_backtest_parser

    add_backtest_parser(sub)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("config")
    p.add_argument(
        "--connect",
        action="store_true",
        help="also connect to the first bootstrap server (TLS, SASL) and name what it refuses",
    )
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("schema", help="write the JSON Schema of every event kind")
    p.add_argument("--out", default="schemas")
    p.add_argument("--check", action="store_true", help="fail if the files are stale")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("generate", help="write a synthetic prediction stream with drifts")
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--models", type=int, default=1)
    p.add_argument("--numeric-features", type=int, default=4)
    p.add_argument("--categorical-features", type=int, default=2)
    p.add_argument("--text", action="store_true", help="add generated output_text")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--interval-ms", type=int, default=100)
    p.add_argument("--bad-every", type=int, default=0, help="every Nth event is a bad record")
    p.add_argument(
        "--drift",
        action="append",
        default=[],
        help="signal=feature:amount,kind=abrupt,at=4000,magnitude=3[,width=..][,model=..]",
    )
    p.add_argument("--output", default="-", help="JSONL file, or - for stdout")
    p.add_argument("--topic", help="produce to this Kafka topic instead of a file")
    p.add_argument(
        "--config",
        help="with --topic: Kafka address and security from this config file (else the "
        "defaults and DRIFTLINE_KAFKA__* environment overrides)",
    )
    p.add_argument("--bootstrap-servers", help="override kafka.bootstrap_servers")
    p.add_argument("--truth", help="write the ground truth (JSON) here")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("alerts", help="read the alert and rollback-command topics")
    alerts = p.add_subparsers(dest="alerts_command", required=True)
    p = alerts.add_parser(
        "tail",
        help="print alerts and rollback commands (committed data only)",
        description="Print alerts and rollback commands, deduplicated by id, reading "
        "committed data only. Kafka address, security and topics come from --config "
        "(or the defaults and DRIFTLINE_* environment overrides).",
    )
    p.add_argument("--config", help="driftline config file (Kafka settings, topic names)")
    p.add_argument("--bootstrap-servers", help="override kafka.bootstrap_servers")
    p.add_argument("--model", action="append", help="only this model (repeatable)")
    p.add_argument(
        "--severity",
        choices=("warning", "drift", "critical"),
        help="only alerts at this severity or above (rollback commands always show)",
    )
    p.add_argument("--kind", choices=("all", "alert", "rollback"), default="all")
    p.add_argument(
        "--status",
        choices=("firing", "resolved"),
        help="only alerts that open (firing) or close (resolved) an incident",
    )
    p.add_argument(
        "--open",
        action="store_true",
        help="at the end, list the incidents still open (those read and not resolved)",
    )
    p.add_argument("-f", "--follow", action="store_true", help="wait for new events")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--from-beginning", action="store_true", help="read the topics from the start")
    p.add_argument(
        "-n",
        "--lines",
        type=_count,
        default=10,
        help="without --from-beginning: start about N records before the end of each "
        "partition (default 10; 0 with --follow: only new events)",
    )
    p.set_defaults(func=_cmd_alerts_tail)

    p = sub.add_parser("demo", help="the end-to-end demo (`make demo`)")
    p.add_argument("--offline", action="store_true", help="replay only: no broker, no Java")
    p.add_argument("--bootstrap-servers", default="127.0.0.1:39092")
    p.add_argument(
        "--format",
        choices=["driftline", "kserve"],
        default="driftline",
        help="kserve: the stream as KServe logger CloudEvents, read as a kserve-cloudevents input",
    )
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, json=args.log_json)
    try:
        return int(args.func(args))
    except DriftlineError as exc:
        print(f"driftline: {scrub(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        # A client library's message may quote a setting (kafka-python's "Unrecognized
        # configs" prints values): the traceback goes out without the secrets.
        print(scrub(traceback.format_exc()), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
