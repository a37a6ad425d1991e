from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone

from greenkpi.integrations.models import TokenAccess
from greenkpi.inventory.access import Scope
from greenkpi.inventory.models import Team

LIFETIMES = [("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("366", "1 year")]


class PersonalTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. “grafana”.")
    access = forms.ChoiceField(
        choices=TokenAccess.choices,
        initial=TokenAccess.READ,
        help_text="Read: every GET of the API and the OpenMetrics export. Write: also acknowledge "
        "and silence alerts (as far as your role allows).",
    )
    lifetime = forms.ChoiceField(choices=LIFETIMES, initial="90", label="Expires after")
    teams = forms.ModelMultipleChoiceField(
        queryset=Team.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every team you see in this organisation.",
    )

    def __init__(self, *args: Any, scope: Scope, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["teams"].queryset = Team.objects.filter(pk__in=sorted(scope.team_ids)).order_by(
            "name"
        )

    def expires_at(self):
        return timezone.now() + timedelta(days=int(self.cleaned_data["lifetime"]))
