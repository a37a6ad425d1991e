"""Figure builders of the model and run pages: pure functions from a workloads selector's frame to
a Plotly figure dict (no Django, no I/O). Every axis names its unit; times are tz-naive UTC."""

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
from greenkpi.kpis import labels

# Above the plot: below it, a legend collides with the two-line date ticks and the axis title.
LEGEND_ABOVE = {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0}

PHASE_LABELS = {
    "training": "Training",
    "inference": "Inference",
    "evaluation": "Evaluation",
    "unregistered": "Unregistered runs",
}
PHASE_COLOURS = {
    "training": PALETTE[5],
    "inference": PALETTE[0],
    "evaluation": PALETTE[2],
    "unregistered": PALETTE[6],
}


def lifecycle(frame: pd.DataFrame, *, x_range: TimeRange | None = None) -> Figure:
    """Two stacked-bar panels sharing the time axis: energy (kWh, top) and kgCO2e (O + M,
    bottom) per day or week, one colour per phase (training, inference ...)."""
    traces: list[dict[str, Any]] = []
    for phase, label in PHASE_LABELS.items():
        rows = frame[frame["phase"] == phase] if len(frame) else frame
        if rows.empty:
            continue
        x = _naive_utc(rows["bucket_utc"])
        for axis, column, unit in (("", "energy_kwh", "kWh"), ("2", "kgco2e", "kgCO2e")):
            traces.append(
                {
                    "type": "bar",
                    "name": label,
                    "legendgroup": phase,
                    "showlegend": axis == "",
                    "x": x,
                    "y": rows[column].to_numpy(dtype=np.float64),
                    "xaxis": f"x{axis}",
                    "yaxis": f"y{axis}",
                    "marker": {"color": PHASE_COLOURS[phase]},
                    "hovertemplate": f"%{{y:,.4g}} {unit}<extra>{label}</extra>",
                }
            )
    layout = _layout(
        x_title="Day (UTC)",
        y_title="Energy (kWh)",
        empty=not traces,
        x_span=_span(x_range, daily=True),
        barmode="stack",
        legend=LEGEND_ABOVE,
    )
    layout["yaxis"]["domain"] = [0.55, 1.0]
    layout["xaxis"]["anchor"] = "y"
    layout["xaxis"]["showticklabels"] = False
    layout["xaxis"]["title"] = {"text": ""}
    layout["xaxis2"] = {
        "title": {"text": "Day or week starting (UTC)"},
        "type": "date",
        "anchor": "y2",
        "matches": "x",
    }
    if layout["xaxis"].get("range"):
        layout["xaxis2"]["range"] = layout["xaxis"]["range"]
    layout["yaxis2"] = {
        "title": {"text": f"{labels.TOTAL.tile} (kgCO2e)"},
        "domain": [0.0, 0.45],
        "rangemode": "tozero",
        "anchor": "x2",
    }
    if not traces:
        layout["xaxis2"]["showticklabels"] = layout["yaxis2"]["showticklabels"] = False
    return {"data": traces, "layout": layout}


def _per_group_lines(
    frame: pd.DataFrame, *, group: str, x: str, y: str, hover: str, mode: str = "lines+markers"
) -> list[dict[str, Any]]:
    traces = []
    for i, (name, rows) in enumerate(frame.groupby(group, sort=True)):
        rows = rows[rows[y].notna()]
        if rows.empty:
            continue
        traces.append(
            {
                "type": "scatter",
                "mode": mode,
                "name": str(name),
                "x": _naive_utc(rows[x]),
                "y": rows[y].to_numpy(dtype=np.float64),
                "line": {"width": 1.5, "color": PALETTE[i % len(PALETTE)]},
                "hovertemplate": f"{hover}<extra>%{{fullData.name}}</extra>",
            }
        )
    return traces


