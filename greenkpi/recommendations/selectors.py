"""Reads of findings and the ledger for the page, the API, the overview, the ESG report and the
digest: each one query, scoped like every page (a person sees the findings of the teams they
may see; a finding with no team only organisation-wide)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, Q, QuerySet, Sum

from greenkpi.inventory.access import Scope
from greenkpi.recommendations import constants as c
from greenkpi.recommendations.models import Finding, RealisedSaving, State

# Cards first by estimated annual kWh, then Scope 2 location-based kgCO2e (shift: kWh 0).
RANKING = ("-annual_kwh", "-annual_location_kgco2e", "owner", "pk")
SHOWN_STATES = (State.OPEN, State.ACCEPTED)


def _team_filter(org_wide: bool, team_ids: Iterable[int]) -> Q:
    q = Q(team_id__in=sorted(team_ids))
    return q | Q(team__isnull=True) if org_wide else q


def findings_visible(scope: Scope) -> QuerySet[Finding]:
    """Every finding the scope may see (any state, present or not)."""
    return Finding.objects.filter(
        _team_filter(scope.org_wide, scope.team_ids), organisation=scope.organisation
    )


def cards(scope: Scope, *, states: Iterable[str] = SHOWN_STATES) -> list[Finding]:
    """Present findings in ``states``, ranked; with the team and the realised saving."""
    return list(
        findings_visible(scope)
        .filter(present=True, state__in=list(states))
        .select_related("team", "realised", "decided_by")
        .order_by(*RANKING)
    )


def can_decide(scope: Scope, finding: Finding) -> bool:
    """Managers and admins of the owning team, or of the organisation."""
    return scope.manages_org or (
        finding.team_id is not None and finding.team_id in scope.managed_team_ids
    )


def quarter_start(moment: datetime) -> datetime:
    return datetime(moment.year, 3 * ((moment.month - 1) // 3) + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Saved:
    """Realised savings booked for changes made in a period (measured, never estimated)."""

    kwh: float
    location_kgco2e: float
    market_kgco2e: float
    acted_on: int  # recommendations whose change was detected


def saved_since(*, organisation_id: int, team_ids: Iterable[int] | None, since: datetime) -> Saved:
    """One aggregate over the ledger: changes detected since ``since`` (the overview's "saved
    this quarter"). ``team_ids`` None: the whole organisation."""
    rows = RealisedSaving.objects.filter(organisation_id=organisation_id, changed_at__gte=since)
    if team_ids is not None:
        rows = rows.filter(team_id__in=sorted(team_ids))
    got = rows.aggregate(
        kwh=Sum("saved_kwh"),
        kg=Sum("saved_location_kgco2e"),
        market=Sum("saved_market_kgco2e"),
        n=Count("pk"),
    )
    return Saved(got["kwh"] or 0.0, got["kg"] or 0.0, got["market"] or 0.0, got["n"])


def ledger(
    *, organisation_id: int, team_ids: Iterable[int] | None, start: datetime, end: datetime
) -> list[RealisedSaving]:
    """Ledger rows whose change was detected in [start, end) (the ESG report lists them)."""
    rows = RealisedSaving.objects.filter(
        organisation_id=organisation_id, changed_at__gte=start, changed_at__lt=end
    )
    if team_ids is not None:
        rows = rows.filter(team_id__in=sorted(team_ids))
    return list(rows.select_related("finding", "team").order_by("changed_at", "pk"))


def new_high_value(
    *, organisation_id: int, team_ids: Iterable[int] | None, start: datetime, end: datetime
) -> list[Finding]:
    """Open findings first seen in [start, end) worth at least the digest's threshold a year."""
    rows = Finding.objects.filter(
        organisation_id=organisation_id,
        present=True,
        state=State.OPEN,
        first_seen__gte=start,
        first_seen__lt=end,
    ).filter(Q(annual_kwh__gte=c.HIGH_VALUE_KWH) | Q(annual_location_kgco2e__gte=c.HIGH_VALUE_KG))
    if team_ids is not None:
        rows = rows.filter(team_id__in=sorted(team_ids))
    return list(rows.order_by(*RANKING)[:10])
