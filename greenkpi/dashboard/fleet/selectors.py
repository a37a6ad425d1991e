"""Reads behind the fleet and host pages: host health, devices, and the power/utilization series.

The series read raw windows up to RAW_SERIES_MAX (minute resolution, bucketed in the database by
one (device, time) key probe per device) and HourlyRollup beyond it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Avg, Count, Max, Min, OuterRef, Prefetch, Subquery
from django.db.models.functions import Floor

from greenkpi.ingest.models import Sample
from greenkpi.inventory.access import Scope
from greenkpi.inventory.models import CollectorToken, Device, Host
from greenkpi.kpis.read import sums as read
from greenkpi.kpis.read.hosts import hosts_visible
from greenkpi.kpis.read.sql import EpochSeconds, fetch_rows
from greenkpi.lib.periods import Period

J_PER_KWH = 3.6e6
SILENT_AFTER = timedelta(minutes=10)
# Rows fetched per device for a time-series chart; LTTB then draws at most 2,000 of them. 4,000
# keeps a day at one 60 s window per bucket and a week at ~3 (bench/dashboard.py: 8,000 cost 2x).
SERIES_ROWS_PER_DEVICE = 4_000
# Host charts read raw windows up to this range (minute resolution), HourlyRollup beyond it.
RAW_SERIES_MAX = timedelta(days=7)
FLEET_PAGE_SIZE = 50
HOST_SERIES_COLUMNS = [
    "time_utc",
    "device_id",
    "device",
    "kind",
    "power_w",
    "power_peak_w",
    "util_pct",
    "windows",
]


@dataclass(frozen=True)
class DeviceGroup:
    """Identical devices of one host, e.g. 4 x GPU NVIDIA H100 measured by counter."""

    count: int
    kind: str
    model: str
    method: str


@dataclass(frozen=True)
class HostHealth:
    """One fleet row: the host, its devices (each with ``last_method``) and what needs attention."""

    host: Host
    devices: list[Device]
    silent: bool
    skewed: bool
    error_count: int

    @property
    def device_groups(self) -> list[DeviceGroup]:
        counts: dict[tuple[str, str, str], int] = {}
        for d in self.devices:
            key = (
                d.get_kind_display(),
                d.model_name or d.uuid,
                getattr(d, "last_method", "") or "",
            )
            counts[key] = counts.get(key, 0) + 1
        return [DeviceGroup(n, kind, model, method) for (kind, model, method), n in counts.items()]


def _devices_with_method() -> Prefetch:
    # The method of each device's newest window: one index probe per device on (device, start).
    newest = Sample.objects.filter(device_id=OuterRef("pk")).order_by("-window_start")
    return Prefetch(
        "devices",
        queryset=Device.objects.annotate(
            last_method=Subquery(newest.values("method")[:1])
        ).order_by("kind", "uuid"),
        to_attr="device_list",
    )


def host_health(host: Host, now: datetime) -> HostHealth:
    skew = host.clock_skew_s
    return HostHealth(
        host=host,
        devices=list(getattr(host, "device_list", [])),
        silent=host.last_seen is None or now - host.last_seen > SILENT_AFTER,
        skewed=skew is not None and abs(skew) > settings.CLOCK_SKEW_WARN_S,
        error_count=len(host.source_errors or []),
    )


@dataclass(frozen=True)
class FleetPage:
    """One page of the fleet: its hosts' health rows and the page (number, count, neighbours)."""

    hosts: list[HostHealth]
    page: Page


def fleet(scope: Scope, page: int | str | None = 1) -> FleetPage:
    """Visible hosts with their site, devices and health flags, by hostname, FLEET_PAGE_SIZE per
    page. Three queries: count, the page's hosts, their devices (with their newest method).

    Paged because a row costs ~1 ms (template, plus an index probe per device for its newest
    method): 250 hosts were ~200 ms and 100 still ~130 ms on the bench box (bench/dashboard.py).
    """
    now = datetime.now(UTC)
    hosts = (
        hosts_visible(scope)
        .select_related("site", "default_team")
        .prefetch_related(_devices_with_method())
        .order_by("hostname", "pk")
    )
    current = Paginator(hosts, FLEET_PAGE_SIZE).get_page(page)
    return FleetPage(hosts=[host_health(host, now) for host in current], page=current)


def host_detail(host: Host) -> HostHealth:
    """One host's health with its devices (the host itself came through kpis.read.hosts.host_for)."""
    devices = list(
        Device.objects.filter(host=host)
        .annotate(
            last_method=Subquery(
                Sample.objects.filter(device_id=OuterRef("pk"))
                .order_by("-window_start")
                .values("method")[:1]
            )
        )
        .order_by("kind", "uuid")
    )
    host.device_list = devices  # type: ignore[attr-defined]
    return host_health(host, datetime.now(UTC))


