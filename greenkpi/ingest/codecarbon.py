"""CodeCarbon compatibility: turn the cumulative report of its HTTP output into delta samples.

CodeCarbon (``emissions_endpoint``, class ``HTTPOutput``) POSTs ``dataclasses.asdict`` of the run's
*total* ``EmissionsData`` plus ``"user"`` on every ``flush()`` and at ``stop()``: energies in kWh
since the tracker started, duration in seconds, a naive local ``timestamp``. It sends no auth
header, waits 10 s, expects 201 and never retries. So each post is turned into one window
[end of the previous post, this post] per component (cpu, gpu, ram) holding the *difference* of
the totals; a lost post is healed by the next one, whose difference covers both. Stored through
``services.ingest_batch``, the same path (validation, host/device registration, COPY) collectors
use. Field mapping and what is lost: docs/codecarbon.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from greenkpi.ingest.codecarbon_report import COMPONENTS, Report
from greenkpi.ingest.models import CodeCarbonRun
from greenkpi.ingest.services import ingest_batch
from greenkpi.inventory.models import CollectorToken, Team
from greenkpi.lib.periods import naive_utc
from greenkpi_schema import FieldError, ValidationFailed, format_time

KWH_TO_J = 3.6e6
# Totals may only go down when the run restarted; allow float noise, never a real decrease.
RESET_EPSILON_KWH = 1e-12
# Naive timestamps are local time of the client; time zones are whole quarter hours from UTC.
OFFSET_STEP_S = 900
MAX_OFFSET_S = 14 * 3600

# Payload field -> share tag. "user" is the OS account that ran the tracker (getpass.getuser()).
_TAGS = (
    ("experiment_id", "experiment_id"),
    ("codecarbon_version", "codecarbon_version"),
    ("tracking_mode", "tracking_mode"),
    ("country_iso_code", "country_iso_code"),
    ("country_name", "country_name"),
    ("region", "region"),
    ("on_cloud", "on_cloud"),
    ("cloud_provider", "cloud_provider"),
    ("cloud_region", "cloud_region"),
    ("user", "os_user"),
    ("pue", "pue"),
)


@dataclass(slots=True)
class Outcome:
    run: CodeCarbonRun
    stored: bool
    reason: str | None = None  # why nothing was stored: "replay" or "empty"
    reset: bool = False
    start: datetime | None = None
    end: datetime | None = None
    energy_j: dict[str, float] = field(default_factory=dict)
    accepted: int = 0
    batch_id: int | None = None
    host_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run.run_id,
            "stored": self.stored,
            "reason": self.reason,
            "reset": self.reset,
            "window": {"start": format_time(self.start), "end": format_time(self.end)}
            if self.start and self.end
            else None,
            "energy_j": self.energy_j,
            "accepted": self.accepted,
            "batch_id": self.batch_id,
            "host_id": self.host_id,
        }


def codecarbon_report_ingest(
    *,
    token: CollectorToken,
    report: Report,
    hostname: str | None = None,
    team_slug: str | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Store the energy a report adds to its run since the previous report, attributed to it.

    A report not later than the last stored one (a replay, or one overtaken by a newer one) stores
    nothing: the newer totals already cover it. Totals that went down mean the run restarted under
    the same run_id; the new totals are then the energy since that restart (never negative).
    Raises ValidationFailed for an unknown team or an unplaceable timestamp.
    """
    now = now or timezone.now()
    team = _team_slug(token, team_slug)
    with transaction.atomic():
        CodeCarbonRun.objects.bulk_create(
            [
                CodeCarbonRun(
                    organisation_id=token.organisation_id,
                    run_id=report.run_id,
                    project_name=report.project_name[:200],
                    experiment_id=report.values.get("experiment_id", "")[:200],
                )
            ],
            ignore_conflicts=True,  # the first two posts of a run may race
        )
        run = CodeCarbonRun.objects.select_for_update().get(
            organisation_id=token.organisation_id, run_id=report.run_id
        )
        end = _to_utc(report.timestamp, run, now)
        if run.last_timestamp is not None and end <= run.last_timestamp:
            run.ignored_posts += 1
            run.updated_at = now
            run.save(update_fields=["ignored_posts", "updated_at", "utc_offset_s"])
            return Outcome(run=run, stored=False, reason="replay")
        last = {
            "cpu": run.last_cpu_energy_kwh,
            "gpu": run.last_gpu_energy_kwh,
            "ram": run.last_ram_energy_kwh,
        }
        reset = run.last_timestamp is not None and any(
            report.energy_kwh[c] < last[c] - RESET_EPSILON_KWH for c in last
        )
        fresh = run.last_timestamp is None or reset
        delta_kwh = {
            c: report.energy_kwh[c] if fresh else max(0.0, report.energy_kwh[c] - last[c])
            for c in last
        }
        if fresh:
            start = end - timedelta(seconds=report.duration_s)
            if run.last_timestamp is not None:  # never overlap windows already stored
                start = max(start, run.last_timestamp)
        else:
            start = run.last_timestamp
        # The batch validator refuses windows older than the retention horizon; a run longer
        # than that has its first window shortened (its energy kept) rather than refused.
        horizon = now - timedelta(days=settings.INGEST_MAX_AGE_DAYS) + timedelta(minutes=5)
        start = max(start, horizon)
        outcome = Outcome(run=run, stored=False, reason="empty", reset=reset, start=start, end=end)
        if end > start:
            _store(outcome, token, report, delta_kwh, fresh, hostname, team, now)
        run.last_timestamp = end
        run.last_duration_s = report.duration_s
        run.last_cpu_energy_kwh = report.energy_kwh["cpu"]
        run.last_gpu_energy_kwh = report.energy_kwh["gpu"]
        run.last_ram_energy_kwh = report.energy_kwh["ram"]
        run.posts += 1
        run.resets += int(reset)
        run.updated_at = now
        run.save()
    return outcome


