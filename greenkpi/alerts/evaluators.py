"""What each rule kind observes now: the label sets whose condition holds, and those that cannot be
judged for lack of data (held in their state, never resolved by silence). Reads only.

Labels always carry ``rule`` (its id) and ``kind``; a fingerprint hashes organisation, rule and the
sorted labels, so the same host or team is the same alert from one evaluation to the next.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from greenkpi.alerts import retraining, selectors
from greenkpi.alerts.lifecycle import Observation
from greenkpi.alerts.models import AlertRule, RuleKind
from greenkpi.inventory.models import Device, Host, Team
from greenkpi.kpis import formulas
from greenkpi.kpis.selectors import rollup_frame
from greenkpi.lib.periods import hour_floor
from greenkpi.workloads.selectors import retraining_alert_candidates

# A GPU counts as allocated for the whole idle window when reported for at least this share of it.
IDLE_COVERAGE_MIN = 0.9


@dataclass(frozen=True, slots=True)
class NoData:
    """A label set the rule had nothing to judge by (see AlertRule.no_data)."""

    labels: dict[str, str]
    team_id: int | None
    reason: str


@dataclass
class Evaluation:
    """Observations of one rule now; ``team_of`` gives each fingerprint's owning team (visibility).

    ``unknown``: partial data (held in its state); ``no_data``: nothing at all to judge by, handled
    per the rule's ``no_data`` setting (a "no data" alert, alerting, or OK).
    """

    observed: dict[str, Observation] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    team_of: dict[str, int | None] = field(default_factory=dict)
    no_data: dict[str, NoData] = field(default_factory=dict)

    def add_no_data(
        self, rule: AlertRule, labels: dict[str, str], *, team_id: int | None, reason: str
    ) -> None:
        full = {"rule": str(rule.pk), "kind": rule.kind, **labels}
        fp = fingerprint(rule.organisation_id, rule.pk, full)
        self.team_of[fp] = team_id
        self.no_data[fp] = NoData(full, team_id, reason)

    def add(
        self,
        rule: AlertRule,
        labels: dict[str, str],
        *,
        team_id: int | None,
        active: bool | None,
        value: float | None = None,
        summary: str = "",
        annotations: dict[str, object] | None = None,
    ) -> None:
        """Record one label set: active True (condition holds), False (clear), None (no data)."""
        full = {"rule": str(rule.pk), "kind": rule.kind, **labels}
        fp = fingerprint(rule.organisation_id, rule.pk, full)
        self.team_of[fp] = team_id
        if active is None:
            self.unknown.add(fp)
        elif active:
            self.observed[fp] = Observation(fp, full, value, summary, annotations or {})


def fingerprint(organisation_id: int, rule_id: int, labels: dict[str, str]) -> str:
    raw = orjson.dumps([organisation_id, rule_id, labels], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


BUDGET_KINDS = frozenset({RuleKind.BUDGET_THRESHOLD, RuleKind.BUDGET_FORECAST})


def evaluate(
    rule: AlertRule,
    *,
    now: datetime,
    budget_statuses: Mapping[int, selectors.BudgetStatus] | None = None,
) -> Evaluation:
    """Observe ``rule`` at ``now``. A periodic run passes the statuses of all its budgets, read in
    one batch (selectors.statuses_of), so N budget rules don't cost N consumption reads."""
    kind = RuleKind(rule.kind)
    if kind in BUDGET_KINDS:
        known = (budget_statuses or {}).get(rule.budget_id or 0)
        status = known or selectors.budget_status(budget=rule.budget, now=now)
        return BUDGET_EVALUATORS[kind](rule, status)
    return EVALUATORS[kind](rule, now)


def _pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def _budget_threshold(rule: AlertRule, status: selectors.BudgetStatus) -> Evaluation:
    budget = rule.budget
    out = Evaluation()
    if not status.has_data:
        return _budget_no_data(rule, status, out)
    notes = _completeness(status)
    for crossing in status.forecast.crossings:
        if crossing.threshold_pct not in budget.thresholds_pct:
            continue
        reached = crossing.reached
        summary = (
            f"Budget {budget.name!r} at {_pct(status.consumed_share)} of {budget.amount:g} "
            f"{status.unit} for {status.period_label} ({status.consumed:.4g} {status.unit}): "
            f"{crossing.threshold_pct} % crossed by {crossing.at:%Y-%m-%d %H:%M}Z"
            if reached
            else ""
        )
        # Under the threshold with data missing is "unknown", not "under budget".
        active = True if reached else (False if status.complete else None)
        out.add(
            rule,
            {"budget": str(budget.pk), "threshold": str(crossing.threshold_pct)},
            team_id=budget.team_id,
            active=active,
            value=status.consumed,
            summary=summary,
            annotations=notes,
        )
    return out


