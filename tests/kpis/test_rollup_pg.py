"""The PostgreSQL one-statement rollup stores exactly what the generic (row-building) path does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from greenkpi.carbon.models import ElectricityTariff, GridIntensityHourly, MarketFactor
from greenkpi.inventory.models import Device
from greenkpi.kpis import rollup, rollup_pg
from greenkpi.kpis.models import HourlyRollup

pytestmark = [pytest.mark.postgres]
SKIP = {"id"}


def stored(org, hour) -> list[dict]:
    rows = HourlyRollup.objects.filter(organisation=org, hour=hour).values()
    key = lambda r: (r["device_id"], r["team_id"] or 0, r["model_key"], r["run_key"])  # noqa: E731
    return sorted(({k: v for k, v in r.items() if k not in SKIP} for r in rows), key=key)


def test_the_one_statement_rollup_equals_the_generic_path_field_for_field(
    acme, acme_token, ingest, hour
):
    assert connection.vendor == "postgresql", "this layer runs with DATABASE_URL=postgres://..."
    _, secret = acme_token
    shares = [
        {"energy_j": 9000.0, "method": "utilization", "team": "nlp", "model": "bert", "run": "r1"},
        {"energy_j": 3000.0, "method": "unattributed"},
    ]
    ingest(secret, site="paris-dc", start=hour + timedelta(minutes=5))
    ingest(secret, devices=1, start=hour + timedelta(minutes=20), shares=shares)
    ElectricityTariff.objects.create(
        site=acme.paris, valid_from=hour - timedelta(days=1), price_per_kwh=0.2, currency="EUR"
    )
    MarketFactor.objects.create(
        site=acme.paris, valid_from=hour - timedelta(days=1), intensity_g_per_kwh=12.5
    )
    GridIntensityHourly.objects.create(
        zone="FR", hour=hour, intensity_lifecycle_g_per_kwh=55.5, renewable_share=0.3
    )
    Device.objects.filter(host__organisation=acme).update(embodied_kgco2e=None, lifetime_years=3)
    now = timezone.now()

    with transaction.atomic():
        generic = rollup.build_rows(organisation_id=acme.pk, hour=hour, now=now)
        rollup.write_rows(generic)
    expected = stored(acme, hour)
    HourlyRollup.objects.all().delete()
    with transaction.atomic():
        written = rollup_pg.window_insert(organisation_id=acme.pk, hour=hour, now=now)
    got = stored(acme, hour)

    assert written == len(generic) == len(got) >= 3
    assert {(r["market_source"], r["intensity_source"]) for r in got} == {("contract", "hourly")}
    assert all(r["cost"] is not None for r in got)
    assert any(r["model_key"] == "bert" for r in got)
    assert got == expected


def test_windows_of_other_lengths_and_busy_windows_sum_as_the_generic_path_does(
    acme, acme_token, ingest, hour
):
    """The sums take a one-minute window's 60 s without computing it and skip busy windows in
    the idle energy: 30 s and 90 s windows (measured), busy windows (idle 0) and windows idle by
    utilization store what the generic path stores, and the hand-worked figures."""
    _, secret = acme_token

    def busy(sample):
        sample["idle_s"] = 0.0

    def idle_by_utilization(sample):
        sample["idle_s"], sample["util_busy"] = None, 0.01

    ingest(secret, hostname="busy", devices=1, start=hour, tweak=busy)  # 3 x 60 s
    ingest(
        secret,
        hostname="short",
        devices=1,
        windows=4,
        start=hour + timedelta(minutes=10),
        window_s=30,
        tweak=idle_by_utilization,
    )
    ingest(
        secret,
        hostname="long",
        devices=1,
        windows=2,
        start=hour + timedelta(minutes=20),
        window_s=90,
    )  # idle_s 5.0 of each 90 s
    now = timezone.now()
    with transaction.atomic():
        rollup.write_rows(rollup.build_rows(organisation_id=acme.pk, hour=hour, now=now))
    expected = stored(acme, hour)
    HourlyRollup.objects.all().delete()
    with transaction.atomic():
        rollup_pg.window_insert(organisation_id=acme.pk, hour=hour, now=now)
    got = stored(acme, hour)

    assert got == expected
    assert sorted(r["covered_s"] for r in got) == [120.0, 180.0, 180.0]
    kwh = 12_000.0 / 3.6e6  # one window's energy
    [short] = [r for r in got if r["covered_s"] == 120.0]  # 4 x 30 s, all idle
    assert short["idle_gpu_h"] == pytest.approx(120 / 3600)
    assert short["idle_energy_kwh"] == pytest.approx(4 * kwh)
    assert short["busy_gpu_h"] == pytest.approx(120 * 0.01 / 3600)
    longer = [r for r in got if r["covered_s"] == 180.0 and r["idle_gpu_h"]]
    assert len(longer) == 1  # 2 x 90 s, 5 s idle each: 10 s and 2 x 5/90 of a window's energy
    assert longer[0]["idle_gpu_h"] == pytest.approx(10 / 3600)
    assert longer[0]["idle_energy_kwh"] == pytest.approx(2 * kwh * 5 / 90)
    busy_row = [r for r in got if r["covered_s"] == 180.0 and not r["idle_gpu_h"]]
    assert len(busy_row) == 1 and busy_row[0]["idle_energy_kwh"] == 0.0


def test_devices_interleaved_with_another_organisations_sum_only_their_own(
    acme, acme_token, globex_token, ingest, hour
):
    """The organisation's devices are tested as ranges of consecutive ids (``_devices_sql``):
    with another organisation's devices registered between two of its hosts, the ranges leave
    them out, and the rows are the generic path's."""
    _, acme_secret = acme_token
    _, globex_secret = globex_token
    ingest(acme_secret, hostname="a1", start=hour)
    ingest(globex_secret, hostname="g1", start=hour)
    ingest(acme_secret, hostname="a2", start=hour)
    ids = sorted(Device.objects.filter(host__organisation=acme).values_list("pk", flat=True))
    between = rollup_pg._devices_sql(ids)
    assert between.count("BETWEEN") == 2 and "ANY" not in between  # two runs, globex's between
    now = timezone.now()
    with transaction.atomic():
        rollup.write_rows(rollup.build_rows(organisation_id=acme.pk, hour=hour, now=now))
    expected = stored(acme, hour)
    HourlyRollup.objects.all().delete()
    with transaction.atomic():
        written = rollup_pg.window_insert(organisation_id=acme.pk, hour=hour, now=now)
    assert written == 4 and stored(acme, hour) == expected  # 2 hosts x 2 GPUs, acme's only
    assert {r["device_id"] for r in expected} == set(ids)


