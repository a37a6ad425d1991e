"""Grouping with Alertmanager timing (group_wait, group_interval, repeat_interval, group_by), time
pinned: many alerts that fire together go out as one message, later changes at most every
group_interval, an unchanged group is repeated, and every flush writes its message once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from greenkpi.alerts import evaluation, grouping, outbox, services, tasks
from greenkpi.alerts.channels import webhook
from greenkpi.alerts.models import AlertGroup, AlertRule, Channel, Notification, RuleKind
from greenkpi.inventory.models import Host

T0 = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)


@pytest.fixture
def mail(acme):
    """Alertmanager's defaults: group_wait 30 s, group_interval 5 min."""
    return Channel.objects.create(
        organisation=acme, name="ops mail", kind="email", addresses="ops@acme.test"
    )


def silent_rule(org, channels, **kw) -> AlertRule:
    rule = AlertRule.objects.create(
        organisation=org,
        name=kw.pop("name", "collectors silent"),
        kind=RuleKind.COLLECTOR_SILENT,
        for_s=0,
        silent_minutes=15,
        **kw,
    )
    rule.channels.set(channels)
    return rule


def go_silent(org, *names, at, team=None):
    for name in names:
        Host.objects.update_or_create(
            organisation=org,
            hostname=name,
            defaults={"last_seen": at - 20 * MIN, "default_team": team},
        )


def come_back(org, *names, at):
    # Reporting again from ``at`` on: a last_seen a day ahead stands for a collector that keeps
    # sending for the rest of the test.
    Host.objects.filter(organisation=org, hostname__in=names).update(
        last_seen=at + timedelta(days=1)
    )


def evaluate(at):
    with time_machine.travel(at, tick=False):
        return evaluation.rules_evaluate()


def hosts_in(note) -> list[tuple[str, str]]:
    return [(a["labels"]["host"], a["state"]) for a in note.payload["alerts"]]


def send_all(at):
    with time_machine.travel(at, tick=False):
        for note in Notification.objects.filter(status="pending").order_by("created_at"):
            assert outbox.notification_send(notification_id=str(note.pk)).status == "sent"


def test_alerts_firing_together_wait_group_wait_and_go_out_as_one_email(
    acme, mail, flushes, mailoutbox, django_capture_on_commit_callbacks
):
    rule = silent_rule(acme, [mail])
    go_silent(acme, "gpu-0", "gpu-1", "gpu-2", at=T0)
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(T0)
    assert [a.state for a in rule.alerts.all()] == ["firing"] * 3
    assert Notification.objects.count() == 0  # group_wait: collecting siblings
    group = AlertGroup.objects.get()
    assert (group.channel, group.labels, group.alerts.count()) == (mail, {"rule": str(rule.pk)}, 3)
    go_silent(acme, "gpu-3", at=T0 + 20 * S)  # a sibling arriving within group_wait
    evaluate(T0 + 20 * S)
    assert Notification.objects.count() == 0
    # The flush was scheduled for when group_wait ends; the task runs then.
    assert flushes == [(group.pk, 30, None)]
    with time_machine.travel(T0 + 30 * S, tick=False):
        assert tasks.flush_alert_group.run(group.pk) == 1
        assert tasks.flush_alert_group.run(group.pk) == 0  # a duplicate task: nothing new
    evaluate(T0 + 40 * S)  # nor does the next tick
    (note,) = Notification.objects.all()
    assert note.payload["title"] == "[FIRING:4] collectors silent"
    assert hosts_in(note) == [(f"gpu-{i}", "firing") for i in range(4)]
    send_all(T0 + 40 * S)
    (email,) = mailoutbox
    assert email.subject == "[GreenKPI] [FIRING:4] collectors silent"
    assert all(f"Collector on gpu-{i} silent" in email.body for i in range(4))


