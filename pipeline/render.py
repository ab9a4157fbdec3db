"""Human-readable one-line renderings of output events (demo, `alerts tail`)."""

from __future__ import annotations

from pipeline.events import AlertEvent, RollbackCommand

__all__ = ["render_alert", "render_rollback"]


def _time(value: object) -> str:
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("+00:00", "Z")


def render_alert(alert: AlertEvent) -> str:
    stat = "" if alert.statistic is None else f" statistic={alert.statistic:.4g}"
    thr = "" if alert.threshold is None else f" threshold={alert.threshold:.4g}"
    pval = "" if alert.p_value is None else f" p={alert.p_value:.3g}"
    segment = "".join(f"[{k}={v}]" for k, v in (alert.segment or {}).items())
    incident = "" if alert.incident_id is None else f"  incident={alert.incident_id[:12]}"
    if alert.status == "resolved":
        return (
            f"{_time(alert.detected_at)}  RESOLVED {alert.model_id} "
            f"v{alert.model_version}  {alert.signal}{segment}  {alert.detector.name}"
            f"  quiet for {alert.window.events} events{incident}  id={alert.alert_id[:12]}"
        )
    return (
        f"{_time(alert.detected_at)}  {alert.severity.upper():8s} {alert.model_id} "
        f"v{alert.model_version}  {alert.signal}{segment}  {alert.detector.name}"
        f"{stat}{thr}{pval}  window={alert.window.events} events{incident}"
        f"  id={alert.alert_id[:12]}"
    )


def render_rollback(command: RollbackCommand) -> str:
    dry = " (dry run)" if command.dry_run else ""
    return (
        f"{_time(command.issued_at)}  ROLLBACK{dry} {command.model_id} "
        f"v{command.from_version} -> checkpoint {command.to_checkpoint}: {command.reason} "
        f"id={command.command_id[:12]}"
    )
