"""Rules evaluated against the database with time pinned: lifecycle, grouping, repeat, silences,
acknowledgement, each rule kind, run records and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from greenkpi.alerts import evaluation, selectors, services
from greenkpi.alerts.models import Alert, AlertRule, Channel, Notification, RuleKind
from greenkpi.kpis.models import RecomputeRun

T0 = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture
def email(acme):
    # No group_wait / group_interval: every evaluation's change is told at once (the timing of
    # groups has its own tests in test_grouping.py).
    return Channel.objects.create(
        organisation=acme,
        name="ops mail",
        kind="email",
        addresses="ops@acme.test",
        group_wait_s=0,
        group_interval_s=0,
    )


def rule(org, kind, channels=(), **kw) -> AlertRule:
    r = AlertRule.objects.create(organisation=org, name=kw.pop("name", kind), kind=kind, **kw)
    r.channels.set(channels)
    return r


def evaluate(now, org=None):
    with time_machine.travel(now, tick=False):
        return evaluation.rules_evaluate(organisation_id=org.pk if org else None)


def states(r):
    return sorted(
        (a.labels.get("host") or a.labels.get("team") or "", a.state) for a in r.alerts.all()
    )


def test_many_silent_collectors_fire_once_after_for_as_one_grouped_message_and_resolve_once(
    acme, email, rollups, dispatched, django_capture_on_commit_callbacks
):
    hosts = [
        rollups.host(acme, f"gpu-{i}", team=acme.vision, last_seen=T0 - 20 * MIN) for i in range(3)
    ]
    silent = rule(acme, RuleKind.COLLECTOR_SILENT, [email], silent_minutes=15, for_s=300)

    evaluate(T0)
    assert states(silent) == [("gpu-0", "pending"), ("gpu-1", "pending"), ("gpu-2", "pending")]
    assert Notification.objects.count() == 0
    evaluate(T0 + 4 * MIN)
    assert Notification.objects.count() == 0  # `for` not yet elapsed
    with django_capture_on_commit_callbacks(execute=True):
        evaluate(T0 + 5 * MIN)
    assert [a.state for a in silent.alerts.all()] == ["firing"] * 3
    (note,) = Notification.objects.all()
    assert (note.event, note.payload["count"], note.payload["title"]) == (
        "firing",
        3,
        "[FIRING:3] collector_silent",
    )
    assert note.recipients == ["ops@acme.test"]
    assert dispatched == [(str(note.pk), None)]  # dispatched once, after commit
    evaluate(T0 + 6 * MIN)
    assert Notification.objects.count() == 1  # still firing: nothing new

    for host in hosts:  # the collectors come back
        host.last_seen = T0 + 7 * MIN
        host.save()
    evaluate(T0 + 8 * MIN)
    assert [a.state for a in silent.alerts.all()] == ["resolved"] * 3
    resolved = Notification.objects.get(event="resolved")
    assert resolved.payload["count"] == 3
    evaluate(T0 + 9 * MIN)
    assert Notification.objects.count() == 2
    run = RecomputeRun.objects.filter(kind=evaluation.RUN_KIND).first()
    assert (run.status, run.windows_done, run.rows_written) == ("ok", 1, 0)


def test_a_firing_alert_repeats_after_the_interval_unless_acknowledged(
    acme, email, rollups, people
):
    rollups.host(acme, "gpu-0", team=acme.vision, last_seen=T0 - 20 * MIN)
    silent = rule(acme, RuleKind.COLLECTOR_SILENT, [email], for_s=0, repeat_interval_s=3600)
    evaluate(T0)
    evaluate(T0 + 59 * MIN)
    assert Notification.objects.count() == 1
    evaluate(T0 + 60 * MIN)
    repeat = Notification.objects.order_by("-created_at").first()
    assert Notification.objects.count() == 2 and repeat.payload["alerts"][0]["repeat"] is True
    services.alert_acknowledge(alert=silent.alerts.get(), user=people["alice"])
    evaluate(T0 + 121 * MIN)
    assert Notification.objects.count() == 2


def test_a_silence_suppresses_notifications_until_it_expires(acme, email, rollups, people):
    rollups.host(acme, "gpu-0", team=acme.vision, last_seen=T0 - 20 * MIN)
    silent = rule(acme, RuleKind.COLLECTOR_SILENT, [email], for_s=0)
    with time_machine.travel(T0, tick=False):
        services.silence_create(
            organisation=acme,
            user=people["alice"],
            matchers={"host": "gpu-0"},
            ends_at=T0 + 30 * MIN,
            comment="maintenance",
        )
    evaluate(T0)
    evaluate(T0 + 10 * MIN)
    assert silent.alerts.get().state == "firing"
    assert Notification.objects.count() == 0
    evaluate(T0 + 31 * MIN)  # the silence expired: the still-firing alert is notified once
    assert Notification.objects.filter(event="firing").count() == 1
    evaluate(T0 + 32 * MIN)
    assert Notification.objects.count() == 1


def test_who_may_silence_and_acknowledge(acme, globex, people, rollups):
    from django.core.exceptions import PermissionDenied, ValidationError

    end = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(PermissionDenied):
        services.silence_create(
            organisation=acme, user=people["victor"], matchers={"team": "vision"}, ends_at=end
        )
    with pytest.raises(PermissionDenied):  # a team manager silences their own team only
        services.silence_create(
            organisation=acme, user=people["nina"], matchers={"host": "gpu-0"}, ends_at=end
        )
    assert services.silence_create(
        organisation=acme, user=people["nina"], matchers={"team": "nlp"}, ends_at=end
    )
    with pytest.raises(ValidationError):
        services.silence_create(organisation=acme, user=people["alice"], matchers={}, ends_at=end)
    with pytest.raises(ValidationError):
        services.silence_create(
            organisation=acme,
            user=people["alice"],
            matchers={"a": "b"},
            ends_at=end + timedelta(days=100),
        )
    rollups.host(acme, "gpu-0", team=acme.vision, last_seen=T0 - 20 * MIN)
    rule(acme, RuleKind.COLLECTOR_SILENT, for_s=0)
    evaluate(T0)
    alert = Alert.objects.get()
    with pytest.raises(PermissionDenied):
        services.alert_acknowledge(alert=alert, user=people["nina"])  # nlp cannot see vision's
    with pytest.raises(PermissionDenied):
        services.alert_acknowledge(alert=alert, user=people["gary"])
    assert (
        services.alert_acknowledge(alert=alert, user=people["victor"]).acknowledged_by
        == people["victor"]
    )


def test_open_alerts_are_listed_for_the_teams_a_user_sees(acme, globex, rollups):
    rollups.host(acme, "v-1", team=acme.vision, last_seen=T0 - 20 * MIN)
    rollups.host(acme, "n-1", team=acme.nlp, last_seen=T0 - 20 * MIN)
    rollups.host(acme, "orphan", last_seen=T0 - 20 * MIN)
    rollups.host(globex, "gx-1", team=globex.research, last_seen=T0 - 20 * MIN)
    rule(acme, RuleKind.COLLECTOR_SILENT, for_s=0)
    gx_rule = rule(globex, RuleKind.COLLECTOR_SILENT, for_s=0)
    evaluate(T0)
    assert [a.labels["host"] for a in gx_rule.alerts.all()] == ["gx-1"]  # Globex never sees Acme

    def hosts(**kw):
        return sorted(
            a.labels["host"] for a in selectors.alerts_open(organisation_id=acme.pk, **kw)
        )

    assert hosts(team_ids=[acme.vision.pk], org_wide=False) == ["v-1"]
    assert hosts(team_ids=[acme.nlp.pk], org_wide=False) == ["n-1"]
    assert hosts(team_ids=[], org_wide=True) == ["n-1", "orphan", "v-1"]


def test_low_team_utilization_fires_and_a_team_without_gpu_data_is_no_data(acme, rollups):
    host = rollups.host(acme, "gpu-0", team=acme.vision, last_seen=T0)
    gpu = rollups.gpu(host)
    for i in range(24):  # busy 0.25 GPU-h of every GPU-h: 25 % < 30 %
        rollups.add(
            acme,
            T0 - (24 - i) * timedelta(hours=1),
            device=gpu,
            team=acme.vision,
            allocated_gpu_h=1.0,
            busy_gpu_h=0.25,
        )
    low = rule(acme, RuleKind.LOW_UTILIZATION, for_s=0)
    evaluate(T0 + 5 * MIN)
    assert states(low) == [("nlp", "nodata"), ("vision", "firing")]  # NLP: no GPU readings
    alert = low.alerts.get(state="firing")
    assert (alert.labels["team"], alert.state, alert.value) == (
        "vision",
        "firing",
        pytest.approx(0.25),
    )
    assert alert.team_id == acme.vision.pk
    assert "25 %" in alert.summary
    low.utilization_floor = 0.2
    low.save()
    evaluate(T0 + 6 * MIN)
    assert states(low) == [("nlp", "nodata"), ("vision", "resolved")]


def test_a_gpu_idle_for_n_hours_fires_but_a_briefly_used_one_does_not(acme, rollups):
    host = rollups.host(acme, "gpu-0", team=acme.nlp, last_seen=T0)
    idle, used = rollups.gpu(host), rollups.gpu(host)
    for i in range(4):
        hour = T0 - (4 - i) * timedelta(hours=1)
        rollups.add(acme, hour, device=idle, team=acme.nlp, allocated_gpu_h=1.0, idle_gpu_h=0.98)
        rollups.add(
            acme,
            hour,
            device=used,
            team=acme.nlp,
            allocated_gpu_h=1.0,
            idle_gpu_h=0.98 if i else 0.2,
        )
    idle_rule = rule(acme, RuleKind.IDLE_GPU, for_s=0, idle_hours=4)
    evaluate(T0 + 5 * MIN)
    (alert,) = idle_rule.alerts.all()
    assert alert.labels["device"] == idle.uuid and alert.team_id == acme.nlp.pk
    assert alert.value == pytest.approx(3.92)


def test_budget_threshold_and_forecast_rules_fire_with_the_crossing_date(
    acme, people, rollups, email
):
    host = rollups.host(acme, "gpu-0", team=acme.nlp, last_seen=T0)
    gpu = rollups.gpu(host)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    for i in range(252):  # May 1 00:00 - May 11 12:00 at 0.25 kWh/h = 63 kWh
        rollups.add(
            acme, start + i * timedelta(hours=1), device=gpu, team=acme.nlp, energy_kwh=0.25
        )
    budget = services.budget_create(
        organisation=acme,
        user=people["nina"],
        team=acme.nlp,
        name="NLP",
        metric="energy_kwh",
        period="month",
        amount=100,
    )
    threshold = rule(acme, RuleKind.BUDGET_THRESHOLD, [email], budget=budget, for_s=0)
    forecast = rule(acme, RuleKind.BUDGET_FORECAST, [email], budget=budget, for_s=0)
    evaluate(T0 + 5 * MIN)
    (crossed,) = threshold.alerts.all()
    assert crossed.labels["threshold"] == "50" and crossed.state == "firing"
    assert "50 % crossed by 2026-05-09 08:00Z" in crossed.summary  # 50 kWh after 200 h = 8 d 8 h
    (coming,) = forecast.alerts.all()
    # 63 + 0.25 x 492 h left = 186 kWh; 100 % at T0 + 37 / 0.25 h = 148 h -> May 17 16:00
    assert coming.value == pytest.approx(186.0)
    assert "100 % reached 2026-05-17 16:00Z" in coming.summary
    assert coming.annotations == {"complete": True}
    assert Notification.objects.filter(event="firing").count() == 2
    mail = Notification.objects.get(rule=threshold)
    assert mail.recipients == ["ops@acme.test"]  # nina has no email address on file


def test_a_budget_rule_with_silent_hosts_holds_instead_of_resolving(acme, people, rollups):
    host = rollups.host(acme, "gpu-0", team=acme.nlp, last_seen=T0 - 3 * timedelta(hours=1))
    gpu = rollups.gpu(host)
    rollups.add(acme, T0 - 4 * timedelta(hours=1), device=gpu, team=acme.nlp, energy_kwh=1.0)
    budget = services.budget_create(
        organisation=acme,
        user=people["alice"],
        team=acme.nlp,
        name="NLP",
        metric="energy_kwh",
        period="month",
        amount=1000,
    )
    threshold = rule(acme, RuleKind.BUDGET_THRESHOLD, budget=budget, for_s=0)
    evaluate(T0)
    assert threshold.alerts.count() == 0  # nothing crossed, nothing fired, but not "fine" either
    status = selectors.budget_status(budget=budget, now=T0)
    assert not status.complete and status.silent_hosts == ("gpu-0",)


def test_a_rule_that_fails_is_recorded_and_the_others_still_run(acme, rollups, monkeypatch):
    from greenkpi.alerts import evaluators

    rollups.host(acme, "gpu-0", last_seen=T0 - 20 * MIN)
    rule(acme, RuleKind.LOW_UTILIZATION, name="broken")
    ok = rule(acme, RuleKind.COLLECTOR_SILENT, for_s=0)

    def boom(rule, now):
        raise ZeroDivisionError("bad maths")

    monkeypatch.setitem(evaluators.EVALUATORS, RuleKind.LOW_UTILIZATION, boom)
    run = evaluate(T0)
    assert (run.status, run.windows_done, run.windows_failed) == ("partial", 1, 1)
    assert "ZeroDivisionError" in AlertRule.objects.get(name="broken").last_error
    assert ok.alerts.get().state == "firing"


def test_a_rule_claimed_by_another_evaluator_is_left_alone(acme, rollups):
    rollups.host(acme, "gpu-0", last_seen=T0 - 20 * MIN)
    busy = rule(acme, RuleKind.COLLECTOR_SILENT, for_s=0)
    AlertRule.objects.filter(pk=busy.pk).update(claimed_until=T0 + MIN, claimed_by="other")
    assert evaluation.rule_evaluate(rule=busy, now=T0).status == "busy"
    assert busy.alerts.count() == 0


def _nlp_budget_rules(acme, people, rollups, email, budgets: int) -> list[AlertRule]:
    """``budgets`` NLP budgets of 100 kWh on 63 kWh used, each with a threshold and a forecast rule."""
    host = rollups.host(acme, "gpu-0", team=acme.nlp, last_seen=T0)
    gpu = rollups.gpu(host)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    for i in range(252):
        rollups.add(
            acme, start + i * timedelta(hours=1), device=gpu, team=acme.nlp, energy_kwh=0.25
        )
    made = []
    for n in range(budgets):
        budget = services.budget_create(
            organisation=acme,
            user=people["nina"],
            team=acme.nlp,
            name=f"NLP {n}",
            metric="energy_kwh",
            period="month",
            amount=100,
        )
        made.append(rule(acme, RuleKind.BUDGET_THRESHOLD, [email], budget=budget, for_s=0))
        made.append(rule(acme, RuleKind.BUDGET_FORECAST, [email], budget=budget, for_s=0))
    return made


def test_a_periodic_run_reads_all_budget_statuses_in_one_batch(
    acme, people, rollups, email, monkeypatch
):
    rules = _nlp_budget_rules(acme, people, rollups, email, budgets=3)
    batches = []
    real_statuses_of = selectors.statuses_of

    def counted(budgets, *, now=None):
        batches.append(len(budgets))
        return real_statuses_of(budgets, now=now)

    def one_by_one(**kwargs):
        raise AssertionError("a budget rule read its own status in a periodic run")

    monkeypatch.setattr(selectors, "statuses_of", counted)
    monkeypatch.setattr(selectors, "budget_status", one_by_one)
    run = evaluate(T0 + 5 * MIN)
    assert batches == [3] and run.windows_done == 6
    assert [r.alerts.get().state for r in rules] == ["firing"] * 6  # 50 % crossed; 186 forecast


def test_when_the_batch_fails_each_budget_rule_reads_its_own_status(
    acme, people, rollups, email, monkeypatch
):
    rules = _nlp_budget_rules(acme, people, rollups, email, budgets=2)
    real_statuses_of = selectors.statuses_of

    def batch_breaks(budgets, *, now=None):
        if len(budgets) > 1:
            raise RuntimeError("batch read failed")
        return real_statuses_of(budgets, now=now)  # budget_status: one budget

    monkeypatch.setattr(selectors, "statuses_of", batch_breaks)
    run = evaluate(T0 + 5 * MIN)
    assert (run.status, run.windows_done) == ("ok", 4)
    values = [r.alerts.get().value for r in rules]
    assert values == [pytest.approx(v) for v in (63.0, 186.0, 63.0, 186.0)]
