"""Every metric and label the Grafana dashboard (deploy/grafana/driftline.json) queries
is one a running sidecar exports: scraped from /metrics on the real broker, after a
stream with a drift, a rollback and bad records."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pipeline.events import TrainingEvent
from pipeline.generate import DriftSpec, GeneratorConfig, generate
from tests.integration.sidecars import REPO, SidecarProcess, deploy, produce, wait_caught_up

DASHBOARD = REPO / "deploy" / "grafana" / "driftline.json"
# Labels Prometheus adds to every scraped series (target labels of a ServiceMonitor).
TARGET_LABELS = {"namespace", "pod", "job", "instance", "service", "container", "endpoint"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "le"}

MODEL = {
    "monitors": [
        {
            "signal": "feature:amount",
            "detector": "page_hinkley",
            "params": {"threshold": 300.0, "delta": 5.0, "min_instances": 100},
        },
        {
            "signal": "confidence",
            "detector": "page_hinkley",
            "params": {"threshold": 1.5, "delta": 0.02, "min_instances": 100},
        },
    ],
    "rollback": {"rules": [{"signals": ["feature:*"], "min_severity": "drift"}]},
}
STREAM = GeneratorConfig(
    events=3000,
    models=2,
    seed=9,
    bad_every=300,
    drifts=(DriftSpec(signal="feature:amount", at=1500, magnitude=3.0, model="model-0"),),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exprs(node: Any) -> Iterator[str]:
    """Every PromQL query of the dashboard: panel targets and template variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            promql = key in ("expr", "definition") or (
                key == "query" and "driftline_" in str(value)
            )
            if promql and isinstance(value, str):
                yield value
            else:
                yield from exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from exprs(item)


def exported(text: str) -> dict[str, set[str]]:
    """Series name -> label names, as Prometheus stores them (counters `_total`,
    histograms `_bucket`/`_sum`/`_count`), from one /metrics scrape."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        names = {
            "counter": [f"{family.name}_total"],
            "histogram": [f"{family.name}_{s}" for s in ("bucket", "sum", "count")],
        }.get(family.type, [family.name])
        for name in names:
            out.setdefault(name, set())
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


class TestDashboardMetrics:
    def test_dashboard_queries_only_exported_metrics(
        self, kafka_bootstrap: str, tmp_path: Path
    ) -> None:
        port = free_port()
        deployment = deploy(
            kafka_bootstrap,
            tmp_path,
            partitions=2,
            runtime={"http_port": port, "http_host": "127.0.0.1"},
            extra={"default_model": MODEL},
        )
        stable = TrainingEvent(
            event_id="trn-1",
            model_id="model-0",
            run_id="run-1",
            checkpoint_id="ckpt-1",
            step=1,
            timestamp=datetime(2025, 12, 31, tzinfo=UTC),
            metrics={"val_loss": 0.3},
            checkpoint_stable=True,
        )
        sidecar = SidecarProcess(deployment, "a", tmp_path).start()
        try:
            produce(
                kafka_bootstrap,
                deployment.topics.training,
                [("model-0", stable.model_dump_json(by_alias=True).encode())],
            )
            wait_caught_up(deployment, [sidecar], timeout=60)
            produce(kafka_bootstrap, deployment.topics.predictions, generate(STREAM))
            wait_caught_up(deployment, [sidecar], timeout=90)
            time.sleep(1.0)  # one more loop iteration: gauges of the last batch
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                scraped = r.read().decode()
        finally:
            code = sidecar.terminate()
        assert code == 0, sidecar.log_tail()

        series = exported(scraped)
        # The scenario exercised what the dashboard is about.
        for name, labels in {
            "driftline_events_total": {"topic"},
            "driftline_alerts_total": {"severity", "model", "status"},
            "driftline_rollback_commands_total": {"model"},
            "driftline_dead_letters_total": {"reason"},
            "driftline_transactions_total": {"outcome"},
            "driftline_detector_statistic": {"model", "signal", "detector"},
            "driftline_detector_threshold": {"model", "signal", "detector"},
            "driftline_consumer_lag": {"topic", "partition"},
            "driftline_committed_lag": {"topic", "partition"},
            "driftline_offset_attempts": {"topic", "partition"},
        }.items():
            assert labels <= series.get(name, set()), f"{name} has no samples with {labels}"

        dashboard = json.loads(DASHBOARD.read_text())
        queries = list(exprs(dashboard))
        assert queries
        queried: set[str] = set()
        for query in queries:
            names = set(re.findall(r"\bdriftline_[a-zA-Z0-9_]+", query))
            assert names, f"a query on no driftline metric: {query}"
            unknown = names - set(series)
            assert not unknown, f"{query}\nqueries metrics the sidecar does not export: {unknown}"
            queried |= names
            labels_here = set().union(*(series[n] for n in names)) | TARGET_LABELS | {"le"}
            used = set()
            for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", query):
                used |= {g.strip() for g in group.split(",") if g.strip()}
            for selector in re.findall(r"driftline_[a-zA-Z0-9_]+\{([^}]*)\}", query):
                used |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector))
            for template in re.findall(r"label_values\([^,]*,\s*([a-zA-Z_]+)\)", query):
                used.add(template)
            assert used - PROMQL_WORDS <= labels_here, (
                f"{query}\nunknown labels: {used - labels_here}"
            )
        # The panels the issue asks for.
        for needed in (
            "driftline_events_total",
            "driftline_consumer_lag",
            "driftline_end_to_end_lag_seconds_bucket",
            "driftline_alerts_total",
            "driftline_detector_statistic",
            "driftline_detector_threshold",
            "driftline_dead_letters_total",
            "driftline_transactions_total",
            "driftline_committed_lag",
            "driftline_offset_retries_total",
            "driftline_offset_attempts",
            "driftline_stalled_partitions",
            "driftline_kafka_unreachable_seconds",
            "driftline_rejected_outputs_total",
            "driftline_partition_mismatches_total",
            "driftline_quarantined_total",
        ):
            assert needed in queried, f"the dashboard has no panel on {needed}"
