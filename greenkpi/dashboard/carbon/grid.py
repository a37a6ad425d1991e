"""Reads behind the grid insights page (/carbon/grid/): each site's grid intensity by UTC hour of
day, its cleanest hours, and what moving the flexible energy (training runs) would have saved.

The saving reuses the estimator of carbon-aware advice (``greenkpi.workloads.advice.advise``,
docs/carbon-advice.md): each training run's measured hourly IT energy is replayed at every start
hour of every site against that site's mean intensity per hour of day. Sites without an imported
hourly series take their annual figure as a flat profile, flagged as such: it says nothing about
hours, only about places.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from django.db.models import Avg, Count
from django.db.models.functions import ExtractHour

from greenkpi.carbon.annual import annual_for
from greenkpi.carbon.models import GridIntensityHourly
from greenkpi.inventory.access import Scope
from greenkpi.inventory.models import Site
from greenkpi.kpis.read import sums as read
from greenkpi.lib.periods import Period
from greenkpi.workloads import advice
from greenkpi.workloads.models import TRAINING_KINDS, Run

BEST_HOURS = 3
# Runs compared, largest first: each costs 24 x sites replays; beyond this the rest is ignored
# (and the page says how many were left out).
MAX_RUNS = 300
PROFILE_COLUMNS = ["hour_utc", "mean_g_per_kwh", "hours_of_data", "source", "best"]

ASSUMPTIONS = (
    "Flexible energy = IT energy of runs registered as training or fine-tuning "
    "(workloads registry) with rollups in the range; inference is taken as not movable.",
    "Each run keeps its measured hour-by-hour energy and is replayed at each UTC start hour "
    "against the site's mean intensity for that hour of day over the range "
    "(the estimator of docs/carbon-advice.md).",
    "Operational, location-based CO2e only: embodied carbon does not change with the hour, and "
    "market-based factors are contracts, not the grid.",
    "Moving to another site assumes the same hardware and free capacity there, at that site's "
    "PUE; a site without an hourly series is compared at its annual average (flat).",
    "Estimates, not measurements: the mean intensity per hour hides day-to-day variation.",
)


@dataclass(frozen=True)
class SiteProfile:
    """One site's intensity by UTC hour of day (24 values) and where it came from."""

    site: Site
    hourly: bool  # False: the annual average, the same for every hour
    means: dict[int, float]  # hour of day -> mean gCO2e/kWh
    hours_of_data: dict[int, int]
    detail: str

    @property
    def best_hours(self) -> list[int]:
        if not self.hourly:
            return []
        return sorted(self.means, key=lambda h: (self.means[h], h))[:BEST_HOURS]

    @property
    def mean(self) -> float:
        return sum(self.means.values()) / len(self.means) if self.means else float("nan")

    @property
    def best_mean(self) -> float | None:
        best = self.best_hours
        return sum(self.means[h] for h in best) / len(best) if best else None


def site_profiles(scope: Scope, period: Period) -> list[SiteProfile]:
    """The organisation's sites, by name, each with its hour-of-day profile. Three queries: the
    averaging per zone and hour of day is done by the database (a year is 8,784 rows a zone);
    each series is named by its recorded source (the demo's is simulated, not "imported")."""
    sites = list(Site.objects.filter(organisation=scope.organisation).order_by("name"))
    hours = GridIntensityHourly.objects.filter(
        zone__in={s.grid_zone for s in sites}, hour__gte=period.start, hour__lt=period.end
    )
    sources: dict[str, set[str]] = defaultdict(set)
    for zone, source in hours.values_list("zone", "source").distinct().order_by():
        sources[zone].add(source or "hourly series, source not recorded")
    rows = (
        hours.annotate(hod=ExtractHour("hour", tzinfo=UTC))
        .values("zone", "hod")
        .annotate(mean=Avg("intensity_lifecycle_g_per_kwh"), n=Count("pk"))
        .order_by()
    )
    means: dict[str, dict[int, float]] = defaultdict(dict)
    counts: dict[str, dict[int, int]] = defaultdict(dict)
    for row in rows:
        means[row["zone"]][int(row["hod"])] = float(row["mean"])
        counts[row["zone"]][int(row["hod"])] = int(row["n"])
    out = []
    for site in sites:
        zone = site.grid_zone
        if means.get(zone):
            named = "; ".join(sorted(sources[zone])) or "hourly series"
            out.append(SiteProfile(site, True, means[zone], counts[zone], named))
            continue
        figure, _ = annual_for(zone)
        flat = dict.fromkeys(range(advice.HOURS), figure.intensity_g_per_kwh)
        detail = f"annual average {figure.zone} {figure.year} ({figure.basis}): flat, no hours"
        out.append(SiteProfile(site, False, flat, {}, detail))
    return out


