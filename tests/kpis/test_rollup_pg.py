"""The PostgreSQL one-statement rollup stores exactly what the generic (row-building) path does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
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


def test_a_window_without_samples_inserts_nothing(acme, hour):
    assert rollup_pg.window_insert(organisation_id=acme.pk, hour=hour, now=timezone.now()) == 0
