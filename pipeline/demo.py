"""`make demo`: a generated stream with one injected drift, through the real sidecar.

Online: topics on the local broker, the sidecar as a subprocess (`driftline run`),
the generator producing to the predictions topic, and the alerts read back from
the alert topic with ``read_committed``. Offline: the same stream through
`driftline replay`. Either way the alerts are printed next to the ground truth.

``--format kserve`` (`make demo-kserve`) sends the same predictions as KServe's
inference logger would through a Knative Kafka Broker: a request and a response
CloudEvent per prediction (binary mode, V1 bodies) on one topic, which the sidecar
reads as a ``kserve-cloudevents`` input (``inputs`` set from the environment).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import load_settings
from pipeline.events import AlertEvent, PredictionEvent
from pipeline.formats.samples import kserve_records
from pipeline.generate import CLASSES, DriftSpec, GeneratorConfig, generate, truth
from pipeline.render import render_alert
from pipeline.runtime.exit_codes import STALL_EXIT_CODE

__all__ = ["DEMO_CONFIG", "DEMO_STREAM", "run_demo"]

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "deploy" / "examples" / "driftline.yaml"
DEMO_STREAM = GeneratorConfig(
    events=8_000,
    models=2,
    numeric_features=4,
    categorical_features=2,
    seed=11,
    drifts=(DriftSpec(signal="feature:amount", kind="abrupt", at=4_000, magnitude=2.0,
                      model="model-0"),),
)  # fmt: skip


_FEATURES = ["amount", "age", "tenure_days", "sessions", "country", "device"]
"""DEMO_STREAM's features, in the order a KServe V1 request lists them."""


def _explain(alerts: list[AlertEvent], ground_truth: dict[str, Any]) -> int:
    changes = ground_truth["changes"]
    interval = ground_truth["interval_ms"] / 1000
    print(f"\n{len(alerts)} alert(s) on the alert topic:")
    for alert in sorted(alerts, key=lambda a: (a.detected_at, a.alert_id)):
        print("  " + render_alert(alert))
        match = [
            c for c in changes if (c["model_id"], c["signal"]) == (alert.model_id, alert.signal)
        ]
        if match:
            at = datetime.fromisoformat(match[0]["timestamp"])
            delay = (alert.detected_at - at).total_seconds()
            print(
                f"      -> injected {match[0]['kind']} drift at stream position "
                f"{match[0]['position']}; detected {delay:.1f}s of event time later "
                f"(~{delay / interval:.0f} stream events)"
            )
        else:
            print("      -> FALSE ALARM: no drift was injected on this signal")
    drifted = {(c["model_id"], c["signal"]) for c in changes}
    caught = {(a.model_id, a.signal) for a in alerts} & drifted
    false_alarms = [a for a in alerts if (a.model_id, a.signal) not in drifted]
    print(
        f"\ninjected drifts: {len(drifted)}, caught: {len(caught)}, "
        f"alerts on signals without drift: {len(false_alarms)}"
    )
    return 0 if caught == drifted and not false_alarms else 1


def _offline(workdir: Path) -> list[AlertEvent]:
    from pipeline.replay import replay

    events = workdir / "events.jsonl"
    with events.open("wb") as out:
        for _model, value in generate(DEMO_STREAM):
            out.write(value + b"\n")
    alerts_path = workdir / "alerts.jsonl"
    stats = replay(load_settings(DEMO_CONFIG), inputs=[events], output=alerts_path)
    print(f"replayed {stats.events} events through the sidecar's code path")
    return [AlertEvent.model_validate_json(line) for line in alerts_path.read_bytes().splitlines()]


def _kserve_input(topic: str) -> str:
    """The ``inputs`` entry for the KServe topic, as a ``DRIFTLINE_INPUTS`` value."""
    return (
        f"[{{topic: {topic}, format: kserve-cloudevents, features: [{', '.join(_FEATURES)}], "
        f"classes: [{', '.join(CLASSES)}]}}]"
    )


