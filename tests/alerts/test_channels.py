"""Email through Django's outbox; webhooks to a local HTTP server (signature, stable id across a
retry, Slack body); SSRF refusals at save and at send time, and the admin's private-network flag."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError

from greenkpi.alerts import evaluation, outbox, services, ssrf
from greenkpi.alerts.channels import webhook
from greenkpi.alerts.models import AlertRule, Channel, Notification, RuleKind
from greenkpi.inventory.services import user_create

T0 = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)


@pytest.fixture
def root(db):
    return user_create(username="root", password="x" * 20, is_superuser=True, email="root@x.test")


def fire(org, channel, rollups, hosts=("gpu-0",), team=None):
    for name in hosts:
        rollups.host(org, name, team=team, last_seen=T0 - timedelta(hours=1))
    rule = AlertRule.objects.create(
        organisation=org, name="silent", kind=RuleKind.COLLECTOR_SILENT, for_s=0
    )
    rule.channels.set([channel])
    Channel.objects.filter(pk=channel.pk).update(group_wait_s=0)  # told in this evaluation
    with time_machine.travel(T0, tick=False):
        evaluation.rules_evaluate()
    return Notification.objects.get(channel=channel)


def send(note, at=T0):
    with time_machine.travel(at, tick=False):
        return outbox.notification_send(notification_id=str(note.pk))


def test_email_goes_to_the_team_managers_and_configured_addresses_as_text_and_html(
    acme, people, rollups, mailoutbox
):
    people["nina"].email = "nina@acme.test"
    people["nina"].save()
    people["alice"].email = "alice@acme.test"  # org admin: not a manager *of nlp*
    people["alice"].save()
    channel = Channel.objects.create(
        organisation=acme, name="mail", kind="email", addresses="oncall@acme.test"
    )
    note = fire(acme, channel, rollups, hosts=("n-1", "n-2"), team=acme.nlp)
    assert note.recipients == ["nina@acme.test", "oncall@acme.test"]
    assert send(note).status == "sent"
    (mail,) = mailoutbox
    assert mail.subject == "[GreenKPI] [FIRING:2] silent"
    assert sorted(mail.to) == ["nina@acme.test", "oncall@acme.test"]
    assert "Collector on n-1 silent for 60 min" in mail.body
    html, mime = mail.alternatives[0]
    assert mime == "text/html" and "Collector on n-2 silent" in html and "<li" in html
    assert send(note).status == "skipped"  # sent once
    assert len(mailoutbox) == 1


def test_an_email_channel_without_any_recipient_fails_permanently(acme, rollups, mailoutbox):
    channel = Channel.objects.create(organisation=acme, name="mail", kind="email")
    note = fire(acme, channel, rollups)
    assert send(note).status == "failed"
    note.refresh_from_db()
    assert note.status == "failed" and "no recipients" in note.last_error and not mailoutbox


def test_a_webhook_is_signed_and_keeps_its_id_across_a_retry(acme, rollups, receiver, root):
    channel = services.channel_create(
        organisation=acme,
        user=root,
        name="hook",
        kind="webhook",
        url=receiver.url,
        allow_private_network=True,
    )
    assert channel.secret.startswith("whsec_")
    note = fire(acme, channel, rollups)
    receiver.statuses = [503]
    first = send(note)
    assert (first.status, first.retry_in_s) == ("retry", 30.0)
    assert send(note, T0 + timedelta(seconds=10)).status == "skipped"  # not due yet
    assert send(note, T0 + timedelta(seconds=31)).status == "sent"
    assert len(receiver.requests) == 2
    (path1, h1, b1), (_, h2, b2) = receiver.requests
    assert path1 == "/hooks/greenkpi"
    assert h1["webhook-id"] == h2["webhook-id"] == str(note.pk)
    assert b1 == b2  # the same bytes; only the timestamp (and so the signature) differ
    assert int(h2["webhook-timestamp"]) - int(h1["webhook-timestamp"]) == 31
    for headers, body in ((h1, b1), (h2, b2)):
        assert webhook.verify(secret=channel.secret, headers=headers, body=body)
        assert not webhook.verify(secret=channel.secret, headers=headers, body=body + b" ")
    payload = orjson.loads(b1)
    assert payload["id"] == str(note.pk) and payload["type"] == "alert.firing"
    assert payload["alerts"][0]["labels"]["host"] == "gpu-0"
    note.refresh_from_db()
    assert (note.status, note.attempts) == ("sent", 2)


def test_the_signature_is_the_standard_webhooks_hmac(acme):
    # Standard Webhooks' own test vector.
    signature = webhook.sign(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_slack_body_is_plain_text_and_blocks(acme, rollups, receiver, root):
    channel = services.channel_create(
        organisation=acme,
        user=root,
        name="slack",
        kind="webhook",
        url=receiver.url,
        body_format="slack",
        allow_private_network=True,
    )
    send(fire(acme, channel, rollups, hosts=("a", "b")))
    body = orjson.loads(receiver.requests[0][2])
    assert body["text"].startswith("[FIRING:2] silent\n• Collector on a silent")
    assert body["blocks"][0]["type"] == "section"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9000/hook",
        "http://[::1]/hook",
        "http://192.168.0.10/hook",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
    ],
)
def test_private_loopback_link_local_and_metadata_urls_are_refused_at_save(acme, people, url):
    with pytest.raises(ValidationError):
        services.channel_create(
            organisation=acme, user=people["alice"], name="x", kind="webhook", url=url
        )
    with pytest.raises(ValidationError):
        Channel(organisation=acme, name="x", kind="webhook", url=url).full_clean()


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch):
    def fake(host, port, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(ssrf.UnsafeURL, match="private"):
        ssrf.check_url("https://hooks.example.com/x")


def test_only_a_superuser_may_allow_private_networks_and_metadata_stays_refused(acme, people, root):
    with pytest.raises(PermissionDenied):
        services.channel_create(
            organisation=acme,
            user=people["alice"],
            name="x",
            kind="webhook",
            url="http://10.0.0.1/",
            allow_private_network=True,
        )
    ok = services.channel_create(
        organisation=acme,
        user=root,
        name="onprem",
        kind="webhook",
        url="http://10.0.0.1/",
        allow_private_network=True,
    )
    assert ok.pk
    with pytest.raises(ValidationError, match="metadata"):
        services.channel_create(
            organisation=acme,
            user=root,
            name="x",
            kind="webhook",
            url="http://169.254.169.254/",
            allow_private_network=True,
        )


def test_the_address_is_checked_again_at_send_time(acme, rollups, receiver, root, monkeypatch):
    channel = services.channel_create(
        organisation=acme,
        user=root,
        name="hook",
        kind="webhook",
        url=receiver.url,
        allow_private_network=True,
    )
    note = fire(acme, channel, rollups)
    Channel.objects.filter(pk=channel.pk).update(allow_private_network=False)  # flag withdrawn
    assert send(note).status == "failed"
    note.refresh_from_db()
    assert "refused at send time" in note.last_error and "loopback" in note.last_error
    assert receiver.requests == []


def test_dns_rebinding_to_a_private_address_is_refused_at_send_time(
    acme, rollups, root, monkeypatch
):
    def public(host, port, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", public)
    channel = services.channel_create(
        organisation=acme,
        user=root,
        name="hook",
        kind="webhook",
        url="https://hooks.example.com/in",
    )
    note = fire(acme, channel, rollups)

    def rebound(host, port, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebound)
    assert send(note).status == "failed"
    note.refresh_from_db()
    assert "metadata" in note.last_error


def test_a_redirect_is_never_followed(acme, rollups, receiver, second_receiver, root):
    channel = services.channel_create(
        organisation=acme,
        user=root,
        name="hook",
        kind="webhook",
        url=receiver.url,
        allow_private_network=True,
    )
    note = fire(acme, channel, rollups)
    receiver.statuses = [302]
    receiver.location = second_receiver.url  # a private address behind an allowed one
    assert send(note).status == "failed"
    note.refresh_from_db()
    assert "redirects are not followed" in note.last_error
    assert len(receiver.requests) == 1 and second_receiver.requests == []


def test_a_refused_connection_is_transient(acme, rollups, root):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nobody listens there
    channel = services.channel_create(
        organisation=acme,
        user=root,
        name="hook",
        kind="webhook",
        url=f"http://127.0.0.1:{port}/",
        allow_private_network=True,
    )
    result = send(fire(acme, channel, rollups))
    assert result.status == "retry" and "ConnectionRefused" in result.error
