"""Daily rollups: hand-worked sums, replace-not-increment, stale days, and equality with hourly rows.

Worked example (acme, team vision, model resnet, site paris-dc, GPUs), 2025-03-10 UTC:

| hour  | device | energy kWh | facility kWh | renewable share | cost | loc. kg |
|-------|--------|-----------:|-------------:|----------------:|-----:|--------:|
| 00:00 | gpu-0  | 1.0        | 2.0          | 0.5             | 0.40 | 0.10    |
| 00:00 | gpu-1  | 0.5        | 1.0          | (unknown)       | 0.20 | 0.05    |
| 23:00 | gpu-0  | 1.5        | 3.0          | 0.2             | 0.60 | 0.15    |
| 2025-03-11 00:00 | gpu-0 | 4.0 | 8.0     | 0.9             | none | 0.40    |

Day 2025-03-10: energy 3.0 kWh, facility 6.0 kWh, 2 hours, 2 devices, renewable kWh
0.5 x 2 + 0.2 x 3 = 1.6 over 5.0 known kWh (share 0.32, not the 0.35 mean of the shares), cost
1.20, location CO2e 0.30 kg. Day 2025-03-11 (the 00:00 hour belongs to the day it starts in):
energy 4.0, cost empty (no priced hour), renewable 7.2 / 8.0.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from greenkpi.kpis import daily
from greenkpi.kpis.models import DailyHostTeam, DailyRollup, DailyWindow, HourlyRollup, RollupWindow

H0 = datetime(2025, 3, 10, tzinfo=UTC)
DAY1, DAY2 = date(2025, 3, 10), date(2025, 3, 11)


def hourly(org, hour, device, energy_kwh, pue, share, cost, loc_kg, team=None, **extra):
    values = {
        "organisation": org,
        "hour": hour,
        "device": device,
        "device_kind": device.kind,
        "host": device.host,
        "site": org.paris,
        "team": team or org.vision,
        "model_key": "resnet",
        "run_key": "r7",
        "samples": 60,
        "covered_s": 3600.0,
        "energy_kwh": energy_kwh,
        "estimated_energy_kwh": 0.0,
        "pue": pue,
        "facility_energy_kwh": energy_kwh * pue,
        "allocated_gpu_h": 1.0,
        "busy_gpu_h": 0.75,
        "util_known_gpu_h": 1.0,
        "idle_gpu_h": 0.1,
        "idle_energy_kwh": 0.05,
        "sm_active_gpu_h": 0.5,
        "sm_known_gpu_h": 1.0,
        "intensity_g_per_kwh": 50.0,
        "intensity_source": "annual",
        "intensity_zone": "FR",
        "market_g_per_kwh": 50.0,
        "market_source": "location",
        "operational_location_kgco2e": loc_kg,
        "operational_market_kgco2e": loc_kg,
        "embodied_kgco2e": 0.01,
        "renewable_share": share,
        "cost": cost,
        "currency": "EUR" if cost is not None else "",
        "methodology_version": "test",
    }
    values.update(extra)
    return HourlyRollup.objects.create(**values)


@pytest.fixture
def gpus(acme):
    from greenkpi.inventory.models import Device, Host

    host = Host.objects.create(organisation=acme, hostname="gpu-a", default_team=acme.nlp)
    return [Device.objects.create(host=host, uuid=f"GPU-a-{i}", kind="gpu") for i in range(2)]


@pytest.fixture
def worked(acme, gpus):
    g0, g1 = gpus
    hourly(acme, H0, g0, 1.0, 2.0, 0.5, 0.40, 0.10)
    hourly(acme, H0, g1, 0.5, 2.0, None, 0.20, 0.05)
    hourly(acme, H0 + timedelta(hours=23), g0, 1.5, 2.0, 0.2, 0.60, 0.15)
    hourly(acme, H0 + timedelta(hours=24), g0, 4.0, 2.0, 0.9, None, 0.40)
    return acme


def rows_by_day(org):
    return {r.day: r for r in DailyRollup.objects.filter(organisation=org)}


def test_a_day_sums_its_hours_as_worked_by_hand(worked):
    written = daily.days_refresh(organisation_id=worked.pk, days=[DAY1, DAY2])
    assert written == 2
    by_day = rows_by_day(worked)
    d1, d2 = by_day[DAY1], by_day[DAY2]
    assert (d1.team_id, d1.model_key, d1.run_key, d1.site_id) == (
        worked.vision.pk,
        "resnet",
        "r7",
        worked.paris.pk,
    )
    assert (d1.device_kind, d1.currency, d1.hours, d1.devices, d1.samples) == (
        "gpu",
        "EUR",
        2,
        2,
        180,
    )
    assert d1.energy_kwh == pytest.approx(3.0)
    assert d1.facility_energy_kwh == pytest.approx(6.0)
    assert d1.renewable_kwh == pytest.approx(1.6)
    assert d1.renewable_known_kwh == pytest.approx(5.0)
    assert d1.renewable_kwh / d1.renewable_known_kwh == pytest.approx(0.32)
    assert d1.cost == pytest.approx(1.20)
    assert d1.operational_location_kgco2e == pytest.approx(0.30)
    assert d1.allocated_gpu_h == pytest.approx(3.0)
    assert d1.busy_gpu_h == pytest.approx(2.25)
    assert (d2.energy_kwh, d2.cost, d2.currency, d2.hours) == (pytest.approx(4.0), None, "", 1)
    assert d2.renewable_kwh == pytest.approx(7.2)
    assert d2.renewable_known_kwh == pytest.approx(8.0)


def test_a_refresh_replaces_a_day_and_never_adds_to_it(worked):
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1])
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1])
    assert DailyRollup.objects.filter(organisation=worked, day=DAY1).count() == 1
    assert rows_by_day(worked)[DAY1].energy_kwh == pytest.approx(3.0)
    HourlyRollup.objects.filter(hour=H0 + timedelta(hours=23)).delete()
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1])
    assert rows_by_day(worked)[DAY1].energy_kwh == pytest.approx(1.5)
    HourlyRollup.objects.filter(hour__lt=H0 + timedelta(days=1)).delete()
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1])
    assert DAY1 not in rows_by_day(worked)
    window = DailyWindow.objects.get(organisation=worked, day=DAY1)
    assert window.rows == 0


def test_owners_sites_and_currencies_stay_apart(worked, gpus):
    hourly(worked, H0 + timedelta(hours=5), gpus[1], 2.0, 2.0, None, None, 0.2, team=worked.nlp)
    hourly(worked, H0 + timedelta(hours=6), gpus[1], 1.0, 2.0, None, 9.0, 0.1, currency="USD")
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1])
    got = {
        (r.team_id, r.currency): r.energy_kwh
        for r in DailyRollup.objects.filter(organisation=worked, day=DAY1)
    }
    assert got == {
        (worked.vision.pk, "EUR"): pytest.approx(3.0),
        (worked.vision.pk, "USD"): pytest.approx(1.0),
        (worked.nlp.pk, ""): pytest.approx(2.0),
    }


def test_the_hosts_a_team_computed_on_are_recorded_per_day(worked, gpus):
    hourly(worked, H0 + timedelta(hours=5), gpus[1], 2.0, 2.0, None, None, 0.2, team=worked.nlp)
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1, DAY2])
    pairs = set(DailyHostTeam.objects.values_list("day", "host_id", "team_id"))
    host = gpus[0].host_id
    assert pairs == {
        (DAY1, host, worked.vision.pk),
        (DAY1, host, worked.nlp.pk),
        (DAY2, host, worked.vision.pk),
    }


def test_a_day_is_stale_until_refreshed_after_its_last_window_recompute(worked):
    window = RollupWindow.objects.create(
        organisation=worked, hour=H0 + timedelta(hours=23), computed_at=datetime.now(UTC)
    )
    RollupWindow.objects.create(organisation=worked, hour=H0 + timedelta(hours=1))  # never computed
    assert daily.stale_days() == [(worked.pk, DAY1)]
    # Refreshed right after the recompute: still stale once (the recompute may not have committed
    # when the refresh read), fresh once the refresh is later than SETTLE after it.
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1])
    assert daily.stale_days() == [(worked.pk, DAY1)]
    window.computed_at = datetime.now(UTC) - daily.SETTLE - timedelta(seconds=5)
    window.save()
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1])
    assert daily.stale_days() == []
    window.computed_at = datetime.now(UTC) + timedelta(seconds=1)  # recomputed again
    window.save()
    assert daily.stale_days() == [(worked.pk, DAY1)]


def test_the_periodic_refresh_records_its_run(worked):
    RollupWindow.objects.create(
        organisation=worked, hour=H0, computed_at=datetime.now(UTC) - timedelta(hours=1)
    )
    run = daily.days_refresh_stale()
    assert (run.kind, run.status, run.windows_done, run.rows_written) == ("daily", "ok", 1, 1)
    assert daily.stale_days() == []
    assert daily.days_refresh_stale().windows_done == 0


def test_daily_rows_equal_hourly_rows_after_a_real_ingest_and_recompute(
    acme, acme_token, make_batch, post_batch
):
    from greenkpi.kpis import services
    from greenkpi.kpis.selectors import rollup_frame

    start = datetime.now(UTC).replace(minute=50, second=0, microsecond=0) - timedelta(days=1)
    shares = [
        {"energy_j": 9000.0, "method": "utilization", "team": "nlp", "model": "bert", "run": "r1"},
        {"energy_j": 3000.0, "method": "unattributed"},
    ]
    # 20 one-minute windows from hh:50: they straddle an hour boundary.
    body = make_batch(hostname="n1", devices=2, windows=20, start=start, shares=shares)
    assert post_batch(acme_token[1], body).status_code == 201
    services.windows_recompute(
        windows=services.backfill_windows(
            start=start - timedelta(hours=1), end=start + timedelta(hours=2)
        ),
        kind="backfill",
    )
    daily.days_refresh_stale()
    first, last = start.date(), (start + timedelta(hours=1)).date()
    hours = rollup_frame(
        organisation_id=acme.pk,
        start=daily.day_start(first),
        end=daily.day_start(last + timedelta(days=1)),
    )
    days = pd.DataFrame.from_records(
        DailyRollup.objects.filter(organisation=acme, day__gte=first, day__lte=last).values(
            *daily.DAILY_COLUMNS
        )
    )
    days["day"] = pd.to_datetime(days["day"])
    assert len(hours) >= 4 and not days.empty
    hours["day"] = hours["hour"].dt.normalize()
    keys = ["day", "team_id", "model_key"]
    for column in ("energy_kwh", "facility_energy_kwh", "allocated_gpu_h", "embodied_kgco2e"):
        want = hours.groupby(keys)[column].sum()
        got = days.groupby(keys)[column].sum()
        assert got.to_dict() == pytest.approx(want.to_dict()), column
    assert days["energy_kwh"].sum() == pytest.approx(2 * 20 * 12_000 / 3.6e6)


@pytest.mark.postgres
def test_the_one_statement_refresh_equals_the_orm_path(worked, gpus):
    hourly(worked, H0 + timedelta(hours=5), gpus[1], 2.0, 2.0, None, None, 0.2, team=worked.nlp)
    columns = [*daily.DAILY_COLUMNS]

    def snapshot():
        rows = DailyRollup.objects.order_by("day", "team_id", "currency").values_list(*columns)
        hosts = set(DailyHostTeam.objects.values_list("day", "host_id", "team_id"))
        return [
            tuple(pytest.approx(v) if isinstance(v, float) else v for v in r) for r in rows
        ], hosts

    daily.days_refresh(organisation_id=worked.pk, days=[DAY1, DAY2], use_sql=True)
    by_sql = snapshot()
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1, DAY2], use_sql=False)
    assert snapshot() == by_sql
    assert len(by_sql[0]) == 3


def test_the_beat_entry_names_a_registered_task_and_expires_before_the_next_run():
    from greenkpi.celery import app
    from greenkpi.schedule import BEAT_SCHEDULE

    entry = BEAT_SCHEDULE["kpis-refresh-daily-rollups"]
    assert entry["task"] in app.tasks
    assert 0 < entry["options"]["expires"] < entry["schedule"]


def test_the_task_refreshes_stale_days(worked, settings):
    RollupWindow.objects.create(
        organisation=worked, hour=H0, computed_at=datetime.now(UTC) - timedelta(hours=1)
    )
    run_id = daily.refresh_stale_days.apply().get()
    assert DailyRollup.objects.filter(day=DAY1).count() == 1
    from greenkpi.kpis.models import RecomputeRun

    assert RecomputeRun.objects.get(pk=run_id).windows_done == 1


def test_the_team_table_sums_the_daily_rows_per_team_and_currency(worked, gpus):
    from greenkpi.kpis.models import DailyTeamRollup

    hourly(worked, H0 + timedelta(hours=5), gpus[1], 2.0, 2.0, None, None, 0.2, team=worked.nlp)
    hourly(worked, H0 + timedelta(hours=6), gpus[1], 1.0, 2.0, 0.5, 0.3, 0.1, model_key="bert")
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1, DAY2])
    got = {
        (r.day, r.team_id, r.currency): (r.energy_kwh, r.cost, r.renewable_kwh)
        for r in DailyTeamRollup.objects.all()
    }
    # vision on day 1: resnet 3.0 kWh (cost 1.20) + bert 1.0 kWh (cost 0.30; renewable 0.5 x 2).
    assert got == {
        (DAY1, worked.vision.pk, "EUR"): (
            pytest.approx(4.0),
            pytest.approx(1.50),
            pytest.approx(2.6),
        ),
        (DAY1, worked.nlp.pk, ""): (pytest.approx(2.0), None, 0.0),
        (DAY2, worked.vision.pk, ""): (pytest.approx(4.0), None, pytest.approx(7.2)),
    }
    HourlyRollup.objects.filter(team=worked.nlp).delete()
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1])
    assert DailyTeamRollup.objects.filter(team=worked.nlp).count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_overlapping_refreshes_of_an_organisation_wait_for_each_other(worked):
    """A refresh waits while another holds the organisation, so a day is never counted twice."""
    import threading

    from django.db import connection, transaction

    holding, release = threading.Event(), threading.Event()

    def other_refresh_in_progress():
        with transaction.atomic():
            daily._lock_organisation(worked.pk)
            holding.set()
            release.wait(10)
        connection.close()

    def refresh():
        daily.days_refresh(organisation_id=worked.pk, days=[DAY1])
        connection.close()

    holder = threading.Thread(target=other_refresh_in_progress)
    holder.start()
    assert holding.wait(10)
    waiter = threading.Thread(target=refresh)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # blocked behind the other refresh
    release.set()
    holder.join(10)
    waiter.join(10)
    assert not waiter.is_alive()
    assert DailyRollup.objects.filter(organisation=worked, day=DAY1).count() == 1


def test_the_carbon_columns_are_summed_as_worked_by_hand(worked, gpus):
    """What the carbon pages show beside the sums. Day 1's three rows idle 0.05 kWh at PUE 2.0 and
    50 g/kWh (annual): 0.005 kg each; one more hour at 01:00 idles 0.1 kWh at PUE 2.0 and 30 g/kWh
    from an hourly series, under a newer methodology: 0.006 kg. Idle CO2e 0.021 kg (not the 0.0225
    the day's summed idle kWh x mean PUE x mean intensity would give); facility kWh 2.0 hourly and
    6.0 annual; versions "test" to "test2"."""
    from greenkpi.kpis.models import DailyTeamRollup

    hourly(
        worked,
        H0 + timedelta(hours=1),
        gpus[1],
        1.0,
        2.0,
        0.5,
        0.40,
        0.06,
        idle_energy_kwh=0.1,
        intensity_g_per_kwh=30.0,
        intensity_source="hourly",
        methodology_version="test2",
    )
    daily.days_refresh(organisation_id=worked.pk, days=[DAY1, DAY2])
    d1 = rows_by_day(worked)[DAY1]
    team = DailyTeamRollup.objects.get(day=DAY1)
    for row in (d1, team):
        assert row.idle_location_kgco2e == pytest.approx(0.021)
        assert row.facility_kwh_hourly_intensity == pytest.approx(2.0)
        assert row.facility_kwh_annual_intensity == pytest.approx(6.0)
        assert row.facility_kwh_default_intensity == 0.0
        assert (row.methodology_version_min, row.methodology_version_max) == ("test", "test2")
    assert team.site_id == worked.paris.pk
    d2 = rows_by_day(worked)[DAY2]
    assert d2.idle_location_kgco2e == pytest.approx(0.005)
    assert (d2.methodology_version_min, d2.methodology_version_max) == ("test", "test")


def test_stale_days_are_the_days_whose_windows_changed_after_their_refresh(worked):
    """The read layer's freshness rule (kpis.read.freshness) is the refresh job's rule."""
    from greenkpi.kpis.read.freshness import stale_days

    later = datetime.now(UTC) + daily.SETTLE * 3
    RollupWindow.objects.create(organisation=worked, hour=H0, computed_at=datetime.now(UTC))
    RollupWindow.objects.create(organisation=worked, hour=H0 + timedelta(days=1))  # never computed
    span = {"organisation_id": worked.pk, "first": DAY1, "end": DAY2 + timedelta(days=1)}
    assert stale_days(**span) == {DAY1}  # computed, never refreshed
    DailyWindow.objects.create(organisation=worked, day=DAY1, refreshed_at=later)
    assert stale_days(**span) == set()
    RollupWindow.objects.filter(hour=H0).update(computed_at=later)  # recomputed after
    assert stale_days(**span) == {DAY1}
