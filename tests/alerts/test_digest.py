"""The daily digest: one email per recipient per day, scoped to what they may see, with open alerts,
budgets (consumption, forecast, method) and yesterday's energy and CO2e worked out by hand; sent
through the outbox exactly once per recipient per day; opt-out per channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from greenkpi.alerts import digest, evaluation, outbox, services, tasks
from greenkpi.alerts.models import AlertRule, Channel, Notification, RuleKind
from greenkpi.schedule import BEAT_SCHEDULE

H = timedelta(hours=1)
NOW = datetime(2026, 5, 11, 6, 5, tzinfo=UTC)
MAY8 = datetime(2026, 5, 8, tzinfo=UTC)


@pytest.fixture
def scene(acme, globex, people, rollups):
    """NLP 0.5 kWh/h and 0.1 kgCO2e/h, Vision 9 kWh/h and 1 kgCO2e/h, May 8-10; a Vision host
    silent; alice (org admin) and nina (NLP manager) have emails, victor (viewer) too."""
    for name in ("alice", "nina", "victor"):
        people[name].email = f"{name}@acme.test"
        people[name].save()
    nlp_host = rollups.host(acme, "gpu-nlp", team=acme.nlp, last_seen=NOW)
    vision_host = rollups.host(acme, "gpu-vision", team=acme.vision, last_seen=NOW - 2 * H)
    gx_host = rollups.host(globex, "gx-1", team=globex.research, last_seen=NOW)
    nlp, vision, gx = rollups.gpu(nlp_host), rollups.gpu(vision_host), rollups.gpu(gx_host)
    for i in range(72):
        hour = MAY8 + i * H
        rollups.add(acme, hour, device=nlp, team=acme.nlp, energy_kwh=0.5, co2e_kg=0.1)
        rollups.add(acme, hour, device=vision, team=acme.vision, energy_kwh=9.0, co2e_kg=1.0)
        rollups.add(globex, hour, device=gx, team=globex.research, energy_kwh=100.0)
    services.budget_create(
        organisation=acme,
        user=people["nina"],
        team=acme.nlp,
        name="NLP energy",
        metric="energy_kwh",
        period="month",
        amount=100.0,
    )
    ops = Channel.objects.create(
        organisation=acme, name="ops", kind="email", addresses="ops@acme.test", group_wait_s=0
    )
    Channel.objects.create(  # ops again: still one digest for ops
        organisation=acme, name="ops 2", kind="email", addresses="OPS@acme.test"
    )
    Channel.objects.create(  # opted out
        organisation=acme,
        name="quiet",
        kind="email",
        addresses="quiet@acme.test",
        notify_team_managers=False,
        daily_digest=False,
    )
    rule = AlertRule.objects.create(
        organisation=acme, name="silent", kind=RuleKind.COLLECTOR_SILENT, for_s=0
    )
    rule.channels.set([ops])
    with time_machine.travel(NOW, tick=False):
        evaluation.rules_evaluate()
    return ops


def digests(now=NOW) -> dict[str, dict]:
    with time_machine.travel(now, tick=False):
        digest.digests_send()
    return {
        n.recipients[0]: n.payload
        for n in Notification.objects.filter(event="digest", created_at=now)
    }


def test_one_digest_per_recipient_scoped_to_what_they_may_see(acme, scene):
    sent = digests()
    assert sorted(sent) == ["alice@acme.test", "nina@acme.test", "ops@acme.test"]
    # victor is a viewer (no digest), quiet@ opted out, Globex's data is never in Acme's digests.
    alice, nina, ops = sent["alice@acme.test"], sent["nina@acme.test"], sent["ops@acme.test"]
    assert alice["day"] == "2026-05-10" and alice["scope"] == "the whole organisation"
    # May 10: 24 h x (0.5 + 9) kWh = 228 kWh; 24 h x (0.1 + 1.0) kgCO2e = 26.4 kg
    assert alice["yesterday"]["energy_kwh"] == pytest.approx(228.0)
    assert alice["yesterday"]["co2e_kg"] == pytest.approx(26.4)
    assert [a["summary"][:26] for a in alice["alerts"]] == ["Collector on gpu-vision si"]
    assert nina["scope"] == acme.nlp.name
    assert nina["yesterday"]["energy_kwh"] == pytest.approx(12.0)  # 24 h x 0.5 kWh
    assert nina["yesterday"]["co2e_kg"] == pytest.approx(2.4)
    assert nina["alerts"] == []  # Vision's silent host is not NLP's business
    (budget,) = nina["budgets"]
    assert (budget["name"], budget["consumed"], budget["consumed_pct"]) == ("NLP energy", 36, 36)
    assert budget["forecast_method"] == "recent_rate"  # 3 days of history
    assert ops["yesterday"] == alice["yesterday"]
    channel_of = {n.recipients[0]: n.channel for n in Notification.objects.filter(event="digest")}
    assert channel_of["ops@acme.test"] == scene  # the first channel listing ops


def test_a_second_run_the_same_day_sends_nothing_and_the_next_day_sends_again(
    acme, scene, mailoutbox
):
    assert len(digests()) == 3
    with time_machine.travel(NOW + H, tick=False):
        assert digest.digests_send() == 0
        assert tasks.send_daily_digests.run() == 0  # the task, run twice: still nothing
    with time_machine.travel(NOW + H, tick=False):
        for note in Notification.objects.filter(event="digest"):
            assert outbox.notification_send(notification_id=str(note.pk)).status == "sent"
    assert sorted(m.to[0] for m in mailoutbox) == [
        "alice@acme.test",
        "nina@acme.test",
        "ops@acme.test",
    ]
    nina = next(m for m in mailoutbox if m.to == ["nina@acme.test"])
    assert nina.subject == f"[GreenKPI] Daily digest 2026-05-10: {acme.name}"
    assert "Energy 12.0 kWh (IT), CO2e, total (SCI numerator) 2.40 kg" in nina.body
    assert "NLP energy (2026-05): 36.000 of 100.000 kWh used (36.0 %)" in nina.body
    assert "recent 7-day rate" in nina.body
    assert "gpu-vision" not in nina.body
    assert "<table" in nina.alternatives[0][0]
    assert len(digests(NOW + timedelta(days=1))) == 3  # a new day, a new digest


def test_a_scope_without_data_yesterday_says_no_data(acme, people):
    people["nina"].email = "nina@acme.test"
    people["nina"].save()
    Channel.objects.create(organisation=acme, name="m", kind="email")
    services.budget_create(
        organisation=acme,
        user=people["nina"],
        team=acme.nlp,
        name="NLP energy",
        metric="energy_kwh",
        period="month",
        amount=100.0,
    )
    payload = digests()["nina@acme.test"]
    assert payload["yesterday"]["has_data"] is False
    assert payload["budgets"][0]["has_data"] is False


def test_the_digest_has_a_daily_beat_entry_that_expires():
    entry = BEAT_SCHEDULE["alerts-daily-digest"]
    assert entry["task"] == "greenkpi.alerts.tasks.send_daily_digests"
    assert 0 < entry["options"]["expires"] <= 12 * 3600


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_digest_runs_on_postgresql_write_each_digest_once(acme, people):
    import threading

    from django.db import connection

    assert connection.vendor == "postgresql", "this test runs with DATABASE_URL=postgres://..."
    people["alice"].email = "alice@acme.test"
    people["alice"].save()
    Channel.objects.create(organisation=acme, name="m", kind="email", addresses="ops@acme.test")
    barrier = threading.Barrier(2)
    written: list[int] = []

    def run():
        try:
            barrier.wait()
            written.append(digest.digests_send(now=NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(written) == 2
    assert sorted(n.recipients[0] for n in Notification.objects.filter(event="digest")) == [
        "alice@acme.test",
        "ops@acme.test",
    ]
