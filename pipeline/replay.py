"""Backtests: replay recorded events through the sidecar's own loop and core.

Replay drives ``pipeline.runtime.loop.Loop`` (batching, checkpoints, the
changelog of changed state, restore on assignment) around the same
``Processor`` as the sidecar, with a finite source (JSONL, Parquet, a Kafka
offset range), at-least-once delivery to a file or memory sink, and a
``SnapshotStore`` for state; nothing is decided here that the sidecar would
decide differently. What replay adds is at the edges only:

* rollback commands are forced to dry run (``force_dry_run``);
* detector state can start from a snapshot and is returned at the end
  (``pipeline.state.file_store.Snapshot``), with the source positions reached;
* an optional, pure observer sees every detector update (the engine's
  ``observer``), which backtest plots and scoring use;
* an error ends the replay (the sidecar would recover and retry).

Event time drives everything and the wall clock is never read (the loop gets
no clock), so two replays of the same input give byte-identical output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from pipeline.config import Settings
from pipeline.core.monitor import Observer
from pipeline.core.processor import Processor
from pipeline.core.records import Message, Record
from pipeline.io.base import Sink, Source
from pipeline.io.files import JsonlSink, JsonlSource
from pipeline.io.paths import FilePlan
from pipeline.logs import get_logger
from pipeline.runtime.checkpoint import Checkpoint, Delivery
from pipeline.runtime.loop import Loop, LoopHooks, RunStats
from pipeline.runtime.stores import SnapshotStore
from pipeline.state.file_store import Snapshot

__all__ = [
    "ReplayOutcome",
    "ReplaySink",
    "default_dead_letter_path",
    "force_dry_run",
    "replay",
    "run_replay",
]


def default_dead_letter_path(output: Path) -> Path:
    return output.with_name(output.stem + ".dead-letters.jsonl")


# ------------------------------------------------------------------- dry run
def force_dry_run(settings: Settings) -> Settings:
    """``settings`` with every rollback switched to dry run.

    Sets ``rollback.dry_run`` of every model spec (and of ``default_model``) that
    has a rollback section, and ``policy.dry_run`` should the policy settings ever
    get one. ``ReplaySink`` backs this up: no rollback command leaves a replay
    with ``dry_run: false`` whatever the settings say.
    """
    update: dict[str, Any] = {}
    models = {name: _dry_model(spec) for name, spec in settings.models.items()}
    if any(models[name] is not spec for name, spec in settings.models.items()):
        update["models"] = models
    if settings.default_model is not None:
        default = _dry_model(settings.default_model)
        if default is not settings.default_model:
            update["default_model"] = default
    policy = getattr(settings, "policy", None)
    if policy is not None and getattr(policy, "dry_run", True) is False:
        update["policy"] = policy.model_copy(update={"dry_run": True})
    return settings.model_copy(update=update) if update else settings


def _dry_model(spec: Any) -> Any:
    rollback = getattr(spec, "rollback", None)
    if rollback is None or getattr(rollback, "dry_run", True) is True:
        return spec
    return spec.model_copy(update={"rollback": rollback.model_copy(update={"dry_run": True})})


class ReplaySink:
    """The replay side of the sink seam: rollback commands are made dry run,
    state-changelog messages are dropped (replay's state goes to its
    ``SnapshotStore``, never to an output file), everything else passes through
    to ``inner``."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.forced_dry_run = 0

    def send(self, message: Message) -> None:
        if message.kind == "state":
            return
        if message.kind == "rollback" and message.value is not None:
            command = orjson.loads(message.value)
            if command.get("dry_run") is not True:
                command["dry_run"] = True
                self.forced_dry_run += 1
                get_logger("driftline.replay").warning(
                    "rollback_forced_dry_run", command_id=command.get("command_id")
                )
                message = Message(message.kind, message.key, orjson.dumps(command), message.headers)
        self.inner.send(message)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


