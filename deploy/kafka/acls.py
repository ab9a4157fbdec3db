"""Topics and ACLs of the secured local broker (``KAFKA_SECURE=1 deploy/kafka/kafka.sh start``).

Creates driftline's default topics (as the admin user) and grants each user exactly what
it needs; nothing at cluster level, no CREATE (the topics exist). ``ACLS`` is the table the
README's "Secured Kafka" section lists, and the integration tests run the sidecar,
``alerts tail`` and a backtest with these users and nothing more. Idempotent.

    python deploy/kafka/acls.py --bootstrap 127.0.0.1:39092 --client-config var-secure/secure/admin.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

PREFIX = "driftline"
INPUTS = ("features", "predictions", "labels", "training")
OUTPUTS = ("alerts", "rollback-commands", "dlq")
STATE = "state"

# (user, resource type, pattern type, resource name, operation)
SIDECAR_AT_LEAST_ONCE: tuple[tuple[str, str, str, str, str], ...] = (
    *(("driftline", "TOPIC", "LITERAL", f"{PREFIX}.{t}", "READ") for t in INPUTS),
    ("driftline", "GROUP", "LITERAL", PREFIX, "READ"),
    *(("driftline", "TOPIC", "LITERAL", f"{PREFIX}.{t}", "WRITE") for t in OUTPUTS),
    ("driftline", "TOPIC", "LITERAL", f"{PREFIX}.{STATE}", "READ"),
    ("driftline", "TOPIC", "LITERAL", f"{PREFIX}.{STATE}", "WRITE"),
)
ACLS: tuple[tuple[str, str, str, str, str], ...] = (
    # the sidecar, exactly-once: the at-least-once set and the transactional id
    *SIDECAR_AT_LEAST_ONCE,
    ("driftline", "TRANSACTIONAL_ID", "PREFIXED", f"{PREFIX}-", "WRITE"),
    # the sidecar, at-least-once: no transactional id
    *(("driftline-alo", *acl[1:]) for acl in SIDECAR_AT_LEAST_ONCE),
    # alerts tail, pipeline.subscribe (no group) and backtests of the input topics
    *(
        ("reader", "TOPIC", "LITERAL", f"{PREFIX}.{t}", "READ")
        for t in ("alerts", "rollback-commands")
    ),
    *(("reader", "TOPIC", "LITERAL", f"{PREFIX}.{t}", "READ") for t in INPUTS),
)


def create_topics(admin: Any) -> None:
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = [f"{PREFIX}.{t}" for t in (*INPUTS, *OUTPUTS)]
    existing = set(admin.list_topics())
    new = [NewTopic(name, 1, 1) for name in wanted if name not in existing]
    if f"{PREFIX}.{STATE}" not in existing:
        new.append(NewTopic(f"{PREFIX}.{STATE}", 1, 1, topic_configs={"cleanup.policy": "compact"}))
    for topic in new:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([topic])
    if new:
        admin.wait_for_topics([t.name for t in new], timeout_ms=30_000)


def grant(admin: Any) -> int:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    acls = [
        ACL(
            principal=f"User:{user}",
            host="*",
            operation=ACLOperation[operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[rtype], name, ACLResourcePatternType[pattern]
            ),
        )
        for user, rtype, pattern, name, operation in ACLS
    ]
    result = admin.create_acls(acls)
    failed = result.get("failed", [])
    for acl, error in failed:
        print(f"acls.py: {acl}: {error}", file=sys.stderr)
    return len(failed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--client-config", required=True, help="the admin user's JSON settings")
    args = ap.parse_args(argv)
    from kafka.admin import KafkaAdminClient

    with open(args.client_config, encoding="utf-8") as fh:
        options = json.load(fh)
    admin = KafkaAdminClient(
        bootstrap_servers=args.bootstrap, client_id="driftline-acls", **options
    )
    try:
        create_topics(admin)
        return 1 if grant(admin) else 0
    finally:
        admin.close()


if __name__ == "__main__":
    sys.exit(main())
