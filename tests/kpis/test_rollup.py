"""Hourly rollups from samples ingested through the real API, checked against hand-worked figures
(docs/kpis.md, "Worked example: one hour in Paris")."""

from __future__ import annotations

from datetime import timedelta

import pytest

from greenkpi.carbon.methodology import METHODOLOGY_VERSION
from greenkpi.carbon.models import ElectricityTariff, GridIntensityHourly, MarketFactor
from greenkpi.kpis import dirty, services
from greenkpi.kpis.models import HourlyRollup, RecomputeRun, RollupWindow

# One H100 window: 60 s, 12,000 J, busy 75 %, idle 5 s. Three windows per device in the hour.
# France's Scope 2 location-based factor: direct, from the shipped 2023 generation mix
# (tests/carbon/test_reporting_factors.py hand-works it): 17,212.96 / 514.11 = 33.4811 g/kWh.
FR_G_PER_KWH = 17212.96 / 514.11
# The batch's host declares GPUs, so without a class it is an 8-GPU server: 1000 + 100 +
# (1024 - 16) x 533/384 + 4 x 100 = 2899.125 kgCO2e over 4 years, shared by its reporting devices.
HOST_KG = 2899.125
LIFE_S = 4 * 31_557_600
FR_RENEWABLE = 0.2629  # OWID 2023 France


def rows_of(org, hour):
    return list(
        HourlyRollup.objects.filter(organisation=org, hour=hour).order_by(
            "device_id", "team_id", "model_key"
        )
    )


def recompute(org, hour):
    result = services.window_recompute(organisation_id=org.pk, hour=hour)
    assert result.status == "done", result
    return rows_of(org, hour)


def test_an_hour_of_samples_rolls_up_to_the_hand_worked_figures(acme, acme_token, ingest, hour):
    _, secret = acme_token
    ElectricityTariff.objects.create(
        site=acme.paris, valid_from=hour - timedelta(days=30), price_per_kwh=0.20, currency="EUR"
    )
    ingest(secret, site="paris-dc", start=hour + timedelta(minutes=10))

    rows = recompute(acme, hour)

    assert len(rows) == 2  # one per GPU, all owned by the token's default team
    for row in rows:
        assert row.team_id == acme.vision.pk
        assert (row.model_key, row.run_key) == ("", "")
        assert row.samples == 3
        assert row.energy_kwh == pytest.approx(0.01)  # 3 x 12,000 J / 3.6e6
        assert row.pue == 1.3
        assert row.facility_energy_kwh == pytest.approx(0.013)
        assert row.allocated_gpu_h == pytest.approx(0.05)  # 180 s
        assert row.busy_gpu_h == pytest.approx(0.0375)  # 0.05 x 0.75
        assert row.util_known_gpu_h == pytest.approx(0.05)
        assert row.idle_gpu_h == pytest.approx(15 / 3600)  # 3 x 5 s
        assert row.idle_energy_kwh == pytest.approx(0.01 * 5 / 60)
        assert row.sm_known_gpu_h == 0.0  # the collector sent no SM activity
        assert row.intensity_source == "annual"
        assert row.intensity_zone == "FR"
        assert row.intensity_g_per_kwh == pytest.approx(FR_G_PER_KWH)
        assert row.intensity_method == "mix"
        assert row.operational_location_kgco2e == pytest.approx(0.013 * 33.4811 / 1000, rel=1e-5)
        assert row.market_source == "location"
        assert row.operational_market_kgco2e == pytest.approx(row.operational_location_kgco2e)
        # 150 kgCO2e x 180 s / (4 years x 31,557,600 s) + the host's 2899.125 kg x 180 s / 2 GPUs
        assert row.embodied_kgco2e == pytest.approx(
            150 * 180 / LIFE_S + HOST_KG * 180 / (2 * LIFE_S)
        )
        assert row.embodied_kgco2e == pytest.approx(2.13894e-4 + 2.067024e-3, rel=1e-5)
        assert row.renewable_share == FR_RENEWABLE
        assert row.cost == pytest.approx(0.0026)  # 0.013 kWh x 0.20 EUR
        assert row.currency == "EUR"
        assert row.estimated_energy_kwh == 0.0
        assert row.methodology_version == METHODOLOGY_VERSION


