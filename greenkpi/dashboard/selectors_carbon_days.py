"""The organisation's rollups summed per UTC day and group, whole days cached.

``org_frame`` is the one rollup read of the carbon pages: HourlyRollup summed in the database per
UTC day x team x site x intensity source x currency (and whether renewable share and cost are known),
with the row-wise products the KPI formulas need summed beside (see selectors_carbon). A whole UTC day
is cached under a key made of its rollup windows' state (count, latest ``computed_at``, sum of
``computed_version``), which changes whenever one of its windows is recomputed: a cached day is
exactly what the database would sum now. Only the partial days at the ends of a range, and days not
cached yet, are read from HourlyRollup, in one query. One cache entry per organisation and day serves
every user; scoping to teams happens after (selectors_carbon.carbon_frame).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from operator import or_

import pandas as pd
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    Max,
    Min,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import TruncDate

from greenkpi.kpis.models import HourlyRollup, RollupWindow

CACHE_PREFIX = "gk:carbon-day:v1"
CACHE_TIMEOUT_S = 14 * 86400  # keys change with the data; old ones just expire

SUMMED = (
    "covered_s",
    "energy_kwh",
    "estimated_energy_kwh",
    "facility_energy_kwh",
    "allocated_gpu_h",
    "busy_gpu_h",
    "util_known_gpu_h",
    "idle_gpu_h",
    "idle_energy_kwh",
    "sm_active_gpu_h",
    "sm_known_gpu_h",
    "operational_location_kgco2e",
    "operational_market_kgco2e",
    "embodied_kgco2e",
)
# Few keys on purpose: with PUE and the methodology version among them PostgreSQL's estimate of
# the groups grew past work_mem and it sorted on disk (4x slower); both are aggregates instead.
KEYS = ("day", "team_id", "site_id", "intensity_source", "currency", "re_known", "costed")
FRAME_COLUMNS = (
    *KEYS,
    "pue",
    "methodology_version",  # the lowest version in the group
    "methodology_version_max",  # differs from it when the group mixes versions
    *SUMMED,
    "cost",
    "renewable_share",
    "intensity_g_per_kwh",
)

Span = tuple[datetime, datetime]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def org_frame(organisation_id: int, start: datetime, end: datetime) -> pd.DataFrame:
    """Every team's rows (and those without a team) of one organisation in [start, end)."""
    first = _midnight(start.astimezone(UTC).date())
    if first < start:
        first += timedelta(days=1)
    last = _midnight(end.astimezone(UTC).date())
    if last <= first:  # no whole day inside: read it all
        return summed(organisation_id, [(start, end)])
    keys = _day_keys(organisation_id, first, last)
    cached = cache.get_many(list(keys.values())) if keys else {}
    missing = sorted(day for day, key in keys.items() if key not in cached)
    spans = [s for s in ((start, first), (last, end)) if s[0] < s[1]]
    spans += _runs(missing)
    fresh = summed(organisation_id, spans) if spans else _empty()
    if missing:
        days = fresh["day"].dt.date if len(fresh) else pd.Series(dtype=object)
        cache.set_many(
            {keys[day]: fresh[(days == day).to_numpy(dtype=bool)] for day in missing},
            timeout=CACHE_TIMEOUT_S,
        )
    parts = [fresh, *(cached[keys[day]] for day in sorted(keys) if keys[day] in cached)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty()
    return pd.concat(parts, ignore_index=True)


def _day_keys(organisation_id: int, first: datetime, last: datetime) -> dict[date, str]:
    """{day: cache key} for the days in [first, last) that have rollup windows. One query.

    A day without windows has no rollups (rollups are written only by recomputing windows)."""
    state = (
        RollupWindow.objects.filter(organisation_id=organisation_id, hour__gte=first, hour__lt=last)
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("day")
        .annotate(n=Count("pk"), at=Max("computed_at"), v=Sum("computed_version"))
        .values_list("day", "n", "at", "v")
        .order_by()
    )
    return {
        day: f"{CACHE_PREFIX}:{organisation_id}:{day}:{n}:{at.timestamp() if at else 0}:{v}"
        for day, n, at, v in state
    }


def windows_state(organisation_id: int, start: datetime, end: datetime) -> str:
    """A key that changes whenever a rollup window in [start, end) is added or recomputed."""
    state = RollupWindow.objects.filter(
        organisation_id=organisation_id, hour__gte=start, hour__lt=end
    ).aggregate(n=Count("pk"), at=Max("computed_at"), v=Sum("computed_version"))
    at = state["at"].timestamp() if state["at"] else 0
    return f"{organisation_id}:{start:%Y%m%d%H}:{end:%Y%m%d%H}:{state['n']}:{at}:{state['v']}"


def _runs(days: list[date]) -> list[Span]:
    """Consecutive days as [start, end) spans."""
    spans: list[Span] = []
    for day in days:
        if spans and spans[-1][1] == _midnight(day):
            spans[-1] = (spans[-1][0], _midnight(day) + timedelta(days=1))
        else:
            spans.append((_midnight(day), _midnight(day) + timedelta(days=1)))
    return spans


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=list(FRAME_COLUMNS))


