"""The logging setup: the Kafka client's own warnings reach the structured log,
rate-limited, and registered secrets never appear in a line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import structlog
from structlog.testing import capture_logs

from pipeline.logs import RateLimiter, StdlibBridge


class TestRateLimiter:
    def test_one_per_window_with_the_count_held_back(self) -> None:
        limiter = RateLimiter(window_s=10)
        assert limiter.allow("k", now=0) == 0
        assert limiter.allow("k", now=1) is None
        assert limiter.allow("k", now=2) is None
        assert limiter.allow("other", now=2) == 0
        assert limiter.allow("k", now=10.5) == 2
        assert limiter.allow("k", now=11) is None


class TestStdlibBridge:
    def test_warnings_are_routed_and_rate_limited(self) -> None:
        logger = logging.getLogger("kafka.test-bridge")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        bridge = StdlibBridge()
        logger.addHandler(bridge)
        try:
            with capture_logs() as events:
                for attempt in range(50):
                    logger.warning("Bootstrap to %s failed: %s", "b-0", f"attempt {attempt}")
                logger.info("not routed: below warning")
                logger.error("Connection failed: %s", "CERTIFICATE_VERIFY_FAILED")
        finally:
            logger.removeHandler(bridge)
        assert [(e["event"], e["log_level"]) for e in events] == [
            ("kafka_client", "warning"),
            ("kafka_client", "error"),
        ]
        assert events[0]["logger"] == "kafka.test-bridge"
        assert events[0]["message"] == "Bootstrap to b-0 failed: attempt 0"
        assert "CERTIFICATE_VERIFY_FAILED" in events[1]["message"]
        structlog.reset_defaults()


SCRIPT = """
import logging
from pipeline.logs import configure_logging, get_logger, redact
configure_logging("info", json=True)
redact(["canary-pw-1234", None, "ab"])
get_logger("t").warning("oops", detail="login canary-pw-1234 failed")
logging.getLogger("kafka.conn").error("auth with canary-pw-1234")
logging.getLogger("kafka.conn").error("from the environment: canary-env-5678")
try:
    raise ValueError("boom canary-pw-1234")
except ValueError:
    get_logger("t").exception("crashed")
"""


def test_secrets_are_scrubbed_from_every_line() -> None:
    env = {"DRIFTLINE_KAFKA__SECURITY__SASL_PASSWORD": "canary-env-5678", "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True
    )
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["oops", "kafka_client", "kafka_client", "crashed"]
    assert "canary" not in proc.stderr
    assert proc.stderr.count("***") == 4