def _team_slug(token: CollectorToken, team_slug: str | None) -> str | None:
    if not team_slug:
        return token.default_team.slug if token.default_team_id else None
    if not Team.objects.filter(organisation_id=token.organisation_id, slug=team_slug).exists():
        raise ValidationFailed(
            [FieldError("?team", "unknown_team", f"no team {team_slug!r} in this organisation")]
        )
    return team_slug


def _to_utc(moment: datetime, run: CodeCarbonRun, now: datetime) -> datetime:
    """The report's time in UTC. CodeCarbon sends naive local time (``datetime.now()``).

    HTTPOutput posts right after taking the timestamp, so the first report of a run tells the
    client's UTC offset: its distance from the server clock, rounded to a quarter hour (which
    also absorbs a few minutes of clock drift). The offset is kept for the whole run so replays
    and later posts map consistently, whenever they arrive.
    """
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    if run.utc_offset_s is None:
        local_minus_utc = (moment - naive_utc(now)).total_seconds()
        offset = round(local_minus_utc / OFFSET_STEP_S) * OFFSET_STEP_S
        if abs(offset) > MAX_OFFSET_S:
            raise ValidationFailed(
                [
                    FieldError(
                        "/timestamp",
                        "clock",
                        f"{moment.isoformat()} is {local_minus_utc / 3600:+.1f} h from the server's "
                        "clock, more than any time zone; check the host's clock",
                    )
                ]
            )
        run.utc_offset_s = offset
    return (moment - timedelta(seconds=run.utc_offset_s)).replace(tzinfo=UTC)


