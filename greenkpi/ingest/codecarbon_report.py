"""The body CodeCarbon's HTTP output posts, validated. Pure Python: no ORM, no I/O.

``dataclasses.asdict`` of its ``EmissionsData`` plus ``"user"``. Fields appeared over releases
(2.2 has no ``experiment_id``, ``pue``, water or utilization; 3.x has them all), so only what the
deltas need is required and unknown keys are ignored: any release is accepted unchanged.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from greenkpi_schema import FieldError, ValidationFailed

MAX_RUN_ID = 150  # device uuids are "codecarbon:<run_id>:<component>", at most 200 characters
MAX_DURATION_S = 400 * 86400.0
MAX_ENERGY_KWH = 1e7  # 10 GWh from one tracker is a corrupt report, not a measurement

# component, payload field, device kind, how CodeCarbon obtained it (see docs/codecarbon.md):
# GPU energy always comes from NVML/AMD SMI (energy counter, or integrated power readings when the
# counter is unusable; the payload does not say which, so we claim the weaker of the two). CPU may
# be RAPL or a TDP model and RAM is always a model; the payload does not say, so: estimate.
COMPONENTS = (
    ("cpu", "cpu_energy", "cpu", "estimate"),
    ("gpu", "gpu_energy", "gpu", "power_integral"),
    ("ram", "ram_energy", "dram", "estimate"),
)
_STRINGS = (
    "experiment_id",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_model",
    "gpu_model",
    "tracking_mode",
    "on_cloud",
    "user",
)
# Informational numbers: when present they must be finite and >= 0 (a negative or NaN one means
# the report is corrupt), but nothing is computed from them.
_OPTIONAL_NUMBERS = (
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "energy_consumed",
    "water_consumed",
    "cpu_count",
    "gpu_count",
    "ram_total_size",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "wue",
)


# Payload field -> share tag. "user" is the OS account that ran the tracker (getpass.getuser()).
@dataclass(frozen=True, slots=True)
class Report:
    """A validated CodeCarbon report. Energies are run totals in kWh, as CodeCarbon sends them."""

    timestamp: datetime  # naive (client local time) unless the sender added an offset
    project_name: str
    run_id: str
    duration_s: float
    energy_kwh: dict[str, float]  # component -> run total
    pue: float
    values: dict[str, Any] = field(default_factory=dict)  # every other known field, validated


def _number(data: dict, name: str, errors: list[FieldError], *, high: float) -> float | None:
    value = data.get(name)
    if type(value) not in (int, float) or not (0 <= value <= high):  # NaN fails the comparison
        errors.append(
            FieldError(
                f"/{name}", "range", f"must be a finite number in [0, {high:g}], got {value!r}"
            )
        )
        return None
    return float(value)


def parse_report(data: Any) -> Report:
    """Validate a decoded CodeCarbon body, or raise ValidationFailed naming every bad field.

    Unknown keys are ignored and the fields newer releases added are optional, so reports from
    older and newer CodeCarbon releases are accepted unchanged.
    """
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError("", "type", "the body must be a JSON object")])
    errors: list[FieldError] = []
    timestamp: datetime | None = None
    raw_ts = data.get("timestamp")
    with contextlib.suppress(ValueError):  # reported below, with every other problem
        timestamp = datetime.fromisoformat(raw_ts) if type(raw_ts) is str else None
    if timestamp is None:
        errors.append(
            FieldError("/timestamp", "time", "must be an ISO 8601 time, e.g. 2026-01-31T12:00:00")
        )
    names: dict[str, str] = {}
    for name, limit in (("project_name", 200), ("run_id", MAX_RUN_ID)):
        value = data.get(name)
        if type(value) is not str or not value.strip() or len(value) > limit:
            errors.append(
                FieldError(f"/{name}", "required", f"must be a non-empty string (max {limit})")
            )
        else:
            names[name] = value.strip()
    duration = _number(data, "duration", errors, high=MAX_DURATION_S)
    energy = {
        component: _number(data, key, errors, high=MAX_ENERGY_KWH)
        for component, key, _kind, _method in COMPONENTS
    }
    pue = data.get("pue", 1.0)
    if pue is None:
        pue = 1.0
    if type(pue) not in (int, float) or not (0 < pue <= 10):
        errors.append(FieldError("/pue", "range", f"must be a number in (0, 10], got {pue!r}"))
    values: dict[str, Any] = {}
    for name in _OPTIONAL_NUMBERS:
        value = data.get(name)
        if value is None:
            continue
        if type(value) not in (int, float) or not 0 <= value < 1e15:
            errors.append(FieldError(f"/{name}", "range", "must be a finite number >= 0 or null"))
        else:
            values[name] = float(value)
    for name in ("longitude", "latitude"):
        value = data.get(name)
        if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
            errors.append(FieldError(f"/{name}", "type", "must be a finite number or null"))
    for name in _STRINGS:
        value = data.get(name)
        if value is None:
            continue
        if type(value) is not str or len(value) > 1000:
            errors.append(FieldError(f"/{name}", "type", "must be a string (max 1000) or null"))
        else:
            values[name] = value
    if errors:
        raise ValidationFailed(errors)
    assert timestamp is not None and duration is not None
    return Report(
        timestamp=timestamp,
        project_name=names["project_name"],
        run_id=names["run_id"],
        duration_s=duration,
        energy_kwh={k: v for k, v in energy.items() if v is not None},
        pue=float(pue),
        values=values,
    )
