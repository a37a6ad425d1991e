"""The PostgreSQL rollup of a batch of windows (hours) of one organisation as one
``INSERT ... SELECT``: samples are aggregated per device x owner x hour, priced and written without
leaving the database (bench/rollup.py; the generic path is ``rollup``).

The carbon and cost factors that vary by hour (grid intensity per zone, contract and tariff per
site) are read with the same selectors as the generic path, for all the hours at once, and passed
as small arrays keyed by (zone, hour) and (site, hour), joined after summing (a few rows per
device and hour, never per sample); factors that do not vary (PUE, embodied footprint, lifetime)
are joined from the inventory. The formulas mirror ``carbon.methodology`` operation for
operation, so both paths store the same floats (tests/kpis/test_rollup_pg.py compares them row by
row, for one window and for a batch).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import connection

from greenkpi.carbon import methodology as m
from greenkpi.carbon.selectors import (
    host_embodied,
    intensities_over,
    market_factors_over,
    tariffs_over,
)
from greenkpi.ingest.models import Method, Sample
from greenkpi.inventory.models import Device, DeviceKind, Host, Site
from greenkpi.kpis.attribution import jobs_resolved
from greenkpi.kpis.formulas import ALLOCATED_IDLE, IDLE_BUSY_BELOW
from greenkpi.kpis.models import HourlyRollup

# Per-sample expressions: one row of samples s, optionally joined to one of its shares sh(v)
# (a jsonb object, keys in ingest.columns.SHARE_KEYS). A window of zero energy splits equally.
_FRACTION_SHARED = """CASE WHEN sh.v IS NULL THEN 1.0
                WHEN s.energy_j > 0 THEN (sh.v ->> 'e')::float8 / s.energy_j
                ELSE 1.0 / jsonb_array_length(s.shares)
           END"""

# Column -> SQL over the priced aggregate ``a`` (per device x owner) and its factors. Kept in the
# order of the generic path's arithmetic so both give bit-identical results.
_COLUMNS: dict[str, str] = {
    "organisation_id": "%(org)s",
    "hour": "a.hour",
    "device_id": "a.device_id",
    "device_kind": "a.kind",
    "host_id": "a.host_id",
    "site_id": "a.site_id",
    "team_id": "a.team_id",
    "model_key": "a.model_key",
    "run_key": "a.run_key",
    "scheduler_job_id": "a.job_id",
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
    "allocated_idle_gpu_h": "CASE WHEN a.gpu THEN a.allocated_idle_s / 3600.0 ELSE 0.0 END",
    "allocated_idle_energy_kwh": (
        "CASE WHEN a.gpu THEN a.allocated_idle_j / %(j_per_kwh)s ELSE 0.0 END"
    ),
    "unmapped_energy_kwh": "a.unmapped_j / %(j_per_kwh)s",
    "intensity_g_per_kwh": "z.intensity",
    "intensity_source": "z.source",
    "intensity_zone": "z.figure_zone",
    "market_g_per_kwh": "COALESCE(f.contract, z.intensity)",
    "market_source": "COALESCE(f.msrc, %(location)s)",
    "operational_location_kgco2e": (
        "a.energy_j / %(j_per_kwh)s * a.pue * z.intensity / %(g_per_kg)s"
    ),
    "operational_market_kgco2e": (
        "a.energy_j / %(j_per_kwh)s * a.pue * COALESCE(f.contract, z.intensity) / %(g_per_kg)s"
    ),
    # the device's own footprint + its share of the whole host's (carbon.methodology)
    "embodied_kgco2e": (
        "a.device_kg * (a.covered_s / (a.lifetime * %(s_per_year)s)) * 1.0"
        " + COALESCE(hk.kg * (a.covered_s / (hn.n * hk.lifetime * %(s_per_year)s)), 0.0)"
    ),
    "upstream_kgco2e": "a.energy_j / %(j_per_kwh)s * a.pue * z.upstream / %(g_per_kg)s",
    "intensity_method": "z.method",
    "renewable_share": "z.renewable",
    "cost": "a.energy_j / %(j_per_kwh)s * a.pue * f.price",
    "currency": "COALESCE(f.currency, '')",
    "methodology_version": "%(version)s",
    "computed_at": "%(now)s::timestamptz",
}


# The sums of ``summed``, per device x hour x owner.
_SUMS = (
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
)

# The collector's default window (collectors: ``window_s``): its duration is known without
# computing it (``_sums_sql``); any other window is measured, at a few times the cost.
USUAL_WINDOW = timedelta(seconds=60)

# The UTC hour of a sample: date_bin with a whole-hour origin is pure arithmetic on the instant
# (date_trunc on a timestamptz would follow the session's time zone).
_HOUR_OF = "date_bin('1 hour', s.window_start, TIMESTAMPTZ '2000-01-01 00:00:00+00')"


# Organisation id -> whether its last summed batch had any sample with shares (this process's
# memory; it only picks which sums to try first, never what is stored: ``windows_insert``).
_SHARED_SEEN: dict[int, bool] = {}

# The batch's sums, between the two statements: a temporary table written by CREATE TABLE AS,
# whose SELECT PostgreSQL may run in parallel workers (an INSERT ... SELECT never does).
_SUMS_TABLE = "kpi_rollup_sums"


# At most this many runs of consecutive ids are tested as ranges (``_devices_sql``).
_MAX_DEVICE_RUNS = 4


def _devices_sql(devices: Sequence[int]) -> str:
    """The organisation's devices as a condition on ``s.device_id``: a few ranges of consecutive
    ids (a fleet registered together: a day of 1,000 GPUs, one range, 0.015 of 0.5 CPU s less
    than the hash look-up per sample), else the ids as an array (a hashed ``= ANY``: a third of a
    semi-join against the device table per sample). ``devices`` sorted; every id in a range is
    one of them, so both select the same samples."""
    runs: list[list[int]] = []
    for pk in devices:
        if runs and pk == runs[-1][1] + 1:
            runs[-1][1] = pk
        else:
            runs.append([pk, pk])
    if not runs or len(runs) > _MAX_DEVICE_RUNS:
        return "s.device_id = ANY(%(devices)s::bigint[])"
    ranges = " OR ".join(f"s.device_id BETWEEN {int(lo)} AND {int(hi)}" for lo, hi in runs)
    return f"({ranges})"


def _sums_sql(*, shared: bool, sparse: bool, devices: Sequence[int]) -> str:
    """Statement 1: the batch's samples summed per device x hour x owner into ``_SUMS_TABLE``;
    ``sparse`` when the batch's hours leave gaps between its first and last; ``devices``: the
    organisation's, sorted (also passed as the ``devices`` parameter)."""
    sample = Sample._meta.db_table
    if shared:
        owner = (
            "(sh.v ->> 't')::bigint AS team_id, COALESCE(sh.v ->> 'm', '') AS model_key, "
            "COALESCE(sh.v ->> 'r', '') AS run_key, (sh.v ->> 'j')::bigint AS job_id, "
            "(sh.v ->> 'k') IS NOT DISTINCT FROM %(allocated_idle)s AS allocated_idle,"
        )
        owned = "team_id, model_key, run_key, job_id"
        by_owner = ", team_id, model_key, run_key, job_id"
        allocated = (
            "SUM(CASE WHEN allocated_idle THEN dur_s * frac ELSE 0 END) AS allocated_idle_s,\n"
            "       SUM(CASE WHEN allocated_idle THEN energy_j * frac ELSE 0 END)"
            " AS allocated_idle_j"
        )
        # whether any sample had shares (remembered per organisation: ``_SHARED_SEEN``)
        present = "sh.v IS NOT NULL"
        frac, x = f", {_FRACTION_SHARED} AS frac", "* frac"
        # the shares are on the row: one element per share, none (a NULL sh) without shares
        join = "LEFT JOIN LATERAL jsonb_array_elements(s.shares) AS sh(v) ON true"
    else:
        # No share in the batch's range (checked first): every sample is its device's, whole,
        # so there are no owner columns to carry per row or to group by (a third of the summing
        # time), and f is 1 (y * 1.0 == y exactly: the multiplications are left out).
        owner, by_owner = "", ""
        owned = (
            "NULL::bigint AS team_id, ''::text AS model_key, ''::text AS run_key, "
            "NULL::bigint AS job_id"
        )
        frac, x, join = "", "", ""
        allocated = "0.0::float8 AS allocated_idle_s, 0.0::float8 AS allocated_idle_j"
        # The check that makes this path exact: did any sample have shares after all? (Then
        # the caller sums again with owners; ``windows_insert``.)
        present = "s.shares IS NOT NULL"
    # Hours between the batch's first and last that are not in it (another worker holds them)
    # are left out row by row; a contiguous batch needs only the range.
    gaps = f"AND {_HOUR_OF} = ANY(%(hours)s::timestamptz[])" if sparse else ""
    usual_s = USUAL_WINDOW.total_seconds()
    return f"""CREATE TEMPORARY TABLE {_SUMS_TABLE} ON COMMIT DROP AS
SELECT device_id, hour, {owned},
       COUNT(*) AS samples,
       SUM(energy_j {x}) AS energy_j,
       SUM(CASE WHEN estimated THEN energy_j {x} ELSE 0 END) AS estimated_j,
       SUM(dur_s {x}) AS covered_s,
       SUM(dur_s {x} * COALESCE(util_busy, 0)) AS busy_s,
       SUM(CASE WHEN util_busy IS NOT NULL THEN dur_s {x} ELSE 0 END) AS util_known_s,
       SUM(dur_s {x} * COALESCE(util_sm, 0)) AS sm_s,
       SUM(CASE WHEN util_sm IS NOT NULL THEN dur_s {x} ELSE 0 END) AS sm_known_s,
       SUM(idle_part_s {x}) AS idle_s,
       -- only the rows with idle time (a busy row adds energy x 0 / d = 0.0): the others skip
       -- the product, the division and the addition
       COALESCE(SUM(energy_j {x} * idle_part_s / dur_s)
                FILTER (WHERE idle_part_s <> 0 AND dur_s > 0), 0.0) AS idle_energy_j,
       {allocated},
       bool_or(shared) AS shared
FROM (
  SELECT *, CASE WHEN idle_s IS NOT NULL THEN LEAST(idle_s, dur_s)
                 WHEN util_busy IS NOT NULL AND util_busy < %(idle_below)s THEN dur_s
                 ELSE 0 END AS idle_part_s
  FROM (
    SELECT s.device_id, {_HOUR_OF} AS hour, {owner} s.energy_j,
           s.method = %(estimate)s AS estimated, s.util_busy, s.util_sm, s.idle_s{frac},
           {present} AS shared,
           -- The collector's default window first: an addition and a comparison instead of an
           -- interval subtraction and date_part, which parses its unit on every call (a day of
           -- 1,000 GPUs: 0.08 of 0.63 CPU seconds). The same float: 60 s is 60.0 exactly.
           CASE WHEN s.window_end = s.window_start + interval '{usual_s} seconds'
                THEN {usual_s}::float8
                ELSE date_part('epoch', s.window_end - s.window_start) END AS dur_s,
           -- The fence: a subquery with a volatile function in its select list is not merged
           -- into the query above, so the duration and f are computed once per row (a merged
           -- one computes them once per SUM). Unlike the usual fences, pg_is_in_recovery() is
           -- parallel safe: the scan still runs in parallel (OFFSET 0 would not), and it reads a
           -- flag (clock_timestamp() read the clock: 0.015 s more per 1.44 M rows; a set-returning
           -- function such as unnest(ARRAY[...]) cost 0.8 of 2.1 CPU seconds).
           pg_is_in_recovery() AS fence
    FROM {sample} s
    {join}
    -- the organisation's devices, resolved once (``_devices_sql``)
    WHERE {_devices_sql(devices)}
      AND s.window_start >= %(start)s AND s.window_start < %(end)s {gaps}
  ) per_row
) per_sample
GROUP BY device_id, hour{by_owner}
"""


