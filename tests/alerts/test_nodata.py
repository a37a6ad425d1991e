"""NoData and Error, Grafana semantics: a rule with nothing to judge by raises a "no data" alert
(or alerts, or is OK, per ``no_data``), distinct from firing; a rule whose evaluation raises is in
Error, recorded on the rule and told once; both are visible on the rule for pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from greenkpi.alerts import evaluation, evaluators, outbox, services
from greenkpi.alerts.models import AlertRule, Channel, Notification, RuleKind
from greenkpi.inventory.models import Host

T0 = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture
def mail(acme):
    return Channel.objects.create(
        organisation=acme,
        name="ops mail",
        kind="email",
        addresses="ops@acme.test",
        group_wait_s=0,
        group_interval_s=0,
    )


def evaluate(at):
    with time_machine.travel(at, tick=False):
        return evaluation.rules_evaluate()


def make_rule(org, kind, channels, **kw) -> AlertRule:
    rule = AlertRule.objects.create(
        organisation=org, name=kw.pop("name", str(kind)), kind=kind, for_s=0, **kw
    )
    rule.channels.set(channels)
    return rule


def test_a_collector_that_never_reported_is_no_data_told_as_such_and_resolves_when_it_reports(
    acme, mail, mailoutbox
):
    Host.objects.create(organisation=acme, hostname="new-1", default_team=acme.vision)
    rule = make_rule(acme, RuleKind.COLLECTOR_SILENT, [mail])
    evaluate(T0)
    (alert,) = rule.alerts.all()
    assert alert.state == "nodata" and alert.labels["alertstate"] == "nodata"
    assert alert.summary == "No data: the collector on new-1 never reported"
    assert alert.team_id == acme.vision.pk
    rule.refresh_from_db()
    assert (rule.state, rule.state_since, rule.last_evaluated_at) == ("nodata", T0, T0)
    (note,) = Notification.objects.all()
    assert note.event == "nodata" and note.payload["title"] == "[NO DATA:1] collector_silent"
    with time_machine.travel(T0, tick=False):
        outbox.notification_send(notification_id=str(note.pk))
    assert "NO DATA" in mailoutbox[0].body and "FIRING" not in mailoutbox[0].subject

    evaluate(T0 + MIN)
    assert Notification.objects.count() == 1  # still no data: nothing new
    Host.objects.filter(hostname="new-1").update(last_seen=T0 + 2 * MIN)
    evaluate(T0 + 2 * MIN)
    alert.refresh_from_db()
    assert alert.state == "resolved"
    resolved = Notification.objects.order_by("created_at").last()
    assert resolved.event == "resolved" and resolved.payload["alerts"][0]["state"] == "resolved"
    rule.refresh_from_db()
    assert (rule.state, rule.state_since) == ("normal", T0 + 2 * MIN)


def test_no_data_handled_as_alerting_fires_and_as_ok_stays_quiet(acme, mail):
    Host.objects.create(organisation=acme, hostname="new-1")
    alerting = make_rule(acme, RuleKind.COLLECTOR_SILENT, [mail], name="a", no_data="alerting")
    ok = make_rule(acme, RuleKind.COLLECTOR_SILENT, [mail], name="o", no_data="ok")
    evaluate(T0)
    (alert,) = alerting.alerts.all()
    assert (alert.state, alert.labels.get("alertstate")) == ("firing", None)
    assert alert.summary.startswith("No data:")
    assert ok.alerts.count() == 0
    ok.refresh_from_db()
    alerting.refresh_from_db()
    assert (alerting.state, ok.state) == ("alerting", "normal")
    assert Notification.objects.get().event == "firing"


def test_a_budget_without_any_rollup_is_no_data_not_under_budget(acme, people, mail):
    budget = services.budget_create(
        organisation=acme,
        user=people["alice"],
        team=acme.nlp,
        name="NLP",
        metric="energy_kwh",
        period="month",
        amount=100,
    )
    threshold = make_rule(acme, RuleKind.BUDGET_THRESHOLD, [mail], budget=budget)
    forecast = make_rule(acme, RuleKind.BUDGET_FORECAST, [mail], budget=budget)
    evaluate(T0)
    for rule in (threshold, forecast):
        (alert,) = rule.alerts.all()
        assert alert.state == "nodata" and alert.team_id == acme.nlp.pk
        assert "has no rollups in 2026-05 nor the last 7 days" in alert.summary


def test_a_failing_rule_is_in_error_told_once_per_episode_and_the_others_still_run(
    acme, mail, rollups, monkeypatch
):
    rollups.host(acme, "gpu-0", last_seen=T0 - 20 * MIN)
    broken = make_rule(acme, RuleKind.LOW_UTILIZATION, [mail], name="broken")
    fine = make_rule(acme, RuleKind.COLLECTOR_SILENT, [mail], name="fine")
    real = evaluators.EVALUATORS[RuleKind.LOW_UTILIZATION]

    def boom(rule, now):
        raise ZeroDivisionError("bad maths")

    monkeypatch.setitem(evaluators.EVALUATORS, RuleKind.LOW_UTILIZATION, boom)
    run = evaluate(T0)
    assert (run.status, run.windows_done, run.windows_failed) == ("partial", 1, 1)
    broken.refresh_from_db()
    assert (broken.state, broken.state_since, broken.last_evaluated_at) == ("error", T0, T0)
    assert broken.last_error == "ZeroDivisionError: bad maths"
    (told,) = Notification.objects.filter(event="error")
    assert told.rule == broken and told.payload["title"] == "[ERROR] broken"
    assert told.payload["error"] == "ZeroDivisionError: bad maths"
    assert told.recipients == ["ops@acme.test"]
    assert fine.alerts.get().state == "firing"

    evaluate(T0 + MIN)
    assert Notification.objects.filter(event="error").count() == 1  # once per episode
    broken.refresh_from_db()
    assert broken.state_since == T0 and broken.last_evaluated_at == T0 + MIN

    monkeypatch.setitem(evaluators.EVALUATORS, RuleKind.LOW_UTILIZATION, real)
    evaluate(T0 + 2 * MIN)
    broken.refresh_from_db()
    assert broken.state != "error" and broken.last_error == ""
    monkeypatch.setitem(evaluators.EVALUATORS, RuleKind.LOW_UTILIZATION, boom)
    evaluate(T0 + 3 * MIN)
    assert Notification.objects.filter(event="error").count() == 2  # a new episode


def test_an_error_email_says_what_failed(acme, mail, monkeypatch, mailoutbox):
    make_rule(acme, RuleKind.IDLE_GPU, [mail], name="idle")

    def boom(rule, now):
        raise RuntimeError("rollups table unreadable")

    monkeypatch.setitem(evaluators.EVALUATORS, RuleKind.IDLE_GPU, boom)
    evaluate(T0)
    note = Notification.objects.get(event="error")
    with time_machine.travel(T0, tick=False):
        assert outbox.notification_send(notification_id=str(note.pk)).status == "sent"
    (email,) = mailoutbox
    assert email.subject == "[GreenKPI] [ERROR] idle"
    assert "RuntimeError: rollups table unreadable" in email.body
    assert "could not be evaluated" in email.alternatives[0][0]
