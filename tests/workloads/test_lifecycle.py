"""Lifecycle carbon per version and phase, and SCI per unit over time, by hand."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from greenkpi.workloads import lifecycle


def frame() -> pd.DataFrame:
    rows = [
        # run, kind, version, start, end, unit, units, kWh, O kg, M kg
        ("t1", "training", "1", "2026-01-01", "2026-01-02", "", None, 100.0, 20.0, 1.0),
        ("i1", "inference", "1", "2026-01-03", "2026-01-04", "inference", 10_000, 5.0, 1.0, 0.2),
        ("t2", "fine-tuning", "2", "2026-02-01", "2026-02-02", "", None, 40.0, 8.0, 0.4),
        ("i2", "inference", "2", "2026-02-03", "2026-02-04", "inference", 20_000, 6.0, 1.2, 0.3),
        ("i3", "inference", "2", "2026-02-05", None, "inference", None, 1.0, 0.2, 0.0),
    ]
    columns = [
        "run_key", "kind", "version", "started_at", "ended_at", "functional_unit",
        "functional_units", "energy_kwh", "operational_location_kgco2e", "embodied_kgco2e",
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=columns)
    for c in ("started_at", "ended_at"):
        df[c] = pd.to_datetime(df[c])
    return df


def test_lifecycle_splits_training_retraining_and_inference_per_version():
    out = lifecycle.by_version_and_phase(frame())
    got = {(r.version, r.phase): (r.runs, r.energy_kwh, r.kgco2e) for r in out.itertuples()}
    assert got[("1", "training")] == (1, 100.0, 21.0)
    assert got[("1", "inference")] == (1, 5.0, pytest.approx(1.2))
    assert got[("1", "total")] == (2, 105.0, pytest.approx(22.2))
    assert got[("2", "retraining")] == (1, 40.0, pytest.approx(8.4))
    # i2 + i3: 7 kWh, 1.2 + 0.3 + 0.2 = 1.7 kg
    assert got[("2", "inference")] == (2, 7.0, pytest.approx(1.7))
    assert got[("2", "total")] == (3, 47.0, pytest.approx(10.1))


def test_sci_per_inference_over_time():
    out = lifecycle.sci_over_time(frame())
    # i1: 1.2 kg / 10,000 = 1.2e-4 kg per inference (0.12 g); i2: 1.5 / 20,000 = 7.5e-5; i3 open
    assert list(out["run_key"]) == ["i1", "i2"]
    assert list(out["sci_kgco2e_per_unit"]) == pytest.approx([1.2e-4, 7.5e-5])
    assert out["ended_at"].iloc[0] == datetime(2026, 1, 4)


def test_no_runs_no_rows():
    empty = frame().iloc[0:0]
    assert lifecycle.by_version_and_phase(empty).empty
    assert lifecycle.sci_over_time(empty).empty
