"""What keeps the sidecar's Kafka clients from working, said once and clearly.

A failure to connect or a refused request is sorted into its cause: an unreachable
broker (an outage: retried, logged as ``kafka_unavailable``), a configuration the
broker rejects (``kafka_misconfigured``: TLS, protocol, SASL mechanism, credentials —
named by :func:`pipeline.io.diagnose.diagnose`), or a missing ACL
(``kafka_not_authorized``, naming the resource and the ACL to add). Each distinct
message is logged once per ``window_s`` with the count of repeats, and while a
configuration or ACL problem lasts ``/healthz`` fails with it as the body: retrying
cannot fix it, a person must.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.config import Settings
from pipeline.io.client_options import not_authorized
from pipeline.io.diagnose import diagnose
from pipeline.logs import RateLimiter, get_logger

__all__ = ["KafkaTrouble"]

log = get_logger("driftline.kafka")


class KafkaTrouble:
    def __init__(self, settings: Settings, *, window_s: float = 60.0) -> None:
        self.settings = settings
        self.problem: str | None = None
        """The configuration or ACL problem in force, for /healthz; None when fine."""
        self._limiter = RateLimiter(window_s)
        self._diagnosed_at = -float("inf")
        self._window_s = window_s

    def _log(self, level: str, event: str, **fields: Any) -> None:
        held_back = self._limiter.allow((event, repr(sorted(fields.items()))))
        if held_back is None:
            return
        if held_back:
            fields["repeated"] = held_back
        getattr(log, level)(event, **fields)

    def acl_hint(self, resource: str) -> str:
        """The ACLs driftline needs on a resource type, with this config's names."""
        k, t = self.settings.kafka, self.settings.topics
        if resource == "TransactionalId":
            return f"ALLOW Write on TransactionalId {k.transactional_id!r} (or a prefix of it)"
        if resource == "Group":
            return f"ALLOW Read on Group {k.group_id!r}"
        if resource == "Topic":
            inputs = ", ".join(sorted(t.inputs()))
            outputs = ", ".join([t.alerts, t.rollback_commands, t.dlq])
            return (
                f"ALLOW Read on Topic {inputs}; Write on Topic {outputs}; Read and Write on "
                f"Topic {t.state} (Create too if the sidecar is to create it)"
            )
        return "nothing at cluster level is needed: check the broker's authorizer"

    def lacking(self, missing: list[str]) -> bool:
        """Report the ACLs the principal lacks (from the broker's own answer); True if any."""
        if not missing:
            if self.problem is not None and self.problem.startswith("not authorized"):
                self.cleared()
            return False
        self.problem = "not authorized: the principal lacks " + "; ".join(missing)
        self._log("error", "kafka_not_authorized", stage="connect", missing=missing)
        return True

    def failed(self, exc: BaseException, *, stage: str) -> bool:
        """Report ``exc`` from ``stage`` (connect | checkpoint | recovery); True when it is
        a configuration or ACL problem (the caller backs off)."""
        denied = not_authorized(exc)
        if denied is not None:
            resource, detail = denied
            self.problem = f"not authorized: {detail}"
            self._log(
                "error",
                "kafka_not_authorized",
                stage=stage,
                resource=resource,
                detail=detail,
                needs=self.acl_hint(resource),
            )
            return True
        if stage == "connect":
            return self._connect_failed(exc)
        self._log("warning", f"{stage}_failed", error=str(exc) or type(exc).__name__)
        return False

    def misconfigured(self) -> bool:
        """Probe the broker before the clients are built (at most every 30 s): True, and
        reported, when it refuses the configuration; an outage is left to the clients."""
        now = time.monotonic()
        if now - self._diagnosed_at < min(self._window_s, 30.0):
            return self.problem is not None and self.problem.startswith("kafka misconfigured")
        self._diagnosed_at = now
        found = diagnose(
            self.settings.kafka.bootstrap_servers, self.settings.kafka.client_options()
        )
        if found is None or not found.is_config:
            if self.problem is not None and self.problem.startswith("kafka misconfigured"):
                self.cleared()
            return False
        self.problem = f"kafka misconfigured: {found}"
        self._log(
            "error",
            "kafka_misconfigured",
            cause=found.cause,
            setting=found.setting,
            detail=found.message,
        )
        return True

    def _connect_failed(self, exc: BaseException) -> bool:
        if self.misconfigured():
            return True
        self._log(
            "warning",
            "kafka_unavailable",
            bootstrap_servers=self.settings.kafka.bootstrap_servers,
            error=str(exc) or type(exc).__name__,
        )
        return self.problem is not None

    def cleared(self) -> None:
        if self.problem is not None:
            log.info("kafka_problem_cleared", was=self.problem)
        self.problem = None
