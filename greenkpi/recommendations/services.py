"""Writes: the periodic recompute that replaces the findings, people's decisions, the ledger.

The recompute is idempotent like a rollup: it reads the window, runs every detector and, in one
transaction, updates each finding by its identity (organisation, detector, owner, subject),
creates the new ones and marks the ones no longer found as not present. Decisions are kept:
an accepted or snoozed finding stays so; a dismissed one comes back only when its evidence
changed materially (``materially_changed``); a snooze ends by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.urls import reverse
from django.utils.http import urlencode

from greenkpi.inventory.models import Organisation
from greenkpi.kpis.models import RecomputeRun, RunStatus
from greenkpi.kpis.read import freshness
from greenkpi.kpis.read.sums import sums
from greenkpi.lib.periods import day_floor, day_of
from greenkpi.lib.retry import TRANSIENT_ERRORS
from greenkpi.recommendations import constants as c
from greenkpi.recommendations import detectors, frames, ledger
from greenkpi.recommendations.models import Decision, Finding, RealisedSaving, State
from greenkpi.workloads.models import TRAINING_KINDS, MLModel, Run
from greenkpi.workloads.selectors import carbon_advice

log = logging.getLogger(__name__)
RUN_KIND = "recommendations"
BASELINE_DAYS = 14  # the ledger's "before": the two weeks before the decision


def detect(data: frames.Inputs) -> list[detectors.Finding]:
    """Every detector over one organisation's inputs, priced at each owner's ratios, ranked."""
    teams, hours = data.teams, data.hours
    served = data.serving[data.serving["requests"] > 0]
    serving = {
        (int(t), str(m)) for t, m in zip(served["team_id"], served["model_key"], strict=True)
    }
    energy_findings = [
        *detectors.right_size(data.usage, teams=teams, hours=hours),
        *detectors.idle_allocations(
            data.owners, data.accounts, teams=teams, hours=hours, serving=serving
        ),
        *detectors.retraining_cadence(data.retrains, teams=teams, hours=hours),
        *detectors.always_on_serving(data.serving, teams=teams, hours=hours),
        *detectors.hyperparameter_search(data.training, teams=teams, hours=hours),
    ]
    priced = [
        f.priced(data.factors.get((f.team_id, f.model_key)) or data.org_factors)
        for f in energy_findings
    ]
    return detectors.ranked([*priced, *detectors.shift(data.advices, teams=teams, hours=hours)])


def materially_changed(finding: Finding, estimate: detectors.Finding) -> bool:
    """Whether a dismissed finding's evidence changed materially since its dismissal: its
    estimated annual saving grew by half and by at least 100 kWh (10 kgCO2e for carbon-only
    findings), or the hardware it is about changed (another GPU family)."""
    before = finding.dismissed_evidence or {}
    if before.get("gpu_family") != estimate.evidence.get("gpu_family"):
        return True
    if finding.dismissed_kwh and finding.dismissed_kwh > 0:
        grew = estimate.annual_kwh - finding.dismissed_kwh
        return estimate.annual_kwh >= c.MATERIAL_FACTOR * finding.dismissed_kwh and (
            grew >= c.MATERIAL_MIN_KWH
        )
    kg_before = finding.dismissed_kgco2e or 0.0
    grew_kg = estimate.annual_location_kg - kg_before
    return estimate.annual_location_kg >= c.MATERIAL_FACTOR * kg_before and (
        grew_kg >= c.MATERIAL_MIN_KG
    )


def _evidence_url(organisation: Organisation, f: detectors.Finding, models: dict) -> str:
    query = urlencode({"org": organisation.slug})
    if f.owner_kind == "account":
        return f"{reverse('dashboard:slurm-jobs')}?{urlencode({'org': organisation.slug, 'account': f.owner})}"
    model_id = models.get((f.team_id, f.model_key))
    if model_id is not None:
        return f"{reverse('dashboard:model-detail', args=[model_id])}?{query}"
    if f.team_id is not None:
        return f"{reverse('dashboard:team', args=[f.team_id])}?{query}"
    return f"{reverse('dashboard:fleet')}?{query}"


def _fields(f: detectors.Finding, url: str, now: datetime) -> dict[str, Any]:
    return {
        "owner_kind": f.owner_kind,
        "team_id": f.team_id,
        "model_key": f.model_key,
        "title": f.title[:500],
        "action": f.action[:500],
        "tactic": f.tactic,
        "annual_kwh": f.annual_kwh,
        "annual_location_kgco2e": f.annual_location_kg,
        "annual_market_kgco2e": f.annual_market_kg,
        "annual_cost": f.annual_cost,
        "currency": f.currency,
        "evidence": dict(f.evidence),
        "evidence_url": url,
        "present": True,
        "computed_at": now,
    }


def findings_store(
    *, organisation: Organisation, found: Iterable[detectors.Finding], now: datetime
) -> list[Finding]:
    """Replace the organisation's findings by ``found`` (see module); returns those present."""
    found = list(found)
    models = {
        (team_id, key): pk
        for pk, team_id, key in MLModel.objects.filter(team__organisation=organisation).values_list(
            "pk", "team_id", "key"
        )
    }
    out = []
    with transaction.atomic():
        existing = {
            (row.detector, row.owner, row.subject): row
            for row in Finding.objects.select_for_update().filter(organisation=organisation)
        }
        for f in found:
            identity = (f.detector, f.owner[:300], f.subject[:200])
            fields = _fields(f, _evidence_url(organisation, f, models), now)
            row = existing.pop(identity, None)
            if row is None:
                row = Finding.objects.create(
                    organisation=organisation,
                    detector=identity[0],
                    owner=identity[1],
                    subject=identity[2],
                    first_seen=now,
                    **fields,
                )
                out.append(row)
                continue
            reopened = ""
            if row.state == State.DISMISSED and materially_changed(row, f):
                reopened = "evidence changed materially since the dismissal"
            elif row.state == State.SNOOZED and row.snoozed_until and row.snoozed_until <= now:
                reopened = "snooze ended"
            for name, value in fields.items():
                setattr(row, name, value)
            if reopened:
                _set_state(row, State.OPEN, reason=reopened, user=None, at=now)
            row.save()
            out.append(row)
        for row in existing.values():
            if row.present:
                row.present = False
                row.save(update_fields=["present"])
    return out


