"""One truth for every number (issue 12, Build 1): for the demo organisation, the same energy read
by the overview (tiles and chart), the teams list, a team page, the carbon page, the ESG report,
the models list, a model's page, a budget and the KPI read API (series per organisation, team and
model; a budget's status) equals the sum of the HourlyRollup rows — with every
day fresh, and again while a day is stale (a late sample re-computed one hour after the day was
refreshed; the daily tables still hold the old figure).

The readers keyed by host, device or run (a run's page, power chart and totals, the report's
hours per host) read the hourly rows through kpis.read whether a day is fresh or stale: they are
checked against the hourly rows in both states, and the run readers must move with the late sample.

Every reader goes through kpis.read, so the last part of the test makes one reader bypass it
(read the daily tables as they are) and checks the comparison catches it.

One test builds the demo once (4 days, ~15 s on SQLite) and reads everything twice: building it
per reader would cost minutes. Runs on both layers (SQLite here, PostgreSQL with DATABASE_URL).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db.models import F, Sum

from greenkpi.alerts import selectors as alert_selectors
from greenkpi.alerts import services as alert_services
from greenkpi.demo import build
from greenkpi.ingest.models import Sample, SampleShare
from greenkpi.inventory.models import Team
from greenkpi.kpis import daily, dirty
from greenkpi.kpis import services as kpi_services
from greenkpi.kpis.models import DailyRollup, DailyTeamRollup, HourlyRollup
from greenkpi.kpis.read import sums as read
from greenkpi.workloads.models import MLModel, Run

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 17, 12, 20, tzinfo=UTC)  # the demo's test clock (tests/demo)
RANGE = "7d"  # [2026-11-11, 2026-11-18): whole UTC days, the daily tables' case
RANGE_START = datetime(2026, 11, 11, tzinfo=UTC)
RANGE_END = datetime(2026, 11, 18, tzinfo=UTC)
MONTH = "2026-11"
LATE_HOUR = datetime(2026, 11, 15, 14, tzinfo=UTC)  # the hour a late sample lands in
# CSVs round each row to 4 decimals: 0.01 kWh covers a few hundred rows of rounding, while the
# late sample moves the figures by tens of kWh.
ABS_KWH = 0.01


def csv_rows(client, url: str) -> list[dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200, url
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def total(rows: list[dict[str, str]], column: str = "energy_kwh") -> float:
    return sum(float(r[column] or 0.0) for r in rows)


def hourly_kwh(org, start=RANGE_START, end=RANGE_END, **where) -> float:
    rows = HourlyRollup.objects.filter(organisation=org, hour__gte=start, hour__lt=end, **where)
    return rows.aggregate(e=Sum("energy_kwh"))["e"] or 0.0


def readings(client, org, team: Team, model: MLModel, budget) -> dict[str, tuple[float, float]]:
    """(what the reader shows, what the hourly rows sum to) per reader."""
    q = f"org={org.slug}&range={RANGE}"
    out: dict[str, tuple[float, float]] = {}
    everything = hourly_kwh(org)
    overview = client.get(f"/?{q}")
    assert overview.status_code == 200
    out["overview tiles"] = (overview.context["tiles"].energy_kwh, everything)
    chart = csv_rows(client, f"/charts/energy-by-team.csv?{q}")
    out["overview chart"] = (total(chart), everything)
    teams = client.get(f"/teams/?{q}")
    out["teams list"] = (
        sum(t.energy_kwh for t in teams.context["totals"]),
        hourly_kwh(org, team__isnull=False),
    )
    mine = hourly_kwh(org, team=team)
    out["team page"] = (total(csv_rows(client, f"/teams/{team.pk}/models.csv?{q}")), mine)
    carbon = csv_rows(client, f"/carbon/teams.csv?{q}")
    out["carbon page"] = (total(carbon), everything)
    month_start = datetime(2026, 11, 1, tzinfo=UTC)
    report = csv_rows(client, f"/reports/report.csv?org={org.slug}&month={MONTH}")
    team_rows = [r for r in report if r.get("team") and r["team"] == team.name]
    out["report (team row)"] = (
        total(team_rows),
        hourly_kwh(org, month_start, datetime(2026, 12, 1, tzinfo=UTC), team=team),
    )
    listed = csv_rows(client, f"/models/table.csv?{q}")
    row = next(r for r in listed if r["model"] == model.key and r["team"] == model.team.name)
    of_model = hourly_kwh(org, team=model.team, model_key=model.key)
    out["models list"] = (float(row["energy_kwh"]), of_model)
    lifecycle = csv_rows(client, f"/models/{model.pk}/lifecycle.csv?{q}")
    out["model page"] = (total(lifecycle), of_model)
    as_of = kpi_services.hour_floor(datetime.now(UTC))
    status = alert_selectors.budget_status(budget=budget)
    out["budget"] = (status.consumed, hourly_kwh(org, month_start, as_of))
    # The KPI read API (issue 15): the same figures as the pages, through the same layer.
    span = {"org": org.slug, "from": "2026-11-11", "to": "2026-11-18", "limit": 1000}
    out["api series (organisation)"] = (api_kwh(client, span), everything)
    out["api series (team)"] = (api_kwh(client, {**span, "by": "team", "team": team.slug}), mine)
    by_model = {**span, "by": "model", "team": model.team.slug, "model": model.key}
    out["api series (model)"] = (api_kwh(client, by_model), of_model)
    api_budget = client.get(f"/api/v1/budgets/{budget.pk}/", {"org": org.slug})
    assert api_budget.status_code == 200
    out["api budget"] = (api_budget.json()["consumed"], hourly_kwh(org, month_start, as_of))
    return out


def api_kwh(client, params: dict) -> float:
    response = client.get("/api/v1/kpis/series/", params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next"] is None
    return sum(row["energy_kwh"] for row in body["results"])


def per_key_readings(client, org, model: MLModel, run) -> dict[str, tuple[float, float]]:
    """The readers keyed by host, device or run (they read HourlyRollup through kpis.read, fresh
    or stale alike): a run's page, its power chart and totals; the report's hours per host."""
    from greenkpi.workloads.selectors import run_totals

    every = {"start": datetime(2000, 1, 1, tzinfo=UTC), "end": datetime(2100, 1, 1, tzinfo=UTC)}
    of_run = hourly_kwh(org, team=model.team, model_key=model.key, run_key=run.key, **every)
    out: dict[str, tuple[float, float]] = {}
    page = client.get(f"/models/{model.pk}/runs/{run.pk}/?org={org.slug}")
    assert page.status_code == 200
    out["run page"] = (page.context["measured"].energy_kwh, of_run)
    power = csv_rows(client, f"/models/{model.pk}/runs/{run.pk}/power.csv?org={org.slug}")
    out["run power chart"] = (total(power, "power_w") / 1000.0, of_run)  # W over an hour -> kWh
    out["run totals"] = (run_totals(model=model, run_keys=[run.key])[run.key].energy_kwh, of_run)
    report = client.get(f"/reports/?org={org.slug}&month={MONTH}")
    month = {
        "hour__gte": datetime(2026, 11, 1, tzinfo=UTC),
        "hour__lt": datetime(2026, 12, 1, tzinfo=UTC),
    }
    host_hours = (
        HourlyRollup.objects.filter(organisation=org, **month).values("host_id", "hour").distinct()
    )
    out["report hours per host"] = (
        sum(h.hours_with_data for h in report.context["report"].completeness),
        host_hours.count(),
    )
    return out


def disagreements(found: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    return {k: v for k, v in found.items() if v[0] != pytest.approx(v[1], rel=1e-9, abs=ABS_KWH)}


def test_every_reader_shows_the_sum_of_the_hourly_rows_fresh_or_stale(client, monkeypatch):
    with time_machine.travel(NOW, tick=False):
        built = build.demo_build(days=4, now=NOW)
    org = built.organisation
    admin = org.memberships.get(user__username="admin").user
    team = Team.objects.get(organisation=org, slug="vision")
    # The model the late sample will belong to: one of the team's registered models measured then.
    registered = set(MLModel.objects.filter(team=team).values_list("key", flat=True))
    late_share = (
        SampleShare.objects.filter(
            team=team,
            model_key__in=registered,
            window_start__gte=LATE_HOUR,
            window_start__lt=LATE_HOUR + timedelta(hours=1),
        )
        .order_by("device_id", "window_start")
        .first()
    )
    assert late_share is not None
    model = MLModel.objects.get(team=team, key=late_share.model_key)
    run = Run.objects.get(model=model, key=late_share.run_key)  # the late sample's run

    # Ten minutes on, the beat refreshes the days (their hours were computed at NOW).
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        daily.days_refresh_stale(limit=10_000)
        budget = alert_services.budget_create(
            organisation=org,
            user=admin,
            name="all",
            metric="energy_kwh",
            period="month",
            amount=1e6,
        )
        client.force_login(admin)
        fresh = readings(client, org, team, model, budget)
        fresh_keyed = per_key_readings(client, org, model, run)
    assert all(v[1] > 0 for v in fresh.values()), fresh
    assert disagreements(fresh) == {}
    assert all(v[1] > 0 for v in fresh_keyed.values()), fresh_keyed
    assert disagreements(fresh_keyed) == {}

    # A late sample (a resend with the full energy of one window) lands in a past hour; the
    # worker recomputes that hour five minutes later, the daily refresh has not run yet.
    with time_machine.travel(NOW + timedelta(minutes=15), tick=False):
        # A resend of one device's windows of that hour with three times the energy (the
        # shares scale with it, so the model's, the team's and the organisation's figures move).
        hour = {
            "device_id": late_share.device_id,
            "window_start__gte": LATE_HOUR,
            "window_start__lt": LATE_HOUR + timedelta(hours=1),
        }
        assert Sample.objects.filter(**hour).update(energy_j=F("energy_j") * 3) > 0
        for start, shares in Sample.objects.filter(**hour, shares__isnull=False).values_list(
            "window_start", "shares"
        ):
            Sample.objects.filter(device_id=late_share.device_id, window_start=start).update(
                shares=[{**share, "e": share["e"] * 3} for share in shares]
            )
        dirty.windows_mark_dirty(organisation_id=org.pk, window_starts=[LATE_HOUR])
        kpi_services.windows_recompute_dirty()
    with time_machine.travel(NOW + timedelta(minutes=16), tick=False):
        day = LATE_HOUR.date()
        stale_daily = DailyTeamRollup.objects.filter(organisation=org, day=day).aggregate(
            e=Sum("energy_kwh")
        )["e"]
        day_hours = hourly_kwh(
            org, LATE_HOUR.replace(hour=0), LATE_HOUR.replace(hour=0) + timedelta(days=1)
        )
        assert day_hours > stale_daily + 0.1  # the day really is stale
        stale = readings(client, org, team, model, budget)
        assert disagreements(stale) == {}
        moved = {k for k in stale if stale[k][1] > fresh[k][1] + 0.1}
        assert moved == set(stale), moved  # the late sample moved every reader's figure
        keyed = per_key_readings(client, org, model, run)
        assert disagreements(keyed) == {}
        moved = {k for k in keyed if keyed[k][1] > fresh_keyed[k][1] + 0.1}
        assert moved == {"run page", "run power chart", "run totals"}, moved  # same hours count

        # Proof the comparison catches a reader that bypasses the layer: serve the daily
        # tables as they are (no stale-day patch) and the readers of whole days disagree.
        def daily_as_is(*, organisation_id, start, end, keys, grain, columns=()):
            days = read.freshness.whole_days(start, end)
            if days is None or grain == "hour" or not set(keys) <= read.DAILY_KEYS:
                return read.Plan(None, None, frozenset(), ((start, end),))
            table = DailyTeamRollup if set(keys) <= read.TEAM_KEYS else DailyRollup
            ends = [
                (start, read.freshness.midnight(days[0])),
                (read.freshness.midnight(days[1]), end),
            ]
            return read.Plan(table, days, frozenset(), tuple(s for s in ends if s[0] < s[1]))

        monkeypatch.setattr(read, "plan", daily_as_is)
        bypassed = disagreements(readings(client, org, team, model, budget))
        assert set(bypassed) == set(stale), set(stale) - set(bypassed)