# --------------------------------------------------------------------- the run
class _Progress(LoopHooks):
    def __init__(self, on_batch: Callable[[int], None]) -> None:
        self.on_batch = on_batch

    def committed(self, records: Sequence[Record], checkpoint: Checkpoint, seconds: float) -> None:
        self.on_batch(len(records))


@dataclass
class ReplayOutcome:
    stats: RunStats
    snapshot: Snapshot
    """Detector state at the end (starting snapshot + changes) and positions reached;
    with ``keep_state=False`` the positions only (and the entries of the starting
    snapshot, untouched)."""
    processor_stats: dict[str, int] = field(default_factory=dict)


def run_replay(
    settings: Settings,
    sources: Iterable[Source],
    sink: Sink,
    *,
    observer: Observer | None = None,
    initial: Snapshot | None = None,
    topic_kinds: Mapping[str, str] | None = None,
    on_batch: Callable[[int], None] | None = None,
    keep_state: bool = True,
) -> ReplayOutcome:
    """Replay ``sources`` in order through one processor (state carries over from
    one source to the next); outputs go to ``sink``, which is not closed.

    Each source is closed once read. ``topic_kinds`` maps input topics to event
    kinds (default: the configured input topics; other topics and files are
    decoded by each event's ``schema`` tag). ``keep_state=False``: the end state
    is not gathered into ``outcome.snapshot`` (nothing will save it): gathering
    takes a snapshot of every key at once, as large as the state itself (~180 KiB
    per warmed model of the default set), which made it the largest part of a
    replay's peak memory over many warmed models.
    """
    settings = force_dry_run(settings)
    processor = Processor(
        settings, settings.topics.inputs() if topic_kinds is None else topic_kinds
    )
    processor.monitor.observer = observer
    # The caller's snapshot is not changed: its partition and position maps are
    # copied, and its entries are only read (``Snapshot.apply`` replaces an entry,
    # never edits one), so they are shared rather than deep-copied (a second copy
    # of a large state).
    snapshot = Snapshot() if initial is None else initial.copy()
    store = SnapshotStore(snapshot, processor)
    delivery = Delivery.at_least_once(ReplaySink(sink))
    hooks = _Progress(on_batch) if on_batch is not None else None
    total = RunStats()
    for source in sources:
        # One loop per source: each is assigned its partitions afresh, and their
        # state is restored from the snapshot as the previous source left it.
        loop = Loop(processor, source, delivery, store, settings.runtime, hooks=hooks)
        try:
            stats = loop.run()
        finally:
            source.close()
        total.batches += stats.batches
        total.events += stats.events
        total.alerts += stats.alerts
        total.dead_letters += stats.dead_letters
    if keep_state:
        store.settle()
        # State a restore changed without a record (a layout migrated on load).
        for partition in sorted(snapshot.partitions):
            snapshot.apply(partition, processor.changed_state(partition))
    return ReplayOutcome(total, snapshot, dict(processor.stats))


def replay(
    settings: Settings,
    *,
    inputs: Sequence[Path],
    output: Path,
    dead_letters: Path | None = None,
    config_files: Sequence[Path] = (),
) -> RunStats:
    """Replay ``inputs`` in order; alerts and rollback commands go to ``output`` (one
    file, in the order they were produced), dead letters to their own file.

    Raises ``ConfigError`` before anything is opened when an output would overwrite
    another output or an input (``config_files``: the config it was read from).
    """
    dead_letters = dead_letters or default_dead_letter_path(output)
    plan = FilePlan().inputs("--config", config_files).inputs("--input", inputs)
    plan.output("--output", output).output("--dead-letters", dead_letters).check()
    sink = JsonlSink({"alert": output, "rollback": output, "dead_letter": dead_letters})
    try:
        outcome = run_replay(
            settings,
            (JsonlSource(path) for path in inputs),
            sink,
            topic_kinds={},
            keep_state=False,  # nothing saves it
        )
    finally:
        sink.close()
    return outcome.stats