def host_series(host: Host, period: Period) -> pd.DataFrame:
    """Power (W) and busy fraction (%) per device over the period, in time buckets.

    Up to RAW_SERIES_MAX (7 days) from the raw windows, where minute resolution matters: buckets
    are sized so a device yields at most SERIES_ROWS_PER_DEVICE rows (for a day of 60 s windows,
    one window per bucket); per bucket: mean power, highest peak, mean utilization. Longer ranges
    read HourlyRollup (host_series_hourly).
    """
    if period.end - period.start > RAW_SERIES_MAX:
        return host_series_hourly(host, period)
    bucket_s = max(1, math.ceil(period.seconds / SERIES_ROWS_PER_DEVICE))
    epoch = EpochSeconds("window_start")
    devices = _devices(host)
    rows = (
        # By device id (the (device, window_start) key), labels from the devices' own small
        # query: grouping by the device's strings too made the big query slower, its rows heavier.
        Sample.objects.filter(
            device_id__in=list(devices["device_id"]),
            window_start__gte=period.start,
            window_start__lt=period.end,
        )
        .annotate(bucket=Floor(epoch / bucket_s))
        .values("device_id", "bucket")
        .annotate(
            t=Min(epoch),
            power_w=Avg("power_avg_w"),
            power_peak_w=Max("power_peak_w"),
            util=Avg("util_busy"),
            windows=Count("window_start"),
        )
        .values_list("t", "device_id", "power_w", "power_peak_w", "util", "windows")
        # Unordered: numpy sorts the ~28 k buckets of a week in a millisecond, the database's
        # sort after its hash aggregate cost ~15 % of the query (bench/dashboard.py).
        .order_by()
    )
    # Plain numbers straight from the cursor: Django's per-value converters cost a third of the
    # request on a week (~28 k buckets; bench/dashboard.py). One float array rather than
    # DataFrame.from_records, which converts each column of Python objects: ~16 against ~25 ms
    # for a week's 30 k buckets.
    found = fetch_rows(rows)
    if not found:
        return pd.DataFrame(columns=HOST_SERIES_COLUMNS)
    frame = pd.DataFrame(
        np.array(found, dtype="float64"),
        columns=["t", "device_id", "power_w", "power_peak_w", "util", "windows"],
    ).astype({"device_id": "int64", "windows": "int64"})
    frame = frame.sort_values(["device_id", "t"], kind="stable", ignore_index=True)
    frame = frame.merge(devices, on="device_id", how="left")
    # Epoch seconds -> tz-naive UTC datetime64: Plotly writes these ~130x faster than tz-aware.
    frame["time_utc"] = pd.to_datetime(frame["t"].round(3), unit="s")
    frame["util_pct"] = frame["util"] * 100.0
    return frame[HOST_SERIES_COLUMNS]


def host_series_hourly(host: Host, period: Period) -> pd.DataFrame:
    """Hourly power and busy fraction per device from HourlyRollup (one GROUP BY over its owners).

    power_w = energy / measured seconds (the rollup's covered_s summed over owners is the measured
    time); util_pct = busy GPU-hours / GPU-hours with a busy reading (empty for non-GPU devices);
    power_peak_w is not kept by rollups (empty); ``windows`` counts the hour's sample windows.
    """
    # Through the read layer (host keys: HourlyRollup, one GROUP BY); PostgreSQL takes the
    # (host, hour) index and filters the organisation on it (bench/dashboard.py).
    frame = read.sums(
        organisation_id=host.organisation_id,
        start=period.start,
        end=period.end,
        columns=["energy_kwh", "covered_s", "busy_gpu_h", "util_known_gpu_h", "samples"],
        by=["device_id"],
        where={"host_id": [host.pk]},
        grain="hour",
    ).rename(
        columns={
            "energy_kwh": "kwh",
            "covered_s": "seconds",
            "busy_gpu_h": "busy",
            "util_known_gpu_h": "known",
            "samples": "windows",
        }
    )
    if frame.empty:
        return pd.DataFrame(columns=HOST_SERIES_COLUMNS)
    frame["device_id"] = frame["device_id"].astype("int64")
    frame = frame.merge(_devices(host), on="device_id", how="left")
    frame = frame.sort_values(["device_id", "bucket_utc"], kind="stable")
    frame["time_utc"] = frame["bucket_utc"]
    seconds = frame["seconds"].where(frame["seconds"] > 0)
    frame["power_w"] = frame["kwh"] * J_PER_KWH / seconds
    frame["power_peak_w"] = float("nan")
    frame["util_pct"] = frame["busy"] / frame["known"].where(frame["known"] > 0) * 100.0
    return frame[HOST_SERIES_COLUMNS]


def _devices(host: Host) -> pd.DataFrame:
    """The host's devices: device_id, kind and a readable label (one small query)."""
    devices = pd.DataFrame.from_records(
        list(Device.objects.filter(host=host).values_list("pk", "model_name", "uuid", "kind")),
        columns=["device_id", "model", "uuid", "kind"],
    )
    devices["device"] = _device_labels(devices)
    return devices[["device_id", "kind", "device"]]


def _device_labels(frame: pd.DataFrame) -> list[str]:
    # "GPU …9c41d2e0 · NVIDIA H100": the uuid (its tail when long) tells identical models apart.
    labels = []
    for kind, uuid, model in zip(frame["kind"], frame["uuid"], frame["model"], strict=True):
        short = uuid if len(uuid) <= 24 else "…" + uuid[-8:]
        # NVML uuids already start with "GPU-": don't say GPU twice.
        name = short if uuid.upper().startswith(kind.upper()) else f"{kind.upper()} {short}"
        labels.append(f"{name} · {model}" if model else name)
    return labels


def tokens_visible(scope: Scope) -> list[CollectorToken]:
    """Collector tokens the user may see: all of the organisation's for its managers, else those
    whose default team they manage; empty for viewers."""
    if not scope.can_manage_tokens:
        return []
    tokens = CollectorToken.objects.filter(organisation=scope.organisation).select_related(
        "default_team", "created_by"
    )
    if not scope.manages_org:
        tokens = tokens.filter(default_team_id__in=list(scope.managed_team_ids))
    return list(tokens.order_by("-created_at", "-pk"))
