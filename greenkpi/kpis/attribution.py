"""Scheduler jobs' owners at rollup time, and mapping changes applied to history.

Both rollup paths ask ``jobs_resolved`` which team and model the identity mappings give each job
of a range (the rules themselves are ``inventory.attribution``), then apply the same precedence
(``owner_of``; the PostgreSQL path restates it in SQL): a share's explicit team or model wins, then
the mapping, then the host's default team. A scheduler share that falls to the host's team is
counted as unmapped, so the overview can say how much energy still waits for a mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from greenkpi.ingest.models import SchedulerJob
from greenkpi.inventory.attribution import Identity, Resolution, resolve, rules_from
from greenkpi.inventory.mappings import mappings_rows
from greenkpi.inventory.models import IdentityMappingChange
from greenkpi.kpis.dirty import windows_mark_dirty
from greenkpi.lib.periods import hour_floor

IDENTITY_FIELDS = ("kind", "cluster", "user", "account", "job_name", "comment", "attributes")
_TEXT_FIELDS = IDENTITY_FIELDS[:-1]


def identity_of(row: dict[str, object]) -> Identity:
    """The mapping-relevant facts of a SchedulerJob row (a pod's namespace and labels live in its
    ``attributes``, ingest.scheduler)."""
    texts = {name: str(row.get(name) or "") for name in _TEXT_FIELDS}
    if texts["kind"] != "k8s":
        return Identity(**texts)
    attributes = row.get("attributes")
    attributes = attributes if isinstance(attributes, dict) else {}
    labels = attributes.get("labels")
    pairs = tuple(
        sorted((str(k), str(v)) for k, v in labels.items()) if isinstance(labels, dict) else ()
    )
    return Identity(**texts, namespace=str(attributes.get("namespace") or ""), labels=pairs)


def jobs_resolved(*, organisation_id: int, start: datetime, end: datetime) -> dict[int, Resolution]:
    """{SchedulerJob id: what the mappings give it} for the jobs holding windows in [start, end).

    Reads the (small) jobs table by its window bounds, never the shares; nothing at all for an
    organisation without scheduler jobs in the range.
    """
    jobs = list(
        SchedulerJob.objects.filter(
            organisation_id=organisation_id, first_window__lt=end, last_window__gte=start
        ).values("id", *IDENTITY_FIELDS)
    )
    if not jobs:
        return {}
    rules = rules_from(mappings_rows(organisation_id=organisation_id))
    return {job["id"]: resolve(identity_of(job), rules) for job in jobs}


@dataclass(frozen=True, slots=True)
class Owner:
    team_id: int | None
    model_key: str
    unmapped: bool


def owner_of(
    *,
    team_id: int | None,
    default_team_id: int | None,
    model_key: str,
    job: Resolution | None,
    has_job: bool,
) -> Owner:
    """The team and model a share's energy goes to (docs/kpis.md, "Attribution precedence")."""
    model = model_key or (job.model_key if job is not None else "")
    if team_id is not None:
        return Owner(team_id, model, False)
    if job is not None and job.team_id is not None:
        return Owner(job.team_id, model, False)
    return Owner(default_team_id, model, has_job)


def mapping_changes_apply(*, now: datetime | None = None, limit: int = 200) -> int:
    """Claim pending mapping changes and mark every window of the jobs they touch dirty.

    The claim (a conditional UPDATE of ``applied_at``) and the marks commit together, so a second
    worker finds nothing to do and a crash leaves the change pending. Returns windows marked.
    """
    now = now or timezone.now()
    marked = 0
    with transaction.atomic():
        pending = list(
            IdentityMappingChange.objects.select_for_update(skip_locked=True)
            .filter(applied_at__isnull=True)
            .order_by("id")[:limit]
        )
        if not pending:
            return 0
        IdentityMappingChange.objects.filter(
            pk__in=[c.pk for c in pending], applied_at__isnull=True
        ).update(applied_at=now)
        by_org: dict[int, list[IdentityMappingChange]] = {}
        for change in pending:
            by_org.setdefault(change.organisation_id, []).append(change)
        for organisation_id, changes in by_org.items():
            jobs = SchedulerJob.objects.filter(organisation_id=organisation_id).values(
                "id", "first_window", "last_window", *IDENTITY_FIELDS
            )
            specs = rules_from(
                {"id": c.pk, "kind": c.kind, "cluster": c.cluster, "pattern": c.pattern}
                for c in changes
            )
            hit: list[int] = []
            hours: set[datetime] = set()
            for job in jobs.iterator():
                identity = identity_of(job)
                if not any(spec.match(identity) for spec in specs):
                    continue
                hit.append(job["id"])
                hour = hour_floor(job["first_window"])
                while hour <= job["last_window"]:
                    hours.add(hour)
                    hour += timedelta(hours=1)
            if hours:
                marked += windows_mark_dirty(
                    organisation_id=organisation_id, window_starts=hours, now=now
                )
            if hit:
                # the jobs' runs follow once their windows are recomputed (workloads)
                SchedulerJob.objects.filter(pk__in=hit).update(runs_synced_at=None)
    return marked