def sci(frame: pd.DataFrame, *, x_range: TimeRange | None = None) -> Figure:
    """SCI per 1,000 functional units of each inference run, at its end, one line per version."""
    units = sorted(set(frame["functional_unit"])) if len(frame) else ["inference"]
    unit = f"{units[0]}s" if len(units) == 1 else "functional units"
    # The one unit rule (lib/units.py): a per-unit figure under 1 kg is drawn in grams, so the
    # axis never reads "2µ" kg; the CSV keeps kg.
    peak = float(frame["sci_kgco2e_per_1000"].abs().max()) if len(frame) else 0.0
    mass = "g" if 0 < peak < 1 else "kg"
    work = frame.assign(
        label=[f"version {v}" if v else "no version" for v in frame["version"]],
        sci_shown=frame["sci_kgco2e_per_1000"] * (1000.0 if mass == "g" else 1.0),
    )
    traces = _per_group_lines(
        work,
        group="label",
        x="ended_utc",
        y="sci_shown",
        hover=f"%{{y:.3g}} {mass}CO2e per 1,000 {unit}",
    )
    layout = _layout(
        x_title="Run end (UTC)",
        y_title=f"SCI ({mass}CO2e per 1,000 {unit})",
        legend=LEGEND_ABOVE,
        empty=not traces,
        x_span=_span(x_range),
    )
    return {"data": traces, "layout": layout}


def evaluations(frame: pd.DataFrame, *, x_range: TimeRange | None = None) -> Figure:
    """The primary metric per version over time (the window end of each evaluation)."""
    metrics = sorted(set(frame["metric"])) if len(frame) else []
    work = frame.assign(
        label=[
            f"{m} · version {v}" if len(metrics) > 1 else f"version {v}"
            for m, v in zip(frame["metric"], frame["version"], strict=True)
        ]
    )
    traces = _per_group_lines(work, group="label", x="window_end_utc", y="value", hover="%{y:.4g}")
    y_title = f"{metrics[0]} (metric units)" if len(metrics) == 1 else "Metric value (metric units)"
    layout = _layout(
        x_title="Evaluation window end (UTC)",
        y_title=y_title,
        legend=LEGEND_ABOVE,
        empty=not traces,
        x_span=_span(x_range),
    )
    layout["yaxis"]["rangemode"] = "normal"  # a metric near 0.9 must not be squashed against 0
    return {"data": traces, "layout": layout}


def drift(frame: pd.DataFrame, *, x_range: TimeRange | None = None) -> Figure:
    """Each feature's drift statistic over time (PSI, JS ... unitless), one line per feature."""
    work = frame.assign(
        label=[f"{f} ({s})" for f, s in zip(frame["feature"], frame["statistic"], strict=True)]
    )
    traces = _per_group_lines(work, group="label", x="window_end_utc", y="value", hover="%{y:.3f}")
    layout = _layout(
        x_title="Report window end (UTC)",
        y_title="Drift statistic (PSI / JS, unitless)",
        legend=LEGEND_ABOVE,
        empty=not traces,
        x_span=_span(x_range),
    )
    return {"data": traces, "layout": layout}


def need(frame: pd.DataFrame, *, thresholds: dict[str, float] | None = None) -> Figure:
    """How the need score R is made: a waterfall of the weighted parts (0.5 drift + 0.3 age + 0.2
    performance) to their sum, beside performance alone and R = the larger; the policy's watch,
    enter and exit thresholds as lines."""
    traces: list[dict[str, Any]] = []
    if len(frame):
        parts = frame.set_index("component")
        weighted = ["drift", "age", "performance"]
        labels = [f"{parts.at[c, 'weight']:g} x {c}" for c in weighted] + ["weighted sum"]
        traces.append(
            {
                "type": "waterfall",
                "name": "Weighted parts",
                "orientation": "v",
                "measure": ["relative"] * 3 + ["total"],
                "x": labels,
                "y": [float(parts.at[c, "contribution"]) for c in weighted]
                + [float(parts.at["weighted sum", "contribution"])],
                "connector": {"line": {"color": PALETTE[6]}},
                "increasing": {"marker": {"color": PALETTE[0]}},
                "totals": {"marker": {"color": PALETTE[4]}},
                "hovertemplate": "%{x}: %{y:.3f}<extra></extra>",
            }
        )
        traces.append(
            {
                "type": "bar",
                "name": "Performance alone, need R",
                "x": ["performance alone", "need R"],
                "y": [
                    float(parts.at["performance alone", "contribution"]),
                    float(parts.at["need R", "contribution"]),
                ],
                "marker": {"color": [PALETTE[1], PALETTE[5]]},
                "hovertemplate": "%{x}: %{y:.3f}<extra></extra>",
            }
        )
    layout = _layout(x_title="Component", y_title="Score (0-1, unitless)", empty=not traces)
    layout["yaxis"]["range"] = [0, 1.05]
    layout["hovermode"] = "closest"
    layout["showlegend"] = False
    if traces and thresholds:
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": value,
                "y1": value,
                "line": {"dash": "dot", "width": 1, "color": PALETTE[7]},
            }
            for value in thresholds.values()
        ]
        layout["annotations"] = [
            {
                "text": f"{name} {value:g}",
                "xref": "paper",
                "x": 1,
                "xanchor": "right",
                "yref": "y",
                "y": value,
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 11},
            }
            for name, value in thresholds.items()
        ]
    return {"data": traces, "layout": layout}


