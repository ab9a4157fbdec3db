"""Every Kafka client driftline opens takes its settings from ``KafkaSettings`` through
one gate (``pipeline.io.client_options``).

Two checks: every place that constructs a kafka-python client is listed here (a new
one fails the test until it is added, with how it gets its settings), and every entry
point, driven with settings whose CA file does not exist, stops with the gate's error
naming ``kafka.security.ssl_cafile`` — before a single network call, so no broker is
needed: if a client skipped the gate it would try to connect instead."""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline import cli
from pipeline.config import Settings, parse_settings
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
CLIENTS = {"KafkaConsumer", "KafkaProducer", "KafkaAdminClient"}

# file -> clients constructed there (each receives the gate's options).
CONSTRUCTION_SITES = {
    "pipeline/io/kafka.py": ["KafkaConsumer", "KafkaProducer"],
    "pipeline/io/kafka_topics.py": ["KafkaConsumer", "KafkaConsumer", "KafkaProducer",
                                    "KafkaAdminClient"],
    "pipeline/io/kafka_range.py": ["KafkaConsumer"],
    "pipeline/io/subscriber.py": ["KafkaConsumer"],
    "pipeline/io/emit_transport.py": ["KafkaProducer"],  # Emitter(producer_options=...)
    "pipeline/io/permissions.py": ["KafkaAdminClient"],  # the sidecar's ACL check
    "deploy/examples/orchestrator.py": ["KafkaProducer", "KafkaConsumer", "KafkaAdminClient",
                                        "KafkaConsumer"],
}  # fmt: skip


def constructions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    return [n.func.id for n in calls if isinstance(n.func, ast.Name) and n.func.id in CLIENTS]


def test_every_construction_site_is_listed() -> None:
    found = {}
    for path in [*REPO.glob("pipeline/**/*.py"), REPO / "deploy/examples/orchestrator.py"]:
        if names := constructions(path):
            found[str(path.relative_to(REPO))] = names
    assert found == CONSTRUCTION_SITES


MISSING_CA = "/nonexistent/driftline-test-ca.pem"
SECURE = {
    "protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "driftline",
    "sasl_password": "canary-pw",
    "ssl_cafile": MISSING_CA,
}


@pytest.fixture
def settings() -> Settings:
    return parse_settings(
        {"kafka": {"bootstrap_servers": "127.0.0.1:9", "security": SECURE}}, environ={}
    )


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"kafka": {"bootstrap_servers": "127.0.0.1:9", "security": SECURE}})
    )
    return path


def refused(call: Callable[[], Any]) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.security\.ssl_cafile: cannot read"):
        call()


class TestEveryClientGoesThroughTheGate:
    def test_sidecar_clients(self, settings: Settings) -> None:
        from pipeline.io.kafka import KafkaSource
        from pipeline.io.kafka_topics import ensure_topics
        from pipeline.runtime.sidecar import Sidecar

        sidecar = Sidecar(settings, threading.Event())
        kafka = {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "extra": settings.kafka.client_options(),
        }
        refused(sidecar._prepare_state_topic)  # partitions (consumer)
        refused(sidecar.make_delivery)  # transactional producer
        refused(lambda: sidecar.changelog().load(0))  # state restore (consumer)
        refused(lambda: ensure_topics(**kafka, topics={"t": 1}))  # admin
        refused(lambda: KafkaSource(["t"], group_id="g", **kafka))
        refused(sidecar._missing_permissions)  # admin, asking for the principal's ACLs

    def test_sidecar_connect_stops_instead_of_retrying(self, settings: Settings) -> None:
        from pipeline.runtime.sidecar import Sidecar

        refused(Sidecar(settings, threading.Event()).connect)

    def test_subscribe(self, settings: Settings) -> None:
        from pipeline.subscribe import subscribe

        refused(lambda: subscribe(settings))

    def test_backtest_kafka_source(self, settings: Settings) -> None:
        from pipeline.backtest.sources import open_source, parse_input

        refused(lambda: open_source(parse_input("kafka:t"), settings))

    def test_demo(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from pipeline import demo

        for key, value in SECURE.items():
            monkeypatch.setenv(f"DRIFTLINE_KAFKA__SECURITY__{key.upper()}", value)
        refused(lambda: demo._online("127.0.0.1:9"))

    def test_emitter(self, settings: Settings) -> None:
        from pipeline.emit import Emitter

        refused(lambda: Emitter("127.0.0.1:9", producer_options=settings.kafka.client_options()))

    def test_orchestrator(self, settings: Settings) -> None:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "orchestrator", REPO / "deploy/examples/orchestrator.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        refused(
            lambda: module.Orchestrator(
                bootstrap_servers="127.0.0.1:9",
                client_options=settings.kafka.client_options(),
                commands_topic="c",
                training_topic="t",
                acks_topic="a",
                group_id="g",
                transactional_id="x",
                restorer=None,
            )
        )

    @pytest.mark.parametrize(
        "argv",
        [
            ["alerts", "tail"],
            ["generate", "--events", "10", "--topic", "t"],
            ["backtest", "--input", "kafka:t", "--alerts", "{tmp}/out"],
        ],
    )
    def test_commands(
        self,
        argv: list[str],
        config_file: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
        code = cli.main([*argv, "--config", str(config_file)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"kafka.security.ssl_cafile: cannot read {MISSING_CA}" in err
        assert "canary-pw" not in err
