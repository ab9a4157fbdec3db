"""Which ACLs the principal lacks, asked of the broker before anything is read or written.

Kafka tells a client its own permissions on a topic (``Metadata`` with
``include_topic_authorized_operations``) and on a group (``DescribeGroups``). Without this
check a missing ACL shows late and obliquely: a state topic the principal may write but
not read is restored as empty, silently, on the first start; a missing Read on an input
topic means the partition is never assigned."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafka.admin import KafkaAdminClient
from kafka.errors import GroupAuthorizationFailedError, KafkaError

from pipeline.errors import SourceError
from pipeline.io.client_options import client_options

__all__ = ["missing_permissions"]

_TOPIC_AUTHORIZATION_FAILED = 29


def missing_permissions(
    bootstrap_servers: str,
    options: Mapping[str, Any] | None,
    *,
    topics: Mapping[str, set[str]],
    group: str | None = None,
) -> list[str]:
    """``Topic t: Read, Write``-style lines for each ACL in ``topics`` (name -> operations,
    upper case as Kafka spells them) and Read on ``group`` that the principal lacks. A
    topic that does not exist is left out (creating it is another question). A client
    error raises ``SourceError`` (caused by it), as every Kafka error leaves ``pipeline.io``
    typed."""
    try:
        return _missing(bootstrap_servers, options, topics, group)
    except KafkaError as exc:
        raise SourceError(f"cannot read the principal's permissions: {exc}") from exc


def _missing(
    bootstrap_servers: str,
    options: Mapping[str, Any] | None,
    topics: Mapping[str, set[str]],
    group: str | None,
) -> list[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_options(options))
    try:
        missing: list[str] = []
        for described in admin.describe_topics(list(topics)):
            name = described["name"]
            need = topics.get(name, set())
            operations = described.get("authorized_operations")
            if described.get("error_code") == _TOPIC_AUTHORIZATION_FAILED:
                granted: set[str] = set()
            elif described.get("error_code") or operations is None:
                continue  # unknown topic (created or reported later), or a broker that won't say
            else:
                granted = set(operations)
            if lacking := sorted(need - granted):
                missing.append(f"Topic {name}: {', '.join(op.title() for op in lacking)}")
        if group is not None:
            try:
                groups = admin.describe_groups([group], include_authorized_operations=True)
                described = groups.get(group, {}) if isinstance(groups, Mapping) else {}
                operations = described.get("authorized_operations")
                # None: a group not created yet (or a broker that won't say): joining tells.
                if operations is not None and "READ" not in operations:
                    missing.append(f"Group {group}: Read")
            except GroupAuthorizationFailedError:
                missing.append(f"Group {group}: Read")
        return missing
    finally:
        admin.close()
