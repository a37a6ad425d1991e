"""Forms of the alert pages. Choices come from the user's scope (what they manage), so a team
manager cannot even name another team; the services check the same rules again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms

from greenkpi.alerts.models import (
    Budget,
    Channel,
    NoDataHandling,
    RuleKind,
)
from greenkpi.dashboard.budgets.forms import BUDGET_KINDS
from greenkpi.inventory.access import Scope


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
