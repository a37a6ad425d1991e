"""Budget and alert pages: who sees and does what, forms, the burn-up chart's numbers, CSV, queries.

The story (time pinned at 2026-05-11 00:30 UTC): NLP's host nlp-1 used 0.5 kWh every hour from
May 8 00:00 (72 hourly windows, posted through the ingest API and rolled up); Vision's host
vision-1 used 2 kWh every hour beside it. NLP's May budget is 100 kWh with thresholds 50/80/100 %.

Worked by hand (the young-scope example of docs/alerts.md): consumed = 72 h x 0.5 = 36 kWh (36 %);
the rate window starts at NLP's first data, 72 h -> 0.5 kWh/h = 12 kWh/day; forecast = 36 + 0.5 x
504 h left in May = 288 kWh (288 %); 100 % is reached (100 - 36) / 0.5 = 128 h after May 11 00:00
= May 16 08:00. Burn-up: cumulative 12 kWh at May 9 00:00, 24 at May 10, 36 at May 11; the forecast
runs from (May 11 00:00, 36) to (June 1 00:00, 288).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from greenkpi.alerts import services as alert_services
from greenkpi.alerts.models import Alert, AlertRule, Budget, Silence

NOW = datetime(2026, 5, 11, 0, 30, tzinfo=UTC)
MAY8 = datetime(2026, 5, 8, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pinned(request):
    """Time stands at NOW, except in the browser (Chromium's clock would see the session cookie
    of a pinned server as expired)."""
    if request.node.get_closest_marker("browser"):
        yield
        return
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def history(acme, globex, people, make_batch, post_batch):
    """72 hourly windows per host posted through the API, then rolled up (kpis services)."""
    from greenkpi.inventory.services import token_create
    from greenkpi.kpis import services as kpi_services

    _, nlp_secret = token_create(organisation=acme, name="nlp", default_team=acme.nlp)
    _, vision_secret = token_create(organisation=acme, name="vision", default_team=acme.vision)
    for secret, host, kwh in ((nlp_secret, "nlp-1", 0.5), (vision_secret, "vision-1", 2.0)):
        body = make_batch(
            hostname=host, devices=1, windows=72, window_s=3600, start=MAY8, energy_j=kwh * 3.6e6
        )
        response = post_batch(secret, body)
        assert response.status_code == 201, response.content
    kpi_services.windows_recompute(
        windows=kpi_services.backfill_windows(start=MAY8, end=NOW, organisation_ids=[acme.pk]),
        kind="backfill",
    )


def nlp_budget(acme, people, **kw) -> Budget:
    fields = {"name": "NLP energy", "metric": "energy_kwh", "period": "month", "amount": 100.0}
    return alert_services.budget_create(
        organisation=acme, user=people["nina"], team=acme.nlp, **fields | kw
    )


def org_budget(acme, people) -> Budget:
    return alert_services.budget_create(
        organisation=acme,
        user=people["alice"],
        name="Acme carbon",
        metric="co2e_kg",
        period="quarter",
        amount=5000.0,
    )


def login(client, people, who: str):
    client.force_login(people[who])
    return client


def url(name: str, *args, org: str = "acme") -> str:
    return f"{reverse(f'dashboard:{name}', args=args)}?org={org}"


def budget_rule(acme, people, budget: Budget) -> AlertRule:
    return alert_services.rule_create(
        organisation=acme,
        user=people["alice"],
        name="NLP thresholds" if budget.team_id == acme.nlp.pk else "Budget thresholds",
        kind="budget_threshold",
        budget=budget,
        for_s=0,
    )


def make_alert(
    rule: AlertRule,
    *,
    fired_at: datetime,
    resolved_at: datetime | None = None,
    threshold: int = 50,
) -> Alert:
    """An alert row as the evaluator writes it (the lifecycle itself is tested in tests/alerts)."""
    labels = {
        "rule": str(rule.pk),
        "kind": rule.kind,
        "budget": str(rule.budget_id),
        "threshold": str(threshold),
    }
    return Alert.objects.create(
        organisation=rule.organisation,
        rule=rule,
        team=rule.budget.team,
        fingerprint=f"{rule.pk}-{threshold}-{fired_at:%s}",
        labels=labels,
        state="resolved" if resolved_at else "firing",
        value=36.0,
        summary=f"Budget {rule.budget.name!r}: {threshold} % crossed",
        active_since=fired_at,
        last_active_at=resolved_at or NOW,
        fired_at=fired_at,
        resolved_at=resolved_at,
    )


def firing_alert(acme, people, budget: Budget) -> Alert:
    return make_alert(
        budget_rule(acme, people, budget), fired_at=datetime(2026, 5, 10, 12, tzinfo=UTC)
    )


# --- Who sees which page ---------------------------------------------------------------------

PAGES = ["budgets", "alerts", "budget-create", "alert-rules", "alert-rule-create"]
EXPECTED = {
    # alice: org admin; nina: NLP manager; victor: Vision viewer; gary: Globex admin (other tenant)
    "alice": dict.fromkeys(PAGES, 200),
    "nina": dict.fromkeys(PAGES, 200),
    "victor": {
        "budgets": 200,
        "alerts": 200,
        "budget-create": 404,
        "alert-rules": 404,
        "alert-rule-create": 404,
    },
}


@pytest.mark.parametrize("who", ["alice", "nina", "victor"])
@pytest.mark.parametrize("name", PAGES)
def test_role_by_page_matrix(client, acme, people, who, name):
    response = login(client, people, who).get(url(name))
    assert response.status_code == EXPECTED[who][name]


def test_anonymous_users_are_sent_to_log_in(client, acme):
    response = client.get(url("budgets"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_budget_detail_chart_and_edit_follow_the_team_scope(client, acme, globex, people):
    nlp = nlp_budget(acme, people)
    org = org_budget(acme, people)
    gx = alert_services.budget_create(
        organisation=globex,
        user=people["gary"],
        name="Globex",
        metric="gpu_h",
        period="year",
        amount=10.0,
    )
    cases = [
        # (who, budget, detail, edit)
        ("alice", nlp, 200, 200),
        ("alice", org, 200, 200),
        ("nina", nlp, 200, 200),
        ("nina", org, 404, 404),  # organisation budgets count other teams' use
        ("victor", nlp, 404, 404),  # another team's budget does not exist for him
        ("alice", gx, 404, 404),  # another tenant's
    ]
    for who, budget, detail, edit in cases:
        client.force_login(people[who])
        assert client.get(url("budget-detail", budget.pk)).status_code == detail, (who, budget)
        assert client.get(url("budget-chart", budget.pk, "json")).status_code == detail
        assert client.get(url("budget-chart", budget.pk, "csv")).status_code == detail
        assert client.get(url("budget-edit", budget.pk)).status_code == edit, (who, budget)


# --- The list and the burn-up chart: hand-worked numbers ---------------------------------------


def test_the_list_shows_consumption_forecast_method_crossing_and_status(
    client, people, history, acme
):
    nlp_budget(acme, people)
    body = login(client, people, "nina").get(url("budgets")).content.decode()
    assert "NLP energy" in body
    assert "36.0 kWh" in body  # consumed (three significant digits, docs/kpis.md)
    assert "36.0 %" in body
    assert "288 kWh" in body  # forecast
    assert "288.0 %" in body
    assert "recent rate: trailing 72 h, 12 kWh/day" in body
    assert "2026-05-16 08:00" in body  # predicted 100 % crossing
    assert "Forecast over" in body  # amber: forecast over the amount, not yet used up
    assert "New budget" in body


def test_a_viewer_sees_the_list_without_new_or_edit(client, people, history, acme):
    budget = alert_services.budget_create(
        organisation=acme,
        user=people["alice"],
        team=acme.vision,
        name="Vision energy",
        metric="energy_kwh",
        period="month",
        amount=100.0,
    )
    body = login(client, people, "victor").get(url("budgets")).content.decode()
    # Vision: 72 h x 2 kWh = 144 kWh of 100: over budget since May 10 02:00 (50 h x 2 = 100).
    assert "Vision energy" in body and "144 kWh" in body and "Over budget" in body
    assert "NLP" not in body
    assert "New budget" not in body
    assert reverse("dashboard:budget-edit", args=[budget.pk]) not in body


def test_burn_chart_json_has_consumption_budget_thresholds_and_forecast(
    client, people, history, acme
):
    budget = nlp_budget(acme, people)
    response = login(client, people, "nina").get(url("budget-chart", budget.pk, "json"))
    assert response.status_code == 200
    figure = orjson.loads(response.content)
    traces = {t["name"]: t for t in figure["data"]}
    assert set(traces) == {
        "Consumed",
        "Forecast (recent rate)",
        "Budget (100 %)",
        "50 % threshold",
        "80 % threshold",
        "Predicted 100 % crossing",
    }
    consumed = _decode(traces["Consumed"]["y"])
    # May 1 00:00 (start), day ends May 2 .. May 8 (nothing used yet), May 9, 10, 11.
    assert consumed == pytest.approx([0.0] * 8 + [12.0, 24.0, 36.0])
    days = _decode(traces["Consumed"]["x"])
    by_day = dict(zip(days, consumed, strict=True))
    assert by_day[_ms(datetime(2026, 5, 9, tzinfo=UTC))] == pytest.approx(12.0)
    assert by_day[_ms(datetime(2026, 5, 10, tzinfo=UTC))] == pytest.approx(24.0)
    assert by_day[_ms(datetime(2026, 5, 11, tzinfo=UTC))] == pytest.approx(36.0)
    assert by_day[_ms(datetime(2026, 5, 8, tzinfo=UTC))] == pytest.approx(0.0)
    forecast = traces["Forecast (recent rate)"]
    assert _decode(forecast["x"]) == [
        _ms(datetime(2026, 5, 11, tzinfo=UTC)),
        _ms(datetime(2026, 6, 1, tzinfo=UTC)),
    ]
    assert _decode(forecast["y"]) == pytest.approx([36.0, 288.0])
    assert forecast["line"]["dash"] == "dash"
    assert _decode(traces["Budget (100 %)"]["y"]) == pytest.approx([100.0, 100.0])
    assert _decode(traces["50 % threshold"]["y"]) == pytest.approx([50.0, 50.0])
    assert _decode(traces["80 % threshold"]["y"]) == pytest.approx([80.0, 80.0])
    crossing = traces["Predicted 100 % crossing"]
    assert _decode(crossing["x"]) == [_ms(datetime(2026, 5, 16, 8, tzinfo=UTC))]
    layout = figure["layout"]
    assert layout["yaxis"]["title"]["text"] == "Cumulative consumption (kWh)"
    assert layout["xaxis"]["title"]["text"] == "Day (UTC)"
    assert layout["xaxis"]["range"] == ["2026-05-01T00:00:00", "2026-06-01T00:00:00"]


def test_a_weekday_profile_forecast_names_its_method_and_daily_values(
    client, people, history, acme
):
    # Forced profile: May 8-10 (Fri, Sat, Sun) used 12 kWh each; the other weekdays have no whole
    # day yet and fall back to the recent rate, 12 kWh/day: forecast 36 + 21 days x 12 = 288 kWh.
    budget = nlp_budget(acme, people, forecast_method="weekday_profile")
    login(client, people, "nina")
    body = client.get(url("budgets")).content.decode()
    days = ", ".join(f"{d} 12" for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
    assert f"weekday profile (4-week mean): {days} kWh/day" in body
    figure = orjson.loads(client.get(url("budget-chart", budget.pk, "json")).content)
    forecast = next(t for t in figure["data"] if t["name"] == "Forecast (weekday profile)")
    assert _decode(forecast["y"]) == pytest.approx([36.0, 288.0])


def test_firing_intervals_are_shaded_on_the_chart(client, people, history, acme):
    budget = nlp_budget(acme, people, amount=60.0)  # 36 kWh used: 50 % (30 kWh) crossed
    rule = budget_rule(acme, people, budget)
    # 50 % of 60 kWh = 30 kWh = 60 h x 0.5 kWh: crossed at the end of May 10 11:00, still firing.
    make_alert(rule, fired_at=datetime(2026, 5, 10, 12, tzinfo=UTC))
    make_alert(  # an earlier episode, resolved
        rule,
        fired_at=datetime(2026, 5, 9, tzinfo=UTC),
        resolved_at=datetime(2026, 5, 9, 6, tzinfo=UTC),
        threshold=80,
    )
    make_alert(  # last month's: outside the period, not drawn
        rule,
        fired_at=datetime(2026, 4, 20, tzinfo=UTC),
        resolved_at=datetime(2026, 4, 21, tzinfo=UTC),
        threshold=100,
    )
    response = login(client, people, "nina").get(url("budget-chart", budget.pk, "json"))
    figure = orjson.loads(response.content)
    rects = [(s["x0"], s["x1"]) for s in figure["layout"]["shapes"] if s["type"] == "rect"]
    assert rects == [
        ("2026-05-09T00:00:00", "2026-05-09T06:00:00"),
        ("2026-05-10T12:00:00", "2026-05-11T00:30:00"),  # open: shaded until now
    ]
    # 100 % (60 kWh) is 24 kWh away at 0.5 kWh/h: 48 h after May 11 00:00 -> May 13 00:00.
    crossing = next(t for t in figure["data"] if t["name"] == "Predicted 100 % crossing")
    assert _decode(crossing["x"]) == [_ms(datetime(2026, 5, 13, tzinfo=UTC))]
    assert _decode(crossing["y"]) == pytest.approx([60.0])
    lines = [s for s in figure["layout"]["shapes"] if s["type"] == "line"]
    assert [s["x0"] for s in lines] == ["2026-05-13T00:00:00"]


def test_burn_csv_is_the_same_frame_with_units(client, people, history, acme):
    budget = nlp_budget(acme, people)
    response = login(client, people, "nina").get(url("budget-chart", budget.pk, "csv"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="budget-' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == [
        "time_utc",
        "day_consumed",
        "cumulative",
        "forecast_cumulative",
        "budget",
        "threshold_50pct",
        "threshold_80pct",
        "threshold_100pct",
        "unit",
    ]
    by_time = {r["time_utc"]: r for r in rows}
    assert float(by_time["2026-05-09T00:00:00Z"]["day_consumed"]) == pytest.approx(12.0)
    assert float(by_time["2026-05-11T00:00:00Z"]["cumulative"]) == pytest.approx(36.0)
    assert float(by_time["2026-05-11T00:00:00Z"]["forecast_cumulative"]) == pytest.approx(36.0)
    assert float(by_time["2026-06-01T00:00:00Z"]["forecast_cumulative"]) == pytest.approx(288.0)
    assert by_time["2026-06-01T00:00:00Z"]["cumulative"] == ""
    assert {r["unit"] for r in rows} == {"kWh"}
    assert float(rows[0]["threshold_80pct"]) == pytest.approx(80.0)


def test_detail_page_shows_figures_chart_panel_and_recent_alerts(client, people, history, acme):
    budget = nlp_budget(acme, people, amount=60.0)
    firing_alert(acme, people, budget)
    body = login(client, people, "nina").get(url("budget-detail", budget.pk)).content.decode()
    assert f'data-figure-url="/budgets/{budget.pk}/burn.json?org=acme"' in body
    assert f"/budgets/{budget.pk}/burn.csv?org=acme" in body
    assert "36.0 kWh" in body and "60.0 %" in body  # 36 of 60 kWh
    assert "NLP thresholds" in body and "firing" in body


# --- Create and edit ---------------------------------------------------------------------------

VALID = {
    "name": "NLP GPU time",
    "scope": "team",
    "team": "",  # filled per test
    "model_key": "",
    "metric": "gpu_h",
    "period": "month",
    "amount": "500",
    "currency": "",
    "thresholds": "50, 80, 100",
    "forecast_method": "auto",
}


def test_a_team_manager_creates_a_budget_then_is_redirected_to_it(client, people, acme):
    login(client, people, "nina")
    response = client.post(url("budget-create"), {**VALID, "team": acme.nlp.pk, "org": "acme"})
    budget = Budget.objects.get(name="NLP GPU time")
    assert response.status_code == 302
    assert response["Location"] == url("budget-detail", budget.pk)
    assert (budget.team, budget.scope, budget.metric, budget.amount) == (
        acme.nlp,
        "team",
        "gpu_h",
        500.0,
    )
    assert budget.thresholds_pct == [50, 80, 100] and budget.created_by == people["nina"]


def test_a_team_manager_budgets_one_of_the_teams_models(client, people, acme):
    from greenkpi.workloads.models import MLModel

    MLModel.objects.create(team=acme.nlp, key="bert-nlp")
    MLModel.objects.create(team=acme.vision, key="resnet")
    login(client, people, "nina")
    form_page = client.get(url("budget-create")).content.decode()
    assert 'value="bert-nlp"' in form_page and "resnet" not in form_page  # only her team's models
    model = {**VALID, "scope": "model", "team": acme.nlp.pk, "org": "acme"}
    refused = client.post(url("budget-create"), {**model, "model_key": "resnet"})
    assert refused.status_code == 400 and not Budget.objects.exists()
    no_team = client.post(url("budget-create"), {**model, "team": "", "model_key": "bert-nlp"})
    assert no_team.status_code == 400 and not Budget.objects.exists()
    response = client.post(url("budget-create"), {**model, "model_key": "bert-nlp"})
    assert response.status_code == 302
    budget = Budget.objects.get()
    assert (budget.scope, budget.team, budget.model_key) == ("model", acme.nlp, "bert-nlp")
    assert "bert-nlp" in client.get(url("budgets")).content.decode()
    login(client, people, "victor")
    assert client.get(url("budget-detail", budget.pk)).status_code == 404


def test_an_org_admin_creates_organisation_model_and_cost_budgets(client, people, acme):
    login(client, people, "alice")
    for extra in (
        {"scope": "organisation", "name": "Org"},
        {"scope": "model", "model_key": "bert", "name": "Bert"},
        {"scope": "organisation", "metric": "cost", "currency": "eur", "name": "Money"},
    ):
        response = client.post(url("budget-create"), {**VALID, **extra})
        assert response.status_code == 302, response.content.decode()
    assert Budget.objects.get(name="Org").scope == "organisation"
    assert Budget.objects.get(name="Bert").model_key == "bert"
    assert Budget.objects.get(name="Money").currency == "EUR"


INVALID = [
    ({"amount": "0"}, "amount", "positive"),
    ({"amount": "-5"}, "amount", "positive"),
    ({"amount": "lots"}, "amount", "Enter a number"),
    ({"amount": "nan"}, "amount", "Enter a number"),
    ({"thresholds": "80, 50"}, "thresholds", "ascending"),
    ({"thresholds": "50, 50"}, "thresholds", "ascending"),
    ({"thresholds": "0, 50"}, "thresholds", "between 1 and 200"),
    ({"thresholds": "50, 250"}, "thresholds", "between 1 and 200"),
    ({"thresholds": "half"}, "thresholds", "whole percents"),
    ({"thresholds": ""}, "thresholds", "required"),
    ({"name": ""}, "name", "required"),
    ({"team": ""}, "team", "Choose the team"),
    ({"metric": "cost"}, "currency", "needs its currency"),
    ({"metric": "cost", "currency": "EURO"}, "currency", "at most 3"),
    ({"metric": "cost", "currency": "E1"}, "currency", "Three letters"),
    ({"metric": "watts"}, "metric", "valid choice"),
    ({"period": "week"}, "period", "valid choice"),
    ({"scope": "organisation"}, "scope", "valid choice"),  # a team manager cannot
]


@pytest.mark.parametrize(("change", "field", "message"), INVALID)
def test_invalid_budgets_are_refused_inline(client, people, acme, change, field, message):
    login(client, people, "nina")
    response = client.post(url("budget-create"), {**VALID, "team": acme.nlp.pk, **change})
    assert response.status_code == 400
    form = response.context["form"]
    assert field in form.errors, form.errors
    assert message in " ".join(form.errors[field])
    assert message.split()[0] in response.content.decode()  # shown on the page
    assert not Budget.objects.exists()


def test_a_model_budget_needs_its_model_key(client, people, acme):
    login(client, people, "alice")
    response = client.post(url("budget-create"), {**VALID, "scope": "model", "model_key": " "})
    assert response.status_code == 400
    assert "Give the model key" in " ".join(response.context["form"].errors["model_key"])
    assert not Budget.objects.exists()


def test_a_team_manager_cannot_name_another_team(client, people, acme):
    login(client, people, "nina")
    response = client.post(url("budget-create"), {**VALID, "team": acme.vision.pk})
    assert response.status_code == 400 and "team" in response.context["form"].errors
    assert not Budget.objects.exists()


def test_a_viewer_cannot_create_or_edit(client, people, acme):
    budget = alert_services.budget_create(
        organisation=acme,
        user=people["alice"],
        team=acme.vision,
        name="Vision",
        metric="energy_kwh",
        period="month",
        amount=10.0,
    )
    login(client, people, "victor")
    assert client.post(url("budget-create"), {**VALID, "team": acme.vision.pk}).status_code == 404
    assert client.post(url("budget-edit", budget.pk), {**VALID, "amount": "1"}).status_code == 404
    budget.refresh_from_db()
    assert budget.amount == 10.0 and Budget.objects.count() == 1


def test_edit_changes_amount_period_and_thresholds_not_scope(client, people, acme):
    budget = nlp_budget(acme, people)
    login(client, people, "nina")
    form_page = client.get(url("budget-edit", budget.pk))
    assert form_page.status_code == 200 and 'value="NLP energy"' in form_page.content.decode()
    response = client.post(
        url("budget-edit", budget.pk),
        {
            **VALID,
            "name": "NLP energy",
            "amount": "250",
            "period": "quarter",
            "thresholds": "25, 75, 100, 120",
            "scope": "organisation",
            "metric": "cost",
        },
    )
    assert response.status_code == 302 and response["Location"] == url("budget-detail", budget.pk)
    budget.refresh_from_db()
    assert (budget.amount, budget.period, budget.thresholds_pct) == (
        250.0,
        "quarter",
        [25, 75, 100, 120],
    )
    assert (budget.scope, budget.metric, budget.team_id) == ("team", "energy_kwh", acme.nlp.pk)
    bad = client.post(url("budget-edit", budget.pk), {**VALID, "amount": "-1"})
    assert bad.status_code == 400 and "positive" in bad.content.decode()


def test_delete_is_a_post_by_the_budgets_managers(client, people, acme):
    budget = nlp_budget(acme, people)
    login(client, people, "victor")
    assert client.post(url("budget-delete", budget.pk)).status_code == 404
    login(client, people, "nina")
    assert client.get(url("budget-delete", budget.pk)).status_code == 405
    response = client.post(url("budget-delete", budget.pk))
    assert response.status_code == 302 and response["Location"] == url("budgets")
    assert not Budget.objects.exists()


def test_forms_need_the_csrf_token(people, acme):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(people["nina"])
    response = strict.post(url("budget-create"), {**VALID, "team": acme.nlp.pk})
    assert response.status_code == 403
    assert "csrfmiddlewaretoken" in strict.get(url("budget-create")).content.decode()


# --- Alert rules -------------------------------------------------------------------------------


def test_a_team_manager_creates_and_edits_a_low_utilization_rule(client, people, acme):
    login(client, people, "nina")
    data = {
        "name": "NLP idle",
        "kind": "low_utilization",
        "enabled": "on",
        "team": acme.nlp.pk,
        "floor_pct": "25",
        "window_h": "12",
        "idle_hours": "4",
        "silent_minutes": "15",
        "for_minutes": "10",
        "no_data": "ok",
    }
    response = client.post(url("alert-rule-create"), data)
    assert response.status_code == 302 and response["Location"] == url("alert-rules")
    rule = AlertRule.objects.get(name="NLP idle")
    assert rule.no_data == "ok"
    assert (rule.team, rule.utilization_floor, rule.utilization_window_h, rule.for_s) == (
        acme.nlp,
        0.25,
        12,
        600,
    )
    assert "NLP idle" in client.get(url("alert-rules")).content.decode()
    response = client.post(url("alert-rule-edit", rule.pk), {**data, "floor_pct": "40"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.utilization_floor == pytest.approx(0.40)
    # Every team is for organisation managers; another team's rule is invisible.
    assert client.post(url("alert-rule-create"), {**data, "team": ""}).status_code == 400
    other = alert_services.rule_create(
        organisation=acme,
        user=people["alice"],
        name="Vision idle",
        kind="idle_gpu",
        team=acme.vision,
    )
    assert client.get(url("alert-rule-edit", other.pk)).status_code == 404


def test_budget_rules_need_a_budget_and_channels_of_the_organisation(client, people, acme):
    budget = nlp_budget(acme, people)
    channel = alert_services.channel_create(
        organisation=acme, user=people["alice"], name="ops mail", kind="email", addresses=["o@x.io"]
    )
    login(client, people, "alice")
    data = {
        "name": "B",
        "kind": "budget_forecast",
        "enabled": "on",
        "floor_pct": "30",
        "window_h": "24",
        "idle_hours": "4",
        "silent_minutes": "15",
        "for_minutes": "5",
        "no_data": "nodata",
    }
    missing = client.post(url("alert-rule-create"), data)
    assert missing.status_code == 400 and "budget" in missing.context["form"].errors
    ok = client.post(
        url("alert-rule-create"), {**data, "budget": budget.pk, "channels": [channel.pk]}
    )
    assert ok.status_code == 302
    rule = AlertRule.objects.get(name="B")
    assert rule.budget == budget and list(rule.channels.all()) == [channel]


# --- Alerts: list, acknowledge, silence ---------------------------------------------------------


def test_alerts_page_lists_open_alerts_and_only_managers_may_act(client, people, history, acme):
    budget = nlp_budget(acme, people, amount=60.0)
    alert = firing_alert(acme, people, budget)
    body = login(client, people, "nina").get(url("alerts")).content.decode()
    assert "NLP thresholds" in body and "threshold=50" in body and "Acknowledge" in body
    assert reverse("dashboard:alert-ack", args=[alert.pk]) in body
    # Victor (Vision viewer) does not see NLP's alert at all; acting on it is a 404.
    body = login(client, people, "victor").get(url("alerts")).content.decode()
    assert "NLP thresholds" not in body
    assert client.post(url("alert-ack", alert.pk)).status_code == 404
    assert client.post(url("alert-silence", alert.pk), {"duration": "1h"}).status_code == 404


def test_no_data_alerts_are_open_alerts(client, people, acme):
    budget = nlp_budget(acme, people)
    alert = make_alert(budget_rule(acme, people, budget), fired_at=NOW - timedelta(hours=2))
    Alert.objects.filter(pk=alert.pk).update(state="nodata", fired_at=None)
    body = login(client, people, "nina").get(url("alerts")).content.decode()
    assert "Open alerts (1)" in body and 'class="a-state a-nodata">nodata' in body
    assert "2 h 0 min" in body  # open since active_since


def test_a_viewer_sees_his_teams_alert_but_cannot_act(client, people, history, acme):
    budget = alert_services.budget_create(
        organisation=acme,
        user=people["alice"],
        team=acme.vision,
        name="Vision energy",
        metric="energy_kwh",
        period="month",
        amount=100.0,
    )
    alert = firing_alert(acme, people, budget)
    login(client, people, "victor")
    body = client.get(url("alerts")).content.decode()
    assert "Vision energy" in body and reverse("dashboard:alert-ack", args=[alert.pk]) not in body
    assert client.post(url("alert-ack", alert.pk)).status_code == 403
    assert client.post(url("alert-silence", alert.pk), {"duration": "1h"}).status_code == 403
    alert.refresh_from_db()
    assert alert.acknowledged_at is None and not Silence.objects.exists()


def test_a_manager_acknowledges_with_post_redirect_get(client, people, history, acme):
    alert = firing_alert(acme, people, nlp_budget(acme, people, amount=60.0))
    login(client, people, "nina")
    assert client.get(url("alert-ack", alert.pk)).status_code == 405
    response = client.post(url("alert-ack", alert.pk))
    assert response.status_code == 302 and response["Location"] == url("alerts")
    alert.refresh_from_db()
    assert alert.acknowledged_by == people["nina"] and alert.acknowledged_at == NOW
    assert "acknowledged by nina" in client.get(url("alerts")).content.decode()


def test_a_manager_silences_one_alert_or_its_rule(client, people, history, acme):
    alert = firing_alert(acme, people, nlp_budget(acme, people, amount=60.0))
    login(client, people, "nina")
    response = client.post(url("alert-silence", alert.pk), {"duration": "4h", "comment": "known"})
    assert response.status_code == 302
    silence = Silence.objects.get()
    assert silence.matchers == alert.labels and silence.ends_at == NOW + timedelta(hours=4)
    assert silence.matches(alert.labels) and silence.created_by == people["nina"]
    response = client.post(url("alert-silence", alert.pk), {"duration": "1d", "whole_rule": "on"})
    rule_wide = Silence.objects.order_by("-pk").first()
    assert rule_wide.matchers == {"rule": alert.labels["rule"], "budget": alert.labels["budget"]}
    listing = client.get(url("alerts")).content.decode()
    assert "known" in listing and "2026-05-11 04:30" in listing
    bad = client.post(url("alert-silence", alert.pk), {"duration": "forever"})
    assert bad.status_code == 400 and Silence.objects.count() == 2


def test_a_rule_that_fails_to_evaluate_is_shown_to_its_team_only(client, people, acme):
    budget = nlp_budget(acme, people)
    rule = budget_rule(acme, people, budget)
    AlertRule.objects.filter(pk=rule.pk).update(
        last_error="OperationalError: boom", last_evaluated_at=NOW
    )
    body = login(client, people, "nina").get(url("alerts")).content.decode()
    assert "could not be evaluated" in body and "OperationalError: boom" in body
    assert "OperationalError: boom" in client.get(url("alert-rules")).content.decode()
    body = login(client, people, "victor").get(url("alerts")).content.decode()
    assert "could not be evaluated" not in body


# --- Queries stay bounded ------------------------------------------------------------------------


def test_the_budgets_list_costs_the_same_queries_for_1_or_10_budgets(client, people, history, acme):
    login(client, people, "alice")
    nlp_budget(acme, people)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url("budgets")).status_code == 200
    nlp = acme.teams.get(slug="nlp")
    for i in range(9):  # every scope kind, so every batched source is read
        scope = [
            {"team": nlp},
            {"model_key": "bert"},
            {"team": nlp, "model_key": "bert"},
            {},
        ][i % 4]
        alert_services.budget_create(
            organisation=acme,
            user=people["alice"],
            name=f"more {i}",
            metric="energy_kwh",
            period=["month", "quarter", "year"][i % 3],
            amount=100.0,
            **scope,
        )
    with CaptureQueriesContext(connection) as ten:
        assert client.get(url("budgets")).status_code == 200
    # One budget reads only the team sources; ten read every source kind (organisation, team and
    # model keys: at most 2 daily + 2 hourly + the first-hour query more), never per budget.
    assert len(ten) - len(one) <= 3, [q["sql"] for q in ten.captured_queries]
    assert len(ten) <= 16, [q["sql"] for q in ten.captured_queries]
    budget = Budget.objects.first()
    with CaptureQueriesContext(connection) as chart:
        client.get(url("budget-chart", budget.pk, "json"))
    assert len(chart) <= 12
    with CaptureQueriesContext(connection) as alerts_page:
        client.get(url("alerts"))
    assert len(alerts_page) <= 10


def _decode(value):
    """A figure array as Python numbers (Plotly typed arrays are base64 little-endian)."""
    import base64

    import numpy as np

    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype="<" + value["dtype"]).tolist()
    return list(value)


def _ms(moment: datetime) -> float:
    return moment.timestamp() * 1000


# --- In a real browser -------------------------------------------------------------------------

from dashboard.test_browser import (  # noqa: E402  (fixtures and helpers shared with that module)
    browser,  # noqa: F401
    chart_traces,
    log_in,
    page,  # noqa: F401
    shoot,
)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_manager_creates_a_budget_sees_its_chart_and_acknowledges_an_alert(
    page,  # noqa: F811
    live_server,
    acme,
    people,
    make_batch,
    post_batch,
):
    from greenkpi.inventory.services import token_create

    _, secret = token_create(organisation=acme, name="nlp", default_team=acme.nlp)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    body = make_batch(hostname="nlp-1", devices=1, windows=6, window_s=3600, start=start)
    assert post_batch(secret, body).status_code == 201
    from greenkpi.kpis import services as kpi_services

    kpi_services.windows_recompute(
        windows=kpi_services.backfill_windows(
            start=start, end=datetime.now(UTC), organisation_ids=[acme.pk]
        ),
        kind="backfill",
    )

    log_in(page, live_server, "nina", people["password"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Budgets").click()
    page.get_by_role("link", name="New budget").click()
    page.get_by_label("Name", exact=True).fill("NLP energy")
    page.get_by_label("Team", exact=True).select_option(label="NLP")
    page.get_by_label("Amount").fill("-3")
    page.get_by_role("button", name="Create budget").click()
    assert page.locator(".has-error").get_by_text("positive number").is_visible()
    shoot(page, "budget-form-error")
    page.get_by_label("Amount").fill("100")
    page.get_by_role("button", name="Create budget").click()
    budget = Budget.objects.get(name="NLP energy")
    page.wait_for_url(f"**/budgets/{budget.pk}/?org=acme")
    traces = chart_traces(page, "budget-burn")
    assert {"Consumed", "Budget (100 %)", "50 % threshold", "80 % threshold"} <= set(traces)
    assert page.locator("#budget-burn .ytitle").text_content() == "Cumulative consumption (kWh)"
    shoot(page, "budget-detail")

    page.get_by_role("link", name="Budgets", exact=True).first.click()
    row = page.locator(f"tr[data-budget='{budget.pk}']")
    assert "NLP energy" in row.inner_text() and "kWh" in row.inner_text()
    shoot(page, "budgets")

    alert = make_alert(
        budget_rule(acme, people, budget), fired_at=datetime.now(UTC) - timedelta(hours=1)
    )
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    alert_row = page.locator(f"tr[data-alert='{alert.pk}']")
    alert_row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector(f"tr[data-alert='{alert.pk}'] >> text=acknowledged by nina")
    alert.refresh_from_db()
    assert alert.acknowledged_by == people["nina"]
    shoot(page, "alerts")
    page.goto(f"{live_server.url}/budgets/{budget.pk}/?org=acme")
    chart_traces(page, "budget-burn")
    shaded = page.evaluate("document.getElementById('budget-burn').layout.shapes.length")
    assert shaded >= 1  # the firing interval
    shoot(page, "budget-detail-alert")


def test_the_team_pages_compute_only_their_teams_budgets(client, people, history, acme):
    """Teams and a team's page show team and team-model budgets: an organisation budget (the
    costliest read, a whole year of days for a year budget) is neither shown nor computed."""
    from greenkpi.dashboard.budgets import selectors as budget_selectors
    from greenkpi.inventory.access import scope_for

    nlp = nlp_budget(acme, people)
    org_budget(acme, people)
    scope = scope_for(people["alice"], "acme")
    assert [r.budget.pk for r in budget_selectors.budget_rows(scope, team_ids=[acme.nlp.pk])] == [
        nlp.pk
    ]
    assert budget_selectors.budget_rows(scope, team_ids=[acme.vision.pk]) == []
    assert len(budget_selectors.budget_rows(scope)) == 2  # the budgets page: every budget
    for address in (url("teams"), f"{reverse('dashboard:team', args=[acme.nlp.pk])}?org=acme"):
        body = login(client, people, "alice").get(address).content.decode()
        assert "NLP energy" in body and "Acme carbon" not in body, address