def _set_state(
    finding: Finding,
    state: str,
    *,
    reason: str,
    user: AbstractBaseUser | None,
    at: datetime,
    snoozed_until: datetime | None = None,
) -> None:
    finding.state = state
    finding.reason = reason
    finding.decided_by = user  # type: ignore[assignment]
    finding.decided_at = at
    finding.snoozed_until = snoozed_until if state == State.SNOOZED else None
    if state == State.DISMISSED:
        finding.dismissed_kwh = finding.annual_kwh
        finding.dismissed_kgco2e = finding.annual_location_kgco2e
        finding.dismissed_evidence = finding.evidence
    Decision.objects.create(
        finding=finding,
        state=state,
        reason=reason,
        user=user,
        at=at,
        snoozed_until=finding.snoozed_until,
        annual_kwh=finding.annual_kwh,
        annual_location_kgco2e=finding.annual_location_kgco2e,
    )


class DecisionError(ValueError):
    """A decision that cannot be taken (names the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def decide(
    *,
    finding: Finding,
    state: str,
    reason: str,
    user: AbstractBaseUser | None,
    snoozed_until: datetime | None = None,
    now: datetime | None = None,
) -> Finding:
    """Accept, dismiss, snooze or re-open a finding, with the reason (permissions: the caller)."""
    now = now or datetime.now(UTC)
    if state not in State.values:
        raise DecisionError("state", f"one of {', '.join(State.values)}")
    if state != State.OPEN and not reason.strip():
        raise DecisionError("reason", "say why (a reason is required)")
    if state == State.SNOOZED:
        if snoozed_until is None:
            raise DecisionError("snoozed_until", "a snooze needs an end")
        if snoozed_until <= now:
            raise DecisionError("snoozed_until", "must be in the future")
    with transaction.atomic():
        locked = Finding.objects.select_for_update().get(pk=finding.pk)
        _set_state(
            locked, state, reason=reason.strip(), user=user, at=now, snoozed_until=snoozed_until
        )
        locked.save()
    return locked


# --- the ledger ---------------------------------------------------------------------------------


def _owner_days(finding: Finding, start: datetime, end: datetime) -> list[ledger.Day]:
    """Per UTC day, the owner's GPU energy, work, carbon, GPUs held and main GPU family."""
    frame = frames.usage_frame(organisation_id=finding.organisation_id, start=start, end=end)
    mine = frame[
        (frame["team_id"] == finding.team_id)
        & (frame["model_key"] == finding.model_key)
        & frame["gpu_family"].notna()
    ]
    if mine.empty:
        return []
    mine = mine.assign(
        day=mine["bucket_utc"].dt.date,
        tflops=[c.GPUS[f].fp16_tflops for f in mine["gpu_family"]],
    )
    out = []
    for day, rows in mine.groupby("day", sort=True):
        work = (
            rows["busy_gpu_h"] * rows["tflops"]
            if finding.detector == "right-size"
            else rows["busy_gpu_h"]
        )
        families = rows.groupby("gpu_family")["allocated_gpu_h"].sum()
        out.append(
            ledger.Day(
                day=day,
                kwh=float(rows["energy_kwh"].sum()),
                work=float(work.sum()),
                location_kg=float(rows["operational_location_kgco2e"].sum()),
                market_kg=float(rows["operational_market_kgco2e"].sum()),
                devices=int(rows["device_id"].nunique()),
                family=str(families.idxmax()) if not families.empty else "",
            )
        )
    return out


