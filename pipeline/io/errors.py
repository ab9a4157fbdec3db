"""The errors of the I/O layer, typed, so the loop never inspects a client's exceptions.

Every Kafka client error is translated where it happens (``pipeline.io.kafka``):

* ``SourceError`` / ``SinkError``: reading or writing failed; the sidecar treats
  them as transient (abort, rewind, restore, retry with backoff);
* ``MessageRejected``: a ``SinkError`` that one message caused (the broker or the
  client refused that record: too large, invalid, a topic it may not write); it names
  the message, so the loop can stop retrying it (``pipeline.runtime.rejections``);
* ``FencedError``: another producer with the same transactional id has taken over;
  this instance is a zombie and must stop. Never retried.
"""

from __future__ import annotations

from pipeline.core.records import Message
from pipeline.errors import DriftlineError, SinkError, SourceError

__all__ = ["FencedError", "MessageRejected", "SinkError", "SourceError", "TRANSIENT"]


class FencedError(DriftlineError):
    """A newer producer with our transactional id fenced this one."""


class MessageRejected(SinkError):
    """``message`` (the very object given to ``send``) was refused; ``reason`` names
    the error (e.g. ``MessageSizeTooLargeError``)."""

    def __init__(self, what: str, message: Message, reason: str) -> None:
        super().__init__(f"{what}: {message.kind} message rejected: {reason}")
        self.message = message
        self.reason = reason


TRANSIENT: tuple[type[BaseException], ...] = (SourceError, SinkError, OSError)
"""What a long-running loop recovers from (``OSError``: sockets, files)."""
