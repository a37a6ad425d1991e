"""Writes of identity mappings: validated, and each change recorded for the KPI engine to apply to
history (``IdentityMappingChange``). The admin, the dashboard forms and the API call these."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from greenkpi.inventory.attribution import (
    MODEL_GROUP,
    PATTERN_KINDS,
    PatternError,
    compile_pattern,
    label_rule,
)
from greenkpi.inventory.models import (
    RUN_KINDS,
    IdentityMapping,
    IdentityMappingChange,
    MappingKind,
    Organisation,
    Team,
)

MAPPING_FIELDS = ("kind", "cluster", "pattern", "team", "model_key", "run_kind", "priority", "note")


def mapping_validate(
    *,
    organisation: Organisation,
    kind: str,
    pattern: str,
    team: Team | None,
    model_key: str,
    run_kind: str,
    cluster: str = "",
) -> None:
    """Raise ValidationError keyed by field (what the forms show and the API turns into a 400)."""
    errors: dict[str, str] = {}
    if kind not in MappingKind.values:
        errors["kind"] = f"must be one of {', '.join(MappingKind.values)}"
    regex = None
    try:
        regex = compile_pattern(kind, pattern.strip() if kind not in PATTERN_KINDS else pattern)
    except PatternError as exc:
        errors["pattern"] = str(exc)
    if team is not None and team.organisation_id != organisation.pk:
        errors["team"] = "no such team in this organisation"
    if run_kind and run_kind not in dict(RUN_KINDS):
        errors["run_kind"] = f"must be one of {', '.join(dict(RUN_KINDS))}"
    if len(model_key) > 200:
        errors["model_key"] = "at most 200 characters"
    if len(cluster) > 200:
        errors["cluster"] = "at most 200 characters"
    gives_model = (
        bool(model_key)
        or (regex is not None and MODEL_GROUP in regex.groupindex)
        # a k8s-label mapping by key alone gives the label's value as the model
        or (
            kind == MappingKind.K8S_LABEL
            and "pattern" not in errors
            and label_rule(pattern)[1] is None
        )
    )
    if not errors and team is None and not gives_model and not run_kind:
        errors["team"] = (
            "a mapping sets a team, a model (a key, or a (?P<model>…) group) or a run kind"
        )
    if errors:
        raise ValidationError(errors)


def _record(mapping: IdentityMapping | dict[str, Any]) -> IdentityMappingChange:
    get = mapping.get if isinstance(mapping, dict) else lambda k: getattr(mapping, k)
    return IdentityMappingChange(
        organisation_id=get("organisation_id"),
        kind=get("kind"),
        cluster=get("cluster"),
        pattern=get("pattern"),
    )


def mapping_save(
    *,
    organisation: Organisation,
    mapping: IdentityMapping | None = None,
    kind: str,
    pattern: str,
    team: Team | None = None,
    model_key: str = "",
    run_kind: str = "",
    priority: int = 0,
    cluster: str = "",
    note: str = "",
) -> IdentityMapping:
    """Create (``mapping`` None) or update a mapping of ``organisation``; records the old and the
    new spec so every job either matches is re-attributed, history included."""
    if kind not in PATTERN_KINDS:
        pattern = pattern.strip()
    cluster, model_key = cluster.strip(), model_key.strip()
    mapping_validate(
        organisation=organisation,
        kind=kind,
        pattern=pattern,
        team=team,
        model_key=model_key,
        run_kind=run_kind,
        cluster=cluster,
    )
    if mapping is not None and mapping.organisation_id != organisation.pk:
        raise ValidationError({"__all__": "no such mapping in this organisation"})
    duplicate = IdentityMapping.objects.filter(
        organisation=organisation, kind=kind, cluster=cluster, pattern=pattern
    )
    if mapping is not None:
        duplicate = duplicate.exclude(pk=mapping.pk)
    if duplicate.exists():
        raise ValidationError({"pattern": "a mapping of this kind and pattern exists already"})
    with transaction.atomic():
        changes = []
        if mapping is None:
            mapping = IdentityMapping(organisation=organisation)
        else:
            old = IdentityMapping.objects.select_for_update().get(pk=mapping.pk)
            changes.append(_record(old))
        for name, value in (
            ("kind", kind),
            ("cluster", cluster),
            ("pattern", pattern),
            ("team", team),
            ("model_key", model_key),
            ("run_kind", run_kind),
            ("priority", priority),
            ("note", note),
        ):
            setattr(mapping, name, value)
        mapping.updated_at = timezone.now()
        mapping.save()
        changes.append(_record(mapping))
        IdentityMappingChange.objects.bulk_create(changes)
    return mapping


def mapping_delete(*, mapping: IdentityMapping) -> None:
    """Delete a mapping; its jobs fall back to the next mapping or the host's default team."""
    with transaction.atomic():
        IdentityMappingChange.objects.bulk_create([_record(mapping)])
        mapping.delete()


def mappings_rows(*, organisation_id: int) -> list[dict[str, Any]]:
    """The organisation's mappings as plain dicts (what ``attribution.rules_from`` takes)."""
    return list(
        IdentityMapping.objects.filter(organisation_id=organisation_id).values(
            "id", "kind", "cluster", "pattern", "team_id", "model_key", "run_kind", "priority"
        )
    )
