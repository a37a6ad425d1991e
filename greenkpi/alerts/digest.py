"""The daily digest: one email per recipient per day with their open alerts, their budgets
(consumption, forecast and its method) and yesterday's energy and CO2e of their scope.

* Days are the organisation's (``Organisation.time_zone``): the digest about yesterday is written
  on the first run of the hourly beat in the local morning (MORNING: from 06:00 to before 12:00
  local), so Los Angeles gets it at 06:05 PST/PDT and Paris at 06:05 CET/CEST; a beat down all
  morning skips the day rather than mailing yesterday's news in the evening.

* Recipients come from the organisation's enabled email channels that keep ``daily_digest`` on
  (opt-out per channel): each channel's addresses see the whole organisation (they receive all of
  its alerts already); with ``notify_team_managers``, organisation managers/admins see the whole
  organisation and team managers their teams. An address on several channels gets ONE digest, sent
  through the first such channel (by id) with the union of its scopes.
* Sent through the outbox: the row's dedup key is (organisation, day, address), checked across
  channels and guarded by the (channel, dedup_key) constraint, so a second run of the task the same
  day, even a concurrent one, writes nothing.
* Everything is read through the selectors the pages use (alerts_open, budget_statuses,
  hourly_totals), so the digest says what the pages say.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from greenkpi.alerts import links, outbox, selectors
from greenkpi.alerts.lifecycle import Event
from greenkpi.alerts.models import Channel, Notification
from greenkpi.inventory.models import Membership, Organisation, Role, Team
from greenkpi.kpis.scheduler import jobs_usage, waste_by
from greenkpi.kpis.selectors import hourly_totals
from greenkpi.lib.periods import day_start
from greenkpi.recommendations.selectors import new_high_value

log = logging.getLogger(__name__)

MAX_ALERTS = 50  # a digest is a summary: the page has the rest
# Local hours [start, end) in which the day's digest is written (module docstring).
MORNING = (6, 12)
MANAGING_ROLES = (Role.MANAGER, Role.ADMIN)


@dataclass
class Recipient:
    """One address and what it may see: the whole organisation, or some of its teams."""

    address: str
    channel: Channel
    org_wide: bool = False
    team_ids: set[int] = field(default_factory=set)


def digest_recipients(*, organisation: Organisation) -> list[Recipient]:
    """Who gets a digest, through which channel, seeing what (see module)."""
    found: dict[str, Recipient] = {}
    channels = Channel.objects.filter(
        organisation=organisation, kind=Channel.Kind.EMAIL, enabled=True, daily_digest=True
    ).order_by("pk")
    managers = list(
        Membership.objects.filter(organisation=organisation, role__in=MANAGING_ROLES)
        .exclude(user__email="")
        .values_list("user__email", "team_id")
    )
    for channel in channels:
        scopes: list[tuple[str, int | None]] = [(a, None) for a in channel.address_list()]
        if channel.notify_team_managers:
            scopes += managers
        for address, team_id in scopes:
            who = found.setdefault(address.lower(), Recipient(address, channel))
            if team_id is None:
                who.org_wide = True
            else:
                who.team_ids.add(team_id)
    return sorted(found.values(), key=lambda r: r.address.lower())


def dedup_key(organisation_id: int, day: date, address: str) -> str:
    return hashlib.sha256(f"digest|{organisation_id}|{day}|{address.lower()}".encode()).hexdigest()


def _energy(organisation_id: int, day: date, team_id: int | None, tz: tzinfo) -> dict[str, Any]:
    frame = hourly_totals(
        organisation_id=organisation_id,
        start=day_start(day, tz),
        end=day_start(day + timedelta(days=1), tz),
        team_id=team_id,
    )
    return {
        "energy_kwh": float(frame["energy_kwh"].sum()),
        "co2e_kg": float(frame["co2e_kg"].sum()),
        "hours": len(frame),
    }


def digest_payload(
    *, organisation: Organisation, recipient: Recipient, day: date, now: datetime
) -> dict[str, Any]:
    """What one recipient's digest says; a snapshot stored on the outbox row."""
    team_ids = sorted(recipient.team_ids)
    scope = {
        "organisation_id": organisation.pk,
        "team_ids": team_ids,
        "org_wide": recipient.org_wide,
    }
    alerts = list(selectors.alerts_open(**scope)[: MAX_ALERTS + 1])
    statuses = selectors.budget_statuses(**scope, now=now)
    tz = organisation.tz
    if recipient.org_wide:
        used = _energy(organisation.pk, day, None, tz)
        teams = "the whole organisation"
    else:
        parts = [_energy(organisation.pk, day, t, tz) for t in team_ids]
        used = {k: sum(p[k] for p in parts) for k in ("energy_kwh", "co2e_kg", "hours")}
        teams = ", ".join(
            Team.objects.filter(pk__in=team_ids).order_by("name").values_list("name", flat=True)
        )
    return {
        "version": 1,
        "type": "digest",
        "event": Event.DIGEST.value,
        "title": f"Daily digest {day:%Y-%m-%d}: {organisation.name}",
        "organisation": {
            "id": organisation.pk,
            "slug": organisation.slug,
            "name": organisation.name,
        },
        "day": day.isoformat(),
        "time_zone": organisation.time_zone,
        "scope": teams,
        "yesterday": {**used, "has_data": used["hours"] > 0},
        "alerts": [
            {
                "rule": a.rule.name,
                "state": a.state,
                "summary": a.summary,
                "team": a.team.name if a.team else "",
                "since": a.active_since.isoformat().replace("+00:00", "Z"),
                "acknowledged": a.acknowledged_at is not None,
            }
            for a in alerts[:MAX_ALERTS]
        ],
        "alerts_more": len(alerts) > MAX_ALERTS,
        "budgets": [_budget_line(s) for s in statuses],
        "slurm_month": _slurm_accounts(organisation.pk, day, recipient, tz),
        "recommendations": _new_findings(organisation, day, recipient),
        "count": len(alerts[:MAX_ALERTS]),
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "url": links.alerts_page_url(organisation),
    }