def _insert_sql(*, shared: bool) -> str:
    """Statement 2: the sums priced and written, returning each written row's hour (epoch s)."""
    device, host, site = Device._meta.db_table, Host._meta.db_table, Site._meta.db_table
    # kpis.attribution.owner_of, in SQL: the share's team, else its job's mapped team, else the
    # host's; the share's model, else its job's mapped model. ``r`` holds the batch's jobs.
    team = "COALESCE(x.team_id, r.team_id, dev.default_team_id)"
    model = "CASE WHEN x.model_key <> '' THEN x.model_key ELSE COALESCE(r.model_key, '') END"
    if shared:
        merged = ", ".join(f"SUM(x.{c}) AS {c}" for c in _SUMS)
        merged += (
            ", SUM(CASE WHEN x.team_id IS NULL AND x.job_id IS NOT NULL AND r.team_id IS NULL "
            "THEN x.energy_j ELSE 0 END) AS unmapped_j"
        )
        merge = f"""GROUP BY x.device_id, x.hour, dev.kind, dev.host_id, dev.site_id, dev.zone, dev.pue,
           dev.device_kg, dev.lifetime, {team}, {model}, x.run_key, x.job_id"""
        jobs = """LEFT JOIN unnest(%(r_job)s::bigint[], %(r_team)s::bigint[], %(r_model)s::text[])
       AS r(job_id, team_id, model_key) ON r.job_id = x.job_id"""
    else:
        # one owner per device and hour: nothing to merge, no job
        merged = ", ".join(f"x.{c}" for c in _SUMS) + ", 0.0::float8 AS unmapped_j"
        merge, jobs = "", ""
        team, model = "COALESCE(x.team_id, dev.default_team_id)", "x.model_key"
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
-- Owners resolved after summing (a few rows per device and hour, not a join per sample): a share
-- naming no team is the host's default team's, and merges with one naming it explicitly.
a AS (
  SELECT x.device_id, x.hour, dev.kind, dev.kind = %(gpu)s AS gpu, dev.host_id, dev.site_id,
         dev.zone, dev.pue, dev.device_kg, dev.lifetime,
         {team} AS team_id, {model} AS model_key, x.run_key, x.job_id,
         {merged}
  FROM {_SUMS_TABLE} x JOIN dev ON dev.id = x.device_id
  {jobs}
  {merge}
)
SELECT {", ".join(_COLUMNS.values())}
FROM a
JOIN unnest(%(z_zone)s::text[], %(z_hour)s::timestamptz[], %(z_intensity)s::float8[],
            %(z_renewable)s::float8[], %(z_source)s::text[], %(z_figure)s::text[],
            %(z_upstream)s::float8[], %(z_method)s::text[])
     AS z(zone, hour, intensity, renewable, source, figure_zone, upstream, method)
     ON z.zone = a.zone AND z.hour = a.hour