def _budget_forecast(rule: AlertRule, status: selectors.BudgetStatus) -> Evaluation:
    budget = rule.budget
    at = status.crossing_at
    when = f"reached {at:%Y-%m-%d %H:%M}Z" if at else "not reached this period"
    how = (
        "with the weekday profile of the last 4 weeks"
        if status.forecast_method == "weekday_profile"
        else f"at {status.forecast.rate_per_day:.4g} {status.unit}/day"
    )
    summary = (
        f"Budget {budget.name!r} forecast {status.forecast_total:.4g} {status.unit} "
        f"({_pct(status.forecast_share)}) by the end of {status.period_label} {how}; "
        f"100 % {when}"
    )
    out = Evaluation()
    if not status.has_data:
        return _budget_no_data(rule, status, out)
    exceeds = status.forecast.exceeds
    out.add(
        rule,
        {"budget": str(budget.pk)},
        team_id=budget.team_id,
        active=True if exceeds else (False if status.complete else None),
        value=status.forecast_total,
        summary=summary,
        annotations=_completeness(status),
    )
    return out


def _budget_no_data(rule: AlertRule, status: selectors.BudgetStatus, out: Evaluation) -> Evaluation:
    """No rollup at all in the period or the last 7 days: zero use is not "under budget"."""
    budget = status.budget
    out.add_no_data(
        rule,
        {"budget": str(budget.pk)},
        team_id=budget.team_id,
        reason=f"budget {budget.name!r} has no rollups in {status.period_label} nor the last 7 days",
    )
    return out


def _completeness(status: selectors.BudgetStatus) -> dict[str, object]:
    if status.complete:
        return {"complete": True}
    return {
        "complete": False,
        "silent_hosts": list(status.silent_hosts),
        "incomplete_since": status.incomplete_since.isoformat()
        if status.incomplete_since
        else None,
        "pending_recompute_hours": status.pending_recompute_hours,
        "uncosted_energy_kwh": status.uncosted_energy_kwh,
    }


def _teams(rule: AlertRule) -> list[Team]:
    if rule.team_id:
        return [rule.team]
    return list(Team.objects.filter(organisation_id=rule.organisation_id).order_by("pk"))


def _low_utilization(rule: AlertRule, now: datetime) -> Evaluation:
    as_of = hour_floor(now)
    start = as_of - timedelta(hours=rule.utilization_window_h)
    teams = _teams(rule)
    frame = rollup_frame(
        organisation_id=rule.organisation_id, start=start, end=as_of, team_ids=[t.pk for t in teams]
    )
    util = formulas.gpu_utilization(frame, by=["team_id"]).set_index("team_id")
    out = Evaluation()
    for team in teams:
        known = float(util["util_known_gpu_h"].get(team.pk, 0.0)) if len(util) else 0.0
        if known <= 0:  # no GPU readings: nothing to judge (a team without GPUs is not idle)
            out.add_no_data(
                rule,
                {"team": team.slug},
                team_id=team.pk,
                reason=f"team {team.name} has no GPU readings in the last "
                f"{rule.utilization_window_h} h",
            )
            continue
        avg = float(util.at[team.pk, "avg_gpu_utilization"])
        out.add(
            rule,
            {"team": team.slug},
            team_id=team.pk,
            active=avg < rule.utilization_floor,
            value=avg,
            summary=(
                f"Team {team.name} GPU utilization {_pct(avg)} over the last "
                f"{rule.utilization_window_h} h ({known:.3g} GPU-h measured), under the "
                f"{_pct(rule.utilization_floor)} floor"
            ),
        )
    return out


