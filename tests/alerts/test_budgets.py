"""Budget status from rollups (hand-worked), completeness, visibility and the budget services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError

from greenkpi.alerts import selectors, services
from greenkpi.alerts.models import BudgetScope

H = timedelta(hours=1)
NOW = datetime(2026, 5, 11, 0, 30, tzinfo=UTC)
MAY8 = datetime(2026, 5, 8, tzinfo=UTC)


@pytest.fixture
def nlp_history(acme, globex, rollups):
    """72 h of NLP use at 0.5 kWh/h from May 8 on one host; Vision and Globex use more beside it."""
    nlp_host = rollups.host(acme, "gpu-nlp-1", team=acme.nlp, last_seen=NOW - timedelta(minutes=2))
    vision_host = rollups.host(acme, "gpu-vision-1", team=acme.vision, last_seen=NOW)
    globex_host = rollups.host(globex, "gx-1", team=globex.research, last_seen=NOW)
    nlp, vision, gx = rollups.gpu(nlp_host), rollups.gpu(vision_host), rollups.gpu(globex_host)
    for i in range(72):
        hour = MAY8 + i * H
        rollups.add(
            acme,
            hour,
            device=nlp,
            team=acme.nlp,
            energy_kwh=0.5,
            allocated_gpu_h=1.0,
            cost=0.1,
            currency="EUR",
            model_key="llama-ft",
        )
        rollups.add(
            acme, hour, device=vision, team=acme.vision, energy_kwh=9.0, allocated_gpu_h=1.0
        )
        rollups.add(globex, hour, device=gx, team=globex.research, energy_kwh=100.0)
    return nlp_host


def nlp_budget(acme, people, **kw):
    fields = {"name": "NLP energy", "metric": "energy_kwh", "period": "month", "amount": 100.0}
    return services.budget_create(
        organisation=acme, user=people["nina"], team=acme.nlp, **fields | kw
    )


def test_team_budget_status_matches_the_hand_worked_figures(acme, people, nlp_history):
    budget = nlp_budget(acme, people)
    status = selectors.budget_status(budget=budget, now=NOW)
    assert status.forecast.as_of == datetime(2026, 5, 11, tzinfo=UTC)
    assert status.consumed == pytest.approx(36.0)  # 72 h x 0.5 kWh, Vision's 9 kWh/h not counted
    assert status.consumed_share == pytest.approx(0.36)
    assert status.forecast.rate_window_h == 72  # history starts May 8: a young scope
    assert status.forecast.rate_per_day == pytest.approx(12.0)
    assert status.forecast_total == pytest.approx(36 + 0.5 * 504)  # 288 kWh
    assert status.crossing_at == datetime(2026, 5, 16, 8, tzinfo=UTC)  # 64 / 0.5 = 128 h
    crossings = {c.threshold_pct: c.at for c in status.forecast.crossings}
    assert crossings == {
        50: datetime(2026, 5, 12, 4, tzinfo=UTC),  # 14 / 0.5 = 28 h
        80: datetime(2026, 5, 14, 16, tzinfo=UTC),  # 44 / 0.5 = 88 h
        100: datetime(2026, 5, 16, 8, tzinfo=UTC),
    }
    assert status.thresholds_reached == ()
    assert status.complete and status.period_label == "2026-05" and status.unit == "kWh"


def test_model_organisation_gpu_hour_and_cost_budgets_read_their_own_scope(
    acme, globex, people, nlp_history
):
    alice, gary = people["alice"], people["gary"]
    model = services.budget_create(
        organisation=acme,
        user=alice,
        name="llama",
        metric="gpu_h",
        period="quarter",
        amount=1000,
        model_key="llama-ft",
    )
    assert model.scope == BudgetScope.MODEL
    assert selectors.budget_status(budget=model, now=NOW).consumed == pytest.approx(72.0)
    org = services.budget_create(
        organisation=acme, user=alice, name="all", metric="energy_kwh", period="year", amount=10_000
    )
    assert selectors.budget_status(budget=org, now=NOW).consumed == pytest.approx(72 * 9.5)
    cost = services.budget_create(
        organisation=acme,
        user=alice,
        name="eur",
        metric="cost",
        period="month",
        amount=50,
        currency="eur",
    )
    status = selectors.budget_status(budget=cost, now=NOW)
    assert status.consumed == pytest.approx(7.2)  # only NLP's rows have a EUR price
    assert status.uncosted_energy_kwh == pytest.approx(72 * 9.0)  # Vision's energy has none
    assert not status.complete and status.unit == "EUR"
    globex_budget = services.budget_create(
        organisation=globex, user=gary, name="gx", metric="energy_kwh", period="month", amount=1e6
    )
    assert selectors.budget_status(budget=globex_budget, now=NOW).consumed == pytest.approx(7200.0)


def test_a_silent_host_makes_the_status_incomplete_not_under_budget(acme, people, nlp_history):
    budget = nlp_budget(acme, people)
    nlp_history.last_seen = NOW - timedelta(minutes=40)
    nlp_history.save()
    status = selectors.budget_status(budget=budget, now=NOW)
    assert not status.complete
    assert status.silent_hosts == ("gpu-nlp-1",)
    assert status.incomplete_since == NOW - timedelta(minutes=40)


def test_each_scope_lists_only_the_silent_hosts_that_fed_it(acme, people, nlp_history):
    """Organisation, team, organisation-wide model and team-model budgets in one batch: each is
    incomplete only through the silent hosts whose rows it counts (the batch asks the
    organisation by host probe, teams and models on the team index)."""
    from greenkpi.inventory.models import Host

    Host.objects.filter(organisation=acme).update(last_seen=NOW - timedelta(hours=2))
    alice = people["alice"]
    fields = {"metric": "energy_kwh", "period": "month", "amount": 1e6}
    budgets = {
        "org": services.budget_create(organisation=acme, user=alice, name="o", **fields),
        "nlp": nlp_budget(acme, people),
        "vision": services.budget_create(
            organisation=acme, user=alice, team=acme.vision, name="v", **fields
        ),
        "llama": services.budget_create(
            organisation=acme, user=alice, model_key="llama-ft", name="l", **fields
        ),
        "vision llama": services.budget_create(
            organisation=acme,
            user=alice,
            team=acme.vision,
            model_key="llama-ft",
            name="vl",
            **fields,
        ),
        "unused model": services.budget_create(
            organisation=acme, user=alice, model_key="never-ran", name="n", **fields
        ),
    }
    statuses = selectors.statuses_of(list(budgets.values()), now=NOW)
    silent = {name: s.silent_hosts for name, s in zip(budgets, statuses, strict=True)}
    assert silent == {
        "org": ("gpu-nlp-1", "gpu-vision-1"),
        "nlp": ("gpu-nlp-1",),
        "vision": ("gpu-vision-1",),
        "llama": ("gpu-nlp-1",),
        "vision llama": (),
        "unused model": (),
    }
    # A model used by a team no budget of the batch reads (NLP): its rows are read on their own.
    pair = selectors.statuses_of([budgets["vision"], budgets["llama"]], now=NOW)
    assert [s.silent_hosts for s in pair] == [("gpu-vision-1",), ("gpu-nlp-1",)]


def test_hours_awaiting_recompute_make_the_status_incomplete(acme, people, nlp_history):
    from greenkpi.kpis.dirty import windows_mark_dirty

    budget = nlp_budget(acme, people)
    windows_mark_dirty(organisation_id=acme.pk, window_starts=[MAY8 + 5 * H])
    status = selectors.budget_status(budget=budget, now=NOW)
    assert status.pending_recompute_hours == 1 and not status.complete


def test_who_may_set_and_see_budgets(acme, globex, people, nlp_history):
    nina, victor, gary, alice = people["nina"], people["victor"], people["gary"], people["alice"]
    team_budget = nlp_budget(acme, people)
    with pytest.raises(PermissionDenied):
        services.budget_create(
            organisation=acme,
            user=victor,
            team=acme.vision,
            name="v",
            metric="gpu_h",
            period="month",
            amount=1,
        )
    with pytest.raises(PermissionDenied):  # a team manager cannot budget the whole organisation
        services.budget_create(
            organisation=acme, user=nina, name="o", metric="gpu_h", period="month", amount=1
        )
    with pytest.raises(PermissionDenied):
        services.budget_create(
            organisation=acme, user=gary, name="g", metric="gpu_h", period="month", amount=1
        )
    org_budget = services.budget_create(
        organisation=acme, user=alice, name="o", metric="co2e_kg", period="year", amount=5
    )
    visible = selectors.budgets_visible
    assert list(visible(organisation_id=acme.pk, team_ids=[acme.nlp.pk], org_wide=False)) == [
        team_budget
    ]
    assert list(visible(organisation_id=acme.pk, team_ids=[acme.vision.pk], org_wide=False)) == []
    assert set(visible(organisation_id=acme.pk, team_ids=[], org_wide=True)) == {
        team_budget,
        org_budget,
    }
    assert list(visible(organisation_id=globex.pk, team_ids=[], org_wide=True)) == []
    statuses = selectors.budget_statuses(
        organisation_id=acme.pk, team_ids=[acme.nlp.pk], org_wide=False, now=NOW
    )
    assert [s.budget for s in statuses] == [team_budget]


def test_budget_validation_and_update(acme, people):
    nina = people["nina"]
    with pytest.raises(ValidationError):
        nlp_budget(acme, people, amount=-1)
    with pytest.raises(ValidationError):
        nlp_budget(acme, people, metric="cost")  # no currency
    with pytest.raises(ValidationError):
        nlp_budget(acme, people, thresholds_pct=[0])
    with pytest.raises(PermissionDenied):  # a model budget of a team nina does not manage
        services.budget_create(
            organisation=acme,
            user=nina,
            team=acme.vision,
            model_key="m",
            name="both",
            metric="gpu_h",
            period="month",
            amount=1,
        )
    budget = nlp_budget(acme, people)
    assert budget.thresholds_pct == [50, 80, 100]
    with time_machine.travel(NOW, tick=False):
        updated = services.budget_update(
            budget=budget, user=nina, amount=250.0, thresholds_pct=[90, 75]
        )
    assert (updated.amount, updated.thresholds_pct, updated.updated_at) == (250.0, [75, 90], NOW)
    with pytest.raises(PermissionDenied):
        services.budget_update(budget=budget, user=people["victor"], amount=1.0)


def test_the_status_records_its_forecast_method_auto_picks_the_profile_after_two_weeks(
    acme, people, rollups
):
    """Weekdays 1 kWh/h, weekends nothing, since Mon April 20: 3 weeks of history at May 11."""
    host = rollups.host(acme, "gpu-p", team=acme.nlp, last_seen=NOW)
    gpu = rollups.gpu(host)
    hour = datetime(2026, 4, 20, tzinfo=UTC)
    while hour < datetime(2026, 5, 11, tzinfo=UTC):
        if hour.weekday() < 5:
            rollups.add(acme, hour, device=gpu, team=acme.nlp, energy_kwh=1.0)
        hour += H
    auto = nlp_budget(acme, people, amount=1000.0)
    status = selectors.budget_status(budget=auto, now=NOW)
    assert status.forecast_method == "weekday_profile"
    assert status.forecast.weekday_profile == pytest.approx((24, 24, 24, 24, 24, 0, 0))
    assert status.forecast.weekday_profile_days == (3,) * 7
    # May consumed: 6 weekdays (Fri May 1, May 4-8) x 24 = 144; May 11-29 has 15 weekdays: 360
    assert status.consumed == pytest.approx(144.0)
    assert status.forecast_total == pytest.approx(144.0 + 15 * 24)
    flat = services.budget_update(budget=auto, user=people["nina"], forecast_method="recent_rate")
    status = selectors.budget_status(budget=flat, now=NOW)
    assert status.forecast_method == "recent_rate"
    assert status.forecast_total == pytest.approx(144.0 + 120 / 168 * 504)  # 5/7 kWh/h x 21 d


def test_a_budget_caps_the_figure_it_names(acme, people, rollups):
    """Issue 14 item 5: 3 hours of 2 kg Scope 2 location-based, 0.5 kg market-based and 1 kg
    embodied: the location budget counts 6, the market one 1.5, the total (incl. embodied) 9."""
    host = rollups.host(acme, "gpu-co2-1", team=acme.nlp, last_seen=NOW)
    gpu = rollups.gpu(host)
    for i in range(3):
        rollups.add(
            acme,
            MAY8 + i * H,
            device=gpu,
            team=acme.nlp,
            energy_kwh=10.0,
            co2e_kg=2.0,
            market_kg=0.5,
            embodied_kg=1.0,
        )
    consumed = {}
    for metric in ("s2_location", "s2_market", "co2e_kg"):
        budget = nlp_budget(acme, people, name=metric, metric=metric)
        status = selectors.budget_status(budget=budget, now=NOW)
        consumed[metric] = status.consumed
        assert status.unit == "kgCO2e"
    assert consumed == {
        "s2_location": pytest.approx(6.0),
        "s2_market": pytest.approx(1.5),
        "co2e_kg": pytest.approx(9.0),
    }


def test_each_key_kind_is_read_from_its_own_budgets_window(acme, nlp_history):
    """scope_series(starts=...): the organisation's key read from an early start does not make the
    team's read start there too; each kind starts at its own keys' earliest window."""
    from greenkpi.alerts.consumption import scope_series

    org, nlp = (None, None), (acme.nlp.pk, None)
    series = scope_series(
        organisation_id=acme.pk,
        keys=[org, nlp],
        start=MAY8,
        as_of=NOW.replace(minute=0),
        starts={org: MAY8, nlp: MAY8 + timedelta(days=2)},
    )
    # (The fixture's days are not refreshed: the read layer answers from the hours.)
    org_buckets = [*series[org].daily, *series[org].hourly]
    nlp_buckets = [*series[nlp].daily, *series[nlp].hourly]
    assert min(org_buckets) == MAY8 and len(org_buckets) == 72
    assert min(nlp_buckets) == MAY8 + timedelta(days=2) and len(nlp_buckets) == 24  # May 10
    daily, hourly = series[nlp].metric("energy_kwh", "")
    assert sum(daily.values()) + sum(hourly.values()) == pytest.approx(12.0)  # 24 h x 0.5 kWh
    assert series[org].first_data == MAY8 and series[nlp].first_data == MAY8 + timedelta(days=2)