def _retrain_days(finding: Finding, start: datetime, end: datetime) -> list[ledger.Day]:
    """Per whole local day in [start, end): the model's retrain runs' IT kWh and carbon (0 on a
    day without one); each day is one unit of work (a day of keeping the model current)."""
    keys = list(
        Run.objects.filter(
            model__team_id=finding.team_id,
            model__key=finding.model_key,
            kind__in=TRAINING_KINDS,
            started_at__gte=start - timedelta(days=1),
        ).values_list("key", flat=True)
    )
    tz = freshness.zone_of(finding.organisation_id)  # the organisation's days
    first, last = day_floor(start, tz), day_floor(end, tz)
    frame = sums(
        organisation_id=finding.organisation_id,
        start=first,
        end=last,
        columns=("energy_kwh", "operational_location_kgco2e", "operational_market_kgco2e"),
        by=("run_key",),
        where={"team_id": [finding.team_id], "model_key": [finding.model_key], "run_key": keys},
        grain="day",
    )
    per_day = (
        frame.groupby(frame["bucket_utc"].dt.date).sum(numeric_only=True) if len(frame) else None
    )
    out, day = [], day_of(first, tz)
    while day < day_of(last, tz):
        row = per_day.loc[day] if per_day is not None and day in per_day.index else None
        out.append(
            ledger.Day(
                day=day,
                kwh=float(row["energy_kwh"]) if row is not None else 0.0,
                work=1.0,
                location_kg=float(row["operational_location_kgco2e"]) if row is not None else 0.0,
                market_kg=float(row["operational_market_kgco2e"]) if row is not None else 0.0,
            )
        )
        day += timedelta(days=1)
    return out


METHODS = {
    "idle-allocation": (
        "busy GPU-hour",
        "counterfactual: the owner's IT kWh per busy GPU-hour in the 14 days before the decision "
        "x busy GPU-hours since the change; saved = counterfactual - measured kWh",
    ),
    "right-size": (
        "busy FP16 TFLOP-hour",
        "counterfactual: the owner's IT kWh per busy TFLOP-hour (busy GPU-hours x dense FP16 "
        "TFLOPS) in the 14 days before the decision x those since the change; saved = "
        "counterfactual - measured kWh",
    ),
    "retraining-cadence": (
        "day of keeping the model current",
        "counterfactual: the model's retrain IT kWh per day in the 14 days before the decision "
        "x days since the change (the first retrain skipped); saved = counterfactual - measured "
        "retrain kWh",
    ),
}


SHIFT_METHOD = (
    "the carbon-aware advice's measured saving (docs/carbon-advice.md §2): Scope 2 location-based "
    "kgCO2e per IT kWh of the runs before the move minus after, x the IT kWh of the runs since; "
    "a move does not change the energy"
)


def _shift_values(finding: Finding, now: datetime) -> dict[str, Any] | None:
    """The job moved after the decision: the advice's measured saving (kWh saved: 0)."""
    assert finding.decided_at is not None
    model = MLModel.objects.filter(team_id=finding.team_id, key=finding.model_key).first()
    if model is None:
        return None
    item = next(
        (a for a in carbon_advice(model=model, now=now) if a.recurrence == finding.subject), None
    )
    if item is None or item.move is None or item.measured is None:
        return None
    before, after = item.move
    starts = dict(
        model.runs.filter(key__in=[before[0].run_key, after[0].run_key]).values_list(
            "key", "started_at"
        )
    )
    moved = starts.get(after[0].run_key)
    if moved is None or moved < finding.decided_at:
        return None  # the job moved before anyone accepted the card: not this recommendation's
    m = item.measured
    return {
        "change": (
            f"{finding.subject} moved from {before[-1].site} {before[-1].start_hour:02d}:00 to "
            f"{after[0].site} {after[0].start_hour:02d}:00 UTC"
        ),
        "changed_at": moved,
        "method": SHIFT_METHOD,
        "work_unit": "IT kWh",
        "baseline_start": starts.get(before[0].run_key, moved),
        "baseline_end": moved,
        "after_end": now,
        "kwh_per_unit_before": 1.0,
        "units_after": m.after_energy_kwh,
        "counterfactual_kwh": m.after_energy_kwh,
        "actual_kwh": m.after_energy_kwh,
        "saved_kwh": 0.0,
        "saved_location_kgco2e": m.saving_kgco2e,
        "saved_market_kgco2e": None,
        "uncertainty_kwh": 0.0,
    }