def _new_findings(organisation: Organisation, day: date, recipient: Recipient) -> dict[str, Any]:
    """High-value recommendations first found on ``day`` (docs/advice.md), within the
    recipient's teams: what to change, worth at least 1,000 kWh or 100 kgCO2e a year."""
    found = new_high_value(
        organisation_id=organisation.pk,
        team_ids=None if recipient.org_wide else sorted(recipient.team_ids),
        start=day_start(day, organisation.tz),
        end=day_start(day + timedelta(days=1), organisation.tz),
    )
    return {
        "new": [
            {
                "title": f.title,
                "action": f.action,
                "tactic": f.tactic,
                "annual_kwh": f.annual_kwh,
                "annual_kgco2e": f.annual_location_kgco2e,
            }
            for f in found
        ],
        "url": links.recommendations_page_url(organisation),
    }


MAX_ACCOUNTS = 20  # the Slurm jobs page has the rest


def _slurm_accounts(
    organisation_id: int, day: date, recipient: Recipient, tz: tzinfo
) -> dict[str, Any]:
    """One line per Slurm account for the month of ``day`` so far (local days; on the 1st of a
    month the digest covers the whole month before): its jobs' energy and allocated-but-idle
    waste, from the same read as the Slurm jobs page, within the recipient's teams."""
    start = day_start(day.replace(day=1), tz)
    end = day_start(day + timedelta(days=1), tz)
    jobs = jobs_usage(
        organisation_id=organisation_id,
        start=start,
        end=end,
        team_ids=None if recipient.org_wide else recipient.team_ids,
        kind="slurm",
    )
    accounts = waste_by(jobs, by="account")
    return {
        "month": f"{day:%Y-%m}",
        "through": day.isoformat(),
        "accounts": [
            {
                "account": g.key or "(none)",
                "jobs": g.jobs,
                "energy_kwh": round(g.energy_kwh, 6),
                "wasted_gpu_h": round(g.wasted_gpu_h, 4),
                "wasted_kgco2e": round(g.wasted_kgco2e, 6),
            }
            for g in accounts[:MAX_ACCOUNTS]
        ],
        "more": len(accounts) > MAX_ACCOUNTS,
    }


def _budget_line(status: selectors.BudgetStatus) -> dict[str, Any]:
    crossing = status.crossing_at
    return {
        "name": status.budget.name,
        "unit": status.unit,
        "period": status.period_label,
        "amount": status.budget.amount,
        "consumed": round(status.consumed, 6),
        "consumed_pct": round(status.consumed_share * 100, 1),
        "forecast": round(status.forecast_total, 6),
        "forecast_pct": round(status.forecast_share * 100, 1),
        "forecast_method": status.forecast_method,
        "crossing_at": crossing.isoformat().replace("+00:00", "Z") if crossing else None,
        "complete": status.complete,
        "has_data": status.has_data,
    }


def digests_send(
    *, now: datetime | None = None, organisation_id: int | None = None, queue: str | None = None
) -> int:
    """Write today's digest (about yesterday, local) for every recipient not yet served, in the
    organisations whose local time is in the MORNING; returns the number of outbox rows written
    (0 on a second run the same day)."""
    now = now or timezone.now()
    organisations = Organisation.objects.order_by("pk")
    if organisation_id is not None:
        organisations = organisations.filter(pk=organisation_id)
    written = 0
    for organisation in organisations:
        local = now.astimezone(organisation.tz)
        if not MORNING[0] <= local.hour < MORNING[1]:
            continue  # not its morning: a later (or earlier) hourly run serves it
        day = local.date() - timedelta(days=1)
        for recipient in digest_recipients(organisation=organisation):
            key = dedup_key(organisation.pk, day, recipient.address)
            if Notification.objects.filter(
                organisation=organisation, event=Event.DIGEST, dedup_key=key
            ).exists():
                continue  # already written today (a re-run of the task)
            payload = digest_payload(
                organisation=organisation, recipient=recipient, day=day, now=now
            )
            try:
                with transaction.atomic():
                    row = outbox.notification_write(
                        channel=recipient.channel,
                        event=Event.DIGEST,
                        payload=payload,
                        dedup_key=key,
                        now=now,
                        recipients=[recipient.address],
                        queue=queue,
                    )
            except IntegrityError:  # a concurrent run wrote it first
                row = None
            written += row is not None
    return written
