"""Subscribe to driftline's alerts and rollback commands, as typed events.

For on-call tooling, chat bots, dashboards and training orchestrators::

    from pipeline.config import load_settings
    from pipeline.subscribe import subscribe

    settings = load_settings("driftline.yaml")  # Kafka address, security, topic names
    with subscribe(settings, models={"fraud"}, min_severity="drift", follow=True) as sub:
        for event in sub:  # AlertEvent | RollbackCommand
            if isinstance(event, RollbackCommand):
                page_the_ml_oncall(event)
            else:
                post_to_channel(render_alert(event))

What a subscription guarantees:

* **committed data only**: the topics are read with ``isolation_level=read_committed``,
  so an alert of an aborted sidecar transaction is never delivered;
* **each alert once**: events are deduplicated by ``alert_id`` / ``command_id``
  (deterministic ids: an at-least-once sidecar that republished a batch after a crash
  publishes the same ids), remembering the last ``dedup_memory`` ids;
* **typed**: every delivered event validates against the contract
  (``pipeline.events``; JSON Schemas in ``schemas/``). A record that does not is
  skipped and counted in ``stats["invalid"]`` (``errors="raise"`` raises instead);
* **filters**: ``models`` (ids), ``min_severity`` (alerts at or above it; rollback
  commands always pass), ``kinds`` (``alert``, ``rollback``), ``statuses``
  (``firing``, ``resolved``: e.g. only what opens a page);
* **incidents**: an alert is ``firing`` (it opens an incident, or re-notifies one
  whose severity rose) or ``resolved`` (it closes one); both carry ``incident_id``.
  :attr:`Subscription.open_incidents` is the latest firing alert of every incident
  delivered and not yet resolved. Version-1 alerts (older sidecars) read as firing,
  with ``incident_id`` None;
* **follow or stop**: ``follow=False`` stops once everything committed when the
  subscription started has been read; ``follow=True`` waits for new events until
  :meth:`Subscription.stop` is called (from another thread or a signal handler).

Where reading starts: ``start="beginning"``, ``"end"`` (only new events) or an int N
(about the last N records of each partition). With ``group_id`` the subscription is a
consumer-group member: it resumes from the group's committed offsets and
:meth:`Subscription.commit` records what was handled (at-least-once handling; the
deduplication covers repeats within one process). An orchestrator that must act on
each rollback command exactly once keeps its own record of handled command ids: see
``deploy/examples/orchestrator.py`` and ``docs/orchestrator.md``.

The Kafka client lives behind :class:`Reader` (``pipeline.io.subscriber``); any object
with ``poll``/``caught_up``/``close`` can stand in for it (tests, files).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol

import orjson
from pydantic import ValidationError

from pipeline.config import SEVERITY_RANK
from pipeline.core.records import Headers, Record
from pipeline.errors import DecodeError
from pipeline.events import AlertEvent, AlertStatus, RollbackCommand, Severity
from pipeline.io.base import TopicPartition

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.io.subscriber import Start

__all__ = [
    "Delivery",
    "Event",
    "EventKind",
    "Filters",
    "Reader",
    "Subscription",
    "decode_output",
    "subscribe",
]

Event = AlertEvent | RollbackCommand
EventKind = Literal["alert", "rollback"]
_SCHEMA_KINDS: dict[str, EventKind] = {
    "driftline.alert.v1": "alert",
    "driftline.alert.v2": "alert",
    "driftline.rollback-command.v1": "rollback",
}


class Reader(Protocol):
    """Where records come from (``pipeline.io.subscriber.OutputTopicReader``)."""

    def poll(self, timeout_ms: int, max_records: int = 500) -> list[Record]: ...

    def caught_up(self) -> bool:
        """Everything there was to read when reading started has been read."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivered event and where it was read."""

    event: Event
    topic: str
    partition: int
    offset: int
    headers: Headers = ()

    @property
    def kind(self) -> EventKind:
        return "alert" if isinstance(self.event, AlertEvent) else "rollback"

    @property
    def event_id(self) -> str:
        return event_id(self.event)


def event_id(event: Event) -> str:
    """``alert_id`` or ``command_id``."""
    return event.alert_id if isinstance(event, AlertEvent) else event.command_id


@dataclass(frozen=True, slots=True)
class Filters:
    """Which events a subscription delivers (None: no restriction)."""

    models: frozenset[str] | None = None
    min_severity: Severity | None = None
    """Alerts at this severity or above; rollback commands always pass."""
    kinds: frozenset[EventKind] = frozenset(("alert", "rollback"))
    statuses: frozenset[AlertStatus] | None = None
    """Alerts of these statuses (``firing``, ``resolved``); None: both."""

    def accepts(self, event: Event) -> bool:
        if isinstance(event, AlertEvent):
            if "alert" not in self.kinds:
                return False
            if self.statuses is not None and event.status not in self.statuses:
                return False
            if (
                self.min_severity is not None
                and SEVERITY_RANK[event.severity] < SEVERITY_RANK[self.min_severity]
            ):
                return False
        elif "rollback" not in self.kinds:
            return False
        return self.models is None or event.model_id in self.models


def decode_output(value: bytes, kind: EventKind | None = None) -> Event:
    """An alert or rollback command from its JSON bytes; the kind comes from the
    payload's ``schema`` tag, else from ``kind`` (the topic it was read from).
    Raises ``DecodeError`` (reason ``malformed_json`` / ``schema``)."""
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("malformed_json", str(exc)) from None
    if not isinstance(body, dict):
        raise DecodeError("schema", "not a JSON object")
    tag = body.get("schema")
    found = _SCHEMA_KINDS.get(tag) if isinstance(tag, str) else None
    if tag is not None and found is None:
        raise DecodeError("schema", f"unknown schema {tag!r}")
    kind = found or kind
    if kind is None:
        raise DecodeError("schema", "no schema tag and no topic kind")
    model = AlertEvent if kind == "alert" else RollbackCommand
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        raise DecodeError("schema", str(exc)) from None