def test_the_remembered_guess_about_shares_changes_the_work_never_the_rows(
    acme, acme_token, ingest, hour
):
    """``windows_insert`` sums without owners first when the organisation's last batch had no
    shares, and checks inside that statement: a guess gone stale (shares now) redoes the sums
    with owners; a guess of shares on a shareless hour still looks first. Same rows each way."""
    _, secret = acme_token
    shares = [
        {"energy_j": 9000.0, "method": "utilization", "team": "nlp", "model": "bert", "run": "r1"},
        {"energy_j": 3000.0, "method": "unattributed"},
    ]
    h0, h1 = hour, hour + timedelta(hours=1)
    ingest(secret, site="paris-dc", start=h0 + timedelta(minutes=5))
    ingest(secret, site="paris-dc", start=h1 + timedelta(minutes=5))
    ingest(secret, devices=1, start=h1 + timedelta(minutes=20), shares=shares)
    now = timezone.now()
    expected = {}
    for h in (h0, h1):
        with transaction.atomic():
            rollup.write_rows(rollup.build_rows(organisation_id=acme.pk, hour=h, now=now))
        expected[h] = stored(acme, h)
    assert any(r["model_key"] == "bert" for r in expected[h1])

    def recompute(h, guess):
        """Rows written and statements run for hour ``h``, starting from ``guess``."""
        HourlyRollup.objects.all().delete()
        rollup_pg._SHARED_SEEN[acme.pk] = guess
        with CaptureQueriesContext(connection) as ctx, transaction.atomic():
            written = rollup_pg.window_insert(organisation_id=acme.pk, hour=h, now=now)
        assert written == len(expected[h]) and stored(acme, h) == expected[h]
        return [q["sql"].split()[0:3] for q in ctx.captured_queries]

    looks = ["SELECT", "EXISTS", "(SELECT"]
    sums = ["CREATE", "TEMPORARY", "TABLE"]
    # no shares, as guessed: one summing statement, no look over the samples
    ran = recompute(h0, False)
    assert ran.count(sums) == 1 and ran.count(looks) == 1  # (the look into the sums)
    assert rollup_pg._SHARED_SEEN[acme.pk] is False
    # shares after all: the owner-less sums are thrown away and redone with owners
    ran = recompute(h1, False)
    assert ran.count(sums) == 2
    assert rollup_pg._SHARED_SEEN[acme.pk] is True
    # shares guessed (or nothing known): a look over the samples first, then one summing
    for guess in (True, None):
        for h in (h0, h1):
            ran = recompute(h, guess)
            assert ran.count(sums) == 1 and ran.count(looks) == 2
            assert rollup_pg._SHARED_SEEN[acme.pk] is (h == h1)


def test_a_window_without_samples_inserts_nothing(acme, hour):
    assert rollup_pg.window_insert(organisation_id=acme.pk, hour=hour, now=timezone.now()) == 0


