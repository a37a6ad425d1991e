"""Figures of the team pages: energy per model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from greenkpi.dashboard.common.figures import (
    PALETTE,
    Figure,
    _layout,
)


def team_energy_by_model(frame: pd.DataFrame) -> Figure:
    """Horizontal bars: energy per model over the period, largest on top."""
    traces = []
    if len(frame):
        totals = frame.groupby("model")["energy_kwh"].sum().sort_values()
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": "Energy",
                "x": totals.to_numpy(dtype=np.float64),
                "y": totals.index.to_list(),
                "marker": {"color": PALETTE[0]},
                "hovertemplate": "%{y}: %{x:,.2f} kWh<extra></extra>",
            }
        )
    layout = _layout(x_title="Energy (kWh)", y_title="Model", empty=not traces)
    layout["yaxis"]["automargin"] = True
    layout["hovermode"] = "closest"
    return {"data": traces, "layout": layout}
