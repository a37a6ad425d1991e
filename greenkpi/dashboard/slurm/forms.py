"""The identity-mapping form: the inventory's validation (a regex that does not compile is an
error on ``pattern``), teams limited to the organisation's."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from greenkpi.inventory.mappings import mapping_validate
from greenkpi.inventory.models import RUN_KINDS, IdentityMapping, MappingKind, Organisation, Team


class MappingForm(forms.Form):
    kind = forms.ChoiceField(choices=MappingKind.choices)
    pattern = forms.CharField(
        max_length=200,
        help_text="Account or user name (exact); for job names and comments a regular expression, "
        "e.g. ^llm-pretrain or greenkpi:model=(?P<model>[\\w.-]+)",
    )
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False)
    model_key = forms.CharField(max_length=200, required=False, label="Model key")
    run_kind = forms.ChoiceField(choices=[("", "—"), *RUN_KINDS], required=False)
    cluster = forms.CharField(
        max_length=200, required=False, help_text="Only this cluster; empty = every cluster."
    )
    priority = forms.IntegerField(initial=0, min_value=-1000, max_value=1000)
    note = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: Any, organisation: Organisation, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.organisation = organisation
        self.fields["team"].queryset = Team.objects.filter(organisation=organisation)  # type: ignore[attr-defined]

    @classmethod
    def initial_of(cls, mapping: IdentityMapping) -> dict[str, Any]:
        return {
            "kind": mapping.kind,
            "pattern": mapping.pattern,
            "team": mapping.team_id,
            "model_key": mapping.model_key,
            "run_kind": mapping.run_kind,
            "cluster": mapping.cluster,
            "priority": mapping.priority,
            "note": mapping.note,
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            mapping_validate(
                organisation=self.organisation,
                kind=data["kind"],
                pattern=data["pattern"],
                team=data.get("team"),
                model_key=data.get("model_key", ""),
                run_kind=data.get("run_kind", ""),
                cluster=data.get("cluster", ""),
            )
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                self.add_error(name if name in self.fields else None, messages)
        return data
