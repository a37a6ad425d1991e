"""Forms of the budget and alert pages. Choices come from the user's scope (what they manage), so
a team manager cannot even name another team; the services check the same rules again."""

from __future__ import annotations

import math
import re
from itertools import pairwise
from typing import Any

from django import forms

from greenkpi.alerts.models import (
    Budget,
    BudgetScope,
    ForecastMethod,
    Metric,
    RuleKind,
)
from greenkpi.inventory.access import Scope
from greenkpi.inventory.models import Team
from greenkpi.lib.periods import PeriodKind

THRESHOLD_MIN, THRESHOLD_MAX = 1, 200
BUDGET_KINDS = (RuleKind.BUDGET_THRESHOLD, RuleKind.BUDGET_FORECAST)


def parse_thresholds(text: str) -> list[int]:
    """ "50, 80, 100" -> [50, 80, 100]: whole percents 1-200, strictly ascending."""
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    if not parts:
        raise forms.ValidationError("Give at least one threshold, e.g. 50, 80, 100.")
    try:
        values = [int(p.rstrip("%")) for p in parts]
    except ValueError:
        raise forms.ValidationError("Thresholds are whole percents, e.g. 50, 80, 100.") from None
    if any(not THRESHOLD_MIN <= v <= THRESHOLD_MAX for v in values):
        raise forms.ValidationError(
            f"Each threshold is between {THRESHOLD_MIN} and {THRESHOLD_MAX} %."
        )
    if any(b <= a for a, b in pairwise(values)):
        raise forms.ValidationError("Thresholds must be in ascending order, without repeats.")
    return values


class BudgetForm(forms.Form):
    """Create (all fields) or edit (scope and metric fixed) a budget."""

    name = forms.CharField(max_length=200)
    scope = forms.ChoiceField(choices=BudgetScope.choices, initial=BudgetScope.TEAM)
    team = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    model_key = forms.CharField(
        max_length=200, required=False, help_text="The model key collectors send (model budgets)."
    )
    metric = forms.ChoiceField(choices=Metric.choices)
    period = forms.ChoiceField(choices=[(p.value, p.value.capitalize()) for p in PeriodKind])
    amount = forms.FloatField(help_text="In the metric's unit: kWh, kgCO2e, GPU-h or the currency.")
    currency = forms.CharField(
        max_length=3, required=False, help_text="ISO 4217, cost budgets only (e.g. EUR)."
    )
    thresholds = forms.CharField(
        initial="50, 80, 100", help_text="Whole percents of the amount, ascending (1-200)."
    )
    forecast_method = forms.ChoiceField(
        choices=ForecastMethod.choices, initial=ForecastMethod.AUTO, label="Forecast"
    )

    def __init__(
        self,
        *args: Any,
        scope: Scope,
        budget: Budget | None = None,
        model_keys: dict[int, list[str]] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.scope = scope
        self.budget = budget
        self.managed = {t.pk: t for t in scope.teams if t.pk in scope.managed_team_ids}
        self.model_keys = model_keys or {}
        self.fields["team"].choices = [("", "—")] + [(pk, t.name) for pk, t in self.managed.items()]
        self.fields[
            "team"
        ].help_text = "Team budgets; with a model key, only this team's use of the model."
        if not scope.manages_org:
            # Organisation and organisation-wide model budgets count other teams' use:
            # organisation managers only. A team manager may budget one of their team's models.
            self.fields["scope"].choices = [("team", "Team"), ("model", "Model of my team")]
            self.fields["model_key"] = forms.ChoiceField(
                required=False,
                label="Model key",
                help_text="One of your team's models (registered, or seen in its use).",
                choices=[("", "—")]
                + [
                    (self.managed[t].name, [(k, k) for k in keys])
                    for t, keys in self.model_keys.items()
                    if t in self.managed and keys
                ],
            )
        if budget is not None:
            for fixed in ("scope", "team", "model_key", "metric"):
                if fixed not in self.fields:
                    continue
                self.fields[fixed].disabled = True
                self.fields[fixed].required = False
            self.initial.update(
                name=budget.name,
                scope=budget.scope,
                team=budget.team_id,
                model_key=budget.model_key,
                metric=budget.metric,
                period=budget.period,
                amount=budget.amount,
                currency=budget.currency,
                thresholds=", ".join(str(p) for p in budget.thresholds_pct),
                forecast_method=budget.forecast_method,
            )

    def clean_amount(self) -> float:
        amount = self.cleaned_data["amount"]
        if not math.isfinite(amount) or amount <= 0:
            raise forms.ValidationError("The amount must be a positive number.")
        return float(amount)

    def clean_thresholds(self) -> list[int]:
        return parse_thresholds(self.cleaned_data["thresholds"])

    def clean_currency(self) -> str:
        currency = self.cleaned_data.get("currency", "").strip().upper()
        if currency and not re.fullmatch(r"[A-Z]{3}", currency):
            raise forms.ValidationError("Three letters, e.g. EUR.")
        return currency

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.budget is not None:
            data["metric"] = self.budget.metric
        else:
            scope = data.get("scope")
            if scope == BudgetScope.TEAM and data.get("team") is None:
                self.add_error("team", "Choose the team this budget is for.")
            key = (data.get("model_key") or "").strip()
            if scope == BudgetScope.MODEL and not key:
                self.add_error("model_key", "Give the model key this budget is for.")
            if scope == BudgetScope.MODEL and not self.scope.manages_org:
                team_id = data.get("team")
                if team_id is None:
                    self.add_error("team", "Choose the team whose use of the model this counts.")
                elif key and key not in self.model_keys.get(team_id, []):
                    self.add_error("model_key", "Not one of this team's models.")
            if scope == BudgetScope.ORGANISATION:
                data["team"] = None
            if scope != BudgetScope.MODEL:
                data["model_key"] = ""
            else:
                data["model_key"] = key
        if data.get("metric") == Metric.COST and not data.get("currency"):
            self.add_error("currency", "A cost budget needs its currency.")
        if data.get("metric") != Metric.COST:
            data["currency"] = ""
        return data

    def team_obj(self) -> Team | None:
        team_id = self.cleaned_data.get("team")
        return self.managed.get(team_id) if team_id is not None else None
