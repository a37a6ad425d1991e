"""Writes to carbon data: import hourly grid intensity from Electricity Maps' CSV export."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from greenkpi.carbon.models import GridIntensityHourly, ResidualMix
from greenkpi.lib.periods import hour_floor

# Electricity Maps has renamed its export columns over time; each field lists the names seen in
# exports (matched case-insensitively, "₂" or "2"). Only the time and lifecycle intensity are needed.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "time": ("datetime (utc)", "datetime", "date_time_utc"),
    "zone": ("zone id", "zone_id"),
    "lifecycle": (
        "carbon intensity gco2eq/kwh (lca)",
        "carbon intensity gco2eq/kwh (life cycle)",
        "carbon intensity gco2eq/kwh (lifecycle)",
    ),
    "direct": ("carbon intensity gco2eq/kwh (direct)",),
    "renewable_pct": ("renewable percentage", "renewable energy percentage (re%)"),
    "cfe_pct": ("low carbon percentage", "carbon-free energy percentage (cfe%)"),
    "source": ("data source",),
    "estimated": ("data estimated",),
}
MAX_ERRORS = 20


class ImportFailed(ValueError):
    """The file is not an importable export; ``errors`` says where (line numbers are 1-based)."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors[:5]))


@dataclass
class ImportResult:
    rows_read: int = 0
    hours_written: int = 0
    zones: set[str] = field(default_factory=set)
    first_hour: datetime | None = None
    last_hour: datetime | None = None


def grid_hourly_import_csv(
    *, text: str, zone: str | None = None, source: str = "Electricity Maps CSV export"
) -> ImportResult:
    """Parse an Electricity Maps hourly (or finer) export and upsert one row per zone and hour.

    Finer rows (e.g. 5-minute exports) are averaged into their hour. ``zone`` overrides or supplies
    the zone when the file has no "Zone Id" column. All rows are written or none.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed(["the file is empty"]) from None
    columns = _columns(header)
    missing = [name for name in ("time", "lifecycle") if name not in columns]
    if missing or ("zone" not in columns and not zone):
        wanted = [COLUMN_ALIASES[m][0] for m in missing] + (
            [] if zone or "zone" in columns else ["zone id (or --zone)"]
        )
        raise ImportFailed([f"line 1: missing column(s): {', '.join(wanted)}"])
    buckets: dict[tuple[str, datetime], list[dict[str, object]]] = defaultdict(list)
    errors: list[str] = []
    result = ImportResult()
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        result.rows_read += 1
        parsed = _parse_row(row, columns, zone, line, errors)
        if parsed is not None:
            hour = parsed.pop("hour")
            assert isinstance(hour, datetime)
            buckets[(str(parsed.pop("zone")), hour)].append(parsed)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise ImportFailed(errors)
    if not buckets:
        raise ImportFailed(["no data rows"])
    now = timezone.now()
    objs = [_hour_row(zone_, hour, rows, source, now) for (zone_, hour), rows in buckets.items()]
    with transaction.atomic():
        GridIntensityHourly.objects.bulk_create(
            objs,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["zone", "hour"],
            update_fields=[
                "intensity_lifecycle_g_per_kwh",
                "intensity_direct_g_per_kwh",
                "renewable_share",
                "carbon_free_share",
                "estimated",
                "source",
                "imported_at",
            ],
        )
    result.hours_written = len(objs)
    result.zones = {z for z, _ in buckets}
    hours = [h for _, h in buckets]
    result.first_hour, result.last_hour = min(hours), max(hours)
    return result


def _columns(header: list[str]) -> dict[str, int]:
    normalised = [h.strip().lower().replace("₂", "2") for h in header]
    found: dict[str, int] = {}
    for name, aliases in COLUMN_ALIASES.items():
        for i, title in enumerate(normalised):
            if title in aliases:
                found[name] = i
                break
    return found


def _parse_row(
    row: list[str], columns: dict[str, int], zone: str | None, line: int, errors: list[str]
) -> dict[str, object] | None:
    def cell(name: str) -> str:
        i = columns.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    moment = _parse_time(cell("time"))
    if moment is None:
        errors.append(f"line {line}: {cell('time')[:40]!r} is not a date-time")
        return None
    row_zone = (zone or cell("zone")).strip().upper()
    if not row_zone or len(row_zone) > 32:
        errors.append(f"line {line}: no zone id")
        return None
    lifecycle = _number(cell("lifecycle"))
    if lifecycle is None or lifecycle < 0:
        errors.append(f"line {line}: lifecycle intensity {cell('lifecycle')[:20]!r} is not >= 0")
        return None
    values: dict[str, object] = {
        "zone": row_zone,
        "hour": hour_floor(moment),
        "lifecycle": lifecycle,
        "direct": _number(cell("direct")),
    }
    for name in ("renewable_pct", "cfe_pct"):
        pct = _number(cell(name))
        if pct is not None and not 0 <= pct <= 100:
            errors.append(f"line {line}: {name} {pct} is outside 0..100")
            return None
        values[name] = None if pct is None else pct / 100.0
    values["estimated"] = cell("estimated").lower() in ("true", "1", "yes")
    values["source"] = cell("source")[:150]
    return values


def _hour_row(
    zone: str, hour: datetime, rows: list[dict[str, object]], source: str, now: datetime
) -> GridIntensityHourly:
    detail = next((str(r["source"]) for r in rows if r["source"]), "")
    return GridIntensityHourly(
        zone=zone,
        hour=hour,
        intensity_lifecycle_g_per_kwh=_mean(r["lifecycle"] for r in rows) or 0.0,
        intensity_direct_g_per_kwh=_mean(r["direct"] for r in rows),
        renewable_share=_mean(r["renewable_pct"] for r in rows),
        carbon_free_share=_mean(r["cfe_pct"] for r in rows),
        estimated=any(bool(r["estimated"]) for r in rows),
        source=f"{source}: {detail}"[:200] if detail else source[:200],
        imported_at=now,
    )


def _mean(values: Iterable[object]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return sum(numbers) / len(numbers) if numbers else None


def _number(text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_time(text: str) -> datetime | None:
    """Exports write "2024-01-01 00:00:00" (UTC, no offset) or ISO 8601 with Z/offset."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)  # the column is "Datetime (UTC)"
    return moment.astimezone(UTC)