def summed(organisation_id: int, spans: list[Span]) -> pd.DataFrame:
    """HourlyRollup of the organisation in the spans, summed per day and group. One query."""
    within = reduce(or_, (Q(hour__gte=a, hour__lt=b) for a, b in spans))
    rows = (
        HourlyRollup.objects.filter(within, organisation_id=organisation_id)
        .annotate(
            day=TruncDate("hour", tzinfo=UTC),
            re_known=Case(When(renewable_share__isnull=True, then=Value(0)), default=Value(1)),
            costed=Case(When(cost__isnull=True, then=Value(0)), default=Value(1)),
        )
        .values(*KEYS)
        .annotate(
            # "s_" prefixes: an annotation named like a column would shadow it.
            **{f"s_{c}": Sum(c) for c in SUMMED},
            s_cost=Sum("cost"),
            s_renewable_kwh=Sum(
                F("facility_energy_kwh") * F("renewable_share"), output_field=FloatField()
            ),
            s_idle_pi=Sum(
                F("idle_energy_kwh") * F("pue") * F("intensity_g_per_kwh"),
                output_field=FloatField(),
            ),
            s_version_min=Min("methodology_version"),
            s_version_max=Max("methodology_version"),
            s_facility_i=Sum(
                F("facility_energy_kwh") * F("intensity_g_per_kwh"), output_field=FloatField()
            ),
        )
        .order_by()
    )
    if connection.vendor != "postgresql":
        records = list(rows)
    else:
        with transaction.atomic():
            # Few real groups, but PostgreSQL cannot estimate the days of an expression and
            # guesses tens of thousands, so at the default 4 MB it sorts on disk instead of
            # hashing: 2-4x slower (~0.3 s instead of ~1 s for 336k rows on 2 cores). LOCAL: for
            # this transaction only; a hash aggregate takes what the real groups need.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '128MB'")
            records = list(rows)
    if not records:
        return _empty()
    raw = pd.DataFrame.from_records(records)
    out = raw[list(KEYS)].copy()
    for c in SUMMED:
        out[c] = raw[f"s_{c}"].astype("float64").fillna(0.0)
    out["day"] = pd.to_datetime(out["day"])
    out["team_id"] = out["team_id"].astype("Int64")
    out["site_id"] = out["site_id"].astype("Int64")
    out["cost"] = raw["s_cost"].astype("float64").where(out["costed"] == 1)
    facility = out["facility_energy_kwh"]
    renewable = raw["s_renewable_kwh"].astype("float64")
    out["renewable_share"] = (renewable / facility.where(facility > 0)).where(out["re_known"] == 1)
    # Factors that make formulas.idle_waste's idle kWh x PUE x I exact over the group: the group's
    # PUE (facility / IT kWh) and the intensity that gives the summed idle kWh x PUE x I with it;
    # the facility-weighted intensity when nothing idled.
    it = out["energy_kwh"]
    out["pue"] = (facility / it.where(it > 0)).fillna(1.0)
    idle = out["idle_energy_kwh"]
    idle_i = raw["s_idle_pi"].astype("float64") / (idle * out["pue"]).where(idle > 0)
    facility_i = raw["s_facility_i"].astype("float64") / facility.where(facility > 0)
    out["intensity_g_per_kwh"] = idle_i.fillna(facility_i).fillna(0.0)
    out["methodology_version"] = raw["s_version_min"]
    out["methodology_version_max"] = raw["s_version_max"]
    return out[list(FRAME_COLUMNS)]


WARM_DAYS = 62  # this month and the last: the report's default and the 30/90-day pages' bulk


def warm(*, days: int = WARM_DAYS, now: datetime | None = None) -> int:
    """Fill the cache with every organisation's whole days of the last ``days`` (up to today's
    midnight), so a page's first view does not pay the hourly scan. Days already cached under
    their current windows' state cost nothing; returns the organisations visited."""
    now = now or datetime.now(UTC)
    end = _midnight(now.date())
    start = end - timedelta(days=days)
    organisations = (
        RollupWindow.objects.filter(hour__gte=start, hour__lt=end)
        .values_list("organisation_id", flat=True)
        .distinct()
        .order_by("organisation_id")
    )
    count = 0
    for organisation_id in list(organisations):
        org_frame(organisation_id, start, end)
        count += 1
    return count
