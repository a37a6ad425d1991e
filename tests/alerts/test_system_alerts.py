"""System alert: day partitions cannot be created (issue 16, "partition creation failing").

The failure is a real PostgreSQL error, not a patched function: a plain table squats the name of a
missing day's partition, so the job's ``CREATE TABLE`` fails with "relation already exists", as a
revoked CREATE right or a full disk would fail it. Meanwhile ingest must keep answering 201 (its
windows land in the days made earlier and the default partition), and the organisations' admins
must hear of it exactly once per episode through the outbox, then once that it is resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import connection

from greenkpi.alerts import outbox, system, tasks
from greenkpi.alerts.models import Channel, Notification
from greenkpi.ingest import partitions
from greenkpi.kpis import raw_storage
from greenkpi.kpis.models import RunStatus

pytestmark = pytest.mark.postgres


@pytest.fixture
def channels(acme, globex, people):
    for name in ("alice", "gary", "nina"):
        people[name].email = f"{name}@example.com"
        people[name].save(update_fields=["email"])
    return [
        Channel.objects.create(organisation=org, name="mail", kind="email")
        for org in (acme, globex)
    ]


def squat(day) -> None:
    """A table with the name of ``day``'s partition, which the job then fails to create."""
    partitions.partition_drop(day)
    with connection.cursor() as cur:
        cur.execute(f"CREATE TABLE {partitions.name_of(day)} (squatter int)")


def unsquat(day) -> None:
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE {partitions.name_of(day)}")


def sent_mail() -> list:
    for pk in Notification.objects.filter(status="pending").values_list("pk", flat=True):
        assert outbox.notification_send(notification_id=str(pk)).status == "sent"
    return list(mail.outbox)


def test_partition_creation_failing_fires_one_alert_and_ingest_goes_on(
    acme_token, channels, post_batch, make_batch, dispatched, django_capture_on_commit_callbacks
):
    _, secret = acme_token
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    missing = (today - timedelta(days=10)).date()
    squat(missing)

    run = raw_storage.raw_storage_maintain()
    assert run.status == RunStatus.FAILED, run.error
    assert "already exists" in run.error and raw_storage.PARTITION_ALERT in run.error

    # Ingest goes on: today's windows into today's partition, the missing day's into the default.
    assert post_batch(secret, make_batch(windows=2)).status_code == 201
    late = make_batch(hostname="late", windows=2, start=today - timedelta(days=10, hours=-3))
    assert post_batch(secret, late).status_code == 201
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text, count(*) FROM ingest_sample GROUP BY 1")
        placed = dict(cur.fetchall())
    assert placed[partitions.DEFAULT] == 4

    # The evaluation of every minute tells it once, whatever the number of ticks and failed runs.
    with django_capture_on_commit_callbacks(execute=True):
        tasks.evaluate_rules.apply().get()
    assert raw_storage.raw_storage_maintain().status == RunStatus.FAILED  # still failing
    tasks.evaluate_rules.apply().get()
    assert system.raw_storage_alerts() == 0
    rows = Notification.objects.order_by("organisation__slug")
    assert [(r.organisation.slug, r.event, r.recipients) for r in rows] == [
        ("acme", "error", ["alice@example.com"]),  # admins only: nina manages a team
        ("globex", "error", ["gary@example.com"]),
    ]
    assert len(dispatched) == 2  # sent after commit through the outbox task
    messages = sent_mail()
    assert len(messages) == 2
    assert messages[0].subject == f"[GreenKPI] [SYSTEM] {system.TITLE}"
    assert "Ingest goes on" in messages[0].body and "already exists" in messages[0].body
    assert rows[0].payload["system"]["failed_runs"] == 1  # told at the first failed run

    # Creation works again: the day is made, its windows move out of the default partition, and
    # the resolution is told once.
    unsquat(missing)
    assert raw_storage.raw_storage_maintain().status == RunStatus.OK
    with connection.cursor() as cur:
        cur.execute("SELECT tableoid::regclass::text, count(*) FROM ingest_sample GROUP BY 1")
        assert dict(cur.fetchall())[partitions.name_of(missing)] == 4
    assert system.raw_storage_alerts() == 2
    assert system.raw_storage_alerts() == 0
    assert sorted(Notification.objects.values_list("event", flat=True)) == [
        "error",
        "error",
        "resolved",
        "resolved",
    ]
    assert "created again" in sent_mail()[-1].body

    # A later failure is a new episode: told again.
    squat(missing - timedelta(days=1))
    raw_storage.raw_storage_maintain()
    assert system.raw_storage_alerts() == 2


def test_a_failure_that_recovered_before_anyone_looked_tells_nothing(channels):
    day = (datetime.now(UTC) - timedelta(days=9)).date()
    squat(day)
    raw_storage.raw_storage_maintain()
    unsquat(day)
    raw_storage.raw_storage_maintain()
    assert system.raw_storage_alerts() == 0
    assert not Notification.objects.exists()
