"""Changelog traffic and restore time on the real broker (issue 13), called by
``benchmarks/scale.py --broker`` or on its own.

Run: ``python -m benchmarks.changelog [--quick] [--bootstrap localhost:PORT]``
(starts the local broker with deploy/kafka/kafka.sh unless one answers).

* **Changelog bytes per input event**: one ``driftline run`` sidecar (exactly-once,
  the default monitor set of 6 numeric + 2 categorical features and 3 classes, 40
  models, one partition) first works through a backlog, then through events produced
  at 300 events/s. The state topic is read back (every record, key + value bytes, as
  produced: nothing is compacted yet) after each phase; the ratio is to the input
  records' key + value bytes of that phase.
* **Restore**: a sidecar processes events of 4,000 models and stops; a new sidecar
  is started on the same group, and one more event is produced. Reported: the
  restore of the partition (reading the changelog and rebuilding the state, from the
  ``state_restored`` log line) and the time from the start of that restore until the
  new event's offset is committed, "processing again" (target: 10 s).

Figures are from one run on this machine; ratios, not timed assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer, TopicPartition

from benchmarks._kafka import (
    REPO,
    GroupProgress,
    create_topics,
    delete_topics,
    end_offsets,
    local_broker,
    paced_produce,
    produce,
)
from benchmarks.harness import machine_info
from pipeline.config import TopicSettings
from pipeline.generate import CATEGORICAL, CLASSES, NUMERIC_NAMES, GeneratorConfig, generate

__all__ = ["ChangelogFigures", "measure", "report_lines"]

NUMERIC = 6
CATEGORICALS = 2
FEATURES: dict[str, str] = {name: "numeric" for name in NUMERIC_NAMES[:NUMERIC]} | {
    name: "categorical" for name in list(CATEGORICAL)[:CATEGORICALS]
}
PACED_RATE = 300.0
TRAFFIC_MODELS = 40
RESTORE_MODELS = 4_000

TARGET_CHANGELOG_RATIO = 0.5
TARGET_PROCESSING_AGAIN_S = 10.0


@dataclass
class ChangelogFigures:
    backlog_events: int
    backlog_input_bytes: int
    backlog_state_bytes: int
    paced_events: int
    paced_rate: float
    paced_input_bytes: int
    paced_state_bytes: int
    restore_models: int
    restore_events: int
    restore_state_bytes: int
    restore_seconds: float
    restore_read_seconds: float
    processing_again_seconds: float


def _config(prefix: str, bootstrap: str, models: int) -> dict[str, Any]:
    model = {"features": FEATURES, "classes": list(CLASSES)}
    return {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": prefix,
            "client_id": prefix,
            "transactional_id": prefix,
        },
        "topics": TopicSettings.prefixed(prefix),
        "runtime": {"mode": "exactly_once", "http_port": None},
        "models": {f"model-{k}": model for k in range(models)},
    }


def _events(events: int, models: int, seed: int) -> list[tuple[str, bytes]]:
    config = GeneratorConfig(
        events=events,
        models=models,
        numeric_features=NUMERIC,
        categorical_features=CATEGORICALS,
        seed=seed,
    )
    return list(generate(config))


def _bytes(items: list[tuple[str, bytes]]) -> int:
    return sum(len(k.encode()) + len(v) for k, v in items)


def topic_bytes(bootstrap: str, topic: str) -> int:
    """Key + value bytes of every committed record of ``topic`` (partition 0)."""
    end = end_offsets(bootstrap, topic).get(0, 0)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    total = 0
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + 120
        while consumer.position(tp) < end and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                total += sum(len(r.key or b"") + len(r.value or b"") for r in records)
    finally:
        consumer.close()
    return total


class Sidecar:
    """One ``driftline run`` process, its JSON log in a file."""

    def __init__(self, config: dict[str, Any], workdir: Path, name: str) -> None:
        self.path = workdir / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log = workdir / f"{name}.log"
        self.restarts = 0
        self.start()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipeline.cli",
                    "--log-json",
                    "run",
                    "--config",
                    str(self.path),
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env=env | {"PYTHONUNBUFFERED": "1"},
            )

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def alive(self) -> None:
        code = self.proc.poll()
        if code == 3 and self.restarts < 3 and "never_assigned" in self.log.read_text():
            # the group gave it nothing (topic metadata not there yet when it joined):
            # restarted, as Kubernetes would restart it
            self.restarts += 1
            self.start()
            return
        if code is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"sidecar exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_committed(
    progress: GroupProgress, sidecar: Sidecar, group: str, topic: str, target: int, timeout: float
) -> float:
    """Wall-clock time at which ``group`` has committed ``target`` records of ``topic``."""
    deadline = time.monotonic() + timeout
    while True:
        done = progress.committed(group, topic)
        if done is not None and done >= target:
            return time.time()
        sidecar.alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{group}: {done} of {target} committed after {timeout}s")
        time.sleep(0.05)


def _topics(bootstrap: str, prefix: str) -> dict[str, str]:
    """Every topic of a run, one partition each (the sidecar creates the state topic)."""
    topics = TopicSettings.prefixed(prefix)
    inputs = {name: 1 for key, name in topics.items() if key != "state"}
    create_topics(bootstrap, inputs)
    for name in inputs:  # led and readable before a sidecar subscribes
        end_offsets(bootstrap, name)
    return topics


def _traffic(
    bootstrap: str, workdir: Path, backlog: int, paced: int, progress: GroupProgress
) -> tuple[int, int, int, int, float]:
    prefix = f"chl-{uuid.uuid4().hex[:8]}"
    topics = _topics(bootstrap, prefix)
    items = _events(backlog + paced, TRAFFIC_MODELS, seed=13)
    first, second = items[:backlog], items[backlog:]
    produce(bootstrap, topics["predictions"], first)
    sidecar = Sidecar(_config(prefix, bootstrap, TRAFFIC_MODELS), workdir, prefix)
    try:
        _wait_committed(progress, sidecar, prefix, topics["predictions"], backlog, 900)
        after_backlog = topic_bytes(bootstrap, topics["state"])
        _stamps, rate = paced_produce(bootstrap, topics["predictions"], second, PACED_RATE)
        _wait_committed(progress, sidecar, prefix, topics["predictions"], backlog + paced, 900)
        after_paced = topic_bytes(bootstrap, topics["state"])
    finally:
        sidecar.stop()
        delete_topics(bootstrap, prefix)
    return _bytes(first), after_backlog, _bytes(second), after_paced - after_backlog, rate


def _restore(
    bootstrap: str, workdir: Path, events: int, progress: GroupProgress
) -> tuple[int, float, float, float]:
    prefix = f"chr-{uuid.uuid4().hex[:8]}"
    topics = _topics(bootstrap, prefix)
    items = _events(events + 1, RESTORE_MODELS, seed=17)
    produce(bootstrap, topics["predictions"], items[:events])
    config = _config(prefix, bootstrap, RESTORE_MODELS)
    try:
        first = Sidecar(config, workdir, prefix + "-first")
        try:
            _wait_committed(progress, first, prefix, topics["predictions"], events, 1800)
        finally:
            first.stop()
        state_bytes = topic_bytes(bootstrap, topics["state"])
        # the new event waits for the new sidecar: it is processed right after the restore
        produce(bootstrap, topics["predictions"], items[events:])
        second = Sidecar(config, workdir, prefix + "-second")
        try:
            committed_at = _wait_committed(
                progress, second, prefix, topics["predictions"], events + 1, 1800
            )
            restored = next(
                line for line in second.lines() if line.get("event") == "state_restored"
            )
        finally:
            second.stop()
    finally:
        delete_topics(bootstrap, prefix)
    finished = datetime.fromisoformat(str(restored["timestamp"]).replace("Z", "+00:00"))
    seconds = float(restored["seconds"])
    started = finished.timestamp() - seconds
    return state_bytes, seconds, float(restored.get("read_seconds", 0.0)), committed_at - started


def measure(bootstrap: str, quick: bool, parts: str = "all") -> ChangelogFigures:
    backlog, paced = (6_000, 3_000) if quick else (20_000, 18_000)
    restore_events = 8_000 if quick else 40_000
    with local_broker(bootstrap):
        progress = GroupProgress(bootstrap)
        try:
            with tempfile.TemporaryDirectory(prefix="driftline-changelog-") as tmp:
                workdir = Path(tmp)
                b_in, b_state, p_in, p_state, rate = (
                    _traffic(bootstrap, workdir, backlog, paced, progress)
                    if parts != "restore"
                    else (1, 0, 1, 0, 0.0)
                )
                if parts != "restore":
                    print(
                        f"changelog bytes / input bytes: backlog {b_state / b_in:.2f}x, "
                        f"paced {p_state / p_in:.2f}x at {rate:,.0f}/s",
                        flush=True,
                    )
                r_bytes, r_s, r_read, again = (
                    _restore(bootstrap, workdir, restore_events, progress)
                    if parts != "traffic"
                    else (0, 0.0, 0.0, 0.0)
                )
        finally:
            progress.close()
    return ChangelogFigures(
        backlog, b_in, b_state, paced, rate, p_in, p_state,
        RESTORE_MODELS, restore_events, r_bytes, r_s, r_read, again,
    )  # fmt: skip


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_lines(f: ChangelogFigures, parts: str = "all") -> list[str]:
    """The tables of the parts measured (a part left out by ``--only`` prints nothing)."""
    traffic = _traffic_lines(f) if parts != "restore" else []
    restore = _restore_lines(f) if parts != "traffic" else []
    return traffic + ([""] if traffic and restore else []) + restore


def _traffic_lines(f: ChangelogFigures) -> list[str]:
    b_ratio = f.backlog_state_bytes / f.backlog_input_bytes
    p_ratio = f.paced_state_bytes / f.paced_input_bytes
    return [
        "| changelog (real broker, 40 models) | input bytes/event | state bytes/event | ratio | target <= 0.5 |",
        "|---|---|---|---|---|",
        f"| backlog of {f.backlog_events:,} events | {f.backlog_input_bytes / f.backlog_events:,.0f} "
        f"| {f.backlog_state_bytes / f.backlog_events:,.0f} | {b_ratio:.2f}x "
        f"| {_verdict(b_ratio <= TARGET_CHANGELOG_RATIO)} |",
        f"| {f.paced_events:,} events paced at {f.paced_rate:,.0f}/s "
        f"| {f.paced_input_bytes / f.paced_events:,.0f} | {f.paced_state_bytes / f.paced_events:,.0f} "
        f"| {p_ratio:.2f}x | {_verdict(p_ratio <= TARGET_CHANGELOG_RATIO)} |",
    ]


def _restore_lines(f: ChangelogFigures) -> list[str]:
    return [
        "| restore (real broker) | state topic | restore (read) | processing again | target <= 10 s |",
        "|---|---|---|---|---|",
        f"| {f.restore_models:,} models, {f.restore_events:,} events "
        f"| {f.restore_state_bytes / 2**20:,.1f} MiB | {f.restore_seconds:.2f} s "
        f"({f.restore_read_seconds:.2f} s) | {f.processing_again_seconds:.2f} s "
        f"| {_verdict(f.processing_again_seconds <= TARGET_PROCESSING_AGAIN_S)} |",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (a few minutes)")
    parser.add_argument("--bootstrap", default=f"localhost:{os.environ.get('KAFKA_PORT', '39092')}")
    parser.add_argument(
        "--only", choices=("traffic", "restore"), help="measure one of the two parts"
    )
    args = parser.parse_args(argv)
    print(machine_info(), flush=True)
    parts = args.only or "all"
    figures = measure(args.bootstrap, args.quick, parts)
    print("\n".join(report_lines(figures, parts)))


if __name__ == "__main__":
    main()
