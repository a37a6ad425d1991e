"""Forms of the dashboard. Choices are always limited to what the user's scope allows."""

from __future__ import annotations

from typing import Any

from django import forms

from greenkpi.inventory.access import Scope
from greenkpi.inventory.models import Team


class TokenCreateForm(forms.Form):
    """A new collector token; its default team receives the energy no process claims."""

    name = forms.CharField(max_length=200, initial="collector")
    # Choices come from the scope's teams, already loaded: rendering the form runs no query.
    default_team = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        help_text="Receives the energy no process claims on hosts using this token.",
    )

    def __init__(self, *args: Any, scope: Scope, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.managed = {t.pk: t for t in scope.teams if t.pk in scope.managed_team_ids}
        field = self.fields["default_team"]
        choices = [(pk, team.name) for pk, team in self.managed.items()]
        # A team manager's token must land on a team they manage; org managers may leave it open.
        field.required = not scope.manages_org
        field.choices = ([("", "(no default team)")] if scope.manages_org else []) + choices

    def team(self) -> Team | None:
        team_id = self.cleaned_data.get("default_team")
        return self.managed[team_id] if team_id is not None else None