def run_power(
    frame: pd.DataFrame,
    *,
    x_range: TimeRange | None = None,
    max_points: int = MAX_POINTS_PER_TRACE,
) -> Figure:
    """The run's mean power per device and hour (W), at most ``max_points`` per device (LTTB)."""
    traces = []
    for i, (device, rows) in enumerate(frame.groupby(["host", "device"], sort=True)):
        x = _naive_utc(rows["hour_utc"])
        y = rows["power_w"].to_numpy(dtype=np.float64)
        keep = lttb_indices(x.astype("int64"), y, max_points)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if len(rows) < 48 else "lines",
                "line": {"shape": "hv", "width": 1.5, "color": PALETTE[i % len(PALETTE)]},
                "marker": {"size": 7},
                "name": f"{device[0]} · {device[1]}",
                "x": x[keep],
                "y": y[keep],
                "hovertemplate": "%{y:,.1f} W<extra>%{fullData.name}</extra>",
            }
        )
    layout = _layout(
        x_title="Hour (UTC)",
        y_title="Mean power over the hour (W)",
        legend=LEGEND_ABOVE,
        empty=not traces,
        x_span=_span(x_range),
    )
    return {"data": traces, "layout": layout}


def sci_ai(frame: pd.DataFrame, *, metric: str = "primary metric") -> Figure:
    """Each version's primary metric against its lifecycle kgCO2e (provider + consumer), the Pareto
    front joined by a line: a version off the front was matched or beaten by one that cost less
    (a retrain that bought nothing)."""
    traces: list[dict[str, Any]] = []
    known = frame[frame["metric_value"].notna()] if len(frame) else frame
    if len(known):
        front = known[known["on_front"].astype(bool)].sort_values("lifecycle_kgco2e")
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Pareto front",
                "x": front["lifecycle_kgco2e"].to_numpy(dtype=np.float64),
                "y": front["metric_value"].to_numpy(dtype=np.float64),
                "line": {"color": PALETTE[2], "dash": "dot"},
                "hoverinfo": "skip",
            }
        )
        for on_front, name, colour, symbol in (
            (True, "On the front", PALETTE[2], "circle"),
            (False, "Dominated (bought nothing)", PALETTE[6], "x"),
        ):
            rows = known[known["on_front"].astype(bool) == on_front]
            if rows.empty:
                continue
            traces.append(
                {
                    "type": "scatter",
                    # names on the front only: a nightly retrain's dozens of dominated versions
                    # would bury each other's labels (their names are in the hover)
                    "mode": "markers+text" if on_front else "markers",
                    "name": name,
                    "x": rows["lifecycle_kgco2e"].to_numpy(dtype=np.float64),
                    "y": rows["metric_value"].to_numpy(dtype=np.float64),
                    "text": rows["version"].tolist(),
                    "customdata": rows["dominated_by"].tolist(),
                    "textposition": "top center",
                    "marker": {"color": colour, "symbol": symbol, "size": 10},
                    "hovertemplate": "%{text}: %{y:.4g} for %{x:.4g} kgCO2e"
                    + ("" if on_front else " (dominated by %{customdata})")
                    + "<extra></extra>",
                }
            )
    layout = _layout(
        x_title=f"Lifecycle CO2e, {labels.TOTAL.name} (kgCO2e)",
        y_title=metric or "primary metric",
        empty=not traces,
    )
    layout["hovermode"] = "closest"
    layout["yaxis"]["rangemode"] = "normal"
    layout["legend"] = LEGEND_ABOVE
    return {"data": traces, "layout": layout}