def test_shares_split_a_window_by_energy_and_the_rest_goes_to_the_default_team(
    acme, acme_token, ingest, hour
):
    _, secret = acme_token
    shares = [
        {"energy_j": 9000.0, "method": "utilization", "team": "nlp", "model": "bert", "run": "r1"},
        {"energy_j": 3000.0, "method": "unattributed"},
    ]
    ingest(secret, devices=1, start=hour + timedelta(minutes=5), shares=shares)

    rows = recompute(acme, hour)

    by_team = {row.team_id: row for row in rows}
    assert set(by_team) == {acme.nlp.pk, acme.vision.pk}
    nlp, vision = by_team[acme.nlp.pk], by_team[acme.vision.pk]
    assert (nlp.model_key, nlp.run_key) == ("bert", "r1")
    assert nlp.energy_kwh == pytest.approx(3 * 9000 / 3.6e6)
    assert vision.energy_kwh == pytest.approx(3 * 3000 / 3.6e6)
    assert nlp.allocated_gpu_h == pytest.approx(0.05 * 0.75)
    assert vision.allocated_gpu_h == pytest.approx(0.05 * 0.25)
    assert nlp.allocated_gpu_h + vision.allocated_gpu_h == pytest.approx(0.05)
    # No site: PUE 1.0 and the world average, recorded as a default, never zero.
    assert nlp.pue == 1.0
    assert nlp.intensity_source == "default"
    assert nlp.intensity_zone == "WORLD"
    assert nlp.cost is None


def test_a_recompute_replaces_the_window_and_never_adds_to_it(acme, acme_token, ingest, hour):
    _, secret = acme_token
    ingest(secret, site="paris-dc", start=hour)
    first = [
        (r.device_id, r.team_id, r.energy_kwh, r.embodied_kgco2e) for r in recompute(acme, hour)
    ]
    dirty.windows_mark_dirty(organisation_id=acme.pk, window_starts=[hour])
    second = [
        (r.device_id, r.team_id, r.energy_kwh, r.embodied_kgco2e) for r in recompute(acme, hour)
    ]

    assert second == first
    assert HourlyRollup.objects.filter(organisation=acme).count() == 2


def test_a_late_sample_marks_only_its_window_dirty_and_the_recompute_changes_only_that_window(
    acme, acme_token, ingest, hour
):
    _, secret = acme_token
    earlier = hour - timedelta(hours=1)
    ingest(secret, devices=1, start=earlier + timedelta(minutes=1))
    ingest(secret, devices=1, start=hour + timedelta(minutes=1))
    run = services.windows_recompute_dirty()
    assert (run.status, run.windows_done) == ("ok", 2)
    untouched = {(r.pk, r.energy_kwh, r.computed_at) for r in rows_of(acme, hour)}
    assert rows_of(acme, earlier)[0].energy_kwh == pytest.approx(0.01)
    assert services.dirty_windows(limit=10, now=hour + timedelta(days=1)) == []

    # A collector back from an outage sends one window of the earlier hour.
    ingest(secret, devices=1, windows=1, start=earlier + timedelta(minutes=40))

    assert services.dirty_windows(limit=10, now=hour + timedelta(days=1)) == [(acme.pk, earlier)]
    run = services.windows_recompute_dirty()
    assert run.windows_done == 1
    assert rows_of(acme, earlier)[0].energy_kwh == pytest.approx(0.01 + 12_000 / 3.6e6)
    assert rows_of(acme, earlier)[0].samples == 4
    assert {(r.pk, r.energy_kwh, r.computed_at) for r in rows_of(acme, hour)} == untouched


def test_a_replayed_batch_does_not_dirty_its_windows(
    acme, acme_token, post_batch, make_batch, hour
):
    _, secret = acme_token
    body = make_batch(devices=1, start=hour)
    assert post_batch(secret, body, key="k1").status_code == 201
    services.windows_recompute_dirty()
    assert post_batch(secret, body, key="k2").json()["duplicates"] == 3  # same windows, new key
    assert services.dirty_windows(limit=10, now=hour + timedelta(days=1)) == []


def test_rollups_of_one_tenant_never_include_another_tenants_samples(
    acme, globex, acme_token, globex_token, ingest, hour
):
    _, acme_secret = acme_token
    _, globex_secret = globex_token
    # Same hostname and GPU uuids in both tenants: only the organisation tells them apart.
    ingest(acme_secret, devices=1, start=hour)
    ingest(globex_secret, devices=1, start=hour, energy_j=36_000.0)

    acme_rows = recompute(acme, hour)

    assert HourlyRollup.objects.filter(organisation=globex).count() == 0
    assert [r.energy_kwh for r in acme_rows] == [pytest.approx(0.01)]
    assert all(r.team_id == acme.vision.pk for r in acme_rows)
    globex_rows = recompute(globex, hour)
    assert [r.energy_kwh for r in globex_rows] == [pytest.approx(0.03)]
    assert {r.device_id for r in acme_rows}.isdisjoint({r.device_id for r in globex_rows})
    # And recomputing one tenant's window leaves the other's rows alone.
    recompute(acme, hour)
    assert len(rows_of(globex, hour)) == 1


