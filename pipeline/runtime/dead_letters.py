"""What the loop does with a dead letter (for the sidecar and replay alike): log it
with where it came from (rate-limited per reason), stop when ``fail_fast`` says so,
stamp when it failed."""

from __future__ import annotations

from pipeline.core.records import Message, Record
from pipeline.errors import DriftlineError
from pipeline.logs import RateLimiter, get_logger

__all__ = ["FailFastError", "check_dead_letter", "stamped"]

log = get_logger("driftline.runtime")

LOG_INTERVAL_S = 10.0
"""At most one ``dead_letter`` line per reason this often; the next one says how many
were not logged (``repeated``). The topic and ``driftline_dead_letters_total`` have
every one: a flood of junk must not become a flood of log lines."""
_limiter = RateLimiter(LOG_INTERVAL_S)


class FailFastError(DriftlineError):
    """A bad record arrived and ``runtime.fail_fast`` is set."""


def check_dead_letter(record: Record, message: Message, *, fail_fast: bool) -> str:
    """Log the dead letter ``record`` caused; its reason. Raises ``FailFastError``
    instead when ``fail_fast``."""
    headers = dict(message.headers)
    reason = headers.get("dl_reason", b"").decode()
    repeated = _limiter.allow(reason)
    if repeated is not None:
        log.warning(
            "dead_letter",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            reason=reason,
            detail=headers.get("dl_detail", b"").decode("utf-8", "replace"),
            **({"repeated": repeated} if repeated else {}),
        )
    if fail_fast:
        raise FailFastError(
            f"bad record at {record.topic}[{record.partition}]@{record.offset}: {reason}"
        )
    return reason


def stamped(message: Message, failed_at: bytes) -> Message:
    """The dead letter with a ``dl_failed_at`` header."""
    return Message(
        message.kind, message.key, message.value, (*message.headers, ("dl_failed_at", failed_at))
    )
