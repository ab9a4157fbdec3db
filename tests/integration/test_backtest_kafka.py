"""Backtest of a Kafka topic range against the real broker.

The range source reads with a throw-away consumer (no group, nothing committed),
resolves offsets and times, merges partitions deterministically, and scores like
a file replay of the same events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from pipeline.cli import main
from pipeline.generate import BASE_TIME, DriftSpec, GeneratorConfig, generate, truth
from pipeline.io.kafka_range import KafkaRangeSource

CONFIG = """\
default_model:
  monitors:
    - signal: confidence
      detector: page_hinkley
      params: {threshold: 1.5, delta: 0.02, min_instances: 100}
    - signal: feature:amount
      detector: page_hinkley
      params: {threshold: 300.0, delta: 5.0, min_instances: 100}
"""
EVENTS = 4000
GEN = GeneratorConfig(
    events=EVENTS,
    models=3,
    seed=21,
    drifts=(
        DriftSpec(signal="feature:amount", at=1500, magnitude=2.0, model="model-1"),
        DriftSpec(signal="confidence", at=2500, magnitude=1.0, model="model-2"),
    ),
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("kafka-backtest")
    pairs = list(generate(GEN))
    events = root / "events.jsonl"
    events.write_bytes(b"".join(v + b"\n" for _m, v in pairs))
    (root / "truth.json").write_text(json.dumps(truth(GEN)))
    (root / "driftline.yaml").write_text(CONFIG)
    return {"root": root, "pairs": pairs, "events": events}


@pytest.fixture
def topic(make_topic: Callable[..., str], kafka_bootstrap: str, generated: dict[str, Any]) -> str:
    """The generated stream over 3 partitions, model-k in partition k (co-partitioned
    by model like the sidecar's inputs), record time = event time."""
    name = make_topic(partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    try:
        for model, value in generated["pairs"]:
            at = datetime.fromisoformat(orjson.loads(value)["timestamp"].replace("Z", "+00:00"))
            producer.send(
                name,
                key=model.encode(),
                value=value,
                partition=int(model.removeprefix("model-")),
                timestamp_ms=int(at.timestamp() * 1000),
            )
        producer.flush()
    finally:
        producer.close()
    return name


def _backtest(root: Path, *args: str) -> int:
    return main(["--log-level", "error", "backtest", "--no-progress",
                 "--config", str(root / "driftline.yaml"), *args])  # fmt: skip


def _scores(path: Path) -> dict[str, Any]:
    run = json.loads(path.read_text())["runs"][0]
    for series in run["series"]:
        for point in series["change_points"]:
            point.pop("alert_id")  # ids name the source (topic, partition, offset)
    return run


def _groups_with_offsets_on(bootstrap: str, topic: str) -> list[str]:
    """Consumer groups that committed an offset of ``topic``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        groups = [g["group_id"] for g in admin.list_groups()]
        offsets = admin.list_group_offsets(groups) if groups else {}
        return sorted(g for g, tps in offsets.items() if any(tp.topic == topic for tp in tps))
    finally:
        admin.close()


class TestKafkaRangeBacktest:
    def test_whole_topic_scores_like_the_file_and_is_deterministic(
        self, kafka_bootstrap: str, topic: str, generated: dict[str, Any], tmp_path: Path
    ) -> None:
        root = generated["root"]
        truth_args = ["--truth", str(root / "truth.json")]
        assert _backtest(root, "--input", str(generated["events"]), *truth_args,
                         "--json", str(tmp_path / "file.json")) == 0  # fmt: skip
        reports = []
        for run in ("a", "b"):
            assert _backtest(root, "--input", f"kafka:{topic}", "--bootstrap-servers",
                             kafka_bootstrap, *truth_args, "--json", str(tmp_path / f"{run}.json"),
                             "--report", str(tmp_path / f"{run}.html")) == 0  # fmt: skip
            reports.append((tmp_path / f"{run}.html").read_bytes())
        assert reports[0] == reports[1]
        from_kafka, from_file = _scores(tmp_path / "a.json"), _scores(tmp_path / "file.json")
        assert from_kafka["events"] == EVENTS
        assert from_kafka["totals"] == from_file["totals"]
        assert from_kafka["totals"]["detected"] == 2
        assert from_kafka["series"] == from_file["series"]
        assert _groups_with_offsets_on(kafka_bootstrap, topic) == []  # nothing committed

    def test_time_and_offset_bounds(self, kafka_bootstrap: str, topic: str) -> None:
        start = BASE_TIME + timedelta(seconds=100)  # event 1000
        end = BASE_TIME + timedelta(seconds=250)  # event 2500 (exclusive)
        source = KafkaRangeSource(topic, bootstrap_servers=kafka_bootstrap, start=start, end=end)
        try:
            records = _drain(source)
        finally:
            source.close()
        assert len(records) == 1500
        times = [r.timestamp_ms for r in records]
        assert times == sorted(times)  # partitions merged by record time
        assert min(times) == int(start.timestamp() * 1000)
        assert max(times) < int(end.timestamp() * 1000)

        source = KafkaRangeSource(topic, bootstrap_servers=kafka_bootstrap, start=10, end=60)
        try:
            records = _drain(source)
            assert source.total == 150
        finally:
            source.close()
        assert len(records) == 150
        for p in range(3):
            assert sorted(r.offset for r in records if r.partition == p) == list(range(10, 60))

    def test_continue_from_a_snapshot(
        self, kafka_bootstrap: str, topic: str, generated: dict[str, Any], tmp_path: Path
    ) -> None:
        root = generated["root"]
        state = tmp_path / "state.json"
        cut = (BASE_TIME + timedelta(seconds=200)).isoformat()
        assert _backtest(root, "--input", f"kafka:{topic}", "--bootstrap-servers", kafka_bootstrap,
                         "--to", cut, "--state-out", str(state),
                         "--json", str(tmp_path / "1.json")) == 0  # fmt: skip
        positions = json.loads(state.read_text())["positions"]
        assert sum(p[topic] for p in positions.values()) == 2000
        assert _backtest(root, "--input", f"kafka:{topic}", "--bootstrap-servers", kafka_bootstrap,
                         "--state-in", str(state), "--alerts", str(tmp_path / "2.jsonl"),
                         "--json", str(tmp_path / "2.json")) == 0  # fmt: skip
        assert json.loads((tmp_path / "2.json").read_text())["runs"][0]["events"] == 2000
        assert _backtest(root, "--input", f"kafka:{topic}", "--bootstrap-servers", kafka_bootstrap,
                         "--alerts", str(tmp_path / "all.jsonl")) == 0  # fmt: skip
        late = [
            a
            for a in _lines(tmp_path / "all.jsonl")
            if _at(a) >= BASE_TIME + timedelta(seconds=200)
        ]
        assert _lines(tmp_path / "2.jsonl") == late
        assert late  # the second half has alerts to compare

    def test_missing_topic_is_a_clear_error(self, kafka_bootstrap: str) -> None:
        from pipeline.errors import SourceError

        with pytest.raises(SourceError, match="does not exist"):
            KafkaRangeSource(
                "no-such-topic-for-backtests", bootstrap_servers=kafka_bootstrap,
                metadata_timeout_s=1.0,
            )  # fmt: skip


def _drain(source: KafkaRangeSource) -> list[Any]:
    out: list[Any] = []
    while not source.exhausted:
        out.extend(source.poll(500, 500))
    return out


def _at(alert: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(alert["detected_at"].replace("Z", "+00:00"))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]
