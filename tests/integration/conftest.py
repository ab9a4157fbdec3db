"""Fixtures for tests that need the real broker (deploy/kafka/kafka.sh).

- every test under tests/integration is marked ``integration`` (deselect with
  ``-m "not integration"``);
- ``kafka_bootstrap`` (session): starts the local single-node Kafka, or reuses a running one,
  and returns ``"127.0.0.1:<port>"``. A broker that cannot start fails the tests, it never
  skips them;
- ``kafka_broker`` (session): ``stop()`` / ``start()`` / ``restart()`` the broker on the same data,
  for fault-injection tests;
- ``make_topic`` (function): ``make_topic(partitions=1, config=None) -> name`` creates a fresh
  uniquely named topic and waits until every partition has a leader.

The broker is left running after the session, for the next run to reuse (and because another
pytest process may be using it): `deploy/kafka/kafka.sh stop`, `make` and CI stop it.
DRIFTLINE_KAFKA_STOP_AFTER=1 stops a broker that this session started when the session ends.
Environment for the broker itself: KAFKA_PORT, KAFKA_DATA_DIR, ... as for kafka.sh.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
INTEGRATION_DIR = Path(__file__).resolve().parent
START_TIMEOUT_S = int(os.environ.get("KAFKA_START_TIMEOUT", "90"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs the real Kafka broker started by deploy/kafka/kafka.sh"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.integration)


class KafkaBroker:
    """The local broker as driven by kafka.sh."""

    def __init__(self) -> None:
        self.port = int(os.environ.get("KAFKA_PORT", "39092"))
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        # The round trip in kafka.sh needs kafka-python: the interpreter running pytest has it.
        self.env.setdefault("PYTHON", sys.executable)
        self.started_here = False

    def sh(
        self, *args: str, timeout: float = START_TIMEOUT_S + 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(KAFKA_SH), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def _checked(self, *args: str) -> str:
        try:
            proc = self.sh(*args)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"kafka.sh {' '.join(args)} timed out after {exc.timeout}s") from exc
        if proc.returncode != 0:
            raise RuntimeError(
                f"kafka.sh {' '.join(args)} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
            )
        return str(proc.stdout)

    def start(self) -> str:
        return self._checked("start")

    def stop(self) -> str:
        return self._checked("stop")

    def restart(self) -> str:
        self.stop()
        return self.start()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    broker = KafkaBroker()
    try:
        broker.started_here = "started (pid" in broker.start()
    except (RuntimeError, OSError) as exc:
        # Never skip: a missing broker must not turn the integration suite green.
        pytest.fail(
            f"the local Kafka broker did not start ({KAFKA_SH.relative_to(REPO)} start):\n"
            f"{exc}\n(run `{KAFKA_SH.relative_to(REPO)} logs`; to leave these tests out, "
            f"run pytest with -m 'not integration')",
            pytrace=False,
        )
    yield broker
    stop_after = os.environ.get("DRIFTLINE_KAFKA_STOP_AFTER", "") not in ("", "0", "false")
    # Under pytest-xdist other workers may still be using the broker: leave it running.
    if broker.started_here and stop_after and "PYTEST_XDIST_WORKER" not in os.environ:
        broker.sh("stop")


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
def make_topic(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=kafka_bootstrap, client_id="driftline-tests", request_timeout_ms=30000
    )
    created: list[str] = []
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:120]

    def _make(partitions: int = 1, config: dict[str, Any] | None = None) -> str:
        name = f"t-{stem}-{uuid.uuid4().hex[:12]}"
        spec = {
            "num_partitions": partitions,
            "replication_factor": 1,
            "configs": {k: str(v) for k, v in (config or {}).items()},
        }
        admin.create_topics({name: spec}, timeout_ms=30000)
        created.append(name)
        admin.wait_for_topics([name], timeout_ms=30000)
        return name

    yield _make
    try:
        if created:
            admin.delete_topics(created, timeout_ms=30000, raise_errors=False)
    except Exception:
        pass
    finally:
        admin.close()
