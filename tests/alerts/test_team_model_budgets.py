"""A team's model budgets (service, scoping, form) and the batched consumption: two teams on one
model key, worked by hand, equal whether whole days come from the daily tables or the hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext

from greenkpi.alerts import selectors, services
from greenkpi.alerts.models import BudgetScope
from greenkpi.kpis import daily
from greenkpi.kpis.models import HourlyRollup

H = timedelta(hours=1)
MAY9 = datetime(2026, 5, 9, tzinfo=UTC)
NOW = datetime(2026, 5, 11, 5, 30, tzinfo=UTC)  # as_of 05:00: May 9 and 10 whole, 5 h of May 11
HOURS = 53


@pytest.fixture
def bert(acme, rollups):
    """NLP runs bert at 0.5 kWh/h and gpt at 1 kWh/h, Vision runs bert at 2 kWh/h, from May 9."""
    nlp = rollups.gpu(rollups.host(acme, "gpu-nlp", team=acme.nlp, last_seen=NOW))
    vision = rollups.gpu(rollups.host(acme, "gpu-vis", team=acme.vision, last_seen=NOW))
    for i in range(HOURS):
        hour = MAY9 + i * H
        rollups.add(acme, hour, device=nlp, team=acme.nlp, model_key="bert", energy_kwh=0.5)
        rollups.add(acme, hour, device=nlp, team=acme.nlp, model_key="gpt", energy_kwh=1.0)
        rollups.add(acme, hour, device=vision, team=acme.vision, model_key="bert", energy_kwh=2.0)


def make(acme, user, name, **scope):
    return services.budget_create(
        organisation=acme,
        user=user,
        name=name,
        metric="energy_kwh",
        period="month",
        amount=1000.0,
        forecast_method="recent_rate",
        **scope,
    )


@pytest.fixture
def budgets(acme, people, bert):
    nina, alice = people["nina"], people["alice"]
    return {
        "nlp bert": make(acme, nina, "nlp bert", team=acme.nlp, model_key="bert"),
        "bert": make(acme, alice, "bert", model_key="bert"),
        "nlp": make(acme, nina, "nlp", team=acme.nlp),
        "org": make(acme, alice, "org"),
    }


# Hand-worked: 53 h (May 9 00:00 - May 11 05:00) at the rates above; the rate window starts at the
# first hour of data (May 9 00:00, younger than 7 days): 53 h; 499 h left to June 1.
EXPECTED = {  # consumed, rate kWh/h
    "nlp bert": (53 * 0.5, 0.5),  # 26.5: only NLP's use of bert
    "bert": (53 * 2.5, 2.5),  # 132.5: bert across the organisation
    "nlp": (53 * 1.5, 1.5),  # 79.5: NLP's bert and gpt
    "org": (53 * 3.5, 3.5),  # 185.5
}


def check(statuses):
    for status in statuses:
        consumed, rate = EXPECTED[status.budget.name]
        assert status.consumed == pytest.approx(consumed), status.budget.name
        assert status.forecast.rate_window_h == HOURS
        assert status.forecast.rate_per_h == pytest.approx(rate)
        assert status.forecast_total == pytest.approx(consumed + rate * 499)
        assert status.forecast.method == "recent_rate"


def test_a_team_model_budget_is_a_model_budget_of_the_team(budgets, acme):
    budget = budgets["nlp bert"]
    assert (budget.scope, budget.team_id, budget.model_key) == (
        BudgetScope.MODEL,
        acme.nlp.pk,
        "bert",
    )


def test_a_team_manager_may_not_budget_another_teams_model(acme, people, bert):
    with pytest.raises(PermissionDenied):
        make(acme, people["nina"], "theirs", team=acme.vision, model_key="bert")
    with pytest.raises(PermissionDenied):  # organisation-wide model budgets: org managers only
        make(acme, people["nina"], "all bert", model_key="bert")


def test_two_teams_on_one_model_key_hourly_and_daily_paths_agree(budgets, acme):
    with CaptureQueriesContext(connection):
        statuses = selectors.statuses_of(list(budgets.values()), now=NOW)
    check(statuses)  # no daily rows yet: every day is read from the hours
    daily.days_refresh(organisation_id=acme.pk, days=[date(2026, 5, 9), date(2026, 5, 10)])
    check(selectors.statuses_of(list(budgets.values()), now=NOW))
    # Whole days now come from the daily tables: a change to May 9's hours that no refresh saw
    # does not show, while one to today's hours does, exactly.
    HourlyRollup.objects.filter(hour__lt=datetime(2026, 5, 10, tzinfo=UTC)).update(energy_kwh=99.0)
    check(selectors.statuses_of(list(budgets.values()), now=NOW))
    HourlyRollup.objects.filter(
        hour=datetime(2026, 5, 11, 2, tzinfo=UTC), team=acme.nlp, model_key="bert"
    ).update(energy_kwh=1.5)  # +1 kWh
    by_name = {s.budget.name: s for s in selectors.statuses_of(list(budgets.values()), now=NOW)}
    assert by_name["nlp bert"].consumed == pytest.approx(27.5)
    assert by_name["bert"].consumed == pytest.approx(133.5)
    assert by_name["nlp"].consumed == pytest.approx(80.5)
    assert by_name["org"].consumed == pytest.approx(186.5)


def test_team_members_see_their_teams_model_budgets(budgets, acme):
    names = lambda team: sorted(  # noqa: E731
        b.name
        for b in selectors.budgets_visible(
            organisation_id=acme.pk, team_ids=[team.pk], org_wide=False
        )
    )
    assert names(acme.nlp) == ["nlp", "nlp bert"]
    assert names(acme.vision) == []
    statuses = selectors.budget_statuses(
        organisation_id=acme.pk, team_ids=[acme.nlp.pk], org_wide=False, now=NOW
    )
    check(statuses)


def test_the_list_query_count_does_not_depend_on_the_budget_count(budgets, acme):
    one = list(budgets.values())[:1]
    with CaptureQueriesContext(connection) as q1:
        selectors.statuses_of(one, now=NOW)
    many = [b for b in budgets.values() for _ in range(3)]
    with CaptureQueriesContext(connection) as q12:
        selectors.statuses_of(many, now=NOW)
    assert len(q12) <= len(q1) + 3  # the other source kinds, never per budget
