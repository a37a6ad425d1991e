"""The PostgreSQL rollup of one window as one ``INSERT ... SELECT``: samples are aggregated, priced
and written without leaving the database (bench/rollup.py; the generic path is ``rollup``).

The carbon and cost factors that vary by hour (grid intensity per zone, contract and tariff per
site) are read with the same selectors as the generic path and passed as small arrays; factors
that do not vary (PUE, embodied footprint, lifetime) are joined from the inventory. The formulas
mirror ``carbon.methodology`` operation for operation, so both paths store the same floats
(tests/kpis/test_rollup_pg.py compares them row by row).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

from greenkpi.carbon import methodology as m
from greenkpi.carbon.selectors import intensities_for, market_factors_for, tariffs_for
from greenkpi.ingest.models import Method, Sample, SampleShare
from greenkpi.inventory.models import Device, DeviceKind, Host, Site
from greenkpi.kpis.models import HourlyRollup
from greenkpi.kpis.rollup import IDLE_BUSY_BELOW

# Per-sample expressions (one row of samples s, optionally joined to shares sh).
_FRACTION_SHARED = """CASE WHEN sh.device_id IS NULL THEN 1.0
                WHEN s.energy_j > 0 THEN sh.energy_j / s.energy_j
                ELSE 1.0 / (SELECT COUNT(*) FROM {share} x
                            WHERE x.device_id = s.device_id AND x.window_start = s.window_start)
           END"""

# Column -> SQL over the priced aggregate ``a`` (per device x owner) and its factors. Kept in the
# order of the generic path's arithmetic so both give bit-identical results.
_COLUMNS: dict[str, str] = {
    "organisation_id": "%(org)s",
    "hour": "%(hour)s::timestamptz",
    "device_id": "a.device_id",
    "device_kind": "a.kind",
    "host_id": "a.host_id",
    "site_id": "a.site_id",
    "team_id": "a.team_id",
    "model_key": "a.model_key",
    "run_key": "a.run_key",
    "samples": "a.samples",
    "covered_s": "a.covered_s",
    "energy_kwh": "a.energy_j / %(j_per_kwh)s",
    "estimated_energy_kwh": "a.estimated_j / %(j_per_kwh)s",
    "pue": "a.pue",
    "facility_energy_kwh": "a.energy_j / %(j_per_kwh)s * a.pue",
    "allocated_gpu_h": "CASE WHEN a.gpu THEN a.covered_s / 3600.0 ELSE 0.0 END",
    "busy_gpu_h": "CASE WHEN a.gpu THEN a.busy_s / 3600.0 ELSE 0.0 END",
    "util_known_gpu_h": "CASE WHEN a.gpu THEN a.util_known_s / 3600.0 ELSE 0.0 END",
    "idle_gpu_h": "CASE WHEN a.gpu THEN a.idle_s / 3600.0 ELSE 0.0 END",
    "idle_energy_kwh": "CASE WHEN a.gpu THEN a.idle_energy_j / %(j_per_kwh)s ELSE 0.0 END",
    "sm_active_gpu_h": "CASE WHEN a.gpu THEN a.sm_s / 3600.0 ELSE 0.0 END",
    "sm_known_gpu_h": "CASE WHEN a.gpu THEN a.sm_known_s / 3600.0 ELSE 0.0 END",
    "intensity_g_per_kwh": "z.intensity",
    "intensity_source": "z.source",
    "intensity_zone": "z.figure_zone",
    "market_g_per_kwh": "COALESCE(f.contract, z.intensity)",
    "market_source": "CASE WHEN f.contract IS NOT NULL THEN %(contract)s ELSE %(location)s END",
    "operational_location_kgco2e": (
        "a.energy_j / %(j_per_kwh)s * a.pue * z.intensity / %(g_per_kg)s"
    ),
    "operational_market_kgco2e": (
        "a.energy_j / %(j_per_kwh)s * a.pue * COALESCE(f.contract, z.intensity) / %(g_per_kg)s"
    ),
    "embodied_kgco2e": "a.device_kg * (a.covered_s / (a.lifetime * %(s_per_year)s)) * 1.0",
    "renewable_share": "z.renewable",
    "cost": "a.energy_j / %(j_per_kwh)s * a.pue * f.price",
    "currency": "COALESCE(f.currency, '')",
    "methodology_version": "%(version)s",
    "computed_at": "%(now)s::timestamptz",
}


def _sql(*, shared: bool) -> str:
    sample, share = Sample._meta.db_table, SampleShare._meta.db_table
    device, host, site = Device._meta.db_table, Host._meta.db_table, Site._meta.db_table
    if shared:
        owner = "sh.team_id, COALESCE(sh.model_key, '') AS model_key, COALESCE(sh.run_key, '') AS run_key"
        frac, x = _FRACTION_SHARED.format(share=share), "* frac"
        join = f"""LEFT JOIN {share} sh ON sh.device_id = s.device_id AND sh.window_start = s.window_start
             -- repeated for the shares: the planner does not carry a range across the join
             AND sh.window_start >= %(start)s AND sh.window_start < %(end)s"""
    else:
        # No share in the window (checked first): every sample is its device's, whole.
        owner = "NULL::bigint AS team_id, '' AS model_key, '' AS run_key"
        # frac is 1 and y * 1.0 == y exactly: the multiplications are left out
        frac, x, join = "1.0::float8", "", ""
    fields = HourlyRollup._meta
    columns = ", ".join(fields.get_field(c.removesuffix("_id")).column for c in _COLUMNS)
    # INSERT first (its query carries the WITH): monitoring and tests recognise the statement.
    return f"""INSERT INTO {fields.db_table} ({columns})