def _store(
    outcome: Outcome,
    token: CollectorToken,
    report: Report,
    delta_kwh: dict[str, float],
    fresh: bool,
    hostname: str | None,
    team: str | None,
    now: datetime,
) -> None:
    """Write the window as a v1 batch through the collectors' ingest path."""
    assert outcome.start is not None and outcome.end is not None
    values = report.values
    gpu_seen = values.get("gpu_count", 0) > 0 or report.energy_kwh["gpu"] > 0
    gpu_seen = gpu_seen or outcome.run.last_gpu_energy_kwh > 0
    tags = {"source": "codecarbon"}
    for key, tag in _TAGS:
        value = report.pue if key == "pue" else values.get(key)
        if value not in (None, ""):
            tags[tag] = f"{value:g}" if isinstance(value, float) else str(value)[:200]
    share_base: dict[str, Any] = {
        "method": "declared",
        "model": report.project_name,
        "run": report.run_id,
        "tags": tags,
    }
    if team:
        share_base["team"] = team
    pieces = _pieces(outcome.start, outcome.end, settings.INGEST_MAX_WINDOW_S)
    samples: list[dict[str, Any]] = []
    devices: list[dict[str, Any]] = []
    for component, _key, kind, method in COMPONENTS:
        if component == "gpu" and not gpu_seen:
            continue
        uuid = f"codecarbon:{report.run_id}:{component}"
        devices.append({"uuid": uuid, "kind": kind, "model": _model(component, values)})
        # CodeCarbon multiplies every energy by its pue setting; GreenKPI applies the site's PUE
        # in its KPIs, so store the IT energy the devices drew.
        total_j = delta_kwh[component] * KWH_TO_J / report.pue
        outcome.energy_j[kind] = total_j
        extra = _extra(component, values, fresh)
        given = 0.0
        for i, (start, end, fraction) in enumerate(pieces):
            # The report says nothing about how energy was spread over the window: spread it
            # evenly, and give the last piece the remainder so the pieces sum exactly.
            energy = total_j * fraction if i < len(pieces) - 1 else max(0.0, total_j - given)
            given += energy
            samples.append(
                {
                    "device_uuid": uuid,
                    "device_kind": kind,
                    "start": format_time(start),
                    "end": format_time(end),
                    "energy_j": energy,
                    "method": method,
                    **extra,
                    "shares": [{**share_base, "energy_j": energy}],
                }
            )
    version = values.get("codecarbon_version", "")
    data = {
        "schema_version": 1,
        "host": {
            "hostname": hostname or _default_hostname(report.project_name),
            "agent_version": f"codecarbon/{version}"[:64] if version else "codecarbon",
            "clock": format_time(outcome.end),
            "devices": devices,
        },
        "samples": samples,
    }
    body = orjson.dumps(data)
    key = f"codecarbon:{outcome.run.pk}:{format_time(outcome.end)}"
    try:
        result = ingest_batch(token=token, idempotency_key=key, body=body, data=data, now=now)
    except ValidationFailed as exc:
        # Only the derived window can fail here (too old, in the future): it comes from timestamp.
        raise ValidationFailed(
            [FieldError("/timestamp", e.code, e.message) for e in exc.errors[:1]]
        ) from None
    outcome.stored = True
    outcome.reason = None
    outcome.accepted = result.body.get("accepted", 0)
    outcome.batch_id = result.body.get("batch_id")
    outcome.host_id = result.body.get("host_id")
    outcome.run.host_id = outcome.host_id


def _pieces(start: datetime, end: datetime, max_s: float) -> list[tuple[datetime, datetime, float]]:
    """[start, end] cut into equal windows no longer than the batch maximum, with their share."""
    total = (end - start).total_seconds()
    count = max(1, math.ceil(total / max_s))
    bounds = [start + timedelta(seconds=total * i / count) for i in range(count)] + [end]
    return [(bounds[i], bounds[i + 1], 1 / count) for i in range(count)]


def _model(component: str, values: dict[str, Any]) -> str:
    if component == "ram":
        size = values.get("ram_total_size")
        return f"{size:.1f} GB RAM" if size else "RAM"
    return str(values.get(f"{component}_model") or "")[:200]


def _extra(component: str, values: dict[str, Any], fresh: bool) -> dict[str, Any]:
    """Utilization and memory: CodeCarbon averages them since the tracker started, which is this
    window only for the first report of a run; later windows would get the whole run's mean."""
    out: dict[str, Any] = {}
    if component == "ram":
        if values.get("ram_total_size"):
            out["mem_total_bytes"] = int(values["ram_total_size"] * 2**30)
        if fresh and values.get("ram_used_gb") is not None:
            out["mem_used_bytes"] = int(values["ram_used_gb"] * 2**30)
        return out
    percent = values.get(f"{component}_utilization_percent")
    if fresh and percent is not None and percent <= 100:
        out["util_busy"] = percent / 100
    return out


def _default_hostname(project_name: str) -> str:
    """CodeCarbon does not report a hostname: group its runs under one host per project."""
    slug = slugify(project_name)[:200]
    return f"codecarbon-{slug}" if slug else "codecarbon"
