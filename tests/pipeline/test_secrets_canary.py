"""No secret in any output: every command runs with canary values in the secret settings
(from the environment, as from a Kubernetes Secret, and from the config file), and
everything it prints, logs, serves or writes is searched for them — tracebacks and
error messages included. The broker is unreachable (a closed port): the error paths
are the ones most likely to print a setting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.generate import GeneratorConfig, generate

REPO = Path(__file__).resolve().parents[2]
# YAML would read these as an alias, a flow list and a comment; a number; all must stay text.
ENV_CANARY = "*canary-[env]!x #tail"
# Letters only in the fragment: digits turn up in timestamps and metric values by chance.
FILE_CANARY = "canary-file-qzxjvk"
KEY_CANARY = "12345678canary"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("secrets")
    (work / "ca.pem").write_text("not a certificate\n")
    config = {
        "kafka": {
            "bootstrap_servers": f"127.0.0.1:{free_port()}",
            "extra": {"bootstrap_timeout_ms": 3000, "request_timeout_ms": 3000},
            "security": {
                "protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "driftline",
                "ssl_cafile": str(work / "ca.pem"),
                "ssl_password": FILE_CANARY,
            },
        },
        "runtime": {"http_host": "127.0.0.1", "http_port": free_port()},
        "default_model": {"features": ["amount"]},
    }
    (work / "c.yaml").write_text(yaml.safe_dump(config))
    broken = dict(config, runtime={"max_batch_events": 0})
    (work / "broken.yaml").write_text(yaml.safe_dump(broken))
    with (work / "events.jsonl").open("wb") as out:
        for _model, value in generate(GeneratorConfig(events=300, models=1, seed=3)):
            out.write(value + b"\n")
    return work


def env() -> dict[str, str]:
    return {
        **os.environ,
        "DRIFTLINE_KAFKA__SECURITY__SASL_PASSWORD": ENV_CANARY,
        "DRIFTLINE_KAFKA__EXTRA__SASL_OAUTH_TOKEN": KEY_CANARY,
    }


def driftline(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env(),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=work,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def assert_clean(*texts: str) -> None:
    for text in texts:
        for canary in (ENV_CANARY, FILE_CANARY, KEY_CANARY, "canary-[env]", "qzxjvk"):
            assert canary not in text, text[-2000:]


COMMANDS = [
    ("check-config", "c.yaml"),
    ("check-config", "--connect", "c.yaml"),
    ("check-config", "broken.yaml"),
    ("--log-json", "replay", "--config", "c.yaml", "--input", "events.jsonl", "--output", "out.jsonl"),
    ("backtest", "--config", "c.yaml", "--input", "events.jsonl", "--report", "r.html", "--no-progress"),
    ("--log-json", "backtest", "--config", "c.yaml", "--input", "kafka:t", "--alerts", "k.jsonl"),
    ("--log-json", "alerts", "tail", "--config", "c.yaml"),
    ("--log-json", "generate", "--events", "5", "--topic", "t", "--config", "c.yaml"),
    ("alerts", "tail", "--config", "c.yaml", "--bootstrap-servers", "[::1"),
]  # fmt: skip


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a)[:40])
def test_command_outputs_hold_no_secret(workdir: Path, argv: tuple[str, ...]) -> None:
    proc = driftline(workdir, *argv)
    assert_clean(proc.stdout, proc.stderr)
    for path in workdir.rglob("*"):
        if path.is_file() and path.name not in ("c.yaml", "broken.yaml"):
            assert_clean(path.read_text(errors="replace"))


def test_running_sidecar_holds_no_secret(workdir: Path) -> None:
    """Logs while it retries, /metrics, /healthz, and the stack dump of SIGUSR1."""
    port = yaml.safe_load((workdir / "c.yaml").read_text())["runtime"]["http_port"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "--log-json", "run", "--config", "c.yaml"],
        env=env(),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = []
    try:
        deadline = time.monotonic() + 60
        while len(served) < 2 and time.monotonic() < deadline:
            time.sleep(1)
            for path in ("/metrics", "/healthz"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                        served.append(r.read().decode())
                except urllib.error.HTTPError as exc:
                    served.append(exc.read().decode())
                except OSError:
                    pass
        time.sleep(8)  # a few connect attempts
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert len(served) >= 2, output[-2000:]
    assert "kafka_unavailable" in output or "kafka_misconfigured" in output, output[-2000:]
    assert_clean(output, *served)