RESIDUAL_COLUMNS = ("zone", "year", "intensity_g_per_kwh", "source")


def residual_mix_import_csv(*, text: str) -> list[ResidualMix]:
    """Upsert residual mixes from a CSV with columns zone, year, intensity_g_per_kwh, source and
    optionally licence (e.g. transcribed from AIB's European Residual Mixes): all rows or none,
    the first errors by line number (line 1 is the header)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [c.strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in RESIDUAL_COLUMNS if c not in header]
    if missing:
        raise ImportFailed([f"line 1: missing column(s) {', '.join(missing)}"])
    errors: list[str] = []
    rows: dict[tuple[str, int], ResidualMix] = {}
    for line, raw in enumerate(reader, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        try:
            zone = row["zone"].upper()
            year = int(row["year"])
            grams = float(row["intensity_g_per_kwh"])
            if not zone or len(zone) > 32:
                raise ValueError("zone must be 1 to 32 characters")
            if not 2000 <= year <= 2100:
                raise ValueError("year must be from 2000 to 2100")
            if not math.isfinite(grams) or not 0 <= grams < 5000:
                raise ValueError("intensity_g_per_kwh must be from 0 to 5000")
            if not row["source"]:
                raise ValueError("source is required (publisher and edition)")
        except (ValueError, KeyError) as exc:
            errors.append(f"line {line}: {exc}")
            if len(errors) >= MAX_ERRORS:
                break
            continue
        rows[(zone, year)] = ResidualMix(
            zone=zone,
            year=year,
            intensity_g_per_kwh=grams,
            source=row["source"][:200],
            licence=row.get("licence", "")[:200],
        )
    if errors:
        raise ImportFailed(errors)
    if not rows:
        raise ImportFailed(["the file has no rows"])
    with transaction.atomic():
        for mix in rows.values():
            ResidualMix.objects.update_or_create(
                zone=mix.zone,
                year=mix.year,
                defaults={
                    "intensity_g_per_kwh": mix.intensity_g_per_kwh,
                    "source": mix.source,
                    "licence": mix.licence,
                    "imported_at": timezone.now(),
                },
            )
    return list(rows.values())


def site_periods_mark_dirty(
    *, site_id: int, periods: Iterable[tuple[datetime, datetime | None]]
) -> int:
    """After a site's contractual instrument or tariff was added, changed or deleted: mark dirty
    the rollup windows that used the site in those periods (an open period: up to now), so the
    market-based figures (and contracted volumes) and costs are recomputed."""
    from greenkpi.kpis.dirty import windows_mark_dirty_for_sites  # kpis depends on carbon

    now = timezone.now()
    return sum(
        windows_mark_dirty_for_sites(site_ids=[site_id], start=start, end=end or now)
        for start, end in periods
    )
