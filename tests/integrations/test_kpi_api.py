"""The KPI read API (/api/v1/kpis/series/, budgets, alerts, rules) against hand-summed rollups:
who sees what, the bounds (400 naming the parameter), the cursor, and personal access tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from greenkpi.alerts import services as alert_services
from greenkpi.alerts.models import Alert, AlertRule

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 17, 12, 20, tzinfo=UTC)
DAY = datetime(2026, 11, 16, tzinfo=UTC)
SERIES = "/api/v1/kpis/series/"


@pytest.fixture
def world(acme, globex, people, rollups):
    """Acme: vision's resnet (run r1, then r2) on gpu-a, nlp's bert on gpu-b, an hour of no team;
    Globex: research. Each row 1 kWh unless said; CO2e and cost differ so mixing them up shows."""
    a = rollups.gpu(acme, "gpu-a")
    b = rollups.gpu(acme, "gpu-b")
    g = rollups.gpu(globex, "globex-1")
    for h in range(3):
        rollups.add(
            acme,
            DAY + timedelta(hours=h),
            device=a,
            team=acme.vision,
            model_key="resnet",
            run_key="r1" if h < 2 else "r2",
            energy_kwh=2.0,
            location_kg=0.1,
            market_kg=0.05,
            embodied_kg=0.01,
            cost=0.4,
            currency="EUR",
        )
    rollups.add(acme, DAY + timedelta(hours=1), device=b, team=acme.nlp, model_key="bert")
    rollups.add(acme, DAY + timedelta(days=1, hours=2), device=b, team=acme.nlp, model_key="bert")
    rollups.add(acme, DAY + timedelta(hours=5), device=b, team=None, energy_kwh=7.0)
    rollups.add(globex, DAY, device=g, team=globex.research, energy_kwh=100.0)
    return {"a": a, "b": b}


def get(client, url, **params):
    with time_machine.travel(NOW, tick=False):
        return client.get(url, params, **params.pop("headers", {}))


def series(client, headers=None, **params):
    params.setdefault("from", "2026-11-16")
    params.setdefault("to", "2026-11-18")
    with time_machine.travel(NOW, tick=False):
        return client.get(SERIES, params, **(headers or {}))


def test_series_per_team_and_day_are_the_sums_of_the_rows(client, world, people):
    client.force_login(people["alice"])
    response = series(client, by="team")
    assert response.status_code == 200, response.content
    rows = {(r["start"][:10], r["team"]): r for r in response.json()["results"]}
    # vision: 3 x 2 kWh on the 16th; nlp: 1 on each day; no team: 7 on the 16th (org-wide admin)
    assert {k: r["energy_kwh"] for k, r in rows.items()} == {
        ("2026-11-16", "vision"): 6.0,
        ("2026-11-16", "nlp"): 1.0,
        ("2026-11-16", None): 7.0,
        ("2026-11-17", "nlp"): 1.0,
    }
    vision = rows[("2026-11-16", "vision")]
    assert vision["co2e_kg"] == pytest.approx(
        {"scope2_location": 0.3, "scope2_market": 0.15, "embodied": 0.03, "total": 0.33}
    )
    assert vision["cost"] == pytest.approx({"EUR": 1.2})
    assert vision["gpu_hours"] == {"allocated": 3.0, "busy": 1.5, "idle": 0.75}
    assert vision["utilization"] == pytest.approx(0.5)
    assert vision["idle_waste"]["gpu_hours"] == 0.75
    assert vision["idle_waste"]["energy_kwh"] == pytest.approx(1.5)
    assert vision["end"].startswith("2026-11-17T00:00:00")


def test_series_per_run_per_hour_and_per_month(client, world, people):
    client.force_login(people["alice"])
    hourly = series(
        client, by="run", resolution="hour", team="vision", **{"from": "2026-11-16T00:00:00Z"}
    ).json()["results"]
    assert [(r["start"][11:13], r["model"], r["run"], r["energy_kwh"]) for r in hourly] == [
        ("00", "resnet", "r1", 2.0),
        ("01", "resnet", "r1", 2.0),
        ("02", "resnet", "r2", 2.0),
    ]
    monthly = series(client, resolution="month", **{"from": "2026-11-01", "to": "2026-12-01"})
    (month,) = monthly.json()["results"]
    assert month["start"].startswith("2026-11-01") and month["end"].startswith("2026-12-01")
    assert month["energy_kwh"] == 6.0 + 2.0 + 7.0  # Globex's 100 kWh never
    hosts = series(client, by="host", host="gpu-b").json()["results"]
    assert {(r["host"], r["energy_kwh"]) for r in hosts} == {("gpu-b", 8.0), ("gpu-b", 1.0)}


def test_a_team_member_sees_only_their_teams(client, world, people):
    client.force_login(people["victor"])  # vision viewer
    rows = series(client, by="team").json()["results"]
    assert {r["team"] for r in rows} == {"vision"}
    total = series(client).json()["results"]
    assert [r["energy_kwh"] for r in total] == [6.0]  # no other team, no teamless hour
    assert series(client, team="nlp").status_code == 404
    assert series(client, team="research").status_code == 404  # another organisation's
    assert series(client, team="no-such").status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": ""}, "from"),
        ({"to": "2027-11-18"}, "to"),  # 367 days
        ({"resolution": "hour", "to": "2026-12-18"}, "to"),  # 32 days of hours
        ({"from": "2026-11-16T10:30:00Z", "resolution": "hour"}, "from"),  # not a whole hour
        ({"from": "2026-11-16T10:00:00", "resolution": "hour"}, "from"),  # no zone
        ({"resolution": "month"}, "from"),  # not a month start
        ({"to": "2026-11-15"}, "to"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"by": "device"}, "by"),
        ({"cursor": "bm9wZQ"}, "cursor"),
    ],
)
def test_unbounded_or_bad_queries_are_a_400_naming_the_parameter(
    client, world, people, params, field
):
    client.force_login(people["alice"])
    response = series(client, **params)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert [e["pointer"] for e in response.json()["errors"]] == [f"/{field}"]


def test_the_cursor_walks_every_row_once(client, world, people):
    client.force_login(people["alice"])
    everything = series(client, by="run", resolution="hour").json()["results"]
    assert len(everything) == 6
    seen, url = [], None
    while True:
        if url is None:
            page = series(client, by="run", resolution="hour", limit=2).json()
        else:
            with time_machine.travel(NOW, tick=False):
                page = client.get(url).json()
        seen += page["results"]
        assert len(page["results"]) <= 2
        url = page["next"]
        if url is None:
            break
    assert seen == everything


def test_tokens_read_write_collector_and_revoked(client, world, people, pat, auth, acme_token):
    from greenkpi.integrations.models import PersonalAccessToken

    read = pat(people["alice"], world["a"].host.organisation)
    assert read.startswith("gkp_")
    assert not PersonalAccessToken.objects.filter(secret_hash__contains=read[13:40]).exists()
    assert series(client, auth(read)).status_code == 200
    assert series(client, auth(acme_token[1])).status_code == 401  # a collector token
    assert series(client, auth("gkp_" + "x" * 47)).status_code == 401
    assert series(client, auth(read), org="globex").status_code == 404
    PersonalAccessToken.objects.update(revoked_at=datetime(2026, 11, 1, tzinfo=UTC))
    assert series(client, auth(read)).status_code == 401


def test_an_expired_token_is_refused(client, world, people, pat, auth, acme):
    with time_machine.travel(NOW, tick=False):
        short = pat(people["alice"], acme, days=1)
    assert series(client, auth(short)).status_code == 200
    with time_machine.travel(NOW + timedelta(days=2), tick=False):
        later = client.get(SERIES, {"from": "2026-11-16", "to": "2026-11-18"}, **auth(short))
    assert later.status_code == 401


def test_a_token_narrowed_to_a_team_sees_that_team_only(client, world, people, pat, auth, acme):
    token = pat(people["alice"], acme, teams=[acme.nlp])
    rows = series(client, auth(token), by="team").json()["results"]
    assert {r["team"] for r in rows} == {"nlp"}
    assert series(client, auth(token), team="vision").status_code == 404


@pytest.fixture
def alert(acme, people):
    budget = alert_services.budget_create(
        organisation=acme,
        user=people["alice"],
        name="vision energy",
        metric="energy_kwh",
        period="month",
        amount=10.0,
        team=acme.vision,
    )
    rule = AlertRule.objects.filter(budget=budget).first() or AlertRule.objects.create(
        organisation=acme, name="vision energy", kind="budget_threshold", budget=budget
    )
    return Alert.objects.create(
        organisation=acme,
        rule=rule,
        team=acme.vision,
        fingerprint="f" * 16,
        labels={"rule": str(rule.pk), "budget": str(budget.pk), "team": "vision"},
        state="firing",
        value=0.8,
        active_since=NOW - timedelta(hours=1),
        last_active_at=NOW,
        fired_at=NOW - timedelta(hours=1),
    )


def test_budgets_alerts_and_rules(client, world, people, alert, pat, auth, acme):
    client.force_login(people["victor"])
    budgets = get(client, "/api/v1/budgets/").json()
    (budget,) = budgets["results"]
    # The month so far: vision's 6 kWh of the 16th, as the budget page reads it.
    assert budget["consumed"] == pytest.approx(6.0)
    assert budget["consumed_share"] == pytest.approx(0.6)
    assert budget["forecast"] >= budget["consumed"]
    detail = get(client, f"/api/v1/budgets/{budget['id']}/").json()
    assert detail["consumed"] == budget["consumed"]
    alerts = get(client, "/api/v1/alerts/", state="firing").json()["results"]
    assert [a["id"] for a in alerts] == [alert.pk]
    assert get(client, "/api/v1/alerts/", team="research").status_code == 404
    assert get(client, "/api/v1/alerts/", state="bogus").status_code == 400
    empty = get(client, "/api/v1/alert-rules/", kind="")  # not "every kind"
    assert empty.status_code == 400
    assert [e["pointer"] for e in empty.json()["errors"]] == ["/kind"]
    with time_machine.travel(NOW, tick=False):
        trace = client.generic("TRACE", "/api/v1/alert-rules/?kind=")
    assert trace.status_code == 405  # the method first, then the parameters
    rules = get(client, "/api/v1/alert-rules/").json()["results"]
    assert alert.rule_id in [r["id"] for r in rules]
    assert get(client, "/api/v1/alert-rules/", enabled="false").json()["results"] == []
    assert get(client, "/api/v1/alert-rules/", enabled="maybe").status_code == 400
    client.force_login(people["nina"])  # nlp manager: cannot see vision's alert
    assert client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/").status_code == 404


def test_acknowledge_and_silence_need_write_tokens_and_managers(
    client, world, people, alert, pat, auth, acme
):
    url = f"/api/v1/alerts/{alert.pk}/"
    read = pat(people["alice"], acme)
    write = pat(people["alice"], acme, access="write")
    assert client.post(url + "acknowledge/", **auth(read)).status_code == 403
    done = client.post(url + "acknowledge/", **auth(write))
    assert done.status_code == 200, done.content
    assert done.json()["acknowledged_by"] == "alice"
    body = {"duration_s": 3600, "comment": "maintenance"}
    assert client.post(url + "silence/", body, "application/json", **auth(read)).status_code == 403
    viewer = pat(people["victor"], acme, access="write")
    refused = client.post(url + "silence/", body, "application/json", **auth(viewer))
    assert refused.status_code == 403  # a viewer, whatever the token
    made = client.post(url + "silence/", body, "application/json", **auth(write))
    assert made.status_code == 201, made.content
    assert made.json()["matchers"]["team"] == "vision"
    bad = client.post(url + "silence/", {"duration_s": 1}, "application/json", **auth(write))
    assert bad.status_code == 400
    assert [e["pointer"] for e in bad.json()["errors"]] == ["/duration_s"]