def test_measured_hourly_intensity_and_a_site_contract_are_used_and_recorded(
    acme, acme_token, ingest, hour
):
    _, secret = acme_token
    GridIntensityHourly.objects.create(
        zone="FR", hour=hour, intensity_lifecycle_g_per_kwh=60.0, renewable_share=0.3, source="t"
    )
    MarketFactor.objects.create(
        site=acme.paris, valid_from=hour - timedelta(days=1), intensity_g_per_kwh=5.0
    )
    ingest(secret, devices=1, site="paris-dc", start=hour)

    [row] = recompute(acme, hour)

    assert (row.intensity_source, row.intensity_g_per_kwh, row.renewable_share) == (
        "hourly",
        60.0,
        0.3,
    )
    assert row.operational_location_kgco2e == pytest.approx(0.013 * 60 / 1000)
    assert (row.market_source, row.market_g_per_kwh) == ("contract", 5.0)
    assert row.operational_market_kgco2e == pytest.approx(0.013 * 5 / 1000)


def test_estimated_energy_and_non_gpu_devices_are_kept_apart(acme, acme_token, ingest, hour):
    _, secret = acme_token

    def cpu_estimate(sample):
        sample["device_kind"] = "cpu"
        sample["device_uuid"] = "cpu-0"
        sample["method"] = "estimate"

    ingest(secret, devices=1, start=hour, tweak=cpu_estimate)
    [row] = recompute(acme, hour)

    assert row.device_kind == "cpu"
    assert row.estimated_energy_kwh == pytest.approx(row.energy_kwh)
    assert row.allocated_gpu_h == row.busy_gpu_h == row.idle_gpu_h == 0.0
    # a measured CPU package carries nothing of its own: the whole host's figure (its only
    # reporting device here) covers the CPUs, 2899.125 kg x 180 s / 4 years
    assert row.embodied_kgco2e == pytest.approx(HOST_KG * 180 / LIFE_S)


def test_sm_activity_counts_only_where_the_source_reports_it(acme, acme_token, ingest, hour):
    _, secret = acme_token

    def with_sm(sample):
        sample["util_sm"] = 0.4

    ingest(secret, devices=1, start=hour, tweak=with_sm)
    ingest(secret, devices=1, start=hour + timedelta(minutes=30), windows=1)  # no SM reading
    [row] = recompute(acme, hour)

    assert row.allocated_gpu_h == pytest.approx(4 * 60 / 3600)
    assert row.sm_known_gpu_h == pytest.approx(0.05)
    assert row.sm_active_gpu_h == pytest.approx(0.05 * 0.4)


def test_a_window_claimed_by_another_worker_is_left_alone(acme, acme_token, ingest, hour):
    _, secret = acme_token
    ingest(secret, devices=1, start=hour)
    RollupWindow.objects.filter(organisation=acme, hour=hour).update(
        claimed_until=hour + timedelta(days=2), claimed_by="someone-else"
    )

    assert services.window_recompute(organisation_id=acme.pk, hour=hour).status == "busy"
    assert services.windows_recompute_dirty().windows_done == 0
    assert not HourlyRollup.objects.exists()


def test_a_failing_window_is_recorded_and_pushed_back_not_retried_in_a_loop(
    acme, acme_token, ingest, hour, monkeypatch
):
    _, secret = acme_token
    ingest(secret, devices=1, start=hour)

    def broken(**kwargs):
        raise ValueError("bad factor")

    monkeypatch.setattr(services.rollup, "windows_insert", broken)
    run = services.windows_recompute_dirty()

    assert (run.status, run.windows_failed) == ("partial", 1)
    assert "bad factor" in run.error
    window = RollupWindow.objects.get(organisation=acme, hour=hour)
    assert window.failures == 1
    assert "ValueError: bad factor" in window.last_error
    assert window.claimed_until is not None  # backed off: the next run skips it
    assert services.windows_recompute_dirty().windows_done == 0


def test_each_periodic_run_is_recorded_for_the_ui(acme, acme_token, ingest, hour):
    _, secret = acme_token
    ingest(secret, start=hour)
    run = services.windows_recompute_dirty()
    recorded = RecomputeRun.objects.get(pk=run.pk)
    assert recorded.kind == "periodic"
    assert recorded.status == "ok"
    assert recorded.windows_done == 1
    assert recorded.rows_written == 2
    assert recorded.duration_s is not None and recorded.finished_at is not None


def test_deleting_an_organisation_deletes_its_rollups_and_only_its(
    acme, globex, acme_token, globex_token, ingest, hour
):
    # HourlyRollup.organisation has no database constraint (each row's deferred check slowed the
    # window's insert): the cascade is Django's collector's, and it must still reach the rollups.
    _, acme_secret = acme_token
    _, globex_secret = globex_token
    ingest(acme_secret, devices=2, start=hour)
    ingest(globex_secret, devices=1, start=hour)
    assert len(recompute(acme, hour)) == 2
    assert len(recompute(globex, hour)) == 1

    acme_id = acme.pk
    acme.delete()

    assert HourlyRollup.objects.filter(organisation_id=acme_id).count() == 0
    assert list(HourlyRollup.objects.values_list("organisation_id", flat=True)) == [globex.pk]
