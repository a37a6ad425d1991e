"""What every figure builder shares: layout, palette, time axis, the "no data" note. The builders
themselves live with their page (overview/, fleet/, teams/, models/, carbon/, budgets/figures.py):
pure functions from a selector's DataFrame to a Plotly figure dict.

No Django, no I/O, so they are tested alone. Plain dicts rather than graph_objects: validation
would cost more than building. Times are tz-naive UTC datetime64 (never a tz-aware index: ~130x
slower to serialise, reference/performance-limits.md section 7); every axis names its unit.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd

from greenkpi.lib.periods import naive_utc, naive_utc_series

Figure = dict[str, Any]
TimeRange = tuple[datetime, datetime]

MAX_POINTS_PER_TRACE = 2_000
# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999", "#000000")
NO_DATA = "No measurements in this period"


def empty_note() -> dict[str, Any]:
    """The 'no data' text in the middle of an empty chart."""
    return {
        "text": NO_DATA,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.5,
        "font": {"size": 15},
    }


def _layout(
    *, x_title: str, y_title: str, empty: bool, x_span: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "margin": {"l": 64, "r": 16, "t": 16, "b": 56},
        "xaxis": {"title": {"text": x_title}},
        # exponentformat none: ticks read 0.002, never "2m" or "2µ" (SI prefixes on kg, kWh)
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", "exponentformat": "none"},
        # Above the plot: below it, a legend of many devices (host charts) wraps onto the x-axis
        # title. Plotly widens the top margin to fit it.
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
        "hovermode": "x unified",
        "font": {"family": "system-ui, sans-serif", "size": 13},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        **extra,
    }
    if "(UTC)" in x_title:
        # Declared, not guessed: times reach the browser as epoch milliseconds (common/charts.py).
        layout["xaxis"]["type"] = "date"
    if x_span is not None:
        layout["xaxis"]["range"] = x_span
    if empty:
        layout["annotations"] = [empty_note()]
        layout["xaxis"]["showticklabels"] = layout["yaxis"]["showticklabels"] = False
    return layout


def _span(x_range: TimeRange | None, *, daily: bool = False) -> list[str] | None:
    """The x-axis range as naive UTC ISO strings: the whole period, so a gap reads as a gap."""
    if x_range is None:
        return None
    start, end = (naive_utc(t) for t in x_range)
    if daily:  # whole bars: half a day either side of the first and the last day's midnight
        half = timedelta(hours=12)
        start = datetime.combine(start.date(), time.min) - half
        end = datetime.combine((end - timedelta(microseconds=1)).date(), time.min) + half
    return [start.isoformat(), end.isoformat()]


def _naive_utc(values: pd.Series) -> np.ndarray:
    """datetime64[ns] without a timezone, whatever the column held."""
    return naive_utc_series(values).to_numpy(dtype="datetime64[ns]")
