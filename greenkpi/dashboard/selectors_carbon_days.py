"""The organisation's rollups summed per UTC day x team x site x currency: the carbon pages' one read.

Whole UTC days come from DailyTeamRollup (kpis.daily: a year of 50 teams on 3 sites is ~55 k rows,
against ~17.5 M hourly rows for 2,000 GPUs), which carries everything the pages show: the sums,
facility kWh per intensity source, the idle time's location-based kgCO2e and the methodology
versions. HourlyRollup is read, summed to the same columns in one query, only for the partial days
at the ends of a range and for whole days whose daily rows are stale (a window recomputed after the
day's refresh, ``kpis.daily.stale_days_between``), so the frame is always what the hourly rows sum
to. One frame per organisation; scoping to teams happens after (selectors_carbon.carbon_frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import reduce
from operator import or_

import pandas as pd
from django.db import connection, transaction
from django.db.models import F, FloatField, Max, Min, Q, Sum
from django.db.models.functions import TruncDate

from greenkpi.kpis import daily
from greenkpi.kpis.models import DailyTeamRollup, HourlyRollup

# HourlyRollup's columns, summed as they are (the daily refresh's list, less the sample count).
PLAIN = tuple(c for c in daily.SUMMED_COLUMNS if c != "samples")
SUMMED = (
    *PLAIN,
    # Sums of row-wise products, taken as is by kpis.formulas (renewable_share, idle_waste).
    "renewable_kwh",
    "renewable_known_kwh",
    "idle_location_kgco2e",
    # Facility kWh by the source of its location intensity (selectors_carbon.source_shares).
    *daily.SOURCE_COLUMNS.values(),
)
# ``cost`` is empty exactly when ``currency`` is (an hour has a tariff or neither), so the
# currency key also keeps priced and unpriced energy apart.
KEYS = ("day", "team_id", "site_id", "currency")
FRAME_COLUMNS = (
    *KEYS,
    "methodology_version",  # the lowest version in the group
    "methodology_version_max",  # differs from it when the group mixes versions
    *SUMMED,
    "cost",
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
    stale = sorted(
        daily.stale_days_between(
            organisation_id=organisation_id, start=first.date(), end=last.date()
        )
    )
    spans = [s for s in ((start, first), (last, end)) if s[0] < s[1]]
    spans += _runs(stale)
    parts = [
        days_summed(organisation_id, first.date(), last.date(), exclude=stale),
        summed(organisation_id, spans) if spans else _empty(),
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty()
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


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


def _typed(out: pd.DataFrame) -> pd.DataFrame:
    out["day"] = pd.to_datetime(out["day"])
    out["team_id"] = out["team_id"].astype("Int64")
    out["site_id"] = out["site_id"].astype("Int64")
    for c in SUMMED:
        out[c] = out[c].astype("float64").fillna(0.0)
    out["cost"] = out["cost"].astype("float64")
    return out[list(FRAME_COLUMNS)]


def days_summed(
    organisation_id: int, first: date, end: date, *, exclude: Sequence[date] = ()
) -> pd.DataFrame:
    """DailyTeamRollup rows of the whole days in [first, end) but ``exclude``: already one row per
    day x team x site x currency, read as they are. One query."""
    rows = DailyTeamRollup.objects.filter(
        organisation_id=organisation_id, day__gte=first, day__lt=end
    )
    if exclude:
        rows = rows.exclude(day__in=list(exclude))
    columns = [*KEYS, "methodology_version_min", "methodology_version_max", *SUMMED, "cost"]
    records = list(rows.values_list(*columns).order_by())
    if not records:
        return _empty()
    out = pd.DataFrame.from_records(records, columns=columns)
    out = out.rename(columns={"methodology_version_min": "methodology_version"})
    return _typed(out)


def summed(organisation_id: int, spans: list[Span]) -> pd.DataFrame:
    """HourlyRollup of the organisation in the spans, summed per day and group to the daily
    table's columns (the same sums kpis.daily writes). One query."""
    within = reduce(or_, (Q(hour__gte=a, hour__lt=b) for a, b in spans))
    known = Q(renewable_share__isnull=False)
    rows = (
        HourlyRollup.objects.filter(within, organisation_id=organisation_id)
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values(*KEYS)
        .annotate(
            # "s_" prefixes: an annotation named like a column would shadow it.
            **{f"s_{c}": Sum(c) for c in PLAIN},
            s_cost=Sum("cost"),
            s_renewable_kwh=Sum(
                F("facility_energy_kwh") * F("renewable_share"),
                output_field=FloatField(),
                default=0.0,
            ),
            s_renewable_known_kwh=Sum("facility_energy_kwh", filter=known, default=0.0),
            s_idle_pi=Sum(
                F("idle_energy_kwh") * F("pue") * F("intensity_g_per_kwh"),
                output_field=FloatField(),
                default=0.0,
            ),
            **{
                f"s_{column}": Sum(
                    "facility_energy_kwh", filter=Q(intensity_source=source), default=0.0
                )
                for source, column in daily.SOURCE_COLUMNS.items()
            },
            s_version_min=Min("methodology_version"),
            s_version_max=Max("methodology_version"),
        )
        .order_by()
    )
    if connection.vendor != "postgresql":
        records = list(rows)
    else:
        with transaction.atomic():
            # Few real groups, but PostgreSQL cannot estimate the days of an expression and
            # guesses tens of thousands, so at the default 4 MB it sorts on disk instead of
            # hashing: 2-4x slower. LOCAL: for this transaction only.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '128MB'")
            records = list(rows)
    if not records:
        return _empty()
    raw = pd.DataFrame.from_records(records)
    out = raw[list(KEYS)].copy()
    for c in SUMMED:
        if c != "idle_location_kgco2e":
            out[c] = raw[f"s_{c}"]
    # Divided after summing, as kpis.daily does: the same figure to the last bit.
    out["idle_location_kgco2e"] = raw["s_idle_pi"].astype("float64") / 1000.0
    out["cost"] = raw["s_cost"]
    out["methodology_version"] = raw["s_version_min"]
    out["methodology_version_max"] = raw["s_version_max"]
    return _typed(out)
