"""Contracted volumes in the market-based figures of a batch of rollup windows (issue 14 item 2).

A contractual instrument with a contracted volume (``carbon.MarketFactor.volume_mwh``) covers at
most that volume over its period, whatever the consumption of the site's hosts and teams: in each
hour at most the volume spread evenly over the period (``carbon.methodology
.instrument_kwh_per_hour``), as a share of the site's facility kWh of that hour. That energy is
known once the hour's rows exist, so ``market_volumes_apply`` runs after the rows of a batch are
written (both rollup paths, inside the recompute's transaction) and re-prices the market-based
columns of the rows of volume-limited sites; the cap of an hour depends only on that hour, so a
recompute of any window still replaces its rows with the same answer. ``instruments_applied``
replays the same allocation over a period for the report: contracted volume beside applied.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import F, FloatField, Q, Sum, Value

from greenkpi.carbon import methodology as m
from greenkpi.carbon.models import MarketFactor
from greenkpi.carbon.selectors import (
    Instrument,
    instrument_takes,
    intensities_over,
    market_factors_over,
    volume_limited_sites,
)
from greenkpi.inventory.models import Site
from greenkpi.kpis.models import HourlyRollup
from greenkpi.kpis.read import sums as read


def _site_kwh(
    *, organisation_id: int, site_ids: set[int], start: datetime, end: datetime
) -> dict[tuple[int, datetime], float]:
    """{(site, hour): facility kWh of every row of the site in the hour}, hours in [start, end)."""
    rows = (
        HourlyRollup.objects.filter(
            organisation_id=organisation_id, site_id__in=site_ids, hour__gte=start, hour__lt=end
        )
        .values("site_id", "hour")
        .annotate(kwh=Sum("facility_energy_kwh"))
        .values_list("site_id", "hour", "kwh")
    )
    return {(site, hour): float(kwh or 0.0) for site, hour, kwh in rows}


def market_volumes_apply(*, organisation_id: int, hours: Sequence[datetime]) -> int:
    """Re-price the market-based columns of the hours' rows of the organisation's sites that have
    an instrument with a contracted volume; returns the number of (site, hour) groups priced.
    Two queries and nothing written when no such instrument is valid in the hours."""
    hours = sorted(set(hours))
    if not hours:
        return 0
    zones = dict(
        Site.objects.filter(organisation_id=organisation_id).values_list("id", "grid_zone")
    )
    limited = volume_limited_sites(site_ids=zones, hours=hours)
    if not limited:
        return 0
    wanted = set(hours)
    energy = {
        key: kwh
        for key, kwh in _site_kwh(
            organisation_id=organisation_id,
            site_ids=limited,
            start=hours[0],
            end=hours[-1] + timedelta(hours=1),
        ).items()
        if key[1] in wanted
    }
    if not energy:
        return 0
    sites = {site: zones[site] for site in limited}
    intensities = intensities_over(zones=sites.values(), hours=hours)
    markets = market_factors_over(
        sites=sites, hours=hours, intensities=intensities, site_kwh=energy
    )
    for site, hour in energy:
        figure = markets[hour][site]
        # the rollups' arithmetic, operation for operation (carbon.methodology.operational_kgco2e)
        HourlyRollup.objects.filter(
            organisation_id=organisation_id, site_id=site, hour=hour
        ).update(
            market_g_per_kwh=figure.g_per_kwh,
            market_source=figure.source,
            operational_market_kgco2e=F("energy_kwh")
            * F("pue")
            * Value(figure.g_per_kwh, output_field=FloatField())
            / Value(m.G_PER_KG, output_field=FloatField()),
        )
    return len(energy)


@dataclass(frozen=True)
class InstrumentUse:
    """An instrument over a period: what was contracted for the period and what was applied."""

    instrument: MarketFactor
    contracted_mwh: float | None  # the volume's part for the period's hours; None: no volume
    applied_mwh: float  # facility MWh the instrument covered

    @property
    def contracted_kwh(self) -> float | None:
        return None if self.contracted_mwh is None else self.contracted_mwh * 1000.0

    @property
    def applied_kwh(self) -> float:
        return self.applied_mwh * 1000.0


def instruments_applied(
    *,
    organisation_id: int,
    start: datetime,
    end: datetime,
    site_ids: Collection[int] | None = None,
) -> list[InstrumentUse]:
    """Each instrument of the organisation's sites (or of ``site_ids``) valid in [start, end) with
    the MWh it covered (the rollup's allocation replayed on the sites' hourly facility kWh, read
    through kpis.read) and the contracted MWh for the hours of the period it was valid (its volume
    pro rata: at most that is applied). One query without instruments."""
    if site_ids is None:
        site_ids = Site.objects.filter(organisation_id=organisation_id).values_list("id", flat=True)
    last = end - timedelta(hours=1) if end - start >= timedelta(hours=1) else start
    objects = list(
        MarketFactor.objects.filter(site_id__in=list(site_ids), valid_from__lt=end)
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=start))
        .select_related("site")
        .order_by("site_id", "-valid_from", "-pk")
    )
    if not objects:
        return []
    by_site: dict[int, list[Instrument]] = {}
    for o in objects:
        by_site.setdefault(o.site_id, []).append(
            Instrument(
                o.pk,
                o.site_id,
                o.valid_from,
                o.valid_to,
                o.share,
                o.intensity_g_per_kwh,
                o.volume_mwh,
            )
        )
    applied = {o.pk: 0.0 for o in objects}
    # the read layer's hourly sums (hours only: the allocation is per hour)
    frame = read.sums(
        organisation_id=organisation_id,
        start=start,
        end=max(end, last + timedelta(hours=1)),
        columns=["facility_energy_kwh"],
        by=["site_id"],
        where={"site_id": list(by_site)},
        grain="hour",
    )
    for bucket, site, kwh in zip(
        frame["bucket_utc"], frame["site_id"], frame["facility_energy_kwh"], strict=True
    ):
        hour = bucket.to_pydatetime().replace(tzinfo=UTC)
        for i, take in instrument_takes(by_site[int(site)], hour=hour, site_kwh=float(kwh)):
            applied[i.pk] += take * float(kwh) / 1000.0
    out = []
    for o in objects:
        contracted = None
        if o.volume_mwh is not None:
            contracted = _contracted_mwh(o, start=start, end=end)
        out.append(InstrumentUse(o, contracted, applied[o.pk]))
    return out


def _contracted_mwh(o: MarketFactor, *, start: datetime, end: datetime) -> float:
    """The part of an instrument's volume for the hours of [start, end) it is valid in: the
    per-hour cap summed over them (pro rata)."""
    assert o.volume_mwh is not None
    first = max(start, o.valid_from)
    last = min(end, o.valid_to) if o.valid_to is not None else end
    total, hour = 0.0, first
    while hour < last:
        step = min(last, _next_hour(hour)) - hour
        cap_kwh = m.instrument_kwh_per_hour(
            volume_mwh=o.volume_mwh, valid_from=o.valid_from, valid_to=o.valid_to, hour=hour
        )
        total += cap_kwh * step.total_seconds() / 3600.0 / 1000.0
        hour += step
    return total


def _next_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
