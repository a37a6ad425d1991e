"""kpis.read: which table answers (``plan``) and that the answer is always what the hourly rows
sum to, whether a day is fresh, stale (a window recomputed after its refresh) or never refreshed.

Worked example (team vision, model resnet, run r7, site paris-dc, one GPU, 2025-03-10..12):
2 kWh at 00:00 and 1 kWh at 23:00 of the 10th, 4 kWh at 00:00 of the 11th, 8 kWh at 12:00 of the
12th; 0.5 kWh of team nlp (model bert) at 06:00 of the 10th. So the 10th is 3.5 kWh (3 of vision),
the 11th 4 kWh, the whole range 15.5 kWh.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext, override_settings

from greenkpi.kpis import daily
from greenkpi.kpis.models import DailyRollup, DailyTeamRollup, HourlyRollup, RollupWindow
from greenkpi.kpis.read import freshness
from greenkpi.kpis.read import sums as read

pytestmark = pytest.mark.django_db

D10 = datetime(2025, 3, 10, tzinfo=UTC)
DAYS = [date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12)]
START, END = D10, D10 + timedelta(days=3)


def hour_row(org, device, hour, kwh, *, team=None, model_key="resnet"):
    window, _ = RollupWindow.objects.get_or_create(organisation=org, hour=hour)
    window.computed_at = hour + timedelta(hours=1)  # long before any refresh of today
    window.save()
    return HourlyRollup.objects.create(
        organisation=org,
        hour=hour,
        device=device,
        device_kind="gpu",
        host=device.host,
        site=org.paris,
        team=team or org.vision,
        model_key=model_key,
        run_key="r7",
        samples=60,
        covered_s=3600.0,
        energy_kwh=kwh,
        estimated_energy_kwh=0.0,
        pue=1.5,
        facility_energy_kwh=kwh * 1.5,
        intensity_g_per_kwh=100.0,
        intensity_source="annual",
        intensity_zone="FR",
        market_g_per_kwh=50.0,
        market_source="location",
        operational_location_kgco2e=kwh * 0.15,
        operational_market_kgco2e=kwh * 0.075,
        embodied_kgco2e=0.01,
        renewable_share=0.5,
        cost=kwh * 0.2,
        currency="EUR",
        methodology_version="test",
    )


@pytest.fixture
def world(acme):
    from greenkpi.inventory.models import Device, Host

    host = Host.objects.create(organisation=acme, hostname="gpu-a", default_team=acme.vision)
    gpu = Device.objects.create(host=host, uuid="GPU-a-0", kind="gpu")
    hour_row(acme, gpu, D10, 2.0)
    hour_row(acme, gpu, D10 + timedelta(hours=23), 1.0)
    hour_row(acme, gpu, D10 + timedelta(hours=6), 0.5, team=acme.nlp, model_key="bert")
    hour_row(acme, gpu, D10 + timedelta(days=1), 4.0)
    hour_row(acme, gpu, D10 + timedelta(days=2, hours=12), 8.0)
    daily.days_refresh(organisation_id=acme.pk, days=DAYS)
    acme.gpu = gpu
    return acme


def energy(org, start=START, end=END, **kwargs) -> float:
    frame = read.sums(
        organisation_id=org.pk, start=start, end=end, columns=["energy_kwh"], **kwargs
    )
    return float(frame["energy_kwh"].sum())


def test_fresh_whole_days_come_from_the_team_table_or_the_daily_table_by_the_keys(world):
    by_team = read.plan(
        organisation_id=world.pk, start=START, end=END, keys=["team_id", "currency"], grain=None
    )
    assert (by_team.table, by_team.days, by_team.skip, by_team.spans) == (
        DailyTeamRollup,
        (DAYS[0], date(2025, 3, 13)),
        frozenset(),
        (),
    )
    by_model = read.plan(
        organisation_id=world.pk, start=START, end=END, keys=["model_key"], grain="day"
    )
    assert by_model.table is DailyRollup and by_model.spans == ()
    by_host = read.plan(
        organisation_id=world.pk, start=START, end=END, keys=["host_id"], grain=None
    )
    assert by_host.table is None and by_host.spans == ((START, END),)
    hours = read.plan(organisation_id=world.pk, start=START, end=END, keys=[], grain="hour")
    assert hours.table is None and hours.spans == ((START, END),)


def test_the_partial_ends_of_a_range_are_read_from_the_hours(world):
    start, end = D10 + timedelta(hours=6), D10 + timedelta(days=2, hours=13)
    plan = read.plan(organisation_id=world.pk, start=start, end=end, keys=[], grain=None)
    assert plan.days == (DAYS[1], DAYS[2])
    assert plan.spans == ((start, D10 + timedelta(days=1)), (D10 + timedelta(days=2), end))
    # 0.5 (06:00 nlp) + 1.0 (23:00) + 4.0 (the 11th, daily) + 8.0 (12:00 of the 12th)
    assert energy(world, start, end) == pytest.approx(13.5)


def test_sums_per_key_and_day_equal_the_hand_worked_hours(world):
    frame = read.sums(
        organisation_id=world.pk,
        start=START,
        end=END,
        columns=["energy_kwh", "cost", "methodology_version_min"],
        by=["team_id"],
        grain="day",
    )
    got = {
        (str(r.bucket_utc.date()), int(r.team_id)): (r.energy_kwh, r.cost)
        for r in frame.itertuples()
    }
    assert got == {
        ("2025-03-10", world.vision.pk): (pytest.approx(3.0), pytest.approx(0.6)),
        ("2025-03-10", world.nlp.pk): (pytest.approx(0.5), pytest.approx(0.1)),
        ("2025-03-11", world.vision.pk): (pytest.approx(4.0), pytest.approx(0.8)),
        ("2025-03-12", world.vision.pk): (pytest.approx(8.0), pytest.approx(1.6)),
    }
    assert set(frame["methodology_version_min"]) == {"test"}
    assert energy(world, where={"model_key": ["bert"]}) == pytest.approx(0.5)
    assert energy(world, where={"team_id": [world.nlp.pk, None]}) == pytest.approx(0.5)


def test_a_stale_day_is_read_from_the_hours_until_it_is_refreshed(world):
    # Fresh: the refresh came long after the windows' computes.
    assert energy(world) == pytest.approx(15.5)
    # A late sample: the 11th's hour is recomputed (2 kWh more) after the day's refresh.
    late = HourlyRollup.objects.get(hour=D10 + timedelta(days=1))
    late.energy_kwh = 6.0
    late.save()
    RollupWindow.objects.filter(hour=late.hour).update(
        computed_at=F("computed_at") + timedelta(days=3650)
    )
    plan = read.plan(organisation_id=world.pk, start=START, end=END, keys=[], grain=None)
    assert plan.skip == {DAYS[1]}
    assert plan.spans == ((D10 + timedelta(days=1), D10 + timedelta(days=2)),)
    for by in ([], ["team_id"], ["model_key", "run_key"]):
        assert energy(world, by=by) == pytest.approx(17.5), by
        assert energy(world, by=by, grain="day") == pytest.approx(17.5), by
        assert energy(world, by=by, grain="native") == pytest.approx(17.5), by
    # The daily table still says 4.0 for the 11th: proof the read did not take it.
    assert DailyRollup.objects.get(day=DAYS[1]).energy_kwh == pytest.approx(4.0)


def test_a_day_never_refreshed_is_read_from_the_hours(world):
    DailyRollup.objects.all().delete()
    DailyTeamRollup.objects.all().delete()
    assert energy(world) == 0.0  # the refreshed days are taken from the (now empty) tables
    # A day with no computed window has no hours to read: its daily rows are all there is.
    assert not freshness.stale_days(organisation_id=world.pk, first=DAYS[0], end=date(2025, 4, 1))
    from greenkpi.kpis.models import DailyWindow

    DailyWindow.objects.all().delete()
    assert energy(world) == pytest.approx(15.5)
    assert energy(world, by=["team_id"], grain="native") == pytest.approx(15.5)


def test_native_grain_keeps_days_and_hours_apart(world):
    end = D10 + timedelta(days=2, hours=13)
    frame = read.sums(
        organisation_id=world.pk, start=START, end=end, columns=["energy_kwh"], grain="native"
    )
    assert sorted(zip(frame["bucket_utc"].astype(str), frame["bucket_h"], strict=True)) == [
        ("2025-03-10 00:00:00", 24),
        ("2025-03-11 00:00:00", 24),
        ("2025-03-12 12:00:00", 1),
    ]


def test_freshness_costs_one_query_and_a_read_at_most_two(world):
    with CaptureQueriesContext(connection) as queries:
        assert not freshness.stale_days(
            organisation_id=world.pk, first=DAYS[0], end=date(2026, 1, 1)
        )
    assert len(queries) == 1
    partial = {"start": D10 + timedelta(hours=1), "by": ["team_id"], "grain": "day"}
    with override_settings(READ_CACHE_MAX_ROWS=0), CaptureQueriesContext(connection) as queries:
        energy(world, **partial)
    assert len(queries) == 2  # freshness, then the daily table UNION ALL the hourly rows
    with CaptureQueriesContext(connection) as queries:
        energy(world, **partial)
    assert len(queries) == 2  # the same with the cache: its rows are split out of the union
    with CaptureQueriesContext(connection) as queries:
        energy(world, **partial)
    assert len(queries) == 2  # freshness and the hours alone: the daily part from the cache
    assert "kpis_dailyteamrollup" not in queries[1]["sql"]


def test_a_batch_answers_ranges_inside_a_range_it_read_without_another_query(world):
    """A dashboard request is one batch: the budgets' wide window serves the page's narrower
    ranges; a stale day inside both is seen by both."""
    late = HourlyRollup.objects.get(hour=D10 + timedelta(days=1))
    RollupWindow.objects.filter(hour=late.hour).update(
        computed_at=F("computed_at") + timedelta(days=3650)
    )
    with freshness.batch(), CaptureQueriesContext(connection) as queries:
        wide = freshness.stale_days(organisation_id=world.pk, first=DAYS[0], end=date(2025, 4, 1))
        inside = freshness.stale_days(organisation_id=world.pk, first=DAYS[1], end=DAYS[2])
        before = freshness.stale_days(organisation_id=world.pk, first=DAYS[0], end=DAYS[1])
        with freshness.batch():  # nested: the outer block's answers still count
            again = freshness.stale_days(organisation_id=world.pk, first=DAYS[1], end=DAYS[2])
    assert (wide, inside, before, again) == ({DAYS[1]}, {DAYS[1]}, set(), {DAYS[1]})
    assert len(queries) == 1
    with freshness.batch(), CaptureQueriesContext(connection) as queries:
        freshness.stale_days(organisation_id=world.pk, first=DAYS[1], end=DAYS[2])
        wider = freshness.stale_days(organisation_id=world.pk, first=DAYS[0], end=DAYS[2])
    assert wider == {DAYS[1]} and len(queries) == 2  # not inside what was read: read again


def test_epoch_seconds_keep_milliseconds_and_whole_seconds_exact_on_both_backends(world):
    """The one EpochSeconds (hour buckets here, raw-window chart buckets on the host page): a
    window starting at 12:00:59.750 must stay in its minute, a whole hour must come back as an
    exact integer (hour buckets are compared for equality)."""
    from greenkpi.kpis.read.sql import EpochSeconds

    moments = [
        D10 + timedelta(hours=12),  # 1741608000
        D10 + timedelta(hours=12, seconds=59, milliseconds=750),
        D10 + timedelta(hours=12, seconds=1, microseconds=123_456),
    ]
    window = RollupWindow.objects.filter(organisation=world).order_by("hour").first()
    got = []
    for moment in moments:
        RollupWindow.objects.filter(pk=window.pk).update(computed_at=moment)
        row = RollupWindow.objects.filter(pk=window.pk).annotate(e=EpochSeconds("computed_at"))
        got.append(row.values_list("e", flat=True).get())
    assert got[0] == 1741608000.0 and float(got[0]).is_integer()
    assert got[1] == 1741608059.75  # not rounded into the next minute
    assert got[1] // 60 == got[0] // 60
    # SQLite resolves a Julian day to the millisecond, PostgreSQL to the microsecond.
    assert got[2] == pytest.approx(1741608001.123456, abs=1e-3)


def test_unknown_keys_and_columns_are_refused(world):
    with pytest.raises(read.BadRead):
        energy(world, by=["colour"])
    with pytest.raises(read.BadRead):
        read.sums(organisation_id=world.pk, start=START, end=END, columns=["hours"])


# --- the daily parts' cache (kpis/read/cache.py) ---------------------------------------------


def test_the_cache_answers_a_repeated_read_with_the_same_figures_and_no_daily_query(world):
    first = read.sums(
        organisation_id=world.pk, start=START, end=END, columns=["energy_kwh"], by=["team_id"]
    )
    with CaptureQueriesContext(connection) as queries:
        again = read.sums(
            organisation_id=world.pk, start=START, end=END, columns=["energy_kwh"], by=["team_id"]
        )
    assert len(queries) == 1  # freshness only: whole fresh days, all from the cache
    assert again.sort_values("team_id").values.tolist() == (
        first.sort_values("team_id").values.tolist()
    )
    assert float(again["energy_kwh"].sum()) == pytest.approx(15.5)


def test_a_refresh_of_a_day_in_the_range_makes_the_cached_part_unused(world):
    assert energy(world, by=["model_key"]) == pytest.approx(15.5)  # cached
    late = HourlyRollup.objects.get(hour=D10 + timedelta(days=1))
    late.energy_kwh = 6.0
    late.save()
    daily.days_refresh(organisation_id=world.pk, days=[DAYS[1]])  # a new stamp for the 11th
    assert DailyRollup.objects.get(day=DAYS[1]).energy_kwh == pytest.approx(6.0)
    assert energy(world, by=["model_key"]) == pytest.approx(17.5)
    assert energy(world, by=["team_id"]) == pytest.approx(17.5)


def test_a_stale_day_is_read_from_the_hours_even_with_its_old_daily_part_cached(world):
    assert energy(world) == pytest.approx(15.5)  # cached with the 11th from the daily table
    late = HourlyRollup.objects.get(hour=D10 + timedelta(days=1))
    late.energy_kwh = 6.0
    late.save()
    RollupWindow.objects.filter(hour=late.hour).update(
        computed_at=F("computed_at") + timedelta(days=3650)
    )
    assert energy(world) == pytest.approx(17.5)  # the 11th skipped: another daily query


def test_a_zone_change_is_never_answered_from_the_old_zones_days(world):
    assert energy(world, by=["team_id"], grain="day") == pytest.approx(15.5)
    world.time_zone = "America/Los_Angeles"
    world.save()  # drops the daily rows and their refresh records (kpis.signals)
    frame = read.sums(
        organisation_id=world.pk,
        start=datetime(2025, 3, 10, 7, tzinfo=UTC),  # midnight in Los Angeles (PDT from the 9th)
        end=datetime(2025, 3, 13, 7, tzinfo=UTC),
        columns=["energy_kwh"],
        grain="day",
    )
    got = dict(zip(frame["bucket_utc"].dt.date.astype(str), frame["energy_kwh"], strict=True))
    # PDT (UTC-7) from the 9th: 00:00 and 06:00 UTC of the 10th are the 9th (outside), 23:00 of
    # the 10th and 00:00 of the 11th are the 10th (1 + 4 kWh), 12:00 of the 12th is the 12th.
    # The UTC days cached above (3.5, 4, 8) would have said otherwise.
    assert got == {"2025-03-10": pytest.approx(5.0), "2025-03-12": pytest.approx(8.0)}


@override_settings(READ_CACHE_MAX_ROWS=1)
def test_a_part_larger_than_the_bound_is_not_kept(world):
    energy(world, by=["team_id"])  # two groups: over the bound of one row
    with CaptureQueriesContext(connection) as queries:
        assert energy(world, by=["team_id"]) == pytest.approx(15.5)
    assert len(queries) == 2  # freshness and the daily part again
