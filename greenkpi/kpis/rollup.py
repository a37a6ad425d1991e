"""Compute the rollup rows of one (organisation, hour) window: one GROUP BY in the database, then
carbon and cost factors applied to the aggregated rows (a few per device), never to raw samples.

A window's energy is split among its shares in proportion to their energy (the schema requires
shares to sum to the window's energy); a window without shares belongs to the host's default team,
as does a share that names no team. GPU time is split the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection

from greenkpi.carbon import methodology as m
from greenkpi.carbon.selectors import (
    host_embodied,
    intensities_for,
    market_factors_for,
    tariffs_for,
)
from greenkpi.ingest.models import Method, Sample
from greenkpi.inventory.models import Device, DeviceKind, Host
from greenkpi.kpis import attribution, rollup_pg
from greenkpi.kpis.formulas import ALLOCATED_IDLE, IDLE_BUSY_BELOW
from greenkpi.kpis.market import market_volumes_apply
from greenkpi.kpis.models import HourlyRollup

# Seconds between two timestamps, per backend. date_part returns a double on PostgreSQL (EXTRACT
# returns numeric, several times slower to sum); SQLite stores ISO text and julianday is a double,
# so round to the millisecond to drop its ~50 us noise.
_SECONDS = {
    "postgresql": "date_part('epoch', s.window_end - s.window_start)",
    "sqlite": "ROUND((julianday(s.window_end) - julianday(s.window_start)) * 86400.0, 3)",
}
_LEAST = {"postgresql": "LEAST", "sqlite": "MIN"}
# Keeps the planner from inlining the per-sample subquery into every SUM, which would evaluate the
# duration and the share fraction once per aggregate instead of once per row.
_FENCE = {"postgresql": "OFFSET 0", "sqlite": "LIMIT -1 OFFSET 0"}
# A window's shares are a JSON array on its row (keys in ingest.columns.SHARE_KEYS): each element
# joined as one row ``sh`` (none when the window has no shares), and how to read one of its keys.
_SHARES = {
    "postgresql": "LEFT JOIN LATERAL jsonb_array_elements(s.shares) AS sh(value) ON true",
    "sqlite": "LEFT JOIN json_each(s.shares) AS sh",
}
_KEY = {
    "postgresql": "(sh.value ->> '{key}')",
    "sqlite": "json_extract(sh.value, '$.{key}')",
}
_KEY_TYPE = {
    "postgresql": {"int": "::bigint", "float": "::float8", "text": ""},
    "sqlite": {"int": "", "float": "", "text": ""},
}
_SHARE_COUNT = {
    "postgresql": "jsonb_array_length(s.shares)",
    "sqlite": "json_array_length(s.shares)",
}


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One GROUP BY row: sums over the samples of one device x owner in the window."""

    device_id: int
    team_id: int | None
    model_key: str
    run_key: str
    samples: int
    energy_j: float
    estimated_j: float
    covered_s: float
    busy_s: float
    util_known_s: float
    sm_s: float
    sm_known_s: float
    idle_s: float
    idle_energy_j: float
    allocated_idle_s: float = 0.0
    allocated_idle_j: float = 0.0
    unmapped_j: float = 0.0
    job_id: int | None = None


