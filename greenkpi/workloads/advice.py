"""Carbon-aware advice for recurring runs: pure functions, no Django (docs/carbon-advice.md).

Estimate: the reference run's measured IT energy per hour since its start, ``e_k`` (kWh), replayed
at every start hour ``h`` (UTC) of every eligible site ``s`` against that site's mean intensity per
hour of day over the history window, ``Ī_s(hour)`` (g/kWh):

    O(s, h) = Σ_k e_k x PUE_s x Ī_s((h + k) mod 24) / 1000          kgCO2e (operational)

    saving  = O(current site, current start) - min over (s, h) of O(s, h);  % = saving / O(current)

Measured: runs of the recurrence before and after a move (a change of start hour or site), each
run's operational kgCO2e per IT kWh as it actually ran, ``c = Σ O / Σ E``:

    measured saving = Σ E_after x (c_before - c_after);   % = 1 - c_after / c_before

Embodied carbon does not depend on when or where (on the same hardware) a run happens, so both
figures are operational, location-based only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

HOURS = 24


def hour_of_day_means(series: Iterable[tuple[datetime, float]]) -> dict[int, float]:
    """{UTC hour of day: mean intensity} of an hourly series (hours absent from it are absent)."""
    sums: dict[int, float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    for moment, value in series:
        sums[moment.hour] += value
        counts[moment.hour] += 1
    return {h: sums[h] / counts[h] for h in sorted(sums)}


def emissions_kg(
    *, energy_kwh: Sequence[float], start_hour: int, pue: float, intensity: Mapping[int, float]
) -> float | None:
    """O(s, h) above; None when an hour the run would span has no intensity."""
    total = 0.0
    for k, kwh in enumerate(energy_kwh):
        g = intensity.get((start_hour + k) % HOURS)
        if g is None:
            return None
        total += kwh * pue * g
    return total / 1000.0


@dataclass(frozen=True, slots=True)
class SiteSeries:
    """One site the run could run at: its PUE and its mean hourly intensity profile."""

    site: str
    zone: str
    pue: float
    intensity: Mapping[int, float]  # hour of day -> g/kWh (hourly data only)


@dataclass(frozen=True, slots=True)
class Option:
    site: str
    start_hour: int  # UTC
    kgco2e: float


@dataclass(frozen=True, slots=True)
class Advice:
    current: Option | None
    best: Option | None
    saving_kgco2e: float | None
    saving_pct: float | None
    by_site: list[Option] = field(default_factory=list)  # each site's best start, best first
    at_current_site: list[Option] = field(default_factory=list)  # every start there, best first


def _circular_distance(a: int, b: int) -> int:
    d = abs(a - b) % HOURS
    return min(d, HOURS - d)


def advise(
    *,
    energy_kwh: Sequence[float],
    current_site: str,
    current_hour: int,
    sites: Sequence[SiteSeries],
) -> Advice:
    """Rank every (site, start hour). Ties go to the current site, then to the start hour closest
    to the current one: among equal emissions, the least disruptive move."""
    options: list[Option] = []
    for site in sites:
        for h in range(HOURS):
            kg = emissions_kg(
                energy_kwh=energy_kwh, start_hour=h, pue=site.pue, intensity=site.intensity
            )
            if kg is not None:
                options.append(Option(site.site, h, kg))

    def rank(o: Option) -> tuple[float, int, int, int]:
        return (
            round(o.kgco2e, 12),
            o.site != current_site,
            _circular_distance(o.start_hour, current_hour),
            o.start_hour,
        )

    options.sort(key=rank)
    current = next(
        (o for o in options if o.site == current_site and o.start_hour == current_hour), None
    )
    best = options[0] if options else None
    by_site: dict[str, Option] = {}
    for o in options:
        by_site.setdefault(o.site, o)
    saving = pct = None
    if current is not None and best is not None:
        saving = current.kgco2e - best.kgco2e
        pct = saving / current.kgco2e if current.kgco2e > 0 else None
    return Advice(
        current=current,
        best=best,
        saving_kgco2e=saving,
        saving_pct=pct,
        by_site=list(by_site.values()),
        at_current_site=[o for o in options if o.site == current_site],
    )


@dataclass(frozen=True, slots=True)
class RunMeasure:
    """One finished occurrence as measured: where and when it started, IT kWh, operational kg."""

    run_key: str
    site: str
    start_hour: int
    energy_kwh: float
    operational_kgco2e: float

    @property
    def placement(self) -> tuple[str, int]:
        return (self.site, self.start_hour)


def split_at_move(runs: Sequence[RunMeasure]) -> tuple[list[RunMeasure], list[RunMeasure]] | None:
    """(before, after) of the latest move, runs oldest first: ``after`` is the trailing block at
    the latest placement, ``before`` the block just before it at one other placement. None when
    the runs never moved."""
    if not runs:
        return None
    i = len(runs)
    while i > 0 and runs[i - 1].placement == runs[-1].placement:
        i -= 1
    if i == 0:
        return None
    j = i
    while j > 0 and runs[j - 1].placement == runs[i - 1].placement:
        j -= 1
    return list(runs[j:i]), list(runs[i:])


@dataclass(frozen=True, slots=True)
class MeasuredSaving:
    before_kg_per_kwh: float
    after_kg_per_kwh: float
    after_energy_kwh: float
    saving_kgco2e: float
    saving_pct: float | None


def measured_saving(
    before: Sequence[RunMeasure], after: Sequence[RunMeasure]
) -> MeasuredSaving | None:
    """What the move saved on the runs after it, at their own energy: the energy a run needs may
    change for other reasons, so the comparison is per kWh. None without energy on either side."""
    e_before = sum(r.energy_kwh for r in before)
    e_after = sum(r.energy_kwh for r in after)
    if e_before <= 0 or e_after <= 0:
        return None
    c_before = sum(r.operational_kgco2e for r in before) / e_before
    c_after = sum(r.operational_kgco2e for r in after) / e_after
    return MeasuredSaving(
        before_kg_per_kwh=c_before,
        after_kg_per_kwh=c_after,
        after_energy_kwh=e_after,
        saving_kgco2e=e_after * (c_before - c_after),
        saving_pct=1.0 - c_after / c_before if c_before > 0 else None,
    )
