"""Daily tables and the read layer in an organisation's zone, worked out by hand.

Los Angeles (America/Los_Angeles): PDT (UTC-7) until 1 November 2026 09:00 UTC, PST (UTC-8) after;
PST until 8 March 2026 10:00 UTC, PDT after. A local day is the UTC hours from its local midnight
to the next: 1 November 2026 is 07:00 UTC to 2 November 08:00 UTC, 25 hours; 8 March 2026 is 08:00
UTC to 9 March 07:00 UTC, 23 hours. (2 November 2026 is an ordinary 24-hour day.)

The fixture writes one row of 1 kWh on gpu-0 for every UTC hour from 31 October 07:00 UTC
(local midnight) to 3 November 08:00 UTC, plus 100 kWh on gpu-1 at 1 November 03:00 UTC, which is
31 October 20:00 in Los Angeles. By hand: 31 October = 24 x 1 + 100 = 124 kWh over 24 hours,
1 November = 25 kWh over 25 hours, 2 November = 24 kWh over 24 hours. In UTC days the 100 kWh
would be on 1 November.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from testsupport import rollup_rows

from greenkpi.inventory.models import Device, Host, Organisation
from greenkpi.kpis import daily
from greenkpi.kpis.models import DailyRollup, DailyTeamRollup, DailyWindow, HourlyRollup
from greenkpi.kpis.read import freshness
from greenkpi.kpis.read import sums as read
from greenkpi.lib.periods import day_start

LA = ZoneInfo("America/Los_Angeles")
HOUR = timedelta(hours=1)
OCT31, NOV1, NOV2 = date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def set_zone(org: Organisation, name: str) -> None:
    org.time_zone = name
    org.save()


@pytest.fixture
def gpus(acme):
    host = Host.objects.create(organisation=acme, hostname="la-1", default_team=acme.vision)
    return [Device.objects.create(host=host, uuid=f"GPU-la-{i}", kind="gpu") for i in range(2)]


@pytest.fixture
def la(acme, gpus):
    set_zone(acme, "America/Los_Angeles")
    hour = utc(2026, 10, 31, 7)
    while hour < utc(2026, 11, 3, 8):
        rollup_rows.hourly_row(acme, hour, device=gpus[0], energy_kwh=1.0, team=acme.vision)
        hour += HOUR
    rollup_rows.hourly_row(
        acme, utc(2026, 11, 1, 3), device=gpus[1], energy_kwh=100.0, team=acme.vision
    )
    return acme


def daily_energy(org) -> dict[date, tuple[float, int]]:
    rows = DailyRollup.objects.filter(organisation=org).order_by("day")
    out: dict[date, tuple[float, int]] = {}
    for r in rows:
        kwh, hours = out.get(r.day, (0.0, 0))
        out[r.day] = (kwh + r.energy_kwh, max(hours, r.hours))
    return out


def hourly_energy(org, day: date) -> float:
    rows = HourlyRollup.objects.filter(
        organisation=org, hour__gte=day_start(day, LA), hour__lt=day_start(day + timedelta(1), LA)
    )
    return sum(r.energy_kwh for r in rows)


def test_la_days_of_25_hours_and_the_october_evening_as_worked_by_hand(la):
    daily.days_refresh(organisation_id=la.pk, days=[OCT31, NOV1, NOV2])
    got = daily_energy(la)
    assert got[OCT31] == (pytest.approx(124.0), 24)
    assert got[NOV1] == (pytest.approx(25.0), 25)
    assert got[NOV2] == (pytest.approx(24.0), 24)
    for day in (OCT31, NOV1, NOV2):  # each daily total is the sum of its hourly rows
        assert got[day][0] == pytest.approx(hourly_energy(la, day))
    team = {r.day: r.energy_kwh for r in DailyTeamRollup.objects.filter(organisation=la)}
    assert team == {OCT31: pytest.approx(124.0), NOV1: 25.0, NOV2: 24.0}


@pytest.mark.postgres
def test_the_one_statement_refresh_cuts_local_days_as_the_orm_path(la):
    days = [OCT31, NOV1, NOV2]
    daily.days_refresh(organisation_id=la.pk, days=days, use_sql=False)
    by_orm = daily_energy(la)
    daily.days_refresh(organisation_id=la.pk, days=days, use_sql=True)
    assert daily_energy(la) == by_orm
    assert by_orm[OCT31] == (124.0, 24) and by_orm[NOV1] == (25.0, 25)


def test_a_23_hour_spring_day_sums_its_hours(acme, gpus):
    set_zone(acme, "America/Los_Angeles")
    hour = utc(2026, 3, 8, 7)  # 7 March 23:00 PST: the day before
    while hour < utc(2026, 3, 9, 8):  # 9 March 01:00 PDT: the day after
        rollup_rows.hourly_row(acme, hour, device=gpus[0], energy_kwh=1.0, team=acme.vision)
        hour += HOUR
    days = daily.rollup_days(organisation_id=acme.pk, start=utc(2026, 3, 1), end=utc(2026, 4, 1))
    assert days == [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]
    daily.days_refresh(organisation_id=acme.pk, days=days)
    got = daily_energy(acme)
    assert got[date(2026, 3, 8)] == (23.0, 23)  # 08:00 UTC to 07:00 UTC the next day
    assert got[date(2026, 3, 7)] == (1.0, 1) and got[date(2026, 3, 9)] == (1.0, 1)


def test_reads_of_local_days_equal_the_hours_fresh_stale_and_partial(la):
    october_evening = (utc(2026, 10, 31, 7), utc(2026, 11, 1, 7))  # 31 October, local
    three_days = (day_start(OCT31, LA), day_start(date(2026, 11, 3), LA))

    def energy(start, end, **kw):
        frame = read.sums(organisation_id=la.pk, start=start, end=end, columns=["energy_kwh"], **kw)
        return frame

    # Never refreshed: every day from the hours.
    assert energy(*october_evening)["energy_kwh"].sum() == pytest.approx(124.0)
    before = energy(*three_days, grain="day")
    daily.days_refresh(organisation_id=la.pk, days=[OCT31, NOV1, NOV2])
    plan = read.plan(
        organisation_id=la.pk, start=three_days[0], end=three_days[1], keys=[], grain="day"
    )
    assert plan.days == (OCT31, date(2026, 11, 3)) and not plan.spans  # all from the daily table
    after = energy(*three_days, grain="day")
    by_day = dict(zip(after["bucket_utc"].dt.date, after["energy_kwh"], strict=True))
    assert by_day == {OCT31: pytest.approx(124.0), NOV1: 25.0, NOV2: 24.0}
    assert before["energy_kwh"].tolist() == pytest.approx(after["energy_kwh"].tolist())
    # A range ending mid-day: the local days from the table, the rest from the hours.
    partial = energy(three_days[0], utc(2026, 11, 2, 12))
    assert partial["energy_kwh"].sum() == pytest.approx(124 + 25 + 4)  # 08:00-12:00 UTC, 2 Nov
    # "native": a day is its UTC start and its length, for the forecasts.
    native = energy(*three_days, grain="native")
    assert dict(zip(native["bucket_utc"], native["bucket_h"], strict=True)) == {
        datetime(2026, 10, 31, 7): 24,
        datetime(2026, 11, 1, 7): 25,
        datetime(2026, 11, 2, 8): 24,
    }


def test_kolkata_days_floor_local_midnight_to_the_utc_hour(acme, gpus):
    """+5:30: 5 May starts at 4 May 18:30 UTC, floored to 18:00. The row of 4 May 18:00 UTC (23:30
    local on 4 May) therefore counts on 5 May: at most 30 minutes of energy move to the next day."""
    set_zone(acme, "Asia/Kolkata")
    rollup_rows.hourly_row(acme, utc(2026, 5, 4, 17), device=gpus[0], energy_kwh=2.0)
    rollup_rows.hourly_row(acme, utc(2026, 5, 4, 18), device=gpus[0], energy_kwh=3.0)
    daily.days_refresh(organisation_id=acme.pk, days=[date(2026, 5, 4), date(2026, 5, 5)])
    assert daily_energy(acme) == {date(2026, 5, 4): (2.0, 1), date(2026, 5, 5): (3.0, 1)}
    frame = read.sums(
        organisation_id=acme.pk,
        start=utc(2026, 5, 3, 18),
        end=utc(2026, 5, 5, 18),
        columns=["energy_kwh"],
        grain="day",
    )
    assert dict(zip(frame["bucket_utc"].dt.date, frame["energy_kwh"], strict=True)) == {
        date(2026, 5, 4): 2.0,
        date(2026, 5, 5): 3.0,
    }


def test_changing_the_zone_resets_the_days_and_the_task_rebuilds_them_in_the_new_zone(
    la, django_capture_on_commit_callbacks, monkeypatch
):
    set_zone(la, "UTC")
    daily.days_refresh(
        organisation_id=la.pk,
        days=daily.rollup_days(organisation_id=la.pk, start=utc(2026, 10, 1), end=utc(2026, 12, 1)),
    )
    # UTC days: 1 November holds its 24 hours and the 100 kWh; 31 October only 17 hours.
    assert daily_energy(la)[NOV1] == (124.0, 24) and daily_energy(la)[OCT31] == (17.0, 17)
    sent: list[tuple[list[int], float]] = []
    monkeypatch.setattr(
        daily.rebuild_organisation_days,
        "apply_async",
        lambda args, countdown: sent.append((args, countdown)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        set_zone(la, "America/Los_Angeles")
    assert sent == [([la.pk], daily.REBUILD_DELAY_S)]
    # Reset at once: no daily rows of the old zone remain, reads answer from the hours.
    assert not DailyRollup.objects.filter(organisation=la).exists()
    assert not DailyWindow.objects.filter(organisation=la).exists()
    assert daily.days_pending(organisation_id=la.pk) == 3  # 31 Oct to 2 Nov, local
    october = read.sums(
        organisation_id=la.pk,
        start=day_start(OCT31, LA),
        end=day_start(NOV1, LA),
        columns=["energy_kwh"],
    )
    assert october["energy_kwh"].sum() == pytest.approx(124.0)
    # The periodic refresh leaves the organisation to its rebuild.
    assert [d for o, d in daily.stale_days() if o == la.pk] == []
    # The task itself, run through Celery's machinery (registered under its module's name).
    from greenkpi.celery import app
    from greenkpi.kpis.models import RecomputeRun

    assert "greenkpi.kpis.daily.rebuild_organisation_days" in app.tasks
    result = daily.rebuild_organisation_days.apply(args=[la.pk])
    assert result.successful()
    run = RecomputeRun.objects.get(pk=result.get())
    assert (run.kind, run.status, run.windows_done) == ("daily-rebuild", "ok", 3)
    assert daily.days_pending(organisation_id=la.pk) == 0
    got = daily_energy(la)
    assert got[OCT31] == (pytest.approx(124.0), 24) and got[NOV1] == (25.0, 25)
    assert freshness.zone_of(la.pk) == LA


def test_an_unchanged_zone_leaves_the_days_alone(la, django_capture_on_commit_callbacks):
    daily.days_refresh(organisation_id=la.pk, days=[OCT31])
    with django_capture_on_commit_callbacks() as callbacks:
        la.name = "Acme LA"
        la.save()
    assert callbacks == []
    assert DailyRollup.objects.filter(organisation=la).exists()