LEFT JOIN unnest(%(f_site)s::bigint[], %(f_hour)s::timestamptz[], %(f_contract)s::float8[],
                 %(f_price)s::float8[], %(f_currency)s::text[], %(f_msrc)s::text[])
     AS f(site_id, hour, contract, price, currency, msrc)
     ON f.site_id = a.site_id AND f.hour = a.hour
-- the whole host's embodied share: its footprint and lifetime, and how many of its devices
-- reported in the hour (carbon.methodology.host_embodied_kgco2e)
LEFT JOIN unnest(%(hk_host)s::bigint[], %(hk_kg)s::float8[], %(hk_life)s::float8[])
     AS hk(host_id, kg, lifetime) ON hk.host_id = a.host_id
-- (counted on the batch's sums, not on ``a``: a second reference would materialise ``a``)
JOIN (SELECT dev.host_id, x.hour, COUNT(DISTINCT x.device_id) AS n
      FROM {_SUMS_TABLE} x JOIN dev ON dev.id = x.device_id GROUP BY dev.host_id, x.hour) hn
     ON hn.host_id = a.host_id AND hn.hour = a.hour
RETURNING date_part('epoch', hour)::bigint
"""


def _factors(*, organisation_id: int, hours: Sequence[datetime]) -> dict[str, list[object]]:
    """The hourly factors of the organisation's zones and sites as parallel arrays: one entry per
    (zone, hour) and per (site, hour), from the selectors the generic path uses (their batch
    forms: one query each for all the hours)."""
    places = list(
        Host.objects.filter(organisation_id=organisation_id)
        .values_list("site_id", "site__grid_zone")
        .distinct()
    )
    zones = sorted({zone or "" for _, zone in places})
    sites = {site_id: zone for site_id, zone in places if site_id}
    site_ids = sorted(sites)
    z: dict[str, list[object]] = {
        k: [] for k in ("zone", "hour", "i", "re", "src", "fig", "up", "method")
    }
    f: dict[str, list[object]] = {
        k: [] for k in ("site", "hour", "contract", "price", "cur", "msrc")
    }
    intensities = intensities_over(zones=zones, hours=hours)
    markets = market_factors_over(sites=sites, hours=hours, intensities=intensities)
    tariffs = tariffs_over(site_ids=site_ids, hours=hours)
    for hour in hours:
        figures = intensities[hour]
        for zone in zones:
            # keyed by the raw stored zone so the join needs no normalisation in SQL
            figure = figures[(zone or "").strip().upper()]
            z["zone"].append(zone)
            z["hour"].append(hour)
            z["i"].append(figure.intensity_g_per_kwh)
            z["re"].append(figure.renewable_share)
            z["src"].append(figure.source)
            z["fig"].append(figure.figure_zone)
            z["up"].append(figure.upstream_g_per_kwh)
            z["method"].append(figure.method)
        for site_id in site_ids:
            tariff = tariffs[hour].get(site_id)
            f["site"].append(site_id)
            f["hour"].append(hour)
            market = markets[hour][site_id]
            f["contract"].append(market.g_per_kwh)
            f["msrc"].append(market.source)
            f["price"].append(tariff.price_per_kwh if tariff else None)
            f["cur"].append(tariff.currency if tariff else None)
    return {
        "z_zone": z["zone"],
        "z_hour": z["hour"],
        "z_intensity": z["i"],
        "z_renewable": z["re"],
        "z_source": z["src"],
        "z_figure": z["fig"],
        "z_upstream": z["up"],
        "z_method": z["method"],
        "f_site": f["site"],
        "f_hour": f["hour"],
        "f_contract": f["contract"],
        "f_price": f["price"],
        "f_currency": f["cur"],
        "f_msrc": f["msrc"],
    }


def _hosts(*, organisation_id: int) -> dict[str, list[object]]:
    """The organisation's hosts' embodied footprint and lifetime, as parallel arrays."""
    hosts = host_embodied(organisation_id=organisation_id)
    return {
        "hk_host": list(hosts),
        "hk_kg": [kg for kg, _ in hosts.values()],
        "hk_life": [life for _, life in hosts.values()],
    }


def _jobs(*, organisation_id: int, start: datetime, end: datetime) -> dict[str, list[object]]:
    """The range's scheduler jobs and what the mappings give them, as parallel arrays."""
    resolved = jobs_resolved(organisation_id=organisation_id, start=start, end=end)
    return {
        "r_job": list(resolved),
        "r_team": [r.team_id for r in resolved.values()],
        "r_model": [r.model_key for r in resolved.values()],
    }


def windows_insert(
    *, organisation_id: int, hours: Sequence[datetime], now: datetime
) -> dict[datetime, int]:
    """Insert the rollup rows of these whole UTC hours of one organisation in one statement (the
    caller deleted their old rows in the same transaction); returns {hour: rows written}."""
    hours = sorted(set(hours))
    if not hours:
        return {}
    start, end = hours[0], hours[-1] + timedelta(hours=1)
    sparse = len(hours) != (end - start) // timedelta(hours=1)
    sample = Sample._meta.db_table
    devices = list(
        Device.objects.filter(host__organisation_id=organisation_id)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    params: dict[str, object] = {
        "org": organisation_id,
        "hours": hours,
        "now": now,
        "start": start,
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
        "allocated_idle": ALLOCATED_IDLE,
        **_jobs(organisation_id=organisation_id, start=start, end=end),
        "devices": devices,
        **_factors(organisation_id=organisation_id, hours=hours),
        **_hosts(organisation_id=organisation_id),
    }
    with connection.cursor() as cur:
        # The sums of a batch (24 hours x 1,000 GPUs: ~40 MB) hashed in memory, not sorted on
        # disk. No JIT: each parallel worker compiles the expressions again, which cost more than
        # it saved (a day of 1,000 GPUs: 1.9 s without, 2.15 s with, medians of 4 on 2 cores).
        cur.execute("SET LOCAL work_mem = '64MB'")
        cur.execute("SET LOCAL jit = off")
        # Summed without owners when the organisation's last batch had no shares: the statement
        # says whether a sample had some after all, and only then are the sums redone with
        # owners (once; the next batch starts with owners). Otherwise, or on this process's
        # first batch of the organisation, a look for one share decides (it stops at the
        # first one found, but reads the whole range when there is none: a sixth of a
        # shareless fleet's summing, which the check inside the statement spares).
        shared = _SHARED_SEEN.get(organisation_id)
        if shared is not False:
            cur.execute(
                f"SELECT EXISTS (SELECT 1 FROM {sample} s WHERE {_devices_sql(devices)} AND "
                f"s.window_start >= %(start)s AND s.window_start < %(end)s AND "
                f"s.shares IS NOT NULL)",
                params,
            )
            shared = bool(cur.fetchone()[0])
        cur.execute(_sums_sql(shared=shared, sparse=sparse, devices=devices), params)
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {_SUMS_TABLE} WHERE shared)")
        seen = bool(cur.fetchone()[0])
        if seen and not shared:
            cur.execute(f"DROP TABLE {_SUMS_TABLE}")
            shared = True
            cur.execute(_sums_sql(shared=shared, sparse=sparse, devices=devices), params)
        _SHARED_SEEN[organisation_id] = seen
        # The hour of each row written, as epoch seconds (an integer is the cheapest thing to
        # send back): counting them costs ~10 ms, a count through the index ~10 times that.
        cur.execute(_insert_sql(shared=shared), params)
        written = Counter(epoch for (epoch,) in cur.fetchall())
        # dropped now, not at commit: a caller may run several batches in one transaction
        cur.execute(f"DROP TABLE {_SUMS_TABLE}")
    return {hour: written.get(int(hour.timestamp()), 0) for hour in hours}


def window_insert(*, organisation_id: int, hour: datetime, now: datetime) -> int:
    """Insert one window's rollup rows (the caller deleted the old ones); returns the row count."""
    return windows_insert(organisation_id=organisation_id, hours=[hour], now=now)[hour]
