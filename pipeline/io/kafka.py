"""Kafka sources and sinks (kafka-python), for the sidecar's loop.

* ``KafkaSource``: a consumer-group member over the input topics. Offsets are
  never committed automatically; rebalance callbacks only *record* what changed,
  and the loop acts on it between polls, on its own thread.
* ``KafkaSink``: at-least-once producer; ``flush`` raises if any send failed.
* ``TransactionalKafkaSink``: one Kafka transaction per checkpoint, containing the
  outputs, the state changelog records and the consumer offsets.

Every call that waits for the broker inside a checkpoint is bounded
(``BROKER_WAIT_MS``): kafka-python's transactional calls and ``flush`` wait forever
by default, so a broker outage would hold the loop inside one of them until the
stall watchdog ended the process. Bounded, a call that gets no answer raises
``SinkError``, and the loop aborts, recovers and retries with backoff, staying alive
and saying so for as long as the outage lasts.

Every client error leaves this module as a typed error of ``pipeline.io.errors``:
``SourceError`` / ``SinkError``, or ``FencedError`` when a newer producer with the
same transactional id has taken over. (``kafka_range``, ``subscriber`` and
``kafka_topics`` are the other modules that use the client.)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTopicError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    ProducerFencedError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownError,
)
from kafka.producer.transaction_manager import TransactionState
from kafka.structs import OffsetAndMetadata

from pipeline.core.records import Message, Record
from pipeline.io.base import RebalanceEvents, TopicPartition
from pipeline.io.client_options import client_options, connect_error
from pipeline.io.consumer_records import to_record
from pipeline.io.errors import FencedError, MessageRejected, SinkError, SourceError

__all__ = [
    "KafkaSink",
    "KafkaSource",
    "TransactionalKafkaSink",
]


REQUEST_TIMEOUT_MS = 30_000
"""Bound on blocking client calls (kafka-python waits forever by default)."""

BROKER_WAIT_MS = 20_000
"""Bound on each wait for the broker inside a checkpoint (flush, the transactional
calls, committing or fetching offsets, a producer's start): well under the stall
watchdog's 1.5x ``liveness_timeout_s``, so an outage is retried, never a stall."""

REJECTIONS: tuple[type[KafkaError], ...] = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidRecordError,
    CorruptRecordError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
)
"""Errors about the record (or its topic), not the connection: sending the same
message again fails the same way."""


