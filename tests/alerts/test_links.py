""" "Open in GreenKPI" goes to the dashboard page of what fired, which the recipient can open; the
admin link only for administrators and only as a second link (issue 12, D3: a team lead was sent
to /admin/alerts/alert/... and refused there)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from greenkpi.alerts import evaluation, messages, outbox, services
from greenkpi.alerts.models import AlertRule, Channel, Notification, RuleKind

T0 = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture
def mail(acme):
    return Channel.objects.create(
        organisation=acme,
        name="mail",
        kind="email",
        addresses="",
        notify_team_managers=True,
        group_wait_s=0,
        group_interval_s=0,
    )


def with_email(user, address: str):
    user.email = address
    user.save()
    return user


def fire(org, kind, channel, **kw) -> Notification:
    rule = AlertRule.objects.create(organisation=org, name=str(kind), kind=kind, for_s=0, **kw)
    rule.channels.set([channel])
    with time_machine.travel(T0, tick=False):
        evaluation.rules_evaluate(organisation_id=org.pk)
    return Notification.objects.get(rule=rule, event="firing")


def delivered(note, mailoutbox) -> dict[str, str]:
    with time_machine.travel(T0, tick=False):
        assert outbox.notification_send(notification_id=str(note.pk)).status == "sent"
    return {to: m.body for m in mailoutbox for to in m.to}


def links_in(body: str) -> list[str]:
    return re.findall(r"https?://\S+", body)


def path_of(url: str, settings) -> str:
    return url.removeprefix(settings.SITE_URL)


def test_a_team_lead_gets_the_budget_page_and_can_open_it(
    acme, people, rollups, mail, mailoutbox, settings
):
    nina = with_email(people["nina"], "nina@acme.test")  # manager of nlp, not an admin
    host = rollups.host(acme, "gpu-0", team=acme.nlp, last_seen=T0)
    gpu = rollups.gpu(host)
    for i in range(24):
        rollups.add(acme, T0 - (i + 1) * H, device=gpu, team=acme.nlp, energy_kwh=5.0)
    budget = services.budget_create(
        organisation=acme,
        user=nina,
        team=acme.nlp,
        name="NLP",
        metric="energy_kwh",
        period="month",
        amount=100,
    )
    note = fire(acme, RuleKind.BUDGET_THRESHOLD, mail, budget=budget)
    assert note.payload["url"].startswith(f"{settings.SITE_URL}/budgets/{budget.pk}/?org=acme")
    assert "/admin/" in note.payload["admin_url"]

    body = delivered(note, mailoutbox)["nina@acme.test"]
    (link,) = links_in(body)  # one link: the budget's page, no admin link for a team lead
    assert f"Open in GreenKPI: {link}" in body and "/admin/" not in body
    client = Client()
    client.force_login(nina)
    assert client.get(path_of(link, settings)).status_code == 200
    html = mailoutbox[0].alternatives[0][0]
    assert "/admin/" not in html and f'href="{link}"' in html.replace("&amp;", "&")


def test_an_admin_recipient_also_gets_the_admin_link_second(
    acme, people, rollups, mail, mailoutbox, settings
):
    with_email(people["nina"], "nina@acme.test")
    from greenkpi.inventory.services import user_create

    user_create(username="root", password="x" * 20, is_superuser=True, email="root@acme.test")
    mail.addresses = "root@acme.test"
    mail.save()
    rollups.host(acme, "gpu-silent", team=acme.nlp, last_seen=T0 - 2 * H)
    note = fire(acme, RuleKind.COLLECTOR_SILENT, mail)
    bodies = delivered(note, mailoutbox)
    assert set(bodies) == {"nina@acme.test", "root@acme.test"}
    first, second = links_in(bodies["root@acme.test"])
    assert "/hosts/" in first and "/admin/alerts/alert/" in second  # the dashboard first
    (only,) = links_in(bodies["nina@acme.test"])
    assert only == first
    client = Client()
    client.force_login(people["nina"])
    assert client.get(path_of(only, settings)).status_code == 200  # nlp's host: nina sees it


def test_a_retry_after_the_admins_message_failed_does_not_resend_the_first(
    acme, people, rollups, mail, mailoutbox, monkeypatch
):
    """Admins and others get different messages; when the second fails transiently, the retry
    sends only that one (the others' message went out once)."""
    import smtplib

    from django.core.mail.backends.locmem import EmailBackend

    with_email(people["nina"], "nina@acme.test")
    from greenkpi.inventory.services import user_create

    user_create(username="root", password="x" * 20, is_superuser=True, email="root@acme.test")
    mail.addresses = "root@acme.test"
    mail.save()
    rollups.host(acme, "gpu-silent", team=acme.nlp, last_seen=T0 - 2 * H)
    note = fire(acme, RuleKind.COLLECTOR_SILENT, mail)
    real_send = EmailBackend.send_messages
    failures = iter([False, True])  # the first message goes, the second meets a 451

    def flaky(self, messages):
        if next(failures, False):
            raise smtplib.SMTPResponseException(451, b"try again later")
        return real_send(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", flaky)
    with time_machine.travel(T0, tick=False):
        assert outbox.notification_send(notification_id=str(note.pk)).status == "retry"
    assert [m.to for m in mailoutbox] == [["nina@acme.test"]]
    note.refresh_from_db()
    assert note.delivered_to == ["nina@acme.test"]
    with time_machine.travel(T0 + H, tick=False):
        assert outbox.notification_send(notification_id=str(note.pk)).status == "sent"
    assert [m.to for m in mailoutbox] == [["nina@acme.test"], ["root@acme.test"]]


def test_a_retraining_alert_links_the_model_page(acme, people, mail, settings):
    from greenkpi.workloads.models import MLModel

    model = MLModel.objects.create(team=acme.nlp, key="bert", name="BERT")
    url = messages_url(acme, RuleKind.RETRAINING_NEED, [{"model": "nlp/bert", "team": "nlp"}])
    assert url == f"{settings.SITE_URL}/models/{model.pk}/?org=acme"


def test_alerts_of_several_hosts_link_the_alerts_page_and_slack_never_the_admin(
    acme, rollups, settings
):
    for name in ("a-1", "a-2"):
        rollups.host(acme, name, last_seen=T0)
    url = messages_url(acme, RuleKind.COLLECTOR_SILENT, [{"host": "a-1"}, {"host": "a-2"}])
    assert url == f"{settings.SITE_URL}/alerts/?org=acme"
    payload = {"title": "t", "alerts": [], "url": url, "admin_url": "https://x/admin/"}
    assert "/admin/" not in str(messages.slack_body(payload))


def messages_url(org, kind, labels) -> str:
    from greenkpi.alerts import links

    rule = AlertRule(organisation=org, name="r", kind=kind)
    return links.dashboard_url(organisation=org, rule=rule, labels=labels)