def test_a_batch_of_hours_stores_exactly_what_the_generic_path_stores_hour_by_hour(
    acme, acme_token, ingest, hour
):
    """Three hours whose factors all differ (annual / hourly intensity, no tariff / tariff, no
    contract / contract) and one hour with shares, recomputed as one batch and as a batch with a
    gap (the middle hour held elsewhere): every row equals the generic path's, field for field."""
    _, secret = acme_token
    h0, h1, h2 = hour, hour + timedelta(hours=1), hour + timedelta(hours=2)
    shares = [
        {"energy_j": 9000.0, "method": "utilization", "team": "nlp", "model": "bert", "run": "r1"},
        {"energy_j": 3000.0, "method": "unattributed"},
    ]
    ingest(secret, site="paris-dc", start=h0 + timedelta(minutes=5))
    ingest(secret, site="paris-dc", start=h1 + timedelta(minutes=7), energy_j=18_000.0)
    ingest(secret, site="paris-dc", devices=1, start=h1 + timedelta(minutes=30), shares=shares)
    ingest(secret, site="paris-dc", start=h2 + timedelta(minutes=58), windows=4)  # 2 in h3
    GridIntensityHourly.objects.create(
        zone="FR", hour=h1, intensity_lifecycle_g_per_kwh=55.5, renewable_share=0.3
    )
    ElectricityTariff.objects.create(
        site=acme.paris, valid_from=h1, price_per_kwh=0.2, currency="EUR"
    )
    MarketFactor.objects.create(site=acme.paris, valid_from=h2, intensity_g_per_kwh=12.5)
    Device.objects.filter(host__organisation=acme).update(embodied_kgco2e=None, lifetime_years=3)
    now = timezone.now()

    expected = {}
    for h in (h0, h1, h2):
        with transaction.atomic():
            rollup.write_rows(rollup.build_rows(organisation_id=acme.pk, hour=h, now=now))
        expected[h] = stored(acme, h)
    HourlyRollup.objects.all().delete()

    with transaction.atomic():
        written = rollup_pg.windows_insert(organisation_id=acme.pk, hours=[h2, h0, h1], now=now)
    assert written == {h: len(expected[h]) for h in (h0, h1, h2)}
    # h1: GPU 0 for vision (its plain windows merged with the unattributed share) and for nlp
    assert [len(expected[h]) for h in (h0, h1, h2)] == [2, 3, 2]
    for h in (h0, h1, h2):
        assert stored(acme, h) == expected[h]
    # the hours really differ: each row carries its own hour's factors
    assert {r["intensity_source"] for r in expected[h0]} == {"annual"}
    assert {r["intensity_source"] for r in expected[h1]} == {"hourly"}
    assert {r["cost"] is None for r in expected[h0]} == {True}
    assert {r["market_source"] for r in expected[h2]} == {"contract"}
    assert not HourlyRollup.objects.filter(hour=h2 + timedelta(hours=1)).exists()

    HourlyRollup.objects.all().delete()
    with transaction.atomic():
        written = rollup_pg.windows_insert(organisation_id=acme.pk, hours=[h0, h2], now=now)
    assert written == {h0: 2, h2: 2}
    assert stored(acme, h0) == expected[h0]
    assert stored(acme, h2) == expected[h2]
    assert stored(acme, h1) == []


def test_the_sums_of_a_large_batch_run_in_parallel_workers(acme):
    """The sums go through CREATE TABLE AS so that PostgreSQL may run them in parallel (an
    INSERT ... SELECT never is): for a large batch each worker sums its part of the samples
    (partial aggregates), i.e. nothing in the statement (such as an OFFSET 0 fence) forbids it."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    params = {
        "start": hour,
        "end": hour + timedelta(hours=3),
        "hours": [hour, hour + timedelta(hours=2)],
        "devices": list(range(1, 201)),
        "estimate": "estimate",
        "idle_below": 0.05,
    }
    with transaction.atomic(), connection.cursor() as cur:
        # 200 devices x 3 hours of minutes, so that the planner sees a large batch
        cur.execute(
            "INSERT INTO ingest_sample (device_id, window_start, window_end, energy_j, method, "
            "batch_id) SELECT d, t, t + interval '1 minute', 6000, 'counter', 0 "
            "FROM generate_series(1, 200) d, generate_series(%s::timestamptz, "
            "%s::timestamptz - interval '1 minute', interval '1 minute') t",
            [params["start"], params["end"]],
        )
        cur.execute("ANALYZE ingest_sample")
        cur.execute("SET LOCAL parallel_setup_cost = 0")
        cur.execute("SET LOCAL parallel_tuple_cost = 0")
        cur.execute("SET LOCAL min_parallel_table_scan_size = 0")
        # (with shares the equal-split subquery keeps the scan in one process)
        sql = rollup_pg._sums_sql(shared=False, sparse=False, devices=params["devices"])
        cur.execute("EXPLAIN " + sql.split(" AS\n", 1)[1], params)
        plan = "\n".join(r[0] for r in cur.fetchall())
        assert "Partial HashAggregate" in plan or "Partial GroupAggregate" in plan, plan
        transaction.set_rollback(True)