def _kserve_records(topic: str) -> Iterator[tuple[str, None, bytes, list[tuple[str, bytes]], int]]:
    for _model, value in generate(DEMO_STREAM):
        event = PredictionEvent.model_validate_json(value)
        for sample in kserve_records(event, features=_FEATURES, classes=CLASSES):
            yield topic, None, sample.value, sample.headers, sample.timestamp_ms


def _online(bootstrap_servers: str, fmt: str = "driftline") -> list[AlertEvent]:
    """Kafka security (if any) from ``DRIFTLINE_KAFKA__SECURITY__*``, as for the sidecar
    this starts (it inherits the environment)."""
    from pipeline.io.kafka_topics import ensure_topics, produce_all, produce_records

    options = load_settings(DEMO_CONFIG).kafka.client_options()

    run = uuid.uuid4().hex[:8]
    topics = {
        "PREDICTIONS": f"demo-{run}.predictions",
        "FEATURES": f"demo-{run}.features",
        "LABELS": f"demo-{run}.labels",
        "TRAINING": f"demo-{run}.training",
        "ALERTS": f"demo-{run}.alerts",
        "ROLLBACK_COMMANDS": f"demo-{run}.rollback-commands",
        "DLQ": f"demo-{run}.dlq",
        "STATE": f"demo-{run}.state",
    }
    kserve_topic = f"demo-{run}.kserve"
    ensure_topics(
        bootstrap_servers,
        {name: 1 for name in [*topics.values(), kserve_topic]},
        compacted=[topics["STATE"]],
        extra=options,
    )
    env = dict(os.environ)
    env.update({f"DRIFTLINE_TOPICS__{k}": v for k, v in topics.items()})
    env["DRIFTLINE_KAFKA__BOOTSTRAP_SERVERS"] = bootstrap_servers
    env["DRIFTLINE_KAFKA__GROUP_ID"] = f"demo-{run}"
    if fmt == "kserve":
        env["DRIFTLINE_INPUTS"] = _kserve_input(kserve_topic)
    print(f"starting the sidecar (topics demo-{run}.*)")
    sidecar = _Supervised(
        [sys.executable, "-m", "pipeline.cli", "--log-level", "warning", "run",
         "--config", str(DEMO_CONFIG)],
        env=env,
    )  # fmt: skip
    try:
        started = time.monotonic()
        if fmt == "kserve":
            count = produce_records(bootstrap_servers, _kserve_records(kserve_topic), **options)
            print(
                f"produced {count} KServe logger CloudEvents (a request and a response per "
                f"prediction) to {kserve_topic} in {time.monotonic() - started:.1f}s"
            )
        else:
            count = produce_all(
                bootstrap_servers, topics["PREDICTIONS"], generate(DEMO_STREAM), **options
            )
            print(f"produced {count} prediction events in {time.monotonic() - started:.1f}s")
        expected = len(truth(DEMO_STREAM)["changes"])
        return _collect_alerts(bootstrap_servers, topics["ALERTS"], expected, sidecar, options)
    finally:
        sidecar.stop()


MAX_RESTARTS = 2
METRICS_URL = "http://127.0.0.1:8080/metrics"
"""The demo config's HTTP port (``runtime.http_port``'s default)."""
DIAGNOSTIC_METRICS = (
    "driftline_assigned_partitions",
    "driftline_events_total",
    "driftline_alerts_total",
    "driftline_dead_letters_total",
    "driftline_rebalances_total",
    "driftline_restored_state_entries_total",
    "driftline_monitor_keys",
    "driftline_input_halves",
    "driftline_consumer_lag",
    "driftline_committed_lag",
    "driftline_transactions_total",
    "driftline_input_pending_halves",
)


