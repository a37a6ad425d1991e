"""What a notification says: the payload snapshot stored on the outbox row, and its renderings
(GreenKPI JSON, Slack-compatible JSON; email uses templates/alerts/). Pure, no database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

PAYLOAD_VERSION = 1


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
) -> dict[str, Any]:
    """The JSON snapshot of one grouped notification; fixed at creation so every retry says the
    same thing (and a webhook body is byte-identical across retries)."""
    title = f"[{event.upper()}:{len(alerts)}] {rule['name']}"
    return {
        "version": PAYLOAD_VERSION,
        "type": f"alert.{event}",
        "event": event,
        "title": title,
        "organisation": organisation,
        "rule": rule,
        "count": len(alerts),
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
        "url": url,
    }


def text_lines(payload: dict[str, Any]) -> list[str]:
    """One line per alert, for Slack and plain-text email."""
    lines = []
    for alert in payload["alerts"]:
        text = alert["summary"] or ", ".join(f"{k}={v}" for k, v in alert["labels"].items())
        if alert["state"] == "resolved":
            text = f"resolved: {text}"
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
