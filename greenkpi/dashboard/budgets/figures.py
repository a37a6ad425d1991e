"""The budget burn-up figure: a pure function from budgets.selectors.budget_burn's frame to Plotly.

No Django, no I/O. Traces: cumulative consumption (measured), the forecast (dashed, from the last
whole hour to the period end), the budget (100 %) and each other threshold as a line, and a marker
on the predicted (or actual) 100 % crossing. Alert intervals (firing -> resolved) are shaded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from greenkpi.dashboard.common.figures import PALETTE, Figure, TimeRange, _layout, _naive_utc, _span

MEASURED, FORECAST, BUDGET, CROSSING = PALETTE[0], PALETTE[5], PALETTE[7], PALETTE[3]
THRESHOLD = PALETTE[6]
ALERT_FILL = "rgba(213, 94, 0, 0.22)"


def _line(name: str, x: np.ndarray, y: np.ndarray, unit: str, **style: Any) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": x,
        "y": y,
        "hovertemplate": f"%{{y:,.4g}} {unit}<extra>%{{fullData.name}}</extra>",
        **style,
    }


def _iso(moment: datetime) -> str:
    return pd.Timestamp(moment).isoformat()


def budget_burn(frame: pd.DataFrame, *, x_range: TimeRange | None = None) -> Figure:
    attrs = frame.attrs
    unit: str = attrs.get("unit", "")
    amount = float(attrs.get("amount", 0.0))
    start, end = attrs["period"]
    traces: list[dict[str, Any]] = []
    measured = frame[frame["cumulative"].notna()]
    traces.append(
        _line(
            "Consumed",
            _naive_utc(measured["time_utc"]),
            measured["cumulative"].to_numpy(dtype=np.float64),
            unit,
            mode="lines+markers",
            line={"width": 2.5, "color": MEASURED},
            marker={"size": 5},
        )
    )
    ahead = frame[frame["forecast_cumulative"].notna()]
    if len(ahead) >= 2:
        traces.append(
            _line(
                f"Forecast ({attrs.get('method_key', 'recent_rate').replace('_', ' ')})",
                _naive_utc(ahead["time_utc"]),
                ahead["forecast_cumulative"].to_numpy(dtype=np.float64),
                unit,
                line={"width": 2, "dash": "dash", "color": FORECAST},
            )
        )
    span = np.array([start, end], dtype="datetime64[ns]")
    traces.append(
        _line(
            "Budget (100 %)",
            span,
            np.array([amount, amount]),
            unit,
            line={"width": 2, "color": BUDGET},
        )
    )
    for pct in attrs.get("thresholds", []):
        if pct == 100:
            continue
        level = amount * pct / 100
        traces.append(
            _line(
                f"{pct} % threshold",
                span,
                np.array([level, level]),
                unit,
                line={"width": 1, "dash": "dot", "color": THRESHOLD},
            )
        )
    crossing = attrs.get("crossing_at")
    shapes: list[dict[str, Any]] = []
    if crossing is not None:
        label = "100 % reached" if attrs.get("crossing_reached") else "Predicted 100 % crossing"
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": label,
                "x": np.array([crossing], dtype="datetime64[ns]"),
                "y": np.array([amount]),
                "marker": {"size": 12, "symbol": "x", "color": CROSSING},
                "hovertemplate": f"%{{x|%Y-%m-%d %H:%M}} UTC<extra>{label}</extra>",
            }
        )
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": _iso(crossing),
                "x1": _iso(crossing),
                "y0": 0,
                "y1": 1,
                "line": {"color": CROSSING, "width": 1, "dash": "dot"},
            }
        )
    for fired, resolved, _ in attrs.get("alert_intervals", []):
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": _iso(fired),
                "x1": _iso(resolved),
                "y0": 0,
                "y1": 1,
                "fillcolor": ALERT_FILL,
                "line": {"width": 0},
                "layer": "below",
            }
        )
    layout = _layout(
        x_title="Day (UTC)",
        y_title=f"Cumulative consumption ({unit})",
        empty=False,
        x_span=_span(x_range),
    )
    layout["shapes"] = shapes
    layout["hovermode"] = "closest"
    top = max(
        amount * max([100, *attrs.get("thresholds", [])]) / 100,
        float(np.nanmax(frame[["cumulative", "forecast_cumulative"]].to_numpy(dtype=np.float64)))
        if frame[["cumulative", "forecast_cumulative"]].notna().any().any()
        else 0.0,
    )
    layout["yaxis"]["range"] = [0, top * 1.08 or 1]
    return {"data": traces, "layout": layout}