def _sql() -> str:
    vendor = connection.vendor
    seconds, least, fence = _SECONDS[vendor], _LEAST[vendor], _FENCE[vendor]
    sample = Sample._meta.db_table

    def key(k: str, kind: str) -> str:
        return _KEY[vendor].format(key=k) + _KEY_TYPE[vendor][kind]

    device, host = Device._meta.db_table, Host._meta.db_table
    # Owners are grouped as the shares name them (team or none, scheduler job); the mappings and
    # the host's default team are applied to these few rows afterwards (``_owners``), as the
    # PostgreSQL path does after its sums.
    return f"""
SELECT device_id, team_id, default_team_id, model_key, run_key, job_id,
       COUNT(*),
       SUM(energy_j * frac),
       SUM(CASE WHEN method = %s THEN energy_j * frac ELSE 0 END),
       SUM(dur_s * frac),
       SUM(dur_s * frac * COALESCE(util_busy, 0)),
       SUM(CASE WHEN util_busy IS NOT NULL THEN dur_s * frac ELSE 0 END),
       SUM(dur_s * frac * COALESCE(util_sm, 0)),
       SUM(CASE WHEN util_sm IS NOT NULL THEN dur_s * frac ELSE 0 END),
       SUM(idle_part_s * frac),
       SUM(CASE WHEN dur_s > 0 THEN energy_j * frac * idle_part_s / dur_s ELSE 0 END),
       SUM(CASE WHEN share_method = %s THEN dur_s * frac ELSE 0 END),
       SUM(CASE WHEN share_method = %s THEN energy_j * frac ELSE 0 END)
FROM (
  SELECT device_id, team_id, default_team_id, model_key, run_key, job_id, share_method,
         energy_j, method, util_busy, util_sm, dur_s, frac,
         CASE WHEN idle_s IS NOT NULL THEN {least}(idle_s, dur_s)
              WHEN util_busy IS NOT NULL AND util_busy < %s THEN dur_s
              ELSE 0 END AS idle_part_s
  FROM (
    SELECT s.device_id,
           {key("t", "int")} AS team_id,
           h.default_team_id AS default_team_id,
           COALESCE({key("m", "text")}, '') AS model_key,
           COALESCE({key("r", "text")}, '') AS run_key,
           {key("j", "int")} AS job_id,
           COALESCE({key("k", "text")}, '') AS share_method,
           s.energy_j, s.method, s.util_busy, s.util_sm, s.idle_s,
           {seconds} AS dur_s,
           CASE WHEN sh.value IS NULL THEN 1.0
                WHEN s.energy_j > 0 THEN {key("e", "float")} / s.energy_j
                ELSE 1.0 / {_SHARE_COUNT[vendor]}
           END AS frac
    FROM {sample} s
    JOIN {device} d ON d.id = s.device_id
    JOIN {host} h ON h.id = d.host_id
    {_SHARES[vendor]}
    WHERE h.organisation_id = %s AND s.window_start >= %s AND s.window_start < %s
    {fence}
  ) r
  {fence}
) p
GROUP BY device_id, team_id, default_team_id, model_key, run_key, job_id
"""


# The summed fields of an Aggregate, merged when two share owners resolve to one.
_SUMMED = (
    "samples",
    "energy_j",
    "estimated_j",
    "covered_s",
    "busy_s",
    "util_known_s",
    "sm_s",
    "sm_known_s",
    "idle_s",
    "idle_energy_j",
    "allocated_idle_s",
    "allocated_idle_j",
    "unmapped_j",
)


def aggregate(*, organisation_id: int, hour: datetime) -> list[Aggregate]:
    """The window's samples summed per device x owner, in one query, owners resolved."""
    # The stored form (naive UTC text on SQLite), so the bounds compare exactly.
    start = connection.ops.adapt_datetimefield_value(hour)
    end = connection.ops.adapt_datetimefield_value(hour + timedelta(hours=1))
    with connection.cursor() as cur:
        cur.execute(
            _sql(),
            [
                Method.ESTIMATE,
                ALLOCATED_IDLE,
                ALLOCATED_IDLE,
                IDLE_BUSY_BELOW,
                organisation_id,
                start,
                end,
            ],
        )
        raw = cur.fetchall()
    resolved = attribution.jobs_resolved(
        organisation_id=organisation_id, start=hour, end=hour + timedelta(hours=1)
    )
    merged: dict[tuple[int, int | None, str, str, int | None], list[float]] = {}
    for r in raw:
        device_id, team_id, default_team_id, model_key, run_key, job_id = r[:6]
        owner = attribution.owner_of(
            team_id=team_id,
            default_team_id=default_team_id,
            model_key=model_key,
            job=resolved.get(job_id) if job_id is not None else None,
            has_job=job_id is not None,
        )
        sums = [float(v or 0.0) for v in r[6:]]
        sums.append(sums[1] if owner.unmapped else 0.0)
        key = (device_id, owner.team_id, owner.model_key, run_key, job_id)
        seen = merged.get(key)
        if seen is None:
            merged[key] = sums
        else:
            merged[key] = [a + b for a, b in zip(seen, sums, strict=True)]
    return [
        Aggregate(
            device_id=device_id,
            team_id=team_id,
            model_key=model_key,
            run_key=run_key,
            job_id=job_id,
            **{
                name: int(v) if name == "samples" else v
                for name, v in zip(_SUMMED, sums, strict=True)
            },  # type: ignore[arg-type]
        )
        for (device_id, team_id, model_key, run_key, job_id), sums in merged.items()
    ]


