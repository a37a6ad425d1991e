"""Figures of a host: power and utilization per device over time (LTTB-downsampled)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from greenkpi.dashboard.common.downsample import lttb_indices
from greenkpi.dashboard.common.figures import (
    MAX_POINTS_PER_TRACE,
    PALETTE,
    Figure,
    TimeRange,
    _layout,
    _naive_utc,
    _span,
)


def _device_lines(
    frame: pd.DataFrame, column: str, *, unit: str, max_points: int
) -> list[dict[str, Any]]:
    traces = []
    for i, (device, rows) in enumerate(frame.groupby("device", sort=True)):
        rows = rows[rows[column].notna()]
        if rows.empty:
            continue
        x = _naive_utc(rows["time_utc"])
        y = rows[column].to_numpy(dtype=np.float64)
        keep = lttb_indices(x.astype("int64"), y, max_points)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": device,
                "x": x[keep],
                "y": y[keep],
                "line": {"width": 1.5, "color": PALETTE[i % len(PALETTE)]},
                "hovertemplate": f"%{{y:,.1f}} {unit}<extra>%{{fullData.name}}</extra>",
            }
        )
    return traces


def host_power(
    frame: pd.DataFrame,
    *,
    x_range: TimeRange | None = None,
    max_points: int = MAX_POINTS_PER_TRACE,
) -> Figure:
    """Average power per device over time, at most ``max_points`` per device (LTTB)."""
    traces = _device_lines(frame, "power_w", unit="W", max_points=max_points)
    return {
        "data": traces,
        "layout": _layout(
            x_title="Time (UTC)", y_title="Power (W)", empty=not traces, x_span=_span(x_range)
        ),
    }


def host_utilization(
    frame: pd.DataFrame,
    *,
    x_range: TimeRange | None = None,
    max_points: int = MAX_POINTS_PER_TRACE,
) -> Figure:
    """Busy fraction per device (0-100 %) over time, at most ``max_points`` per device."""
    traces = _device_lines(frame, "util_pct", unit="%", max_points=max_points)
    layout = _layout(
        x_title="Time (UTC)", y_title="Busy (%)", empty=not traces, x_span=_span(x_range)
    )
    layout["yaxis"]["range"] = [0, 100]
    return {"data": traces, "layout": layout}
