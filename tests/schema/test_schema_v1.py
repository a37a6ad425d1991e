"""The payload contract itself, without Django."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from greenkpi_schema import Batch, HostFacts, Limits, Sample, Share, ValidationFailed, parse_batch
from greenkpi_schema.v1 import batch_to_json

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def sample(**overrides) -> Sample:
    values = dict(
        device_uuid="GPU-1",
        device_kind="gpu",
        start=NOW - timedelta(minutes=2),
        end=NOW - timedelta(minutes=1),
        energy_j=6000.0,
        method="counter",
        power_avg_w=100.0,
        util_busy=0.5,
        idle_s=10.0,
        shares=[
            Share(
                energy_j=4000.0,
                method="utilization",
                team="vision",
                model="m",
                run="r",
                pid=7,
                tags={"a": "b"},
            ),
            Share(energy_j=2000.0, method="unattributed"),
        ],
    )
    values.update(overrides)
    return Sample(**values)


def test_a_batch_survives_the_round_trip_through_json():
    batch = Batch(
        host=HostFacts(hostname="h", agent_version="1.0", clock=NOW, spool_depth=3),
        samples=[sample()],
    )
    parsed = parse_batch(batch_to_json(batch), now=NOW)
    assert parsed == batch


def test_errors_name_pointer_code_and_index():
    data = batch_to_json(
        Batch(host=HostFacts(hostname="h"), samples=[sample(), sample(device_uuid="GPU-2")])
    )
    data["samples"][1]["energy_j"] = float("nan")  # the stdlib json module would let NaN through
    with pytest.raises(ValidationFailed) as caught:
        parse_batch(data, now=NOW)
    assert [(e.pointer, e.code, e.sample_index) for e in caught.value.errors] == [
        ("/samples/1/energy_j", "range", 1)
    ]


def test_limits_are_the_callers():
    data = batch_to_json(Batch(host=HostFacts(hostname="h"), samples=[sample()]))
    with pytest.raises(ValidationFailed) as caught:
        parse_batch(data, now=NOW, limits=Limits(max_window_s=30))
    assert caught.value.errors[0].code == "window_too_long"
    with pytest.raises(ValidationFailed) as caught:
        parse_batch(data, now=NOW + timedelta(days=40))
    assert caught.value.errors[0].code == "too_old"


def test_the_schema_module_imports_without_django():
    code = "import sys; sys.modules['django'] = None; import greenkpi_schema; print(greenkpi_schema.SCHEMA_VERSION)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "1"