def profile_frame(profile: SiteProfile) -> pd.DataFrame:
    """One site's chart and CSV: PROFILE_COLUMNS, 24 rows (hours without data are absent)."""
    best = set(profile.best_hours)
    source = "hourly" if profile.hourly else "annual (flat)"
    return pd.DataFrame(
        [
            (h, profile.means[h], profile.hours_of_data.get(h, 0), source, h in best)
            for h in sorted(profile.means)
        ],
        columns=PROFILE_COLUMNS,
    )


@dataclass(frozen=True)
class RunShift:
    """One training run: as it ran (estimated at mean intensities) and its best alternatives."""

    team_id: int
    team: str
    model: str
    run: str
    site: str
    start_hour: int
    energy_kwh: float
    current_kgco2e: float
    best_hour_here: advice.Option
    best_anywhere: advice.Option

    @property
    def saving_time_kgco2e(self) -> float:
        return self.current_kgco2e - self.best_hour_here.kgco2e

    @property
    def saving_anywhere_kgco2e(self) -> float:
        return self.current_kgco2e - self.best_anywhere.kgco2e


@dataclass(frozen=True)
class Savings:
    runs: list[RunShift]
    flexible_energy_kwh: float
    current_kgco2e: float
    saving_time_kgco2e: float  # every run at its site's best start hour
    saving_anywhere_kgco2e: float  # every run at the best (site, start hour)
    runs_left_out: int  # beyond MAX_RUNS
    runs_without_site: int
    notes: list[str] = field(default_factory=list)

    @property
    def saving_time_pct(self) -> float | None:
        """Percent of the estimate as run."""
        return 100 * self.saving_time_kgco2e / self.current_kgco2e if self.current_kgco2e else None

    @property
    def saving_anywhere_pct(self) -> float | None:
        if not self.current_kgco2e:
            return None
        return 100 * self.saving_anywhere_kgco2e / self.current_kgco2e


