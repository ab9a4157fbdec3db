"""Measure a running sidecar's memory and CPU under load (the basis of the
resource requests in deploy/helm/driftline/values.yaml and deploy/k8s/).

    KAFKA_PORT=39292 .venv/bin/python deploy/k8s/measure_resources.py \\
        --bootstrap-servers 127.0.0.1:39292 --events 200000 --models 20

Creates fresh topics, produces a generated stream (numeric and categorical features,
classes; the derived default monitor set per model), starts ``driftline run`` and
samples ``/proc/<pid>`` every 0.5 s until the consumer group has committed the end of
the input: peak and final RSS, CPU (cores) while busy, events per second. Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from pipeline.config import TopicSettings
from pipeline.generate import DriftSpec, GeneratorConfig, generate
from pipeline.io.kafka_topics import ensure_topics, produce_all

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def sample(pid: int) -> tuple[float, int]:
    """(CPU seconds used so far, RSS bytes) of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return cpu, rss


def committed_all(bootstrap: str, group: str, ends: dict[TopicPartition, int]) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except Exception:
        return False
    finally:
        admin.close()
    return all(tp in offsets and offsets[tp].offset >= end for tp, end in ends.items() if end)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:39092")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()

    prefix = f"measure-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.predictions"
    ensure_topics(args.bootstrap_servers, {topic: args.partitions})
    stream = GeneratorConfig(
        events=args.events,
        models=args.models,
        seed=3,
        drifts=(DriftSpec(signal="feature:amount", at=args.events // 2, model="model-0"),),
    )
    produced = produce_all(args.bootstrap_servers, topic, generate(stream))
    consumer = KafkaConsumer(bootstrap_servers=args.bootstrap_servers)
    tps = [TopicPartition(topic, p) for p in range(args.partitions)]
    ends = consumer.end_offsets(tps)
    consumer.close()

    model = {
        "features": {
            "amount": "numeric",
            "age": "numeric",
            "tenure_days": "numeric",
            "sessions": "numeric",
            "country": "categorical",
            "device": "categorical",
        },
        "classes": ["approve", "review", "decline"],
    }
    topics = {**TopicSettings.prefixed(prefix), "predictions": topic}
    config = {
        "kafka": {"bootstrap_servers": args.bootstrap_servers, "group_id": prefix},
        "topics": topics,
        "runtime": {"http_port": None},
        "default_model": model,
    }
    ensure_topics(
        args.bootstrap_servers,
        {t: args.partitions for k, t in topics.items() if k != "state"},
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "measure.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "DRIFTLINE_KAFKA__TRANSACTIONAL_ID": prefix}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "--log-level",
                os.environ.get("MEASURE_LOG_LEVEL", "warning"),
                "run",
                "--config",
                str(path),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        started = time.monotonic()
        peak = 0
        first_cpu: tuple[float, float] | None = None
        samples: list[tuple[float, float, int]] = []
        try:
            while True:
                time.sleep(0.5)
                cpu, rss = sample(proc.pid)
                now = time.monotonic()
                samples.append((now, cpu, rss))
                peak = max(peak, rss)
                if first_cpu is None and rss > 0:
                    first_cpu = (now, cpu)
                if committed_all(args.bootstrap_servers, prefix, ends):
                    break
                if now - started > 1800:
                    raise SystemExit("timed out")
            done = time.monotonic()
            time.sleep(5)
            idle_cpu0, _ = sample(proc.pid)
            time.sleep(10)
            idle_cpu1, idle_rss = sample(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    busy = done - started
    total_cpu = samples[-1][1]
    report = {
        "events": produced,
        "models": args.models,
        "seconds": round(busy, 1),
        "events_per_s": round(produced / busy),
        "cpu_cores_busy_mean": round(total_cpu / busy, 2),
        "cpu_cores_busy_peak_1s": round(
            max((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(samples, samples[2:], strict=False)),
            2,
        ),
        "cpu_cores_idle": round((idle_cpu1 - idle_cpu0) / 10, 3),
        "rss_peak_mib": round(peak / 2**20, 1),
        "rss_idle_after_mib": round(idle_rss / 2**20, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
