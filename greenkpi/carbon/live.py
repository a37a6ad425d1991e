"""Live grid intensity from the Electricity Maps API (v3), optional: set ELECTRICITYMAPS_API_KEY.

For every zone of the sites, ``carbon-intensity/history`` (the last 24 hours) and ``/latest`` are
fetched, averaged into UTC hours and upserted into GridIntensityHourly with the provider recorded
as the source; the rollup windows of those hours are then marked dirty. Responses are cached
briefly (a second run within the TTL costs no request), 429 and 5xx are retried with backoff
(Retry-After honoured, capped), every read is bounded in time and size.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from greenkpi.carbon.models import GridIntensityHourly
from greenkpi.carbon.services import _parse_time
from greenkpi.inventory.models import Site
from greenkpi.lib.periods import hour_floor

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.electricitymap.org/v3"  # the API's documented base URL
MAX_RESPONSE_BYTES = 2 * 1024 * 1024  # 24 hourly points are ~5 kB; anything near this is wrong
TIMEOUT_S = 15.0
ATTEMPTS = 4
BACKOFF_S = 2.0
BACKOFF_MAX_S = 60.0
CACHE_TTL_S = 10 * 60  # the API updates hourly; the task runs hourly
ENDPOINTS = ("carbon-intensity/history", "carbon-intensity/latest")
# Every live row says where it came from and which bases the provider gave for the hour.
SOURCE = "Electricity Maps API v3 (live"  # + ", lifecycle only)" or ", lifecycle + direct)"


class ProviderError(Exception):
    """The API could not be read (after retries) or answered something unusable."""


@dataclass
class FetchResult:
    zones: set[str] = field(default_factory=set)
    hours_written: int = 0
    windows_marked: int = 0
    errors: list[str] = field(default_factory=list)


def api_get(
    endpoint: str,
    zone: str,
    *,
    base_url: str,
    key: str,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """GET ``{base_url}/{endpoint}?zone=...`` with the ``auth-token`` header; retries 429/5xx."""
    url = f"{base_url.rstrip('/')}/{endpoint}?{urllib.parse.urlencode({'zone': zone})}"
    request = urllib.request.Request(url, headers={"auth-token": key, "Accept": "application/json"})
    delay = BACKOFF_S
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                body = response.read(MAX_RESPONSE_BYTES + 1)
            if len(body) > MAX_RESPONSE_BYTES:
                raise ProviderError(f"{endpoint} {zone}: response over {MAX_RESPONSE_BYTES} bytes")
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ProviderError(f"{endpoint} {zone}: not a JSON object")
            return data
        except urllib.error.HTTPError as exc:
            retryable = exc.code == 429 or exc.code >= 500
            if not retryable or attempt == ATTEMPTS:
                raise ProviderError(f"{endpoint} {zone}: HTTP {exc.code}") from exc
            wait = _retry_after(exc.headers.get("Retry-After")) or delay
        except (urllib.error.URLError, TimeoutError) as exc:
            if attempt == ATTEMPTS:
                raise ProviderError(f"{endpoint} {zone}: {exc}") from exc
            wait = delay
        except json.JSONDecodeError as exc:
            raise ProviderError(f"{endpoint} {zone}: invalid JSON") from exc
        sleep(min(wait, BACKOFF_MAX_S))
        delay = min(delay * 2, BACKOFF_MAX_S)
    raise AssertionError("unreachable")


def points(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The data points of a history (``{"history": [...]}``) or latest (one point) response."""
    history = data.get("history")
    if isinstance(history, list):
        return [p for p in history if isinstance(p, dict)]
    return [data]


def hourly_rows(
    zone: str, pts: Iterable[dict[str, Any]], now: datetime
) -> list[GridIntensityHourly]:
    """Points averaged into UTC hours, each basis apart as the provider states it
    (``emissionFactorType``: lifecycle, the API's default, or direct). An hour needs a lifecycle
    figure; its direct figure is the direct points' average, else none (Scope 2 then takes the
    lifecycle figure and says so, ``hr-lca``), so a stored row never pairs this fetch's lifecycle
    figure with a direct one from elsewhere. The source names the bases the hour had."""
    buckets: dict[datetime, dict[str, list[tuple[float, bool]]]] = defaultdict(
        lambda: {"lifecycle": [], "direct": []}
    )
    for p in pts:
        value, moment = p.get("carbonIntensity"), _parse_time(str(p.get("datetime", "")))
        basis = p.get("emissionFactorType") or "lifecycle"
        if moment is None or basis not in ("lifecycle", "direct"):
            continue
        if not isinstance(value, int | float) or value < 0:
            continue
        buckets[hour_floor(moment)][basis].append((float(value), bool(p.get("isEstimated"))))
    rows = []
    for hour, bases in buckets.items():
        lifecycle, direct = bases["lifecycle"], bases["direct"]
        if not lifecycle:
            continue
        rows.append(
            GridIntensityHourly(
                zone=zone,
                hour=hour,
                intensity_lifecycle_g_per_kwh=sum(v for v, _ in lifecycle) / len(lifecycle),
                intensity_direct_g_per_kwh=(
                    sum(v for v, _ in direct) / len(direct) if direct else None
                ),
                estimated=any(e for _, e in lifecycle + direct),
                source=f"{SOURCE}, {'lifecycle + direct' if direct else 'lifecycle only'})",
                imported_at=now,
            )
        )
    return rows


def site_zones() -> list[str]:
    zones = Site.objects.exclude(grid_zone="").values_list("grid_zone", flat=True).distinct()
    return sorted({z.strip().upper() for z in zones if z.strip()})


def fetch_live(
    *,
    zones: Iterable[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    mark_dirty: bool = True,
) -> FetchResult:
    """Fetch, store and mark dirty; does nothing without ELECTRICITYMAPS_API_KEY. A zone that
    fails is reported in ``errors`` and the others still go through."""
    result = FetchResult()
    key = settings.ELECTRICITYMAPS_API_KEY
    if not key:
        return result
    base_url = settings.ELECTRICITYMAPS_URL or DEFAULT_URL
    now = timezone.now()
    for zone in sorted({z.strip().upper() for z in (zones or site_zones()) if z.strip()}):
        pts: list[dict[str, Any]] = []
        try:
            for endpoint in ENDPOINTS:
                cache_key = f"carbon:emaps:{endpoint}:{zone}"
                data = cache.get(cache_key)
                if data is None:
                    data = api_get(endpoint, zone, base_url=base_url, key=key, sleep=sleep)
                    cache.set(cache_key, data, CACHE_TTL_S)
                pts += points(data)
        except ProviderError as exc:
            log.warning("Electricity Maps: %s", exc)
            result.errors.append(str(exc))
            continue
        rows = hourly_rows(zone, pts, now)
        if not rows:
            continue
        hourly_store(rows)
        result.zones.add(zone)
        result.hours_written += len(rows)
        if mark_dirty:
            # imported here: kpis depends on carbon, not the other way at import time
            from greenkpi.kpis.dirty import windows_mark_dirty_for_zones

            hours = [r.hour for r in rows]
            result.windows_marked += windows_mark_dirty_for_zones(
                zones=[zone], start=min(hours), end=max(hours)
            )
    return result


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def hourly_store(rows: list[GridIntensityHourly]) -> None:
    """Insert the hours, or replace a stored hour of the zone with the fetched figures."""
    GridIntensityHourly.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["zone", "hour"],
        update_fields=[
            "intensity_lifecycle_g_per_kwh",
            "intensity_direct_g_per_kwh",
            "estimated",
            "source",
            "imported_at",
        ],
    )
