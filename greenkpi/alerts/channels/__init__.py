"""Notifiers, one module per channel kind, behind the contract in ``base``."""

from __future__ import annotations

from greenkpi.alerts.channels.base import Notifier, PermanentError, TransientError
from greenkpi.alerts.models import Channel


def notifier_for(channel: Channel) -> Notifier:
    from greenkpi.alerts.channels import email, webhook

    notifiers: dict[str, Notifier] = {
        Channel.Kind.EMAIL: email.EmailNotifier(),
        Channel.Kind.WEBHOOK: webhook.WebhookNotifier(),
    }
    try:
        return notifiers[channel.kind]
    except KeyError:
        raise PermanentError(f"unknown channel kind {channel.kind!r}") from None


__all__ = ["Notifier", "PermanentError", "TransientError", "notifier_for"]