def build_rows(*, organisation_id: int, hour: datetime, now: datetime) -> list[dict[str, Any]]:
    """The complete set of rollup rows of the window, as column -> value dicts (unsaved)."""
    aggregates = aggregate(organisation_id=organisation_id, hour=hour)
    if not aggregates:
        return []
    devices = {
        d["id"]: d
        for d in Device.objects.filter(
            host__organisation_id=organisation_id, id__in={a.device_id for a in aggregates}
        ).values(
            "id",
            "kind",
            "host_id",
            "embodied_kgco2e",
            "lifetime_years",
            "host__site_id",
            "host__site__pue",
            "host__site__grid_zone",
        )
    }
    intensities = intensities_for(
        zones=[d["host__site__grid_zone"] for d in devices.values()], hour=hour
    )
    sites = {
        d["host__site_id"]: d["host__site__grid_zone"]
        for d in devices.values()
        if d["host__site_id"]
    }
    site_ids = set(sites)
    markets = market_factors_for(sites=sites, hour=hour, intensities=intensities)
    tariffs = tariffs_for(site_ids=site_ids, hour=hour)
    hosts = host_embodied(organisation_id=organisation_id)
    # The host's embodied share is spread over the devices that reported in the hour.
    reporting: dict[int, set[int]] = {}
    for a in aggregates:
        reporting.setdefault(devices[a.device_id]["host_id"], set()).add(a.device_id)

    rows = []
    for a in aggregates:
        d = devices[a.device_id]
        site_id = d["host__site_id"]
        pue = d["host__site__pue"] or m.PUE_DEFAULT
        figure = intensities[(d["host__site__grid_zone"] or "").strip().upper()]
        energy_kwh = m.energy_kwh(a.energy_j)
        facility_kwh = energy_kwh * pue
        market = markets.get(site_id) if site_id else None
        market_g = market.g_per_kwh if market is not None else figure.intensity_g_per_kwh
        host_kg, host_life = hosts.get(d["host_id"], (0.0, m.LIFETIME_DEFAULT_YEARS))
        tariff = tariffs.get(site_id) if site_id else None
        device_kg = d["embodied_kgco2e"]
        if device_kg is None:
            device_kg = m.embodied_default_kgco2e(d["kind"])
        gpu = d["kind"] == DeviceKind.GPU
        rows.append(
            dict(
                organisation_id=organisation_id,
                hour=hour,
                device_id=a.device_id,
                device_kind=d["kind"],
                host_id=d["host_id"],
                site_id=site_id,
                team_id=a.team_id,
                model_key=a.model_key,
                run_key=a.run_key,
                scheduler_job_id=a.job_id,
                samples=a.samples,
                covered_s=a.covered_s,
                energy_kwh=energy_kwh,
                estimated_energy_kwh=m.energy_kwh(a.estimated_j),
                pue=pue,
                facility_energy_kwh=facility_kwh,
                allocated_gpu_h=a.covered_s / 3600.0 if gpu else 0.0,
                busy_gpu_h=a.busy_s / 3600.0 if gpu else 0.0,
                util_known_gpu_h=a.util_known_s / 3600.0 if gpu else 0.0,
                idle_gpu_h=a.idle_s / 3600.0 if gpu else 0.0,
                idle_energy_kwh=m.energy_kwh(a.idle_energy_j) if gpu else 0.0,
                sm_active_gpu_h=a.sm_s / 3600.0 if gpu else 0.0,
                sm_known_gpu_h=a.sm_known_s / 3600.0 if gpu else 0.0,
                allocated_idle_gpu_h=a.allocated_idle_s / 3600.0 if gpu else 0.0,
                allocated_idle_energy_kwh=m.energy_kwh(a.allocated_idle_j) if gpu else 0.0,
                unmapped_energy_kwh=m.energy_kwh(a.unmapped_j),
                intensity_g_per_kwh=figure.intensity_g_per_kwh,
                intensity_source=figure.source,
                intensity_zone=figure.figure_zone,
                market_g_per_kwh=market_g,
                market_source=market.source if market is not None else m.MarketSource.LOCATION,
                operational_location_kgco2e=m.operational_kgco2e(
                    energy_kwh=energy_kwh, pue=pue, intensity_g_per_kwh=figure.intensity_g_per_kwh
                ),
                operational_market_kgco2e=m.operational_kgco2e(
                    energy_kwh=energy_kwh, pue=pue, intensity_g_per_kwh=market_g
                ),
                upstream_kgco2e=m.operational_kgco2e(
                    energy_kwh=energy_kwh, pue=pue, intensity_g_per_kwh=figure.upstream_g_per_kwh
                ),
                intensity_method=figure.method,
                embodied_kgco2e=m.embodied_kgco2e(
                    device_kgco2e=device_kg,
                    seconds_used=a.covered_s,
                    lifetime_years=d["lifetime_years"] or m.LIFETIME_DEFAULT_YEARS,
                )
                + m.host_embodied_kgco2e(
                    host_kgco2e=host_kg,
                    seconds_used=a.covered_s,
                    devices=len(reporting[d["host_id"]]),
                    lifetime_years=host_life,
                ),
                renewable_share=figure.renewable_share,
                cost=facility_kwh * tariff.price_per_kwh if tariff else None,
                currency=tariff.currency if tariff else "",
                methodology_version=m.METHODOLOGY_VERSION,
                computed_at=now,
            )
        )
    return rows


