"""The notifier contract (after healthchecks' transports): ``send`` returns on success, raises
TransientError when a later attempt may succeed (timeouts, 5xx, 429, SMTP 4xx) and PermanentError
when it never will (refused URL, 4xx, SMTP 5xx, no recipients). Anything else is a bug: recorded,
not retried."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from greenkpi.alerts.models import Channel, Notification


class DeliveryError(Exception):
    """A notification could not be delivered."""


class TransientError(DeliveryError):
    """Worth retrying later with the same message (same webhook-id)."""


class PermanentError(DeliveryError):
    """Retrying cannot help: the notification is marked failed."""


class Notifier(Protocol):
    def send(self, *, notification: Notification, channel: Channel) -> None: ...