def _idle_gpu(rule: AlertRule, now: datetime) -> Evaluation:
    as_of = hour_floor(now)
    frame = rollup_frame(
        organisation_id=rule.organisation_id,
        start=as_of - timedelta(hours=rule.idle_hours),
        end=as_of,
        team_ids=[rule.team_id] if rule.team_id else None,
    )
    frame = frame[frame["device_kind"] == "gpu"]
    out = Evaluation()
    if frame.empty:
        scope = {"team": rule.team.slug} if rule.team_id else {}
        out.add_no_data(
            rule,
            scope,
            team_id=rule.team_id,
            reason=f"no GPU rollups in the last {rule.idle_hours} h",
        )
        return out
    per_device = frame.groupby("device_id")[["allocated_gpu_h", "idle_gpu_h"]].sum()
    owner = (
        frame.groupby(["device_id", "team_id"], dropna=True)["allocated_gpu_h"].sum().reset_index()
    )
    top_team = owner.sort_values("allocated_gpu_h").groupby("device_id")["team_id"].last()
    idle = per_device[
        (per_device["allocated_gpu_h"] >= IDLE_COVERAGE_MIN * rule.idle_hours)
        & (per_device["idle_gpu_h"] >= rule.idle_share_min * per_device["allocated_gpu_h"])
    ]
    names = {
        d.pk: (d.host.hostname, d.uuid)
        for d in Device.objects.filter(pk__in=list(idle.index)).select_related("host")
    }
    for device_id, row in idle.iterrows():
        hostname, uuid = names.get(int(device_id), ("?", str(device_id)))
        team = top_team.get(device_id)
        share = row["idle_gpu_h"] / row["allocated_gpu_h"]
        out.add(
            rule,
            {"host": hostname, "device": uuid},
            team_id=None if team is None else int(team),
            active=True,
            value=float(row["idle_gpu_h"]),
            summary=f"GPU {uuid} on {hostname} idle {_pct(share)} of the last {rule.idle_hours} h",
        )
    return out


def _collector_silent(rule: AlertRule, now: datetime) -> Evaluation:
    hosts = Host.objects.filter(organisation_id=rule.organisation_id)
    if rule.team_id:
        hosts = hosts.filter(default_team_id=rule.team_id)
    out = Evaluation()
    for host in hosts.filter(last_seen__isnull=True).order_by("hostname"):
        out.add_no_data(
            rule,
            {"host": host.hostname},
            team_id=host.default_team_id,
            reason=f"the collector on {host.hostname} never reported",
        )
    cutoff = now - timedelta(minutes=rule.silent_minutes)
    for host in hosts.filter(last_seen__lt=cutoff).order_by("hostname"):
        silent_min = (now - host.last_seen).total_seconds() / 60
        out.add(
            rule,
            {"host": host.hostname},
            team_id=host.default_team_id,
            active=True,
            value=silent_min,
            summary=(
                f"Collector on {host.hostname} silent for {silent_min:.0f} min (last data "
                f"{host.last_seen:%Y-%m-%d %H:%M}Z): its hours are incomplete, not zero"
            ),
        )
    return out


def _retraining_need(rule: AlertRule, now: datetime) -> Evaluation:
    """Models whose stored verdict is *recommended* or *overdue*; one alert per model.

    Polled like every other kind (not driven by the ``verdict_changed`` signal): the lifecycle is
    level-based, so ``for``, repeats, silences and resolution need the current state each tick, and
    a missed signal (a worker killed after commit) would otherwise lose or never resolve an alert.
    A model back at healthy / watch is no longer a candidate: its alert resolves.
    """
    rows = retraining_alert_candidates(organisation_id=rule.organisation_id)
    if rule.team_id:
        rows = rows.filter(model__team_id=rule.team_id)
    out = Evaluation()
    for row in rows:
        model = row.model
        labels = {"rule": str(rule.pk), "kind": rule.kind, "team": model.team.slug}
        labels["model"] = f"{model.team.slug}/{model.key}"  # unique in the organisation
        # The fingerprint is per model, without severity: recommended -> overdue is the same alert
        # escalating (its labels and summary are refreshed), not a resolve and a new fire.
        fp = fingerprint(rule.organisation_id, rule.pk, labels)
        notes = retraining.annotations(row)
        out.team_of[fp] = model.team_id
        out.observed[fp] = Observation(
            fp,
            {**labels, "severity": str(notes["severity"])},
            row.need,
            retraining.summary(row),
            notes,
        )
    return out


BUDGET_EVALUATORS: dict[RuleKind, Callable[[AlertRule, selectors.BudgetStatus], Evaluation]] = {
    RuleKind.BUDGET_THRESHOLD: _budget_threshold,
    RuleKind.BUDGET_FORECAST: _budget_forecast,
}
EVALUATORS: dict[RuleKind, Callable[[AlertRule, datetime], Evaluation]] = {
    RuleKind.LOW_UTILIZATION: _low_utilization,
    RuleKind.IDLE_GPU: _idle_gpu,
    RuleKind.COLLECTOR_SILENT: _collector_silent,
    RuleKind.RETRAINING_NEED: _retraining_need,
}
