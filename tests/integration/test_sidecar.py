"""The sidecar end to end on the real broker: generated drift in, alerts out."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import orjson

from pipeline.generate import DriftSpec, GeneratorConfig, generate
from tests.integration.sidecars import (
    SidecarProcess,
    check_semantics,
    committed_total,
    deploy,
    produce,
    read_topic,
    wait_caught_up,
)

STREAM = GeneratorConfig(
    events=6000,
    models=3,
    seed=21,
    bad_every=400,
    drifts=(DriftSpec(signal="feature:amount", at=3000, magnitude=2.0, model="model-0"),),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class TestSidecarExactlyOnce:
    def test_drift_becomes_an_alert_and_bad_records_dead_letters(
        self, kafka_bootstrap: str, tmp_path: Path
    ) -> None:
        port = _free_port()
        deployment = deploy(
            kafka_bootstrap, tmp_path, runtime={"http_port": port, "http_host": "127.0.0.1"}
        )
        produce(kafka_bootstrap, deployment.topics.predictions, generate(STREAM))
        sidecar = SidecarProcess(deployment, "a", tmp_path).start()
        try:
            wait_caught_up(deployment, [sidecar])
            status, body = _get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            assert "driftline_events_total" in body
            assert 'driftline_dead_letters_total{reason="malformed_json"}' in body
            assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 200
        finally:
            assert sidecar.terminate() == 0, sidecar.log_tail()
        counts = check_semantics(deployment)
        assert counts["dead_letters"] == 15
        alerts = [
            orjson.loads(r.value) for r in read_topic(kafka_bootstrap, deployment.topics.alerts)
        ]
        assert {(a["model_id"], a["signal"]) for a in alerts} == {("model-0", "feature:amount")}
        state = read_topic(kafka_bootstrap, deployment.topics.state)
        assert state, "no state changelog records"

    def test_restart_restores_state_instead_of_relearning(
        self, kafka_bootstrap: str, tmp_path: Path
    ) -> None:
        deployment = deploy(kafka_bootstrap, tmp_path, partitions=2)
        events = list(generate(STREAM))
        produce(kafka_bootstrap, deployment.topics.predictions, events[:2500])
        sidecar = SidecarProcess(deployment, "a", tmp_path).start()
        wait_caught_up(deployment, [sidecar])
        assert sidecar.terminate() == 0
        # The drift comes after the restart: only restored baselines can see it at once.
        produce(kafka_bootstrap, deployment.topics.predictions, events[2500:])
        sidecar.start()
        try:
            wait_caught_up(deployment, [sidecar])
        finally:
            assert sidecar.terminate() == 0
        log = sidecar.log_path.read_text()
        assert '"event": "state_restored"' in log or "state_restored" in log
        check_semantics(deployment)


class TestSidecarAtLeastOnce:
    def test_same_alerts_as_the_oracle(self, kafka_bootstrap: str, tmp_path: Path) -> None:
        deployment = deploy(kafka_bootstrap, tmp_path, runtime={"mode": "at_least_once"})
        produce(kafka_bootstrap, deployment.topics.predictions, generate(STREAM))
        sidecar = SidecarProcess(deployment, "a", tmp_path).start()
        try:
            wait_caught_up(deployment, [sidecar])
        finally:
            assert sidecar.terminate() == 0
        check_semantics(deployment)


class TestFailFast:
    def test_stops_at_the_bad_record_without_committing_it(
        self, kafka_bootstrap: str, tmp_path: Path
    ) -> None:
        deployment = deploy(kafka_bootstrap, tmp_path, partitions=1, runtime={"fail_fast": True})
        events = list(generate(GeneratorConfig(events=300, seed=3)))
        produce(kafka_bootstrap, deployment.topics.predictions, events[:100])
        produce(kafka_bootstrap, deployment.topics.predictions, [("model-0", b"{broken")])
        produce(kafka_bootstrap, deployment.topics.predictions, events[100:])
        sidecar = SidecarProcess(deployment, "a", tmp_path).start()
        assert sidecar.proc is not None
        assert sidecar.proc.wait(timeout=120) == 2, sidecar.log_tail()
        assert "bad record" in sidecar.log_path.read_text()
        assert committed_total(deployment) <= 100
        assert read_topic(kafka_bootstrap, deployment.topics.dlq) == []
