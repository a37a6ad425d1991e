"""Every chart is served twice from one frame: as Plotly JSON for the page, and as CSV.

A chart view resolves its scope, calls its selector once and hands the frame either to its figure
builder or to the CSV writer, so the file a user downloads is exactly what the chart drew from.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import numpy as np
import orjson
import pandas as pd
from django.http import HttpResponse

from greenkpi.dashboard.common.figures import Figure
from greenkpi.kpis import labels
from greenkpi.lib.periods import Period, Zone, day_start, naive_utc, zone_label

FORMATS = ("json", "csv")


@dataclass(frozen=True)
class Chart:
    """How one chart turns its selector's frame into a figure, and which columns its CSV has."""

    key: str
    build: Callable[..., Figure]
    csv_columns: tuple[str, ...]
    time_axis: bool = True  # drawn over the whole period (x_range), so gaps show as gaps
    # Columns holding the read layer's day buckets (local dates of the organisation): the CSV
    # writes them as the UTC instants those days start at. Only when ``day_grain(period)``.
    local_days: tuple[str, ...] = ()
    day_grain: Callable[[Period], bool] = lambda period: True


def _typed_array(values: np.ndarray) -> object:
    """Plotly.js's base64 typed-array form: ~16 bytes a point instead of ~45 as JSON text.

    Times become epoch milliseconds (the builders declare their time axes as dates); other
    numbers float32, which keeps 7 significant digits, more than any watt or percent reading.
    """
    if values.dtype.kind == "M":
        millis = values.astype("datetime64[ms]").astype(np.int64).astype("<f8")
        return {"dtype": "f8", "bdata": base64.b64encode(millis.tobytes()).decode()}
    if values.dtype.kind in "fiu":
        return {"dtype": "f4", "bdata": base64.b64encode(values.astype("<f4").tobytes()).decode()}
    return values.tolist()


def encode_figure(figure: Figure) -> bytes:
    """The figure as compact JSON for Plotly.js (builders keep plain numpy arrays, for tests)."""
    data = [
        {k: _typed_array(v) if isinstance(v, np.ndarray) else v for k, v in trace.items()}
        for trace in figure["data"]
    ]
    return orjson.dumps({**figure, "data": data}, option=orjson.OPT_SERIALIZE_NUMPY)


def figure_response(figure: Figure) -> HttpResponse:
    return HttpResponse(encode_figure(figure), content_type="application/json")


# A cell starting with one of these is run as a formula by spreadsheets; model and run names come
# from collectors, so a hostile job name must not execute on a sustainability officer's laptop.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _defuse(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def local_days_as_utc(frame: pd.DataFrame, columns: tuple[str, ...], tz: Zone) -> pd.DataFrame:
    """Day buckets (naive local midnights of ``tz``, as the read layer gives them) as the naive
    UTC instants those local days start at: Los Angeles' 1 November is 2026-11-01T07:00:00Z. For
    UTC the same values; either way the CSV's ``Z`` is then true."""
    if not columns or zone_label(tz) == "UTC":
        return frame
    out = frame.copy()
    for column in columns:
        days = pd.to_datetime(out[column])
        starts = {d: naive_utc(day_start(d.date(), tz)) for d in days.dropna().unique()}
        out[column] = pd.to_datetime(days.map(starts))
    return out


def local_day_range(period: Period) -> tuple[datetime, datetime]:
    """The x range of a chart of local-day bars: its first and end day's local midnights, written
    as the naive dates the read layer's day buckets carry (labelled UTC so they pass through
    unchanged). For a UTC organisation the period itself."""
    if zone_label(period.tz) == "UTC":
        return period.start, period.end
    first, end = period.first_day, period.last_day + timedelta(days=1)
    return (datetime.combine(first, time.min, UTC), datetime.combine(end, time.min, UTC))


def csv_response(frame: pd.DataFrame, columns: tuple[str, ...], filename: str) -> HttpResponse:
    out = frame.loc[:, list(columns)].copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            # Names repeat (a team per day of a year): defuse each distinct value once.
            out[column] = out[column].map({v: _defuse(v) for v in out[column].unique()})
    # The carbon quantities under the names the pages use ("Scope 2 location-based (kgCO2e)").
    out = out.rename(columns=labels.CSV_HEADERS)
    # ISO 8601 with an explicit Z: spreadsheets and scripts must not guess the timezone.
    body = out.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ", float_format="%.6g")
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def respond(
    chart: Chart, frame: pd.DataFrame, fmt: str, filename_stem: str, period: Period
) -> HttpResponse:
    if fmt == "csv":
        days = chart.local_days if chart.day_grain(period) else ()
        frame = local_days_as_utc(frame, days, period.tz)
        return csv_response(frame, chart.csv_columns, f"{filename_stem}.csv")
    if chart.time_axis and chart.local_days:
        # Bars on the organisation's local days: the axis spans those days and says the zone.
        x_range = local_day_range(period)
        return figure_response(chart.build(frame, x_range=x_range, zone=period.zone_name))
    if chart.time_axis:
        return figure_response(chart.build(frame, x_range=(period.start, period.end)))
    return figure_response(chart.build(frame))
