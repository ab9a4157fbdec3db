"""driftline against a secured broker (SASL_SSL, SCRAM-SHA-512, ACLs) as a least-privilege
user: the sidecar with exactly the ACLs of the README's "Secured Kafka" table, ``alerts
tail`` and a Kafka backtest as a read-only user. And the failures a wrong setting or a
missing ACL cause are named, reflected by /healthz and leak nothing."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.generate import DriftSpec, GeneratorConfig, generate
from pipeline.io.kafka_topics import produce_all
from tests.integration.secured.conftest import SecuredBroker, _free_port
from tests.integration.sidecars import MONITORS

REPO = Path(__file__).resolve().parents[3]
STREAM = GeneratorConfig(
    events=3000,
    models=1,
    numeric_features=2,
    categorical_features=0,
    seed=5,
    drifts=(DriftSpec(signal="feature:amount", kind="abrupt", at=1500, magnitude=3.0),),
)


def write_config(path: Path, broker: SecuredBroker, **runtime: Any) -> Path:
    """Address, protocol, mechanism and CA in the file; the credentials come from the
    environment, as from a Kubernetes Secret."""
    config = {
        "kafka": {
            "bootstrap_servers": broker.bootstrap,
            "transactional_id": "driftline-it",
            "security": {
                "protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "ssl_cafile": broker.cafile,
            },
        },
        "runtime": {"http_host": "127.0.0.1", "liveness_timeout_s": 60, **runtime},
        "default_model": {"monitors": MONITORS, "default_monitors": False},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def env_for(broker: SecuredBroker, user: str, password: str | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "DRIFTLINE_KAFKA__SECURITY__SASL_USERNAME": user,
        "DRIFTLINE_KAFKA__SECURITY__SASL_PASSWORD": password or broker.password(user),
    }


def driftline(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--log-json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class Sidecar:
    def __init__(self, config: Path, env: dict[str, str], log: Path, port: int) -> None:
        self.port = port
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pipeline.cli",
                    "--log-json",
                    "run",
                    "--config",
                    str(config),
                ],
                env={**env, "DRIFTLINE_RUNTIME__HTTP_PORT": str(port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
            )

    def healthz(self) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def wait_for(self, event: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if e.get("event") == event:
                    return e
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.5)
        raise AssertionError(f"no {event} within {timeout}s:\n{self.log.read_text()[-3000:]}")

    def resources(self) -> tuple[int, int]:
        """(threads, open file descriptors) of the process."""
        pid = self.proc.pid
        threads = len(os.listdir(f"/proc/{pid}/task"))
        return threads, len(os.listdir(f"/proc/{pid}/fd"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=60)


@pytest.fixture
def sidecars() -> Iterator[list[Sidecar]]:
    started: list[Sidecar] = []
    yield started
    for sidecar in started:
        if sidecar.proc.poll() is None:
            sidecar.proc.kill()
            sidecar.proc.wait(timeout=30)


def test_sidecar_tail_and_backtest_with_least_privilege(
    secured_broker: SecuredBroker, tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    broker = secured_broker
    produced = produce_all(
        broker.bootstrap, "driftline.predictions", generate(STREAM), **broker.options("admin")
    )
    config = write_config(tmp_path / "driftline.yaml", broker)
    sidecar = Sidecar(config, env_for(broker, "driftline"), tmp_path / "sidecar.log", _free_port())
    sidecars.append(sidecar)
    sidecar.wait_for("sidecar_started")

    reader = env_for(broker, "reader")
    deadline = time.monotonic() + 120
    alerts: list[dict[str, Any]] = []
    while not alerts and time.monotonic() < deadline:
        tail = driftline(
            "alerts", "tail", "--config", str(config), "--from-beginning", "--json", env=reader
        )
        assert tail.returncode == 0, tail.stderr
        alerts = [json.loads(line) for line in tail.stdout.splitlines()]
        time.sleep(1)
    assert any(a.get("signal") == "feature:amount" for a in alerts), alerts
    assert sidecar.healthz()[0] == 200

    backtest = driftline(
        "backtest", "--config", str(config), "--input", "kafka:driftline.predictions",
        "--alerts", str(tmp_path / "bt.jsonl"), "--no-progress", env=reader,
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    assert (tmp_path / "bt.jsonl").read_text().count("feature:amount") >= 1

    assert sidecar.stop() == 0
    assert produced == STREAM.events

    # At-least-once: the same ACLs without the transactional id (user driftline-alo).
    later = dataclasses.replace(STREAM, seed=6, models=2)
    produce_all(
        broker.bootstrap, "driftline.predictions", generate(later), **broker.options("admin")
    )
    alo = Sidecar(
        config,
        {**env_for(broker, "driftline-alo"), "DRIFTLINE_RUNTIME__MODE": "at_least_once"},
        tmp_path / "alo.log",
        _free_port(),
    )
    sidecars.append(alo)
    alo.wait_for("sidecar_started")
    more: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while len(more) <= len(alerts) and time.monotonic() < deadline:
        tail = driftline(
            "alerts", "tail", "--config", str(config), "--from-beginning", "--json", env=reader
        )
        more = [json.loads(line) for line in tail.stdout.splitlines()]
        time.sleep(1)
    assert any(a["model_id"] == "model-1" for a in more), more
    assert alo.stop() == 0

    for process in (sidecar, alo):
        troubles = ("kafka_misconfigured", "kafka_not_authorized", "kafka_unavailable")
        assert not [e for e in process.events() if e.get("event") in troubles]
    logs = sidecar.log.read_text() + alo.log.read_text()
    for user in ("driftline", "driftline-alo", "reader"):
        for text in (logs, tail.stdout, tail.stderr, backtest.stdout, backtest.stderr):
            assert broker.password(user) not in text


def test_check_config_connect(secured_broker: SecuredBroker, tmp_path: Path) -> None:
    config = write_config(tmp_path / "driftline.yaml", secured_broker)
    ok = driftline("check-config", "--connect", str(config), env=env_for(secured_broker, "reader"))
    assert ok.returncode == 0, ok.stderr
    assert "accepts it" in ok.stdout
    bad = driftline(
        "check-config", "--connect", str(config),
        env={**env_for(secured_broker, "reader"), "DRIFTLINE_KAFKA__SECURITY__SASL_MECHANISM": "SCRAM-SHA-256"},
    )  # fmt: skip
    assert bad.returncode == 2
    assert "sasl_mechanism: SCRAM-SHA-256 is not enabled" in bad.stderr


def test_wrong_password_is_named_and_fails_healthz(
    secured_broker: SecuredBroker, tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    config = write_config(tmp_path / "driftline.yaml", secured_broker)
    canary = "canary-Wr0ng-pw-7731"
    sidecar = Sidecar(
        config, env_for(secured_broker, "driftline", canary), tmp_path / "s.log", _free_port()
    )
    sidecars.append(sidecar)
    event = sidecar.wait_for("kafka_misconfigured")
    assert event["cause"] == "authentication"
    assert "sasl_password" in event["setting"]
    status, body = sidecar.healthz()
    assert status == 503 and "sasl_password" in body
    sidecar.stop()
    assert canary not in sidecar.log.read_text()
    misconfigured = [e for e in sidecar.events() if e.get("event") == "kafka_misconfigured"]
    assert len(misconfigured) == 1, "reported once, not per retry"

    tail = driftline(
        "alerts", "tail", "--config", str(config), "--from-beginning",
        env=env_for(secured_broker, "reader", canary), timeout=180,
    )  # fmt: skip
    assert tail.returncode == 2
    assert "refused user 'reader' with SCRAM-SHA-512" in tail.stderr
    assert canary not in tail.stdout + tail.stderr


def test_missing_transactional_id_acl_is_named_and_leaks_nothing(
    secured_broker: SecuredBroker, tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    """The at-least-once user in exactly-once mode: every ACL but the transactional id's.
    Each attempt to start a transaction fails; none may leave a producer behind."""
    config = write_config(tmp_path / "driftline.yaml", secured_broker)
    sidecar = Sidecar(
        config, env_for(secured_broker, "driftline-alo"), tmp_path / "s.log", _free_port()
    )
    sidecars.append(sidecar)
    event = sidecar.wait_for("kafka_not_authorized")
    assert event["resource"] == "TransactionalId"
    assert event["needs"].startswith("ALLOW Write on TransactionalId 'driftline-it'")
    status, body = sidecar.healthz()
    assert status == 503 and "not authorized" in body
    samples = []
    for _ in range(4):
        time.sleep(8)
        samples.append(sidecar.resources())
    threads = [t for t, _ in samples]
    fds = [f for _, f in samples]
    assert max(threads) - min(threads) <= 2, samples
    assert max(fds) - min(fds) <= 4, samples
    lines = len(sidecar.log.read_text().splitlines())
    assert lines < 60, f"{lines} log lines in ~35 s: retries are not rate-limited"
    sidecar.stop()


def test_missing_read_on_state_and_input_is_named_before_anything_runs(
    secured_broker: SecuredBroker, tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    """Without Read on the state topic a first start would restore nothing and look
    fine; without Read on an input its partitions would never be assigned. Both are
    named at start from the broker's own account of the principal's permissions."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourceType,
    )

    acls = [
        ACL(
            principal="User:driftline-alo",
            host="*",
            operation=ACLOperation.READ,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL
            ),
        )
        for topic in ("driftline.state", "driftline.labels")
    ]
    admin = KafkaAdminClient(
        bootstrap_servers=secured_broker.bootstrap, **secured_broker.options("admin")
    )
    admin.delete_acls(acls)
    try:
        config = write_config(tmp_path / "driftline.yaml", secured_broker, mode="at_least_once")
        sidecar = Sidecar(
            config, env_for(secured_broker, "driftline-alo"), tmp_path / "s.log", _free_port()
        )
        sidecars.append(sidecar)
        event = sidecar.wait_for("kafka_not_authorized")
        assert sorted(event["missing"]) == [
            "Topic driftline.labels: Read",
            "Topic driftline.state: Read",
        ]
        status, body = sidecar.healthz()
        assert status == 503 and "driftline.state: Read" in body
        assert not [e for e in sidecar.events() if e.get("event") == "state_restored"]
        sidecar.stop()
    finally:
        admin.create_acls(acls)
        admin.close()
