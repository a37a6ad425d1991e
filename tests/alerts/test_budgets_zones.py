"""Budgets in the organisation's zone, worked out by hand (Los Angeles, across the November change).

31 October 2026 20:00 in Los Angeles (PDT, UTC-7) is 1 November 03:00 UTC. The clocks go back on
1 November at 09:00 UTC, so October in Los Angeles is [1 October 07:00 UTC, 1 November 07:00 UTC)
and November is [1 November 07:00 UTC, 1 December 08:00 UTC) (PST, UTC-8).

Rows (org-wide, one GPU): 10 kWh at 1 November 03:00 UTC (31 October evening, local) and 3 kWh at
1 November 08:00 UTC (1 November 01:00 PDT). By hand: Los Angeles' October budget has consumed
10 kWh, its November budget 3 kWh; in UTC both are November's (13 kWh).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from greenkpi.alerts import forecast, selectors, services
from greenkpi.kpis import daily

EVENING = datetime(2026, 11, 1, 3, tzinfo=UTC)  # 31 October 20:00 PDT
NIGHT = datetime(2026, 11, 1, 8, tzinfo=UTC)  # 1 November 01:00 PDT


@pytest.fixture
def la_history(acme, rollups):
    acme.time_zone = "America/Los_Angeles"
    acme.save()
    host = rollups.host(acme, "la-1", team=acme.vision, last_seen=datetime(2026, 12, 1, tzinfo=UTC))
    gpu = rollups.gpu(host)
    rollups.add(acme, EVENING, device=gpu, team=acme.vision, energy_kwh=10.0)
    rollups.add(acme, NIGHT, device=gpu, team=acme.vision, energy_kwh=3.0)
    return acme


def month_budget(org, people):
    return services.budget_create(
        organisation=org,
        user=people["alice"],
        name="org energy",
        metric="energy_kwh",
        period="month",
        amount=100.0,
    )


@pytest.mark.parametrize("refreshed", [False, True], ids=["hours", "daily tables"])
def test_la_october_evening_lands_in_the_october_budget(la_history, people, refreshed):
    if refreshed:
        daily.days_refresh(
            organisation_id=la_history.pk, days=[date(2026, 10, 31), date(2026, 11, 1)]
        )
    budget = month_budget(la_history, people)
    # 31 October 22:00 in LA (1 November 05:00 UTC): still October there.
    october = selectors.budget_status(budget=budget, now=datetime(2026, 11, 1, 5, 30, tzinfo=UTC))
    assert october.period_label == "2026-10"
    assert october.forecast.period_start == datetime(2026, 10, 1, 7, tzinfo=UTC)
    assert october.forecast.period_end == datetime(2026, 11, 1, 7, tzinfo=UTC)
    assert october.consumed == pytest.approx(10.0)
    november = selectors.budget_status(budget=budget, now=datetime(2026, 11, 15, tzinfo=UTC))
    assert november.period_label == "2026-11"
    assert november.forecast.period_end == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert november.consumed == pytest.approx(3.0)


def test_a_utc_organisation_counts_the_same_rows_in_november(acme, people, rollups):
    host = rollups.host(
        acme, "utc-1", team=acme.vision, last_seen=datetime(2026, 12, 1, tzinfo=UTC)
    )
    gpu = rollups.gpu(host)
    rollups.add(acme, EVENING, device=gpu, team=acme.vision, energy_kwh=10.0)
    rollups.add(acme, NIGHT, device=gpu, team=acme.vision, energy_kwh=3.0)
    budget = month_budget(acme, people)
    status = selectors.budget_status(budget=budget, now=datetime(2026, 11, 15, tzinfo=UTC))
    assert (status.period_label, status.consumed) == ("2026-11", pytest.approx(13.0))


def test_a_25_hour_day_is_one_bucket_to_its_real_end_in_the_forecast():
    from zoneinfo import ZoneInfo

    la = ZoneInfo("America/Los_Angeles")
    nov1 = datetime(2026, 11, 1, 7, tzinfo=UTC)
    spans = forecast.buckets({}, {nov1: 25.0}, la)
    assert spans == [(nov1, nov1 + timedelta(hours=25), 25.0)]
    mar8 = datetime(2026, 3, 8, 8, tzinfo=UTC)
    assert forecast.buckets({}, {mar8: 23.0}, la)[0][1] == mar8 + timedelta(hours=23)
    # Consumed to 9 March 00:00 PDT (07:00 UTC) includes the whole 23-hour day.
    result = forecast.budget_forecast(
        {},
        daily={mar8: 23.0},
        amount=100.0,
        period_start=datetime(2026, 3, 1, 8, tzinfo=UTC),
        period_end=datetime(2026, 4, 1, 7, tzinfo=UTC),
        as_of=datetime(2026, 3, 9, 7, tzinfo=UTC),
        tz=la,
    )
    assert result.consumed == 23.0
