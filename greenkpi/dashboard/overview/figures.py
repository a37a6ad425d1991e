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


def energy_by_team_daily(frame: pd.DataFrame, *, x_range: TimeRange | None = None) -> Figure:
    """Stacked bars: energy per UTC day, one colour per team (largest consumer at the bottom)."""
    traces = []
    if len(frame):
        order = frame.groupby("team", sort=False)["energy_kwh"].sum().sort_values(ascending=False)
        # One split instead of a comparison over the whole frame per team (50 teams x a year).
        by_team = dict(list(frame.groupby("team", sort=False)))
        for i, team in enumerate(order.index):
            rows = by_team[team]
            traces.append(
                {
                    "type": "bar",
                    "name": team,
                    "x": _naive_utc(rows["day"]),
                    "y": rows["energy_kwh"].to_numpy(dtype=np.float64),
                    "marker": {"color": PALETTE[i % len(PALETTE)]},
                    "hovertemplate": "%{y:,.2f} kWh<extra>%{fullData.name}</extra>",
                }
            )
    return {
        "data": traces,
        "layout": _layout(
            x_title="Day (UTC)",
            y_title="Energy (kWh)",
            empty=not traces,
            x_span=_span(x_range, daily=True),
            barmode="stack",
        ),
    }
