"""Forms of the budget and alert pages. Choices come from the user's scope (what they manage), so
a team manager cannot even name another team; the services check the same rules again."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from itertools import pairwise
from typing import Any

from django import forms

from greenkpi.alerts.models import (
    Budget,
    BudgetScope,
    Channel,
    ForecastMethod,
    Metric,
    NoDataHandling,
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


class AlertRuleForm(forms.Form):
    """An alert rule. Budget kinds name a budget; the others may narrow to one team."""

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=RuleKind.choices)
    enabled = forms.BooleanField(required=False, initial=True)
    budget = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    team = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    floor_pct = forms.FloatField(
        min_value=0, max_value=100, initial=30, label="Utilization floor (%)"
    )
    window_h = forms.IntegerField(
        min_value=1, max_value=24 * 31, initial=24, label="Utilization window (hours)"
    )
    idle_hours = forms.IntegerField(min_value=1, max_value=24 * 7, initial=4, label="Idle (hours)")
    silent_minutes = forms.IntegerField(
        min_value=1, max_value=24 * 60, initial=15, label="Collector silent after (minutes)"
    )
    for_minutes = forms.IntegerField(
        min_value=0, max_value=24 * 60, initial=5, label="Pending before firing (minutes)"
    )
    no_data = forms.ChoiceField(
        choices=NoDataHandling.choices, initial=NoDataHandling.NODATA, label="When there is no data"
    )
    channels = forms.TypedMultipleChoiceField(coerce=int, required=False)

    def __init__(
        self,
        *args: Any,
        scope: Scope,
        budgets: list[Budget],
        channels: list[Channel],
        rule: Any = None,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.scope = scope
        self.budgets = {b.pk: b for b in budgets}
        self.channel_objs = {c.pk: c for c in channels}
        self.managed = {t.pk: t for t in scope.teams if t.pk in scope.managed_team_ids}
        self.fields["budget"].choices = [("", "—")] + [(b.pk, b.name) for b in budgets]
        every = [("", "Every team (organisation managers)")] if scope.manages_org else []
        self.fields["team"].choices = every + [(pk, t.name) for pk, t in self.managed.items()]
        self.fields["channels"].choices = [(c.pk, str(c)) for c in channels]
        self.rule = rule
        if rule is not None:
            self.fields["kind"].disabled = True
            self.initial.update(
                name=rule.name,
                kind=rule.kind,
                enabled=rule.enabled,
                budget=rule.budget_id,
                team=rule.team_id,
                floor_pct=round(rule.utilization_floor * 100, 4),
                window_h=rule.utilization_window_h,
                idle_hours=rule.idle_hours,
                silent_minutes=rule.silent_minutes,
                for_minutes=rule.for_s // 60,
                no_data=rule.no_data,
                channels=[c.pk for c in rule.channels.all()],
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if kind in BUDGET_KINDS:
            if data.get("budget") is None:
                self.add_error("budget", "A budget rule watches a budget: choose one.")
            data["team"] = None
        else:
            data["budget"] = None
            if data.get("team") is None and not self.scope.manages_org:
                self.add_error("team", "Choose one of the teams you manage.")
        return data

    def service_kwargs(self) -> dict[str, Any]:
        d = self.cleaned_data
        return {
            "name": d["name"],
            "enabled": d["enabled"],
            "budget": self.budgets.get(d["budget"]) if d.get("budget") is not None else None,
            "team": self.managed.get(d["team"]) if d.get("team") is not None else None,
            "utilization_floor": d["floor_pct"] / 100,
            "utilization_window_h": d["window_h"],
            "idle_hours": d["idle_hours"],
            "silent_minutes": d["silent_minutes"],
            "for_s": d["for_minutes"] * 60,
            "no_data": d["no_data"],
        }

    def channel_list(self) -> list[Channel]:
        return [self.channel_objs[pk] for pk in self.cleaned_data.get("channels", [])]


SILENCE_DURATIONS = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


class SilenceForm(forms.Form):
    duration = forms.ChoiceField(
        choices=[(k, k) for k in SILENCE_DURATIONS], initial="4h", label="For"
    )
    comment = forms.CharField(max_length=500, required=False)
    whole_rule = forms.BooleanField(
        required=False, label="Every alert of this rule (not only this one)"
    )

    def duration_delta(self) -> timedelta:
        return SILENCE_DURATIONS[self.cleaned_data["duration"]]
