"""Pages and exports of a Los Angeles organisation: local months, local dates, the zone said.

Rows (vision team, one GPU): 10 kWh at 1 November 2026 03:00 UTC (31 October 20:00 PDT) and 3 kWh
at 1 November 08:00 UTC (1 November 01:00 PDT). By hand: the October report of Los Angeles holds
10 kWh and its November report 3 kWh (in UTC both would be November's); the page range
from=2026-10-31&to=2026-10-31 is [31 October 07:00 UTC, 1 November 07:00 UTC) and holds the 10 kWh.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from testsupport.rollup_rows import hourly_row

from greenkpi.inventory.models import Device, Host
from greenkpi.kpis import daily

pytestmark = pytest.mark.django_db

EVENING = datetime(2026, 11, 1, 3, tzinfo=UTC)
NIGHT = datetime(2026, 11, 1, 8, tzinfo=UTC)


def refresh_days(org) -> None:
    """Rebuild the organisation's daily rows of October and November (in its zone)."""
    daily.days_refresh(
        organisation_id=org.pk,
        days=daily.rollup_days(
            organisation_id=org.pk,
            start=datetime(2026, 10, 1, tzinfo=UTC),
            end=datetime(2026, 12, 1, tzinfo=UTC),
        ),
    )


@pytest.fixture
def la(acme, people):
    acme.time_zone = "America/Los_Angeles"
    acme.save()
    host = Host.objects.create(organisation=acme, hostname="la-1", default_team=acme.vision)
    gpu = Device.objects.create(host=host, uuid="GPU-la-0", kind="gpu")
    hourly_row(acme, EVENING, device=gpu, team=acme.vision, energy_kwh=10.0, site=acme.paris)
    hourly_row(acme, NIGHT, device=gpu, team=acme.vision, energy_kwh=3.0, site=acme.paris)
    refresh_days(acme)
    return acme


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_la_october_report_holds_the_october_evening_and_says_the_zone(client, la, people):
    client.force_login(people["alice"])
    october = csv_rows(client.get("/reports/report.csv?org=acme&month=2026-10"))
    total = next(r for r in october if r["row"] == "total")
    assert float(total["energy_kwh"]) == pytest.approx(10.0)
    assert total["month"] == "2026-10" and total["time_zone"] == "America/Los_Angeles"
    november = csv_rows(client.get("/reports/report.csv?org=acme&month=2026-11"))
    assert float(next(r for r in november if r["row"] == "total")["energy_kwh"]) == 3.0
    page = client.get("/reports/?org=acme&month=2026-10").content.decode()
    assert "Days and months in America/Los_Angeles" in page


def test_a_local_date_range_on_the_carbon_page_and_the_esrs_year(client, la, people):
    client.force_login(people["alice"])
    rows = csv_rows(client.get("/carbon/teams.csv?org=acme&from=2026-10-31&to=2026-10-31"))
    assert sum(float(r["energy_kwh"] or 0) for r in rows) == pytest.approx(10.0)
    page = client.get("/carbon/?org=acme&from=2026-10-31&to=2026-10-31").content.decode()
    assert "days in America/Los_Angeles" in page
    assert 'value="2026-10-31"' in page  # the picker shows the local dates asked for
    export = json.loads(client.get("/reports/esrs-e1.json?org=acme&year=2026").content)
    assert export["time_zone"] == "America/Los_Angeles"
    assert export["period_utc"] == ["2026-01-01T08:00:00+00:00", "2027-01-01T08:00:00+00:00"]


def test_the_budgets_page_shows_the_local_month_and_says_the_zone(client, la, people):
    import time_machine

    from greenkpi.alerts import services

    services.budget_create(
        organisation=la,
        user=people["alice"],
        name="org energy",
        metric="energy_kwh",
        period="month",
        amount=100.0,
    )
    client.force_login(people["alice"])
    # 31 October 22:30 in Los Angeles: its October, which holds the evening's 10 kWh.
    with time_machine.travel(datetime(2026, 11, 1, 5, 30, tzinfo=UTC), tick=False):
        page = client.get("/budgets/?org=acme").content.decode()
    assert "Months, quarters and years in" in page and "America/Los_Angeles" in page
    assert "<td>2026-10</td>" in page


def test_chart_csvs_write_local_days_as_the_utc_instants_they_start_at(client, la, people):
    """By hand: Los Angeles' 31 October and 1 November (PDT until 02:00 local on 1 November) both
    start at 07:00 UTC, so the CSVs' day columns read 2026-10-31T07:00:00Z (the 10 kWh evening)
    and 2026-11-01T07:00:00Z (the 3 kWh night); a UTC-midnight Z would name the wrong instant."""
    client.force_login(people["alice"])
    days = "org=acme&from=2026-10-31&to=2026-11-01"
    overview = csv_rows(client.get(f"/charts/energy-by-team.csv?{days}"))
    assert [(r["day"], float(r["energy_kwh"])) for r in overview] == [
        ("2026-10-31T07:00:00Z", 10.0),
        ("2026-11-01T07:00:00Z", 3.0),
    ]
    carbon = csv_rows(client.get(f"/carbon/co2e-by-team.csv?{days}"))
    assert [r["period_utc"] for r in carbon] == ["2026-10-31T07:00:00Z", "2026-11-01T07:00:00Z"]
    team = csv_rows(client.get(f"/teams/{la.vision.pk}/models.csv?{days}"))
    assert [(r["first_window_utc"], r["last_window_utc"]) for r in team] == [
        ("2026-10-31T07:00:00Z", "2026-11-01T07:00:00Z")
    ]


def test_every_page_footer_says_whose_days_it_counts(client, la, people):
    client.force_login(people["alice"])
    page = client.get("/?org=acme").content.decode()
    assert "Days, months and years in America/Los_Angeles; clock times in UTC." in page
    assert "All times in UTC" not in page


def test_daily_charts_draw_local_days_and_name_the_zone(client, la, people):
    """The bars sit on Los Angeles' 31 October and 1 November and the axis spans exactly those two
    days (half a day either side), not the UTC instants 07:00 of each, which left a half-day gap."""
    client.force_login(people["alice"])
    days = "org=acme&from=2026-10-31&to=2026-11-01"
    for path, axis in (
        ("/charts/energy-by-team.json", "xaxis"),
        ("/carbon/co2e-by-team.json", "xaxis"),
    ):
        layout = client.get(f"{path}?{days}").json()["layout"]
        assert layout[axis]["title"]["text"].startswith("Day (America/Los_Angeles)"), path
        assert layout[axis]["range"] == ["2026-10-30T12:00:00", "2026-11-01T12:00:00"], path


def test_after_a_zone_change_the_pages_say_the_daily_rows_are_being_rebuilt(client, la, people):
    """The fixture's two local days (31 October, 1 November) have hourly rows; with their daily
    rows gone, as a zone change leaves them until the rebuild task runs, the overview says 2 days
    are left, and nothing once they are rebuilt."""
    from django.utils import timezone

    from greenkpi.kpis.models import DailyWindow

    type(la).objects.filter(pk=la.pk).update(time_zone_changed_at=timezone.now())
    DailyWindow.objects.filter(organisation=la).delete()
    client.force_login(people["alice"])
    page = client.get("/?org=acme").content.decode()
    assert "daily rollups are being rebuilt (2 days left)" in page
    refresh_days(la)
    assert 'data-testid="days-rebuilding"' not in client.get("/?org=acme").content.decode()
