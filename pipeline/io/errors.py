"""The errors of the I/O layer, typed, so the loop never inspects a client's exceptions.

Every Kafka client error is translated where it happens (``pipeline.io.kafka``):

* ``SourceError`` / ``SinkError``: reading or writing failed; the sidecar treats
  them as transient (abort, rewind, restore, retry with backoff);
* ``FencedError``: another producer with the same transactional id has taken over;
  this instance is a zombie and must stop. Never retried.
"""

from __future__ import annotations

from pipeline.errors import DriftlineError, SinkError, SourceError

__all__ = ["FencedError", "SinkError", "SourceError", "TRANSIENT"]


class FencedError(DriftlineError):
    """A newer producer with our transactional id fenced this one."""


TRANSIENT: tuple[type[BaseException], ...] = (SourceError, SinkError, OSError)
"""What a long-running loop recovers from (``OSError``: sockets, files)."""