def flexible_savings(
    scope: Scope,
    period: Period,
    profiles: list[SiteProfile],
    team_ids: Collection[int] | None = None,
) -> Savings:
    """What the visible teams' training runs in the range would have emitted at their sites' best
    start hours and at the best site. Two queries (runs, their hourly energy)."""
    wanted = scope.team_ids if team_ids is None else scope.team_ids & frozenset(team_ids)
    runs = set(
        Run.objects.filter(
            model__team_id__in=list(wanted),
            kind__in=list(TRAINING_KINDS),
            started_at__lt=period.end,
        ).values_list("model__team_id", "model__key", "key")
    )
    energy: dict[tuple[int, str, str], dict[tuple[int, datetime], float]] = defaultdict(dict)
    if runs:
        rows = read.sums(
            organisation_id=scope.organisation.pk,
            start=period.start,
            end=period.end,
            columns=["energy_kwh"],
            by=["team_id", "model_key", "run_key", "site_id"],
            where={"team_id": sorted(wanted), "run_key": sorted({key for _, _, key in runs})},
            grain="hour",
        )
        hours = rows["bucket_utc"].dt.tz_localize(UTC).dt.to_pydatetime().tolist()
        for team_id, model_key, run_key, site_id, hour, kwh in zip(
            rows["team_id"].tolist(),
            rows["model_key"].tolist(),
            rows["run_key"].tolist(),
            rows["site_id"].tolist(),
            hours,
            rows["energy_kwh"].tolist(),
            strict=True,
        ):
            key = (team_id, model_key, run_key)
            if key in runs and not pd.isna(site_id):
                energy[key][(int(site_id), hour)] = kwh
    series = [
        advice.SiteSeries(p.site.name, p.site.grid_zone, p.site.pue, p.means) for p in profiles
    ]
    names = {p.site.pk: p.site.name for p in profiles}
    team_names = {t.pk: t.name for t in scope.teams}
    ranked = sorted(energy.items(), key=lambda kv: -sum(kv[1].values()))
    shifts: list[RunShift] = []
    without_site = 0
    for (team_id, model, run), by_site_hour in ranked[:MAX_RUNS]:
        per_site: dict[int, float] = defaultdict(float)
        for (site_id, _), kwh in by_site_hour.items():
            per_site[site_id] += kwh
        main = max(per_site, key=lambda s: per_site[s])  # a run spans one site (as advice says)
        if main not in names:
            without_site += 1
            continue
        hours = sorted(h for (s, h) in by_site_hour if s == main)
        start = hours[0].astimezone(UTC)
        profile = [0.0] * (int((hours[-1] - hours[0]).total_seconds() // 3600) + 1)
        for (s, h), kwh in by_site_hour.items():
            if s == main:
                profile[int((h - hours[0]).total_seconds() // 3600)] += kwh
        advised = advice.advise(
            energy_kwh=profile, current_site=names[main], current_hour=start.hour, sites=series
        )
        if advised.current is None or advised.best is None or not advised.at_current_site:
            continue
        shifts.append(
            RunShift(
                team_id=team_id,
                team=team_names.get(team_id, ""),
                model=model,
                run=run,
                site=names[main],
                start_hour=start.hour,
                energy_kwh=sum(profile),
                current_kgco2e=advised.current.kgco2e,
                best_hour_here=advised.at_current_site[0],
                best_anywhere=advised.best,
            )
        )
    notes = []
    if not runs:
        notes.append(
            "no training or fine-tuning runs are registered for these teams: register runs "
            "(docs/retraining.md) so their energy counts as flexible"
        )
    return Savings(
        runs=shifts,
        flexible_energy_kwh=sum(s.energy_kwh for s in shifts),
        current_kgco2e=sum(s.current_kgco2e for s in shifts),
        saving_time_kgco2e=sum(s.saving_time_kgco2e for s in shifts),
        saving_anywhere_kgco2e=sum(s.saving_anywhere_kgco2e for s in shifts),
        runs_left_out=max(0, len(ranked) - MAX_RUNS),
        runs_without_site=without_site,
        notes=notes,
    )


def shifts_frame(savings: Savings) -> pd.DataFrame:
    """The runs compared, one row each (the grid page's CSV)."""
    return pd.DataFrame(
        [
            (
                s.team,
                s.model,
                s.run,
                s.site,
                s.start_hour,
                s.energy_kwh,
                s.current_kgco2e,
                s.best_hour_here.start_hour,
                s.best_hour_here.kgco2e,
                s.best_anywhere.site,
                s.best_anywhere.start_hour,
                s.best_anywhere.kgco2e,
            )
            for s in savings.runs
        ],
        columns=[
            "team",
            "model",
            "run",
            "site",
            "start_hour_utc",
            "energy_kwh",
            "current_kgco2e",
            "best_hour_here_utc",
            "best_hour_here_kgco2e",
            "best_site",
            "best_site_hour_utc",
            "best_anywhere_kgco2e",
        ],
    )
