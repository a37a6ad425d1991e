"""The outbox: rows and their dispatch commit together, each row is sent once (claim by conditional
UPDATE, also between two concurrent senders on PostgreSQL), a lost dispatch is swept up."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import InterfaceError, OperationalError, connection, transaction

from greenkpi.alerts import evaluation, outbox, tasks
from greenkpi.alerts.models import AlertGroup, AlertRule, Channel, Notification, RuleKind
from greenkpi.lib.retry import TRANSIENT_ERRORS
from greenkpi.schedule import BEAT_SCHEDULE

T0 = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)


def silent_rule(org, channel, rollups, hosts=("gpu-0",)):
    for name in hosts:
        rollups.host(org, name, last_seen=T0 - timedelta(hours=1))
    rule = AlertRule.objects.create(
        organisation=org, name="silent", kind=RuleKind.COLLECTOR_SILENT, for_s=0
    )
    rule.channels.set([channel])
    return rule


@pytest.fixture
def mail_channel(acme):
    return Channel.objects.create(
        organisation=acme, name="mail", kind="email", addresses="ops@acme.test", group_wait_s=0
    )


def test_a_rolled_back_evaluation_leaves_no_row_and_dispatches_nothing(
    acme, rollups, mail_channel, dispatched, django_capture_on_commit_callbacks
):
    rule = silent_rule(acme, mail_channel, rollups)
    created = []

    def evaluate_then_fail():
        with transaction.atomic():
            created.append(evaluation.rule_evaluate(rule=rule, now=T0).notifications)
            raise RuntimeError("the outer transaction fails")

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
    ):
        evaluate_then_fail()
    assert created == [1]  # the row was written, then rolled back with the alert change
    assert callbacks == [] and dispatched == []
    assert Notification.objects.count() == 0 and rule.alerts.count() == 0


def test_a_lost_dispatch_is_swept_up_and_still_sent_exactly_once(
    acme, rollups, mail_channel, dispatched, django_capture_on_commit_callbacks, mailoutbox
):
    rule = silent_rule(acme, mail_channel, rollups)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.rule_evaluate(rule=rule, now=T0)
    (note,) = Notification.objects.all()
    assert dispatched == [(str(note.pk), None)]
    dispatched.clear()  # the broker lost that message

    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        assert outbox.notifications_sweep() == 0  # within the grace: the message may still come
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        assert outbox.notifications_sweep(queue="alerts") == 1
        assert dispatched == [(str(note.pk), "alerts")]
        # The swept message and a late copy of the original both arrive: one mail.
        results = [outbox.notification_send(notification_id=str(note.pk)) for _ in range(2)]
        assert [r.status for r in results] == ["sent", "skipped"]
        assert outbox.notifications_sweep() == 0  # sent: nothing left to sweep
    assert len(mailoutbox) == 1


def test_a_sender_killed_mid_send_is_taken_over_after_its_claim_lapses(
    acme, rollups, mail_channel, mailoutbox
):
    rule = silent_rule(acme, mail_channel, rollups)
    evaluation.rule_evaluate(rule=rule, now=T0)
    note = Notification.objects.get()
    Notification.objects.filter(pk=note.pk).update(
        status="sending",
        claimed_by="dead-worker",
        claimed_until=T0 + timedelta(seconds=outbox.SEND_LEASE_S),
    )
    with time_machine.travel(T0 + timedelta(seconds=60), tick=False):
        assert outbox.notifications_due(now=T0 + timedelta(seconds=60)) == []
        assert outbox.notification_send(notification_id=str(note.pk)).status == "skipped"
    later = T0 + timedelta(seconds=outbox.SEND_LEASE_S + 1)
    with time_machine.travel(later, tick=False):
        assert outbox.notifications_due(now=later) == [str(note.pk)]
        assert outbox.notification_send(notification_id=str(note.pk)).status == "sent"
    assert len(mailoutbox) == 1


def test_a_transient_error_backs_off_and_gives_up_after_max_attempts(
    acme, rollups, mail_channel, monkeypatch
):
    from greenkpi.alerts.channels import TransientError
    from greenkpi.alerts.channels.email import EmailNotifier

    def down(self, **kw):
        raise TransientError("SMTP 451")

    monkeypatch.setattr(EmailNotifier, "send", down)
    evaluation.rule_evaluate(rule=silent_rule(acme, mail_channel, rollups), now=T0)
    note = Notification.objects.get()
    at, delays = T0, []
    for _ in range(outbox.MAX_ATTEMPTS):
        with time_machine.travel(at, tick=False):
            result = outbox.notification_send(notification_id=str(note.pk))
        delays.append(result.retry_in_s)
        at += timedelta(seconds=result.retry_in_s or 1)
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 0]
    note.refresh_from_db()
    assert (note.status, note.attempts) == ("failed", outbox.MAX_ATTEMPTS)
    assert "gave up after 8 attempts" in note.last_error


def test_tasks_ack_late_retry_only_transient_database_errors_and_beat_entries_expire():
    for task in (tasks.evaluate_rules, tasks.send_notification, tasks.sweep_outbox):
        assert task.acks_late is True
        assert (
            set(task.autoretry_for) == set(TRANSIENT_ERRORS) >= {OperationalError, InterfaceError}
        )
    for name, task in (
        ("alerts-evaluate-rules", tasks.evaluate_rules),
        ("alerts-sweep-outbox", tasks.sweep_outbox),
    ):
        entry = BEAT_SCHEDULE[name]
        assert entry["task"] == task.name
        assert 0 < entry["options"]["expires"] < entry["schedule"]


def test_the_send_task_sends_through_the_service(acme, rollups, mail_channel, mailoutbox):
    evaluation.rule_evaluate(rule=silent_rule(acme, mail_channel, rollups), now=T0)
    note = Notification.objects.get()
    assert tasks.send_notification.apply(args=[str(note.pk)]).get() == "sent"
    assert tasks.send_notification.apply(args=[str(note.pk)]).get() == "skipped"
    assert len(mailoutbox) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_senders_on_postgresql_send_each_row_once(
    acme, rollups, receiver, root_user
):
    assert connection.vendor == "postgresql", "this test runs with DATABASE_URL=postgres://..."
    from greenkpi.alerts import services

    channel = services.channel_create(
        organisation=acme,
        user=root_user,
        name="hook",
        kind="webhook",
        url=receiver.url,
        allow_private_network=True,
        group_wait_s=0,
    )
    rule = silent_rule(acme, channel, rollups, hosts=[f"gpu-{i}" for i in range(10)])
    rounds = 10
    for i in range(rounds):  # ten separate notifications: each raced by two senders
        rule.alerts.all().delete()
        AlertGroup.objects.all().delete()  # a fresh group each round: a first message each
        evaluation.rule_evaluate(rule=rule, now=T0 + timedelta(minutes=i))
    notes = list(Notification.objects.filter(status="pending").values_list("pk", flat=True))
    assert len(notes) == rounds
    results: list[str] = []

    def sender(pk, barrier):
        try:
            barrier.wait()
            results.append(outbox.notification_send(notification_id=str(pk)).status)
        finally:
            connection.close()

    for pk in notes:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=sender, args=(pk, barrier)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert sorted(results) == ["sent"] * rounds + ["skipped"] * rounds
    ids = [headers["webhook-id"] for _, headers, _ in receiver.requests]
    assert sorted(ids) == sorted(str(pk) for pk in notes)  # each row once, none twice


@pytest.fixture
def root_user(db):
    from greenkpi.inventory.services import user_create

    return user_create(username="root", password="x" * 20, is_superuser=True)
