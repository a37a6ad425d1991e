"""Reads behind every dashboard page, chart and CSV. Each takes a Scope (or a scoped object).

Today they aggregate raw samples in the database; when hourly rollups land (greenkpi/kpis/), only the
bodies of these functions change, never their callers. Frames carry units in column names and
tz-naive UTC times (what Plotly serialises fastest; reference/performance-limits.md section 7).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from django.conf import settings
from django.db.models import Avg, Count, F, Max, Min, OuterRef, Prefetch, Q, Subquery, Sum
from django.db.models.functions import Floor, TruncDate

from greenkpi.dashboard.periods import Period
from greenkpi.dashboard.scoping import Scope, hosts_visible
from greenkpi.dashboard.sql import EpochSeconds
from greenkpi.ingest.models import Sample, SampleShare
from greenkpi.inventory.models import CollectorToken, Device, Host, Team

J_PER_KWH = 3.6e6
SILENT_AFTER = timedelta(minutes=10)
# Rows fetched per device for a time-series chart; LTTB then draws at most 2,000 of them.
SERIES_ROWS_PER_DEVICE = 8_000
UNASSIGNED = "(no team)"

TEAM_DAILY_COLUMNS = ["day", "team_id", "team", "energy_kwh"]
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
TEAM_RUN_COLUMNS = ["model", "run", "energy_kwh", "first_window_utc", "last_window_utc"]


def team_energy_daily(
    scope: Scope, period: Period, team_ids: Collection[int] | None = None
) -> pd.DataFrame:
    """Energy per UTC day and team in kWh, for the visible teams (or the chosen subset).

    Attribution: energy a share names a team for goes to that team; the rest of every window (the
    unclaimed part, or all of it without shares) goes to the host's default team. Windows count on
    the day they start. Two GROUP BY queries; the arithmetic is done on their small results.
    """
    wanted = scope.team_ids if team_ids is None else scope.team_ids & frozenset(team_ids)
    in_org = {
        "device__host__organisation_id": scope.organisation.pk,
        "window_start__gte": period.start,
        "window_start__lt": period.end,
    }
    day = TruncDate("window_start", tzinfo=UTC)
    whole = (
        Sample.objects.filter(**in_org)
        .annotate(day=day, team_id=F("device__host__default_team_id"))
        .values("day", "team_id")
        .annotate(energy_j=Sum("energy_j"))
        .order_by()
    )
    named = (
        SampleShare.objects.filter(team_id__isnull=False, **in_org)
        .annotate(day=day, default_team_id=F("device__host__default_team_id"))
        .values("day", "team_id", "default_team_id")
        .annotate(energy_j=Sum("energy_j"))
        .order_by()
    )
    parts = [pd.DataFrame.from_records(list(whole), columns=["day", "team_id", "energy_j"])]
    shares = pd.DataFrame.from_records(
        list(named), columns=["day", "team_id", "default_team_id", "energy_j"]
    )
    if not shares.empty:
        claimed = shares[["day", "team_id", "energy_j"]]
        released = shares[["day", "default_team_id", "energy_j"]].rename(
            columns={"default_team_id": "team_id"}
        )
        released = released.assign(energy_j=-released["energy_j"])
        parts += [claimed, released]
    frame = pd.concat([p for p in parts if not p.empty]) if any(len(p) for p in parts) else None
    if frame is None:
        return pd.DataFrame(columns=TEAM_DAILY_COLUMNS)
    frame["team_id"] = frame["team_id"].astype("Int64")
    keep = frame["team_id"].isin(list(wanted))
    if scope.org_wide and team_ids is None:
        keep |= frame["team_id"].isna()  # hosts without a default team: only org-wide views
    frame = frame[keep]
    out = (
        frame.groupby(["day", "team_id"], dropna=False, as_index=False)["energy_j"]
        .sum()
        .sort_values(["day", "team_id"], na_position="last")
    )
    names = {t.pk: t.name for t in scope.teams}
    out["team"] = [UNASSIGNED if pd.isna(t) else names[int(t)] for t in out["team_id"]]
    out["day"] = pd.to_datetime(out["day"])
    out["energy_kwh"] = out.pop("energy_j") / J_PER_KWH
    return out[TEAM_DAILY_COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class Overview:
    energy_kwh: float
    avg_power_kw: float
    hosts: int
    hosts_silent: int
    devices: int


def overview(scope: Scope, period: Period, energy: pd.DataFrame) -> Overview:
    """The tiles above the overview chart; ``energy`` is team_energy_daily's frame, so they agree."""
    now = datetime.now(UTC)
    hosts = hosts_visible(scope)
    counts = hosts.aggregate(
        hosts=Count("pk"),
        silent=Count("pk", filter=Q(last_seen__isnull=True) | Q(last_seen__lt=now - SILENT_AFTER)),
    )
    devices = Device.objects.filter(host__in=hosts).count()
    energy_kwh = float(energy["energy_kwh"].sum()) if len(energy) else 0.0
    return Overview(
        energy_kwh=energy_kwh,
        avg_power_kw=energy_kwh / period.hours if period.hours else 0.0,
        hosts=counts["hosts"],
        hosts_silent=counts["silent"],
        devices=devices,
    )


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


