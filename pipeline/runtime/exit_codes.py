"""The sidecar's exit codes that mean something to its supervisor.

Its own module so that a supervisor (the demo, the fault tests) can name them without
importing the sidecar, and with it a Kafka client.
"""

from __future__ import annotations

STALL_EXIT_CODE = 3
"""Restart me: the poll loop stalled, or the member was never assigned a partition.
Exactly-once state and offsets make a restart lose and repeat nothing."""
