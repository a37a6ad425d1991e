"""Figure builders and downsampling, without a database."""

from __future__ import annotations

import base64
import time

import numpy as np
import orjson
import pandas as pd
import pytest

from greenkpi.dashboard.common import figures
from greenkpi.dashboard.common.charts import encode_figure
from greenkpi.dashboard.common.downsample import lttb_indices
from greenkpi.dashboard.fleet import figures as fleet_figures
from greenkpi.dashboard.overview import figures as overview_figures
from greenkpi.dashboard.teams import figures as teams_figures


def random_walk(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(n, dtype=np.float64) * 60.0, np.cumsum(rng.normal(size=n)) + 300.0


@pytest.mark.parametrize("n", [10, 1_999, 2_000, 2_001, 8_000, 100_000])
@pytest.mark.parametrize("n_out", [5, 100, 2_000])
def test_downsampling_keeps_at_most_n_points_with_the_ends_and_the_extremes(n, n_out):
    x, y = random_walk(n)
    keep = lttb_indices(x, y, n_out)
    assert len(keep) <= n_out
    assert len(keep) == min(n, n_out) or n > n_out  # short series come back whole
    assert np.all(np.diff(keep) > 0)  # sorted, no duplicates
    assert keep[0] == 0 and keep[-1] == n - 1
    assert y[keep].max() == y.max() and y[keep].min() == y.min()


def test_downsampling_keeps_a_one_window_spike():
    x = np.arange(50_000, dtype=np.float64)
    y = np.full(50_000, 100.0)
    y[31_337] = 700.0  # a single GPU power spike
    y[12_345] = 0.0  # and a single drop
    keep = lttb_indices(x, y, 500)
    assert 31_337 in keep and 12_345 in keep


def test_downsampling_follows_the_shape_of_the_series():
    x = np.linspace(0, 20 * np.pi, 40_000)
    y = np.sin(x)
    keep = lttb_indices(x, y, 1_000)
    # Linear interpolation through the kept points stays close to the original curve.
    assert np.max(np.abs(np.interp(x, x[keep], y[keep]) - y)) < 0.02


def test_downsampling_100k_points_is_fast():
    x, y = random_walk(100_000)
    lttb_indices(x, y, 2_000)
    started = time.perf_counter()
    lttb_indices(x, y, 2_000)
    assert time.perf_counter() - started < 0.1  # the numpy-loop LTTB took ~35 ms; ours a few ms


def test_downsampling_refuses_a_budget_too_small_for_ends_and_extremes():
    with pytest.raises(ValueError, match="at least"):
        lttb_indices([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], 4)


def host_frame(n: int, devices: int = 2) -> pd.DataFrame:
    frames = []
    for d in range(devices):
        x, y = random_walk(n, seed=d)
        frames.append(
            pd.DataFrame(
                {
                    "time_utc": pd.to_datetime(x + 1.7e9, unit="s"),
                    "device_id": d,
                    "device": f"GPU {d}",
                    "kind": "gpu",
                    "power_w": y,
                    "power_peak_w": y + 5,
                    "util_pct": np.clip(y - 250, 0, 100),
                    "windows": 1,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_host_power_draws_one_trace_per_device_with_at_most_2000_points_and_the_peak():
    frame = host_frame(8_000)
    figure = fleet_figures.host_power(frame)
    assert [t["name"] for t in figure["data"]] == ["GPU 0", "GPU 1"]
    for trace, (_, rows) in zip(figure["data"], frame.groupby("device"), strict=True):
        assert len(trace["x"]) == len(trace["y"]) <= figures.MAX_POINTS_PER_TRACE
        assert trace["y"].max() == rows["power_w"].max()
        assert trace["x"].dtype == np.dtype("datetime64[ns]")  # tz-naive: fast to serialise
    assert figure["layout"]["yaxis"]["title"]["text"] == "Power (W)"
    assert figure["layout"]["xaxis"]["title"]["text"] == "Time (UTC)"


def test_a_host_figure_of_8_devices_serialises_under_300_kb_in_milliseconds():
    figure = fleet_figures.host_power(host_frame(8_000, devices=8))
    encode_figure(figure)
    started = time.perf_counter()
    body = encode_figure(figure)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05  # reference/performance-limits.md: < 50 ms per figure
    assert len(body) < 300_000
    trace = orjson.loads(body)["data"][0]
    assert trace["x"]["dtype"] == "f8" and trace["y"]["dtype"] == "f4"
    assert figure["layout"]["xaxis"]["type"] == "date"


def test_encoded_times_are_utc_epoch_milliseconds():
    figure = fleet_figures.host_power(host_frame(3, devices=1))
    trace = orjson.loads(encode_figure(figure))["data"][0]
    millis = np.frombuffer(base64.b64decode(trace["x"]["bdata"]), dtype="<f8")
    assert millis[0] == 1.7e12  # 1.7e9 s after the epoch, as built by host_frame


def test_utilization_is_in_percent_on_a_fixed_axis():
    figure = fleet_figures.host_utilization(host_frame(100))
    assert figure["layout"]["yaxis"]["title"]["text"] == "Busy (%)"
    assert figure["layout"]["yaxis"]["range"] == [0, 100]


def test_devices_without_a_reading_get_no_trace():
    frame = host_frame(10)
    frame.loc[frame["device"] == "GPU 1", "util_pct"] = np.nan
    assert [t["name"] for t in fleet_figures.host_utilization(frame)["data"]] == ["GPU 0"]


def test_energy_by_team_stacks_one_bar_trace_per_team_largest_first():
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(["2025-01-01", "2025-01-01", "2025-01-02"]),
            "team_id": [1, 2, 1],
            "team": ["Vision", "NLP", "Vision"],
            "energy_kwh": [1.0, 5.0, 2.0],
        }
    )
    figure = overview_figures.energy_by_team_daily(frame)
    assert [t["name"] for t in figure["data"]] == ["NLP", "Vision"]
    assert figure["layout"]["barmode"] == "stack"
    assert list(figure["data"][1]["y"]) == [1.0, 2.0]
    assert figure["layout"]["yaxis"]["title"]["text"] == "Energy (kWh)"


@pytest.mark.parametrize(
    "build",
    [
        overview_figures.energy_by_team_daily,
        fleet_figures.host_power,
        fleet_figures.host_utilization,
        teams_figures.team_energy_by_model,
    ],
)
def test_an_empty_frame_gives_an_empty_figure_that_says_so(build):
    figure = build(
        pd.DataFrame(
            columns=[
                "day",
                "team",
                "energy_kwh",
                "device",
                "time_utc",
                "power_w",
                "util_pct",
                "model",
            ]
        )
    )
    assert figure["data"] == []
    assert figure["layout"]["annotations"][0]["text"] == figures.NO_DATA


def test_team_models_are_horizontal_bars_summed_over_runs():
    frame = pd.DataFrame(
        {"model": ["bert", "bert", "gpt"], "run": ["a", "b", "c"], "energy_kwh": [1.0, 2.0, 0.5]}
    )
    (trace,) = teams_figures.team_energy_by_model(frame)["data"]
    assert trace["orientation"] == "h"
    assert dict(zip(trace["y"], trace["x"], strict=True)) == {"gpt": 0.5, "bert": 3.0}


def test_time_charts_span_the_whole_period_so_a_silent_host_shows_as_a_gap():
    from datetime import UTC, datetime

    period = (datetime(2025, 3, 1, 6, tzinfo=UTC), datetime(2025, 3, 3, 6, tzinfo=UTC))
    power = fleet_figures.host_power(host_frame(10), x_range=period)
    assert power["layout"]["xaxis"]["range"] == ["2025-03-01T06:00:00", "2025-03-03T06:00:00"]
    daily = overview_figures.energy_by_team_daily(
        pd.DataFrame(columns=["day", "team", "energy_kwh"]), x_range=period
    )
    assert daily["layout"]["xaxis"]["range"] == ["2025-02-28T12:00:00", "2025-03-03T12:00:00"]


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_defused():
    from greenkpi.dashboard.common.charts import csv_response

    frame = pd.DataFrame(
        {"model": ['=HYPERLINK("http://evil")', "bert", "@SUM(A1)"], "energy_kwh": [-1.5, 2.0, 3.0]}
    )
    body = csv_response(frame, ("model", "energy_kwh"), "x.csv").content.decode()
    assert body.splitlines()[1:] == [
        '"\'=HYPERLINK(""http://evil"")",-1.5',
        "bert,2",
        "'@SUM(A1),3",
    ]
