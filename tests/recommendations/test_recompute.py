"""The recompute end to end over real rollup rows (SQLite and PostgreSQL): findings with a stable
identity, decisions that survive recomputes, "materially changed", snoozes, and the ledger booking
a realised saving once an accepted pool shrinks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from workloads.test_advice import world  # noqa: F401  (the fixture of docs/carbon-advice.md)

from greenkpi.inventory.models import Device, Host
from greenkpi.kpis import daily
from greenkpi.kpis.models import HourlyRollup, RecomputeRun
from greenkpi.recommendations import services
from greenkpi.recommendations.models import Decision, Finding, RealisedSaving, State

NOW = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


def pool_rows(acme, *, gpus: int, days: int, end: datetime, busy: float = 0.04) -> None:
    """A notebook pool of ``gpus`` H100s of the vision team, ``busy`` of each hour used:
    each GPU-hour 0.1 kWh, (1 - busy) of it idle; France, PUE 1.3, 50 g/kWh, 0.2 EUR/kWh."""
    host, _ = Host.objects.get_or_create(
        organisation=acme, hostname="pool-1", defaults={"site": acme.paris}
    )
    devices = [
        Device.objects.get_or_create(
            host=host, kind="gpu", uuid=f"GPU-{i}", defaults={"model_name": "NVIDIA H100 80GB HBM3"}
        )[0]
        for i in range(4)
    ]
    rows = []
    hour = end - timedelta(days=days)
    while hour < end:
        for device in devices[:gpus]:
            kwh = 0.1
            rows.append(
                HourlyRollup(
                    organisation=acme, hour=hour, device=device, device_kind="gpu", host=host,
                    site=acme.paris, team=acme.vision, model_key="notebook-pool",
                    run_key="notebook-pool", samples=60, covered_s=3600, energy_kwh=kwh,
                    estimated_energy_kwh=0, pue=1.3, facility_energy_kwh=kwh * 1.3,
                    allocated_gpu_h=1, busy_gpu_h=busy, util_known_gpu_h=1, idle_gpu_h=1 - busy,
                    idle_energy_kwh=kwh * (1 - busy), intensity_g_per_kwh=50,
                    intensity_source="annual", intensity_zone="FR", market_g_per_kwh=10,
                    market_source="contract", operational_location_kgco2e=kwh * 1.3 * 0.05,
                    operational_market_kgco2e=kwh * 1.3 * 0.01, embodied_kgco2e=0.004,
                    cost=kwh * 1.3 * 0.2, currency="EUR", methodology_version="gk-2026.1",
                )
            )  # fmt: skip
        hour += timedelta(hours=1)
    HourlyRollup.objects.bulk_create(rows)


def test_the_pool_is_found_priced_and_kept_by_identity(acme):
    pool_rows(acme, gpus=4, days=28, end=NOW)
    (pool,) = [
        f for f in services.recompute(organisation=acme, now=NOW) if f.detector == "idle-allocation"
    ]
    # 4 GPUs x 672 h, 96 % idle: 258.048 kWh of idle energy in the window, x 8766 / 672 a year;
    # kg at the pool's own ratio: 1.3 x 0.05 = 0.065 kg per IT kWh (market 0.013), 0.26 EUR.
    annual = 4 * 672 * 0.1 * 0.96 * 8766 / 672
    assert pool.annual_kwh == pytest.approx(annual)
    assert pool.annual_location_kgco2e == pytest.approx(annual * 0.065)
    assert pool.annual_market_kgco2e == pytest.approx(annual * 0.013)
    assert pool.annual_cost == pytest.approx(annual * 0.26) and pool.currency == "EUR"
    assert pool.owner == "vision/notebook-pool" and pool.evidence_url.startswith("/teams/")
    # The pool's H100s are also 4 % busy: a right-size finding beside it.
    assert Finding.objects.filter(detector="right-size", owner="vision/notebook-pool").exists()
    services.decide(finding=pool, state=State.ACCEPTED, reason="culler on", user=None, now=NOW)
    services.recompute(organisation=acme, now=NOW + timedelta(hours=1))
    again = Finding.objects.get(pk=pool.pk)  # same row, same identity
    assert again.state == State.ACCEPTED and again.reason == "culler on"
    assert Finding.objects.filter(organisation=acme).count() == 2


def test_dismissed_stays_dismissed_until_the_evidence_changes_materially(acme):
    pool_rows(acme, gpus=2, days=28, end=NOW)
    services.recompute(organisation=acme, now=NOW)
    pool = Finding.objects.get(detector="idle-allocation")
    dismissed_at = pool.annual_kwh  # 2 GPUs: 1,682.9 kWh a year
    services.decide(finding=pool, state=State.DISMISSED, reason="teaching lab", user=None, now=NOW)
    # A third GPU joins for the last 7 days: +12.5 % (63 GPU-days instead of 56): not material.
    pool_rows_extra(acme, gpus=1, days=7, end=NOW)
    services.recompute(organisation=acme, now=NOW)
    pool.refresh_from_db()
    assert pool.state == State.DISMISSED
    assert pool.annual_kwh == pytest.approx(dismissed_at * 1.125)
    # A fourth GPU for all 28 days: 91 GPU-days, x 1.625 of the dismissed estimate (+1,052 kWh):
    # material.
    pool_rows_extra(acme, gpus=1, days=28, end=NOW, first=3)
    services.recompute(organisation=acme, now=NOW)
    pool.refresh_from_db()
    assert pool.annual_kwh >= 1.5 * dismissed_at
    assert pool.state == State.OPEN
    assert pool.reason == "evidence changed materially since the dismissal"
    assert list(Decision.objects.filter(finding=pool).values_list("state", flat=True)) == [
        "dismissed",
        "open",
    ]


def pool_rows_extra(acme, *, gpus: int, days: int, end: datetime, first: int = 2) -> None:
    """More GPUs of the same pool (devices ``first``.. of the host) for the last ``days``."""
    host = Host.objects.get(organisation=acme, hostname="pool-1")
    rows = []
    for device in list(Device.objects.filter(host=host).order_by("uuid"))[first : first + gpus]:
        for template in HourlyRollup.objects.filter(
            device__uuid="GPU-0", hour__gte=end - timedelta(days=days)
        ):
            template.pk, template.device = None, device
            rows.append(template)
    HourlyRollup.objects.bulk_create(rows)


def test_a_small_finding_growing_tenfold_by_under_100_kwh_is_not_material(acme):
    from greenkpi.recommendations import detectors

    finding = Finding(dismissed_kwh=10.0, dismissed_kgco2e=1.0, dismissed_evidence={})
    grown = detectors.Finding("idle-allocation", "model", "x", "s", None, "x", "", "", 100.0)
    assert not services.materially_changed(finding, grown)  # x10 but +90 kWh
    assert services.materially_changed(finding, detectors.replace(grown, annual_kwh=110.0))
    moved = detectors.Finding("right-size", "model", "x", "s", None, "x", "", "", 10.0,
                              evidence={"gpu_family": "A100"})  # fmt: skip
    finding.dismissed_evidence = {"gpu_family": "H100"}
    assert services.materially_changed(finding, moved)  # other hardware: always material


def test_a_snooze_ends_by_itself_and_decisions_need_a_reason(acme):
    pool_rows(acme, gpus=4, days=28, end=NOW)
    services.recompute(organisation=acme, now=NOW)
    pool = Finding.objects.get(detector="idle-allocation")
    with pytest.raises(services.DecisionError) as missing:
        services.decide(finding=pool, state=State.DISMISSED, reason=" ", user=None, now=NOW)
    assert missing.value.field == "reason"
    with pytest.raises(services.DecisionError) as past:
        services.decide(
            finding=pool, state=State.SNOOZED, reason="later", user=None, now=NOW,
            snoozed_until=NOW - timedelta(days=1),
        )  # fmt: skip
    assert past.value.field == "snoozed_until"
    services.decide(
        finding=pool, state=State.SNOOZED, reason="after the deadline", user=None, now=NOW,
        snoozed_until=NOW + timedelta(days=2),
    )  # fmt: skip
    services.recompute(organisation=acme, now=NOW + timedelta(days=1))
    assert Finding.objects.get(pk=pool.pk).state == State.SNOOZED
    services.recompute(organisation=acme, now=NOW + timedelta(days=3))
    assert Finding.objects.get(pk=pool.pk).state == State.OPEN


def test_the_ledger_books_the_shrunk_pool_against_its_counterfactual(acme):
    decided = NOW - timedelta(days=7)
    # Four GPUs 4 % busy until the decision; then two GPUs doing the same work at 8 % busy.
    pool_rows(acme, gpus=4, days=21, end=decided + timedelta(days=1))
    pool_rows_after(acme, start=decided + timedelta(days=1), end=NOW)
    services.recompute(organisation=acme, now=decided)
    pool = Finding.objects.get(detector="idle-allocation")
    services.decide(
        finding=pool, state=State.ACCEPTED, reason="shrink to 2", user=None, now=decided
    )
    run = services.recompute_all(now=NOW)
    assert run.status == "ok" and RecomputeRun.objects.filter(kind="recommendations").exists()
    saving = RealisedSaving.objects.get(finding=pool)
    # Before (the 14 days before the decision): 0.1 kWh per GPU-hour at 0.04 busy -> 2.5 kWh per
    # busy GPU-hour. After (6 days from the change): 2 GPUs x 144 h x 0.08 = 23.04 busy GPU-h,
    # counterfactual 57.6 kWh, measured 2 x 144 x 0.1 = 28.8 kWh: saved 28.8 kWh (every day's
    # rate was the same: uncertainty 0); kg at 0.065 per kWh.
    assert saving.kwh_per_unit_before == pytest.approx(2.5)
    assert saving.units_after == pytest.approx(23.04)
    assert saving.counterfactual_kwh == pytest.approx(57.6)
    assert saving.actual_kwh == pytest.approx(28.8)
    assert saving.saved_kwh == pytest.approx(28.8)
    assert saving.uncertainty_kwh == pytest.approx(0.0, abs=1e-9)
    assert saving.saved_location_kgco2e == pytest.approx(28.8 * 0.065)
    assert "fell to 2" in saving.change


def pool_rows_after(acme, *, start: datetime, end: datetime) -> None:
    pool_rows(acme, gpus=2, days=(end - start).days, end=end, busy=0.08)


def test_the_task_is_on_the_beat_and_retries_only_transient_errors():
    from greenkpi.lib.retry import TRANSIENT_ERRORS
    from greenkpi.recommendations import tasks
    from greenkpi.schedule import BEAT_SCHEDULE

    entry = BEAT_SCHEDULE["recommendations-recompute"]
    assert entry["task"] == tasks.recompute_recommendations.name
    assert entry["options"]["expires"] <= 3600
    assert tasks.recompute_recommendations.acks_late is True
    assert set(tasks.recompute_recommendations.autoretry_for) == set(TRANSIENT_ERRORS)


def test_the_ledger_books_a_lengthened_retraining_cadence(acme):
    """A model retrained daily (2 kWh a retrain) until the decision, then weekly: the first
    skipped retrain is the change; 2 kWh a day before x the days since, minus what was spent."""
    from greenkpi.workloads import services as registry

    model, _ = registry.model_register(team=acme.vision, key="ranker")
    decided = NOW - timedelta(days=10)  # 2026-03-19
    host, _ = Host.objects.get_or_create(
        organisation=acme, hostname="train-1", defaults={"site": acme.paris}
    )
    gpu, _ = Device.objects.get_or_create(
        host=host, kind="gpu", uuid="GPU-T", defaults={"model_name": "NVIDIA A100-SXM4-40GB"}
    )
    days = [decided - timedelta(days=14 - i) for i in range(14)]  # daily until the day before
    days += [decided + timedelta(days=3), decided + timedelta(days=9)]  # then weekly-ish
    rows = []
    for start in days:
        run, _ = registry.run_open(
            model=model,
            key=f"r-{start:%m%d}",
            kind="training",
            started_at=start + timedelta(hours=1),
        )
        rows.append(
            HourlyRollup(
                organisation=acme, hour=start + timedelta(hours=1), device=gpu, device_kind="gpu",
                host=host, site=acme.paris, team=acme.vision, model_key="ranker", run_key=run.key,
                samples=60, covered_s=3600, energy_kwh=2.0, estimated_energy_kwh=0, pue=1.3,
                facility_energy_kwh=2.6, allocated_gpu_h=1, busy_gpu_h=0.9, util_known_gpu_h=1,
                intensity_g_per_kwh=50, intensity_source="annual", intensity_zone="FR",
                market_g_per_kwh=10, market_source="contract", operational_location_kgco2e=0.13,
                operational_market_kgco2e=0.026, embodied_kgco2e=0.004, cost=0.52, currency="EUR",
                methodology_version="gk-2026.1",
            )
        )  # fmt: skip
    HourlyRollup.objects.bulk_create(rows)
    # As the beat would: the daily tables the read layer serves whole days from.
    daily.days_refresh(
        organisation_id=acme.pk, days=[(NOW - timedelta(days=d)).date() for d in range(1, 30)]
    )
    finding = Finding.objects.create(
        organisation=acme, detector="retraining-cadence", owner_kind="model", owner="vision/ranker",
        subject="retraining", team=acme.vision, model_key="ranker", title="t", action="a",
        tactic="Use Informed Adaptation", annual_kwh=500.0, annual_location_kgco2e=30.0,
        state=State.ACCEPTED, decided_at=decided,
    )  # fmt: skip
    saving = services.ledger_book(finding=finding, now=NOW)
    # Median gap before 1 day; last retrain the day before the decision (03-18); 03-20 is more
    # than 1.5 days later: the change. 14 days before at 2 kWh each -> 2 kWh a day; 9 whole
    # days from 03-20 to 03-28 -> counterfactual 18 kWh; measured 2 retrains = 4 kWh; 14 saved.
    assert saving is not None and "skipped" in saving.change
    assert saving.changed_at.date().isoformat() == "2026-03-20"
    assert saving.kwh_per_unit_before == pytest.approx(2.0)
    assert saving.units_after == pytest.approx(9.0)
    assert (saving.counterfactual_kwh, saving.actual_kwh) == (
        pytest.approx(18.0),
        pytest.approx(4.0),
    )
    assert saving.saved_kwh == pytest.approx(14.0)
    assert saving.saved_location_kgco2e == pytest.approx(14.0 * 0.065)


def test_the_ledger_books_a_moved_job_with_the_advice_measured_saving(world):  # noqa: F811
    """docs/carbon-advice.md's example: the nightly retrain accepted on March 5 at 00:00, moved to
    Berlin 12:00 the same day: 12 kWh x (0.13 - 0.0132) = 1.4016 kg saved, 0 kWh."""
    from workloads.test_advice import measured_run, nightly

    nightly(world)
    model = world["model"]
    finding = Finding.objects.create(
        organisation=model.team.organisation, detector="shift", owner_kind="model",
        owner="nlp/bert", subject="nightly-retrain", team=model.team, model_key="bert",
        title="t", action="a", tactic="Use Energy-Aware Scheduling", annual_kwh=0.0,
        annual_location_kgco2e=651.97, state=State.ACCEPTED,
        decided_at=datetime(2026, 3, 5, tzinfo=UTC),
    )  # fmt: skip
    moment = datetime(2026, 3, 6, tzinfo=UTC)
    assert services.ledger_book(finding=finding, now=moment) is None  # not moved yet
    measured_run(world, "n5", "berlin-dc", datetime(2026, 3, 5, 12, tzinfo=UTC), [8, 4], 12)
    saving = services.ledger_book(finding=finding, now=moment)
    assert saving.change == "nightly-retrain moved from paris-dc 20:00 to berlin-dc 12:00 UTC"
    assert saving.saved_kwh == 0.0 and saving.saved_market_kgco2e is None
    assert saving.saved_location_kgco2e == pytest.approx(1.4016)
    assert saving.units_after == pytest.approx(12.0)
    # Accepted only after the move: the move was not this recommendation's doing.
    finding.decided_at = datetime(2026, 3, 5, 13, tzinfo=UTC)
    RealisedSaving.objects.all().delete()
    assert services.ledger_book(finding=finding, now=moment) is None
