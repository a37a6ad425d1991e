"""Template filters for the one unit rule (greenkpi/lib/units.py) and the carbon names
(greenkpi/kpis/labels.py). Registered as builtins (settings.TEMPLATES), so every page and email
template has them without ``{% load %}``:

``{{ kg|co2e }}`` -> "3.81 t" · ``{{ kg|co2e_per_unit }}`` -> "153 g" · ``{{ x|sig }}`` -> "45.6" ·
``{{ kwh|kwh }}`` -> "1,234 kWh" · ``{{ kg|sci:run.functional_unit }}`` -> "312 kgCO2e per run" ·
``{% carbon_name "location" %}`` -> "Scope 2 location-based".
"""

from __future__ import annotations

from django import template

from greenkpi.kpis import labels
from greenkpi.lib import units

register = template.Library()


def _float(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


@register.filter
def sig(value: object) -> str:
    return units.significant(_float(value))


@register.filter
def co2e(value: object) -> str:
    return str(units.co2e_mass(_float(value)))


@register.filter
def co2e_parts(value: object) -> tuple[str, str]:
    """(number, unit) for tiles that style them apart: ("3.81", "tCO2e")."""
    figure = units.co2e_mass(_float(value))
    return figure.number, f"{figure.unit}CO2e"


@register.filter
def co2e_per_unit(value: object) -> str:
    return str(units.co2e_per_unit(_float(value)))


@register.filter
def kwh(value: object) -> str:
    return str(units.energy(_float(value)))


@register.filter
def sci(value: object, functional_unit: object = "") -> str:
    """kgCO2e per functional unit at its unit's scale (per run, per 1,000 inferences ...)."""
    return str(units.sci(_float(value), str(functional_unit or "")))


@register.filter
def amount(value: object, unit: object = "") -> str:
    """A budget figure in its unit: kgCO2e by the carbon rule ("3.81 tCO2e"), any other unit
    (kWh, GPU-h, a currency) with three significant digits ("1,234 kWh")."""
    if str(unit) == "kgCO2e":
        figure = units.co2e_mass(_float(value))
        return f"{figure.number} {figure.unit}CO2e"
    return f"{units.significant(_float(value))} {unit}".rstrip()


@register.filter
def pct(value: object) -> str:
    return units.percent(_float(value))


@register.filter
def get_item(mapping: object, key: object) -> object:
    """``mapping[key]`` (None when absent): a per-team dict read in a loop over teams."""
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.simple_tag
def carbon_name(key: str, form: str = "name") -> str:
    """The one name of a carbon quantity: form ``name``, ``title``, ``tile`` or ``csv_header``."""
    quantity = {q.key: q for q in labels.QUANTITIES}[key]
    return str(getattr(quantity, form))