class _Supervised:
    """The sidecar subprocess, restarted when it exits with code 3 as its supervisor
    (Kubernetes) would: the sidecar's way out of a client wedged in a call it cannot
    interrupt. Exactly-once state and offsets make a restart repeat nothing."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args, self.env = args, env
        self.restarts = 0
        self.process = subprocess.Popen(args, env=env)

    def exited(self) -> int | None:
        """The exit code once the sidecar is gone for good; None while it runs."""
        code = self.process.poll()
        if code == STALL_EXIT_CODE and self.restarts < MAX_RESTARTS:
            self.restarts += 1
            print(f"the sidecar exited with code {code} (stalled): restarting it")
            self.process = subprocess.Popen(self.args, env=self.env)
            return None
        return code

    def diagnose(self) -> None:
        """Print what the sidecar says about itself (its metrics) and have it dump its
        threads' stacks to its stderr (``faulthandler`` on SIGUSR1): what a stuck
        run leaves behind for whoever reads the log."""
        import urllib.request

        try:
            with urllib.request.urlopen(METRICS_URL, timeout=5) as response:
                text = response.read().decode()
        except OSError as exc:
            print(f"sidecar metrics unavailable ({METRICS_URL}): {exc}")
        else:
            print("the sidecar's metrics:")
            for line in text.splitlines():
                if line.startswith(DIAGNOSTIC_METRICS):
                    print("  " + line)
        if self.process.poll() is None:
            print("the sidecar's thread stacks (SIGUSR1) follow on its stderr")
            self.process.send_signal(signal.SIGUSR1)
            time.sleep(1.0)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


COLLECT_TIMEOUT_S = 300


def _collect_alerts(
    bootstrap_servers: str,
    topic: str,
    expected: int,
    sidecar: _Supervised,
    options: dict[str, Any],
) -> list[AlertEvent]:
    """Read committed alerts until ``expected`` arrived and the topic stayed quiet
    for a few seconds (late false alarms would show), or the sidecar exited, or
    ``COLLECT_TIMEOUT_S`` passed (generous: on a loaded machine the sidecar may need
    minutes for the stream; it normally ends within seconds of the last alert)."""
    from pipeline.io.subscriber import OutputTopicReader

    reader = OutputTopicReader(
        [topic], bootstrap_servers=bootstrap_servers, start="beginning", extra=options
    )
    alerts: list[AlertEvent] = []
    started = time.monotonic()
    quiet_since = started
    next_report = started + 30
    try:
        while time.monotonic() - started < COLLECT_TIMEOUT_S and sidecar.exited() is None:
            for r in reader.poll(timeout_ms=500):
                if r.value is None:
                    continue
                alerts.append(AlertEvent.model_validate_json(r.value))
                quiet_since = time.monotonic()
            now = time.monotonic()
            if len(alerts) >= expected and now - quiet_since > 8:
                break
            if now >= next_report:
                print(f"waiting for alerts: {len(alerts)} so far after {now - started:.0f}s")
                next_report = now + 30
        code = sidecar.exited()
        if code is not None:
            print(f"the sidecar exited with code {code} before the alerts were complete")
        elif len(alerts) < expected:
            print(f"gave up waiting after {COLLECT_TIMEOUT_S}s")
            # Whether the alerts were never published or published and not read (a
            # transaction left open holds read_committed readers at its first offset).
            print(f"the alert reader's view of {topic}: {reader.positions()}")
            sidecar.diagnose()
    finally:
        reader.close()
    return alerts


def run_demo(*, offline: bool, bootstrap_servers: str, fmt: str = "driftline") -> int:
    ground_truth = truth(DEMO_STREAM)
    change = ground_truth["changes"][0]
    print(
        f"driftline demo: {DEMO_STREAM.events} prediction events for {DEMO_STREAM.models} "
        f"models; injected: {change['kind']} drift of {change['signal']} on "
        f"{change['model_id']} at stream position {change['position']}"
    )
    if offline:
        if fmt != "driftline":
            print("--format kserve needs the broker (CloudEvents travel in Kafka headers)")
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            alerts = _offline(Path(tmp))
    else:
        alerts = _online(bootstrap_servers, fmt)
    return _explain(alerts, ground_truth)
