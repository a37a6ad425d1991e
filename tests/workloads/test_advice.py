"""Carbon-aware advice for recurring runs against the hand-worked example of docs/carbon-advice.md:
a small imported hourly series for three zones, a nightly retrain at Paris 20:00 UTC, the least-carbon
start hours and sites (same hardware only), the estimated saving, and the saving measured once the
run moved to Berlin at 12:00. The pure maths is tested without a database first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from testsupport.rollup_rows import hourly_row

from greenkpi.inventory.models import Device, Host
from greenkpi.inventory.services import site_create
from greenkpi.workloads import advice, selectors
from greenkpi.workloads import services as registry
from greenkpi.workloads.models import RunStatus

D1 = datetime(2026, 3, 1, tzinfo=UTC)  # the imported series: March 1 and 2
NOW = datetime(2026, 3, 6, tzinfo=UTC)
H = timedelta(hours=1)
FR_NIGHT_MEAN = (
    20.0  # hour 2 is 10 on March 1 and 30 on March 2: mean 20, like the other night hours
)


def fr(hour: int, day: int) -> float:
    if hour == 2:
        return 10.0 if day == 0 else 30.0
    return 20.0 if hour < 6 else 60.0 if hour < 18 else 100.0


def de(hour: int, day: int) -> float:
    return 10.0 if hour in (12, 13) else 50.0


# --- pure maths ---


def test_the_hour_of_day_profile_is_the_mean_of_each_utc_hour():
    series = [(D1 + d * 24 * H + h * H, fr(h, d)) for d in range(2) for h in range(24)]
    means = advice.hour_of_day_means(series)
    assert means[2] == FR_NIGHT_MEAN and means[20] == 100.0 and len(means) == 24


def test_emissions_replay_the_hourly_energy_and_wrap_past_midnight():
    profile = {h: fr(h, 0) for h in range(24)} | {2: 20.0}
    kg = advice.emissions_kg(energy_kwh=[10, 5], start_hour=23, pue=1.3, intensity=profile)
    assert kg == pytest.approx((10 * 1.3 * 100 + 5 * 1.3 * 20) / 1000)  # 1.43
    assert advice.emissions_kg(energy_kwh=[1], start_hour=5, pue=1.0, intensity={4: 1.0}) is None


def test_ties_go_to_the_current_site_then_the_nearest_start_hour():
    flat = advice.SiteSeries("a", "FR", 1.0, dict.fromkeys(range(24), 50.0))
    other = advice.SiteSeries("b", "DE", 1.0, dict.fromkeys(range(24), 50.0))
    result = advice.advise(energy_kwh=[1.0], current_site="a", current_hour=7, sites=[other, flat])
    assert (result.best.site, result.best.start_hour, result.saving_kgco2e) == ("a", 7, 0.0)


def test_the_latest_move_splits_the_runs_and_the_saving_is_per_kwh():
    def m(key, site, hour, kwh, kg):
        return advice.RunMeasure(key, site, hour, kwh, kg)

    runs = [
        m("old", "oslo", 3, 1, 1),
        m("a", "paris", 20, 15, 1.95),
        m("b", "paris", 20, 15, 1.95),
        m("c", "berlin", 12, 12, 0.1584),
    ]
    before, after = advice.split_at_move(runs)
    assert [r.run_key for r in before] == ["a", "b"] and [r.run_key for r in after] == ["c"]
    saved = advice.measured_saving(before, after)
    assert saved.before_kg_per_kwh == pytest.approx(0.13)
    assert saved.after_kg_per_kwh == pytest.approx(0.0132)
    assert saved.saving_kgco2e == pytest.approx(1.4016)
    assert saved.saving_pct == pytest.approx(0.898462, abs=1e-6)
    assert advice.split_at_move(runs[1:3]) is None  # never moved


# --- against the database ---


@pytest.fixture
def world(acme, tmp_path):
    """Paris (FR, PUE 1.3), Berlin (DE, 1.1) and Oslo (NO, 1.2, no hourly data) have H100s;
    Tokyo (JP, 1.0, the cleanest grid) has only A100s, so the run cannot move there."""
    from django.core.management import call_command

    sites = {
        "paris-dc": acme.paris,
        "berlin-dc": site_create(organisation=acme, name="berlin-dc", grid_zone="DE", pue=1.1),
        "oslo-dc": site_create(organisation=acme, name="oslo-dc", grid_zone="NO", pue=1.2),
        "tokyo-dc": site_create(organisation=acme, name="tokyo-dc", grid_zone="JP", pue=1.0),
    }
    gpus = {}
    for name, site in sites.items():
        host = Host.objects.create(organisation=acme, hostname=f"{name}-1", site=site)
        gpus[name] = Device.objects.create(
            host=host,
            kind="gpu",
            uuid=f"GPU-{name}",
            model_name="NVIDIA A100" if name == "tokyo-dc" else "NVIDIA H100",
        )
    lines = ["Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (LCA)"]
    for d in range(2):
        for h in range(24):
            moment = D1 + d * 24 * H + h * H
            for zone, value in (("FR", fr(h, d)), ("DE", de(h, d)), ("JP", 5.0)):
                lines.append(f"{moment:%Y-%m-%d %H:%M:%S},{zone},{value}")
    path = tmp_path / "hourly.csv"
    path.write_text("\n".join(lines) + "\n")
    call_command("import_grid_hourly", str(path), "--no-recompute", stdout=StringIO())
    model, _ = registry.model_register(team=acme.nlp, key="bert")
    return {"sites": sites, "gpus": gpus, "model": model}


def measured_run(world, key, site, start, kwh_by_hour, g_per_kwh, recurrence="nightly-retrain"):
    """A finished run whose rollups say what it measured at ``site`` under ``g_per_kwh``."""
    model, s, gpu = world["model"], world["sites"][site], world["gpus"][site]
    run, _ = registry.run_open(
        model=model, key=key, kind="training", started_at=start, recurrence=recurrence
    )
    registry.run_close(run=run, status=RunStatus.SUCCEEDED, ended_at=start + len(kwh_by_hour) * H)
    for k, kwh in enumerate(kwh_by_hour):
        hourly_row(
            model.team.organisation,
            start + k * H,
            device=gpu,
            computed=False,
            site=s,
            team=model.team,
            model_key=model.key,
            run_key=key,
            energy_kwh=kwh,
            pue=s.pue,
            intensity_g_per_kwh=g_per_kwh,
            intensity_source="hourly",
            intensity_zone=s.grid_zone,
            market_g_per_kwh=g_per_kwh,
            location_kg=kwh * s.pue * g_per_kwh / 1000,
            embodied_kgco2e=0.001,
        )
    return run


def nightly(world) -> None:
    for day in (3, 4):  # Paris, 20:00 UTC, 10 then 5 kWh, under 100 g/kWh
        measured_run(
            world, f"n{day}", "paris-dc", datetime(2026, 3, day, 20, tzinfo=UTC), [10, 5], 100
        )


def test_the_least_carbon_hours_and_sites_and_the_estimated_saving_match_the_hand_worked_example(
    world,
):
    nightly(world)
    (item,) = selectors.carbon_advice(model=world["model"], now=NOW)
    assert (item.recurrence, item.runs, item.reference_run) == ("nightly-retrain", 2, "n4")
    assert (item.site, item.start_hour, item.energy_kwh_by_hour) == ("paris-dc", 20, [10.0, 5.0])
    assert item.hourly is True
    result = item.advice
    assert (result.current.site, result.current.start_hour) == ("paris-dc", 20)
    assert result.current.kgco2e == pytest.approx(1.95)  # 15 kWh x 1.3 x 100 g
    assert (result.best.site, result.best.start_hour) == ("berlin-dc", 12)
    assert result.best.kgco2e == pytest.approx(0.165)  # 15 kWh x 1.1 x 10 g
    assert result.saving_kgco2e == pytest.approx(1.785)
    assert result.saving_pct == pytest.approx(0.915385, abs=1e-6)
    by_site = [(o.site, o.start_hour, round(o.kgco2e, 6)) for o in result.by_site]
    # Paris's best: any start 0..4 (0.39 kg); 00:00 is the nearest to 20:00. Tokyo: other GPUs.
    assert by_site == [("berlin-dc", 12, 0.165), ("paris-dc", 0, 0.39)]
    paris = {o.start_hour: round(o.kgco2e, 6) for o in result.at_current_site}
    assert paris[5] == 0.65 and paris[23] == 1.43 and paris[17] == pytest.approx(1.43)
    assert set(item.sites_skipped) == {"oslo-dc"}
    assert "annual fallback" in item.sites_skipped["oslo-dc"]
    assert item.move is None and item.measured is None  # it has not moved yet


def test_once_moved_the_saving_is_measured_from_the_runs_before_and_after(world):
    nightly(world)
    # Moved to Berlin at 12:00: 8 + 4 kWh, which ran under 12 g/kWh (history said 10).
    measured_run(world, "n5", "berlin-dc", datetime(2026, 3, 5, 12, tzinfo=UTC), [8, 4], 12)
    (item,) = selectors.carbon_advice(model=world["model"], now=NOW)
    before, after = item.move
    assert [m.run_key for m in before] == ["n3", "n4"]
    assert [m.run_key for m in after] == ["n5"]
    saved = item.measured
    assert saved.before_kg_per_kwh == pytest.approx(0.13)  # 3.9 kg / 30 kWh
    assert saved.after_kg_per_kwh == pytest.approx(0.0132)  # 0.1584 kg / 12 kWh
    assert saved.saving_kgco2e == pytest.approx(1.4016)  # 12 x (0.13 - 0.0132)
    assert saved.saving_pct == pytest.approx(0.898462, abs=1e-6)
    # The run now starts at the best place and hour: nothing more to win.
    assert (item.advice.best.site, item.advice.best.start_hour) == ("berlin-dc", 12)
    assert item.advice.saving_kgco2e == pytest.approx(0.0)


def test_a_site_with_only_the_annual_average_gets_no_hourly_advice(world):
    measured_run(
        world, "w1", "oslo-dc", datetime(2026, 3, 2, 3, tzinfo=UTC), [2], 30, recurrence="weekly"
    )
    (item,) = selectors.carbon_advice(model=world["model"], now=NOW)
    assert item.hourly is False and item.advice.current is None
    assert item.advice.saving_kgco2e is None
    assert any("annual fallback" in note for note in item.notes)


def test_the_advice_endpoint_follows_the_model_access_rules(
    world, people, as_person, as_token, acme_token, globex_token
):
    nightly(world)
    path = f"models/{world['model'].pk}/advice/"
    with time_machine.travel(NOW, tick=False):  # the history window ends now
        answer = as_person("nina").get(path)  # manager of nlp
    assert answer.status_code == 200, answer.content
    (series,) = answer.json()["series"]
    assert series["best"] == {
        "site": "berlin-dc",
        "start_hour_utc": 12,
        "kgco2e": pytest.approx(0.165),
    }
    assert series["current"]["kgco2e"] == pytest.approx(1.95)
    assert series["saving_pct"] == pytest.approx(0.915385, abs=1e-6)
    assert series["measured"] is None
    assert as_person("alice").get(path).status_code == 200  # org admin
    assert as_person("victor").get(path).status_code == 404  # vision only: not found
    assert as_person("gary").get(path).status_code == 404  # another organisation
    assert as_token(acme_token).get(path).status_code == 403  # tokens read nothing
    assert as_token(globex_token).get(path).status_code == 403