def windows_insert(
    *, organisation_id: int, hours: Sequence[datetime], now: datetime
) -> dict[datetime, int]:
    """Insert the rollup rows of these hours of one organisation (the caller deleted the old ones
    in the same transaction); returns {hour: rows written}. PostgreSQL does the whole batch in
    one statement (``rollup_pg``); other backends build and write the rows hour by hour here."""
    if connection.vendor == "postgresql":
        written = rollup_pg.windows_insert(organisation_id=organisation_id, hours=hours, now=now)
    else:
        written = {}
        for hour in sorted(set(hours)):
            rows = build_rows(organisation_id=organisation_id, hour=hour, now=now)
            write_rows(rows)
            written[hour] = len(rows)
    # contracted volumes need the hours' site energy, known now (kpis/market.py)
    market_volumes_apply(organisation_id=organisation_id, hours=list(written))
    return written


def window_insert(*, organisation_id: int, hour: datetime, now: datetime) -> int:
    """One window's rows (see ``windows_insert``); returns the row count."""
    return windows_insert(organisation_id=organisation_id, hours=[hour], now=now)[hour]


def write_rows(rows: list[dict[str, Any]]) -> None:
    """Insert rollup rows inside the caller's transaction: COPY on PostgreSQL (a window of 1,000
    GPUs is ~1,000 rows x 37 columns; COPY takes a tenth of a multi-row INSERT), else bulk_create."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        HourlyRollup.objects.bulk_create([HourlyRollup(**row) for row in rows], batch_size=500)
        return
    columns = list(rows[0])
    db_columns = [HourlyRollup._meta.get_field(c.removesuffix("_id")).column for c in columns]
    connection.ensure_connection()
    with (
        connection.connection.cursor() as cur,
        cur.copy(
            f"COPY {HourlyRollup._meta.db_table} ({', '.join(db_columns)}) FROM STDIN"
        ) as copy,
    ):
        for row in rows:
            copy.write_row(tuple(row.values()))