WITH dev AS MATERIALIZED (
  SELECT d.id, d.kind, d.host_id, h.site_id, h.default_team_id,
         COALESCE(st.grid_zone, '') AS zone,
         COALESCE(NULLIF(st.pue, 0), %(pue_default)s) AS pue,
         COALESCE(d.embodied_kgco2e, ek.kg, 0.0) AS device_kg,
         COALESCE(NULLIF(d.lifetime_years, 0), %(lifetime_default)s) AS lifetime
  FROM {device} d
  JOIN {host} h ON h.id = d.host_id
  LEFT JOIN {site} st ON st.id = h.site_id
  LEFT JOIN unnest(%(ek_kind)s::text[], %(ek_kg)s::float8[]) AS ek(kind, kg) ON ek.kind = d.kind
  WHERE h.organisation_id = %(org)s
),
per_sample AS (
  SELECT s.device_id, {owner}, s.energy_j, s.method, s.util_busy, s.util_sm, s.idle_s,
         dur_s, {frac} AS frac,
         CASE WHEN s.idle_s IS NOT NULL THEN LEAST(s.idle_s, dur_s)
              WHEN s.util_busy IS NOT NULL AND s.util_busy < %(idle_below)s THEN dur_s
              ELSE 0 END AS idle_part_s
  FROM {sample} s
  CROSS JOIN LATERAL (SELECT date_part('epoch', s.window_end - s.window_start) AS dur_s) t
  {join}
  WHERE s.device_id IN (SELECT id FROM dev)
    AND s.window_start >= %(start)s AND s.window_start < %(end)s
  -- keeps the planner from inlining this into every SUM (duration and fraction once per row)
  OFFSET 0
),
summed AS (
  SELECT device_id, team_id, model_key, run_key,
         COUNT(*) AS samples,
         SUM(energy_j {x}) AS energy_j,
         SUM(CASE WHEN method = %(estimate)s THEN energy_j {x} ELSE 0 END) AS estimated_j,
         SUM(dur_s {x}) AS covered_s,
         SUM(dur_s {x} * COALESCE(util_busy, 0)) AS busy_s,
         SUM(CASE WHEN util_busy IS NOT NULL THEN dur_s {x} ELSE 0 END) AS util_known_s,
         SUM(dur_s {x} * COALESCE(util_sm, 0)) AS sm_s,
         SUM(CASE WHEN util_sm IS NOT NULL THEN dur_s {x} ELSE 0 END) AS sm_known_s,
         SUM(idle_part_s {x}) AS idle_s,
         SUM(CASE WHEN dur_s > 0 THEN energy_j {x} * idle_part_s / dur_s ELSE 0 END)
           AS idle_energy_j
  FROM per_sample
  GROUP BY device_id, team_id, model_key, run_key
),
-- Owners resolved after summing (a few rows per device, not a join per sample): a share naming
-- no team is the host's default team's, and merges with one naming it explicitly.
a AS (
  SELECT x.device_id, dev.kind, dev.kind = %(gpu)s AS gpu, dev.host_id, dev.site_id, dev.zone,
         dev.pue, dev.device_kg, dev.lifetime,
         COALESCE(x.team_id, dev.default_team_id) AS team_id, x.model_key, x.run_key,
         SUM(x.samples) AS samples, SUM(x.energy_j) AS energy_j, SUM(x.estimated_j) AS estimated_j,
         SUM(x.covered_s) AS covered_s, SUM(x.busy_s) AS busy_s,
         SUM(x.util_known_s) AS util_known_s, SUM(x.sm_s) AS sm_s,
         SUM(x.sm_known_s) AS sm_known_s, SUM(x.idle_s) AS idle_s,
         SUM(x.idle_energy_j) AS idle_energy_j
  FROM summed x JOIN dev ON dev.id = x.device_id
  GROUP BY x.device_id, dev.kind, dev.host_id, dev.site_id, dev.zone, dev.pue, dev.device_kg,
           dev.lifetime, COALESCE(x.team_id, dev.default_team_id), x.model_key, x.run_key
)
SELECT {", ".join(_COLUMNS.values())}
FROM a
JOIN unnest(%(z_zone)s::text[], %(z_intensity)s::float8[], %(z_renewable)s::float8[],
            %(z_source)s::text[], %(z_figure)s::text[])
     AS z(zone, intensity, renewable, source, figure_zone) ON z.zone = a.zone
