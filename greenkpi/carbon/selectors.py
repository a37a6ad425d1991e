"""Reads of carbon factors for one hour: grid intensity (hourly else annual), contracts, tariffs.

The bulk forms take every zone or site a rollup window needs and cost one query each; the
``*_over`` forms do the same for a batch of hours (the one-hour forms are their one-hour case).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q

from greenkpi.carbon import methodology as m
from greenkpi.carbon.annual import annual_for, country_of, location_factors
from greenkpi.carbon.methodology import IntensityMethod, IntensitySource, MarketSource
from greenkpi.carbon.models import ElectricityTariff, GridIntensityHourly, MarketFactor, ResidualMix
from greenkpi.inventory.models import Device, DeviceKind, Host


@dataclass(frozen=True, slots=True)
class IntensityFigure:
    """The location-based intensity used for one zone and hour, and where it came from.

    ``intensity_g_per_kwh`` is the Scope 2 location-based factor: direct (combustion) where
    ``method`` is in ``IntensityMethod.DIRECT``, lifecycle otherwise (stated on the figure);
    ``upstream_g_per_kwh`` is the Scope 3 cat. 3 factor beside it (upstream + T&D losses).
    """

    zone: str
    hour: datetime
    intensity_g_per_kwh: float
    renewable_share: float | None
    source: str  # IntensitySource.*
    figure_zone: str  # the zone whose figure was used ("FR", "US" for "US-CAL-CISO", "WORLD")
    detail: str  # attribution or provider
    lifecycle_g_per_kwh: float = 0.0
    upstream_g_per_kwh: float = 0.0
    method: str = ""  # IntensityMethod.*


@dataclass(frozen=True, slots=True)
class MarketFigure:
    """The market-based factor of a site for one hour and where it came from."""

    g_per_kwh: float
    source: str  # MarketSource.*
    covered_share: float  # the share of the energy contractual instruments covered


@dataclass(frozen=True, slots=True)
class Tariff:
    price_per_kwh: float
    currency: str


def intensity_for(*, zone: str | None, hour: datetime) -> IntensityFigure:
    """Intensity of ``zone`` during the hour starting at ``hour``: measured hourly if imported,
    else the shipped annual average of the zone or its country, else the world average."""
    return intensities_for(zones=[zone], hour=hour)[_key(zone)]


def intensities_for(*, zones: Iterable[str | None], hour: datetime) -> dict[str, IntensityFigure]:
    """{zone (upper-cased, "" for none): figure} for one hour, in one query."""
    return intensities_over(zones=zones, hours=[hour])[hour]


def intensities_over(
    *, zones: Iterable[str | None], hours: Sequence[datetime]
) -> dict[datetime, dict[str, IntensityFigure]]:
    """{hour: {zone: figure}} for several hours, in one query (a rollup batch of hours)."""
    keys = {_key(z) for z in zones}
    hourly = {
        (row.zone, row.hour): row
        for row in GridIntensityHourly.objects.filter(
            zone__in=[k for k in keys if k], hour__in=list(hours)
        )
    }
    annuals = {key: annual_for(key) for key in keys}
    locations = {key: location_factors(annual) for key, (annual, _) in annuals.items()}
    out: dict[datetime, dict[str, IntensityFigure]] = {}
    for hour in hours:
        figures = out[hour] = {}
        for key in keys:
            annual, is_default = annuals[key]
            measured = hourly.get((key, hour))
            if measured is not None:
                share = measured.renewable_share
                lifecycle = measured.intensity_lifecycle_g_per_kwh
                direct = measured.intensity_direct_g_per_kwh
                method = IntensityMethod.HOURLY_DIRECT
                if direct is None:
                    # the provider's lifecycle figure stands for Scope 2, and says so
                    direct, method = lifecycle, IntensityMethod.HOURLY_LIFECYCLE
                figures[key] = IntensityFigure(
                    zone=key,
                    hour=hour,
                    intensity_g_per_kwh=direct,
                    renewable_share=share if share is not None else annual.renewable_share,
                    source=IntensitySource.HOURLY,
                    figure_zone=key,
                    detail=measured.source,
                    lifecycle_g_per_kwh=lifecycle,
                    upstream_g_per_kwh=m.upstream_g_per_kwh(
                        direct=direct, lifecycle=lifecycle, td_loss=m.TD_LOSS_DEFAULT
                    ),
                    method=method,
                )
            else:
                factors = locations[key]
                figures[key] = IntensityFigure(
                    zone=key,
                    hour=hour,
                    intensity_g_per_kwh=factors.scope2_g_per_kwh,
                    renewable_share=annual.renewable_share,
                    source=IntensitySource.DEFAULT if is_default else IntensitySource.ANNUAL,
                    figure_zone=annual.zone,
                    detail=factors.detail,
                    lifecycle_g_per_kwh=factors.lifecycle_g_per_kwh,
                    upstream_g_per_kwh=factors.upstream_g_per_kwh,
                    method=factors.method,
                )
    return out


def market_factors_for(
    *, sites: dict[int, str | None], hour: datetime, intensities: dict[str, IntensityFigure]
) -> dict[int, MarketFigure]:
    """{site id: market-based factor} for one hour (see ``market_factors_over``)."""
    return market_factors_over(sites=sites, hours=[hour], intensities={hour: intensities})[hour]


@dataclass(frozen=True, slots=True)
class Instrument:
    """A contractual instrument as the market-based method applies it (carbon.MarketFactor)."""

    pk: int
    site_id: int
    valid_from: datetime
    valid_to: datetime | None
    share: float
    g_per_kwh: float
    volume_mwh: float | None


def instruments_over(*, site_ids: Iterable[int], hours: Sequence[datetime]) -> list[Instrument]:
    """The sites' instruments valid at some time between the first and last hour, in the order
    they are applied: per site, latest-starting first. One query."""
    if not hours:
        return []
    return [
        Instrument(*row)
        for row in _valid_during(MarketFactor.objects, site_ids, hours)
        .order_by("site_id", "-valid_from", "-pk")
        .values_list(
            "pk", "site_id", "valid_from", "valid_to", "share", "intensity_g_per_kwh", "volume_mwh"
        )
    ]


def instrument_takes(
    instruments: Iterable[Instrument], *, hour: datetime, site_kwh: float | None
) -> list[tuple[Instrument, float]]:
    """[(instrument, share of the hour's energy it covers)] for one site's instruments (in the
    order of ``instruments_over``) valid in the hour: each its share, up to all of the energy,
    and one with a contracted volume at most ``instrument_kwh_per_hour`` / the site's facility
    kWh of the hour (``site_kwh``, all its hosts and teams; None when not known yet)."""
    covered, out = 0.0, []
    for i in instruments:
        if i.valid_from > hour or (i.valid_to is not None and i.valid_to <= hour):
            continue
        take = min(i.share, 1.0 - covered)
        if i.volume_mwh is not None and site_kwh is not None and site_kwh > 0:
            cap = m.instrument_kwh_per_hour(
                volume_mwh=i.volume_mwh, valid_from=i.valid_from, valid_to=i.valid_to, hour=hour
            )
            take = min(take, cap / site_kwh)
        if take > 0:
            out.append((i, take))
            covered += take
    return out


def market_factors_over(
    *,
    sites: dict[int, str | None],
    hours: Sequence[datetime],
    intensities: dict[datetime, dict[str, IntensityFigure]],
    site_kwh: Mapping[tuple[int, datetime], float] | None = None,
) -> dict[datetime, dict[int, MarketFigure]]:
    """{hour: {site id: market-based factor}} for sites {id: grid zone}, in two queries.

    GHG Protocol Scope 2 Guidance, market-based method: the contractual instruments valid in the
    hour cover their shares of the energy, latest-starting first, up to all of it, and none more
    than its contracted volume allows (``instrument_takes``; ``site_kwh`` {(site, hour): facility
    kWh} gives the energy, else volumes are not applied: the rollup applies them once the hour's
    energy is known, kpis.market); the remainder takes the zone's residual mix of the hour's year
    (else the latest earlier year; the exact zone, else its country), else the grid average
    (``intensities``, the location-based figures), which the source then says. A site with
    nothing gets exactly the grid average.
    """
    if not hours:
        return {}
    by_site: dict[int, list[Instrument]] = {}
    for instrument in instruments_over(site_ids=sites, hours=hours):
        by_site.setdefault(instrument.site_id, []).append(instrument)
    residuals = _residuals(zones={_key(z) for z in sites.values()}, last_year=max(hours).year)
    out: dict[datetime, dict[int, MarketFigure]] = {}
    for hour in hours:
        figures = out[hour] = {}
        for site_id, zone in sites.items():
            key = _key(zone)
            kwh = site_kwh.get((site_id, hour)) if site_kwh is not None else None
            takes = instrument_takes(by_site.get(site_id, ()), hour=hour, site_kwh=kwh)
            covered = sum(take for _, take in takes)
            grams = sum(take * i.g_per_kwh for i, take in takes)
            rest = 1.0 - covered
            if rest <= 1e-12:
                figures[site_id] = MarketFigure(grams, MarketSource.CONTRACT, 1.0)
                continue
            residual = _residual_for(residuals, key, hour.year)
            if residual is not None:
                source = MarketSource.CONTRACT_RESIDUAL if covered else MarketSource.RESIDUAL
                fallback = residual
            else:
                source = MarketSource.CONTRACT_GRID if covered else MarketSource.LOCATION
                fallback = intensities[hour][key].intensity_g_per_kwh
            figures[site_id] = MarketFigure(grams + rest * fallback, source, covered)
    return out


def volume_limited_sites(*, site_ids: Iterable[int], hours: Sequence[datetime]) -> set[int]:
    """The sites with an instrument that has a contracted volume valid during the hours."""
    if not hours:
        return set()
    return set(
        _valid_during(MarketFactor.objects, site_ids, hours)
        .filter(volume_mwh__isnull=False)
        .values_list("site_id", flat=True)
    )


def _residuals(*, zones: set[str], last_year: int) -> dict[str, list[tuple[int, float]]]:
    """{zone: [(year, g/kWh), ...] newest first} for the zones and their countries."""
    wanted = zones | {country_of(z) for z in zones if z}
    out: dict[str, list[tuple[int, float]]] = {}
    for zone, year, g in (
        ResidualMix.objects.filter(zone__in=wanted, year__lte=last_year)
        .order_by("zone", "-year")
        .values_list("zone", "year", "intensity_g_per_kwh")
    ):
        out.setdefault(zone, []).append((year, g))
    return out


def _residual_for(
    residuals: dict[str, list[tuple[int, float]]], zone: str, year: int
) -> float | None:
    for candidate in (zone, country_of(zone)) if zone else ():
        for have, g in residuals.get(candidate, ()):
            if have <= year:
                return g
    return None


def residual_mix_loaded(zone: str | None) -> bool:
    """Whether a residual mix is loaded for the zone or its country (any year)."""
    key = _key(zone)
    return bool(key) and ResidualMix.objects.filter(zone__in={key, country_of(key)}).exists()


def host_embodied(*, organisation_id: int) -> dict[int, tuple[float, float]]:
    """{host id: (embodied kgCO2e of the whole host without its GPUs, lifetime years)}.

    Each part (chassis, CPU, DRAM, storage) is the host's override, else its server class's
    default; a host without a class is an 8-GPU server if a GPU of it ever reported, else a
    2-socket server (carbon.methodology.SERVER_CLASSES)."""
    with_gpu = set(
        Device.objects.filter(host__organisation_id=organisation_id, kind=DeviceKind.GPU)
        .values_list("host_id", flat=True)
        .distinct()
    )
    out: dict[int, tuple[float, float]] = {}
    for host in Host.objects.filter(organisation_id=organisation_id).values(
        "id",
        "server_class",
        "embodied_chassis_kgco2e",
        "embodied_cpu_kgco2e",
        "embodied_dram_kgco2e",
        "embodied_storage_kgco2e",
        "lifetime_years",
    ):
        out[host["id"]] = (
            host_embodied_total(host, has_gpu=host["id"] in with_gpu),
            host["lifetime_years"] or m.LIFETIME_DEFAULT_YEARS,
        )
    return out


def host_embodied_parts(host: dict[str, Any], *, has_gpu: bool) -> dict[str, float]:
    """{part: kgCO2e} of a host (values of Host fields), overrides first."""
    name = host.get("server_class") or (
        m.SERVER_CLASS_GPU_DEFAULT if has_gpu else m.SERVER_CLASS_CPU_DEFAULT
    )
    _, defaults = m.SERVER_CLASSES.get(name, m.SERVER_CLASSES[m.SERVER_CLASS_CPU_DEFAULT])
    parts = {}
    for part in m.HOST_PARTS:
        override = host.get(f"embodied_{part}_kgco2e")
        parts[part] = float(override) if override is not None else defaults[part]
    return parts


def host_embodied_total(host: dict[str, Any], *, has_gpu: bool) -> float:
    parts = host_embodied_parts(host, has_gpu=has_gpu)
    return sum(parts[p] for p in m.HOST_PARTS)


def tariffs_for(*, site_ids: Iterable[int], hour: datetime) -> dict[int, Tariff]:
    """{site id: tariff} for the sites with a price covering ``hour``."""
    return tariffs_over(site_ids=site_ids, hours=[hour])[hour]


def tariffs_over(
    *, site_ids: Iterable[int], hours: Sequence[datetime]
) -> dict[datetime, dict[int, Tariff]]:
    """{hour: {site id: tariff}} for several hours, in one query."""
    if not hours:
        return {}
    rows = _valid_during(ElectricityTariff.objects, site_ids, hours).values_list(
        "site_id", "valid_from", "valid_to", "price_per_kwh", "currency"
    )
    return _per_hour([(*r[:3], Tariff(r[3], r[4])) for r in rows], hours)


def _valid_during(manager: Any, site_ids: Iterable[int], hours: Sequence[datetime]) -> Any:
    """Rows of a validity-period table overlapping [first hour, last hour], by site and start."""
    return (
        manager.filter(site_id__in=list(site_ids), valid_from__lte=max(hours))
        .filter(Q(valid_to__isnull=True) | Q(valid_to__gt=min(hours)))
        .order_by("site_id", "valid_from", "pk")
    )


def _per_hour(rows: list[tuple[Any, ...]], hours: Sequence[datetime]) -> dict[datetime, dict]:
    """{hour: {site: value}} from (site, valid_from, valid_to, value) rows ordered by start:
    where periods overlap, the latest-starting one valid at the hour wins."""
    out: dict[datetime, dict] = {}
    for hour in hours:
        out[hour] = {
            site: value
            for site, start, end, value in rows
            if start <= hour and (end is None or end > hour)
        }
    return out


def _key(zone: str | None) -> str:
    return (zone or "").strip().upper()


def market_method_texts(
    *, sites: dict[int, str | None], start: datetime, end: datetime
) -> dict[int, str]:
    """{site id: how its market-based figure of [start, end) was built, in words}: its
    instruments (kind, share, factor), then the residual mix or the labelled grid average for the
    rest. Two queries whatever the number of sites."""
    instruments: dict[int, list[tuple[str, float, float]]] = {}
    for site_id, kind, share, grams in (
        _valid_during(MarketFactor.objects, sites, [start, end])
        .filter(valid_from__lt=end)
        .order_by("site_id", "-valid_from", "-pk")
        .values_list("site_id", "kind", "share", "intensity_g_per_kwh")
    ):
        instruments.setdefault(site_id, []).append((kind, share, grams))
    residuals = _residuals(zones={_key(z) for z in sites.values()}, last_year=end.year)
    out = {}
    for site_id, zone in sites.items():
        mine = instruments.get(site_id, [])
        parts = [f"{kind} {share:.0%} at {g:g} g/kWh" for kind, share, g in mine]
        if mine and sum(share for _, share, _ in mine) >= 1.0:
            out[site_id] = "; ".join(parts)
            continue
        residual = _residual_for(residuals, _key(zone), start.year)
        rest = (
            f"residual mix {residual:g} g/kWh"
            if residual is not None
            else "grid average used — no residual mix loaded"
        )
        out[site_id] = "; ".join([*parts, f"rest: {rest}"]) if parts else rest
    return out
