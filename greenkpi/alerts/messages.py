"""What a notification says: the payload snapshot stored on the outbox row, and its renderings
(GreenKPI JSON, Slack-compatible JSON; email uses templates/alerts/). Pure, no database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

PAYLOAD_VERSION = 1
EVENT_TITLES = {"firing": "FIRING", "resolved": "RESOLVED", "nodata": "NO DATA", "error": "ERROR"}


@dataclass(frozen=True, slots=True)
class AlertLine:
    fingerprint: str
    state: str
    labels: dict[str, str]
    value: float | None
    summary: str
    annotations: dict[str, Any]
    active_since: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    repeat: bool = False


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def build_payload(
    *,
    event: str,
    organisation: dict[str, Any],
    rule: dict[str, Any],
    alerts: Sequence[AlertLine],
    created_at: datetime,
    url: str,
    group: dict[str, Any] | None = None,
    admin_url: str = "",
) -> dict[str, Any]:
    """The JSON snapshot of one grouped notification; fixed at creation so every retry says the
    same thing (and a webhook body is byte-identical across retries). The title counts the alerts
    in the event's state, Alertmanager-style: "[FIRING:3] collectors silent"."""
    counts = {s: sum(1 for a in alerts if a.state == s) for s in ("firing", "nodata", "resolved")}
    shown = counts.get(event) or len(alerts)
    title = f"[{EVENT_TITLES.get(event, event.upper())}:{shown}] {rule['name']}"
    return {
        "version": PAYLOAD_VERSION,
        "type": f"alert.{event}",
        "event": event,
        "title": title,
        "organisation": organisation,
        "rule": rule,
        "count": len(alerts),
        "counts": counts,
        "group": group,
        "incomplete": any(a.annotations.get("complete") is False for a in alerts),
        "alerts": [
            {
                "fingerprint": a.fingerprint,
                "state": a.state,
                "labels": a.labels,
                "value": a.value,
                "summary": a.summary,
                "annotations": a.annotations,
                "active_since": _iso(a.active_since),
                "fired_at": _iso(a.fired_at),
                "resolved_at": _iso(a.resolved_at),
                "repeat": a.repeat,
            }
            # Listed in reading order, not by fingerprint hash: stable for people and for tests.
            for a in sorted(alerts, key=lambda a: (a.summary, a.fingerprint))
        ],
        "created_at": _iso(created_at),
        # ``url``: the dashboard page of what fired (links.py); ``admin_url``: the admin's, which
        # emails show only to administrators and Slack bodies never.
        "url": url,
        "admin_url": admin_url,
    }


def text_lines(payload: dict[str, Any]) -> list[str]:
    """One line per alert, for Slack and plain-text email."""
    lines = []
    for alert in payload["alerts"]:
        text = alert["summary"] or ", ".join(f"{k}={v}" for k, v in alert["labels"].items())
        if alert["state"] == "resolved":
            text = f"resolved: {text}"
        elif alert["state"] == "nodata":
            text = f"no data: {text}"
        if alert["annotations"].get("complete") is False:
            text += " (data incomplete)"
        lines.append(text)
    return lines


def slack_body(payload: dict[str, Any]) -> dict[str, Any]:
    """An incoming-webhook body Slack (and Mattermost, Rocket.Chat) accept: ``text`` + blocks."""
    bullets = "\n".join(f"• {line}" for line in text_lines(payload))
    text = f"*{payload['title']}*\n{bullets}\n<{payload['url']}|Open in GreenKPI>"
    return {
        "text": f"{payload['title']}\n{bullets}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
    }


def webhook_body(payload: dict[str, Any], msg_id: str, body_format: str) -> bytes:
    """The exact bytes posted (and signed); sorted keys keep them identical across retries."""
    data = slack_body(payload) if body_format == "slack" else {"id": msg_id, **payload}
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def error_payload(
    *,
    organisation: Any,
    rule: dict[str, Any],
    error: str,
    created_at: datetime,
    url: str,
    admin_url: str = "",
) -> dict[str, Any]:
    """A rule that could not be evaluated (Grafana's Error state): told once per episode."""
    return {
        "version": PAYLOAD_VERSION,
        "type": "alert.error",
        "event": "error",
        "title": f"[ERROR] {rule['name']}",
        "organisation": {
            "id": organisation.pk,
            "slug": organisation.slug,
            "name": organisation.name,
        },
        "rule": rule,
        "count": 0,
        "counts": {},
        "group": None,
        "incomplete": True,
        "error": error,
        "alerts": [],
        "created_at": _iso(created_at),
        "url": url,
        "admin_url": admin_url,
    }