LEFT JOIN unnest(%(f_site)s::bigint[], %(f_contract)s::float8[], %(f_price)s::float8[],
                 %(f_currency)s::text[]) AS f(site_id, contract, price, currency)
     ON f.site_id = a.site_id
"""


def window_insert(*, organisation_id: int, hour: datetime, now: datetime) -> int:
    """Insert the window's rollup rows (the caller deleted the old ones); returns the row count."""
    share = SampleShare._meta.db_table
    end = hour + timedelta(hours=1)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM {share} WHERE window_start >= %s AND window_start < %s)",
            [hour, end],
        )
        shared = bool(cur.fetchone()[0])
        places = list(
            Host.objects.filter(organisation_id=organisation_id)
            .values_list("site_id", "site__grid_zone")
            .distinct()
        )
        zones = sorted({zone or "" for _, zone in places})
        site_ids = sorted({site_id for site_id, _ in places if site_id})
        figures = intensities_for(zones=zones, hour=hour)
        # keyed by the raw stored zone so the join needs no normalisation in SQL
        rows = [figures[(z or "").strip().upper()] for z in zones]
        contracts = market_factors_for(site_ids=site_ids, hour=hour)
        tariffs = tariffs_for(site_ids=site_ids, hour=hour)
        params: dict[str, object] = {
            "org": organisation_id,
            "hour": hour,
            "now": now,
            "start": hour,
            "end": end,
            "estimate": Method.ESTIMATE,
            "idle_below": IDLE_BUSY_BELOW,
            "gpu": DeviceKind.GPU,
            "pue_default": m.PUE_DEFAULT,
            "lifetime_default": m.LIFETIME_DEFAULT_YEARS,
            "ek_kind": list(m.EMBODIED_DEFAULT_KGCO2E),
            "ek_kg": list(m.EMBODIED_DEFAULT_KGCO2E.values()),
            "j_per_kwh": m.J_PER_KWH,
            "g_per_kg": m.G_PER_KG,
            "s_per_year": m.SECONDS_PER_YEAR,
            "contract": m.MarketSource.CONTRACT,
            "location": m.MarketSource.LOCATION,
            "version": m.METHODOLOGY_VERSION,
            "z_zone": zones,
            "z_intensity": [f.intensity_g_per_kwh for f in rows],
            "z_renewable": [f.renewable_share for f in rows],
            "z_source": [f.source for f in rows],
            "z_figure": [f.figure_zone for f in rows],
            "f_site": site_ids,
            "f_contract": [contracts.get(s) for s in site_ids],
            "f_price": [tariffs[s].price_per_kwh if s in tariffs else None for s in site_ids],
            "f_currency": [tariffs[s].currency if s in tariffs else None for s in site_ids],
        }
        cur.execute(_sql(shared=shared), params)
        return cur.rowcount