def fleet(scope: Scope) -> list[HostHealth]:
    """Visible hosts with their site, devices and health flags, by hostname. Two queries."""
    now = datetime.now(UTC)
    hosts = (
        hosts_visible(scope)
        .select_related("site", "default_team")
        .prefetch_related(_devices_with_method())
        .order_by("hostname", "pk")
    )
    return [host_health(host, now) for host in hosts]


def host_detail(host: Host) -> HostHealth:
    """One host's health with its devices (the host itself came through scoping.host_for)."""
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

    Buckets are sized so a device yields at most SERIES_ROWS_PER_DEVICE rows (for a day of 60 s
    windows, one window per bucket); per bucket: mean power, highest peak, mean utilization.
    """
    bucket_s = max(1, math.ceil(period.seconds / SERIES_ROWS_PER_DEVICE))
    epoch = EpochSeconds("window_start")
    rows = (
        Sample.objects.filter(
            device__host=host, window_start__gte=period.start, window_start__lt=period.end
        )
        .annotate(bucket=Floor(epoch / bucket_s))
        .values("device_id", "bucket")
        .annotate(
            t=Min(epoch),
            power_w=Avg("power_avg_w"),
            power_peak_w=Max("power_peak_w"),
            util=Avg("util_busy"),
            windows=Count("window_start"),
            model=F("device__model_name"),
            uuid=F("device__uuid"),
            kind=F("device__kind"),
        )
        .values_list(
            "t", "device_id", "model", "uuid", "kind", "power_w", "power_peak_w", "util", "windows"
        )
        .order_by("device_id", "bucket")
    )
    frame = pd.DataFrame.from_records(
        list(rows),
        columns=[
            "t",
            "device_id",
            "model",
            "uuid",
            "kind",
            "power_w",
            "power_peak_w",
            "util",
            "windows",
        ],
    )
    if frame.empty:
        return pd.DataFrame(columns=HOST_SERIES_COLUMNS)
    # Epoch seconds -> tz-naive UTC datetime64: Plotly writes these ~130x faster than tz-aware.
    frame["time_utc"] = pd.to_datetime(frame["t"].round(3), unit="s")
    frame["device"] = _device_labels(frame)
    frame["util_pct"] = frame["util"] * 100.0
    return frame[HOST_SERIES_COLUMNS]


def _device_labels(frame: pd.DataFrame) -> list[str]:
    # "GPU …9c41d2e0 · NVIDIA H100": the uuid (its tail when long) tells identical models apart.
    labels = []
    for kind, uuid, model in zip(frame["kind"], frame["uuid"], frame["model"], strict=True):
        short = uuid if len(uuid) <= 24 else "…" + uuid[-8:]
        # NVML uuids already start with "GPU-": don't say GPU twice.
        name = short if uuid.upper().startswith(kind.upper()) else f"{kind.upper()} {short}"
        labels.append(f"{name} · {model}" if model else name)
    return labels


def team_energy_by_run(team: Team, period: Period) -> pd.DataFrame:
    """Energy (kWh) the team's shares name per model and run, largest first. One query."""
    rows = (
        SampleShare.objects.filter(
            team_id=team.pk, window_start__gte=period.start, window_start__lt=period.end
        )
        .values("model_key", "run_key")
        .annotate(energy_j=Sum("energy_j"), first=Min("window_start"), last=Max("window_start"))
        .order_by("-energy_j", "model_key", "run_key")
        .values_list("model_key", "run_key", "energy_j", "first", "last")
    )
    frame = pd.DataFrame.from_records(
        list(rows), columns=["model", "run", "energy_j", "first", "last"]
    )
    if frame.empty:
        return pd.DataFrame(columns=TEAM_RUN_COLUMNS)
    frame["model"] = frame["model"].replace("", "(unnamed model)")
    frame["run"] = frame["run"].replace("", "(no run)")
    frame["energy_kwh"] = frame["energy_j"] / J_PER_KWH
    frame["first_window_utc"] = pd.to_datetime(frame["first"], utc=True).dt.tz_localize(None)
    frame["last_window_utc"] = pd.to_datetime(frame["last"], utc=True).dt.tz_localize(None)
    return frame[TEAM_RUN_COLUMNS]


@dataclass(frozen=True)
class TeamTotal:
    team: Team
    energy_kwh: float


def team_totals(scope: Scope, energy: pd.DataFrame) -> list[TeamTotal]:
    """Every visible team with its energy from team_energy_daily's frame (zero when absent)."""
    sums = energy.groupby("team_id")["energy_kwh"].sum() if len(energy) else pd.Series()
    return [TeamTotal(team=t, energy_kwh=float(sums.get(t.pk, 0.0))) for t in scope.teams]


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