class _Recorder(ConsumerRebalanceListener):  # type: ignore[misc]
    """Records rebalance callbacks (they run on the client's IO thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events = RebalanceEvents()
        self._fresh: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: Iterable[KafkaTopicPartition]) -> None:
        with self._lock:
            for tp in revoked:
                self._events.revoked.add((tp.topic, tp.partition))
                self._events.assigned.discard((tp.topic, tp.partition))

    def on_partitions_assigned(self, assigned: Iterable[KafkaTopicPartition]) -> None:
        with self._lock:
            for tp in assigned:
                self._events.assigned.add((tp.topic, tp.partition))
                self._fresh.add((tp.topic, tp.partition))

    def take_fresh(self) -> set[TopicPartition]:
        """Partitions assigned since the last call (for ``KafkaSource`` to rewind)."""
        with self._lock:
            fresh, self._fresh = self._fresh, set()
        return fresh

    def keep_fresh(self, partitions: set[TopicPartition]) -> None:
        with self._lock:
            self._fresh |= partitions

    def on_partitions_lost(self, lost: Iterable[KafkaTopicPartition]) -> None:
        with self._lock:
            for tp in lost:
                self._events.lost.add((tp.topic, tp.partition))
                self._events.assigned.discard((tp.topic, tp.partition))

    def take(self) -> RebalanceEvents:
        with self._lock:
            events, self._events = self._events, RebalanceEvents()
        return events


def _client_settings(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return client_options(extra)


@contextlib.contextmanager
def _reading(what: str) -> Iterator[None]:
    """A client error while reading becomes a ``SourceError`` naming ``what``."""
    try:
        yield
    except KafkaError as exc:
        raise SourceError(f"{what}: {exc}") from exc


BATCH_FETCH_MIN_BYTES = 1024 * 1024
"""With ``batch_wait_ms``: the broker answers a fetch once this much is there (a
backlog) or the wait is over, whichever comes first."""
MAX_FETCH_WAIT_MS = 500
"""kafka-python's (and Kafka's) default ``fetch_max_wait_ms``; it must stay below the
request timeout."""


class KafkaSource:
    """A consumer-group member reading the input topics with ``read_committed``.

    ``batch_wait_ms`` (the loop's ``max_batch_ms``): how long the broker may hold a
    fetch for more records to arrive (``fetch_max_wait_ms``, with a large
    ``fetch_min_bytes``). With kafka-python's defaults (answer as soon as one byte is
    there) a stream of 300 events/s cost one fetch round trip per few records, ~20
    polls and a socket wake-up each per 100 ms batch: CPU on both sides, which on a
    busy machine turned into seconds of alert latency. Held at the broker, a fetch
    brings one batch window's records at once; a backlog fills ``fetch_min_bytes`` and
    is answered without waiting. 0: kafka-python's defaults.
    """

    def __init__(
        self,
        topics: Iterable[str],
        *,
        bootstrap_servers: str,
        group_id: str,
        client_id: str = "driftline",
        auto_offset_reset: str = "earliest",
        max_partition_fetch_bytes: int = 2 * 1024 * 1024,
        batch_wait_ms: int = 0,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.auto_offset_reset = auto_offset_reset
        self._batch_wait_ms = min(batch_wait_ms, MAX_FETCH_WAIT_MS)
        waiting: dict[str, int] = {}
        if batch_wait_ms > 0:
            waiting = {
                "fetch_min_bytes": BATCH_FETCH_MIN_BYTES,
                "fetch_max_wait_ms": self._batch_wait_ms,
            }
        try:
            self._consumer = KafkaConsumer(
                **waiting,
                bootstrap_servers=bootstrap_servers,
                group_id=group_id,
                client_id=client_id,
                enable_auto_commit=False,
                auto_offset_reset=auto_offset_reset,
                isolation_level="read_committed",
                max_partition_fetch_bytes=max_partition_fetch_bytes,
                fetch_max_bytes=max(max_partition_fetch_bytes, 50 * 1024 * 1024),
                session_timeout_ms=10_000,
                heartbeat_interval_ms=2_000,
                # kafka-python can join the group before the metadata of its topics
                # arrived ("No partition metadata for topic ...") and then assigns
                # nothing; it rejoins only when a metadata refresh shows the topics,
                # by default after 5 minutes. Refreshing every 10 s bounds that wait.
                metadata_max_age_ms=10_000,
                **_client_settings(extra),
            )
        except KafkaError as exc:
            raise SourceError(connect_error(bootstrap_servers, extra or {}, exc)) from exc
        self._recorder = _Recorder()
        self._topics = list(topics)
        self._consumer.subscribe(self._topics, listener=self._recorder)

    def rejoin(self) -> None:
        """Leave the group and join it again. kafka-python can join before its topics'
        metadata arrived ("No partition metadata for topic ...") and then stay in the
        group with nothing assigned, past any metadata refresh; a fresh subscription
        sends a new join with the metadata it has now. Partitions held are reported
        revoked (``unsubscribe`` does not call the listener): call this between
        batches, with every processed offset committed."""
        with _reading("rejoining the consumer group failed"):
            held = list(self._consumer.assignment())
            self._consumer.unsubscribe()
            self._recorder.on_partitions_revoked(held)
            self._consumer.subscribe(self._topics, listener=self._recorder)

    @property
    def exhausted(self) -> bool:
        return False

    def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        """Records of the assigned partitions. A partition the group (re)assigned
        during this poll starts over at its committed offset, and this poll's
        records of it are dropped: kafka-python 3 reports every partition revoked
        at an eager rebalance but keeps the fetch position of one assigned back to
        the same member, past records that the loop dropped as revoked and that
        the state restored on assignment does not reflect (CI's soak lost 43
        records of a partition that way)."""
        with _reading("polling failed"):
            polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        fresh = self._recorder.take_fresh()
        if fresh:
            try:
                with _reading("rewinding newly assigned partitions failed"):
                    self._rewind(sorted(fresh & self.assignment()))
            except SourceError:
                self._recorder.keep_fresh(fresh)  # rewound at the next poll
                raise
        records: list[Record] = []
        for tp, batch in polled.items():
            if (tp.topic, tp.partition) not in fresh:
                records.extend(map(to_record, batch))
        return records

    def hold_fetches(self, wait_ms: int) -> None:
        """How long the broker may hold the fetches sent from now on (``wait_ms``, at
        most ``batch_wait_ms``; 0: answer at once). kafka-python sends a fetch inside
        ``poll``, once it has handed out what the previous one brought, so the value
        set before a poll applies to the fetch that poll sends. Without
        ``batch_wait_ms`` fetches are never held: nothing to do."""
        if self._batch_wait_ms <= 0:
            return
        # kafka-python reads its fetcher's config when it builds each FetchRequest;
        # there is no public setter (a client without that attribute is left as is).
        config = getattr(getattr(self._consumer, "_fetcher", None), "config", None)
        if isinstance(config, dict):
            config["fetch_max_wait_ms"] = max(0, min(wait_ms, self._batch_wait_ms))

    def rebalance_events(self) -> RebalanceEvents:
        """Assignment changes since the last call (recorded during ``poll``)."""
        return self._recorder.take()

    def assignment(self) -> set[TopicPartition]:
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def partition_counts(self) -> dict[str, int]:
        """Partitions per subscribed topic as the client's metadata cache has them
        (what its group leader assigns from); 0 for a topic it has no metadata for.
        No request: ``KafkaConsumer.partitions_for_topic`` would wait without a
        timeout for a topic missing from the cache."""
        cluster = self._consumer._cluster
        return {topic: len(cluster.partitions_for_topic(topic) or ()) for topic in self._topics}

    def group_metadata(self) -> object:
        return self._consumer.group_metadata()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(KafkaTopicPartition(*partition), offset)

    def rewind_to_committed(
        self, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Seek each partition back to its committed offset (or the reset point)."""
        with _reading("rewinding to the committed offsets failed"):
            return self._rewind(partitions)

    def _rewind(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        positions: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + BROKER_WAIT_MS / 1000
        for topic, partition in partitions:
            tp = KafkaTopicPartition(topic, partition)
            committed = self._consumer.committed(tp, timeout_ms=_remaining_ms(deadline))
            if committed is None:
                if self.auto_offset_reset == "earliest":
                    self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek_to_end(tp)
                positions[(topic, partition)] = self._consumer.position(
                    tp, timeout_ms=_remaining_ms(deadline)
                )
            else:
                self._consumer.seek(tp, committed)
                positions[(topic, partition)] = committed
        return positions

    def ends(self) -> dict[TopicPartition, tuple[int, int]]:
        """(fetch position, high watermark) of each assigned partition with a known
        high watermark (both as the client last heard them: no request is sent)."""
        out: dict[TopicPartition, tuple[int, int]] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            with contextlib.suppress(KafkaError, AssertionError):
                position = self._consumer.position(tp, timeout_ms=1000)
                if position is not None:
                    out[(tp.topic, tp.partition)] = (position, high)
        return out

    def lag(self) -> dict[TopicPartition, int]:
        """Records behind the high watermark, for partitions with a known one."""
        return {tp: max(0, high - position) for tp, (position, high) in self.ends().items()}

    def broker_connected(self) -> bool | None:
        """Whether the consumer holds a live connection to any broker (None: the
        client does not say). The consumer fetches without pause, so while a broker
        is up it stays connected; kafka-python 3 keeps its connections in its
        connection manager (not a public API, hence the guard)."""
        try:
            conns = self._consumer._client._manager._conns
            return any(getattr(conn, "connected", False) for conn in list(conns.values()))
        except (AttributeError, RuntimeError):
            return None

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        with _reading("committing the offsets failed"):
            self._consumer.commit(_offset_map(offsets), timeout_ms=BROKER_WAIT_MS)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._consumer.close(autocommit=False)


def _remaining_ms(deadline: float) -> int:
    left = int((deadline - time.monotonic()) * 1000)
    if left <= 0:
        raise KafkaTimeoutError(f"no answer from the broker within {BROKER_WAIT_MS} ms")
    return left


def _offset_map(
    offsets: Mapping[TopicPartition, int],
) -> dict[KafkaTopicPartition, OffsetAndMetadata]:
    return {
        KafkaTopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
        for (topic, partition), offset in offsets.items()
    }


class KafkaSink:
    """Produces each message kind to its topic; ``flush`` waits for every ack and
    raises if any send failed, so offsets are never committed past a lost alert."""

    def __init__(
        self,
        topics: Mapping[str, str],
        *,
        bootstrap_servers: str,
        client_id: str = "driftline",
        transactional_id: str | None = None,
        transaction_timeout_ms: int = 60_000,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._topics = dict(topics)
        settings: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
            # A detector snapshot is ~10 KiB: with the default 16 KiB batches nearly
            # every send wakes the sender thread (measured: a 1.15 MB checkpoint
            # commits in 37-46 ms instead of 100-183 ms).
            "batch_size": 512 * 1024,
            "max_request_size": 4 * 1024 * 1024,
            # send() and init_transactions() block at most this long (default 60 s),
            # and so does the start (default 30 s).
            "max_block_ms": BROKER_WAIT_MS,
            "bootstrap_timeout_ms": BROKER_WAIT_MS,
            **_client_settings(extra),
        }
        if transactional_id is not None:
            settings["transactional_id"] = transactional_id
            settings["transaction_timeout_ms"] = transaction_timeout_ms
        try:
            self._producer = KafkaProducer(**settings)
        except KafkaError as exc:
            raise SinkError(connect_error(bootstrap_servers, extra or {}, exc)) from exc
        self._pending: list[tuple[Any, Message]] = []

    def send(self, message: Message) -> None:
        topic = self._topics.get(message.kind)
        if topic is None:
            raise SinkError(f"no topic configured for {message.kind} messages")
        with self._writing("producing failed"):
            try:
                future = self._producer.send(
                    topic,
                    value=message.value,
                    key=message.key,
                    headers=list(message.headers),
                    partition=message.partition,
                )
            except REJECTIONS as exc:  # the client's own size check
                raise MessageRejected("producing failed", message, _reason(exc)) from exc
            except KafkaError as exc:
                # An idempotent producer refuses every send once one record was
                # refused: name that record, not this one.
                if _caused_by_rejection(exc):
                    with contextlib.suppress(KafkaError):
                        self._wait_for_pending()
                    self._raise_rejected("producing failed")
                raise
        self._pending.append((future, message))

    def flush(self) -> None:
        """Wait (at most ``BROKER_WAIT_MS``) until every send is acknowledged or failed.
        A message the broker refused raises ``MessageRejected`` naming it (the largest
        of them: a too-large record fails the small ones batched with it too), even
        when the others did not complete in time."""
        with self._writing("flushing failed"):
            try:
                self._wait_for_pending()
            except KafkaError:
                self._raise_rejected("flushing failed")
                raise
            self._raise_rejected("flushing failed")
            pending, self._pending = self._pending, []
            for future, _message in pending:
                if future.failed():
                    raise future.exception

    def _wait_for_pending(self) -> None:
        deadline = time.monotonic() + BROKER_WAIT_MS / 1000
        while True:
            try:
                self._producer.flush(timeout=max(0.0, deadline - time.monotonic()))
                return
            except UnknownError:
                # kafka-python: a batch it split after MessageSizeTooLarge can be seen
                # mid-way ("Future not done"); its records are still on their way, so
                # wait again (within the same bound).
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _raise_rejected(self, what: str) -> None:
        """Raise ``MessageRejected`` for the largest pending message the broker refused
        (forgetting the pending sends), if there is one."""
        rejected = [
            (f.exception, m)
            for f, m in self._pending
            if f.failed() and isinstance(f.exception, REJECTIONS)
        ]
        if rejected:
            self._pending = []
            error, message = max(rejected, key=lambda em: _size(em[1]))
            raise MessageRejected(what, message, _reason(error)) from error

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._producer.close(timeout=5)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """A client error becomes a ``FencedError`` when this producer was fenced,
        else a ``SinkError`` naming ``what``."""
        try:
            yield
        except KafkaError as exc:
            if self._fenced(exc):
                raise FencedError(f"{what}: another producer took over: {exc}") from exc
            raise SinkError(f"{what}: {exc}") from exc

    def _await(self, result: Any, what: str) -> None:
        """Wait for a transactional request (``TransactionalRequestResult``), at most
        ``BROKER_WAIT_MS``; kafka-python's own methods wait forever."""
        self._producer._sender.wakeup()
        with self._writing(what):
            if not result.wait(timeout_ms=BROKER_WAIT_MS):
                raise KafkaTimeoutError(f"no answer from the broker within {BROKER_WAIT_MS} ms")

    def _fenced(self, exc: BaseException) -> bool:
        """kafka-python reports a fenced producer as a ``ProducerFencedError``, as a
        generic ``KafkaError`` caused by one, or (from a transactional call made
        after the fact) as a generic one while its transaction manager holds the
        ``ProducerFencedError``: all three are recognised by type."""
        manager = getattr(self._producer, "_transaction_manager", None)
        errors: list[object] = [getattr(manager, "last_error", None), *_chain(exc)]
        return any(isinstance(e, ProducerFencedError) for e in errors)


class TransactionalKafkaSink(KafkaSink):
    """A ``KafkaSink`` whose sends belong to Kafka transactions (``TransactionalSink``).

    ``transactional_id`` must be stable per sidecar instance: a restarted
    instance fences its predecessor (a zombie can no longer commit).
    """

    def __init__(self, topics: Mapping[str, str], *, transactional_id: str, **kwargs: Any) -> None:
        super().__init__(topics, transactional_id=transactional_id, **kwargs)
        self.transactional_id = transactional_id
        try:
            with self._writing("initialising transactions failed"):
                self._producer.init_transactions()
        except BaseException:
            # Not ours to keep: a caller that retries must not leak a producer (its
            # sender thread and sockets) per attempt.
            self.close()
            raise
        self.in_transaction = False

    def begin(self) -> None:
        with self._writing("beginning a transaction failed"):
            self._producer.begin_transaction()
        self.in_transaction = True

    def add_offsets(self, offsets: Mapping[TopicPartition, int], group_metadata: object) -> None:
        """Add the consumer offsets to the open transaction (two broker round trips:
        the checkpoint runs this beside the batch's processing)."""
        if offsets:
            what = "adding the offsets to the transaction failed"
            with self._writing(what):
                result = self._producer._transaction_manager.send_offsets_to_transaction(
                    _offset_map(offsets), group_metadata
                )
            self._await(result, what)

    def commit(self) -> None:
        """Flush (raising if any send failed), then commit the transaction."""
        self.flush()
        what = "committing the transaction failed"
        with self._writing(what):
            result = self._producer._transaction_manager.begin_commit()
        self._await(result, what)
        self.in_transaction = False

    def abort(self) -> None:
        """Abort the open transaction. Raises when this producer can no longer begin
        one (an earlier commit or abort left it mid-way): the caller replaces it."""
        self._pending.clear()
        state = getattr(self._producer._transaction_manager, "_current_state", None)
        if not self.in_transaction and state not in (None, TransactionState.READY):
            raise SinkError(f"the producer is {state.name}, not ready for a transaction")
        if self.in_transaction:
            self.in_transaction = False
            what = "aborting the transaction failed"
            with self._writing(what):
                result = self._producer._transaction_manager.begin_abort()
            self._await(result, what)


def _size(message: Message) -> int:
    return (
        len(message.value or b"")
        + len(message.key or b"")
        + sum(len(k) + len(v) for k, v in message.headers)
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception in its arguments, cause and context (kafka-python
    wraps the error that matters in a generic one)."""
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        pending.extend(item.args)
        pending.extend(x for x in (item.__cause__, item.__context__) if x is not None)


def _caused_by_rejection(error: BaseException) -> bool:
    return any(isinstance(e, REJECTIONS) for e in _chain(error))


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