class Subscription:
    """An iterator over the filtered, deduplicated events of a :class:`Reader`.

    Iterating yields ``AlertEvent`` / ``RollbackCommand``; :meth:`deliveries` yields
    :class:`Delivery` (the event with its topic, partition, offset and headers).
    """

    def __init__(
        self,
        reader: Reader,
        *,
        topic_kinds: Mapping[str, EventKind] | None = None,
        filters: Filters | None = None,
        follow: bool = False,
        dedup_memory: int = 100_000,
        poll_timeout_ms: int = 500,
        errors: Literal["skip", "raise"] = "skip",
    ) -> None:
        if dedup_memory < 1:
            raise ValueError("dedup_memory must be >= 1")
        self.reader = reader
        self.topic_kinds = dict(topic_kinds or {})
        self.filters = filters or Filters()
        self.follow = follow
        self.poll_timeout_ms = poll_timeout_ms
        self.errors = errors
        self.stats: Counter[str] = Counter()
        """``delivered``, ``duplicates``, ``filtered``, ``invalid``."""
        self._dedup_memory = dedup_memory
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._stop = threading.Event()
        self._handled: dict[TopicPartition, int] = {}
        self.open_incidents: OrderedDict[str, AlertEvent] = OrderedDict()
        """incident id -> its latest firing alert, for the incidents delivered and
        not yet resolved (bounded by ``dedup_memory``)."""

    # -- control ------------------------------------------------------------
    def stop(self) -> None:
        """End iteration after the current poll (thread-safe, signal-safe)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def commit(self) -> None:
        """Commit the positions of everything delivered so far (group mode)."""
        self.reader.commit(dict(self._handled))

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- iteration ----------------------------------------------------------
    def __iter__(self) -> Iterator[Event]:
        return (delivery.event for delivery in self.deliveries())

    def deliveries(self) -> Iterator[Delivery]:
        while not self._stop.is_set():
            records = self.reader.poll(self.poll_timeout_ms)
            for record in records:
                delivery = self._accept(record)
                self._handled[(record.topic, record.partition)] = record.offset + 1
                if delivery is not None:
                    yield delivery
                if self._stop.is_set():
                    return
            if not records and not self.follow and self.reader.caught_up():
                return

    def _accept(self, record: Record) -> Delivery | None:
        try:
            event = decode_output(record.value or b"", self.topic_kinds.get(record.topic))
        except DecodeError:
            self.stats["invalid"] += 1
            if self.errors == "raise":
                raise
            return None
        key = ("alert" if isinstance(event, AlertEvent) else "rollback", event_id(event))
        if key in self._seen:
            self._seen.move_to_end(key)
            self.stats["duplicates"] += 1
            return None
        self._seen[key] = None
        if len(self._seen) > self._dedup_memory:
            self._seen.popitem(last=False)
        if not self.filters.accepts(event):
            self.stats["filtered"] += 1
            return None
        self.stats["delivered"] += 1
        if isinstance(event, AlertEvent) and event.incident_id is not None:
            if event.status == "resolved":
                self.open_incidents.pop(event.incident_id, None)
            else:
                self.open_incidents[event.incident_id] = event
                self.open_incidents.move_to_end(event.incident_id)
                if len(self.open_incidents) > self._dedup_memory:
                    self.open_incidents.popitem(last=False)
        return Delivery(event, record.topic, record.partition, record.offset, record.headers)


def subscribe(
    settings: Settings,
    *,
    models: Collection[str] | None = None,
    min_severity: Severity | None = None,
    kinds: Collection[EventKind] = ("alert", "rollback"),
    statuses: Collection[AlertStatus] | None = None,
    follow: bool = False,
    start: Start = "beginning",
    group_id: str | None = None,
    bootstrap_servers: str | None = None,
    dedup_memory: int = 100_000,
    errors: Literal["skip", "raise"] = "skip",
) -> Subscription:
    """A subscription to the alert and rollback-command topics of ``settings``
    (Kafka address and security from ``settings.kafka``, unless
    ``bootstrap_servers`` overrides the address). Raises ``SourceError`` when the
    broker cannot be reached or none of the topics exists."""
    from pipeline.io.subscriber import OutputTopicReader

    wanted = frozenset(kinds)
    if not wanted or not wanted <= {"alert", "rollback"}:
        raise ValueError(f"kinds must be a non-empty subset of alert, rollback: {sorted(kinds)}")
    topics: dict[str, EventKind] = {}
    if "alert" in wanted:
        topics[settings.topics.alerts] = "alert"
    if "rollback" in wanted:
        topics[settings.topics.rollback_commands] = "rollback"
    reader = OutputTopicReader(
        topics,
        bootstrap_servers=bootstrap_servers or settings.kafka.bootstrap_servers,
        start=start,
        group_id=group_id,
        extra=settings.kafka.client_options(),
    )
    return Subscription(
        reader,
        topic_kinds=topics,
        filters=Filters(
            models=frozenset(models) if models is not None else None,
            min_severity=min_severity,
            kinds=wanted,
            statuses=frozenset(statuses) if statuses is not None else None,
        ),
        follow=follow,
        dedup_memory=dedup_memory,
        errors=errors,
    )
