"""The demo's budgets, alert rules and email channel, evaluated once so the alerts page has news.

Budget amounts are set from the simulated consumption (through the real budget status and its
forecast), so whatever day of the month `make demo` runs on, the story holds: the organisation and
most teams are comfortably inside their budgets, and the vision team's carbon budget is on course
to be exceeded this month (a forecast breach, not yet a breach).
"""

from __future__ import annotations

import math
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser

from greenkpi.alerts import selectors
from greenkpi.alerts.evaluation import rules_evaluate
from greenkpi.alerts.models import AlertRule, Budget, Channel, Metric, RuleKind
from greenkpi.alerts.services import budget_create, budget_update, channel_create
from greenkpi.demo.carbon import CURRENCY
from greenkpi.inventory.models import Organisation, Team

BREACH_TEAM = "vision"
IDLE_TEAM = "platform"
FOR_S = 300  # rules wait 5 minutes before firing, as a production rule would
# (name, team slug or None, metric, period, amount as a multiple of the forecast)
HEALTHY = [
    ("Organisation energy, monthly", None, Metric.ENERGY_KWH, "month", 1.4),
    ("Organisation carbon, quarterly", None, Metric.CO2E_KG, "quarter", 1.5),
    ("Language energy, monthly", "nlp", Metric.ENERGY_KWH, "month", 1.6),
    ("Recommendations electricity cost, monthly", "recsys", Metric.COST, "month", 1.5),
    ("ML Platform GPU-hours, quarterly", "platform", Metric.GPU_HOURS, "quarter", 1.3),
]
BREACH = ("Computer Vision carbon, monthly", BREACH_TEAM, Metric.CO2E_KG, "month")


def _nice(amount: float, *, up: bool) -> float:
    """Round to two significant figures (up or down), as a person would write a budget."""
    if amount <= 0:
        return 1.0
    scale = 10 ** (math.floor(math.log10(amount)) - 1)
    return (math.ceil if up else math.floor)(amount / scale) * scale


def budgets_load(
    *, organisation: Organisation, teams: dict[str, Team], admin: AbstractBaseUser, now: datetime
) -> list[Budget]:
    """Create the budgets, amounts set from each scope's forecast (rollups must exist)."""
    budgets = []
    for name, team, metric, period, multiple in HEALTHY:
        budget = budget_create(
            organisation=organisation,
            user=admin,
            name=name,
            metric=metric,
            period=period,
            amount=1.0,  # set below from the forecast
            team=teams[team] if team else None,
            currency=CURRENCY if metric == Metric.COST else "",
        )
        forecast = selectors.budget_status(budget=budget, now=now).forecast_total
        budgets.append(
            budget_update(budget=budget, user=admin, amount=_nice(forecast * multiple, up=True))
        )
    name, team, metric, period = BREACH
    budget = budget_create(
        organisation=organisation,
        user=admin,
        name=name,
        metric=metric,
        period=period,
        amount=1.0,
        team=teams[team],
    )
    status = selectors.budget_status(budget=budget, now=now)
    # Between what is spent and what the month will bring: not exceeded yet, but on course to be.
    consumed, forecast = status.consumed, status.forecast_total
    amount = _nice(consumed + 0.7 * (forecast - consumed), up=False)
    if not consumed < amount < forecast:
        amount = consumed + 0.7 * (forecast - consumed)
    if amount <= 0:  # no history for the team at all: any amount will do
        amount = 1.0
    budgets.append(budget_update(budget=budget, user=admin, amount=amount))
    return budgets


def rules_load(
    *,
    organisation: Organisation,
    teams: dict[str, Team],
    admin: AbstractBaseUser,
    budgets: list[Budget],
) -> list[AlertRule]:
    """An email channel and the rules a platform team would set up on day one."""
    channel = channel_create(
        organisation=organisation,
        user=admin,
        name="Platform on-call (email)",
        kind=Channel.Kind.EMAIL,
        addresses=["ml-platform-oncall@demo.local"],
        notify_team_managers=True,
    )
    specs: list[dict[str, object]] = []
    for budget in budgets:
        specs.append(
            {
                "name": f"{budget.name}: thresholds",
                "kind": RuleKind.BUDGET_THRESHOLD,
                "budget": budget,
            }
        )
        specs.append(
            {"name": f"{budget.name}: forecast", "kind": RuleKind.BUDGET_FORECAST, "budget": budget}
        )
    specs += [
        {
            "name": "ML Platform GPU utilization under 30 %",
            "kind": RuleKind.LOW_UTILIZATION,
            "team": teams[IDLE_TEAM],
            "utilization_floor": 0.30,
            "utilization_window_h": 24,
        },
        {
            "name": "Notebook pool GPU idle for 4 h",
            "kind": RuleKind.IDLE_GPU,
            "team": teams[IDLE_TEAM],
            "idle_hours": 4,
            "idle_share_min": 0.9,
        },
        {"name": "Collector silent for 15 min", "kind": RuleKind.COLLECTOR_SILENT},
        {"name": "Model retraining recommended", "kind": RuleKind.RETRAINING_NEED},
    ]  # fmt: skip
    rules = []
    for spec in specs:
        rule = AlertRule(organisation=organisation, for_s=FOR_S, **spec)
        rule.full_clean()
        rule.save()
        rule.channels.add(channel)
        rules.append(rule)
    return rules


def rules_first_evaluations(*, organisation: Organisation, now: datetime) -> None:
    """Evaluate every rule once at load time, firing at once, so the alerts page has news.

    The rules keep their `for` of FOR_S; only this first evaluation skips the wait. Evaluating
    `for` ago instead (pending, then firing) dated the alerts "since" minutes before the demo
    was started (issue 12): a newcomer reads that as a clock or data error.
    """
    rules = AlertRule.objects.filter(organisation=organisation)
    waits = dict(rules.values_list("pk", "for_s"))
    rules.update(for_s=0)
    try:
        rules_evaluate(now=now, organisation_id=organisation.pk)
    finally:
        for pk, for_s in waits.items():
            AlertRule.objects.filter(pk=pk).update(for_s=for_s)
