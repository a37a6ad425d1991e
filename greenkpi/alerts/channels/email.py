"""Email through Django's mail framework: a text part and an HTML alternative from templates."""

from __future__ import annotations

import smtplib
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from greenkpi.alerts import links
from greenkpi.alerts.channels.base import PermanentError, TransientError

if TYPE_CHECKING:
    from greenkpi.alerts.models import Channel, Notification


class EmailNotifier:
    def send(self, *, notification: Notification, channel: Channel) -> None:
        if not notification.recipients:
            raise PermanentError("no recipients (no addresses and no managers with an email)")
        already = set(notification.delivered_to)  # a retry: those got their message last time
        recipients = [r for r in notification.recipients if r not in already]
        # Everyone gets the dashboard page of what fired; the admin link goes, as a second link,
        # only to those who may open the admin (a team lead would be refused there: issue 12 D3).
        admins = links.admins_among(recipients) if notification.payload.get("admin_url") else set()
        others = [r for r in recipients if r not in admins]
        messages = [
            self._message(notification, to, show_admin)
            for to, show_admin in ((others, False), (sorted(admins), True))
            if to
        ]
        try:
            for message in messages:
                message.send(fail_silently=False)
                notification.record_delivered(list(message.to))
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentError(f"recipients refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            error = TransientError if 400 <= exc.smtp_code < 500 else PermanentError
            raise error(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # connection refused, reset, timeout
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _message(
        notification: Notification, to: list[str], show_admin: bool
    ) -> EmailMultiAlternatives:
        context = {
            "payload": notification.payload,
            "site_url": settings.SITE_URL,
            "show_admin_link": show_admin,
        }
        # The daily digest has its own layout; alerts, no-data and errors share one.
        template = (
            "alerts/digest"
            if notification.payload.get("type") == "digest"
            else "alerts/notification"
        )
        message = EmailMultiAlternatives(
            subject=f"[GreenKPI] {notification.payload['title']}",
            body=render_to_string(f"{template}.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=to,
            headers={"X-GreenKPI-Notification": str(notification.pk)},
        )
        message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
        return message
