"""A second, secured broker for these tests only (``KAFKA_SECURE=1 deploy/kafka/kafka.sh``):
SASL_SSL with SCRAM-SHA-512, a CA made at start, StandardAuthorizer and the ACLs of
``deploy/kafka/acls.py``. Started once per session on its own ports and data directory,
stopped at the end. ``KAFKA_SECURE_PORT`` (and the next port, for its
controller) pins the ports; otherwise two free ones are picked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import KAFKA_SH, START_TIMEOUT_S


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SecuredBroker:
    bootstrap: str
    data_dir: Path

    def options(self, user: str) -> dict[str, Any]:
        """kafka-python settings of ``user`` (admin, driftline or reader)."""
        with (self.data_dir / "secure" / f"{user}.json").open() as fh:
            return dict(json.load(fh))

    def password(self, user: str) -> str:
        return str(self.options(user)["sasl_plain_password"])

    @property
    def cafile(self) -> str:
        return str(self.data_dir / "secure" / "ca.pem")


@pytest.fixture(scope="session")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    pinned = os.environ.get("KAFKA_SECURE_PORT")
    port = int(pinned) if pinned else _free_port()
    controller = port + 1 if pinned else _free_port()
    data_dir = tmp_path_factory.mktemp("secured-kafka")
    env = {
        **os.environ,
        "KAFKA_SECURE": "1",
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_DATA_DIR": str(data_dir),
        "PYTHON": os.environ.get("PYTHON", sys.executable),
    }

    def sh(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(KAFKA_SH), command],
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S + 180,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    started = sh("start")
    if started.returncode != 0:
        sh("stop")
        pytest.fail(
            f"the secured broker did not start:\n{started.stdout}{started.stderr}", pytrace=False
        )
    try:
        yield SecuredBroker(f"127.0.0.1:{port}", data_dir)
    finally:
        sh("stop")
