"""Health check for the local broker: a real produce -> consume -> commit round trip.

Used by deploy/kafka/kafka.sh (`start` waits on it, `status` runs it once). Retries until it
succeeds or the deadline passes, so that the interpreter and kafka-python are loaded once.

    python deploy/kafka/roundtrip.py --bootstrap 127.0.0.1:39092 --timeout 90 [--pid 1234]
        [--client-config admin.json]   (secured broker: kafka-python settings as JSON)

Exit codes: 0 round trip done; 1 deadline passed; 2 kafka-python missing; 3 the broker
process given by --pid died while waiting; 4 a client-side error that retrying cannot fix.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import uuid

TOPIC = "driftline-healthcheck"
GROUP = "driftline-healthcheck"


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); check /proc where it exists.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def attempt(bootstrap: str, attempt_timeout_s: float, options: dict[str, object]) -> str:
    """One round trip; returns a short description, raises on any failure."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError
    from kafka.structs import OffsetAndMetadata

    ms = int(attempt_timeout_s * 1000)
    common = dict(
        bootstrap_servers=bootstrap,
        request_timeout_ms=ms,
        bootstrap_timeout_ms=ms,
        reconnect_backoff_ms=100,
        reconnect_backoff_max_ms=500,
        **options,
    )

    admin = KafkaAdminClient(client_id="driftline-healthcheck", **common)
    try:
        if TOPIC not in admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    {TOPIC: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=ms
                )
    finally:
        admin.close()

    token = uuid.uuid4().hex.encode()
    producer = KafkaProducer(
        client_id="driftline-healthcheck", acks="all", max_block_ms=ms, **common
    )
    try:
        meta = producer.send(TOPIC, key=b"healthcheck", value=token).get(timeout=attempt_timeout_s)
    finally:
        producer.close(timeout=attempt_timeout_s)

    tp = TopicPartition(meta.topic, meta.partition)
    consumer = KafkaConsumer(
        client_id="driftline-healthcheck", group_id=GROUP, enable_auto_commit=False, **common
    )
    try:
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        deadline = time.monotonic() + attempt_timeout_s
        while time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500).get(tp, []):
                if record.value == token:
                    # Committing proves the group coordinator (__consumer_offsets) is up too.
                    consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
                    return f"{meta.topic}[{meta.partition}]@{meta.offset}"
        raise TimeoutError("produced record not consumed back in time")
    finally:
        consumer.close(autocommit=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:39092")
    ap.add_argument("--timeout", type=float, default=90.0, help="overall deadline, seconds")
    ap.add_argument("--pid", type=int, default=None, help="give up when this process dies")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--client-config", default=None, help="JSON file of kafka-python settings")
    ap.add_argument("--verbose", action="store_true", help="show kafka-python's logging")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL, stream=sys.stderr)
    try:
        from kafka.errors import KafkaConfigurationError
    except ImportError:
        print(f"roundtrip.py: kafka-python is not installed for {sys.executable}", file=sys.stderr)
        return 2

    options: dict[str, object] = {}
    if args.client_config:
        with open(args.client_config, encoding="utf-8") as fh:
            options = json.load(fh)

    deadline = time.monotonic() + args.timeout
    last_error: BaseException | None = None
    while True:
        if not _alive(args.pid):
            print(f"roundtrip.py: broker process {args.pid} exited", file=sys.stderr)
            return 3
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            where = attempt(args.bootstrap, max(1.0, min(10.0, remaining)), options)
        except (KafkaConfigurationError, TypeError, ImportError) as exc:
            # A bug here or an incompatible kafka-python, not a broker that is still starting.
            print(f"roundtrip.py: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 4
        except Exception as exc:
            last_error = exc
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
            continue
        if not args.quiet:
            print(f"round trip ok: {where}")
        return 0
    print(
        f"roundtrip.py: no round trip with {args.bootstrap} within {args.timeout:g}s: "
        f"{type(last_error).__name__}: {last_error}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
