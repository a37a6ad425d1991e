"""System alerts: faults of the installation itself, told to the people who run it.

Today one check: **day partitions of the raw sample table cannot be created** (the hourly
``kpis-maintain-raw-storage`` job records its run as failed with ``ALERT partition creation
failed``; kpis/raw_storage.py). Ingest goes on meanwhile (the days made earlier and the default
partition take every window), so nothing a user sees is wrong yet: this is the early warning.

* **Read, not pushed**: every alert evaluation (each minute) reads the newest raw-storage runs
  (kpis sits below alerts and never calls it). A streak of failing runs is one *episode*, named by
  its first run.
* **Told once per episode**: one outbox row per enabled email channel of each organisation, dedup
  key ``system|raw-storage-partitions|<first run>|firing``, so the evaluations of every minute
  (and two evaluators at once: the (channel, dedup key) constraint) write it once. When a run
  succeeds again, the episode's ``resolved`` message goes out once, to the channels that were told
  it was failing.
* **To whom**: the channel's addresses and the organisation's admins (organisation-level ADMIN
  memberships) — the people who can act on the installation or reach who runs it. Webhook
  channels are left out: a tenant's webhook is its alert integration, not the operators' pager;
  operators scrape ``/metrics`` and watch the ``ALERT`` log line (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from greenkpi.alerts import outbox
from greenkpi.alerts.lifecycle import Event
from greenkpi.alerts.messages import PAYLOAD_VERSION
from greenkpi.alerts.models import Channel
from greenkpi.inventory.models import Membership, Organisation, Role
from greenkpi.kpis.models import RecomputeRun, RunStatus
from greenkpi.kpis.raw_storage import KIND as RAW_STORAGE
from greenkpi.kpis.raw_storage import PARTITION_ALERT

log = logging.getLogger(__name__)

CHECK = "raw-storage-partitions"
TITLE = "Day partitions of the raw sample table cannot be created"
RECENT_RUNS = 200  # a week of hourly runs: far more than an episode needs to be found


def _failing(run: RecomputeRun) -> bool:
    return run.status == RunStatus.FAILED and PARTITION_ALERT in run.error


def episode() -> tuple[str, list[RecomputeRun]] | None:
    """("firing" | "resolved", the episode's failed runs oldest first) of the newest episode, or
    None when the newest finished runs never failed to create partitions."""
    runs = list(
        RecomputeRun.objects.filter(kind=RAW_STORAGE, finished_at__isnull=False).order_by(
            "-started_at", "-pk"
        )[:RECENT_RUNS]
    )
    if not runs:
        return None
    state = "firing" if _failing(runs[0]) else "resolved"
    streak: list[RecomputeRun] = []
    for run in runs:
        if _failing(run):
            streak.append(run)
        elif streak:
            break
    return (state, streak[::-1]) if streak else None


def dedup_key(first_run_id: int, state: str) -> str:
    return hashlib.sha256(f"system|{CHECK}|{first_run_id}|{state}".encode()).hexdigest()


def _payload(
    organisation: Organisation, state: str, runs: list[RecomputeRun], now: datetime
) -> dict[str, Any]:
    first, last = runs[0], runs[-1]
    url = f"{settings.SITE_URL}{reverse('admin:kpis_recomputerun_changelist')}?kind={RAW_STORAGE}"
    firing = state == "firing"
    error = last.error.split("\n", 1)[0] if firing else ""
    return {
        "version": PAYLOAD_VERSION,
        "type": f"system.{state}",
        "event": Event.ERROR.value if firing else Event.RESOLVED.value,
        "title": f"[{'SYSTEM' if firing else 'RESOLVED'}] {TITLE}",
        "organisation": {
            "id": organisation.pk,
            "slug": organisation.slug,
            "name": organisation.name,
        },
        "rule": {"id": None, "name": "GreenKPI raw storage", "kind": "system"},
        "system": {
            "check": CHECK,
            "state": state,
            "failing_since": first.started_at.isoformat(),
            "failed_runs": len(runs),
            "last_failed_run": last.pk,
        },
        "count": 0,
        "counts": {},
        "group": None,
        "incomplete": False,
        "error": error,
        "alerts": [],
        "created_at": now.isoformat(),
        "url": url,
        "admin_url": "",
    }


def _recipients(channel: Channel) -> list[str]:
    admins = (
        Membership.objects.filter(
            organisation_id=channel.organisation_id, role=Role.ADMIN, team__isnull=True
        )
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    return sorted({*channel.address_list(), *admins})


def raw_storage_alerts(*, now: datetime | None = None, queue: str | None = None) -> int:
    """Tell the newest raw-storage episode's news (module docstring); returns the rows written."""
    found = episode()
    if found is None:
        return 0
    state, runs = found
    first = runs[0].pk
    now = now or timezone.now()
    key = dedup_key(first, state)
    channels = Channel.objects.filter(kind=Channel.Kind.EMAIL, enabled=True).select_related(
        "organisation"
    )
    if state == "resolved":
        # only where the failure was told (it may have failed and recovered between two checks)
        channels = channels.filter(notifications__dedup_key=dedup_key(first, "firing"))
    written = 0
    for channel in channels.exclude(notifications__dedup_key=key).order_by("pk"):
        recipients = _recipients(channel)
        if not recipients:
            continue
        try:
            with transaction.atomic():
                written += bool(
                    outbox.notification_write(
                        channel=channel,
                        event=Event.ERROR if state == "firing" else Event.RESOLVED,
                        payload=_payload(channel.organisation, state, runs, now),
                        dedup_key=key,
                        now=now,
                        recipients=recipients,
                        queue=queue,
                    )
                )
        except IntegrityError:
            continue  # a concurrent evaluation wrote this channel's row first
    if written:
        log.warning("system alert %s %s told on %d channel(s)", CHECK, state, written)
    return written
