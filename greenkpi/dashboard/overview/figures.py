"""Figures of the overview: energy per team and day."""

from __future__ import annotations

import numpy as np
import pandas as pd

from greenkpi.dashboard.common.figures import (
    PALETTE,
    Figure,
    TimeRange,
    _layout,
    _naive_utc,
    _span,
)


def energy_by_team_daily(
    frame: pd.DataFrame, *, x_range: TimeRange | None = None, zone: str = "UTC"
) -> Figure:
    """Stacked bars: energy per day of the organisation's ``zone``, one colour per team (largest
    consumer at the bottom)."""
    traces = []
    if len(frame):
        order = frame.groupby("team", sort=False)["energy_kwh"].sum().sort_values(ascending=False)
        # Times converted once, then each team's rows taken by position (a conversion per team
        # was half the chart's cost for 50 teams; bench/dashboard.py).
        days = _naive_utc(frame["day"])
        kwh = frame["energy_kwh"].to_numpy(dtype=np.float64)
        rows_of = frame.groupby("team", sort=False).indices
        for i, team in enumerate(order.index):
            rows = rows_of[team]
            traces.append(
                {
                    "type": "bar",
                    "name": team,
                    "x": days[rows],
                    "y": kwh[rows],
                    "marker": {"color": PALETTE[i % len(PALETTE)]},
                    "hovertemplate": "%{y:,.2f} kWh<extra>%{fullData.name}</extra>",
                }
            )
    layout = _layout(
        x_title=f"Day ({zone})",
        y_title="Energy (kWh)",
        empty=not traces,
        x_span=_span(x_range, daily=True),
        barmode="stack",
    )
    layout["xaxis"]["type"] = "date"  # local dates, as epoch ms (common/charts.py)
    return {"data": traces, "layout": layout}
