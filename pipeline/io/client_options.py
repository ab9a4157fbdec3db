"""The one gate every Kafka client's settings pass through (``pipeline.io``).

Every client driftline opens — the sidecar's consumer, transactional producer and admin,
the state restore, ``alerts tail``, ``pipeline.subscribe``, a backtest's Kafka source,
``generate --topic``, the demo — gets its kafka-python keyword arguments from
``KafkaSettings.client_options()`` and hands them to :func:`client_options` here, which

* refuses TLS files that cannot be read, naming the setting (kafka-python would only
  time out, ``Unable to bootstrap``);
* registers the secrets with :func:`pipeline.logs.redact`, so that no log line shows them.

:func:`connect_error` turns a failure to connect into a message with its cause
(:mod:`pipeline.io.diagnose`), and :func:`not_authorized` names the ACL a refused
request lacked."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from kafka import errors as kafka_errors

from pipeline.errors import ConfigError
from pipeline.io.diagnose import Diagnosis, diagnose
from pipeline.logs import redact

__all__ = [
    "Diagnosis",
    "client_options",
    "connect_error",
    "not_authorized",
    "preflight",
]

SECRET_OPTIONS = ("sasl_plain_password", "ssl_password", "sasl_oauth_token")
_FILES = {"ssl_cafile": "ssl_cafile", "ssl_certfile": "ssl_certfile", "ssl_keyfile": "ssl_keyfile"}


def client_options(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """``extra`` (kafka-python keyword arguments), checked; see the module docstring."""
    options = dict(extra or {})
    redact(v for k in SECRET_OPTIONS if isinstance(v := options.get(k), str))
    for option, setting in _FILES.items():
        path = options.get(option)
        if isinstance(path, str) and not os.access(path, os.R_OK):
            raise ConfigError(f"kafka.security.{setting}: cannot read {path}")
    return options


def connect_error(bootstrap_servers: str, options: Mapping[str, Any], exc: BaseException) -> str:
    """``cannot connect to Kafka at ...: <cause>``: the probe's cause when it finds one,
    else what the client said."""
    found = diagnose(bootstrap_servers, options)
    cause = str(found) if found is not None else f"{type(exc).__name__}: {exc}"
    return f"cannot connect to Kafka at {bootstrap_servers}: {cause}"


def preflight(bootstrap_servers: str, options: Mapping[str, Any]) -> str | None:
    """The configuration problem the broker would reject the client for, named at once
    (kafka-python would only time out after ~30 s); None when there is none, or when
    the broker is merely unreachable (the client's own retries handle an outage)."""
    found = diagnose(bootstrap_servers, options)
    if found is None or not found.is_config:
        return None
    return f"cannot connect to Kafka at {bootstrap_servers}: {found}"


_AUTHORIZATION = (
    (kafka_errors.TransactionalIdAuthorizationFailedError, "TransactionalId", "Write"),
    (kafka_errors.GroupAuthorizationFailedError, "Group", "Read"),
    (kafka_errors.TopicAuthorizationFailedError, "Topic", "Read/Write"),
    (kafka_errors.ClusterAuthorizationFailedError, "Cluster", "the operation"),
)


def not_authorized(exc: BaseException | None) -> tuple[str, str] | None:
    """``(resource type, detail)`` when ``exc`` (or what caused it) is the broker
    refusing an operation for lack of an ACL; else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for error_type, resource, operation in _AUTHORIZATION:
            if isinstance(exc, error_type):
                detail = " ".join(str(a) for a in exc.args if a) or error_type.__name__
                return resource, f"the principal lacks {operation} on this {resource}: {detail}"
        exc = exc.__cause__ or exc.__context__
    return None