def test_later_changes_wait_for_group_interval_and_an_unchanged_group_repeats(acme, mail):
    silent_rule(acme, [mail], repeat_interval_s=3600)
    go_silent(acme, "gpu-0", "gpu-1", at=T0)
    evaluate(T0)
    evaluate(T0 + 1 * MIN)  # past group_wait: the first message
    first = Notification.objects.get()
    assert hosts_in(first) == [("gpu-0", "firing"), ("gpu-1", "firing")]

    go_silent(acme, "gpu-2", at=T0 + 2 * MIN)
    evaluate(T0 + 2 * MIN)
    come_back(acme, "gpu-0", at=T0 + 3 * MIN)
    evaluate(T0 + 3 * MIN)
    assert Notification.objects.count() == 1  # group_interval (5 min) not over
    evaluate(T0 + 5 * MIN)
    assert Notification.objects.count() == 1
    evaluate(T0 + 6 * MIN)  # 5 min after the first message: one message with both changes
    second = Notification.objects.order_by("created_at").last()
    assert second.event == "firing" and second.payload["title"] == "[FIRING:2] collectors silent"
    # (listed in reading order of their summaries)
    assert hosts_in(second) == [("gpu-0", "resolved"), ("gpu-1", "firing"), ("gpu-2", "firing")]
    repeat = {a["labels"]["host"]: a["repeat"] for a in second.payload["alerts"]}
    assert repeat == {"gpu-0": False, "gpu-1": True, "gpu-2": False}

    evaluate(T0 + 30 * MIN)
    assert Notification.objects.count() == 2  # unchanged: nothing until repeat_interval
    evaluate(T0 + 66 * MIN)  # an hour after the last message: the same group again
    third = Notification.objects.order_by("created_at").last()
    assert Notification.objects.count() == 3
    assert hosts_in(third) == [("gpu-1", "firing"), ("gpu-2", "firing")]
    assert all(a["repeat"] for a in third.payload["alerts"])

    come_back(acme, "gpu-1", "gpu-2", at=T0 + 70 * MIN)
    evaluate(T0 + 70 * MIN)
    assert Notification.objects.count() == 3  # within group_interval of the repeat
    evaluate(T0 + 71 * MIN)
    last = Notification.objects.order_by("created_at").last()
    assert last.event == "resolved" and last.payload["title"] == "[RESOLVED:2] collectors silent"
    assert not AlertGroup.objects.exists()  # all told: the group is gone
    go_silent(acme, "gpu-5", at=T0 + 80 * MIN)
    evaluate(T0 + 80 * MIN)
    assert Notification.objects.count() == 4  # a new group waits group_wait again


def test_an_alert_that_resolves_within_group_wait_is_never_told(acme, mail):
    silent_rule(acme, [mail])
    go_silent(acme, "gpu-0", "gpu-1", at=T0)
    evaluate(T0)
    come_back(acme, "gpu-1", at=T0 + 10 * S)
    evaluate(T0 + 10 * S)
    evaluate(T0 + 31 * S)
    (note,) = Notification.objects.all()
    assert hosts_in(note) == [("gpu-0", "firing")]


def test_group_by_decides_what_goes_together(acme, flushes):
    by_kind = Channel.objects.create(
        organisation=acme, name="by kind", kind="email", addresses="a@x.test", group_by=["kind"]
    )
    alone = Channel.objects.create(
        organisation=acme, name="each", kind="email", addresses="b@x.test", group_by=["..."]
    )
    silent_rule(acme, [by_kind, alone], name="vision hosts", team=acme.vision)
    silent_rule(acme, [by_kind, alone], name="nlp hosts", team=acme.nlp)
    go_silent(acme, "v-0", "v-1", at=T0, team=acme.vision)
    go_silent(acme, "n-0", at=T0, team=acme.nlp)
    evaluate(T0)
    evaluate(T0 + 31 * S)
    (across,) = Notification.objects.filter(channel=by_kind)
    assert sorted(h for h, _ in hosts_in(across)) == ["n-0", "v-0", "v-1"]  # two rules, one message
    assert across.rule is None and across.payload["rule"]["kind"] == "group"
    assert across.payload["title"] == "[FIRING:3] kind=collector_silent"
    assert across.recipients == ["a@x.test"]
    each = Notification.objects.filter(channel=alone)
    assert sorted(hosts_in(n)[0][0] for n in each) == ["n-0", "v-0", "v-1"]


def test_a_webhook_gets_one_signed_message_for_the_whole_group(acme, people, receiver):
    root = people["alice"]
    root.is_superuser = True
    root.save()
    hook = services.channel_create(
        organisation=acme,
        user=root,
        name="hook",
        kind="webhook",
        url=receiver.url,
        allow_private_network=True,
        group_wait_s=60,
    )
    silent_rule(acme, [hook])
    go_silent(acme, *(f"gpu-{i}" for i in range(12)), at=T0)
    evaluate(T0)
    evaluate(T0 + 59 * S)
    assert Notification.objects.count() == 0
    evaluate(T0 + 60 * S)
    send_all(T0 + 61 * S)
    ((_, headers, body),) = receiver.requests
    assert webhook.verify(secret=hook.secret, headers=headers, body=body)
    data = __import__("orjson").loads(body)
    assert data["count"] == 12 and data["title"] == "[FIRING:12] collectors silent"
    assert data["group"]["labels"] == {"rule": str(AlertRule.objects.get().pk)}


