"""structlog setup: JSON lines on stderr for machines, key=value on a terminal.

The Kafka client (kafka-python) logs through the standard ``logging`` module, where the
cause of a failure often is the only place it appears (a failed SASL handshake, a
certificate that does not verify). :class:`StdlibBridge` routes its warnings and errors
into the same structured output, at most once per message and ``window_s`` (the count of
repeats rides on the next line). Secrets registered with :func:`redact` are replaced by
``***`` in every line, whoever wrote it."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

__all__ = [
    "RateLimiter",
    "StdlibBridge",
    "configure_logging",
    "get_logger",
    "redact",
    "scrub",
]

_SECRETS: set[str] = set()
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL")
_MIN_SECRET_LEN = 4  # shorter values would blank out ordinary words


def redact(values: Iterable[str | None]) -> None:
    """Never print these values (passwords): every log line has them replaced."""
    _SECRETS.update(v for v in values if v and len(v) >= _MIN_SECRET_LEN)


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _scrub_processor(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if _SECRETS:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = scrub(value)
    return event


class RateLimiter:
    """Allows one occurrence of a key per ``window_s``; says how many were held back."""

    def __init__(self, window_s: float = 30.0, max_keys: int = 1024) -> None:
        self.window_s = window_s
        self._max_keys = max_keys
        self._seen: dict[Any, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def allow(self, key: Any, now: float | None = None) -> int | None:
        """None: hold this one back; else the number held back since the last one."""
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < self.window_s:
                self._seen[key] = (last[0], last[1] + 1)
                return None
            if last is None and len(self._seen) >= self._max_keys:
                self._seen.clear()
            self._seen[key] = (now, 0)
            return 0 if last is None else last[1]


class StdlibBridge(logging.Handler):
    """A ``logging`` handler that writes records as structlog events (rate-limited)."""

    def __init__(self, level: int = logging.WARNING, window_s: float = 30.0) -> None:
        super().__init__(level)
        self.limiter = RateLimiter(window_s)
        self._log = structlog.get_logger("kafka-client")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # The template, not the formatted text: one key per kind of message (a
            # reconnect to another broker or with another error number is not news).
            held_back = self.limiter.allow((record.name, str(record.msg)))
            if held_back is None:
                return
            fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
            if held_back:
                fields["repeated"] = held_back
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                fields["error"] = f"{type(exc).__name__}: {exc}"
            method = "error" if record.levelno >= logging.ERROR else "warning"
            getattr(self._log, method)("kafka_client", **fields)
        except Exception:  # a logging handler must never raise into the client
            self.handleError(record)


_bridge: StdlibBridge | None = None


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write, not at the time
    logging was configured: a redirected or replaced stream (a test's capture, a
    supervisor's pipe swapped in) never leaves the cached loggers holding a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    """Configure structlog once per process; ``json=None`` picks by TTY. Also routes
    the Kafka client's own warnings and errors into it (:class:`StdlibBridge`)."""
    global _bridge
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # JSON: tracebacks become text here, so that they are scrubbed too.
            *([structlog.processors.format_exc_info] if json else []),
            _scrub_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    redact(
        v for k, v in os.environ.items() if k.startswith("DRIFTLINE_") and _SECRET_NAME.search(k)
    )
    kafka_logger = logging.getLogger("kafka")
    if _bridge is not None:
        kafka_logger.removeHandler(_bridge)
    _bridge = StdlibBridge()
    kafka_logger.addHandler(_bridge)
    kafka_logger.setLevel(logging.WARNING)
    kafka_logger.propagate = False


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
