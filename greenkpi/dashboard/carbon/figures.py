"""Figure builders of the carbon pages: pure functions DataFrame -> Plotly dict (no Django).

Every figure carries a caption saying which grid intensity it rests on (an imported hourly series or the
annual fallback, as shares of facility kWh) and the methodology version, so a chart shown or
exported alone still says how honest it is.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from greenkpi.dashboard.common.figures import PALETTE, Figure, TimeRange, _naive_utc, empty_note
from greenkpi.kpis import labels
from greenkpi.lib.periods import naive_utc

LOCATION_COLOUR = "#0072B2"
BEST_COLOUR = "#009E73"
OTHER_COLOUR = "#999999"


def _caption(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": 0,
        "y": 1.0,
        "yanchor": "bottom",
        "xanchor": "left",
        "font": {"size": 11, "color": "#555"},
    }


def _span(x_range: TimeRange | None, grain: str) -> list[str] | None:
    if x_range is None:
        return None
    start, end = (naive_utc(t) for t in x_range)
    pad = timedelta(days=15) if grain == "month" else timedelta(hours=12)
    first = start.replace(day=1) if grain == "month" else start
    first = first.replace(hour=0, minute=0, second=0, microsecond=0)
    last = (end - timedelta(microseconds=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "month":
        last = last.replace(day=1)
    return [(first - pad).isoformat(), (last + pad).isoformat()]


def co2e_by_team(
    frame: pd.DataFrame,
    *,
    x_range: TimeRange | None = None,
    grain: str = "day",
    caption: str = "",
    zone: str = "UTC",
) -> Figure:
    """Two panels side by side, one stacked bar per day (or month) and team: operational CO2e
    location-based (left) and market-based (right), on one shared y axis so they compare.
    In tonnes once a stacked bar reaches 1,000 kg (the CSV stays in kg)."""
    unit = "kg"
    if len(frame):
        tallest = frame.groupby("period_utc")[
            ["operational_location_kgco2e", "operational_market_kgco2e"]
        ].sum()
        if float(tallest.to_numpy().max()) >= 1000:
            unit = "t"
    scale = 1000.0 if unit == "t" else 1.0
    traces: list[dict[str, Any]] = []
    if len(frame):
        order = (
            frame.groupby("team", sort=False)["operational_location_kgco2e"]
            .sum()
            .sort_values(ascending=False)
        )
        for i, team in enumerate(order.index):
            rows = frame[frame["team"] == team]
            colour = PALETTE[i % len(PALETTE)]
            for column, suffix, show in (
                ("operational_location_kgco2e", "", True),
                ("operational_market_kgco2e", "2", False),
            ):
                traces.append(
                    {
                        "type": "bar",
                        "name": team,
                        "legendgroup": team,
                        "showlegend": show,
                        "xaxis": f"x{suffix}",
                        "yaxis": f"y{suffix}",
                        "x": _naive_utc(rows["period_utc"]),
                        "y": rows[column].to_numpy(dtype=np.float64) / scale,
                        "marker": {"color": colour},
                        "hovertemplate": f"%{{y:,.3f}} {unit}CO2e<extra>%{{fullData.name}}</extra>",
                    }
                )
    x_title = f"Month ({zone})" if grain == "month" else f"Day ({zone})"
    span = _span(x_range, grain)
    axis: dict[str, Any] = {"type": "date"}
    if span:
        axis["range"] = span
    layout: dict[str, Any] = {
        # Room below for both axis titles (the legend is on the right).
        "margin": {"l": 64, "r": 16, "t": 48, "b": 64},
        "barmode": "stack",
        "xaxis": {
            **axis,
            "domain": [0, 0.48],
            "title": {"text": f"{x_title}: {labels.SCOPE2_LOCATION.name}"},
        },
        "xaxis2": {
            **axis,
            "domain": [0.52, 1],
            "anchor": "y2",
            "title": {"text": f"{x_title}: {labels.SCOPE2_MARKET.name}"},
        },
        "yaxis": {"title": {"text": f"CO2e, Scope 2 ({unit}CO2e)"}, "rangemode": "tozero"},
        "yaxis2": {"anchor": "x2", "matches": "y", "showticklabels": False},
        # Right of the plots: below them it ran into the location-based axis title.
        "legend": {"orientation": "v", "x": 1.01, "xanchor": "left", "y": 1, "yanchor": "top"},
        "hovermode": "closest",
        "font": {"family": "system-ui, sans-serif", "size": 13},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "annotations": [_caption(caption)] + ([] if traces else [empty_note()]),
    }
    return {"data": traces, "layout": layout}


def grid_profile(frame: pd.DataFrame, *, caption: str = "") -> Figure:
    """Mean grid intensity per UTC hour of day, the cleanest hours in green."""
    traces: list[dict[str, Any]] = []
    if len(frame):
        colours = [BEST_COLOUR if best else OTHER_COLOUR for best in frame["best"]]
        traces.append(
            {
                "type": "bar",
                "name": "Mean intensity",
                "x": frame["hour_utc"].to_numpy(dtype=np.float64),
                "y": frame["mean_g_per_kwh"].to_numpy(dtype=np.float64),
                "marker": {"color": colours},
                "hovertemplate": "%{x}:00 UTC: %{y:,.0f} gCO2e/kWh<extra></extra>",
            }
        )
    layout: dict[str, Any] = {
        "margin": {"l": 64, "r": 16, "t": 40, "b": 56},
        "xaxis": {"title": {"text": "Hour of day (UTC)"}, "dtick": 2, "range": [-0.5, 23.5]},
        "yaxis": {"title": {"text": "Grid intensity (gCO2e/kWh)"}, "rangemode": "tozero"},
        "showlegend": False,
        "hovermode": "closest",
        "font": {"family": "system-ui, sans-serif", "size": 13},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "annotations": [_caption(caption)] + ([] if traces else [empty_note()]),
    }
    return {"data": traces, "layout": layout}
