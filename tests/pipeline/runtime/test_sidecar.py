"""/healthz fails, naming the partition, when a partition held records and committed none
of them for the liveness timeout, although the loop keeps cycling; not during an
outage (restarting cannot help that)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pipeline.config import Settings
from pipeline.core.records import Record
from pipeline.io.memory import MemorySink, MemorySource
from pipeline.runtime.broker_watch import BrokerWatch
from pipeline.runtime.loop import Loop
from pipeline.runtime.sidecar import Sidecar


def test_a_partition_without_committed_progress_fails_healthz(
    make_settings: Callable[..., Settings], make_loop: Callable[..., Loop]
) -> None:
    settings = make_settings(runtime={"liveness_timeout_s": 30})
    sidecar = Sidecar(settings, threading.Event())
    assert sidecar.stalled() is None  # not started
    loop = make_loop(MemorySource([]), MemorySink(), settings=settings)
    sidecar.loop = loop
    batch = [Record("preds", 2, 41, b"{}")]
    loop.progress.rewound({("preds", 2): 41})
    loop.progress.polled(batch, time.monotonic() - 31)
    for _ in range(7):
        loop.progress.failed(batch)
    problem = sidecar.stalled()
    assert problem == "no committed progress for 30 s: preds[2] at offset 41 (7 failed attempts)"

    connected = {"now": False}
    sidecar.watch = BrokerWatch(lambda: connected["now"], lambda: None)
    sidecar.watch.tick()  # the broker is unreachable: not the sidecar's fault
    assert sidecar.stalled() is None
    connected["now"] = True
    sidecar.watch.tick()
    assert sidecar.stalled() == problem

    loop.progress.committed({("preds", 2): 42})
    assert sidecar.stalled() is None
