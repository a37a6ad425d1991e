"""Signed JSON webhooks, Standard-Webhooks style, to checked addresses only.

Headers: ``webhook-id`` (the notification's UUID: the same on every retry, so receivers can drop
duplicates), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body`` with the channel's ``whsec_`` key).
The URL is checked again at send time and the connection goes to the very address that was checked
(no second DNS lookup a rebinding attack could answer differently). Redirects are never followed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import socket
import ssl
import time
from typing import TYPE_CHECKING

from greenkpi.alerts import messages, ssrf
from greenkpi.alerts.channels.base import PermanentError, TransientError

if TYPE_CHECKING:
    from greenkpi.alerts.models import Channel, Notification

TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "GreenKPI-Webhook/1"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(*, secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does (used by tests and documented for integrators)."""
    expected = sign(
        secret=secret,
        msg_id=headers["webhook-id"],
        timestamp=int(headers["webhook-timestamp"]),
        body=body,
    )
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in headers["webhook-signature"].split()
    )


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a checked IP while sending the URL's host name in ``Host``."""

    def __init__(self, host: str, port: int, *, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, *, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool) -> int:
    """POST ``body``; return the status. Raises UnsafeURL for a refused address, OSError on
    connection failures."""
    target = ssrf.check_url(url, allow_private=allow_private)
    kind = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    last_error: OSError | None = None
    for address in target.addresses:
        conn = kind(target.host, target.port, ip=str(address), timeout=TIMEOUT_S)
        try:
            conn.request("POST", target.path, body=body, headers=headers)
            response = conn.getresponse()
            response.read(MAX_RESPONSE_BYTES)  # bounded: a receiver cannot make us buffer much
            return response.status
        except OSError as exc:
            last_error = exc
        finally:
            conn.close()
    raise last_error or OSError("no address to connect to")


class WebhookNotifier:
    def send(self, *, notification: Notification, channel: Channel) -> None:
        body = messages.webhook_body(
            notification.payload, str(notification.pk), channel.body_format
        )
        msg_id = str(notification.pk)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(
                secret=channel.secret, msg_id=msg_id, timestamp=timestamp, body=body
            ),
        }
        try:
            status = post(channel.url, body, headers, allow_private=channel.allow_private_network)
        except ssrf.UnsafeURL as exc:
            raise PermanentError(f"refused at send time: {exc}") from exc
        except OSError as exc:  # refused, reset, timed out, TLS failure
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise PermanentError(f"HTTP {status}: redirects are not followed")
        if status in TRANSIENT_STATUSES or status >= 500:
            raise TransientError(f"HTTP {status}")
        raise PermanentError(f"HTTP {status}")