def test_silenced_and_acknowledged_alerts_in_a_group(acme, mail, people):
    rule = silent_rule(acme, [mail], repeat_interval_s=600)
    go_silent(acme, "gpu-0", "gpu-1", at=T0)
    with time_machine.travel(T0, tick=False):
        services.silence_create(
            organisation=acme,
            user=people["alice"],
            matchers={"host": "gpu-1"},
            ends_at=T0 + 8 * MIN,
        )
    evaluate(T0)
    evaluate(T0 + 1 * MIN)
    first = Notification.objects.get()
    assert hosts_in(first) == [("gpu-0", "firing")]  # gpu-1 is silenced
    evaluate(T0 + 9 * MIN)  # the silence expired: gpu-1 is news, group_interval is over
    second = Notification.objects.order_by("created_at").last()
    assert hosts_in(second) == [("gpu-0", "firing"), ("gpu-1", "firing")]
    for alert in rule.alerts.all():
        services.alert_acknowledge(alert=alert, user=people["alice"])
    evaluate(T0 + 30 * MIN)
    assert Notification.objects.count() == 2  # all acknowledged: no repeats


def test_grouping_helpers():
    labels = {"rule": "3", "kind": "collector_silent", "host": "gpu-1"}
    assert grouping.group_labels(["rule"], labels) == {"rule": "3"}
    assert grouping.group_labels(["team", "rule"], labels) == {"rule": "3", "team": ""}
    assert grouping.group_labels(["..."], labels) == labels
    assert grouping.group_labels([], labels) == {"rule": "3"}
    assert grouping.group_key(1, {"rule": "3"}) != grouping.group_key(2, {"rule": "3"})


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_flushes_of_a_group_on_postgresql_write_one_message(acme):
    import threading

    from django.db import connection

    assert connection.vendor == "postgresql", "this test runs with DATABASE_URL=postgres://..."
    mail = Channel.objects.create(
        organisation=acme, name="mail", kind="email", addresses="ops@acme.test"
    )
    silent_rule(acme, [mail])
    go_silent(acme, *(f"gpu-{i}" for i in range(5)), at=T0)
    evaluation.rules_evaluate(now=T0)
    group = AlertGroup.objects.get()
    barrier = threading.Barrier(2)
    written: list[int] = []

    def flush():
        try:
            barrier.wait()
            written.append(grouping.groups_flush(now=T0 + 31 * S, group_ids=[group.pk]))
        finally:
            connection.close()

    threads = [threading.Thread(target=flush) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(written) == [0, 1]
    assert Notification.objects.get().payload["count"] == 5


def test_a_disabled_rule_or_a_channel_taken_off_the_rule_stops_telling_its_group(acme, mail):
    other = Channel.objects.create(
        organisation=acme, name="other", kind="email", addresses="o@x.test", group_wait_s=0
    )
    rule = silent_rule(acme, [mail, other], repeat_interval_s=600)
    go_silent(acme, "gpu-0", at=T0)
    evaluate(T0)
    evaluate(T0 + 1 * MIN)
    assert Notification.objects.filter(channel=mail).count() == 1
    assert Notification.objects.filter(channel=other).count() == 1
    rule.channels.set([mail])  # "other" no longer notified of this rule
    evaluate(T0 + 12 * MIN)  # a repeat is due: only on the channel still attached
    assert Notification.objects.filter(channel=mail).count() == 2
    assert Notification.objects.filter(channel=other).count() == 1
    assert not AlertGroup.objects.filter(channel=other).exists()
    AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
    evaluate(T0 + 30 * MIN)
    assert Notification.objects.count() == 3  # a disabled rule's alerts are not repeated


def test_alerts_told_before_grouping_existed_are_not_told_again(acme, mail):
    """An upgrade: a firing alert with its notification from before groups joins as told."""
    from greenkpi.alerts.models import Alert

    rule = silent_rule(acme, [mail], repeat_interval_s=3600)
    go_silent(acme, "gpu-0", at=T0)
    evaluate(T0)
    evaluate(T0 + 1 * MIN)
    (before,) = Notification.objects.all()
    AlertGroup.objects.all().delete()  # as if the alert had been told by the old code
    assert Alert.objects.get(rule=rule).notified_at == T0 + 1 * MIN
    evaluate(T0 + 10 * MIN)
    assert list(Notification.objects.all()) == [before]
    evaluate(T0 + 61 * MIN)  # the repeat comes an hour after the old message, as before
    assert Notification.objects.count() == 2