def ledger_book(*, finding: Finding, now: datetime) -> RealisedSaving | None:
    """Book (or rebook) the realised saving of an accepted finding whose change is detected."""
    if finding.state != State.ACCEPTED or finding.decided_at is None:
        return None
    if finding.detector == "shift":
        shifted = _shift_values(finding, now)
        if shifted is None:
            return None
        common = {"organisation_id": finding.organisation_id, "team_id": finding.team_id}
        saving, _ = RealisedSaving.objects.update_or_create(
            finding=finding, defaults={**common, **shifted, "booked_at": now}
        )
        return saving
    if finding.detector not in METHODS:
        return None  # always-on serving, hyper-parameter search: not measured yet (docs)
    decided = finding.decided_at
    if finding.detector == "retraining-cadence":
        days = _retrain_days(finding, decided - timedelta(days=BASELINE_DAYS), now)
        after = [d for d in days if d.day >= decided.date()]  # a skipped retrain may be that day
    else:
        days = _owner_days(finding, decided - timedelta(days=BASELINE_DAYS), now)
        after = [d for d in days if d.day > decided.date()]
    before = [d for d in days if d.day < decided.date()]
    changed = ledger.change_day(finding.detector, before, after)
    if changed is None:
        return None
    since = [d for d in after if d.day >= changed.day]
    result = ledger.realised(before, since)
    if result is None:
        return None
    unit, method = METHODS[finding.detector]
    change = {
        "idle-allocation": (
            f"GPUs held fell to {changed.devices} (fewest before: {min(d.devices for d in before)})"
        ),
        "right-size": f"work moved to {changed.family} GPUs",
        "retraining-cadence": "a scheduled retrain skipped: the interval lengthened",
    }[finding.detector]
    values = {
        "organisation_id": finding.organisation_id,
        "team_id": finding.team_id,
        "change": change,
        "changed_at": datetime.combine(changed.day, datetime.min.time(), UTC),
        "method": method,
        "work_unit": unit,
        "baseline_start": datetime.combine(before[0].day, datetime.min.time(), UTC),
        "baseline_end": datetime.combine(before[-1].day, datetime.min.time(), UTC)
        + timedelta(days=1),
        "after_end": now,
        **{
            k: v
            for k, v in asdict(result).items()
            if k not in ("saved_location_kg", "saved_market_kg")
        },
        "saved_location_kgco2e": result.saved_location_kg,
        "saved_market_kgco2e": result.saved_market_kg,
        "booked_at": now,
    }
    saving, _ = RealisedSaving.objects.update_or_create(finding=finding, defaults=values)
    return saving


def recompute(*, organisation: Organisation, now: datetime | None = None) -> list[Finding]:
    """One organisation: detect, store, book the ledger of accepted findings."""
    now = now or datetime.now(UTC)
    data = frames.inputs(organisation_id=organisation.pk, now=now)
    stored = findings_store(organisation=organisation, found=detect(data), now=now)
    for finding in Finding.objects.filter(organisation=organisation, state=State.ACCEPTED):
        ledger_book(finding=finding, now=now)
    return stored


def recompute_all(*, now: datetime | None = None) -> RecomputeRun:
    """Periodic: every organisation (one failing is recorded and the others go on)."""
    run = RecomputeRun.objects.create(kind=RUN_KIND)
    failed, errors = 0, []
    for organisation in Organisation.objects.order_by("pk"):
        try:
            recompute(organisation=organisation, now=now)
        except TRANSIENT_ERRORS:
            raise  # the task retries the whole run (greenkpi.lib.retry)
        except Exception as exc:  # one organisation's bad data must not stop the others
            log.exception("recommendations of %s failed", organisation.slug)
            failed += 1
            errors.append(f"{organisation.slug}: {exc}")
    run.finished_at = datetime.now(UTC)
    run.duration_s = (run.finished_at - run.started_at).total_seconds()
    run.windows_failed = failed
    run.status = RunStatus.OK if not failed else RunStatus.PARTIAL
    run.error = "\n".join(errors)[:10_000]
    run.save()
    return run
